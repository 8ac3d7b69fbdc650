"""Compare mode: every model (under test, baseline, original) evaluated once, then side by side."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.compare


@pytest.fixture(scope="module")
def comparison(model_registry, quality, pytestconfig):
    """Evaluate each model once (analysis, latency, FID/KID, consistency, paired drift) and compare."""
    from maskpro_eval.gating.compare import comparison_rows
    from maskpro_eval.runtime.latency import measure_forward_latency

    names = list(model_registry.specs)
    originals = model_registry.by_role("original") or model_registry.by_role("baseline")
    reference = originals[0] if originals else None
    ref_model = model_registry.get(reference) if reference else None
    baselines = model_registry.by_role("baseline")
    fid_baseline = model_registry.get(baselines[0]) if baselines else None
    entries = {}
    for name in names:
        m = model_registry.get(name)
        e = m.entry()
        e["latency"] = measure_forward_latency(m.unet, batch_size=8, rounds=5, warmup=1)
        fid = quality.fid(m, baseline=fid_baseline)
        kid = quality.kid(m, fid_baseline)
        q = {"fid": fid.value, "fid_n": fid.n_a, "fid_reference_n": fid.n_b, "fid_biased": fid.biased,
             "kid_mean": None if kid is None else kid[0], "kid_std": None if kid is None else kid[1],
             "consistency": quality.consistency(m, fid_baseline), "prdc": quality.prdc(m, fid_baseline)}
        if ref_model is not None and name != reference:
            from maskpro_eval.metrics.quality import drift_summary
            d = quality.drift(m, ref_model)
            q["drift"] = drift_summary(d)
        e["quality"] = q
        entries[name] = e
    return {"rows": comparison_rows(entries, reference), "models": entries, "reference": reference}


def test_comparison_artifacts(comparison, thresholds, run_output, record_model, attach_image, record_protocol):
    """comparison_table.csv/.md, detailed_results.json, comparison_report.md, dashboard and efficiency plots."""
    from maskpro_eval.gating.compare import relative_gates
    from maskpro_eval.reporting.comparison import write_comparison

    rules = thresholds.file_data.get("compare", {}).get("relative", [])
    gates = relative_gates(comparison["rows"], rules)
    out_dir = run_output.path("comparison", "x").parent
    files = write_comparison(out_dir, comparison["rows"], comparison["models"], gates, comparison["reference"])
    for key in ("dashboard_png", "efficiency_png"):
        if key in files:
            attach_image(f"comparison/{files[key]}", (out_dir / files[key]).read_bytes(), label=files[key])
    for name, e in comparison["models"].items():
        record_model(name, e)
    record_protocol({"compare_reference": comparison["reference"]})
    assert {r["model"] for r in comparison["rows"]} == set(comparison["models"])
    for f in files.values():
        assert (out_dir / f).is_file(), f
    assert any(r["pareto_optimal"] for r in comparison["rows"] if r["fid"] is not None)


def test_relative_gates(comparison, thresholds, record_gate):
    """Gates of one model relative to another ([[compare.relative]] in the thresholds file)."""
    from maskpro_eval.gating.compare import relative_gates
    from maskpro_eval.gating.gates import failure_message

    rules = thresholds.file_data.get("compare", {}).get("relative", [])
    if not rules:
        pytest.skip("no [[compare.relative]] rules in the thresholds file")
    gates = [record_gate(g) for g in relative_gates(comparison["rows"], rules)]
    assert all(g.passed for g in gates), failure_message(gates)
