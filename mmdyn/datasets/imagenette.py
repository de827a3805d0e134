"""Imagenette and Imagewoof: fast.ai's 10-class subsets of ImageNet (J. Howard, 2019).

Both ship as ImageNet-style folders (``imagenette2.tgz`` / ``imagewoof2.tgz`` and
their ``-320`` / ``-160`` resized variants), never downloaded here::

    DATA_ROOT/
      train/<wnid>/*.JPEG
      val/<wnid>/*.JPEG
      noisy_imagenette.csv     # (ignored)

The class index of a WordNet id is fixed by :attr:`Imagenette.WNIDS` (the order
of the released class list), not by the folders found on disk, so labels never
shift when a folder is missing or an extra one appears: either is an error.
"""
import os
import os.path as osp

from mmpretrain.datasets import CustomDataset
from mmpretrain.datasets.custom import get_samples

from mmdyn.utils.validation import check_choice
from .base import ClassCountsMixin
from .checks import expected_layout

IMAGENETTE_WNIDS = ('n01440764', 'n02102040', 'n02979186', 'n03000684', 'n03028079',
                    'n03394916', 'n03417042', 'n03425413', 'n03445777', 'n03888257')
IMAGENETTE_CLASSES = ('tench', 'English springer', 'cassette player', 'chain saw', 'church',
                      'French horn', 'garbage truck', 'gas pump', 'golf ball', 'parachute')
IMAGEWOOF_WNIDS = ('n02086240', 'n02087394', 'n02088364', 'n02089973', 'n02093754',
                   'n02096294', 'n02099601', 'n02105641', 'n02111889', 'n02115641')
IMAGEWOOF_CLASSES = ('Shih-Tzu', 'Rhodesian ridgeback', 'beagle', 'English foxhound',
                     'Border terrier', 'Australian terrier', 'golden retriever',
                     'Old English sheepdog', 'Samoyed', 'dingo')


class Imagenette(ClassCountsMixin, CustomDataset):
    """Imagenette from its extracted folders (``DATA_ROOT/{train,val}/<wnid>/``).

    A ``CustomDataset`` whose classes are fixed: label ``i`` is
    ``WNIDS[i]``, named ``metainfo['classes'][i]`` (``metainfo['wnids']`` holds
    the WordNet ids). Images are files read by ``LoadImageFromFile`` (BGR, as
    for ImageNet: ``to_rgb=True`` in the data preprocessor). A few images are
    greyscale or CMYK JPEGs; ``LoadImageFromFile``'s default
    ``color_type='color'`` turns them into 3 channels.

    Args:
        data_root (str): The extracted archive (the folder holding
            ``train/`` and ``val/``).
        split (str): ``'train'`` or ``'val'``. Default: ``'train'``.
        **kwargs: Other arguments of mmpretrain's ``CustomDataset`` and
            ``BaseDataset`` (``pipeline``, ``extensions``, ``ann_file``, ...).
            With ``ann_file`` (``"path label"`` lines relative to the split
            folder) the labels come from that file instead of the folders.

    Raises:
        FileNotFoundError: A missing data root, split folder or WordNet-id
            folder (naming the path and the expected layout).
        ValueError: An unknown folder in the split folder, or a WordNet-id
            folder without images.
    """

    WNIDS = IMAGENETTE_WNIDS
    METAINFO = {'classes': IMAGENETTE_CLASSES, 'wnids': IMAGENETTE_WNIDS}
    SPLITS = ('train', 'val')
    _layout_key = 'Imagenette'  # the entry of checks.LAYOUTS (expected_layout)

    def __init__(self, data_root: str = '', split: str = 'train', **kwargs):
        name = type(self).__name__
        self.split = check_choice('split', split, self.SPLITS)
        if not isinstance(data_root, str) or not data_root:
            raise ValueError(f'{name} needs data_root (the extracted archive), got '
                             f'{data_root!r}; {expected_layout(self._layout_key)}')
        if 'data_prefix' in kwargs:
            raise ValueError(f'{name} sets data_prefix from split ({split!r}); do not pass '
                             f'data_prefix={kwargs["data_prefix"]!r}')
        if not kwargs.pop('with_label', True):
            raise ValueError(f'{name} always has labels (with_label=False is not supported)')
        super().__init__(data_root=osp.expanduser(data_root), data_prefix=split,
                         with_label=True, **kwargs)

    def _find_samples(self):
        """``(path relative to the split folder, label)`` for every image, with
        labels from :attr:`WNIDS`."""
        name, layout = type(self).__name__, expected_layout(self._layout_key)
        if len(self.CLASSES) != len(self.WNIDS):
            raise ValueError(f'{name} has {len(self.WNIDS)} classes, but metainfo gives '
                             f'{len(self.CLASSES)} class names')
        root = self.img_prefix
        if not osp.isdir(self.data_root):
            raise FileNotFoundError(f'{name} data root not found: {self.data_root}\n{layout}')
        if not osp.isdir(root):
            raise FileNotFoundError(f'{name} {self.split} folder not found: {root}\n{layout}')
        folders = {d for d in os.listdir(root)
                   if not d.startswith('.') and osp.isdir(osp.join(root, d))}
        unknown = sorted(folders - set(self.WNIDS))
        if unknown:
            raise ValueError(f'{name}: unknown folder(s) {", ".join(unknown)} in {root}; '
                             f'expected exactly the WordNet ids {", ".join(self.WNIDS)} '
                             '(Imagenette and Imagewoof have different ones)')
        missing = [w for w in self.WNIDS if w not in folders]
        if missing:
            raise FileNotFoundError(f'{name}: missing class folder(s) '
                                    f'{", ".join(osp.join(root, w) for w in missing)}\n{layout}')
        folder_to_idx = {wnid: i for i, wnid in enumerate(self.WNIDS)}
        samples, empty = get_samples(root, folder_to_idx, is_valid_file=self.is_valid_file)
        if empty:
            raise ValueError(f'{name}: no image files ({", ".join(sorted(self.extensions))}) in '
                             f'{", ".join(osp.join(root, w) for w in sorted(empty))}')
        self.folder_to_idx = folder_to_idx
        return samples


class Imagewoof(Imagenette):
    """Imagewoof (10 dog breeds that are hard to tell apart) from its extracted
    folders; the same format and options as :class:`Imagenette`."""

    WNIDS = IMAGEWOOF_WNIDS
    METAINFO = {'classes': IMAGEWOOF_CLASSES, 'wnids': IMAGEWOOF_WNIDS}
    _layout_key = 'Imagewoof'
