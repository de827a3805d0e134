"""mmdyn.apis on the demo Mask R-CNN R18 A2D2C+ detector (random weights): the
detection predictor, its results (JSON with mask RLE) and drawing."""
import numpy as np
import pytest

from apis._inference_helpers import DEMO_DET, detection_setup


@pytest.fixture(scope='module')
def det(tmp_path_factory):
    return detection_setup(tmp_path_factory.mktemp('predict_det'))


def test_detection_predict_and_draw(det):
    from pycocotools import mask as mask_utils

    from mmdyn.apis import DetectionPredictor, Predictor, load_model
    p = load_model(DEMO_DET, det['ckpt'])
    assert isinstance(p, DetectionPredictor) and isinstance(p, Predictor)
    assert p.task == 'detection' and p.is_dynamic and p.uses_score_thr
    assert p.classes == ('circle', 'square', 'triangle')
    assert p.classes_source == 'config test dataset metainfo'
    everything = p.predict(det['image'], score_thr=0.0)
    assert len(everything) > 0 and everything.masks.shape == (len(everything), 96, 160)
    assert np.all(np.diff(everything.scores) <= 0)
    b = everything.bboxes
    assert np.all(b[:, 0] >= 0) and np.all(b[:, 2] <= 160) and np.all(b[:, 3] <= 96)
    assert everything.names == [p.classes[i] for i in everything.labels]
    thr = float(np.median(everything.scores))
    some = p.predict(det['image'], score_thr=thr)
    assert len(some) == int((everything.scores >= thr).sum())
    np.testing.assert_allclose(some.scores, everything.scores[everything.scores >= thr])
    # Drawing: the boxes change the image; the top edge of the best box has its colour.
    no_dets = p.predict(det['image'], score_thr=1.0)
    assert len(no_dets) == 0
    plain = p.draw(det['image'], no_dets)   # nothing to draw: the image, enlarged
    drawn = p.draw(det['image'], everything)
    assert drawn.shape == plain.shape == (256, 427, 3)
    assert np.any(drawn != plain, axis=2).mean() > 0.01
    sx, sy = 427 / 160, 256 / 96
    x1, _, x2, y2 = everything.bboxes[0] * np.array([sx, sy, sx, sy])
    bottom = int(np.clip(round(y2), 0, 255))
    middle = int(np.clip(round((x1 + x2) / 2), 0, 426))
    assert tuple(drawn[bottom, middle]) == p.palette[everything.labels[0]]
    # JSON: the RLE decodes back to the mask.
    data = everything.to_dict()
    rle = dict(data['detections'][0]['mask_rle'])
    rle['counts'] = rle['counts'].encode('ascii')
    assert np.array_equal(mask_utils.decode(rle).astype(bool), everything.masks[0])
    assert data['detections'][0]['mask_area'] == int(everything.masks[0].sum())
