"""Installation script for mmdyn (the OpenMMLab stack is installed by tools/setup_env.sh)."""
from setuptools import find_packages, setup

setup(
    name='mmdyn',
    version='0.1.0',
    description='Dynamic convolutions (A2D2C/A2D2C+, ODConv, DynamicConv, CondConv, DCD) '
    'for MMDetection 3.x and MMPretrain 1.x',
    packages=find_packages(include=['mmdyn', 'mmdyn.*']),
    python_requires='>=3.9',
    install_requires=['torch>=2.0'],
    extras_require={
        'openmmlab': ['mmengine==0.10.7', 'mmcv==2.1.0', 'mmdet==3.3.0', 'mmpretrain==1.2.0'],
        'tests': ['pytest'],
    },
)
