"""Time and peak memory of prdc_from_features at N x M (default 50k x 50k, 2048-d) on a device.

    python scripts/bench_prdc.py --n 50000 --device cuda
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from maskpro_eval.metrics.prdc import prdc_from_features


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    real = torch.randn(args.n, args.d, generator=g).abs_()
    fake = (torch.randn(args.n, args.d, generator=g).abs_() * 1.1)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    out = prdc_from_features(real.to(args.device), fake.to(args.device), device=args.device)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    out["seconds"] = time.perf_counter() - t
    if args.device.startswith("cuda"):
        out["peak_gpu_bytes"] = torch.cuda.max_memory_allocated()
        out["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
