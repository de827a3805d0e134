"""GTSRB, the German Traffic Sign Recognition Benchmark (Stallkamp et al., IJCNN 2011).

43 classes of traffic signs, 39,209 training images and 12,630 official test
images, read from the layout of the official archives (never downloaded)::

    DATA_ROOT/
      Training/                     # GTSRB-Training_fixed.zip; or Final_Training/Images/
        00000/                      #   (GTSRB_Final_Training_Images.zip)
          GT-00000.csv              # Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId
          00000_00000.ppm           # TTTTT_FFFFF.ppm: track TTTTT, frame FFFFF
          ...
        ...
        00042/
      Final_Test/Images/            # GTSRB_Final_Test_Images.zip
        00000.ppm ... 12629.ppm
        GT-final_test.test.csv      # shipped with the images: no ClassId
        GT-final_test.csv           # from GTSRB_Final_Test_GT.zip (with ClassId), here
      GT-final_test.csv             # ... or here

The training images come in *tracks*: about 30 frames of one physical sign
filmed while driving past it. Frames of one track are near-duplicates, so a
validation split by image leaks the training set into the validation set;
:class:`GTSRB` holds out whole tracks (:func:`split_tracks`).
"""
import csv
import os
import os.path as osp
import re
from numbers import Real
from typing import Dict, List, Mapping, Optional, Sequence, Set

import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmpretrain.datasets import BaseDataset

from mmdyn.utils.validation import check_choice, check_positive_int
from .base import ClassCountsMixin
from .checks import (GTSRB_TEST_CSVS, GTSRB_TEST_DIR, GTSRB_TRAIN_DIRS, expected_layout,
                     gtsrb_train_dir)
from .transforms import CropROI, roi_to_array

#: The 43 GTSRB sign names; index i is ``ClassId`` i.
GTSRB_CLASSES = (
    'Speed limit (20km/h)', 'Speed limit (30km/h)', 'Speed limit (50km/h)',
    'Speed limit (60km/h)', 'Speed limit (70km/h)', 'Speed limit (80km/h)',
    'End of speed limit (80km/h)', 'Speed limit (100km/h)', 'Speed limit (120km/h)',
    'No passing', 'No passing for vehicles over 3.5 metric tons',
    'Right-of-way at the next intersection', 'Priority road', 'Yield', 'Stop', 'No vehicles',
    'Vehicles over 3.5 metric tons prohibited', 'No entry', 'General caution',
    'Dangerous curve to the left', 'Dangerous curve to the right', 'Double curve',
    'Bumpy road', 'Slippery road', 'Road narrows on the right', 'Road work',
    'Traffic signals', 'Pedestrians', 'Children crossing', 'Bicycles crossing',
    'Beware of ice/snow', 'Wild animals crossing', 'End of all speed and passing limits',
    'Turn right ahead', 'Turn left ahead', 'Ahead only', 'Go straight or right',
    'Go straight or left', 'Keep right', 'Keep left', 'Roundabout mandatory',
    'End of no passing', 'End of no passing by vehicles over 3.5 metric tons')
NUM_CLASSES = len(GTSRB_CLASSES)

#: The columns of every GTSRB ground-truth CSV (the unlabelled test CSV lacks ClassId).
CSV_COLUMNS = ('Filename', 'Width', 'Height', 'Roi.X1', 'Roi.Y1', 'Roi.X2', 'Roi.Y2', 'ClassId')
UNLABELLED_TEST_CSV = 'GT-final_test.test.csv'

_TRACK_NAME = re.compile(r'^(\d+)_(\d+)\.ppm$', re.IGNORECASE)
_CLASS_DIR = re.compile(r'^\d{5}$')
_LAYOUT = expected_layout('GTSRB')


