#!/usr/bin/env python
"""Second demo: static vs A2D2C+ classifier on scikit-learn's handwritten digits.

scikit-learn ships the UCI handwritten digits (1797 real 8x8 grey images, no
download). This demo writes them as an mmpretrain image folder (32x32 PNG,
stratified 80/20 train/val split, fixed seed), trains the static and the A2D2C+
ResNet-18 (CIFAR stem, 16 base channels) with the normal config/Runner
machinery, and prints both validation accuracies.

Usage::

    python tools/demo_digits.py [--out-dir outputs/demo_digits] [--epochs N]
"""
import argparse
import json
import os
import os.path as osp
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

CONFIGS = {
    'static': osp.join(ROOT, 'configs', 'demo', 'resnet18-cifar-static_digits.py'),
    'A2D2C+': osp.join(ROOT, 'configs', 'demo', 'resnet18-cifar-a2d2c-plus_digits.py'),
}


def write_digits(root: str, val_fraction: float = 0.2, seed: int = 0) -> dict:
    """Write sklearn's digits as ``root/{train,val}/<digit>/<index>.png`` (32x32).

    Idempotent: an existing complete folder is reused.
    """
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    images, labels = digits.images, digits.target
    rng = np.random.default_rng(seed)
    split = np.empty(len(labels), dtype=object)
    for digit in range(10):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        n_val = int(round(len(idx) * val_fraction))
        split[idx[:n_val]], split[idx[n_val:]] = 'val', 'train'
    stamp = osp.join(root, 'done.json')
    counts = {s: int((split == s).sum()) for s in ('train', 'val')}
    if osp.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == counts:
                return counts
    for i, (image, label, part) in enumerate(zip(images, labels, split)):
        folder = osp.join(root, part, str(label))
        os.makedirs(folder, exist_ok=True)
        pixels = (image * (255.0 / 16.0)).clip(0, 255).astype('uint8')
        Image.fromarray(pixels).resize((32, 32), Image.BILINEAR).convert('RGB').save(
            osp.join(folder, f'{i:04d}.png'))
    with open(stamp, 'w') as f:
        json.dump(counts, f)
    return counts


def train_one(name: str, config: str, data_root: str, out_dir: str, epochs) -> dict:
    from mmdyn.engine.config import load_config
    from mmdyn.engine.runner import build_runner  # locked work dir, safe config dump
    cfg = load_config(config, init_scope=True)
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = data_root
    if epochs is not None:
        cfg.train_cfg.max_epochs = cfg.train_cfg.val_interval = epochs
        cfg.param_scheduler[-1].end = epochs
        cfg.default_hooks.checkpoint.interval = epochs
    cfg.work_dir = osp.join(out_dir, name.replace('+', 'plus').lower())
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='ProgressBarHook')]
    start = time.time()
    runner = build_runner(cfg)
    runner.train()
    metrics = runner.test()
    return dict(accuracy=float(metrics['accuracy/top1']), seconds=round(time.time() - start, 1),
                work_dir=cfg.work_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out-dir', default=osp.join(ROOT, 'outputs', 'demo_digits'))
    parser.add_argument('--epochs', type=int, default=None)
    from mmdyn.engine import cli  # --debug
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error('--epochs must be >= 1')
    data_root = osp.join(args.out_dir, 'digits')
    counts = write_digits(data_root)
    print(f'[digits] {counts["train"]} train / {counts["val"]} val images in {data_root}')
    results = {name: train_one(name, cfg, data_root, args.out_dir, args.epochs)
               for name, cfg in CONFIGS.items()}
    with open(osp.join(args.out_dir, 'summary.json'), 'w') as f:
        json.dump(results, f, indent=2)
    for name, res in results.items():
        print(f'[digits] {name:7s} val top-1 accuracy {res["accuracy"]:.2f}% '
              f'({res["seconds"]:.0f} s, {res["work_dir"]})')
    return results


if __name__ == '__main__':
    from mmdyn.engine import cli
    cli.run(main)
