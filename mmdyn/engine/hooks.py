"""MMEngine hooks of mmdyn.

:class:`TemperatureAnnealHook` anneals the attention temperature of every
mmdyn layer that has one (A2D2C, A2D2C+, ODConv, DynamicConv) with the
per-iteration linear schedule of the ODConv / DynamicConv papers::

    T(n) = end + max(0, (start - end) * (N - n) / N)

where ``n`` is the global training iteration (``runner.iter``; resuming from a
checkpoint therefore gives the same value as an uninterrupted run) and ``N``
is the length of the annealing phase in iterations.

The hook is registered in MMEngine's *root* ``HOOKS`` registry, so one class
serves ``default_scope='mmdet'`` and ``default_scope='mmpretrain'`` alike::

    custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)
    custom_hooks = [dict(type='TemperatureAnnealHook', start_temperature=30.0,
                         end_temperature=1.0, anneal_epochs=10)]

A layer family with another kind of temperature gets its own schedule through
``layer_schedules``, keyed by its registered alias or class name, e.g.
KernelWarehouse's mixing temperature τ, 1 -> 0 (Li, Yao, ICML 2024)::

    custom_hooks = [dict(type='TemperatureAnnealHook', layer_schedules=dict(
        KW=dict(start_temperature=1.0, end_temperature=0.0, anneal_epochs=20)))]
"""
from typing import Callable, Dict, List, Optional, Union

import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.runner.base_loop import BaseLoop

from mmdyn.utils.validation import check_number, check_positive_int, check_positive_number
from mmdyn.utils.state_dict import unwrap_model


def find_hook_cfg(cfg, name: str) -> Optional[dict]:
    """The first entry of ``cfg.custom_hooks`` whose ``type`` is ``name`` (a
    registry name, possibly scoped like ``'mmdyn.X'``, or the class itself), or
    ``None``."""
    for hook in cfg.get('custom_hooks') or []:
        kind = hook.get('type') if isinstance(hook, dict) else None
        kind = kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))
        if kind.split('.')[-1] == name:
            return hook
    return None


def annealed_temperature(n: int, total: int, start: float, end: float) -> float:
    """Temperature of the linear schedule at iteration ``n``.

    Args:
        n: Global iteration (0-based, ``runner.iter``).
        total: Length ``N`` of the annealing phase in iterations (> 0).
        start: Temperature at ``n = 0``.
        end: Temperature for ``n >= N``.

    Returns:
        ``end + max(0, (start - end) * (N - n) / N)``.
    """
    if total <= 0:
        raise ValueError(f'the annealing length must be > 0 iterations, got {total}')
    return end + max(0.0, (start - end) * (total - n) / total)


def set_model_temperature(model: nn.Module, temperature: float) -> int:
    """Call ``set_temperature(temperature)`` on every submodule that has it.

    Model wrappers (DDP and the like) are unwrapped first.

    Args:
        model: The model, possibly wrapped.
        temperature: The value to set.

    Returns:
        How many modules were updated.
    """
    count = 0
    for module in unwrap_model(model).modules():
        setter = getattr(module, 'set_temperature', None)
        if callable(setter):
            setter(temperature)
            count += 1
    return count


def model_temperatures(model: nn.Module) -> List[float]:
    """The temperatures of every mmdyn layer of ``model`` (wrappers unwrapped),
    in module order."""
    return [m.temperature for m in unwrap_model(model).modules()
            if callable(getattr(m, 'set_temperature', None))]


def apply_legacy_temperature(model: nn.Module,
                             temperature: Union[float, Callable[[nn.Module], float]]) -> int:
    """Set ``temperature`` (a value, or a function of the layer) on the layers
    whose last ``load_state_dict`` found no stored temperature (checkpoints
    written before mmdyn stored it).

    Returns:
        How many layers were set.
    """
    count = 0
    for module in unwrap_model(model).modules():
        if getattr(module, 'temperature_from_checkpoint', None) is False:
            module.set_temperature(temperature(module) if callable(temperature)
                                   else temperature)
            module.__dict__['temperature_from_checkpoint'] = False  # still a legacy value
            count += 1
    return count


_OWNER = 'TemperatureAnnealHook'  # the prefix of its argument errors


def layer_schedule_keys(module: nn.Module) -> List[str]:
    """The names a ``layer_schedules`` entry may use for ``module``: its class
    name and, for a registered mmdyn layer, its alias (``'KW'``, ``'ODConv'``)."""
    from mmdyn.ops import LAYERS, MODULES
    keys = [type(module).__name__]
    keys += [alias for table in (LAYERS, MODULES) for alias, cls in table.items()
             if cls is type(module)]
    return keys


