"""SVHN: the official *_32x32.mat files, label 10 -> digit 0, RGB pixels, the errors."""
import os.path as osp
import re

import numpy as np
import pytest

from mmdyn.datasets.checks import LAYOUTS
from mmdyn.datasets.classification import SVHN


@pytest.mark.parametrize('split', ['train', 'test', 'extra'])
def test_reads_images_and_maps_ten_to_zero(svhn_factory, split):
    root, content = svhn_factory(split, num=13, seed=len(split))
    ds = SVHN(root, split=split)
    labels = content['y'].reshape(-1).astype(int)
    assert len(ds) == 13 and 10 in labels
    assert list(ds.get_gt_labels()) == [0 if v == 10 else v for v in labels]
    for i in range(13):
        img = ds.get_data_info(i)['img']
        assert img.shape == (32, 32, 3) and img.dtype == np.uint8
        np.testing.assert_array_equal(img, content['X'][:, :, :, i])  # RGB, as in the file
    assert ds.metainfo['classes'] == tuple('0123456789')


def test_channel_order_matches_cifar(svhn_factory, cifar10_factory):
    """mmpretrain's CIFAR10 keeps the file's RGB order; SVHN does the same."""
    from mmpretrain.datasets import CIFAR10
    import pickle

    class TinyCIFAR10(CIFAR10):  # the real format without the md5 sums of the real files
        train_list = [[f'data_batch_{i}', None] for i in range(1, 6)]
        test_list = [['test_batch', None]]

    root, _ = cifar10_factory(per_batch=2)
    with open(osp.join(root, 'cifar-10-batches-py', 'test_batch'), 'rb') as f:
        flat = pickle.load(f)['data'][0]
    cifar_img = TinyCIFAR10(root, split='test', download=False).get_data_info(0)['img']
    red_plane = flat[:1024].reshape(32, 32)  # CIFAR rows: 1024 R, then G, then B
    np.testing.assert_array_equal(cifar_img[..., 0], red_plane)

    svhn_root, content = svhn_factory('train', num=2)
    svhn_img = SVHN(svhn_root).get_data_info(1)['img']
    np.testing.assert_array_equal(svhn_img[..., 0], content['X'][:, :, 0, 1])  # R first


def test_pipeline_output(svhn_factory):
    root, content = svhn_factory('test', num=4)
    ds = SVHN(root, split='test', pipeline=[dict(type='PackInputs')])
    out = ds[2]
    np.testing.assert_array_equal(out['inputs'].numpy(),
                                  content['X'][:, :, :, 2].transpose(2, 0, 1))
    label = int(content['y'][2, 0]) % 10
    assert out['data_samples'].gt_label.tolist() == [label]


def test_class_counts(svhn_factory):
    labels = np.array([10, 10, 3, 1, 10, 3, 9])
    root, _ = svhn_factory('train', num=7, labels=labels)
    counts = SVHN(root).class_counts()
    assert counts == [int(((labels % 10) == d).sum()) for d in range(10)]
    assert counts[0] == 3


def test_missing_root_and_split_file(tmp_path, svhn_factory):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(FileNotFoundError) as info:
        SVHN(missing)
    assert f'SVHN data root not found: {missing}' in str(info.value)
    assert LAYOUTS['SVHN'] in str(info.value)
    root, _ = svhn_factory('train')
    with pytest.raises(FileNotFoundError) as info:
        SVHN(root, split='extra')
    assert 'SVHN split file not found: ' + osp.join(root, 'extra_32x32.mat') in str(info.value)
    assert 'expected layout: SVHN' in str(info.value)


def _x(shape, dtype=np.uint8):
    return np.zeros(shape, dtype=dtype)


@pytest.mark.parametrize('overrides,message', [
    (dict(y=None), r'missing key\(s\) y'),
    (dict(X=None, images=_x((32, 32, 3, 12))), r"missing key\(s\) X \(found \['images', 'y'\]\)"),
    (dict(X=_x((32, 32, 1, 12))), r'X must have the shape \(32, 32, 3, N\), got \(32, 32, 1, 12\)'),
    (dict(X=_x((12, 3, 32, 32))), r'X must have the shape \(32, 32, 3, N\)'),
    (dict(X=_x((32, 32, 3, 12), np.float32)), r'X must be uint8, got float32'),
    (dict(y=np.ones((11, 1), np.uint8)), r'y must have the shape \(N, 1\) = \(12, 1\)'),
    (dict(y=np.zeros((12, 1), np.uint8)), r'labels must be integers in 1\.\.10 .* y\[0\] = 0'),
    (dict(y=np.full((12, 1), 11.0)), r'labels must be integers in 1\.\.10'),
    (dict(y=np.full((12, 1), 2.5)), r'labels must be integers in 1\.\.10'),
])
def test_malformed_file_names_the_file(svhn_factory, overrides, message):
    root, _ = svhn_factory('train', num=12, **overrides)
    path = osp.join(root, 'train_32x32.mat')
    with pytest.raises(ValueError, match=re.escape(path) + ': ' + message):
        SVHN(root)


def test_not_a_mat_file(tmp_path):
    (tmp_path / 'test_32x32.mat').write_bytes(b'certainly not MATLAB')
    with pytest.raises(ValueError, match=r'test_32x32\.mat: cannot be read as a MATLAB file'):
        SVHN(str(tmp_path), split='test')


@pytest.mark.parametrize('kwargs,message', [
    (dict(split='valid'), r"unknown split 'valid'; expected one of \['train', 'test', 'extra'\]"),
    (dict(data_root=''), r"SVHN needs data_root"),
])
def test_bad_options(tmp_path, kwargs, message):
    kwargs.setdefault('data_root', str(tmp_path))
    with pytest.raises(ValueError, match=message):
        SVHN(**kwargs)
