"""mmdyn.ops: dynamic convolution layers in pure PyTorch (no OpenMMLab import).

Every layer in ``LAYERS`` is a drop-in for ``nn.Conv2d``: same leading
constructor arguments ``(in_channels, out_channels, kernel_size, stride=1,
padding=0, dilation=1, groups=1, bias=False)`` plus keyword-only options of its
own. ``MODULES`` holds the dynamic-mask-convolution family: ``DMC`` (also a
drop-in conv), ``AdaptiveEnhancement`` and ``MSFF`` (shape-preserving /
plugin modules built from ``in_channels``).

A layer of ``LAYERS`` describes itself (see
:class:`~mmdyn.ops._base.DynamicConvBase`): class attributes
``has_kernel_bank``, ``kernel_init`` and ``strategies``, a ``madds`` method
(closed-form MAdds, read by :func:`mmdyn.analysis.analytic_madds`) and, where
it has one, an ``attention`` method. The tests, the analysis code and the
registration in :mod:`mmdyn.models.layers` read ``LAYERS`` and these, so a
new layer is its own file plus its entry in ``LAYERS``.
"""
from .a2d2c_conv2d import (A2D2CConv2d, A2D2CPlusConv2d, a2d2c_attention, a2d2c_fast,
                           a2d2c_logits, a2d2c_reference, mean_input_patches,
                           sample_positions)
from .adaptive_enhancement import AdaptiveEnhancement
from .batched_conv import (MIX_STRATEGIES, STRATEGIES, batched_dynamic_conv2d, mix_kernels,
                           mixed_kernel_conv2d, select_strategy)
from .batched_conv import export_safe_path, is_exporting
from .cond_conv2d import CondConv2d
from .dcd_conv2d import DCDConv2d
from .dynamic_conv2d import DynamicConv2d
from .dynamic_mask_conv2d import DynamicMaskConv2d, dynamic_mask_conv2d
from .multi_scale_fusion import MultiScaleFeatureFusion
from .odconv2d import ODConv2d

#: Public layer classes with the short alias each is registered under.
LAYERS = {
    'A2D2C': A2D2CConv2d,
    'A2D2CPlus': A2D2CPlusConv2d,
    'ODConv': ODConv2d,
    'DyConv': DynamicConv2d,
    'CondConv': CondConv2d,
    'DCD': DCDConv2d,
}

#: Modules of the dynamic-mask-convolution family (alias -> class). Kept apart
#: from ``LAYERS`` (the K-kernel family that the sweeps iterate over).
MODULES = {
    'DMC': DynamicMaskConv2d,
    'AdaptiveEnhancement': AdaptiveEnhancement,
    'MSFF': MultiScaleFeatureFusion,
}

__all__ = [
    'A2D2CConv2d', 'A2D2CPlusConv2d', 'ODConv2d', 'DynamicConv2d', 'CondConv2d', 'DCDConv2d',
    'LAYERS', 'batched_dynamic_conv2d', 'mixed_kernel_conv2d', 'mix_kernels', 'select_strategy',
    'STRATEGIES', 'MIX_STRATEGIES', 'sample_positions',
    'mean_input_patches', 'a2d2c_logits', 'a2d2c_attention', 'a2d2c_fast', 'a2d2c_reference',
    'DynamicMaskConv2d', 'AdaptiveEnhancement', 'MultiScaleFeatureFusion', 'MODULES',
    'dynamic_mask_conv2d', 'export_safe_path', 'is_exporting'
]
