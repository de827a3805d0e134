"""The "adaptive loss" of the multi-scale dynamic convolution blog: a
class-balanced softmax focal loss.

The blog (Srlua, "image classification with multi-scale dynamic convolution",
see ``docs/references.md``, MSFF) names its loss ``AdaptiveLoss(alpha=0.25,
gamma=2.0, balance_factor=0.999)`` and shows only its first line (a per-sample
cross-entropy). Those three hyper-parameters are the ones of the
class-balanced focal loss (Cui et al., "Class-Balanced Loss Based on
Effective Number of Samples", CVPR 2019), which is what mmdyn implements.

For logits ``z`` (N, C), probabilities ``p = softmax(z)`` and a target class
``y``::

    w_c   = (1 - β) / (1 - β ** n_c)          # inverse effective number of class c
    w_c  <- w_c * C / Σ_c' w_c'               # normalised to sum to C
    loss  = w_y · α · (1 - p_y) ** γ · (-log p_y)

``n_c`` is the number of training samples of class ``c``. Without class
counts (or with ``β = 0``) every ``w_c = 1`` and the loss is the plain softmax
focal loss ``α (1 - p_y)^γ CE``. Soft targets ``t`` (N, C) (mixup / cutmix /
label smoothing in mmpretrain) generalise it to
``Σ_c t_c w_c α (1 - p_c)^γ (-log p_c)``, which is the same for one-hot ``t``.

Class counts come from the config (``class_counts=[...]``) or from the
training dataset through :class:`~mmdyn.engine.hooks.ClassCountsHook`; they are
kept in the ``class_weights`` buffer, so checkpoints carry them.
"""
import warnings
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdyn.utils.validation import check_number

_OWNER = 'AdaptiveLoss'  # the prefix of its argument errors


def class_balanced_weights(class_counts: Sequence[int], beta: float) -> torch.Tensor:
    """Per-class weights ``(1 - β) / (1 - β^n_c)`` normalised to sum to ``C``.

    Args:
        class_counts: ``n_c`` for each class (ints >= 0).
        beta: ``β`` in ``[0, 1)``.

    Returns:
        torch.Tensor: float64 weights of shape ``(C,)``. A class with no sample
        is counted as one sample (its weight is the largest finite one; it never
        occurs as a training target, and a warning says so).
    """
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    if counts.dim() != 1 or counts.numel() == 0:
        raise ValueError(f'class_counts must be a non-empty 1-D sequence, got {class_counts!r}')
    if not torch.isfinite(counts).all() or (counts < 0).any() or (counts != counts.round()).any():
        raise ValueError(f'class_counts must be non-negative integers, got {list(class_counts)}')
    if (counts == 0).any():
        empty = torch.nonzero(counts == 0).flatten().tolist()
        warnings.warn(f'AdaptiveLoss: classes {empty} have no training sample; they are '
                      'weighted as if they had one')
        counts = counts.clamp(min=1)
    if beta == 0:
        weights = torch.ones_like(counts)
    else:
        weights = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64),
                                                  counts))
    return weights * counts.numel() / weights.sum()