class _Schedule:
    """One linear schedule ``start -> end`` over ``anneal_epochs`` epochs or
    ``anneal_iters`` iterations (validated; the arguments of the hook)."""

    def __init__(self, start_temperature: float, end_temperature: float, anneal_epochs: int,
                 by_epoch: bool, anneal_iters: Optional[int], owner: str,
                 allow_zero: bool = False):
        check = (lambda name, value: check_number(name, value, low=0.0, owner=owner)) \
            if allow_zero else (lambda name, value: check_positive_number(name, value,
                                                                           owner=owner))
        self.start = check('start_temperature', start_temperature)
        self.end = check('end_temperature', end_temperature)
        if self.start < self.end:
            raise ValueError(
                f'{owner}: start_temperature must be >= end_temperature (the temperature is '
                f'annealed downwards), got start={start_temperature}, end={end_temperature}')
        self.anneal_iters = (None if anneal_iters is None
                             else check_positive_int('anneal_iters', anneal_iters, owner=owner))
        if anneal_iters is None and not by_epoch:
            raise ValueError(f'{owner}: by_epoch=False needs anneal_iters (the annealing '
                             'length in iterations)')
        self.anneal_epochs = check_positive_int('anneal_epochs', anneal_epochs, owner=owner)
        self.by_epoch = bool(by_epoch) and anneal_iters is None

    def total_iters(self, runner) -> int:
        """The annealing length ``N`` in iterations for ``runner``.

        Raises:
            TypeError: ``by_epoch`` is set but the train dataloader has no length.
        """
        if self.anneal_iters is not None:
            return self.anneal_iters
        dataloader = runner.train_dataloader
        try:
            iters_per_epoch = len(dataloader)
        except TypeError:
            raise TypeError(
                'TemperatureAnnealHook(by_epoch=True) needs the length of the train '
                f'dataloader to convert anneal_epochs={self.anneal_epochs} into '
                f'iterations, but {type(dataloader).__name__} has no len(); pass '
                'anneal_iters instead') from None
        if iters_per_epoch <= 0:
            raise ValueError('TemperatureAnnealHook: the train dataloader is empty, '
                             'cannot derive the annealing length from anneal_epochs')
        return self.anneal_epochs * iters_per_epoch

    def at(self, runner, n: int) -> float:
        return annealed_temperature(n, self.total_iters(runner), self.start, self.end)


