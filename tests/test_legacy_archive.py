"""Archives written by an earlier fusejit (before the package was split into layers) still load
and give the results they gave when they were saved.

The files in ``tests/data`` were written once, by that version: a scripted module (a loop, a
data-dependent ``if``, ``nn.Linear`` and ``nn.LayerNorm``) and a traced function (a fused row
region and a reduction), with their inputs and outputs in ``legacy_io.npz``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import fusejit

DATA = Path(__file__).parent / "data"


def _io():
    with np.load(DATA / "legacy_io.npz", allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


def test_scripted_module_archive_from_an_earlier_version_loads_and_runs():
    d = _io()
    m = fusejit.load(DATA / "legacy_script.fjz")
    h, c = m(
        fusejit.from_numpy(d["x"]), fusejit.from_numpy(d["h"]), fusejit.from_numpy(d["c"]),
        float(d["gain"]),
    )  # fmt: skip
    # recompiled here (the shipped kernels' key is another machine's): rounding may differ
    np.testing.assert_allclose(h.numpy(), d["h_out"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.numpy(), d["c_out"], rtol=1e-5, atol=1e-6)
    assert "loop[" in str(m.graph)


def test_traced_function_archive_from_an_earlier_version_loads_and_runs():
    d = _io()
    f = fusejit.load(DATA / "legacy_trace.fjz")
    r1, r2 = f(fusejit.from_numpy(d["a"]), fusejit.from_numpy(d["b"]))
    np.testing.assert_allclose(r1.numpy(), d["r1"], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(r2.numpy(), d["r2"])
    assert "fused[" in str(f.graph)


def test_archive_from_an_earlier_version_saves_again_in_the_current_format(tmp_path):
    d = _io()
    f = fusejit.load(DATA / "legacy_trace.fjz")
    fusejit.save(f, tmp_path / "again.fjz")
    g = fusejit.load(tmp_path / "again.fjz")
    r1, _ = g(fusejit.from_numpy(d["a"]), fusejit.from_numpy(d["b"]))
    np.testing.assert_allclose(r1.numpy(), d["r1"], rtol=1e-5, atol=1e-6)
