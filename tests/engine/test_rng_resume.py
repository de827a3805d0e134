"""RNGStateHook: RNG states of every rank in the checkpoint, exact resume with
A2D2C+'s default random sampling after a SIGKILL (1 process and 2 gloo
processes), the weights-only loader reads the states, and the restore point
of the iteration-based loop."""
import os
import os.path as osp
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from _runs import losses
from mmdyn.engine import get_rng_state, load_checkpoint_file, set_rng_state
from mmdyn.engine.rng import _RestoreBeforeFetch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))

MAX_ITERS, INTERVAL, KILL_AFTER = 8, 4, 6

# Tiny A2D2C+ classifier, random point sampling (the default), random flips in
# the pipeline (NumPy RNG), 4 iterations per epoch (the resume crosses an epoch),
# a checkpoint and a validation at iteration 4 (validation right after the
# checkpoint runs only in the uninterrupted run), raw per-iteration losses in
# the log (window_size=1).
CONFIG = """
default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmdyn.models', 'rng_test_hooks'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet_CIFAR', depth=18, num_stages=2, strides=(1, 2), dilations=(1, 1),
        out_indices=(1, ), stem_channels=8, base_channels=8,
        conv_cfg=dict(type='A2D2CPlus', kernel_num=2, num_points=8, sampling='random')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=2, in_channels=16,
              loss=dict(type='CrossEntropyLoss', loss_weight=1.0), topk=(1, )))
data_preprocessor = dict(num_classes=2, mean=[127.5] * 3, std=[64.0] * 3, to_rgb=True)
train_pipeline = [dict(type='LoadImageFromFile'),
                  dict(type='RandomFlip', prob=0.5, direction='horizontal'),
                  dict(type='PackInputs')]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(batch_size=BATCH, num_workers=0,
                        dataset=dict(type='CustomDataset', data_root='DATA',
                                     pipeline=train_pipeline),
                        sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(batch_size=8, num_workers=0,
                      dataset=dict(type='CustomDataset', data_root='DATA',
                                   pipeline=test_pipeline),
                      sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9))
train_cfg = dict(by_epoch=False, max_iters=MAX_ITERS, val_interval=INTERVAL)
val_cfg = dict()
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=1),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', interval=INTERVAL, by_epoch=False),
    sampler_seed=dict(type='DistSamplerSeedHook'))
custom_hooks = [dict(type='KillAfterIterHook')]
log_processor = dict(window_size=1)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'),
               dist_cfg=dict(backend='nccl'))
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
randomness = dict(seed=0, diff_rank_seed=DIFF_RANK_SEED)
"""


def env(kill_after=None):
    out = dict(os.environ)
    out['PYTHONPATH'] = os.pathsep.join([REPO, HERE])
    out['OMP_NUM_THREADS'] = '1'
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT',
                'MMDYN_TEST_KILL_AFTER_ITER'):
        out.pop(key, None)
    if kill_after is not None:
        out['MMDYN_TEST_KILL_AFTER_ITER'] = str(kill_after)
    return out


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def train(config, work_dir, *extra, procs=1, kill_after=None, timeout=300):
    """Run tools/train.py (1 process) or tools/dist_train.sh (``procs``)."""
    e = env(kill_after)
    if procs == 1:
        cmd = [sys.executable, 'tools/train.py', config, '--work-dir', str(work_dir), *extra]
    else:
        e['PORT'] = str(free_port())
        cmd = ['bash', 'tools/dist_train.sh', config, str(procs), '--work-dir', str(work_dir),
               *extra]
    proc = subprocess.run(cmd, cwd=REPO, env=e, capture_output=True, text=True,
                          timeout=timeout)
    if kill_after is None:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    else:  # killed by SIGKILL (torchrun reports the failed ranks with a non-zero status)
        assert proc.returncode != 0, 'the run was not interrupted'
    return proc


def make_config(tmp, batch, diff_rank_seed=False):
    data = tmp / 'data'
    rng = np.random.default_rng(0)
    for c, name in enumerate(('a', 'b')):
        os.makedirs(data / name, exist_ok=True)
        for i in range(8):
            img = rng.integers(0, 128, (16, 16, 3), dtype=np.uint8) + 100 * c
            Image.fromarray(img.astype(np.uint8)).save(data / name / f'{i}.png')
    text = (CONFIG.replace('DATA', str(data)).replace('BATCH', str(batch))
            .replace('MAX_ITERS', str(MAX_ITERS)).replace('INTERVAL', str(INTERVAL))
            .replace('DIFF_RANK_SEED', str(diff_rank_seed)))
    path = tmp / 'rng_cls.py'
    path.write_text(text)
    return str(path)


def compare(full, resumed, start):
    """Max |difference| of the losses logged after the resume point."""
    iters = list(range(start + 1, MAX_ITERS + 1))
    assert sorted(resumed) == iters, resumed
    return max(abs(full[i] - resumed[i]) for i in iters)


