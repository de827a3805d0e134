"""Shared pytest setup for the mmdyn.ops unit tests (pure PyTorch, no OpenMMLab)."""
import sys
from pathlib import Path

import pytest
import torch

# make ``_ops_helpers`` importable whatever pytest's --import-mode
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

# The tensors in these tests are tiny: intra-op threading only adds overhead (and on a
# loaded 2-core machine it makes every op ~100x slower).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_forced_strategy(monkeypatch):
    """Make 'auto' decide by shape, whatever MMDYN_BATCHED_CONV says."""
    from mmdyn.ops import batched_conv
    monkeypatch.setattr(batched_conv, 'FORCED_STRATEGY', None)
