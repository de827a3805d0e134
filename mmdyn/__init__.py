"""mmdyn: dynamic convolutions for OpenMMLab.

This package root stays light: ``import mmdyn`` and ``import mmdyn.ops`` need only
torch. OpenMMLab registration happens in :mod:`mmdyn.models`.
"""
__version__ = '0.1.0'
