"""The benchmark harness: every CPU-capable CLI subcommand writes a maskpro-eval-bench/1 record with the
exact command; the pytest-benchmark suite under benchmarks/ collects and passes on the CPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cli import main
from maskpro_eval.runtime.records import RECORD_KEYS, SCHEMA, VERSION_KEYS, check_record
from tests.builders import half_precision_on_cpu_ok

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {
    "env": ["--model", "tiny", "--matmul-n", "64", "--copy-mib", "1", "--rounds", "2"],
    "forward": ["--batches", "1,2", "--dtypes", "float32", "--rounds", "2", "--warmup", "1"],
    "sampling": ["--paths", "standard,fast,diffusers", "--n", "2", "--steps", "2", "--batch", "2", "--check-pixels"],
    "settings": ["--settings", "fp32,bf16+cl", "--batch", "2", "--steps", "2", "--rounds", "2"],
    "profile": ["--setting", "fp32", "--batch", "2", "--steps", "2", "--calls", "1"],
    "inception": ["--modes", "strict-fp32/deterministic", "--n", "2", "--batch", "2", "--rounds", "1"],
    "frechet": ["--n", "64", "--dim", "8", "--rounds", "2"],
    "overlap": ["--model", "tiny", "--setting", "fp32", "--batch", "4", "--steps", "3", "--batches", "2",
                "--features", "pixel", "--feature-batch", "2"],
}


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


def _check(path: Path, name: str, command: list[str]) -> dict:
    rec = json.loads(path.read_text())
    assert check_record(rec) == []
    assert rec["schema"] == SCHEMA and rec["name"] == name and rec["command"] == command
    assert {k: type(rec[k]) for k in RECORD_KEYS} == RECORD_KEYS
    assert set(VERSION_KEYS) <= set(rec["versions"]) and isinstance(rec["versions"]["torch"], str)
    assert rec["device"]["device"].startswith("cpu") and rec["figures"]
    return rec


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """make-models on the tiny UNet: dense + magnitude 2:4 diffusers folders (and their record)."""
    out = tmp_path_factory.mktemp("bench")
    argv = ["make-models", "--model", "tiny", "--models-dir", str(out / "models"), "--out", str(out / "mm.json"),
            "--device", "cpu"]
    assert main(argv) == 0
    rec = _check(out / "mm.json", "make-models", [sys.executable, "-m", "benchmarks", *argv])
    assert rec["figures"]["layers_pruned_2of4"] > 0
    return out / "models"


@half_precision_on_cpu_ok
@pytest.mark.parametrize("name", list(TINY))
def test_subcommand_record(name, tmp_path):
    argv = [name, *TINY[name], "--device", "cpu", "--out", str(tmp_path / "r.json")]
    assert main(argv) == 0
    rec = _check(tmp_path / "r.json", name, [sys.executable, "-m", "benchmarks", *argv])
    if name == "overlap":  # same work both ways: the pipelined route computes the same features
        f = rec["figures"]
        assert f["sampling_s"] > 0 and f["features_s"] > 0 and f["pipelined_s"] > 0
        assert f["max_abs_feature_diff_pipelined_vs_sequential"] == 0.0
    elif name not in ("env", "profile"):
        rows = rec["figures"]["rows"]
        assert rows and all(r.get("rate") or (r.get("unet_call") or {}).get("rate") for r in rows)
    if name == "sampling":  # the fast path gives the standard path's images on the CPU
        assert rec["figures"]["pixels_fast_vs_standard"]["identical_fraction"] == 1.0


def test_fid50k_record_and_table(models, tmp_path, capsys):
    argv = ["fid50k", "--out", str(tmp_path / "fid.json"), "--", "--model", str(models / "dense"), "--num-samples",
            "4", "--steps", "2", "--batch-size", "2", "--features", "pixel16", "--device", "cpu", "--dtype", "float32"]
    assert main(argv) == 0
    rec = _check(tmp_path / "fid.json", "fid50k", [sys.executable, "-m", "benchmarks", *argv])
    assert rec["settings"]["distributed_argv"] == argv[4:] and rec["figures"]["num_samples"] == 4
    (tmp_path / "archived.json").write_text(json.dumps({"n": 1}))
    capsys.readouterr()
    assert main(["table", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| fid.json | fid50k |" in out and "throughput_img_per_s" in out and "archived.json" in out


def test_command_is_the_exact_argv(tmp_path):
    """Run as a program, the record's command is the process's argv as typed."""
    out = tmp_path / "f.json"
    cmd = [sys.executable, "-m", "benchmarks", "frechet", "--n", "32", "--dim", "4", "--rounds", "1",
           "--backends", "numpy", "--out", str(out)]
    subprocess.run(cmd, cwd=ROOT, env=_env(), check=True, capture_output=True, timeout=120)
    _check(out, "frechet", cmd)


def test_bad_setting_is_a_usage_error(capsys):
    assert main(["settings", "--settings", "compile+nope", "--device", "cpu"]) == 2
    assert "unknown setting tokens ['nope']" in capsys.readouterr().err


def test_pytest_benchmark_suite_runs_on_cpu(tmp_path):
    """``pytest benchmarks -m bench`` passes on the CPU (CUDA cases skip with a reason); the benchmark JSON
    carries the record's schema, versions and command."""
    bj = tmp_path / "bench.json"
    cmd = [sys.executable, "-m", "pytest", "benchmarks", "-m", "bench", "-q", "-p", "no:cacheprovider",
           "--benchmark-json", str(bj), "--reports-dir", str(tmp_path / "reports"), "-rs"]
    res = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert " passed" in res.stdout and "failed" not in res.stdout and "no CUDA" in res.stdout
    info = json.loads(bj.read_text())["machine_info"]["maskpro_eval_bench"]
    assert info["schema"] == SCHEMA and set(VERSION_KEYS) <= set(info["versions"]) and info["command"][-1] == "-rs"


