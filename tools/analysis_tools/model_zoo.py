#!/usr/bin/env python
"""Write the model-zoo table: params and MAdds of every config in model-index.yml.

The configs are the ``Config`` entries of the metafiles that ``model-index.yml``
imports (one ``configs/<method>/metafile.yml`` per method folder;
tests/configs/test_config_layout.py checks that every config file is listed). Each
model is built without data and counted with :func:`mmdyn.analysis.count_complexity`
(MMEngine's FlopAnalyzer plus mmdyn's handles, eval mode, batch 1): classifiers
whole at 224x224 (ImageNet) or 32x32 (CIFAR, SVHN, GTSRB), detectors'
backbone+neck at 800x1344 (MAdds) and the whole detector's parameters. The
paper's and the official code's figures are printed beside ours where a row
matches (:mod:`mmdyn.analysis.paper_figures`); "ours" accuracy cells stay empty
until measured.

Usage::

    python tools/analysis_tools/model_zoo.py [--out FILE] [--no-madds] [--filter STR]

The table is printed and written to ``--out`` (default
``outputs/model_zoo_table.md`` under the current folder). Its first line is the
marker :data:`MARKER`; an existing ``--out`` is only replaced when it starts
with that marker (a previous table of this tool), so no other file (a config,
a document such as docs/model_zoo.md) is ever overwritten: the tool refuses it
before counting anything.
"""
import argparse
import os
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MODEL_INDEX = osp.join(ROOT, 'model-index.yml')

#: First line of the written table (an HTML comment, invisible in rendered Markdown).
MARKER = '<!-- model-zoo table written by tools/analysis_tools/model_zoo.py -->'

#: Datasets whose configs count at 32x32 (the rest at 224x224).
SMALL_INPUT_DATASETS = ('cifar', 'svhn', 'gtsrb')


def list_configs(pattern: str = '', index: str = MODEL_INDEX):
    """Absolute paths of the configs the metafiles of ``index`` list, sorted,
    those whose path contains ``pattern``."""
    import yaml
    with open(index) as f:
        metafiles = yaml.safe_load(f)['Import']
    paths = []
    for metafile in metafiles:
        with open(osp.join(osp.dirname(index), metafile)) as f:
            paths += [osp.join(ROOT, m['Config']) for m in yaml.safe_load(f)['Models']]
    return sorted(p for p in paths if pattern in p)


def count_config(path: str, madds: bool) -> dict:
    from mmdyn.analysis.complexity import build_model_from_cfg, count_complexity, is_detector
    from mmdyn.analysis.paper_figures import PAPER_ACCURACY, match_paper_row
    from mmdyn.engine.config import load_config
    cfg = load_config(path, init_scope=True)
    model = build_model_from_cfg(cfg)
    row = dict(config=osp.relpath(path, ROOT),
               params=sum(p.numel() for p in model.parameters()) / 1e6)
    if madds:
        if is_detector(model):
            shape = (1, 3, 800, 1344)
            result = count_complexity(model, shape, forward=lambda m, x: m.extract_feat(x))
            row['madds_scope'] = 'backbone+neck 800x1344'
        else:
            size = 32 if any(d in osp.basename(path) for d in SMALL_INPUT_DATASETS) else 224
            shape = (1, 3, size, size)
            result = count_complexity(model, shape, forward=lambda m, x: m(x, mode='tensor'))
            row['madds_scope'] = f'{size}x{size}'
        row['madds'] = result.madds / 1e9
        row['madds_mmengine'] = result.madds_mmengine / 1e9
    match = match_paper_row(path)
    if match is not None:
        row['reference'] = match[1]
    stem = osp.splitext(osp.basename(path))[0]
    if stem in PAPER_ACCURACY:
        top1, source = PAPER_ACCURACY[stem]
        row['reference'] = dict(row.get('reference', {}), top1=top1, source=source)
    return row


def markdown(rows) -> str:
    from mmdyn.analysis.paper_figures import reference_accuracy
    lines = [
        '| config | params (M) | MAdds (G) | plain MMEngine MAdds (G) | input | '
        'reference params (M) | reference MAdds (G) | reference accuracy | reference | '
        'top-1 / mAP (ours) |',
        '|---|---|---|---|---|---|---|---|---|---|'
    ]
    for r in rows:
        ref = r.get('reference', {})
        lines.append(
            f'| {r["config"]} | {r["params"]:.2f} | '
            f'{r["madds"]:.3f} | {r["madds_mmengine"]:.3f} | {r["madds_scope"]} | '
            if 'madds' in r else f'| {r["config"]} | {r["params"]:.2f} | | | | ')
        lines[-1] += (f'{ref.get("params", ""):} | {ref.get("madds", "")} | '
                      f'{reference_accuracy(ref)} | {ref.get("source", "")} | |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', default=osp.join('outputs', 'model_zoo_table.md'),
                        help='the Markdown file to write (default: '
                        'outputs/model_zoo_table.md under the current folder); an existing '
                        'file is only replaced if it is a previous table of this tool')
    parser.add_argument('--no-madds', action='store_true', help='parameters only (fast)')
    parser.add_argument('--filter', default='', help='only configs whose path contains this')
    from mmdyn.engine import cli  # --debug
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    paths = list_configs(args.filter)
    if not paths:
        parser.error(f'no config of model-index.yml matches {args.filter!r}')
    from mmdyn.utils.output_paths import OutputPathError, check_output_path, check_own_output
    try:
        check_output_path(args.out, [MODEL_INDEX] + list_configs(), '--out')
        check_own_output(args.out, MARKER)
    except OutputPathError as err:
        parser.error(str(err))
    rows = []
    for i, path in enumerate(paths, 1):
        start = time.time()
        rows.append(count_config(path, not args.no_madds))
        print(f'[{i}/{len(paths)}] {rows[-1]["config"]}: {rows[-1]["params"]:.2f}M params'
              + (f', {rows[-1]["madds"]:.3f}G MAdds' if 'madds' in rows[-1] else '')
              + f' ({time.time() - start:.1f} s)', file=sys.stderr, flush=True)
    table = markdown(rows)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    try:  # again: a file may have appeared while counting
        mode = 'w' if check_own_output(args.out, MARKER) else 'x'
        with open(args.out, mode) as f:
            f.write(MARKER + '\n' + table)
    except OutputPathError as err:
        sys.exit(f'error: {err}')
    except FileExistsError:
        sys.exit(f'error: --out {args.out} was created by someone else while counting; it is '
                 'not replaced: choose another output path')
    print(table)
    print(f'written to {args.out}', file=sys.stderr)


if __name__ == '__main__':
    from mmdyn.engine import cli
    cli.run(main)
