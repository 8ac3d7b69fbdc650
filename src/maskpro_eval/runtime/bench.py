"""Forward-latency benchmark cases (pytest-benchmark) and the scaling plot."""
from __future__ import annotations

import copy
import io
import logging
from dataclasses import dataclass, field

import torch

from maskpro_eval.runtime.dtypes import torch_dtype
from maskpro_eval.runtime.timing import peak_memory

__all__ = ["parse_batches", "ForwardCase", "prepare_unet", "forward_case", "run_forward_benchmark",
           "forward_record_problems", "scaling_plot_png"]




def parse_batches(text: str | None, default: str = "1,8,64,256") -> list[int]:
    """``"1,8,64,256"`` -> ``[1, 8, 64, 256]`` (sorted, unique, each >= 1); ValueError otherwise."""
    text = default if text in (None, "") else str(text)
    try:
        vals = sorted({int(v) for v in text.replace(" ", "").split(",") if v})
    except ValueError:
        raise ValueError(f"--bench-batches {text!r}: expected comma-separated positive integers, e.g. 1,8,64,256") \
            from None
    if not vals or vals[0] < 1:
        raise ValueError(f"--bench-batches {text!r}: expected comma-separated positive integers, e.g. 1,8,64,256")
    return vals


def prepare_unet(unet, device: str | torch.device, dtype: str = "float32", compile: bool = False,
                 compile_mode: str | None = None, copy_model: bool = True):
    """A copy of ``unet`` on ``device`` in ``dtype`` (weights cast), eval, no grad; optionally compiled.

    ``copy_model=False``: use ``unet`` itself, which must already be on ``device`` in ``dtype`` (2:4
    semi-structured sparse weights cannot be copied or cast). Returns ``(module, forward)`` where
    ``forward(x, t)`` returns the output tensor.
    """
    if copy_model:
        m = copy.deepcopy(unet)
        dl = logging.getLogger("diffusers")
        level = dl.level
        dl.setLevel(logging.ERROR)  # silence diffusers' ".to(dtype)" advice
        try:
            m = m.to(device=device, dtype=torch_dtype(dtype)).eval().requires_grad_(False)
        finally:
            dl.setLevel(level)
    else:
        m = unet.eval()

    def fwd(x, t):
        out = m(x, t, return_dict=False)
        return out[0] if isinstance(out, (tuple, list)) else out

    if compile:
        fwd = torch.compile(fwd, mode=compile_mode, dynamic=False)
    return m, fwd


@dataclass
class ForwardCase:
    """One (model, batch) forward benchmark: inputs are random (seeded), never zeros."""

    name: str
    batch: int
    device: torch.device
    dtype: str
    forward: object
    x: torch.Tensor
    t: torch.Tensor
    flops_per_image: float | None = None
    extra: dict = field(default_factory=dict)

    def __call__(self):
        with torch.inference_mode():
            return self.forward(self.x, self.t)


def forward_case(name: str, module, forward, batch: int, device, dtype: str, flops_per_image=None,
                 seed: int = 0, timestep: int = 500) -> ForwardCase:
    cfg = module.config
    size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(batch, cfg.in_channels, size, size, generator=g).to(device=device, dtype=torch_dtype(dtype))
    t = torch.full((batch,), timestep, dtype=torch.long, device=device)
    return ForwardCase(name=name, batch=batch, device=torch.device(device), dtype=dtype, forward=forward, x=x, t=t,
                       flops_per_image=flops_per_image)


def run_forward_benchmark(benchmark, case: ForwardCase, rounds: int = 20, warmup: int = 5) -> dict:
    """``benchmark.pedantic`` over ``case`` with warm-up; fills ``benchmark.extra_info`` and returns the
    record (``median_ms``, ``images_per_s``, ``tflops``, ``peak_memory_mib``...; timings None when
    pytest-benchmark is disabled)."""
    on_cuda = case.device.type == "cuda"
    if on_cuda:
        torch.cuda.empty_cache()
    with peak_memory(case.device if on_cuda else None) as mem:
        benchmark.pedantic(case, rounds=int(rounds), warmup_rounds=int(warmup), iterations=1)
    stats = getattr(benchmark, "stats", None)
    median = float(stats.stats.median) if stats is not None else None
    minimum = float(stats.stats.min) if stats is not None else None
    rec = {
        "model": case.name, "batch": case.batch, "device": str(case.device), "dtype": case.dtype,
        "median_ms": None if median is None else median * 1e3,
        "min_ms": None if minimum is None else minimum * 1e3,
        "images_per_s": None if not median else case.batch / median,
        "tflops": (None if not median or not case.flops_per_image
                   else case.flops_per_image * case.batch / median / 1e12),
        "peak_memory_mib": (None if mem["peak_allocated_bytes"] is None
                            else mem["peak_allocated_bytes"] / 2**20),
        "rounds": int(rounds), "warmup_rounds": int(warmup), **case.extra,
    }
    benchmark.extra_info.update({k: v for k, v in rec.items() if k not in ("model",)})
    return rec


def forward_record_problems(case: ForwardCase, module, rec: dict) -> list[str]:
    """Why a forward benchmark record cannot be trusted (empty when it can): the timed forward does not give
    ``(batch, out_channels, H, W)``, or the timings are not positive and ordered (0 < min <= median)."""
    problems = []
    y = case()
    expected = (case.batch, module.config.out_channels, *case.x.shape[2:])
    if tuple(y.shape) != expected:
        problems.append(f"{case.name}: the timed forward gave shape {tuple(y.shape)}, expected {expected}")
    med, mn = rec.get("median_ms"), rec.get("min_ms")
    if med is not None and not (mn is not None and 0 < mn <= med):
        problems.append(f"{case.name}: timings min {mn} ms, median {med} ms; expected 0 < min <= median")
    return problems


def scaling_plot_png(records: list[dict], title: str = "") -> bytes | None:
    """PNG: latency (ms) and throughput (img/s) against batch size, one line per model (log axes)."""
    recs = [r for r in records if r.get("median_ms")]
    if not recs:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in sorted({r["model"] for r in recs}):
        rs = sorted((r for r in recs if r["model"] == name), key=lambda r: r["batch"])
        b = [r["batch"] for r in rs]
        ax1.plot(b, [r["median_ms"] for r in rs], "o-", label=name)
        ax2.plot(b, [r["images_per_s"] for r in rs], "o-", label=name)
    for ax, ylab in ((ax1, "latency per forward (ms, median)"), (ax2, "throughput (images/s per forward)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel(ylab)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title or "UNet forward scaling", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
