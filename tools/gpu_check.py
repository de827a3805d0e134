#!/usr/bin/env python
"""mmdyn device self-check (``make gpu-check``): see ``docs/gpu.md``.

Usage::

    python tools/gpu_check.py [--device cuda|cuda:N|cpu] [--scale full|small]
        [--sections env layers strategies resnet50 maskrcnn torchrun pytest] [--out DIR]

Prints a Markdown table per section and writes ``DIR/gpu_check.{json,md}``
(default ``outputs/gpu_check``). Exit status 1 when a check fails, 2 when the
device cannot be used (e.g. ``--device cuda`` without CUDA). The work is done
by :mod:`mmdyn.utils.gpu_check` (torch-only except the Mask R-CNN and torchrun
sections, which are skipped with the reason when mmcv/mmdet are missing).

This wrapper needs mmdyn installed (``tools/setup_env.sh``); on a bare GPU
machine run ``python -m mmdyn.utils.gpu_check`` from the repository root
instead (``make gpu-check`` does; see ``docs/gpu.md``).
"""
import sys

from mmdyn.utils.gpu_check import main

if __name__ == '__main__':
    sys.exit(main())