def _image_path(filename: str, image_dir: str, real_dirs: Dict[str, str], where: str) -> str:
    """The path of the image ``filename`` of a CSV row, which must stay inside
    ``image_dir`` (``real_dirs``: ``realpath`` of folders, ``''`` is ``image_dir``'s,
    filled as folders are met); see :func:`read_gt_csv`."""
    if osp.isabs(filename):
        raise ValueError(f'{where}: Filename {filename!r} is an absolute path; it must be '
                         f'relative to {image_dir}, the folder of this CSV\'s images')
    rel = osp.normpath(filename)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise ValueError(f'{where}: Filename {filename!r} points outside {image_dir}, the '
                         'folder of this CSV\'s images (an image of another folder would get '
                         'this row\'s label)')
    img_path = osp.join(image_dir, rel)
    if not osp.isfile(img_path):
        raise FileNotFoundError(f'{where}: image not found: {img_path}')
    parent = osp.dirname(img_path)
    if parent not in real_dirs:
        real_dirs[parent] = osp.realpath(parent)
    real_parent, real_dir = real_dirs[parent], real_dirs['']
    if osp.commonpath([real_parent, real_dir]) != real_dir:
        raise ValueError(f'{where}: Filename {filename!r} resolves to {real_parent} through a '
                         f'symbolic link, outside {image_dir}, the folder of this CSV\'s '
                         'images')
    return img_path


def read_gt_csv(csv_path: str, image_dir: str, need_class: bool = True,
                seen: Optional[Dict[tuple, tuple]] = None) -> List[dict]:
    """Parse one GTSRB ground-truth CSV and check every row.

    Args:
        csv_path: The semicolon-separated file with the header
            ``Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId``
            (columns may come in any order; extra columns are ignored).
        image_dir: The folder the ``Filename`` entries are relative to; no
            entry may lead outside it (absolute, ``..``, or through a symbolic
            link to a folder elsewhere).
        need_class: Whether ``ClassId`` is required. Default: True.
        seen: Images already listed, ``{(st_dev, st_ino): (csv_path, line)}``,
            updated in place (to refuse one image in two CSVs). Default: None
            (only this CSV).

    Returns:
        One dict per row: ``img_path``, ``width``, ``height``, ``roi``
        (``(x1, y1, x2, y2)`` ints), ``class_id`` (absent without ``need_class``),
        ``filename`` and ``line`` (the 1-based line number in the CSV).

    Raises:
        ValueError: A missing column (naming the file and line 1), a row with
            the wrong number of fields, a non-integer value, a bad ROI, a
            ``ClassId`` outside 0..42, a ``Filename`` outside ``image_dir`` or
            an image listed twice (a repeated row, or two names of one file)
            (naming the file and line).
        FileNotFoundError: An image named by a row does not exist.
    """
    seen = {} if seen is None else seen
    real_dirs = {'': osp.realpath(image_dir)}
    with open(csv_path, newline='', encoding='utf-8-sig') as f:
        rows = list(csv.reader(f, delimiter=';'))
    if not rows:
        raise ValueError(f'{csv_path}: empty file; expected the header {";".join(CSV_COLUMNS)}')
    header = [cell.strip() for cell in rows[0]]
    required = CSV_COLUMNS if need_class else CSV_COLUMNS[:-1]
    missing = [col for col in required if col not in header]
    if missing == ['ClassId']:
        raise ValueError(
            f'{csv_path}, line 1: no ClassId column, so no labels (the official test release '
            f'ships the unlabelled {UNLABELLED_TEST_CSV}); the labelled GT-final_test.csv from '
            'GTSRB_Final_Test_GT.zip is needed')
    if missing:
        raise ValueError(f'{csv_path}, line 1: missing column(s) {", ".join(missing)}; expected '
                         f'the header {";".join(CSV_COLUMNS)}')
    index = {col: header.index(col) for col in required}
    records = []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        where = f'{csv_path}, line {line}'
        if len(row) != len(header):
            raise ValueError(f'{where}: {len(row)} fields, expected {len(header)} '
                             f'({";".join(header)})')
        values = {}
        for col in required[1:]:
            cell = row[index[col]].strip()
            try:
                values[col] = int(cell)
            except ValueError:
                raise ValueError(f'{where}: {col} must be an integer, got {cell!r}') from None
        filename = row[index['Filename']].strip()
        if not filename:
            raise ValueError(f'{where}: empty Filename')
        width, height = values['Width'], values['Height']
        if width < 1 or height < 1:
            raise ValueError(f'{where}: Width and Height must be >= 1, got {width}x{height}')
        roi = tuple(int(v) for v in roi_to_array(
            [values[c] for c in ('Roi.X1', 'Roi.Y1', 'Roi.X2', 'Roi.Y2')], where))
        if roi[0] >= width or roi[1] >= height:
            raise ValueError(f'{where}: ROI {roi} starts outside the {width}x{height} image')
        img_path = _image_path(filename, image_dir, real_dirs, where)
        stat = os.stat(img_path)
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            first_csv, first_line = seen[key]
            first = (f'line {first_line}' if first_csv == csv_path
                     else f'{first_csv}, line {first_line}')
            raise ValueError(f'{where}: image {filename!r} is already listed at {first}; '
                             'each image must be listed once (a repeated row would count it '
                             'twice)')
        seen[key] = (csv_path, line)
        record = dict(img_path=img_path, width=width, height=height, roi=roi,
                      filename=filename, line=line)
        if need_class:
            class_id = values['ClassId']
            if not 0 <= class_id < NUM_CLASSES:
                raise ValueError(f'{where}: ClassId {class_id} outside 0..{NUM_CLASSES - 1}')
            record['class_id'] = class_id
        records.append(record)
    return records


