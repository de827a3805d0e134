"""tools/deploy/export_onnx.py and mmdyn.deploy (issue 8, item 6): a tiny
DynResNet-18 (A2D2C+) and a tiny DynMobileNetV2 (ODConv) classifier, and the
backbone + neck of a tiny Mask R-CNN (DynResNet-18, A2D2C+), exported with a
dynamic batch axis and run by onnxruntime at batch 0 (issue 17), 1 and 3 against PyTorch
(random weights, BatchNorm statistics from random batches, low temperatures so
that the dynamic part of every layer matters; the fixture checks that each model
depends on its input and is well conditioned, float32 within 1e-5 of float64)."""
import importlib.util
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

onnx = pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(REPO, 'tools', 'deploy', 'export_onnx.py')

CLS_CONFIG = """
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)
data_preprocessor = dict(num_classes=3, mean=[127.5, 127.5, 127.5], std=[64.0, 64.0, 64.0],
                         to_rgb=True)
model = dict(
    type='ImageClassifier',
    backbone={backbone},
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=3, in_channels={channels},
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
"""
RESNET18 = ("dict(type='DynResNet', depth=18, num_stages=4, out_indices=(3, ), stem_channels=8, "
            "base_channels=8, dyn_placement='all_block_convs', dyn_conv=dict(type='A2D2CPlus', "
            "kernel_num=2, num_points=4, sampling='fixed', temperature=1.0))")
# ODConv's official head init gives large attention logits: at temperature 1 this
# random 52-layer network amplifies float32 round-off ~1000x (fp32 vs fp64 ~1e-4).
MOBILENET = ("dict(type='DynMobileNetV2', widen_factor=0.25, out_indices=(7, ), "
             "dyn_conv=dict(type='ODConv', kernel_num=2, temperature=4.0))")
DET_CONFIG = """
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)
width = 16
model = dict(
    backbone=dict(
        _delete_=True, type='DynResNet', depth=18, num_stages=4, out_indices=(0, 1, 2, 3),
        stem_channels=8, base_channels=8, frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True), norm_eval=False, style='pytorch',
        dyn_conv=dict(type='A2D2CPlus', kernel_num=2, temperature=1.0),
        dyn_placement='all_block_convs', init_cfg=None),
    neck=dict(in_channels=[8, 16, 32, 64], out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=dict(in_channels=width, fc_out_channels=32, num_classes=3),
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(num_convs=1, in_channels=width, conv_out_channels=width,
                       num_classes=3)))
"""
LINE = re.compile(r'onnxruntime vs PyTorch, batch (\d+): max abs diff (\S+), max relative '
                  r'diff (\S+) \((\S+)\)')
#: mmpretrain's GlobalAveragePooling flattens with view(B, -1): PyTorch itself cannot run
#: a classifier on an empty batch, and the tool says so instead of comparing batch 0.
CLASSIFIER_BATCH_0 = ('batch 0 not checked: PyTorch itself cannot run this model on an empty '
                      'batch')


