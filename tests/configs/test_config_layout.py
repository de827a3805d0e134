"""The layout of ``configs/`` (docs/configs.md): one folder per method, each dynamic
variant = its static baseline in ``configs/static/`` + a dynamic backbone, and the
OpenMMLab model index (``model-index.yml`` -> ``configs/<method>/metafile.yml``)
listing every config once, with the published figures only where a source gives them.
"""
import re
from pathlib import Path

import pytest
import yaml
from _configs import config

from mmdyn.analysis.paper_figures import PAPER_ACCURACY, match_paper_row

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / 'configs'
EXACT_PATH = 'configs/mask_rcnn_r50_a2d2c_coco.py'
#: Method folders whose configs are a static baseline plus a `dyn_conv`.
DYN_CONV_FOLDERS = ('a2d2c', 'condconv', 'dcd', 'dynamic_conv', 'kernel_warehouse', 'odconv')
FOLDERS = DYN_CONV_FOLDERS + ('dmc', 'msff', 'static')
LAYER_TOKEN = re.compile(r'-(a2d2c-plus-4x|a2d2c-4x|odconv-4x|dyconv-4x|condconv-4x|dcd|'
                         r'kw-(0\.25|0\.5|1|2|4)x)_')
DYNAMIC_TYPE = {'ResNet': 'DynResNet', 'ResNet_CIFAR': 'DynResNetCIFAR',
                'MobileNetV2': 'DynMobileNetV2'}
VARIANT_KEYS = ('type', 'dyn_conv', 'dyn_placement')
#: What a KW classifier head (MobileNetV2 KW 1/2x) changes in mmpretrain's LinearClsHead.
KW_HEAD_KEYS = ('type', 'kw_cfg', 'dropout')
CONFIGS = sorted(p.relative_to(ROOT).as_posix() for p in CONFIG_DIR.rglob('*.py')
                 if not {'_base_', 'demo'} & set(p.relative_to(CONFIG_DIR).parts[:-1]))
VARIANTS = [c for c in CONFIGS if c.split('/')[1] in DYN_CONV_FOLDERS]


def _metafiles():
    index = yaml.safe_load((ROOT / 'model-index.yml').read_text())
    return {m: yaml.safe_load((ROOT / m).read_text()) for m in index['Import']}


def test_one_folder_per_method():
    folders = {p.name for p in CONFIG_DIR.iterdir() if p.is_dir() and p.name != '__pycache__'}
    assert folders == set(FOLDERS) | {'_base_', 'demo'}
    assert {c.split('/')[1] for c in CONFIGS} == set(FOLDERS) | {'mask_rcnn_r50_a2d2c_coco.py'}
    for folder in FOLDERS:
        assert (CONFIG_DIR / folder / 'README.md').is_file(), folder
        assert (CONFIG_DIR / folder / 'metafile.yml').is_file(), folder


@pytest.mark.parametrize('rel', VARIANTS)
def test_variant_is_its_static_baseline_plus_dyn_conv(rel):
    """Same data, schedule, runtime and network as ``configs/static/<same name with
    'static'>``; only the backbone type, ``dyn_conv``, ``dyn_placement``, the
    temperature hook and, for a ``KWLinearClsHead``, the classifier differ."""
    assert LAYER_TOKEN.search(Path(rel).name), rel
    static_rel = 'configs/static/' + LAYER_TOKEN.sub('-static_', Path(rel).name)
    cfg = config(rel).to_dict()
    static = config(static_rel).to_dict()
    backbone, static_backbone = cfg['model'].pop('backbone'), static['model'].pop('backbone')
    assert backbone['type'] == DYNAMIC_TYPE[static_backbone['type']]
    assert 'dyn_conv' in backbone and 'dyn_conv' not in static_backbone
    assert {k: v for k, v in backbone.items() if k not in VARIANT_KEYS} == \
        {k: v for k, v in static_backbone.items() if k != 'type'}
    if cfg['model'].get('head', {}).get('type') == 'KWLinearClsHead':
        head, static_head = cfg['model'].pop('head'), static['model'].pop('head')
        assert static_head['type'] == 'LinearClsHead'
        assert {k: v for k, v in head.items() if k not in KW_HEAD_KEYS} == \
            {k: v for k, v in static_head.items() if k != 'type'}
    hooks = cfg.pop('custom_hooks', [])
    assert 'custom_hooks' not in static
    assert [h['type'] for h in hooks] in ([], ['TemperatureAnnealHook'])
    assert cfg == static


