"""The trained temperature travels with the checkpoint (issue: trust at the
boundaries, item 1).

A tiny classifier and a tiny Mask R-CNN are trained with the anneal hook
stopped half-way (so the checkpoint's temperature is neither the constructor's
30 nor the hook's end value); the same checkpoint is then evaluated through
mmdyn's ``tools/test.py``, upstream ``Runner.from_cfg(cfg).test()`` with the
plain config, and the frameworks' own inference APIs (mmpretrain's
``ImageClassificationInferencer``, mmdet's ``init_detector`` +
``inference_detector``). All must give the same scores (<= 1e-5), and a model
at another temperature must not (so the comparison can fail).
"""
import os.path as osp
import pickle
import sys

import numpy as np
import pytest
import torch

HERE = osp.dirname(osp.abspath(__file__))
sys.path.insert(0, osp.join(osp.dirname(HERE), 'tools'))
from _tool_helpers import REPO, TEMPLATE, make_images, run  # noqa: E402

import mmdyn.models  # noqa: E402,F401
from mmdyn.engine import model_temperatures, set_model_temperature  # noqa: E402

DEMO_DET = osp.join(REPO, 'configs', 'demo', 'mask-rcnn_r18-a2d2c-plus_fpn_shapes.py')
TOL = 1e-5


def _checkpoint_temperatures(path):
    state = torch.load(path, map_location='cpu', weights_only=True)['state_dict']
    return sorted({round(float(v), 9) for k, v in state.items() if k.endswith('.temperature')})


def _runner_test_dump(config, checkpoint, work_dir, out):
    """Upstream MMEngine: ``Runner.from_cfg(Config.fromfile(config))`` with
    ``load_from`` set, and mmengine's DumpResults; no mmdyn tool involved."""
    from mmengine.config import Config
    from mmengine.evaluator import DumpResults
    from mmengine.runner import Runner
    cfg = Config.fromfile(config)
    cfg.load_from = checkpoint
    cfg.work_dir = str(work_dir)
    runner = Runner.from_cfg(cfg)
    runner.test_evaluator.metrics.append(DumpResults(out_file_path=str(out)))
    runner.test()
    with open(out, 'rb') as f:
        return pickle.load(f)


def _tools_test_dump(config, checkpoint, work_dir, out):
    run([sys.executable, 'tools/test.py', config, checkpoint, '--work-dir', str(work_dir),
         '--out', str(out)], timeout=300)
    with open(out, 'rb') as f:
        return pickle.load(f)


def same_scores_through_every_client(config, ckpt, tmp):
    """Check that ``tools/test.py``, upstream ``Runner.from_cfg().test()`` and
    mmpretrain's ``ImageClassificationInferencer`` give the same scores (<= TOL)
    for the 16 images of ``make_images``.

    Returns:
        tuple: ``(inferencer, image paths, their scores)``.
    """
    ours = _tools_test_dump(config, ckpt, tmp / 'w_test', tmp / 'ours.pkl')
    upstream = _runner_test_dump(config, ckpt, tmp / 'w_runner', tmp / 'upstream.pkl')
    by_path = {r['img_path']: np.asarray(r['pred_score']) for r in ours}
    assert len(by_path) == 16
    for r in upstream:
        np.testing.assert_allclose(np.asarray(r['pred_score']), by_path[r['img_path']],
                                   rtol=0, atol=TOL)

    from mmpretrain.apis import ImageClassificationInferencer
    inferencer = ImageClassificationInferencer(model=config, pretrained=ckpt, device='cpu')
    paths = sorted(by_path)
    scores = np.stack([r['pred_scores'] for r in inferencer(paths, batch_size=4)])
    expected = np.stack([by_path[p] for p in paths])
    np.testing.assert_allclose(scores, expected, rtol=0, atol=TOL)
    return inferencer, paths, expected


