"""tools/analysis_tools/confusion_matrix.py (and mmdyn.analysis.confusion_matrix,
mmdyn.engine.result_files) on a tiny generated CustomDataset (3 classes, 3/2/4
images) with a random A2D2C+ classifier: from a checkpoint and from a
``tools/test.py --out`` dump, checked against per-image predictions."""
import csv
import json
import os.path as osp
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from apis._inference_helpers import (A2D2C, DEMO_DET, REPO, make_class_folders,
                                     save_random_checkpoint, write_config)
from _tools import import_tool, tool_path

CLASSES = ('blue', 'green', 'red')   # CustomDataset labels sorted folder names
COUNTS = (3, 2, 4)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp('cm')
    data = make_class_folders(tmp / 'data', CLASSES, COUNTS, seed=1)
    config = write_config(tmp / 'cls.py', data, num_classes=3, conv_cfg=A2D2C)
    raw = save_random_checkpoint(config, tmp / 'raw.pth')
    # Replace the random head by a nearest-class-mean one on the random features,
    # so that the predictions vary between images (and are mostly right).
    from mmdyn.apis import load_model
    model = load_model(config, raw).model
    feats = {}
    for name, count in zip(CLASSES, COUNTS):
        batch = [torch.from_numpy(np.asarray(Image.open(osp.join(data, name, f'{i}.png'))
                                             .convert('RGB'))[..., ::-1].copy()).permute(2, 0, 1)
                 for i in range(count)]
        with torch.no_grad():
            x = model.data_preprocessor(dict(inputs=batch, data_samples=None), False)['inputs']
            feats[name] = model.extract_feat(x)[-1].mean(0)
    centre = torch.stack(list(feats.values())).mean(0)
    weight = torch.stack([feats[n] - centre for n in CLASSES])
    state = torch.load(raw, weights_only=True)
    state['state_dict']['head.fc.weight'] = weight / weight.norm(dim=1, keepdim=True) * 50
    state['state_dict']['head.fc.bias'] = -(weight / weight.norm(dim=1, keepdim=True) * 50
                                            @ centre)
    torch.save(state, tmp / 'cls.pth')
    return dict(tmp=tmp, data=data, config=config, ckpt=str(tmp / 'cls.pth'),
                tool=import_tool('confusion_matrix'))


def _expected_matrix(setup):
    """Counts from per-image predictions of mmdyn.apis (not the dataloader path)."""
    from mmdyn.apis import load_model
    p = load_model(setup['config'], setup['ckpt'])
    matrix = np.zeros((3, 3), dtype=np.int64)
    for true, (name, count) in enumerate(zip(CLASSES, COUNTS)):
        for i in range(count):
            matrix[true, p.predict(osp.join(setup['data'], name, f'{i}.png')).pred_label] += 1
    return matrix


def test_confusion_matrix_from_checkpoint(setup, capsys):
    out = setup['tmp'] / 'ckpt_cm.png'
    summary = setup['tool'].main([setup['config'], setup['ckpt'], '--out', str(out), '--json',
                                  '--csv', '--show-names'])
    text = capsys.readouterr().out
    assert out.is_file() and out.stat().st_size > 5000
    with open(setup['tmp'] / 'ckpt_cm.json') as f:
        dump = json.load(f)
    matrix = np.array(dump['matrix'])
    assert matrix.sum() == sum(COUNTS) == dump['num_samples']
    assert matrix.sum(1).tolist() == list(COUNTS) == dump['support']
    expected = _expected_matrix(setup)
    assert np.array_equal(matrix, expected)
    assert len(np.unique(np.nonzero(expected)[1])) >= 2   # not a constant predictor
    assert dump['classes'] == list(CLASSES)
    acc = np.diag(expected) / np.array(COUNTS)
    np.testing.assert_allclose(dump['per_class_accuracy'], acc)
    assert dump['accuracy'] == pytest.approx(np.trace(expected) / sum(COUNTS))
    for k, name in enumerate(CLASSES):
        assert f'{name:<12}{COUNTS[k]:>8}{expected[k, k]:>9}{100 * acc[k]:>9.2f}%' in text
    with open(setup['tmp'] / 'ckpt_cm.csv') as f:
        rows = list(csv.reader(f))
    assert rows[0][1:] == list(CLASSES)
    assert [[int(v) for v in r[1:]] for r in rows[1:]] == expected.tolist()
    assert summary['matrix'] == expected.tolist()


def test_confusion_matrix_from_test_dump(setup):
    dump = setup['tmp'] / 'preds.pkl'
    env = dict(__import__('os').environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'test.py'), setup['config'],
                           setup['ckpt'], '--out', str(dump), '--work-dir',
                           str(setup['tmp'] / 'work')], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = setup['tmp'] / 'dump_cm.png'
    json_path = setup['tmp'] / 'dump.json'
    summary = setup['tool'].main([setup['config'], '--results', str(dump), '--out', str(out),
                                  '--normalize', '--json', str(json_path)])
    assert out.is_file()
    assert summary['matrix'] == _expected_matrix(setup).tolist()
    assert summary['classes'] == list(CLASSES)   # from the dataset folders (no checkpoint)
    np.testing.assert_allclose(np.array(summary['normalized']).sum(1), 1.0)
    with open(json_path) as f:
        assert json.load(f)['num_samples'] == sum(COUNTS)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.makedirs, (self.marker, )


