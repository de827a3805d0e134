"""Confusion matrix and per-class accuracy of a classifier (MMPretrain configs).

Usage::

    python tools/confusion_matrix.py CONFIG CHECKPOINT [--out cm.png] [options]
    python tools/confusion_matrix.py CONFIG --results RESULTS.pkl [--out cm.png] [options]

    options: [--normalize] [--show-names] [--values {auto,on,off}]
             [--json [FILE]] [--csv [FILE]] [--device cpu] [--cfg-options ...]
             [--allow-partial-checkpoint]

With ``CHECKPOINT`` the config's ``test_dataloader`` is run through the model
(loaded with :func:`mmdyn.apis.load_model`: same preprocessing and attention
temperature as ``tools/test.py``; a checkpoint that does not fit the model is
refused unless ``--allow-partial-checkpoint``). With ``--results`` the predictions come from
a dump written by ``tools/test.py CONFIG CHECKPOINT --out RESULTS.pkl`` (MMEngine's
``DumpResults``: one dict per test image with ``gt_label`` and ``pred_score`` /
``pred_label``); it is unpickled with an allow-list (tensors, NumPy arrays and
built-in containers only, nested tensor storages loaded weights-only), so a
tampered file cannot run code.

The matrix (rows: true class, columns: predicted class, as
``mmpretrain.evaluation.ConfusionMatrix``) is drawn with matplotlib (Agg) to
``--out`` (row-normalised colours with ``--normalize``; class names on the axes
with ``--show-names``, else class indices; the figure and font size follow the
number of classes, e.g. GTSRB's 43), the per-class accuracy (recall) is printed,
and ``--json`` / ``--csv`` also write the counts (default file names: ``--out``
with ``.json`` / ``.csv``).
"""
import argparse
import copy
import csv
import io
import json
import os
import os.path as osp
import pickle
import sys

_REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

import numpy as np  # noqa: E402


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description='Confusion matrix of a classifier (mmdyn)')
    parser.add_argument('config', help='MMPretrain config file')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint to run the test set with')
    parser.add_argument('--results', help='prediction dump of tools/test.py --out (.pkl) '
                        'instead of a checkpoint')
    parser.add_argument('--out', default='confusion_matrix.png',
                        help='output figure (PNG); default confusion_matrix.png')
    parser.add_argument('--normalize', action='store_true',
                        help='colour (and print values) normalised per true class')
    parser.add_argument('--show-names', action='store_true',
                        help='class names on the axes (default: class indices)')
    parser.add_argument('--values', choices=['auto', 'on', 'off'], default='auto',
                        help='write the values in the cells (auto: up to 20 classes)')
    parser.add_argument('--json', nargs='?', const='', default=None, metavar='FILE',
                        help='also write the matrix as JSON (default name: OUT with .json)')
    parser.add_argument('--csv', nargs='?', const='', default=None, metavar='FILE',
                        help='also write the matrix as CSV (default name: OUT with .csv)')
    parser.add_argument('--title', default=None, help='figure title')
    parser.add_argument('--device', default='cpu', help="'cpu' (default) or 'cuda[:N]'")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, key=value pairs')
    parser.add_argument('--allow-partial-checkpoint', action='store_true',
                        help='load a checkpoint that does not fit the model anyway (only '
                        'the keys that fit, with a warning) instead of refusing it')
    args = parser.parse_args(argv)
    if not osp.isfile(args.config):
        parser.error(f'config file not found: {args.config}')
    if (args.checkpoint is None) == (args.results is None):
        parser.error('give either CHECKPOINT or --results RESULTS.pkl (exactly one)')
    if args.checkpoint is not None and '://' not in args.checkpoint \
            and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint file not found: {args.checkpoint}')
    if args.results is not None and not osp.isfile(args.results):
        parser.error(f'results file not found: {args.results}')
    stem = osp.splitext(args.out)[0]
    if args.json == '':
        args.json = stem + '.json'
    if args.csv == '':
        args.csv = stem + '.csv'
    from mmdyn.output_paths import OutputPathError, check_distinct_outputs, check_output_path
    try:
        for arg, path in (('--out', args.out), ('--json', args.json), ('--csv', args.csv)):
            check_output_path(path, (args.config, args.checkpoint, args.results), arg)
        check_distinct_outputs((('--out', args.out), ('--json', args.json),
                                ('--csv', args.csv)))
    except OutputPathError as err:
        parser.error(str(err))
    return args, parser


