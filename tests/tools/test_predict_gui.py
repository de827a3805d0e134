"""tools/predict_gui.py (PySide6), rendered offscreen: the window shows the same
top-5 as mmdyn.apis.load_model(...).predict, the A2D2C attention, the DMC masks,
errors without crashing, and detections drawn for the demo Mask R-CNN."""
import os

os.environ['QT_QPA_PLATFORM'] = 'offscreen'  # before Qt is imported anywhere

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from apis._inference_helpers import (DEMO_DET, NAMES, make_class_folders,  # noqa: E402
                                     save_random_checkpoint, write_config, write_dmc_config)
from _tools import import_tool  # noqa: E402

try:
    from PySide6 import QtCore, QtWidgets
except ImportError:  # pragma: no cover - setup_env.sh installs PySide6-Essentials
    pytestmark = pytest.mark.skip(reason='PySide6 is not importable (install it with '
                                  'tools/setup_env.sh: pip install PySide6-Essentials)')


@pytest.fixture(scope='module')
def gui():
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    module = import_tool('predict_gui')
    yield module
    app.processEvents()


@pytest.fixture
def new_window(gui):
    """``new_window(**kwargs)`` -> a shown ``MainWindow``; every window is deleted
    (C++ side) after the test, so none outlives the QApplication."""
    windows = []

    def make(**kwargs):
        window = gui.MainWindow(**kwargs)
        window.show()
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
        window.deleteLater()
    QtCore.QCoreApplication.sendPostedEvents(None, QtCore.QEvent.DeferredDelete)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp('gui')
    data = make_class_folders(tmp / 'data')
    dyn = write_config(tmp / 'dyn.py', data)
    static = write_config(tmp / 'static.py', data, conv_cfg='None')
    rng = np.random.default_rng(3)
    image = tmp / 'query.png'
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(image)
    return dict(tmp=tmp, dyn=dyn, static=static, image=str(image),
                dyn_ckpt=save_random_checkpoint(dyn, tmp / 'dyn.pth', classes=NAMES),
                static_ckpt=save_random_checkpoint(static, tmp / 'static.pth', classes=NAMES))


def _table(window):
    table = window.topk_table
    rows = []
    for r in range(table.rowCount()):
        item = table.item(r, 1)
        rows.append((table.item(r, 0).text(), item.data(QtCore.Qt.UserRole), item.text()))
    return rows


def test_gui_classification_matches_predict(gui, new_window, setup, tmp_path):
    from mmdyn.apis import load_model
    window = new_window()
    assert window.load_model(setup['dyn'], setup['dyn_ckpt']) and window.last_error is None
    assert window.tabs.isTabEnabled(1) and window.layer_combo.count() > 4
    assert window.open_image(setup['image'])
    expected = load_model(setup['dyn'], setup['dyn_ckpt']).predict(setup['image'], topk=5)
    rows = _table(window)
    assert len(rows) == 5
    assert [r[0] for r in rows] == [c.name for c in expected.topk]
    assert [r[1] for r in rows] == [c.score for c in expected.topk]
    assert [r[2] for r in rows] == [gui.format_probability(c.score) for c in expected.topk]
    probs = [r[1] for r in rows]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
    assert expected.pred_name in window.prediction_label.text()
    assert not window.image_label.pixmap().isNull()
    # The attention pane shows a figure; another layer gives another figure.
    pixmap = window.attention_label.pixmap()
    assert not pixmap.isNull() and pixmap.width() > 100
    first = window.attention_image.copy()
    window.layer_combo.setCurrentIndex(window.layer_combo.count() - 1)
    assert window.attention_image is not None and window.attention_image.shape == first.shape
    assert not np.array_equal(window.attention_image, first)
    window.tabs.setCurrentIndex(1)
    QtWidgets.QApplication.processEvents()
    shot = tmp_path / 'gui.png'
    assert window.grab().save(str(shot))
    assert shot.stat().st_size > 20000
    with Image.open(shot) as im:
        assert im.size[0] >= 800 and np.asarray(im.convert('L')).std() > 10
    assert window.save_annotated(str(tmp_path / 'annotated.png'))
    with Image.open(tmp_path / 'annotated.png') as im:
        assert im.size == (256, 256)


