"""GPU tier: forward latency/throughput/peak memory over a batch sweep (model and baseline in the same
group), the scaling plot, and honest 2:4 sparse-tensor-core speed. Speed is benchmarked and recorded,
never a timed assertion; the only speed gate (``--min-sparse-speedup``) is off by default.

Needs a CUDA GPU: every test that times something SKIPS with the reason on a machine without one.
Run e.g.::

    pytest -m gpu --checkpoint m=PATH --baseline dense=PATH --bench-batches 1,8,64,256,1024 \
        --benchmark-json bench.json            # then in CI: --benchmark-compare=0001 --benchmark-compare-fail=median:10%
"""
from __future__ import annotations

import json

import pytest

from maskpro_eval.gating.gates import check
from maskpro_eval.runtime.timing import cuda_sync_perf_counter

pytestmark = [pytest.mark.gpu, pytest.mark.bench, pytest.mark.benchmark(timer=cuda_sync_perf_counter)]


def _prepared(prepared_unets, ev_model, device, settings):
    from maskpro_eval.runtime.bench import prepare_unet
    from maskpro_eval.analysis.flops import unet_flops_per_image_step
    key = (ev_model.name, str(device), settings.dtype, settings.compile, settings.compile_mode)
    if key not in prepared_unets:
        module, fwd = prepare_unet(ev_model.unet, device, settings.dtype, settings.compile, settings.compile_mode)
        flops = unet_flops_per_image_step(module)["flops"]
        prepared_unets[key] = (module, fwd, flops)
    return prepared_unets[key]


def _forward_benchmark(benchmark, ev_model, bench_batch, device, bench_settings, prepared_unets, bench_records,
                       record_model, role):
    import torch
    from maskpro_eval.runtime.bench import forward_case, forward_record_problems, run_forward_benchmark
    module, fwd, flops = _prepared(prepared_unets, ev_model, device, bench_settings)
    benchmark.group = f"forward B={bench_batch} {bench_settings.dtype}"
    case = forward_case(ev_model.name, module, fwd, bench_batch, device, bench_settings.dtype, flops_per_image=flops)
    case.extra.update({"role": role, "device_name": torch.cuda.get_device_name(device),
                       "compile": bench_settings.compile, "flops_per_image_step": flops})
    rec = run_forward_benchmark(benchmark, case, rounds=bench_settings.rounds, warmup=bench_settings.warmup)
    bench_records.append(rec)
    record_model(ev_model.name, {"benchmark": {"forward": {f"B{bench_batch}": rec}}})
    return forward_record_problems(case, module, rec)


def test_forward_latency_model(cuda_device, model, bench_batch, benchmark, bench_settings, prepared_unets,
                               bench_records, record_model):
    """Forward latency, images/s, TFLOP/s and peak GPU memory of the model under test at one batch size."""
    problems = _forward_benchmark(benchmark, model, bench_batch, cuda_device, bench_settings, prepared_unets,
                                  bench_records, record_model, "model")
    assert not problems, "; ".join(problems)


def test_forward_latency_baseline(cuda_device, baseline_required, bench_batch, benchmark, bench_settings,
                                  prepared_unets, bench_records, record_model):
    """The baseline at the same batch size, same group: model and baseline side by side in one run."""
    problems = _forward_benchmark(benchmark, baseline_required, bench_batch, cuda_device, bench_settings,
                                  prepared_unets, bench_records, record_model, "baseline")
    assert not problems, "; ".join(problems)


def test_forward_scaling_plot(cuda_device, bench_records, attach_image, run_output):
    """Latency and throughput against batch size (every model and the baseline) into the report."""
    from maskpro_eval.runtime.bench import scaling_plot_png
    recs = [r for r in bench_records if r["device"].startswith("cuda")]
    if not any(r.get("median_ms") for r in recs):
        pytest.skip("no timed forward records (benchmarks disabled or skipped)")
    dev = recs[0].get("device_name", "cuda")
    png = scaling_plot_png(recs, title=f"UNet forward scaling - {dev} - {recs[0]['dtype']}")
    assert png is not None and png.startswith(b"\x89PNG"), "the scaling plot is not a PNG"
    attach_image("benchmarks/forward_scaling_gpu.png", png, label="forward scaling (GPU)")
    run_output.path("benchmarks/forward_records_gpu.json").write_text(json.dumps(recs, indent=1))


# ------------------------------------------------------------------------------------------- 2:4 speed
def test_sparse24_eligibility(model, record_model):
    """Per layer: can PyTorch run it on sparse tensor cores (matmul paths only), the eligible FLOP share
    and the Amdahl bound of a perfect 2x on those layers. Needs no GPU."""
    from maskpro_eval.runtime.sparse24 import eligibility_table
    n, m = model.nm
    table = eligibility_table(model.unet, n, m, model.settings.exclude_layers, report=model.analysis())
    record_model(model.name, {"sparse24": {k: v for k, v in table.items() if k != "layers"}})
    conv3 = [r for r in table["layers"] if r["kind"] == "conv3x3"]
    assert not any(r["eligible"] for r in conv3), "a 3x3 convolution can never run on sparse tensor cores"
    assert 0.0 <= table["eligible_share"] <= 1.0


