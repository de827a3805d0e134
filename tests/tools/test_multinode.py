"""Beyond one machine, on this one: MMEngine's distributed launch through
tools/dist_train.sh, dist_test.sh and slurm_train.sh with two "nodes" (two
torchrun invocations, or a stand-in ``srun``), gloo on the CPU.

* Two nodes x 1 process train the same weights as one node x 2 processes (the
  same global batch). The reference is the 2-process run, not one process with
  batch 4: the ResNet's BatchNorm layers normalise with the statistics of each
  rank's own batch (DDP does not synchronise them), so one process with a
  batch of 4 computes other activations, gradients and running statistics
  than two ranks with 2 each. Two ranks with 2 samples each see the same
  samples, compute the same per-rank statistics and all-reduce the same
  gradients whether the ranks are on one node or two: the weights are equal
  bit for bit.
* A node killed mid-run (SIGKILL of its torchrun and its worker): the other
  node exits with an error within a bounded time, and ``--resume`` on both
  nodes continues the loss sequence of the uninterrupted run exactly.
* A node that stops answering: the collective timeout
  (``env_cfg.dist_cfg.timeout``) ends the other ranks.
* ``tools/slurm_train.sh`` builds the mmdet-style ``srun`` command; a stand-in
  ``srun`` (tests/tools/fake_slurm.py) records it and starts the tasks here
  with Slurm's variables, so training really runs through ``--launcher slurm``.
"""
import json
import os
import os.path as osp
import pickle
import re
import shlex
import subprocess
import sys
import time

import pytest
import torch

import mmdyn.models  # noqa: F401  (safe checkpoint loading for torch.load below)

from _runs import losses
from _tool_helpers import HERE, REPO, free_port, make_images, tool_env, write_config

pytestmark = pytest.mark.skipif(torch.cuda.is_available(),
                                reason='tests the CPU/gloo path of the launch scripts')

MAX_ITERS, KILL_AFTER = 6, 3   # checkpoints at 2, 4, 6; node 1 killed after iteration 3

# Appended to the tiny A2D2C+ config of the tools tests: random point sampling
# (the layer draws from torch's generator), a different seed per rank (each rank
# must get its own RNG state back on resume), raw per-iteration losses in
# scalars.json, and the hook that kills a node when the test asks for it.
EXTRA_CONFIG = f"""
custom_imports['imports'].append('node_kill_hook')
custom_hooks.append(dict(type='KillNodeAfterIterHook'))
model['backbone']['conv_cfg']['sampling'] = 'random'
train_cfg['max_iters'] = {MAX_ITERS}
log_processor = dict(window_size=1)
randomness = dict(seed=0, diff_rank_seed=True)
"""


def node_env(port, nnodes=1, node_rank=0, **extra):
    env = tool_env()
    env.update(NNODES=str(nnodes), NODE_RANK=str(node_rank), MASTER_ADDR='127.0.0.1',
               PORT=str(port), **{k: str(v) for k, v in extra.items()})
    return env


def start(cmd, env, log):
    """Start one "node" (its output to the file ``log``)."""
    with open(log, 'w') as out:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def finish(procs, logs, timeout=300):
    """Wait for every node; return their exit statuses and outputs."""
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [p.returncode for p in procs], [open(log).read() for log in logs]


def two_nodes(tmp, name, script_args, node_extra=({}, {}), timeout=300):
    """``bash SCRIPT ARGS...`` (a dist script) as two nodes (NNODES=2,
    NODE_RANK=0/1) on one free port; node 1 is started first."""
    port = free_port()
    procs, logs = [None, None], [str(tmp / f'{name}.node{r}.log') for r in (0, 1)]
    for rank in (1, 0):
        env = node_env(port, 2, rank, **node_extra[rank])
        procs[rank] = start(['bash', *script_args], env, logs[rank])
    return finish(procs, logs, timeout)


