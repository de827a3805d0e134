"""Missing datasets give an error naming the path and the expected layout."""
import os.path as osp
import re
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from mmdyn.datasets import check_dataset_paths
from mmdyn.datasets import checks

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize('config,split,path,layout', [
    ('configs/mask_rcnn_r50_a2d2c_coco.py', 'train',
     'annotations/instances_train2017.json', 'instances_{train,val}2017.json'),
    ('configs/a2d2c/resnet18-a2d2c-plus-4x_8xb32_in1k.py', 'train', 'train',
     'meta/{train,val}.txt'),
    ('configs/a2d2c/resnet18-a2d2c-plus-4x_8xb16_cifar100.py', 'val', 'cifar-100-python',
     'cifar-100-python/{train,test,meta}'),
], ids=['coco', 'imagenet', 'cifar100'])
def test_missing_dataset_names_path_and_layout(config, split, path, layout, tmp_path):
    cfg = Config.fromfile(str(ROOT / config))
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError) as info:
        check_dataset_paths(cfg, splits=(split, ))
    message = str(info.value)
    assert osp.join(str(tmp_path / 'nowhere'), path) in message
    assert 'expected layout' in message and layout in message


def test_present_dataset_passes(tmp_path):
    from mmdyn.datasets import make_shapes_coco
    make_shapes_coco(str(tmp_path / 'shapes'), num_train=2, num_val=1, size=32)
    cfg = Config.fromfile(str(ROOT / 'configs/demo/mask-rcnn_r18-a2d2c-plus_fpn_shapes.py'))
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = str(tmp_path / 'shapes') + '/'
    check_dataset_paths(cfg)  # no error


def test_train_tool_reports_missing_dataset(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / 'tools' / 'train.py'),
         str(ROOT / 'configs' / 'mask_rcnn_r50_a2d2c_coco.py'), '--work-dir', str(tmp_path),
         '--cfg-options', f'train_dataloader.dataset.data_root={tmp_path}/coco/'],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert f'{tmp_path}/coco/annotations/instances_train2017.json' in proc.stderr
    assert 'expected layout: COCO' in proc.stderr


def _loader_cfg(split, dataset):
    return {f'{split}_dataloader': dict(batch_size=1, dataset=dataset)}


@pytest.mark.parametrize('dataset,layout', [
    (dict(type='GTSRB', split='train'), 'GTSRB: DATA_ROOT/Training/000NN/GT-000NN.csv'),
    (dict(type='GTSRB', split='test'), 'GTSRB: DATA_ROOT/Training/000NN/GT-000NN.csv'),
    (dict(type='SVHN', split='extra'), 'SVHN: DATA_ROOT/{train,test,extra}_32x32.mat'),
    (dict(type='mmpretrain.SVHN'), 'SVHN: DATA_ROOT/{train,test,extra}_32x32.mat'),
    (dict(type='Imagenette', split='val'), 'Imagenette: DATA_ROOT/{train,val}/<wnid>/*.JPEG'),
    (dict(type='Imagewoof'), 'Imagewoof: DATA_ROOT/{train,val}/<wnid>/*.JPEG'),
], ids=['gtsrb-train', 'gtsrb-test', 'svhn', 'svhn-scoped', 'imagenette', 'imagewoof'])
def test_new_dataset_types_missing_root(tmp_path, dataset, layout):
    root = str(tmp_path / 'nowhere')
    cfg = _loader_cfg('train', dict(type='RepeatDataset', times=2,
                                    dataset=dict(dataset, data_root=root)))
    with pytest.raises(FileNotFoundError) as info:
        check_dataset_paths(cfg)
    message = str(info.value)
    assert f'data root not found: {root}\n' in message
    assert f'expected layout: {layout}' in message


def _make(root, made):
    """Create the files and (trailing ``/``) folders ``made`` under ``root``."""
    for rel in made:
        path = root / rel
        if rel.endswith('/'):
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()


@pytest.mark.parametrize('dataset,made,missing', [
    (dict(type='GTSRB'), [], 'Training'),
    (dict(type='GTSRB', split='test'), ['Training/00000/'], 'Final_Test/Images'),
    (dict(type='GTSRB', split='test'), ['Final_Test/Images/GT-final_test.test.csv'],
     'Final_Test/Images/GT-final_test.csv'),
    (dict(type='GTSRB', split='test', test_csv='labels/gt.csv'), ['Final_Test/Images/'],
     'labels/gt.csv'),
    (dict(type='SVHN', split='test'), ['train_32x32.mat'], 'test_32x32.mat'),
    (dict(type='Imagenette', split='val'), ['train/n01440764/'], 'val'),
], ids=['gtsrb-training', 'gtsrb-test-images', 'gtsrb-test-csv', 'gtsrb-test-csv-option',
        'svhn-split', 'imagenette-split'])
def test_new_dataset_types_missing_inside_root(tmp_path, dataset, made, missing):
    root = tmp_path / 'data'
    root.mkdir()
    _make(root, made)
    with pytest.raises(FileNotFoundError) as info:
        check_dataset_paths(_loader_cfg('val', dict(dataset, data_root=str(root))),
                            splits=('val', ))
    message = str(info.value)
    assert f'not found: {osp.join(str(root), missing)}' in message
    assert f'expected layout: {dataset["type"]}:' in message


