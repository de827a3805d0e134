"""One top-level ``data_root`` per config reaches every dataloader and evaluator.

``mmdyn.engine.config.load_config`` applies ``propagate_data_root``: a new
``data_root`` (``--cfg-options data_root=...`` or a derived config that sets
only ``data_root``) must move every dataset and every evaluator ``ann_file``;
a config whose datasets use several roots on purpose cannot be moved at once.
"""
from pathlib import Path

import pytest
from _configs import config

from mmdyn.engine.config import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / 'configs'
COCO = 'configs/mask_rcnn_r50_a2d2c_coco.py'
IMAGENET = 'configs/a2d2c/resnet18-a2d2c-plus-4x_8xb32_in1k.py'
CIFAR = 'configs/static/resnet18-static_8xb16_cifar100.py'
#: Every runnable config, the demo configs included.
ALL = sorted(p.relative_to(ROOT).as_posix() for p in CONFIG_DIR.rglob('*.py')
             if '_base_' not in p.relative_to(CONFIG_DIR).parts)
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')
EVALUATORS = ('val_evaluator', 'test_evaluator')


def _dataset_roots(node):
    if isinstance(node, dict):
        found = [node['data_root']] if 'data_root' in node else []
        return found + [r for v in node.values() for r in _dataset_roots(v)]
    if isinstance(node, (list, tuple)):
        return [r for v in node for r in _dataset_roots(v)]
    return []


def _ann_files(cfg):
    evaluators = [cfg.get(k) for k in EVALUATORS if cfg.get(k)]
    evaluators = [e for ev in evaluators for e in (ev if isinstance(ev, list) else [ev])]
    return [e['ann_file'] for e in evaluators if 'ann_file' in e]


def _assert_under(cfg, root):
    for key in LOADERS:
        roots = _dataset_roots(cfg[key])
        assert roots, f'{key} has no dataset data_root'
        assert all(r.rstrip('/') == root.rstrip('/') for r in roots), (key, roots)
    for ann_file in _ann_files(cfg):
        assert ann_file.startswith(root.rstrip('/') + '/'), ann_file
        assert '//' not in ann_file, ann_file


def test_configs_found():
    assert COCO in ALL and IMAGENET in ALL and CIFAR in ALL
    assert any(p.startswith('configs/demo/') for p in ALL)


@pytest.mark.parametrize('rel', ALL)
def test_one_top_level_data_root(rel):
    """Every dataset of the config is under its top-level ``data_root``, and a
    new ``data_root`` given as an option moves all of them."""
    cfg = load_config(config(rel))
    assert isinstance(cfg.get('data_root'), str), f'{rel}: no top-level data_root'
    _assert_under(cfg, cfg.data_root)
    _assert_under(load_config(config(rel), {'data_root': '/elsewhere/'}), '/elsewhere/')


@pytest.mark.parametrize('rel', [COCO, IMAGENET, CIFAR])
@pytest.mark.parametrize('root', ['/elsewhere/', '/elsewhere'])
def test_cfg_options_data_root(rel, root):
    cfg = load_config(config(rel), {'data_root': root})
    _assert_under(cfg, root)


def test_coco_evaluator_ann_file_moves():
    for root in ('/elsewhere/', '/elsewhere'):
        cfg = load_config(ROOT / COCO, {'data_root': root})
        for key in EVALUATORS:
            assert cfg[key].ann_file == '/elsewhere/annotations/instances_val2017.json'


@pytest.mark.parametrize('rel', [COCO, IMAGENET, CIFAR])
def test_derived_config_sets_only_data_root(tmp_path, rel):
    child = tmp_path / 'child.py'
    child.write_text(f"_base_ = {str(ROOT / rel)!r}\ndata_root = '/elsewhere/'\n")
    cfg = load_config(child)
    assert cfg.data_root == '/elsewhere/'
    _assert_under(cfg, '/elsewhere/')


def _two_roots(tmp_path, data_root):
    child = tmp_path / 'two_roots.py'
    child.write_text(
        f'_base_ = {str(ROOT / CIFAR)!r}\n'
        f'data_root = {data_root!r}\n'
        "train_dataloader = dict(dataset=dict(data_root='/a/'))\n"
        "val_dataloader = dict(dataset=dict(data_root='/b/'))\n"
        'test_dataloader = val_dataloader\n')
    return child


def test_two_dataset_roots_cannot_be_moved(tmp_path):
    with pytest.raises(ValueError, match='cannot be applied.*several roots'):
        load_config(_two_roots(tmp_path, '/c/'))


def test_two_dataset_roots_one_of_them_is_data_root(tmp_path):
    """Datasets set one by one on purpose, one of them at ``data_root``: kept."""
    cfg = load_config(_two_roots(tmp_path, '/a/'))
    assert cfg.train_dataloader.dataset.data_root == '/a/'
    assert cfg.val_dataloader.dataset.data_root == '/b/'
