"""A checkpoint that does not fit the model is an error, not a metric:
``mmdyn.engine.check_state_dict_fits`` (missing / unexpected / shape-mismatched
keys, optional keys excepted), ``tools/test.py`` and
``tools/analysis_tools/visualize_attention.py`` refusing it (and ``--allow-partial-checkpoint``),
and ``tools/model_converters/convert_static_to_dynamic.py`` failing when it does not inflate
every backbone convolution (nothing written, no overwriting)."""
import os
import os.path as osp
import sys
import warnings

import pytest
import torch
import torch.nn as nn

import mmdyn.models  # noqa: F401
from _tool_helpers import REPO, make_images, run
from _tools import import_tool
from mmdyn.engine import CheckpointMismatchError, check_state_dict_fits

A2D2C = "dict(type='A2D2CPlus', kernel_num=2, num_points=8, sampling='fixed')"
TEMPLATE = osp.join(REPO, 'tests', 'data', 'tiny_cls_inference.py.tmpl')


# ----------------------------------------------------------- check_state_dict_fits
class _Layer(nn.Module):
    optional_state_keys = ('temperature', )

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 1)
        self.register_buffer('temperature', torch.tensor(30.0))


class _Net(nn.Module):

    def __init__(self, width=3):
        super().__init__()
        self.layer = _Layer()
        self.bn = nn.BatchNorm2d(3)
        self.head = nn.Linear(3, width)


