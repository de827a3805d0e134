"""SVHN, the Street View House Numbers digits (Netzer et al., NIPS workshop 2011).

The cropped-digits format ("Format 2"): three MATLAB v5 files, never downloaded
here::

    DATA_ROOT/
      train_32x32.mat    # 73,257 digits
      test_32x32.mat     # 26,032 digits
      extra_32x32.mat    # 531,131 easier digits

each with ``X``: (32, 32, 3, N) uint8 RGB images and ``y``: (N, 1) labels 1..10,
where 10 stands for the digit 0.
"""
import os.path as osp
from typing import List, Sequence

import numpy as np
from mmpretrain.datasets import BaseDataset

from mmdyn.utils.validation import check_choice
from .base import ClassCountsMixin
from .checks import expected_layout

SVHN_CLASSES = tuple(str(d) for d in range(10))
_LAYOUT = expected_layout('SVHN')


def load_svhn_mat(path: str):
    """Read and check one SVHN ``*_32x32.mat`` file.

    Args:
        path: The ``.mat`` file.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``images`` (N, 32, 32, 3) uint8 in RGB
        order (C-contiguous) and ``labels`` (N,) int64 digits 0..9 (the file's
        10 mapped to 0).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Not a readable MATLAB v5 file, a missing ``X``/``y``, a
            wrong shape or dtype, no image, or labels outside 1..10 (naming the
            file).
    """
    from scipy.io import loadmat
    if not osp.isfile(path):
        raise FileNotFoundError(f'SVHN split file not found: {path}\n{_LAYOUT}')
    try:
        mat = loadmat(path)
    except NotImplementedError as e:  # scipy's answer to a v7.3 (HDF5) file
        raise ValueError(f'{path}: not a MATLAB v5 file ({e})') from None
    except Exception as e:  # noqa: BLE001  (scipy raises several kinds for a corrupt file)
        raise ValueError(f'{path}: cannot be read as a MATLAB file: {type(e).__name__}: {e}') \
            from None
    missing = [key for key in ('X', 'y') if key not in mat]
    if missing:
        found = sorted(k for k in mat if not k.startswith('__'))
        raise ValueError(f'{path}: missing key(s) {", ".join(missing)} (found {found}); '
                         f'{_LAYOUT}')
    images, labels = mat['X'], mat['y']
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise ValueError(f'{path}: X must have the shape (32, 32, 3, N), got {images.shape}')
    if images.dtype != np.uint8:
        raise ValueError(f'{path}: X must be uint8, got {images.dtype}')
    num = images.shape[3]
    if num == 0:
        raise ValueError(f'{path}: X holds 0 images (shape {images.shape}); expected '
                         f'(32, 32, 3, N) with N >= 1')
    if labels.shape not in ((num, 1), (num, )):
        raise ValueError(f'{path}: y must have the shape (N, 1) = ({num}, 1) to match X, '
                         f'got {labels.shape}')
    labels = labels.reshape(-1)
    if not (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.floating)):
        raise ValueError(f'{path}: y must hold numbers, got dtype {labels.dtype}')
    as_int = labels.astype(np.int64)
    bad = (as_int != labels) | (as_int < 1) | (as_int > 10)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f'{path}: labels must be integers in 1..10 (10 = digit 0); y[{first}] '
                         f'= {labels[first].item()!r} ({int(bad.sum())} bad of {num})')
    as_int[as_int == 10] = 0
    return np.ascontiguousarray(images.transpose(3, 0, 1, 2)), as_int


class SVHN(ClassCountsMixin, BaseDataset):
    """The SVHN cropped digits from the official ``*_32x32.mat`` files.

    Images are kept in memory like mmpretrain's ``CIFAR10``: each data info is
    ``{'img': (32, 32, 3) uint8 array, 'gt_label': int}`` with the channels in
    **RGB** order, as stored in the file (mmpretrain's CIFAR is RGB too). So the
    pipeline has no ``LoadImageFromFile`` and the data preprocessor takes
    ``to_rgb=False``. Class ``d`` is the digit ``d`` (the file's label 10 is
    class 0).

    Args:
        data_root (str): The folder with ``{train,test,extra}_32x32.mat``.
        split (str): ``'train'``, ``'test'`` or ``'extra'``. Default: ``'train'``.
        pipeline (Sequence): Transforms (configs or callables). Default: ().
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``.

    Raises:
        FileNotFoundError: A missing data root or split file (naming the path
            and the expected layout).
        ValueError: A malformed file (see :func:`load_svhn_mat`).
    """

    METAINFO = {'classes': SVHN_CLASSES}
    SPLITS = ('train', 'test', 'extra')

    def __init__(self, data_root: str = '', split: str = 'train', pipeline: Sequence = (),
                 **kwargs):
        self.split = check_choice('split', split, self.SPLITS)
        if not isinstance(data_root, str) or not data_root:
            raise ValueError(f'SVHN needs data_root (the folder of the .mat files), got '
                             f'{data_root!r}; {_LAYOUT}')
        super().__init__(ann_file='', data_root=osp.expanduser(data_root), data_prefix='',
                         pipeline=pipeline, **kwargs)

    @property
    def split_file(self) -> str:
        """The ``.mat`` file of the split."""
        return osp.join(self.data_root, f'{self.split}_32x32.mat')

    def load_data_list(self) -> List[dict]:
        """Read the split's ``.mat`` file into ``{'img', 'gt_label'}`` infos."""
        if not osp.isdir(self.data_root):
            raise FileNotFoundError(f'SVHN data root not found: {self.data_root}\n{_LAYOUT}')
        images, labels = load_svhn_mat(self.split_file)
        return [{'img': img, 'gt_label': int(label)} for img, label in zip(images, labels)]

    def extra_repr(self) -> List[str]:
        return [f'Split file: \t{self.split_file}']
