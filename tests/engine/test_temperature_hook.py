"""TemperatureAnnealHook: schedule values in a real Runner, resume, val/test,
DDP unwrapping (single-process gloo on CPU), registry scopes and bad args."""
import socket
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as torch_dist
import torch.nn as nn
from mmengine.config import Config
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.runner import Runner

from _toys import ToyClassifier, ToyDataset, toy_runner_cfg

import mmdyn.models  # noqa: F401  (registrations + safe checkpoint loading)
from mmdyn.engine import (CPUDistributedDataParallel, TemperatureAnnealHook,
                          annealed_temperature, init_cpu_dist_if_needed)
from mmdyn.ops import A2D2CPlusConv2d, DynamicConv2d, ODConv2d

START, END = 30.0, 1.0


class ToyModel(ToyClassifier):
    """Three mmdyn layers with a temperature and a linear head."""

    def __init__(self):
        super().__init__()
        self.a2d2c = A2D2CPlusConv2d(3, 4, 3, padding=1, kernel_num=2, num_points=5)
        self.dyconv = DynamicConv2d(4, 4, 3, padding=1, kernel_num=2)
        self.odconv = ODConv2d(4, 4, 3, padding=1, kernel_num=2)
        self.head = nn.Linear(4, 2)

    def features(self, x):
        return self.odconv(self.dyconv(self.a2d2c(x)))


class CountMetric(BaseMetric):
    def process(self, data_batch, data_samples):
        self.results.append(len(data_samples))

    def compute_metrics(self, results):
        return dict(count=float(sum(results)))


def layer_temperatures(model):
    model = model.module if hasattr(model, 'module') else model
    return [m.temperature for m in (model.a2d2c, model.dyconv, model.odconv)]


class Recorder(Hook):
    """Records the temperature the model really has at each stage (runs after
    the anneal hook: LOW priority)."""
    priority = 'LOW'

    def __init__(self):
        self.train = {}
        self.start = None
        self.val = []
        self.test = []
        self.logged = []

    def _temps(self, runner):
        temps = layer_temperatures(runner.model)
        assert len(set(temps)) == 1, temps  # every layer got the same value
        return temps[0]

    def before_train(self, runner):
        self.start = (runner.iter, self._temps(runner))

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        self.train[runner.iter] = self._temps(runner)
        self.logged.append(runner.message_hub.get_scalar('train/temperature').current())

    def before_val(self, runner):
        self.val.append((runner.iter, self._temps(runner)))

    def before_test(self, runner):
        self.test.append(self._temps(runner))


_COUNTER = [0]


def make_runner(work_dir, max_iters=6, resume=False, load_from=None, hook=None, val=False,
                **kwargs):
    _COUNTER[0] += 1
    recorder = Recorder()
    hook = hook or dict(type='TemperatureAnnealHook', start_temperature=START,
                        end_temperature=END, anneal_epochs=1)
    extra = {}
    if val:
        loader = dict(dataset=ToyDataset(), sampler=dict(type='DefaultSampler', shuffle=False),
                      batch_size=4, num_workers=0, collate_fn=dict(type='default_collate'))
        extra = dict(val_dataloader=loader, val_cfg=dict(type='ValLoop'),
                     val_evaluator=[CountMetric()], test_dataloader=loader,
                     test_cfg=dict(type="TestLoop"), test_evaluator=[CountMetric()])
    runner = Runner(model=ToyModel(), **toy_runner_cfg(
        work_dir, max_iters, train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=3),
        custom_hooks=[hook, recorder], resume=resume, load_from=load_from,
        experiment_name=f'temp_hook_{_COUNTER[0]}', **extra, **kwargs))
    return runner, recorder


def expected(n, total=4):
    return annealed_temperature(n, total, START, END)


def test_schedule_function_values():
    assert annealed_temperature(0, 10, 30.0, 1.0) == 30.0
    assert annealed_temperature(5, 10, 30.0, 1.0) == pytest.approx(15.5)
    assert annealed_temperature(10, 10, 30.0, 1.0) == 1.0
    assert annealed_temperature(25, 10, 30.0, 1.0) == 1.0


def test_values_in_runner_resume_and_val(tmp_path):
    # 8 samples, batch 2 -> 4 iterations per epoch; anneal_epochs=1 -> N = 4.
    runner, rec = make_runner(tmp_path / 'full', max_iters=6, val=True)
    runner.train()
    assert rec.start == (0, START)
    assert rec.train[0] == START
    assert rec.train[2] == pytest.approx(15.5)
    assert rec.train[4] == END and rec.train[5] == END
    assert rec.train == {n: pytest.approx(expected(n)) for n in range(6)}
    assert rec.logged == pytest.approx([expected(n) for n in range(6)])
    # Validation after iteration 3 (runner.iter == 3) and 6 use the current value.
    assert rec.val == [(3, pytest.approx(expected(3))), (6, END)]
    # A model whose layers were set back (e.g. a fresh one) is tested with the
    # final value in a stand-alone test run.
    tester, trec = make_runner(tmp_path / 'test', val=True,
                               load_from=str(tmp_path / 'full' / 'iter_6.pth'))
    tester.test()
    assert trec.test == [END]
    assert layer_temperatures(tester.model) == [END] * 3

    # Resume from iter_2: the first forward already uses T(2), then the same values.
    resumed, rrec = make_runner(tmp_path / 'full', max_iters=6, resume=True,
                                load_from=str(tmp_path / 'full' / 'iter_2.pth'))
    resumed.train()
    assert rrec.start == (2, pytest.approx(15.5))
    assert rrec.train == {n: rec.train[n] for n in range(2, 6)}


