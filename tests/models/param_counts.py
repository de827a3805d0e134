"""Parameter counts of the dynamic backbones as ImageNet/CIFAR classifiers.

Run ``python tests/models/param_counts.py`` to print the markdown table used in
``docs/backbones.md``; ``test_param_counts.py`` asserts the same numbers.

Count = backbone parameters + a linear classifier ``in_features * classes +
classes`` (GAP has no parameters), i.e. what mmpretrain's ``ImageClassifier``
(backbone + ``GlobalAveragePooling`` + ``LinearClsHead``) holds.
The ``paper`` column cites the A2D2C paper (Zhang et al., Pattern Recognition
2026, Tables 3-5, 8; docs/references.md), the ``official`` column the official
ODConv code (OSVAI/ODConv) counted. """
import mmdyn.models  # noqa: F401

#: (label, backbone config, classifier in_features, classes)
ARCHS = {
    'ResNet-18': (dict(type='DynResNet', depth=18), 512, 1000),
    'ResNet-50': (dict(type='DynResNet', depth=50), 2048, 1000),
    'MobileNetV2 1.0': (dict(type='DynMobileNetV2', widen_factor=1.0), 1280, 1000),
    'MobileNetV2 0.75': (dict(type='DynMobileNetV2', widen_factor=0.75), 1280, 1000),
    'MobileNetV2 0.5': (dict(type='DynMobileNetV2', widen_factor=0.5), 1280, 1000),
    'ResNet-18 CIFAR-100': (dict(type='DynResNetCIFAR', depth=18), 512, 100),
}
STATIC = {'ResNet-18': 'ResNet', 'ResNet-50': 'ResNet', 'ResNet-18 CIFAR-100': 'ResNet_CIFAR'}

#: (arch, variant label, dyn_conv or None for static, extra options, paper, official ODConv)
ROWS = [
    ('ResNet-18', 'static', None, {}, None, 11.69),
    ('ResNet-18', 'ODConv 1x', dict(type='ODConv', kernel_num=1), {}, None, 11.94),
    ('ResNet-18', 'ODConv 4x', dict(type='ODConv', kernel_num=4), {}, None, 44.90),
    ('ResNet-18', 'A2D2C 4x', dict(type='A2D2C', kernel_num=4), {}, 44.93, None),
    ('ResNet-18', 'A2D2C+ 4x', dict(type='A2D2CPlus', kernel_num=4), {}, 44.93, None),
    ('ResNet-18', 'A2D2C+ 4x initial', dict(type='A2D2CPlus', kernel_num=4),
     dict(dyn_placement='initial'), 11.72, None),
    ('ResNet-18', 'A2D2C+ 4x median', dict(type='A2D2CPlus', kernel_num=4),
     dict(dyn_placement='median'), 10.58, None),
    ('ResNet-18', 'A2D2C+ 4x terminal', dict(type='A2D2CPlus', kernel_num=4),
     dict(dyn_placement='terminal'), 12.74, None),
    ('ResNet-18', 'A2D2C+ 8x conv1 of every block', dict(type='A2D2CPlus', kernel_num=8),
     dict(dyn_convs=('conv1', )), 44.78, None),
    ('ResNet-18', 'DynamicConv 4x', dict(type='DyConv', kernel_num=4), {}, 45.47, None),
    ('ResNet-18', 'CondConv 4x', dict(type='CondConv', kernel_num=4), {}, 89.89, None),
    ('ResNet-18', 'CondConv 8x', dict(type='CondConv', kernel_num=8), {}, 89.89, None),
    ('ResNet-18', 'DCD', dict(type='DCD'), {}, 14.70, None),
    ('ResNet-50', 'static', None, {}, None, 25.56),
    ('ResNet-50', 'ODConv 1x', dict(type='ODConv', kernel_num=1), {}, None, 28.64),
    ('ResNet-50', 'ODConv 4x', dict(type='ODConv', kernel_num=4), {}, None, 90.67),
    ('ResNet-50', 'A2D2C 4x', dict(type='A2D2C', kernel_num=4), {}, 89.70, None),
    ('ResNet-50', 'A2D2C+ 4x', dict(type='A2D2CPlus', kernel_num=4), {}, 89.70, None),
    ('ResNet-50', 'A2D2C+ 8x conv1 of every block', dict(type='A2D2CPlus', kernel_num=8),
     dict(dyn_convs=('conv1', )), 55.95, None),
    ('ResNet-50', 'DCD', dict(type='DCD'), {}, 29.84, None),
    ('MobileNetV2 1.0', 'static', None, {}, None, 3.50),
    ('MobileNetV2 1.0', 'ODConv 1x', dict(type='ODConv', kernel_num=1), {}, None, 4.94),
    ('MobileNetV2 1.0', 'ODConv 4x', dict(type='ODConv', kernel_num=4), {}, None, 11.51),
    ('MobileNetV2 0.75', 'static', None, {}, None, 2.64),
    ('MobileNetV2 0.75', 'ODConv 1x', dict(type='ODConv', kernel_num=1), {}, None, 3.51),
    ('MobileNetV2 0.75', 'ODConv 4x', dict(type='ODConv', kernel_num=4), {}, None, 7.50),
    ('MobileNetV2 0.5', 'static', None, {}, None, 1.97),
    ('MobileNetV2 0.5', 'ODConv 1x', dict(type='ODConv', kernel_num=1), {}, None, 2.43),
    ('MobileNetV2 0.5', 'ODConv 4x', dict(type='ODConv', kernel_num=4), {}, None, 4.44),
    ('MobileNetV2 0.5', 'A2D2C 4x', dict(type='A2D2C', kernel_num=4), {}, 4.05, None),
    ('MobileNetV2 0.5', 'A2D2C+ 4x', dict(type='A2D2CPlus', kernel_num=4), {}, 4.05, None),
    ('ResNet-18 CIFAR-100', 'A2D2C+ 4x', dict(type='A2D2CPlus', kernel_num=4), {}, 43.93,
     None),
]


def count_params(arch: str, dyn_conv=None, **options) -> float:
    """Parameters (millions, unrounded) of ``arch`` as a classifier."""
    from mmpretrain.registry import MODELS
    cfg, in_features, classes = ARCHS[arch]
    cfg = dict(cfg, **options)
    if dyn_conv is None:          # the static parent class
        cfg['type'] = STATIC.get(arch, 'MobileNetV2')
    else:
        cfg['dyn_conv'] = dyn_conv
    model = MODELS.build(cfg)
    n = sum(p.numel() for p in model.parameters())
    return (n + in_features * classes + classes) / 1e6


def table() -> str:
    lines = ['| model | variant | ours (M) | A2D2C paper (M) | official ODConv (M) |',
             '|---|---|---|---|---|']
    for arch, label, dyn, opts, paper, official in ROWS:
        ours = count_params(arch, dyn, **opts)
        fmt = lambda v: '' if v is None else f'{v:.2f}'  # noqa: E731
        gap = '' if paper is None else f' ({(ours - paper) / paper * 100:+.1f}%)'
        lines.append(f'| {arch} | {label} | {ours:.2f} | {fmt(paper)}{gap} | {fmt(official)} |')
    return '\n'.join(lines)


if __name__ == '__main__':
    import torch
    torch.set_num_threads(1)
    print(table())
