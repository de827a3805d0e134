"""Drawing for :mod:`mmdyn.apis` (no Qt): top-k text, detections, the A2D2C
attention figure and the DMC mask figure.

Channel order: every function here takes its image as an **RGB** ``uint8``
``(H, W, 3)`` array and returns an **RGB** ``uint8`` array (ready for PIL,
matplotlib or Qt); colours are RGB tuples. Images read the OpenMMLab way
(:func:`mmdyn.apis.read_image`, ``mmcv.imread``) are BGR: reverse the last
axis (``bgr[..., ::-1]``) before drawing, as :class:`mmdyn.apis.Predictor` does.
"""
from typing import List, Optional, Sequence, Tuple

import numpy as np

from mmdyn.utils.validation import check_choice

__all__ = ['format_probability', 'palette', 'draw_topk', 'draw_detections',
           'draw_attention_figure', 'draw_dmc_figure']


def format_probability(p: float) -> str:
    """Text of a probability: 4 decimals, or 3 significant digits below 0.001
    (so that ``1.8e-05`` does not read as ``0.0000``)."""
    return f'{p:.4f}' if p >= 1e-3 or p == 0 else f'{p:.2e}'


def palette(num: int) -> List[Tuple[int, int, int]]:
    """``num`` well separated RGB colours (golden-ratio hue steps)."""
    import colorsys
    out = []
    for i in range(max(num, 1)):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.85, 0.95)
        out.append((int(r * 255), int(g * 255), int(b * 255)))
    return out


def _upscale(rgb: np.ndarray, min_size: int) -> Tuple[np.ndarray, float, float]:
    """Enlarge ``rgb`` so its shorter side is >= ``min_size`` (text stays readable).

    Returns the image and the x / y scale factors.
    """
    import cv2
    h, w = rgb.shape[:2]
    scale = max(1.0, float(min_size) / min(h, w))
    if scale == 1.0:
        return rgb.copy(), 1.0, 1.0
    nw, nh = int(round(w * scale)), int(round(h * scale))
    interp = cv2.INTER_NEAREST if scale >= 2 else cv2.INTER_LINEAR
    return cv2.resize(rgb, (nw, nh), interpolation=interp), nw / w, nh / h


_FONT = 0  # cv2.FONT_HERSHEY_SIMPLEX


def _fit_text(text: str, max_width: int, scale: float, thickness: int) -> str:
    """Shorten ``text`` with '...' until it is at most ``max_width`` pixels wide."""
    import cv2
    if cv2.getTextSize(text, _FONT, scale, thickness)[0][0] <= max_width:
        return text
    while len(text) > 1:
        text = text[:-1]
        if cv2.getTextSize(text + '...', _FONT, scale, thickness)[0][0] <= max_width:
            return text + '...'
    return text


def _label(img: np.ndarray, text: str, x: int, y: int, bg, scale: float,
           thickness: int) -> None:
    """Draw ``text`` on a filled ``bg`` box whose top-left corner is near (x, y)."""
    import cv2
    h, w = img.shape[:2]
    text = _fit_text(text, w - 4, scale, thickness)
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    x = int(min(max(x, 0), max(w - tw - 4, 0)))
    y = int(min(max(y, 0), max(h - th - base - 4, 0)))
    cv2.rectangle(img, (x, y), (x + tw + 4, y + th + base + 4), bg, -1)
    fg = (0, 0, 0) if sum(bg) > 380 else (255, 255, 255)
    cv2.putText(img, text, (x + 2, y + th + 2), _FONT, scale, fg, thickness, cv2.LINE_AA)


def _canvas(rgb: np.ndarray, min_size: int):
    """Copy of ``rgb`` enlarged for text, its x/y scale, font scale and thickness."""
    out, sx, sy = _upscale(rgb, min_size)
    h, w = out.shape[:2]
    scale = float(np.clip(min(h, w) / 500.0, 0.4, 1.2))
    return out, sx, sy, scale, 1 if scale < 0.8 else 2