def test_standalone_test_keeps_the_checkpoint_temperature(tmp_path):
    """A checkpoint written mid-annealing is tested with its own temperature, not
    the hook's end value; a legacy checkpoint (no temperature entries) gets the
    end value with a warning."""
    runner, _ = make_runner(tmp_path / 'train', max_iters=2, val=True)
    runner.train()
    ckpt = tmp_path / 'train' / 'iter_2.pth'
    saved = torch.load(ckpt, weights_only=True)['state_dict']
    # iter_2 is saved after iteration 1 ran with T(1); the hook's value for runner.iter 2
    # was not applied by a forward, the layers hold T(1) when the checkpoint is written.
    stored = [float(saved[f'{name}.temperature']) for name in ('a2d2c', 'dyconv', 'odconv')]
    assert len(set(stored)) == 1 and stored[0] not in (START, END)
    tester, trec = make_runner(tmp_path / 'test', val=True, load_from=str(ckpt))
    tester.test()
    assert trec.test == [stored[0]]
    assert layer_temperatures(tester.model) == stored

    legacy = torch.load(ckpt, weights_only=True)
    legacy['state_dict'] = {k: v for k, v in legacy['state_dict'].items()
                            if not k.endswith('temperature')}
    torch.save(legacy, tmp_path / 'legacy.pth')
    old, orec = make_runner(tmp_path / 'old', val=True, load_from=str(tmp_path / 'legacy.pth'))
    with pytest.warns(UserWarning, match='no attention temperature'):
        old.test()
    assert orec.test == [END]


def test_anneal_iters_for_iteration_loops(tmp_path):
    hook = dict(type='TemperatureAnnealHook', start_temperature=10.0, end_temperature=2.0,
                anneal_iters=2)
    runner, rec = make_runner(tmp_path, max_iters=3, hook=hook)
    runner.train()
    assert rec.train == {0: 10.0, 1: 6.0, 2: 2.0}


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_unwraps_real_cpu_ddp(tmp_path, monkeypatch):
    """Single-process gloo DDP on CPU through the CPU wrapper: the hook reaches
    the wrapped module's layers."""
    if torch.cuda.is_available():
        pytest.skip('the CPU gloo path is only taken without CUDA')
    for key, value in dict(RANK='0', WORLD_SIZE='1', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1',
                           MASTER_PORT=str(_free_port())).items():
        monkeypatch.setenv(key, value)
    cfg = dict(env_cfg={})
    try:
        assert init_cpu_dist_if_needed('pytorch', cfg) is True
        assert cfg['env_cfg']['dist_cfg']['backend'] == 'gloo'
        assert torch_dist.get_backend() == 'gloo'
        runner, rec = make_runner(tmp_path, max_iters=3, launcher='pytorch',
                                  cfg=Config(dict(model_wrapper_cfg=dict(
                                      type='CPUDistributedDataParallel'))),
                                  env_cfg=cfg['env_cfg'])
        runner.train()
        assert isinstance(runner.model, CPUDistributedDataParallel)
        assert runner.model.device_ids is None
        assert rec.train == {n: pytest.approx(expected(n)) for n in range(3)}
        assert layer_temperatures(runner.model) == [pytest.approx(expected(2))] * 3
    finally:
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()


def test_init_cpu_dist_noop_and_errors(monkeypatch):
    assert init_cpu_dist_if_needed('none') is False
    with pytest.raises(ValueError, match='unknown launcher'):
        init_cpu_dist_if_needed('torchrun')
    if not torch.cuda.is_available():
        monkeypatch.delenv('MASTER_PORT', raising=False)
        monkeypatch.delenv('RANK', raising=False)
        with pytest.raises(RuntimeError, match='RANK.*missing'):
            init_cpu_dist_if_needed('pytorch')


@pytest.mark.parametrize('scope', ['mmdet', 'mmpretrain'])
def test_registered_under_both_scopes(scope):
    from mmengine.registry import DefaultScope
    registry = __import__(f'{scope}.registry', fromlist=['HOOKS']).HOOKS
    with DefaultScope.overwrite_default_scope(scope):
        hook = registry.build(dict(type='TemperatureAnnealHook', anneal_iters=5))
    assert isinstance(hook, TemperatureAnnealHook) and hook.anneal_iters == 5


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(start_temperature=0.0), ValueError, 'start_temperature must be a finite number > 0'),
    (dict(end_temperature=-1.0), ValueError, 'end_temperature must be a finite number > 0'),
    (dict(start_temperature=float('inf')), ValueError, 'finite'),
    (dict(start_temperature='30'), TypeError, 'start_temperature must be a number'),
    (dict(start_temperature=1.0, end_temperature=5.0), ValueError,
     'start_temperature must be >= end_temperature'),
    (dict(anneal_epochs=0), ValueError, 'anneal_epochs must be >= 1'),
    (dict(anneal_iters=0), ValueError, 'anneal_iters must be >= 1'),
    (dict(anneal_iters=2.5), TypeError, 'anneal_iters must be an int'),
    (dict(by_epoch=False), ValueError, 'by_epoch=False needs anneal_iters'),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        TemperatureAnnealHook(**kwargs)


def test_by_epoch_needs_dataloader_length():
    hook = TemperatureAnnealHook(anneal_epochs=2)
    runner = SimpleNamespace(train_dataloader=(x for x in range(3)), iter=0)
    with pytest.raises(TypeError, match='has no len.*anneal_iters'):
        hook.temperature_at(runner, 0)
