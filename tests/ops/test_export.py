"""The export-safe path of every dynamic layer (issue 8, item 6) and DCD against
the official module (item 7).

* The export-safe path (taken while tracing/exporting, forced here with
  ``export_safe_path()``) equals the normal path and never reads the batch size.
* ``torch.jit.trace`` at batch 2 runs at batch 1 and 3 like eager mode.
* ONNX export with a dynamic batch axis: onnxruntime at batch 1 and 3 within
  1e-4 (relative) of PyTorch, and at batch 0 an empty output of the right shape
  (TorchScript exporter; dynamo exporter when onnxscript is installed).
* An empty batch gives an empty output like ``nn.Conv2d``, in train and eval,
  with a working backward.
* DCD: the squeeze-excitation gate and the whole layer equal a hand-written
  re-implementation of the official ``conv_dy`` (liyunsheng13/dcd).
"""
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from _ops_helpers import BANK_LAYERS, TEMPERATURE_LAYERS, kernel_of, scale_tol
from mmdyn.ops import LAYERS, MODULES, DCDConv2d, DynamicMaskConv2d
from mmdyn.ops import batched_conv
from mmdyn.ops.batched_conv import export_safe_path, is_exporting

# (name, C_in, C_out, kernel, stride, padding, groups, bias, extra kwargs)
CASES = [
    ('A2D2C', 4, 6, 3, 1, 1, 1, False, {}),
    ('A2D2CPlus', 4, 6, 3, 2, 1, 2, True, {}),
    ('A2D2CPlus', 4, 6, 3, 1, 1, 1, False, dict(sampling='fixed', num_points=7)),
    ('ODConv', 4, 6, 3, 1, 1, 1, False, {}),
    ('ODConv', 4, 6, 3, 2, 1, 2, True, {}),
    ('ODConv', 6, 6, 3, 1, 1, 6, False, {}),            # depthwise
    ('DyConv', 4, 6, 3, 2, 1, 2, True, {}),
    ('CondConv', 4, 6, 1, 1, 0, 1, True, {}),
    ('DCD', 4, 6, 3, 2, 1, 1, False, {}),
    ('DMC', 4, 6, 3, 1, None, 1, True, {}),
    # KW's τ = 1 would be its static kernel: a blend that keeps the attention
    ('KW', 4, 6, 3, 1, 1, 1, False, dict(temperature=0.5)),
    ('KW', 4, 6, 3, 2, 1, 2, True, dict(temperature=0.5)),
    ('KW', 6, 6, 3, 1, 1, 6, False, dict(temperature=0.5)),   # depthwise
]
IDS = [f'{c[0]}-k{c[3]}s{c[4]}g{c[6]}{"-bias" if c[7] else ""}'
       f'{"-fixed" if c[8].get("sampling") == "fixed" else ""}' for c in CASES]
HW = (17, 18)  # > 64 output positions even at stride 2: no shortcut to the maps strategy


def _build(case, seed=0):
    name, cin, cout, k, s, p, g, bias, extra = case
    torch.manual_seed(seed)
    cls = DynamicMaskConv2d if name == 'DMC' else LAYERS[name]
    kwargs = dict(extra)
    if name in TEMPERATURE_LAYERS:
        kwargs.setdefault('temperature', 1.0)  # peaked attention: the dynamic part matters
    if name in BANK_LAYERS:
        kwargs['kernel_num'] = 3
    layer = cls(cin, cout, k, s, p, 1, g, bias, **kwargs)
    # move BatchNorm statistics away from (0, 1) so eval mode is not trivial
    for m in layer.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return layer.eval()


def _input(case, batch, seed=1):
    return torch.randn(batch, case[1], *HW, generator=torch.Generator().manual_seed(seed))


def _rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


# ---------------------------------------------------------------- exactness
@pytest.mark.parametrize('case', CASES, ids=IDS)
@pytest.mark.parametrize('batch', [1, 2, 5])
def test_export_path_equals_normal_path(case, batch):
    """Same weights, eval mode: the batch-agnostic path gives the normal output (the
    normal path picks 'loop' at batch 1 and 'grouped'/'loop'/'maps' by shape)."""
    layer = _build(case)
    x = _input(case, batch)
    with torch.no_grad():
        ref = layer(x)
        with export_safe_path():
            got = layer(x)
    torch.testing.assert_close(got, ref, **scale_tol(ref, 1e-5))


