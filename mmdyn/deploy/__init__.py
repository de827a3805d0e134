"""mmdyn.deploy: export trained mmdyn models (ONNX) and check the exported graph.

See :mod:`mmdyn.deploy.onnx` and ``docs/deploy.md``; the command-line entry is
``tools/deploy/export_onnx.py``.
"""
from .onnx import (DEFAULT_OPSET, DEFAULT_RTOL, EXPORTERS, BackboneNeckExport, ClassifierExport,
                   Comparison, ExportModel, build_export_model, compare_with_onnxruntime,
                   export_onnx, onnx_opset)

__all__ = [
    'DEFAULT_OPSET', 'DEFAULT_RTOL', 'EXPORTERS', 'BackboneNeckExport', 'ClassifierExport',
    'Comparison', 'ExportModel', 'build_export_model', 'compare_with_onnxruntime', 'export_onnx',
    'onnx_opset'
]
