"""Smoke test of tools/analysis_tools/benchmark_layers.py on one tiny configuration (timings are
not asserted: they belong to the benchmark, not to unit tests)."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import torch

from _tools import tool_path

ROOT = Path(__file__).resolve().parents[2]
TOOL = tool_path('analysis_tools/benchmark_layers')


def test_benchmark_writes_table_json_csv_md(tmp_path):
    out = tmp_path / 'bench'
    proc = subprocess.run(
        [sys.executable, TOOL, '--sizes', '7',
         '--batch-sizes', '2', '--repeats', '1', '--warmup', '0', '--layers', 'DyConv',
         'A2D2CPlus', 'A2D2CPlus[reference]', 'MSFF', 'DMC', 'AdaptiveEnhancement',
         'DMC[none,sum]', 'KW-4x', 'KW', '--out', str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert 'fwd+bwd ms' in proc.stdout and 'A2D2C+ (default impl) forward' not in proc.stdout
    data = json.loads((out / 'benchmark_layers.json').read_text())
    names = [r['layer'] for r in data['rows']]
    assert names == ['Conv2d (static)', 'A2D2CPlus', 'DyConv', 'KW', 'KW-4x',
                     'A2D2CPlus[reference]', 'DMC', 'DMC[none,sum]', 'AdaptiveEnhancement',
                     'MSFF']
    static = data['rows'][0]
    assert static['fwd_x'] == 1.0 and static['fwd_bwd_x'] == 1.0
    for row in data['rows']:
        assert row['fwd_ms'] > 0 and row['fwd_bwd_ms'] > 0 and row['peak_mb'] >= 0
        assert abs(row['fwd_x'] - row['fwd_ms'] / static['fwd_ms']) < 1e-9
    rows = {r['layer']: r for r in data['rows']}
    for name in ('DMC', 'DMC[none,sum]', 'AdaptiveEnhancement', 'MSFF', 'KW', 'KW-4x'):
        # measured side by side with the same static conv, at the same width
        assert (rows[name]['channels'], rows[name]['size']) == (512, 7)
        assert rows[name]['peak_mb'] > 0
        assert abs(rows[name]['fwd_bwd_x'] - rows[name]['fwd_bwd_ms'] / static['fwd_bwd_ms']) \
            < 1e-9
    with open(out / 'benchmark_layers.csv') as f:
        assert len(list(csv.DictReader(f))) == 10
    md = (out / 'benchmark_layers.md').read_text()
    assert '| A2D2CPlus[reference] | 512x7² | 2 |' in md
    assert '| MSFF | 512x7² | 2 |' in md and '| DMC[none,sum] | 512x7² | 2 |' in md
    assert '| KW | 512x7² | 2 |' in md and '| KW-4x | 512x7² | 2 |' in md


def test_kernel_warehouse_rows_are_1x_and_4x(load_tool):
    """``KW`` is KernelWarehouse with its defaults (1x, a warehouse of its own),
    ``KW-4x`` the same layer with four times as many cells as kernel partitions."""
    variants = load_tool('analysis_tools/benchmark_layers').build_variants(4, 100)
    for name, ratio in (('KW', 1.0), ('KW-4x', 4.0)):
        layer = variants[name](16)
        assert type(layer).__name__ == 'KWConv2d' and layer.kernel_size == (3, 3)
        warehouse = layer.kernel_warehouse
        assert warehouse.options_of(layer.warehouse_name)['cell_num_ratio'] == ratio
        # 16x16 cells of 1x1: a 3x3 kernel has 9 partitions, the warehouse 9 * ratio cells
        assert tuple(layer.cells.shape) == (int(9 * ratio), 16, 16, 1, 1)
        assert layer(torch.randn(2, 16, 7, 7)).shape == (2, 16, 7, 7)


def test_benchmark_rejects_unknown_layer(tmp_path):
    proc = subprocess.run(
        [sys.executable, TOOL, '--layers', 'Nope',
         '--out', str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "unknown layer(s) ['Nope']" in proc.stderr
