"""tools/analysis_tools/visualize_coco_results.py on a tiny generated COCO set and fake results."""
import json
import os.path as osp
import re

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from _helpers import run_tool
from _tools import import_tool

vcr = import_tool('visualize_coco_results')


@pytest.fixture
def coco_set(tmp_path):
    img_dir = tmp_path / 'images'
    img_dir.mkdir()
    rng = np.random.default_rng(0)
    for name in ('a.jpg', 'b.jpg'):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(img_dir / name)
    ann = dict(
        images=[dict(id=1, file_name='a.jpg', height=40, width=60),
                dict(id=2, file_name='b.jpg', height=40, width=60)],
        categories=[dict(id=1, name='cat'), dict(id=3, name='sign')],
        annotations=[dict(id=1, image_id=1, category_id=1, bbox=[10, 5, 20, 20], area=400,
                          iscrowd=0, segmentation=[[10, 5, 30, 5, 30, 25, 10, 25]]),
                     dict(id=2, image_id=2, category_id=3, bbox=[5, 5, 10, 10], area=100,
                          iscrowd=0, segmentation=[[5, 5, 15, 5, 15, 15]])])
    (tmp_path / 'ann.json').write_text(json.dumps(ann))
    mask = np.zeros((40, 60), dtype=np.uint8, order='F')
    mask[6:24, 12:28] = 1
    rle = mask_utils.encode(mask)
    rle['counts'] = rle['counts'].decode('ascii')
    bbox = [dict(image_id=1, category_id=1, bbox=[12, 6, 16, 18], score=0.9),
            dict(image_id=1, category_id=3, bbox=[0, 0, 5, 5], score=0.1)]
    segm = [dict(image_id=1, category_id=1, segmentation=rle, score=0.9),
            dict(image_id=1, category_id=3, segmentation=rle, score=0.1)]
    (tmp_path / 'r.bbox.json').write_text(json.dumps(bbox))
    (tmp_path / 'r.segm.json').write_text(json.dumps(segm))
    return tmp_path


def test_visualize_coco_results(coco_set):
    out_dir = coco_set / 'vis'
    written = vcr.main([str(coco_set / 'images'), str(coco_set / 'ann.json'),
                        str(coco_set / 'r.bbox.json'), '--segm', str(coco_set / 'r.segm.json'),
                        '--out-dir', str(out_dir), '--score-thr', '0.3'])
    assert [osp.basename(p) for p in written] == ['a.png', 'b.png']
    for p in written:
        with Image.open(p) as im:
            assert im.size[0] >= 1000 and im.size[1] >= 300
            arr = np.asarray(im.convert('RGB'))
            assert arr.std() > 10


def test_visualize_coco_cli_limits_and_errors(coco_set):
    out_dir = coco_set / 'vis2'
    proc = run_tool('visualize_coco_results.py', coco_set / 'images', coco_set / 'ann.json',
                    coco_set / 'r.bbox.json', '--out-dir', out_dir, '--max-images', 1)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out_dir.iterdir()) == ['a.png']
    (coco_set / 'bad.json').write_text(json.dumps([dict(image_id=9, category_id=1,
                                                        bbox=[0, 0, 1, 1], score=1.0)]))
    with pytest.raises(SystemExit, match='image ids not in'):
        vcr.main([str(coco_set / 'images'), str(coco_set / 'ann.json'),
                  str(coco_set / 'bad.json'), '--out-dir', str(out_dir)])
    (coco_set / 'bad2.json').write_text(json.dumps([dict(image_id=1, bbox=[0, 0, 1, 1])]))
    with pytest.raises(SystemExit, match='lacks'):
        vcr.main([str(coco_set / 'images'), str(coco_set / 'ann.json'),
                  str(coco_set / 'bad2.json'), '--out-dir', str(out_dir)])
    missing = run_tool('visualize_coco_results.py', coco_set / 'images', coco_set / 'nope.json',
                       coco_set / 'r.bbox.json', '--out-dir', out_dir)
    assert missing.returncode != 0 and 'file not found' in missing.stderr


@pytest.mark.parametrize('content,message', [
    ('', r'is empty \(0 bytes\)'),
    ('{}', r'has no "images" list \(keys: none\)'),
    ('{"images": [], "annotations": [], "categories": []}', r'has no images \(its "images" '
     r'list is empty\)'),
    ('[]', r'holds a JSON list, not an object'),
    ('{"images": [', r'is not JSON \(line 1, column 13\)'),
], ids=['zero-bytes', 'empty-object', 'no-images', 'results-list', 'truncated'])
def test_visualize_coco_unusable_annotation_file(coco_set, capsys, content, message):
    ann = coco_set / 'bad_ann.json'
    ann.write_text(content)
    with pytest.raises(SystemExit) as exc:
        vcr.main([str(coco_set / 'images'), str(ann), str(coco_set / 'r.bbox.json'),
                  '--out-dir', str(coco_set / 'vis3')])
    text = str(exc.value.code)
    assert re.fullmatch(f'error: COCO annotation file {re.escape(str(ann))} {message}.*', text)
    assert '\n' not in text and 'Traceback' not in capsys.readouterr().err
    assert not (coco_set / 'vis3').exists()