# ------------------------------------------------------------ prediction dumps
def _allowed_globals() -> dict:
    """``module.name`` -> object for everything a classification dump may reference."""
    import builtins
    import codecs
    import collections

    import torch

    from mmdyn.engine import ALLOWED_CHECKPOINT_GLOBALS

    def load_storage(data: bytes):
        # torch.storage._load_from_bytes would torch.load these bytes with
        # weights_only=False; they are a nested torch file: load them weights-only.
        return torch.load(io.BytesIO(data), weights_only=True)

    allowed = {
        'torch._utils._rebuild_tensor_v2': torch._utils._rebuild_tensor_v2,
        'torch._utils._rebuild_tensor': torch._utils._rebuild_tensor,
        'torch.storage._load_from_bytes': load_storage,
        'torch.Size': torch.Size,
        'collections.OrderedDict': collections.OrderedDict,
        '_codecs.encode': codecs.encode,  # bytes under pickle protocol 2 (mmengine's dump)
    }
    for name in ('set', 'frozenset', 'slice', 'complex', 'bytearray', 'list', 'dict',
                 'tuple'):
        allowed[f'builtins.{name}'] = getattr(builtins, name)
        allowed[f'__builtin__.{name}'] = getattr(builtins, name)
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            allowed[f'torch.{name}'] = getattr(torch, name)
    for item in ALLOWED_CHECKPOINT_GLOBALS:  # NumPy arrays / scalars / dtypes
        obj, key = item if isinstance(item, tuple) else \
            (item, f'{item.__module__}.{item.__qualname__}')
        allowed[key] = obj
    return allowed


class _DumpUnpickler(pickle.Unpickler):

    def __init__(self, file, path: str):
        super().__init__(file)
        self._path = path
        self._allowed = _allowed_globals()

    def find_class(self, module, name):
        key = f'{module}.{name}'
        if key not in self._allowed:
            raise pickle.UnpicklingError(
                f'refusing to load {self._path}: it references {key!r}, which a prediction '
                f'dump of tools/test.py does not contain (loading it could run code)')
        return self._allowed[key]


def load_prediction_dump(path: str):
    """Read a ``tools/test.py --out`` dump of a classifier.

    Returns:
        ``(pred_labels, gt_labels, num_classes)``: two int64 arrays ``(N,)`` and
        the number of classes (``None`` if the dump has only labels and no
        ``num_classes``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        pickle.UnpicklingError: The file references objects outside the allow-list.
        ValueError: Not a classification dump (empty, detection results, ...).
    """
    import torch
    if not osp.isfile(path):
        raise FileNotFoundError(f'results file not found: {path}')
    with open(path, 'rb') as f:
        try:
            items = _DumpUnpickler(f, path).load()
        except pickle.UnpicklingError:
            raise
        except Exception as err:  # noqa: BLE001 - truncated / not a pickle
            raise ValueError(f'cannot read {path} as a prediction dump: '
                             f'{type(err).__name__}: {err}') from err
    if not isinstance(items, (list, tuple)) or not items:
        raise ValueError(f'{path} is not a prediction dump of tools/test.py --out: expected '
                         f'a non-empty list of per-image dicts, got {type(items).__name__}')
    preds, gts, num_classes = [], [], None
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f'{path}: item {i} is a {type(item).__name__}, not a dict')
        if 'pred_instances' in item:
            raise ValueError(f'{path} holds detection results (pred_instances); '
                             f'confusion_matrix.py is for classification only')
        if 'gt_label' not in item or ('pred_score' not in item and 'pred_label' not in item):
            raise ValueError(f'{path}: item {i} has keys {sorted(item)}; a classification dump '
                             f'needs gt_label and pred_score or pred_label')
        if item.get('pred_score') is not None:
            score = torch.as_tensor(item['pred_score']).flatten()
            preds.append(int(score.argmax()))
            num_classes = int(score.numel())
        else:
            preds.append(int(torch.as_tensor(item['pred_label']).flatten()[0]))
        gt = torch.as_tensor(item['gt_label']).flatten()
        if gt.numel() != 1:
            raise ValueError(f'{path}: item {i} has {gt.numel()} ground-truth labels; only '
                             f'single-label classification is supported')
        gts.append(int(gt[0]))
        if num_classes is None and item.get('num_classes') is not None:
            num_classes = int(item['num_classes'])
    return np.array(preds, dtype=np.int64), np.array(gts, dtype=np.int64), num_classes


# ------------------------------------------------------------ running a model
def predict_test_set(config: str, checkpoint: str, device: str = 'cpu', cfg_options=None,
                     strict: bool = True):
    """Run the config's test dataloader through the checkpoint (``strict``: refuse
    one that does not fit the model, see :func:`mmdyn.apis.load_model`).

    Returns:
        ``(pred_labels, gt_labels, classes)``; ``classes`` from the test
        dataset's metainfo when it has as many names as the model has
        classes, else the model's (:attr:`Predictor.classes`).
    """
    import torch
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from mmdyn.apis import load_model
    from mmdyn.datasets import check_dataset_paths
    predictor = load_model(config, checkpoint, device=device, cfg_options=cfg_options,
                           strict=strict)
    if predictor.task != 'classification':
        raise ValueError(f'{config} is a {predictor.task} config; confusion_matrix.py is for '
                         f'classification (default_scope mmpretrain) only')
    cfg = predictor.cfg
    if not cfg.get('test_dataloader') or not cfg.test_dataloader.get('dataset'):
        raise ValueError(f'config {config} has no test_dataloader to evaluate')
    check_dataset_paths(cfg, splits=('test', ))
    preds, gts = [], []
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        loader = Runner.build_dataloader(copy.deepcopy(cfg.test_dataloader))
        with torch.no_grad():
            for batch in loader:
                for sample in predictor.model.test_step(batch):
                    preds.append(int(sample.pred_score.argmax()))
                    gts.append(int(sample.gt_label.flatten()[0]))
    names = tuple(loader.dataset.metainfo.get('classes') or ())
    classes = names if len(names) == predictor.num_classes else predictor.classes
    return np.array(preds, dtype=np.int64), np.array(gts, dtype=np.int64), tuple(classes)


