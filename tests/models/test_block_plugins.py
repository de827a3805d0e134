"""Block plugins (``block.residual_plugins``): where they act, and loading checkpoints
written when they wrapped ``drop_path`` (keys ``...drop_path.plugins.N...``)."""
import copy
import io

import pytest
import torch
import torch.nn as nn

import mmdyn.models  # noqa: F401  (registers)
from mmdyn.models.backbones import (ResidualPlugins, inflate_state_dict,
                                    rename_legacy_plugin_keys)

TINY = dict(depth=18, num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(0, 1),
            stem_channels=8, base_channels=8)
TINY_DET = dict(depth=18, num_stages=2, strides=(1, 2), dilations=(1, 1), out_indices=(0, 1))
ENHANCE = [dict(cfg=dict(type='AdaptiveEnhancement'))]


def _build(cfg, scope='mmpretrain', seed=0):
    from mmengine.registry import init_default_scope
    init_default_scope(scope)
    if scope == 'mmdet':
        from mmdet.registry import MODELS
    else:
        from mmpretrain.registry import MODELS
    torch.manual_seed(seed)
    return MODELS.build(cfg)


def _randomise(model, seed=1):
    """Random BN statistics and affine parameters (eval outputs then depend on them)."""
    gen = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            for t in (module.weight, module.bias, module.running_mean):
                t.data.copy_(torch.randn(t.shape, generator=gen) * 0.5)
            module.running_var.data.copy_(torch.rand(module.running_var.shape, generator=gen)
                                          + 0.5)
    return model.eval()


def _to_legacy_keys(state):
    """The key names the plugins had before (a wrapper around ``drop_path``)."""
    return {k.replace('.residual_plugins.', '.drop_path.plugins.'): v for k, v in state.items()}


def _by_hand(block, x):
    """``relu(plugins(norm_last(conv_last(...))) + identity)`` from the block's parts,
    calling every norm with ``.forward`` (no hooks)."""
    out = block.relu(block.norm1.forward(block.conv1(x)))
    if hasattr(block, 'conv3'):
        out = block.relu(block.norm2.forward(block.conv2(out)))
        out = block.norm3.forward(block.conv3(out))
    else:
        out = block.norm2.forward(block.conv2(out))
    for plugin in block.residual_plugins:
        out = plugin(out)
    identity = x if block.downsample is None else block.downsample(x)
    return block.relu(out + identity)


CASES = [
    ('mmpretrain', dict(TINY, type='DMCResNetCIFAR'), 8),
    ('mmpretrain', dict(TINY, type='DMCResNet', depth=50), 8),
    ('mmpretrain', dict(TINY, type='DynResNetCIFAR', block_plugins=ENHANCE), 8),
    ('mmdet', dict(TINY_DET, type='DynResNet', block_plugins=ENHANCE), 64),
    ('mmdet', dict(TINY_DET, type='DynResNet', depth=50, block_plugins=ENHANCE), 64),
]


@pytest.mark.parametrize('scope, cfg, channels', CASES)
def test_block_output_is_the_hand_computation(scope, cfg, channels):
    model = _randomise(_build(cfg, scope))
    x = torch.randn(2, channels, 8, 8)
    with torch.no_grad():
        for name in model.res_layers:
            for block in getattr(model, name):
                assert isinstance(block.residual_plugins, ResidualPlugins)
                assert torch.allclose(block(x), _by_hand(block, x), atol=1e-6)
                x = block(x)


def test_old_key_names_load_strictly_with_identical_outputs():
    old = _randomise(_build(dict(TINY, type='DMCResNetCIFAR')))
    state = old.state_dict()
    assert any('.residual_plugins.0.' in k for k in state)
    legacy = _to_legacy_keys(state)
    assert any('.drop_path.plugins.0.' in k for k in legacy) and legacy.keys() != state.keys()
    new = _build(dict(TINY, type='DMCResNetCIFAR'), seed=5)
    for p in new.parameters():
        nn.init.normal_(p)
    new.load_state_dict(legacy, strict=True)
    new.eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(old(x), new(x)))
    assert rename_legacy_plugin_keys(legacy) == state