@pytest.mark.parametrize('case', [c for c in CASES if c[0] in ('ODConv', 'DyConv', 'CondConv',
                                                                'A2D2CPlus', 'KW')],
                         ids=[i for c, i in zip(CASES, IDS)
                              if c[0] in ('ODConv', 'DyConv', 'CondConv', 'A2D2CPlus', 'KW')])
def test_export_path_never_reads_the_batch_size(case, monkeypatch):
    """The export path never asks select_strategy (the only place that decides by
    batch size), whatever strategy the layer or MMDYN_BATCHED_CONV forces."""
    def forbidden(*args, **kwargs):
        raise AssertionError('select_strategy called on the export-safe path')

    layer = _build(case)
    layer.strategy = 'grouped'
    x = _input(case, 3)
    with torch.no_grad():
        ref = layer(x)
    monkeypatch.setattr(batched_conv, 'FORCED_STRATEGY', 'loop')
    monkeypatch.setattr(batched_conv, 'select_strategy', forbidden)
    import mmdyn.ops.a2d2c_conv2d as a2d2c
    monkeypatch.setattr(a2d2c, 'select_strategy', forbidden)
    with torch.no_grad(), export_safe_path():
        got = layer(x)
    torch.testing.assert_close(got, ref, **scale_tol(ref, 1e-5))


@pytest.mark.parametrize('case', [CASES[4], CASES[11]], ids=[IDS[4], IDS[11]])
def test_export_path_backward_matches(case):
    """Gradients through the export-safe path (e.g. fine-tuning a traced model) match
    (ODConv and KW, groups 2, bias: the kernel bank / the cells)."""
    layer = _build(case)
    x = _input(case, 2)
    grads = []
    for forced in (False, True):
        layer.zero_grad()
        with export_safe_path(forced):
            layer(x).square().sum().backward()
        grads.append(kernel_of(layer).grad.clone())
    torch.testing.assert_close(grads[1], grads[0], **scale_tol(grads[0], 1e-5))


def test_is_exporting_sources():
    assert not is_exporting()
    with export_safe_path():
        assert is_exporting()
        with export_safe_path(False):
            assert not is_exporting()
        assert is_exporting()
    assert not is_exporting()
    seen = []

    def probe(x):
        seen.append(is_exporting())
        return x + 1

    torch.jit.trace(probe, torch.zeros(2), check_trace=False)
    with export_safe_path(False):
        torch.jit.trace(probe, torch.zeros(2), check_trace=False)
    assert seen == [True, False]


def test_random_eval_sampling_cannot_be_exported():
    layer = LAYERS['A2D2CPlus'](4, 4, 3, padding=1, num_points=5, eval_sampling='random').eval()
    with pytest.raises(RuntimeError, match="sampling 'random'.*cannot be traced or exported"):
        with export_safe_path():
            layer(torch.randn(2, 4, 6, 6))
    # all positions (M >= H'*W') are not random: fine
    layer.num_points = 36
    with export_safe_path():
        layer(torch.randn(2, 4, 6, 6))


# ------------------------------------------------------------------ tracing
@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_jit_trace_runs_at_any_batch(case):
    layer = _build(case)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        traced = torch.jit.trace(layer, _input(case, 2, seed=5))
    for batch in (1, 3):
        x = _input(case, batch)
        with torch.no_grad():
            ref = layer(x)
            got = traced(x)
        assert got.shape == ref.shape
        torch.testing.assert_close(got, ref, **scale_tol(ref, 1e-5))


