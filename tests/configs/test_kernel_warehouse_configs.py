"""configs/kernel_warehouse/: every official ImageNet model of the KernelWarehouse
README (C. Li, A. Yao, ICML 2024) has a config, and each config is matched to its
own row of ``mmdyn.analysis.paper_figures`` (the model's parameter count itself is
checked against the official code's in test_config_sweep.py)."""
from pathlib import Path

import pytest
from _configs import KW_OFFICIAL_PARAMS

from mmdyn.analysis.paper_figures import match_paper_row, reference_accuracy

ROOT = Path(__file__).resolve().parents[2]
KW_DIR = ROOT / 'configs' / 'kernel_warehouse'

#: Config stem -> the README row it must match.
IMAGENET_ROWS = {
    'resnet18-kw-0.25x_8xb32_in1k': ('resnet18', 'kw-0.25x'),
    'resnet18-kw-0.5x_8xb32_in1k': ('resnet18', 'kw-0.5x'),
    'resnet18-kw-1x_8xb32_in1k': ('resnet18', 'kw-1x'),
    'resnet18-kw-2x_8xb32_in1k': ('resnet18', 'kw-2x'),
    'resnet18-kw-4x_8xb32_in1k': ('resnet18', 'kw-4x'),
    'resnet50-kw-0.5x_8xb32_in1k': ('resnet50', 'kw-0.5x'),
    'resnet50-kw-1x_8xb32_in1k': ('resnet50', 'kw-1x'),
    'resnet50-kw-4x_8xb32_in1k': ('resnet50', 'kw-4x'),
    'mobilenet-v2-w1.0-kw-0.5x_8xb32_in1k': ('mobilenetv2_1.0', 'kw-0.5x'),
    'mobilenet-v2-w1.0-kw-1x_8xb32_in1k': ('mobilenetv2_1.0', 'kw-1x'),
    'mobilenet-v2-w1.0-kw-4x_8xb32_in1k': ('mobilenetv2_1.0', 'kw-4x'),
    'mobilenet-v2-w0.5-kw-0.5x_8xb32_in1k': ('mobilenetv2_0.5', 'kw-0.5x'),
    'mobilenet-v2-w0.5-kw-1x_8xb32_in1k': ('mobilenetv2_0.5', 'kw-1x'),
    'mobilenet-v2-w0.5-kw-4x_8xb32_in1k': ('mobilenetv2_0.5', 'kw-4x'),
}
#: The README's 4.08M for ResNet-18 KW 1/4x: the released code and config count 4.03M.
README_GAPS = {'resnet18-kw-0.25x_8xb32_in1k': 4.08}


def test_every_official_imagenet_model_has_a_config():
    configs = {p.stem for p in KW_DIR.glob('*_in1k.py')}
    assert configs == set(IMAGENET_ROWS) == set(KW_OFFICIAL_PARAMS)


@pytest.mark.parametrize('stem', sorted(IMAGENET_ROWS))
def test_imagenet_config_matches_its_readme_row(stem):
    key, figures = match_paper_row(f'configs/kernel_warehouse/{stem}.py')
    assert key == (*IMAGENET_ROWS[stem], 'imagenet')
    assert figures['source'] == 'KW README' and 60 < figures['top1'] < 90
    code_params = round(KW_OFFICIAL_PARAMS[stem] / 1e6, 2)
    assert figures['params'] == README_GAPS.get(stem, code_params)
    if stem in README_GAPS:
        assert code_params == 4.03


@pytest.mark.parametrize('ratio, box, mask', [('1', 41.8, 38.4), ('4', 42.4, 38.9)])
def test_detector_matches_its_readme_row(ratio, box, mask):
    key, figures = match_paper_row(f'configs/kernel_warehouse/mask-rcnn_r50-kw-{ratio}x'
                                   '_fpn_1x_coco.py')
    assert key == ('mask-rcnn_r50_fpn', f'kw-{ratio}x', 'coco')
    assert 'params' not in figures  # the detection README gives none
    assert reference_accuracy(figures) == f'box AP {box}%, mask AP {mask}%'


@pytest.mark.parametrize('name', ['resnet18-kw-1x_8xb16_cifar100.py',
                                  'resnet18-kw-4x_8xb16_cifar100.py'])
def test_cifar_configs_have_no_row(name):
    """The paper has no CIFAR experiment."""
    assert (KW_DIR / name).is_file()
    assert match_paper_row(name) is None


@pytest.mark.parametrize('name, key', [
    # official file names: ratio 1d4 = 1/4
    ('kw1d4x_resnet18.json', ('resnet18', 'kw-0.25x', 'imagenet')),
    ('mask_rcnn_kw4x_resnet50_adamw_1x_coco.py', ('mask-rcnn_r50_fpn', 'kw-4x', 'coco')),
    # the KW ratio is not read as a MobileNetV2 width, nor the width as a ratio
    ('mobilenet-v2-w1.0-kw-0.5x', ('mobilenetv2_1.0', 'kw-0.5x', 'imagenet')),
    ('mobilenet-v2-w0.5-kw-1x', ('mobilenetv2_0.5', 'kw-1x', 'imagenet')),
    ('resnet50-kw_8xb32_in1k.py', ('resnet50', 'kw-1x', 'imagenet')),  # no ratio: 1x
])
def test_kw_names(name, key):
    assert match_paper_row(name)[0] == key


def test_names_without_kw_keep_their_rows():
    assert match_paper_row('mobilenet-v2-w0.5-odconv-4x_8xb32_in1k.py')[0] == \
        ('mobilenetv2_0.5', 'odconv', 'imagenet')
    assert match_paper_row('resnet18-static_8xb32_in1k.py')[0] == \
        ('resnet18', 'static', 'imagenet')
    assert reference_accuracy(match_paper_row('resnet18-static_8xb32_in1k.py')[1]) == ''
