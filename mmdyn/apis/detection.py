"""Inference with an MMDetection detector (``default_scope='mmdet'``, also a
config without ``default_scope``, as ``tools/train.py``).

Preprocessing is MMDetection's own: ``init_detector`` builds the model and
``inference_detector`` runs the config's test pipeline with
``LoadImageFromNDArray`` and without ``LoadAnnotations`` (an arbitrary image
has no ground truth).
"""
import copy
import warnings

import numpy as np
import torch

from .predictor import Predictor
from .results import DetectionResult

__all__ = ['DetectionPredictor']


class DetectionPredictor(Predictor):
    """A loaded MMDetection detector (see :class:`~mmdyn.apis.Predictor`);
    :meth:`predict` returns a :class:`~mmdyn.apis.DetectionResult` with the
    detections of score >= ``score_thr``."""
    task = 'detection'
    scope = 'mmdet'
    default_dataset_type = 'BaseDetDataset'
    result_type = DetectionResult
    uses_score_thr = True

    @classmethod
    def build_model(cls, cfg) -> torch.nn.Module:
        from mmdet.apis import init_detector

        # Its "no checkpoint: COCO classes" warning does not apply (the names are
        # resolved by load_model); record=True also swallows what its
        # simplefilter('once') lets by.
        with warnings.catch_warnings(record=True):
            return init_detector(cfg, checkpoint=None, palette='none', device='cpu')

    @classmethod
    def dataset_registry(cls):
        from mmdet.registry import DATASETS
        return DATASETS

    def _setup(self) -> None:
        self.model.dataset_meta = dict(self.model.dataset_meta or {}, classes=self.classes)
        self._pipeline = self._test_pipeline()

    def _test_pipeline(self):
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
        one = self._pipeline(dict(img=img, img_id=0))
        data = dict(inputs=[one['inputs']], data_samples=[one['data_samples']])
        return self.model.data_preprocessor(data, False)['inputs']

    def _predict(self, img: np.ndarray, topk: int, score_thr: float) -> DetectionResult:
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
