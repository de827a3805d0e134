"""Predict with a trained classifier (MMPretrain) or detector (MMDetection) on images.

Usage::

    python tools/predict.py CONFIG CHECKPOINT INPUT [INPUT ...] [--topk 5]
        [--score-thr 0.3] [--out-dir DIR] [--json FILE] [--device cpu]
        [--cfg-options KEY=VALUE ...]

``INPUT`` are image files and folders (searched recursively for
.jpg/.jpeg/.png/.bmp/.ppm/.pgm/.tif/.tiff/.webp). The config's ``default_scope``
selects the task. Per image it prints the top-k classes with probabilities
(classification) or the detections above ``--score-thr`` (detection);
``--out-dir`` receives the annotated images: the input's name (with its
folder inside a folder input) plus ``_pred`` (``cat.png`` -> ``cat_pred.png``;
the input's format, PNG if Pillow cannot write it), and a counter
(``cat_pred_1.png``) when two inputs have the same name or the name is taken
by an input. No output ever overwrites an input (``mmdyn.utils.output_paths``); each
image's output path is printed. ``--json`` receives all results (it must not
be an input either). An image that cannot be read or predicted (not an image,
or one the test pipeline cannot take, e.g. 10000x10 pixels) is reported in one
line naming it and skipped, the others go on; the exit status is then 1. Bad
arguments exit with 2.
"""
import argparse
import json
import os
import os.path as osp
import pickle
import sys


def parse_args(argv=None):
    from mmdyn.engine import cli
    parser = argparse.ArgumentParser(description='Predict classes or detections for images '
                                     '(mmdyn)')
    parser.add_argument('config', help='config file (default_scope mmpretrain or mmdet)')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('inputs', nargs='+', metavar='INPUT',
                        help='image files and/or folders (searched recursively)')
    parser.add_argument('--topk', type=int, default=5,
                        help='classes printed per image (classification); default 5')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='keep detections with score >= this (detection); default 0.3')
    parser.add_argument('--out-dir', help='write the annotated images here')
    parser.add_argument('--json', dest='json_file', metavar='FILE',
                        help='write all results to this JSON file')
    cli.add_device_option(parser)
    cli.add_config_options(parser)
    cli.add_partial_checkpoint_option(parser)
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    cli.check_config_path(parser, args.config)
    cli.check_checkpoint_path(parser, args.checkpoint, urls=False)
    if args.topk < 1:
        parser.error(f'--topk must be >= 1, got {args.topk}')
    if not 0.0 <= args.score_thr <= 1.0:
        parser.error(f'--score-thr must be in [0, 1], got {args.score_thr}')
    from mmdyn.apis import find_images
    try:
        args.images = find_images(args.inputs)
    except (FileNotFoundError, ValueError) as err:
        parser.error(str(err))
    from mmdyn.utils.output_paths import OutputNamer, OutputPathError, check_output_path
    inputs = [args.config, args.checkpoint] + [path for path, _ in args.images]
    try:
        check_output_path(args.json_file, inputs, '--json')
        args.namer = (OutputNamer(args.out_dir, inputs, suffix='_pred',
                                  reserved=[args.json_file]) if args.out_dir else None)
    except OutputPathError as err:
        parser.error(str(err))
    return args, parser


#: Input formats the annotated image keeps; any other input gets a PNG.
OUTPUT_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm')


def output_extension(name: str) -> str:
    """The extension of the annotated image of input ``name``."""
    ext = osp.splitext(name)[1]
    return ext if ext.lower() in OUTPUT_EXTENSIONS else '.png'


def save_rgb(rgb, path: str) -> None:
    """Save an RGB array; the format follows the extension (PNG if unknown)."""
    from PIL import Image
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fmt = None if osp.splitext(path)[1].lower() in OUTPUT_EXTENSIONS else 'PNG'
    Image.fromarray(rgb).save(path, format=fmt)


def one_line(err: BaseException) -> str:
    """``err`` as one line: its message's first line (OpenCV's and PyTorch's run over
    several), prefixed by its type unless it is one of the tool's own errors."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = lines[0] if lines else ''
    if isinstance(err, (FileNotFoundError, ValueError)):
        return text or type(err).__name__
    return f'{type(err).__name__}: {text}' if text else type(err).__name__


def main(argv=None) -> int:
    """Run the tool; return the exit status (0 ok, 1 some image failed)."""
    args, parser = parse_args(argv)
    from mmdyn.apis import load_model
    try:
        predictor = load_model(args.config, args.checkpoint, device=args.device,
                               cfg_options=args.cfg_options,
                               strict=not args.allow_partial_checkpoint)
    except (FileNotFoundError, ValueError, RuntimeError, pickle.UnpicklingError) as err:
        # UnpicklingError: mmdyn's UnsafeCheckpointError (a non-allow-listed pickle)
        parser.exit(2, f'error: cannot load the model: {err}\n')
    print(f'{predictor.task} model {type(predictor.model).__name__} '
          f'({predictor.num_classes} classes from {predictor.classes_source}'
          f'{", A2D2C layers: %d" % len(predictor.a2d2c_layers) if predictor.a2d2c_layers else ""}'
          f'{", DMC layers: %d" % len(predictor.dmc_layers) if predictor.dmc_layers else ""})'
          f'; {len(args.images)} image(s)', flush=True)
    results, errors = [], []

    def report(path, err, what=''):
        if getattr(args, 'debug', False):
            import traceback
            traceback.print_exception(err)
        reason = one_line(err)
        print(f'{path}: error: {what}{reason}', file=sys.stderr, flush=True)
        errors.append(dict(image=path, error=f'{what}{reason}'))

    for path, name in args.images:
        try:  # one image never ends the batch: it is reported, the others go on
            result = predictor.predict(path, topk=args.topk, score_thr=args.score_thr)
        except Exception as err:  # noqa: BLE001 - reported per image, exit status 1
            report(path, err)
            continue
        print(f'{path}:\n{result.to_text()}', flush=True)
        entry = dict(image=path, **result.to_dict())
        if args.namer is not None:
            out = args.namer.path_for(name, output_extension(name))
            try:
                save_rgb(predictor.draw(path, result), out)
            except Exception as err:  # noqa: BLE001 - the prediction above stands
                report(path, err, 'annotated image not written: ')
            else:
                entry['annotated'] = out
                print(f'  annotated image: {out}', flush=True)
        results.append(entry)
    if args.json_file:
        os.makedirs(osp.dirname(osp.abspath(args.json_file)), exist_ok=True)
        with open(args.json_file, 'w') as f:
            json.dump(dict(config=args.config, checkpoint=args.checkpoint,
                           task=predictor.task, classes=list(predictor.classes),
                           results=results, errors=errors), f, indent=1)
        print(f'results written to {args.json_file}')
    if args.out_dir:
        print(f'annotated images written to {args.out_dir}')
    if errors:
        failed = len({e['image'] for e in errors})
        print(f'error: {failed} of {len(args.images)} image(s) failed (reported above)',
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    from mmdyn.engine import cli
    cli.run(main)
