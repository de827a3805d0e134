"""The synthetic COCO set and an end-to-end run of the detection demo
(a few iterations of Mask R-CNN with an A2D2C+ ResNet-18, COCO evaluation)."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mmdyn.datasets import make_shapes_coco

ROOT = Path(__file__).resolve().parents[2]


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob('*')):
        if path.is_file() and path.name != 'spec.json':
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_shapes_coco_is_deterministic_and_consistent(tmp_path):
    a = make_shapes_coco(str(tmp_path / 'a'), num_train=6, num_val=3, size=64, seed=3)
    make_shapes_coco(str(tmp_path / 'b'), num_train=6, num_val=3, size=64, seed=3)
    make_shapes_coco(str(tmp_path / 'c'), num_train=6, num_val=3, size=64, seed=4)
    assert _digest(tmp_path / 'a') == _digest(tmp_path / 'b')
    assert _digest(tmp_path / 'a') != _digest(tmp_path / 'c')
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    coco = COCO(a['train_ann'])
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == list(a['classes'])
    assert len(coco.getImgIds()) == 6 and len(coco.getAnnIds()) >= 6
    for ann in coco.loadAnns(coco.getAnnIds()):
        img = coco.loadImgs(ann['image_id'])[0]
        assert Image.open(tmp_path / 'a' / 'train' / img['file_name']).size == (64, 64)
        x, y, w, h = ann['bbox']
        assert 0 <= x and 0 <= y and x + w <= 64 and y + h <= 64 and w > 3 and h > 3
        rle = mask_utils.frPyObjects(ann['segmentation'], 64, 64)
        poly_area = float(mask_utils.area(mask_utils.merge(rle)))
        assert ann['area'] == pytest.approx(poly_area, rel=0.25)  # raster vs polygon


def test_shapes_coco_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match='num_classes'):
        make_shapes_coco(str(tmp_path), num_classes=9)
    with pytest.raises(ValueError, match='size >= 32'):
        make_shapes_coco(str(tmp_path), size=8)


def test_demo_end_to_end_few_iterations(tmp_path):
    """tools/demo.py trains 4 iterations, evaluates COCO bbox+segm, draws and plots."""
    out = tmp_path / 'demo'
    proc = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'demo.py'), '--out-dir', str(out),
         '--max-iters', '4', '--num-train', '8', '--num-val', '4'],
        cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['iterations'] == 4
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50'):
        assert 0.0 <= summary['metrics'][key] <= 1.0
    assert Path(summary['outputs']['checkpoint']).is_file()
    predictions = sorted(Path(summary['outputs']['predictions']).rglob('*.png'))
    assert len(predictions) == 4
    curve = np.asarray(Image.open(summary['outputs']['curve']))
    assert curve.shape[0] > 100 and curve.shape[1] > 100
    assert '[demo] COCO val: bbox mAP' in proc.stdout
    # The backbone really is dynamic: the trained checkpoint holds A2D2C+ kernel banks.
    from mmdyn.engine import load_checkpoint_file
    state = load_checkpoint_file(summary['outputs']['checkpoint'])['state_dict']
    banks = [k for k, v in state.items() if k.startswith('backbone.') and v.dim() == 5]
    assert banks and all(state[k].shape[0] == 4 for k in banks)
