"""Check that the datasets a config reads exist, before anything is built.

mmdet's and mmpretrain's own errors for a missing dataset are a bare
``FileNotFoundError`` on one file, or (CIFAR) an invitation to download. The
tools call :func:`check_dataset_paths` first, which names the missing path and
the expected on-disk layout (the layouts are described in ``docs/datasets.md``),
and checks that a COCO annotation file is one (:func:`check_coco_annotation`)
instead of leaving a 0-byte, ``{}`` or image-less file to a ``JSONDecodeError``
or ``KeyError`` deep inside the dataset.
"""
import json
import mmap
import os
import os.path as osp
import re
from typing import Iterator, Tuple

LAYOUTS = {
    'CocoDataset': ('COCO: DATA_ROOT/annotations/instances_{train,val}2017.json and the image '
                    'folders DATA_ROOT/{train,val}2017/'),
    'ImageNet': ('ImageNet: DATA_ROOT/train/<wnid>/*.JPEG and DATA_ROOT/val/ (folders), '
                 'optionally DATA_ROOT/meta/{train,val}.txt with "path label" lines'),
    'CIFAR10': 'CIFAR-10: DATA_ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}',
    'CIFAR100': 'CIFAR-100: DATA_ROOT/cifar-100-python/{train,test,meta}',
    'CustomDataset': 'an image folder: DATA_ROOT/DATA_PREFIX/<class name>/<image files>',
    'GTSRB': ('GTSRB: DATA_ROOT/Training/000NN/GT-000NN.csv (semicolon-separated '
              'Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId) with the images '
              'TTTTT_FFFFF.ppm (track_frame) beside it, NN = 00..42 (DATA_ROOT/Final_Training/'
              'Images/000NN/ is accepted too); test: DATA_ROOT/Final_Test/Images/*.ppm and the '
              'labelled GT-final_test.csv (with ClassId) in DATA_ROOT/Final_Test/Images/ or '
              'DATA_ROOT/'),
    'SVHN': ('SVHN: DATA_ROOT/{train,test,extra}_32x32.mat (MATLAB v5 files from '
             'ufldl.stanford.edu/housenumbers: X (32, 32, 3, N) uint8 and y (N, 1) with labels '
             '1..10, 10 meaning digit 0)'),
    'Imagenette': ('Imagenette: DATA_ROOT/{train,val}/<wnid>/*.JPEG with the 10 folders '
                   'n01440764 n02102040 n02979186 n03000684 n03028079 n03394916 n03417042 '
                   'n03425413 n03445777 n03888257 (an extracted imagenette2[-320|-160].tgz)'),
    'Imagewoof': ('Imagewoof: DATA_ROOT/{train,val}/<wnid>/*.JPEG with the 10 folders '
                  'n02086240 n02087394 n02088364 n02089973 n02093754 n02096294 n02099601 '
                  'n02105641 n02111889 n02115641 (an extracted imagewoof2[-320|-160].tgz)'),
}

#: Where GTSRB's training folders may be, relative to DATA_ROOT, in order of preference:
#: ``Training/`` (GTSRB-Training_fixed.zip) or ``Final_Training/Images/``
#: (GTSRB_Final_Training_Images.zip).
GTSRB_TRAIN_DIRS = ('Training', osp.join('Final_Training', 'Images'))
#: The folder of GTSRB's official test images, relative to DATA_ROOT.
GTSRB_TEST_DIR = osp.join('Final_Test', 'Images')
#: Where the labelled GTSRB test CSV may be, relative to DATA_ROOT, in order of preference.
GTSRB_TEST_CSVS = (osp.join(GTSRB_TEST_DIR, 'GT-final_test.csv'), 'GT-final_test.csv')


#: COCO annotation files up to this size are parsed whole by :func:`check_coco_annotation`;
#: larger ones (COCO's train2017 file is 448 MB) are only scanned for a non-empty ``images``.
COCO_PARSE_LIMIT = 64 * 2**20
_COCO_FIELDS = '"images", "annotations" and "categories"'
_NON_EMPTY_IMAGES = re.compile(rb'"images"\s*:\s*\[\s*[^\]\s]')


