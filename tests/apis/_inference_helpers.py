"""Shared helpers of the inference tests (tests/apis and the tools tests of
predict.py, predict_gui.py and confusion_matrix.py): a tiny CIFAR-stem ResNet
classifier config (static, A2D2C+ or DMC) on generated 32x32 images, random
checkpoints, and the demo Mask R-CNN R18 A2D2C+ detector config.

Import as ``from apis._inference_helpers import ...`` (``tests/`` is on
``sys.path``, as for ``from _tools import import_tool``)."""
import os
import os.path as osp
import warnings

import numpy as np
import torch
from PIL import Image

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TEMPLATE = osp.join(REPO, 'tests', 'data', 'tiny_cls_inference.py.tmpl')
DEMO_DET = osp.join(REPO, 'configs', 'demo', 'mask-rcnn_r18-a2d2c-plus_fpn_shapes.py')
NAMES = ('ant', 'bee', 'cat', 'dog', 'eel', 'fox')
A2D2C = "dict(type='A2D2CPlus', kernel_num=2, num_points=8, sampling='fixed')"

#: Attention temperature stored in the checkpoints written here (neither the layers'
#: constructor value 30 nor the config's TemperatureAnnealHook end value 2.0).
CKPT_TEMPERATURE = 2.5


class NotAllowed:
    """A pickled object outside the checkpoint allow-list."""


def make_class_folders(root, names=NAMES, per_class=(2, 1, 2, 1, 1, 2), seed=0):
    """``root/<name>/<i>.png`` random 32x32 images (class k brighter with k)."""
    rng = np.random.default_rng(seed)
    for k, (name, count) in enumerate(zip(names, per_class)):
        os.makedirs(osp.join(root, name), exist_ok=True)
        for i in range(count):
            img = rng.integers(0, 120, (32, 32, 3)) + 20 * k
            Image.fromarray(img.astype(np.uint8)).save(osp.join(root, name, f'{i}.png'))
    return str(root)


def write_config(path, data_root, num_classes=len(NAMES), conv_cfg=A2D2C):
    with open(TEMPLATE) as f:
        text = f.read()
    text = text.replace('{data_root}', str(data_root)).replace(
        '{num_classes}', str(num_classes)).replace('{conv_cfg}', conv_cfg)
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def write_dmc_config(path, data_root, num_classes=len(NAMES), mask='spatial',
                     enhance="dict(type='AdaptiveEnhancement')"):
    """The tiny classifier template with a ``DMCResNetCIFAR`` backbone (2 stages,
    8 base channels): DMC layers with ``mask`` and the ``enhance`` config text
    (``'None'``: no AdaptiveEnhancement)."""
    with open(TEMPLATE) as f:
        text = f.read()
    backbone = "type='ResNet_CIFAR'"
    assert text.count(backbone) == 1 and text.count('conv_cfg={conv_cfg}') == 1
    text = text.replace(backbone, "type='DMCResNetCIFAR'").replace(
        'conv_cfg={conv_cfg}',
        f"dyn_conv=dict(type='DMC', branch_dilations=(1, 2, 3), mask={mask!r}), "
        f'enhance={enhance}')
    text = text.replace('{data_root}', str(data_root)).replace('{num_classes}',
                                                               str(num_classes))
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def save_random_checkpoint(config, path, classes=None, seed=0, cfg_options=None):
    """Checkpoint of the config's randomly initialised model (optionally with
    ``meta.dataset_meta.classes`` as MMEngine's Runner writes it), its attention
    layers at :data:`CKPT_TEMPERATURE`."""
    from mmengine.runner import save_checkpoint

    from mmdyn.apis import load_model
    from mmdyn.engine import set_model_temperature
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = load_model(config, None, cfg_options=cfg_options).model
    set_model_temperature(model, CKPT_TEMPERATURE)
    ckpt = {'state_dict': model.state_dict()}
    if classes is not None:
        ckpt['meta'] = {'dataset_meta': {'classes': tuple(classes)}}
    save_checkpoint(ckpt, str(path))
    return str(path)


def classifier_setup(tmp):
    """The tiny classifiers in ``tmp``: image folders, the A2D2C+ (``dyn``) and
    static configs, checkpoints with (``*_ckpt``) and without (``dyn_plain``)
    class names, and one image."""
    torch.set_num_threads(1)
    data = make_class_folders(tmp / 'data')
    dyn = write_config(tmp / 'dyn.py', data)
    static = write_config(tmp / 'static.py', data, conv_cfg='None')
    return dict(
        tmp=tmp, data=data, dyn=dyn, static=static,
        dyn_ckpt=save_random_checkpoint(dyn, tmp / 'dyn.pth', classes=NAMES),
        dyn_plain=save_random_checkpoint(dyn, tmp / 'dyn_plain.pth', seed=1),
        static_ckpt=save_random_checkpoint(static, tmp / 'static.pth', classes=NAMES),
        image=osp.join(data, 'cat', '0.png'))


def detection_setup(tmp):
    """A random checkpoint of the demo detector and a 96x160 image with two shapes."""
    torch.set_num_threads(2)
    ckpt = save_random_checkpoint(DEMO_DET, tmp / 'det.pth')
    rng = np.random.default_rng(0)
    img = np.full((96, 160, 3), 90, np.uint8) + rng.integers(0, 20, (96, 160, 3)).astype(np.uint8)
    img[20:60, 30:80] = (230, 40, 40)
    img[40:90, 100:150] = (40, 200, 60)
    path = tmp / 'shapes.png'
    Image.fromarray(img).save(path)
    return dict(tmp=tmp, ckpt=ckpt, image=str(path))
