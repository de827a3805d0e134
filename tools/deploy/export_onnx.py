"""Export an mmdyn classifier, or a detector's backbone + neck, to ONNX and check it.

Usage::

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT --out model.onnx
        [--dynamic-batch] [--opset N] [--shape H W] [--exporter torchscript|dynamo]
        [--rtol 1e-4] [--skip-check] [--cfg-options KEY=VALUE ...]

MMPretrain configs export the whole classifier (preprocessed image -> logits);
MMDetection configs (Mask R-CNN, ...) export the backbone and the neck (outputs:
the FPN levels). The checkpoint must fit the model exactly. After the export,
onnxruntime runs the file at batch 0, 1 and 3 (``--dynamic-batch``; batch 1 only
for a static graph) beside PyTorch on the same random input and the largest
absolute and relative differences are printed; the exit status is 1 when the
relative difference exceeds ``--rtol`` or the graph fails at a batch size that
PyTorch runs (batch 0 is skipped, and says so, for a model that PyTorch itself
cannot run on an empty batch). ``--out`` may not be the config or the
checkpoint. Bad arguments exit with 2. Library: :mod:`mmdyn.deploy`; guide:
``docs/deploy.md``.
"""
import argparse
import os.path as osp
import pickle
import sys


def parse_args(argv=None):
    from mmdyn.deploy.onnx import DEFAULT_OPSET, DEFAULT_RTOL, EXPORTERS
    from mmdyn.engine import cli
    parser = argparse.ArgumentParser(
        description='Export an mmdyn classifier or detector backbone+neck to ONNX and '
        'compare onnxruntime with PyTorch')
    parser.add_argument('config', help='config file (default_scope mmpretrain or mmdet)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='the .onnx file to write')
    parser.add_argument('--dynamic-batch', action='store_true',
                        help='dynamic batch axis (default: fixed batch 1)')
    parser.add_argument('--opset', type=int,
                        help='ONNX opset version; default ' + ', '.join(
                            f'{v} ({k})' for k, v in DEFAULT_OPSET.items()))
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help='input height and width; default 224 224 (classifier), '
                        '800 1344 (detector)')
    parser.add_argument('--exporter', choices=EXPORTERS, default='torchscript',
                        help="'torchscript' (default, needs onnx) or 'dynamo' (also "
                        'needs onnxscript)')
    parser.add_argument('--rtol', type=float, default=DEFAULT_RTOL,
                        help='largest accepted max|onnx - torch| / max|torch| per output; '
                        f'default {DEFAULT_RTOL:g}')
    parser.add_argument('--skip-check', action='store_true',
                        help='do not run the onnxruntime comparison')
    cli.add_config_options(parser)
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    cli.check_config_path(parser, args.config)
    cli.check_checkpoint_path(parser, args.checkpoint)
    if osp.isdir(args.out):
        parser.error(f'--out {args.out} is a folder; expected the path of the .onnx file')
    from mmdyn.utils.output_paths import OutputPathError, check_output_path
    try:
        check_output_path(args.out, [args.config, args.checkpoint], '--out')
    except OutputPathError as err:
        parser.error(str(err))
    if args.opset is not None and not 9 <= args.opset <= 25:
        parser.error(f'--opset must be in [9, 25], got {args.opset}')
    if args.shape is not None and min(args.shape) < 1:
        parser.error(f'--shape must be two positive integers H W, got {args.shape}')
    if not args.rtol > 0:
        parser.error(f'--rtol must be > 0, got {args.rtol}')
    return args, parser


def main(argv=None) -> int:
    """Run the tool; return the exit status (0 ok, 1 above tolerance)."""
    args, parser = parse_args(argv)
    from mmdyn.deploy import (build_export_model, compare_with_onnxruntime, export_onnx,
                              onnx_opset)
    try:
        model = build_export_model(args.config, args.checkpoint, args.shape, args.cfg_options)
    except (FileNotFoundError, ValueError, RuntimeError, KeyError,
            pickle.UnpicklingError) as err:
        parser.exit(2, f'error: cannot load the model: {err}\n')
    try:
        export_onnx(model.module, args.out, model.input_shape, model.output_names,
                    dynamic_batch=args.dynamic_batch, opset=args.opset,
                    exporter=args.exporter)
    except (ImportError, ValueError) as err:
        parser.exit(2, f'error: cannot export: {err}\n')
    what = 'backbone + neck' if model.task == 'detection' else 'classifier'
    shape = ', '.join(map(str, ('batch' if args.dynamic_batch else 1, *model.input_shape)))
    print(f'exported {model.task} model ({what}) to {args.out}: input "input" ({shape}), '
          f'outputs {", ".join(model.output_names)}; opset {onnx_opset(args.out)}, {args.exporter} '
          'exporter', flush=True)
    if model.preprocess:
        print('the input is the preprocessed image: ' + ', '.join(
            f'{k}={v}' for k, v in model.preprocess.items()), flush=True)
    if args.skip_check:
        print('onnxruntime check skipped (--skip-check)')
        return 0
    batches = (0, 1, 3) if args.dynamic_batch else (1, )
    try:
        results = compare_with_onnxruntime(model.module, args.out, model.input_shape, batches)
    except ImportError as err:
        parser.exit(2, f'error: {err}\n')
    except RuntimeError as err:
        print(f'error: {err}; {args.out} was written but is not trustworthy', file=sys.stderr)
        return 1
    worst = 0.0
    for r in results:
        if r.not_run is not None:
            print(f'batch {r.batch} not checked: {r.not_run}', flush=True)
            continue
        print(f'onnxruntime vs PyTorch, batch {r.batch}: max abs diff {r.max_abs:.3e}, max '
              f'relative diff {r.max_rel:.3e} ({r.worst_output})', flush=True)
        worst = max(worst, r.max_rel)
    if not args.dynamic_batch:
        print('static graph: checked at batch 1 only (--dynamic-batch exports any batch size)')
    if not worst <= args.rtol:
        print(f'error: the ONNX graph differs from PyTorch by {worst:.3e} (relative), more '
              f'than --rtol {args.rtol:g}; {args.out} was written but is not trustworthy',
              file=sys.stderr)
        return 1
    print(f'OK: within --rtol {args.rtol:g}')
    return 0


if __name__ == '__main__':
    from mmdyn.engine import cli
    cli.run(main)
