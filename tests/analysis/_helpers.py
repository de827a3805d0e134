"""Helpers of the analysis-tool tests: tiny configs written into tmp_path."""
import os
import os.path as osp
import subprocess
import sys

from _tools import tool_path

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

CLS_CFG = """default_scope = 'mmpretrain'
custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)
model = dict(
    type='ImageClassifier',
    data_preprocessor=dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                           to_rgb=True),
    backbone=dict(type='ResNet', depth=18, {conv}),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=512))
"""

DET_CFG = """_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['mmdyn.models'], allow_failed_imports=False)
model = dict(
    backbone=dict(depth=18, init_cfg=None, {conv}),
    neck=dict(in_channels=[64, 128, 256, 512]))
"""


def write_cfg(tmp_path, name, conv_type=None, detector=False):
    """Write a ResNet-18 classifier (or Mask R-CNN R18-FPN) config; return its path."""
    conv = 'conv_cfg=None' if conv_type is None else \
        f"conv_cfg=dict(type='{conv_type}', kernel_num=4)"
    text = (DET_CFG if detector else CLS_CFG).replace('{conv}', conv)
    path = osp.join(str(tmp_path), name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def run_tool(script, *args, timeout=240):
    """Run the tool ``script`` (``'get_flops.py'``, found under ``tools/`` by
    :func:`conftest.tool_path`) in a subprocess; return the CompletedProcess."""
    env = dict(os.environ, PYTHONPATH=REPO, OMP_NUM_THREADS='1', MPLBACKEND='Agg')
    return subprocess.run([sys.executable, tool_path(script), *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