def test_old_key_names_load_through_mmengine_and_the_inflation(tmp_path):
    from mmengine.runner.checkpoint import load_state_dict
    old = _randomise(_build(dict(TINY, type='DMCResNetCIFAR')))
    legacy = _to_legacy_keys(old.state_dict())
    new = _build(dict(TINY, type='DMCResNetCIFAR'), seed=5)
    load_state_dict(new, legacy, strict=True)
    plugin_keys = [k for k in old.state_dict() if '.residual_plugins.' in k]
    assert all(torch.equal(new.state_dict()[k], old.state_dict()[k]) for k in plugin_keys)
    # init_cfg=Pretrained inflates through inflate_state_dict: it renames too
    state, missing, unexpected = inflate_state_dict(new, legacy)
    assert set(plugin_keys) <= set(state) and not unexpected
    path = str(tmp_path / 'legacy.pth')
    torch.save({'state_dict': {'backbone.' + k: v for k, v in legacy.items()}}, path)
    pretrained = _build(dict(TINY, type='DMCResNetCIFAR',
                             init_cfg=dict(type='Pretrained', checkpoint=path)), seed=7)
    pretrained.init_weights()
    pretrained.eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(old(x), pretrained(x)))


def test_plugins_survive_a_swapped_norm_deepcopy_and_pickle():
    """Replacing the last norm module (what SyncBN conversion/reversion and conv-BN fusion
    do) keeps the plugins applied; copies apply their own plugins."""
    model = _randomise(_build(dict(TINY, type='DMCResNetCIFAR')))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)[-1]
        for name in model.res_layers:
            for block in getattr(model, name):
                fresh = nn.BatchNorm2d(block.norm2.num_features).eval()
                fresh.load_state_dict(block.norm2.state_dict())
                setattr(block, block.norm2_name, fresh)
        assert torch.equal(model(x)[-1], expected)
        clone = copy.deepcopy(model)
        clone.layer1[1].residual_plugins[0] = _Zero()
        assert torch.equal(model(x)[-1], expected)
        assert not torch.equal(clone(x)[-1], expected)
        buffer = io.BytesIO()
        torch.save(model, buffer)
        buffer.seek(0)
        loaded = torch.load(buffer, weights_only=False)
        assert torch.equal(loaded(x)[-1], expected)


def test_with_cp_gives_the_same_gradients():
    grads = []
    for with_cp in (False, True):
        model = _build(dict(TINY, type='DMCResNetCIFAR', with_cp=with_cp))
        model.train()
        model(torch.ones(2, 3, 16, 16))[-1].sum().backward()
        plugin = model.layer1[0].residual_plugins[0]
        grads.append([p.grad.clone() for p in plugin.parameters()])
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*grads))


def test_plugins_are_attached_once():
    from mmdyn.models.backbones import attach_residual_plugins
    model = _build(dict(TINY, type='DMCResNetCIFAR'))
    with pytest.raises(TypeError, match='already has residual_plugins'):
        attach_residual_plugins(model.layer1[0], [nn.Identity()])
    with pytest.raises(TypeError, match='neither'):
        attach_residual_plugins(nn.Sequential(nn.Conv2d(1, 1, 1)), [nn.Identity()])


class _Zero(nn.Module):
    def forward(self, x):
        return x * 0


def test_old_key_names_pass_the_fit_checks():
    """The checks that run before any load (tools/test.py's CheckpointFitHook, the
    inference API) see current key names: the key upgrade is registered with
    :func:`mmdyn.utils.state_dict.model_state_of`."""
    from mmdyn.engine import check_state_dict_fits
    from mmdyn.engine.checkpoint import state_dict_mismatch
    from mmdyn.utils.state_dict import model_state_of
    model = _build(dict(TINY, type='DMCResNetCIFAR'))
    legacy = {f'module.{k}': v for k, v in _to_legacy_keys(model.state_dict()).items()}
    upgraded, own = model_state_of({'state_dict': legacy}), model.state_dict()
    assert list(upgraded) == list(own) and all(torch.equal(upgraded[k], own[k]) for k in own)
    assert state_dict_mismatch(model, {'state_dict': legacy}) == ([], [], [])
    check_state_dict_fits(model, legacy, source='legacy checkpoint')
    # a real mismatch is still reported under its current name
    legacy.pop(next(k for k in legacy if '.drop_path.plugins.0.' in k))
    missing, _, _ = state_dict_mismatch(model, legacy)
    assert len(missing) == 1 and '.residual_plugins.0.' in missing[0]