def class_balanced_focal_loss(logits: torch.Tensor, target: torch.Tensor,
                              class_weights: Optional[torch.Tensor] = None,
                              alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Per-sample class-balanced softmax focal loss (no reduction).

    Args:
        logits: ``(N, C)`` scores.
        target: ``(N,)`` / ``(N, 1)`` class indices or ``(N, C)`` soft targets.
        class_weights: ``(C,)`` per-class weights, or None (all 1).
        alpha: ``α`` (a global scale in the softmax form).
        gamma: ``γ >= 0``; 0 gives ``α · w_y · CE``.

    Returns:
        torch.Tensor: ``(N,)`` losses, in float32 (or float64 for float64 logits).
    """
    if logits.dim() != 2:
        raise ValueError(f'AdaptiveLoss expects logits of shape (N, C), got {tuple(logits.shape)}')
    n, c = logits.shape
    log_p = F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=1)
    if target.dim() == 2 and target.size(1) == 1:
        target = target.view(-1)
    if target.dim() == 1:
        if target.numel() != n:
            raise ValueError(f'AdaptiveLoss: {target.numel()} targets for {n} samples')
        if target.dtype.is_floating_point:
            raise TypeError('AdaptiveLoss: class-index targets must be integers, got '
                            f'{target.dtype}')
        if n and (target.min() < 0 or target.max() >= c):
            raise ValueError(f'AdaptiveLoss: target class out of range [0, {c}): '
                             f'{target.min().item()}..{target.max().item()}')
        soft = F.one_hot(target.long(), c).to(log_p.dtype)
    elif target.dim() == 2 and tuple(target.shape) == (n, c):
        soft = target.to(log_p.dtype)
    else:
        raise ValueError(f'AdaptiveLoss: target shape {tuple(target.shape)} does not match '
                         f'logits {tuple(logits.shape)}; expected (N,), (N, 1) or (N, C)')
    focal = alpha * (1.0 - log_p.exp()).clamp(min=0).pow(gamma) * (-log_p)
    if class_weights is not None:
        if class_weights.numel() != c:
            raise ValueError(f'AdaptiveLoss has {class_weights.numel()} class weights but the '
                             f'logits have {c} classes')
        focal = focal * class_weights.to(log_p.dtype)
    return (soft * focal).sum(dim=1)


class AdaptiveLoss(nn.Module):
    """Class-balanced focal loss (Cui et al., CVPR 2019), the "adaptive loss"
    of the multi-scale dynamic convolution blog (``docs/references.md``), for
    mmpretrain classification heads.

    Example::

        head=dict(type='LinearClsHead', num_classes=43, in_channels=512,
                  loss=dict(type='AdaptiveLoss', alpha=0.25, gamma=2.0,
                            balance_factor=0.999))
        custom_hooks = [dict(type='ClassCountsHook')]   # n_c from the train set

    Args:
        alpha (float): ``α > 0``. Default: 0.25.
        gamma (float): Focusing parameter ``γ >= 0``. Default: 2.0.
        balance_factor (float): ``β`` in ``[0, 1)`` of the effective number
            ``(1 - β^n) / (1 - β)``. Default: 0.999.
        class_counts (Sequence[int] | None): ``n_c`` per class. None: unknown
            (plain focal loss until :meth:`set_class_counts`, e.g. by
            ``ClassCountsHook``). Default: None.
        reduction (str): ``'mean'`` (over samples, or ``avg_factor``),
            ``'sum'`` or ``'none'``. Default: ``'mean'``.
        loss_weight (float): Multiplier of the loss. Default: 1.0.

    Shapes: ``cls_score`` (N, C); ``label`` (N,), (N, 1) or soft (N, C).
    """

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0,
                 balance_factor: float = 0.999, class_counts: Optional[Sequence[int]] = None,
                 reduction: str = 'mean', loss_weight: float = 1.0):
        super().__init__()
        self.alpha = check_number('alpha', alpha, low=0.0, low_open=True, owner=_OWNER)
        self.gamma = check_number('gamma', gamma, low=0.0, owner=_OWNER)
        self.balance_factor = check_number('balance_factor', balance_factor, low=0.0, high=1.0,
                                           owner=_OWNER)
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction
        self.loss_weight = check_number('loss_weight', loss_weight, owner=_OWNER)
        # (C,) weights once counts are known, (0,) before: the plain focal loss.
        self.register_buffer('class_weights', torch.zeros(0))
        self.class_counts = None
        if class_counts is not None:
            self.set_class_counts(class_counts)

    @property
    def has_class_counts(self) -> bool:
        """Whether class weights are set (from counts or a checkpoint)."""
        return self.class_weights.numel() > 0

    def set_class_counts(self, class_counts: Sequence[int]) -> None:
        """Set ``n_c`` and recompute the per-class weights."""
        weights = class_balanced_weights(class_counts, self.balance_factor)
        self.class_counts = [int(n) for n in class_counts]
        self.class_weights = weights.to(torch.float32).to(self.class_weights.device)

    def forward(self, cls_score: torch.Tensor, label: torch.Tensor,
                weight: Optional[torch.Tensor] = None, avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None, **kwargs) -> torch.Tensor:
        """Loss of ``cls_score`` against ``label`` (see the class docstring).

        ``weight`` (N,) scales each sample; ``avg_factor`` replaces N in the
        mean, as in mmpretrain's losses.
        """
        reduction = reduction_override or self.reduction
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError(f'unknown reduction {reduction!r}')
        loss = class_balanced_focal_loss(
            cls_score, label, self.class_weights if self.has_class_counts else None,
            self.alpha, self.gamma)
        if weight is not None:
            loss = loss * weight.to(loss.dtype).view(-1)
        if reduction == 'sum':
            loss = loss.sum()
        elif reduction == 'mean':
            denom = float(avg_factor) if avg_factor is not None else max(loss.numel(), 1)
            loss = loss.sum() / denom
        return self.loss_weight * loss

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The weights' length is only known once counts are set: take the
        # checkpoint's (a model built without counts loads a trained one).
        key = prefix + 'class_weights'
        if key in state_dict and state_dict[key].shape != self.class_weights.shape:
            self.class_weights = torch.zeros_like(state_dict[key],
                                                  device=self.class_weights.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f'alpha={self.alpha}, gamma={self.gamma}, balance_factor={self.balance_factor}, '
                f'classes={self.class_weights.numel() or "unknown"}, reduction={self.reduction}')