def test_sparse24_speed(cuda_device, model, bench_settings, record_model, record_gate, run_output):
    """Dense vs cuSPARSELt per eligible layer (real shapes, real batch, CUDA graphs; eager separately), end to
    end with eligible layers swapped, theory beside measurement, and sparse == masked-dense within bf16."""
    from maskpro_eval.runtime.sparse24 import benchmark_end_to_end, benchmark_layers, eligibility_table, sparse24_available, speedup_summary
    reason = sparse24_available()
    if reason:
        pytest.skip(reason)
    import copy

    import torch
    unet = copy.deepcopy(model.unet).to(cuda_device)  # the session's model stays where it is
    table = eligibility_table(unet, *model.nm, model.settings.exclude_layers)
    names = [r["name"] for r in table["layers"] if r["eligible"]]
    if not names:
        pytest.skip(f"{model.name}: no layer is eligible for sparse tensor cores (none is strictly 2:4 on a matmul "
                    f"path); eligible FLOP share 0")
    b = bench_settings.sparse_batch
    layers = benchmark_layers(unet, b, names)
    e2e = benchmark_end_to_end(unet, b, names=names)
    summary = speedup_summary(layers, e2e, table)
    payload = {"model": model.name, "batch": b, "device": torch.cuda.get_device_name(cuda_device),
               "summary": summary, "end_to_end": e2e, "layers": [l.to_dict() for l in layers],
               "eligibility": table}
    run_output.path(f"benchmarks/sparse24_{model.name}.json").write_text(json.dumps(payload, indent=1))
    record_model(model.name, {"sparse24": {"summary": summary, "end_to_end": e2e}})
    bad = [l for l in layers if not l.rel_err_vs_masked_dense < 2e-2
           or l.rel_err_sparse_vs_fp64 > 2 * l.rel_err_dense_vs_fp64 + 1e-3]
    assert not bad, "sparse output differs from the masked-dense output beyond bf16 rounding: " + ", ".join(
        f"{l.name} (rel {l.rel_err_vs_masked_dense:.2e}, vs fp64 {l.rel_err_sparse_vs_fp64:.2e} / dense "
        f"{l.rel_err_dense_vs_fp64:.2e})" for l in bad)
    assert e2e["output_rel_diff"] < 5e-2, f"end-to-end sparse vs dense output rel diff {e2e['output_rel_diff']:.3e}"
    threshold = bench_settings.min_sparse_speedup
    if threshold is None:
        return
    g = record_gate(check(model.name, "sparse24_e2e_speedup", e2e["speedup_graph"], ">=", threshold, unit="x",
                          detail=f"B={b}, {len(names)} layers swapped, CUDA graphs; eligible FLOP share "
                                 f"{table['eligible_share']:.1%}, Amdahl bound {table['amdahl_bound_2x']:.3f}x"))
    assert g.passed, g.message


@pytest.mark.parametrize("kernels", ["masked_dense", "sparse24"])
def test_sparse24_forward_benchmark(cuda_device, model, kernels, benchmark, bench_settings, prepared_unets):
    """pytest-benchmark record of the whole forward (CUDA-graph replay) with dense vs 2:4 kernels, one group:
    ``--benchmark-compare-fail`` can track both."""
    from maskpro_eval.runtime.sparse24 import eligibility_table, sparse24_available, swap_to_sparse
    from maskpro_eval.runtime.timing import capture_cuda_graph
    reason = sparse24_available()
    if reason:
        pytest.skip(reason)
    import torch
    key = ("sparse24", model.name, kernels)
    if key not in prepared_unets:
        import copy
        m = copy.deepcopy(model.unet).to(device=cuda_device, dtype=torch.bfloat16).eval()
        table = eligibility_table(m, *model.nm, model.settings.exclude_layers)
        names = [r["name"] for r in table["layers"] if r["eligible"]]
        if not names:
            pytest.skip(f"{model.name}: no eligible layer")
        if kernels == "sparse24":
            m, _ = swap_to_sparse(m, names=names, inplace=True)
        prepared_unets[key] = (m, len(names))
    m, nswap = prepared_unets[key]
    b = bench_settings.sparse_batch
    cfg = m.config
    size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
    x = torch.randn(b, cfg.in_channels, size, size, device=cuda_device, dtype=torch.bfloat16)
    t = torch.full((b,), 500, device=cuda_device)
    with torch.inference_mode():
        graph, _ = capture_cuda_graph(lambda: m(x, t, return_dict=False)[0])
    benchmark.group = f"sparse24 forward B={b} bf16 cuda-graph ({model.name})"
    benchmark.extra_info.update({"kernels": kernels, "swapped_layers": nswap if kernels == "sparse24" else 0,
                                 "batch": b, "device_name": torch.cuda.get_device_name(cuda_device)})
    benchmark.pedantic(graph.replay, rounds=bench_settings.rounds, warmup_rounds=bench_settings.warmup)
