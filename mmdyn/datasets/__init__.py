"""Dataset helpers of mmdyn (synthetic data for the demo and tests)."""
from .synthetic_coco import CLASSES as SHAPE_CLASSES
from .checks import check_dataset_paths
from .synthetic_coco import make_shapes_coco

__all__ = ["SHAPE_CLASSES", "make_shapes_coco", "check_dataset_paths"]
