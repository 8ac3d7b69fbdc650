"""Full tier: sample quality by the standard FID protocol, KID, consistency and paired drift.

Every figure carries its protocol (N, steps, scheduler, eta, seed, reference and its N, Inception
weights hash, dtype, device); FID with N < 10,000 is flagged as biased with KID beside it.
"""
from __future__ import annotations

import pytest

from maskpro_eval.gating.gates import check

pytestmark = pytest.mark.full


def _fid_detail(fid, kid) -> str:
    text = f"N={fid.n_a} vs ref N={fid.n_b}"
    if fid.biased:
        text += " BIASED (N < 10,000: compare only at equal N)"
    if kid is not None:
        text += f"; KID {kid[0]:.5f} +- {kid[1]:.5f}"
    return text


def _assert_gates(gates, skip_message: str) -> None:
    """Skip when no gate was set; else fail listing every failed gate."""
    if not gates:
        pytest.skip(skip_message)
    failed = [g.message for g in gates if not g.passed]
    assert not failed, "\n".join(failed)


@pytest.fixture(scope="session")
def full_protocol_recorded(quality, baseline):
    return quality.run_protocol(baseline)


def test_fid(model, baseline, quality, thresholds, record_gate, record_model, record_protocol,
             attach_image, full_protocol_recorded):
    """FID against the reference set <= --max-fid (standard protocol, N and reference stated)."""
    from maskpro_eval.sampling.images import make_grid, png_bytes

    record_protocol(full_protocol_recorded)
    fid = quality.fid(model, baseline=baseline)
    kid = quality.kid(model, baseline)
    images = quality.samples(model)
    rel = f"samples/{model.name}_full_grid.png"
    attach_image(rel, png_bytes(make_grid(images[:64], nrow=8)), label=f"{model.name} samples (first 64)")
    record_model(model.name, {"quality": {
        "fid": fid.value, "fid_method": fid.method, "fid_crosscheck": fid.value_crosscheck,
        "fid_crosscheck_method": fid.crosscheck_method,
        "fid_crosscheck_rel_diff": fid.crosscheck_rel_diff,
        "fid_n": fid.n_a, "fid_reference_n": fid.n_b, "fid_biased": fid.biased,
        **quality.kid_record(model, baseline),
        "protocol": quality.protocol_record(fid.n_a, baseline)}})
    assert fid.crosscheck_rel_diff is None or fid.crosscheck_rel_diff < 1e-3, (
        f"{fid.method} and {fid.crosscheck_method} FID routes disagree: {fid.value} vs {fid.value_crosscheck}")
    threshold = thresholds.get("full", "max_fid", model.name, has_baseline=baseline is not None)
    if threshold is None:
        pytest.skip(f"{fid.summary()} recorded; no max_fid gate set")
    g = record_gate(check(model.name, "fid", fid.value, "<=", threshold, detail=_fid_detail(fid, kid),
                          protocol=quality.protocol_record(fid.n_a, baseline)))
    assert g.passed, g.message


def test_fid_increase_over_baseline(model, baseline_required, quality, thresholds, record_gate, record_model):
    """FID(model) - FID(baseline) <= --max-fid-increase (absolute) and/or relative to the baseline."""
    fid = quality.fid(model, baseline=baseline_required)
    base = quality.fid(baseline_required, baseline=baseline_required)
    inc = fid.value - base.value
    rel = inc / base.value if base.value > 0 else float("inf")
    record_model(model.name, {"quality": {"fid_increase": inc, "fid_increase_relative": rel,
                                          "baseline_fid": base.value}})
    record_model(baseline_required.name, {"quality": {"fid": base.value, "fid_n": base.n_a,
                                                      "fid_biased": base.biased}})
    gates = []
    proto = quality.protocol_record(fid.n_a, baseline_required)
    for key, value, unit in (("max_fid_increase", inc, ""), ("max_fid_increase_relative", rel, "")):
        threshold = thresholds.get("full", key, model.name)
        if threshold is not None:
            gates.append(record_gate(check(model.name, key.replace("max_", ""), value, "<=", threshold,
                                           detail=f"model {fid.value:.4f} vs baseline {baseline_required.name} "
                                                  f"{base.value:.4f}; {_fid_detail(fid, None)}",
                                           protocol=proto)))
    _assert_gates(gates, f"FID increase {inc:+.4f} ({rel:+.2%}) recorded; no max_fid_increase(_relative) gate set")


