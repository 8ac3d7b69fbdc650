"""Report files of one evaluation run, written atomically.

A run's files are first written into a staging folder and moved to ``<reports_dir>/<run>/`` only
when the run completes, so an aborted run never leaves a half-written report.
"""
from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
from pathlib import Path

from maskpro_eval.reporting.atomic_io import atomic_write_text
from maskpro_eval.gating.gates import format_number
from maskpro_eval.gating.verdict import ungated_message, verdict as run_verdict
from maskpro_eval.reporting.plots import save_figure

LAYER_CSV_FIELDS = ["model", "name", "type", "shape", "parameters", "zeros", "sparsity", "masked",
                    "nm_compliance", "nm_compliance_channel", "nm_exact", "best_fit", "eligible",
                    "eligibility_reason", "macs", "effective_macs"]


def json_default(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return str(obj)


def write_results_json(path: Path, results: dict) -> None:
    atomic_write_text(Path(path), json.dumps(results, indent=2, default=json_default, sort_keys=False))


def write_layer_csv(path: Path, results: dict) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=LAYER_CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for model, entry in results.get("models", {}).items():
        for layer in entry.get("layers", []):
            row = dict(layer)
            row["model"] = model
            row["shape"] = "x".join(str(s) for s in layer.get("shape", []))
            writer.writerow(row)
    atomic_write_text(Path(path), buf.getvalue())


def plot_layer_sparsity(path: Path, results: dict) -> Path | None:
    """Per-layer sparsity (bars) and N:M compliance (dots) for each model; one panel per model."""
    models = {k: v for k, v in results.get("models", {}).items() if v.get("layers")}
    if not models:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(models), 1, figsize=(max(8, 0.12 * max(len(v["layers"]) for v in
                                                                          models.values())), 2.8 * len(models)),
                             squeeze=False)
    for ax, (name, entry) in zip(axes[:, 0], models.items()):
        layers = entry["layers"]
        xs = range(len(layers))
        colors = ["tab:blue" if l["masked"] else "tab:gray" for l in layers]
        ax.bar(xs, [l["sparsity"] for l in layers], color=colors, width=0.8, label="sparsity")
        comp = [(i, l["nm_compliance"]) for i, l in enumerate(layers)
                if l["masked"] and l["nm_compliance"] is not None]
        if comp:
            ax.scatter([c[0] for c in comp], [c[1] for c in comp], color="tab:red", s=8,
                       label=f"{entry['nm']['n']}:{entry['nm']['m']} compliance (row)", zorder=3)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("fraction")
        ax.set_title(f"{name}: masked-layer sparsity {entry['sparsity']['masked_layers']:.3f}, "
                     f"N:M compliance {entry['nm']['compliance']:.3f} (grey = excluded layers)",
                     fontsize=9)
        ax.set_xticks([])
        ax.legend(fontsize=7, loc="lower right")
    axes[-1, 0].set_xlabel("Conv2d/Linear layers in module order")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_quality(path: Path, results: dict) -> Path | None:
    """FID (+- std over seeds where measured) and KID (+- std over subsets) per model."""
    rows = [(name, e["quality"]) for name, e in results.get("models", {}).items()
            if isinstance(e.get("quality"), dict) and e["quality"].get("fid") is not None]
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(4 + 1.2 * len(rows), 3.6))
    names = [r[0] for r in rows]
    fid = [r[1]["fid"] for r in rows]
    fid_err = [(r[1].get("consistency") or {}).get("std", 0.0) for r in rows]
    ax1.bar(names, fid, yerr=fid_err, capsize=4, color="tab:blue")
    n = rows[0][1].get("fid_n")
    biased = any(r[1].get("fid_biased") for r in rows)
    ax1.set_title(f"FID (N={n}{', BIASED: N<10k' if biased else ''})", fontsize=9)
    ax1.tick_params(axis="x", rotation=30, labelsize=8)
    kid = [(r[0], r[1].get("kid_mean"), r[1].get("kid_std") or 0.0) for r in rows if r[1].get("kid_mean") is not None]
    if kid:
        ax2.bar([k[0] for k in kid], [k[1] for k in kid], yerr=[k[2] for k in kid], capsize=4, color="tab:orange")
    ax2.set_title("KID (mean +- std over subsets)", fontsize=9)
    ax2.tick_params(axis="x", rotation=30, labelsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_drift(path: Path, results: dict) -> Path | None:
    """Histogram of per-sample MSE between each model and the baseline on identical noise."""
    rows = [(name, e["quality"]["drift"]) for name, e in results.get("models", {}).items()
            if isinstance(e.get("quality"), dict) and (e["quality"].get("drift") or {}).get("mse_histogram")]
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, d in rows:
        h = d["mse_histogram"]
        ax.stairs(h["counts"], h["edges"], label=f"{name} (mean {d['mse_mean']:.4f})")
    ax.set_xlabel("per-sample MSE vs baseline (pixels in [0, 1])")
    ax.set_ylabel("samples")
    ax.set_title("Paired drift: identical noise, model vs baseline", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def summary_markdown(results: dict) -> str:
    """Human summary: verdict, gates, per-model facts, protocol."""
    gates = results.get("gates", [])
    failed = [g for g in gates if not g["passed"]]
    lines = ["# maskpro-eval summary", ""]
    verdict = results.get("verdict") or run_verdict(gates, results.get("ungated", []))
    lines += [f"**Verdict: {verdict.upper()}** ({len(gates) - len(failed)}/{len(gates)} gates passed)", ""]
    if results.get("ungated"):
        lines += [f"**{ungated_message(results['ungated'])}**", ""]
    for prob in results.get("problems", []):
        lines.append(f"- **{prob['kind'].upper()}** `{prob['test']}` ({prob['when']}): {prob['message']}")
    if results.get("problems"):
        lines.append("")
    run = results.get("run", {})
    if run:
        lines += [f"- run: `{run.get('name')}`, tier(s): {run.get('markers')}, started {run.get('started')}",
                  f"- device: {run.get('device')}, torch {run.get('torch')}, diffusers {run.get('diffusers')}", ""]
    if gates:
        lines += ["## Gates", "", "| model | metric | value | gate | verdict | detail |", "|---|---|---|---|---|---|"]
        for g in gates:
            rule = (f"within {g['threshold']:.4g} +- {g['tolerance']:.4g}" if g["op"] == "within"
                    else f"{g['op']} {_num(g['threshold'])}")
            lines.append(f"| {g['model']} | {g['metric']} | {_num(g['value'])}{g.get('unit', '')} | {rule} | "
                         f"{'PASS' if g['passed'] else '**FAIL**'} | {g.get('detail', '')} |")
        lines.append("")
    models = results.get("models", {})
    if models:
        lines += ["## Models", "", "| model | role | format | params | non-zero | global sparsity | "
                  "masked-layer sparsity | N:M | compliance (row) | compliance (channel) | "
                  "eligible MAC share | MACs dense / effective (G) | packed ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, e in models.items():
            if "parameters" not in e:
                continue
            c = e.get("compression", {})
            lines.append(
                f"| {name} | {e.get('role', '')} | {e.get('format', '')} | {e['parameters']['total']:,} | "
                f"{e['parameters']['nonzero']:,} | {e['sparsity']['global']:.4f} | "
                f"{e['sparsity']['masked_layers']:.4f} | {e['nm']['n']}:{e['nm']['m']} | "
                f"{e['nm']['compliance']:.4f} | {e['nm']['compliance_channel']:.4f} | "
                f"{e['macs']['eligible_share']:.3f} | {e['macs']['dense'] / 1e9:.3f} / "
                f"{e['macs']['effective'] / 1e9:.3f} | {c.get('packed_size_ratio', 1.0):.3f} |")
        lines.append("")
        qrows = [(n, e["quality"]) for n, e in models.items() if isinstance(e.get("quality"), dict)
                 and (e["quality"].get("fid") is not None or e["quality"].get("prdc"))]
        if qrows:
            lines += ["## Quality", "", "| model | FID | N | ref N | biased | KID | precision / recall | density / coverage | "
                      "FID over seeds | FID increase vs baseline | drift MSE mean | drift PSNR mean (dB) |",
                      "|---|---|---|---|---|---|---|---|---|---|---|---|"]
            for n, q in qrows:
                cons = q.get("consistency") or {}
                drift = q.get("drift") or {}
                kid = (f"{q['kid_mean']:.5f} +- {q['kid_std']:.5f}" if q.get("kid_mean") is not None else "n/a")
                if q.get("kid_se") is not None:
                    kid += f" (s.e. {q['kid_se']:.5f}, {q.get('kid_subsets')} subsets of {q.get('kid_subset_size')})"
                pr = q.get("prdc") or {}
                small = " (**small N**)" if pr.get("small_n") else ""
                prec = (f"{pr['precision']:.4f} / {pr['recall']:.4f} (k={pr['nearest_k']}){small}"
                        if pr.get("precision") is not None else "n/a")
                dens = f"{pr['density']:.4f} / {pr['coverage']:.4f}" if pr.get("density") is not None else "n/a"
                lines.append(
                    f"| {n} | {_num(q.get('fid'))} | {q.get('fid_n')} | {q.get('fid_reference_n')} | "
                    f"{'**yes (N < 10,000)**' if q.get('fid_biased') else 'no'} | {kid} | {prec} | {dens} | "
                    f"{(_num(cons.get('mean')) + ' +- ' + _num(cons.get('std'))) if cons else 'n/a'} | "
                    f"{_num(q.get('fid_increase'))} | {_num(drift.get('mse_mean'))} | {_num(drift.get('psnr_mean'))} |")
            lines.append("")
            for n, q in qrows:
                if q.get("protocol"):
                    lines.append(f"- protocol ({n}): " + ", ".join(f"{k}={v}" for k, v in q["protocol"].items()))
            lines.append("")
        noted = [(n, e["notes"]) for n, e in models.items() if e.get("notes")]
        if noted:
            lines += ["## Notes", ""]
            for n, notes in noted:
                lines += [f"- note ({n}): {note}" for note in notes]
            lines.append("")
    timings = results.get("timings") or {}
    if timings.get("phases"):
        from maskpro_eval.runtime.phases import timings_markdown
        lines += ["", "## Timings", ""] + timings_markdown(timings)
    proto = results.get("protocol", {})
    if proto:
        lines += ["", "## Protocol", ""]
        for k, v in proto.items():
            lines.append(f"- {k}: {v}")
    files = results.get("files", {})
    if files:
        lines += ["", "## Files", ""]
        for k, v in files.items():
            lines.append(f"- {k}: `{v}`")
    return "\n".join(lines) + "\n"


_num = format_number


class RunOutput:
    """A run's output folder: files go to a staging folder of this run alone until :meth:`commit`.

    ``staging_name``: the staging folder's name (default: unique to this process, so runs started in the
    same second never share one; pytest-xdist workers get the controller's). ``replace``: an existing
    run folder of the same name is replaced (an explicit ``--run-name``); otherwise the run takes the
    next free name ``NAME-2``, ``NAME-3``, ... so concurrent runs into one reports folder both complete.
    """

    def __init__(self, reports_dir: str | Path, run_name: str, staging_name: str | None = None,
                 replace: bool = True):
        self.reports_dir = Path(reports_dir)
        self.run_name = run_name
        self.final_dir = self.reports_dir / run_name
        self.staging_name = staging_name or f".staging-{run_name}-{os.getpid()}-{secrets.token_hex(3)}"
        self.staging_dir = self.reports_dir / self.staging_name
        self.replace = replace
        self.committed = False

    @property
    def dir(self) -> Path:
        """Where files are written now (staging until committed)."""
        return self.final_dir if self.committed else self.staging_dir

    def path(self, *parts: str) -> Path:
        p = self.dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def commit(self) -> Path:
        """Move the staging folder into place; returns the final folder."""
        if self.committed:
            return self.final_dir
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        if self.replace and self.final_dir.exists():
            shutil.rmtree(self.final_dir)
        for k in range(1, 1000):
            target = self.final_dir if k == 1 else self.reports_dir / f"{self.run_name}-{k}"
            try:
                os.rename(self.staging_dir, target)  # fails if target exists (and is not empty)
            except OSError:
                if not target.exists():
                    raise
                continue
            self.final_dir, self.committed = target, True
            return target
        raise FileExistsError(f"{self.final_dir}: no free run folder name")

    def discard(self) -> None:
        shutil.rmtree(self.staging_dir, ignore_errors=True)


def write_run_reports(out: RunOutput, results: dict, results_json: str | Path | None = None) -> dict:
    """Write every report file into ``out`` (still staging) and return their paths (relative)."""
    files = {
        "results_json": "evaluation_results.json",
        "summary_md": "evaluation_summary.md",
        "layers_csv": "analysis/layer_sparsity.csv",
        "metrics_json": "metrics/metrics.json",
    }
    if plot_layer_sparsity(out.dir / "visualizations" / "layer_sparsity.png", results):
        files["layer_sparsity_png"] = "visualizations/layer_sparsity.png"
    if plot_quality(out.dir / "visualizations" / "quality.png", results):
        files["quality_png"] = "visualizations/quality.png"
    if plot_drift(out.dir / "visualizations" / "drift_histogram.png", results):
        files["drift_png"] = "visualizations/drift_histogram.png"
    results.setdefault("files", {}).update(files)
    write_layer_csv(out.path(files["layers_csv"]), results)
    write_results_json(out.path(files["metrics_json"]), {
        "gates": results.get("gates", []),
        "models": {name: {k: v for k, v in e.items() if k != "layers"} for name, e in results.get("models", {}).items()},
        "protocol": results.get("protocol", {})})
    atomic_write_text(out.path(files["summary_md"]), summary_markdown(results))
    write_results_json(out.path(files["results_json"]), results)
    if results_json:
        write_results_json(Path(results_json), results)
    return files