def split_tracks(tracks: Mapping[int, Sequence[str]], val_ratio: float,
                 seed: int = 0) -> Set[str]:
    """Choose the tracks of each class that are held out for validation.

    Per class with ``n >= 2`` tracks, ``round(val_ratio * n)`` tracks (at least
    one, at most ``n - 1``) are drawn without replacement by a generator
    seeded with ``(seed, class_id)``; a class with one track keeps it for
    training. So every class with >= 2 tracks appears in both splits, and the
    choice for one class depends only on ``seed``, the class and its own
    tracks (not on the other classes or on the listing order).

    Args:
        tracks: ``{class_id: track ids}`` (duplicates are ignored).
        val_ratio: Fraction of each class's tracks to hold out, in (0, 1).
        seed: Seed (int >= 0). Default: 0.

    Returns:
        The set of held-out track ids.
    """
    held_out = set()
    for class_id in sorted(tracks):
        ids = sorted(set(tracks[class_id]))
        n = len(ids)
        if n < 2:
            continue
        n_val = min(n - 1, max(1, int(val_ratio * n + 0.5)))
        rng = np.random.default_rng([seed, int(class_id)])
        held_out.update(ids[i] for i in rng.permutation(n)[:n_val])
    return held_out


class GTSRB(ClassCountsMixin, BaseDataset):
    """The German Traffic Sign Recognition Benchmark from its official files.

    Data infos hold ``img_path`` (a ``.ppm`` file, read by ``LoadImageFromFile``
    with OpenCV, so in BGR order like every file-based mmpretrain dataset: use
    ``to_rgb=True`` in the data preprocessor), ``gt_label`` (``ClassId``),
    ``roi`` (``(x1, y1, x2, y2)``, corners inclusive, see :class:`CropROI`) and,
    for the training splits, ``track`` (``'CCCCC_TTTTT'``: class folder and
    track, unique over the dataset).

    Splits:

    - ``'trainval'``: every training image (39,209 in the official set).
    - ``'train'`` / ``'val'``: the training images split **by track**
      (:func:`split_tracks`): whole tracks are held out per class, so no sign
      is seen in both. Disjoint, together ``'trainval'``, deterministic given
      ``val_ratio`` and ``split_seed``.
    - ``'test'``: the 12,630 official test images with the labels of
      ``GT-final_test.csv``.

    Args:
        data_root (str): The folder holding ``Training/`` (or
            ``Final_Training/Images/``) and ``Final_Test/``.
        split (str): ``'train'``, ``'val'``, ``'trainval'`` or ``'test'``.
            Default: ``'train'``.
        val_ratio (float): Fraction of each class's tracks held out for
            ``'val'``, in (0, 1). Default: 0.1.
        split_seed (int): Seed of the track split (>= 0). Default: 0.
        roi_crop (bool): Insert :class:`CropROI` right after the pipeline's
            ``LoadImageFromFile`` so every image is cropped to its sign.
            Default: False (the full image, with its 10 % border).
        test_csv (str, optional): The labelled test CSV (relative to
            ``data_root`` or absolute). Default: None, which looks for
            ``GT-final_test.csv`` in ``Final_Test/Images/`` and then in
            ``data_root``.
        pipeline (Sequence): Transforms (configs or callables). Default: ().
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``
            (``test_mode``, ``indices``, ``lazy_init``, ``metainfo``, ...).

    Raises:
        FileNotFoundError: A missing data root, folder, CSV or image (naming
            the path and the expected layout).
        ValueError: A bad option, a malformed CSV (naming the file and line: see
            :func:`read_gt_csv`; also one image in two class folders), or
            ``split='val'`` when every class has a single track (it would be empty).
    """

    METAINFO = {'classes': GTSRB_CLASSES}
    SPLITS = ('train', 'val', 'trainval', 'test')

    def __init__(self,
                 data_root: str = '',
                 split: str = 'train',
                 val_ratio: float = 0.1,
                 split_seed: int = 0,
                 roi_crop: bool = False,
                 test_csv: Optional[str] = None,
                 pipeline: Sequence = (),
                 **kwargs):
        self.split = check_choice('split', split, self.SPLITS)
        if (not isinstance(val_ratio, Real) or isinstance(val_ratio, bool)
                or not 0 < val_ratio < 1):
            raise ValueError(f'val_ratio must be a number in (0, 1), got {val_ratio!r}')
        self.val_ratio = float(val_ratio)
        self.split_seed = check_positive_int('split_seed', split_seed, minimum=0)
        if not isinstance(roi_crop, bool):
            raise TypeError(f'roi_crop must be a bool, got {roi_crop!r}')
        if not isinstance(data_root, str) or not data_root:
            raise ValueError(f'GTSRB needs data_root (the folder of the extracted archives), '
                             f'got {data_root!r}; {_LAYOUT}')
        if test_csv is not None and not isinstance(test_csv, str):
            raise TypeError(f'test_csv must be a str or None, got {test_csv!r}')
        self.roi_crop = roi_crop
        self.test_csv = test_csv
        super().__init__(ann_file='', data_root=osp.expanduser(data_root), data_prefix='',
                         pipeline=pipeline, **kwargs)
        if roi_crop:
            self._insert_roi_crop()

    def _insert_roi_crop(self) -> None:
        transforms = self.pipeline.transforms
        if any(isinstance(t, CropROI) for t in transforms):
            raise ValueError('roi_crop=True and the pipeline already has a CropROI: use one or '
                             'the other (cropping twice is an error)')
        loads = [i for i, t in enumerate(transforms) if isinstance(t, LoadImageFromFile)]
        if not loads:
            raise ValueError('roi_crop=True needs a LoadImageFromFile in the pipeline (CropROI '
                             'is inserted right after it); got ' +
                             (', '.join(type(t).__name__ for t in transforms) or 'none'))
        transforms.insert(loads[0] + 1, CropROI())

    # ------------------------------------------------------------------ loading
    def load_data_list(self) -> List[dict]:
        """Read the CSVs of the split; see the class docstring."""
        root = self.data_root
        if not osp.isdir(root):
            raise FileNotFoundError(f'GTSRB data root not found: {root}\n{_LAYOUT}')
        if self.split == 'test':
            return self._load_test(root)
        data_list = self._load_training(root)
        if self.split == 'trainval':
            return data_list
        by_class: Dict[int, List[str]] = {}
        for info in data_list:
            by_class.setdefault(info['gt_label'], []).append(info['track'])
        held_out = split_tracks(by_class, self.val_ratio, self.split_seed)
        if self.split == 'val' and not held_out:
            raise ValueError(
                f"GTSRB split='val' is empty: every class in {gtsrb_train_dir(root)} has a "
                'single track, and the validation split holds out whole tracks of classes '
                "with 2 or more; use split='trainval' and train without validation "
                '(val_dataloader, val_cfg and val_evaluator None), or a data set with more '
                'tracks per class')
        want_val = self.split == 'val'
        return [info for info in data_list if (info['track'] in held_out) == want_val]

    def _load_training(self, root: str) -> List[dict]:
        train_dir = gtsrb_train_dir(root)
        if not osp.isdir(train_dir):
            looked = ' nor '.join(osp.join(root, sub) for sub in GTSRB_TRAIN_DIRS)
            raise FileNotFoundError(f'GTSRB training folder not found: {looked}\n{_LAYOUT}')
        class_dirs = {}
        for name in sorted(os.listdir(train_dir)):
            path = osp.join(train_dir, name)
            if name.startswith('.') or not osp.isdir(path):
                continue  # Readme.txt and the like
            if not _CLASS_DIR.match(name) or int(name) >= NUM_CLASSES:
                raise ValueError(f'unexpected folder {path} in the GTSRB training folder; '
                                 f'expected only the class folders 00000..{NUM_CLASSES - 1:05d}')
            class_dirs[int(name)] = path
        missing = [f'{c:05d}' for c in range(NUM_CLASSES) if c not in class_dirs]
        if missing:
            raise FileNotFoundError(
                f'GTSRB training folder {train_dir} lacks the class folder(s) '
                f'{", ".join(missing)} (incompletely extracted?)\n{_LAYOUT}')
        data_list, seen = [], {}
        for class_id in range(NUM_CLASSES):
            csv_path = osp.join(class_dirs[class_id], f'GT-{class_id:05d}.csv')
            if not osp.isfile(csv_path):
                raise FileNotFoundError(f'GTSRB annotation file not found: {csv_path}\n{_LAYOUT}')
            for rec in read_gt_csv(csv_path, class_dirs[class_id], seen=seen):
                where = f'{csv_path}, line {rec["line"]}'
                if rec['class_id'] != class_id:
                    raise ValueError(f'{where}: ClassId {rec["class_id"]} in the folder of '
                                     f'class {class_id:05d}')
                match = _TRACK_NAME.match(osp.basename(rec['filename']))
                if match is None:
                    raise ValueError(f'{where}: training image name {rec["filename"]!r} is not '
                                     'TTTTT_FFFFF.ppm (track_frame); the track is needed for '
                                     'the validation split')
                data_list.append(dict(img_path=rec['img_path'], gt_label=class_id,
                                      roi=rec['roi'],
                                      track=f'{class_id:05d}_{int(match.group(1)):05d}'))
        return data_list

    def _test_csv_path(self, root: str, image_dir: str) -> str:
        if self.test_csv is not None:
            path = self.test_csv if osp.isabs(self.test_csv) else osp.join(root, self.test_csv)
            if not osp.isfile(path):
                raise FileNotFoundError(f'GTSRB test CSV (test_csv) not found: {path}')
            return path
        candidates = [osp.join(root, sub) for sub in GTSRB_TEST_CSVS]
        for path in candidates:
            if osp.isfile(path):
                return path
        message = ('GTSRB labelled test CSV GT-final_test.csv not found in '
                   + ' nor '.join(candidates))
        unlabelled = osp.join(image_dir, UNLABELLED_TEST_CSV)
        if osp.isfile(unlabelled):
            message += (f'; there is only {unlabelled}, which has no ClassId: the labelled '
                        'GT-final_test.csv (GTSRB_Final_Test_GT.zip) is needed')
        raise FileNotFoundError(f'{message} (or set test_csv)\n{_LAYOUT}')

    def _load_test(self, root: str) -> List[dict]:
        image_dir = osp.join(root, GTSRB_TEST_DIR)
        if not osp.isdir(image_dir):
            raise FileNotFoundError(f'GTSRB test image folder not found: {image_dir}\n{_LAYOUT}')
        csv_path = self._test_csv_path(root, image_dir)
        return [dict(img_path=rec['img_path'], gt_label=rec['class_id'], roi=rec['roi'])
                for rec in read_gt_csv(csv_path, image_dir)]

    # ------------------------------------------------------------------- helpers
    def extra_repr(self) -> List[str]:
        body = [f'Data root: \t{self.data_root}', f'Split: \t{self.split}']
        if self.split in ('train', 'val'):
            body.append(f'Track split: \tval_ratio={self.val_ratio}, seed={self.split_seed}')
        body.append(f'ROI crop: \t{self.roi_crop}')
        return body
