"""Test-only hook (imported through the multi-node test config's
``custom_imports``): right after iteration ``MMDYN_TEST_KILL_NODE_AFTER_ITER``
(1-based; unset: never) -- after the checkpoint hook has run -- ``SIGKILL``
this "node": first the launcher that started this process (torchrun's agent),
then this process. Before that the time is written to
``MMDYN_TEST_KILL_STAMP`` (if set), so a test can measure how long the other
node takes to notice."""
import os
import signal
import time

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module(force=True)
class KillNodeAfterIterHook(Hook):
    """SIGKILL the parent (the node's launcher) and this process after the
    configured iteration."""

    priority = 'LOWEST'  # after CheckpointHook has written its file

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        at = os.environ.get('MMDYN_TEST_KILL_NODE_AFTER_ITER')
        if not at or runner.iter + 1 != int(at):
            return
        stamp = os.environ.get('MMDYN_TEST_KILL_STAMP')
        if stamp:
            with open(stamp, 'w') as f:
                f.write(repr(time.time()))
        os.kill(os.getppid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