def dist_train(config, nproc, work_dir, *extra):
    return ['tools/dist_train.sh', config, str(nproc), '--work-dir', str(work_dir), *extra]


def check(rcs, outs):
    for rank, (rc, out) in enumerate(zip(rcs, outs)):
        assert rc == 0, f'node {rank} failed ({rc}):\n{out[-6000:]}'


def state(path):
    return torch.load(path, map_location='cpu', weights_only=True)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """The data and config; the 1-node x 2-process reference run and the
    2-node x 1-process run of the same config (both uninterrupted)."""
    tmp = tmp_path_factory.mktemp('multinode')
    make_images(str(tmp / 'data'))
    config = write_config(tmp / 'tiny_cls.py', tmp / 'data')
    with open(config, 'a') as f:
        f.write(EXTRA_CONFIG)
    # Both runs at once (most of their time is starting Python processes).
    started = time.monotonic()
    one = start(['bash', *dist_train(config, 2, tmp / 'one_node')], node_env(free_port()),
                str(tmp / 'one.log'))
    rcs, outs = two_nodes(tmp, 'two', dist_train(config, 1, tmp / 'two_nodes'))
    (one_rc, ), (one_out, ) = finish([one], [str(tmp / 'one.log')])
    print(f'1 node x 2 processes and 2 nodes x 1 process: {time.monotonic() - started:.1f} s')
    assert one_rc == 0, f'1 node x 2 processes failed ({one_rc}):\n{one_out[-6000:]}'
    check(rcs, outs)
    return dict(tmp=tmp, config=config, one=tmp / 'one_node', two=tmp / 'two_nodes',
                two_outs=outs)


def test_two_nodes_train_what_one_node_with_two_processes_trains(runs):
    """The one multi-node test of the default suite (two 2-process trainings)."""
    one, two = runs['one'], runs['two']
    node0, node1 = runs['two_outs']
    # Each node started one process, and the two formed one world of 2.
    for rank in (0, 1):
        dump = state(two / f'rank{rank}_params.pth')
        assert dump['world_size'] == 2 and dump['iter'] == MAX_ITERS
        assert dump['wrapper'] == 'CPUDistributedDataParallel'
    assert 'Distributed training: True' in node0 and 'GPU number: 2' in node0, node0[-3000:]
    # The same weights (and rank 0's BatchNorm statistics) bit for bit ...
    a, b = state(one / f'iter_{MAX_ITERS}.pth'), state(two / f'iter_{MAX_ITERS}.pth')
    assert a['state_dict'].keys() == b['state_dict'].keys()
    for key, value in a['state_dict'].items():
        assert torch.equal(b['state_dict'][key], value), f'{key} differs'
    for rank in (0, 1):   # ... on both ranks
        pa = state(one / f'rank{rank}_params.pth')['params']
        pb = state(two / f'rank{rank}_params.pth')['params']
        assert all(torch.equal(pb[k], v) for k, v in pa.items()), f'rank {rank}'
    # DDP kept the ranks equal (weights and attention temperatures), and the checkpoint
    # holds them (what tests/tools/test_train_tools.py's slow 1-node run also checks).
    r0, r1 = state(two / 'rank0_params.pth'), state(two / 'rank1_params.pth')
    assert all(torch.equal(r1['params'][k], v) for k, v in r0['params'].items())
    assert r0['temperatures'] == r1['temperatures']
    assert all(torch.equal(b['state_dict'][k], v) for k, v in r0['params'].items())
    # ... after the same losses, iteration by iteration; and training moved the weights.
    assert losses(one) == losses(two) and sorted(losses(two)) == list(range(1, MAX_ITERS + 1))
    first = state(two / 'iter_2.pth')['state_dict']
    assert any(not torch.equal(first[k], v) for k, v in b['state_dict'].items())


