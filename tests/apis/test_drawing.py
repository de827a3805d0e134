"""mmdyn.apis.drawing and the results' drawing take RGB and return RGB: a pure
red image stays red (a BGR/RGB mix-up would turn it blue)."""
import numpy as np
import torch
import torch.nn as nn

from mmdyn.analysis import A2D2CAttentionRecorder, DMCMaskRecorder
from mmdyn.apis import (ClassificationResult, ClassScore, DetectionResult,
                        draw_attention_figure, draw_detections, draw_dmc_figure, draw_topk)
from mmdyn.ops import A2D2CPlusConv2d, DynamicMaskConv2d

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def _red(h=32, w=32):
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 255
    return img


def _count(img, colour, tol=60):
    """Pixels within ``tol`` of ``colour`` on every channel."""
    return int(np.all(np.abs(img.astype(int) - np.array(colour)) <= tol, axis=2).sum())


def test_topk_keeps_the_channel_order():
    out = draw_topk(_red(), [('cat', 0.9), ('dog', 0.1)])
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert np.all(out[-60:, -60:] == RED)          # the image part, outside the text box
    result = ClassificationResult([ClassScore(0, 'cat', 0.9)], np.array([0.9, 0.1]), (32, 32))
    assert np.array_equal(result.draw(_red(), ()), draw_topk(_red(), [('cat', 0.9)]))


def test_detections_keep_the_channel_order_and_the_rgb_colours():
    box = np.array([[4, 4, 20, 20]], np.float32)
    masks = np.zeros((1, 64, 64), bool)
    masks[0, 40:50, 40:50] = True
    out = draw_detections(_red(64, 64), box, np.array([0]), np.array([0.9], np.float32),
                          ['sq'], masks, [GREEN], min_size=64)
    assert out.shape == (64, 64, 3)
    assert np.all(out[54:, :30] == RED)            # away from the box, label and mask
    assert tuple(out[20, 12]) == GREEN             # the bottom edge, in the given RGB colour
    assert tuple(out[45, 45]) == (127, 127, 0)     # the mask: half red, half green
    result = DetectionResult(box, np.array([0.9], np.float32), np.array([0]), ['sq'], masks,
                             (64, 64), 0.5)
    assert np.array_equal(result.draw(_red(64, 64), [GREEN], min_size=64), out)


def test_attention_figure_shows_the_image_in_rgb():
    torch.manual_seed(0)
    net = nn.Sequential(A2D2CPlusConv2d(3, 4, 3, padding=1, num_points=4)).eval()
    with A2D2CAttentionRecorder(net) as rec:
        with torch.no_grad():
            net(torch.randn(1, 3, 16, 16))
    record = rec.records['0'][0]
    assert record.positions is None                # no red point markers in panel (b)
    fig = draw_attention_figure(_red(), record, dpi=40)
    assert _count(fig, RED) > 1000 and _count(fig, BLUE) == 0


def test_dmc_figure_shows_the_image_in_rgb():
    torch.manual_seed(0)
    net = nn.Sequential(DynamicMaskConv2d(3, 4, 3, padding=1, branch_dilations=(1, 2),
                                          mask='spatial')).eval()
    with DMCMaskRecorder(net) as rec:
        with torch.no_grad():
            net(torch.randn(1, 3, 16, 16))
    fig = draw_dmc_figure(_red(), rec.records['0'][0], dpi=40)
    assert _count(fig, RED) > 1000 and _count(fig, BLUE) == 0
