"""The published figures mmdyn's configs are compared with, and which config is which row.

:data:`PAPER_FIGURES` holds the parameter and MAdds counts of the A2D2C paper
(T. Zhang et al., "A2D2C: Adaptive attention-driven dynamic convolution for local
feature adaptation", Pattern Recognition 180, 2026), of the official ODConv
code (C. Li, A. Zhou, A. Yao, "Omni-Dimensional Dynamic Convolution", ICLR 2022)
and the parameters and accuracies of the official KernelWarehouse README
(C. Li, A. Yao, "KernelWarehouse: Rethinking the Design of Dynamic Convolution",
ICML 2024; ``top1`` on ImageNet, ``box_ap``/``mask_ap`` on COCO), keyed by
``(model, layer, dataset)``; :func:`match_paper_row` finds the row a config file
name refers to. :data:`PAPER_ACCURACY` holds the accuracies that the sources of
the other systems report (the DMC paper's abstract, the MSFF blog post;
docs/references.md), keyed by config file stem.
``tools/analysis_tools/get_flops.py`` and ``tools/analysis_tools/model_zoo.py``
print them beside our counts (docs/model_zoo.md).
"""
import re
from typing import Any, Dict, Optional, Tuple

__all__ = ['PAPER_FIGURES', 'PAPER_ACCURACY', 'match_paper_row', 'reference_accuracy']

#: Published figures to print beside ours: ``params`` in millions, ``madds`` in
#: GMAdds (224x224 ImageNet / as reported), ``top1`` / ``box_ap`` / ``mask_ap`` in %;
#: ``source`` tells where each is from.
PAPER_FIGURES: Dict[Tuple[str, str, str], Dict[str, Any]] = {
    # static baselines (official ODConv code, counted)
    ('resnet18', 'static', 'imagenet'): dict(params=11.69, source='ODConv code'),
    ('resnet50', 'static', 'imagenet'): dict(params=25.56, source='ODConv code'),
    ('mobilenetv2_1.0', 'static', 'imagenet'): dict(params=3.50, source='ODConv code'),
    ('mobilenetv2_0.75', 'static', 'imagenet'): dict(params=2.64, source='ODConv code'),
    ('mobilenetv2_0.5', 'static', 'imagenet'): dict(params=1.97, source='ODConv code'),
    # A2D2C paper
    ('resnet18', 'a2d2c', 'imagenet'): dict(params=44.93, madds=1.926, source='A2D2C paper'),
    ('resnet18', 'a2d2cplus', 'imagenet'): dict(params=44.93, madds=1.934,
                                                source='A2D2C paper'),
    ('resnet50', 'a2d2c', 'imagenet'): dict(params=89.70, madds=4.083, source='A2D2C paper'),
    ('resnet50', 'a2d2cplus', 'imagenet'): dict(params=89.70, madds=4.095,
                                                source='A2D2C paper'),
    ('mobilenetv2_0.5', 'a2d2c', 'imagenet'): dict(params=4.05, source='A2D2C paper'),
    ('mobilenetv2_0.5', 'a2d2cplus', 'imagenet'): dict(params=4.05, source='A2D2C paper'),
    ('resnet18', 'a2d2c', 'cifar'): dict(params=43.93, source='A2D2C paper'),
    ('resnet18', 'a2d2cplus', 'cifar'): dict(params=43.93, source='A2D2C paper'),
    ('resnet18', 'dcd', 'imagenet'): dict(params=14.70, source='A2D2C paper'),
    ('resnet50', 'dcd', 'imagenet'): dict(params=29.84, source='A2D2C paper'),
    ('resnet18', 'dyconv', 'imagenet'): dict(params=45.47, source='A2D2C paper'),
    ('resnet18', 'condconv', 'imagenet'): dict(params=89.89, source='A2D2C paper'),
    ('resnet18', 'condconv', 'cifar'): dict(params=81.35, source='A2D2C paper'),
    # ODConv 4x (official code, counted)
    ('resnet18', 'odconv', 'imagenet'): dict(params=44.90, source='ODConv code (4x)'),
    ('resnet50', 'odconv', 'imagenet'): dict(params=90.67, source='ODConv code (4x)'),
    ('mobilenetv2_1.0', 'odconv', 'imagenet'): dict(params=11.51, source='ODConv code (4x)'),
    ('mobilenetv2_0.75', 'odconv', 'imagenet'): dict(params=7.50, source='ODConv code (4x)'),
    ('mobilenetv2_0.5', 'odconv', 'imagenet'): dict(params=4.44, source='ODConv code (4x)'),
    # COCO (A2D2C paper, Table 7)
    ('mask-rcnn_r50_fpn', 'static', 'coco'): dict(params=46.45, source='A2D2C paper'),
    ('mask-rcnn_r50_fpn', 'a2d2cplus', 'coco'): dict(params=110.24, source='A2D2C paper'),
    # KernelWarehouse (official README; ImageNet: ResNets 300 epochs, MobileNetV2 150).
    # The released code with its kw1d4x_resnet18 config counts 4.03M for ResNet-18 1/4x,
    # as ours does (configs/kernel_warehouse/README.md).
    **{(model, f'kw-{ratio}x', 'imagenet'): dict(params=params, top1=top1, source='KW README')
       for model, ratio, params, top1 in (
           ('resnet18', '0.25', 4.08, 72.73), ('resnet18', '0.5', 7.43, 73.33),
           ('resnet18', '1', 11.93, 74.77), ('resnet18', '2', 23.24, 75.19),
           ('resnet18', '4', 45.86, 76.05), ('resnet50', '0.5', 17.64, 79.30),
           ('resnet50', '1', 28.05, 80.38), ('resnet50', '4', 102.02, 81.05),
           ('mobilenetv2_1.0', '0.5', 2.65, 72.59), ('mobilenetv2_1.0', '1', 5.17, 74.68),
           ('mobilenetv2_1.0', '4', 11.38, 75.92), ('mobilenetv2_0.5', '0.5', 1.47, 65.20),
           ('mobilenetv2_0.5', '1', 2.85, 68.29), ('mobilenetv2_0.5', '4', 4.65, 70.26))},
    # COCO Mask R-CNN 1x (official detection/README; no parameter count given)
    ('mask-rcnn_r50_fpn', 'kw-1x', 'coco'): dict(box_ap=41.8, mask_ap=38.4, source='KW README'),
    ('mask-rcnn_r50_fpn', 'kw-4x', 'coco'): dict(box_ap=42.4, mask_ap=38.9, source='KW README'),
}

