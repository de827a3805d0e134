"""The base :class:`Predictor`: a loaded model ready for inference.

Everything that does not depend on the task lives here: argument checks and
image reading of :meth:`Predictor.predict`, drawing a result, and showing what
the model's A2D2C / A2D2C+ and dynamic mask convolution (DMC) layers do on an
image. A task subclass (:class:`~mmdyn.apis.ClassificationPredictor`,
:class:`~mmdyn.apis.DetectionPredictor`) builds the model, preprocesses an
image for it and turns its output into a result; :func:`mmdyn.apis.load_model`
picks the subclass from the config's ``default_scope``.

Conventions: images given to a predictor are BGR (:func:`mmdyn.apis.read_image`);
every image it returns (:meth:`Predictor.draw`, :meth:`Predictor.attention`) is
RGB, as everything of :mod:`mmdyn.apis.drawing`.
"""
import contextlib
import os
from abc import ABC, abstractmethod
from typing import Dict, Iterator, Optional, Sequence, Type

import numpy as np
import torch

from mmdyn.utils.validation import check_choice, check_number, check_positive_int
from .drawing import draw_attention_figure, draw_dmc_figure, palette
from .images import ImageInput, read_image
from .results import ClassificationResult, DetectionResult, Result

__all__ = ['Predictor']


def _inference_temperature(cfg) -> Optional[float]:
    """``end_temperature`` of the config's ``TemperatureAnnealHook``, if any (used
    only for layers loaded from a checkpoint without a stored temperature)."""
    from mmdyn.engine.hooks import find_hook_cfg
    hook = find_hook_cfg(cfg, 'TemperatureAnnealHook')
    return None if hook is None else float(hook.get('end_temperature', 1.0))


#: The most pixels :meth:`Predictor.draw` lets the longer side of an image grow to
#: when it enlarges a small image for readable text (a 10x10000 image is not enlarged
#: to 256x256000).
MAX_DRAW_SIZE = 4096


def _image_name(image: ImageInput) -> str:
    """``image`` for a message: its path, or ``'the image array'``."""
    return os.fspath(image) if isinstance(image, (str, os.PathLike)) else 'the image array'


@contextlib.contextmanager
def _pipeline_errors(image: ImageInput, img: np.ndarray) -> Iterator[None]:
    """Turn an OpenCV error of the test pipeline on ``img`` (e.g. resizing an image
    of extreme aspect ratio) into a one-line ``ValueError`` naming the image."""
    import cv2
    try:
        yield
    except cv2.error as err:
        h, w = img.shape[:2]
        detail = next((line.split('error:', 1)[-1].strip()
                       for line in str(err).splitlines() if line.strip()), 'OpenCV error')
        raise ValueError(
            f'cannot predict {_image_name(image)}: the test pipeline fails on its {w}x{h} '
            f'pixels (aspect ratio {max(h, w) / min(h, w):.0f}:1): {detail}') from None