def draw_topk(rgb: np.ndarray, topk: Sequence[Tuple[str, float]],
              min_size: int = 256) -> np.ndarray:
    """The ``(name, probability)`` list in a shaded box at the top left.

    Args:
        rgb: The image, ``uint8`` ``(H, W, 3)`` RGB.
        topk: Classes, best first.
        min_size: The image is enlarged so its shorter side is at least this.

    Returns:
        The annotated RGB image.
    """
    import cv2
    out, _, _, scale, thick = _canvas(rgb, min_size)
    h, w = out.shape[:2]
    lines = [f'{name}: {100 * score:.1f}%' for name, score in topk]
    (_, th), base = cv2.getTextSize('Ag', _FONT, scale, thick)
    step = th + base + 6
    width = min(w, 8 + max(cv2.getTextSize(s, _FONT, scale, thick)[0][0]
                           for s in lines))
    height = min(h, step * len(lines) + 6)
    out[:height, :width] = (out[:height, :width] * 0.35).astype(np.uint8)
    for i, line in enumerate(lines):
        colour = (255, 230, 0) if i == 0 else (255, 255, 255)
        cv2.putText(out, _fit_text(line, w - 8, scale, thick), (4, 4 + th + i * step),
                    _FONT, scale, colour, thick, cv2.LINE_AA)
    return out


def draw_detections(rgb: np.ndarray, bboxes: np.ndarray, labels: np.ndarray,
                    scores: np.ndarray, names: Sequence[str], masks: Optional[np.ndarray],
                    colours: List[Tuple[int, int, int]], min_size: int = 256) -> np.ndarray:
    """Masks (translucent), boxes and ``name score`` labels in the class colours.

    Args:
        rgb: The image, ``uint8`` ``(H, W, 3)`` RGB.
        bboxes: ``(N, 4)`` x1, y1, x2, y2 in image pixels.
        labels, scores, names: Per detection.
        masks: ``(N, H, W)`` bool or None.
        colours: RGB colour per class (:func:`palette`).
        min_size: The image is enlarged so its shorter side is at least this.

    Returns:
        The annotated RGB image (best detection drawn last, on top).
    """
    import cv2
    out, sx, sy, scale, thick = _canvas(rgb, min_size)
    h, w = out.shape[:2]
    box_thick = max(1, int(round(min(h, w) / 250)))
    order = np.argsort(scores, kind='stable')  # best drawn last (on top)
    if masks is not None:
        for i in order:
            mask = cv2.resize(masks[i].astype(np.uint8), (w, h),
                              interpolation=cv2.INTER_NEAREST).astype(bool)
            colour = np.array(colours[int(labels[i]) % len(colours)])
            out[mask] = (out[mask] * 0.5 + colour * 0.5).astype(np.uint8)
    for i in order:
        colour = colours[int(labels[i]) % len(colours)]
        x1, y1, x2, y2 = bboxes[i] * np.array([sx, sy, sx, sy])
        p1 = (int(np.clip(round(x1), 0, w - 1)), int(np.clip(round(y1), 0, h - 1)))
        p2 = (int(np.clip(round(x2), 0, w - 1)), int(np.clip(round(y2), 0, h - 1)))
        cv2.rectangle(out, p1, p2, colour, box_thick)
        (_, th), base = cv2.getTextSize('Ag', _FONT, scale * 0.8, thick)
        y_text = p1[1] - th - base - 4 if p1[1] >= th + base + 4 else p1[1]
        _label(out, f'{names[i]} {scores[i]:.2f}', p1[0], y_text, colour,
               scale * 0.8, thick)
    return out


