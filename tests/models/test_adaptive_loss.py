"""AdaptiveLoss: the class-balanced focal loss of the multi-scale fusion blog (Cui et al.,
CVPR 2019; docs/references.md)."""
import math

import pytest
import torch
import torch.nn.functional as F

import mmdyn.models  # noqa: F401  (registers)
from mmdyn.models.losses import AdaptiveLoss, class_balanced_weights


def _hand_loss(logits, target, counts, alpha, gamma, beta):
    """The loss of one sample, written out with Python floats."""
    exps = [math.exp(z) for z in logits]
    p = exps[target] / sum(exps)
    raw = [(1 - beta) / (1 - beta ** n) for n in counts]
    w = [r * len(counts) / sum(raw) for r in raw]
    return w[target] * alpha * (1 - p) ** gamma * -math.log(p)


def test_hand_computed_case():
    counts = [10, 100, 1000]
    logits = [[2.0, 0.0, -1.0], [0.5, 1.5, 0.1], [-0.3, 0.2, 0.4]]
    targets = [0, 1, 2]
    loss = AdaptiveLoss(alpha=0.25, gamma=2.0, balance_factor=0.999, class_counts=counts)
    got = loss(torch.tensor(logits, dtype=torch.float64), torch.tensor(targets))
    per_sample = [_hand_loss(z, t, counts, 0.25, 2.0, 0.999) for z, t in zip(logits, targets)]
    assert got.item() == pytest.approx(sum(per_sample) / 3, rel=1e-6)
    # The first sample by hand: p = e^2 / (e^2 + 1 + e^-1), weights 2.678/0.280/0.042.
    p0 = math.exp(2) / (math.exp(2) + 1 + math.exp(-1))
    assert per_sample[0] == pytest.approx(2.67782 * 0.25 * (1 - p0) ** 2 * -math.log(p0),
                                          rel=1e-4)
    none = loss(torch.tensor(logits), torch.tensor(targets), reduction_override='none')
    assert none.tolist() == pytest.approx(per_sample, rel=1e-5)


def test_weights_sum_to_class_count_and_favour_rare_classes():
    w = class_balanced_weights([5, 50, 500, 5000], 0.999)
    assert w.sum().item() == pytest.approx(4.0)
    assert torch.all(w[:-1] > w[1:])
    assert torch.allclose(class_balanced_weights([5, 50, 500], 0.0), torch.ones(3,
                                                                              dtype=torch.float64))


def test_without_counts_is_plain_focal_and_reduces_to_cross_entropy():
    torch.manual_seed(0)
    logits, target = torch.randn(6, 5), torch.randint(0, 5, (6, ))
    p_t = logits.softmax(1).gather(1, target[:, None]).squeeze(1)
    ce = F.cross_entropy(logits, target, reduction='none')
    focal = AdaptiveLoss(alpha=0.25, gamma=2.0)(logits, target, reduction_override='none')
    assert torch.allclose(focal, 0.25 * (1 - p_t) ** 2 * ce, atol=1e-6)
    plain = AdaptiveLoss(alpha=1.0, gamma=0.0)
    assert torch.allclose(plain(logits, target), F.cross_entropy(logits, target), atol=1e-6)
    # Uniform counts give the same as no counts.
    uniform = AdaptiveLoss(class_counts=[7] * 5)
    assert torch.allclose(uniform(logits, target), AdaptiveLoss()(logits, target), atol=1e-6)


def test_soft_targets_match_hard_ones_and_weights_avg_factor():
    torch.manual_seed(1)
    loss = AdaptiveLoss(class_counts=[3, 30, 300, 3000])
    logits, target = torch.randn(5, 4), torch.tensor([0, 1, 2, 3, 1])
    hard = loss(logits, target)
    assert torch.allclose(loss(logits, F.one_hot(target, 4).float()), hard, atol=1e-6)
    assert torch.allclose(loss(logits, target[:, None]), hard, atol=1e-6)
    assert torch.allclose(loss(logits, target, avg_factor=10), hard * 5 / 10, atol=1e-6)
    weight = torch.tensor([1., 0., 0., 0., 0.])
    first = loss(logits[:1], target[:1], reduction_override='sum')
    assert torch.allclose(loss(logits, target, weight=weight, reduction_override='sum'), first)
    mixed = torch.tensor([[0.5, 0.5, 0., 0.]])
    parts = loss(logits[:1], torch.tensor([0]), reduction_override='sum') * 0.5 + \
        loss(logits[:1], torch.tensor([1]), reduction_override='sum') * 0.5
    assert torch.allclose(loss(logits[:1], mixed, reduction_override='sum'), parts, atol=1e-6)


def test_gradient_flows_and_rare_class_gets_larger_gradient():
    loss = AdaptiveLoss(class_counts=[10, 1000])
    logits = torch.zeros(2, 2, requires_grad=True)
    loss(logits, torch.tensor([0, 1]), reduction_override='sum').backward()
    assert logits.grad[0].abs().sum() > logits.grad[1].abs().sum() > 0


def test_in_an_mmpretrain_head_and_state_dict_roundtrip():
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    with MODELS.switch_scope_and_registry('mmpretrain') as registry:
        head = registry.build(dict(type='LinearClsHead', num_classes=3, in_channels=8,
                                   loss=dict(type='AdaptiveLoss', class_counts=[1, 2, 30])))
    feats = (torch.randn(4, 8), )
    samples = [DataSample().set_gt_label(i % 3) for i in range(4)]
    losses = head.loss(feats, samples)
    expected = head.loss_module(head(feats), torch.tensor([0, 1, 2, 0]))
    assert torch.allclose(losses['loss'], expected)
    fresh = AdaptiveLoss()  # built without counts: adopts the checkpoint's weights
    fresh.load_state_dict(head.loss_module.state_dict())
    assert fresh.has_class_counts
    assert torch.equal(fresh.class_weights, head.loss_module.class_weights)


@pytest.mark.parametrize('kwargs, match', [
    (dict(alpha=0), 'alpha must be >'),
    (dict(gamma=-1), 'gamma must be >='),
    (dict(balance_factor=1.0), 'balance_factor must be < 1'),
    (dict(balance_factor='x'), 'balance_factor must be a finite number'),
    (dict(reduction='avg'), 'reduction'),
    (dict(class_counts=[1, -2]), 'non-negative integers'),
    (dict(class_counts=[]), 'non-empty'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        AdaptiveLoss(**kwargs)


def test_bad_inputs():
    loss = AdaptiveLoss(class_counts=[1, 2, 3])
    with pytest.raises(ValueError, match='3 class weights but the logits have 4'):
        loss(torch.randn(2, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='out of range'):
        loss(torch.randn(2, 3), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match='does not match'):
        loss(torch.randn(2, 3), torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r'\(N, C\)'):
        loss(torch.randn(2, 3, 1), torch.tensor([0, 1]))


def test_empty_class_warns_and_counts_as_one():
    with pytest.warns(UserWarning, match=r'classes \[1\] have no training sample'):
        w = class_balanced_weights([4, 0], 0.9)
    assert torch.allclose(w, class_balanced_weights([4, 1], 0.9))
