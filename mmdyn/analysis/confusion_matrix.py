"""Confusion matrix and per-class accuracy of a classifier: labels from a
prediction dump, the counts, a text report, a JSON-ready summary, CSV and a
matplotlib figure (``tools/analysis_tools/confusion_matrix.py``).

The matrix has rows = true class and columns = predicted class, as
``mmpretrain.evaluation.ConfusionMatrix``.
"""
import csv
import os
import os.path as osp
from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ['confusion_matrix', 'format_report', 'labels_from_results', 'load_prediction_dump',
           'per_class_accuracy', 'plot_confusion_matrix', 'row_normalized', 'summarize',
           'write_csv']


def labels_from_results(items, source: str) -> Tuple[np.ndarray, np.ndarray, Optional[int]]:
    """Predicted and true labels of a classifier's prediction dump.

    Args:
        items: What :func:`mmdyn.engine.result_files.load_results` read: one
            dict per test image with ``gt_label`` and ``pred_score`` or
            ``pred_label`` (MMEngine's ``DumpResults``).
        source: The file name, for the messages.

    Returns:
        ``(pred_labels, gt_labels, num_classes)``: two int64 arrays ``(N,)`` and
        the number of classes (``None`` if the dump has only labels and no
        ``num_classes``).

    Raises:
        ValueError: Not a classification dump (empty, detection results, ...).
    """
    import torch
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(f'{source} is not a prediction dump of tools/test.py --out: expected '
                         f'a non-empty list of per-image dicts, got {type(items).__name__}')
    preds, gts, num_classes = [], [], None
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f'{source}: item {i} is a {type(item).__name__}, not a dict')
        if 'pred_instances' in item:
            raise ValueError(f'{source} holds detection results (pred_instances); '
                             f'the confusion matrix is for classification only')
        if 'gt_label' not in item or ('pred_score' not in item and 'pred_label' not in item):
            raise ValueError(f'{source}: item {i} has keys {sorted(item)}; a classification '
                             f'dump needs gt_label and pred_score or pred_label')
        if item.get('pred_score') is not None:
            score = torch.as_tensor(item['pred_score']).flatten()
            preds.append(int(score.argmax()))
            num_classes = int(score.numel())
        else:
            preds.append(int(torch.as_tensor(item['pred_label']).flatten()[0]))
        gt = torch.as_tensor(item['gt_label']).flatten()
        if gt.numel() != 1:
            raise ValueError(f'{source}: item {i} has {gt.numel()} ground-truth labels; only '
                             f'single-label classification is supported')
        gts.append(int(gt[0]))
        if num_classes is None and item.get('num_classes') is not None:
            num_classes = int(item['num_classes'])
    return np.array(preds, dtype=np.int64), np.array(gts, dtype=np.int64), num_classes


def load_prediction_dump(path: str) -> Tuple[np.ndarray, np.ndarray, Optional[int]]:
    """Read a ``tools/test.py --out`` dump of a classifier safely
    (:func:`mmdyn.engine.result_files.load_results`) and return
    :func:`labels_from_results` of it.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        pickle.UnpicklingError: The file references objects outside the allow-list.
        ValueError: Not a classification dump, e.g. a checkpoint (saying what to
            pass instead).
    """
    import zipfile

    from mmdyn.engine.result_files import load_results
    if osp.isfile(path) and zipfile.is_zipfile(path):  # torch.save's format, never a dump's
        raise _checkpoint_error(path)
    items = load_results(path)
    if _is_legacy_torch_file(items) or (isinstance(items, dict) and 'state_dict' in items):
        raise _checkpoint_error(path)
    return labels_from_results(items, path)


def _is_legacy_torch_file(first) -> bool:
    """Whether ``first``, the first object unpickled from a file, is the magic number
    that opens a ``torch.save(..., _use_new_zipfile_serialization=False)`` file."""
    import torch
    return type(first) is int and first == torch.serialization.MAGIC_NUMBER


def _checkpoint_error(path: str) -> ValueError:
    return ValueError(
        f'{path} is a checkpoint, not a results file: pass it as CHECKPOINT '
        f'(confusion_matrix.py CONFIG {path}), or give --results the prediction dump of '
        'tools/test.py CONFIG CHECKPOINT --out RESULTS.pkl')


