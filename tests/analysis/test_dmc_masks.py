"""DMC mask capture (mmdyn.analysis.dmc_masks) and the DMC figure."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from mmdyn.analysis import (DMCMaskRecorder, DMCRecord, dmc_record, find_dmc_enhancement,
                            find_dmc_layers)
from mmdyn.apis import draw_dmc_figure
from mmdyn.ops import AdaptiveEnhancement, DynamicMaskConv2d


class _Block(nn.Module):
    """conv -> DMC -> enhancement, as a residual branch of an mmdyn ResNet block."""

    def __init__(self, in_channels, mask, enhance=True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 3, padding=1)
        self.conv2 = DynamicMaskConv2d(6, 6, 3, stride=2, branch_dilations=(1, 2),
                                       mask=mask)
        self.plugins = nn.ModuleList([AdaptiveEnhancement(6, min_hidden=2)] if enhance else [])

    def forward(self, x):
        out = self.conv2(torch.relu(self.conv1(x)))
        for p in self.plugins:
            out = p(out)
        return out


def _net(mask='spatial', enhance=True):
    torch.manual_seed(0)
    return nn.Sequential(_Block(3, mask, enhance), _Block(6, mask, enhance)).eval()


def _inputs_of(net, names, x):
    """Inputs of the modules ``names`` seen by independent forward hooks."""
    seen = {}

    def hook(name):
        def save(module, args, output):   # returns None: the output is kept
            seen.setdefault(name, args[0].detach().clone())
        return save

    handles = [net.get_submodule(n).register_forward_hook(hook(n)) for n in names]
    with torch.no_grad():
        out = net(x)
    for h in handles:
        h.remove()
    return seen, out


@pytest.mark.parametrize('mask', ['spatial', 'channel'])
def test_recorded_masks_are_the_layers_own(mask):
    net = _net(mask)
    x = torch.randn(2, 3, 12, 12)
    assert list(find_dmc_layers(net)) == ['0.conv2', '1.conv2']
    assert find_dmc_enhancement(net, '1.conv2')[0] == '1.plugins.0'
    seen, ref_out = _inputs_of(net, ['1.conv2', '1.plugins.0'], x)
    with DMCMaskRecorder(net, '1.conv2') as rec:
        with torch.no_grad():
            out = net(x)
    assert torch.equal(out, ref_out)                 # recording changes nothing
    assert list(rec.records) == ['1.conv2']          # layer name -> records, as A2D2C's
    assert len(rec.records['1.conv2']) == 1
    r = rec.records['1.conv2'][0]
    assert isinstance(r, DMCRecord) and r.name == '1.conv2' and r.mask_kind == mask
    assert r.branch_dilations == ((1, 1), (2, 2))
    layer = net.get_submodule('1.conv2')
    with torch.no_grad():
        expected = layer.masks(seen['1.conv2'])
    shape = (2, 1, 3, 3) if mask == 'spatial' else (2, 6, 1, 1)
    assert len(r.masks) == 2
    for got, ref in zip(r.masks, expected):
        assert got.shape == shape and torch.allclose(got, ref, atol=1e-6)
        assert got.min() > 0 and got.max() < 1 and not got.requires_grad
    channel, pixel = net.get_submodule('1.plugins.0').attention_maps(seen['1.plugins.0'])
    assert r.enhancement_name == '1.plugins.0' and r.has_enhancement
    assert torch.allclose(r.channel_attention, channel) and r.channel_attention.shape == \
        (2, 6, 1, 1)
    assert torch.allclose(r.pixel_attention, pixel) and r.pixel_attention.shape == (2, 1, 3, 3)
    # Hooks are gone after the block; the default layer is the first one.
    net(x)
    assert len(rec.records['1.conv2']) == 1
    with DMCMaskRecorder(net) as first:
        net(x)
    assert list(first.records) == ['0.conv2']
    assert first.records['0.conv2'][0].name == '0.conv2'
    assert first.records['0.conv2'][0].masks[0].shape == ((2, 1, 6, 6) if mask == 'spatial'
                                               else (2, 6, 1, 1))


def test_no_masks_and_no_enhancement():
    net = _net('none', enhance=False)
    x = torch.randn(1, 3, 8, 8)
    with DMCMaskRecorder(net, '0.conv2') as rec:
        net(x)
    r = rec.records['0.conv2'][0]
    assert r.masks == [] and not r.has_masks and not r.has_enhancement
    assert r.enhancement_name is None and r.pixel_attention is None
    rgb = np.full((8, 8, 3), 128, np.uint8)
    fig = draw_dmc_figure(rgb, r, title='no masks')
    assert fig.dtype == np.uint8 and fig.shape[2] == 3 and fig.std() > 5
    # The direct function gives the same record as the hooks.
    again = dmc_record('0.conv2', net[0].conv2, r.input)
    assert again.masks == [] and torch.equal(again.input, r.input)


def test_figure_panels_and_errors():
    net = _net('spatial')
    x = torch.randn(1, 3, 8, 8)
    with DMCMaskRecorder(net, '0.conv2') as rec:
        net(x)
    record = rec.records['0.conv2'][0]
    rgb = np.random.default_rng(0).integers(0, 255, (8, 8, 3)).astype(np.uint8)
    row = draw_dmc_figure(rgb, record, layout='row', dpi=40)
    grid = draw_dmc_figure(rgb, record, layout='grid', dpi=40)
    # 5 panels (input, 2 masks, pixel, channel): a row is much wider than a 2x3 grid.
    assert row.shape[1] / row.shape[0] > 3.5 and grid.shape[1] / grid.shape[0] < 2.5
    with pytest.raises(ValueError, match='layout'):
        draw_dmc_figure(rgb, record, layout='column')
    bad = DMCRecord(**{**record.__dict__, 'branch_dilations': ((1, 1), )})
    with pytest.raises(ValueError, match='2 masks but 1 branch'):
        draw_dmc_figure(rgb, bad)
    with pytest.raises(ValueError, match='available'):
        DMCMaskRecorder(net, '0.conv1')
    with pytest.raises(ValueError, match='no DynamicMaskConv2d'):
        DMCMaskRecorder(nn.Sequential(nn.Conv2d(3, 3, 1)))
    with pytest.raises(ValueError, match='not a DynamicMaskConv2d'):
        find_dmc_enhancement(net, '0.plugins.0')
    with pytest.raises(TypeError, match='DynamicMaskConv2d'):
        dmc_record('x', nn.Conv2d(3, 3, 1), x)
    with pytest.raises(ValueError, match='without its input'):
        dmc_record('0.conv2', net[0].conv2, torch.randn(1, 6, 8, 8),
                   enhancement=net[0].plugins[0], enhancement_name='0.plugins.0')
