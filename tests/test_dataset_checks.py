"""Missing datasets give an error naming the path and the expected layout."""
import os.path as osp
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config

from mmdyn.datasets import check_dataset_paths

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('config,split,path,layout', [
    ('configs/mask_rcnn_r50_a2d2c_coco.py', 'train',
     'annotations/instances_train2017.json', 'instances_{train,val}2017.json'),
    ('configs/imagenet/resnet18-a2d2c-plus-4x_8xb32_in1k.py', 'train', 'train',
     'meta/{train,val}.txt'),
    ('configs/cifar100/resnet18-a2d2c-plus-4x_8xb16_cifar100.py', 'val', 'cifar-100-python',
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