def classes_without_model(config: str, num_classes, cfg_options=None):
    """Class names for ``--results`` (no checkpoint): the config's names, else the
    test dataset's (e.g. CustomDataset folder names, when the data is on disk),
    else ``class i``."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    import mmdyn.models  # noqa: F401
    from mmdyn.apis import resolve_class_names, task_of_config
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if task_of_config(cfg) != 'classification':
        raise ValueError(f'{config} is a {task_of_config(cfg)} config; confusion_matrix.py '
                         f'is for classification (default_scope mmpretrain) only')
    if num_classes is None:
        head = (cfg.get('model') or {}).get('head') or {}
        num_classes = head.get('num_classes')
    names, source = resolve_class_names(cfg, num_classes)
    if source == 'generated' and cfg.get('test_dataloader'):
        try:
            from mmpretrain.registry import DATASETS
            with DefaultScope.overwrite_default_scope('mmpretrain'):
                dataset = DATASETS.build(copy.deepcopy(cfg.test_dataloader.dataset))
            found = tuple(dataset.metainfo.get('classes') or ())
            if len(found) == len(names):
                names = found
        except Exception:  # noqa: BLE001 - data not on disk: keep "class i"
            pass
    return tuple(names)


# -------------------------------------------------------------------- maths
def confusion_matrix(preds: np.ndarray, gts: np.ndarray, num_classes: int) -> np.ndarray:
    """``(C, C)`` int64 counts, rows = true class, columns = predicted class
    (``mmpretrain.evaluation.ConfusionMatrix.calculate``)."""
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
    support = matrix.sum(1, keepdims=True)
    return matrix / np.maximum(support, 1)


def plot_confusion_matrix(matrix: np.ndarray, classes, out: str, normalize: bool = False,
                          show_names: bool = False, values: str = 'auto',
                          title: str = '') -> None:
    """Draw the matrix to ``out`` (PNG, matplotlib Agg).

    The figure grows with the number of classes and the tick font shrinks
    (11 pt up to 32 classes, 8.4 pt for 43, 6 pt from 60), names are rotated 90° on
    the x axis; cell values are written for up to 20 classes (``values='auto'``).
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


def format_report(matrix: np.ndarray, classes) -> str:
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


def main(argv=None) -> dict:
    """Run the tool; return a dict with ``matrix``, ``classes`` and ``accuracy``."""
    args, parser = parse_args(argv)
    try:
        if args.checkpoint is not None:
            preds, gts, classes = predict_test_set(args.config, args.checkpoint, args.device,
                                                   args.cfg_options,
                                                   strict=not args.allow_partial_checkpoint)
            source = args.checkpoint
        else:
            preds, gts, num_classes = load_prediction_dump(args.results)
            classes = classes_without_model(args.config, num_classes, args.cfg_options)
            source = args.results
    except (FileNotFoundError, ValueError, RuntimeError, pickle.UnpicklingError) as err:
        parser.exit(2, f'error: {err}\n')
    if not len(gts):
        parser.exit(2, 'error: the test set is empty\n')
    num = len(classes)
    if max(preds.max(), gts.max()) >= num:
        parser.exit(2, f'error: labels up to {max(preds.max(), gts.max())} but only {num} '
                    f'classes ({list(classes)[:5]}...)\n')
    matrix = confusion_matrix(preds, gts, num)
    print(format_report(matrix, classes))
    plot_confusion_matrix(matrix, classes, args.out, args.normalize, args.show_names,
                          args.values, args.title)
    print(f'confusion matrix figure written to {args.out}')
    acc = per_class_accuracy(matrix)
    summary = dict(config=args.config, source=source, classes=list(classes),
                   num_samples=int(matrix.sum()),
                   accuracy=float(np.trace(matrix) / matrix.sum()),
                   matrix=matrix.tolist(), normalized=row_normalized(matrix).tolist(),
                   support=matrix.sum(1).tolist(),
                   per_class_accuracy=[None if np.isnan(a) else float(a) for a in acc])
    if args.json:
        os.makedirs(osp.dirname(osp.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(summary, f, indent=1)
        print(f'matrix written to {args.json}')
    if args.csv:
        os.makedirs(osp.dirname(osp.abspath(args.csv)), exist_ok=True)
        with open(args.csv, 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['true \\ predicted'] + list(classes))
            for name, row in zip(classes, matrix.tolist()):
                writer.writerow([name] + row)
        print(f'matrix written to {args.csv}')
    return summary


if __name__ == '__main__':
    main()
