"""Desktop GUI (PySide6 / Qt Widgets): pick a model and an image, see the prediction.

Usage::

    python tools/predict_gui.py [--config C] [--checkpoint K] [--image I]
        [--device cpu] [--score-thr 0.3] [--screenshot OUT.png]

The window has buttons (and a File menu) to choose a config and a checkpoint
(file dialogs), to load the model and to open an image (or drop one on the
window). It shows

* the image (for a detector annotated with boxes, labels, scores and masks,
  with an adjustable score threshold; "Save result" writes the annotated image,
  for a classifier with the top-k text drawn on it),
* a table of the top-5 classes with their probabilities (classifier) or of the
  detections (detector),
* for dynamic-convolution models an "Attention" tab with a layer selector: for
  an A2D2C / A2D2C+ layer its output with its sampled points and the
  per-kernel attention π (the paper's Fig. 4; the "Sampling" choice applies),
  for a dynamic mask convolution (DMC) layer each branch's dynamic mask (with
  its dilation) and its block's adaptive-enhancement pixel and channel
  attention (the "Sampling" choice is disabled),
* a status bar; errors (missing files, a checkpoint that does not fit the
  config, an unreadable image) are shown there and in red in the window, never
  as a crash.

All model work is done by :mod:`mmdyn.apis` (the result types also give the
table rows and summaries); this file is only the widgets. Inference runs in the
GUI thread (a busy cursor is shown), which is fine for the small models mmdyn
trains on a CPU. ``--screenshot`` renders the
window once, saves it and exits (no event loop; works with
``QT_QPA_PLATFORM=offscreen``).
"""
import argparse
import os
import os.path as osp
import sys
import time
import traceback

from PySide6 import QtCore, QtGui, QtWidgets

from mmdyn.apis.drawing import format_probability  # no OpenMMLab import yet

Qt = QtCore.Qt
TOPK = 5
IMAGE_FILTER = 'Images (*.png *.jpg *.jpeg *.bmp *.ppm *.pgm *.tif *.tiff *.webp);;All files (*)'
SAMPLING_CHOICES = (('as in inference', None), ('random points', 'random'),
                    ('fixed points', 'fixed'), ('all positions', 'none'))


def to_qimage(rgb) -> QtGui.QImage:
    """A deep-copied ``QImage`` of an RGB ``uint8`` ``(H, W, 3)`` array."""
    import numpy as np
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format_RGB888).copy()


class ImageView(QtWidgets.QLabel):
    """A label that shows a pixmap scaled to fit, keeping its aspect ratio."""

    def __init__(self, placeholder: str, parent=None):
        super().__init__(placeholder, parent)
        self._source = QtGui.QPixmap()
        self.setAlignment(Qt.AlignCenter)
        self.setMinimumSize(240, 200)
        self.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Ignored)
        self.setStyleSheet('QLabel { background: #202020; color: #c0c0c0; }')

    def set_image(self, rgb) -> None:
        """Show an RGB array (``None`` clears)."""
        self._source = QtGui.QPixmap() if rgb is None else QtGui.QPixmap.fromImage(
            to_qimage(rgb))
        self._rescale()

    def show_text(self, text: str) -> None:
        self._source = QtGui.QPixmap()
        self.clear()
        self.setText(text)

    def _rescale(self) -> None:
        if self._source.isNull():
            self.clear()
            return
        size = self.size()
        factor = min(size.width() / self._source.width(), size.height() / self._source.height())
        mode = Qt.FastTransformation if factor >= 2 else Qt.SmoothTransformation  # crisp pixels
        self.setPixmap(self._source.scaled(max(size.width(), 1), max(size.height(), 1),
                                           Qt.KeepAspectRatio, mode))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        self._rescale()


