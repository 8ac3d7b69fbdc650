"""The quick tier, run as users run it (pytester): it must FAIL on bad models and on bad input, PASS on a
strict 2:4 model, and write every report file. The runs are in-process (pytester.runpytest_inprocess: no
interpreter start and torch/diffusers imports per run); fresh-process runs of the quick tier are
tests/test_html_report.py, tests/test_verdict.py, tests/test_plugin_options.py and CI's own `pytest -m quick`."""
from __future__ import annotations

import json

import pytest

from tests.builders import REPO_ROOT, build_model_folder, prune_nm, save_pipeline, zoo_garbage_unet

pytest_plugins = ["pytester"]


def run_quick(pytester, *args, reports=None):
    reports = reports or pytester.path / "reports"
    return pytester.runpytest_inprocess(
        str(REPO_ROOT / "evaluation_tests"), "-m", "quick", "-p", "no:cacheprovider",
        "--rootdir", str(REPO_ROOT), "-c", str(REPO_ROOT / "pyproject.toml"),
        "--reports-dir", str(reports), "--run-name", "run", "--quick-samples", "4", "--quick-steps", "4",
        "--benchmark-disable", *args)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {k: build_model_folder(k, root / k)
            for k in ("dense", "strict24", "noncompliant", "undersparse", "nan", "overflow", "constant")}


def _gates(reports):
    data = json.loads((reports / "run" / "evaluation_results.json").read_text())
    return data, {(g["model"], g["metric"]): g for g in data["gates"]}


def test_strict_24_model_passes_and_writes_reports(pytester, models):
    reports = pytester.path / "reports"
    result = run_quick(pytester, "--checkpoint", f"good={models['strict24']}",
                       "--baseline", f"dense={models['dense']}",
                       "--results-json", str(pytester.path / "res.json"))
    assert result.ret == 0, result.stdout.str()[-3000:]
    run = reports / "run"
    for f in ("evaluation_results.json", "evaluation_summary.md", "analysis/layer_sparsity.csv",
              "visualizations/layer_sparsity.png", "samples/good_quick_grid.png", "metrics/metrics.json",
              "report.html"):
        assert (run / f).is_file(), f
    data, gates = _gates(reports)
    assert gates[("good", "nm_compliance_2:4")]["value"] == 1.0
    assert gates[("good", "sparsity_masked")]["passed"]
    assert data["verdict"] == "pass"
    m = data["models"]["good"]
    for key in ("source", "format", "parameters", "sparsity", "nm", "layers", "compression"):
        assert key in m
    assert m["nm"]["compliance_channel_layout"] is not None
    assert {"name", "shape", "sparsity", "nm_compliance", "masked", "eligible"} <= set(m["layers"][0])
    assert data["models"]["dense"]["role"] == "baseline"
    assert json.loads((pytester.path / "res.json").read_text())["gates"] == data["gates"]
    assert not list(reports.glob(".staging-*"))
    html = (run / "report.html").read_text()
    assert "Gate verdicts: PASS" in html and "data:image/png;base64," in html  # self-contained, with images
    # pytest-html names the staging folder it wrote to; the line after it names where the report ends up
    result.stdout.fnmatch_lines(["*Generated html report: *reports/.staging-run-*/report.html*",
                                 f"*final html report: {(run / 'report.html').as_uri()} -*"])


def test_noncompliant_model_fails_nm_gate(pytester, models):
    reports = pytester.path / "reports"
    result = run_quick(pytester, "--checkpoint", f"bad={models['noncompliant']}")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*nm_compliance_2:4 = 0.*gate: nm_compliance_2:4 >= 0.9*worst layers*",
                                 "*FAILED*test_nm_compliance*bad*"])
    _, gates = _gates(reports)
    assert not gates[("bad", "nm_compliance_2:4")]["passed"]
    assert gates[("bad", "sparsity_masked")]["passed"]  # sparse enough, just not N:M


def test_under_sparse_model_fails_sparsity_gate(pytester, models):
    reports = pytester.path / "reports"
    result = run_quick(pytester, "--checkpoint", f"under={models['undersparse']}")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*FAILED*test_target_sparsity*under*"])
    _, gates = _gates(reports)
    assert gates[("under", "nm_compliance_2:4")]["passed"]
    assert not gates[("under", "sparsity_masked")]["passed"]


def _failed(gates, model):
    return sorted(metric for (name, metric), g in gates.items() if name == model and not g["passed"])


