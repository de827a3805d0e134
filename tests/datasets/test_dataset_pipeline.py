"""The datasets built from config dicts under the mmpretrain scope, through a real
pipeline, a DataLoader and mmpretrain's data preprocessor."""
import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mmdyn.datasets.classification  # noqa: F401  (registers the datasets)
from mmdyn.datasets.classification import IMAGEWOOF_WNIDS

FILE_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=32),
                 dict(type='PackInputs')]


def _first_batch(dataset_cfg, batch_size=4):
    init_default_scope('mmpretrain')  # the conftest drops it after the test
    loader = Runner.build_dataloader(dict(
        batch_size=batch_size, num_workers=0, dataset=dataset_cfg,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate')), seed=0)
    return loader.dataset, next(iter(loader))


@pytest.mark.parametrize('roi_crop', [False, True])
def test_gtsrb_dataloader(gtsrb_files, roi_crop):
    from mmpretrain.registry import DATASETS
    dataset, batch = _first_batch(dict(type='GTSRB', data_root=gtsrb_files.root, split='val',
                                       roi_crop=roi_crop, pipeline=FILE_PIPELINE))
    assert type(dataset) is DATASETS.get('GTSRB')
    assert batch['inputs'].shape == (4, 3, 32, 32) and batch['inputs'].dtype == torch.uint8
    labels = [s.gt_label.item() for s in batch['data_samples']]
    assert labels == [dataset.get_data_info(i)['gt_label'] for i in range(4)]
    # the resize saw the ROI (roi_crop) or the whole image: its scale factor says which
    written = {r['path']: r for r in gtsrb_files.train}
    for sample in batch['data_samples']:
        rec = written[sample.img_path]
        x1, y1, x2, y2 = rec['roi']
        h, w = (y2 - y1 + 1, x2 - x1 + 1) if roi_crop else rec['rgb'].shape[:2]
        assert sample.scale_factor == pytest.approx((32 / w, 32 / h))
        assert tuple(sample.img_shape) == (32, 32)
    from mmpretrain.models import ClsDataPreprocessor
    pre = ClsDataPreprocessor(mean=[127.5] * 3, std=[127.5] * 3, to_rgb=True)
    out = pre(batch)
    assert out['inputs'].shape == (4, 3, 32, 32) and out['inputs'].dtype == torch.float32


def test_gtsrb_roi_crop_changes_the_pixels(gtsrb_files):
    """With and without the crop, the resized images differ (the crop is really applied)."""
    _, plain = _first_batch(dict(type='GTSRB', data_root=gtsrb_files.root, split='test',
                                 pipeline=FILE_PIPELINE))
    _, cropped = _first_batch(dict(type='GTSRB', data_root=gtsrb_files.root, split='test',
                                   roi_crop=True, pipeline=FILE_PIPELINE))
    assert not torch.equal(plain['inputs'], cropped['inputs'])


def test_svhn_dataloader(svhn_factory):
    root, content = svhn_factory('test', num=6)
    _, batch = _first_batch(dict(
        type='SVHN', data_root=root, split='test',
        pipeline=[dict(type='RandomCrop', crop_size=32, padding=4),
                  dict(type='PackInputs')]), batch_size=3)
    assert batch['inputs'].shape == (3, 3, 32, 32)
    assert [s.gt_label.item() for s in batch['data_samples']] == \
        [int(v) % 10 for v in content['y'][:3, 0]]


def test_imagewoof_dataloader(folders_factory):
    root, _ = folders_factory('woof', 'val', IMAGEWOOF_WNIDS)
    dataset, batch = _first_batch(dict(type='Imagewoof', data_root=root, split='val',
                                       pipeline=FILE_PIPELINE))
    assert batch['inputs'].shape == (4, 3, 32, 32)
    assert dataset.metainfo['classes'][0] == 'Shih-Tzu'