@pytest.mark.slow
def test_dist_test_on_two_nodes(runs, tmp_path):
    """tools/dist_test.sh on two nodes: every sample is evaluated once, the
    metrics are printed once (by rank 0, on node 0). About 20 s."""
    ckpt = str(runs['two'] / f'iter_{MAX_ITERS}.pth')
    out = tmp_path / 'preds.pkl'
    rcs, outs = two_nodes(tmp_path, 'test', ['tools/dist_test.sh', runs['config'], ckpt, '1',
                                             '--work-dir', str(tmp_path / 'work'),
                                             '--out', str(out)])
    check(rcs, outs)
    lines = [[x for x in o.splitlines() if x.startswith('mmdyn test metrics:')] for o in outs]
    assert len(lines[0]) == 1 and lines[1] == [], outs
    assert "'accuracy/top1'" in lines[0][0]
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 16


@pytest.mark.slow
def test_killed_node_stops_the_other_and_two_node_resume_continues_exactly(runs):
    """SIGKILL of node 1 (its torchrun and its worker) after iteration 3: node 0
    exits non-zero within seconds (its next all-reduce finds the connection
    closed), and ``--resume`` on two nodes from iteration 2's checkpoint
    continues the losses of the uninterrupted two-node run exactly."""
    tmp, config = runs['tmp'], runs['config']
    work = tmp / 'killed'
    stamp = tmp / 'killed_at'
    rcs, outs = two_nodes(tmp, 'killed', dist_train(config, 1, work), node_extra=(
        {}, dict(MMDYN_TEST_KILL_NODE_AFTER_ITER=KILL_AFTER, MMDYN_TEST_KILL_STAMP=stamp)),
        timeout=240)
    ended = time.time()
    assert rcs[1] == -9, f'node 1 was not killed ({rcs[1]}):\n{outs[1][-3000:]}'
    assert rcs[0] not in (0, None), f'node 0 did not fail ({rcs[0]}):\n{outs[0][-3000:]}'
    waited = ended - float(stamp.read_text())
    print(f'node 0 exited {waited:.1f} s after node 1 was killed')
    assert waited < 60, waited
    # gloo's message names the lost peer ("... Connection closed by peer [addr]:port.
    # This is typically caused by a remote worker crashing ...").
    assert re.search(r'Connection (closed|reset) by peer', outs[0]), outs[0][-5000:]
    assert sorted(losses(work)) == list(range(1, KILL_AFTER + 1))
    assert (work / 'iter_2.pth').is_file() and not (work / 'iter_4.pth').exists()

    rcs, outs = two_nodes(tmp, 'resumed', dist_train(config, 1, work, '--resume'))
    check(rcs, outs)
    assert 'resumed epoch: 0, iter: 2' in outs[0]
    assert 'RNGStateHook: the RNG states of 2 rank(s) are restored' in outs[0]
    full, resumed = losses(runs['two']), losses(work)
    assert sorted(resumed) == list(range(3, MAX_ITERS + 1)), resumed
    assert {i: full[i] for i in resumed} == resumed
    a = state(runs['two'] / f'iter_{MAX_ITERS}.pth')['state_dict']
    b = state(work / f'iter_{MAX_ITERS}.pth')['state_dict']
    for key, value in a.items():
        assert torch.equal(b[key], value), f'{key} differs after the two-node resume'


