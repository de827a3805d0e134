"""Register the mmdyn layers in MMEngine's root ``MODELS`` registry.

A layer in the root registry is found by ``mmcv.cnn.build_conv_layer`` under
every default scope (``mmdet``, ``mmpretrain``, ...), so one class serves both
frameworks. Each layer is registered under its class name and a short alias:

=============  ===================
alias          class
=============  ===================
``A2D2C``      ``A2D2CConv2d``
``A2D2CPlus``  ``A2D2CPlusConv2d``
``ODConv``     ``ODConv2d``
``DyConv``     ``DynamicConv2d``
``CondConv``   ``CondConv2d``
``DCD``        ``DCDConv2d``
``KW``         ``KWConv2d``
=============  ===================

and the dynamic-mask-convolution family (``mmdyn.ops.MODULES``):

=======================  ===========================  =========================
alias                    class                        built with
=======================  ===========================  =========================
``DMC``                  ``DynamicMaskConv2d``        ``build_conv_layer``
``AdaptiveEnhancement``  ``AdaptiveEnhancement``      ``build_plugin_layer``
``MSFF``                 ``MultiScaleFeatureFusion``  ``build_plugin_layer``
=======================  ===========================  =========================

``build_plugin_layer(dict(type='MultiScaleFeatureFusion'), '_1', in_channels=64)``
(what mmdet's ResNet ``plugins`` do) finds them in the root registry too.

Name clash: mmdet registers its own ``DynamicConv`` (Sparse R-CNN's dynamic
interaction head) in ``mmdet.registry.MODELS``; under the ``mmdet`` scope it
shadows a root ``DynamicConv``. That is why mmdyn's alias is ``DyConv`` and the
class name is ``DynamicConv2d``; neither clashes.
"""
from typing import Any

from mmengine.registry import MODELS

from mmdyn.ops import LAYERS, MODULES

#: Every name of the K-kernel conv layers (``mmdyn.ops.LAYERS``), alias first.
LAYER_NAMES = tuple(n for alias, cls in LAYERS.items() for n in (alias, cls.__name__))
#: Every name of ``mmdyn.ops.MODULES`` (alias first; an alias equal to its class
#: name appears once).
MODULE_NAMES = tuple(dict.fromkeys(n for alias, cls in MODULES.items()
                                   for n in (alias, cls.__name__)))
#: The names of ``MODULES`` that are convolutions (``build_conv_layer``).
CONV_MODULE_NAMES = ('DMC', MODULES['DMC'].__name__)


def _register(name: str, cls: type) -> None:
    existing = MODELS.module_dict.get(name)
    if existing is cls:
        return
    if existing is not None:
        raise KeyError(f'cannot register mmdyn layer {cls.__name__} as {name!r}: the root '
                       f'MODELS registry already maps it to {existing!r}')
    MODELS.register_module(name=name, module=cls)


for _alias, _cls in (*LAYERS.items(), *MODULES.items()):
    _register(_cls.__name__, _cls)
    _register(_alias, _cls)


def build_dyn_conv_layer(cfg: dict, *args: Any, **kwargs: Any):
    """Build a convolution from ``cfg`` like ``mmcv.cnn.build_conv_layer``, but
    with an error that lists the mmdyn layers when the type is unknown.

    ``cfg=None`` builds a static ``nn.Conv2d`` (mmcv's ``Conv2d``).

    Raises:
        KeyError: ``cfg['type']`` is not a registered convolution; the message
            lists the mmdyn layer names.
        TypeError: ``cfg`` is not a dict with a ``type`` key.
    """
    from mmcv.cnn import build_conv_layer
    if cfg is None:
        return build_conv_layer(None, *args, **kwargs)
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(f'a conv layer config must be a dict with a "type" key, got {cfg!r}')
    layer_type = cfg['type']
    if isinstance(layer_type, str):
        with MODELS.switch_scope_and_registry(None) as registry:
            found = registry.get(layer_type)
        if found is None:
            raise KeyError(
                f'unknown conv layer type {layer_type!r} (scope {registry.scope!r}); mmdyn '
                f'layers are {", ".join(LAYER_NAMES + CONV_MODULE_NAMES)}; static convs are '
                f'Conv2d/Conv, and mmcv also provides DCN/DCNv2/ConvWS/ConvAWS. Did you add '
                f"custom_imports=dict(imports=['mmdyn.models'])?")
    return build_conv_layer(cfg, *args, **kwargs)
