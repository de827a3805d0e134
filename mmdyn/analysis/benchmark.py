"""Whole-network benchmark: static backbones vs every mmdyn layer.

The library of ``tools/analysis_tools/benchmark_models.py``.

For each model (ResNet-18, ResNet-50, MobileNetV2 1.0; backbone only) it builds the
static backbone from mmpretrain's ``MODELS`` registry (``ResNet`` / ``MobileNetV2``) and
one dynamic backbone per mmdyn layer (``DynResNet`` with
``dyn_placement='all_block_convs'`` / ``DynMobileNetV2``, ``dyn_conv=dict(type=layer,
kernel_num=K)``) and per entry of :data:`LAYER_VARIANTS` (KernelWarehouse 4x), then
measures, in one run:

* ``eval`` forward time at each batch size (``model.eval()``, ``torch.no_grad``);
* ``train`` forward + backward time at the training batch size (``model.train()``,
  loss = sum of the mean of every output, then ``zero_grad(set_to_none=True)``);
* peak training memory: one forward + backward of the training batch in a fresh
  process per model (so one model's allocations cannot hide or inflate another's).
  CPU: the growth of the process's peak resident set size, ``VmHWM`` after
  resetting it (``/proc/self/clear_refs``) minus ``VmRSS`` before the step (after
  ``malloc_trim``), i.e. everything the step allocates (activations, gradients,
  library workspaces); ``ru_maxrss`` where ``/proc`` is not available. CUDA:
  ``torch.cuda.max_memory_allocated`` growth.

KernelWarehouse (``KW``: 1x, its default ``cell_num_ratio=1``; ``KW-4x``) is built in
its own official placement (the backbones' default for a ``dyn_conv`` that
:func:`~mmdyn.models.backbones.kernel_warehouse.is_kernel_warehouse`): the ResNets'
block convolutions and strided ``downsample`` convolutions with one warehouse per
stage, MobileNetV2's stem too, with the official sharing (:data:`MODEL_OPTIONS`); the
networks whose parameter counts ``docs/kernel_warehouse.md`` gives.

Times are medians over ``repeats`` interleaved rounds: every model variant runs once
per round (the starting variant rotates), after ``warmup`` untimed rounds, so a
change of machine load hits every variant alike. Every figure is also given as a
ratio to the static backbone of the same model measured in the same run.
"""
import contextlib
import csv
import ctypes
import gc
import io
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import torch

from mmdyn.ops import LAYERS

#: Model name -> (static mmpretrain config, dynamic config without ``dyn_conv``).
MODELS = {
    'resnet18': (dict(type='ResNet', depth=18, out_indices=(3, ), style='pytorch'),
                 dict(type='DynResNet', depth=18, out_indices=(3, ), style='pytorch',
                      dyn_placement='all_block_convs')),
    'resnet50': (dict(type='ResNet', depth=50, out_indices=(3, ), style='pytorch'),
                 dict(type='DynResNet', depth=50, out_indices=(3, ), style='pytorch',
                      dyn_placement='all_block_convs')),
    'mobilenet_v2': (dict(type='MobileNetV2', widen_factor=1.0),
                     dict(type='DynMobileNetV2', widen_factor=1.0)),
}
STATIC = 'static'
#: Benchmarked variants of a layer with other options than its defaults: row name ->
#: ``dyn_conv`` config (read by both benchmarks). ``'KW'`` alone is KernelWarehouse 1x.
LAYER_VARIANTS = {'KW-4x': dict(type='KW', cell_num_ratio=4)}
#: Layers of the default run (``static``, every layer of ``mmdyn.ops.LAYERS``, the variants).
DEFAULT_LAYERS = (STATIC, *LAYERS, *LAYER_VARIANTS)
#: ``dyn_conv`` options of one (model, row) on top of :func:`layer_config`, so that the
#: row is the official network: MobileNetV2 KW 4x shares a warehouse within a layer
#: only (official configs/mobilenetv2_100/kw4x_mobilenetv2_100.json).
MODEL_OPTIONS = {('mobilenet_v2', 'KW-4x'): dict(sharing_range=('layer', ))}

#: Issue-9 targets (ratios to static, CPU, 2 threads), checked and reported as measured.
TARGETS = {
    ('resnet50', 'A2D2CPlus'): {'eval_b1': 1.6, 'eval_b8': 1.5, 'train_b8': 1.7,
                                'train_memory': 1.25},
    ('resnet50', 'ODConv'): {'eval_b1': 1.6, 'eval_b8': 1.6, 'train_memory': 1.6},
}

