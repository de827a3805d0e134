"""Test-only hook (imported through the RNG-resume test config's
``custom_imports``): ``SIGKILL`` the training process right after iteration
``MMDYN_TEST_KILL_AFTER_ITER`` (1-based; unset: never), after the checkpoint
hook has run -- a hard interruption at a known point, on every rank."""
import os
import signal

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module(force=True)
class KillAfterIterHook(Hook):
    """``os.kill(os.getpid(), SIGKILL)`` after the configured iteration."""

    priority = 'LOWEST'  # after CheckpointHook has written its file

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        at = os.environ.get('MMDYN_TEST_KILL_AFTER_ITER')
        if at and runner.iter + 1 == int(at):
            os.kill(os.getpid(), signal.SIGKILL)
