"""Compare mode, the training-run workflow, the `run` command and the Python API, as users run them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import types

import pytest

from tests.builders import REPO_ROOT, SHARED_FIXTURES

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow

COMMON = ["-p", "no:cacheprovider", "--rootdir", str(REPO_ROOT), "-c", str(REPO_ROOT / "pyproject.toml"),
          "--run-name", "run", "--no-progress", "--benchmark-disable"]
SMALL = ["--num-samples", "16", "--steps", "10", "--consistency-seeds", "2"]


def test_compare_writes_everything_and_relative_gate_fails(pytester, small_ref, garbage_model, shared_fid_cache):
    rules = pytester.path / "rules.toml"
    rules.write_text('[[compare.relative]]\nmodel = "garbage"\nreference = "dense"\nmetric = "fid"\n'
                     'max_worse_relative = 0.1\n')
    result = pytester.runpytest_inprocess(   # in-process: no interpreter start (~7 s); nothing here patches code
        str(REPO_ROOT / "evaluation_tests"), "-m", "compare", *COMMON, *SMALL,
        "--reports-dir", str(pytester.path / "reports"), "--fid-cache-dir", str(shared_fid_cache),
        "--checkpoint", f"garbage={garbage_model}", "--checkpoint", "demo:magnitude_2of4_ft",
        "--original", "dense=demo:dense", "--fid-ref", str(small_ref), "--thresholds", str(rules))
    assert result.ret == 1, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["*FAIL*garbage: fid_vs_dense*"])
    cmp_dir = pytester.path / "reports" / "run" / "comparison"
    for f in ("comparison_table.csv", "comparison_table.md", "detailed_results.json", "comparison_report.md",
              "comparison_dashboard.png", "compression_efficiency.png"):
        assert (cmp_dir / f).is_file(), f
    rows = {r["model"]: r for r in json.loads((cmp_dir / "detailed_results.json").read_text())["rows"]}
    assert set(rows) == {"garbage", "magnitude_2of4_ft", "dense"}
    assert rows["magnitude_2of4_ft"]["compression_ratio"] > 1.5 and rows["dense"]["compression_ratio"] == 1.0
    assert rows["garbage"]["paired_mse_vs_reference"] > rows["magnitude_2of4_ft"]["paired_mse_vs_reference"]
    assert rows["magnitude_2of4_ft"]["fid_std_over_seeds"] is not None
    assert any(r["pareto_optimal"] for r in rows.values())


def test_api_equals_pytest_run(pytester, small_ref, tmp_path, shared_fid_cache):
    from maskpro_eval import MaskProEvaluator
    reports = pytester.path / "reports"
    # At N=16 vs a 48-image reference the FID increase is noise-dominated (+78% for the fine-tuned zoo model),
    # so the project default (+25%) is replaced by a loose gate: the gate still runs, and this test is about
    # the API reproducing the suite's numbers, not about the model passing at N=16.
    rules = pytester.path / "rules.toml"
    rules.write_text("[full]\nmax_fid_increase_relative = 5.0\n")
    result = pytester.runpytest_subprocess(
        str(REPO_ROOT / "evaluation_tests"), "-m", "quick or full", *COMMON, *SMALL,
        "--reports-dir", str(reports), "--fid-cache-dir", str(shared_fid_cache),
        "--checkpoint", "demo:magnitude_2of4_ft", "--baseline", "demo:dense", "--fid-ref", str(small_ref),
        "--quick-samples", "4", "--quick-steps", "4", "--thresholds", str(rules))
    assert result.ret == 0, result.stdout.str()[-3000:]
    data = json.loads((reports / "run" / "evaluation_results.json").read_text())
    ev = MaskProEvaluator("demo:magnitude_2of4_ft", "demo:dense", output_dir=tmp_path)
    entry = ev.analyze_sparsity()
    m = data["models"]["magnitude_2of4_ft"]
    for key in ("parameters", "sparsity", "nm", "compression", "macs"):
        assert entry[key] == m[key], key
    assert entry["layers"] == m["layers"]
    fid = ev.compute_fid(reference=str(small_ref), num_samples=16, steps=10, consistency_seeds=2)
    assert fid["fid"] == m["quality"]["fid"]
    assert fid["kid_mean"] == m["quality"]["kid_mean"]
    assert fid["consistency"]["fid"] == m["quality"]["consistency"]["fid"]
    assert fid["fid_increase"] == pytest.approx(m["quality"]["fid_increase"], abs=1e-12)
    assert fid["biased"] is True and fid["n"] == 16
    samples = ev.generate_samples(num_samples=16, steps=10)
    assert samples.shape == (16, 32, 32, 3) and (tmp_path / "samples" / "magnitude_2of4_ft_grid.png").is_file()
    speed = ev.benchmark_inference_speed(batch_sizes=(2,), rounds=2, warmup=1)
    assert speed["magnitude_2of4_ft"][0]["images_per_s"] > 0


REAL_RUN = SHARED_FIXTURES / "real_formats" / "run" / "maskpro" / "training"


@pytest.mark.skipif(not REAL_RUN.exists(), reason="shared fixtures not present")
def test_run_command_workflow_on_real_training_run(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "maskpro_eval.cli.main", "run", "--mode", "quick", "--output-dir", str(out),
                           "--training-dir", str(REAL_RUN), "--training-select", "all", "--",
                           "--trust-pickle", "--quick-samples", "4", "--quick-steps", "4", "--benchmark-disable",
                           "-p", "no:cacheprovider"], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    summary = json.loads((out / "workflow_results.json").read_text())
    assert [s["tier"] for s in summary["steps"]] == ["quick", "workflow"]
    assert all(s["exit_code"] == 0 for s in summary["steps"])
    wf = json.loads((out / "workflow" / "workflow_results.json").read_text())
    assert {c["name"] for c in wf["checkpoints"]} == {"epoch_3", "best"}
    assert wf["training_logs"] and (out / "workflow" / "trends" / "trend.png").is_file()
    quick = json.loads((out / "quick" / "evaluation_results.json").read_text())
    assert quick["models"]["best"]["nm"]["compliance"] == 1.0
    assert quick["models"]["best"]["sparsity"]["masked_layers"] == 0.5


SHIPPED_DEMO = REPO_ROOT / "evaluation_tests" / "thresholds_demo.toml"


def shipped_relative_rule() -> tuple[str, str]:
    """The (model, reference) names of thresholds_demo.toml's one [[compare.relative]] rule."""
    import tomllib
    rules = tomllib.loads(SHIPPED_DEMO.read_text())["compare"]["relative"]
    assert len(rules) == 1
    return rules[0]["model"], rules[0]["reference"]


