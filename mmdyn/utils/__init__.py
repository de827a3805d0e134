"""Utilities of mmdyn that need only Python and torch: argument validation, state-dict
plumbing and the device self-check (:mod:`mmdyn.utils.gpu_check`)."""
