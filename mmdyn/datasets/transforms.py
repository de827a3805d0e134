"""Data transforms of the mmdyn classification datasets.

:class:`CropROI` crops a loaded image to the region of interest that a dataset put
in its data info (GTSRB's ``Roi.X1 .. Roi.Y2`` columns). It is registered in
mmpretrain's ``TRANSFORMS`` by :mod:`mmdyn.datasets.classification`, so a config
writes ``dict(type='CropROI')`` after ``LoadImageFromFile``; or the GTSRB dataset
inserts it itself with ``roi_crop=True``.
"""
from typing import Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform


def roi_to_array(roi: Sequence[int], where: str = 'roi') -> np.ndarray:
    """Validate an ``(x1, y1, x2, y2)`` box of pixel indexes (both corners inside
    the box) and return it as an int64 array.

    Args:
        roi: Left, top, right, bottom pixel indexes; ``x2 >= x1 >= 0`` and
            ``y2 >= y1 >= 0``.
        where: What the box belongs to, for the error message.

    Raises:
        ValueError: Not four integers, negative, or ``x2 < x1`` / ``y2 < y1``.
    """
    arr = np.asarray(roi)
    if arr.shape != (4, ) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f'{where}: a ROI must be four integers (x1, y1, x2, y2), got {roi!r}')
    x1, y1, x2, y2 = (int(v) for v in arr)
    if min(x1, y1) < 0 or x2 < x1 or y2 < y1:
        raise ValueError(f'{where}: invalid ROI (x1, y1, x2, y2) = {(x1, y1, x2, y2)}; '
                         'need 0 <= x1 <= x2 and 0 <= y1 <= y2')
    return arr.astype(np.int64)


class CropROI(BaseTransform):
    """Crop ``results['img']`` to the box in ``results[roi_key]``.

    The box is ``(x1, y1, x2, y2)`` in pixels of the loaded image with **both
    corners inclusive** (the crop keeps columns ``x1..x2`` and rows ``y1..y2``,
    so it is ``x2 - x1 + 1`` wide; the convention of ``mmcv.imcrop``). Corners
    beyond the image are clipped to it. Put it right after
    ``LoadImageFromFile`` (before any resize or flip, which would move the
    sign), or let ``GTSRB(roi_crop=True)`` insert it there.

    Required keys: ``img``, ``roi_key``. Modified keys: ``img``, ``img_shape``.
    Added key: ``roi_cropped`` (True); a second crop of the same results is an
    error, not a silent double crop.

    Args:
        roi_key (str): The results key of the box. Default: ``'roi'``.

    Raises:
        KeyError: ``results`` has no ``roi_key`` (the dataset gave no ROI).
        ValueError: The box is malformed, lies outside the image, or the image
            was already cropped.
    """

    def __init__(self, roi_key: str = 'roi'):
        if not isinstance(roi_key, str) or not roi_key:
            raise TypeError(f'roi_key must be a non-empty str, got {roi_key!r}')
        self.roi_key = roi_key

    def transform(self, results: dict) -> Optional[dict]:
        where = results.get('img_path', 'image')
        if 'img' not in results:
            raise KeyError(f'CropROI needs the loaded image (results["img"]) of {where}; '
                           'put it after LoadImageFromFile')
        if self.roi_key not in results:
            raise KeyError(f'CropROI: no {self.roi_key!r} in the data info of {where} '
                           '(only datasets that give a ROI, such as GTSRB, can be cropped)')
        if results.get('roi_cropped', False):
            raise ValueError(f'CropROI: {where} was already cropped to its ROI (CropROI twice '
                             'in the pipeline, or CropROI plus GTSRB(roi_crop=True)?)')
        x1, y1, x2, y2 = roi_to_array(results[self.roi_key], f'CropROI ({where})')
        img = results['img']
        h, w = img.shape[:2]
        if x1 >= w or y1 >= h:
            raise ValueError(f'CropROI ({where}): ROI {(int(x1), int(y1), int(x2), int(y2))} '
                             f'starts outside the {w}x{h} (WxH) image')
        x2, y2 = min(int(x2), w - 1), min(int(y2), h - 1)
        results['img'] = np.ascontiguousarray(img[y1:y2 + 1, x1:x2 + 1])
        results['img_shape'] = results['img'].shape[:2]
        results['roi_cropped'] = True
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(roi_key={self.roi_key!r})'