def test_full50k_record_copies_the_runs_figures_and_the_fidelity_run(tmp_path):
    """benchmarks.full50k_record: every figure comes from the run's results and the fidelity record."""
    import json

    from benchmarks.full50k_record import main as record_main
    results = {"run": {"torch": "2.11.0+cu130", "diffusers": "0.42.1", "started": "2026-12-06T13:00:00+0000",
                       "device": "cuda", "exit_status": 0},
               "models": {"dense": {"quality": {"fid": 12.5}}},
               "timings": {"device_name": "NVIDIA H200", "bf16_peak_tflops": 989.4,
                           "phases": {"sampling": {"seconds": 100.0, "img_steps_per_s": 50000.0, "tflops": 622.0,
                                                   "fraction_of_bf16_peak": 0.6287}}}}
    res = tmp_path / "evaluation_results.json"
    res.write_text(json.dumps(results))
    fidelity = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "h200_20261204_trained_fidelity" / "trained_fidelity_zoo_dense.json"
    out = tmp_path / "full_50k_latest.json"
    assert record_main(["--results", str(res), "--total-seconds", "171.25", "--command", "pytest -m full X",
                 "--fidelity", str(fidelity), "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["device"] == "NVIDIA H200" and rec["torch"] == "2.11.0+cu130" and rec["command"] == "pytest -m full X"
    assert rec["total_seconds"] == 171.25 and rec["fid_fast"] == 12.5 and rec["sampling_tflops"] == 622.0
    assert rec["sampling_img_steps_per_s"] == 50000.0 and rec["bf16_peak_tflops"] == 989.4
    assert rec["phases"]["sampling"]["seconds"] == 100.0
    assert rec["fp32_seed_spread"] == pytest.approx(0.0617166, rel=1e-5)
    assert rec["fid_fp32_same_seeds"]["0"] == pytest.approx(17.4073, rel=1e-5)
    assert rec["fid_fast_same_seeds"]["2"] == pytest.approx(17.3479, rel=1e-5)
    assert rec["seconds_over_target"] == -8.75 and "warm_phases" not in rec
    warm = dict(results, timings={"phases": {"compile_warmup": {"seconds": 4.9}}}, run={"started": "T2"})
    res2 = tmp_path / "warm.json"
    res2.write_text(json.dumps(warm))
    assert record_main(["--results", str(res), "--total-seconds", "290", "--command", "c", "--warm-results", str(res2),
                        "--warm-total-seconds", "269.1", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["warm_phases"] == {"compile_warmup": {"seconds": 4.9}} and rec["warm_total_seconds"] == 269.1
    assert rec["seconds_over_target"] == 110.0 and rec["warm_date"] == "T2" and rec["warm_fid_fast"] == 12.5
    assert "previous_record" not in rec
    # --previous keeps the replaced record's headline figures (not its own previous_record)
    prev = tmp_path / "prev.json"
    prev.write_text(json.dumps({**rec, "previous_record": {"total_seconds": 1}}))
    assert record_main(["--results", str(res), "--total-seconds", "273.3", "--command", "c2", "--previous", str(prev),
                        "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["previous_record"] == {"device": "NVIDIA H200", "date": "2026-12-06T13:00:00+0000", "command": "c",
                                      "total_seconds": 290.0, "warm_total_seconds": 269.1,
                                      "sampling_img_steps_per_s": 50000.0, "sampling_tflops": 622.0}


def _bandwidth_file(calls):
    """A profile_bandwidth output file written the way inductor writes it (its own line formatter)."""
    from torch._inductor.runtime.runtime_utils import create_bandwidth_info_str
    out = []
    for kernels in calls:
        total_ms, total_gb = sum(k[0] for k in kernels), sum(k[1] for k in kernels)
        out += ["====================", "TRITON KERNELS BANDWIDTH INFO (/tmp/x.py)"]
        for ms, gb, name in sorted(kernels, key=lambda k: -k[0]):
            out.append(create_bandwidth_info_str(ms, gb, gb / (ms / 1e3),
                                                 suffix=f" \t {ms / total_ms * 100:.2f}% \t {name}", color=False))
        out += ["SUMMARY (/tmp/x.py)", f"{total_ms:.2f}ms   \t {total_gb:.2f} GB\t {total_gb / (total_ms / 1e3):.2f}GB/s", ""]
    return "\n".join(out)


def test_inductor_bandwidth_table_is_parsed_per_call_with_copy_bandwidth_fractions():
    from benchmarks.cli import bandwidth_summary, parse_inductor_bandwidth
    text = _bandwidth_file([[(1.0, 1.5, "triton_red_fused_native_group_norm_0"), (0.5, 1.0, "triton_poi_fused_add_1")],
                            [(2.0, 2.0, "triton_poi_fused_silu_2")]])
    blocks = parse_inductor_bandwidth(text)
    assert [len(b["kernels"]) for b in blocks] == [2, 1]
    first = blocks[0]
    assert first["total_ms"] == 1.5 and first["total_gb"] == 2.5
    assert first["kernels"][0] == {"ms": 1.0, "gb": 1.5, "gb_per_s": 1500.0, "share": pytest.approx(2 / 3, abs=1e-4),
                                   "kernel": "triton_red_fused_native_group_norm_0"}
    s = bandwidth_summary(first, copy_gbs=3000.0)
    assert s["ms_at_copy_bandwidth"] == pytest.approx(2.5 / 3000 * 1e3)
    assert s["top_kernels"][0]["fraction_of_copy_bw"] == pytest.approx(0.5)
    # 1500 GB/s is not below half of 3000; 2000 GB/s neither: nothing below half
    assert s["kernels_below_half_copy_bw_ms"] == 0
    assert bandwidth_summary(blocks[1], copy_gbs=5000.0)["kernels_below_half_copy_bw_ms"] == 2.0
    assert parse_inductor_bandwidth("no table here") == []


def test_setting_tokens_map_to_sampler_options():
    """``2s``/``4s`` are the engine's ``streams``; ``io.NAME`` is a boolean inductor option next to cdt/freeze."""
    from benchmarks.cases import setting_config
    c = setting_config("compile+fp16+2s+cdt+io.max_autotune_pointwise", 1024)
    assert c["streams"] == 2 and c["compile"] and c["dtype"] == "float16"
    assert c["compile_options"] == {"coordinate_descent_tuning": True, "max_autotune_pointwise": True}
    assert setting_config("fp16+4s", 8)["streams"] == 4 and setting_config("fp16", 8)["streams"] == 1
    assert setting_config("fp16", 8)["compile_options"] is None
    assert setting_config("compile+io0.layout_optimization", 8)["compile_options"] == {"layout_optimization": False}


def test_trained_fidelity_passes_compile_options_to_the_fast_runs_only(tmp_path, monkeypatch):
    """benchmarks.trained_fidelity --compile-options: handed to the compiled (non-reference) runs, recorded per
    run, refused without --compile-fast."""
    import json

    import numpy as np
    import torch

    import benchmarks.trained_fidelity as tf
    from maskpro_eval.metrics import gpu_features
    from maskpro_eval.runtime import distributed

    with pytest.raises(SystemExit):
        tf.main(["--model", "m", "--compile-options", "max_autotune_pointwise=1"])
    calls = []

    def fake_run(argv):
        calls.append(argv)
        rng = np.random.default_rng(len(calls))
        np.savez(argv[argv.index("--save-stats") + 1], mu=rng.normal(size=4), sigma=np.eye(4) * (1 + len(calls)))
        opts = argv[argv.index("--compile-options") + 1] if "--compile-options" in argv else None
        return {"work_seconds": 1.0, "wall_seconds": 1.0, "steps": 2, "rank0_sampling_gpu_s": 1.0,
                "compile": "--compile" in argv, "compile_options": opts, "features_sha256": "x"}

    class FakeFeatures:
        def __init__(self, *a, **k):
            pass

        def __call__(self, images):
            return torch.randn(images.shape[0], 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    monkeypatch.setattr(distributed, "main", fake_run)
    monkeypatch.setattr(gpu_features, "GPUInceptionFeatures", FakeFeatures)
    out = tmp_path / "f.json"
    rec = tf.main(["--model", "m", "--num-samples", "8", "--seeds", "0,1", "--device", "cpu", "--compile-fast",
                   "--compile-options", "max_autotune_pointwise=1", "--out", str(out)])
    fp32 = [c for c in calls if c[c.index("--dtype") + 1] == "float32"]
    fp16 = [c for c in calls if c[c.index("--dtype") + 1] == "float16"]
    assert len(fp32) == len(fp16) == 2
    assert all("--compile" not in c and "--compile-options" not in c for c in fp32)
    assert all(c[c.index("--compile-options") + 1] == "max_autotune_pointwise=1" and "--compile" in c for c in fp16)
    runs = json.loads(out.read_text())["runs"]
    assert runs["float16_s1"]["compile_options"] == "max_autotune_pointwise=1"
    assert runs["float32_s0"]["compile_options"] is None and rec["runs"] == runs