class Predictor(ABC):
    """A loaded classifier or detector ready for inference (see
    :func:`mmdyn.apis.load_model`).

    Subclasses set the class attributes and implement :meth:`build_model`,
    :meth:`dataset_registry`, :meth:`_setup`, :meth:`_model_inputs` and
    :meth:`_predict`.

    Class attributes:
        task: ``'classification'`` or ``'detection'``.
        scope: The config ``default_scope`` (registry) of the task.
        default_dataset_type: Dataset type used when a config gives only a
            top-level ``test_pipeline``.
        result_type: The :class:`~mmdyn.apis.Result` subclass :meth:`predict`
            returns (its ``COLUMNS`` head a table of results).
        uses_score_thr: Whether :meth:`predict`'s ``score_thr`` applies.

    Attributes:
        cfg: The (merged) config.
        model: The ``nn.Module`` in eval mode, on :attr:`device`.
        classes: Class names, index = label.
        classes_source: Where the names came from (``'checkpoint
            meta.dataset_meta'``, ``'config test dataset metainfo'``, ...,
            ``'generated'``).
        checkpoint: The checkpoint path or ``None`` (random weights).
        device: ``torch.device``.
        temperature: Attention temperature of the model's first mmdyn layer
            (the checkpoint's value), or ``None`` for a model without one.
        config_path: The config file name.
        palette: One RGB colour per class.
    """
    task: str
    scope: str
    default_dataset_type: str
    result_type: Type[Result]
    uses_score_thr: bool = False

    def __init__(self, cfg, model, classes: Sequence[str], classes_source: str,
                 checkpoint: Optional[str], device: torch.device):
        from mmengine.registry import DefaultScope

        from mmdyn.analysis.attention import find_a2d2c_layers
        from mmdyn.analysis.dmc_masks import find_dmc_layers
        from mmdyn.engine.hooks import apply_legacy_temperature, model_temperatures
        self.cfg = cfg
        self.classes = tuple(classes)
        self.classes_source = classes_source
        self.checkpoint = checkpoint
        self.device = device
        self.config_path = cfg.filename
        legacy = _inference_temperature(cfg)
        if legacy is not None:  # only layers whose checkpoint had no temperature
            apply_legacy_temperature(model, legacy)
        temperatures = model_temperatures(model)
        self.temperature = temperatures[0] if temperatures else None
        self.model = model.to(device).eval()
        self._layers = {'a2d2c': find_a2d2c_layers(self.model),
                        'dmc': find_dmc_layers(self.model)}
        self.palette = palette(len(self.classes))
        with DefaultScope.overwrite_default_scope(self.scope):
            self._setup()

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(task={self.task!r}, model={type(self.model).__name__}, '
                f'classes={len(self.classes)}, checkpoint={self.checkpoint!r}, '
                f'device={str(self.device)!r}, a2d2c_layers={len(self.a2d2c_layers)}, '
                f'dmc_layers={len(self.dmc_layers)})')

    # ------------------------------------------------------- task interface
    @classmethod
    @abstractmethod
    def build_model(cls, cfg) -> torch.nn.Module:
        """The model of ``cfg`` on the CPU, with random weights (called in the
        task's registry scope)."""

    @classmethod
    @abstractmethod
    def dataset_registry(cls):
        """The task's ``DATASETS`` registry (for a dataset type's ``METAINFO``)."""

    @abstractmethod
    def _setup(self) -> None:
        """Prepare the preprocessing (called once, in the task's registry scope)."""

    @abstractmethod
    def _model_inputs(self, img: np.ndarray) -> torch.Tensor:
        """The preprocessed batch ``(1, 3, H', W')`` the model's backbone sees."""

    @abstractmethod
    def _predict(self, img: np.ndarray, topk: int, score_thr: float) -> Result:
        """The result for the BGR image ``img`` (no grad, in the task's scope)."""

    # ------------------------------------------------------------ properties
    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def a2d2c_layers(self) -> Dict[str, torch.nn.Module]:
        """The model's A2D2C / A2D2C+ layers by module name (empty: static model)."""
        return dict(self._layers['a2d2c'])

    @property
    def dmc_layers(self) -> Dict[str, torch.nn.Module]:
        """The model's dynamic mask convolution (``DynamicMaskConv2d``) layers by
        module name (empty: no DMC layer)."""
        return dict(self._layers['dmc'])

    @property
    def attention_layers(self) -> Dict[str, torch.nn.Module]:
        """Every layer :meth:`attention` can show: the A2D2C / A2D2C+ and the DMC
        layers, by module name in model order."""
        return {n: m for n, m in self.model.named_modules()
                if any(n in layers for layers in self._layers.values())}

    @property
    def is_dynamic(self) -> bool:
        """Whether the model has A2D2C / A2D2C+ or DMC layers (attention can be shown)."""
        return any(self._layers.values())

    def layer_kind(self, layer: str) -> str:
        """``'a2d2c'`` or ``'dmc'``: which kind of attention layer ``layer`` is.

        Raises:
            ValueError: ``layer`` is neither (the message lists the available names).
        """
        for kind, layers in self._layers.items():
            if layer in layers:
                return kind
        raise ValueError(f'{layer!r} is not an A2D2C or DMC layer of the model; available: '
                         f'{list(self.attention_layers)}')

    def _default_layer(self) -> str:
        """The first A2D2C layer, else the first DMC layer (static model: error)."""
        for layers in self._layers.values():
            if layers:
                return next(iter(layers))
        raise ValueError(f'the model of {self.config_path} has no A2D2C/A2D2C+ or DMC layer '
                         f'(static convolutions): no attention to show')

    # ------------------------------------------------------------- inference
    def predict(self, image: ImageInput, topk: int = 5, score_thr: float = 0.3) -> Result:
        """Run the model on one image.

        Args:
            image: Path or ``uint8`` BGR array (see :func:`mmdyn.apis.read_image`).
            topk: Classification: how many classes to return (at most
                ``num_classes``). Default 5.
            score_thr: Detection: keep detections with ``score >= score_thr``
                (in [0, 1]). Default 0.3.

        Returns:
            :class:`~mmdyn.apis.ClassificationResult` or
            :class:`~mmdyn.apis.DetectionResult`.

        Raises:
            FileNotFoundError / ValueError / TypeError: a bad image
                (:func:`mmdyn.apis.read_image`), ``topk`` < 1 or ``score_thr``
                outside [0, 1]; ``ValueError`` also for an image the config's
                test pipeline cannot take (an OpenCV error, e.g. a 10000x10 image
                whose short side a keep-ratio resize makes 0 pixels), naming it.
        """
        from mmengine.registry import DefaultScope
        check_positive_int('topk', topk)
        score_thr = check_number('score_thr', score_thr, low=0.0)
        if score_thr > 1.0:
            raise ValueError(f'score_thr must be a number in [0, 1], got {score_thr!r}')
        img = read_image(image)
        with DefaultScope.overwrite_default_scope(self.scope), torch.no_grad(), \
                _pipeline_errors(image, img):
            return self._predict(img, topk, score_thr)

    def draw(self, image: ImageInput, result: Result, min_size: int = 256) -> np.ndarray:
        """Draw ``result`` on ``image`` (:meth:`Result.draw`).

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
            The annotated image, ``uint8`` ``(H', W', 3)`` **RGB**. The enlargement
            stops where the longer side would pass :data:`MAX_DRAW_SIZE` (an
            image of extreme aspect ratio is drawn at its own size).
        """
        img = read_image(image)
        if tuple(img.shape[:2]) != tuple(result.image_shape):
            raise ValueError(f'image shape {img.shape[:2]} differs from the result\'s '
                             f'{tuple(result.image_shape)}')
        if not isinstance(result, (ClassificationResult, DetectionResult)):
            raise TypeError(f'result must be a ClassificationResult or DetectionResult, '
                            f'got {type(result).__name__}')
        short, long = sorted(img.shape[:2])
        min_size = min(min_size, max(short, MAX_DRAW_SIZE * short // long))
        return result.draw(img[..., ::-1], self.palette, min_size)

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
        layers = self._layers['a2d2c']
        saved = {n: m.eval_sampling for n, m in layers.items()}
        devices = [self.device.index or 0] if self.device.type == 'cuda' else []
        try:
            if sampling is not None:
                for m in layers.values():
                    m.eval_sampling = sampling
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed)
                rec = self._extract_feat(img, A2D2CAttentionRecorder(self.model, [name]))
        finally:
            for n, m in layers.items():
                m.eval_sampling = saved[n]
        return self._first_record(rec, name)

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
        layers = self._layers['dmc']
        if not layers:
            raise ValueError(f'the model of {self.config_path} has no DMC '
                             f'(DynamicMaskConv2d) layer: no dynamic masks to show')
        name = layer or next(iter(layers))
        if name not in layers:
            raise ValueError(f'{name!r} is not a DMC layer of the model; available: '
                             f'{list(layers)}')
        rec = self._extract_feat(read_image(image), DMCMaskRecorder(self.model, name))
        return self._first_record(rec, name)

    @staticmethod
    def _first_record(recorder, name: str):
        """The first record of layer ``name`` (``recorder.records``: name -> list)."""
        if not recorder.records[name]:
            raise RuntimeError(f'layer {name!r} was not called by extract_feat')
        return recorder.records[name][0]

    def _extract_feat(self, img: np.ndarray, recorder):
        """Run ``model.extract_feat`` on the preprocessed ``img`` (no grad, in the
        config's scope) inside the ``recorder`` context; return the recorder."""
        from mmengine.registry import DefaultScope
        with DefaultScope.overwrite_default_scope(self.scope), torch.no_grad(), \
                _pipeline_errors('the image', img):
            inputs = self._model_inputs(img)
            with recorder:
                self.model.extract_feat(inputs)
        return recorder

    def attention(self, image: ImageInput, layer: Optional[str] = None,
                  sampling: Optional[str] = None, seed: int = 0,
                  layout: str = 'row') -> Optional[np.ndarray]:
        """Figure of what one A2D2C or DMC layer does on ``image``, or ``None``
        for a static model.

        An A2D2C layer gives :func:`mmdyn.apis.draw_attention_figure` (sampled
        points and attention π), a DMC layer :func:`mmdyn.apis.draw_dmc_figure`
        (each branch's dynamic mask, and the block's enhancement pixel and
        channel attention); ``layout`` is 'row' or 'grid'. The default layer is
        the first A2D2C layer, else the first DMC layer.

        Other arguments as :meth:`record_attention` (``sampling`` must be
        ``None`` for a DMC layer). Returns an RGB ``uint8`` array.
        """
        if not self.is_dynamic:
            return None
        check_choice('layout', layout, ('row', 'grid'))
        img = read_image(image)  # read once: recorded and drawn
        record = self.record_attention(img, layer, sampling, seed)
        kind = self.layer_kind(record.name)
        draw = draw_dmc_figure if kind == 'dmc' else draw_attention_figure
        title = f'{record.name} ({type(self._layers[kind][record.name]).__name__})'
        return draw(img[..., ::-1], record, title=title, layout=layout)