def _sd(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_fitting_state_dicts_pass():
    net = _Net()
    sd = _sd(net)
    check_state_dict_fits(net, sd)
    check_state_dict_fits(net, {'state_dict': sd, 'meta': {}})        # checkpoint dict
    check_state_dict_fits(net, {'module.' + k: v for k, v in sd.items()})  # DDP-saved
    check_state_dict_fits(nn.DataParallel(net), sd)                     # wrapped model
    # Optional keys may be missing: the layer's temperature (older checkpoints)
    # and BatchNorm's num_batches_tracked.
    del sd['layer.temperature'], sd['bn.num_batches_tracked']
    check_state_dict_fits(net, sd)


@pytest.mark.parametrize('case', ['missing', 'unexpected', 'shape', 'optional_shape', 'all'])
def test_mismatches_are_counted_and_named(case):
    net = _Net()
    sd = _sd(net)
    want = dict(missing=[], unexpected=[], shape=[])
    if case in ('missing', 'all'):
        del sd['head.bias'], sd['layer.conv.weight']
        want['missing'] = ['head.bias', 'layer.conv.weight']
    if case in ('unexpected', 'all'):
        sd['extra.weight'] = torch.zeros(1)
        want['unexpected'] = ['extra.weight']
    if case in ('shape', 'all'):
        sd['head.weight'] = torch.zeros(5, 3)
        want['shape'] = ['head.weight']
    if case == 'optional_shape':  # optional keys may be absent, not of another shape
        sd['layer.temperature'] = torch.zeros(2)
        want['shape'] = ['layer.temperature']
    with pytest.raises(CheckpointMismatchError) as info:
        check_state_dict_fits(net, sd, source='checkpoint x.pth')
    err = info.value
    assert isinstance(err, ValueError)
    assert err.missing == want['missing'] and err.unexpected == want['unexpected']
    assert [k for k, _, _ in err.mismatched] == want['shape']
    msg = str(err)
    assert '\n' not in msg and msg.startswith('checkpoint x.pth does not match the model: ')
    assert f"{len(want['missing'])} missing key(s)" in msg
    assert f"{len(want['unexpected'])} unexpected key(s)" in msg
    assert f"{len(want['shape'])} key(s) with another shape" in msg
    for key in want['missing'] + want['unexpected'] + want['shape']:
        assert key in msg
    if case == 'shape':
        assert 'head.weight: checkpoint (5, 3) vs model (3, 3)' in msg


def test_only_the_first_few_keys_are_listed():
    net = _Net()
    with pytest.raises(CheckpointMismatchError) as info:
        check_state_dict_fits(net, {'other.weight': torch.zeros(1)})
    expected = [k for k in net.state_dict()
                if k not in ('layer.temperature', 'bn.num_batches_tracked')]
    msg = str(info.value)
    assert f'{len(expected)} missing key(s)' in msg and ', ...' in msg
    assert sum(k in msg for k in expected) == 3


def test_fit_hook_checks_the_unwrapped_model(caplog):
    """What tools/test.py registers: runs in ``after_load_checkpoint`` (before
    the weights are copied), on the unwrapped model (DDP in a distributed run)."""
    import logging
    from types import SimpleNamespace

    from mmdyn.engine import CheckpointFitHook
    net = _Net()
    logger = logging.getLogger('fit_hook_test')
    runner = SimpleNamespace(model=nn.DataParallel(net), _load_from='x.pth', logger=logger)
    CheckpointFitHook().after_load_checkpoint(runner, {'state_dict': _sd(net)})
    bad = {'state_dict': {k: v for k, v in _sd(net).items() if k != 'head.bias'}}
    with pytest.raises(CheckpointMismatchError, match=r'checkpoint x.pth .*1 missing key\(s\) '
                                                      r'\(head.bias\)'):
        CheckpointFitHook().after_load_checkpoint(runner, bad)
    with caplog.at_level(logging.WARNING, logger='fit_hook_test'):
        CheckpointFitHook(allow_partial=True).after_load_checkpoint(runner, bad)
    assert '1 missing key(s) (head.bias)' in caplog.text


# ------------------------------------------------------------------ the tools
@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """A tiny A2D2C+ classifier config and three checkpoints for it: a static one
    (the same network with nn.Conv2d), a dynamic one lacking two keys, and a
    complete dynamic one."""
    from mmengine.runner import save_checkpoint

    from mmdyn.apis import load_model
    tmp = tmp_path_factory.mktemp('fit')
    make_images(str(tmp / 'data'))
    with open(TEMPLATE) as f:
        template = f.read().replace('{data_root}', str(tmp / 'data')).replace(
            '{num_classes}', '2')
    configs = {}
    for name, conv in (('dyn', A2D2C), ('static', 'None')):
        configs[name] = str(tmp / f'{name}.py')
        with open(configs[name], 'w') as f:
            f.write(template.replace('{conv_cfg}', conv))
    states = {}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        for name in ('dyn', 'static'):
            torch.manual_seed(0)
            states[name] = load_model(configs[name], None).model.state_dict()
    ckpts = {}
    for name in ('dyn', 'static'):
        ckpts[name] = str(tmp / f'{name}.pth')
        save_checkpoint({'state_dict': states[name]}, ckpts[name])
    partial = dict(states['dyn'])
    dropped = ['backbone.layer1.0.conv2.weight', 'head.fc.bias']
    for key in dropped:
        del partial[key]
    ckpts['partial'] = str(tmp / 'partial.pth')
    save_checkpoint({'state_dict': partial}, ckpts['partial'])
    return dict(tmp=tmp, config=configs['dyn'], ckpts=ckpts, states=states, dropped=dropped,
                image=str(tmp / 'data' / 'a' / '0.png'))


def _expected_static_summary(tiny):
    """The counts for the static checkpoint, by plain set operations."""
    dyn, static = tiny['states']['dyn'], tiny['states']['static']
    missing = [k for k in dyn if k not in static and not k.endswith('.temperature')]
    unexpected = [k for k in static if k not in dyn]
    shape = [k for k in dyn if k in static and dyn[k].shape != static[k].shape]
    assert shape  # kernel banks are 5-D
    return (f'{len(missing)} missing key(s)', f'{len(unexpected)} unexpected key(s)',
            f'{len(shape)} key(s) with another shape')


def _test_tool(tiny, ckpt, *extra):
    return run([sys.executable, 'tools/test.py', tiny['config'], ckpt, '--work-dir',
                str(tiny['tmp'] / 'work')] + list(extra), check=False)


def test_test_tool_refuses_a_static_checkpoint_for_a_dynamic_config(tiny):
    proc = _test_tool(tiny, tiny['ckpts']['static'])
    assert proc.returncode != 0
    assert 'mmdyn test metrics' not in proc.stdout and 'accuracy/top1' not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: checkpoint {tiny['ckpts']['static']} does not match "
                           'the model: ')
    for part in _expected_static_summary(tiny):
        assert part in last
    assert '--allow-partial-checkpoint' in last
    assert 'Traceback' not in proc.stderr


