"""Static -> dynamic checkpoint inflation (init_cfg Pretrained and the converter)."""
import pytest
import torch

from _backbone_helpers import build_cls, layer_cfg, randomised_static_resnet


@pytest.fixture(scope='module')
def static50(tmp_path_factory):
    torch.manual_seed(1)
    model = randomised_static_resnet(50)
    path = str(tmp_path_factory.mktemp('ckpt') / 'r50_static.pth')
    torch.save(dict(state_dict={'backbone.' + k: v for k, v in model.state_dict().items()}),
               path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)[0]
    return path, x, ref


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize('layer', ['A2D2CPlus', 'DyConv', 'DCD'])
def test_inflated_resnet50_reproduces_static(static50, layer):
    path, x, ref = static50
    model = build_cls(depth=50, dyn_conv=layer_cfg(layer),
                      dyn_convs=('stem', 'conv1', 'conv2', 'conv3', 'downsample'),
                      init_cfg=dict(type='Pretrained', checkpoint=path, prefix='backbone.'))
    with torch.no_grad():
        fresh = model.eval()(x)[0]
    assert rel_err(fresh, ref) > 0.1                 # not inflated yet: differs
    model.init_weights()
    bank = model.layer2[1].conv2.weight
    if layer != 'DCD':
        assert bank.dim() == 5 and torch.equal(bank[0], bank[-1])
    with torch.no_grad():
        out = model.eval()(x)[0]
    assert rel_err(out, ref) < 1e-4


def test_odconv_and_condconv_inflation_is_not_exact(static50):
    """ODConv's sigmoid channel/filter/spatial attentions and CondConv's sigmoid
    routing do not sum to one: copies of the static kernel give a scaled output."""
    path, x, ref = static50
    for layer in ('ODConv', 'CondConv'):
        model = build_cls(depth=50, dyn_conv=layer_cfg(layer), init_cfg=dict(
            type='Pretrained', checkpoint=path))
        model.init_weights()
        assert torch.equal(model.layer1[0].conv1.weight[2],
                           torch.load(path)['state_dict']['backbone.layer1.0.conv1.weight'])
        with torch.no_grad():
            assert rel_err(model.eval()(x)[0], ref) > 1e-3


def test_bare_torchvision_layout_and_logging(tmp_path):
    static = randomised_static_resnet(18)
    sd = dict(static.state_dict())
    sd['fc.weight'], sd['fc.bias'] = torch.zeros(1000, 512), torch.zeros(1000)
    path = str(tmp_path / 'tv.pth')
    torch.save(sd, path)
    x = torch.randn(1, 3, 64, 64)
    model = build_cls(depth=18, dyn_conv=dict(type='A2D2C', kernel_num=3),
                      init_cfg=dict(type='Pretrained', checkpoint=path))
    from mmdyn.models.backbones import load_inflated_checkpoint
    missing, unexpected = load_inflated_checkpoint(model, path)
    assert unexpected == ['fc.weight', 'fc.bias'] and missing == []
    with torch.no_grad():
        assert rel_err(model.eval()(x)[0], static(x)[0]) < 1e-4


def test_shape_mismatch_error(tmp_path):
    static = randomised_static_resnet(18)
    path = str(tmp_path / 'r18.pth')
    torch.save(static.state_dict(), path)
    model = build_cls(depth=18, stem_channels=32, base_channels=32,
                      dyn_convs=('stem', 'conv1', 'conv2'),
                      init_cfg=dict(type='Pretrained', checkpoint=path))
    with pytest.raises(ValueError, match=r"key 'conv1.weight': checkpoint shape \(64, 3, 7, 7\), "
                                         r'model shape \(4, 32, 3, 7, 7\)'):
        model.init_weights()


@pytest.fixture
def converter(load_tool):
    return load_tool('convert_static_to_dynamic')


def test_converter_round_trip_resnet(static50, tmp_path, converter):
    path, x, ref = static50
    dst = str(tmp_path / 'dyn.pth')
    converter.main([path, dst, '--dyn-conv', 'A2D2CPlus', '--kernel-num', '2',
                       '--depth', '50', '--arch', 'resnet', '--placement', 'all_block_convs'])
    sd = torch.load(dst)['state_dict']
    assert sd['backbone.layer3.0.conv2.weight'].shape == (2, 256, 256, 3, 3)
    model = build_cls(depth=50, dyn_conv=dict(type='A2D2CPlus', kernel_num=2),
                      dyn_placement='all_block_convs')
    model.load_state_dict({k[len('backbone.'):]: v for k, v in sd.items()}, strict=True)
    with torch.no_grad():
        assert rel_err(model.eval()(x)[0], ref) < 1e-4


