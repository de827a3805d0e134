#!/usr/bin/env python
"""The embedded demo: Mask R-CNN with an A2D2C+ backbone on generated COCO data.

Without internet there is no COCO here, so the demo

1. writes a small COCO-format instance-segmentation set of shapes
   (``mmdyn.datasets.make_shapes_coco``, deterministic, train/val split),
2. trains Mask R-CNN + FPN with a ResNet-18 A2D2C+ backbone on it with the
   normal config/Runner machinery (``configs/demo/mask-rcnn_r18-a2d2c-plus_fpn_shapes.py``)
   and a progress bar,
3. evaluates COCO bbox and segm mAP with pycocotools on the val split,
4. draws the predictions on the val images and plots the training curves,

and prints where everything is. Target on a 2-core CPU: <= 15 minutes after
set-up, bbox mAP@0.5 >= 0.5.

Usage::

    python tools/demo.py [--out-dir outputs/demo] [--max-iters N] [--config CFG]
"""
import argparse
import json
import os
import os.path as osp
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

DEFAULT_CONFIG = osp.join(ROOT, 'configs', 'demo', 'mask-rcnn_r18-a2d2c-plus_fpn_shapes.py')
TARGET_BBOX_MAP50 = 0.5


def parse_args(argv=None):
    from mmdyn.engine import cli
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--config', default=DEFAULT_CONFIG)
    parser.add_argument('--out-dir', default=osp.join(ROOT, 'outputs', 'demo'))
    parser.add_argument('--max-iters', type=int, default=None,
                        help='training iterations (default: the config\'s)')
    parser.add_argument('--num-train', type=int, default=240)
    parser.add_argument('--num-val', type=int, default=60)
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    cli.check_config_path(parser, args.config)
    if args.max_iters is not None and args.max_iters < 1:
        parser.error('--max-iters must be >= 1')
    return args


def build_cfg(args, data_root: str):
    from mmdyn.engine.config import load_config
    cfg = load_config(args.config, init_scope=True)
    data_root = data_root.rstrip('/') + '/'
    for loader in (cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = data_root
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        evaluator.ann_file = data_root + 'annotations/instances_val.json'
    if args.max_iters is not None:
        scale = args.max_iters / cfg.train_cfg.max_iters
        cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = args.max_iters
        for sched in cfg.param_scheduler:
            if 'milestones' in sched:
                sched.milestones = [max(1, int(m * scale)) for m in sched.milestones]
            sched.end = min(sched.end, args.max_iters) if sched.end > 0 else sched.end
        for hook in cfg.get('custom_hooks', []):
            if 'anneal_iters' in hook:
                hook.anneal_iters = max(1, int(hook.anneal_iters * scale))
        cfg.default_hooks.checkpoint.interval = args.max_iters
    cfg.work_dir = osp.join(args.out_dir, 'work_dir')
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(type='ProgressBarHook')]
    cfg.default_hooks.logger.interval = 50
    vis_dir = 'predictions'
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook', draw=True, interval=1,
                                           score_thr=0.5, test_out_dir=vis_dir)
    return cfg


def plot_curves(scalars_file: str, out_png: str) -> None:
    """Loss curve (and final mAPs) from MMEngine's scalars.json."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    steps, losses = [], []
    with open(scalars_file) as f:
        for line in f:
            entry = json.loads(line)
            if 'loss' in entry:
                steps.append(entry.get('step', entry.get('iter')))
                losses.append(entry['loss'])
    if not losses:
        raise RuntimeError(f'no training loss in {scalars_file}')
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, losses, label='total loss')
    ax.set_xlabel('iteration')
    ax.set_ylabel('loss')
    ax.set_title('Mask R-CNN (ResNet-18 A2D2C+) on synthetic shapes')
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    start = time.time()
    from mmdyn.datasets import make_shapes_coco
    from mmdyn.engine.runner import build_runner  # locked work dir, safe config dump

    os.makedirs(args.out_dir, exist_ok=True)
    data_root = osp.join(args.out_dir, 'shapes')
    info = make_shapes_coco(data_root, num_train=args.num_train, num_val=args.num_val)
    print(f'[demo] data: {args.num_train} train / {args.num_val} val images of '
          f'{", ".join(info["classes"])} in {data_root}', flush=True)

    cfg = build_cfg(args, data_root)
    runner = build_runner(cfg)
    runner.train()
    train_time = time.time() - start
    metrics = runner.test()

    vis_dir = osp.join(runner.log_dir, 'predictions')
    curve = osp.join(args.out_dir, 'training_curve.png')
    plot_curves(osp.join(runner.log_dir, 'vis_data', 'scalars.json'), curve)
    total = time.time() - start
    bbox50 = float(metrics.get('coco/bbox_mAP_50', float('nan')))
    summary = dict(
        total_seconds=round(total, 1), train_seconds=round(train_time, 1),
        iterations=cfg.train_cfg.max_iters, metrics={k: float(v) for k, v in metrics.items()},
        target_bbox_mAP50=TARGET_BBOX_MAP50, target_met=bbox50 >= TARGET_BBOX_MAP50,
        outputs=dict(data=data_root, work_dir=cfg.work_dir, log_dir=runner.log_dir,
                     predictions=vis_dir, curve=curve,
                     checkpoint=osp.join(cfg.work_dir, f'iter_{cfg.train_cfg.max_iters}.pth')))
    with open(osp.join(args.out_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=2)
    print('\n[demo] finished in {:.1f} min ({} iterations)'.format(total / 60,
                                                                   summary['iterations']))
    print(f'[demo] COCO val: bbox mAP {metrics.get("coco/bbox_mAP", float("nan")):.3f}, '
          f'bbox mAP@0.5 {bbox50:.3f} (target >= {TARGET_BBOX_MAP50}: '
          f'{"met" if summary["target_met"] else "NOT met"}), segm mAP '
          f'{metrics.get("coco/segm_mAP", float("nan")):.3f}, segm mAP@0.5 '
          f'{metrics.get("coco/segm_mAP_50", float("nan")):.3f}')
    for name, path in summary['outputs'].items():
        print(f'[demo] {name:12s} {path}')
    print(f'[demo] summary     {osp.join(args.out_dir, "summary.json")}')
    return summary


if __name__ == '__main__':
    from mmdyn.engine import cli
    cli.run(main)
