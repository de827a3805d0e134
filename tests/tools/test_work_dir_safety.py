"""tools/train.py and tools/test.py never write over the user's files and never
share a work dir (issue 17, section 1), in process on the tiny MMPretrain config:

* ``--work-dir <folder of the config>`` keeps the config; the dump (with the
  ``--cfg-options`` applied) goes into the run's timestamp folder;
* a run into a work dir another run holds refuses at start naming that run,
  and writes nothing;
* the lock is released when a run fails.
"""

import pytest
import torch

from _runs import start_lock_holder
from _tool_helpers import make_images, write_config
from _tools import import_tool
from mmdyn.engine import work_dir_lock
from mmdyn.engine.work_dir_lock import LOCK_NAME, WorkDirLock


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """``train.py CFG --work-dir <folder of CFG>`` (1 iteration, checkpointed)."""
    tmp = tmp_path_factory.mktemp('own')
    make_images(str(tmp / 'data'))
    folder = tmp / 'configs'
    folder.mkdir()
    config = write_config(folder / 'tiny_cls.py', tmp / 'data')
    original = (folder / 'tiny_cls.py').read_text()
    import_tool('train').main([config, '--work-dir', str(folder),
                               '--cfg-options', 'train_cfg.max_iters=1',
                               'default_hooks.checkpoint.interval=1'])
    return dict(tmp=tmp, folder=folder, config=config, original=original)


def test_train_into_the_config_folder_keeps_the_config(trained):
    folder = trained['folder']
    assert (folder / 'tiny_cls.py').read_text() == trained['original']
    dumps = list(folder.glob('2*/tiny_cls.py'))  # <timestamp>/tiny_cls.py
    assert len(dumps) == 1 and 'max_iters=1' in dumps[0].read_text().replace(' ', '')
    assert (folder / 'iter_1.pth').is_file()
    assert not (folder / LOCK_NAME).exists()  # released at the end of the run


def test_test_into_the_config_folder_keeps_the_config(trained):
    folder = trained['folder']
    metrics = import_tool('test').main([trained['config'], str(folder / 'iter_1.pth'),
                                        '--work-dir', str(folder)])
    assert 'accuracy/top1' in metrics
    assert (folder / 'tiny_cls.py').read_text() == trained['original']
    assert len(list(folder.glob('2*/tiny_cls*.py'))) == 2  # the test run's own dump
    assert not (folder / LOCK_NAME).exists()


@pytest.mark.parametrize('tool', ['train', 'test'])
def test_second_run_into_a_held_work_dir_is_refused_naming_the_first(trained, tool):
    work = trained['tmp'] / f'busy_{tool}'
    first = start_lock_holder(work, 'tools/train.py', 'first.py')
    try:
        argv = [trained['config']] + ([str(trained['folder'] / 'iter_1.pth')]
                                      if tool == 'test' else []) + ['--work-dir', str(work)]
        with pytest.raises(SystemExit) as info:
            import_tool(tool).main(argv)
        message = str(info.value.code)
        assert message.startswith('error: work dir ') and '\n' not in message
        assert f'in use by another run (pid {first.pid} on ' in message
        assert 'tools/train.py first.py' in message and 'started ' in message
        assert sorted(p.name for p in work.iterdir()) == [LOCK_NAME]  # nothing written
    finally:
        first.kill()
        first.wait()
        first.stdout.close()


def test_lock_is_released_when_the_run_fails(trained, tmp_path, monkeypatch):
    from mmdyn.engine import runner as runner_module
    taken = []

    def acquire(work_dir):
        taken.append(work_dir_lock.acquire_run_lock(work_dir))
        return taken[-1]

    monkeypatch.setattr(runner_module, 'acquire_run_lock', acquire)
    other = tmp_path / 'other_model.pth'
    torch.save(dict(state_dict={'not.this.model': torch.zeros(1)}, meta={}), other)
    work = tmp_path / 'work'
    with pytest.raises(SystemExit, match='does not match the model'):
        import_tool('train').main([trained['config'], '--work-dir', str(work),
                                   '--resume', str(other)])
    assert len(taken) == 1 and taken[0] is not None  # the run held the lock ...
    assert not taken[0].held and not (work / LOCK_NAME).exists()  # ... and released it
    WorkDirLock(str(work)).acquire().release()
