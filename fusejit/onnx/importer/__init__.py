"""ONNX import: ``fusejit.onnx.load`` turns an ONNX model into a fusejit graph.

``registry.py`` holds the rule table (one rule per ONNX op type, written with fusejit ops);
the rule modules fill it when this package is imported.
"""

from fusejit.onnx.importer import (  # noqa: F401  (registers the rules)
    control_rules,
    math_rules,
    nn_rules,
    reduce_rules,
    shape_rules,
)  # fmt: skip
from fusejit.onnx.importer.registry import IMPORT_RULES, ImportError_, NodeContext, onnx_op

__all__ = ["IMPORT_RULES", "ImportError_", "NodeContext", "onnx_op"]
