"""The layer registry of :mod:`mmdyn.ops` (pure PyTorch) and a ``create_conv2d``
factory.

A layer registers itself where it is defined::

    @register_layer('ODConv')
    class ODConv2d(TemperatureMixin, DynamicConvBase):
        ...

``mmdyn.ops`` imports every module of the package, so a new file in
``mmdyn/ops/`` is registered, exported from ``mmdyn.ops`` under its class name,
registered in MMEngine's root ``MODELS`` registry under its alias and class
name (:mod:`mmdyn.models.layers`), and swept by the tests that iterate over
``LAYERS``, without any other edit (docs/architecture.md).
"""
from typing import Callable, Dict, Optional

import torch.nn as nn

__all__ = ['LAYERS', 'MODULES', 'register_layer', 'create_conv2d']

#: K-kernel dynamic convolutions (alias -> class): drop-ins for ``nn.Conv2d``
#: that the layer sweeps, the backbones' ``dyn_conv`` and the benchmarks iterate over.
LAYERS: Dict[str, type] = {}

#: The dynamic-mask-convolution family and the multi-scale fusion (alias ->
#: class): ``DMC`` (a conv) and the shape-preserving plugin modules.
MODULES: Dict[str, type] = {}

_FAMILIES = {'layer': LAYERS, 'module': MODULES}


def register_layer(alias: str, family: str = 'layer') -> Callable[[type], type]:
    """Class decorator: register ``cls`` under ``alias``.

    Args:
        alias: Short name used in configs (``dyn_conv=dict(type=alias)``).
        family: ``'layer'`` (:data:`LAYERS`, default) or ``'module'``
            (:data:`MODULES`).

    Raises:
        ValueError: Unknown ``family``.
        KeyError: ``alias`` or the class name is already taken by another class.
    """
    if family not in _FAMILIES:
        raise ValueError(f'unknown layer family {family!r}; expected one of {list(_FAMILIES)}')

    def decorator(cls: type) -> type:
        for table in _FAMILIES.values():
            for name, other in table.items():
                if other is not cls and (name == alias or other.__name__ == cls.__name__):
                    raise KeyError(f'cannot register {cls.__name__} as {alias!r}: '
                                   f'{other.__name__} is registered as {name!r}')
        _FAMILIES[family][alias] = cls
        return cls
    return decorator


def create_conv2d(layer_type: Optional[str], in_channels: int, out_channels: int,
                  kernel_size, **kwargs) -> nn.Module:
    """Build a convolution by name: ``None``/``'Conv2d'`` gives ``nn.Conv2d``,
    otherwise the :data:`LAYERS` or :data:`MODULES` entry whose alias or class
    name is ``layer_type``; ``kwargs`` go to the constructor.

    Raises:
        KeyError: Unknown ``layer_type`` (the message lists the known names).
    """
    if layer_type in (None, 'Conv2d'):
        return nn.Conv2d(in_channels, out_channels, kernel_size, **kwargs)
    for table in _FAMILIES.values():
        for alias, cls in table.items():
            if layer_type in (alias, cls.__name__):
                return cls(in_channels, out_channels, kernel_size, **kwargs)
    known = [n for t in _FAMILIES.values() for a, c in t.items() for n in (a, c.__name__)]
    raise KeyError(f'unknown convolution type {layer_type!r}; known: Conv2d, {", ".join(known)}')