# ------------------------------------------------------------------ slurm
def fake_slurm_bin(tmp_path):
    """A folder with ``srun`` and ``scontrol`` stand-ins (tests/tools/fake_slurm.py)."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    for tool in ('srun', 'scontrol'):
        path = bin_dir / tool
        path.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} '
                        f'{shlex.quote(osp.join(HERE, "fake_slurm.py"))} {tool} "$@"\n')
        path.chmod(0o755)
    return bin_dir


def slurm_env(tmp_path, **extra):
    env = tool_env()
    env['PATH'] = f'{fake_slurm_bin(tmp_path)}{os.pathsep}{env["PATH"]}'
    env['FAKE_SLURM_RECORD'] = str(tmp_path / 'srun.json')
    env.update({k: str(v) for k, v in extra.items()})
    for key in [k for k in env if k.startswith('SLURM_')]:
        del env[key]
    return env


@pytest.mark.slow
def test_slurm_train_runs_the_mmdet_srun_command(runs, tmp_path):
    """GPUS=2 GPUS_PER_NODE=1: srun gets mmdet's options, two tasks on two
    "nodes" train through ``--launcher slurm`` (rank, world size and
    rendezvous host from the SLURM_* variables) and end with the weights of
    the 1-node x 2-process torchrun run. About 25 s."""
    work = tmp_path / 'work'
    env = slurm_env(tmp_path, GPUS=2, GPUS_PER_NODE=1, CPUS_PER_TASK=1,
                    SRUN_ARGS='--quotatype=auto -x bad-node', MASTER_PORT=free_port())
    proc = subprocess.run(['bash', 'tools/slurm_train.sh', 'part', 'myjob', runs['config'],
                           str(work), '--cfg-options', 'default_hooks.logger.interval=1'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    record = json.loads((tmp_path / 'srun.json').read_text())
    python = osp.join(REPO, '.venv', 'bin', 'python')
    python = python if os.access(python, os.X_OK) else 'python'
    assert record['argv'] == [
        '-p', 'part', '--job-name=myjob', '--gres=gpu:1', '--ntasks=2',
        '--ntasks-per-node=1', '--cpus-per-task=1', '--kill-on-bad-exit=1',
        '--quotatype=auto', '-x', 'bad-node',
        python, '-u', osp.join(REPO, 'tools', 'train.py'), runs['config'],
        f'--work-dir={work}', '--launcher=slurm',
        '--cfg-options', 'default_hooks.logger.interval=1']
    assert record['env']['PYTHONPATH'].split(os.pathsep)[0] == REPO
    # The tasks formed one world of 2 from the SLURM_* variables ...
    for rank in (0, 1):
        dump = state(work / f'rank{rank}_params.pth')
        assert dump['world_size'] == 2 and dump['wrapper'] == 'CPUDistributedDataParallel'
    out = proc.stdout + proc.stderr
    assert 'Distributed launcher: slurm' in out and 'GPU number: 2' in out, out[-3000:]
    # ... and trained what torchrun's 2 processes trained.
    a = state(runs['one'] / f'iter_{MAX_ITERS}.pth')['state_dict']
    b = state(work / f'iter_{MAX_ITERS}.pth')['state_dict']
    for key, value in a.items():
        assert torch.equal(b[key], value), f'{key} differs (slurm vs torchrun)'


@pytest.mark.parametrize('name, value', [('GPUS', 'abc'), ('GPUS_PER_NODE', '0'),
                                         ('CPUS_PER_TASK', '-1')])
def test_slurm_train_refuses_bad_counts_before_srun(tmp_path, name, value):
    env = slurm_env(tmp_path, **{name: value})
    proc = subprocess.run(['bash', 'tools/slurm_train.sh', 'part', 'job', 'cfg.py', 'work'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {name} must be a positive integer, got '{value}'"
    assert not (tmp_path / 'srun.json').exists()


# ------------------------------------------------------------------ timeouts, slurm host
@pytest.mark.parametrize('value', ['abc', 0, -5, float('inf'), True])
def test_dist_timeout_is_checked(value, monkeypatch):
    """An unusable ``env_cfg.dist_cfg.timeout`` is refused with one line naming
    it, before any process group is set up."""
    from mmdyn.engine.dist import init_cpu_dist_if_needed
    for key in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(key, raising=False)
    cfg = dict(env_cfg=dict(dist_cfg=dict(backend='nccl', timeout=value)))
    with pytest.raises(ValueError, match=r'^env_cfg.dist_cfg.timeout must be a positive '
                       r'number of seconds .*got ' + repr(value).replace('(', r'\(')):
        init_cpu_dist_if_needed('pytorch', cfg)


def test_dist_timeout_default_and_configured():
    from mmdyn.engine.dist import DEFAULT_TIMEOUT_S, dist_timeout
    assert dist_timeout(None) == dist_timeout(dict(env_cfg=dict())) == DEFAULT_TIMEOUT_S == 1800
    assert dist_timeout(dict(env_cfg=dict(dist_cfg=dict(timeout='90')))) == 90.0


# Two gloo ranks through init_cpu_dist_if_needed; rank 1 never joins the
# all-reduce (a node that stopped answering): rank 0 must fail after the timeout.
HANG = """
import os, sys, time, torch
import torch.distributed as dist
from mmdyn.engine.dist import init_cpu_dist_if_needed
init_cpu_dist_if_needed('pytorch', dict(env_cfg=dict(dist_cfg=dict(timeout=TIMEOUT))))
if dist.get_rank() == 1:
    time.sleep(60)
    sys.exit(0)
