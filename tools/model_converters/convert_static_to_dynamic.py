"""Inflate a static ResNet / MobileNetV2 checkpoint into a dynamic backbone's.

Every static kernel ``(C_out, C_in/g, kh, kw)`` of a replaced convolution is
copied into each of the K kernels of the dynamic layer's bank
``(K, C_out, C_in/g, kh, kw)`` (biases likewise); attention parameters keep the
dynamic layer's own init (DCD: W0 = static kernel, residual ``p`` and
``fc_scale`` zeroed). KernelWarehouse (``--dyn-conv KW --cell-num-ratio 1``):
each kernel is cut into the warehouse cells its temperature-initialised
attention selects, at temperature 1 (exactly the static network; refused for
``--cell-num-ratio`` below 1, docs/kernel_warehouse.md). The written checkpoint holds the *complete* dynamic
state dict, so the dynamic model loads it with ``strict=True``.

Accepted inputs: mmpretrain/mmdet layout (``backbone.layer1.0.conv1.weight``;
other keys such as ``head.*`` are passed through unchanged) or a bare /
torchvision ResNet layout (``layer1.0.conv1.weight``, ``bn1.*``,
``downsample.0/1``; keys that are not backbone keys, e.g. torchvision's
``fc.*``, are dropped and listed).

``SRC`` is a file or any source MMEngine accepts (``https://...``,
``torchvision://resnet50``, ...), always loaded weights-only. The conversion
fails (exit status 1, nothing written), naming the source and the target
(``--arch``, depth, layer), when fewer than all the backbone convolutions the
target expects are inflated or copied (a wrong ``--arch``/``--depth``/
``--prefix``), or when a kernel has the wrong shape. ``DST`` is written
atomically; it may not be ``SRC``, and an existing ``DST`` is kept unless
``--overwrite``.

Usage::

    python tools/model_converters/convert_static_to_dynamic.py SRC DST --dyn-conv A2D2CPlus \
        --kernel-num 4 [--depth 50] [--arch resnet|resnet_cifar|mobilenet_v2] \
        [--placement all_block_convs] [--widen-factor 1.0] [--prefix backbone.] \
        [--overwrite]

Then use ``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``
(or no prefix for a bare input) with the same backbone options.
"""
import argparse
import os.path as osp
import sys
from typing import List, Optional

import torch


def build_backbone(args) -> torch.nn.Module:
    """The mmpretrain dynamic backbone described by the CLI arguments."""
    import mmdyn.models  # noqa: F401  (registers)
    from mmpretrain.registry import MODELS

    from mmdyn.ops import LAYERS
    if args.dyn_conv not in LAYERS:
        raise SystemExit(f'unknown --dyn-conv {args.dyn_conv!r}; known: {", ".join(LAYERS)}')
    dyn_conv = dict(type=args.dyn_conv)
    if LAYERS[args.dyn_conv].has_kernel_bank:
        dyn_conv['kernel_num'] = args.kernel_num
    if args.dyn_conv == 'KW':
        dyn_conv.update(cell_num_ratio=args.cell_num_ratio,
                        cell_inplane_ratio=args.cell_inplane_ratio,
                        cell_outplane_ratio=args.cell_outplane_ratio)
    if args.arch == 'mobilenet_v2':
        if args.placement not in (None, 'all_block_convs'):
            raise SystemExit('--placement applies to ResNets only')
        cfg = dict(type='DynMobileNetV2', widen_factor=args.widen_factor, dyn_conv=dyn_conv)
    else:
        cfg = dict(type='DynResNet' if args.arch == 'resnet' else 'DynResNetCIFAR',
                   depth=args.depth, dyn_conv=dyn_conv, dyn_placement=args.placement)
    return MODELS.build(cfg)


class ConversionError(ValueError):
    """The source checkpoint does not convert into the requested backbone."""


def target_name(args) -> str:
    """The requested backbone in words (for messages)."""
    what = f'--arch {args.arch}'
    if args.arch == 'mobilenet_v2':
        what += f' --widen-factor {args.widen_factor}'
    else:
        what += f' --depth {args.depth}'
    return f'{what} --dyn-conv {args.dyn_conv}'


