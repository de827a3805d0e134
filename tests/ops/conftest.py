"""Shared pytest setup for the mmdyn.ops unit tests (pure PyTorch, no OpenMMLab).

``MMDYN_TEST_DEVICE=cuda`` runs them on a GPU (see ``_ops_helpers.TEST_DEVICE``).
"""
import sys
from pathlib import Path

import pytest
import torch

# make ``_ops_helpers`` importable whatever pytest's --import-mode
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import _ops_helpers  # noqa: E402,F401  (checks MMDYN_TEST_DEVICE once, at start-up)

# The tensors in these tests are tiny: intra-op threading only adds overhead (and on a
# loaded 2-core machine it makes every op ~100x slower).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _on_test_device():
    """Tensors and modules created without a device go to ``MMDYN_TEST_DEVICE``
    (default cpu), so the same suite runs on a GPU. On CUDA, TF32 is turned off:
    the tests compare float32 results at float32 round-off."""
    from _ops_helpers import TEST_DEVICE
    if TEST_DEVICE.type == 'cpu':
        yield
        return
    saved = (torch.get_default_device(), torch.backends.cuda.matmul.allow_tf32,
             torch.backends.cudnn.allow_tf32)
    torch.set_default_device(TEST_DEVICE)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.set_default_device(saved[0])
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[1:]


@pytest.fixture(autouse=True)
def _no_forced_strategy(monkeypatch):
    """Make 'auto' decide by shape, whatever MMDYN_BATCHED_CONV says."""
    from mmdyn.ops import batched_conv
    monkeypatch.setattr(batched_conv, 'FORCED_STRATEGY', None)