#: Published top-1 accuracies (%) of the other systems, by config file stem, with
#: their source (the DMC paper gives test accuracies, the MSFF blog a validation one).
PAPER_ACCURACY: Dict[str, Tuple[float, str]] = {
    'dmc-resnet18_8xb16_cifar10': (96.85, 'DMC paper'),
    'dmc-resnet18_8xb16_cifar100': (82.39, 'DMC paper'),
    'dmc-resnet18_8xb16_svhn': (97.88, 'DMC paper'),
    'dmc-resnet18_8xb32_imagenette': (93.35, 'DMC paper'),
    'dmc-resnet18_8xb32_imagewoof': (85.93, 'DMC paper'),
    'resnet18-odconv-4x-msff-adaptive-loss_8xb16_gtsrb': (94.4, 'MSFF blog, val'),
}

#: Config names whose own words do not say their row: the fixed path of the
#: paper's detector (``configs/mask_rcnn_r50_a2d2c_coco.py``) is the A2D2C+ model.
_ALIASES = {'mask_rcnn_r50_a2d2c_coco.py': 'mask-rcnn_r50-a2d2c-plus-4x_fpn_1x_coco.py'}
#: Datasets of the other systems: no row of :data:`PAPER_FIGURES` is about them.
_OTHER_DATASETS = ('imagenette', 'imagewoof', 'svhn', 'gtsrb')
#: The KernelWarehouse token of a (lower-cased, ``_`` -> ``-``) name: ``kw``, then
#: optionally its ratio ``0.25x`` / ``1d4x`` (the official file names) / ``4x``.
_KW_TOKEN = re.compile(r'(?<![a-z\d])kw(?:-?(\d+(?:\.\d+)?(?:d\d+)?)x)?(?![a-z\d.])')


#: Accuracy fields of a row (%) and their labels, in print order.
_ACCURACY_LABELS = (('top1', 'top-1'), ('box_ap', 'box AP'), ('mask_ap', 'mask AP'))


