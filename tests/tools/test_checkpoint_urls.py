"""Checkpoints given as http:// URLs (served on 127.0.0.1 by a local
http.server) to every mmdyn entry point: tools/train.py --resume, tools/test.py,
tools/model_converters/convert_static_to_dynamic.py, mmdyn.apis.load_model, mmdet's
init_detector and mmpretrain's ImageClassificationInferencer. A good checkpoint
loads; one whose pickle would create a marker file is refused, naming the
global, and the marker never appears. The torch hub cache is under tmp_path."""
import os.path as osp
import sys
import warnings

import pytest
import torch

import mmdyn.models  # noqa: F401
from _checkpoint_server import isolate_caches, save_evil_checkpoint, serve_directory
from _tool_helpers import REPO, make_images, run, write_config
from mmdyn.engine import UnsafeCheckpointError

A2D2C = "dict(type='A2D2CPlus', kernel_num=2, num_points=8, sampling='fixed')"
DEMO_DET = osp.join(REPO, 'configs', 'demo', 'mask-rcnn_r18-a2d2c-plus_fpn_shapes.py')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A 2-iteration run of the tiny tools config: iter_2.pth (a full MMEngine
    checkpoint with optimizer and message hub) to resume and test from."""
    tmp = tmp_path_factory.mktemp('urls')
    make_images(str(tmp / 'data'))
    config = write_config(tmp / 'tiny_cls.py', tmp / 'data')
    work = tmp / 'work'
    run([sys.executable, 'tools/train.py', config, '--work-dir', str(work),
         '--cfg-options', 'train_cfg.max_iters=2'])
    return dict(tmp=tmp, config=config, ckpt=work / 'iter_2.pth')


@pytest.fixture
def site(trained, tmp_path, monkeypatch):
    isolate_caches(tmp_path, monkeypatch)  # also for the subprocesses (environment)
    root = tmp_path / 'www'
    root.mkdir()
    good = torch.load(trained['ckpt'], map_location='cpu', weights_only=True)
    torch.save(good, root / 'good.pth')
    marker = tmp_path / 'PWNED'
    save_evil_checkpoint(root / 'evil.pth', marker, good['state_dict'])
    with serve_directory(root) as server:
        server.marker = marker
        server.good = good
        yield server
    assert not marker.exists(), 'the checkpoint payload ran'


def _refused(proc):
    return proc.returncode != 0 and 'refusing to load checkpoint' in proc.stderr \
        and 'io.open' in proc.stderr


def test_train_resume_from_url(trained, site, tmp_path):
    base = [sys.executable, 'tools/train.py', trained['config'], '--cfg-options',
            'train_cfg.max_iters=3']
    proc = run(base + ['--work-dir', str(tmp_path / 'good'), '--resume',
                       f'{site.url}/good.pth'])
    assert 'resumed epoch: 0, iter: 2' in proc.stdout + proc.stderr
    assert (tmp_path / 'good' / 'iter_3.pth').is_file()
    proc = run(base + ['--work-dir', str(tmp_path / 'evil'), '--resume',
                       f'{site.url}/evil.pth'], check=False)
    assert _refused(proc), proc.stderr[-3000:]
    assert ' loss: ' not in proc.stdout + proc.stderr


def test_test_tool_with_url(trained, site, tmp_path):
    proc = run([sys.executable, 'tools/test.py', trained['config'], f'{site.url}/good.pth',
                '--work-dir', str(tmp_path / 'test')])
    assert any(line.startswith('mmdyn test metrics:') for line in proc.stdout.splitlines())
    proc = run([sys.executable, 'tools/test.py', trained['config'], f'{site.url}/evil.pth',
                '--work-dir', str(tmp_path / 'test')], check=False)
    assert _refused(proc), proc.stderr[-3000:]
    assert 'mmdyn test metrics' not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith('error: refusing to load checkpoint') and 'Traceback' not in proc.stderr


def test_load_model_and_mmpretrain_inferencer_with_url(trained, site):
    from mmpretrain.apis import ImageClassificationInferencer

    from mmdyn.apis import load_model
    good, evil = f'{site.url}/good.pth', f'{site.url}/evil.pth'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        predictor = load_model(trained['config'], good)
    for key, value in site.good['state_dict'].items():
        torch.testing.assert_close(predictor.model.state_dict()[key], value)
    with pytest.raises(UnsafeCheckpointError, match=r'io\.open'):
        load_model(trained['config'], evil)
    inferencer = ImageClassificationInferencer(model=trained['config'], pretrained=good,
                                               device='cpu')
    for key, value in site.good['state_dict'].items():
        torch.testing.assert_close(inferencer.model.state_dict()[key], value)
    with pytest.raises(UnsafeCheckpointError):
        ImageClassificationInferencer(model=trained['config'], pretrained=evil, device='cpu')


def test_mmdet_init_detector_with_url(site, tmp_path):
    """The demo Mask R-CNN A2D2C+ config, shrunk (8 base channels)."""
    from mmdet.apis import init_detector
    from mmengine.config import Config
    cfg = Config.fromfile(DEMO_DET)
    cfg.merge_from_dict({'model.backbone.base_channels': 8,
                         'model.backbone.dyn_conv.kernel_num': 2,
                         'model.neck.in_channels': [8, 16, 32, 64]})
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        reference = init_detector(cfg, checkpoint=None, device='cpu')
    state = {k: v + 0.5 if v.is_floating_point() else v
             for k, v in reference.state_dict().items()}
    torch.save({'state_dict': state, 'meta': {'dataset_meta': {'classes': ('a', 'b', 'c')}}},
               osp.join(site.root, 'det.pth'))
    save_evil_checkpoint(osp.join(site.root, 'det_evil.pth'), site.marker, state)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = init_detector(cfg, checkpoint=f'{site.url}/det.pth', device='cpu')
    for key, value in state.items():
        torch.testing.assert_close(model.state_dict()[key], value)
    with pytest.raises(UnsafeCheckpointError, match=r'det_evil\.pth'):
        init_detector(cfg, checkpoint=f'{site.url}/det_evil.pth', device='cpu')


def test_converter_with_url_source(site, tmp_path, load_tool):
    from mmpretrain.registry import MODELS
    tool = load_tool('model_converters/convert_static_to_dynamic')
    static = MODELS.build(dict(type='MobileNetV2', widen_factor=0.25))
    torch.save(static.state_dict(), osp.join(site.root, 'mb.pth'))
    save_evil_checkpoint(osp.join(site.root, 'mb_evil.pth'), site.marker, static.state_dict())
    common = ['--dyn-conv', 'DyConv', '--kernel-num', '2', '--arch', 'mobilenet_v2',
              '--widen-factor', '0.25']
    dst = tmp_path / 'mb_dyn.pth'
    assert tool.main([f'{site.url}/mb.pth', str(dst)] + common) == 0
    sd = torch.load(dst, weights_only=True)['state_dict']
    banks = [k for k, v in sd.items() if v.dim() == 5]
    assert banks  # the dynamic layers' kernel banks were filled from the static kernels
    for key in banks:
        torch.testing.assert_close(sd[key][1], static.state_dict()[key])
    evil_dst = tmp_path / 'evil_dyn.pth'
    with pytest.raises(SystemExit) as info:
        tool.main([f'{site.url}/mb_evil.pth', str(evil_dst)] + common)
    assert 'refusing to load checkpoint' in str(info.value.code) and not evil_dst.exists()