#: The shipped-demo run's sample counts. CI: N = 40 (one CPU micro-batch, ~90 s on the 2-core CI machine);
#: measured 2026-12-06 there, the one-shot models fail every claimed gate by a wide margin: FID increase over
#: dense +634 % / +704 % (gate +100 %), drift 0.114 / 0.141 (gate 0.05), swapped FIDs 438.3 vs 400.7 (rule
#: max_worse 0). The release tier (``pytest -m release``) runs the demo protocol itself, N = 200 (~5 min).
SHIPPED_DEMO_N = [pytest.param(40, id="N40"), pytest.param(200, id="N200", marks=pytest.mark.release)]


@pytest.fixture(scope="module", params=SHIPPED_DEMO_N)
def shipped_demo_run(request, tmp_path_factory, shared_fid_cache):
    """ONE suite run (a subprocess, as pytester's runpytest_subprocess: HOME in the run's folder, no
    PYTEST_ADDOPTS) of `-m "full or compare"` with thresholds_demo.toml as shipped, DDIM-100, seed 0, the
    held-out digits, N = ``request.param`` (the demo protocol's 200 in the release tier, 40 in CI), for both
    shipped-demo gate claims below: the two one-shot 2:4 models under each other's names (the
    [[compare.relative]] claim) and demo:dense as the baseline (the [full] claims). One session samples and
    featurises each of the three models once."""
    from maskpro_eval.checkpoints.zoo import ZOO_REFERENCE_FILE
    model, reference = shipped_relative_rule()
    n = request.param
    root = tmp_path_factory.mktemp(f"shipped_demo_n{n}")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "TOX_ENV_DIR")}
    env.update(HOME=str(root), USERPROFILE=str(root), PY_COLORS="0")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", f"--basetemp={root / 'basetemp'}", str(REPO_ROOT / "evaluation_tests"),
         "-m", "full or compare", *COMMON, "--num-samples", str(n), "--consistency-seeds", "0",
         "--reports-dir", str(root / "reports"), "--fid-cache-dir", str(shared_fid_cache),
         "--checkpoint", f"{model}=demo:{reference}", "--checkpoint", f"{reference}=demo:{model}",
         "--baseline", "dense=demo:dense", "--fid-ref", str(ZOO_REFERENCE_FILE), "--thresholds", str(SHIPPED_DEMO)],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200)
    results = root / "reports" / "run" / "evaluation_results.json"
    data = json.loads(results.read_text()) if results.is_file() else {}
    if data:
        assert data["models"][model]["quality"]["fid_n"] == n, "the run sampled another N"
    return types.SimpleNamespace(ret=proc.returncode, out=proc.stdout, stdout=pytest.LineMatcher(proc.stdout.splitlines()),
                                 data=data, gates={(g["model"], g["metric"]): g for g in data.get("gates", [])})


