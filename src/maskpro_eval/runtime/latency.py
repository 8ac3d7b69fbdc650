"""Forward latency of a UNet, measured honestly: warm-up, device synchronisation, median of rounds."""
from __future__ import annotations

import statistics
import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_forward_latency(unet, batch_size: int = 1, rounds: int = 10, warmup: int = 2,
                            seed: int = 0) -> dict:
    """Median/min/mean forward latency (ms) and images/s for one batch at one timestep.

    The clock is read only after the device is synchronised; peak GPU memory is reset per call.
    """
    param = next(unet.parameters())
    device = param.device
    cfg = unet.config
    size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, cfg.in_channels, size, size, generator=g).to(device=device, dtype=param.dtype)
    t = torch.full((batch_size,), 500, device=device, dtype=torch.long)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with torch.inference_mode():
        for i in range(warmup + rounds):
            _sync(device)
            start = time.perf_counter()
            unet(x, t)
            _sync(device)
            if i >= warmup:
                times.append(time.perf_counter() - start)
    median = statistics.median(times)
    out = {"batch_size": batch_size, "rounds": rounds, "warmup": warmup, "device": str(device),
           "dtype": str(param.dtype).replace("torch.", ""),
           "median_ms": median * 1e3, "min_ms": min(times) * 1e3, "mean_ms": statistics.fmean(times) * 1e3,
           "images_per_s": batch_size / median}
    if device.type == "cuda":
        out["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(device))
    return out
