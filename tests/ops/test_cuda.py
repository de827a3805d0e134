"""CUDA-only checks, skipped with the reason where torch sees no GPU (CI): every layer
on CUDA against the same layer on the CPU (same weights, input and sampled positions;
forward and gradients in float32 with TF32 off and under float16/bfloat16 autocast,
tolerances ``mmdyn.utils.gpu_check.TOLERANCES``), and ``strategy='auto'`` on CUDA
tensors following the CUDA rule of ``STRATEGY_RULES``."""
import pytest
import torch

from _ops_helpers import requires_cuda
from mmdyn.ops import select_strategy
from mmdyn.ops.batched_conv import strategy_rule
from mmdyn.utils.gpu_check import compare_layer, layer_variants

VARIANTS = layer_variants(num_points=48)


@requires_cuda
@pytest.mark.parametrize('name', list(VARIANTS))
def test_layer_on_cuda_matches_cpu(name):
    rows = compare_layer(name, VARIANTS[name], torch.device('cuda'), batch=4, channels=16,
                         size=12)
    assert [r['precision'] for r in rows] == ['float32', 'float16', 'bfloat16']
    for row in rows:
        assert row['status'] == 'ok', row


@requires_cuda
@pytest.mark.parametrize('batch,size', [(1, 14), (4, 7), (4, 14), (32, 56)])
@pytest.mark.parametrize('grad', [False, True])
def test_auto_on_cuda_follows_the_cuda_rule(batch, size, grad):
    x = torch.empty(batch, 64, size, size, device='cuda')
    with torch.set_grad_enabled(grad):
        picked = select_strategy(x, (64, 64, 3, 3), (size, size), maps_ok=True)
    assert picked == strategy_rule('cuda').choose(batch, (64, 64, 3, 3), (size, size), True,
                                                  grad)
