"""Inference with a trained mmdyn classifier (MMPretrain) or detector (MMDetection).

:func:`load_model` builds the model of a config, loads a checkpoint into it
(through mmdyn's weights-only loader) and returns a :class:`Predictor` that
knows the task, the class names and the test pipeline::

    from mmdyn.apis import load_model
    predictor = load_model('configs/demo/resnet18-cifar-a2d2c-plus_digits.py',
                           'work_dirs/digits/epoch_12.pth')
    result = predictor.predict('digit.png')          # ClassificationResult
    result.topk[0].name, result.topk[0].score
    annotated = predictor.draw('digit.png', result)    # RGB uint8 array
    figure = predictor.attention('digit.png')         # RGB array, None if static

:meth:`Predictor.attention` draws, for a chosen layer, what an A2D2C / A2D2C+
layer attends to (sampled points and attention π) or, for a dynamic mask
convolution (DMC) layer, each branch's dynamic mask and its block's adaptive
enhancement maps.

The task follows the config's ``default_scope``: ``'mmpretrain'`` ->
classification, ``'mmdet'`` (also when absent, as ``tools/train.py``) ->
detection. Preprocessing is the frameworks' own: MMPretrain's
``get_model`` + ``ImageClassificationInferencer`` (the config's test pipeline
without ``LoadImageFromFile``), MMDetection's ``init_detector`` +
``inference_detector`` (the test pipeline with ``LoadImageFromNDArray`` and
without ``LoadAnnotations``, since an arbitrary image has no ground truth).

Conventions: image arrays are ``uint8`` ``H x W x 3`` in **BGR** order (as
``mmcv.imread`` / ``cv2.imread`` return them, and as OpenMMLab pipelines
expect); everything this module *draws* is returned in **RGB** order (ready for
PIL, matplotlib or Qt).

Two details that a plain ``init_model`` misses are handled here:

* Temperature: every mmdyn layer stores its attention temperature in the
  checkpoint, so the model predicts with the trained value (the same as mmdet's
  ``init_detector`` or mmpretrain's inferencers). Only for a checkpoint written
  before mmdyn stored it (the layers warn) is the config's
  ``TemperatureAnnealHook`` ``end_temperature`` applied, as ``tools/test.py``
  does through the hook's ``before_test``.
* Class names: from the checkpoint's ``meta.dataset_meta`` (MMEngine's Runner
  stores the training set's ``metainfo`` there), else from the config's
  dataset ``metainfo``/``classes``, else the dataset type's ``METAINFO``, else
  ``"class i"``. A source whose length differs from the model's number of
  classes is skipped with a warning (mmdet's ``init_detector`` would otherwise
  fall back to the 80 COCO names).
"""
import copy
import os
import os.path as osp
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .drawing import draw_attention_figure, draw_detections, draw_dmc_figure, draw_topk, palette

__all__ = [
    'IMAGE_EXTENSIONS', 'TASKS', 'ClassScore', 'ClassificationResult', 'DetectionResult',
    'Predictor', 'find_images', 'load_model', 'read_image', 'resolve_class_names',
    'task_of_config'
]

#: Tasks and the ``default_scope`` each one comes from.
TASKS = {'mmpretrain': 'classification', 'mmdet': 'detection'}

#: File name endings treated as images when a folder is searched.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff',
                    '.webp')

ImageInput = Union[str, os.PathLike, np.ndarray]


