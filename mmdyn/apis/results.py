"""What :meth:`mmdyn.apis.Predictor.predict` returns: one result type per task.

Each result knows how to present itself, so that the tools never branch on the
task: :meth:`Result.to_dict` (JSON), :meth:`Result.to_text` (the lines
``tools/predict.py`` prints), :meth:`Result.table_rows` / :attr:`Result.COLUMNS`
(the table of ``tools/predict_gui.py``), :meth:`Result.headline` /
:meth:`Result.status` (short summaries) and :meth:`Result.draw` (the annotated
image, RGB in and out as everything in :mod:`mmdyn.apis.drawing`).
"""
from dataclasses import dataclass, field
from typing import ClassVar, List, Optional, Sequence, Tuple

import numpy as np

from .drawing import draw_detections, draw_topk, format_probability

__all__ = ['ClassScore', 'ClassificationResult', 'DetectionResult', 'Result']

#: One table row: class name, score, and a box text (``None`` without boxes).
Row = Tuple[str, float, Optional[str]]


class Result:
    """Interface of the prediction results (see the module docstring).

    Attributes:
        COLUMNS: Headers of :meth:`table_rows`' columns.
        SHOW_ANNOTATED: Whether a view that also shows the table should show the
            annotated image (``True``: the boxes and masks are not in the table)
            or the plain image (``False``: the drawing only repeats the table).
    """
    COLUMNS: ClassVar[Tuple[str, ...]] = ()
    SHOW_ANNOTATED: ClassVar[bool] = True

    def to_dict(self) -> dict:
        """JSON-serialisable summary."""
        raise NotImplementedError

    def to_text(self) -> str:
        """Indented lines describing the result (``tools/predict.py``)."""
        raise NotImplementedError

    def table_rows(self) -> List[Row]:
        """One ``(name, score, box text or None)`` row per class or detection."""
        raise NotImplementedError

    def headline(self) -> str:
        """The result in a few words (large label of a view)."""
        raise NotImplementedError

    def status(self) -> str:
        """A one-line summary (status bar)."""
        raise NotImplementedError

    def draw(self, rgb: np.ndarray, colours: Sequence[Tuple[int, int, int]],
             min_size: int = 256) -> np.ndarray:
        """The result drawn on its image ``rgb`` (``uint8`` RGB); returns RGB.

        Args:
            rgb: The image the result was predicted on, RGB.
            colours: RGB colour per class (:func:`mmdyn.apis.palette`).
            min_size: The image is enlarged so its shorter side is at least this.
        """
        raise NotImplementedError


@dataclass
class ClassScore:
    """One class of a classification: index, name and probability."""
    label: int
    name: str
    score: float

    def to_dict(self) -> dict:
        return dict(label=self.label, name=self.name, score=self.score)


@dataclass
class ClassificationResult(Result):
    """Prediction of a classifier for one image.

    Attributes:
        topk: The ``k`` most probable classes, most probable first.
        scores: Probabilities of all classes ``(num_classes,)`` (the head's
            softmax: they sum to 1).
        image_shape: ``(H, W)`` of the input image.
    """
    COLUMNS: ClassVar[Tuple[str, ...]] = ('Class', 'Probability')
    SHOW_ANNOTATED: ClassVar[bool] = False

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

    def to_text(self) -> str:
        return '\n'.join(f'  {i + 1}. {c.name} (label {c.label}): {format_probability(c.score)}'
                         for i, c in enumerate(self.topk))

    def table_rows(self) -> List[Row]:
        return [(c.name, c.score, None) for c in self.topk]

    def headline(self) -> str:
        return f'{self.pred_name}  ({100 * self.pred_score:.2f}%)'

    def status(self) -> str:
        return f'top-1 {self.pred_name} ({self.pred_score:.3f})'

    def draw(self, rgb, colours=(), min_size=256):
        """The top-k classes and probabilities in a box at the top left
        (:func:`mmdyn.apis.draw_topk`; ``colours`` unused). RGB in and out."""
        return draw_topk(rgb, [(c.name, c.score) for c in self.topk], min_size)


@dataclass
class DetectionResult(Result):
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
    COLUMNS: ClassVar[Tuple[str, ...]] = ('Class', 'Score', 'Box (x1, y1, x2, y2)')

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

    def to_text(self) -> str:
        if not len(self):
            return f'  no detection with score >= {self.score_thr:g}'
        lines = []
        for i in range(len(self)):
            x1, y1, x2, y2 = self.bboxes[i]
            area = '' if self.masks is None else f'  mask {int(self.masks[i].sum())} px'
            lines.append(f'  {self.names[i]} (label {int(self.labels[i])}) '
                         f'{self.scores[i]:.3f}  box [{x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}]'
                         f'{area}')
        return '\n'.join(lines)

    def table_rows(self) -> List[Row]:
        return [(self.names[i], float(self.scores[i]),
                 ', '.join(f'{v:.0f}' for v in self.bboxes[i])) for i in range(len(self))]

    def headline(self) -> str:
        return f'{len(self)} detection(s)'

    def status(self) -> str:
        return f'{len(self)} detection(s) with score >= {self.score_thr:g}'

    def draw(self, rgb, colours, min_size=256):
        """Per detection the mask (translucent), the box and ``name score`` in the
        class colour (:func:`mmdyn.apis.draw_detections`). RGB in and out."""
        return draw_detections(rgb, self.bboxes, self.labels, self.scores, self.names,
                               self.masks, colours, min_size)
