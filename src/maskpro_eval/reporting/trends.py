"""Workflow mode's plot: metrics of a training run's checkpoints against epoch."""
from __future__ import annotations

from pathlib import Path

from maskpro_eval.reporting.plots import save_figure


def plot_trends(path: Path, points: list[dict], training_logs: list | None) -> Path:
    """Each metric against epoch (one panel per metric) and the training logs' curves."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = sorted({k for p in points for k, v in p.items() if k not in ("name", "epoch") and isinstance(v, (int, float))})
    panels = len(metrics) + (1 if training_logs else 0)
    fig, axes = plt.subplots(1, max(panels, 1), figsize=(3.4 * max(panels, 1), 3.2), squeeze=False)
    pts = sorted([p for p in points if p.get("epoch") is not None], key=lambda p: p["epoch"])
    for ax, key in zip(axes[0], metrics):
        ax.plot([p["epoch"] for p in pts], [p.get(key) for p in pts], "o-")
        for p in points:
            if p.get("epoch") is None and p.get(key) is not None:
                ax.axhline(p[key], ls="--", color="tab:red", label=p["name"])
                ax.legend(fontsize=7)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("epoch")
    if training_logs:
        ax = axes[0][-1]
        keys = sorted({k for row in training_logs for k, v in row.items() if k != "epoch" and isinstance(v, (int, float))})
        for k in keys:
            ax.plot([r.get("epoch") for r in training_logs], [r.get(k) for r in training_logs], "o-", label=k)
        ax.set_title("training logs (from the checkpoint)", fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