@HOOKS.register_module()
class TemperatureAnnealHook(Hook):
    """Linearly anneal the attention temperature of mmdyn layers.

    Before every training iteration ``n`` (``runner.iter``) every submodule
    with a ``set_temperature`` method gets
    ``T = end + max(0, (start - end) * (N - n) / N)``. The value is also set
    in ``before_train`` (so the first forward after a resume already uses the
    resumed value) and, inside a training run, in ``before_val`` with the value
    of the current iteration. The temperature is part of every layer's state
    dict, so a checkpoint carries it: a stand-alone validation/test run (no
    training loop built, e.g. ``tools/test.py``, ``Runner.from_cfg().test()``)
    keeps the temperature the checkpoint holds, exactly what mmdet's
    ``init_detector`` or mmpretrain's inferencers use. Only layers loaded from
    a checkpoint written before mmdyn stored the temperature (they warn) get
    ``end_temperature`` there, as earlier versions of this hook did. The
    current value is logged as ``train/temperature`` through the message hub.

    Args:
        start_temperature: Temperature at iteration 0. Default: 30.0.
        end_temperature: Temperature from iteration ``N`` on. Default: 1.0.
        anneal_epochs: Length of the annealing phase in epochs; ``N`` is
            ``anneal_epochs * len(train_dataloader)``. Used when
            ``anneal_iters`` is None. Default: 10.
        by_epoch: Measure the annealing length in epochs (needs a train
            dataloader with a length). ``False`` requires ``anneal_iters``.
            Default: True.
        anneal_iters: Length of the annealing phase in iterations; when
            given it takes precedence over ``anneal_epochs``/``by_epoch``
            (use it with ``IterBasedTrainLoop``). Default: None.
        layer_schedules: Schedules of their own for some layer families,
            ``{alias or class name: dict(start_temperature=..., end_temperature=...,
            anneal_epochs=..., by_epoch=..., anneal_iters=...)}`` (missing keys
            take the values above, except that an entry's ``anneal_epochs``
            without ``anneal_iters`` is a length in epochs even when the hook's
            own length is ``anneal_iters``; a temperature may be 0 here, the
            layer validates its own range). E.g. KernelWarehouse's τ:
            ``dict(KW=dict(start_temperature=1.0, end_temperature=0.0,
            anneal_epochs=20))``. Logged as ``train/temperature_<key>``.
            Default: None.

    Raises:
        ValueError / TypeError: A temperature is not a finite number > 0 (>= 0
            in ``layer_schedules``), ``start_temperature < end_temperature``,
            the annealing length is not a positive int, or a
            ``layer_schedules`` entry has an unknown key.
    """

    priority = 'NORMAL'

    def __init__(self, start_temperature: float = 30.0, end_temperature: float = 1.0,
                 anneal_epochs: int = 10, by_epoch: bool = True,
                 anneal_iters: Optional[int] = None,
                 layer_schedules: Optional[Dict[str, dict]] = None):
        self._default = _Schedule(start_temperature, end_temperature, anneal_epochs, by_epoch,
                                  anneal_iters, _OWNER)
        self.start_temperature, self.end_temperature = self._default.start, self._default.end
        self.anneal_iters, self.anneal_epochs = self._default.anneal_iters, anneal_epochs
        self.by_epoch = self._default.by_epoch
        self.layer_schedules: Dict[str, _Schedule] = {}
        known = ('start_temperature', 'end_temperature', 'anneal_epochs', 'by_epoch',
                 'anneal_iters')
        if not isinstance(layer_schedules or {}, dict):
            raise TypeError(f'{_OWNER}: layer_schedules must be a dict {{layer alias or class '
                            f'name: schedule dict}}, got {layer_schedules!r}')
        for key, spec in (layer_schedules or {}).items():
            owner = f'{_OWNER}.layer_schedules[{key!r}]'
            if not isinstance(spec, dict):
                raise TypeError(f'{owner}: expected a dict with keys from {known}, got '
                                f'{spec!r}')
            unknown = sorted(set(spec) - set(known))
            if unknown:
                raise ValueError(f'{owner}: unknown key(s) {unknown}; known: '
                                 f'{", ".join(known)}')
            args = dict(start_temperature=start_temperature, end_temperature=end_temperature,
                        anneal_epochs=anneal_epochs, by_epoch=by_epoch,
                        anneal_iters=anneal_iters)
            if 'anneal_epochs' in spec and 'anneal_iters' not in spec:
                args.update(anneal_iters=None, by_epoch=True)  # its own length, in epochs
            args.update(spec)
            self.layer_schedules[key] = _Schedule(owner=owner, allow_zero=True, **args)
        self._keys: Dict[type, Optional[str]] = {}  # schedule_key by layer class
        self._warned_no_layers = False
        self.current_temperature: Optional[float] = None

    # ----------------------------------------------------------------- schedule
    def schedule_key(self, module: nn.Module) -> Optional[str]:
        """The ``layer_schedules`` key that applies to ``module`` (None: default);
        looked up once per layer class (it is asked every iteration)."""
        cls = type(module)
        if cls not in self._keys:
            self._keys[cls] = next((key for key in layer_schedule_keys(module)
                                    if key in self.layer_schedules), None)
        return self._keys[cls]

    def _schedule_of(self, module: nn.Module) -> '_Schedule':
        key = self.schedule_key(module)
        return self._default if key is None else self.layer_schedules[key]

    def end_temperature_of(self, module: nn.Module) -> float:
        """The end value of the schedule that applies to ``module``."""
        return self._schedule_of(module).end

    def total_iters(self, runner) -> int:
        """The default schedule's annealing length ``N`` in iterations for ``runner``.

        Raises:
            TypeError: ``by_epoch`` is set but the train dataloader has no length.
        """
        return self._default.total_iters(runner)

    def temperature_at(self, runner, n: int) -> float:
        """Default-schedule temperature for global iteration ``n`` of ``runner``."""
        return self._default.at(runner, n)

    def _apply(self, runner, n: int) -> None:
        values: Dict[Optional[str], float] = {}
        count = 0
        for module in unwrap_model(runner.model).modules():
            setter = getattr(module, 'set_temperature', None)
            if not callable(setter):
                continue
            key = self.schedule_key(module)
            if key not in values:
                values[key] = self._schedule_of(module).at(runner, n)
            setter(values[key])
            count += 1
        if count == 0 and not self._warned_no_layers:
            runner.logger.warning('TemperatureAnnealHook: the model has no module with '
                                  'set_temperature(); the hook does nothing')
            self._warned_no_layers = True
        self.current_temperature = values[None] if None in values \
            else self.temperature_at(runner, n)
        runner.message_hub.update_scalar('train/temperature', self.current_temperature)
        for key, value in values.items():
            if key is not None:
                runner.message_hub.update_scalar(f'train/temperature_{key}', value)

    @staticmethod
    def _training(runner) -> bool:
        """True when the runner's training loop has been built (training run)."""
        return isinstance(getattr(runner, '_train_loop', None), BaseLoop)

    # -------------------------------------------------------------------- hooks
    def before_train(self, runner) -> None:
        """Set the temperature of the (possibly resumed) current iteration."""
        self._apply(runner, runner.iter)

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        """Set the temperature of iteration ``runner.iter`` before its forward."""
        self._apply(runner, runner.iter)

    def _before_eval(self, runner) -> None:
        if self._training(runner):
            self._apply(runner, runner.iter)
            return
        count = apply_legacy_temperature(runner.model, self.end_temperature_of)
        if count:
            runner.logger.warning(
                f'TemperatureAnnealHook: {count} layer(s) were loaded from a checkpoint '
                f'without a stored temperature; evaluating them with the end temperature '
                f'of their schedule (end_temperature={self.end_temperature:g})')
        temperatures = model_temperatures(runner.model)
        if temperatures:
            self.current_temperature = temperatures[0]
            runner.message_hub.update_scalar('train/temperature', temperatures[0])

    def before_val(self, runner) -> None:
        """Inside training: the current iteration's value. Stand-alone: keep the
        checkpoint's temperature (see the class docstring)."""
        self._before_eval(runner)

    def before_test(self, runner) -> None:
        """Inside training: the current iteration's value. Stand-alone: keep the
        checkpoint's temperature (see the class docstring)."""
        self._before_eval(runner)


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """A terminal progress bar over the training iterations (tqdm, stderr).

    Shows ``iteration/max_iters``, the ETA and the latest loss; starts at
    ``runner.iter`` so a resumed run continues the bar. Logging is unchanged.

    Args:
        loss_key: Message-hub scalar shown beside the bar. Default: 'train/loss'.
    """

    priority = 'VERY_LOW'

    def __init__(self, loss_key: str = 'train/loss'):
        self.loss_key = loss_key
        self.bar = None

    def before_train(self, runner) -> None:
        from tqdm import tqdm
        self.bar = tqdm(total=runner.max_iters, initial=runner.iter, desc='train',
                        unit='it', dynamic_ncols=True)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        if self.bar is None:
            return
        scalars = runner.message_hub.log_scalars
        if self.loss_key in scalars:
            self.bar.set_postfix(loss=f'{scalars[self.loss_key].current():.3f}',
                                 refresh=False)
        self.bar.update(1)

    def after_train(self, runner) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@HOOKS.register_module()
