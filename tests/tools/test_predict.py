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


def _keep_ratio_resize_config(cls, tmp_path):
    """The tiny classifier with a keep-ratio Resize to 32x32 in its test pipeline: the
    short side of a 10000x10 image becomes 0 pixels (OpenCV's resize fails)."""
    path = tmp_path / 'resize.py'
    path.write_text(f"_base_ = {cls['dyn']!r}\n"
                    "test_pipeline = [dict(type='LoadImageFromFile'), "
                    "dict(type='Resize', scale=(32, 32), keep_ratio=True), "
                    "dict(type='PackInputs')]\n"
                    'test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n')
    return str(path)


def test_predict_cli_unusable_images_do_not_end_the_batch(cls, tmp_path, capsys, load_tool):
    # a 10000x10 image the test pipeline cannot resize and a text file named .jpg among
    # good images: each is reported in one line, the others are predicted, exit status 1
    wide, text = tmp_path / 'wide.png', tmp_path / 'notes.jpg'
    Image.fromarray(np.full((10, 10000, 3), 90, np.uint8)).save(wide)
    text.write_text('this is text, not a JPEG\n')
    config, out_json = _keep_ratio_resize_config(cls, tmp_path), tmp_path / 'res.json'
    code = load_tool('predict').main([config, cls['dyn_ckpt'], str(wide), cls['image'],
                                      str(text), '--json', str(out_json),
                                      '--out-dir', str(tmp_path / 'vis')])
    err = capsys.readouterr().err
    assert code == 1 and 'Traceback' not in err
    lines = [line for line in err.splitlines() if 'error' in line]
    assert lines == [
        f'{wide}: error: cannot predict {wide}: the test pipeline fails on its 10000x10 pixels '
        "(aspect ratio 1000:1): (-215:Assertion failed) inv_scale_x > 0 in function 'resize'",
        f'{text}: error: cannot read image {text}: not an image file or an unsupported format '
        f"(UnidentifiedImageError: cannot identify image file '{text}')",
        'error: 2 of 3 image(s) failed (reported above)'], err
    with open(out_json) as f:
        dump = json.load(f)
    assert [e['image'] for e in dump['results']] == [cls['image']]
    assert [e['image'] for e in dump['errors']] == [str(wide), str(text)]
    assert osp.isfile(dump['results'][0]['annotated'])
