"""The toy model and dataset of the engine tests (MMEngine ``Runner`` on 8x8 inputs)."""
import torch
import torch.nn as nn
from mmengine.model import BaseModel


class ToyClassifier(BaseModel):
    """A 2-class classifier: ``features(x)`` (a subclass's mmdyn layers), global
    average pooling, ``self.head``; MMEngine's ``loss`` / ``predict`` / ``tensor`` modes."""

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, inputs, labels=None, mode='tensor'):
        inputs = torch.stack(inputs) if isinstance(inputs, list) else inputs
        logits = self.head(self.features(inputs).mean((2, 3)))
        if mode == 'loss':
            labels = torch.stack(labels) if isinstance(labels, list) else labels
            return dict(loss=nn.functional.cross_entropy(logits, labels))
        if mode == 'predict':
            return [dict(pred=logit) for logit in logits]
        return logits


class ToyDataset(torch.utils.data.Dataset):
    """8 fixed random 3x8x8 images, labels alternating 0/1."""
    metainfo = dict(classes=('a', 'b'))

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(3, 8, 8, generator=g), labels=torch.tensor(i % 2))


def toy_runner_cfg(work_dir, max_iters: int, batch_size: int = 2, optimizer=None,
                   **extra) -> dict:
    """``Runner`` arguments shared by the engine tests (without the model): the toy
    dataset, shuffled; SGD (``optimizer``, default lr 0.05); ``max_iters``
    iterations; a checkpoint every 2 iterations; a log line every iteration; seed 0;
    no default scope. ``extra`` (hooks, resume, loaders...) is merged last."""
    cfg = dict(
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=ToyDataset(),
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              batch_size=batch_size, num_workers=0,
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=optimizer or dict(type='SGD', lr=0.05)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0), default_scope=None)
    cfg.update(extra)
    return cfg
