"""Side-by-side comparison of several evaluated models: table, Pareto front, relative gates, plots.

Definitions (README "Compare mode"). Every ratio is relative to the ORIGINAL model of the comparison
(``--original``, else the baseline), as ``original's quantity / model's quantity`` (> 1 = smaller):
* ``compression_ratio`` = non-zero parameters of the original / non-zero parameters of the model.
* ``params_ratio`` (all parameters), ``dense_bytes_ratio`` (16-bit dense storage), ``packed_bytes_ratio``
  (original's dense bytes / the model's N:M-packed bytes), ``macs_ratio`` (original's dense MACs /
  the model's effective MACs).
* ``quality_retention`` = FID(reference model) / FID(model): 1.0 = no loss, < 1 = worse.
* ``retention_per_compression_unit`` = quality_retention / (compression_ratio - 1): retained quality
  per unit of compression gained beyond dense (higher is better; undefined for dense models).
* ``fid_increase_per_compression_unit`` = (FID(model) - FID(reference)) / (compression_ratio - 1).
"""
from __future__ import annotations

from maskpro_eval.gating.gates import Gate, check

TABLE_FIELDS = ["model", "role", "format", "params_total", "params_nonzero", "global_sparsity",
                "masked_layers_sparsity", "nm", "nm_compliance", "nm_compliance_channel", "compression_ratio",
                "params_ratio", "dense_bytes_ratio", "packed_bytes_ratio", "macs_ratio", "packed_bytes", "dense_bytes",
                "macs_effective_g", "fid", "fid_std_over_seeds", "fid_n", "fid_biased",
                "kid_mean", "kid_std", "precision", "recall", "density", "coverage", "prdc_small_n",
                "latency_ms", "latency_batch", "peak_memory_bytes",
                "quality_retention", "retention_per_compression_unit", "fid_increase_per_compression_unit",
                "paired_mse_vs_reference", "paired_psnr_vs_reference", "pareto_optimal"]


def run_comparison(models: dict, quality, original: str | None = None, fid_baseline=None,
                   latency_batch: int = 8) -> dict:
    """Evaluate each model once (analysis, latency, FID/KID, consistency, paired drift vs the original)
    and build the comparison rows.

    ``models``: name -> EvaluatedModel (loaded); ``quality``: the full tier's QualityEvaluator;
    ``original``: the model every ratio and the paired drift are relative to. None: the model with
    the most non-zero parameters is taken (recorded as ``reference_rule``)."""
    from maskpro_eval.metrics.quality import drift_summary
    from maskpro_eval.runtime.latency import measure_forward_latency

    entries = {name: m.entry() for name, m in models.items()}
    rule = "--original (else --baseline)"
    if original is None:
        original = max(entries, key=lambda n: entries[n]["parameters"]["nonzero"])
        rule = "no --original/--baseline: the model with the most non-zero parameters"
    for name, m in models.items():
        e = entries[name]
        e["latency"] = measure_forward_latency(m.unet, batch_size=latency_batch, rounds=5, warmup=1)
        fid = quality.fid(m, baseline=fid_baseline)
        kid = quality.kid(m, fid_baseline)
        q = {"fid": fid.value, "fid_n": fid.n_a, "fid_reference_n": fid.n_b, "fid_biased": fid.biased,
             "kid_mean": None if kid is None else kid[0], "kid_std": None if kid is None else kid[1],
             "consistency": quality.consistency(m, fid_baseline), "prdc": quality.prdc(m, fid_baseline)}
        if name != original:
            q["drift"] = drift_summary(quality.drift(m, models[original]))
        e["quality"] = q
    return {"rows": comparison_rows(entries, original), "models": entries, "reference": original,
            "reference_rule": rule}


