"""The Array API standard's conformance suite (``array-api-tests``, vendored under
``tests/array_api_conformance``) against ``fusejit.array_api``, in a pytest process of its own.

It fails when fewer than 95% of the suite's tests that run pass, or when a test fails that is not
listed, with its reason, in ``tests/array_api_known_failures.txt``. Hypothesis runs
derandomized with few examples (``MAX_EXAMPLES``), so a run repeats; raise the count with
``FUSEJIT_ARRAY_API_MAX_EXAMPLES`` for a more thorough one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SUITE = os.path.join(HERE, "array_api_conformance")
KNOWN = os.path.join(HERE, "array_api_known_failures.txt")
MAX_EXAMPLES = int(os.environ.get("FUSEJIT_ARRAY_API_MAX_EXAMPLES", "5"))
MIN_PASS_RATE = 0.95

pytest.importorskip("ndindex", reason="the conformance suite needs ndindex (the test extra)")


def known_failures() -> dict[str, str]:
    """The listed test ids (a test's id, or its id less the parameters) and their reasons."""
    out = {}
    with open(KNOWN, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            test_id, _, reason = line.partition(" # ")
            assert reason.strip(), f"{test_id}: a known failure needs its reason"
            out[test_id.strip()] = reason.strip()
    return out


def is_known(test_id: str, known: dict[str, str]) -> bool:
    return test_id in known or test_id.split("[", 1)[0] in known


def run_suite(tmp_path) -> dict[str, str]:
    """Each test id of the suite and its outcome: passed, failed or skipped."""
    report = tmp_path / "conformance.xml"
    # (hypothesis's example database in the test's folder: no example from another run replays)
    env = dict(os.environ, ARRAY_API_TESTS_MODULE="fusejit.array_api",
               HYPOTHESIS_STORAGE_DIRECTORY=str(tmp_path / "hypothesis"),
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))  # fmt: skip
    cmd = [sys.executable, "-m", "pytest", "array_api_tests", "-q", "-p", "no:cacheprovider",
           "--max-examples", str(MAX_EXAMPLES), "--derandomize", "--disable-deadline",
           f"--junitxml={report}", "-W", "ignore::RuntimeWarning"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=SUITE, env=env, capture_output=True, text=True, timeout=1800)
    assert report.exists(), f"the suite did not run:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        test_id = f"{module}.py::{case.get('name')}"
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            outcomes[test_id] = "failed"
        elif "skipped" in kinds:
            outcomes[test_id] = "skipped"
        else:
            outcomes[test_id] = "passed"
    return outcomes


@pytest.mark.slow
def test_array_api_conformance(tmp_path):
    known = known_failures()
    outcomes = run_suite(tmp_path)
    ran = [t for t, o in outcomes.items() if o != "skipped"]
    failed = sorted(t for t, o in outcomes.items() if o == "failed")
    assert len(ran) > 1000, f"only {len(ran)} conformance tests ran"
    rate = 1 - len(failed) / len(ran)
    unexpected = [t for t in failed if not is_known(t, known)]
    assert not unexpected, (
        f"{len(unexpected)} conformance tests failed that are not in "
        f"array_api_known_failures.txt:\n" + "\n".join(unexpected)
    )
    assert rate >= MIN_PASS_RATE, (
        f"{len(failed)} of {len(ran)} conformance tests failed ({rate:.1%} passed, below "
        f"{MIN_PASS_RATE:.0%})"
    )


def test_known_failures_are_listed_with_reasons():
    known = known_failures()
    assert all(t.startswith("array_api_tests/test_") for t in known)
