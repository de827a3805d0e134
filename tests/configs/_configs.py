"""One parse per config file for the whole configs suite (``Config.fromfile`` with
``mmdet::``/``mmpretrain::`` bases costs about a second): :func:`config` returns a
deep copy of the cached parse, so a test may change what it gets."""
import copy
import functools
from pathlib import Path

from mmengine.config import Config

ROOT = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=None)
def _parse(path: str) -> Config:
    return Config.fromfile(path)


def config(rel) -> Config:
    """The parsed config ``rel`` (relative to the repository root, or absolute)."""
    return copy.deepcopy(_parse(str(ROOT / rel)))
