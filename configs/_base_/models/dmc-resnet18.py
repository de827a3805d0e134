# The DMC ResNet-18 of ./dmc-resnet18_cifar.py with the ImageNet stem (7x7/2 + max-pool;
# DMCResNet) and the top-5 of mmpretrain's ImageNet head.
_base_ = './dmc-resnet18_cifar.py'
model = dict(backbone=dict(type='DMCResNet'), head=dict(topk=(1, 5)))