def test_converter_round_trip_mobilenet_v2(tmp_path, converter):
    from mmpretrain.registry import MODELS
    static = MODELS.build(dict(type='MobileNetV2', widen_factor=0.5))
    static.eval()
    src, dst = str(tmp_path / 'mb.pth'), str(tmp_path / 'mb_dyn.pth')
    torch.save(static.state_dict(), src)
    converter.main([src, dst, '--dyn-conv', 'DyConv', '--kernel-num', '2', '--arch',
                       'mobilenet_v2', '--widen-factor', '0.5'])
    model = build_cls('DynMobileNetV2', widen_factor=0.5, dyn_conv=dict(type='DyConv',
                                                                        kernel_num=2))
    model.load_state_dict(torch.load(dst)['state_dict'], strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert rel_err(model.eval()(x)[0], static(x)[0]) < 1e-4


def test_torchvision_mobilenet_v2_layout_inflates_exactly():
    """A torchvision MobileNetV2 checkpoint (``features.*`` keys) initialises the
    dynamic MobileNetV2 so that it reproduces torchvision's features (A2D2C+,
    attention sums to one)."""
    import torchvision
    from mmpretrain.registry import MODELS as PRETRAIN_MODELS

    from mmdyn.models.backbones import inflate_state_dict
    torch.manual_seed(0)
    tv = torchvision.models.mobilenet_v2(weights=None).eval()
    with torch.no_grad():  # non-trivial BN statistics
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model = PRETRAIN_MODELS.build(dict(type='DynMobileNetV2', widen_factor=1.0,
                                       out_indices=(7, ),
                                       dyn_conv=dict(type='A2D2CPlus', kernel_num=4))).eval()
    state, missing, unexpected = inflate_state_dict(model, tv.state_dict())
    model.load_state_dict(state, strict=False)
    assert not missing
    assert set(unexpected) == {'classifier.1.weight', 'classifier.1.bias'}
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = tv.features(x)
        got = model(x)[-1]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max())


@pytest.mark.parametrize('ratio', [1, 2])
def test_converter_kernel_warehouse_reproduces_static(static50, tmp_path, converter, ratio):
    """KW: each static kernel lands in the cells its temperature-initialised
    attention selects, at τ = 1, so the converted backbone is the static one."""
    path, x, ref = static50
    dst = str(tmp_path / 'kw.pth')
    converter.main([path, dst, '--dyn-conv', 'KW', '--cell-num-ratio', str(ratio),
                    '--depth', '50'])
    sd = torch.load(dst)['state_dict']
    assert 'backbone.layer3.0.conv2.weight' not in sd
    assert sd['backbone.kw_warehouse.cells.stage2_layer_conv'].shape[1:] == (256, 256, 1, 1)
    assert {float(v) for k, v in sd.items() if k.endswith('.temperature')} == {1.0}
    model = build_cls(depth=50, dyn_conv=dict(type='KW', cell_num_ratio=ratio))
    model.load_state_dict({k[len('backbone.'):]: v for k, v in sd.items()}, strict=True)
    with torch.no_grad():
        assert rel_err(model.eval()(x)[0], ref) < 1e-5
        model.layer3[0].conv2.set_temperature(0.5)  # the attention now counts
        assert rel_err(model(x)[0], ref) > 1e-3


def test_converter_refuses_small_kernel_warehouse(static50, tmp_path, converter):
    path, _, _ = static50
    dst = tmp_path / 'kw_half.pth'
    with pytest.raises(SystemExit, match='cell_num_ratio=0.5.*from scratch'):
        converter.main([path, str(dst), '--dyn-conv', 'KW', '--cell-num-ratio', '0.5',
                        '--cell-inplane-ratio', '0.5', '--cell-outplane-ratio', '0.5',
                        '--depth', '50'])
    assert not dst.exists()


@pytest.mark.parametrize('content, message', [
    ([1, 2], 'holds a list of 2 item'),
    (torch.zeros(2, 3), 'holds a bare tensor of shape'),
    ({0: torch.zeros(1), 1: torch.zeros(1)}, 'keys are not parameter names'),
], ids=['list', 'tensor', 'int-keys'])
def test_converter_refuses_what_is_not_a_state_dict(tmp_path, converter, content, message):
    src, dst = tmp_path / 'odd.pth', tmp_path / 'out.pth'
    torch.save(content, src)
    with pytest.raises(SystemExit, match=message):
        converter.main([str(src), str(dst), '--dyn-conv', 'A2D2CPlus', '--depth', '18'])
    assert not dst.exists()
