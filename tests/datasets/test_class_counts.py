"""class_counts(dataset): images per class of any mmpretrain dataset (for class-balanced losses)."""
from collections import Counter

import pytest
from mmengine.dataset import ClassBalancedDataset, ConcatDataset, RepeatDataset
from mmpretrain.datasets import CIFAR10

import mmdyn.datasets
from mmdyn.datasets import GTSRB, SVHN, Imagenette, Imagewoof, class_counts


class TinyCIFAR10(CIFAR10):
    """mmpretrain's CIFAR10 reading the real pickle format, without the md5 sums of the
    real files."""
    train_list = [[f'data_batch_{i}', None] for i in range(1, 6)]
    test_list = [['test_batch', None]]


def test_cifar(cifar10_factory):
    root, labels = cifar10_factory(per_batch=4)
    ds = TinyCIFAR10(root, split='train', download=False)
    counts = Counter(labels['train'])
    assert class_counts(ds) == [counts[c] for c in range(10)]
    assert sum(class_counts(ds)) == 20


def test_wrappers_and_num_classes(svhn_factory, gtsrb_files):
    root, content = svhn_factory('train', num=9)
    svhn = SVHN(root)
    digits = Counter(int(v) % 10 for v in content['y'].reshape(-1))
    expected = [digits[d] for d in range(10)]
    assert class_counts(svhn) == expected == svhn.class_counts()
    assert class_counts(RepeatDataset(svhn, times=3)) == [3 * n for n in expected]
    gtsrb = GTSRB(gtsrb_files.root, split='val')
    both = ConcatDataset([gtsrb, gtsrb])
    assert class_counts(both) == [2 * n for n in gtsrb.class_counts()]
    balanced = ClassBalancedDataset(svhn, oversample_thr=0.5)  # repeats the rare classes
    repeats = Counter(balanced.repeat_indices)
    assert class_counts(balanced) == [
        sum(repeats[i] for i in range(len(svhn)) if svhn.get_cat_ids(i) == [d])
        for d in range(10)]
    assert class_counts(balanced) != expected
    assert class_counts(svhn, num_classes=12) == expected + [0, 0]


def test_errors(svhn_factory):
    root, _ = svhn_factory('train', num=12)
    svhn = SVHN(root)
    with pytest.raises(ValueError, match=r'SVHN: label 9 outside 0\.\.8 \(1 such samples\)'):
        class_counts(svhn, num_classes=9)
    with pytest.raises(ValueError, match=r'num_classes must be an int >= 1, got 0'):
        class_counts(svhn, num_classes=0)

    class NoClasses:
        metainfo = {}

        def __init__(self, labels):
            self.labels = labels

        def get_gt_labels(self):
            return self.labels
    assert class_counts(NoClasses([0, 3, 3])) == [1, 0, 0, 2]  # largest label + 1
    assert class_counts(NoClasses([0, 3, 3]), num_classes=5) == [1, 0, 0, 2, 0]
    with pytest.raises(ValueError, match=r'NoClasses has no metainfo\["classes"\] and no '
                                         r'samples; pass num_classes'):
        class_counts(NoClasses([]))
    with pytest.raises(TypeError, match='cannot count the classes of object'):
        class_counts(object(), num_classes=2)


def test_one_implementation_exported_by_the_package():
    """The datasets share one class_counts (mmdyn.datasets.base), re-exported by the
    package and by the registering module."""
    from mmdyn.datasets import base, classification
    assert class_counts is base.class_counts is classification.class_counts
    assert {cls.class_counts for cls in (GTSRB, SVHN, Imagenette, Imagewoof)} == {
        base.ClassCountsMixin.class_counts}
    for name, cls in {**classification.DATASET_CLASSES,
                      **classification.TRANSFORM_CLASSES}.items():
        assert name in mmdyn.datasets.__all__ and getattr(mmdyn.datasets, name) is cls
