"""Smoke test of tools/analysis_tools/benchmark_layers.py on one tiny configuration (timings are
not asserted: they belong to the benchmark, not to unit tests)."""
import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
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


# ------------------------------------------- arguments checked before measuring (issue 17)
@pytest.mark.parametrize('argv,message', [
    (['--sizes', '8'], r'--sizes 8: no benchmark shape has that spatial size; choose from '
                       r'56 28 14 7'),
    (['--batch-sizes', '0'], r'--batch-sizes must be >= 1, got 0'),
    (['--batch-sizes', '2', '-1'], r'--batch-sizes must be >= 1, got -1'),
    (['--kernel-num', '0'], r'--kernel-num must be >= 1'),
    (['--num-points', '0'], r'--num-points must be >= 1'),
    (['--threads', '-1'], r'--threads must be >= 0'),
    (['--device', 'gpu'], r"--device 'gpu' is not a device name"),
], ids=['sizes-8', 'batch-0', 'batch-negative', 'kernel-num-0', 'num-points-0', 'threads',
        'device-name'])
def test_bad_arguments_are_refused_before_anything_is_written(load_tool, tmp_path, capsys,
                                                              argv, message):
    out = tmp_path / 'bench'
    # tiny settings first (a later option wins), so that a run that is not refused is short
    tiny = ['--sizes', '7', '--batch-sizes', '1', '--layers', 'DyConv', '--repeats', '1',
            '--warmup', '0']
    with pytest.raises(SystemExit) as exc:
        load_tool('analysis_tools/benchmark_layers').main([*tiny, *argv, '--out', str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    assert 'Traceback' not in err
    assert not out.exists()  # no folder, no empty CSV


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks a machine without CUDA')
def test_cuda_without_cuda_is_refused(load_tool, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        load_tool('analysis_tools/benchmark_layers').main(['--device', 'cuda', '--sizes', '7',
                                                           '--layers', 'DyConv', '--repeats',
                                                           '1', '--out', str(tmp_path / 'b')])
    assert exc.value.code == 2
    assert '--device cuda: CUDA is not available' in capsys.readouterr().err


def test_out_that_is_a_file_is_refused_and_kept(load_tool, tmp_path, capsys):
    out = tmp_path / 'results.csv'
    out.write_text('my,own\n1,2\n')
    with pytest.raises(SystemExit) as exc:
        load_tool('analysis_tools/benchmark_layers').main(['--sizes', '7', '--layers', 'DyConv',
                                                           '--repeats', '1', '--out', str(out)])
    assert exc.value.code == 2
    assert f'--out {out} is a file; expected a folder' in capsys.readouterr().err
    assert out.read_text() == 'my,own\n1,2\n'


@pytest.mark.parametrize('name', ['benchmark_layers.csv', 'benchmark_layers.json',
                                  'benchmark_layers.md'])
def test_a_result_name_taken_by_a_foreign_file_is_refused(load_tool, tmp_path, capsys, name):
    """Only a file that an earlier run of the tool wrote is ever replaced."""
    (tmp_path / name).write_text('{"mine": 1}\n' if name.endswith('.json') else 'mine\n')
    before = (tmp_path / name).read_bytes()
    with pytest.raises(SystemExit) as exc:
        load_tool('analysis_tools/benchmark_layers').main(['--sizes', '7', '--layers', 'DyConv',
                                                           '--batch-sizes', '1', '--repeats',
                                                           '1', '--out', str(tmp_path)])
    assert exc.value.code == 2
    assert (f'{tmp_path / name} exists and was not written by this tool'
            in capsys.readouterr().err)
    assert (tmp_path / name).read_bytes() == before


def test_results_written_at_the_end_replace_an_earlier_run(load_tool, tmp_path, monkeypatch,
                                                           capsys):
    """Nothing is written until every result is ready: a run that fails (here while
    formatting its last table, when the old tool had already replaced the JSON and the
    CSV) leaves the earlier results as they were; a finished one replaces them whole
    (umask mode)."""
    tool = load_tool('analysis_tools/benchmark_layers')
    earlier = {'benchmark_layers.json': '{"env": {}, "args": {}, "rows": []}',
               'benchmark_layers.csv': 'layer,channels,size,batch,fwd_ms\nold,1,1,1,1\n',
               'benchmark_layers.md': 'Measured with `tools/analysis_tools/benchmark_layers.py` '
                                      'on an earlier day.\n'}
    for name, text in earlier.items():
        (tmp_path / name).write_text(text)
    argv = ['--sizes', '7', '--batch-sizes', '1', '--repeats', '1', '--warmup', '0',
            '--layers', 'DyConv', '--device', 'cpu', '--out', str(tmp_path)]

    def broken(rows, env):
        raise RuntimeError('interrupted')

    monkeypatch.setattr(tool, 'markdown_table', broken)
    with pytest.raises(RuntimeError, match='interrupted'):
        tool.main(argv)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == earlier
    monkeypatch.undo()
    tool.main(argv)  # the earlier results of the tool are replaced, nothing else is left
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(earlier)
    with open(tmp_path / 'benchmark_layers.csv') as f:
        assert [r['layer'] for r in csv.DictReader(f)] == ['Conv2d (static)', 'DyConv']
    umask = os.umask(0o022)
    os.umask(umask)
    assert all((tmp_path / n).stat().st_mode & 0o777 == 0o666 & ~umask for n in earlier)
    capsys.readouterr()


# benchmark_models.py shares the checks (mmdyn.analysis.benchmark.check_result_files)
@pytest.mark.parametrize('argv,message', [
    (['--batch-sizes', '0'], r'batch sizes, --train-batch, --input-size and --kernel-num '
                             r'must be >= 1'),
    (['--device', 'gpu'], r"--device 'gpu' is not a device name"),
    (['--memory-jobs', '0'], r'--memory-jobs >= 1'),
], ids=['batch-0', 'device-name', 'memory-jobs'])
def test_benchmark_models_bad_arguments(load_tool, tmp_path, capsys, argv, message):
    out = tmp_path / 'bench'
    with pytest.raises(SystemExit) as exc:
        load_tool('analysis_tools/benchmark_models').main(['--quick', '--no-memory', *argv,
                                                           '--out', str(out)])
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists()


def test_benchmark_models_out_file_and_foreign_results_are_refused(load_tool, tmp_path, capsys):
    tool = load_tool('analysis_tools/benchmark_models')
    out = tmp_path / 'file'
    out.write_text('x')
    with pytest.raises(SystemExit):
        tool.main(['--quick', '--no-memory', '--out', str(out)])
    assert f'--out {out} is a file' in capsys.readouterr().err
    (tmp_path / 'benchmark_models.md').write_text('# my notes\n')
    with pytest.raises(SystemExit):
        tool.main(['--quick', '--no-memory', '--out', str(tmp_path)])
    assert 'benchmark_models.md exists and was not written by this tool' in (
        capsys.readouterr().err)
    assert (tmp_path / 'benchmark_models.md').read_text() == '# my notes\n'
    assert out.read_text() == 'x'