def test_test_tool_refuses_missing_keys_and_the_flag_allows_them(tiny):
    proc = _test_tool(tiny, tiny['ckpts']['partial'])
    assert proc.returncode != 0 and 'mmdyn test metrics' not in proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert '2 missing key(s) (' + ', '.join(sorted(tiny['dropped'])) + ')' in last
    assert '0 unexpected key(s), 0 key(s) with another shape' in last
    proc = _test_tool(tiny, tiny['ckpts']['partial'], '--allow-partial-checkpoint')
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert 'mmdyn test metrics' in proc.stdout
    assert '2 missing key(s)' in out and 'partial load allowed' in out


@pytest.mark.parametrize('which', ['static', 'partial'])
def test_visualize_attention_refuses(tiny, which):
    tool = import_tool('visualize_attention')
    out = str(tiny['tmp'] / f'fig_{which}.png')
    argv = [tiny['config'], tiny['ckpts'][which], tiny['image'], '--out', out,
            '--shape', '32']
    with pytest.raises(SystemExit) as info:
        tool.main(argv)
    message = str(info.value.code)
    assert message.startswith(f"error: checkpoint {tiny['ckpts'][which]} does not match the "
                              'model: ') and '\n' not in message
    assert not osp.exists(out)
    with pytest.warns(UserWarning, match='does not match the model'):
        record = tool.main(argv + ['--allow-partial-checkpoint'])
    assert record is not None and osp.isfile(out)


# ------------------------------------------------------------------ the converter
@pytest.fixture(scope='module')
def static_cifar(tmp_path_factory):
    from mmpretrain.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(type='ResNet_CIFAR', depth=18))
    path = str(tmp_path_factory.mktemp('conv') / 'r18_cifar.pth')
    torch.save({'state_dict': {'backbone.' + k: v for k, v in model.state_dict().items()},
                'meta': {}}, path)
    return path


def _convert(*argv):
    return import_tool('convert_static_to_dynamic').main([str(a) for a in argv])


@pytest.mark.parametrize('args, expected', [
    (['--arch', 'mobilenet_v2'], r'only 0 of \d+ backbone convolutions'),
    (['--arch', 'resnet_cifar', '--depth', '34'], r'only \d+ of \d+ backbone convolutions'),
    (['--arch', 'resnet', '--depth', '18'], r"key 'conv1.weight'"),
    (['--arch', 'resnet_cifar', '--depth', '18', '--prefix', 'head.'], 'prefix'),
])
def test_converter_fails_on_a_wrong_target_and_writes_nothing(static_cifar, tmp_path, args,
                                                              expected):
    import re
    dst = tmp_path / 'out' / 'dyn.pth'
    with pytest.raises(SystemExit) as info:
        _convert(static_cifar, dst, '--dyn-conv', 'A2D2CPlus', '--kernel-num', '2', *args)
    message = info.value.code
    assert isinstance(message, str)  # sys.exit(message): printed, exit status 1
    assert message.startswith(f'error: cannot convert {static_cifar} into {dst} (--arch ')
    assert '\n' not in message
    assert re.search(expected, message), message
    if 'only' in expected:
        found, total = map(int, re.search(r'only (\d+) of (\d+)', message).groups())
        assert found < total
    assert not dst.exists()
    assert not (tmp_path / 'out').exists() or not os.listdir(tmp_path / 'out')


def test_converter_converts_and_never_overwrites(static_cifar, tmp_path):
    from mmpretrain.registry import MODELS
    dst = tmp_path / 'dyn.pth'
    common = ['--dyn-conv', 'A2D2CPlus', '--kernel-num', '2', '--arch', 'resnet_cifar',
              '--depth', '18']
    assert _convert(static_cifar, dst, *common) == 0
    sd = torch.load(dst, weights_only=True)['state_dict']
    model = MODELS.build(dict(type='DynResNetCIFAR', depth=18,
                              dyn_conv=dict(type='A2D2CPlus', kernel_num=2)))
    model.load_state_dict({k[len('backbone.'):]: v for k, v in sd.items()}, strict=True)
    before = dst.read_bytes()
    with pytest.raises(SystemExit) as info:  # an existing output is kept ...
        _convert(static_cifar, dst, *common)
    assert info.value.code == 2 and dst.read_bytes() == before
    assert _convert(static_cifar, dst, *common, '--overwrite') == 0  # ... unless --overwrite
    src_bytes = open(static_cifar, 'rb').read()
    with pytest.raises(SystemExit):  # the source never
        _convert(static_cifar, static_cifar, *common, '--overwrite')
    assert open(static_cifar, 'rb').read() == src_bytes
    assert sorted(os.listdir(tmp_path)) == ['dyn.pth']  # no partial files left
