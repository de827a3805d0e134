"""Test-only hook (imported through the tiny config's ``custom_imports``):
after training, every rank saves its model parameters and the temperature of
its mmdyn layers to ``<work_dir>/rank<R>_params.pth`` so tests can check that
distributed ranks ended with identical weights."""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module(force=True)
class RankStateDumpHook(Hook):
    """Dump ``named_parameters`` (not buffers: BN statistics are per rank)."""

    priority = 'LOWEST'

    def after_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        params = {k: v.detach().cpu().clone() for k, v in model.named_parameters()}
        temps = [m.temperature for m in model.modules() if hasattr(m, 'set_temperature')]
        torch.save(dict(params=params, temperatures=temps, iter=runner.iter,
                        wrapper=type(runner.model).__name__,
                        world_size=runner.world_size),
                   osp.join(runner.work_dir, f'rank{get_rank()}_params.pth'))
