"""onnx's own node tests, run through ``fusejit.onnx.backend``.

The onnx wheel ships the test cases as code (``onnx.backend.test.case.node``), not data: they
are generated in memory (``tests/onnx_node_cases.py``). Every case whose ops all lie in
``COVERED`` (the ONNX ops fusejit's op table covers, by family) runs, one test per case, and is
compared with onnx's expected outputs (dtype, shape, and rtol / atol as onnx's runner). A case
of one op runs traced (``fusejit.onnx.load``: fused and compiled); the "_expanded" cases (an
op's function body, written with other ops: large graphs) run the rules eagerly
(``jit=False``), which checks the same rules without compiling a kernel per graph. A case whose
model uses an element type fusejit has no dtype for must raise ``ImportError_``. ``XFAIL``
lists the cases expected to fail, each with why; one listed that passes fails too, so the list
stays true. ``bench/onnx_node_counts.py`` prints the pass counts per op family.
"""

from __future__ import annotations

import pytest

pytest.importorskip("onnx", reason="the ONNX node tests need the onnx package")

from onnx_node_cases import cases, missing_dtype, run_case, selected  # noqa: E402

from fusejit.onnx.importer import ImportError_  # noqa: E402

_3D = "3-D convolutions (fusejit's convolutions are 1-D and 2-D)"
_RANDOM = "Dropout in training mode draws a random mask (onnx's comes from numpy's generator)"

# case -> why it is expected to fail
XFAIL: dict[str, str] = {
    # float16 ops compute in float32 and round once (fusejit's opmath); onnx's reference
    # rounds after each numpy float16 op: two of 192 outputs differ by 1 ulp (1.2e-3 > rtol)
    "test_attention_4d_causal_fp16_expanded": "float16 opmath: 1 ulp from the reference",
    "test_convtranspose_3d": _3D,
    "test_training_dropout": _RANDOM,
    "test_training_dropout_default": _RANDOM,
    "test_training_dropout_default_mask": _RANDOM,
    "test_training_dropout_mask": _RANDOM,
}


def _selected() -> list[str]:
    return [name for name, case in sorted(cases().items()) if selected(case)]


NAMES = _selected()


@pytest.mark.parametrize("name", NAMES)
def test_node(name):
    case = cases()[name]
    jit = "_expanded" not in name
    missing = missing_dtype(case)
    if missing is not None:
        with pytest.raises(ImportError_):
            run_case(case, jit)
        return
    if name in XFAIL:
        try:
            run_case(case, jit)
        except Exception:
            pytest.xfail(XFAIL[name])
        pytest.fail(f"{name} passes but is listed in XFAIL ({XFAIL[name]}): remove it")
    run_case(case, jit)


def test_xfail_names_exist():
    unknown = sorted(set(XFAIL) - set(NAMES))
    assert not unknown, unknown
