"""High-level inference API of mmdyn (no Qt): load a trained classifier or
detector from its config and checkpoint, predict, draw, and show what the
A2D2C and DMC layers attend to. Used by ``tools/predict.py``,
``tools/predict_gui.py`` and ``tools/confusion_matrix.py``; see
``docs/inference.md``."""
from .drawing import (draw_attention_figure, draw_detections, draw_dmc_figure, draw_topk,
                      format_probability, palette)
from .inference import (IMAGE_EXTENSIONS, TASKS, ClassificationResult, ClassScore,
                        DetectionResult, Predictor, find_images, load_model, read_image,
                        resolve_class_names, task_of_config)

__all__ = [
    'IMAGE_EXTENSIONS', 'TASKS', 'ClassificationResult', 'ClassScore', 'DetectionResult',
    'Predictor', 'draw_attention_figure', 'draw_dmc_figure', 'find_images',
    'format_probability', 'load_model', 'read_image', 'resolve_class_names',
    'task_of_config', 'draw_topk', 'draw_detections', 'palette'
]
