"""tools/analysis_tools/benchmark_models.py: one tiny end-to-end run (ResNet-18 at 32x32, static vs
A2D2C+ vs KernelWarehouse 4x, memory processes included) and the pieces of
mmdyn.analysis.benchmark.
Timings are not asserted: they belong to the benchmark, not to unit tests."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _tools import tool_path
from mmdyn.analysis import benchmark as bm

ROOT = Path(__file__).resolve().parents[2]
TOOL = tool_path('analysis_tools/benchmark_models')


def test_quick_run_writes_table_json_csv_md(tmp_path):
    out = tmp_path / 'bench'
    proc = subprocess.run(
        [sys.executable, TOOL, '--quick', '--threads', '1', '--repeats', '1',
         '--warmup', '0', '--layers', 'A2D2CPlus', 'KW-4x', '--out', str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'train fwd+bwd b=2 ms' in proc.stdout and 'train peak MB' in proc.stdout
    assert 'benchmark' in proc.stderr  # the progress bar
    data = json.loads((out / 'benchmark_models.json').read_text())
    rows = data['rows']
    assert [(r['model'], r['layer']) for r in rows] == [
        ('resnet18', 'static'), ('resnet18', 'A2D2CPlus'), ('resnet18', 'KW-4x')]
    static, dyn, kw = rows
    for row in (dyn, kw):  # every ratio is to the static backbone of the same run
        for key in ('eval_b1', 'eval_b2', 'train_b2'):
            assert static[f'{key}_x'] == 1.0
            assert row[f'{key}_ms'] > 0
            assert row[f'{key}_x'] == pytest.approx(row[f'{key}_ms'] / static[f'{key}_ms'])
        assert static['train_memory_mb'] > 0 and row['train_memory_mb'] > 0
        assert row['train_memory_x'] == pytest.approx(row['train_memory_mb']
                                                      / static['train_memory_mb'])
        assert 'VmHWM' in row['memory_method'] or 'ru_maxrss' in row['memory_method']
    # 4 kernels per dynamic conv: the A2D2C+ backbone has about 4x the parameters
    assert 3.5 < dyn['params_m'] / static['params_m'] < 4.1
    # the official ResNet-18 KW 4x backbone (45,862,085 with its 512 -> 1000 classifier)
    assert kw['params_m'] == pytest.approx((45_862_085 - 513_000) / 1e6, abs=1e-9)
    assert data['env']['threads'] == 1 and len(data['env']['load_average_start']) == 3
    with open(out / 'benchmark_models.csv') as f:
        assert [r['layer'] for r in csv.DictReader(f)] == ['static', 'A2D2CPlus', 'KW-4x']
    md = (out / 'benchmark_models.md').read_text()
    assert md.count('| resnet18 |') == 3 and 'load average' in md


def test_unknown_layer_is_rejected(tmp_path):
    proc = subprocess.run([sys.executable, TOOL, '--layers', 'Nope', '--out',
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0 and "unknown layer(s) ['Nope']" in proc.stderr


def test_interleaved_rounds_rotate_and_take_medians():
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in 'abc'}
    medians = bm.interleaved_medians(steps, torch.device('cpu'), repeats=3, warmup=1)
    assert set(medians) == {'a', 'b', 'c'} and all(m >= 0 for m in medians.values())
    assert calls == list('abc' 'bca' 'cab' 'abc')  # every variant once per round


def test_tables_and_targets():
    rows = [dict(model='resnet50', layer='static', params_m=23.5, eval_b1_ms=10.0,
                 eval_b8_ms=40.0, train_b8_ms=100.0, train_memory_mb=900.0),
            dict(model='resnet50', layer='A2D2CPlus', params_m=90.0, eval_b1_ms=17.0,
                 eval_b8_ms=56.0, train_b8_ms=180.0, train_memory_mb=1080.0)]
    for row in rows:
        for key in ('eval_b1', 'eval_b8', 'train_b8', 'train_memory'):
            unit = 'mb' if key == 'train_memory' else 'ms'
            row[f'{key}_x'] = row[f'{key}_{unit}'] / rows[0][f'{key}_{unit}']
    assert bm.measure_columns(rows) == ['eval_b1_ms', 'eval_b8_ms', 'train_b8_ms',
                                        'train_memory_mb']
    targets = {t['column']: t for t in bm.check_targets(rows)}
    assert set(targets) == {'eval_b1', 'eval_b8', 'train_b8', 'train_memory'}
    assert targets['eval_b1']['met'] is False
    assert targets['eval_b1']['measured'] == pytest.approx(1.7)
    assert targets['eval_b8']['met'] is True and targets['train_b8']['met'] is False
    assert targets['train_memory']['met'] is True  # 1.2 <= 1.25
    text = bm.format_table(rows)
    assert 'eval fwd b=8 ms' in text and '1.70' in text
    env = dict(device_name='x86_64', device='cpu', threads=2, torch='2.x',
               load_average_start=[0.5, 0.4, 0.3])
    md = bm.markdown_table(rows, env)
    assert '| resnet50 | A2D2CPlus | 90.00 | 17.0 (1.70x) |' in md
    assert 'load average at the start 0.50' in md


def test_layer_config():
    assert bm.layer_config('DCD', 4) == dict(type='DCD')
    assert bm.layer_config('ODConv', 4) == dict(type='ODConv', kernel_num=4)
    assert bm.layer_config('KW', 4) == dict(type='KW')  # 1x: cell_num_ratio=1, its default
    cfg = bm.layer_config('KW-4x', 4)
    assert cfg == dict(type='KW', cell_num_ratio=4)
    cfg.pop('type')  # a copy: the table of variants is not changed
    assert bm.LAYER_VARIANTS['KW-4x']['type'] == 'KW'
    assert {'static', 'KW', 'KW-4x', 'A2D2CPlus', 'ODConv'} <= set(bm.DEFAULT_LAYERS)
    with pytest.raises(ValueError, match="unknown layer 'KW-3x'"):
        bm.layer_config('KW-3x', 4)
    with pytest.raises(ValueError, match='unknown model'):
        bm.build_backbone('vgg', 'static')


@pytest.mark.parametrize('model,layer,classifier,official', [
    ('resnet18', 'KW', 512 * 1000 + 1000, 11_932_148),
    ('mobilenet_v2', 'KW', 1280 * 1000 + 1000, 5_168_146),
    ('mobilenet_v2', 'KW-4x', 1280 * 1000 + 1000, 11_379_382),
])
def test_kernel_warehouse_rows_are_the_official_networks(model, layer, classifier, official):
    """KW rows use KW's own placement and sharing (not ``all_block_convs``): with a
    1000-class classifier they have the parameters of the official networks
    (docs/kernel_warehouse.md)."""
    net = bm.build_backbone(model, layer)
    assert sum(p.numel() for p in net.parameters()) + classifier == official
    names = set(net.dyn_conv_names)
    if model == 'resnet18':
        assert 'layer2.0.downsample.0' in names and 'layer1.0.conv1' in names
        assert len(net.kw_warehouse.names()) == 4  # one warehouse per stage
    else:
        assert 'conv1.conv' in names  # the stem too