# ----------------------------------------------------------------------- images
def read_image(image: ImageInput) -> np.ndarray:
    """Read an image file, or validate an image array, as ``uint8`` BGR ``(H, W, 3)``.

    Args:
        image: A path, or an array ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` (BGR)
            or ``(H, W, 4)`` (BGRA; alpha dropped) of dtype ``uint8``.

    Returns:
        A C-contiguous ``uint8`` array ``(H, W, 3)`` in BGR order.

    Raises:
        FileNotFoundError: The path does not exist.
        ValueError: The file is not a readable image, or the array has a bad shape.
        TypeError: ``image`` is neither a path nor a ``uint8`` array.
    """
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not osp.isfile(path):
            raise FileNotFoundError(f'image not found: {path}')
        import cv2
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:  # formats OpenCV lacks (GIF, ...): try Pillow
            try:
                from PIL import Image
                with Image.open(path) as pil:
                    img = np.asarray(pil.convert('RGB'))[..., ::-1]
            except Exception as err:  # noqa: BLE001 - any decoder failure
                raise ValueError(f'cannot read image {path}: not an image file or an '
                                 f'unsupported format ({type(err).__name__}: {err})') from err
        return np.ascontiguousarray(img)
    if not isinstance(image, np.ndarray):
        raise TypeError(f'image must be a file path or a numpy array, got '
                        f'{type(image).__name__}')
    if image.dtype != np.uint8:
        raise TypeError(f'image array must have dtype uint8, got {image.dtype}')
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(f'image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) '
                         f'with H, W >= 1, got shape {tuple(image.shape)}')
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def find_images(inputs: Sequence[str],
                extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[Tuple[str, str]]:
    """Expand image files and folders (searched recursively) into a list of images.

    Args:
        inputs: Image files (taken whatever their extension) and folders.
        extensions: Lower-case endings of the images looked for in folders.

    Returns:
        ``(path, name)`` pairs in input order (folders sorted): ``name`` is the
        file name for a file input and ``<folder name>/<path inside it>`` for
        images found in a folder (a unique relative name for outputs).

    Raises:
        FileNotFoundError: An input does not exist.
        ValueError: A folder holds no image, or ``inputs`` is empty.
    """
    if not inputs:
        raise ValueError('no input image or folder given')
    found: List[Tuple[str, str]] = []
    for item in inputs:
        item = os.fspath(item)
        if osp.isfile(item):
            found.append((item, osp.basename(item)))
        elif osp.isdir(item):
            root = osp.normpath(item)
            images = []
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                images += [osp.join(dirpath, f) for f in sorted(filenames)
                           if f.lower().endswith(tuple(extensions))]
            if not images:
                raise ValueError(f'no image ({", ".join(extensions)}) found in folder {item}')
            base = osp.basename(osp.abspath(root))
            found += [(p, osp.join(base, osp.relpath(p, root))) for p in images]
        else:
            raise FileNotFoundError(f'input not found: {item}')
    return found


# ---------------------------------------------------------------------- results
@dataclass
class ClassScore:
    """One class of a classification: index, name and probability."""
    label: int
    name: str
    score: float

    def to_dict(self) -> dict:
        return dict(label=self.label, name=self.name, score=self.score)


@dataclass
class ClassificationResult:
    """Prediction of a classifier for one image.

    Attributes:
        topk: The ``k`` most probable classes, most probable first.
        scores: Probabilities of all classes ``(num_classes,)`` (the head's
            softmax: they sum to 1).
        image_shape: ``(H, W)`` of the input image.
    """
    topk: List[ClassScore]
    scores: np.ndarray
    image_shape: Tuple[int, int]
    task: str = field(default='classification', init=False)

    @property
    def pred_label(self) -> int:
        return self.topk[0].label

    @property
    def pred_name(self) -> str:
        return self.topk[0].name

    @property
    def pred_score(self) -> float:
        return self.topk[0].score

    def to_dict(self) -> dict:
        """JSON-serialisable summary (top-k only)."""
        return dict(task=self.task, image_shape=list(self.image_shape),
                    pred_label=self.pred_label, pred_name=self.pred_name,
                    pred_score=self.pred_score, topk=[c.to_dict() for c in self.topk])


@dataclass
class DetectionResult:
    """Detections of a detector for one image, above a score threshold.

    Attributes:
        bboxes: ``(N, 4)`` float32 ``x1, y1, x2, y2`` in input-image pixels.
        scores: ``(N,)`` float32, descending.
        labels: ``(N,)`` int64 class indices.
        names: ``N`` class names.
        masks: ``(N, H, W)`` bool instance masks (Mask R-CNN), else ``None``.
        image_shape: ``(H, W)`` of the input image.
        score_thr: The threshold applied (``score >= score_thr`` kept).
    """
    bboxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    names: List[str]
    masks: Optional[np.ndarray]
    image_shape: Tuple[int, int]
    score_thr: float
    task: str = field(default='detection', init=False)

    def __len__(self) -> int:
        return len(self.scores)

    def to_dict(self, with_masks: bool = True) -> dict:
        """JSON-serialisable detections; masks as COCO RLE (``size``, ``counts``)."""
        dets = []
        rles = None
        if with_masks and self.masks is not None and len(self):
            from pycocotools import mask as mask_utils
            rles = mask_utils.encode(np.asfortranarray(self.masks.astype(np.uint8)
                                                       .transpose(1, 2, 0)))
        for i in range(len(self)):
            det = dict(label=int(self.labels[i]), name=self.names[i],
                       score=float(self.scores[i]),
                       bbox=[round(float(v), 2) for v in self.bboxes[i]])
            if self.masks is not None:
                det['mask_area'] = int(self.masks[i].sum())
                if rles is not None:
                    det['mask_rle'] = dict(size=list(rles[i]['size']),
                                           counts=rles[i]['counts'].decode('ascii'))
            dets.append(det)
        return dict(task=self.task, image_shape=list(self.image_shape),
                    score_thr=self.score_thr, detections=dets)


Result = Union[ClassificationResult, DetectionResult]


# --------------------------------------------------------------- config helpers
def task_of_config(cfg) -> str:
    """``'classification'`` or ``'detection'`` from the config's ``default_scope``.

    A config without ``default_scope`` is an MMDetection one (as in
    ``tools/train.py``).

    Raises:
        ValueError: Any other scope, naming it and the config file.
    """
    scope = cfg.get('default_scope', 'mmdet')
    if scope not in TASKS:
        raise ValueError(f'unsupported default_scope {scope!r} in config '
                         f'{getattr(cfg, "filename", None) or "<Config>"}: inference '
                         f'supports {sorted(TASKS)} '
                         f'({", ".join(f"{k} -> {v}" for k, v in TASKS.items())})')
    return TASKS[scope]


def _load_config(config, cfg_options: Optional[dict]):
    from mmengine.config import Config

    import mmdyn.models  # noqa: F401  (registrations, safe checkpoint loading)
    if isinstance(config, Config):
        cfg = copy.deepcopy(config)
    elif isinstance(config, (str, os.PathLike)):
        path = os.fspath(config)
        if not osp.isfile(path):
            raise FileNotFoundError(f'config file not found: {path}')
        cfg = Config.fromfile(path)
    else:
        raise TypeError(f'config must be a file path or an mmengine Config, got '
                        f'{type(config).__name__}')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if 'model' not in cfg:
        raise ValueError(f'config {cfg.filename} has no `model` field')
    return cfg


def _test_dataset_cfg(cfg) -> Optional[dict]:
    """The (unwrapped) ``test_dataloader.dataset`` of ``cfg``, if any."""
    loader = cfg.get('test_dataloader') or {}
    dataset = loader.get('dataset')
    while isinstance(dataset, dict) and 'pipeline' not in dataset:
        if 'dataset' in dataset:
            dataset = dataset['dataset']
        elif dataset.get('datasets'):
            dataset = dataset['datasets'][0]
        else:
            break
    return dataset


def _ensure_test_pipeline(cfg) -> None:
    """Make sure ``cfg.test_dataloader.dataset.pipeline`` exists (the
    frameworks' inference helpers read it); a top-level ``test_pipeline`` is
    used when the config has no test dataloader."""
    dataset = _test_dataset_cfg(cfg)
    if isinstance(dataset, dict) and dataset.get('pipeline'):
        return
    if cfg.get('test_pipeline'):
        base = dict(cfg.get('test_dataloader') or {})
        ds = dict(base.get('dataset') or {})
        ds['pipeline'] = cfg.test_pipeline
        # The frameworks' helpers look the dataset type up (for its METAINFO):
        # a neutral base dataset when the config names none.
        ds.setdefault('type', 'CustomDataset' if task_of_config(cfg) == 'classification'
                      else 'BaseDetDataset')
        base['dataset'] = ds
        cfg.test_dataloader = base
        return
    raise ValueError(f'config {cfg.filename} defines no test pipeline: inference needs '
                     f'test_dataloader.dataset.pipeline (or test_pipeline)')


def _names(value) -> Optional[Tuple[str, ...]]:
    """A class-name sequence from a config/meta value (a file of names allowed)."""
    if isinstance(value, str):
        if osp.isfile(value):
            with open(value) as f:
                return tuple(line.strip() for line in f if line.strip())
        return None
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _class_candidates(meta: dict, cfg, registry) -> List[Tuple[str, Optional[tuple]]]:
    """Possible class-name sources, in priority order."""
    out = []
    dataset_meta = {str(k).lower(): v for k, v in (meta.get('dataset_meta') or {}).items()}
    out.append(('checkpoint meta.dataset_meta', _names(dataset_meta.get('classes'))))
    out.append(('checkpoint meta.CLASSES', _names(meta.get('CLASSES'))))
    dataset = _test_dataset_cfg(cfg) or {}
    out.append(('config test dataset metainfo',
                _names((dataset.get('metainfo') or {}).get('classes'))))
    out.append(('config test dataset classes', _names(dataset.get('classes'))))
    out.append(('config metainfo', _names((cfg.get('metainfo') or {}).get('classes'))))
    out.append(('config classes', _names(cfg.get('classes'))))
    kind = dataset.get('type')
    if isinstance(kind, str):
        try:
            cls = registry.get(kind)
        except Exception:  # noqa: BLE001 - unknown type: no names from it
            cls = None
        out.append((f'{kind}.METAINFO',
                    _names((getattr(cls, 'METAINFO', None) or {}).get('classes'))))
    return out


def _model_num_classes(model) -> Optional[int]:
    """Number of classes of a classifier head or a detector's (RoI) bbox head."""
    for path in ('head', 'roi_head.bbox_head', 'bbox_head'):
        obj = model
        for part in path.split('.'):
            obj = getattr(obj, part, None)
        if isinstance(obj, torch.nn.ModuleList) and len(obj):
            obj = obj[-1]
        num = getattr(obj, 'num_classes', None)
        if isinstance(num, int) and num > 0:
            return num
    return None


def _resolve_classes(meta: dict, cfg, num_classes: Optional[int],
                     registry) -> Tuple[Tuple[str, ...], str]:
    for source, names in _class_candidates(meta, cfg, registry):
        if names is None:
            continue
        if num_classes is not None and len(names) != num_classes:
            warnings.warn(f'ignoring the {len(names)} class names of the {source}: the model '
                          f'has {num_classes} classes')
            continue
        return names, source
    if num_classes is None:
        raise ValueError(f'cannot tell the classes of the model of {cfg.filename}: no class '
                         f'names found and the head has no num_classes')
    return tuple(f'class {i}' for i in range(num_classes)), 'generated'


def resolve_class_names(cfg, num_classes: Optional[int] = None,
                        checkpoint_meta: Optional[dict] = None) -> Tuple[Tuple[str, ...], str]:
    """Class names for a model of ``cfg`` without building it.

    Sources in order: ``checkpoint_meta['dataset_meta']['classes']`` (and the
    old ``CLASSES``), the config's test dataset ``metainfo``/``classes``, a
    top-level ``metainfo``/``classes``, the dataset type's ``METAINFO``;
    sources whose length differs from ``num_classes`` are skipped with a
    warning. Without any: ``"class 0"``, ``"class 1"``, ...

    Args:
        cfg: An ``mmengine.Config`` (its ``default_scope`` picks the registry).
        num_classes: The model's number of classes, if known.
        checkpoint_meta: The ``meta`` dict of a checkpoint, if any.

    Returns:
        ``(names, source)``, ``source`` describing where they came from
        (``'generated'`` for ``"class i"``).

    Raises:
        ValueError: No names found and ``num_classes`` is ``None``.
    """
    if task_of_config(cfg) == 'classification':
        from mmpretrain.registry import DATASETS
    else:
        from mmdet.registry import DATASETS
    return _resolve_classes(checkpoint_meta or {}, cfg, num_classes, DATASETS)


def _inference_temperature(cfg) -> Optional[float]:
    """``end_temperature`` of the config's ``TemperatureAnnealHook``, if any (used
    only for layers loaded from a checkpoint without a stored temperature)."""
    from mmdyn.engine.hooks import find_hook_cfg
    hook = find_hook_cfg(cfg, 'TemperatureAnnealHook')
    return None if hook is None else float(hook.get('end_temperature', 1.0))


def _load_weights(model: torch.nn.Module, checkpoint: str, strict: bool) -> dict:
    """Load ``checkpoint`` into ``model``; return the checkpoint's ``meta``.

    ``checkpoint`` is a local file or any source MMEngine accepts (URL,
    ``torchvision://``, ...), read by :func:`mmdyn.engine.read_checkpoint`
    (weights-only allow-list load).

    Raises:
        FileNotFoundError / RuntimeError / UnsafeCheckpointError: from
            :func:`mmdyn.engine.read_checkpoint` (missing, corrupt, unsafe).
        ValueError: The checkpoint holds no state dict or shares no parameter
            with the model.
        mmdyn.engine.CheckpointMismatchError: (``strict``) it misses, adds or
            reshapes some key (:func:`mmdyn.engine.check_state_dict_fits`).
    """
    from mmdyn.engine import CheckpointMismatchError, check_state_dict_fits, read_checkpoint
    ckpt = read_checkpoint(checkpoint, map_location='cpu')
    if not isinstance(ckpt, dict):
        raise ValueError(f'checkpoint {checkpoint} holds a {type(ckpt).__name__}, not a '
                         f'state dict')
    state = ckpt.get('state_dict', ckpt)
    if not isinstance(state, dict) or not any(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f'checkpoint {checkpoint} holds no state dict of tensors')
    state = {(k[7:] if k.startswith('module.') else k): v for k, v in state.items()}
    own = model.state_dict()
    common = own.keys() & state.keys()
    if not common:
        raise ValueError(f'checkpoint {checkpoint} does not belong to this model: no '
                         f'parameter name in common (model: {sorted(own)[:3]}..., '
                         f'checkpoint: {sorted(state)[:3]}...)')
    shape = set()
    try:
        check_state_dict_fits(model, state, source=f'checkpoint {checkpoint}')
    except CheckpointMismatchError as err:
        if strict:
            raise CheckpointMismatchError(
                f'{err} (load_model(..., strict=False) or --allow-partial-checkpoint loads '
                'what matches)', err.missing, err.unexpected, err.mismatched) from None
        warnings.warn(f'{err}; loading what matches')
        shape = {key for key, _, _ in err.mismatched}
    model.load_state_dict({k: v for k, v in state.items() if k in common and k not in shape},
                          strict=False)
    return ckpt.get('meta') or {}


def _check_device(device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f'invalid device {device!r}: {err}') from None
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f'device {device!r} requested but CUDA is not available')
    return dev


