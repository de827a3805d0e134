"""Imagenette / Imagewoof: fixed WordNet-id order, readable names, the errors."""
import os
import os.path as osp
import re
from collections import Counter

import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile

from mmdyn.datasets.checks import LAYOUTS
from mmdyn.datasets.classification import (IMAGENETTE_CLASSES, IMAGENETTE_WNIDS,
                                           IMAGEWOOF_CLASSES, IMAGEWOOF_WNIDS, Imagenette,
                                           Imagewoof)

CASES = [pytest.param(Imagenette, IMAGENETTE_WNIDS, IMAGENETTE_CLASSES, id='Imagenette'),
         pytest.param(Imagewoof, IMAGEWOOF_WNIDS, IMAGEWOOF_CLASSES, id='Imagewoof')]


@pytest.mark.parametrize('cls,wnids,names', CASES)
@pytest.mark.parametrize('split', ['train', 'val'])
def test_labels_follow_the_fixed_wnid_order(folders_factory, cls, wnids, names, split):
    # written in reverse order, with uneven counts
    root, written = folders_factory('data', split, wnids[::-1], per_class=[1, 2, 3] * 3 + [2])
    ds = cls(root, split=split)
    assert len(ds) == len(written)
    folder_of = dict(written)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['gt_label'] == wnids.index(folder_of[info['img_path']])
    assert ds.metainfo['classes'] == names and ds.metainfo['wnids'] == wnids
    counts = Counter(wnid for _, wnid in written)
    assert ds.class_counts() == [counts[w] for w in wnids]


def test_known_names_at_their_wnids():
    assert dict(zip(IMAGENETTE_WNIDS, IMAGENETTE_CLASSES))['n01440764'] == 'tench'
    assert dict(zip(IMAGENETTE_WNIDS, IMAGENETTE_CLASSES))['n03888257'] == 'parachute'
    assert dict(zip(IMAGEWOOF_WNIDS, IMAGEWOOF_CLASSES))['n02111889'] == 'Samoyed'
    assert len(set(IMAGENETTE_WNIDS) | set(IMAGEWOOF_WNIDS)) == 20


def test_images_load(folders_factory):
    root, written = folders_factory('data', 'val', IMAGENETTE_WNIDS)
    ds = Imagenette(root, split='val', pipeline=[LoadImageFromFile()])
    out = ds[len(ds) - 1]
    assert out['img'].shape == (8, 9, 3) and out['img'].dtype == np.uint8


def test_unknown_folder_is_an_error(folders_factory):
    root, _ = folders_factory('data', 'train', IMAGENETTE_WNIDS)
    os.makedirs(osp.join(root, 'train', 'n99999999'))
    with pytest.raises(ValueError, match=r'Imagenette: unknown folder\(s\) n99999999 in '):
        Imagenette(root)


def test_imagewoof_data_given_to_imagenette(folders_factory):
    root, _ = folders_factory('woof', 'train', IMAGEWOOF_WNIDS)
    with pytest.raises(ValueError, match=r'unknown folder\(s\) n02086240, .*Imagenette and '
                                         r'Imagewoof have different ones'):
        Imagenette(root)


@pytest.mark.parametrize('cls,wnids,names', CASES)
def test_missing_wnid_folder(folders_factory, cls, wnids, names):
    root, _ = folders_factory('data', 'val', wnids[:-1])
    with pytest.raises(FileNotFoundError) as info:
        cls(root, split='val')
    message = str(info.value)
    assert f'{cls.__name__}: missing class folder(s) ' + osp.join(root, 'val', wnids[-1]) \
        in message
    assert LAYOUTS[cls.__name__] in message


def test_empty_wnid_folder(folders_factory):
    per_class = [1] * 9 + [0]
    root, _ = folders_factory('data', 'train', IMAGENETTE_WNIDS, per_class=per_class)
    with pytest.raises(ValueError, match=r'no image files \(.*\) in .*n03888257'):
        Imagenette(root)


def test_hidden_folders_and_files_are_ignored(folders_factory):
    root, written = folders_factory('data', 'train', IMAGEWOOF_WNIDS)
    os.makedirs(osp.join(root, 'train', '.ipynb_checkpoints'))
    open(osp.join(root, 'train', 'notes.txt'), 'w').close()
    assert len(Imagewoof(root)) == len(written)


@pytest.mark.parametrize('cls', [Imagenette, Imagewoof])
def test_missing_root_and_split(tmp_path, folders_factory, cls):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError, match=re.escape(
            f'{cls.__name__} data root not found: {missing}') + r'\nexpected layout: ' +
            re.escape(LAYOUTS[cls.__name__])):
        cls(missing)
    root, _ = folders_factory('data', 'train', cls.WNIDS)
    with pytest.raises(FileNotFoundError, match=re.escape(
            f'{cls.__name__} val folder not found: {osp.join(root, "val")}')):
        cls(root, split='val')


@pytest.mark.parametrize('kwargs,message', [
    (dict(split='test'), r"unknown split 'test'; expected one of \['train', 'val'\]"),
    (dict(data_prefix='train'), r'sets data_prefix from split'),
    (dict(with_label=False), r'always has labels'),
    (dict(metainfo=dict(classes=('a', 'b'))), r'has 10 classes, but metainfo gives 2'),
])
def test_bad_options(folders_factory, kwargs, message):
    root, _ = folders_factory('data', 'train', IMAGENETTE_WNIDS)
    with pytest.raises(ValueError, match=message):
        Imagenette(root, **kwargs)
