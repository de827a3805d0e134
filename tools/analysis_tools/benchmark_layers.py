#!/usr/bin/env python
"""Benchmark every mmdyn layer against ``nn.Conv2d`` at ResNet-50's 3x3 shapes.

For each shape (56x56x64, 28x28x128, 14x14x256, 7x7x512; stride 1, padding 1),
each batch size (1 and 32 by default) and each layer with its defaults (``KW``:
KernelWarehouse 1x, a warehouse of its own) — plus ``KW-4x`` (``cell_num_ratio=4``,
``mmdyn.analysis.benchmark.LAYER_VARIANTS``), A2D2C+ with
``impl='reference'`` and with each per-sample strategy forced, and the modules
of ``mmdyn.ops.MODULES`` at the same width (``DMC``: a 3x3 DynamicMaskConv2d
with its defaults, ``DMC[none,sum]``: its mask-free sum-fused ablation,
``AdaptiveEnhancement`` and ``MSFF``: the shape-preserving modules built from
``in_channels`` as mmcv's plugin builder does) — it measures, in the same run
and process as the static 3x3 conv:

* ``fwd``: forward time in train mode under ``torch.no_grad``,
* ``fwd+bwd``: forward + backward time in train mode,
* ``peak``: peak memory allocated during one forward + backward beyond what
  was allocated before it (CUDA: the allocator's peak; CPU: peak of the live
  tensor storages created by the ops, tracked with a TorchDispatchMode),

and each figure as a ratio to ``nn.Conv2d``. Times are medians of N rounds in
which every variant of a shape runs once in turn (interleaved), so drift of the
machine affects all variants alike. Results go to stdout as a table
and to ``<out>/benchmark_layers.{json,csv}``; the A2D2C+ targets of issue 2 are
checked and reported as measured. Needs only torch (tqdm optional).

Example::

    python tools/analysis_tools/benchmark_layers.py --batch-sizes 1 32 --repeats 5
"""
import argparse
import json
import math
import os.path as osp
import platform
import sys
import weakref

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from mmdyn.analysis.benchmark import (LAYER_VARIANTS, check_result_files, csv_text,
                                      layer_config, write_result_files)
from mmdyn.ops import LAYERS, MODULES
from mmdyn.utils.gpu_check import DeviceUnavailable, interleaved_medians, resolve_device
from mmdyn.utils.output_paths import OutputPathError

SHAPES = [(64, 56), (128, 28), (256, 14), (512, 7)]  # (channels, spatial size)
RATIOS = {'fwd_ms': 'fwd_x', 'fwd_bwd_ms': 'fwd_bwd_x', 'peak_mb': 'peak_x'}
#: The result files in ``--out`` and how an earlier run's copy is recognised (only
#: those are replaced: :func:`mmdyn.analysis.benchmark.check_result_files`).
RESULT_FILES = {
    'benchmark_layers.json': ('env', 'args', 'rows'),
    'benchmark_layers.csv': 'layer,channels,size,batch,',
    'benchmark_layers.md': 'Measured with `tools/analysis_tools/benchmark_layers.py`',
}


def build_variants(kernel_num, num_points):
    """Name -> factory(channels) of every benchmarked conv."""
    variants = {'Conv2d (static)': lambda c: nn.Conv2d(c, c, 3, padding=1, bias=False)}
    # Every layer with its defaults, then the variants of the model benchmark (KW-4x).
    for name in (*LAYERS, *LAYER_VARIANTS):
        kwargs = layer_config(name, kernel_num)
        cls = LAYERS[kwargs.pop('type')]
        if name.startswith('A2D2C'):
            kwargs['num_points'] = num_points
        variants[name] = (lambda cls=cls, kwargs=kwargs: lambda c: cls(c, c, 3, padding=1,
                                                                       **kwargs))()
    for strategy in ('grouped', 'loop', 'bmm', 'maps'):
        variants[f'A2D2CPlus[{strategy}]'] = (
            lambda s=strategy: lambda c: LAYERS['A2D2CPlus'](
                c, c, 3, padding=1, kernel_num=kernel_num, num_points=num_points,
                strategy=s))()
    variants['A2D2CPlus[reference]'] = lambda c: LAYERS['A2D2CPlus'](
        c, c, 3, padding=1, kernel_num=kernel_num, num_points=num_points, impl='reference')
    # The dynamic-mask-convolution family (kernel_num / num_points do not apply).
    variants['DMC'] = lambda c: MODULES['DMC'](c, c, 3, padding=1)
    variants['DMC[none,sum]'] = lambda c: MODULES['DMC'](c, c, 3, padding=1, mask='none',
                                                         fusion='sum')
    variants['AdaptiveEnhancement'] = lambda c: MODULES['AdaptiveEnhancement'](in_channels=c)
    variants['MSFF'] = lambda c: MODULES['MSFF'](in_channels=c)
    return variants


def peak_memory(fn, device):
    """Peak bytes allocated while ``fn`` runs, above the level before it."""
    if device.type == 'cuda':
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with _TensorMemoryTracker() as tracker:
        fn()
    return tracker.peak