def comparison_rows(models: dict, reference: str | None) -> list[dict]:
    """One row per model from their ``evaluation_results.json`` entries."""
    rows = []
    ref = models.get(reference, {}) if reference else {}
    ref_fid = (ref.get("quality") or {}).get("fid")

    def vs_original(num, den):
        return num / den if num and den else None

    for name, e in models.items():
        q = e.get("quality") or {}
        params = e.get("parameters", {})
        total, nonzero = params.get("total"), params.get("nonzero")
        comp, ref_comp = e.get("compression", {}), ref.get("compression", {})
        ratio = vs_original(ref.get("parameters", {}).get("nonzero"), nonzero)
        fid = q.get("fid")
        retention = ref_fid / fid if ref_fid and fid else None
        gained = (ratio - 1.0) if ratio else None
        lat = e.get("latency") or {}
        drift = q.get("drift") or {}
        rows.append({
            "model": name, "role": e.get("role"), "format": e.get("format"),
            "params_total": total, "params_nonzero": nonzero,
            "global_sparsity": e.get("sparsity", {}).get("global"),
            "masked_layers_sparsity": e.get("sparsity", {}).get("masked_layers"),
            "nm": f"{e['nm']['n']}:{e['nm']['m']}" if e.get("nm") else None,
            "nm_compliance": e.get("nm", {}).get("compliance"),
            "nm_compliance_channel": e.get("nm", {}).get("compliance_channel_layout"),
            "compression_ratio": ratio,
            "params_ratio": vs_original(ref.get("parameters", {}).get("total"), total),
            "dense_bytes_ratio": vs_original(ref_comp.get("dense_bytes"), comp.get("dense_bytes")),
            "packed_bytes_ratio": vs_original(ref_comp.get("dense_bytes"), comp.get("packed_bytes")),
            "macs_ratio": vs_original(ref.get("macs", {}).get("dense"), e.get("macs", {}).get("effective")),
            "packed_bytes": e.get("compression", {}).get("packed_bytes"),
            "dense_bytes": e.get("compression", {}).get("dense_bytes"),
            "macs_effective_g": (e.get("macs", {}).get("effective") or 0) / 1e9,
            "fid": fid, "fid_std_over_seeds": (q.get("consistency") or {}).get("std"),
            "fid_n": q.get("fid_n"), "fid_biased": q.get("fid_biased"),
            "kid_mean": q.get("kid_mean"), "kid_std": q.get("kid_std"),
            **{k: (q.get("prdc") or {}).get(k) for k in ("precision", "recall", "density", "coverage")},
            "prdc_small_n": (q.get("prdc") or {}).get("small_n"),
            "latency_ms": lat.get("median_ms"), "latency_batch": lat.get("batch_size"),
            "peak_memory_bytes": lat.get("peak_memory_bytes"),
            "quality_retention": retention,
            "retention_per_compression_unit": retention / gained if retention and gained and gained > 1e-9 else None,
            "fid_increase_per_compression_unit": (fid - ref_fid) / gained
            if fid is not None and ref_fid is not None and gained and gained > 1e-9 else None,
            "paired_mse_vs_reference": drift.get("mse_mean"), "paired_psnr_vs_reference": drift.get("psnr_mean"),
        })
    front = pareto_front([(r["compression_ratio"], r["fid"]) for r in rows])
    for i, r in enumerate(rows):
        r["pareto_optimal"] = i in front
    return rows


def pareto_front(points: list[tuple]) -> set[int]:
    """Indices of points not dominated in (higher compression, lower FID); None values never on it."""
    front = set()
    for i, (ci, fi) in enumerate(points):
        if ci is None or fi is None:
            continue
        dominated = any(cj is not None and fj is not None and cj >= ci and fj <= fi and (cj > ci or fj < fi)
                        for j, (cj, fj) in enumerate(points) if j != i)
        if not dominated:
            front.add(i)
    return front


#: Keys of a ``[[compare.relative]]`` rule (the thresholds file is validated against these).
RULE_REQUIRED_KEYS = ("model", "reference", "metric")
RULE_KEYS = (*RULE_REQUIRED_KEYS, "lower_is_better", "max_worse", "max_worse_relative",
             "when_sparsity_at_least_reference")


def relative_gates(rows: list[dict], rules: list[dict]) -> list[Gate]:
    """Gates of one model against another, from ``[[compare.relative]]`` rules in the thresholds file.

    Rule keys: ``model``, ``reference``, ``metric`` (a table column), ``lower_is_better`` (default
    true), ``max_worse`` (allowed absolute slack, default 0), ``max_worse_relative`` (fraction of the
    reference's value), ``when_sparsity_at_least_reference`` (default true: the rule applies only if
    the model is at least as sparse as the reference, otherwise the gate fails as not comparable).
    """
    by_name = {r["model"]: r for r in rows}
    gates = []
    for rule in rules:
        name, ref, metric = rule["model"], rule["reference"], rule["metric"]
        label = f"{metric}_vs_{ref}"
        if name not in by_name or ref not in by_name:
            missing = [n for n in (name, ref) if n not in by_name]
            gates.append(Gate(model=name, metric=label, value=None, threshold=None, op="<=", passed=False,
                              detail=f"model(s) {missing} not in this comparison: {sorted(by_name)}"))
            continue
        a, b = by_name[name].get(metric), by_name[ref].get(metric)
        if a is None or b is None:
            gates.append(Gate(model=name, metric=label, value=a, threshold=b, op="<=", passed=False,
                              detail=f"{metric} not measured for both models (run the full tier metrics)"))
            continue
        slack = float(rule.get("max_worse", 0.0)) + float(rule.get("max_worse_relative", 0.0)) * abs(b)
        lower = rule.get("lower_is_better", True)
        detail = f"{name} {metric}={a:.6g} vs {ref} {b:.6g} (slack {slack:.4g})"
        if rule.get("when_sparsity_at_least_reference", True):
            sa, sb = by_name[name].get("global_sparsity"), by_name[ref].get("global_sparsity")
            if sa is None or sb is None or sa + 1e-9 < sb:
                gates.append(Gate(model=name, metric=label, value=a, threshold=b, op="<=" if lower else ">=",
                                  passed=False, detail=detail + f"; not comparable: sparsity {sa} < {ref}'s {sb}"))
                continue
            detail += f"; sparsity {sa:.4f} >= {sb:.4f}"
        gates.append(check(name, label, a, "<=" if lower else ">=", b + slack if lower else b - slack,
                           detail=detail))
    return gates
