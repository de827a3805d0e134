"""A2D2C attention capture and tools/analysis_tools/visualize_attention.py."""
import pytest
import torch
import torch.nn as nn
from PIL import Image

from _helpers import run_tool, write_cfg
from mmdyn.analysis import A2D2CAttentionRecorder, find_a2d2c_layers, positions_to_yx
from mmdyn.ops import A2D2CConv2d, A2D2CPlusConv2d, mixed_kernel_conv2d


def _net():
    torch.manual_seed(0)
    return nn.Sequential(A2D2CPlusConv2d(3, 8, 3, padding=1, num_points=10, bias=True),
                         nn.ReLU(),
                         A2D2CConv2d(8, 8, 3, stride=2, padding=1, num_points=6,
                                     sampling='fixed', temperature=2.0))


@pytest.mark.parametrize('train', [True, False])
def test_recorded_attention_reproduces_output(train):
    net = _net().train(train)
    x = torch.randn(2, 3, 12, 12)
    with A2D2CAttentionRecorder(net) as rec:
        out = net(x)
    assert set(rec.records) == {'0', '2'}
    for name, layer in (('0', net[0]), ('2', net[2])):
        r = rec.records[name][0]
        num_k, cout = layer.kernel_num, layer.out_channels
        assert r.attention.shape == (2, num_k, cout)
        assert torch.allclose(r.attention.sum(1), torch.ones(2, cout), atol=1e-5)
        # The recovered positions + attention give back the layer's real output.
        again = mixed_kernel_conv2d(r.input, r.attention, layer.weight.detach(),
                                    None if layer.bias is None else layer.bias.detach(),
                                    None, layer.stride, layer.padding, layer.dilation,
                                    layer.groups)
        assert torch.allclose(again, r.output, atol=1e-5)
    r0 = rec.records['0'][0]
    if train:
        assert r0.positions.shape == (2, 10) and r0.sampling == 'random'
        assert len(set(r0.positions[0].tolist())) == 10
        yx = positions_to_yx(r0.positions, r0.out_hw)
        assert yx.shape == (2, 10, 2) and int(yx.max()) < 12
        assert rec.records['2'][0].positions.shape == (2, 6)
    else:
        assert r0.positions is None and r0.sampling == 'none'
    assert torch.equal(rec.records['2'][0].output, out)


def test_recorder_does_not_change_the_rng_or_the_result():
    net = _net().train()
    x = torch.randn(1, 3, 12, 12)
    torch.manual_seed(5)
    ref = net(x)
    after_ref = torch.rand(3)
    torch.manual_seed(5)
    with A2D2CAttentionRecorder(net, layers=['0']) as rec:
        got = net(x)
    assert torch.equal(ref, got) and torch.equal(torch.rand(3), after_ref)
    assert list(rec.records) == ['0'] and not net[0]._forward_hooks   # hooks removed


def test_recorder_errors():
    with pytest.raises(ValueError, match='no A2D2CConv2d'):
        A2D2CAttentionRecorder(nn.Sequential(nn.Conv2d(3, 3, 1)))
    with pytest.raises(ValueError, match=r"available: \['0', '2'\]"):
        A2D2CAttentionRecorder(_net(), layers=['1'])
    assert list(find_a2d2c_layers(_net())) == ['0', '2']


@pytest.fixture(scope='module')
def tiny_setup(tmp_path_factory):
    import numpy as np

    from mmdyn.analysis.complexity import build_model_from_cfg
    from mmdyn.engine.config import load_config
    tmp = tmp_path_factory.mktemp('va')
    cfg = write_cfg(tmp, 'r18_a2d2c_plus.py', 'A2D2CPlus')
    model = build_model_from_cfg(load_config(cfg, init_scope=True))
    ckpt = tmp / 'ckpt.pth'
    torch.save({'state_dict': model.state_dict()}, ckpt)
    rng = np.random.default_rng(0)
    img = tmp / 'img.png'
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(img)
    return tmp, cfg, ckpt, img


def test_visualize_attention_tool(tiny_setup):
    tmp, cfg, ckpt, img = tiny_setup
    out = tmp / 'fig.png'
    proc = run_tool('visualize_attention.py', cfg, ckpt, img, '--out', out, '--shape', 64,
                    '--layer', 'backbone.layer1.0.conv2')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'layer backbone.layer1.0.conv2' in proc.stdout and 'points 100' in proc.stdout
    with Image.open(out) as im:
        assert im.size[0] >= 1000 and im.size[1] >= 300
    assert out.stat().st_size > 20000


def test_visualize_attention_tool_random_weights_and_errors(tiny_setup):
    tmp, cfg, _, img = tiny_setup
    out = tmp / 'fig_none.png'
    proc = run_tool('visualize_attention.py', cfg, 'none', img, '--out', out, '--shape', 48,
                    '--sampling', 'none')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'layer backbone.conv1' in proc.stdout and 'points 0' in proc.stdout
    assert out.is_file()
    bad = run_tool('visualize_attention.py', cfg, 'none', img, '--out', out, '--layer', 'x')
    assert bad.returncode != 0 and 'available' in bad.stderr
    missing = run_tool('visualize_attention.py', cfg, tmp / 'nope.pth', img, '--out', out)
    assert missing.returncode != 0 and 'checkpoint not found' in missing.stderr


@pytest.mark.parametrize('name,content', [
    ('notes.jpg', b'this is text, not a JPEG'),
    ('half.png', b'\x89PNG\r\n\x1a\n' + b'\0' * 20),
], ids=['text-named-jpg', 'truncated-png'])
def test_visualize_attention_non_image(tiny_setup, tmp_path, load_tool, name, content):
    _, cfg, ckpt, _ = tiny_setup
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SystemExit) as exc:
        load_tool('visualize_attention').main([cfg, str(ckpt), str(path), '--out',
                                               str(tmp_path / 'fig.png')])
    text = str(exc.value.code)
    assert text.startswith(f'error: cannot read image {path}: not an image file or an '
                           'unsupported format'), text
    assert '\n' not in text and not (tmp_path / 'fig.png').exists()


def test_visualize_attention_folder_as_image(tiny_setup, tmp_path, capsys, load_tool):
    _, cfg, ckpt, _ = tiny_setup
    (tmp_path / 'imgs').mkdir()
    (tmp_path / 'imgs' / 'readme.txt').write_text('no image')
    with pytest.raises(SystemExit) as exc:
        load_tool('visualize_attention').main([cfg, str(ckpt), str(tmp_path / 'imgs'),
                                               '--out', str(tmp_path / 'fig.png')])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.endswith(f'IMAGE must be one image file; {tmp_path / "imgs"} is a folder')
