"""Check that the datasets a config reads exist, before anything is built.

mmdet's and mmpretrain's own errors for a missing dataset are a bare
``FileNotFoundError`` on one file, or (CIFAR) an invitation to download. The
tools call :func:`check_dataset_paths` first, which names the missing path and
the expected on-disk layout (REFERENCE §5).
"""
import os.path as osp
from typing import Iterator, Tuple

LAYOUTS = {
    'CocoDataset': ('COCO: DATA_ROOT/annotations/instances_{train,val}2017.json and the image '
                    'folders DATA_ROOT/{train,val}2017/'),
    'ImageNet': ('ImageNet: DATA_ROOT/train/<wnid>/*.JPEG and DATA_ROOT/val/ (folders), '
                 'optionally DATA_ROOT/meta/{train,val}.txt with "path label" lines'),
    'CIFAR10': 'CIFAR-10: DATA_ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}',
    'CIFAR100': 'CIFAR-100: DATA_ROOT/cifar-100-python/{train,test,meta}',
    'CustomDataset': 'an image folder: DATA_ROOT/DATA_PREFIX/<class name>/<image files>',
}


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _required_paths(dataset: dict) -> Iterator[Tuple[str, str]]:
    """``(path, what)`` pairs a dataset config needs on disk."""
    kind = dataset.get('type', '')
    kind = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    root = dataset.get('data_root', '') or ''
    prefix = dataset.get('data_prefix', '')
    if kind == 'CocoDataset' or kind.endswith('CocoDataset'):
        yield _join(root, dataset.get('ann_file', '')), 'annotation file'
        if isinstance(prefix, dict) and prefix.get('img'):
            yield _join(root, prefix['img']), 'image folder'
    elif kind == 'ImageNet':
        split = dataset.get('split', '')
        if dataset.get('ann_file'):
            yield _join(root, dataset['ann_file']), 'annotation file'
        if split:
            yield _join(root, split), f'{split} image folder'
        else:
            yield root, 'data root'
    elif kind in ('CIFAR10', 'CIFAR100'):
        if dataset.get('download', True) is False:  # else mmpretrain would download
            folder = 'cifar-10-batches-py' if kind == 'CIFAR10' else 'cifar-100-python'
            yield osp.join(root, folder), 'extracted batches folder'
    elif kind == 'CustomDataset':
        sub = prefix if isinstance(prefix, str) else (prefix or {}).get('img_path', '')
        yield _join(root, sub) if sub else root, 'image folder'


def _datasets(dataset: dict) -> Iterator[dict]:
    """The leaf dataset configs of a (possibly wrapped) dataset config."""
    if not isinstance(dataset, dict):
        return
    if 'datasets' in dataset:
        for sub in dataset['datasets']:
            yield from _datasets(sub)
    elif 'dataset' in dataset:
        yield from _datasets(dataset['dataset'])
    else:
        yield dataset


def check_dataset_paths(cfg, splits=('train', 'val', 'test')) -> None:
    """Raise if a dataloader of ``cfg`` points at data that is not on disk.

    Args:
        cfg: The config (``mmengine.Config`` or dict).
        splits: Which of ``{split}_dataloader`` to check (absent ones are skipped).

    Raises:
        FileNotFoundError: Naming the split, the dataset type, the missing path
            and the layout expected there.
    """
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for dataset in _datasets(loader.get('dataset')):
            kind = dataset.get('type', '')
            for path, what in _required_paths(dataset):
                if path and not osp.exists(path):
                    layout = LAYOUTS.get(kind if isinstance(kind, str) else '',
                                         'see the dataset documentation')
                    raise FileNotFoundError(
                        f'{split} dataset ({kind}): {what} not found: {path}\n'
                        f'expected layout: {layout}\n(set data_root in the config or with '
                        f'--cfg-options {split}_dataloader.dataset.data_root=...)')
