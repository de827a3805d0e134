# GTSRB (43 classes; docs/datasets.md): `data_root`/Training/000NN/GT-000NN.csv + .ppm
# (official layout); the validation split holds out 10% of the *tracks* of each class
# (seed 0); test = the official Final_Test with GT-final_test.csv. Images resized to
# 32x32, no flip (signs are not mirror-symmetric), ROI crop off (set roi_crop=True).
# 16 images per GPU (mmpretrain's CIFAR-10 loaders).
_base_ = 'mmpretrain::_base_/datasets/cifar10_bs16.py'
data_root = 'data/gtsrb'
data_preprocessor = dict(num_classes=43, mean=[86.8, 79.6, 82.0], std=[69.5, 66.5, 68.1],
                         to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='PackInputs'),
]
test_pipeline = train_pipeline
dataset = dict(type='GTSRB', data_root=data_root, val_ratio=0.1, split_seed=0,
               roi_crop=False)
train_dataloader = dict(dataset=dict(_delete_=True, split='train', pipeline=train_pipeline,
                                     **dataset))
val_dataloader = dict(dataset=dict(_delete_=True, split='val', pipeline=test_pipeline,
                                   **dataset))
test_dataloader = dict(
    batch_size=16, num_workers=2, sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(_delete_=True, split='test', pipeline=test_pipeline, **dataset))
test_evaluator = dict(type='Accuracy', topk=(1, ))