def draw_attention_figure(image: np.ndarray, record, title: str = '', dpi: int = 80,
                          layout: str = 'row') -> np.ndarray:
    """Render the four panels of the paper's Fig. 4 for one A2D2C record.

    (a) the input image, (b) the layer output (mean over channels) with the
    sampled points of Eq. 3 marked (none drawn when every position is
    averaged), (c) the attention π per kernel averaged over the output
    channels (± std, uniform 1/K dashed) and (d) the ``K x C_out`` map of π.
    Uses a stand-alone matplotlib ``Figure`` (Agg canvas, no pyplot state), so
    it is safe inside a Qt application.

    Args:
        image: RGB ``uint8`` ``(H, W, 3)`` shown in panel (a).
        record: :class:`mmdyn.analysis.A2D2CRecord` (its first sample is drawn).
        title: Figure title (default: the layer name).
        dpi: Resolution. Default 80.
        layout: ``'row'`` (default): the four panels side by side, 16 x 4.2
            inches (as ``tools/analysis_tools/visualize_attention.py``); ``'grid'``: 2 x 2,
            10 x 7.5 inches (fits a window pane better).

    Returns:
        The figure as an RGB ``uint8`` array.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from mmdyn.analysis.attention import positions_to_yx
    check_choice('layout', layout, ('row', 'grid'))
    feat = record.output[0].float().mean(0).cpu().numpy()
    pi = record.attention[0].float().cpu().numpy()              # (K, C_out)
    num_k = pi.shape[0]
    if layout == 'row':
        fig = Figure(figsize=(16, 4.2), dpi=dpi)
        ax_img, ax_feat, ax_bar, ax_map = fig.subplots(
            1, 4, gridspec_kw=dict(width_ratios=[1, 1, 0.8, 1.6]))
    else:
        fig = Figure(figsize=(10, 7.5), dpi=dpi)
        (ax_img, ax_feat), (ax_bar, ax_map) = fig.subplots(
            2, 2, gridspec_kw=dict(width_ratios=[1, 1.6]))
    canvas = FigureCanvasAgg(fig)
    ax_img.imshow(image)
    ax_img.set_title('(a) input')
    ax_img.axis('off')
    ax_feat.imshow(feat, cmap='viridis')
    if record.positions is not None:
        yx = positions_to_yx(record.positions[0], record.out_hw).cpu().numpy()
        ax_feat.scatter(yx[:, 1], yx[:, 0], s=14, c='red', marker='x', linewidths=1.2,
                        label=f'M={len(yx)} sampled points')
        ax_feat.legend(loc='lower right', fontsize=7)
    points = ' (all positions)' if record.positions is None else ''
    ax_feat.set_title(f'(b) output, mean over channels {record.out_hw[0]}x{record.out_hw[1]}'
                      f'\nsampling: {record.sampling}{points}', fontsize=9)
    ax_feat.axis('off')
    ax_bar.bar(range(num_k), pi.mean(1), yerr=pi.std(1), capsize=4, color='tab:blue')
    ax_bar.axhline(1.0 / num_k, color='gray', ls='--', lw=1, label='uniform 1/K')
    ax_bar.set_xticks(range(num_k))
    ax_bar.set_xlabel('kernel k')
    ax_bar.set_ylabel('π (mean ± std over channels)')
    ax_bar.set_title(f'(c) attention per kernel, T={record.temperature:g}', fontsize=9)
    ax_bar.legend(fontsize=7)
    im = ax_map.imshow(pi, aspect='auto', cmap='magma', interpolation='nearest')
    ax_map.set_yticks(range(num_k))
    ax_map.set_ylabel('kernel k')
    ax_map.set_xlabel('output channel n')
    ax_map.set_title('(d) π[k, n]', fontsize=9)
    fig.colorbar(im, ax=ax_map, fraction=0.04)
    fig.suptitle(title or record.name)
    fig.tight_layout()
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])


def _dilation_text(dilation) -> str:
    dh, dw = dilation
    return f'{dh}' if dh == dw else f'{dh}x{dw}'


def draw_dmc_figure(image: np.ndarray, record, title: str = '', dpi: int = 80,
                    layout: str = 'row') -> np.ndarray:
    """Render what one dynamic mask convolution (DMC) layer attends to.

    Panels: the input image; each branch's dynamic mask (``mask='spatial'``:
    the ``H' x W'`` map, colours scaled to its own range (given in the title,
    with the branch's dilation) so that its structure shows;
    ``mask='channel'``: a bar plot of the per-channel mask); for
    ``mask='none'`` one panel saying that the layer has no dynamic masks; then,
    if the block has an AdaptiveEnhancement, its pixel attention map (own
    range) and its channel attention (bars on [0, 1]). Uses a stand-alone matplotlib ``Figure`` (Agg
    canvas, no pyplot state), so it is safe inside a Qt application.

    Args:
        image: RGB ``uint8`` ``(H, W, 3)`` shown in the first panel.
        record: :class:`mmdyn.analysis.DMCRecord` (its first sample is drawn).
        title: Figure title (default: the layer name).
        dpi: Resolution. Default 80.
        layout: ``'row'`` (default): all panels side by side, 4 x 4.2 inches
            each; ``'grid'``: up to 3 panels a row, 3.6 x 3.4 inches each (fits
            a window pane better).

    Returns:
        The figure as an RGB ``uint8`` array.

    Raises:
        ValueError: Unknown ``layout``, or a record whose masks and dilations
            disagree in number.
    """
    import math

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_choice('layout', layout, ('row', 'grid'))
    if record.masks and len(record.masks) != len(record.branch_dilations):
        raise ValueError(f'record {record.name!r} has {len(record.masks)} masks but '
                         f'{len(record.branch_dilations)} branch dilations')
    panels = ['image']
    panels += [('mask', i) for i in range(len(record.masks))] or ['nomask']
    if record.pixel_attention is not None:
        panels.append('pixel')
    if record.channel_attention is not None:
        panels.append('channel')
    num = len(panels)
    if layout == 'row':
        rows, cols = 1, num
        fig = Figure(figsize=(4.0 * num, 4.2), dpi=dpi)
    else:
        cols = min(3, num)
        rows = math.ceil(num / cols)
        fig = Figure(figsize=(3.6 * cols, 3.4 * rows), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[num:]:
        ax.axis('off')
    for letter, (ax, panel) in zip('abcdefghijklmnopqrstuvwxyz', zip(axes, panels)):
        if panel == 'image':
            ax.imshow(image)
            ax.set_title(f'({letter}) input')
            ax.axis('off')
        elif panel == 'nomask':
            ax.text(0.5, 0.5, f"mask='{record.mask_kind}':\nno dynamic masks\n"
                    f"({len(record.branch_dilations)} branches fused unmasked,\n"
                    f"dilations {', '.join(_dilation_text(d) for d in record.branch_dilations)})",
                    ha='center', va='center', fontsize=10, transform=ax.transAxes)
            ax.set_title(f'({letter}) branch masks', fontsize=9)
            ax.axis('off')
        elif panel == 'pixel':
            pix = record.pixel_attention[0, 0].float().cpu().numpy()
            im = ax.imshow(pix, cmap='magma', interpolation='nearest')
            ax.set_title(f'({letter}) enhancement pixel attention {pix.shape[0]}x'
                         f'{pix.shape[1]}\nrange [{pix.min():.3f}, {pix.max():.3f}]',
                         fontsize=9)
            ax.axis('off')
            fig.colorbar(im, ax=ax, fraction=0.046)
        elif panel == 'channel':
            ch = record.channel_attention[0].flatten().float().cpu().numpy()
            ax.bar(range(len(ch)), ch, color='tab:green', width=0.9)
            ax.set_ylim(0, 1)
            ax.set_xlabel('channel c')
            ax.set_ylabel('attention')
            ax.set_title(f'({letter}) enhancement channel attention\nmean {ch.mean():.3f}',
                         fontsize=9)
        else:
            i = panel[1]
            dil = _dilation_text(record.branch_dilations[i])
            mask = record.masks[i][0].float().cpu().numpy()     # (1, H', W') or (C, 1, 1)
            if record.mask_kind == 'spatial':
                im = ax.imshow(mask[0], cmap='viridis', interpolation='nearest')
                ax.axis('off')
                fig.colorbar(im, ax=ax, fraction=0.046)
            else:
                values = mask.reshape(-1)
                ax.bar(range(len(values)), values, color='tab:blue', width=0.9)
                ax.set_ylim(0, 1)
                ax.set_xlabel('output channel c')
                ax.set_ylabel('mask')
            ax.set_title(f'({letter}) branch {i} {record.mask_kind} mask, dilation {dil}\n'
                         f'range [{mask.min():.3f}, {mask.max():.3f}]', fontsize=9)
    fig.suptitle(title or record.name)
    fig.tight_layout()
    canvas.draw()
    return np.ascontiguousarray(np.asarray(canvas.buffer_rgba())[..., :3])
