"""Optional experiment tracking: every metric, plot and gate verdict of a run to SwanLab, offline.

The results JSON stays the source of truth; tracking is a copy. SwanLab runs in ``offline`` mode
(files under ``log_dir``, no network; ``swanlab sync DIR`` uploads later if the user wants).
Install with ``pip install -e ".[tracking]"``.
"""
from __future__ import annotations

from pathlib import Path


def flatten_metrics(results: dict) -> dict[str, float]:
    """Numeric metrics of a results dict as ``{"<model>/<path>": value}`` plus gate values/verdicts."""
    flat: dict[str, float] = {}

    def walk(prefix: str, obj) -> None:
        if isinstance(obj, bool):
            flat[prefix] = float(obj)
        elif isinstance(obj, (int, float)):
            flat[prefix] = float(obj)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                if k in ("layers", "protocol", "mse_histogram"):
                    continue
                walk(f"{prefix}/{k}" if prefix else str(k), v)

    for name, entry in results.get("models", {}).items():
        walk(name, entry)
    for g in results.get("gates", []):
        key = f"gates/{g['model']}/{g['metric']}"
        if isinstance(g.get("value"), (int, float)):
            flat[key + "/value"] = float(g["value"])
        flat[key + "/passed"] = float(bool(g["passed"]))
    flat["gates/all_passed"] = float(all(g["passed"] for g in results.get("gates", [])))
    return flat


def log_to_swanlab(results: dict, run_dir: Path, log_dir: str | Path, project: str = "maskpro-eval") -> Path:
    """Log ``results`` and every PNG of ``run_dir`` to an offline SwanLab run; returns the log folder."""
    try:
        import swanlab
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise RuntimeError("SwanLab tracking was requested (--swanlab) but swanlab is not installed; "
                           "install it with: pip install -e '.[tracking]'") from exc
    import numpy as np
    from PIL import Image

    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    run = results.get("run", {})
    swanlab.init(project=project, mode="offline", log_dir=str(log_dir), name=run.get("name"),
                 config={"run": run, "protocol": results.get("protocol", {}),
                         "thresholds": results.get("thresholds", {})}, reinit=True)
    try:
        swanlab.log(flatten_metrics(results))
        for png in sorted(Path(run_dir).rglob("*.png")):
            rel = png.relative_to(run_dir).as_posix()
            swanlab.log({f"images/{rel}": swanlab.Image(np.asarray(Image.open(png).convert("RGB")), caption=rel)})
        verdict_lines = [g.get("message", "") for g in results.get("gates", [])]
        if verdict_lines:
            swanlab.log({"verdicts": swanlab.Text("\n".join(verdict_lines))})
    finally:
        swanlab.finish()
    return log_dir
