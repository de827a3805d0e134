"""tools/analysis_tools/get_flops.py on tiny generated configs (no dataset, no download)."""
import re

import pytest

from _helpers import CLS_CFG, run_tool, write_cfg
from _tools import import_tool

get_flops = import_tool('get_flops')


def _total(out):
    m = re.search(r'^total \(params: model\)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$', out, re.M)
    assert m, out
    return tuple(float(v) for v in m.groups())


def test_classifier_a2d2c_plus_with_paper_row(tmp_path, capsys):
    cfg = write_cfg(tmp_path, 'resnet18_a2d2c-plus_4x_in1k.py', 'A2D2CPlus')
    res = get_flops.main([cfg, '--shape', '64'])
    out = capsys.readouterr().out
    params, madds, plain = _total(out)
    assert params == pytest.approx(44.682, abs=0.01)    # 10-class head
    assert madds > plain > 0                             # mmengine misses the aggregation
    assert res.madds / 1e9 == pytest.approx(madds, abs=1e-4)
    assert re.search(r'^backbone\s', out, re.M) and re.search(r'^head\s', out, re.M)
    assert "paper row ('resnet18', 'a2d2cplus', 'imagenet')" in out
    assert '44.93M' in out and '1.934G' in out


def test_kernel_warehouse_classifier_with_readme_row(tmp_path, capsys):
    """A KW name is matched to its row of the official README (params and top-1);
    the count is the official code's ResNet-18 KW 1x (11,932,148 with 1000 classes)."""
    text = CLS_CFG.replace("type='ResNet'", "type='DynResNet'").replace(
        '{conv}', "dyn_conv=dict(type='KW', cell_num_ratio=1)").replace(
            'num_classes=10', 'num_classes=1000')
    cfg = tmp_path / 'resnet18-kw-1x_in1k.py'
    cfg.write_text(text)
    res = get_flops.main([str(cfg), '--shape', '32'])
    out = capsys.readouterr().out
    params, madds, _ = _total(out)
    assert params == pytest.approx(11.932148, abs=5e-4)
    assert res.madds / 1e9 == pytest.approx(madds, abs=1e-4)
    assert res.madds > res.madds_mmengine > 0  # the attention's element-wise work
    assert ("paper row ('resnet18', 'kw-1x', 'imagenet') [KW README]: params 11.93M, "
            'top-1 74.77%') in out


def test_static_classifier_has_no_hidden_cost(tmp_path, capsys):
    cfg = write_cfg(tmp_path, 'tiny_static.py')
    get_flops.main([cfg, '--shape', '32', '48', '--batch', '2'])
    out = capsys.readouterr().out
    params, madds, plain = _total(out)
    assert params == pytest.approx(11.182, abs=0.01)
    assert 'input: (2, 3, 32, 48)' in out
    assert madds == pytest.approx(plain, rel=0.002)     # only residual adds differ
    assert 'no paper row' in out


def test_detector_backbone_neck(tmp_path):
    cfg = write_cfg(tmp_path, 'mask-rcnn_r18_fpn_a2d2c-plus.py', 'A2D2CPlus', detector=True)
    proc = run_tool('get_flops.py', cfg, '--shape', '64', '64', '--mode', 'train')
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert '[backbone + neck]' in out and 'MaskRCNN' in out and 'mode: train' in out
    backbone = re.search(r'^backbone\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$', out, re.M)
    assert backbone and float(backbone.group(1)) == pytest.approx(44.677, abs=0.01)
    assert float(backbone.group(2)) > float(backbone.group(3))
    assert re.search(r'^neck\s', out, re.M)


def test_missing_config(tmp_path):
    proc = run_tool('get_flops.py', tmp_path / 'nope.py')
    assert proc.returncode != 0 and 'config file not found' in proc.stderr