def check_coco_annotation(path: str) -> None:
    """Raise unless ``path`` is a COCO annotation file with at least one image.

    Files up to :data:`COCO_PARSE_LIMIT` bytes are parsed (a JSON object with an
    ``images`` list that is not empty); larger ones are scanned for a non-empty
    ``"images": [...]`` without parsing (the dataset parses them anyway).

    Args:
        path: The annotation JSON (an existing file).

    Raises:
        FileNotFoundError: ``path`` is not a file.
        ValueError: The file is empty (0 bytes), not JSON, not a JSON object,
            has no ``images`` list, or the list is empty (one line naming the
            file).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'COCO annotation file not found: {path}')
    size = os.path.getsize(path)
    head = f'COCO annotation file {path}'
    if size == 0:
        raise ValueError(f'{head} is empty (0 bytes); expected a JSON object with '
                         f'{_COCO_FIELDS}')
    if size > COCO_PARSE_LIMIT:
        with open(path, 'rb') as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if _NON_EMPTY_IMAGES.search(data) is None:
                raise ValueError(f'{head} has no images (no non-empty "images" list); '
                                 f'expected a JSON object with {_COCO_FIELDS}')
        return
    try:
        with open(path, encoding='utf-8-sig') as f:
            content = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = (f' (line {err.lineno}, column {err.colno})'
                 if isinstance(err, json.JSONDecodeError) else '')
        raise ValueError(f'{head} is not JSON{where}; expected a JSON object with '
                         f'{_COCO_FIELDS}') from None
    if not isinstance(content, dict):
        raise ValueError(f'{head} holds a JSON {type(content).__name__}, not an object with '
                         f'{_COCO_FIELDS} (a results list of CocoMetric is not an annotation '
                         'file)')
    images = content.get('images')
    if not isinstance(images, list):
        keys = ', '.join(map(repr, list(content)[:5])) or 'none'
        raise ValueError(f'{head} has no "images" list (keys: {keys}); expected a JSON '
                         f'object with {_COCO_FIELDS}')
    if not images:
        raise ValueError(f'{head} has no images (its "images" list is empty): nothing to '
                         'train or test on')


def expected_layout(name: str) -> str:
    """``'expected layout: ...'`` for the dataset type ``name`` (a key of
    :data:`LAYOUTS`), the tail of every missing-data error."""
    return f'expected layout: {LAYOUTS[name]}'


def gtsrb_train_dir(root: str) -> str:
    """The GTSRB training folder under ``root``: the first of :data:`GTSRB_TRAIN_DIRS`
    that exists, else ``root/Training`` (which then does not exist)."""
    for sub in GTSRB_TRAIN_DIRS:
        if osp.isdir(osp.join(root, sub)):
            return osp.join(root, sub)
    return osp.join(root, GTSRB_TRAIN_DIRS[0])


def gtsrb_test_csv(root: str) -> str:
    """The labelled GTSRB test CSV under ``root``: the first of :data:`GTSRB_TEST_CSVS`
    that exists, else ``root/Final_Test/Images/GT-final_test.csv`` (which then does not
    exist)."""
    for sub in GTSRB_TEST_CSVS:
        if osp.isfile(osp.join(root, sub)):
            return osp.join(root, sub)
    return osp.join(root, GTSRB_TEST_CSVS[0])


def dataset_type_name(kind) -> str:
    """The registry name of a dataset ``type`` (a class, ``'GTSRB'`` or a scoped
    ``'mmpretrain.GTSRB'``) without its scope."""
    kind = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    return kind.rsplit('.', 1)[-1]


def _is_coco(kind) -> bool:
    """Whether the dataset ``type`` reads a COCO annotation file (``CocoDataset``
    and its subclasses named ``*CocoDataset``)."""
    return dataset_type_name(kind).endswith('CocoDataset')


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _required_paths(dataset: dict) -> Iterator[Tuple[str, str]]:
    """``(path, what)`` pairs a dataset config needs on disk."""
    kind = dataset_type_name(dataset.get('type', ''))
    root = dataset.get('data_root', '') or ''
    prefix = dataset.get('data_prefix', '')
    if _is_coco(kind):
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
    elif kind == 'GTSRB':
        yield root, 'data root'
        if dataset.get('split', 'train') == 'test':
            yield osp.join(root, GTSRB_TEST_DIR), 'test image folder'
            csv = dataset.get('test_csv')
            if csv:
                yield _join(root, csv), 'labelled test CSV (test_csv)'
            else:
                yield gtsrb_test_csv(root), ('labelled test CSV GT-final_test.csv (looked for in '
                                             + ' and '.join(osp.join(root, sub)
                                                            for sub in GTSRB_TEST_CSVS) + ')')
        else:
            yield gtsrb_train_dir(root), 'training folder'
    elif kind == 'SVHN':
        yield root, 'data root'
        yield osp.join(root, f"{dataset.get('split', 'train')}_32x32.mat"), 'split file'
    elif kind in ('Imagenette', 'Imagewoof'):
        yield root, 'data root'
        yield osp.join(root, dataset.get('split', 'train')), 'split folder'


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
        ValueError: A COCO annotation file of a dataset or of a ``CocoMetric``
            that is empty, not JSON or has no images
            (:func:`check_coco_annotation`), naming the split and the file.
    """
    checked = set()  # COCO files already checked (a dataset's and its metric's are one)
    for split in splits:
        loader = cfg.get(f'{split}_dataloader')
        if not loader:
            continue
        for dataset in _datasets(loader.get('dataset')):
            kind = dataset.get('type', '')
            for path, what in _required_paths(dataset):
                if path and not osp.exists(path):
                    layout = LAYOUTS.get(dataset_type_name(kind),
                                         'see the dataset documentation')
                    raise FileNotFoundError(
                        f'{split} dataset ({kind}): {what} not found: {path}\n'
                        f'expected layout: {layout}\n(set data_root in the config or with '
                        f'--cfg-options {split}_dataloader.dataset.data_root=...)')
            if _is_coco(kind) and dataset.get('ann_file'):
                ann = _join(dataset.get('data_root', '') or '', dataset['ann_file'])
                _check_coco_once(ann, f'{split} dataset ({kind})', checked)
        evaluator = cfg.get(f'{split}_evaluator')
        for metric in evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]:
            # a CocoMetric's own ann_file (one that is missing is left to the metric)
            if isinstance(metric, dict) and metric.get('ann_file') and \
                    dataset_type_name(metric.get('type', '')).endswith('CocoMetric'):
                _check_coco_once(metric['ann_file'],
                                 f"{split} evaluator ({metric['type']})", checked)


def _check_coco_once(ann: str, who: str, checked: set) -> None:
    """:func:`check_coco_annotation` on the existing file ``ann`` unless it is in
    ``checked``; the error is prefixed by ``who``."""
    if ann in checked or not osp.isfile(ann):
        return
    checked.add(ann)
    try:
        check_coco_annotation(ann)
    except ValueError as err:
        raise ValueError(f'{who}: {err}') from None