def test_shipped_demo_relative_gate_fails_when_the_two_models_are_swapped(shipped_demo_run):
    """evaluation_tests/thresholds_demo.toml's [[compare.relative]] rule, run as shipped (DDIM-100, the held-out
    digits; N = 200, the demo protocol, in the release tier, N = 40 in CI) with the two models trading names:
    it FAILS. Samples depend only on the model and the seed, so at N = 200 the swapped run sees exactly the
    default compare run's FIDs exchanged: the default run passes (README, "The demo model zoo") and this one
    must fail.
    (The run is shared with the [full] claim below: fixture shipped_demo_run.)"""
    run = shipped_demo_run
    model, reference = shipped_relative_rule()
    assert run.ret == 1, run.out[-3000:]
    run.stdout.fnmatch_lines([f"*FAIL*{model}: fid_vs_{reference}*"])
    gate = run.gates[(model, f"fid_vs_{reference}")]
    assert not gate["passed"] and gate["value"] is not None and gate["value"] > gate["threshold"], gate  # measured, worse


def test_shipped_demo_full_gates_fail_a_one_shot_model(shipped_demo_run):
    """evaluation_tests/thresholds_demo.toml's [full] gates, as shipped (DDIM-100, seed 0, the held-out digits;
    N = 200 in the release tier, N = 40 in CI): the one-shot 2:4 models (no fine-tune) FAIL the FID increase
    relative to dense and the drift gate, so the default full run's pass is not a gate that cannot fail.
    (The fine-tuned models pass the same gates in the default run: README, "The demo model zoo".)
    The run is shared with the swap claim above (fixture shipped_demo_run), so the one-shot magnitude
    model (demo:magnitude_2of4) runs under the name of the rule's model and demo:maskpro_2of4 under the
    other: both are asserted to fail."""
    run = shipped_demo_run
    model, reference = shipped_relative_rule()
    assert run.ret == 1, run.out[-3000:]
    sources = {name: run.data["models"][name]["source"] for name in (model, reference)}
    assert sources == {model: f"demo:{reference}", reference: f"demo:{model}"}, sources  # the two one-shot models
    for name in (model, reference):
        run.stdout.fnmatch_lines([f"*[[]FAIL[]] {name}: fid_increase_relative = *"])
        run.stdout.fnmatch_lines([f"*[[]FAIL[]] {name}: drift_mse_mean = *"])
        for metric in ("fid_increase_relative", "drift_mse_mean"):
            gate = run.gates[(name, metric)]
            assert not gate["passed"] and gate["value"] > gate["threshold"], gate


def test_shipped_demo_quick_gates_fail_the_one_shot_models(pytester):
    """evaluation_tests/thresholds_demo.toml's [quick] gates, as shipped: the one-shot 2:4 models (no
    fine-tune) FAIL the output agreement with dense (measured 0.33 / 0.24 against the shipped 0.15), while the
    default quick run passes the fine-tuned ones (0.066; README, "The demo model zoo")."""
    result = pytester.runpytest_inprocess(   # in-process: no interpreter start (~7 s)
        str(REPO_ROOT / "evaluation_tests"), "-m", "quick", *COMMON,
        "--reports-dir", str(pytester.path / "reports"),
        "--checkpoint", "magnitude_2of4=demo:magnitude_2of4", "--checkpoint", "maskpro_2of4=demo:maskpro_2of4",
        "--baseline", "demo:dense", "--thresholds", str(SHIPPED_DEMO))
    assert result.ret == 1, result.stdout.str()[-3000:]
    for name in ("magnitude_2of4", "maskpro_2of4"):
        result.stdout.fnmatch_lines([f"*[[]FAIL[]] {name}: output_rel_error_vs_baseline = * (gate: "
                                     "output_rel_error_vs_baseline <= 0.15)*"])
