"""pytest setup for the benchmarks in ``bench/`` (not collected by the default test run, whose
``testpaths`` is ``tests``). Run them with ``python -m pytest bench/bench_eager.py``."""

from __future__ import annotations

import pytest


def pytest_collect_file(file_path, parent):
    """Collect ``bench_*.py`` files as test modules (the default pattern is ``test_*.py``)."""
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest collects it already
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(items):
    for item in items:
        if "bench_" in item.nodeid:
            item.add_marker(pytest.mark.slow)
