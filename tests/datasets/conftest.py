"""Fixture writers for the dataset tests: tiny files in each dataset's real format.

Every builder writes into a pytest ``tmp_path`` and returns what it wrote (paths,
labels, pixels), so that the tests compare what the dataset classes read with the
ground truth instead of with hard-coded numbers.
"""
import os
import os.path as osp
import pickle
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
import pytest

GTSRB_HEADER = 'Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId'


def write_ppm(path: str, rgb: np.ndarray) -> None:
    """Write a binary (P6) PPM by hand, as the GTSRB files are: RGB, maxval 255."""
    h, w = rgb.shape[:2]
    with open(path, 'wb') as f:
        f.write(f'P6\n{w} {h}\n255\n'.encode('ascii'))
        f.write(np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())


@dataclass
class GTSRBFiles:
    """What :func:`make_gtsrb` wrote. Each image record has ``path``, ``label``,
    ``roi`` (x1, y1, x2, y2; inclusive), ``rgb`` (H, W, 3) and, for training
    images, ``track`` (``'CCCCC_TTTTT'``)."""
    root: str
    train_dir: str
    train: List[dict] = field(default_factory=list)
    test: List[dict] = field(default_factory=list)
    test_csv: Optional[str] = None

    def csv_of(self, class_id: int) -> str:
        return osp.join(self.train_dir, f'{class_id:05d}', f'GT-{class_id:05d}.csv')


