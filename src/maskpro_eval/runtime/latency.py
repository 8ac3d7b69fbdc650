"""Forward latency of a UNet, measured honestly: warm-up, device synchronisation, median and spread."""
from __future__ import annotations

import torch

from maskpro_eval.runtime.timing import time_callable


def measure_forward_latency(unet, batch_size: int = 1, rounds: int = 10, warmup: int = 2,
                            seed: int = 0) -> dict:
    """Median/min/mean forward latency (ms), its interquartile range and images/s for one batch at one
    timestep (:func:`maskpro_eval.runtime.timing.time_callable`: the clock is read after the device is
    synchronised). Peak GPU memory is reset per call."""
    param = next(unet.parameters())
    device = param.device
    cfg = unet.config
    size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, cfg.in_channels, size, size, generator=g).to(device=device, dtype=param.dtype)
    t = torch.full((batch_size,), 500, device=device, dtype=torch.long)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.inference_mode():
        res = time_callable(lambda: unet(x, t), warmup=warmup, rounds=rounds, device=device, use_events=False)
    out = {"batch_size": batch_size, "rounds": res.rounds, "warmup": res.warmup, "device": str(device),
           "dtype": str(param.dtype).replace("torch.", ""), "median_ms": res.median_s * 1e3,
           "min_ms": res.min_s * 1e3, "mean_ms": res.mean_s * 1e3, "iqr_ms": res.iqr_s * 1e3,
           "images_per_s": batch_size / res.median_s, "timer": res.method,
           **latency_spread(res.median_s, res.iqr_s, res.min_s, max(res.times_s))}
    if device.type == "cuda":
        out["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(device))
    return out


#: A latency whose interquartile range exceeds this fraction of the median, or whose slowest round is
#: this many times its fastest, was measured on a contended machine (other processes took the CPU).
CONTENDED_IQR_FRACTION = 0.25
CONTENDED_MAX_OVER_MIN = 3.0


def latency_spread(median_s: float, iqr_s: float, min_s: float, max_s: float) -> dict:
    """The spread beside a median latency and whether it says the machine was contended."""
    rel = iqr_s / median_s if median_s > 0 else float("inf")
    ratio = max_s / min_s if min_s > 0 else float("inf")
    contended = rel > CONTENDED_IQR_FRACTION or ratio > CONTENDED_MAX_OVER_MIN
    return {"iqr_over_median": rel, "max_over_min": ratio, "contended": bool(contended),
            "contention_rule": f"IQR > {CONTENDED_IQR_FRACTION:g} x median or max > "
                               f"{CONTENDED_MAX_OVER_MIN:g} x min"}
