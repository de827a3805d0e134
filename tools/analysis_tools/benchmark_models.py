#!/usr/bin/env python
"""Whole-network speed and memory: static backbones vs every mmdyn layer.

ResNet-18, ResNet-50 (``all_block_convs``) and MobileNetV2 1.0 backbones, K = 4,
built through mmpretrain's ``MODELS`` registry; KernelWarehouse as ``KW`` (1x) and
``KW-4x`` in its official placement. Measured side by side in one run,
interleaved (median of ``--repeats`` rounds): eval forward at each ``--batch-sizes``,
train forward+backward at ``--train-batch``, peak training memory (one fresh process
per model). Table on stdout, JSON/CSV/Markdown under ``--out``. What is measured and
how: ``mmdyn/analysis/benchmark.py`` and ``docs/benchmarks.md``.

Examples::

    python tools/analysis_tools/benchmark_models.py --threads 2
    python tools/analysis_tools/benchmark_models.py --models resnet50 --layers A2D2CPlus ODConv
    python tools/analysis_tools/benchmark_models.py --models resnet18 --layers KW KW-4x ODConv
    python tools/analysis_tools/benchmark_models.py --device cuda --amp
    python tools/analysis_tools/benchmark_models.py --quick      # tiny smoke run (seconds)
"""
import argparse
import json
import os
import os.path as osp
import sys

from mmdyn.analysis import benchmark as bm

#: The result files in ``--out`` and how an earlier run's copy is recognised (only
#: those are replaced: :func:`mmdyn.analysis.benchmark.check_result_files`).
RESULT_FILES = {
    'benchmark_models.json': ('env', 'args', 'rows'),
    'benchmark_models.csv': 'model,layer,params_m,',
    'benchmark_models.md': 'Measured with `tools/analysis_tools/benchmark_models.py`',
}


def parse_args(argv=None):
    from mmdyn.engine import cli  # mmengine: only once the tool runs
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    cli.add_device_option(parser)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--models', nargs='+', default=None, choices=list(bm.MODELS),
                        help='default: all')
    parser.add_argument('--layers', nargs='+', default=None,
                        help=f'mmdyn layers and variants to compare with static (default: '
                        f'all of {list(bm.DEFAULT_LAYERS[1:])}; variants: '
                        f'{bm.LAYER_VARIANTS}); the static backbone is always measured')
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=None,
                        help='eval batch sizes (default: 1 8)')
    parser.add_argument('--train-batch', type=int, default=None, help='default: 8')
    parser.add_argument('--input-size', type=int, default=None, help='default: 224')
    parser.add_argument('--kernel-num', type=int, default=4)
    parser.add_argument('--amp', action='store_true',
                        help='autocast (bfloat16 on CPU, float16 on CUDA)')
    parser.add_argument('--repeats', type=int, default=None, help='timed rounds (default: 5)')
    parser.add_argument('--warmup', type=int, default=None, help='untimed rounds (default: 2)')
    parser.add_argument('--no-memory', action='store_true',
                        help='skip the peak-memory processes')
    parser.add_argument('--memory-jobs', type=int, default=2,
                        help='peak-memory processes run at the same time (default: 2)')
    parser.add_argument('--quick', action='store_true',
                        help=f'tiny smoke configuration: {bm.QUICK} (explicit options win)')
    parser.add_argument('--out', default='outputs/benchmark_models',
                        help='folder of benchmark_models.{json,csv,md} (created if missing; '
                        'only earlier results of this tool are replaced)')
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    defaults = dict(models=list(bm.MODELS), layers=list(bm.DEFAULT_LAYERS), batch_sizes=[1, 8],
                    train_batch=8, input_size=224, repeats=5, warmup=2)
    if args.quick:
        defaults.update(bm.QUICK)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    unknown = [name for name in args.layers if name not in bm.DEFAULT_LAYERS]
    if unknown:
        parser.error(f'unknown layer(s) {unknown}; choose from {list(bm.DEFAULT_LAYERS)}')
    if args.repeats < 1 or args.warmup < 0:
        parser.error('--repeats must be >= 1 and --warmup >= 0')
    if min(args.batch_sizes + [args.train_batch, args.input_size, args.kernel_num]) < 1:
        parser.error('batch sizes, --train-batch, --input-size and --kernel-num must be >= 1')
    if args.threads < 0 or args.memory_jobs < 1:
        parser.error('--threads must be >= 0 and --memory-jobs >= 1')
    from mmdyn.utils.gpu_check import DeviceUnavailable, resolve_device
    from mmdyn.utils.output_paths import OutputPathError
    try:
        args.device = str(resolve_device(args.device))
        bm.check_result_files(args.out, RESULT_FILES)
    except (DeviceUnavailable, OutputPathError) as err:
        parser.error(str(err))
    return args


def main(argv=None):
    args = parse_args(argv)
    env = bm.environment(args.device, args.threads, args.amp)
    print(f'mmdyn model benchmark: {env}', file=sys.stderr)
    rows = bm.run_benchmark(args.models, args.layers, args.batch_sizes, args.train_batch,
                            args.input_size, args.kernel_num, args.device, args.amp,
                            args.threads, args.repeats, args.warmup, not args.no_memory,
                            args.memory_jobs)
    env['load_average_end'] = list(os.getloadavg()) if hasattr(os, 'getloadavg') else None
    print(bm.format_table(rows))
    targets = bm.check_targets(rows)
    if targets:
        print('\nIssue-9 targets (ratio to static, as measured):')
        for t in targets:
            print(f'  {t["model"]} {t["layer"]} {t["column"]}: {t["measured"]:.2f}x '
                  f'(target <= {t["limit"]}) {"met" if t["met"] else "MISSED"}')
    # all three at the end, each written whole and renamed (never a partial file)
    bm.write_result_files(args.out, {
        'benchmark_models.json': json.dumps(dict(env=env, args=vars(args), rows=rows,
                                                 targets=targets), indent=2),
        'benchmark_models.csv': bm.csv_text(rows),
        'benchmark_models.md': bm.markdown_table(rows, env),
    })
    print(f'\nresults written to {osp.join(args.out, "benchmark_models.{json,csv,md}")}')


if __name__ == '__main__':
    from mmdyn.engine import cli
    cli.run(main)
