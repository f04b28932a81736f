"""Import rules for ONNX's shape, movement, indexing, creation and logic ops."""

from __future__ import annotations
