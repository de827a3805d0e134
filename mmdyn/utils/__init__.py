"""Utilities of mmdyn that need only torch (the device self-check)."""