class MainWindow(QtWidgets.QMainWindow):
    """The predictor window.

    Widgets (attributes): ``config_edit``, ``checkpoint_edit`` (paths),
    ``config_button``, ``checkpoint_button``, ``load_button``, ``open_button``,
    ``save_button``, ``score_spin`` (detection threshold), ``tabs`` with
    ``image_label`` (annotated image) and ``attention_label`` (+ ``layer_combo``
    listing the A2D2C and DMC layers, ``sampling_combo``, enabled for A2D2C
    layers only), ``prediction_label`` (top-1 or detection count),
    ``topk_table``, ``model_info``, ``error_label`` and the status bar ``status``.

    State: ``predictor`` (:class:`mmdyn.apis.Predictor` or ``None``),
    ``image_path``, ``result`` (last prediction), ``annotated`` and
    ``attention_image`` (RGB arrays), ``last_error`` (``None`` after success).

    Args:
        device: Torch device for the models. Default ``'cpu'``.
        score_thr: Initial detection score threshold. Default 0.3.
        allow_partial_checkpoint: Load a checkpoint that does not fit the
            model anyway (what fits, with a warning); default: refuse it.
    """

    def __init__(self, device: str = 'cpu', score_thr: float = 0.3, parent=None,
                 allow_partial_checkpoint: bool = False):
        super().__init__(parent)
        self.device = device
        self.allow_partial_checkpoint = allow_partial_checkpoint
        self.predictor = None
        self.image_path = None
        self.result = None
        self.annotated = None
        self.attention_image = None
        self.last_error = None
        self.setWindowTitle('mmdyn predictor')
        self.setAcceptDrops(True)
        self._build_widgets(score_thr)
        self._build_menu()
        self.resize(1180, 720)
        self.status.showMessage('Choose a config and a checkpoint, load the model, open an '
                                'image.')

    # ---------------------------------------------------------------- layout
    def _build_widgets(self, score_thr: float) -> None:
        self.config_edit = QtWidgets.QLineEdit()
        self.config_edit.setPlaceholderText('config file (.py)')
        self.checkpoint_edit = QtWidgets.QLineEdit()
        self.checkpoint_edit.setPlaceholderText('checkpoint file (.pth)')
        self.config_button = QtWidgets.QPushButton('Config…')
        self.checkpoint_button = QtWidgets.QPushButton('Checkpoint…')
        self.load_button = QtWidgets.QPushButton('Load model')
        self.open_button = QtWidgets.QPushButton('Open image…')
        self.save_button = QtWidgets.QPushButton('Save result…')
        self.save_button.setEnabled(False)
        self.score_spin = QtWidgets.QDoubleSpinBox()
        self.score_spin.setRange(0.0, 1.0)
        self.score_spin.setSingleStep(0.05)
        self.score_spin.setDecimals(2)
        self.score_spin.setValue(score_thr)
        self.score_spin.setToolTip('detections with a lower score are hidden')
        self.config_button.clicked.connect(self.choose_config)
        self.checkpoint_button.clicked.connect(self.choose_checkpoint)
        self.load_button.clicked.connect(self._load_from_fields)
        self.open_button.clicked.connect(self.choose_image)
        self.save_button.clicked.connect(self.choose_save_path)
        self.score_spin.valueChanged.connect(lambda _v: self._on_threshold())

        form = QtWidgets.QGridLayout()
        form.addWidget(QtWidgets.QLabel('Config'), 0, 0)
        form.addWidget(self.config_edit, 0, 1)
        form.addWidget(self.config_button, 0, 2)
        form.addWidget(QtWidgets.QLabel('Checkpoint'), 1, 0)
        form.addWidget(self.checkpoint_edit, 1, 1)
        form.addWidget(self.checkpoint_button, 1, 2)
        form.addWidget(self.load_button, 0, 3, 2, 1)
        actions = QtWidgets.QHBoxLayout()
        actions.addWidget(self.open_button)
        actions.addWidget(self.save_button)
        actions.addStretch(1)
        actions.addWidget(QtWidgets.QLabel('Score threshold (detection)'))
        actions.addWidget(self.score_spin)

        self.image_label = ImageView('Open an image (button, File menu or drag and drop)')
        self.attention_label = ImageView('Load a model with A2D2C or DMC layers and open an '
                                         'image')
        self.layer_combo = QtWidgets.QComboBox()
        self.layer_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.AdjustToContents)
        self.sampling_combo = QtWidgets.QComboBox()
        self.sampling_combo.setToolTip('point sampling of A2D2C layers (not used by DMC '
                                       'layers)')
        for text, value in SAMPLING_CHOICES:
            self.sampling_combo.addItem(text, value)
        self.layer_combo.currentIndexChanged.connect(lambda _i: self.update_attention())
        self.sampling_combo.currentIndexChanged.connect(lambda _i: self.update_attention())
        att_bar = QtWidgets.QHBoxLayout()
        att_bar.addWidget(QtWidgets.QLabel('Layer'))
        att_bar.addWidget(self.layer_combo, 1)
        att_bar.addWidget(QtWidgets.QLabel('Sampling'))
        att_bar.addWidget(self.sampling_combo)
        att_page = QtWidgets.QWidget()
        att_layout = QtWidgets.QVBoxLayout(att_page)
        att_layout.addLayout(att_bar)
        att_layout.addWidget(self.attention_label, 1)
        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(self.image_label, 'Prediction')
        self.tabs.addTab(att_page, 'Attention')
        self.tabs.setTabEnabled(1, False)

        self.topk_table = QtWidgets.QTableWidget(0, 2)
        self.topk_table.setHorizontalHeaderLabels(['Class', 'Probability'])
        self.topk_table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.topk_table.verticalHeader().setVisible(True)
        self.topk_table.horizontalHeader().setStretchLastSection(True)
        self.topk_table.setMinimumWidth(300)
        self.model_info = QtWidgets.QLabel('No model loaded.')
        self.model_info.setWordWrap(True)
        self.error_label = QtWidgets.QLabel('')
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet('QLabel { color: #c00000; }')
        self.error_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        side = QtWidgets.QVBoxLayout()
        self.prediction_label = QtWidgets.QLabel('–')
        font = self.prediction_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        self.prediction_label.setFont(font)
        side.addWidget(QtWidgets.QLabel('<b>Prediction</b>'))
        side.addWidget(self.prediction_label)
        side.addWidget(self.topk_table, 1)
        side.addWidget(QtWidgets.QLabel('<b>Model</b>'))
        side.addWidget(self.model_info)
        side.addWidget(self.error_label)
        side_widget = QtWidgets.QWidget()
        side_widget.setLayout(side)

        splitter = QtWidgets.QSplitter(Qt.Horizontal)
        splitter.addWidget(self.tabs)
        splitter.addWidget(side_widget)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.addLayout(form)
        layout.addLayout(actions)
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self.status = self.statusBar()

    def _build_menu(self) -> None:
        menu = self.menuBar().addMenu('&File')
        for text, slot, key in (('Open &image…', self.choose_image, QtGui.QKeySequence.Open),
                                ('Choose &config…', self.choose_config, None),
                                ('Choose chec&kpoint…', self.choose_checkpoint, None),
                                ('&Load model', self._load_from_fields, 'Ctrl+L'),
                                ('&Save result…', self.choose_save_path,
                                 QtGui.QKeySequence.Save),
                                ('&Quit', self.close, QtGui.QKeySequence.Quit)):
            action = QtGui.QAction(text, self)
            if key is not None:
                action.setShortcut(key)
            action.triggered.connect(slot)
            menu.addAction(action)

    # ----------------------------------------------------------- messages
    def show_error(self, message: str) -> None:
        """Show ``message`` in the status bar and in red in the window."""
        self.last_error = message
        self.error_label.setText(message)
        self.status.showMessage(f'Error: {message}')

    def _clear_error(self) -> None:
        self.last_error = None
        self.error_label.setText('')

    def _run(self, what: str, fn, *args):
        """Call ``fn(*args)`` with a busy cursor; on an exception show it and
        return ``None`` (the traceback goes to stderr)."""
        QtWidgets.QApplication.setOverrideCursor(Qt.WaitCursor)
        try:
            return fn(*args)
        except Exception as err:  # noqa: BLE001 - every failure is shown, none crashes
            traceback.print_exc()
            self.show_error(f'{what}: {err}')
            # Drop the frames' locals: a traceback kept alive in a reference cycle
            # would otherwise keep this window alive past the QApplication.
            traceback.clear_frames(err.__traceback__)
            return None
        finally:
            QtWidgets.QApplication.restoreOverrideCursor()

    # ------------------------------------------------------------- dialogs
    def choose_config(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, 'Choose a config', self._start_dir(self.config_edit.text()),
            'Configs (*.py);;All files (*)')
        if path:
            self.config_edit.setText(path)

    def choose_checkpoint(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, 'Choose a checkpoint', self._start_dir(self.checkpoint_edit.text()),
            'Checkpoints (*.pth *.pt *.ckpt);;All files (*)')
        if path:
            self.checkpoint_edit.setText(path)
            if self.config_edit.text().strip():
                self._load_from_fields()

    def choose_image(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, 'Open an image', self._start_dir(self.image_path or ''), IMAGE_FILTER)
        if path:
            self.open_image(path)

    def choose_save_path(self) -> None:
        if self.annotated is None:
            self.show_error('nothing to save: open an image with a model loaded first')
            return
        stem = osp.splitext(osp.basename(self.image_path or 'result'))[0]
        path, _ = QtWidgets.QFileDialog.getSaveFileName(
            self, 'Save the annotated image', f'{stem}_pred.png', 'PNG (*.png)')
        if path:
            self.save_annotated(path)

    @staticmethod
    def _start_dir(current: str) -> str:
        current = current.strip()
        return osp.dirname(current) if current else os.getcwd()

    # ------------------------------------------------------------- actions
    def _load_from_fields(self) -> bool:
        return self.load_model(self.config_edit.text().strip(),
                               self.checkpoint_edit.text().strip())

    def load_model(self, config: str, checkpoint: str) -> bool:
        """Load a model (see :func:`mmdyn.apis.load_model`); on failure the
        error is shown and the previous model, if any, stays loaded.

        Returns:
            Whether the model was loaded.
        """
        self.config_edit.setText(config or '')
        self.checkpoint_edit.setText(checkpoint or '')
        if not config or not checkpoint:
            self.show_error('choose both a config and a checkpoint before loading')
            return False
        self.status.showMessage(f'Loading {osp.basename(config)} …')
        QtWidgets.QApplication.processEvents()
        from mmdyn.apis import load_model
        start = time.time()
        predictor = self._run('cannot load the model', load_model, config, checkpoint,
                              self.device, None, not self.allow_partial_checkpoint)
        if predictor is None:
            return False
        self.predictor = predictor
        self._clear_error()
        self.score_spin.setEnabled(predictor.uses_score_thr)
        columns = predictor.result_type.COLUMNS
        self.topk_table.setColumnCount(len(columns))
        self.topk_table.setHorizontalHeaderLabels(list(columns))
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        for name in predictor.attention_layers:
            kind = predictor.layer_kind(name)
            self.layer_combo.addItem(name, kind)
            self.layer_combo.setItemData(self.layer_combo.count() - 1,
                                         'A2D2C layer' if kind == 'a2d2c' else
                                         'DMC layer (dynamic masks)', Qt.ToolTipRole)
        self.layer_combo.blockSignals(False)
        self._update_sampling_enabled()
        self.tabs.setTabEnabled(1, predictor.is_dynamic)
        if not predictor.is_dynamic:
            self.tabs.setCurrentIndex(0)
        temp = '' if predictor.temperature is None else \
            f'; attention temperature {predictor.temperature:g}'
        self.model_info.setText(
            f'{predictor.task}: {type(predictor.model).__name__}, {predictor.num_classes} '
            f'classes ({predictor.classes_source}); '
            + (self._layer_summary(predictor) if predictor.is_dynamic
               else 'static (no A2D2C or DMC layer)') + temp
            + f'\n{osp.basename(config)}\n{osp.basename(checkpoint)}')
        self.status.showMessage(f'Loaded {osp.basename(checkpoint)} ({predictor.task}) in '
                                f'{time.time() - start:.1f} s')
        if self.image_path:
            self.refresh()
        else:
            self._clear_outputs('Open an image')
        return True

    def open_image(self, path: str) -> bool:
        """Open an image and, with a model loaded, predict it.

        Returns:
            Whether the image could be read.
        """
        from mmdyn.apis import read_image
        img = self._run('cannot open the image', read_image, path)
        if img is None:
            return False
        self.image_path = path
        self._clear_error()
        if self.predictor is None:
            self.image_label.set_image(img[..., ::-1])
            self._clear_outputs(None)
            self.status.showMessage(f'{osp.basename(path)} ({img.shape[1]}x{img.shape[0]}); '
                                    f'load a model to predict')
            return True
        self.refresh()
        return True

    def refresh(self, attention: bool = True) -> None:
        """Predict the current image with the current model and update the views
        (the attention tab too unless ``attention`` is False)."""
        if self.predictor is None or self.image_path is None:
            return
        start = time.time()
        result = self._run('prediction failed', self.predictor.predict, self.image_path,
                           TOPK, float(self.score_spin.value()))
        if result is None:
            return
        annotated = self._run('drawing failed', self.predictor.draw, self.image_path, result)
        if annotated is None:
            return
        self.result = result
        self.annotated = annotated
        if result.SHOW_ANNOTATED:
            self.image_label.set_image(annotated)
        else:  # the drawing only repeats the table: show the image clean
            from mmdyn.apis import read_image
            self.image_label.set_image(read_image(self.image_path)[..., ::-1])
        self.prediction_label.setText(result.headline())
        self.save_button.setEnabled(True)
        self._fill_table(result)
        if attention:
            self.update_attention()
        if self.last_error is None:
            self.status.showMessage(f'{osp.basename(self.image_path)}: {result.status()} '
                                    f'[{time.time() - start:.2f} s]')

    @staticmethod
    def _layer_summary(predictor) -> str:
        parts = []
        if predictor.a2d2c_layers:
            parts.append(f'{len(predictor.a2d2c_layers)} A2D2C layers')
        if predictor.dmc_layers:
            parts.append(f'{len(predictor.dmc_layers)} DMC layers')
        return ', '.join(parts)

    def _current_layer_is_dmc(self) -> bool:
        return self.layer_combo.currentData() == 'dmc'

    def _update_sampling_enabled(self) -> None:
        """The sampling choice only applies to A2D2C layers."""
        enabled = self.layer_combo.count() > 0 and not self._current_layer_is_dmc()
        self.sampling_combo.setEnabled(enabled)

    def update_attention(self) -> None:
        """Redraw the attention tab for the current image, layer and sampling
        (the sampling is passed for A2D2C layers only)."""
        predictor = self.predictor
        self.attention_image = None
        self._update_sampling_enabled()
        if predictor is None or self.image_path is None:
            return
        if not predictor.is_dynamic:
            self.attention_label.show_text('Static model: no A2D2C or DMC layer, no '
                                           'attention.')
            return
        layer = self.layer_combo.currentText() or None
        sampling = None if self._current_layer_is_dmc() else self.sampling_combo.currentData()
        figure = self._run('attention failed', predictor.attention, self.image_path, layer,
                           sampling, 0, 'grid')
        if figure is None:
            self.attention_label.show_text('Attention could not be computed (see the error).')
            return
        self.attention_image = figure
        self.attention_label.set_image(figure)

    def save_annotated(self, path: str) -> bool:
        """Save the annotated image as PNG."""
        if self.annotated is None:
            self.show_error('nothing to save: open an image with a model loaded first')
            return False
        from mmdyn.utils.output_paths import OutputPathError, check_output_path
        try:
            check_output_path(path, [self.image_path], 'the result file')
        except OutputPathError as err:
            self.show_error(str(err))
            return False
        ok = to_qimage(self.annotated).save(path)
        if not ok:
            self.show_error(f'cannot write {path}')
        else:
            self.status.showMessage(f'Saved {path}')
        return ok

    def _on_threshold(self) -> None:
        if self.predictor is not None and self.predictor.uses_score_thr:
            self.refresh(attention=False)  # the threshold does not change the attention

    def _clear_outputs(self, text) -> None:
        self.result = self.annotated = self.attention_image = None
        self.topk_table.setRowCount(0)
        self.prediction_label.setText('–')
        self.save_button.setEnabled(False)
        if text:
            self.image_label.show_text(text)
        self.attention_label.show_text('Open an image')

    def _fill_table(self, result) -> None:
        table = self.topk_table
        rows = result.table_rows()
        table.setRowCount(len(rows))
        for r, (name, score, box) in enumerate(rows):
            table.setItem(r, 0, QtWidgets.QTableWidgetItem(name))
            item = QtWidgets.QTableWidgetItem(format_probability(score))
            item.setData(Qt.UserRole, score)
            item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            table.setItem(r, 1, item)
            if box is not None:
                table.setItem(r, 2, QtWidgets.QTableWidgetItem(box))
        table.resizeColumnToContents(0)

    # ------------------------------------------------------- drag and drop
    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt name)
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt name)
        urls = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.open_image(urls[0])


