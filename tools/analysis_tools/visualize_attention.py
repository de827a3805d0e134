"""Visualise what one A2D2C / A2D2C+ layer does on an image (the paper's Fig. 4).

Usage::

    python tools/analysis_tools/visualize_attention.py CONFIG CHECKPOINT IMAGE --out fig.png
        [--layer NAME] [--sampling random|fixed|none] [--shape H W] [--seed 0]
        [--cfg-options KEY=VALUE ...] [--allow-partial-checkpoint]

``CHECKPOINT`` may be ``none`` to use a randomly initialised model. A
checkpoint (a file or a URL, loaded weights-only) that does not fit the model
(missing, unexpected or shape-mismatched keys) is refused with a one-line
error, unless ``--allow-partial-checkpoint`` (loads what fits, with a warning). The image
goes through the model's data preprocessor and ``extract_feat`` (backbone and
neck of a classifier or detector); the chosen A2D2C layer (default: the first
one) is hooked with :class:`mmdyn.analysis.A2D2CAttentionRecorder`. The figure
shows (a) the input image, (b) the layer's output (mean over channels) with the
sampled points marked, (c) the per-kernel attention π averaged over output
channels (± std) and (d) the K x C_out attention heatmap.

``--sampling`` sets the sampling of every A2D2C layer for this run (the model
runs in eval mode); by default the layer's training sampling is shown, so the
M random points of Eq. 3 are visible (eval mode normally averages all points).
"""
import argparse
import os
import os.path as osp
import sys


