"""``strategy='auto'`` reads its thresholds from ``STRATEGY_RULES`` (data that
tools/gpu_check.py prints and compares with measurements); device types without
an entry use the CUDA rule. Runs without a GPU: a ``meta`` tensor stands for an
accelerator."""
import pytest
import torch

from mmdyn.ops import select_strategy
from mmdyn.ops.batched_conv import (ACCELERATOR_RULE_KEY, STRATEGY_RULES, StrategyRule,
                                    strategy_rule)

KERNEL = (64, 64, 3, 3)


def test_select_strategy_follows_the_table(monkeypatch):
    x = torch.empty(4, 64, 14, 14, device='cpu')
    assert select_strategy(x, KERNEL, (14, 14)) == 'grouped'  # small kernel, CPU rule
    monkeypatch.setitem(STRATEGY_RULES, 'cpu', StrategyRule(batch1='bmm', otherwise='loop'))
    assert select_strategy(x, KERNEL, (14, 14)) == 'loop'
    assert select_strategy(x[:1], KERNEL, (14, 14)) == 'bmm'


@pytest.mark.parametrize('batch,size,grad,expected', [
    (1, 7, True, 'loop'), (4, 7, True, 'grouped'), (4, 7, False, 'grouped'),
    (4, 56, True, 'grouped')])
def test_other_devices_use_the_accelerator_rule(batch, size, grad, expected):
    x = torch.empty(batch, 64, size, size, device='meta')
    with torch.set_grad_enabled(grad):
        picked = select_strategy(x, KERNEL, (size, size), maps_ok=True)
    assert picked == expected
    assert strategy_rule('meta') is STRATEGY_RULES[ACCELERATOR_RULE_KEY]
    assert picked == strategy_rule('cuda').choose(batch, KERNEL, (size, size), True, grad)


@pytest.mark.parametrize('rule,args,expected', [
    (StrategyRule(), (4, KERNEL, (7, 7), True, True), 'grouped'),
    (StrategyRule(maps_max_positions=64), (4, KERNEL, (7, 7), True, True), 'maps'),
    (StrategyRule(maps_max_positions=64), (4, KERNEL, (7, 7), False, True), 'grouped'),
    (StrategyRule(maps_max_positions=64), (4, KERNEL, (7, 7), True, False), 'grouped'),
    (StrategyRule(maps_max_positions=64), (4, KERNEL, (9, 9), True, True), 'grouped'),
    (StrategyRule(otherwise='loop', grouped_below_cin=8), (4, (64, 4, 3, 3), (7, 7)), 'grouped'),
    (StrategyRule(otherwise='loop', grouped_min_positions=1024), (4, KERNEL, (32, 32)),
     'grouped'),
    (StrategyRule(otherwise='loop', grouped_min_positions=1024), (4, KERNEL, (31, 32)), 'loop'),
    (StrategyRule(otherwise='loop', grouped_below_kernel_elements=64 * 64 * 9 + 1),
     (4, KERNEL, (7, 7)), 'grouped'),
    (StrategyRule(otherwise='loop', grouped_below_kernel_elements=64 * 64 * 9),
     (4, KERNEL, (7, 7)), 'loop'),
], ids=['defaults', 'maps', 'maps-not-ok', 'maps-no-grad', 'maps-too-big', 'depthwise',
        'large-map', 'below-large-map', 'small-kernel', 'kernel-at-threshold'])
def test_rule_order_and_thresholds(rule, args, expected):
    assert rule.choose(*args) == expected