class ClassCountsHook(Hook):
    """Give class-balanced losses the class counts of the training set.

    Before training, every submodule with a ``set_class_counts`` method (e.g.
    :class:`~mmdyn.models.losses.AdaptiveLoss`) receives ``n_c``, the number
    of samples of each class in ``runner.train_dataloader.dataset`` (dataset
    wrappers are unwrapped; the labels come from ``get_gt_labels()``). The
    number of classes is the dataset's ``metainfo['classes']`` length (or the
    largest label + 1). The losses store the derived weights in a buffer, so
    a checkpoint carries them to ``tools/test.py``.

    Args:
        override (bool): Also replace counts a loss already has (from the
            config or a resumed checkpoint). Default: False.

    Raises:
        RuntimeError: The hook is in a config without a class-balanced loss,
            or the dataset has no labels to count.
    """

    priority = 'NORMAL'

    def __init__(self, override: bool = False):
        if not isinstance(override, bool):
            raise TypeError(f'ClassCountsHook: override must be a bool, got {override!r}')
        self.override = override

    def before_train(self, runner) -> None:
        from mmdyn.datasets import class_counts
        model = unwrap_model(runner.model)
        losses = [m for m in model.modules() if hasattr(m, 'set_class_counts')]
        if not losses:
            raise RuntimeError('ClassCountsHook: the model has no loss with set_class_counts '
                               "(e.g. loss=dict(type='AdaptiveLoss')); remove the hook")
        dataset = runner.train_dataloader.dataset
        num_classes = getattr(getattr(model, 'head', None), 'num_classes', None)
        has_names = (getattr(dataset, 'metainfo', None) or {}).get('classes') is not None
        counts = class_counts(dataset, None if has_names else num_classes)
        if num_classes is not None and num_classes != len(counts):
            raise RuntimeError(f'ClassCountsHook: the training set has {len(counts)} classes '
                               f'but the head predicts num_classes={num_classes}')
        updated = 0
        for loss in losses:
            if self.override or not getattr(loss, 'has_class_counts', False):
                loss.set_class_counts(counts)
                updated += 1
        runner.logger.info(f'ClassCountsHook: {len(counts)} classes, counts min/max '
                           f'{min(counts)}/{max(counts)}, set on {updated} loss module(s)')
