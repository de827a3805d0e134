"""Sweep over every config under ``configs/`` (found by globbing; ``_base_/`` and
``demo/`` excluded: the demo configs have their own tests).

For each config: ``Config.fromfile`` loads it (``pretrained`` left None, so
nothing is read or downloaded), its model is built in the config's
``default_scope``, the layer named in the file name is the one injected into
the backbone (``static``: no mmdyn layer), the TemperatureAnnealHook is present
exactly for the layers that have a temperature (KernelWarehouse: its own τ
schedule 1 -> 0; the ImageNet KW models have the official code's parameter
counts, ``_configs.KW_OFFICIAL_PARAMS``), and the model runs a forward
in eval mode and a training forward + backward on a tiny input (classifiers:
batch 2 at 64x64, CIFAR 32x32; detectors: one 128x128 image with one box and
mask from ``mmdet.testing.demo_mm_inputs``).
"""
import re
import time
from pathlib import Path

import pytest
import torch
from _configs import KW_OFFICIAL_PARAMS, config

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / 'configs'
EXACT_PATH = 'configs/mask_rcnn_r50_a2d2c_coco.py'

CONFIGS = sorted(
    p.relative_to(ROOT).as_posix() for p in CONFIG_DIR.rglob('*.py')
    if not {'_base_', 'demo'} & set(p.relative_to(CONFIG_DIR).parts[:-1]))

# file-name token -> mmdyn layer class name; order matters ('a2d2c-plus' first).
LAYER_TOKENS = (('a2d2c-plus', 'A2D2CPlusConv2d'), ('a2d2c', 'A2D2CConv2d'),
                ('odconv', 'ODConv2d'), ('dyconv', 'DynamicConv2d'),
                ('condconv', 'CondConv2d'), ('dcd', 'DCDConv2d'), ('dmc', 'DynamicMaskConv2d'),
                ('kw', 'KWConv2d'), ('static', None))
# Data roots of the classification datasets (nothing is downloaded).
DATA_ROOTS = {'CIFAR10': 'data/cifar10', 'CIFAR100': 'data/cifar100', 'ImageNet': 'data/imagenet',
              'SVHN': 'data/svhn', 'GTSRB': 'data/gtsrb', 'Imagenette': 'data/imagenette2',
              'Imagewoof': 'data/imagewoof2'}
SMALL_INPUTS = ('cifar', 'svhn', 'gtsrb')  # 32x32 datasets
WITH_TEMPERATURE = {'A2D2CPlusConv2d', 'A2D2CConv2d', 'ODConv2d', 'DynamicConv2d'}
#: KernelWarehouse ratio in a file name (``resnet18-kw-0.25x_...``).
KW_RATIO = re.compile(r'-kw-(\d+(?:\.\d+)?)x[-_]')


def kw_anneal_epochs(rel):
    """Epochs of the KW τ schedule: the official 20 (ResNets) / 15 (MobileNetV2) on
    ImageNet, 10 of the 100 CIFAR epochs, the first epoch of the COCO 1x."""
    return 1 if 'coco' in rel else 10 if 'cifar' in rel else 15 if 'mobilenet' in rel else 20


def four_kernels(rel, layer):
    """Whether the name says K = 4 kernels (every ``-4x`` but KernelWarehouse's,
    whose ``4x`` is a cell ratio)."""
    return layer != 'KWConv2d' and ('-4x' in Path(rel).stem or rel == EXACT_PATH)


def expected_layer(rel):
    if rel == EXACT_PATH:
        return 'A2D2CPlusConv2d'
    name = Path(rel).stem
    for token, cls in LAYER_TOKENS:
        if re.search(rf'(^|[-_]){re.escape(token)}([-_]|$)', name):
            return cls
    raise AssertionError(f'{rel}: no layer token ({[t for t, _ in LAYER_TOKENS]}) in the name')


@pytest.fixture(scope='module', autouse=True)
def _setup():
    import mmdyn.models  # noqa: F401  (layers, backbones, hooks)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_configs_found():
    assert EXACT_PATH in CONFIGS
    assert len(CONFIGS) >= 60, CONFIGS
    for rel in CONFIGS:
        assert not rel.startswith(('configs/_base_/', 'configs/demo/'))


def test_exact_path_is_a2d2c_plus_4x():
    cfg = config(EXACT_PATH)
    assert cfg.pretrained is None
    bb = cfg.model.backbone
    assert bb.type == 'DynResNet' and bb.depth == 50
    assert bb.dyn_conv.type == 'A2D2CPlus' and bb.dyn_conv.kernel_num == 4
    assert cfg.model.type == 'MaskRCNN'
    assert bb.init_cfg is None  # nothing downloads without `pretrained`
    assert cfg.train_dataloader.dataset.data_root == 'data/coco/'
    assert cfg.train_cfg.max_epochs == 12


#: Every file with a `pretrained` line: the model bases and the paper's detector.
PRETRAINED_FILES = sorted(
    p.relative_to(ROOT).as_posix() for p in CONFIG_DIR.rglob('*.py')
    if '\npretrained = None\n' in p.read_text())