def test_kid(model, baseline, quality, thresholds, record_gate):
    """KID (unbiased MMD, subsets) <= --max-kid; needs reference features (not a mu/sigma npz)."""
    kid = quality.kid(model, baseline)
    if kid is None:
        pytest.skip("reference has only mu/sigma: KID needs reference images or features")
    threshold = thresholds.get("full", "max_kid", model.name, has_baseline=baseline is not None)
    if threshold is None:
        pytest.skip(f"KID {kid[0]:.5f} +- {kid[1]:.5f} recorded; no max_kid gate set")
    g = record_gate(check(model.name, "kid", kid[0], "<=", threshold,
                          detail=f"std over {quality.settings.kid_subsets} subsets {kid[1]:.5f}",
                          protocol=quality.protocol_record(baseline=baseline)))
    assert g.passed, g.message


def test_precision_recall(model, baseline, quality, thresholds, record_gate, record_model):
    """Precision/recall/density/coverage (k-NN on the same Inception features): precision >=
    --min-precision, recall >= --min-recall; relative forms max_precision_drop/max_recall_drop
    (baseline minus model) in the thresholds file."""
    pr = quality.prdc(model, baseline)
    if pr is None:
        pytest.skip(f"precision/recall need reference features (not a mu/sigma-only npz) and more than "
                    f"k={quality.settings.prdc_k} samples on each side")
    record_model(model.name, {"quality": {"prdc": pr}})
    small = "; SMALL N (< 10,000, below the authors' recommended size)" if pr["small_n"] else ""
    detail = (f"precision {pr['precision']:.4f}, recall {pr['recall']:.4f}, density {pr['density']:.4f}, "
              f"coverage {pr['coverage']:.4f} (k={pr['nearest_k']}, N={pr['n_fake']} vs ref N={pr['n_real']}"
              f"{small})")
    proto = quality.protocol_record(pr["n_fake"], baseline)
    gates = []
    for key, metric in (("min_precision", "precision"), ("min_recall", "recall")):
        threshold = thresholds.get("full", key, model.name, has_baseline=baseline is not None)
        if threshold is not None:
            gates.append(record_gate(check(model.name, metric, pr[metric], ">=", threshold, detail=detail,
                                           protocol=proto)))
    if baseline is not None and baseline.name != model.name:
        base = None
        for key, metric in (("max_precision_drop", "precision"), ("max_recall_drop", "recall")):
            threshold = thresholds.get("full", key, model.name)
            if threshold is None:
                continue
            base = base or quality.prdc(baseline, baseline)
            gates.append(record_gate(check(model.name, f"{metric}_drop", base[metric] - pr[metric], "<=",
                                           threshold, detail=f"baseline {baseline.name} {metric} "
                                           f"{base[metric]:.4f} vs model {pr[metric]:.4f}; {detail}",
                                           protocol=proto)))
    _assert_gates(gates, f"{detail} recorded; no min_precision/min_recall gate set")


def test_generation_consistency(model, baseline, quality, thresholds, record_gate, record_model):
    """FID over k seeds: mean +- std reported; the std (spread) <= --max-consistency-std."""
    cons = quality.consistency(model, baseline)
    if cons is None:
        pytest.skip("consistency needs --consistency-seeds >= 2")
    record_model(model.name, {"quality": {"consistency": cons}})
    threshold = thresholds.get("full", "max_consistency_std", model.name)
    if threshold is None:
        pytest.skip(f"FID over {len(cons['seeds'])} seeds {cons['mean']:.3f} +- {cons['std']:.3f} recorded; "
                    "no max_consistency_std gate set")
    g = record_gate(check(model.name, "fid_std_over_seeds", cons["std"], "<=", threshold,
                          detail=f"FID {cons['mean']:.4f} +- {cons['std']:.4f} over seeds {cons['seeds']}",
                          protocol=quality.protocol_record(baseline=baseline)))
    assert g.passed, g.message


def test_paired_drift(model, baseline_required, quality, thresholds, record_gate, record_model):
    """Per-sample MSE/PSNR between model and baseline samples from identical noise (distribution)."""
    from maskpro_eval.metrics.quality import drift_summary

    d = quality.drift(model, baseline_required)
    record_model(model.name, {"quality": {"drift": drift_summary(d)}})
    assert d["pairs"] == quality.settings.num_samples
    threshold = thresholds.get("full", "max_drift_mse_mean", model.name)
    if threshold is None:
        pytest.skip(f"paired drift MSE mean {d['mse_mean']:.5f}, PSNR mean {d['psnr_mean']:.2f} dB recorded; "
                    "no max_drift_mse_mean gate set")
    g = record_gate(check(model.name, "drift_mse_mean", d["mse_mean"], "<=", threshold,
                          detail=f"median {d['mse_median']:.5f}, p95 {d['mse_p95']:.5f}, PSNR mean "
                                 f"{d['psnr_mean']:.2f} dB over {d['pairs']} pairs vs {baseline_required.name}"))
    assert g.passed, g.message
