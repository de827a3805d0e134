"""tools/analysis_tools/analyze_logs.py on generated MMEngine scalars.json logs."""
import json

import pytest
from PIL import Image

from _helpers import run_tool
from _tools import import_tool

analyze_logs = import_tool('analyze_logs')


def _write_log(path, epochs=3, iters=4, base=1.0, val_key='accuracy/top1'):
    lines = []
    step = 0
    for ep in range(1, epochs + 1):
        for it in range(iters):
            step += 1
            lines.append(dict(lr=0.1, data_time=0.01, loss=base / step, time=0.5 if it else 2.0,
                              epoch=ep, iter=step, memory=10, step=step))
        lines.append({val_key: 10.0 * ep + base, 'data_time': 0.01, 'time': 0.1, 'step': ep})
    with open(path, 'w') as f:
        f.write('\n'.join(json.dumps(x) for x in lines) + '\n\n')
    return str(path)


def test_plot_curve(tmp_path):
    a = _write_log(tmp_path / 'a.json')
    b = _write_log(tmp_path / 'b.json', base=2.0)
    out = tmp_path / 'sub' / 'curve.png'
    drawn = analyze_logs.main(['plot_curve', a, b, '--keys', 'loss', 'accuracy/top1',
                               '--out', str(out), '--legend', 'static', 'a2d2c'])
    xs, ys = drawn['loss']['a2d2c']
    assert xs == list(range(1, 13)) and ys[0] == 2.0
    assert drawn['accuracy/top1']['static'] == ([1, 2, 3], [11.0, 21.0, 31.0])
    with Image.open(out) as im:
        assert im.size[0] > 500 and im.size[1] > 500   # two panels


def test_plot_curve_cli_and_errors(tmp_path):
    a = _write_log(tmp_path / 'a.json', val_key='coco/bbox_mAP')
    out = tmp_path / 'c.png'
    proc = run_tool('analyze_logs.py', 'plot_curve', a, '--keys', 'coco/bbox_mAP', '--out', out)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and 'coco/bbox_mAP: 3 points' in proc.stdout
    bad = run_tool('analyze_logs.py', 'plot_curve', a, '--keys', 'coco/segm_mAP', '--out', out)
    assert bad.returncode != 0
    assert "key 'coco/segm_mAP' not found" in bad.stderr and "'coco/bbox_mAP'" in bad.stderr
    assert "'loss'" in bad.stderr
    missing = run_tool('analyze_logs.py', 'plot_curve', tmp_path / 'x.json', '--out', out)
    assert missing.returncode != 0 and 'log file not found' in missing.stderr
    (tmp_path / 'bad.json').write_text('{"loss": 1}\nnot json\n')
    with pytest.raises(analyze_logs.LogError, match='bad.json:2'):
        analyze_logs.load_json_log(str(tmp_path / 'bad.json'))
    with pytest.raises(analyze_logs.LogError, match='one name per log'):
        analyze_logs.plot_curve([a], ['loss'], str(out), legend=['x', 'y'])


def test_cal_train_time(tmp_path, capsys):
    log = _write_log(tmp_path / 'a.json')
    r = analyze_logs.main(['cal_train_time', log])[log]
    assert r['mean'] == pytest.approx(0.5) and r['iters'] == 9 and r['std'] == 0
    out = capsys.readouterr().out
    assert 'average iter time: 0.5000 s/iter' in out
    r2 = analyze_logs.cal_train_time(log, include_outliers=True)
    assert r2['mean'] == pytest.approx((9 * 0.5 + 3 * 2.0) / 12) and r2['iters'] == 12
    (tmp_path / 'val.json').write_text('{"accuracy/top1": 1.0, "step": 1}\n')
    with pytest.raises(analyze_logs.LogError, match='no training entries'):
        analyze_logs.cal_train_time(str(tmp_path / 'val.json'))
