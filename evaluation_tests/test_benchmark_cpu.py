"""CPU variant of the forward benchmarks: latency, images/s over ``--bench-cpu-batches`` (default 1,8),
model and baseline in the same group, scaling plot. float32, torch's CPU threads as configured.

Speed is benchmarked and recorded, never asserted. ``--benchmark-json`` / ``--benchmark-compare-fail``
work as on the GPU (compare runs of the same machine only).
"""
from __future__ import annotations

import json

import pytest

from maskpro_eval.runtime.timing import cuda_sync_perf_counter

pytestmark = [pytest.mark.bench, pytest.mark.benchmark(timer=cuda_sync_perf_counter)]


def _bench(benchmark, ev_model, bench_batch, bench_settings, prepared_unets, bench_records, record_model, role):
    import platform

    import torch
    from maskpro_eval.runtime.bench import forward_case, forward_record_problems, prepare_unet, run_forward_benchmark
    from maskpro_eval.analysis.flops import unet_flops_per_image_step
    key = (ev_model.name, "cpu", "float32")
    if key not in prepared_unets:
        module, fwd = prepare_unet(ev_model.unet, "cpu", "float32")
        prepared_unets[key] = (module, fwd, unet_flops_per_image_step(module)["flops"])
    module, fwd, flops = prepared_unets[key]
    benchmark.group = f"forward B={bench_batch} float32 cpu"
    case = forward_case(ev_model.name, module, fwd, bench_batch, "cpu", "float32", flops_per_image=flops)
    case.extra.update({"role": role, "device_name": f"cpu {platform.machine()} x{torch.get_num_threads()} threads",
                       "flops_per_image_step": flops})
    rec = run_forward_benchmark(benchmark, case, rounds=max(3, bench_settings.rounds // 4),
                                warmup=min(2, bench_settings.warmup))
    bench_records.append(rec)
    record_model(ev_model.name, {"benchmark": {"forward_cpu": {f"B{bench_batch}": rec}}})
    return forward_record_problems(case, module, rec)


def test_forward_latency_cpu_model(model, bench_batch, benchmark, bench_settings, prepared_unets, bench_records,
                                   record_model):
    """CPU forward latency and images/s of the model under test at one batch size."""
    problems = _bench(benchmark, model, bench_batch, bench_settings, prepared_unets, bench_records, record_model,
                      "model")
    assert not problems, "; ".join(problems)


def test_forward_latency_cpu_baseline(baseline_required, bench_batch, benchmark, bench_settings, prepared_unets,
                                      bench_records, record_model):
    """The baseline at the same batch size, in the same benchmark group."""
    problems = _bench(benchmark, baseline_required, bench_batch, bench_settings, prepared_unets, bench_records,
                      record_model, "baseline")
    assert not problems, "; ".join(problems)


def test_forward_scaling_plot_cpu(bench_records, attach_image, run_output):
    """Latency and throughput against batch size on the CPU into the report."""
    from maskpro_eval.runtime.bench import scaling_plot_png
    recs = [r for r in bench_records if r["device"] == "cpu"]
    if not any(r.get("median_ms") for r in recs):
        pytest.skip("no timed CPU forward records (benchmarks disabled or skipped)")
    png = scaling_plot_png(recs, title=f"UNet forward scaling - {recs[0]['device_name']} - float32")
    assert png is not None and png.startswith(b"\x89PNG"), "the scaling plot is not a PNG"
    attach_image("benchmarks/forward_scaling_cpu.png", png, label="forward scaling (CPU)")
    run_output.path("benchmarks/forward_records_cpu.json").write_text(json.dumps(recs, indent=1))
