"""Inference with an MMPretrain classifier (``default_scope='mmpretrain'``).

Preprocessing is MMPretrain's own: ``get_model`` builds the model and
``ImageClassificationInferencer`` runs the config's test pipeline (without
``LoadImageFromFile``) on an in-memory BGR image.
"""
import copy
from typing import Tuple

import numpy as np
import torch

from .predictor import Predictor
from .results import ClassificationResult, ClassScore

__all__ = ['ClassificationPredictor']


class ClassificationPredictor(Predictor):
    """A loaded MMPretrain classifier (see :class:`~mmdyn.apis.Predictor`);
    :meth:`predict` returns a :class:`~mmdyn.apis.ClassificationResult`."""
    task = 'classification'
    scope = 'mmpretrain'
    default_dataset_type = 'CustomDataset'
    result_type = ClassificationResult

    @classmethod
    def build_model(cls, cfg) -> torch.nn.Module:
        from mmpretrain.apis import get_model
        return get_model(cfg, pretrained=False, device=None)

    @classmethod
    def dataset_registry(cls):
        from mmpretrain.registry import DATASETS
        return DATASETS

    def _setup(self) -> None:
        from mmpretrain.apis import ImageClassificationInferencer
        # A built model: the inferencer keeps it and builds the config's test
        # pipeline (minus LoadImageFromFile) with mmpretrain's registry.
        self._inferencer = ImageClassificationInferencer(self.model, pretrained=False,
                                                         classes=list(self.classes))

    def _model_inputs(self, img: np.ndarray) -> torch.Tensor:
        data = next(iter(self._inferencer.preprocess([img], batch_size=1)))
        return self.model.data_preprocessor(data, False)['inputs']

    def _predict(self, img: np.ndarray, topk: int, score_thr: float) -> ClassificationResult:
        preds = []
        for data in self._inferencer.preprocess([img], batch_size=1):
            preds.extend(self._inferencer.forward(data))
        scores = preds[0].pred_score.detach().float().cpu()
        values, labels = scores.topk(min(topk, scores.numel()))
        top = [ClassScore(int(i), self.classes[int(i)], float(v))
               for v, i in zip(values.tolist(), labels.tolist())]
        return ClassificationResult(top, scores.numpy(), tuple(img.shape[:2]))

    def predict_test_set(self) -> Tuple[np.ndarray, np.ndarray, Tuple[str, ...]]:
        """Run the config's ``test_dataloader`` through the model (its
        ``test_step``, as ``tools/test.py``).

        Returns:
            ``(pred_labels, gt_labels, classes)``: two int64 arrays ``(N,)``
            (top-1 and single ground-truth label per image) and the class
            names: the test dataset's metainfo when it has as many names as the
            model has classes, else :attr:`classes`.

        Raises:
            ValueError: The config has no test dataloader.
            FileNotFoundError: The test data is not on disk
                (:func:`mmdyn.datasets.check_dataset_paths`).
        """
        from mmengine.registry import DefaultScope
        from mmengine.runner import Runner

        from mmdyn.datasets import check_dataset_paths
        cfg = self.cfg
        if not cfg.get('test_dataloader') or not cfg.test_dataloader.get('dataset'):
            raise ValueError(f'config {self.config_path} has no test_dataloader to evaluate')
        check_dataset_paths(cfg, splits=('test', ))
        preds, gts = [], []
        with DefaultScope.overwrite_default_scope(self.scope):
            loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader))
            with torch.no_grad():
                for batch in loader:
                    for sample in self.model.test_step(batch):
                        preds.append(int(sample.pred_score.argmax()))
                        gts.append(int(sample.gt_label.flatten()[0]))
        names = tuple(loader.dataset.metainfo.get('classes') or ())
        classes = names if len(names) == self.num_classes else self.classes
        return np.array(preds, dtype=np.int64), np.array(gts, dtype=np.int64), tuple(classes)
