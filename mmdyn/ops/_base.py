"""Shared plumbing of the mmdyn convolution layers (pure PyTorch).

Everything a dynamic convolution needs to look like ``nn.Conv2d`` from the
outside lives here (argument checks: :mod:`mmdyn.utils.validation`): the attributes
that ``mmcv.cnn.ConvModule`` reads, input checking, per-kernel initialisation,
temperature handling, a BatchNorm that survives batch size 1 in training, and
the shared parts of the closed-form MAdds every layer reports (``madds``).

MAdds conventions (one unit = one multiply-add, MMEngine's convention; the full
list and the traced counter that checks the formulas:
:mod:`mmdyn.analysis.complexity` and ``docs/analysis_tools.md``): convolution
and linear layers ``inputs x outputs`` without the bias, element-wise
arithmetic 1 per output element, ``sum``/``mean``/``softmax`` 1 per input
element, activations and indexing free.
"""
import math
import warnings
from typing import Dict, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdyn.utils.checkpoint_errors import InvalidTemperatureError
from mmdyn.utils.validation import IntOrPair, check_pair, check_positive_int, check_temperature


def conv_output_hw(in_hw, kernel_size, stride, padding, dilation) -> Tuple[int, int]:
    """``(H', W')`` of a convolution of an ``in_hw`` map (as ``nn.Conv2d``)."""
    h, w = ((size + 2 * p - d * (k - 1) - 1) // s + 1
            for size, k, s, p, d in zip(in_hw, kernel_size, stride, padding, dilation))
    return h, w


def conv2d_madds(batch: int, out_channels: int, in_channels_per_group: int, kernel_size,
                 out_hw: Tuple[int, int]) -> int:
    """MAdds of a static convolution over ``batch`` inputs (bias not counted):
    ``B * C_out * C_in/g * kh * kw * H' * W'``."""
    return (batch * out_channels * in_channels_per_group * kernel_size[0] * kernel_size[1]
            * out_hw[0] * out_hw[1])


def batch_norm_madds(numel: int, training: bool) -> int:
    """MAdds of an affine BatchNorm over ``numel`` values, MMEngine's count: 2 per
    element in eval, 5 in training (``norm_flop_counter(1)``)."""
    return (5 if training else 2) * numel


