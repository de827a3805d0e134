"""No tool writes over a file it reads; outputs of one run get unique names
(mmdyn.utils.output_paths and the tools that use it)."""
import hashlib
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch
from PIL import Image

from _tools import import_tool
from mmdyn.utils.output_paths import (OutputNamer, OutputPathError, check_distinct_outputs,
                                check_output_path)


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def snapshot(root):
    """``{path: sha256}`` of every file under ``root``."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = osp.join(dirpath, name)
            out[path] = digest(path)
    return out


def save_png(path, seed):
    os.makedirs(osp.dirname(path), exist_ok=True)
    img = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(img).save(path)
    return str(path)


# ---------------------------------------------------------------- the helpers
def test_check_output_path_refuses_every_spelling_of_an_input(tmp_path):
    src = tmp_path / 'in.png'
    src.write_bytes(b'x')
    (tmp_path / 'link.png').symlink_to(src)
    os.link(src, tmp_path / 'hard.png')
    sub = tmp_path / 'sub'
    sub.mkdir()
    spellings = [str(src), str(sub / '..' / 'in.png'), str(tmp_path / 'link.png'),
                 str(tmp_path / 'hard.png'), osp.relpath(src)]
    for out in spellings:
        with pytest.raises(OutputPathError, match=r'^--out .* is one of the input files'):
            check_output_path(out, [str(src)], '--out')
    assert check_output_path(str(tmp_path / 'other.png'), [str(src), None]) \
        == str(tmp_path / 'other.png')
    assert check_output_path(None, [str(src)]) is None
    with pytest.raises(OutputPathError, match='--json and --out name the same file'):
        check_distinct_outputs([('--out', str(tmp_path / 'a')), ('--json', str(tmp_path / 'a'))])


def test_namer_suffix_dedup_and_inputs(tmp_path):
    inputs = [str(tmp_path / 'x.png'), str(tmp_path / 'x_pred.png')]
    namer = OutputNamer(str(tmp_path), inputs, reserved=[str(tmp_path / 'x_pred_1.png')])
    first = namer.path_for('x.png')
    again = namer.path_for('x.png')            # a second input with the same name
    other = namer.path_for('sub/y.jpg', '.png')
    assert first == str(tmp_path / 'x_pred_2.png')   # x_pred: input, x_pred_1: reserved
    assert again == str(tmp_path / 'x_pred_3.png')
    assert other == str(tmp_path / 'sub' / 'y_pred.png')
    plain = OutputNamer(str(tmp_path / 'vis'), suffix='')
    assert plain.path_for('a.png') == str(tmp_path / 'vis' / 'a.png')
    assert plain.path_for('a.png') == str(tmp_path / 'vis' / 'a_1.png')
    (tmp_path / 'file').write_text('')
    with pytest.raises(OutputPathError, match='output folder .*file is a file'):
        OutputNamer(str(tmp_path / 'file'))


# ------------------------------------------------------------ tools/predict.py
@pytest.fixture(scope='module')
def model(tmp_path_factory):
    from apis._inference_helpers import make_class_folders, save_random_checkpoint, write_config
    tmp = tmp_path_factory.mktemp('outputs')
    make_class_folders(str(tmp / 'train'))
    config = write_config(str(tmp / 'cls.py'), str(tmp / 'train'))
    ckpt = save_random_checkpoint(config, str(tmp / 'cls.pth'),
                                  classes=('ant', 'bee', 'cat', 'dog', 'eel', 'fox'))
    return config, ckpt


def run_predict(args, capsys):
    code = import_tool('predict').main(args)
    return code, capsys.readouterr()


def test_predict_out_dir_is_the_input_folder(model, tmp_path, capsys):
    """``--out-dir`` = the parent of a folder input, then = the folder of file
    inputs (one of them an earlier ``*_pred.png``): no input changes, every
    output has its own name and is printed."""
    imgs = tmp_path / 'imgs'
    for i, name in enumerate(('a.png', 'b.png', 'a_pred.png')):
        save_png(str(imgs / name), i)
    before = snapshot(str(imgs))
    code, cap = run_predict([*model, str(imgs), '--out-dir', str(tmp_path),
                             '--json', str(tmp_path / 'r.json')], capsys)
    assert code == 0
    with open(tmp_path / 'r.json') as f:
        outs = {osp.basename(r['image']): r['annotated'] for r in json.load(f)['results']}
    assert outs == {'a.png': str(imgs / 'a_pred_1.png'),          # a_pred.png is an input
                    'a_pred.png': str(imgs / 'a_pred_pred.png'),
                    'b.png': str(imgs / 'b_pred.png')}
    for out in outs.values():
        assert f'annotated image: {out}' in cap.out and osp.isfile(out)
    after = snapshot(str(imgs))
    for path, sha in before.items():
        assert after[path] == sha, f'{path} was overwritten'
    code, cap = run_predict([*model, str(imgs / 'a.png'), str(imgs / 'a_pred.png'),
                             '--out-dir', str(imgs)], capsys)
    assert code == 0
    assert f'annotated image: {imgs / "a_pred_1.png"}' in cap.out
    assert f'annotated image: {imgs / "a_pred_pred.png"}' in cap.out
    again = snapshot(str(imgs))
    for path, sha in before.items():
        assert again[path] == sha, f'{path} was overwritten'


def test_predict_same_file_names_do_not_collide(model, tmp_path, capsys):
    one = save_png(str(tmp_path / 'd1' / 'x.png'), 1)
    two = save_png(str(tmp_path / 'd2' / 'x.png'), 2)
    out_dir = tmp_path / 'vis'
    code, cap = run_predict([*model, one, two, '--out-dir', str(out_dir),
                             '--json', str(tmp_path / 'r.json')], capsys)
    assert code == 0
    with open(tmp_path / 'r.json') as f:
        results = json.load(f)['results']
    by_input = {r['image']: r['annotated'] for r in results}
    assert by_input == {one: str(out_dir / 'x_pred.png'), two: str(out_dir / 'x_pred_1.png')}
    # Each output shows its own input (not the other one written over it).
    drawn = [np.asarray(Image.open(by_input[p]).convert('RGB'), dtype=np.int64)
             for p in (one, two)]
    assert np.abs(drawn[0] - drawn[1]).mean() > 1
    # Two folder inputs with the same folder name: same relative names, deduplicated.
    save_png(str(tmp_path / 'p' / 'imgs' / 'y.png'), 3)
    save_png(str(tmp_path / 'q' / 'imgs' / 'y.png'), 4)
    code, cap = run_predict([*model, str(tmp_path / 'p' / 'imgs'), str(tmp_path / 'q' / 'imgs'),
                             '--out-dir', str(out_dir)], capsys)
    assert code == 0
    assert f'annotated image: {out_dir / "imgs" / "y_pred.png"}' in cap.out
    assert f'annotated image: {out_dir / "imgs" / "y_pred_1.png"}' in cap.out


def test_predict_json_over_an_input_is_refused(model, tmp_path, capsys):
    img = save_png(str(tmp_path / 'a.png'), 0)
    sha = digest(img)
    with pytest.raises(SystemExit) as exc:
        run_predict([*model, img, '--json', img], capsys)
    assert exc.value.code == 2
    assert f'--json {img} is one of the input files' in capsys.readouterr().err
    assert digest(img) == sha


# ------------------------------------------------------------ the other tools
def test_analyze_logs_out_over_a_log(tmp_path):
    analyze_logs = import_tool('analyze_logs')
    log = tmp_path / 'scalars.json'
    log.write_text('{"loss": 1.0, "step": 1}\n{"loss": 0.5, "step": 2}\n')
    sha = digest(log)
    with pytest.raises(SystemExit, match=r'^error: --out .*scalars.json is one of the input'):
        analyze_logs.main(['plot_curve', str(log), '--out', str(log)])
    assert digest(log) == sha


def test_visualize_attention_out_over_the_image(tmp_path, capsys):
    visualize_attention = import_tool('visualize_attention')
    img = save_png(str(tmp_path / 'a.png'), 0)
    cfg = tmp_path / 'c.py'
    cfg.write_text('x = 1\n')
    with pytest.raises(SystemExit):
        visualize_attention.parse_args([str(cfg), 'none', img, '--out', img])
    assert f'--out {img} is one of the input files' in capsys.readouterr().err


def test_confusion_matrix_outputs_over_inputs(tmp_path, capsys):
    confusion_matrix = import_tool('confusion_matrix')
    cfg = tmp_path / 'c.py'
    cfg.write_text('x = 1\n')
    res = tmp_path / 'r.pkl'
    res.write_bytes(b'')
    for argv, message in (([str(cfg), '--results', str(res), '--out', str(res)], '--out'),
                          ([str(cfg), '--results', str(res), '--json', str(cfg)], '--json'),
                          ([str(cfg), '--results', str(res), '--out', str(tmp_path / 'm.png'),
                            '--csv', str(tmp_path / 'm.png')], '--csv and --out')):
        with pytest.raises(SystemExit):
            confusion_matrix.parse_args(argv)
        assert message in capsys.readouterr().err


def test_test_tool_out_over_the_checkpoint(tmp_path, capsys):
    test_tool = import_tool('test')
    cfg = tmp_path / 'c.py'
    cfg.write_text('x = 1\n')
    ckpt = tmp_path / 'model.pkl'
    torch.save({}, ckpt)
    with pytest.raises(SystemExit):
        test_tool.parse_args([str(cfg), str(ckpt), '--out', str(ckpt)])
    assert f'--out {ckpt} is one of the input files' in capsys.readouterr().err


def test_visualize_coco_results_into_the_image_folder(tmp_path):
    vcr = import_tool('visualize_coco_results')
    images = tmp_path / 'images'
    save_png(str(images / 'a.png'), 0)
    save_png(str(images / 'sub' / 'a.png'), 1)
    ann = dict(images=[dict(id=1, file_name='a.png', height=32, width=32),
                       dict(id=2, file_name='sub/a.png', height=32, width=32)],
               categories=[dict(id=1, name='cat')],
               annotations=[dict(id=1, image_id=1, category_id=1, bbox=[2, 2, 8, 8], area=64,
                                 iscrowd=0)])
    (tmp_path / 'ann.json').write_text(json.dumps(ann))
    (tmp_path / 'r.json').write_text(json.dumps(
        [dict(image_id=2, category_id=1, bbox=[1, 1, 5, 5], score=0.9)]))
    before = snapshot(str(images))
    written = vcr.main([str(images), str(tmp_path / 'ann.json'), str(tmp_path / 'r.json'),
                        '--out-dir', str(images)])
    assert sorted(written) == sorted([str(images / 'a_1.png'), str(images / 'a_2.png')])
    after = snapshot(str(images))
    for path, sha in before.items():
        assert after[path] == sha, f'{path} was overwritten'