def test_errors(setup, tmp_path, capsys):
    tool = setup['tool']
    cases = [([setup['config']], 'exactly one'),
             ([setup['config'], setup['ckpt'], '--results', setup['ckpt']], 'exactly one'),
             ([setup['config'], str(tmp_path / 'x.pth')], 'checkpoint file not found'),
             ([setup['config'], '--results', str(tmp_path / 'x.pkl')], 'results file not found')]
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pkl'
    evil.write_bytes(pickle.dumps([{'gt_label': torch.tensor([0]), 'x': _Exploit(str(marker))}]))
    cases.append(([setup['config'], '--results', str(evil)], 'refusing to load'))
    det = tmp_path / 'det.pkl'
    det.write_bytes(pickle.dumps([{'pred_instances': {}, 'img_id': 0}], protocol=2))
    cases.append(([setup['config'], '--results', str(det)], 'detection results'))
    junk = tmp_path / 'junk.pkl'
    junk.write_bytes(pickle.dumps({'not': 'a list'}))
    cases.append(([setup['config'], '--results', str(junk)], 'not a prediction dump'))
    good = tmp_path / 'good.pkl'
    good.write_bytes(pickle.dumps([{'gt_label': torch.tensor([0]),
                                    'pred_score': torch.tensor([0.1, 0.9, 0.0])}], protocol=2))
    cases.append(([DEMO_DET, '--results', str(good)], 'classification'))
    for argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            tool.main(argv + ['--out', str(tmp_path / 'cm.png')])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err, argv
    assert not marker.exists()   # the malicious dump was refused, not executed
    from mmdyn.analysis.confusion_matrix import load_prediction_dump
    preds, gts, num = load_prediction_dump(str(good))
    assert preds.tolist() == [1] and gts.tolist() == [0] and num == 3


def test_plot_scales_with_classes(tmp_path):
    from mmdyn.analysis.confusion_matrix import (format_report, per_class_accuracy,
                                                 plot_confusion_matrix)
    rng = np.random.default_rng(0)
    small, big = tmp_path / 'small.png', tmp_path / 'big.png'
    plot_confusion_matrix(rng.integers(0, 9, (3, 3)), CLASSES, str(small), show_names=True)
    names = [f'traffic sign {i}' for i in range(43)]
    plot_confusion_matrix(rng.integers(0, 9, (43, 43)), names, str(big), normalize=True,
                          show_names=True)
    with Image.open(small) as a, Image.open(big) as b:
        assert b.size[0] > 2 * a.size[0] and b.size[1] > 2 * a.size[1]
    matrix = np.array([[2, 1], [0, 0]])
    acc = per_class_accuracy(matrix)
    assert acc[0] == pytest.approx(2 / 3) and np.isnan(acc[1])
    assert 'n/a' in format_report(matrix, ['x', 'y'])


def test_tool_runs_as_a_script(tmp_path):
    """The tool lives in tools/analysis_tools/ and needs no sys.path set-up (the
    package is installed)."""
    assert tool_path('confusion_matrix') == osp.join(REPO, 'tools', 'analysis_tools',
                                                     'confusion_matrix.py')
    proc = subprocess.run([sys.executable, tool_path('analysis_tools/confusion_matrix'),
                           '--help'], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '--results' in proc.stdout


@pytest.mark.parametrize('kind', ['zip', 'legacy', 'pickled-dict'])
def test_results_given_a_checkpoint(tmp_path, capsys, load_tool, kind):
    config = write_config(tmp_path / 'cls.py', tmp_path, num_classes=3)
    ckpt = tmp_path / 'model.pth'
    state = {'state_dict': {'head.fc.weight': torch.zeros(3, 4)}, 'meta': {}}
    if kind == 'zip':
        torch.save(state, ckpt)
    elif kind == 'legacy':
        torch.save(state, ckpt, _use_new_zipfile_serialization=False)
    else:
        ckpt.write_bytes(pickle.dumps({'state_dict': {'w': np.zeros(2)}}, protocol=2))
    with pytest.raises(SystemExit) as exc:
        load_tool('confusion_matrix').main([config, '--results', str(ckpt),
                                            '--out', str(tmp_path / 'cm.png')])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err == (f'error: {ckpt} is a checkpoint, not a results file: pass it as CHECKPOINT '
                   f'(confusion_matrix.py CONFIG {ckpt}), or give --results the prediction dump '
                   'of tools/test.py CONFIG CHECKPOINT --out RESULTS.pkl\n')
    assert not (tmp_path / 'cm.png').exists()