def _tool():
    spec = importlib.util.spec_from_file_location('_tool_export_onnx', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkpoint(config, path, hw, seed=0):
    """Build the config's model, set its BatchNorm statistics from random batches
    (so that deep random networks do not collapse to a constant output; checked)
    and save it."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    import mmdyn.models  # noqa: F401
    cfg = Config.fromfile(config)
    scope = cfg.get('default_scope', 'mmdet')
    if cfg.get('data_preprocessor') is not None:
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    torch.manual_seed(seed)
    with DefaultScope.overwrite_default_scope(scope):
        if scope == 'mmpretrain':
            from mmpretrain.registry import MODELS
        else:
            from mmdet.registry import MODELS
        model = MODELS.build(cfg.model)
    forward = ((lambda x: model(x, mode='tensor')) if scope == 'mmpretrain' else
               (lambda x: model.extract_feat(x)[-1]))
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            forward(torch.randn(8, 3, 64, 64))
    model.eval()
    for m in model.modules():
        # The attention BatchNorm1d of ODConv normalises image-pooled vectors: over
        # random noise their variance is tiny and would amplify round-off (an
        # ill-conditioned model); keep them at (0, 1).
        if isinstance(m, torch.nn.BatchNorm1d):
            m.reset_running_stats()
    x = torch.randn(4, 3, *hw)
    with torch.no_grad():
        y = forward(x)
        model.double()
        y64 = forward(x.double())
    model.float()
    assert float(y.std(0).mean()) > 1e-3 * float(y.abs().mean()), 'output ignores the input'
    # well conditioned (float32 within 2e-5 of float64): a 1e-4 tolerance means something
    assert float((y.double() - y64).abs().max() / y64.abs().max()) < 2e-5
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return str(path)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp('export')
    out = {}
    for name, text, hw in (
            ('resnet18', CLS_CONFIG.format(backbone=RESNET18, channels=64), (32, 32)),
            ('mobilenet', CLS_CONFIG.format(backbone=MOBILENET, channels=1280), (32, 32)),
            ('maskrcnn', DET_CONFIG, (64, 128))):
        config = tmp / f'{name}.py'
        config.write_text(text)
        out[name] = (str(config), _checkpoint(str(config), tmp / f'{name}.pth', hw))
    out['tmp'] = tmp
    return out


def _diffs(text):
    found = {int(b): (float(a), float(r), name) for b, a, r, name in LINE.findall(text)}
    assert found, text
    return found


def _dynamic_batch(path):
    dim = onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0]
    return bool(dim.dim_param)


def test_resnet18_classifier_cli_dynamic_batch(files, tmp_path):
    """The command line (subprocess): exit 0, batch 1 and 3 within 1e-4."""
    config, ckpt = files['resnet18']
    out = tmp_path / 'sub' / 'resnet18.onnx'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, TOOL, config, ckpt, '--out', str(out),
                           '--dynamic-batch', '--shape', '32', '32'], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    diffs = _diffs(proc.stdout)
    assert set(diffs) == {1, 3}
    assert CLASSIFIER_BATCH_0 in proc.stdout
    assert all(rel <= 1e-4 for _, rel, _ in diffs.values()), diffs
    assert 'OK: within --rtol' in proc.stdout
    assert 'mean=[127.5, 127.5, 127.5]' in proc.stdout  # the preprocessing is stated
    assert out.is_file() and _dynamic_batch(str(out))
    assert not [f for f in os.listdir(out.parent) if f != out.name]  # no temporary left


@pytest.mark.parametrize('name,shape,outputs', [
    ('mobilenet', (32, 32), ['logits']),
    ('maskrcnn', (64, 128), [f'feat{i}' for i in range(5)]),
], ids=['DynMobileNetV2', 'MaskRCNN-backbone-neck'])
def test_export_dynamic_batch(files, tmp_path, capsys, name, shape, outputs):
    config, ckpt = files[name]
    out = str(tmp_path / f'{name}.onnx')
    assert _tool().main([config, ckpt, '--out', out, '--dynamic-batch', '--shape',
                         *map(str, shape)]) == 0
    text = capsys.readouterr().out
    diffs = _diffs(text)
    if name == 'maskrcnn':  # backbone + FPN: batch 0 runs (it failed in a Reshape of layer1)
        assert set(diffs) == {0, 1, 3} and diffs[0][:2] == (0.0, 0.0)
    else:
        assert set(diffs) == {1, 3} and CLASSIFIER_BATCH_0 in text
    assert all(rel <= 1e-4 for _, rel, _ in diffs.values()), diffs
    graph = onnx.load(out).graph
    assert [o.name for o in graph.output] == outputs
    assert _dynamic_batch(out)


def test_dynamo_exporter(files, tmp_path, capsys):
    """The torch.export-based exporter keeps the batch dynamic too (opset 18)."""
    pytest.importorskip('onnxscript')
    config, ckpt = files['resnet18']
    out = str(tmp_path / 'dynamo.onnx')
    assert _tool().main([config, ckpt, '--out', out, '--dynamic-batch', '--shape', '32', '32',
                         '--exporter', 'dynamo']) == 0
    text = capsys.readouterr().out
    assert 'opset 18, dynamo exporter' in text
    diffs = _diffs(text)
    assert set(diffs) == {1, 3} and all(rel <= 1e-4 for _, rel, _ in diffs.values()), diffs
    assert CLASSIFIER_BATCH_0 in text
    assert _dynamic_batch(out)


def test_detector_outputs_are_the_fpn_levels(files):
    from mmdyn.deploy import build_export_model
    model = build_export_model(*files['maskrcnn'], input_hw=(64, 128))
    assert model.task == 'detection' and model.input_shape == (3, 64, 128)
    with torch.no_grad():
        x = torch.randn(2, 3, 64, 128)
        feats = model.module(x)
        expected = model.module.model.neck(model.module.model.backbone(x))
    assert [tuple(f.shape) for f in feats] == [(2, 16, 64 // s, 128 // s)
                                               for s in (4, 8, 16, 32, 64)]
    for f, e in zip(feats, expected):
        torch.testing.assert_close(f, e)


def test_static_batch_checks_batch_one(files, tmp_path, capsys):
    config, ckpt = files['resnet18']
    out = str(tmp_path / 'static.onnx')
    assert _tool().main([config, ckpt, '--out', out, '--shape', '32', '32']) == 0
    text = capsys.readouterr().out
    assert set(_diffs(text)) == {1}
    assert 'static graph: checked at batch 1 only' in text
    assert not _dynamic_batch(out)


def test_above_tolerance_exits_1(files, tmp_path, capsys):
    """A real difference above --rtol is a failure (the differences here are float
    round-off, ~1e-7, so a tolerance of 1e-15 is exceeded)."""
    config, ckpt = files['resnet18']
    out = str(tmp_path / 'strict.onnx')
    assert _tool().main([config, ckpt, '--out', out, '--dynamic-batch', '--shape', '32', '32',
                         '--rtol', '1e-15']) == 1
    captured = capsys.readouterr()
    assert 'more than --rtol 1e-15' in captured.err
    assert max(rel for _, rel, _ in _diffs(captured.out).values()) > 1e-15


@pytest.mark.parametrize('which', ['checkpoint', 'config'])
def test_refuses_to_overwrite_an_input(files, tmp_path, capsys, which):
    config, ckpt = files['resnet18']
    target = ckpt if which == 'checkpoint' else config
    before = open(target, 'rb').read()
    link = tmp_path / 'link'
    os.symlink(target, link)
    for out in (target, str(link)):
        with pytest.raises(SystemExit) as exc:
            _tool().main([config, ckpt, '--out', out])
        assert exc.value.code == 2
        assert 'is one of the input files' in capsys.readouterr().err
    assert open(target, 'rb').read() == before


def test_checkpoint_that_does_not_fit_is_refused(files, tmp_path, capsys):
    config, ckpt = files['resnet18']
    state = torch.load(ckpt, weights_only=True)
    key = next(k for k in state['state_dict'] if k.endswith('conv1.weight'))
    del state['state_dict'][key]
    broken = tmp_path / 'broken.pth'
    torch.save(state, broken)
    out = tmp_path / 'never.onnx'
    with pytest.raises(SystemExit) as exc:
        _tool().main([config, str(broken), '--out', str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert 'cannot load the model' in err and key in err
    assert not out.exists()


@pytest.mark.parametrize('argv,message', [
    (['--opset', '3'], '--opset must be in'),
    (['--shape', '0', '32'], '--shape must be two positive'),
    (['--rtol', '0'], '--rtol must be > 0'),
])
def test_bad_arguments(files, tmp_path, capsys, argv, message):
    config, ckpt = files['resnet18']
    with pytest.raises(SystemExit) as exc:
        _tool().main([config, ckpt, '--out', str(tmp_path / 'x.onnx'), *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


class _FlattenBySizes(torch.nn.Module):
    """A 1x1 conv, then ``y.view(B, C*H*W)`` with sizes read from ``y``: PyTorch runs it
    on an empty batch, onnxruntime (which turns the product of sizes into a -1) not."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)

    def forward(self, x):
        y = self.conv(x)
        return y.view(y.size(0), y.size(1) * y.size(2) * y.size(3))


def test_a_graph_that_fails_at_batch_0_is_reported(tmp_path):
    """A graph that onnxruntime cannot run at a batch PyTorch runs is an error that names
    the batch (the check no longer stops at batch 1 and 3)."""
    from mmdyn.deploy import compare_with_onnxruntime, export_onnx
    module = _FlattenBySizes().eval()
    out = export_onnx(module, str(tmp_path / 'flat.onnx'), (3, 4, 4), ['y'],
                      dynamic_batch=True)
    assert [r.batch for r in compare_with_onnxruntime(module, out, (3, 4, 4), (1, 3))] == [1, 3]
    with pytest.raises(RuntimeError, match=r'onnxruntime cannot run .*flat\.onnx at batch 0, '
                                           r'which PyTorch runs: .*Reshape'):
        compare_with_onnxruntime(module, out, (3, 4, 4), (0, 1))