# ------------------------------------------------------------------ classifier
@pytest.fixture(scope='module')
def trained_cls(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('temp_boundary_cls')
    make_images(tmp / 'data')
    with open(TEMPLATE) as f:
        text = f.read().replace('{data_root}', str(tmp / 'data'))
    # Stop the anneal at iteration 4 of 40 and use random training sampling (the
    # default); no test-only hooks so that upstream clients read the plain config.
    text = (text.replace("anneal_iters=4)", "anneal_iters=40)")
            .replace("'mmdyn.models', 'rank_dump_hook'", "'mmdyn.models'")
            .replace("    dict(type='RankStateDumpHook'),\n", '')
            .replace(", sampling='fixed'", ''))
    assert 'anneal_iters=40' in text and 'RankStateDump' not in text
    config = tmp / 'cls.py'
    config.write_text(text)
    run([sys.executable, 'tools/train.py', str(config), '--work-dir', str(tmp / 'work')],
        timeout=300)
    ckpt = str(tmp / 'work' / 'iter_4.pth')
    return dict(tmp=tmp, config=str(config), ckpt=ckpt)


def test_classifier_same_predictions_through_every_client(trained_cls):
    tmp, config, ckpt = trained_cls['tmp'], trained_cls['config'], trained_cls['ckpt']
    temps = _checkpoint_temperatures(ckpt)
    # After iterations 0..3 of a 40-iteration anneal from 30 to 1: T(3) = 27.825.
    assert temps == [pytest.approx(1 + 29 * 37 / 40)]

    inferencer, paths, expected = same_scores_through_every_client(config, ckpt, tmp)
    assert model_temperatures(inferencer.model) == [temps[0]] * len(
        model_temperatures(inferencer.model))

    # The comparison can fail: at the hook's end value (what tools/test.py used before the
    # temperature was stored) the scores move.
    set_model_temperature(inferencer.model, 1.0)
    moved = np.stack([r['pred_scores'] for r in inferencer(paths, batch_size=4)])
    assert np.abs(moved - expected).max() > 10 * TOL


# ------------------------------------------------------------------- detector
DET_CHILD = '''_base_ = {base!r}
data_root = {root!r}
model = dict(backbone=dict(dyn_conv=dict(type='A2D2CPlus', kernel_num=2, num_points=20)))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(96, 96), keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_iters=2, val_interval=100)
param_scheduler = []
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
custom_hooks = [dict(type='TemperatureAnnealHook', start_temperature=30.0,
                     end_temperature=1.0, anneal_iters=20)]
'''


def _det_arrays(pred):
    """``(scores, bboxes)`` of a prediction dict/data sample, sorted by score."""
    inst = pred['pred_instances'] if isinstance(pred, dict) else pred.pred_instances
    scores = np.asarray(inst['scores'])
    bboxes = np.asarray(inst['bboxes'])
    order = np.argsort(-scores, kind='stable')
    return scores[order], bboxes[order]


@pytest.mark.filterwarnings('ignore')
def test_detector_same_predictions_through_every_client(tmp_path):
    from mmdyn.datasets import make_shapes_coco
    root = str(tmp_path / 'shapes') + '/'
    make_shapes_coco(root, num_train=4, num_val=2, size=64, seed=1)
    config = tmp_path / 'det.py'
    config.write_text(DET_CHILD.format(base=DEMO_DET, root=root))
    run([sys.executable, 'tools/train.py', str(config), '--work-dir', str(tmp_path / 'work')],
        timeout=400)
    ckpt = str(tmp_path / 'work' / 'iter_2.pth')
    temps = _checkpoint_temperatures(ckpt)
    assert temps == [pytest.approx(1 + 29 * 19 / 20)]  # T(1) of a 20-iteration anneal

    ours = _tools_test_dump(str(config), ckpt, tmp_path / 'w_test', tmp_path / 'ours.pkl')
    upstream = _runner_test_dump(str(config), ckpt, tmp_path / 'w_runner',
                                 tmp_path / 'upstream.pkl')
    by_path = {r['img_path']: _det_arrays(r) for r in ours}
    assert len(by_path) == 2 and all(len(s) > 0 for s, _ in by_path.values())
    for r in upstream:
        scores, boxes = by_path[r['img_path']]
        got_scores, got_boxes = _det_arrays(r)
        np.testing.assert_allclose(got_scores, scores, rtol=0, atol=TOL)
        np.testing.assert_allclose(got_boxes, boxes, rtol=0, atol=1e-3)

    from mmdet.apis import inference_detector, init_detector
    model = init_detector(str(config), ckpt, device='cpu')
    assert set(model_temperatures(model)) == {temps[0]}
    paths = sorted(by_path)
    for path, result in zip(paths, inference_detector(model, paths)):
        got_scores, got_boxes = _det_arrays(result.cpu())
        np.testing.assert_allclose(got_scores, by_path[path][0], rtol=0, atol=TOL)
        np.testing.assert_allclose(got_boxes, by_path[path][1], rtol=0, atol=1e-3)

    # The temperature matters in this network: the FPN features move with it (after two
    # iterations from scratch the final scores are nearly insensitive; the classifier
    # test above checks scores).
    inputs = torch.rand(1, 3, 64, 96) * 255
    with torch.no_grad():
        feats = [f.clone() for f in model.extract_feat(inputs)]
        set_model_temperature(model, 1.0)
        moved = model.extract_feat(inputs)
    assert max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(moved, feats)) > 1e-4