start = time.monotonic()
try:
    dist.all_reduce(torch.ones(4))
except RuntimeError as err:
    print(f'rank 0 failed after {time.monotonic() - start:.1f} s: {err}', flush=True)
    os._exit(3)
os._exit(0)
"""


@pytest.mark.slow
def test_collective_timeout_ends_the_ranks_left_waiting(tmp_path):
    """``env_cfg.dist_cfg.timeout=2``: rank 0's all-reduce fails after ~2 s
    when rank 1 never joins it (instead of torch's 30 minutes)."""
    port = free_port()
    procs = []
    for rank in (0, 1):
        env = tool_env()
        env.update(RANK=str(rank), WORLD_SIZE='2', LOCAL_RANK='0', MASTER_ADDR='127.0.0.1',
                   MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, '-c', HANG.replace('TIMEOUT', '2')],
                                      cwd=REPO, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    try:
        out, _ = procs[0].communicate(timeout=60)
    finally:
        procs[1].kill()
        procs[1].wait()
    assert procs[0].returncode == 3, out
    waited = float(out.split('rank 0 failed after ')[1].split(' s')[0])
    assert 1.5 <= waited < 20, out
    assert 'Timed out' in out or 'timed out' in out, out


def test_slurm_without_scontrol_or_master_addr_says_what_to_set(tmp_path, monkeypatch):
    from mmdyn.engine.dist import _env_from_launcher
    monkeypatch.setenv('PATH', str(tmp_path))   # no scontrol here
    for key, value in dict(SLURM_PROCID='0', SLURM_NTASKS='2', SLURM_NODELIST='n[1-2]',
                           MASTER_PORT='29999').items():
        monkeypatch.setenv(key, value)
    for key in ('MASTER_ADDR', 'RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.setenv(key, '-')   # so that monkeypatch restores what the call sets
        monkeypatch.delenv(key)
    with pytest.raises(RuntimeError, match=r"launcher='slurm': cannot run scontrol show "
                       r'hostnames n\[1-2\] .*; or set MASTER_ADDR'):
        _env_from_launcher('slurm')
    # A failing scontrol is named with its own message.
    script = tmp_path / 'scontrol'
    script.write_text('#!/bin/sh\necho "scontrol: error: Invalid hostlist: $3" >&2\nexit 1\n')
    script.chmod(0o755)
    with pytest.raises(RuntimeError, match=r'failed \(exit status 1: scontrol: error: '
                       r'Invalid hostlist: n\[1-2\]\); or set MASTER_ADDR'):
        _env_from_launcher('slurm')
    # With MASTER_ADDR set no scontrol is needed.
    monkeypatch.setenv('MASTER_ADDR', 'n1')
    _env_from_launcher('slurm')
    assert (os.environ['RANK'], os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK']) == \
        ('0', '2', '0')