def convert(src: str, dst: str, args) -> List[str]:
    """Convert ``src`` to ``dst``; returns the source keys that were dropped.

    Raises:
        ConversionError: Fewer than all the backbone convolutions of the target
            were inflated or copied, or a kernel shape does not fit; nothing is
            written.
    """
    from mmdyn.models.backbones.inflation import (count_inflated_convs, inflate_state_dict,
                                                  read_state_dict, select_backbone_state)
    model = build_backbone(args)
    target = f'{dst} ({target_name(args)})'
    full = read_state_dict(src)
    try:
        backbone_src, prefix = select_backbone_state(full, args.prefix)
        state, missing, unexpected = inflate_state_dict(model, backbone_src)
    except ValueError as err:
        raise ConversionError(f'cannot convert {src} into {target}: {err}') from None
    found, absent = count_inflated_convs(model, state)
    if absent:
        raise ConversionError(
            f'cannot convert {src} into {target}: only {found} of {found + len(absent)} '
            f'backbone convolutions were inflated or copied ({len(absent)} not in the '
            f'checkpoint, e.g. {", ".join(absent[:3])}); check --arch, --depth, '
            f'--widen-factor and --prefix. Nothing written.')
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
                cell_num_ratio=args.cell_num_ratio if args.dyn_conv == 'KW' else None,
                arch=args.arch, depth=args.depth, placement=args.placement,
                inflated=len(state), newly_initialised=missing)
    save_atomically(dict(state_dict=out, meta=meta), dst)
    print(f'wrote {dst}: {len(state)} tensors inflated/copied ({found} of {found} backbone '
          f'convolutions), {len(missing)} new dynamic-layer tensors at their own init, '
          f'{len(dropped)} source keys dropped')
    if dropped:
        print('dropped (not backbone keys): ' + ', '.join(dropped))
    return dropped


def save_atomically(obj, dst: str) -> None:
    """``torch.save`` to a temporary file next to ``dst``, then rename it: an
    interrupted run never leaves a partial ``dst``; the file gets the mode of
    any new file (``0o666`` less the umask)."""
    from mmdyn.utils.output_paths import atomic_output
    with atomic_output(dst, prefix=osp.basename(dst) + '.', suffix='.partial') as tmp:
        torch.save(obj, tmp)


def check_paths(src: str, dst: str, overwrite: bool) -> Optional[str]:
    """The problem with writing ``dst``, or ``None``."""
    if '://' not in src and osp.exists(src) and osp.exists(dst) and osp.samefile(src, dst):
        return f'the output {dst} is the source checkpoint; choose another output file'
    if osp.isdir(dst):
        return f'the output {dst} is a directory; give a file name'
    if osp.exists(dst) and not overwrite:
        return f'the output {dst} exists; pass --overwrite to replace it'
    return None


def parse_args(argv: Optional[List[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('src', help='static checkpoint (.pth)')
    parser.add_argument('dst', help='output checkpoint for the dynamic backbone')
    parser.add_argument('--dyn-conv', default='A2D2CPlus',
                        help='mmdyn layer: A2D2C, A2D2CPlus, ODConv, DyConv, CondConv, DCD, KW')
    parser.add_argument('--kernel-num', type=int, default=4, help='K (ignored for DCD, KW)')
    parser.add_argument('--cell-num-ratio', type=float, default=1.0,
                        help='KernelWarehouse size "KW (nx)" (KW only; >= 1: a static kernel '
                             'has no exact place in a smaller warehouse)')
    for side in ('inplane', 'outplane'):
        parser.add_argument(f'--cell-{side}-ratio', type=float, default=1.0,
                            help=f'KernelWarehouse cell {side} channels / their gcd (KW only)')
    parser.add_argument('--arch', default='resnet',
                        choices=['resnet', 'resnet_cifar', 'mobilenet_v2'])
    parser.add_argument('--depth', type=int, default=50, help='ResNet depth')
    parser.add_argument('--widen-factor', type=float, default=1.0, help='MobileNetV2 width')
    parser.add_argument('--placement', default=None,
                        help='ResNet preset: all_block_convs, initial, median, terminal')
    parser.add_argument('--prefix', default=None,
                        help="backbone key prefix (default: auto-detect 'backbone.')")
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing output file (never the source)')
    from mmdyn.engine import cli  # --debug
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    if '://' not in args.src and not osp.isfile(args.src):
        parser.error(f'source checkpoint not found: {args.src}')
    problem = check_paths(args.src, args.dst, args.overwrite)
    if problem:
        parser.error(problem)
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """Run the conversion; exits with status 1 and a one-line error if it fails."""
    args = parse_args(argv)
    from mmdyn.engine import CheckpointError
    try:
        convert(args.src, args.dst, args)
    except (ConversionError, CheckpointError, FileNotFoundError, RuntimeError, ValueError) as err:
        # CheckpointError: unsafe, corrupt, not a dict, failed download (names the file/URL);
        # ValueError: a dict that is no state dict, no key with the prefix
        sys.exit(f'error: {err}')
    return 0


if __name__ == '__main__':
    from mmdyn.engine import cli
    cli.run(main)
