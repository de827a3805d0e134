"""A KernelWarehouse checkpoint read by the clients our users use (issue 12).

A tiny KW classifier (a ``DynResNetCIFAR`` whose warehouse is shared by the
stage's convolutions) is trained with the hook's KW schedule stopped early, so
the checkpoint's τ is neither 1 nor 0; ``tools/test.py``, upstream
``Runner.from_cfg(cfg).test()`` and mmpretrain's ``ImageClassificationInferencer``
must give the same scores, and another τ must not. A KW Mask R-CNN checkpoint
is read by mmdet's ``init_detector`` with its cells and τ.
"""
import os.path as osp
import sys

import numpy as np
import pytest
import torch

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.join(osp.dirname(HERE), 'tools'))
from _tool_helpers import REPO, TEMPLATE, make_images, run  # noqa: E402

import mmdyn.models  # noqa: E402,F401
from mmdyn.engine import model_temperatures, set_model_temperature  # noqa: E402
from mmdyn.ops import KWConv2d  # noqa: E402
from test_temperature_boundary import (_checkpoint_temperatures,  # noqa: E402
                                       same_scores_through_every_client)

TOL = 1e-5
KW_BACKBONE = """    backbone=dict(
        type='DynResNetCIFAR', depth=18, num_stages=2, strides=(1, 2), dilations=(1, 1),
        out_indices=(1, ), stem_channels=8, base_channels=8,
        dyn_conv=dict(type='KW', cell_num_ratio=2)),"""
KW_HOOK = """    dict(type='TemperatureAnnealHook',
         layer_schedules=dict(KW=dict(start_temperature=1.0, end_temperature=0.0,
                                      anneal_iters=40))),"""


def _kw_config(text: str) -> str:
    start = text.index('    backbone=dict(')
    end = text.index("sampling='fixed')),") + len("sampling='fixed')),")
    text = text[:start] + KW_BACKBONE + text[end:]
    start = text.index("    dict(type='TemperatureAnnealHook'")
    end = text.index('anneal_iters=4),') + len('anneal_iters=4),')
    text = text[:start] + KW_HOOK + text[end:]
    text = (text.replace("'mmdyn.models', 'rank_dump_hook'", "'mmdyn.models'")
            .replace("    dict(type='RankStateDumpHook'),\n", ''))
    assert 'KW' in text and 'A2D2C' not in text and 'RankStateDump' not in text
    return text


@pytest.fixture(scope='module')
def trained_kw(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('kw_boundary')
    make_images(tmp / 'data')
    with open(TEMPLATE) as f:
        text = _kw_config(f.read().replace('{data_root}', str(tmp / 'data')))
    config = tmp / 'kw_cls.py'
    config.write_text(text)
    run([sys.executable, 'tools/train.py', str(config), '--work-dir', str(tmp / 'work')],
        timeout=300)
    return dict(tmp=tmp, config=str(config), ckpt=str(tmp / 'work' / 'iter_4.pth'))


def test_kw_classifier_same_predictions_through_every_client(trained_kw):
    tmp, config, ckpt = trained_kw['tmp'], trained_kw['config'], trained_kw['ckpt']
    state = torch.load(ckpt, map_location='cpu', weights_only=True)['state_dict']
    # One entry per warehouse (the stage's cells), none under the layers.
    cells = sorted(k for k in state if '.cells.' in k)
    assert cells == ['backbone.kw_warehouse.cells.stage0_layer_conv',
                     'backbone.kw_warehouse.cells.stage1_layer_conv']
    # τ before iteration 3 of a 40-iteration anneal 1 -> 0.
    assert _checkpoint_temperatures(ckpt) == [pytest.approx(37 / 40)]

    inferencer, paths, expected = same_scores_through_every_client(config, ckpt, tmp)
    temps = model_temperatures(inferencer.model)
    assert len(temps) == 9 and temps == [pytest.approx(37 / 40)] * 9  # 4 + 4 convs + 1 downsample

    # The comparison can fail: at τ = 0 (attention only) the scores move.
    set_model_temperature(inferencer.model, 0.0)
    moved = np.stack([r['pred_scores'] for r in inferencer(paths, batch_size=4)])
    assert np.abs(moved - expected).max() > 10 * TOL


DET_CHILD = '''_base_ = {base!r}
model = dict(backbone=dict(dyn_conv=dict(_delete_=True, type='KW', cell_num_ratio=1),
                           dyn_placement=None))
'''


@pytest.mark.filterwarnings('ignore')
def test_kw_detector_checkpoint_through_init_detector(tmp_path):
    from mmdet.apis import init_detector
    from mmdet.registry import MODELS
    from mmengine.registry import DefaultScope

    from mmdyn.engine import load_config
    config = tmp_path / 'kw_det.py'
    config.write_text(DET_CHILD.format(
        base=osp.join(REPO, 'configs', 'demo', 'mask-rcnn_r18-a2d2c-plus_fpn_shapes.py')))
    cfg = load_config(str(config))
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model).eval()
    assert any(isinstance(m, KWConv2d) for m in model.backbone.modules())
    set_model_temperature(model, 0.4)
    with torch.no_grad():  # move the cells off their init so a fresh model differs
        for p in model.backbone.kw_warehouse.cells.values():
            p.mul_(1.5)
    ckpt = tmp_path / 'kw_det.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)

    loaded = init_detector(str(config), str(ckpt), device='cpu')
    temps = model_temperatures(loaded)
    assert temps == [pytest.approx(0.4)] * len(temps) and temps
    inputs = torch.rand(1, 3, 64, 96) * 255
    with torch.no_grad():
        want = model.extract_feat(inputs)
        got = loaded.extract_feat(inputs)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
        fresh = init_detector(str(config), None, device='cpu').extract_feat(inputs)
    assert max(float((a - b).abs().max()) for a, b in zip(fresh, want)) > 1e-3
