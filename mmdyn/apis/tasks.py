"""The task of a config: which :class:`~mmdyn.apis.Predictor` subclass serves it.

The config's ``default_scope`` decides: ``'mmpretrain'`` -> classification
(:class:`~mmdyn.apis.ClassificationPredictor`), ``'mmdet'`` (also when absent,
as ``tools/train.py``) -> detection (:class:`~mmdyn.apis.DetectionPredictor`).
"""
from typing import Dict, Type

from .classification import ClassificationPredictor
from .detection import DetectionPredictor
from .predictor import Predictor

__all__ = ['PREDICTORS', 'TASKS', 'predictor_class', 'task_of_config']

#: The predictor class of each ``default_scope``.
PREDICTORS: Dict[str, Type[Predictor]] = {
    cls.scope: cls for cls in (ClassificationPredictor, DetectionPredictor)}

#: Tasks and the ``default_scope`` each one comes from.
TASKS = {scope: cls.task for scope, cls in PREDICTORS.items()}


def predictor_class(cfg) -> Type[Predictor]:
    """The :class:`~mmdyn.apis.Predictor` subclass of the config's ``default_scope``.

    A config without ``default_scope`` is an MMDetection one (as in
    ``tools/train.py``).

    Raises:
        ValueError: Any other scope, naming it and the config file.
    """
    scope = cfg.get('default_scope', 'mmdet')
    if scope not in PREDICTORS:
        raise ValueError(f'unsupported default_scope {scope!r} in config '
                         f'{getattr(cfg, "filename", None) or "<Config>"}: inference '
                         f'supports {sorted(TASKS)} '
                         f'({", ".join(f"{k} -> {v}" for k, v in TASKS.items())})')
    return PREDICTORS[scope]


def task_of_config(cfg) -> str:
    """``'classification'`` or ``'detection'`` from the config's ``default_scope``
    (:func:`predictor_class`; same errors)."""
    return predictor_class(cfg).task
