"""TemperatureAnnealHook with per-family schedules (``layer_schedules``):
KernelWarehouse's τ 1 -> 0 next to an ODConv on the default 30 -> 1 in one
model, logging, checkpoint and resume, and the argument errors (Li, Yao,
Chen, "KernelWarehouse: Rethinking the Design of Dynamic Convolution", ICML
2024)."""
import re

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.runner import Runner

from _toys import ToyClassifier, toy_runner_cfg

import mmdyn.models  # noqa: F401  (registrations + safe checkpoint loading)
from mmdyn.engine import TemperatureAnnealHook, annealed_temperature
from mmdyn.ops import KernelWarehouse, KWConv2d, ODConv2d

KW_SCHEDULE = dict(start_temperature=1.0, end_temperature=0.0, anneal_iters=4)
DEFAULT = dict(start_temperature=30.0, end_temperature=1.0, anneal_epochs=1)  # N = 4 iters


class MixedToy(ToyClassifier):
    """Two KW layers sharing one warehouse, then an ODConv, then a linear head."""

    def __init__(self):
        super().__init__()
        self.warehouse = KernelWarehouse()
        self.kw1 = KWConv2d(3, 4, 3, padding=1, warehouse=self.warehouse, warehouse_name='toy')
        self.kw2 = KWConv2d(4, 4, 3, padding=1, warehouse=self.warehouse, warehouse_name='toy')
        self.warehouse.build()
        self.odconv = ODConv2d(4, 4, 3, padding=1, kernel_num=2)
        self.head = nn.Linear(4, 2)

    def features(self, x):
        return self.odconv(self.kw2(self.kw1(x)))


def temperatures(model):
    """``(τ of the KW layers, T of the ODConv)``; the KW layers agree."""
    kw = {model.kw1.temperature, model.kw2.temperature}
    assert len(kw) == 1, kw
    return kw.pop(), model.odconv.temperature


class Recorder(Hook):
    """What the layers hold and the message hub logs before each iteration
    (after the anneal hook: LOW priority)."""
    priority = 'LOW'

    def __init__(self):
        self.start, self.train, self.logged = None, {}, {}

    def before_train(self, runner):
        self.start = (runner.iter, temperatures(runner.model))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.train[runner.iter] = temperatures(runner.model)
        hub = runner.message_hub
        self.logged[runner.iter] = (hub.get_scalar('train/temperature_KW').current(),
                                    hub.get_scalar('train/temperature').current())


def make_runner(work_dir, name, hook, max_iters=6, resume=False, load_from=None):
    recorder = Recorder()
    runner = Runner(model=MixedToy(), **toy_runner_cfg(
        work_dir, max_iters, custom_hooks=[hook, recorder], resume=resume,
        load_from=load_from, experiment_name=name))
    return runner, recorder


def expected(n):
    return (annealed_temperature(n, 4, 1.0, 0.0), annealed_temperature(n, 4, 30.0, 1.0))


def test_kw_and_odconv_follow_their_own_schedules_and_resume(tmp_path):
    hook = dict(type='TemperatureAnnealHook', layer_schedules=dict(KW=KW_SCHEDULE), **DEFAULT)
    runner, rec = make_runner(tmp_path, 'kw_full', hook)
    runner.train()
    want = {n: expected(n) for n in range(6)}
    assert [rec.train[n][0] for n in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    assert rec.train == {n: pytest.approx(v) for n, v in want.items()}
    assert rec.logged == rec.train                    # train/temperature_KW, train/temperature
    log = next(tmp_path.glob('*/*.log')).read_text()             # the LoggerHook's lines
    assert re.findall(r'temperature_KW: ([0-9.]+)', log) == [
        f'{want[n][0]:.4f}' for n in range(6)]

    # the checkpoint carries τ: iter_2 was written after iteration 1 ran with τ(1)
    state = torch.load(tmp_path / 'iter_2.pth', weights_only=True)['state_dict']
    assert float(state['kw1.temperature']) == float(state['kw2.temperature']) == 0.75
    assert float(state['odconv.temperature']) == pytest.approx(expected(1)[1])
    assert sum(k.endswith('cells.toy') for k in state) == 1

    resumed, rrec = make_runner(tmp_path, 'kw_resumed', hook, resume=True,
                                load_from=str(tmp_path / 'iter_2.pth'))
    resumed.train()
    assert rrec.start == (2, rec.train[2])            # the first forward already uses τ(2)
    assert rrec.train == {n: rec.train[n] for n in range(2, 6)}


def test_kw_on_the_default_schedule_fails_with_the_layers_error(tmp_path):
    hook = dict(type='TemperatureAnnealHook', anneal_iters=4)      # 30 -> 1 for every layer
    runner, _ = make_runner(tmp_path, 'kw_default', hook, max_iters=1)
    with pytest.raises(ValueError, match=r'KWConv2d: temperature must be in \[0, 1\], got 30'):
        runner.train()


def test_entry_in_epochs_replaces_the_hooks_length_in_iterations():
    hook = TemperatureAnnealHook(anneal_iters=7, layer_schedules=dict(
        KW=dict(start_temperature=1.0, end_temperature=0.0, anneal_epochs=2),
        ODConv=dict(start_temperature=2.0)))
    kw, od = hook.layer_schedules['KW'], hook.layer_schedules['ODConv']
    assert (kw.anneal_iters, kw.anneal_epochs, kw.by_epoch) == (None, 2, True)
    assert (od.start, od.end, od.anneal_iters) == (2.0, 1.0, 7)   # the rest inherited
    assert hook.schedule_key(MixedToy().kw1) == 'KW'


@pytest.mark.parametrize('schedules, error, match', [
    (dict(KW=dict(start=1.0)), ValueError,
     r"layer_schedules\['KW'\]: unknown key\(s\) \['start'\]; known: start_temperature"),
    (dict(KW=1.0), TypeError, r"layer_schedules\['KW'\]: expected a dict"),
    ([('KW', KW_SCHEDULE)], TypeError, 'layer_schedules must be a dict'),
    (dict(KW=dict(start_temperature=0.0, end_temperature=1.0)), ValueError,
     r"layer_schedules\['KW'\]: start_temperature must be >= end_temperature"),
    (dict(KW=dict(start_temperature=1.0, end_temperature=-0.5)), ValueError,
     r"layer_schedules\['KW'\]: end_temperature must be >= 0"),
    (dict(KW=dict(start_temperature=-1.0, end_temperature=0.0)), ValueError,
     r"layer_schedules\['KW'\]: start_temperature must be >= 0"),
    (dict(KW=dict(anneal_iters=0)), ValueError,
     r"layer_schedules\['KW'\]: anneal_iters must be >= 1"),
    (dict(KW=dict(by_epoch=False)), ValueError,
     r"layer_schedules\['KW'\]: by_epoch=False needs anneal_iters"),
])
def test_layer_schedules_errors(schedules, error, match):
    with pytest.raises(error, match=match):
        TemperatureAnnealHook(layer_schedules=schedules)
