"""MMEngine checkpoints load and resume on torch >= 2.6 without disabling
weights-only loading; unsafe, corrupt and missing checkpoints are refused."""
import os
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.runner import Runner, load_checkpoint

from _toys import ToyClassifier, toy_runner_cfg

import mmdyn.models  # noqa: F401  (installs the safe loader)
from mmdyn.engine import (ALLOWED_CHECKPOINT_GLOBALS, UnsafeCheckpointError,
                          install_safe_checkpoint_loading, load_checkpoint_file)
from mmdyn.ops import A2D2CPlusConv2d


class ToyModel(ToyClassifier):

    def __init__(self):
        super().__init__()
        self.conv = A2D2CPlusConv2d(3, 4, 3, padding=1, num_points=5)
        self.head = nn.Linear(4, 2)

    def features(self, x):
        return self.conv(x)


def _runner(work_dir, max_iters, resume=False, load_from=None):
    return Runner(model=ToyModel(), **toy_runner_cfg(
        work_dir, max_iters, batch_size=4, optimizer=dict(type='SGD', lr=0.1, momentum=0.9),
        param_scheduler=dict(type='MultiStepLR', milestones=[3], by_epoch=False),
        resume=resume, load_from=load_from, experiment_name=f'toy{max_iters}{resume}'))


def test_mmengine_checkpoint_saves_loads_and_resumes(tmp_path):
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ
    runner = _runner(tmp_path, max_iters=2)
    runner.train()
    ckpt = tmp_path / 'iter_2.pth'
    assert ckpt.is_file()
    # The checkpoint holds more than tensors (message hub history, numpy values):
    # without the allow-list, weights-only loading refuses it ...
    torch.serialization.clear_safe_globals()
    try:
        unsafe = set(torch.serialization.get_unsafe_globals_in_checkpoint(ckpt))
        assert 'mmengine.logging.history_buffer.HistoryBuffer' in unsafe
        with pytest.raises(Exception, match='Weights only load failed'):
            torch.load(ckpt, weights_only=True)
    finally:
        install_safe_checkpoint_loading()
    # ... and loads with weights_only=True thanks to the allow-list.
    state = torch.load(ckpt, weights_only=True)
    assert state['meta']['iter'] == 2 and 'message_hub' in state
    # Resume continues from iteration 2 with the optimizer state restored.
    resumed = _runner(tmp_path, max_iters=4, resume=True)
    resumed.train()
    assert resumed.iter == 4
    assert (tmp_path / 'iter_4.pth').is_file()
    # load_checkpoint into a fresh model restores the weights exactly.
    model = ToyModel()
    load_checkpoint(model, str(tmp_path / 'iter_4.pth'))
    final = torch.load(tmp_path / 'iter_4.pth', weights_only=True)['state_dict']
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, final[key])


class _Evil:
    def __reduce__(self):
        return (os.system, (f'touch {_Evil.marker}',))


def test_checkpoint_with_arbitrary_object_is_refused(tmp_path):
    _Evil.marker = str(tmp_path / 'pwned')
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(1)}, 'meta': _Evil()}, path)
    with pytest.raises(UnsafeCheckpointError, match=r'refusing to load .*system'):
        load_checkpoint(nn.Linear(1, 1), str(path))
    with pytest.raises(UnsafeCheckpointError, match='not allow-listed'):
        load_checkpoint_file(path)
    assert not osp.exists(_Evil.marker)


def test_corrupt_and_missing_checkpoints_have_clear_errors(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': nn.Linear(2, 2).state_dict()}, good)
    bad = tmp_path / 'truncated.pth'
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(RuntimeError, match='corrupt or truncated'):
        load_checkpoint_file(bad)
    garbage = tmp_path / 'garbage.pth'
    # Each of these fails differently inside torch's legacy unpickler
    # (UnpicklingError, KeyError, IndexError); all must read "corrupt".
    for data in (b'not a checkpoint at all', b'hello world\n', b'\x80\x02some text'):
        garbage.write_bytes(data)
        with pytest.raises(RuntimeError, match=f'corrupt.*{garbage.name}|{garbage.name}.*corrupt'):
            load_checkpoint_file(garbage)
    from mmengine.runner import CheckpointLoader
    with pytest.raises(RuntimeError, match='corrupt or truncated'):
        CheckpointLoader.load_checkpoint(str(bad))
    with pytest.raises(FileNotFoundError, match='checkpoint file not found'):
        load_checkpoint_file(tmp_path / 'nope.pth')


def test_getattr_is_restricted_to_history_buffer_methods(tmp_path):
    from mmengine.logging.history_buffer import HistoryBuffer
    ok = tmp_path / 'ok.pth'
    torch.save({'m': HistoryBuffer.min}, ok)  # pickled as getattr(HistoryBuffer, 'min')
    assert load_checkpoint_file(ok)['m'] is HistoryBuffer.min
    evil = tmp_path / 'evil_getattr.pth'
    torch.save({'m': HistoryBuffer.__init__}, evil)
    with pytest.raises(UnsafeCheckpointError, match='__init__'):
        load_checkpoint_file(evil)


def test_allow_list_is_specific():
    names = {getattr(g, '__name__', None) for g in ALLOWED_CHECKPOINT_GLOBALS
             if not isinstance(g, tuple)}
    assert 'HistoryBuffer' in names
    for forbidden in ('system', 'eval', 'exec', 'getattr', 'Runner', 'Config'):
        assert forbidden not in names