QUICK = dict(models=['resnet18'], layers=[STATIC, 'A2D2CPlus'], batch_sizes=[1, 2],
             train_batch=2, input_size=32, repeats=2, warmup=1)


def layer_config(layer: str, kernel_num: int) -> dict:
    """``dyn_conv`` config of an mmdyn layer or of a :data:`LAYER_VARIANTS` row
    (``kernel_num`` for the layers with a kernel bank; DCD and KW have none)."""
    if layer in LAYER_VARIANTS:
        return dict(LAYER_VARIANTS[layer])
    if layer not in LAYERS:
        raise ValueError(f'unknown layer {layer!r}; expected one of {list(DEFAULT_LAYERS)}')
    if LAYERS[layer].has_kernel_bank:
        return dict(type=layer, kernel_num=kernel_num)
    return dict(type=layer)


def build_backbone(model: str, layer: str, kernel_num: int = 4) -> torch.nn.Module:
    """The backbone ``model`` with ``layer`` in its dynamic positions (``'static'``:
    mmpretrain's own backbone), built through mmpretrain's ``MODELS`` registry."""
    from mmpretrain.registry import MODELS as REGISTRY

    from mmdyn.models.backbones.kernel_warehouse import is_kernel_warehouse  # (registers)
    if model not in MODELS:
        raise ValueError(f'unknown model {model!r}; expected one of {list(MODELS)}')
    static_cfg, dyn_cfg = MODELS[model]
    if layer == STATIC:
        cfg = dict(static_cfg)
    else:
        dyn_conv = dict(layer_config(layer, kernel_num), **MODEL_OPTIONS.get((model, layer), {}))
        cfg = dict(dyn_cfg, dyn_conv=dyn_conv)
        if is_kernel_warehouse(dyn_conv):  # its own official placement, not dyn_placement
            cfg.pop('dyn_placement', None)
    torch.manual_seed(0)
    # Not init_weights(): the construction-time init (nn.Conv2d's, each mmdyn layer's
    # own) is as good for timing, and mmengine's init logging is long.
    return REGISTRY.build(cfg)


def autocast_context(device: torch.device, amp: bool):
    """``torch.autocast`` (bfloat16 on CPU, float16 on CUDA) if ``amp``, else nothing."""
    if not amp:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if device.type == 'cpu' else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def eval_step(model, x, device, amp):
    """One timed eval forward."""
    def step():
        with torch.no_grad(), autocast_context(device, amp):
            model(x)
    return step


def train_step(model, x, device, amp):
    """One timed training forward + backward (gradients freed afterwards)."""
    def step():
        with autocast_context(device, amp):
            outs = model(x)
            outs = outs if isinstance(outs, (tuple, list)) else (outs, )
            loss = sum(o.float().mean() for o in outs)
        loss.backward()
        model.zero_grad(set_to_none=True)
    return step


def interleaved_medians(steps: Dict[str, Callable[[], None]], device: torch.device,
                        repeats: int, warmup: int,
                        progress: Optional[Callable[[str], None]] = None) -> Dict[str, float]:
    """Median seconds of each step over ``repeats`` rounds after ``warmup`` rounds.

    Every step runs once per round; the first step of a round rotates, so no
    variant always runs right after the same other one."""
    names = list(steps)
    times = {name: [] for name in names}
    for r in range(warmup + repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            _sync(device)
            start = time.perf_counter()
            steps[name]()
            _sync(device)
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
            if progress is not None:
                progress(name)
    return {name: statistics.median(t) for name, t in times.items()}


# --------------------------------------------------------------------------- memory
def _proc_status_kb(field: str) -> Optional[int]:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``); False where not possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    try:
        ctypes.CDLL('libc.so.6').malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _map_large_blocks() -> bool:
    """``mallopt(M_MMAP_THRESHOLD, 128 KiB)``: glibc serves every block from 128 KiB on
    by its own mapping and unmaps it when freed (the default threshold grows with the
    program, and freed blocks below it stay resident), so the resident set follows the
    live tensors and the peak is repeatable."""
    try:
        return ctypes.CDLL('libc.so.6').mallopt(-3, 128 * 1024) == 1
    except (OSError, AttributeError):
        return False


