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
registration in :mod:`mmdyn.models.layers` read ``LAYERS`` and these. A layer
registers itself with ``@register_layer(alias)`` (:mod:`mmdyn.ops.registry`) and
every module of this package is imported here, so a new layer is one new file
(docs/architecture.md).
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
from .kernel_warehouse import KernelWarehouse
from .kw_conv2d import KWConv2d, KWLinear
from .multi_scale_fusion import MultiScaleFeatureFusion
from .odconv2d import ODConv2d

from .registry import LAYERS, MODULES, create_conv2d, register_layer


def _import_every_module() -> None:
    """Import each module of this package, so that a layer file added to
    ``mmdyn/ops/`` registers itself (``@register_layer``) with no other edit."""
    import importlib
    import pkgutil
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f'{__name__}.{info.name}')


_import_every_module()
#: Every registered class is importable from ``mmdyn.ops`` under its class name.
globals().update({cls.__name__: cls for cls in (*LAYERS.values(), *MODULES.values())})

__all__ = [
    'LAYERS', 'batched_dynamic_conv2d', 'mixed_kernel_conv2d', 'mix_kernels', 'select_strategy',
    'STRATEGIES', 'MIX_STRATEGIES', 'sample_positions',
    'mean_input_patches', 'a2d2c_logits', 'a2d2c_attention', 'a2d2c_fast', 'a2d2c_reference',
    'MODULES', 'KernelWarehouse', 'KWLinear',
    'dynamic_mask_conv2d', 'export_safe_path', 'is_exporting', 'register_layer', 'create_conv2d',
    *sorted({cls.__name__ for cls in (*LAYERS.values(), *MODULES.values())})
]
