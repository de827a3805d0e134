"""Backbone tests: tiny inputs, one intra-op thread, fixed seed."""
import sys
from pathlib import Path

import pytest
import torch

# make ``_backbone_helpers`` and ``param_counts`` importable whatever pytest's --import-mode
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

# Two shared CPU cores: more than one intra-op thread oversubscribes them and makes
# these small convolutions ~10x slower.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