# ----------------------------------------------------------------------- loading
def load_model(config, checkpoint: Optional[str] = None, device: str = 'cpu',
               cfg_options: Optional[dict] = None, strict: bool = True) -> 'Predictor':
    """Build the model of ``config``, load ``checkpoint`` and wrap it for inference.

    Args:
        config: Config file path (or an ``mmengine.Config``) of an MMPretrain
            classifier (``default_scope='mmpretrain'``) or an MMDetection
            detector (``'mmdet'``).
        checkpoint: Checkpoint file (an MMEngine checkpoint or a plain state
            dict, ``module.`` prefixes stripped), or a URL / MMEngine prefix
            (``https://``, ``torchvision://``, ...; downloaded into the torch
            hub cache). Always loaded weights-only. ``None`` keeps the
            constructor's random initialisation.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``, ... Default ``'cpu'``.
        cfg_options: Overrides merged into the config (as ``--cfg-options``).
        strict: Refuse a checkpoint whose parameter names or shapes differ from
            the model's (default; :func:`mmdyn.engine.check_state_dict_fits`,
            keys a layer declares optional excepted). ``False`` loads what
            matches, with a warning giving the same summary.

    Returns:
        A :class:`Predictor` in eval mode.

    Raises:
        FileNotFoundError: The config or the checkpoint does not exist.
        ValueError: Unsupported ``default_scope``, no test pipeline, a checkpoint
            that does not fit the model, or a bad device.
        RuntimeError: A corrupt or truncated checkpoint (names the file).
        mmdyn.engine.UnsafeCheckpointError: A checkpoint with pickled objects
            outside the weights-only allow-list.
    """
    cfg = _load_config(config, cfg_options)
    task = task_of_config(cfg)
    dev = _check_device(device)
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        if '://' not in checkpoint and not osp.isfile(checkpoint):
            raise FileNotFoundError(f'checkpoint file not found: {checkpoint}')
    _ensure_test_pipeline(cfg)
    from mmengine.registry import DefaultScope
    scope = cfg.get('default_scope', 'mmdet')
    with DefaultScope.overwrite_default_scope(scope):
        if task == 'classification':
            from mmpretrain.apis import get_model
            from mmpretrain.registry import DATASETS
            model = get_model(cfg, pretrained=False, device=None)
        else:
            from mmdet.apis import init_detector
            from mmdet.registry import DATASETS
            # Its "no checkpoint: COCO classes" warning does not apply (the names are
            # resolved below); record=True also swallows what its simplefilter('once') lets by.
            with warnings.catch_warnings(record=True):
                model = init_detector(cfg, checkpoint=None, palette='none', device='cpu')
        meta = _load_weights(model, checkpoint, strict) if checkpoint else {}
        classes, source = _resolve_classes(meta, cfg, _model_num_classes(model), DATASETS)
    return Predictor(cfg, model, task, classes, source, checkpoint, dev)