def test_gui_errors_do_not_crash(new_window, setup, tmp_path):
    window = new_window()
    assert not window.load_model(setup['dyn'], str(tmp_path / 'missing.pth'))
    assert 'checkpoint file not found' in window.last_error
    assert 'missing.pth' in window.error_label.text()
    assert window.status.currentMessage().startswith('Error:')
    assert window.predictor is None
    assert not window.load_model('', '') and 'choose both' in window.last_error
    assert not window.open_image(str(tmp_path / 'nope.png'))
    assert 'image not found' in window.last_error
    # An image without a model is shown; loading a model then predicts it.
    assert window.open_image(setup['image']) and window.last_error is None
    assert not window.image_label.pixmap().isNull() and window.topk_table.rowCount() == 0
    assert window.load_model(setup['static'], setup['static_ckpt'])
    assert window.topk_table.rowCount() == 5
    assert not window.tabs.isTabEnabled(1) and window.attention_image is None
    assert 'Static model' in window.attention_label.text()
    # A checkpoint that does not fit the config: an error, the previous model stays.
    loaded = window.predictor
    assert not window.load_model(setup['dyn'], setup['static_ckpt'])
    assert 'does not match' in window.last_error and window.predictor is loaded
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'no image here')
    assert not window.open_image(str(bad)) and 'cannot read image' in window.last_error


def test_gui_main_screenshot(gui, setup, tmp_path):
    out = tmp_path / 'main.png'
    assert gui.main(['--config', setup['dyn'], '--checkpoint', setup['dyn_ckpt'],
                     '--image', setup['image'], '--screenshot', str(out)]) == 0
    assert out.stat().st_size > 20000
    # A missing checkpoint is shown in the window (exit status 1 for --screenshot).
    assert gui.main(['--config', setup['dyn'], '--checkpoint', str(tmp_path / 'x.pth'),
                     '--screenshot', str(tmp_path / 'err.png')]) == 1
    assert (tmp_path / 'err.png').is_file()
    with pytest.raises(SystemExit):
        gui.main(['--score-thr', '3'])


def test_gui_detection_draws_boxes(new_window, tmp_path):
    torch.set_num_threads(2)
    ckpt = save_random_checkpoint(DEMO_DET, tmp_path / 'det.pth')
    rng = np.random.default_rng(0)
    img = np.full((128, 128, 3), 80, np.uint8) + rng.integers(0, 30, (128, 128, 3),
                                                             dtype=np.uint8)
    img[30:80, 40:100] = (220, 60, 30)
    path = tmp_path / 'shapes.png'
    Image.fromarray(img).save(path)
    window = new_window(score_thr=0.0)
    assert window.load_model(DEMO_DET, ckpt), window.last_error
    assert window.open_image(str(path)), window.last_error
    result = window.result
    assert result.task == 'detection' and len(result) > 0
    assert window.topk_table.columnCount() == 3 and window.topk_table.rowCount() == len(result)
    # Boxes are drawn: the annotated image is not the (enlarged) input.
    plain = np.asarray(Image.fromarray(img).resize(window.annotated.shape[1::-1],
                                                   Image.NEAREST))
    assert np.any(window.annotated != plain, axis=2).mean() > 0.01
    assert not window.image_label.pixmap().isNull()
    assert window.tabs.isTabEnabled(1) and window.attention_image is not None
    window.score_spin.setValue(1.0)   # nothing reaches 1.0: the table empties
    assert window.topk_table.rowCount() == 0 and len(window.result) == 0
    assert np.array_equal(window.annotated, plain)


def test_gui_dmc_layer_shows_masks(new_window, setup):
    from mmdyn.apis import load_model
    dmc = write_dmc_config(setup['tmp'] / 'dmc.py', setup['tmp'] / 'data')
    ckpt = save_random_checkpoint(dmc, setup['tmp'] / 'dmc.pth', classes=NAMES)
    window = new_window()
    assert window.load_model(dmc, ckpt), window.last_error
    assert window.tabs.isTabEnabled(1) and window.tabs.tabText(1) == 'Attention'
    layers = [window.layer_combo.itemText(i) for i in range(window.layer_combo.count())]
    assert layers == list(load_model(dmc, ckpt).dmc_layers) and len(layers) == 4
    assert 'DMC layers' in window.model_info.text()
    assert not window.sampling_combo.isEnabled()        # only meaningful for A2D2C
    assert window.open_image(setup['image']) and window.last_error is None
    first = window.attention_image.copy()
    window.layer_combo.setCurrentIndex(2)                # a layer of the second stage
    assert window.last_error is None and window.layer_combo.currentText() == layers[2]
    pixmap = window.attention_label.pixmap()
    assert not pixmap.isNull() and pixmap.width() > 100
    assert window.attention_image.std() > 10 and not np.array_equal(window.attention_image,
                                                                     first)
    assert not window.sampling_combo.isEnabled()
    # Back to an A2D2C model: the sampling choice is enabled again.
    assert window.load_model(setup['dyn'], setup['dyn_ckpt'])
    assert window.sampling_combo.isEnabled() and window.attention_image is not None