# --------------------------------------------------------------------- ONNX
class _ThenFlatten(nn.Module):
    """The layer, then ``y.reshape(y.size(0), C*H*W)`` as a classifier does: the
    exporter folds that size to a constant when it lost the symbolic batch of ``y``
    (a value whose shape it cannot infer gets the traced one). The other size is a
    constant, not ``-1``: neither PyTorch nor onnxruntime can infer a ``-1`` beside
    a batch of 0."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        y = self.layer(x)
        return y.reshape(y.size(0), int(y.size(1)) * int(y.size(2)) * int(y.size(3)))


def _export_and_compare(layer, case, path, dynamo):
    ort = pytest.importorskip('onnxruntime')
    layer = _ThenFlatten(layer).eval()
    x = _input(case, 2, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        if dynamo:
            torch.onnx.export(layer, (x, ), str(path), dynamo=True, input_names=['x'],
                              output_names=['y'], opset_version=18, verbose=False,
                              dynamic_shapes=({0: torch.export.Dim('batch', min=1)}, ))
        else:
            torch.onnx.export(layer, (x, ), str(path), dynamo=False, input_names=['x'],
                              output_names=['y'], opset_version=17,
                              dynamic_axes={'x': {0: 'batch'}, 'y': {0: 'batch'}})
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    for batch in (0, 1, 3):  # batch 0: an empty output, as in PyTorch (issue 17)
        x = _input(case, batch)
        with torch.no_grad():
            ref = layer(x)
        got = torch.from_numpy(session.run(None, {'x': x.numpy()})[0])
        assert got.shape == ref.shape, (batch, got.shape, ref.shape)
        if batch:
            assert _rel(got, ref) <= 1e-4, (batch, _rel(got, ref))


@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_onnx_dynamic_batch_torchscript_exporter(case, tmp_path):
    pytest.importorskip('onnx')
    _export_and_compare(_build(case), case, tmp_path / 'layer.onnx', dynamo=False)


@pytest.mark.parametrize('case', [CASES[1], CASES[4], CASES[11]], ids=[IDS[1], IDS[4], IDS[11]])
def test_onnx_dynamic_batch_dynamo_exporter(case, tmp_path):
    """The dynamo exporter keeps the batch dynamic (it used to fix it silently)."""
    pytest.importorskip('onnxscript')
    _export_and_compare(_build(case), case, tmp_path / 'layer.onnx', dynamo=True)


# the shape-preserving modules of MODULES (DMC is in CASES): (name, C, kwargs)
MODULE_CASES = [('AdaptiveEnhancement', 4, {}), ('MSFF', 4, {}),
                ('DMC', 4, dict(out_channels=6, kernel_size=3, mask='channel', fusion='sum'))]


@pytest.mark.parametrize('module_case,dynamo', [
    *((c, False) for c in MODULE_CASES), (MODULE_CASES[-1], True)],
    ids=[*(f'{c[0]}-torchscript' for c in MODULE_CASES), 'DMC-dynamo'])
def test_onnx_modules_run_at_batch_0_1_3(module_case, dynamo, tmp_path):
    """The modules of MODULES export with a dynamic batch too and run at batch 0
    (DMC's channel masks and branch sum reshape by branch: no -1 in the graph)."""
    pytest.importorskip('onnx')
    if dynamo:
        pytest.importorskip('onnxscript')
    name, channels, kwargs = module_case
    torch.manual_seed(0)
    if 'out_channels' in kwargs:
        kwargs = dict(kwargs)
        module = MODULES[name](channels, kwargs.pop('out_channels'), kwargs.pop('kernel_size'),
                               padding=1, **kwargs)
    else:
        module = MODULES[name](in_channels=channels, **kwargs)
    case = (name, channels)
    _export_and_compare(module.eval(), case, tmp_path / 'module.onnx', dynamo=dynamo)


# -------------------------------------------------------------- empty batch
def _conv_reference(case):
    """The nn.Conv2d of the same geometry (DMC: its 'same' padding)."""
    name, cin, cout, k, s, p, g, bias, _ = case
    return nn.Conv2d(cin, cout, k, s, (k - 1) // 2 if p is None else p, 1, g, bias)


@pytest.mark.parametrize('train', [True, False], ids=['train', 'eval'])
@pytest.mark.parametrize('case', CASES, ids=IDS)
def test_empty_batch_like_conv2d(case, train):
    layer = _build(case).train(train)
    stats = {k: v.clone() for k, v in layer.state_dict().items()}
    x = torch.randn(0, case[1], *HW, requires_grad=True)
    y = layer(x)
    expected = _conv_reference(case)(x)
    assert y.shape == expected.shape and y.shape[0] == 0
    assert y.dtype == x.dtype
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.equal(p.grad, torch.zeros_like(p)), name
    for key, value in layer.state_dict().items():  # BatchNorm statistics untouched
        assert torch.equal(value, stats[key]), key


# ------------------------------------------------------------- DCD (item 7)
def _hsigmoid(z):
    """The official Hsigmoid: relu6(z + 3) / 3, in [0, 2]."""
    return torch.clamp(z + 3.0, 0.0, 6.0) / 3.0


def _official_conv_dy(layer, x):
    """The official DCD ``conv_dy`` forward written out from its definition
    (liyunsheng13/dcd, models/imagenet/resnet_dcd.py), with ``layer``'s weights:
    r = conv(x); y = Linear(GAP(x)); y = y * hsig(Linear_gate(y));
    Φ = Linear_phi(y); λ = hsig(Linear_scale(y)); out = BN2d(Q_strided(x));
    out = BN1d(Φ @ out) + out; return P(out) + λ * r."""
    def bn(t, m):
        shape = [1, -1] + [1] * (t.dim() - 2)
        if m.training:
            dims = [d for d in range(t.dim()) if d != 1]
            mean, var = t.mean(dims).view(shape), t.var(dims, unbiased=False).view(shape)
        else:
            mean, var = m.running_mean.view(shape), m.running_var.view(shape)
        return (t - mean) / torch.sqrt(var + m.eps) * m.weight.view(shape) + m.bias.view(shape)

    b = x.shape[0]
    dim = layer.latent_dim
    r = F.conv2d(x, layer.weight, None, layer.stride, layer.padding)
    y = x.mean(dim=(2, 3)) @ layer.fc.weight.t()
    y = y * _hsigmoid(y @ layer.fc_gate.weight.t())
    phi = (y @ layer.fc_phi.weight.t()).reshape(b, dim, dim)
    scale = _hsigmoid(y @ layer.fc_scale.weight.t()).reshape(b, -1, 1, 1)
    q = bn(F.conv2d(x, layer.q.weight, stride=layer.stride), layer.bn_q)
    h, w = q.shape[2:]
    q = q.reshape(b, dim, h * w)
    out = bn(phi @ q, layer.bn_phi) + q
    return F.conv2d(out.reshape(b, dim, h, w), layer.p.weight) + scale * r


@pytest.mark.parametrize('k,stride', [(3, 1), (3, 2), (1, 1), (1, 2)])
@pytest.mark.parametrize('train', [True, False], ids=['train', 'eval'])
def test_dcd_equals_official_conv_dy(k, stride, train):
    torch.manual_seed(0)
    layer = DCDConv2d(64, 24, k, stride, k // 2).double()
    for m in (layer.bn_q, layer.bn_phi):
        m.running_mean.uniform_(-0.5, 0.5)
        m.running_var.uniform_(0.5, 2.0)
        m.weight.data.uniform_(0.5, 1.5)
        m.bias.data.uniform_(-0.5, 0.5)
    layer.train(train)
    x = torch.randn(3, 64, 9, 8, dtype=torch.float64)
    expected = _official_conv_dy(layer, x)
    torch.testing.assert_close(layer(x), expected, rtol=1e-10, atol=1e-10)


def test_dcd_gate_is_not_halved():
    """With a zero gate layer the official gate is relu6(0 + 3) / 3 = 1 exactly, so
    Φ and λ see the squeezed vector unchanged (a halved gate gives half of it)."""
    torch.manual_seed(0)
    layer = DCDConv2d(16, 8, 3, padding=1).double().eval()
    x = torch.randn(2, 16, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        layer.fc_gate.weight.zero_()
    phi, scale = layer.dynamic_params(x)
    squeezed = x.mean((2, 3)) @ layer.fc.weight.t()
    torch.testing.assert_close(phi, (squeezed @ layer.fc_phi.weight.t()).view(2, 4, 4),
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(scale, _hsigmoid(squeezed @ layer.fc_scale.weight.t()),
                               rtol=1e-12, atol=1e-12)