class _TensorMemoryTracker(TorchDispatchMode):
    """CPU peak memory: the bytes of live tensor storages created by aten ops
    (forward and backward) while active, counted once per storage and released
    when the storage is freed. Library-internal scratch buffers (e.g. oneDNN
    workspaces) are not tensors and are not counted, for any layer alike."""

    def __init__(self):
        super().__init__()
        self.live, self.current, self.peak = {}, 0, 0

    def _release(self, key, size):
        if self.live.pop(key, None) is not None:
            self.current -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self.live:
                    self.live[key] = storage.nbytes()
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._release, key, storage.nbytes())
        return out


class _Progress:
    """tqdm if available, else a plain text bar on stderr."""

    def __init__(self, total):
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc='benchmark', unit='cfg', file=sys.stderr)
        except ImportError:
            self.bar, self.done, self.total = None, 0, total

    def update(self, text):
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            self.bar.update(1)
            return
        self.done += 1
        width = 30
        filled = int(width * self.done / self.total)
        print(f'\r[{"#" * filled}{"." * (width - filled)}] {self.done}/{self.total} {text:40s}',
              end='\n' if self.done == self.total else '', file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def run(args):
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = build_variants(args.kernel_num, args.num_points)
    if args.layers:
        variants = {k: v for k, v in variants.items()
                    if k in args.layers or k == 'Conv2d (static)'}
    shapes = [s for s in SHAPES if not args.sizes or s[1] in args.sizes]
    progress = _Progress(len(shapes) * len(args.batch_sizes) * len(variants))
    rows = []
    for channels, size in shapes:
        for batch in args.batch_sizes:
            torch.manual_seed(0)
            x = torch.randn(batch, channels, size, size, device=device)
            xg = x.clone().requires_grad_(True)
            layers = {}
            for name, factory in variants.items():
                torch.manual_seed(0)
                layers[name] = factory(channels).to(device).train()
            fwd = {name: _forward(layer, x) for name, layer in layers.items()}
            fwd_bwd = {name: _forward_backward(layer, xg) for name, layer in layers.items()}
            # Interleaved rounds: every variant is timed once per round, so drift
            # of the machine (frequency, other load) hits all of them alike.
            fwd_ms = interleaved_medians(fwd, device, args.repeats, args.warmup)
            fwd_bwd_ms = interleaved_medians(fwd_bwd, device, args.repeats, args.warmup)
            static = None
            for name in variants:
                row = dict(layer=name, channels=channels, size=size, batch=batch,
                           fwd_ms=1e3 * fwd_ms[name], fwd_bwd_ms=1e3 * fwd_bwd_ms[name],
                           peak_mb=peak_memory(fwd_bwd[name], device) / 2**20)
                static = static or row
                for key, ratio in RATIOS.items():
                    row[ratio] = row[key] / static[key] if static[key] > 0 else float('nan')
                rows.append(row)
                progress.update(f'{name} {channels}x{size}^2 b{batch}')
            del layers, fwd, fwd_bwd
    progress.close()
    return rows


def _forward(layer, x):
    def fn():
        with torch.no_grad():
            layer(x)
    return fn


def _forward_backward(layer, x):
    def fn():
        layer(x).sum().backward()
    return fn


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def print_table(rows):
    header = (f'{"layer":24s} {"shape":>12s} {"B":>3s} {"fwd ms":>9s} {"x":>6s} '
              f'{"fwd+bwd ms":>11s} {"x":>6s} {"peak MB":>9s} {"x":>6s}')
    print(header)
    print('-' * len(header))
    for r in rows:
        print(f'{r["layer"]:24s} {r["channels"]:>5d}x{r["size"]:>2d}^2 {r["batch"]:>3d} '
              f'{r["fwd_ms"]:9.2f} {r["fwd_x"]:6.2f} {r["fwd_bwd_ms"]:11.2f} '
              f'{r["fwd_bwd_x"]:6.2f} {r["peak_mb"]:9.1f} {r["peak_x"]:6.2f}')


def markdown_table(rows, env):
    lines = [f'Measured with `tools/analysis_tools/benchmark_layers.py` on {env["device_name"]} '
             f'({env["device"]}, {env["threads"]} threads, torch {env["torch"]}).', '',
             '| layer | shape | B | fwd ms | fwd x | fwd+bwd ms | fwd+bwd x | peak MB | peak x |',
             '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["layer"]} | {r["channels"]}x{r["size"]}² | {r["batch"]} | '
                     f'{r["fwd_ms"]:.2f} | {r["fwd_x"]:.2f} | {r["fwd_bwd_ms"]:.2f} | '
                     f'{r["fwd_bwd_x"]:.2f} | {r["peak_mb"]:.1f} | {r["peak_x"]:.2f} |')
    return '\n'.join(lines) + '\n'


def check_targets(rows, batch=32):
    """Issue-2 targets for A2D2C+ (default impl) forward at batch 32."""
    fast = {(r['channels'], r['size']): r for r in rows
            if r['layer'] == 'A2D2CPlus' and r['batch'] == batch}
    ref = {(r['channels'], r['size']): r for r in rows
           if r['layer'] == 'A2D2CPlus[reference]' and r['batch'] == batch}
    keys = [k for k in fast if k in ref]
    if not keys:
        return None
    speedup = [ref[k]['fwd_ms'] / fast[k]['fwd_ms'] for k in keys]
    vs_static = [fast[k]['fwd_x'] for k in keys]
    result = dict(
        batch=batch, shapes=[f'{c}x{s}^2' for c, s in keys],
        speedup_vs_reference=speedup, ratio_vs_static=vs_static,
        never_slower_than_reference=all(s >= 1.0 for s in speedup),
        geomean_speedup_vs_reference=geomean(speedup),
        geomean_ratio_vs_static=geomean(vs_static))
    result['targets_met'] = (result['never_slower_than_reference']
                             and result['geomean_speedup_vs_reference'] >= 2.5
                             and result['geomean_ratio_vs_static'] <= 1.6)
    print(f'\nA2D2C+ (default impl) forward, batch {batch}:')
    for shape, s, v in zip(result['shapes'], speedup, vs_static):
        print(f'  {shape:>9s}: {s:5.2f}x faster than reference, {v:5.2f}x the static conv')
    print(f'  geomean: {result["geomean_speedup_vs_reference"]:.2f}x faster than reference '
          f'(target >= 2.5), {result["geomean_ratio_vs_static"]:.2f}x the static conv '
          f'(target <= 1.6); never slower than reference: '
          f'{result["never_slower_than_reference"]}')
    print(f'  targets met: {result["targets_met"]}')
    return result


def parse_args(argv=None):
    """Parse and check every argument before anything is measured or written."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help="'cpu', 'cuda' or 'cuda:N' (default: cuda where available)")
    parser.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 32])
    parser.add_argument('--sizes', type=int, nargs='*', default=None,
                        help='only the shapes of these spatial sizes (of 56 28 14 7)')
    parser.add_argument('--layers', nargs='*', default=None,
                        help='only these variants (the static conv is always run)')
    parser.add_argument('--kernel-num', type=int, default=4)
    parser.add_argument('--num-points', type=int, default=100)
    parser.add_argument('--repeats', type=int, default=7)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: default)')
    parser.add_argument('--out', default='outputs/benchmark_layers',
                        help='folder of benchmark_layers.{json,csv,md} (created if missing; '
                        'only earlier results of this tool are replaced)')
    from mmdyn.engine import cli  # --debug
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0:
        parser.error('--repeats must be >= 1 and --warmup >= 0')
    for name in ('batch_sizes', 'kernel_num', 'num_points'):
        values = getattr(args, name)
        bad = [v for v in (values if isinstance(values, list) else [values]) if v < 1]
        if bad:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got '
                         f'{" ".join(map(str, bad))}')
    if args.threads < 0:
        parser.error(f'--threads must be >= 0 (0: torch\'s default), got {args.threads}')
    sizes = [size for _, size in SHAPES]
    unknown = [s for s in args.sizes or () if s not in sizes]
    if unknown:
        parser.error(f'--sizes {" ".join(map(str, unknown))}: no benchmark shape has that '
                     f'spatial size; choose from {" ".join(map(str, sizes))} (the 3x3 stage '
                     'shapes of ResNet-50)')
    known = build_variants(args.kernel_num, args.num_points)
    unknown = sorted(set(args.layers or ()) - set(known))
    if unknown:
        parser.error(f'unknown layer(s) {unknown}; choose from {list(known)}')
    try:
        args.device = str(resolve_device(args.device))
        check_result_files(args.out, RESULT_FILES)
    except (DeviceUnavailable, OutputPathError) as err:
        parser.error(str(err))
    return args


def main(argv=None):
    args = parse_args(argv)
    env = dict(torch=torch.__version__, device=str(args.device),
               device_name=(torch.cuda.get_device_name() if args.device.startswith('cuda')
                            else platform.processor() or platform.machine()),
               threads=torch.get_num_threads() if not args.threads else args.threads,
               python=platform.python_version())
    print(f'mmdyn layer benchmark: {env}', file=sys.stderr)
    rows = run(args)
    print_table(rows)
    targets = check_targets(rows)
    # all three at the end, each written whole and renamed (never a partial file)
    write_result_files(args.out, {
        'benchmark_layers.json': json.dumps(dict(env=env, args=vars(args), rows=rows,
                                                 a2d2c_plus_targets=targets), indent=2),
        'benchmark_layers.csv': csv_text(rows),
        'benchmark_layers.md': markdown_table(rows, env),
    })
    print(f'\nresults written to {osp.join(args.out, "benchmark_layers.{json,csv,md}")}')


if __name__ == '__main__':
    from mmdyn.engine import cli
    cli.run(main)