class Predictor:
    """A loaded classifier or detector ready for inference (see :func:`load_model`).

    Attributes:
        cfg: The (merged) config.
        model: The ``nn.Module`` in eval mode, on :attr:`device`.
        task: ``'classification'`` or ``'detection'``.
        classes: Class names, index = label.
        classes_source: Where the names came from (``'checkpoint
            meta.dataset_meta'``, ``'config test dataset metainfo'``, ...,
            ``'generated'``).
        checkpoint: The checkpoint path or ``None`` (random weights).
        device: ``torch.device``.
        temperature: Attention temperature of the model's first mmdyn layer
            (the checkpoint's value), or ``None`` for a model without one.
        config_path: The config file name.
    """

    def __init__(self, cfg, model, task: str, classes: Sequence[str], classes_source: str,
                 checkpoint: Optional[str], device: torch.device):
        from mmdyn.analysis.attention import find_a2d2c_layers
        from mmdyn.analysis.dmc_masks import find_dmc_layers
        from mmdyn.engine.hooks import apply_legacy_temperature, model_temperatures
        self.cfg = cfg
        self.task = task
        self.classes = tuple(classes)
        self.classes_source = classes_source
        self.checkpoint = checkpoint
        self.device = device
        self.config_path = cfg.filename
        self.scope = cfg.get('default_scope', 'mmdet')
        legacy = _inference_temperature(cfg)
        if legacy is not None:  # only layers whose checkpoint had no temperature
            apply_legacy_temperature(model, legacy)
        temperatures = model_temperatures(model)
        self.temperature = temperatures[0] if temperatures else None
        self.model = model.to(device).eval()
        self._layers = find_a2d2c_layers(self.model)
        self._dmc_layers = find_dmc_layers(self.model)
        self.palette = palette(len(self.classes))
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope(self.scope):
            if task == 'classification':
                from mmpretrain.apis import ImageClassificationInferencer
                # A built model: the inferencer keeps it and builds the config's
                # test pipeline (minus LoadImageFromFile) with mmpretrain's registry.
                self._inferencer = ImageClassificationInferencer(
                    self.model, pretrained=False, classes=list(self.classes))
            else:
                self.model.dataset_meta = dict(self.model.dataset_meta or {},
                                               classes=self.classes)
                self._pipeline = self._detection_pipeline()

    def __repr__(self) -> str:
        return (f'Predictor(task={self.task!r}, model={type(self.model).__name__}, '
                f'classes={len(self.classes)}, checkpoint={self.checkpoint!r}, '
                f'device={str(self.device)!r}, a2d2c_layers={len(self._layers)}, '
                f'dmc_layers={len(self._dmc_layers)})')

    # ------------------------------------------------------------ properties
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def a2d2c_layers(self) -> Dict[str, torch.nn.Module]:
        """The model's A2D2C / A2D2C+ layers by module name (empty: static model)."""
        return dict(self._layers)

    @property
    def dmc_layers(self) -> Dict[str, torch.nn.Module]:
        """The model's dynamic mask convolution (``DynamicMaskConv2d``) layers by
        module name (empty: no DMC layer)."""
        return dict(self._dmc_layers)

    @property
    def attention_layers(self) -> Dict[str, torch.nn.Module]:
        """Every layer :meth:`attention` can show: the A2D2C / A2D2C+ and the DMC
        layers, by module name in model order."""
        return {n: m for n, m in self.model.named_modules()
                if n in self._layers or n in self._dmc_layers}

    @property
    def is_dynamic(self) -> bool:
        """Whether the model has A2D2C / A2D2C+ or DMC layers (attention can be shown)."""
        return bool(self._layers) or bool(self._dmc_layers)

    def layer_kind(self, layer: str) -> str:
        """``'a2d2c'`` or ``'dmc'``: which kind of attention layer ``layer`` is.

        Raises:
            ValueError: ``layer`` is neither (the message lists the available names).
        """
        if layer in self._layers:
            return 'a2d2c'
        if layer in self._dmc_layers:
            return 'dmc'
        raise ValueError(f'{layer!r} is not an A2D2C or DMC layer of the model; available: '
                         f'{list(self.attention_layers)}')

    def _default_layer(self) -> str:
        """The first A2D2C layer, else the first DMC layer (static model: error)."""
        if self._layers:
            return next(iter(self._layers))
        if self._dmc_layers:
            return next(iter(self._dmc_layers))
        raise ValueError(f'the model of {self.config_path} has no A2D2C/A2D2C+ or DMC layer '
                         f'(static convolutions): no attention to show')

    # ------------------------------------------------------------- pipelines
    def _detection_pipeline(self):
        """The config's test pipeline for an in-memory image: the image loader
        becomes ``mmdet.LoadImageFromNDArray`` and ``LoadAnnotations`` is dropped."""
        from mmcv.transforms import Compose
        from mmdet.utils import get_test_pipeline_cfg
        steps = []
        for step in copy.deepcopy(get_test_pipeline_cfg(self.cfg)):
            kind = step['type'] if isinstance(step['type'], str) else step['type'].__name__
            base = kind.split('.')[-1]
            if 'Annotations' in base:
                continue
            if base.startswith('LoadImageFrom'):
                step = dict(type='mmdet.LoadImageFromNDArray')
            steps.append(step)
        if not any(s['type'] == 'mmdet.LoadImageFromNDArray' for s in steps):
            steps.insert(0, dict(type='mmdet.LoadImageFromNDArray'))
        return Compose(steps)

    def _model_inputs(self, img: np.ndarray) -> torch.Tensor:
        """The preprocessed batch ``(1, 3, H', W')`` the model's backbone sees."""
        if self.task == 'classification':
            data = next(iter(self._inferencer.preprocess([img], batch_size=1)))
        else:
            one = self._pipeline(dict(img=img, img_id=0))
            data = dict(inputs=[one['inputs']], data_samples=[one['data_samples']])
        return self.model.data_preprocessor(data, False)['inputs']

    # ------------------------------------------------------------- inference
    def predict(self, image: ImageInput, topk: int = 5,
                score_thr: float = 0.3) -> Result:
        """Run the model on one image.

        Args:
            image: Path or ``uint8`` BGR array (see :func:`read_image`).
            topk: Classification: how many classes to return (at most
                ``num_classes``). Default 5.
            score_thr: Detection: keep detections with ``score >= score_thr``
                (in [0, 1]). Default 0.3.

        Returns:
            :class:`ClassificationResult` or :class:`DetectionResult`.

        Raises:
            FileNotFoundError / ValueError / TypeError: a bad image
                (:func:`read_image`), ``topk`` < 1 or ``score_thr`` outside [0, 1].
        """
        from mmdyn.ops._base import check_positive_int
        check_positive_int('topk', topk)
        if isinstance(score_thr, bool) or not isinstance(score_thr, (int, float)) \
                or not 0.0 <= float(score_thr) <= 1.0:
            raise ValueError(f'score_thr must be a number in [0, 1], got {score_thr!r}')
        img = read_image(image)
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope(self.scope), torch.no_grad():
            if self.task == 'classification':
                return self._classify(img, topk)
            return self._detect(img, float(score_thr))

    def _classify(self, img: np.ndarray, topk: int) -> ClassificationResult:
        preds = []
        for data in self._inferencer.preprocess([img], batch_size=1):
            preds.extend(self._inferencer.forward(data))
        scores = preds[0].pred_score.detach().float().cpu()
        values, labels = scores.topk(min(topk, scores.numel()))
        top = [ClassScore(int(i), self.classes[int(i)], float(v))
               for v, i in zip(values.tolist(), labels.tolist())]
        return ClassificationResult(top, scores.numpy(), tuple(img.shape[:2]))

    def _detect(self, img: np.ndarray, score_thr: float) -> DetectionResult:
        from mmdet.apis import inference_detector
        sample = inference_detector(self.model, img, test_pipeline=self._pipeline)
        inst = sample.pred_instances
        scores = inst.scores.detach().float().cpu()
        keep = torch.nonzero(scores >= score_thr).flatten()
        keep = keep[scores[keep].argsort(descending=True)]
        labels = inst.labels.detach().cpu()[keep].long().numpy()
        masks = None
        if 'masks' in inst:
            masks = inst.masks.detach().cpu()[keep].bool().numpy()
        return DetectionResult(
            bboxes=inst.bboxes.detach().float().cpu()[keep].numpy().reshape(-1, 4),
            scores=scores[keep].numpy(), labels=labels,
            names=[self.classes[int(i)] for i in labels], masks=masks,
            image_shape=tuple(img.shape[:2]), score_thr=score_thr)

    # --------------------------------------------------------------- drawing
    def draw(self, image: ImageInput, result: Result, min_size: int = 256) -> np.ndarray:
        """Draw ``result`` on ``image``.

        Classification: the top-k classes and probabilities in a box at the
        top left. Detection: per detection the mask (translucent), the box and
        ``name score`` in the class colour.

        Args:
            image: The image ``result`` was predicted on (path or BGR array).
            result: From :meth:`predict`.
            min_size: The image is enlarged (nearest neighbour for >= 2x) so its
                shorter side is at least this many pixels, so that the text is
                readable on small images. Default 256.

        Returns:
            The annotated image, ``uint8`` ``(H', W', 3)`` **RGB**.
        """
        img = read_image(image)
        if tuple(img.shape[:2]) != tuple(result.image_shape):
            raise ValueError(f'image shape {img.shape[:2]} differs from the result\'s '
                             f'{tuple(result.image_shape)}')
        if isinstance(result, ClassificationResult):
            return draw_topk(img, [(c.name, c.score) for c in result.topk], min_size)
        if not isinstance(result, DetectionResult):
            raise TypeError(f'result must be a ClassificationResult or DetectionResult, '
                            f'got {type(result).__name__}')
        return draw_detections(img, result.bboxes, result.labels, result.scores, result.names,
                               result.masks, self.palette, min_size)

    # ------------------------------------------------------------- attention
    def record_attention(self, image: ImageInput, layer: Optional[str] = None,
                         sampling: Optional[str] = None, seed: int = 0):
        """Record one A2D2C or DMC layer while the backbone (and neck) run on ``image``.

        The image goes through the same test pipeline and data preprocessor as
        in :meth:`predict`; :class:`mmdyn.analysis.A2D2CAttentionRecorder`
        hooks an A2D2C layer during ``model.extract_feat``. A DMC layer is
        recorded by :meth:`record_dmc`.

        Args:
            image: Path or BGR array.
            layer: Layer name (:attr:`attention_layers`); default the first
                A2D2C layer, or the first DMC layer when there is none.
            sampling: A2D2C only. ``None`` (default) records what inference
                does (each layer's ``eval_sampling``); ``'random'``, ``'fixed'``
                or ``'none'`` temporarily set every layer's ``eval_sampling``,
                e.g. ``'random'`` to see M sampled points as in the paper's
                Fig. 4. Must be ``None`` for a DMC layer.
            seed: Seed of the point sampling (the global RNG is not disturbed).

        Returns:
            :class:`mmdyn.analysis.A2D2CRecord` or, for a DMC layer,
            :class:`mmdyn.analysis.DMCRecord` (batch of one).

        Raises:
            ValueError: A static model, an unknown layer or sampling, or a
                sampling given for a DMC layer.
        """
        from mmdyn.analysis.attention import A2D2CAttentionRecorder
        from mmdyn.ops._base import check_choice
        from mmdyn.ops.a2d2c_conv2d import SAMPLING_MODES
        name = layer or self._default_layer()
        if self.layer_kind(name) == 'dmc':
            if sampling is not None:
                raise ValueError(f'sampling={sampling!r} applies to A2D2C layers only; '
                                 f'{name!r} is a DMC layer (pass sampling=None)')
            return self.record_dmc(image, name)
        if sampling is not None:
            check_choice('sampling', sampling, SAMPLING_MODES)
        img = read_image(image)
        saved = {n: m.eval_sampling for n, m in self._layers.items()}
        devices = [self.device.index or 0] if self.device.type == 'cuda' else []
        try:
            if sampling is not None:
                for m in self._layers.values():
                    m.eval_sampling = sampling
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                rec = self._extract_feat(img, A2D2CAttentionRecorder(self.model, [name]))
        finally:
            for n, m in self._layers.items():
                m.eval_sampling = saved[n]
        if not rec.records[name]:
            raise RuntimeError(f'layer {name!r} was not called by extract_feat')
        return rec.records[name][0]

    def record_dmc(self, image: ImageInput, layer: Optional[str] = None):
        """Record one DMC layer's dynamic masks (and its block's adaptive
        enhancement maps) while the backbone (and neck) run on ``image``.

        Same preprocessing as :meth:`record_attention`;
        :class:`mmdyn.analysis.DMCMaskRecorder` captures the inputs of the
        layer and of the enhancement with forward pre-hooks during
        ``model.extract_feat`` and evaluates ``layer.masks(x)`` /
        ``attention_maps(y)`` on them under ``torch.no_grad()``.

        Args:
            image: Path or BGR array.
            layer: DMC layer name (:attr:`dmc_layers`); default the first.

        Returns:
            :class:`mmdyn.analysis.DMCRecord` (batch of one).

        Raises:
            ValueError: The model has no DMC layer, or ``layer`` is not one.
        """
        from mmdyn.analysis.dmc_masks import DMCMaskRecorder
        if not self._dmc_layers:
            raise ValueError(f'the model of {self.config_path} has no DMC '
                             f'(DynamicMaskConv2d) layer: no dynamic masks to show')
        name = layer or next(iter(self._dmc_layers))
        if name not in self._dmc_layers:
            raise ValueError(f'{name!r} is not a DMC layer of the model; available: '
                             f'{list(self._dmc_layers)}')
        rec = self._extract_feat(read_image(image), DMCMaskRecorder(self.model, name))
        if not rec.records:
            raise RuntimeError(f'layer {name!r} was not called by extract_feat')
        return rec.records[0]

    def _extract_feat(self, img: np.ndarray, recorder):
        """Run ``model.extract_feat`` on the preprocessed ``img`` (no grad, in the
        config's scope) inside the ``recorder`` context; return the recorder."""
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope(self.scope), torch.no_grad():
            inputs = self._model_inputs(img)
            with recorder:
                self.model.extract_feat(inputs)
        return recorder

    def attention(self, image: ImageInput, layer: Optional[str] = None,
                  sampling: Optional[str] = None, seed: int = 0,
                  layout: str = 'row') -> Optional[np.ndarray]:
        """Figure of what one A2D2C or DMC layer does on ``image``, or ``None``
        for a static model.

        An A2D2C layer gives :func:`draw_attention_figure` (sampled points and
        attention π), a DMC layer :func:`draw_dmc_figure` (each branch's
        dynamic mask, and the block's enhancement pixel and channel attention);
        ``layout`` is 'row' or 'grid'. The default layer is the first A2D2C
        layer, else the first DMC layer.

        Other arguments as :meth:`record_attention` (``sampling`` must be
        ``None`` for a DMC layer). Returns an RGB ``uint8`` array.
        """
        if not self.is_dynamic:
            return None
        from mmdyn.ops._base import check_choice
        check_choice('layout', layout, ('row', 'grid'))
        img = read_image(image)  # read once: recorded and drawn
        record = self.record_attention(img, layer, sampling, seed)
        rgb = img[..., ::-1]
        if self.layer_kind(record.name) == 'dmc':
            kind = type(self._dmc_layers[record.name]).__name__
            return draw_dmc_figure(rgb, record, title=f'{record.name} ({kind})', layout=layout)
        kind = type(self._layers[record.name]).__name__
        return draw_attention_figure(rgb, record, title=f'{record.name} ({kind})',
                                     layout=layout)
