"""High-level inference API of mmdyn (no Qt): load a trained classifier or
detector from its config and checkpoint, predict, draw, and show what the
A2D2C and DMC layers attend to. Used by ``tools/predict.py``,
``tools/predict_gui.py`` and ``tools/analysis_tools/confusion_matrix.py``; see
``docs/inference.md``::

    from mmdyn.apis import load_model
    predictor = load_model('configs/demo/resnet18-cifar-a2d2c-plus_digits.py',
                           'work_dirs/digits/epoch_12.pth')
    result = predictor.predict('digit.png')          # ClassificationResult
    result.topk[0].name, result.topk[0].score
    annotated = predictor.draw('digit.png', result)    # RGB uint8 array
    figure = predictor.attention('digit.png')         # RGB array, None if static

Modules: :mod:`~mmdyn.apis.images` (reading images, BGR),
:mod:`~mmdyn.apis.results` (result types), :mod:`~mmdyn.apis.predictor` (the
base :class:`Predictor`), :mod:`~mmdyn.apis.classification` and
:mod:`~mmdyn.apis.detection` (one subclass per task),
:mod:`~mmdyn.apis.tasks` (config -> predictor class),
:mod:`~mmdyn.apis.class_names`, :mod:`~mmdyn.apis.loading`
(:func:`load_model`) and :mod:`~mmdyn.apis.drawing` (RGB in, RGB out).
"""
from .class_names import config_class_names, resolve_class_names
from .classification import ClassificationPredictor
from .detection import DetectionPredictor
from .drawing import (draw_attention_figure, draw_detections, draw_dmc_figure, draw_topk,
                      format_probability, palette)
from .images import IMAGE_EXTENSIONS, find_images, read_image
from .loading import load_model
from .predictor import Predictor
from .results import ClassificationResult, ClassScore, DetectionResult, Result
from .tasks import TASKS, predictor_class, task_of_config

__all__ = [
    'IMAGE_EXTENSIONS', 'TASKS', 'ClassificationResult', 'ClassScore', 'DetectionResult',
    'Result', 'Predictor', 'ClassificationPredictor', 'DetectionPredictor',
    'draw_attention_figure', 'draw_dmc_figure', 'find_images', 'format_probability',
    'load_model', 'read_image', 'resolve_class_names', 'config_class_names',
    'predictor_class', 'task_of_config', 'draw_topk', 'draw_detections', 'palette'
]