def test_pretrained_files_found():
    assert EXACT_PATH in PRETRAINED_FILES
    assert 'configs/_base_/models/resnet18.py' in PRETRAINED_FILES
    assert 'configs/_base_/models/mask-rcnn_r50_fpn.py' in PRETRAINED_FILES


@pytest.mark.parametrize('rel', PRETRAINED_FILES)
def test_pretrained_line(tmp_path, rel):
    """Setting `pretrained` in the file gives a Pretrained init_cfg (and, for the
    detector, mmdet's frozen_stages=1 / norm_eval=True); nothing is loaded here."""
    from mmengine.config import Config
    text = (ROOT / rel).read_text()
    assert text.count('\npretrained = None\n') == 1
    text = text.replace('\npretrained = None\n', "\npretrained = '/ckpt/r.pth'\n")
    # relative bases: make them absolute for the copy in tmp_path
    text = re.sub(r"'(\.\.?/[^']*\.py)'",
                  lambda m: repr(str((ROOT / rel).parent / m.group(1))), text)
    path = tmp_path / Path(rel).name
    path.write_text(text)
    cfg = Config.fromfile(str(path))
    bb = cfg.model.backbone
    assert bb.init_cfg.type == 'Pretrained' and bb.init_cfg.checkpoint == '/ckpt/r.pth'
    if cfg.model.type != 'ImageClassifier':  # the detectors
        assert bb.frozen_stages == 1 and bb.norm_eval is True


def _build(cfg):
    from mmengine.registry import init_default_scope
    scope = cfg.get('default_scope', 'mmdet')
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    return scope, MODELS.build(cfg.model)


def _mmdyn_layers(model):
    from mmdyn.ops import LAYERS, MODULES
    classes = tuple(LAYERS.values()) + (MODULES['DMC'], )
    return [(n, m) for n, m in model.named_modules() if isinstance(m, classes)]


def _check_static(cfg, rel):
    """Everything that needs no model: imports, hook, names, no download."""
    imports = cfg.get('custom_imports', {}).get('imports', [])
    assert 'mmdyn.models' in imports and cfg.custom_imports.allow_failed_imports is False
    assert cfg.get('pretrained', None) is None, rel
    init_cfg = cfg.model.backbone.get('init_cfg')
    init_cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
    assert all(c is None or c.get('type') != 'Pretrained' for c in init_cfgs), \
        f'{rel}: no Pretrained init_cfg without `pretrained` (nothing may download)'
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        ds = cfg[key].dataset
        assert ds.get('download', None) is not True, f'{rel}: {key} would download'
        if ds.type in ('CIFAR10', 'CIFAR100'):
            assert ds.download is False
        if ds.type in DATA_ROOTS:
            assert ds.data_root.rstrip('/') == DATA_ROOTS[ds.type], rel
        else:
            assert ds.type == 'CocoDataset' and ds.data_root == 'data/coco/'
    layer = expected_layer(rel)
    hooks = [h for h in cfg.get('custom_hooks', []) if h.get('type') == 'TemperatureAnnealHook']
    if layer == 'KWConv2d':
        assert len(hooks) == 1, f'{rel}: needs one TemperatureAnnealHook'
        schedule = hooks[0].layer_schedules.KW
        assert (schedule.start_temperature, schedule.end_temperature) == (1.0, 0.0)
        assert schedule.anneal_epochs == kw_anneal_epochs(rel)
        _check_kw_ratio(cfg.model.backbone.dyn_conv, rel)
    elif layer in WITH_TEMPERATURE:
        assert len(hooks) == 1, f'{rel}: needs one TemperatureAnnealHook'
        hook = hooks[0]
        assert hook.start_temperature == 30.0 and hook.end_temperature == 1.0
        if cfg.get('default_scope') == 'mmpretrain':
            assert hook.anneal_epochs == 10
    else:
        assert not hooks, f'{rel}: {layer} has no temperature, the hook must be absent'
    if four_kernels(rel, layer):
        assert cfg.model.backbone.dyn_conv.kernel_num == 4
    return layer


def _check_kw_ratio(dyn_conv, rel):
    """The ``kw-<n>x`` of the name is the cell ratio of the warehouses: of all
    (``cell_num_ratio``), or of those overridden (MobileNetV2 1/2x: the last
    stage's pw warehouses; the rest is static or 1x)."""
    ratio = float(KW_RATIO.search(Path(rel).name).group(1))
    overrides = dyn_conv.get('warehouse_overrides')
    ratios = {o['cell_num_ratio'] for o in overrides.values()} if overrides else \
        {dyn_conv.get('cell_num_ratio', 1.0)}
    assert ratios == {ratio}, f'{rel}: KW {ratio}x but cell_num_ratio {ratios}'


