"""The run's verdict: a test that errors makes it `error`, never `pass` (the gates alone used to decide,
so a run whose tests errored read "PASS (8/8)" while pytest exited 1)."""
from __future__ import annotations

import json

import pytest

from maskpro_eval.gating.verdict import ungated, verdict
from tests.builders import REPO_ROOT

pytest_plugins = ["pytester"]

PASSED = {"model": "m", "metric": "x", "passed": True, "tier": "quick"}
FAILED = {**PASSED, "passed": False}


@pytest.mark.parametrize("gates, ungated_pairs, problems, expected", [
    ([PASSED], [], [], "pass"),
    ([PASSED, FAILED], [], [], "fail"),
    ([PASSED], [{"model": "b", "tier": "full"}], [], "ungated"),
    ([], [], [], "ungated"),
    ([PASSED], [], [{"kind": "failed"}], "fail"),
    ([PASSED], [], [{"kind": "error"}], "error"),
    ([FAILED], [{"model": "b", "tier": "full"}], [{"kind": "error"}], "error"),
])
def test_verdict_rule(gates, ungated_pairs, problems, expected):
    assert verdict(gates, ungated_pairs, problems) == expected


def test_ungated_pairs():
    ran = [{"model": "m", "tier": "quick"}, {"model": "m", "tier": "quick"}, {"model": "m", "tier": "full"},
           {"model": "m", "tier": "gpu"}]
    assert ungated(ran, [PASSED]) == [{"model": "m", "tier": "full"}]   # gpu tier: measurements, opt-in gates


def test_an_erroring_test_makes_the_verdict_error(pytester):
    boom = pytester.makepyfile(test_boom="""
        import pytest
        pytestmark = pytest.mark.quick
        def test_boom(model):
            raise RuntimeError("boom: something broke while measuring")
    """)
    reports = pytester.path / "reports"
    result = pytester.runpytest_subprocess(
        str(REPO_ROOT / "evaluation_tests" / "test_quick.py"), str(boom), "-m", "quick", "-p", "no:cacheprovider",
        "--rootdir", str(REPO_ROOT), "-c", str(REPO_ROOT / "pyproject.toml"), "--checkpoint", "demo:magnitude_2of4",
        "--reports-dir", str(reports), "--run-name", "run", "--quick-samples", "2", "--quick-steps", "2",
        "--benchmark-disable")
    assert result.ret == 1, result.stdout.str()[-3000:]
    data = json.loads((reports / "run" / "evaluation_results.json").read_text())
    assert all(g["passed"] for g in data["gates"]) and data["gates"]   # every gate passed ...
    assert data["verdict"] == "error"                                  # ... and still no "pass"
    (prob,) = data["problems"]
    assert prob["kind"] == "error" and "test_boom" in prob["test"] and "RuntimeError: boom" in prob["message"]
    result.stdout.fnmatch_lines(["*ERROR: *test_boom* (call): RuntimeError: boom*", "*verdict: ERROR*"])
    assert "**Verdict: ERROR**" in (reports / "run" / "evaluation_summary.md").read_text()


def test_tests_of_no_single_model_are_ungated_only_when_their_tier_has_no_gate():
    ran = [{"model": "(run)", "tier": "quick"}, {"model": "m", "tier": "quick"}, {"model": "(run)", "tier": "compare"}]
    assert ungated(ran, [PASSED]) == [{"model": "(run)", "tier": "compare"}]
