"""Image input of :mod:`mmdyn.apis`: reading one image and finding the images
of files and folders.

Image arrays are ``uint8`` ``H x W x 3`` in **BGR** order, as ``mmcv.imread`` /
``cv2.imread`` return them and as the OpenMMLab test pipelines expect.
"""
import os
import os.path as osp
from typing import List, Sequence, Tuple, Union

import numpy as np

__all__ = ['IMAGE_EXTENSIONS', 'ImageInput', 'find_images', 'read_image']

#: File name endings treated as images when a folder is searched.
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.ppm', '.pgm', '.tif', '.tiff',
                    '.webp')

ImageInput = Union[str, os.PathLike, np.ndarray]


def read_image(image: ImageInput) -> np.ndarray:
    """Read an image file, or validate an image array, as ``uint8`` BGR ``(H, W, 3)``.

    Args:
        image: A path, or an array ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` (BGR)
            or ``(H, W, 4)`` (BGRA; alpha dropped) of dtype ``uint8``.

    Returns:
        A C-contiguous ``uint8`` array ``(H, W, 3)`` in BGR order.

    Raises:
        FileNotFoundError: The path does not exist.
        ValueError: The file is not a readable image, or the array has a bad shape.
        TypeError: ``image`` is neither a path nor a ``uint8`` array.
    """
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not osp.isfile(path):
            raise FileNotFoundError(f'image not found: {path}')
        import cv2
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:  # formats OpenCV lacks (GIF, ...): try Pillow
            try:
                from PIL import Image
                with Image.open(path) as pil:
                    img = np.asarray(pil.convert('RGB'))[..., ::-1]
            except Exception as err:  # noqa: BLE001 - any decoder failure
                raise ValueError(f'cannot read image {path}: not an image file or an '
                                 f'unsupported format ({type(err).__name__}: {err})') from err
        return np.ascontiguousarray(img)
    if not isinstance(image, np.ndarray):
        raise TypeError(f'image must be a file path or a numpy array, got '
                        f'{type(image).__name__}')
    if image.dtype != np.uint8:
        raise TypeError(f'image array must have dtype uint8, got {image.dtype}')
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4) or min(image.shape[:2]) < 1:
        raise ValueError(f'image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) '
                         f'with H, W >= 1, got shape {tuple(image.shape)}')
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[..., :3])


def find_images(inputs: Sequence[str],
                extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[Tuple[str, str]]:
    """Expand image files and folders (searched recursively) into a list of images.

    Args:
        inputs: Image files (taken whatever their extension) and folders.
        extensions: Lower-case endings of the images looked for in folders.

    Returns:
        ``(path, name)`` pairs in input order (folders sorted): ``name`` is the
        file name for a file input and ``<folder name>/<path inside it>`` for
        images found in a folder (a unique relative name for outputs).

    Raises:
        FileNotFoundError: An input does not exist.
        ValueError: A folder holds no image, or ``inputs`` is empty.
    """
    if not inputs:
        raise ValueError('no input image or folder given')
    found: List[Tuple[str, str]] = []
    for item in inputs:
        item = os.fspath(item)
        if osp.isfile(item):
            found.append((item, osp.basename(item)))
        elif osp.isdir(item):
            root = osp.normpath(item)
            images = []
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                images += [osp.join(dirpath, f) for f in sorted(filenames)
                           if f.lower().endswith(tuple(extensions))]
            if not images:
                raise ValueError(f'no image ({", ".join(extensions)}) found in folder {item}')
            base = osp.basename(osp.abspath(root))
            found += [(p, osp.join(base, osp.relpath(p, root))) for p in images]
        else:
            raise FileNotFoundError(f'input not found: {item}')
    return found