def test_nonfinite_forward_and_constant_samples_fail_their_gates(pytester, models):
    """Finite weights, broken output conv: Inf/NaN forward -> forward_finite_fraction fails; a constant
    noise prediction -> identical flat samples -> quick_sample_pixel_std fails (its forward is finite)."""
    reports = pytester.path / "reports"
    result = run_quick(pytester, "--checkpoint", f"overflow={models['overflow']}",
                       "--checkpoint", f"constant={models['constant']}")
    assert result.ret == 1, result.stdout.str()[-3000:]
    _, gates = _gates(reports)
    finite = gates[("overflow", "forward_finite_fraction")]
    assert not finite["passed"] and finite["value"] < 0.01 and finite["threshold"] == 1.0
    assert gates[("overflow", "nonfinite_parameter_tensors")]["passed"]  # the weights themselves are finite
    assert _failed(gates, "overflow") == ["forward_finite_fraction", "quick_sample_pixel_std"]  # NaN -> 0 pixels
    assert gates[("constant", "forward_finite_fraction")]["value"] == 1.0
    std = gates[("constant", "quick_sample_pixel_std")]
    assert std["value"] == 0.0 and std["threshold"] == 0.02
    assert _failed(gates, "constant") == ["quick_sample_pixel_std"]
    result.stdout.fnmatch_lines([
        "*[[]FAIL[]] overflow: forward_finite_fraction = 0.00* (gate: forward_finite_fraction >= 1)*",
        "*[[]FAIL[]] constant: quick_sample_pixel_std = 0 (gate: quick_sample_pixel_std >= 0.02)*",
        "FAILED *test_forward_pass_shape_and_finite*overflow*",
        "FAILED *test_quick_samples*constant*"])


@pytest.fixture(scope="module")
def garbage_24(tmp_path_factory):
    """An untrained zoo-architecture UNet, strict 2:4: passes every quick gate but output agreement."""
    unet = zoo_garbage_unet()
    prune_nm(unet)
    return save_pipeline(unet, tmp_path_factory.mktemp("garbage24") / "g")


def test_model_far_from_baseline_fails_output_agreement(pytester, garbage_24):
    toml = pytester.path / "t.toml"
    toml.write_text("[quick]\nmax_output_rel_error = 0.2\n")
    reports = pytester.path / "reports"
    result = run_quick(pytester, "--checkpoint", f"far={garbage_24}", "--checkpoint", "near=demo:maskpro_2of4_ft",
                       "--baseline", "demo:dense", "--thresholds", str(toml))
    assert result.ret == 1, result.stdout.str()[-3000:]
    data, gates = _gates(reports)
    far, near = gates[("far", "output_rel_error_vs_baseline")], gates[("near", "output_rel_error_vs_baseline")]
    assert not far["passed"] and far["value"] > 0.9 and far["threshold"] == 0.2  # ~1: unrelated outputs
    assert near["passed"] and near["value"] < 0.15   # the fine-tuned 2:4 model: ~0.11
    assert data["models"]["far"]["output_rel_error_vs_baseline"] == far["value"]
    assert _failed(gates, "far") == ["output_rel_error_vs_baseline"] and _failed(gates, "near") == []
    result.stdout.fnmatch_lines([
        "*[[]FAIL[]] far: output_rel_error_vs_baseline = * (gate: output_rel_error_vs_baseline <= 0.2); baseline dense*",
        "FAILED *test_output_agreement_with_baseline*far*"])


def test_thresholds_file_and_cli_override(pytester, models):
    toml = pytester.path / "t.toml"
    toml.write_text("[quick]\nmin_nm_compliance = 0.1\n")
    reports = pytester.path / "reports"
    result = run_quick(pytester, "--checkpoint", f"bad={models['noncompliant']}", "--thresholds", str(toml))
    _, gates = _gates(reports)
    assert gates[("bad", "nm_compliance_2:4")]["threshold"] == 0.1 and gates[("bad", "nm_compliance_2:4")]["passed"]
    result = run_quick(pytester, "--checkpoint", f"bad={models['noncompliant']}", "--thresholds", str(toml),
                       "--min-nm-compliance", "0.95")
    _, gates = _gates(reports)
    assert gates[("bad", "nm_compliance_2:4")]["threshold"] == 0.95 and result.ret == 1


@pytest.mark.parametrize("case", ["missing", "nan", "corrupt"])
def test_bad_input_exits_with_one_line_error_and_no_report(pytester, models, case):
    reports = pytester.path / "reports"
    if case == "missing":
        path, expect = pytester.path / "nope", "ERROR: maskpro-eval: --checkpoint: *nope: does not exist*"
    elif case == "nan":
        path, expect = models["nan"], "*bad input*NaN*"
    else:
        path = pytester.path / "corrupt.safetensors"
        path.write_bytes(b"\x00garbage" * 10)
        expect = "*bad input*corrupt.safetensors*"
    result = run_quick(pytester, "--checkpoint", f"x={path}")
    assert result.ret == 4, result.stdout.str()[-2000:]
    assert not (reports / "run").exists() and not list(reports.glob(".staging-*"))
    if case == "missing":  # found at start-up, before pytest-html or any test started
        result.stderr.fnmatch_lines([expect])
        return
    result.stdout.fnmatch_lines([expect])
    result.stdout.fnmatch_lines(["*html report discarded: the run did not complete*"])


def test_bad_option_is_a_usage_error(pytester, models):
    result = run_quick(pytester, "--checkpoint", f"x={models['strict24']}", "--nm", "4:2")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*N:M pattern*4:2*"])