# ------------------------------------------------------------------ unit level
def _draws():
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(), np.random.randn(1).tolist(),
            [random.random() for _ in range(3)], random.gauss(0, 1))


def test_state_round_trip_through_a_weights_only_checkpoint(tmp_path):
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    np.random.randn()  # a cached Gaussian in NumPy's state
    state = get_rng_state()
    expected = _draws()
    path = tmp_path / 'ckpt.pth'
    torch.save(dict(meta=dict(iter=1), rng_states=dict(world_size=1, states=[state])), path)
    loaded = load_checkpoint_file(str(path))['rng_states']   # weights_only=True
    assert loaded['world_size'] == 1
    _draws()
    assert set_rng_state(loaded['states'][0]) == []
    assert _draws() == expected


def test_restore_before_fetch_skips_then_restores_once():
    calls = []
    wrapped = _RestoreBeforeFetch(iter(range(10)), 3, lambda: calls.append(len(seen)))
    seen = []
    for _ in range(6):
        seen.append(next(wrapped))
    assert seen == [0, 1, 2, 3, 4, 5]
    assert calls == [3]  # once, right before the 4th batch was fetched


# ------------------------------------------------------------- end to end
@pytest.fixture(scope='module')
def single(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('rng1')
    config = make_config(tmp, batch=4)
    full = tmp / 'full'
    train(config, full)
    work = tmp / 'killed'
    killed = train(config, work, kill_after=KILL_AFTER)
    return dict(tmp=tmp, config=config, full=full, work=work, killed=killed)


def test_checkpoint_holds_the_states(single):
    ckpt = load_checkpoint_file(str(single['full'] / f'iter_{INTERVAL}.pth'))
    entry = ckpt['rng_states']
    assert entry['world_size'] == 1 and len(entry['states']) == 1
    assert set(entry['states'][0]) >= {'torch', 'numpy', 'python'}


def test_sigkill_and_resume_gives_the_same_losses(single):
    full = losses(single['full'])
    assert sorted(full) == list(range(1, MAX_ITERS + 1))
    before = losses(single['work'])
    assert sorted(before) == list(range(1, KILL_AFTER + 1))   # killed after iteration 6
    assert not (single['work'] / f'iter_{MAX_ITERS}.pth').exists()
    proc = train(single['config'], single['work'], '--resume')   # latest: iter_4.pth
    out = proc.stdout + proc.stderr
    assert f'resumed epoch: 0, iter: {INTERVAL}' in out
    assert 'RNGStateHook: the RNG states of 1 rank(s) are restored' in out
    diff = compare(full, losses(single['work']), INTERVAL)
    print(f'single process: max |loss difference| after resume with RNG states: {diff:.3g}')
    assert diff <= 1e-7
    final = torch.load(single['work'] / f'iter_{MAX_ITERS}.pth', weights_only=True)
    reference = torch.load(single['full'] / f'iter_{MAX_ITERS}.pth', weights_only=True)
    for key, value in reference['state_dict'].items():
        assert torch.equal(final['state_dict'][key], value), key


def test_without_states_the_resume_drifts(single):
    """The control: the same checkpoint without its RNG states resumes with a
    warning and different losses (what happened before RNGStateHook)."""
    ckpt = load_checkpoint_file(str(single['work'] / f'iter_{INTERVAL}.pth'))
    del ckpt['rng_states']
    stripped = single['tmp'] / 'no_states.pth'
    torch.save(ckpt, stripped)
    work = single['tmp'] / 'no_states'
    proc = train(single['config'], work, '--resume', str(stripped))
    assert 'holds no RNG states' in proc.stdout + proc.stderr
    diff = compare(losses(single['full']), losses(work), INTERVAL)
    print(f'single process: max |loss difference| after resume without RNG states: {diff:.3g}')
    assert diff > 1e-6


@pytest.mark.skipif(torch.cuda.is_available(), reason='tests the CPU/gloo path')
def test_two_process_sigkill_and_resume(tmp_path):
    """2 gloo processes with a different seed per rank (so the ranks' states
    differ and each must get its own back). About 50 s: 3 two-process runs."""
    config = make_config(tmp_path, batch=2, diff_rank_seed=True)
    full = tmp_path / 'full'
    train(config, full, procs=2)
    work = tmp_path / 'killed'
    train(config, work, procs=2, kill_after=KILL_AFTER)
    entry = load_checkpoint_file(str(work / f'iter_{INTERVAL}.pth'))['rng_states']
    assert entry['world_size'] == 2
    assert not torch.equal(entry['states'][0]['torch'], entry['states'][1]['torch'])
    proc = train(config, work, '--resume', procs=2)
    assert 'RNGStateHook: the RNG states of 2 rank(s) are restored' in proc.stdout + proc.stderr
    diff = compare(losses(full), losses(work), INTERVAL)
    print(f'2 processes: max |loss difference| after resume with RNG states: {diff:.3g}')
    assert diff <= 1e-7
    final = torch.load(work / f'iter_{MAX_ITERS}.pth', weights_only=True)['state_dict']
    reference = torch.load(full / f'iter_{MAX_ITERS}.pth', weights_only=True)['state_dict']
    for key, value in reference.items():
        assert torch.equal(final[key], value), key


class _Logger:
    def __init__(self):
        self.lines = []

    def warning(self, msg):
        self.lines.append(('warning', msg))

    def info(self, msg):
        self.lines.append(('info', msg))


def _fake_runner(iter_, epoch=0, loop=None):
    from types import SimpleNamespace
    return SimpleNamespace(iter=iter_, epoch=epoch, logger=_Logger(),
                           train_loop=loop or SimpleNamespace(), hooks=[])


def test_other_world_size_warns_and_does_not_restore():
    """A checkpoint of 2 ranks resumed by 1 process: one warning line, no restore."""
    from mmdyn.engine import RNGStateHook
    hook = RNGStateHook()
    state = get_rng_state()
    hook.after_load_checkpoint(None, dict(meta=dict(iter=4, epoch=0),
                                          rng_states=dict(world_size=2, states=[state, state])))
    runner = _fake_runner(4)
    expected = torch.rand(2)        # what the generator gives when nothing is restored
    set_rng_state(state)
    hook.before_train(runner)
    assert torch.equal(torch.rand(2), expected)
    assert runner.logger.lines == [(
        'warning', "RNGStateHook: the checkpoint's RNG states are of 2 rank(s), this run has "
        '1; RNG states not restored (the resumed run is not bit-exact)')]


def test_load_from_is_not_a_resume_and_restore_waits_for_the_skipped_batches():
    from types import SimpleNamespace

    from mmdyn.engine import RNGStateHook
    state = get_rng_state()
    expected = torch.rand(3)
    ckpt = dict(meta=dict(iter=4, epoch=0), rng_states=dict(world_size=1, states=[state]))
    # load_from: the new run starts at iteration 0 -> nothing restored, nothing said.
    hook = RNGStateHook()
    hook.after_load_checkpoint(None, ckpt)
    runner = _fake_runner(0)
    hook.before_train(runner)
    assert runner.logger.lines == [] and not torch.equal(torch.rand(3), expected)
    # resume at iteration 4 of an iteration-based loop: restored before batch 5.
    loop = SimpleNamespace(dataloader_iterator=iter(range(100)))
    hook.after_load_checkpoint(None, ckpt)
    runner = _fake_runner(4, loop=loop)
    hook.before_train(runner)
    assert 'restored before batch 5 is fetched' in runner.logger.lines[-1][1]
    for _ in range(4):           # the batches the loop skips may draw random numbers
        next(loop.dataloader_iterator)
        torch.rand(5)
    assert next(loop.dataloader_iterator) == 4
    assert torch.equal(torch.rand(3), expected)


def test_validation_inside_training_leaves_the_generators_alone():
    from types import SimpleNamespace

    from mmengine.runner.base_loop import BaseLoop

    from mmdyn.engine import RNGStateHook

    class Loop(BaseLoop):
        def run(self):
            pass

    hook = RNGStateHook()
    loop = Loop.__new__(Loop)
    runner = SimpleNamespace(_train_loop=loop)
    expected = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    hook.before_val(runner)
    torch.rand(10), np.random.rand(10), random.random()   # what validation may draw
    hook.after_val(runner)
    assert torch.equal(torch.get_rng_state(), expected[0])
    assert np.array_equal(np.random.get_state()[1], expected[1])
    assert random.getstate() == expected[2]
    # a stand-alone validation (no training loop): untouched by the hook
    runner = SimpleNamespace(_train_loop=dict(type='IterBasedTrainLoop'))
    hook.before_val(runner)
    torch.rand(10)
    hook.after_val(runner)
    assert not torch.equal(torch.get_rng_state(), expected[0])


@pytest.mark.parametrize('iter_, due', [(3, True), (7, True), (2, False), (5, False)])
def test_checkpoint_due_follows_the_checkpoint_hooks(iter_, due):
    """Distributed runs gather the states only where a CheckpointHook saves
    (interval 4 -> after iterations 4 and 8; the last one, 10, with save_last)."""
    from mmengine.hooks import CheckpointHook

    from mmdyn.engine import RNGStateHook
    runner = _fake_runner(iter_)
    runner.max_iters = 10
    runner.hooks = [CheckpointHook(interval=4, by_epoch=False)]
    assert RNGStateHook._checkpoint_due(runner, by_epoch=False) is due
    runner.iter = 9
    assert RNGStateHook._checkpoint_due(runner, by_epoch=False)      # last iteration
    assert not RNGStateHook._checkpoint_due(runner, by_epoch=True)   # no epoch-based hook
