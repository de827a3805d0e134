"""Visualise what one A2D2C / A2D2C+ layer does on an image (the paper's Fig. 4).

Usage::

    python tools/visualize_attention.py CONFIG CHECKPOINT IMAGE --out fig.png
        [--layer NAME] [--sampling random|fixed|none] [--shape H W] [--seed 0]
        [--cfg-options KEY=VALUE ...]

``CHECKPOINT`` may be ``none`` to use a randomly initialised model. The image
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

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)


def parse_args(argv=None):
    from mmengine.config import DictAction
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
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value pairs')
    args = parser.parse_args(argv)
    for path, what in ((args.config, 'config file'), (args.image, 'image')):
        if not osp.isfile(path):
            parser.error(f'{what} not found: {path}')
    if args.checkpoint.lower() != 'none' and not osp.isfile(args.checkpoint):
        parser.error(f"checkpoint not found: {args.checkpoint} (use 'none' for random "
                     f'weights)')
    if len(args.shape) not in (1, 2):
        parser.error(f'--shape takes H W or one size, got {args.shape}')
    return args


def load_image(path, hw):
    """Read ``path`` as RGB, resize to ``hw``; return (uint8 HxWx3 array, CHW tensor)."""
    import numpy as np
    import torch
    from PIL import Image
    img = Image.open(path).convert('RGB').resize((hw[1], hw[0]), Image.BILINEAR)
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
    """Draw the four panels for one :class:`A2D2CRecord` and save to ``out_path``."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from mmdyn.analysis import positions_to_yx
    feat = record.output[0].float().mean(0).cpu().numpy()
    attn = record.attention[0].float().cpu().numpy()             # (K, C_out)
    num_k = attn.shape[0]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.4),
                             gridspec_kw=dict(width_ratios=[1, 1, 0.8, 1.6]))
    axes[0].imshow(image)
    axes[0].set_title('(a) input')
    axes[0].axis('off')
    axes[1].imshow(feat, cmap='viridis')
    if record.positions is not None:
        yx = positions_to_yx(record.positions[0], record.out_hw).cpu().numpy()
        axes[1].scatter(yx[:, 1], yx[:, 0], s=14, c='red', marker='x', linewidths=1.2,
                        label=f'M={len(yx)} sampled points')
        axes[1].legend(loc='lower right', fontsize=7)
    axes[1].set_title(f'(b) output mean over channels {record.out_hw[0]}x{record.out_hw[1]}\n'
                      f'sampling: {record.sampling}' +
                      (' (all positions)' if record.positions is None else ''), fontsize=9)
    axes[1].axis('off')
    axes[2].bar(range(num_k), attn.mean(1), yerr=attn.std(1), capsize=4, color='tab:blue')
    axes[2].axhline(1.0 / num_k, color='gray', ls='--', lw=1, label='uniform 1/K')
    axes[2].set_xticks(range(num_k))
    axes[2].set_xlabel('kernel k')
    axes[2].set_ylabel('π (mean ± std over output channels)')
    axes[2].set_title(f'(c) attention per kernel, T={record.temperature:g}', fontsize=9)
    axes[2].legend(fontsize=7)
    im = axes[3].imshow(attn, aspect='auto', cmap='magma', interpolation='nearest')
    axes[3].set_yticks(range(num_k))
    axes[3].set_ylabel('kernel k')
    axes[3].set_xlabel('output channel n')
    axes[3].set_title('(d) π[k, n] (one weight set per output channel)', fontsize=9)
    fig.colorbar(im, ax=axes[3], fraction=0.04)
    fig.suptitle(title or record.name)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    import torch

    from mmdyn.analysis import A2D2CAttentionRecorder, find_a2d2c_layers
    from mmdyn.analysis.complexity import build_model_from_cfg, load_config
    cfg = load_config(args.config, args.cfg_options)
    model = build_model_from_cfg(cfg)
    if args.checkpoint.lower() != 'none':
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, args.checkpoint, map_location='cpu', strict=False)
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
    hw = (args.shape[0], args.shape[-1])
    image, chw = load_image(args.image, hw)
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
    main()