def parse_args(argv=None):
    from mmdyn.engine import cli
    parser = argparse.ArgumentParser(description='Visualise A2D2C sampled points and '
                                     'attention (mmdyn)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help="checkpoint file, or 'none' for random weights")
    parser.add_argument('image', help='input image')
    parser.add_argument('--out', required=True, help='output figure (PNG)')
    parser.add_argument('--layer', default=None, help='A2D2C layer name (default: first)')
    parser.add_argument('--sampling', choices=['random', 'fixed', 'none'], default=None,
                        help="sampling to show (default: each layer's training sampling)")
    parser.add_argument('--shape', type=int, nargs='+', default=[224],
                        help='resize the image to H W (one value = square); default 224')
    parser.add_argument('--seed', type=int, default=0, help='seed of the point sampling')
    parser.add_argument('--list-layers', action='store_true',
                        help='print the A2D2C layer names and exit')
    cli.add_config_options(parser)
    cli.add_partial_checkpoint_option(parser)
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    cli.check_config_path(parser, args.config)
    if osp.isdir(args.image):
        parser.error(f'IMAGE must be one image file; {args.image} is a folder')
    if not osp.isfile(args.image):
        parser.error(f'image not found: {args.image}')
    if args.checkpoint.lower() != 'none' and '://' not in args.checkpoint \
            and not osp.isfile(args.checkpoint):
        parser.error(f"checkpoint not found: {args.checkpoint} (use 'none' for random "
                     f'weights)')
    if len(args.shape) not in (1, 2):
        parser.error(f'--shape takes H W or one size, got {args.shape}')
    from mmdyn.utils.output_paths import OutputPathError, check_output_path
    try:
        check_output_path(args.out, (args.config, args.checkpoint, args.image), '--out')
    except OutputPathError as err:
        parser.error(str(err))
    return args


def load_weights(model, checkpoint, allow_partial=False):
    """Load ``checkpoint`` (weights-only) into ``model``; exit with a one-line
    error if it does not fit (unless ``allow_partial``: warn, load what fits)."""
    import warnings

    from mmengine.runner.checkpoint import _load_checkpoint_to_model

    from mmdyn.engine import (CheckpointMismatchError, UnsafeCheckpointError,
                              check_state_dict_fits, read_checkpoint)
    try:
        ckpt = read_checkpoint(checkpoint, map_location='cpu')
        if not isinstance(ckpt, dict):
            sys.exit(f'error: checkpoint {checkpoint} holds a {type(ckpt).__name__}, '
                     'not a state dict')
        check_state_dict_fits(model, ckpt, source=f'checkpoint {checkpoint}')
    except CheckpointMismatchError as err:
        if not allow_partial:
            sys.exit(f'error: {err}; pass --allow-partial-checkpoint to load it anyway')
        warnings.warn(f'{err}; loading what fits (--allow-partial-checkpoint)')
    except UnsafeCheckpointError as err:
        sys.exit(f'error: {err}')
    _load_checkpoint_to_model(model, ckpt, strict=False)


def load_image(path, hw):
    """Read ``path`` as RGB (:func:`mmdyn.apis.read_image`), resize to ``hw``; return
    (uint8 HxWx3 array, CHW tensor).

    Raises:
        ValueError: ``path`` is not a readable image (one line naming it).
    """
    import numpy as np
    import torch
    from PIL import Image

    from mmdyn.apis.images import read_image
    img = Image.fromarray(read_image(path)[..., ::-1]).resize((hw[1], hw[0]), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    return arr, torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def preprocess(model, chw):
    """Run the model's data preprocessor on one image (expects BGR if it converts)."""
    import torch
    pre = getattr(model, 'data_preprocessor', None)
    if pre is None:
        return chw.float().unsqueeze(0)
    # OpenMMLab pipelines load BGR; to_rgb/bgr_to_rgb in the preprocessor flips it.
    data = pre(dict(inputs=[chw.flip(0)], data_samples=None), False)
    return data['inputs'] if isinstance(data, dict) else torch.stack(data[0])


def draw_figure(image, record, out_path, title=''):
    """Draw the four panels for one :class:`A2D2CRecord` and save to ``out_path``
    (:func:`mmdyn.apis.draw_attention_figure`, side by side, 100 dpi)."""
    import cv2

    from mmdyn.apis.drawing import draw_attention_figure
    rgb = draw_attention_figure(image, record, title=title, dpi=100)
    os.makedirs(osp.dirname(osp.abspath(out_path)), exist_ok=True)
    if not cv2.imwrite(out_path, rgb[..., ::-1]):
        raise OSError(f'could not write {out_path}')


def main(argv=None):
    args = parse_args(argv)
    import torch
    if not args.list_layers:
        try:  # before the model is built: a non-image fails at once, in one line
            image, chw = load_image(args.image, (args.shape[0], args.shape[-1]))
        except ValueError as err:
            sys.exit(f'error: {err}')

    from mmdyn.analysis import A2D2CAttentionRecorder, find_a2d2c_layers
    from mmdyn.analysis.complexity import build_model_from_cfg
    from mmdyn.engine.config import load_config
    cfg = load_config(args.config, args.cfg_options, init_scope=True)
    model = build_model_from_cfg(cfg)
    if args.checkpoint.lower() != 'none':
        load_weights(model, args.checkpoint, args.allow_partial_checkpoint)
    model.eval()
    layers = find_a2d2c_layers(model)
    if not layers:
        sys.exit(f'error: the model of {args.config} has no A2D2C/A2D2C+ layer')
    if args.list_layers:
        print('\n'.join(layers))
        return None
    name = args.layer or next(iter(layers))
    if name not in layers:
        sys.exit(f'error: {name!r} is not an A2D2C layer; available: {list(layers)}')
    for layer in layers.values():
        layer.eval_sampling = args.sampling or layer.sampling
    x = preprocess(model, chw)
    torch.manual_seed(args.seed)
    with torch.no_grad(), A2D2CAttentionRecorder(model, [name]) as rec:
        if hasattr(model, 'extract_feat'):
            model.extract_feat(x)
        else:
            model(x)
    if not rec.records[name]:
        sys.exit(f'error: layer {name!r} was not called by the forward pass')
    record = rec.records[name][0]
    draw_figure(image, record, args.out, title=f'{name} ({type(layers[name]).__name__})')
    attn = record.attention[0]
    print(f'layer {name}: output {tuple(record.output.shape)}, sampling {record.sampling}, '
          f'points {0 if record.positions is None else record.positions.size(1)}, '
          f'mean π per kernel {[round(v, 4) for v in attn.mean(1).tolist()]}')
    print(f'saved {args.out}')
    return record


if __name__ == '__main__':
    from mmdyn.engine import cli
    cli.run(main)
