"""One parse per config file for the whole configs suite (``Config.fromfile`` with
``mmdet::``/``mmpretrain::`` bases costs about a second): :func:`config` returns a
deep copy of the cached parse, so a test may change what it gets.
:data:`KW_OFFICIAL_PARAMS` are the parameter counts of the official KernelWarehouse
code (OSVAI/KernelWarehouse, its released configs, 1000 classes) that the ImageNet
KW configs must reproduce."""
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


#: Parameters of the official KernelWarehouse code's models (C. Li, A. Yao, ICML 2024),
#: by our config stem: ResNet-18 kw1d4x..kw4x, ResNet-50 kw1d2x/kw1x/kw4x,
#: MobileNetV2 100/050 kw1d2x/kw1x/kw4x.
KW_OFFICIAL_PARAMS = {
    'resnet18-kw-0.25x_8xb32_in1k': 4_031_768,
    'resnet18-kw-0.5x_8xb32_in1k': 7_431_044,
    'resnet18-kw-1x_8xb32_in1k': 11_932_148,
    'resnet18-kw-2x_8xb32_in1k': 23_242_127,
    'resnet18-kw-4x_8xb32_in1k': 45_862_085,
    'resnet50-kw-0.5x_8xb32_in1k': 17_638_264,
    'resnet50-kw-1x_8xb32_in1k': 28_052_310,
    'resnet50-kw-4x_8xb32_in1k': 102_015_144,
    'mobilenet-v2-w1.0-kw-0.5x_8xb32_in1k': 2_654_396,
    'mobilenet-v2-w1.0-kw-1x_8xb32_in1k': 5_168_146,
    'mobilenet-v2-w1.0-kw-4x_8xb32_in1k': 11_379_382,
    'mobilenet-v2-w0.5-kw-0.5x_8xb32_in1k': 1_466_888,
    'mobilenet-v2-w0.5-kw-1x_8xb32_in1k': 2_854_522,
    'mobilenet-v2-w0.5-kw-4x_8xb32_in1k': 4_648_587,
}
