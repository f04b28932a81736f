"""Shared test setup: a private kernel cache for the session and hypothesis settings.

Generated kernels are cached on disk under ``$FUSEJIT_CACHE_DIR``; the tests point it at a fresh
pytest temporary folder so that they neither read nor pollute the user's cache.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import fusejit

# the vendored Array API conformance suite runs in its own pytest process
# (tests/test_array_api_conformance.py), with its own conftest
collect_ignore = ["array_api_conformance"]

# Small example counts and no deadline: numba compiles kernels lazily on first use, so the first
# example of a test can take a second; the whole eager suite must run in well under 2 minutes.
settings.register_profile(
    "fusejit",
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("fusejit-thorough", parent=settings.get_profile("fusejit"),
                          max_examples=200)  # fmt: skip
settings.load_profile(os.environ.get("FUSEJIT_HYPOTHESIS_PROFILE", "fusejit"))


@pytest.fixture(scope="session", autouse=True)
def _kernel_cache_dir(tmp_path_factory):
    """Every kernel compiled during the session goes to a pytest temporary folder."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FUSEJIT_CACHE_DIR", str(tmp_path_factory.mktemp("fusejit-cache")))
    yield
    mp.undo()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh, empty kernel cache folder of the test's own (returned), an empty memory level
    with zeroed counters, and the cache's settings at their defaults (no debug log, default
    bounds)."""
    d = tmp_path / "kernels"
    monkeypatch.setenv("FUSEJIT_CACHE_DIR", str(d))
    for var in ("FUSEJIT_DEBUG", "FUSEJIT_MEMORY_CACHE_MAX", "FUSEJIT_CACHE_MAX_BYTES"):
        monkeypatch.delenv(var, raising=False)
    fusejit.clear_cache(disk=False)
    yield d
    fusejit.clear_cache(disk=False)