def _disable_transparent_hugepages() -> bool:
    """``prctl(PR_SET_THP_DISABLE)``: resident memory then grows by 4 KB pages, not by
    2 MB huge pages, which makes the RSS measurement repeatable."""
    try:
        return ctypes.CDLL('libc.so.6').prctl(41, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def measure_train_memory(model: str, layer: str, batch: int, input_size: int, kernel_num: int,
                         device: str, amp: bool, threads: int, steps: int = 2) -> dict:
    """Peak memory growth of a training forward + backward (run it in a fresh process:
    :func:`memory_in_subprocess`): one untimed warm-up step (lazy library
    initialisation), then the largest growth over ``steps`` measured steps.

    Returns:
        ``{'peak_mb', 'method'}``.
    """
    dev = torch.device(device)
    if threads:
        torch.set_num_threads(threads)
    no_thp = dev.type == 'cpu' and _disable_transparent_hugepages()
    mapped = dev.type == 'cpu' and _map_large_blocks()
    net = build_backbone(model, layer, kernel_num).to(dev)
    net.train()  # mmpretrain's ResNet.train returns None
    x = torch.randn(batch, 3, input_size, input_size, device=dev)
    step = train_step(net, x, dev, amp)
    step()  # warm-up
    peaks = []
    for _ in range(steps):
        gc.collect()
        if dev.type == 'cuda':
            torch.cuda.synchronize(dev)
            base = torch.cuda.memory_allocated(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            step()
            torch.cuda.synchronize(dev)
            peaks.append(torch.cuda.max_memory_allocated(dev) - base)
            method = 'torch.cuda.max_memory_allocated growth'
            continue
        _malloc_trim()
        base_kb = _proc_status_kb('VmRSS')
        if base_kb is not None and _reset_peak_rss():
            step()
            peaks.append((_proc_status_kb('VmHWM') - base_kb) * 1024)
            method = ('VmHWM (reset via /proc/self/clear_refs) - VmRSS before the step, after '
                      'malloc_trim' + (', transparent huge pages off' if no_thp else '')
                      + (', blocks >= 128 KiB mmapped' if mapped else ''))
        else:
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            step()
            peaks.append((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
            method = 'ru_maxrss growth (a lower bound: no way to reset the peak here)'
    return dict(peak_mb=max(peaks) / 2**20, method=method)


def memory_in_subprocess(model: str, layer: str, batch: int, input_size: int, kernel_num: int,
                         device: str, amp: bool, threads: int, timeout: float = 1800) -> dict:
    """:func:`measure_train_memory` in a fresh Python process."""
    cfg = dict(model=model, layer=layer, batch=batch, input_size=input_size,
               kernel_num=kernel_num, device=device, amp=amp, threads=threads)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env['PYTHONPATH'] = root + os.pathsep + env.get('PYTHONPATH', '')
    proc = subprocess.run([sys.executable, '-m', 'mmdyn.analysis.benchmark', json.dumps(cfg)],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=root)
    if proc.returncode != 0:
        raise RuntimeError(f'memory measurement of {model}/{layer} failed:\n{proc.stderr[-2000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _memories(model, layers, batch, input_size, kernel_num, device, amp, threads, jobs,
              progress) -> Dict[str, dict]:
    from concurrent.futures import ThreadPoolExecutor

    def one(name):
        result = memory_in_subprocess(model, name, batch, input_size, kernel_num, device, amp,
                                      threads)
        progress(f'{model} memory {name}')
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return dict(zip(layers, pool.map(one, layers)))


# --------------------------------------------------------------------------- the run
class Progress:
    """tqdm if installed, else a plain text bar on stderr."""

    def __init__(self, total: int, desc: str = 'benchmark'):
        self.total, self.done = total, 0
        try:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit='step', file=sys.stderr)
        except ImportError:
            self.bar = None

    def __call__(self, text: str = '') -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(1)
            return
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        print(f'\r[{"#" * filled}{"." * (width - filled)}] {self.done}/{self.total} '
              f'{text[:40]:40s}', end='\n' if self.done >= self.total else '', file=sys.stderr,
              flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _kinds(batch_sizes: Sequence[int], train_batch: int) -> List[tuple]:
    return [(f'eval_b{b}', 'eval', b) for b in batch_sizes] + [(f'train_b{train_batch}', 'train',
                                                                 train_batch)]


def run_benchmark(models: Sequence[str], layers: Sequence[str], batch_sizes: Sequence[int],
                  train_batch: int, input_size: int = 224, kernel_num: int = 4,
                  device: str = 'cpu', amp: bool = False, threads: int = 0, repeats: int = 5,
                  warmup: int = 2, memory: bool = True, memory_jobs: int = 2) -> List[dict]:
    """Measure every (model, layer); returns one row per pair (static first).

    The memory processes of a model run after its timings, ``memory_jobs`` at a
    time (each measures its own process's peak, so they do not disturb each other).
    """
    dev = torch.device(device)
    if threads:
        torch.set_num_threads(threads)
    layers = [STATIC] + [name for name in layers if name != STATIC]
    kinds = _kinds(batch_sizes, train_batch)
    total = len(models) * ((warmup + repeats) * len(kinds) * len(layers)
                           + (len(layers) if memory else 0))
    progress = Progress(total)
    rows = []
    try:
        for model in models:
            nets = {name: build_backbone(model, name, kernel_num).to(dev) for name in layers}
            params = {name: sum(p.numel() for p in net.parameters()) / 1e6
                      for name, net in nets.items()}
            results = {name: dict(model=model, layer=name, params_m=params[name])
                       for name in layers}
            for key, mode, batch in kinds:
                torch.manual_seed(0)
                x = torch.randn(batch, 3, input_size, input_size, device=dev)
                for net in nets.values():
                    net.train(mode == 'train')
                make = eval_step if mode == 'eval' else train_step
                steps = {name: make(net, x, dev, amp) for name, net in nets.items()}
                medians = interleaved_medians(
                    steps, dev, repeats, warmup,
                    lambda name, key=key: progress(f'{model} {key} {name}'))
                for name in layers:
                    results[name][f'{key}_ms'] = 1e3 * medians[name]
            del nets
            gc.collect()
            if memory:
                memories = _memories(model, layers, train_batch, input_size, kernel_num, device,
                                     amp, threads, memory_jobs, progress)
                for name in layers:
                    results[name]['train_memory_mb'] = memories[name]['peak_mb']
                    results[name]['memory_method'] = memories[name]['method']
            static = results[STATIC]
            for name in layers:
                row = results[name]
                for key in [k for k in list(row) if k.endswith('_ms') or k.endswith('_mb')]:
                    base = static.get(key)
                    row[key.rsplit('_', 1)[0] + '_x'] = (row[key] / base if base else float('nan'))
                rows.append(row)
    finally:
        progress.close()
    return rows


def environment(device: str, threads: int, amp: bool) -> dict:
    """What the numbers were measured on (machine load included)."""
    dev = torch.device(device)
    name = (torch.cuda.get_device_name(dev) if dev.type == 'cuda'
            else platform.processor() or platform.machine())
    load = os.getloadavg() if hasattr(os, 'getloadavg') else (float('nan'), ) * 3
    return dict(torch=torch.__version__, device=str(dev), device_name=name,
                threads=threads or torch.get_num_threads(), cpus=os.cpu_count(), amp=amp,
                python=platform.python_version(), load_average_start=list(load))


def measure_columns(rows: Iterable[dict]) -> List[str]:
    """The measured keys (``*_ms`` then ``*_mb``) present in ``rows``, in order."""
    keys = []
    for row in rows:
        for key in row:
            if (key.endswith('_ms') or key.endswith('_mb')) and key not in keys:
                keys.append(key)
    return sorted(keys, key=lambda k: (k.endswith('_mb'), not k.startswith('eval'),
                                       int(k.split('_b')[1].split('_')[0]) if '_b' in k else 0))


def _label(key: str) -> str:
    kind, _, unit = key.rpartition('_')
    mode, _, batch = kind.partition('_b')
    if key == 'train_memory_mb':
        return 'train peak MB'
    return f'{mode} {"fwd" if mode == "eval" else "fwd+bwd"} b={batch} {unit}'


def format_table(rows: List[dict]) -> str:
    """Plain-text table: value and ratio to static for every measured column."""
    keys = measure_columns(rows)
    header = f'{"model":13s} {"layer":10s} {"params M":>8s}' + ''.join(
        f' {_label(k):>22s} {"x":>5s}' for k in keys)
    lines = [header, '-' * len(header)]
    for r in rows:
        line = f'{r["model"]:13s} {r["layer"]:10s} {r["params_m"]:8.2f}'
        for k in keys:
            ratio = r.get(k.rsplit('_', 1)[0] + '_x', float('nan'))
            line += f' {r.get(k, float("nan")):22.1f} {ratio:5.2f}'
        lines.append(line)
    return '\n'.join(lines)


def markdown_table(rows: List[dict], env: dict) -> str:
    """Markdown table (values with their ratio to static) for ``docs/benchmarks.md``."""
    keys = measure_columns(rows)
    load = env.get('load_average_start') or [float('nan')]
    lines = [f'Measured with `tools/analysis_tools/benchmark_models.py` on {env["device_name"]} '
             f'({env["device"]}, {env["threads"]} threads, torch {env["torch"]}'
             f'{", AMP" if env.get("amp") else ""}; 1-min load average at the start '
             f'{load[0]:.2f}).', '',
             '| model | layer | params M | ' + ' | '.join(_label(k) for k in keys) + ' |',
             '|---|---|---|' + '---|' * len(keys)]
    for r in rows:
        cells = []
        for k in keys:
            ratio = r.get(k.rsplit('_', 1)[0] + '_x', float('nan'))
            cells.append(f'{r.get(k, float("nan")):.1f} ({ratio:.2f}x)')
        lines.append(f'| {r["model"]} | {r["layer"]} | {r["params_m"]:.2f} | '
                     + ' | '.join(cells) + ' |')
    return '\n'.join(lines) + '\n'


def check_targets(rows: List[dict]) -> List[dict]:
    """Each issue-9 target whose row and column were measured, with the measured ratio."""
    found = []
    by_key = {(r['model'], r['layer']): r for r in rows}
    for (model, layer), targets in TARGETS.items():
        row = by_key.get((model, layer))
        if row is None:
            continue
        for column, limit in targets.items():
            ratio = row.get(column + '_x')
            if ratio is None or (isinstance(ratio, float) and math.isnan(ratio)):
                continue
            found.append(dict(model=model, layer=layer, column=column, limit=limit,
                              measured=ratio, met=ratio <= limit))
    return found


# --------------------------------------------------------------------------- results
def is_earlier_result(path: str, signature) -> bool:
    """Whether the file ``path`` is a result an earlier run of the same benchmark wrote.

    Args:
        path: An existing file.
        signature: For a ``.json`` file, the keys its top-level object must have; for
            any other file, the start of its first line (a CSV header, a Markdown
            table's "Measured with `tools/...`" line).
    """
    if path.endswith('.json'):
        try:
            with open(path, encoding='utf-8') as f:
                data = json.load(f)
        except (OSError, ValueError):
            return False
        return isinstance(data, dict) and all(key in data for key in signature)
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return f.readline().startswith(signature)
    except OSError:
        return False


def check_result_files(out_dir: str, signatures: Dict[str, object], arg: str = '--out') -> None:
    """Refuse, before anything is measured, an output folder the results cannot go to.

    ``out_dir`` must be a folder or a path where one can be created, and each result
    file of ``signatures`` (file name -> :func:`is_earlier_result` signature) that
    exists there must be a result of an earlier run of the same tool: a benchmark
    never writes over a file it did not create.

    Raises:
        mmdyn.utils.output_paths.OutputPathError: One line naming the argument and
            the file.
    """
    from mmdyn.utils.output_paths import OutputPathError
    full = os.path.abspath(os.path.expanduser(out_dir))
    if os.path.lexists(full) and not os.path.isdir(full):
        raise OutputPathError(f'{arg} {out_dir} is a file; expected a folder for the results '
                              '(created if missing)')
    probe = full
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise OutputPathError(f'{arg} {out_dir} cannot be created: {probe} is a file')
    if not os.access(probe, os.W_OK | os.X_OK):
        raise OutputPathError(f'{arg} {out_dir} cannot be written: {probe} is not writable')
    for name, signature in signatures.items():
        path = os.path.join(out_dir, name)
        if os.path.isdir(path):
            raise OutputPathError(f'{arg} {out_dir}: {path} is a folder; choose another {arg}')
        if os.path.lexists(path) and not is_earlier_result(path, signature):
            raise OutputPathError(f'{arg} {out_dir}: {path} exists and was not written by this '
                                  f'tool; choose another {arg} or remove the file')


def csv_text(rows: List[dict]) -> str:
    """``rows`` as CSV text (the union of their keys as columns, in order of appearance).

    Raises:
        ValueError: No rows (a benchmark never writes an empty CSV).
    """
    if not rows:
        raise ValueError('no measurement to write')
    fields: List[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_result_files(out_dir: str, contents: Dict[str, str]) -> List[str]:
    """Write the result files (file name -> text) into ``out_dir`` (created if missing).

    Each file is written whole to a temporary name beside it and renamed at the end
    (:func:`mmdyn.utils.output_paths.replace_file`, the umask's mode), so an
    interrupted run leaves the earlier results or none, never a partial or empty file.

    Returns:
        The paths written.
    """
    from mmdyn.utils.output_paths import atomic_output
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, name) for name in contents]
    # every file is written before the first rename (when the stack closes)
    with contextlib.ExitStack() as stack:
        for path, text in zip(paths, contents.values()):
            with open(stack.enter_context(atomic_output(path)), 'w', encoding='utf-8',
                      newline='') as f:
                f.write(text)
    return paths


def _worker_main(argv: List[str]) -> None:
    cfg = json.loads(argv[0])
    print(json.dumps(measure_train_memory(**cfg)))


if __name__ == '__main__':
    _worker_main(sys.argv[1:])