def _image_and_roi(rng: np.random.Generator, k: int):
    """A random image of 8..10 x 9..10 pixels and a ROI inside it that depends on k."""
    h, w = 8 + k % 3, 9 + k % 2
    rgb = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    roi = (k % 2, (k // 2) % 3, w - 1 - k % 3, h - 1 - (k // 3) % 2)
    return rgb, roi


def make_gtsrb(root: str, tracks_per_class: Optional[Sequence[int]] = None, frames: int = 2,
               num_test: int = 12, test_csv_in: Optional[str] = 'images',
               unlabelled_csv: bool = True, train_dir: str = 'Training',
               seed: int = 0) -> GTSRBFiles:
    """Write a GTSRB tree: 43 class folders with ``GT-000NN.csv`` and
    ``TTTTT_FFFFF.ppm`` images, and ``Final_Test/Images`` with ``num_test`` images.

    Args:
        tracks_per_class: Tracks of each of the 43 classes. Default:
            ``1 + c % 4`` for class c (so some classes have a single track).
        frames: Frames per track.
        test_csv_in: Where the labelled ``GT-final_test.csv`` goes: ``'images'``
            (``Final_Test/Images/``), ``'root'`` or None (not written).
        unlabelled_csv: Also write the official unlabelled ``GT-final_test.test.csv``.
        train_dir: The training folder relative to root.
    """
    rng = np.random.default_rng(seed)
    tracks_per_class = tracks_per_class or [1 + c % 4 for c in range(43)]
    files = GTSRBFiles(root=root, train_dir=osp.join(root, train_dir))
    k = 0
    for class_id, num_tracks in enumerate(tracks_per_class):
        folder = osp.join(files.train_dir, f'{class_id:05d}')
        os.makedirs(folder)
        lines = [GTSRB_HEADER]
        for track in range(num_tracks):
            for frame in range(frames):
                rgb, roi = _image_and_roi(rng, k)
                k += 1
                name = f'{track:05d}_{frame:05d}.ppm'
                write_ppm(osp.join(folder, name), rgb)
                lines.append(';'.join(map(str, (name, rgb.shape[1], rgb.shape[0], *roi,
                                                class_id))))
                files.train.append(dict(path=osp.join(folder, name), label=class_id, roi=roi,
                                        rgb=rgb, track=f'{class_id:05d}_{track:05d}'))
        with open(osp.join(folder, f'GT-{class_id:05d}.csv'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
    image_dir = osp.join(root, 'Final_Test', 'Images')
    os.makedirs(image_dir)
    labelled, unlabelled = [GTSRB_HEADER], [GTSRB_HEADER.rsplit(';', 1)[0]]
    for i in range(num_test):
        rgb, roi = _image_and_roi(rng, k)
        k += 1
        label = (7 * i + 3) % 43
        name = f'{i:05d}.ppm'
        write_ppm(osp.join(image_dir, name), rgb)
        row = ';'.join(map(str, (name, rgb.shape[1], rgb.shape[0], *roi)))
        labelled.append(f'{row};{label}')
        unlabelled.append(row)
        files.test.append(dict(path=osp.join(image_dir, name), label=label, roi=roi, rgb=rgb))
    if unlabelled_csv:
        with open(osp.join(image_dir, 'GT-final_test.test.csv'), 'w') as f:
            f.write('\n'.join(unlabelled) + '\n')
    if test_csv_in is not None:
        folder = {'images': image_dir, 'root': root}[test_csv_in]
        files.test_csv = osp.join(folder, 'GT-final_test.csv')
        with open(files.test_csv, 'w') as f:
            f.write('\n'.join(labelled) + '\n')
    return files


def make_svhn(root: str, split: str = 'train', num: int = 12, seed: int = 0,
              labels: Optional[np.ndarray] = None, **overrides) -> Dict[str, np.ndarray]:
    """Write ``root/{split}_32x32.mat`` (MATLAB v5) with ``X`` (32, 32, 3, N) uint8 and
    ``y`` (N, 1) labels in 1..10; ``overrides`` replace or add entries (for the
    malformed-file tests). Returns the dict written."""
    from scipy.io import savemat
    rng = np.random.default_rng(seed)
    if labels is None:
        labels = np.arange(num) % 10 + 1  # every label 1..10, 10 included
    content = {'X': rng.integers(0, 256, size=(32, 32, 3, num), dtype=np.uint8),
               'y': np.asarray(labels, dtype=np.uint8).reshape(-1, 1)}
    content.update(overrides)
    content = {key: value for key, value in content.items() if value is not None}
    os.makedirs(root, exist_ok=True)
    savemat(osp.join(root, f'{split}_32x32.mat'), content)
    return content


def make_image_folders(root: str, split: str, wnids: Sequence[str],
                       per_class: Optional[Sequence[int]] = None, seed: int = 0) -> List[tuple]:
    """Write ``root/split/<wnid>/*.JPEG`` (8x9 JPEGs, ``per_class[i]`` in folder i,
    default ``1 + i % 3``). Returns ``[(path, wnid)]``."""
    rng = np.random.default_rng(seed)
    per_class = per_class or [1 + i % 3 for i in range(len(wnids))]
    written = []
    for wnid, count in zip(wnids, per_class):
        folder = osp.join(root, split, wnid)
        os.makedirs(folder, exist_ok=True)
        for j in range(count):
            path = osp.join(folder, f'{wnid}_{j}.JPEG')
            assert cv2.imwrite(path, rng.integers(0, 256, (8, 9, 3), dtype=np.uint8))
            written.append((path, wnid))
    return written


def make_cifar10(root: str, per_batch: int = 3, seed: int = 0) -> Dict[str, List[int]]:
    """Write CIFAR-10's python pickle batches (``cifar-10-batches-py``) with
    ``per_batch`` images each. Returns the labels per split."""
    rng = np.random.default_rng(seed)
    folder = osp.join(root, 'cifar-10-batches-py')
    os.makedirs(folder)
    labels = {'train': [], 'test': []}
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        batch_labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        with open(osp.join(folder, name), 'wb') as f:
            pickle.dump({'data': rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                         'labels': batch_labels}, f)
        labels['test' if name == 'test_batch' else 'train'] += batch_labels
    return labels


@pytest.fixture
def gtsrb_files(tmp_path) -> GTSRBFiles:
    """The default GTSRB tree (43 classes, 1..4 tracks of 2 frames, 12 test images)."""
    return make_gtsrb(str(tmp_path / 'gtsrb'))


@pytest.fixture
def gtsrb_factory(tmp_path):
    """``make_gtsrb`` writing under a fresh folder of tmp_path per call."""
    counter = iter(range(1000))

    def build(**kwargs) -> GTSRBFiles:
        return make_gtsrb(str(tmp_path / f'gtsrb{next(counter)}'), **kwargs)
    return build


@pytest.fixture
def svhn_factory(tmp_path):
    """``make_svhn(split=..., ...)`` writing into ``tmp_path/svhn``; returns
    ``(root, content)``."""
    root = str(tmp_path / 'svhn')

    def build(split: str = 'train', **kwargs):
        return root, make_svhn(root, split, **kwargs)
    return build


@pytest.fixture
def folders_factory(tmp_path):
    """``make_image_folders(root, split, wnids, ...)`` with root ``tmp_path/<name>``."""
    def build(name: str, split: str, wnids: Sequence[str], **kwargs):
        root = str(tmp_path / name)
        return root, make_image_folders(root, split, wnids, **kwargs)
    return build


@pytest.fixture
def cifar10_factory(tmp_path):
    """``make_cifar10`` into ``tmp_path/cifar10``; returns ``(root, labels)``."""
    def build(**kwargs):
        root = str(tmp_path / 'cifar10')
        return root, make_cifar10(root, **kwargs)
    return build
