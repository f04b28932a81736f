"""The package's import graph: no circle of imports crosses a folder (the layers contract in
pyproject.toml, which CI checks with lint-imports, says which folder may import which).

The graph is built by grimp (import-linter's parser) from the source files, as the package is
installed: ``backends/`` and ``kernels/`` inside ``fusejit/``. Imports inside functions count.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fusejit
import fusejit.jit

pytest.importorskip("grimp", reason="grimp comes with import-linter (the test extra)")

REPO = Path(__file__).resolve().parents[1]

GRAPH = textwrap.dedent("""
    import json, grimp
    g = grimp.build_graph("fusejit", cache_dir=None)
    print(json.dumps({m: sorted(g.find_modules_directly_imported_by(m)) for m in g.modules}))
""")


def _folders(modules) -> dict[str, str]:
    """Each module's folder: ``fusejit.jit.passes.fuse`` and ``fusejit.jit`` are in
    ``fusejit.jit``; the root's own modules (``fusejit``, ``fusejit.__main__``) in ``fusejit``."""
    packages = {m.rpartition(".")[0] for m in modules}
    out = {}
    for m in modules:
        parts = m.split(".")
        deep = len(parts) > 2 or m in packages and len(parts) == 2
        out[m] = ".".join(parts[:2]) if deep else "fusejit"
    return out


def _strongly_connected(edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(edges.get(w, ()))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(sorted(comp))
    return found


@pytest.fixture(scope="module")
def import_graph(tmp_path_factory) -> dict[str, list[str]]:
    tree = tmp_path_factory.mktemp("installed")
    shutil.copytree(REPO / "fusejit", tree / "fusejit")
    shutil.copytree(REPO / "backends", tree / "fusejit" / "backends")
    shutil.copytree(REPO / "kernels", tree / "fusejit" / "kernels")
    out = subprocess.run(
        [sys.executable, "-c", GRAPH], cwd=tree, env={"PYTHONPATH": str(tree)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def test_the_graph_covers_every_folder(import_graph):
    folders = set(_folders(import_graph).values())
    for name in ("base", "ops", "ir", "kernels", "codegen", "store", "backends", "eager", "nn",
                 "jit", "bench"):  # fmt: skip
        assert f"fusejit.{name}" in folders


def test_no_import_circle_crosses_a_folder(import_graph):
    folder = _folders(import_graph)
    crossing = [c for c in _strongly_connected(import_graph) if len({folder[m] for m in c}) > 1]
    assert crossing == [], f"import circles across folders: {crossing}"


def test_the_circle_finder_finds_a_circle():
    edges = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": []}
    assert _strongly_connected(edges) == [["a", "b", "c"]]


def test_jit_trace_and_script_are_the_functions_as_in_torch_jit():
    assert fusejit.jit.trace is fusejit.trace and fusejit.jit.script is fusejit.script
    x = fusejit.arange(4, dtype=fusejit.float32)
    f = fusejit.jit.trace(lambda x: (x * 2).exp(), (x,))
    np.testing.assert_allclose(f(x).numpy(), np.exp(np.arange(4, dtype=np.float64) * 2),
                               rtol=1e-6)  # fmt: skip