def reference_accuracy(figures: Dict[str, Any]) -> str:
    """The accuracies of a row as text, e.g. ``'top-1 76.05%'`` or
    ``'box AP 41.8%, mask AP 38.4%'``; ``''`` when it has none."""
    return ', '.join(f'{label} {figures[key]:g}%' for key, label in _ACCURACY_LABELS
                     if key in figures)


def _kw_ratio(text: Optional[str]) -> str:
    """``'0.25'``, ``'1d4'`` -> ``'0.25'``; ``'1'``, ``'1.0'``, ``None`` -> ``'1'``."""
    if text is None:
        return '1'
    num, _, den = text.partition('d')
    return f'{float(num) / float(den or 1):g}'


def match_paper_row(name: str) -> Optional[Tuple[Tuple[str, str, str], Dict[str, Any]]]:
    """Find the paper row a config file name refers to.

    The name is matched on its parts: the model (``resnet18``/``r18``,
    ``resnet50``/``r50``, ``mobilenet-v2`` with a width ``0.5x``/``0.75x``,
    ``mask-rcnn`` + ``r50`` + ``fpn``), the layer (``a2d2c-plus``/``a2d2cplus``/
    ``a2d2c+``, ``a2d2c``, ``odconv``, ``dyconv``/``dynamicconv``,
    ``condconv``, ``dcd``, KernelWarehouse ``kw-<n>x`` with its ratio written
    ``0.25``/``1d4`` and so on (``kw`` alone is 1x), otherwise static) and the
    dataset (``cifar``, ``coco``, otherwise ImageNet; Imagenette, Imagewoof,
    SVHN and GTSRB have no row). The KW ratio is not a MobileNetV2 width:
    ``mobilenet-v2-w1.0-kw-0.5x`` is the x1.0 network with KW 1/2x.
    ``mask_rcnn_r50_a2d2c_coco.py`` is the A2D2C+ detector.

    Args:
        name: Config file name or path.

    Returns:
        ``(key, figures)`` from :data:`PAPER_FIGURES`, or ``None``.
    """
    base = name.rsplit('/', 1)[-1]
    n = _ALIASES.get(base, base).lower().replace('_', '-')
    if any(d in n for d in _OTHER_DATASETS):
        return None
    kw = _KW_TOKEN.search(n)
    if kw is not None:  # cut out, so that its ratio is not read as a width
        n = n[:kw.start()] + n[kw.end():]
    if 'mask-rcnn' in n or 'maskrcnn' in n:
        if not re.search(r'r(esnet)?-?50', n):
            return None
        model = 'mask-rcnn_r50_fpn'
    elif re.search(r'(resnet|r)-?18(?!\d)', n):
        model = 'resnet18'
    elif re.search(r'(resnet|r)-?50(?!\d)', n):
        model = 'resnet50'
    elif re.search(r'mobilenet-?v2|mbv2', n):
        width = (re.search(r'(?<![\d.])(0\.5|0\.75|1\.0|1)x', n)
                 or re.search(r'-w(0\.5|0\.75|1\.0|1)(?![\d.])', n))
        w = {'0.5': '0.5', '0.75': '0.75', '1': '1.0', '1.0': '1.0'}[width.group(1)] \
            if width else '1.0'
        model = f'mobilenetv2_{w}'
    else:
        return None
    if kw is not None:
        layer = f'kw-{_kw_ratio(kw.group(1))}x'
    elif re.search(r'a2d2c-?(plus|\+)', n):
        layer = 'a2d2cplus'
    elif 'a2d2c' in n:
        layer = 'a2d2c'
    elif 'odconv' in n:
        layer = 'odconv'
    elif 'dyconv' in n or 'dynamicconv' in n or 'dynamic-conv' in n:
        layer = 'dyconv'
    elif 'condconv' in n:
        layer = 'condconv'
    elif 'dcd' in n:
        layer = 'dcd'
    else:
        layer = 'static'
    dataset = 'cifar' if 'cifar' in n else 'coco' if 'coco' in n else 'imagenet'
    key = (model, layer, dataset)
    return (key, PAPER_FIGURES[key]) if key in PAPER_FIGURES else None
