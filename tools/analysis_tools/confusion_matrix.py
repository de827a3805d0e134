"""Confusion matrix and per-class accuracy of a classifier (MMPretrain configs).

Usage::

    python tools/analysis_tools/confusion_matrix.py CONFIG CHECKPOINT [--out cm.png] [options]
    python tools/analysis_tools/confusion_matrix.py CONFIG --results RESULTS.pkl [options]

    options: [--normalize] [--show-names] [--values {auto,on,off}]
             [--json [FILE]] [--csv [FILE]] [--device cpu] [--cfg-options ...]
             [--allow-partial-checkpoint]

With ``CHECKPOINT`` the config's ``test_dataloader`` is run through the model
(:func:`mmdyn.apis.load_model`, same preprocessing and attention temperature as
``tools/test.py``; a checkpoint that does not fit the model is refused unless
``--allow-partial-checkpoint``). With ``--results`` the predictions come from a
dump of ``tools/test.py CONFIG CHECKPOINT --out RESULTS.pkl``, read with an
allow-list unpickler (:func:`mmdyn.engine.result_files.load_results`), so a
tampered file cannot run code.

The matrix (rows: true class, columns: predicted class) is drawn to ``--out``,
the per-class accuracy is printed, and ``--json`` / ``--csv`` also write the
counts (default file names: ``--out`` with ``.json`` / ``.csv``). The metric and
the figure are :mod:`mmdyn.analysis.confusion_matrix`; see ``docs/inference.md``.
"""
import argparse
import json
import os
import os.path as osp
import pickle


def parse_args(argv=None):
    from mmdyn.engine import cli
    parser = argparse.ArgumentParser(description='Confusion matrix of a classifier (mmdyn)')
    parser.add_argument('config', help='MMPretrain config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint to run the test set with')
    parser.add_argument('--results', help='prediction dump of tools/test.py --out (.pkl) '
                        'instead of a checkpoint')
    parser.add_argument('--out', default='confusion_matrix.png',
                        help='output figure (PNG); default confusion_matrix.png')
    parser.add_argument('--normalize', action='store_true',
                        help='colour (and print values) normalised per true class')
    parser.add_argument('--show-names', action='store_true',
                        help='class names on the axes (default: class indices)')
    parser.add_argument('--values', choices=['auto', 'on', 'off'], default='auto',
                        help='write the values in the cells (auto: up to 20 classes)')
    parser.add_argument('--json', nargs='?', const='', default=None, metavar='FILE',
                        help='also write the matrix as JSON (default name: OUT with .json)')
    parser.add_argument('--csv', nargs='?', const='', default=None, metavar='FILE',
                        help='also write the matrix as CSV (default name: OUT with .csv)')
    parser.add_argument('--title', default=None, help='figure title')
    cli.add_device_option(parser)
    cli.add_config_options(parser)
    cli.add_partial_checkpoint_option(parser)
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    cli.check_config_path(parser, args.config)
    if (args.checkpoint is None) == (args.results is None):
        parser.error('give either CHECKPOINT or --results RESULTS.pkl (exactly one)')
    if args.checkpoint is not None:
        cli.check_checkpoint_path(parser, args.checkpoint)
    if args.results is not None and not osp.isfile(args.results):
        parser.error(f'results file not found: {args.results}')
    stem = osp.splitext(args.out)[0]
    args.json = stem + '.json' if args.json == '' else args.json
    args.csv = stem + '.csv' if args.csv == '' else args.csv
    from mmdyn.utils.output_paths import OutputPathError, check_distinct_outputs, check_output_path
    outputs = (('--out', args.out), ('--json', args.json), ('--csv', args.csv))
    try:
        for arg, path in outputs:
            check_output_path(path, (args.config, args.checkpoint, args.results), arg)
        check_distinct_outputs(outputs)
    except OutputPathError as err:
        parser.error(str(err))
    return args, parser


def _require_classification(predictor_cls, config: str) -> None:
    from mmdyn.apis import ClassificationPredictor
    if not issubclass(predictor_cls, ClassificationPredictor):
        raise ValueError(f'{config} is a {predictor_cls.task} config; confusion_matrix.py is '
                         f'for classification (default_scope mmpretrain) only')


def predicted_labels(args):
    """``(pred_labels, gt_labels, classes)`` from the checkpoint or the dump."""
    from mmdyn.analysis.confusion_matrix import load_prediction_dump
    from mmdyn.apis import config_class_names, load_model, predictor_class
    from mmdyn.engine.config import load_config
    if args.checkpoint is not None:
        predictor = load_model(args.config, args.checkpoint, device=args.device,
                               cfg_options=args.cfg_options,
                               strict=not args.allow_partial_checkpoint)
        _require_classification(type(predictor), args.config)
        return predictor.predict_test_set()
    preds, gts, num_classes = load_prediction_dump(args.results)
    cfg = load_config(args.config, args.cfg_options)
    _require_classification(predictor_class(cfg), args.config)
    return preds, gts, config_class_names(cfg, num_classes)


def main(argv=None) -> dict:
    """Run the tool; return the summary (``matrix``, ``classes``, ``accuracy``, ...)."""
    from mmdyn.analysis import confusion_matrix as cm
    args, parser = parse_args(argv)
    try:
        preds, gts, classes = predicted_labels(args)
    except (FileNotFoundError, ValueError, RuntimeError, pickle.UnpicklingError) as err:
        parser.exit(2, f'error: {err}\n')
    if not len(gts):
        parser.exit(2, 'error: the test set is empty\n')
    num = len(classes)
    if max(preds.max(), gts.max()) >= num:
        parser.exit(2, f'error: labels up to {max(preds.max(), gts.max())} but only {num} '
                    f'classes ({list(classes)[:5]}...)\n')
    matrix = cm.confusion_matrix(preds, gts, num)
    print(cm.format_report(matrix, classes))
    cm.plot_confusion_matrix(matrix, classes, args.out, args.normalize, args.show_names,
                             args.values, args.title)
    print(f'confusion matrix figure written to {args.out}')
    summary = dict(config=args.config, source=args.checkpoint or args.results,
                   **cm.summarize(matrix, classes))
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=1)
        print(f'matrix written to {args.json}')
    if args.csv:
        cm.write_csv(matrix, classes, args.csv)
        print(f'matrix written to {args.csv}')
    return summary


if __name__ == '__main__':
    from mmdyn.engine import cli
    cli.run(main)
