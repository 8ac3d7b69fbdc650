"""Quick tier: seconds on a CPU. Does the checkpoint load, run, and meet its sparsity promises?"""
from __future__ import annotations

import pytest
import torch

from maskpro_eval.gating.gates import check
from maskpro_eval.runtime.latency import latency_spread

pytestmark = pytest.mark.quick

#: Timed rounds of the CPU latency benchmark (after 2 warm-up rounds).
LATENCY_ROUNDS = 10


def test_checkpoint_loads(model, record_model):
    """The checkpoint loads into a runnable diffusers UNet2DModel; its analysis goes to the report."""
    from diffusers import UNet2DModel

    loaded = model.load()
    assert isinstance(loaded.unet, UNet2DModel), f"{model.name}: loaded {type(loaded.unet).__name__}"
    assert sum(p.numel() for p in loaded.unet.parameters()) > 0
    record_model(model.name, model.entry())


def test_forward_pass_shape_and_finite(model, gate):
    """One forward pass on fixed noise gives the input's spatial shape and only finite values."""
    fc = model.forward_check()
    assert fc["output_shape"] == fc["expected_shape"], (
        f"{model.name}: output shape {fc['output_shape']} != expected {fc['expected_shape']}")
    finite = float(torch.isfinite(fc["y"]).float().mean())
    gate(check(model.name, "forward_finite_fraction", finite, ">=", 1.0,
               detail=f"input {fc['input_shape']}, timesteps {fc['t'].tolist()}"))


def test_no_nonfinite_weights(model, gate):
    bad = model.nonfinite_parameters()
    gate(check(model.name, "nonfinite_parameter_tensors", len(bad), "<=", 0,
               detail=("tensors: " + ", ".join(bad[:10])) if bad else ""))


def test_nm_compliance(model, thresholds, gate):
    """N:M compliance over the masked layers reaches --min-nm-compliance (row-major layout)."""
    rep = model.analysis()
    n, m = model.nm
    threshold = thresholds.get("quick", "min_nm_compliance", model.name)
    failing = [l for l in rep.worst_layers(5) if l.nm_compliance < 1.0]
    worst = ("; worst layers: " + ", ".join(f"{l.name}={l.nm_compliance:.3f}" for l in failing)) if failing else ""
    gate(check(model.name, f"nm_compliance_{n}:{m}", rep.nm_compliance, ">=", threshold,
               detail=f"{rep.masked_layer_count} masked layers; channel layout "
                      f"{rep.nm_compliance_channel:.3f}{worst}",
               protocol={"layout": "row-major (out, in*kh*kw), groups of M"}))


def test_target_sparsity(model, thresholds, gate):
    """Sparsity reaches the target (default 1 - N/M over masked layers) within the tolerance."""
    rep = model.analysis()
    n, m = model.nm
    scope = thresholds.get("quick", "sparsity_scope", model.name)
    target = thresholds.get("quick", "target_sparsity", model.name)
    target = 1.0 - n / m if target is None else target
    tol = thresholds.get("quick", "sparsity_tolerance", model.name)
    value = rep.masked_layers_sparsity if scope == "masked" else rep.global_sparsity
    gate(check(model.name, f"sparsity_{scope}", value, "within", target, tolerance=tol,
               detail=f"global {rep.global_sparsity:.4f}, masked layers {rep.masked_layers_sparsity:.4f} "
                      f"over {rep.masked_layer_count} layers"))


def test_quick_samples(model, thresholds, gate, attach_image, record_model, record_protocol):
    """A handful of DDIM samples through a diffusers scheduler: saved as a grid, not degenerate."""
    from maskpro_eval.sampling.images import make_grid, png_bytes

    images, cfg = model.quick_samples()
    assert images.shape[0] == cfg.batch_size and images.dtype.name == "uint8"
    grid = make_grid(images, nrow=min(8, len(images)))
    rel = f"samples/{model.name}_quick_grid.png"
    attach_image(rel, png_bytes(grid), label=f"{model.name} quick samples")
    record_model(model.name, {"quick_samples": {"grid": rel, **cfg.to_dict()}})
    record_protocol({"quick_sampling": f"{cfg.sampler} {cfg.num_inference_steps} steps, eta {cfg.eta}, "
                                       f"seed {cfg.seed}, {cfg.batch_size} samples"})
    std = float((images.astype("float64") / 255.0).std())
    gate(check(model.name, "quick_sample_pixel_std", std, ">=",
               thresholds.get("quick", "min_sample_std", model.name),
               detail="constant or blank samples mean a broken model or scheduler"))


def test_cpu_forward_latency(model, benchmark, record_model):
    """CPU forward latency (pytest-benchmark), and the timed forward equals the reference forward."""
    fc = model.forward_check()
    x, t = fc["x"], fc["t"]

    def forward():
        with torch.inference_mode():
            return model.unet(x, t).sample

    y = benchmark.pedantic(forward, rounds=LATENCY_ROUNDS, warmup_rounds=2, iterations=1)
    torch.testing.assert_close(y, fc["y"], rtol=1e-5, atol=1e-6)
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        pytest.skip("pytest-benchmark is disabled (e.g. under xdist): no latency recorded")
    st = stats.stats
    spread = latency_spread(st.median, st.iqr, st.min, st.max)
    benchmark.extra_info.update({"batch": int(x.shape[0]), "device": str(x.device), **spread})
    record_model(model.name, {"cpu_forward_latency": {
        "median_ms": st.median * 1e3, "iqr_ms": st.iqr * 1e3, "min_ms": st.min * 1e3, "max_ms": st.max * 1e3,
        "rounds": int(st.rounds), "batch": int(x.shape[0]), "device": str(x.device), **spread}})


def test_output_agreement_with_baseline(model, baseline_required, thresholds, record_gate, record_model):
    """Relative output error against the baseline on identical inputs (recovery in one number)."""
    y = model.forward_check()["y"].double()
    yb = baseline_required.forward_check()["y"].double()
    if y.shape != yb.shape:
        pytest.fail(f"{model.name}: output shape {list(y.shape)} != baseline's {list(yb.shape)}")
    rel = float((y - yb).norm() / yb.norm())
    record_model(model.name, {"output_rel_error_vs_baseline": rel})
    threshold = thresholds.get("quick", "max_output_rel_error", model.name)
    if threshold is None:
        pytest.skip(f"relative output error vs baseline = {rel:.4g} recorded; no max_output_rel_error gate set")
    g = record_gate(check(model.name, "output_rel_error_vs_baseline", rel, "<=", threshold,
                          detail=f"baseline {baseline_required.name}"))
    assert g.passed, g.message


def test_baseline_analysed(baseline_required, record_model):
    """The baseline's own facts go into the report (for relative reading of every figure)."""
    entry = baseline_required.entry()
    assert entry["parameters"]["total"] > 0
    record_model(baseline_required.name, entry)
