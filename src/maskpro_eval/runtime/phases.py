"""Wall time per phase of a run (model load, compile/warm-up, sampling, features, statistics, metrics).

A :class:`PhaseTimer` accumulates, per phase name, seconds (``time.perf_counter``, after
``torch.cuda.synchronize`` on a GPU), images, image-steps (images x denoising steps) and FLOPs. Its
:meth:`PhaseTimer.summary` gives per phase ``seconds``, ``images``, ``img_per_s``, ``img_steps_per_s``
and, where FLOPs are known, ``tflops`` (achieved TFLOP/s) and ``fraction_of_bf16_peak``.

Sampling FLOPs = 2 x (the UNet's dense multiply-accumulates per image at its sample size) x image-steps
(``analysis.macs.layer_macs``: Conv2d/Linear only, so attention's matmuls and elementwise work are not
counted; a lower bound). The bf16 peak is the vendor's dense (no 2:4) tensor-core figure for the device
name (:data:`BF16_PEAK_TFLOPS`), None on a CPU or an unknown GPU.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

#: Dense bf16 tensor-core peak, TFLOP/s (vendor datasheets, SXM parts), by a substring of the device name.
BF16_PEAK_TFLOPS: dict[str, float] = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "A10G": 70.0}

#: Phase names in report order (others follow in first-use order).
PHASE_ORDER = ("model_load", "compile_warmup", "sampling", "reference", "features", "store_io", "statistics",
               "metrics")


def bf16_peak_tflops(device_name: str | None) -> float | None:
    """The dense bf16 peak of a device by name (``torch.cuda.get_device_name``), None if unknown."""
    for key, value in BF16_PEAK_TFLOPS.items():
        if device_name and key in device_name:
            return value
    return None


def _sync() -> None:
    try:
        import torch
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
    except Exception:  # noqa: BLE001 - timing must never break a run
        pass


class PhaseTimer:
    """Accumulated wall time and work per phase (see the module docstring)."""

    def __init__(self):
        self._phases: dict[str, dict] = {}
        self._t0 = time.perf_counter()

    def add(self, name: str, seconds: float, images: int = 0, img_steps: int = 0, flops: float = 0.0) -> None:
        p = self._phases.setdefault(name, {"seconds": 0.0, "images": 0, "img_steps": 0, "flops": 0.0, "calls": 0})
        p["seconds"] += max(0.0, float(seconds))
        p["images"] += int(images)
        p["img_steps"] += int(img_steps)
        p["flops"] += float(flops)
        p["calls"] += 1

    @contextmanager
    def phase(self, name: str, images: int = 0, img_steps: int = 0, flops: float = 0.0):
        """Time the block as ``name`` (GPU work is synchronised before and after)."""
        _sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            _sync()
            self.add(name, time.perf_counter() - start, images, img_steps, flops)

    def summary(self, device_name: str | None = None) -> dict:
        """``{"phases": {name: {...}}, "timed_s", "since_start_s", "bf16_peak_tflops", "device_name"}``."""
        peak = bf16_peak_tflops(device_name)
        names = [n for n in PHASE_ORDER if n in self._phases] + [n for n in self._phases if n not in PHASE_ORDER]
        phases = {}
        for name in names:
            p = self._phases[name]
            s = p["seconds"]
            row = {"seconds": round(s, 3), "calls": p["calls"]}
            if p["images"]:
                row["images"] = p["images"]
                row["img_per_s"] = round(p["images"] / s, 3) if s > 0 else None
            if p["img_steps"]:
                row["img_steps"] = p["img_steps"]
                row["img_steps_per_s"] = round(p["img_steps"] / s, 3) if s > 0 else None
            if p["flops"]:
                tflops = p["flops"] / s / 1e12 if s > 0 else None
                row["tflops"] = round(tflops, 4) if tflops is not None else None
                row["fraction_of_bf16_peak"] = round(tflops / peak, 4) if tflops is not None and peak else None
            phases[name] = row
        return {"phases": phases, "timed_s": round(sum(p["seconds"] for p in self._phases.values()), 3),
                "since_start_s": round(time.perf_counter() - self._t0, 3), "device_name": device_name,
                "bf16_peak_tflops": peak}


def timings_line(summary: dict) -> str:
    """One terminal line: ``timings: sampling 41.2 s (4.9 img/s, 485 img-steps/s), features 16.9 s ...``."""
    parts = []
    for name, p in (summary.get("phases") or {}).items():
        extra = []
        if p.get("img_per_s"):
            extra.append(f"{p['img_per_s']:.3g} img/s")
        if p.get("img_steps_per_s"):
            extra.append(f"{p['img_steps_per_s']:.4g} img-steps/s")
        if p.get("tflops") is not None:
            frac = p.get("fraction_of_bf16_peak")
            extra.append(f"{p['tflops']:.3g} TFLOP/s" + (f" = {frac:.1%} of bf16 peak" if frac else ""))
        parts.append(f"{name} {p['seconds']:.1f} s" + (f" ({', '.join(extra)})" if extra else ""))
    return "timings: " + (", ".join(parts) if parts else "none recorded") + \
        f"; run {summary.get('since_start_s', 0):.1f} s"


def timings_markdown(summary: dict) -> list[str]:
    """A Markdown table of the phases (empty list when none were timed)."""
    phases = summary.get("phases") or {}
    if not phases:
        return []
    peak = summary.get("bf16_peak_tflops")
    lines = ["| phase | wall s | images | img/s | img-steps/s | TFLOP/s | of bf16 peak |", "|---|---|---|---|---|---|---|"]
    for name, p in phases.items():
        frac = p.get("fraction_of_bf16_peak")
        lines.append(f"| {name} | {p['seconds']:.2f} | {p.get('images', '')} | {p.get('img_per_s') or ''} | "
                     f"{p.get('img_steps_per_s') or ''} | {'' if p.get('tflops') is None else p['tflops']} | "
                     f"{'' if not frac else f'{frac:.1%}'} |")
    lines.append("")
    lines.append(f"Run wall time {summary.get('since_start_s', 0):.1f} s; timed phases {summary.get('timed_s', 0):.1f} s. "
                 f"bf16 peak: {f'{peak} TFLOP/s (dense, datasheet)' if peak else 'n/a on this device'}. Sampling "
                 "TFLOP/s count Conv2d/Linear MACs only (a lower bound).")
    return lines