@pytest.mark.parametrize('dataset,made', [
    (dict(type='GTSRB'), ['Training/']),
    (dict(type='GTSRB', split='val'), ['Final_Training/Images/']),
    (dict(type='GTSRB', split='test'), ['Final_Test/Images/GT-final_test.csv']),
    (dict(type='GTSRB', split='test'), ['Final_Test/Images/', 'GT-final_test.csv']),
    (dict(type='SVHN', split='extra'), ['extra_32x32.mat']),
    (dict(type='Imagewoof', split='val'), ['val/']),
], ids=['gtsrb-training', 'gtsrb-final-training', 'gtsrb-test-csv-in-images',
        'gtsrb-test-csv-in-root', 'svhn', 'imagewoof'])
def test_new_dataset_types_present(tmp_path, dataset, made):
    _make(tmp_path, made)
    check_dataset_paths(_loader_cfg('test', dict(dataset, data_root=str(tmp_path))),
                        splits=('test', ))  # no error


# ------------------------------------------------------ COCO annotation files that are no use
_COCO_DEMO = 'configs/demo/mask-rcnn_r18-a2d2c-plus_fpn_shapes.py'


def _coco_root(tmp_path, train_ann):
    """A COCO tree whose training annotation file holds ``train_ann`` (the rest valid)."""
    root = tmp_path / 'coco'
    for folder in ('annotations', 'train', 'val'):
        (root / folder).mkdir(parents=True)
    good = '{"images": [{"id": 1, "file_name": "a.png", "height": 4, "width": 4}], ' \
           '"annotations": [], "categories": [{"id": 1, "name": "x"}]}'
    (root / 'annotations' / 'instances_train.json').write_text(train_ann)
    (root / 'annotations' / 'instances_val.json').write_text(good)
    return root


_BAD_COCO = [
    ('', r'is empty \(0 bytes\)'),
    ('{}', r'has no "images" list'),
    ('{"images": [], "annotations": [], "categories": []}', r'has no images'),
    ('not json', r'is not JSON \(line 1, column 1\)'),
]
_BAD_COCO_IDS = ['zero-bytes', 'empty-object', 'no-images', 'not-json']


@pytest.mark.parametrize('content,message', _BAD_COCO, ids=_BAD_COCO_IDS)
def test_unusable_coco_annotation_file(tmp_path, content, message):
    root = _coco_root(tmp_path, content)
    cfg = Config.fromfile(str(ROOT / _COCO_DEMO))
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = str(root) + '/'
    check_dataset_paths(cfg, splits=('val', 'test'))  # the valid file passes
    ann = osp.join(str(root), 'annotations', 'instances_train.json')
    with pytest.raises(ValueError, match=r'train dataset \(CocoDataset\): COCO annotation '
                       f'file {re.escape(ann)} {message}') as info:
        check_dataset_paths(cfg, splits=('train', ))
    assert '\n' not in str(info.value)


def test_unusable_coco_metric_annotation_file(tmp_path):
    # the CocoMetric reads its own ann_file: checked too (the dataset's is fine here)
    root = _coco_root(tmp_path, '{"images": [{"id": 1}]}')
    cfg = Config.fromfile(str(ROOT / _COCO_DEMO))
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[name].dataset.data_root = str(root) + '/'
    metric_ann = tmp_path / 'metric.json'
    metric_ann.write_text('{}')
    cfg.test_evaluator = dict(cfg.test_evaluator, ann_file=str(metric_ann))
    check_dataset_paths(cfg, splits=('train', 'val'))
    with pytest.raises(ValueError, match=r'^test evaluator \(CocoMetric\): COCO annotation '
                       f'file {re.escape(str(metric_ann))} has no "images" list'):
        check_dataset_paths(cfg, splits=('test', ))


@pytest.mark.parametrize('content,ok', [
    ('{"info": {"images": []}, "images": [{"id": 1}], "annotations": []}', True),
    ('{"images" :\n [ \n{"id": 1}]}', True),
    ('{"images": [], "annotations": []}', False),
    ('{"annotations": [{"id": 1}]}', False),
    ('{}', False),
])
def test_large_coco_annotation_file_is_scanned(tmp_path, monkeypatch, content, ok):
    # above COCO_PARSE_LIMIT the file is scanned for a non-empty "images" list, not parsed
    monkeypatch.setattr(checks, 'COCO_PARSE_LIMIT', 1)
    monkeypatch.setattr(checks.json, 'load', None)  # would fail if called
    path = tmp_path / 'big.json'
    path.write_text(content)
    if ok:
        checks.check_coco_annotation(str(path))
    else:
        with pytest.raises(ValueError, match=f'COCO annotation file {re.escape(str(path))} '
                           r'has no images \(no non-empty "images" list\)'):
            checks.check_coco_annotation(str(path))


def test_train_and_test_tools_report_an_unusable_coco_file(tmp_path, capsys, load_tool):
    root = _coco_root(tmp_path, '{}')
    (root / 'annotations' / 'instances_val.json').write_text('')
    ann = osp.join(str(root), 'annotations', 'instances_train.json')
    with pytest.raises(SystemExit) as exc:
        load_tool('train').main([str(ROOT / _COCO_DEMO), '--work-dir', str(tmp_path / 'w'),
                                 '--cfg-options', f'data_root={root}/'])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f'error: train dataset (CocoDataset): COCO annotation file {ann} has no "images" ' \
           'list' in err and 'Traceback' not in err
    with pytest.raises(SystemExit) as exc:
        ckpt = tmp_path / 'model.pth'
        ckpt.write_bytes(b'')
        load_tool('test').main([str(ROOT / _COCO_DEMO), str(ckpt),
                                '--work-dir', str(tmp_path / 'w'),
                                '--cfg-options', f'data_root={root}/'])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and 'instances_val.json is empty (0 bytes)' in err, err