def test_model_index_lists_every_config_once():
    listed = [m['Config'] for meta in _metafiles().values() for m in meta['Models']]
    assert sorted(listed) == CONFIGS
    index = yaml.safe_load((ROOT / 'model-index.yml').read_text())['Import']
    assert sorted(index) == sorted(f'configs/{f}/metafile.yml' for f in FOLDERS)


@pytest.mark.parametrize('metafile', sorted(f'configs/{f}/metafile.yml' for f in FOLDERS))
def test_metafile(metafile):
    """OpenMMLab fields; Results only for the accuracies the sources report."""
    meta = yaml.safe_load((ROOT / metafile).read_text())
    folder = Path(metafile).parent
    collections = {c['Name'] for c in meta['Collections']}
    for c in meta['Collections']:
        assert c['Paper']['Title'] and c['Metadata']['Training Data'], c['Name']
        assert c['README'] == f'{folder.as_posix()}/README.md'
    readme = (ROOT / folder / 'README.md').read_text()
    for m in meta['Models']:
        path = m['Config']
        assert m['Name'] == Path(path).stem and m['In Collection'] in collections
        assert path == EXACT_PATH or path.startswith(f'{folder.as_posix()}/'), path
        assert set(m['Metadata']) == {'Training Data', 'Parameters', 'FLOPs'}
        assert m['Metadata']['Parameters'] > 0 and m['Metadata']['FLOPs'] > 0
        assert 'Weights' not in m  # no trained checkpoint is published
        if m['Name'] in PAPER_ACCURACY:
            [result] = m['Results']
            assert result['Metrics'] == {'Top 1 Accuracy': PAPER_ACCURACY[m['Name']][0]}
        else:
            assert 'Results' not in m, m['Name']
        link = Path(path).name if path.startswith(f'{folder.as_posix()}/') \
            else f'../{Path(path).name}'
        assert f'({link})' in readme, f'{path} not linked in {folder}/README.md'


def test_metafile_counts_are_the_model_zoo_table():
    """Parameters / FLOPs of the metafiles are the counts of docs/model_zoo.md."""
    table = {}
    for line in (ROOT / 'docs/model_zoo.md').read_text().splitlines():
        cells = [c.strip() for c in line.split('|')[1:-1]]
        if cells and cells[0].startswith('configs/'):
            table[cells[0]] = (float(cells[1]), float(cells[2]))
    for meta in _metafiles().values():
        for m in meta['Models']:
            params, madds = table[m['Config']]
            assert m['Metadata']['Parameters'] == round(params * 1e6)
            assert m['Metadata']['FLOPs'] == round(madds * 1e9)


def test_paper_detector_is_the_a2d2c_plus_row():
    key, figures = match_paper_row(EXACT_PATH)
    assert key == ('mask-rcnn_r50_fpn', 'a2d2cplus', 'coco')
    assert figures['params'] == 110.24
    assert match_paper_row('configs/a2d2c/mask-rcnn_r50-a2d2c-plus-4x_fpn_1x_coco.py')[0] == key
    assert match_paper_row('configs/a2d2c/mask-rcnn_r50-a2d2c-4x_fpn_1x_coco.py') is None


@pytest.mark.parametrize('rel', [c for c in CONFIGS if c.split('/')[1] in ('dmc', 'msff')])
def test_other_systems_have_no_paper_row(rel):
    """Their sources give accuracies (PAPER_ACCURACY), not A2D2C/ODConv rows."""
    assert match_paper_row(rel) is None
    assert Path(rel).stem in PAPER_ACCURACY
