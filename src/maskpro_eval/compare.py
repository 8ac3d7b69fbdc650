"""Side-by-side comparison of several evaluated models: table, Pareto front, relative gates, plots.

Definitions (README "Compare mode"):
* ``compression_ratio`` = total parameters / non-zero parameters.
* ``quality_retention`` = FID(reference model) / FID(model): 1.0 = no loss, < 1 = worse.
* ``retention_per_compression_unit`` = quality_retention / (compression_ratio - 1): retained quality
  per unit of compression gained beyond dense (higher is better; undefined for dense models).
* ``fid_increase_per_compression_unit`` = (FID(model) - FID(reference)) / (compression_ratio - 1).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from .gates import Gate, check
from .gates import format_number
from .reporting import _save, atomic_write_text, write_results_json

TABLE_FIELDS = ["model", "role", "format", "params_total", "params_nonzero", "global_sparsity",
                "masked_layers_sparsity", "nm", "nm_compliance", "nm_compliance_channel", "compression_ratio",
                "packed_bytes", "dense_bytes", "macs_effective_g", "fid", "fid_std_over_seeds", "fid_n", "fid_biased",
                "kid_mean", "kid_std", "latency_ms", "latency_batch", "peak_memory_bytes",
                "quality_retention", "retention_per_compression_unit", "fid_increase_per_compression_unit",
                "paired_mse_vs_reference", "paired_psnr_vs_reference", "pareto_optimal"]


def comparison_rows(models: dict, reference: str | None) -> list[dict]:
    """One row per model from their ``evaluation_results.json`` entries."""
    rows = []
    ref_fid = (models.get(reference, {}).get("quality") or {}).get("fid") if reference else None
    for name, e in models.items():
        q = e.get("quality") or {}
        params = e.get("parameters", {})
        total, nonzero = params.get("total"), params.get("nonzero")
        ratio = total / nonzero if total and nonzero else None
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
            "packed_bytes": e.get("compression", {}).get("packed_bytes"),
            "dense_bytes": e.get("compression", {}).get("dense_bytes"),
            "macs_effective_g": (e.get("macs", {}).get("effective") or 0) / 1e9,
            "fid": fid, "fid_std_over_seeds": (q.get("consistency") or {}).get("std"),
            "fid_n": q.get("fid_n"), "fid_biased": q.get("fid_biased"),
            "kid_mean": q.get("kid_mean"), "kid_std": q.get("kid_std"),
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


def table_markdown(rows: list[dict], columns=None) -> str:
    cols = columns or ["model", "role", "global_sparsity", "nm_compliance", "compression_ratio", "fid",
                       "fid_std_over_seeds", "kid_mean", "latency_ms", "quality_retention",
                       "retention_per_compression_unit", "paired_psnr_vs_reference", "pareto_optimal"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    return format_number(v, 4)


def plot_dashboard(path: Path, rows: list[dict]) -> Path:
    """Sparsity, N:M compliance, FID/KID with error bars, latency, memory/size per model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["model"] for r in rows]
    fig, axes = plt.subplots(2, 3, figsize=(4 + 1.6 * len(rows), 7))

    def bars(ax, key, title, err=None, scale=1.0):
        vals = [(r.get(key) or 0.0) * scale for r in rows]
        errs = [(r.get(err) or 0.0) * scale for r in rows] if err else None
        ax.bar(names, vals, yerr=errs, capsize=4 if err else 0, color="tab:blue")
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", rotation=30, labelsize=7)

    bars(axes[0, 0], "global_sparsity", "global sparsity")
    bars(axes[0, 1], "nm_compliance", "N:M compliance (row-major)")
    biased = any(r.get("fid_biased") for r in rows)
    bars(axes[0, 2], "fid", f"FID +- std over seeds (N={rows[0].get('fid_n')}{', biased' if biased else ''})",
         err="fid_std_over_seeds")
    bars(axes[1, 0], "kid_mean", "KID +- std over subsets", err="kid_std")
    bars(axes[1, 1], "latency_ms", f"forward latency, ms (batch {rows[0].get('latency_batch')})")
    ax = axes[1, 2]
    x = range(len(rows))
    ax.bar([i - 0.2 for i in x], [(r.get("dense_bytes") or 0) / 1e6 for r in rows], width=0.4, label="dense 16-bit")
    ax.bar([i + 0.2 for i in x], [(r.get("packed_bytes") or 0) / 1e6 for r in rows], width=0.4, label="2:4 packed")
    ax.set_xticks(list(x), names, rotation=30, fontsize=7)
    ax.set_title("size (MB)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_efficiency(path: Path, rows: list[dict]) -> Path | None:
    """Quality (FID, lower is better) against compression ratio; the Pareto front marked."""
    pts = [r for r in rows if r.get("fid") is not None and r.get("compression_ratio")]
    if not pts:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in pts:
        ax.scatter(r["compression_ratio"], r["fid"], s=60, color="tab:red" if r["pareto_optimal"] else "tab:gray",
                   zorder=3)
        ax.annotate(r["model"], (r["compression_ratio"], r["fid"]), fontsize=8, xytext=(4, 4),
                    textcoords="offset points")
    front = sorted([r for r in pts if r["pareto_optimal"]], key=lambda r: r["compression_ratio"])
    if len(front) > 1:
        ax.plot([r["compression_ratio"] for r in front], [r["fid"] for r in front], "r--", label="Pareto front")
        ax.legend(fontsize=8)
    ax.set_xlabel("compression ratio (params / non-zero params)")
    ax.set_ylabel(f"FID (N={pts[0].get('fid_n')}; lower is better)")
    ax.set_title("Compression efficiency (red: Pareto-optimal)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def write_comparison(out_dir: Path, rows: list[dict], models: dict, gates: list[Gate], reference: str | None) -> dict:
    """comparison_table.csv/.md, detailed_results.json, comparison_report.md, dashboard and efficiency plots."""
    out_dir = Path(out_dir)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TABLE_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out_dir / "comparison_table.csv", buf.getvalue())
    atomic_write_text(out_dir / "comparison_table.md", table_markdown(rows, TABLE_FIELDS))
    write_results_json(out_dir / "detailed_results.json",
                       {"reference": reference, "rows": rows, "models": models,
                        "relative_gates": [g.to_dict() for g in gates]})
    files = {"table_csv": "comparison_table.csv", "table_md": "comparison_table.md",
             "detailed_json": "detailed_results.json", "report_md": "comparison_report.md"}
    plot_dashboard(out_dir / "comparison_dashboard.png", rows)
    files["dashboard_png"] = "comparison_dashboard.png"
    if plot_efficiency(out_dir / "compression_efficiency.png", rows):
        files["efficiency_png"] = "compression_efficiency.png"
    lines = ["# Model comparison", "", f"Reference for retention and paired drift: `{reference}`.", "",
             table_markdown(rows), "",
             "- compression_ratio = params / non-zero params; quality_retention = FID(reference) / FID(model);",
             "- retention_per_compression_unit = quality_retention / (compression_ratio - 1);",
             "- paired drift: per-sample MSE/PSNR against the reference model's samples from identical noise;",
             "- pareto_optimal: no other model has both higher compression and lower FID.", ""]
    biased = [r["model"] for r in rows if r.get("fid_biased")]
    if biased:
        lines.append(f"**FID is biased (N < 10,000) for {', '.join(biased)}: compare only at equal N; KID shown.**")
        lines.append("")
    if gates:
        lines += ["## Relative gates", ""] + [f"- {g.message}" for g in gates] + [""]
    lines += ["![dashboard](comparison_dashboard.png)", "", "![efficiency](compression_efficiency.png)", ""]
    atomic_write_text(out_dir / "comparison_report.md", "\n".join(lines))
    return files
