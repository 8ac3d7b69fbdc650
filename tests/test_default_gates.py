"""A gate run that gates: with no thresholds of the user's, `pytest -m full` applies the shipped default
[full] gates (relative to the baseline when one is given, absolute FID/KID otherwise) and FAILS a bad
model; a model that ends a tier with no gate reads `ungated`, and --require-gates makes that exit 1."""
from __future__ import annotations

import json

import pytest

from tests.test_full_suite import run_full

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow


def _results(pytester):
    data = json.loads((pytester.path / "reports" / "run" / "evaluation_results.json").read_text())
    return data, {(g["model"], g["metric"]): g for g in data["gates"]}


def test_default_absolute_gates_fail_a_bad_model_without_baseline(pytester, small_ref, garbage_model, shared_fid_cache):
    result = run_full(pytester, "--checkpoint", f"garbage={garbage_model}", "--fid-ref", str(small_ref),
                      fid_cache=shared_fid_cache)
    assert result.ret == 1, result.stdout.str()[-3000:]
    data, gates = _results(pytester)
    assert data["thresholds"]["source"].endswith("evaluation_tests/thresholds.toml")
    assert gates[("garbage", "fid")]["threshold"] == 10.0 and not gates[("garbage", "fid")]["passed"]
    assert gates[("garbage", "kid")]["threshold"] == 0.01 and not gates[("garbage", "kid")]["passed"]
    assert data["verdict"] == "fail" and data["ungated"] == []
    result.stdout.fnmatch_lines(["*[[]FAIL[]] garbage: fid = * (gate: fid <= 10)*", "*verdict: FAIL*"])
    # a full-tier-only run still reports the model's facts (analysis is cheap): sparsity, N:M, layers
    m = data["models"]["garbage"]
    assert m["sparsity"]["masked_layers"] is not None and m["nm"]["compliance"] is not None and m["layers"]
    csv = (pytester.path / "reports" / "run" / "analysis" / "layer_sparsity.csv").read_text().splitlines()
    assert len(csv) == 1 + len(m["layers"])
    result.stdout.fnmatch_lines(["*maskpro-eval models*", "model *N:M compl.*FID / KID*",
                                 "garbage *model *(2:4)* (N=16, biased) / KID *FAIL fid, kid*"])


def test_default_relative_gate_with_baseline(pytester, small_ref, garbage_model, shared_fid_cache):
    result = run_full(pytester, "--checkpoint", f"garbage={garbage_model}", "--checkpoint", "same=demo:dense",
                      "--baseline", "demo:dense", "--fid-ref", str(small_ref), fid_cache=shared_fid_cache)
    assert result.ret == 1, result.stdout.str()[-3000:]
    data, gates = _results(pytester)
    bad, good = gates[("garbage", "fid_increase_relative")], gates[("same", "fid_increase_relative")]
    assert bad["threshold"] == good["threshold"] == 0.25
    assert not bad["passed"] and bad["value"] > 0.25
    assert good["passed"] and good["value"] == 0.0       # identical model, identical noise
    assert ("garbage", "fid") not in gates               # absolute gates only apply without a baseline
    assert data["verdict"] == "fail"


def test_ungated_run_is_loud_and_require_gates_fails_it(pytester, small_ref, shared_fid_cache):
    toml = pytester.path / "no_full_gates.toml"
    toml.write_text("[quick]\nmin_nm_compliance = 0.9\n")
    args = ("--checkpoint", "dense=demo:dense", "--fid-ref", str(small_ref), "--thresholds", str(toml))
    result = run_full(pytester, *args, fid_cache=shared_fid_cache)
    assert result.ret == 0, result.stdout.str()[-3000:]
    data, gates = _results(pytester)
    assert gates == {} and data["verdict"] == "ungated"
    assert data["ungated"] == [{"model": "dense", "tier": "full"}]
    result.stdout.fnmatch_lines(["*UNGATED: no gate judged dense (full)*", "*verdict: UNGATED*"])
    summary = (pytester.path / "reports" / "run" / "evaluation_summary.md").read_text()
    assert "**Verdict: UNGATED**" in summary and "UNGATED: no gate judged dense (full)" in summary

    result = run_full(pytester, *args, "--require-gates", "--run-name", "strict", fid_cache=shared_fid_cache)
    assert result.ret == 1, result.stdout.str()[-3000:]
    data = json.loads((pytester.path / "reports" / "strict" / "evaluation_results.json").read_text())
    assert data["verdict"] == "ungated"
