"""Inflate a static ResNet / MobileNetV2 checkpoint into a dynamic backbone's.

Every static kernel ``(C_out, C_in/g, kh, kw)`` of a replaced convolution is
copied into each of the K kernels of the dynamic layer's bank
``(K, C_out, C_in/g, kh, kw)`` (biases likewise); attention parameters keep the
dynamic layer's own init (DCD: W0 = static kernel, residual ``p`` and
``fc_scale`` zeroed). The written checkpoint holds the *complete* dynamic
state dict, so the dynamic model loads it with ``strict=True``.

Accepted inputs: mmpretrain/mmdet layout (``backbone.layer1.0.conv1.weight``;
other keys such as ``head.*`` are passed through unchanged) or a bare /
torchvision ResNet layout (``layer1.0.conv1.weight``, ``bn1.*``,
``downsample.0/1``; keys that are not backbone keys, e.g. torchvision's
``fc.*``, are dropped and listed).

Usage::

    python tools/convert_static_to_dynamic.py SRC DST --dyn-conv A2D2CPlus \
        --kernel-num 4 [--depth 50] [--arch resnet|resnet_cifar|mobilenet_v2] \
        [--placement all_block_convs] [--widen-factor 1.0] [--prefix backbone.]

Then use ``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``
(or no prefix for a bare input) with the same backbone options.
"""
import argparse
import sys
from typing import List, Optional

import torch


def build_backbone(args) -> torch.nn.Module:
    """The mmpretrain dynamic backbone described by the CLI arguments."""
    import mmdyn.models  # noqa: F401  (registers)
    from mmpretrain.registry import MODELS
    dyn_conv = dict(type=args.dyn_conv)
    if args.dyn_conv != 'DCD':
        dyn_conv['kernel_num'] = args.kernel_num
    if args.arch == 'mobilenet_v2':
        if args.placement not in (None, 'all_block_convs'):
            raise SystemExit('--placement applies to ResNets only')
        cfg = dict(type='DynMobileNetV2', widen_factor=args.widen_factor, dyn_conv=dyn_conv)
    else:
        cfg = dict(type='DynResNet' if args.arch == 'resnet' else 'DynResNetCIFAR',
                   depth=args.depth, dyn_conv=dyn_conv, dyn_placement=args.placement)
    return MODELS.build(cfg)


def convert(src: str, dst: str, args) -> List[str]:
    """Convert ``src`` to ``dst``; returns the source keys that were dropped."""
    from mmdyn.models.backbones._inject import (inflate_state_dict, read_state_dict,
                                                strip_prefix)
    model = build_backbone(args)
    full = read_state_dict(src)
    backbone_src, prefix = strip_prefix(full, args.prefix)
    state, missing, unexpected = inflate_state_dict(model, backbone_src)
    complete = model.state_dict()
    complete.update(state)          # missing keys keep the dynamic layers' own init
    out = {prefix + k: v for k, v in complete.items()}
    dropped = []
    if prefix:                       # pass the rest of the model (head, neck) through
        for k, v in full.items():
            if not k.startswith(prefix):
                out[k] = v
        dropped = [prefix + k for k in unexpected]
    else:
        dropped = list(unexpected)
    meta = dict(converted_from=src, dyn_conv=args.dyn_conv, kernel_num=args.kernel_num,
                arch=args.arch, depth=args.depth, placement=args.placement,
                inflated=len(state), newly_initialised=missing)
    torch.save(dict(state_dict=out, meta=meta), dst)
    print(f'wrote {dst}: {len(state)} tensors inflated/copied, {len(missing)} new '
          f'dynamic-layer tensors at their own init, {len(dropped)} source keys dropped')
    if dropped:
        print('dropped (not backbone keys): ' + ', '.join(dropped))
    return dropped


def parse_args(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='static checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint for the dynamic backbone')
    parser.add_argument('--dyn-conv', default='A2D2CPlus',
                        help='mmdyn layer: A2D2C, A2D2CPlus, ODConv, DyConv, CondConv, DCD')
    parser.add_argument('--kernel-num', type=int, default=4, help='K (ignored for DCD)')
    parser.add_argument('--arch', default='resnet',
                        choices=['resnet', 'resnet_cifar', 'mobilenet_v2'])
    parser.add_argument('--depth', type=int, default=50, help='ResNet depth')
    parser.add_argument('--widen-factor', type=float, default=1.0, help='MobileNetV2 width')
    parser.add_argument('--placement', default=None,
                        help='ResNet preset: all_block_convs, initial, median, terminal')
    parser.add_argument('--prefix', default=None,
                        help="backbone key prefix (default: auto-detect 'backbone.')")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    convert(args.src, args.dst, args)
    return 0


if __name__ == '__main__':
    sys.exit(main())
