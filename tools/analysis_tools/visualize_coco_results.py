"""Draw COCO-format detections and masks beside the ground truth.

Usage::

    python tools/analysis_tools/visualize_coco_results.py IMAGES_DIR ANN.json RESULTS.bbox.json
        [--segm RESULTS.segm.json] --out-dir DIR [--score-thr 0.3]
        [--max-images N] [--img-ids ID ...]

``RESULTS.bbox.json`` / ``RESULTS.segm.json`` are what MMDetection's
``CocoMetric`` writes with ``outfile_prefix`` (lists of ``image_id``,
``category_id``, ``bbox`` [x, y, w, h], ``score`` and, for segm,
``segmentation`` as COCO RLE). For every image (those with results first), a
PNG ``<file stem>.png`` is written with the ground truth (left) and the
detections above ``--score-thr`` (right): boxes, class names, scores and masks
(RLE decoded with ``pycocotools.mask``). When that name is an input file (e.g.
``--out-dir`` is the image folder) or the figure of another image with the same
file name, a counter is added (``<file stem>_1.png``): no input is overwritten.
"""
import argparse
import json
import os
import os.path as osp
import sys
from collections import defaultdict


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Visualise COCO detections vs ground truth')
    parser.add_argument('images_dir', help='folder of the images (file_name is relative)')
    parser.add_argument('ann', help='COCO annotation json')
    parser.add_argument('bbox', help='bbox results json')
    parser.add_argument('--segm', default=None, help='segm results json (RLE masks)')
    parser.add_argument('--out-dir', required=True, help='where to write the PNGs')
    parser.add_argument('--score-thr', type=float, default=0.3, help='score threshold')
    parser.add_argument('--max-images', type=int, default=20, help='at most N images')
    parser.add_argument('--img-ids', type=int, nargs='+', default=None,
                        help='only these image ids')
    from mmdyn.engine import cli  # --debug
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    for path, what in ((args.images_dir, 'images dir'), ):
        if not osp.isdir(path):
            parser.error(f'{what} not found: {path}')
    for path in (args.ann, args.bbox, args.segm):
        if path is not None and not osp.isfile(path):
            parser.error(f'file not found: {path}')
    if not 0 <= args.score_thr <= 1:
        parser.error(f'--score-thr must be in [0, 1], got {args.score_thr}')
    if args.max_images < 1:
        parser.error(f'--max-images must be >= 1, got {args.max_images}')
    return args


def load_results(path, kind):
    """Load a COCO results list; check every entry has the fields of ``kind``."""
    with open(path) as f:
        try:
            results = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f'{path}: not JSON ({exc.msg})') from None
    if not isinstance(results, list):
        raise ValueError(f'{path}: expected a list of {kind} results, got '
                         f'{type(results).__name__}')
    need = {'image_id', 'category_id', 'score', 'bbox' if kind == 'bbox' else 'segmentation'}
    for i, r in enumerate(results):
        missing = need - set(r)
        if missing:
            raise ValueError(f'{path}: result {i} lacks {sorted(missing)}')
    return results


def _color(cat_id):
    import matplotlib
    return matplotlib.colormaps['tab20'](cat_id % 20)


def _overlay(ax, mask, color, alpha=0.45):
    import numpy as np
    rgba = np.zeros((*mask.shape, 4), dtype=float)
    rgba[mask.astype(bool)] = (*color[:3], alpha)
    ax.imshow(rgba)


def _draw(ax, items, cat_names, title):
    """``items``: dicts with bbox (xywh), category_id, optional score and mask."""
    import matplotlib.patches as patches
    for it in items:
        color = _color(it['category_id'])
        if it.get('mask') is not None:
            _overlay(ax, it['mask'], color)
        x, y, w, h = it['bbox']
        ax.add_patch(patches.Rectangle((x, y), w, h, fill=False, lw=1.8, edgecolor=color))
        label = cat_names.get(it['category_id'], str(it['category_id']))
        if it.get('score') is not None:
            label += f' {it["score"]:.2f}'
        ax.text(x, max(y - 2, 0), label, fontsize=7, color='white', va='bottom',
                bbox=dict(facecolor=color, alpha=0.8, pad=1, lw=0))
    ax.set_title(title, fontsize=9)
    ax.axis('off')


