"""tools/predict.py on a tiny CIFAR-stem A2D2C+ classifier (random weights,
generated 32x32 images) and the demo Mask R-CNN R18 A2D2C+ detector: printed
results, annotated images, JSON and errors. The library it calls is tested in
tests/apis."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from apis._inference_helpers import (DEMO_DET, NAMES, NotAllowed, classifier_setup,
                                     detection_setup)


@pytest.fixture(scope='module')
def cls(tmp_path_factory):
    return classifier_setup(tmp_path_factory.mktemp('predict'))


def test_predict_cli(cls, tmp_path, capsys, load_tool):
    from mmdyn.apis import load_model
    tool = load_tool('predict')
    broken = tmp_path / 'in' / 'broken.png'
    broken.parent.mkdir()
    broken.write_bytes(b'garbage')
    out_dir, out_json = tmp_path / 'vis', tmp_path / 'res.json'
    code = tool.main([cls['dyn'], cls['dyn_ckpt'], cls['data'], cls['image'], str(broken.parent),
                      '--topk', '3', '--out-dir', str(out_dir), '--json', str(out_json)])
    captured = capsys.readouterr()
    assert code == 1   # the broken image is reported, the others are processed
    assert 'broken.png: error: cannot read image' in captured.err
    with open(out_json) as f:
        dump = json.load(f)
    assert dump['task'] == 'classification' and dump['classes'] == list(NAMES)
    assert len(dump['results']) == 9 + 1 and len(dump['errors']) == 1
    p = load_model(cls['dyn'], cls['dyn_ckpt'])
    for entry in dump['results']:
        expected = p.predict(entry['image'], topk=3)
        assert [c['name'] for c in entry['topk']] == [c.name for c in expected.topk]
        np.testing.assert_allclose([c['score'] for c in entry['topk']],
                                   [c.score for c in expected.topk], rtol=1e-6)
        assert osp.isfile(entry['annotated'])
        assert f"1. {expected.pred_name} (label {expected.pred_label})" in captured.out
    assert (out_dir / 'data' / 'cat' / '0_pred.png').is_file()
    assert (out_dir / '0_pred.png').is_file()
    with Image.open(out_dir / 'data' / 'fox' / '1_pred.png') as im:
        assert im.size == (256, 256)


def test_predict_cli_errors(cls, tmp_path, capsys, load_tool):
    tool = load_tool('predict')
    cases = [([cls['dyn'], str(tmp_path / 'x.pth'), cls['image']], 'checkpoint file not found'),
             ([cls['dyn'], cls['dyn_ckpt'], str(tmp_path / 'ghost')], 'input not found'),
             ([cls['dyn'], cls['dyn_ckpt'], cls['image'], '--topk', '0'], '--topk must be >= 1'),
             ([str(tmp_path / 'c.py'), cls['dyn_ckpt'], cls['image']], 'config file not found'),
             ([cls['dyn'], cls['static_ckpt'], cls['image']], 'cannot load the model')]
    unsafe = tmp_path / 'unsafe.pth'
    torch.save({'state_dict': {}, 'extra': NotAllowed()}, unsafe)
    cases.append(([cls['dyn'], str(unsafe), cls['image']], 'not allow-listed'))
    for argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            tool.main(argv)
        assert exc.value.code == 2
        assert message in capsys.readouterr().err


def test_predict_cli_detection(tmp_path_factory, capsys, load_tool):
    from mmdyn.apis import load_model
    det = detection_setup(tmp_path_factory.mktemp('predict_det'))
    everything = load_model(DEMO_DET, det['ckpt']).predict(det['image'], score_thr=0.0)
    tool = load_tool('predict')
    out_json = det['tmp'] / 'det.json'
    assert tool.main([DEMO_DET, det['ckpt'], det['image'], '--score-thr', '0',
                      '--json', str(out_json)]) == 0
    text = capsys.readouterr().out
    assert 'detection model MaskRCNN (3 classes' in text and 'box [' in text
    with open(out_json) as f:
        assert len(json.load(f)['results'][0]['detections']) == len(everything)
