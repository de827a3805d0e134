"""Never answer from the wrong bytes (issue 17, sections 2 and 4): a checkpoint
whose attention temperature is NaN/inf is refused by every route (naming the
layer), NaN/inf weights are refused by ``tools/test.py`` before any metric
(``--allow-nonfinite`` evaluates anyway) and by the ONNX export, and a
checkpoint that is a list, a bare tensor, empty, truncated or random bytes is
one line naming the file. Tools run in-process (``main(argv)``)."""
import os
import os.path as osp
import re
import warnings

import pytest
import torch
import torch.nn as nn

import mmdyn.models  # noqa: F401
from _tool_helpers import REPO, make_images
from _tools import import_tool
from mmdyn.engine import (CheckpointError, CorruptCheckpointError, InvalidCheckpointError,
                          InvalidTemperatureError, NonFiniteCheckpointError)
from mmdyn.ops import LAYERS
from mmdyn.ops._base import TemperatureMixin

A2D2C = "dict(type='A2D2CPlus', kernel_num=2, num_points=8, sampling='fixed')"
TEMPLATE = osp.join(REPO, 'tests', 'data', 'tiny_cls_inference.py.tmpl')
LAYER = 'backbone.layer1.0.conv2'  # an A2D2C+ layer of the tiny config


def _save(path, obj):
    torch.save(obj, str(path))
    return str(path)


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A tiny A2D2C+ classifier config and its checkpoints: good, a NaN / inf
    temperature in one layer, NaN/inf weights, a list, a bare tensor, empty,
    truncated and random bytes."""
    from mmdyn.apis import load_model
    tmp = tmp_path_factory.mktemp('values')
    make_images(str(tmp / 'data'))
    with open(TEMPLATE) as f:
        text = f.read().replace('{data_root}', str(tmp / 'data')).replace(
            '{num_classes}', '2').replace('{conv_cfg}', A2D2C)
    config = str(tmp / 'dyn.py')
    with open(config, 'w') as f:
        f.write(text)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.manual_seed(0)
        state = load_model(config, None).model.state_dict()
    assert f'{LAYER}.temperature' in state
    ckpts = dict(good=_save(tmp / 'good.pth', {'state_dict': state}))
    for name, value in (('nan_temp', float('nan')), ('inf_temp', float('inf'))):
        bad = dict(state)
        bad[f'{LAYER}.temperature'] = torch.tensor(value, dtype=torch.float64)
        ckpts[name] = _save(tmp / f'{name}.pth', {'state_dict': bad})
    bad = {k: v.clone() for k, v in state.items()}
    bad['backbone.conv1.weight'].view(-1)[:3] = float('nan')
    bad['head.fc.bias'][0] = float('inf')
    bad['head.fc.bias'][1] = float('-inf')
    ckpts['nan_weights'] = _save(tmp / 'nan_weights.pth', {'state_dict': bad})
    ckpts['list'] = _save(tmp / 'list.pth', [state, 1])
    ckpts['tensor'] = _save(tmp / 'tensor.pth', torch.zeros(2, 3))
    raw = open(ckpts['good'], 'rb').read()
    for name, data in (('empty', b''), ('truncated', raw[:len(raw) // 2]),
                       ('random', os.urandom(4096))):
        with open(tmp / f'{name}.pth', 'wb') as f:
            f.write(data)
        ckpts[name] = str(tmp / f'{name}.pth')
    return dict(tmp=tmp, config=config, ckpts=ckpts, state=state)


def _test_tool(tiny, ckpt, *extra):
    """``tools/test.py`` in-process: ``(metrics, None)`` or ``(None, exit message)``."""
    tool = import_tool('test')
    argv = [tiny['config'], ckpt, '--work-dir', str(tiny['tmp'] / 'work')] + list(extra)
    try:
        return tool.main(argv), None
    except SystemExit as exc:
        return None, str(exc.code)


def _one_line(message, start):
    assert message.startswith(start) and '\n' not in message, message
    assert 'object at 0x' not in message


# -------------------------------------------------------------- temperatures
@pytest.mark.parametrize('which', ['nan_temp', 'inf_temp'])
def test_test_tool_refuses_an_invalid_temperature(tiny, which):
    metrics, message = _test_tool(tiny, tiny['ckpts'][which])
    assert metrics is None  # was: evaluated at the layer's default temperature, exit 0
    _one_line(message, f"error: checkpoint {tiny['ckpts'][which]}: invalid attention "
              f'temperature for layer {LAYER} (A2D2CPlusConv2d)')
    # --allow-nonfinite is about weights: a temperature is never allowed.
    metrics, message = _test_tool(tiny, tiny['ckpts'][which], '--allow-nonfinite')
    assert metrics is None and LAYER in message


def test_inferencer_refuses_an_invalid_temperature(tiny):
    from mmpretrain.apis import ImageClassificationInferencer
    with pytest.raises(InvalidTemperatureError, match=rf'{LAYER}\.temperature: invalid '
                       rf'temperature in the checkpoint for layer {LAYER} \(A2D2CPlusConv2d\)'):
        ImageClassificationInferencer(model=tiny['config'], pretrained=tiny['ckpts']['nan_temp'],
                                      device='cpu')


def test_mmengine_non_strict_load_refuses_an_invalid_temperature(tiny):
    from mmengine.runner import load_checkpoint

    from mmdyn.apis import load_model
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = load_model(tiny['config'], None).model
    before = model.state_dict()[f'{LAYER}.temperature'].clone()
    for which in ('nan_temp', 'inf_temp'):
        with pytest.raises(InvalidTemperatureError, match=rf'for layer {LAYER} '):
            load_checkpoint(model, tiny['ckpts'][which], map_location='cpu', strict=False)
        # The layer keeps its temperature.
        assert torch.equal(model.state_dict()[f'{LAYER}.temperature'], before)


def test_load_model_names_the_file_and_the_layer(tiny):
    from mmdyn.apis import load_model
    ckpt = tiny['ckpts']['nan_temp']
    with pytest.raises(InvalidTemperatureError, match=rf'^checkpoint {ckpt}: invalid attention '
                       rf'temperature for layer {LAYER} '):
        load_model(tiny['config'], ckpt)


def _temperature_net(name):
    """A module holding one ``LAYERS[name]`` layer as ``body.0``."""
    kwargs = dict(padding=1)
    if LAYERS[name].has_kernel_bank:
        kwargs['kernel_num'] = 2
    if name.startswith('A2D2C'):
        kwargs['num_points'] = 5
    net = nn.Module()
    net.body = nn.Sequential(LAYERS[name](4, 4, 3, **kwargs))
    return net


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -1.0])
@pytest.mark.parametrize('name', [n for n in LAYERS if issubclass(LAYERS[n], TemperatureMixin)])
def test_every_temperature_layer_refuses_in_a_non_strict_mmengine_load(name, bad):
    """Every layer with a temperature (KernelWarehouse's τ too) raises in MMEngine's
    ``load_state_dict(strict=False)``, which only logs torch's error messages."""
    from mmengine.runner.checkpoint import load_state_dict
    net = _temperature_net(name)
    state = net.state_dict()
    state['body.0.temperature'] = torch.tensor(bad, dtype=torch.float64)
    previous = net.body[0].temperature
    with pytest.raises(InvalidTemperatureError, match=r'^body\.0\.temperature: invalid '
                       r'temperature in the checkpoint for layer body\.0 '):
        load_state_dict(net, state, strict=False)
    assert net.body[0].temperature == previous
    with pytest.raises(RuntimeError, match='invalid temperature in the checkpoint'):
        net.load_state_dict(state, strict=False)  # torch's own load, as before


# ------------------------------------------------------------- NaN/inf weights
def test_test_tool_refuses_nonfinite_weights_before_any_metric(tiny, capsys):
    ckpt = tiny['ckpts']['nan_weights']
    metrics, message = _test_tool(tiny, ckpt)
    assert metrics is None  # was: accuracy 0.0 (or 50) and exit 0
    _one_line(message, f'error: checkpoint {ckpt} holds 5 non-finite value(s) (3 NaN, 2 inf) '
              'in 2 of ')
    assert 'backbone.conv1.weight (3), head.fc.bias (2)' in message
    assert message.endswith('; pass --allow-nonfinite to evaluate it anyway')
    assert 'mmdyn test metrics' not in capsys.readouterr().out
    metrics, message = _test_tool(tiny, ckpt, '--allow-nonfinite')
    assert message is None and 'accuracy/top1' in metrics
    assert 'loading it anyway (non-finite values allowed)' in capsys.readouterr().out


def test_test_tool_evaluates_a_good_checkpoint(tiny):
    metrics, message = _test_tool(tiny, tiny['ckpts']['good'])
    assert message is None and 'accuracy/top1' in metrics


def test_export_refuses_nonfinite_weights(tiny, tmp_path, capsys):
    tool = import_tool('export_onnx')
    ckpt = tiny['ckpts']['nan_weights']
    out = str(tmp_path / 'm.onnx')
    with pytest.raises(SystemExit) as info:
        tool.main([tiny['config'], ckpt, '--out', out, '--shape', '32', '32'])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    _one_line(err, f'error: cannot load the model: checkpoint {ckpt} holds 5 non-finite value(s)')
    assert not osp.exists(out)
    from mmdyn.deploy import build_export_model
    with pytest.raises(NonFiniteCheckpointError) as exc:
        build_export_model(tiny['config'], ckpt, (32, 32))
    assert exc.value.counts == {'backbone.conv1.weight': 3, 'head.fc.bias': 2}


# ------------------------------------------------------- not a checkpoint at all
@pytest.mark.parametrize('which,what', [('list', 'a list of 2 item(s)'),
                                        ('tensor', 'a bare tensor of shape (2, 3)')])
def test_a_list_or_a_tensor_is_one_line_naming_the_file(tiny, which, what):
    ckpt = tiny['ckpts'][which]
    metrics, message = _test_tool(tiny, ckpt)
    assert metrics is None
    _one_line(message, f'error: checkpoint {ckpt} holds {what}')  # was: names the hook object
    from mmengine.runner import load_checkpoint

    from mmdyn.apis import load_model
    with pytest.raises(InvalidCheckpointError, match=f'^checkpoint {re.escape(ckpt)} holds '
                       f'{re.escape(what)}'):
        load_model(tiny['config'], ckpt)
    with pytest.raises(InvalidCheckpointError, match=f'^checkpoint {re.escape(ckpt)} holds'):
        load_checkpoint(nn.Linear(2, 2), ckpt, strict=False)


@pytest.mark.parametrize('which', ['empty', 'truncated', 'random'])
def test_a_corrupt_file_is_one_line_naming_the_file(tiny, which):
    ckpt = tiny['ckpts'][which]
    metrics, message = _test_tool(tiny, ckpt)  # was: a traceback out of main()
    assert metrics is None
    _one_line(message, f'error: checkpoint {ckpt} ')
    assert 'empty (0 bytes)' in message if which == 'empty' else 'corrupt' in message
    from mmdyn.engine import load_checkpoint_file
    with pytest.raises(CorruptCheckpointError) as info:
        load_checkpoint_file(ckpt)
    assert isinstance(info.value, (RuntimeError, CheckpointError))
