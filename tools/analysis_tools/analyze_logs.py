"""Plot curves and compute training time from MMEngine JSON logs.

Usage::

    python tools/analysis_tools/analyze_logs.py plot_curve LOG.json [LOG2.json ...]
        --keys loss accuracy/top1 coco/bbox_mAP --out curve.png
        [--legend NAME ...] [--title T]
    python tools/analysis_tools/analyze_logs.py cal_train_time LOG.json [LOG2.json ...]
        [--include-outliers]

A log is MMEngine's ``vis_data/scalars.json`` (or ``<timestamp>.json``): one JSON
object per line. Training entries carry ``loss``/``lr``/``time`` with
``step`` (or ``iter``) and ``epoch``; validation entries carry metrics such
as ``accuracy/top1``, ``coco/bbox_mAP``, ``coco/segm_mAP`` with ``step``
(the epoch for epoch-based loops, the iteration otherwise). Each key is drawn
in its own panel against its entries' ``step`` (falling back to ``iter``,
then ``epoch``, then the line number). Matplotlib runs with the Agg backend.
"""
import argparse
import json
import os
import os.path as osp
import sys
from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple


class LogError(ValueError):
    """A log file is missing, unreadable, or lacks a requested key."""


def load_json_log(path: str) -> List[dict]:
    """Read one JSON object per line (blank lines skipped).

    Raises:
        LogError: the file is missing, a line is not a JSON object, or there
            are no entries.
    """
    if not osp.isfile(path):
        raise LogError(f'log file not found: {path}')
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError as exc:
        raise LogError(f'{path}: cannot be read ({exc.strerror})') from None
    try:
        text = data.decode('utf-8')
    except UnicodeDecodeError as exc:
        raise LogError(f'{path}: not a text log (byte {exc.start} is not UTF-8); expected '
                       "MMEngine's scalars.json, one JSON object per line") from None
    if '\x00' in text:
        raise LogError(f'{path}: not a text log (it contains NUL bytes); expected '
                       "MMEngine's scalars.json, one JSON object per line")
    entries = []
    for lineno, line in enumerate(text.split('\n'), 1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LogError(f'{path}:{lineno}: not a JSON object ({exc.msg}); expected '
                           f"MMEngine's scalars.json format, one object per line") from None
        if not isinstance(obj, dict):
            raise LogError(f'{path}:{lineno}: expected a JSON object, got '
                           f'{type(obj).__name__}')
        entries.append(obj)
    if not entries:
        raise LogError(f'{path}: no log entries')
    return entries


_X_KEYS = ('step', 'iter', 'epoch')


def available_keys(entries: Sequence[dict]) -> List[str]:
    """Numeric keys found in the entries (excluding the x-axis keys)."""
    keys = OrderedDict()
    for e in entries:
        for k, v in e.items():
            if k not in _X_KEYS and isinstance(v, (int, float)) and not isinstance(v, bool):
                keys[k] = None
    return list(keys)


def extract_series(entries: Sequence[dict], key: str) -> Tuple[List[float], List[float]]:
    """``(xs, ys)`` of ``key`` over the entries that have it.

    Raises:
        LogError: no entry has ``key`` (the message lists the keys available).
    """
    xs, ys = [], []
    for i, e in enumerate(entries):
        if key in e and isinstance(e[key], (int, float)):
            x = next((e[k] for k in _X_KEYS if k in e), i)
            xs.append(x)
            ys.append(float(e[key]))
    if not xs:
        raise LogError(f'key {key!r} not found; keys available: {available_keys(entries)}')
    return xs, ys


def plot_curve(logs: Sequence[str], keys: Sequence[str], out: str,
               legend: Sequence[str] = None, title: str = None) -> Dict[str, dict]:
    """Draw one panel per key with one line per log and save to ``out``.

    Returns:
        ``{key: {legend: (xs, ys)}}``, what was drawn.

    Raises:
        LogError: missing file, unknown key, or a legend of the wrong length.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    if legend is not None and len(legend) != len(logs):
        raise LogError(f'--legend needs one name per log: {len(logs)} logs, '
                       f'{len(legend)} names')
    names = list(legend) if legend else [osp.splitext(osp.basename(p))[0] for p in logs]
    if len(set(names)) < len(names):
        names = [f'{n} ({i})' for i, n in enumerate(names)]
    data = {p: load_json_log(p) for p in logs}
    drawn: Dict[str, dict] = {}
    for key in keys:
        drawn[key] = {}
        for path, name in zip(logs, names):
            try:
                drawn[key][name] = extract_series(data[path], key)
            except LogError as exc:
                raise LogError(f'{path}: {exc}') from None
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 3.2 * len(keys)), squeeze=False)
    for ax, key in zip(axes[:, 0], keys):
        for name, (xs, ys) in drawn[key].items():
            ax.plot(xs, ys, marker='o' if len(xs) < 30 else None, ms=3, label=name)
        ax.set_ylabel(key)
        ax.set_xlabel('step')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return drawn


def cal_train_time(path: str, include_outliers: bool = False) -> dict:
    """Average iteration time of a log's training entries (the ``time`` key).

    The first logged interval of each epoch includes dataloader start-up and is
    excluded unless ``include_outliers``.

    Returns:
        Dict with ``mean``, ``std``, ``iters`` and per-epoch means
        (``slowest_epoch``/``fastest_epoch`` as ``(epoch, seconds)``, or
        ``None`` without epochs).

    Raises:
        LogError: missing file or no training entries with ``time``.
    """
    import numpy as np
    entries = [e for e in load_json_log(path) if 'time' in e and ('loss' in e or 'lr' in e)]
    if not entries:
        raise LogError(f'{path}: no training entries with a `time` key')
    by_epoch: Dict[int, List[float]] = OrderedDict()
    for e in entries:
        by_epoch.setdefault(e.get('epoch', 0), []).append(float(e['time']))
    if not include_outliers:
        by_epoch = OrderedDict((k, v[1:] if len(v) > 1 else v) for k, v in by_epoch.items())
    times = np.array([t for v in by_epoch.values() for t in v])
    means = {k: float(np.mean(v)) for k, v in by_epoch.items()}
    has_epochs = any('epoch' in e for e in entries)
    return dict(
        mean=float(times.mean()), std=float(times.std()), iters=int(times.size),
        slowest_epoch=max(means.items(), key=lambda kv: kv[1]) if has_epochs else None,
        fastest_epoch=min(means.items(), key=lambda kv: kv[1]) if has_epochs else None)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Analyse MMEngine JSON logs')
    sub = parser.add_subparsers(dest='task', required=True)
    p = sub.add_parser('plot_curve', help='plot metric/loss curves')
    p.add_argument('json_logs', nargs='+', help='scalars.json log files')
    p.add_argument('--keys', nargs='+', default=['loss'], help='keys to plot')
    p.add_argument('--out', required=True, help='output image (PNG/PDF/SVG)')
    p.add_argument('--legend', nargs='+', default=None, help='one name per log')
    p.add_argument('--title', default=None, help='figure title')
    t = sub.add_parser('cal_train_time', help='average time per iteration')
    t.add_argument('json_logs', nargs='+', help='scalars.json log files')
    t.add_argument('--include-outliers', action='store_true',
                   help='keep the first interval of every epoch')
    from mmdyn.engine import cli  # --debug
    cli.add_debug_option(parser)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from mmdyn.utils.output_paths import OutputPathError, check_output_path
    try:
        if args.task == 'plot_curve':
            check_output_path(args.out, args.json_logs, '--out')
            drawn = plot_curve(args.json_logs, args.keys, args.out, args.legend, args.title)
            for key, series in drawn.items():
                for name, (xs, ys) in series.items():
                    print(f'{name}: {key}: {len(xs)} points, last {ys[-1]:.4g} at step {xs[-1]}')
            print(f'saved {args.out}')
            return drawn
        results = {}
        for path in args.json_logs:
            r = cal_train_time(path, args.include_outliers)
            results[path] = r
            print(f'-----Analyze train time of {path}-----')
            if r['slowest_epoch'] is not None:
                print(f'slowest epoch {r["slowest_epoch"][0]}, average time is '
                      f'{r["slowest_epoch"][1]:.4f} s/iter')
                print(f'fastest epoch {r["fastest_epoch"][0]}, average time is '
                      f'{r["fastest_epoch"][1]:.4f} s/iter')
            print(f'time std over iters: {r["std"]:.4f}')
            print(f'average iter time: {r["mean"]:.4f} s/iter ({r["iters"]} logged intervals)')
        return results
    except (LogError, OutputPathError) as exc:
        sys.exit(f'error: {exc}')


if __name__ == '__main__':
    from mmdyn.engine import cli
    cli.run(main)