def visualize(images_dir, ann, bbox, segm=None, out_dir='vis', score_thr=0.3,
              max_images=20, img_ids=None):
    """Write one side-by-side PNG per image; return the written paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    import contextlib
    import io

    from mmdyn.datasets.checks import check_coco_annotation
    check_coco_annotation(ann)  # 0 bytes, {}, no images: one line naming the file
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(ann)
    cat_names = {c['id']: c['name'] for c in coco.loadCats(coco.getCatIds())}
    dets = defaultdict(list)
    for r in load_results(bbox, 'bbox'):
        dets[r['image_id']].append(dict(r))
    if segm is not None:
        segs = load_results(segm, 'segm')
        # pair masks with boxes in order per image and category (CocoMetric writes
        # both lists in the same order); unpaired masks get the mask's own box.
        pending = defaultdict(list)
        for r in segs:
            pending[(r['image_id'], r['category_id'])].append(r)
        for img_id, items in dets.items():
            for it in items:
                queue = pending.get((img_id, it['category_id']))
                if queue:
                    it['segmentation'] = queue.pop(0)['segmentation']
        for (img_id, _), rest in pending.items():
            for r in rest:
                rle = dict(r['segmentation'])
                r = dict(r, bbox=mask_utils.toBbox(_rle(rle)).tolist())
                dets[img_id].append(r)
    unknown = sorted(set(dets) - set(coco.getImgIds()))
    if unknown:
        raise ValueError(f'results refer to image ids not in {ann}: {unknown[:10]}')
    ids = img_ids if img_ids else (sorted(dets) + [i for i in sorted(coco.getImgIds())
                                                     if i not in dets])
    missing_ids = [i for i in ids if i not in coco.imgs]
    if missing_ids:
        raise ValueError(f'image ids not in {ann}: {missing_ids}')
    from mmdyn.utils.output_paths import OutputNamer
    # One PNG per image, named after it; never over an input (e.g. a PNG of
    # images_dir when out_dir is that folder) nor over another image's figure.
    namer = OutputNamer(out_dir, suffix='', inputs=[ann, bbox, segm] + [
        osp.join(images_dir, coco.imgs[i]['file_name']) for i in ids[:max_images]])
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for img_id in ids[:max_images]:
        info = coco.imgs[img_id]
        path = osp.join(images_dir, info['file_name'])
        if not osp.isfile(path):
            raise FileNotFoundError(f'image {img_id} not found: {path}')
        image = np.asarray(Image.open(path).convert('RGB'))
        gts = []
        for a in coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=None)):
            m = coco.annToMask(a) if a.get('segmentation') else None
            gts.append(dict(bbox=a['bbox'], category_id=a['category_id'], mask=m))
        preds = []
        for d in sorted(dets.get(img_id, []), key=lambda d: -d['score']):
            if d['score'] < score_thr:
                continue
            m = mask_utils.decode(_rle(dict(d['segmentation']))) \
                if d.get('segmentation') else None
            preds.append(dict(bbox=d['bbox'], category_id=d['category_id'],
                              score=d['score'], mask=m))
        fig, axes = plt.subplots(1, 2, figsize=(12, 6 * image.shape[0] / image.shape[1] + 0.6))
        for ax in axes:
            ax.imshow(image)
        _draw(axes[0], gts, cat_names, f'ground truth ({len(gts)})')
        _draw(axes[1], preds, cat_names,
              f'detections score >= {score_thr} ({len(preds)} of '
              f'{len(dets.get(img_id, []))})')
        fig.suptitle(f'{info["file_name"]} (id {img_id})', fontsize=10)
        fig.tight_layout()
        out = namer.path_for(osp.basename(info['file_name']), '.png')
        fig.savefig(out, dpi=100)
        plt.close(fig)
        written.append(out)
    return written


def _rle(seg):
    """A COCO RLE with ``counts`` as bytes (json stores it as str)."""
    if isinstance(seg.get('counts'), str):
        seg['counts'] = seg['counts'].encode('ascii')
    return seg


def main(argv=None):
    args = parse_args(argv)
    try:
        written = visualize(args.images_dir, args.ann, args.bbox, args.segm, args.out_dir,
                            args.score_thr, args.max_images, args.img_ids)
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f'error: {exc}')
    for p in written:
        print(f'saved {p}')
    return written


if __name__ == '__main__':
    from mmdyn.engine import cli
    cli.run(main)
