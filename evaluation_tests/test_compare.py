"""Compare mode: every model (under test, baseline, original) evaluated once, then side by side."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.compare


@pytest.fixture(scope="module")
def comparison(model_registry, quality):
    """Every model (under test, baseline, original) evaluated once, then compared (gating.compare)."""
    from maskpro_eval.gating.compare import run_comparison

    originals = model_registry.by_role("original") or model_registry.by_role("baseline")
    baselines = model_registry.by_role("baseline")
    return run_comparison({name: model_registry.get(name) for name in model_registry.specs}, quality,
                          original=originals[0] if originals else None,
                          fid_baseline=model_registry.get(baselines[0]) if baselines else None)


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
    record_protocol({"compare_reference": comparison["reference"], "compare_reference_rule": comparison["reference_rule"]})
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