def _classifier_step(model, cfg, rel):
    from mmpretrain.structures import DataSample
    size = 32 if any(t in rel for t in SMALL_INPUTS) else 64
    classes = cfg.model.head.num_classes
    x = torch.randn(2, 3, size, size)
    model.eval()
    with torch.no_grad():
        feats = model(x, mode='tensor')
    assert feats.shape == (2, classes)
    model.train()
    samples = [DataSample().set_gt_label(i % classes) for i in range(2)]
    losses = model(x, samples, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()


def _detector_step(model, cfg, rel):
    from mmdet.testing import demo_mm_inputs
    packed = demo_mm_inputs(batch_size=1, image_shapes=[(3, 128, 128)], num_items=[1],
                            num_classes=cfg.model.roi_head.bbox_head.num_classes,
                            with_mask=True)
    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(packed, False)
        results = model(**data, mode='predict')
    assert len(results) == 1 and 'pred_instances' in results[0]
    model.train()
    data = model.data_preprocessor(packed, True)
    losses = model(**data, mode='loss')
    assert 'loss_mask' in losses
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()


def _params(rel):
    return pytest.param(rel, id=rel)


@pytest.mark.parametrize('rel', [_params(r) for r in CONFIGS])
def test_config(rel):
    t0 = time.perf_counter()
    cfg = config(rel)
    layer = _check_static(cfg, rel)
    scope, model = _build(cfg)
    if Path(rel).stem in KW_OFFICIAL_PARAMS:
        assert sum(p.numel() for p in model.parameters()) == KW_OFFICIAL_PARAMS[Path(rel).stem]
    found = _mmdyn_layers(model)
    if layer is None:
        assert not found, f'{rel}: static config has mmdyn layers {found[:3]}'
    else:
        assert found, f'{rel}: no {layer} in the model'
        wrong = {type(m).__name__ for _, m in found} - {layer}
        assert not wrong, f'{rel}: expected only {layer}, found {wrong}'
        # the KW classifier of MobileNetV2 KW 1/2x is the one layer outside the backbone
        outside = ('head.fc.', ) if cfg.model.get('head', {}).get('type') == 'KWLinearClsHead' \
            else ()
        assert all(n.startswith(('backbone.', ) + outside) for n, _ in found)
        if four_kernels(rel, layer):
            assert all(m.kernel_num == 4 for _, m in found)
        if layer == 'KWConv2d':  # one backbone-level warehouse for all its KW layers
            assert all(m.kernel_warehouse is model.backbone.kw_warehouse
                       for n, m in found if n.startswith('backbone.'))
    if scope == 'mmdet':
        _detector_step(model, cfg, rel)
    else:
        _classifier_step(model, cfg, rel)
    if layer is not None:
        grads = [m for _, m in found if any(p.grad is not None for p in m.parameters())]
        assert grads, f'{rel}: no gradient reached the {layer} layers'
    print(f'{rel}: {time.perf_counter() - t0:.1f}s')


def test_seed_000_gtsrb_system():
    """ODConv + the multi-scale fusion neck + the adaptive loss, counts from the data."""
    cfg = config('configs/msff/resnet18-odconv-4x-msff-adaptive-loss_8xb16_gtsrb.py')
    assert cfg.model.backbone.dyn_conv.type == 'ODConv'
    assert cfg.model.neck.type == 'MultiScaleFusionNeck' and cfg.model.neck.fusion == 'sum'
    assert tuple(cfg.model.neck.kernel_sizes) == (1, 3, 5, 7)
    loss = cfg.model.head.loss
    assert (loss.type, loss.alpha, loss.gamma, loss.balance_factor) == \
        ('AdaptiveLoss', 0.25, 2.0, 0.999)
    assert cfg.model.head.num_classes == 43
    assert 'ClassCountsHook' in [h.type for h in cfg.custom_hooks]
    splits = [cfg[f'{s}_dataloader'].dataset.split for s in ('train', 'val', 'test')]
    assert splits == ['train', 'val', 'test']


@pytest.mark.parametrize('name, dataset, classes, backbone', [
    ('dmc-resnet18_8xb16_cifar10', 'CIFAR10', 10, 'DMCResNetCIFAR'),
    ('dmc-resnet18_8xb16_cifar100', 'CIFAR100', 100, 'DMCResNetCIFAR'),
    ('dmc-resnet18_8xb16_svhn', 'SVHN', 10, 'DMCResNetCIFAR'),
    ('dmc-resnet18_8xb32_imagenette', 'Imagenette', 10, 'DMCResNet'),
    ('dmc-resnet18_8xb32_imagewoof', 'Imagewoof', 10, 'DMCResNet'),
])
def test_seed_001_configs(name, dataset, classes, backbone):
    cfg = config(f'configs/dmc/{name}.py')
    assert cfg.model.backbone.type == backbone
    assert cfg.model.backbone.enhance.type == 'AdaptiveEnhancement'
    assert cfg.model.head.num_classes == classes == cfg.data_preprocessor.num_classes
    for split in ('train', 'val', 'test'):
        assert cfg[f'{split}_dataloader'].dataset.type == dataset
