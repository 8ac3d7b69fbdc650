"""Compare mode's files: table (CSV/Markdown), detailed JSON, report, dashboard and efficiency plots."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from maskpro_eval.gating.compare import TABLE_FIELDS
from maskpro_eval.gating.gates import Gate, format_number
from maskpro_eval.reporting.atomic_io import atomic_write_text
from maskpro_eval.reporting.plots import save_figure
from maskpro_eval.reporting.results import write_results_json


def table_markdown(rows: list[dict], columns=None) -> str:
    cols = columns or ["model", "role", "global_sparsity", "nm_compliance", "compression_ratio", "fid",
                       "fid_std_over_seeds", "kid_mean", "precision", "recall", "latency_ms", "quality_retention",
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
    fig, axes = plt.subplots(2, 4, figsize=(5 + 2.0 * len(rows), 7))

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
    ax = axes[0, 3]
    small = any(r.get("prdc_small_n") for r in rows)
    ax.bar([i - 0.2 for i in x], [r.get("precision") or 0.0 for r in rows], width=0.4, label="precision")
    ax.bar([i + 0.2 for i in x], [r.get("recall") or 0.0 for r in rows], width=0.4, label="recall")
    ax.set_xticks(list(x), names, rotation=30, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_title(f"precision / recall{' (small N)' if small else ''}", fontsize=9)
    ax.legend(fontsize=7)
    axes[1, 3].axis("off")
    fig.tight_layout()
    return save_figure(fig, path)


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
    ax.set_xlabel("compression ratio (non-zero params of the original / of the model)")
    ax.set_ylabel(f"FID (N={pts[0].get('fid_n')}; lower is better)")
    ax.set_title("Compression efficiency (red: Pareto-optimal)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


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
             "- every *_ratio is the original's quantity / the model's (> 1 = smaller than the original):",
             "  compression_ratio = non-zero params; params_ratio = all params; dense/packed_bytes_ratio = storage;",
             "  macs_ratio = dense MACs of the original / effective MACs of the model;",
             "- quality_retention = FID(reference) / FID(model);",
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