def parse_args(argv=None):
    from mmdyn.engine import cli
    parser = argparse.ArgumentParser(description='Predictor GUI (mmdyn, PySide6)')
    parser.add_argument('--config', help='config file to load at start')
    parser.add_argument('--checkpoint', help='checkpoint file to load at start')
    parser.add_argument('--image', help='image to open at start')
    cli.add_device_option(parser)
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='initial detection score threshold (default 0.3)')
    parser.add_argument('--screenshot', metavar='PNG',
                        help='render the window once, save it to this file and exit')
    cli.add_partial_checkpoint_option(parser)
    cli.add_debug_option(parser)
    args = parser.parse_args(argv)
    if not 0.0 <= args.score_thr <= 1.0:
        parser.error(f'--score-thr must be in [0, 1], got {args.score_thr}')
    return args


def main(argv=None) -> int:
    """Create the ``QApplication`` (or reuse one) and the window; run the event
    loop, or with ``--screenshot`` save one frame and return. Returns the exit
    status."""
    args = parse_args(argv)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    window = MainWindow(device=args.device, score_thr=args.score_thr,
                        allow_partial_checkpoint=args.allow_partial_checkpoint)
    window.show()
    if args.config or args.checkpoint:
        window.config_edit.setText(args.config or '')
        window.checkpoint_edit.setText(args.checkpoint or '')
        if args.config and args.checkpoint:
            window.load_model(args.config, args.checkpoint)
    if args.image:
        window.open_image(args.image)
    if args.screenshot:
        app.processEvents()
        ok = window.grab().save(args.screenshot)
        status = 0 if ok and window.last_error is None else 1
        if ok:
            print(f'screenshot saved to {args.screenshot}')
        else:
            print(f'error: cannot write {args.screenshot}', file=sys.stderr)
    else:
        status = app.exec()
    # Delete the window now (C++ side), not whenever Python collects it: a
    # widget destroyed after the QApplication crashes the interpreter's exit.
    window.close()
    window.deleteLater()
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.DeferredDelete)
    return status


if __name__ == '__main__':
    from mmdyn.engine import cli
    cli.run(main)