def check_feature_map(name: str, x, channels: int) -> None:
    """Raise a ``ValueError`` naming module ``name`` unless ``x`` is a
    ``(B, channels, H, W)`` tensor."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f'{name} expects a 4-D input (B, C, H, W), got {shape}')
    if x.size(1) != channels:
        raise ValueError(f'{name} expects an input with {channels} channels, got '
                         f'{x.size(1)} channels (input shape {tuple(x.shape)})')


def parameter_dtype(module: nn.Module) -> Optional[torch.dtype]:
    """The dtype of ``module``'s ``weight`` (else of its first parameter, its own or
    a submodule's; None without any): the dtype its input must have outside
    autocast. Reads the modules' parameter dicts directly (a forward calls it; the
    ``parameters()`` generator costs several microseconds)."""
    weight = module._parameters.get('weight')
    if weight is not None:
        return weight.dtype
    stack = [module]
    while stack:
        m = stack.pop()
        for p in m._parameters.values():
            if p is not None:
                return p.dtype
        stack.extend(c for c in reversed(m._modules.values()) if c is not None)
    return None


def check_input_dtype(name: str, x: torch.Tensor, module: nn.Module) -> None:
    """Raise a one-line ``TypeError`` naming module ``name`` unless ``x`` is a
    floating-point tensor of ``module``'s parameter dtype, what ``nn.Conv2d``
    needs (where PyTorch's own message, e.g. ``mat1 and mat2 must have the same
    dtype``, names neither the layer nor the way out). Under autocast of ``x``'s
    device any floating-point input is accepted (autocast casts, e.g. a bfloat16
    input with float32 weights). Reads dtypes only: nothing is computed, and
    tracing and export see no difference."""
    dtype = x.dtype
    if not x.is_floating_point():
        raise TypeError(f'{name} expects a floating-point input, got {dtype} (input shape '
                        f'{tuple(x.shape)}); convert it first, e.g. x.float()')
    expected = parameter_dtype(module)
    if expected is not None and dtype != expected and not torch.is_autocast_enabled(
            x.device.type):
        raise TypeError(f'{name}: input dtype {dtype} does not match the layer dtype '
                        f'{expected}; convert the input (x.to({expected})) or the layer '
                        f'(layer.to({dtype}))')


class NotScriptableMixin:
    """Makes ``torch.jit.script`` of a module (or of a network that holds one) fail at
    once with a message that says what to use instead.

    The mmdyn layers are written for eager mode, tracing and export (data-dependent
    Python: validation, strategy choice, temperatures kept as Python floats);
    TorchScript's compiler would stop at some line of that code with an error that
    names neither the layer nor the alternative. ``torch.jit.script`` calls
    ``__prepare_scriptable__`` on a module and each of its submodules first.
    """

    def __prepare_scriptable__(self):
        raise RuntimeError(
            f'{type(self).__name__} cannot be compiled with torch.jit.script (mmdyn layers '
            'are not scriptable); use torch.jit.trace, torch.onnx.export or mmdyn.deploy '
            '(tools/deploy/export_onnx.py, docs/deploy.md) instead: they run the graph at '
            'any batch size')


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32, or kept in float64: attention is never computed in half
    precision (autocast) and never rounded down from float64."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


class DynamicConvBase(NotScriptableMixin, nn.Module):
    """Common base of every mmdyn convolution: the ``nn.Conv2d`` surface.

    Subclasses own their parameters and ``forward``; this class validates the
    geometry shared with ``nn.Conv2d`` and exposes the same attributes
    (``in_channels``, ``out_channels``, ``kernel_size``, ``stride``,
    ``padding``, ``dilation``, ``groups``, ``transposed``, ``output_padding``,
    ``padding_mode``) so that ``mmcv.cnn.ConvModule`` and model surgery code
    treat it as a convolution.

    A layer of :data:`mmdyn.ops.LAYERS` also describes itself, so that the
    analysis code and the tests need no list of layer classes:

    * the class attributes below (what the layer has);
    * ``madds(input_hw, batch=1, training=False)``: its closed-form MAdds by
      part, built on :meth:`static_conv_madds`, :meth:`madds_strategy` and
      :meth:`mixture_madds` (read by :func:`mmdyn.analysis.analytic_madds`);
    * ``attention(x)``, where the layer has an attention: the weights its
      forward mixes the kernels with.

    Attributes:
        has_kernel_bank (bool): A bank of K kernels ``weight`` ``(K, C_out,
            C_in/g, kh, kw)`` and a ``kernel_num`` argument.
        kernel_init (str): How ``reset_parameters`` initialises that bank
            (a mode of :func:`init_kernel_bank_`).
        strategies (tuple[str]): The per-sample convolution strategies its
            ``strategy`` argument accepts (empty: no such argument).

    Args:
        in_channels (int): Channels of the input, ``C_in``.
        out_channels (int): Channels of the output, ``C_out``.
        kernel_size (int | tuple[int, int]): Kernel height and width.
        stride (int | tuple[int, int]): Stride. Default: 1.
        padding (int | tuple[int, int] | str): Zero padding, or ``'valid'``
            (no padding) / ``'same'`` (stride 1 only). Default: 0.
        dilation (int | tuple[int, int]): Dilation. Default: 1.
        groups (int): Groups; must divide both channel counts. Default: 1.
        bias (bool): Whether the layer adds a bias. Default: False.
    """

    transposed = False
    has_kernel_bank = False
    kernel_init = 'conv2d'
    strategies: Tuple[str, ...] = ()

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntOrPair,
                 stride: IntOrPair = 1, padding: Union[IntOrPair, str] = 0,
                 dilation: IntOrPair = 1, groups: int = 1, bias: bool = False):
        super().__init__()
        name = type(self).__name__
        self.in_channels = check_positive_int('in_channels', in_channels)
        self.out_channels = check_positive_int('out_channels', out_channels)
        self.kernel_size = check_pair('kernel_size', kernel_size, 1)
        self.stride = check_pair('stride', stride, 1)
        self.dilation = check_pair('dilation', dilation, 1)
        self.groups = check_positive_int('groups', groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f'{name}: groups={groups} must divide in_channels={in_channels} '
                f'and out_channels={out_channels}')
        if isinstance(padding, str):
            if padding == 'valid':
                padding = 0
            elif padding == 'same':
                if self.stride != (1, 1):
                    raise ValueError(f"{name}: padding='same' needs stride 1, got {self.stride}")
                total = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
                if any(t % 2 for t in total):
                    raise ValueError(
                        f"{name}: padding='same' needs an even dilation*(kernel_size-1), "
                        f'got {total}')
                padding = (total[0] // 2, total[1] // 2)
            else:
                raise ValueError(f"{name}: padding must be an int, a pair, 'valid' or 'same', "
                                 f'got {padding!r}')
        self.padding = check_pair('padding', padding, 0)
        self.output_padding = (0, 0)
        self.padding_mode = 'zeros'
        if not isinstance(bias, bool):
            raise TypeError(f'{name}: bias must be a bool, got {bias!r}')
        self.use_bias = bias

    # ------------------------------------------------------------------ helpers
    @property
    def depthwise(self) -> bool:
        """True for a depthwise conv (one input channel per group)."""
        return self.groups == self.in_channels == self.out_channels

    def output_size(self, height: int, width: int) -> Tuple[int, int]:
        """Spatial size ``(H', W')`` of the output for an ``H x W`` input."""
        return conv_output_hw((height, width), self.kernel_size, self.stride, self.padding,
                              self.dilation)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error for an input this layer cannot convolve."""
        name = type(self).__name__
        check_feature_map(name, x, self.in_channels)
        check_input_dtype(name, x, self)
        h, w = self.output_size(x.size(2), x.size(3))
        if h < 1 or w < 1:
            raise ValueError(f'{name}: input {tuple(x.shape)} is too small for kernel '
                             f'{self.kernel_size}, padding {self.padding}, dilation '
                             f'{self.dilation}')

    def create_kernel_bank(self, kernel_num: int, bias_bank: bool) -> None:
        """Create ``weight`` ``(K, C_out, C_in/g, kh, kw)`` and, if ``bias_bank``,
        ``bias`` ``(K, C_out)`` (else ``bias = None``); uninitialised until
        :meth:`reset_kernel_bank`."""
        kh, kw = self.kernel_size
        self.weight = nn.Parameter(torch.empty(kernel_num, self.out_channels,
                                               self.in_channels // self.groups, kh, kw))
        self.bias = (nn.Parameter(torch.empty(kernel_num, self.out_channels))
                     if bias_bank else None)

    def reset_kernel_bank(self) -> None:
        """Initialise every kernel of ``weight`` (and ``bias``) like a single
        convolution of its shape, in mode :attr:`kernel_init` (see
        :func:`init_kernel_bank_`)."""
        init_kernel_bank_(self.weight, self.kernel_init)
        init_bias_(self.bias, self.weight[0, 0].numel())

    # -------------------------------------------------------------------- MAdds
    def static_conv_madds(self, batch: int, out_hw: Tuple[int, int]) -> int:
        """MAdds of one static convolution of this geometry (see :func:`conv2d_madds`)."""
        return conv2d_madds(batch, self.out_channels, self.in_channels // self.groups,
                            self.kernel_size, out_hw)

    def madds_strategy(self, batch: int, out_hw: Tuple[int, int], training: bool,
                       maps_ok: bool) -> str:
        """The per-sample strategy whose MAdds are counted: the layer's
        ``strategy``, or for ``'auto'`` what
        :func:`~mmdyn.ops.batched_conv.select_strategy` picks on the CPU (with
        autograd recording in training). The fused CPU path is not counted: it
        is off while tracing, which is how the counter checks the formulas."""
        if self.strategy != 'auto':
            return self.strategy
        from .batched_conv import select_strategy  # (batched_conv imports this module)
        x = torch.empty(batch, self.in_channels, 1, 1)
        kernel_shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        with torch.set_grad_enabled(training):
            return select_strategy(x, kernel_shape, out_hw, maps_ok=maps_ok)

    def mixture_madds(self, batch: int, out_hw: Tuple[int, int], strategy: str,
                      spatial: bool = False) -> Dict[str, int]:
        """MAdds of :func:`~mmdyn.ops.batched_conv.mixed_kernel_conv2d` on this
        layer's kernel bank (``kernel = C_out*C_in/g*kh*kw``, ``P = H'*W'``).

        ``maps``: K convolutions in one (``conv``) and the weighted sum of the
        maps, ``2*B*K*C_out*P`` (``aggregation``). Other strategies: one
        ``conv`` and the aggregation ``B*K*kernel`` (``+ B*kernel`` for a
        ``spatial`` attention; a bias bank adds ``2*B*K*C_out`` for ``loop``,
        ``B*K*C_out`` otherwise).

        Returns:
            ``{'conv': ..., 'aggregation': ...}``.
        """
        num_k, cout = self.kernel_num, self.out_channels
        conv = self.static_conv_madds(batch, out_hw)
        if strategy == 'maps':
            return dict(conv=num_k * conv,
                        aggregation=2 * batch * num_k * cout * out_hw[0] * out_hw[1])
        kernel = self.weight[0].numel()  # values of one kernel, C_out*C_in/g*kh*kw
        aggregation = batch * num_k * kernel + (batch * kernel if spatial else 0)
        if self.bias is not None and self.bias.dim() == 2:  # a bias bank, mixed too
            aggregation += batch * (2 * num_k * cout if strategy == 'loop' else num_k * cout)
        return dict(conv=conv, aggregation=aggregation)

    def init_weights(self) -> None:
        """Called by ``mmcv.cnn.ConvModule`` instead of its whole-tensor kaiming init."""
        self.reset_parameters()

    def reset_parameters(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        s = (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, '
             f'stride={self.stride}, padding={self.padding}, dilation={self.dilation}, '
             f'groups={self.groups}, bias={self.use_bias}')
        for attr in ('kernel_num', 'temperature'):
            if hasattr(self, attr):
                s += f', {attr}={getattr(self, attr)}'
        return s


class TemperatureMixin:
    """Gives a layer a validated ``temperature`` that travels with its state dict.

    The temperature divides the attention logits (``softmax(z / T)`` or
    ``sigmoid(z / T)``); a large T flattens the attention. ``mmdyn``'s
    ``TemperatureAnnealHook`` calls :meth:`set_temperature` during training.

    Storage: a persistent float64 buffer named ``temperature`` (so
    ``state_dict()``, MMEngine checkpoints and every program that loads them
    carry the trained value) plus a Python float copy that the forward reads
    (no device synchronisation, a constant when tracing or exporting). Reading
    ``layer.temperature`` gives the float; assigning it (``layer.temperature =
    t``), :meth:`set_temperature` and ``load_state_dict`` all validate the
    value: 0, a negative number, NaN or inf raise a ``ValueError``; in
    ``load_state_dict`` (torch's, MMEngine's, strict or not) an
    :class:`~mmdyn.utils.checkpoint_errors.InvalidTemperatureError` naming the
    layer, raised at once (MMEngine's non-strict load would only log an error
    message) and the layer keeps its previous temperature.

    The buffer stays float64 whatever the module's dtype: ``.half()``,
    ``.to(torch.bfloat16)``, ``.float()`` and ``.double()`` move it with the
    module's device but never round the value (``_apply``), so a half-precision
    model saves and reloads the exact temperature.

    A checkpoint written before the temperature was stored (no
    ``<prefix>temperature`` entry) still loads, strict or not: the layer keeps
    its current value and warns once which value it uses;
    ``temperature_from_checkpoint`` is then False.
    """

    #: State-dict entries a checkpoint may lack (checked by mmdyn's loaders).
    optional_state_keys = ('temperature', )

    @staticmethod
    def check_temperature_value(value) -> float:
        """Validate a temperature of this layer (finite and > 0 for a softmax or
        sigmoid temperature; a layer with another kind overrides this)."""
        return check_temperature(value)

    @property
    def temperature(self) -> float:
        """The attention temperature T (a finite float > 0)."""
        try:
            return self.__dict__['_temperature_value']
        except KeyError:
            raise AttributeError(f'{type(self).__name__} has no temperature yet') from None

    def __setattr__(self, name, value):
        if name == 'temperature':
            self.set_temperature(value)
        else:
            super().__setattr__(name, value)

    def set_temperature(self, temperature: float) -> None:
        """Set the attention temperature (a finite float > 0)."""
        value = self.check_temperature_value(temperature)
        buffer = self._buffers.get('temperature')
        if buffer is None:
            self.register_buffer('temperature', torch.tensor(value, dtype=torch.float64))
        elif buffer.dtype != torch.float64:  # e.g. replaced by load_state_dict(assign=True)
            self._buffers['temperature'] = torch.tensor(value, dtype=torch.float64,
                                                        device=buffer.device)
        else:
            with torch.no_grad():
                buffer.fill_(value)
        self.__dict__['_temperature_value'] = value
        self.__dict__['temperature_from_checkpoint'] = None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        key = prefix + 'temperature'
        previous = self.temperature
        present = key in state_dict
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        if not present:  # a checkpoint written before mmdyn stored the temperature
            if key in missing_keys:
                missing_keys.remove(key)
            warnings.warn(f'{type(self).__name__}: the checkpoint has no attention temperature '
                          f'(written before mmdyn stored it); using temperature={previous:g}',
                          stacklevel=2)
            self.__dict__['temperature_from_checkpoint'] = False
            return
        loaded = self._buffers['temperature']
        if loaded.numel() == 1 and loaded.device.type != 'meta':
            loaded = loaded.item()  # a number in the message, not a tensor repr
        try:
            value = self.check_temperature_value(loaded)
        except (TypeError, ValueError) as err:
            self.set_temperature(previous)
            # Raised, not appended to error_msgs: MMEngine's load_state_dict
            # (strict=False, what its Runner and the inferencers use) only logs those.
            raise InvalidTemperatureError(
                f'{key}: invalid temperature in the checkpoint for layer '
                f'{prefix[:-1] or "(root)"} ({type(self).__name__}): {err}') from None
        self.set_temperature(value)
        self.__dict__['temperature_from_checkpoint'] = True

    def _apply(self, fn, *args, **kwargs):
        """``nn.Module._apply`` (``.to()``, ``.half()``, ``.cuda()``, ...), after
        which the temperature buffer is float64 again, on the device ``fn``
        chose, holding the exact value (a cast to half would store 7.3 as
        7.30078 and 1e6 as inf)."""
        result = super()._apply(fn, *args, **kwargs)
        buffer = self._buffers.get('temperature')
        value = self.__dict__.get('_temperature_value')
        if buffer is not None and value is not None and buffer.dtype != torch.float64:
            self._buffers['temperature'] = torch.tensor(value, dtype=torch.float64,
                                                        device=buffer.device)
        return result


def init_kernel_bank_(weight: torch.Tensor, mode: str = 'conv2d') -> None:
    """Initialise a ``(K, C_out, C_in/g, kh, kw)`` kernel bank one kernel at a time.

    Initialising the 5-D tensor in one call would compute the fan from the wrong
    dimensions (``K`` taken as the output dim); here every kernel gets the fan of
    a single ``C_out x C_in/g x kh x kw`` convolution.

    Args:
        weight: The kernel bank.
        mode: ``'conv2d'`` (``nn.Conv2d``'s default, kaiming-uniform with
            ``a=sqrt(5)``) or ``'kaiming_fan_out'`` (kaiming-normal, fan_out,
            ReLU gain; what official ODConv uses).
    """
    with torch.no_grad():
        for k in range(weight.size(0)):
            if mode == 'conv2d':
                nn.init.kaiming_uniform_(weight[k], a=math.sqrt(5))
            elif mode == 'kaiming_fan_out':
                nn.init.kaiming_normal_(weight[k], mode='fan_out', nonlinearity='relu')
            else:
                raise ValueError(f'unknown init mode {mode!r}')


def init_bias_(bias: Optional[torch.Tensor], fan_in: int) -> None:
    """``nn.Conv2d``'s bias initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    if bias is not None:
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        nn.init.uniform_(bias, -bound, bound)


class _SafeBatchNormMixin:
    """BatchNorm that uses its running statistics when a training batch has a
    single value per channel (e.g. batch size 1 after global pooling), instead of
    raising ``Expected more than 1 value per channel`` like ``nn.BatchNorm``.
    Running statistics are not updated by such a batch. Larger batches behave
    exactly like the parent class."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.numel() == x.size(1):  # one value per channel
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight,
                                self.bias, False, 0.0, self.eps)
        return super().forward(x)


class SafeBatchNorm1d(_SafeBatchNormMixin, nn.BatchNorm1d):
    """``nn.BatchNorm1d`` that tolerates batch size 1 in training (see mixin)."""


class SafeBatchNorm2d(_SafeBatchNormMixin, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` that tolerates batch size 1 in training (see mixin)."""