def confusion_matrix(preds: np.ndarray, gts: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` int64 counts, rows = true class, columns = predicted class
    (``mmpretrain.evaluation.ConfusionMatrix.calculate``).

    Raises:
        ValueError: A label outside ``[0, num_classes)``.
    """
    import torch
    from mmpretrain.evaluation import ConfusionMatrix
    for name, labels in (('predicted', preds), ('ground-truth', gts)):
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f'{name} labels outside [0, {num_classes}): '
                             f'min {labels.min()}, max {labels.max()}')
    matrix = ConfusionMatrix.calculate(torch.as_tensor(preds), torch.as_tensor(gts),
                                       num_classes=num_classes)
    return matrix.numpy().astype(np.int64)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """Recall per true class (diagonal / row sum); NaN for classes without samples."""
    support = matrix.sum(1)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(support > 0, np.diag(matrix) / np.maximum(support, 1), np.nan)


def row_normalized(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the fraction of the true class; empty rows 0)."""
    support = matrix.sum(1, keepdims=True)
    return matrix / np.maximum(support, 1)


def summarize(matrix: np.ndarray, classes: Sequence[str]) -> dict:
    """JSON-serialisable summary: ``classes``, ``num_samples``, ``accuracy``,
    ``matrix``, ``normalized`` (:func:`row_normalized`), ``support`` and
    ``per_class_accuracy`` (``None`` for a class without samples)."""
    acc = per_class_accuracy(matrix)
    return dict(classes=list(classes), num_samples=int(matrix.sum()),
                accuracy=float(np.trace(matrix) / matrix.sum()),
                matrix=matrix.tolist(), normalized=row_normalized(matrix).tolist(),
                support=matrix.sum(1).tolist(),
                per_class_accuracy=[None if np.isnan(a) else float(a) for a in acc])


def write_csv(matrix: np.ndarray, classes: Sequence[str], path: str) -> None:
    """The counts as CSV: a header of predicted classes, one row per true class."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['true \\ predicted'] + list(classes))
        for name, row in zip(classes, matrix.tolist()):
            writer.writerow([name] + row)


def plot_confusion_matrix(matrix: np.ndarray, classes: Sequence[str], out: str,
                          normalize: bool = False, show_names: bool = False,
                          values: str = 'auto', title: str = '') -> None:
    """Draw the matrix to ``out`` (PNG, matplotlib Agg).

    The figure grows with the number of classes and the tick font shrinks
    (11 pt up to 32 classes, 8.4 pt for 43, 6 pt from 60), names are rotated 90° on
    the x axis; cell values are written for up to 20 classes (``values='auto'``).

    Args:
        matrix: ``(C, C)`` counts.
        classes: ``C`` class names.
        out: Output PNG path.
        normalize: Colour (and write) values normalised per true class.
        show_names: Class names on the axes (default: class indices).
        values: ``'auto'``, ``'on'`` or ``'off'``: the values in the cells.
        title: Figure title (default: the number of images and the accuracy).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    num = matrix.shape[0]
    shown = row_normalized(matrix) if normalize else matrix
    labels = [str(c) for c in classes] if show_names else [str(i) for i in range(num)]
    longest = max(len(s) for s in labels) if show_names else 2
    tick_font = float(np.clip(360.0 / max(num, 1), 6.0, 11.0))
    side = float(np.clip(0.3 * num + 3.0, 6.0, 24.0))
    margin = min(0.09 * longest * tick_font / 10.0, 3.0)  # room for long names
    fig = Figure(figsize=(side + margin + 1.2, side + margin), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(shown, interpolation='nearest', cmap='Blues',
                   vmin=0, vmax=1 if normalize else max(int(shown.max()), 1))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                 label='fraction of the true class' if normalize else 'images')
    ax.set_xticks(range(num))
    ax.set_yticks(range(num))
    ax.set_xticklabels(labels, fontsize=tick_font, rotation=90 if show_names else 0)
    ax.set_yticklabels(labels, fontsize=tick_font)
    ax.set_xlabel('predicted class', fontsize=tick_font + 2)
    ax.set_ylabel('true class', fontsize=tick_font + 2)
    if values == 'on' or (values == 'auto' and num <= 20):
        threshold = (shown.max() + shown.min()) / 2.0
        cell_font = float(np.clip(200.0 / max(num, 1), 4.0, 10.0))
        for i in range(num):
            for j in range(num):
                text = f'{shown[i, j]:.2f}' if normalize else f'{int(shown[i, j])}'
                ax.text(j, i, text, ha='center', va='center', fontsize=cell_font,
                        color='white' if shown[i, j] > threshold else 'black')
    total = int(matrix.sum())
    acc = np.trace(matrix) / max(total, 1)
    ax.set_title(title or f'confusion matrix: {total} images, accuracy {100 * acc:.2f}%',
                 fontsize=tick_font + 3)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
    fig.savefig(out)


def format_report(matrix: np.ndarray, classes: Sequence[str]) -> str:
    """Per-class support / correct / accuracy table and the overall accuracy."""
    acc = per_class_accuracy(matrix)
    width = max(12, max(len(str(c)) for c in classes) + 2)
    lines = [f'{"id":>4}  {"class":<{width}}{"support":>8}{"correct":>9}{"accuracy":>10}']
    for i, name in enumerate(classes):
        text = 'n/a' if np.isnan(acc[i]) else f'{100 * acc[i]:.2f}%'
        lines.append(f'{i:>4}  {str(name):<{width}}{int(matrix[i].sum()):>8}'
                     f'{int(matrix[i, i]):>9}{text:>10}')
    total = int(matrix.sum())
    correct = int(np.trace(matrix))
    valid = acc[~np.isnan(acc)]
    mean = f'{100 * valid.mean():.2f}%' if len(valid) else 'n/a'
    lines.append(f'overall accuracy: {100 * correct / max(total, 1):.2f}% ({correct}/{total}); '
                 f'mean per-class accuracy: {mean}')
    return '\n'.join(lines)
