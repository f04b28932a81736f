"""Kernel sources and helper libraries used by generated code (installed as fusejit.kernels)."""
