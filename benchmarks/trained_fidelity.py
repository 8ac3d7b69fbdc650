"""Fidelity of the fast path on a TRAINED UNet: fp16 (compiled) vs fp32 FID on the same seeds (issue #13, item 4).

For each precision and seed, ``python -m maskpro_eval.runtime.distributed`` (the fast DDIM sampler, DDIM-100,
eta 0, the suite's per-sample noise; Inception features strict fp32, deterministic) draws N samples and keeps
their features; then, on the GPU in float64:

* FID of every set against the held-out digits (``digits_heldout_32px.npz``, 397 images: biased, compare
  only at equal N);
* the fp32 seed-to-seed spread (std of those FIDs over the seeds, and fp32 seed 0 vs seed s directly);
* fp16 seed s vs fp32 seed s (same x_T): the direct distance and the FID shift against the held-out digits.

The check of item 4: |FID_fp16(s) - FID_fp32(s)| <= the fp32 seed-to-seed std, for every seed.

Usage (one GPU)::

    python -m benchmarks.trained_fidelity --model src/maskpro_eval/demo_zoo/dense --num-samples 10240 \
        --seeds 0,1,2 --out fidelity.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
HELDOUT = REPO / "src" / "maskpro_eval" / "demo_zoo" / "digits_heldout_32px.npz"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.trained_fidelity", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--num-samples", type=int, default=10_240)
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--dtypes", default="float32,float16", help="the first is the reference precision")
    ap.add_argument("--compile-fast", action="store_true", help="torch.compile the non-reference precisions")
    ap.add_argument("--compile-options", default=None, metavar="K=V,...",
                    help="inductor options of that compile (as pytest's --compile-options; needs --compile-fast)")
    ap.add_argument("--fused-fast", action="store_true",
                    help="fused Triton ResnetBlock2Ds (--fused-resnet) in the non-reference precisions")
    ap.add_argument("--onepass-gn-fast", action="store_true",
                    help="one-pass GroupNorm kernel (--onepass-group-norm) in the non-reference precisions")
    ap.add_argument("--reference", default=str(HELDOUT), help="real images (.npz, key images, uint8 NHWC)")
    ap.add_argument("--inception-weights", default=None)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--device", default="cuda", help="cuda (cpu only for a tiny check of this script)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.compile_options and not a.compile_fast:
        ap.error("--compile-options sets options of the compiled UNet: add --compile-fast")
    from benchmarks.cli import _csv, _ints
    from maskpro_eval.metrics.gpu_features import GPUInceptionFeatures, feature_statistics_torch, frechet_distance_torch
    from maskpro_eval.runtime import distributed

    t_start = time.perf_counter()
    seeds, dtypes = _ints(a.seeds), _csv(a.dtypes)
    with np.load(a.reference) as d:
        real = torch.from_numpy(np.ascontiguousarray(d["images"].transpose(0, 3, 1, 2)))
    ext = GPUInceptionFeatures(a.inception_weights, device=a.device, batch_size=512)
    mu_r, sig_r = feature_statistics_torch(ext(real))
    stats, runs = {}, {}
    tmp_dir = tempfile.TemporaryDirectory(prefix="trained_fidelity_")
    for dt in dtypes:
        for s in seeds:
            f = Path(tmp_dir.name) / f"{dt}_s{s}.npz"     # mu/sigma (float64) as the run computed them
            argv_d = ["--model", a.model, "--num-samples", str(a.num_samples), "--batch-size", str(a.batch_size),
                      "--seed", str(s), "--dtype", dt, "--save-stats", str(f), "--steps", str(a.steps),
                      "--device", a.device]
            if a.inception_weights:
                argv_d += ["--inception-weights", a.inception_weights]
            fast = dt != dtypes[0]   # the options below apply to the non-reference precisions only
            fused, onepass = bool(fast and a.fused_fast), bool(fast and a.onepass_gn_fast)
            argv_d += (["--compile"] if fast and a.compile_fast else []) + (["--fused-resnet"] if fused else []) \
                + (["--compile-options", a.compile_options] if fast and a.compile_options else []) \
                + (["--onepass-group-norm"] if onepass else [])
            rec = distributed.main(argv_d)
            with np.load(f) as z:
                stats[(dt, s)] = tuple(torch.from_numpy(z[k]).to(a.device) for k in ("mu", "sigma"))
            runs[f"{dt}_s{s}"] = {"fid_vs_heldout": frechet_distance_torch(*stats[(dt, s)], mu_r, sig_r),
                                  "work_seconds": rec["work_seconds"], "wall_seconds": rec["wall_seconds"],
                                  "img_steps_per_s": a.num_samples * rec["steps"] / rec["rank0_sampling_gpu_s"],
                                  "compile": rec["compile"], "compile_options": rec.get("compile_options"),
                                  "fused_resnet": fused, "onepass_group_norm": onepass,
                                  "features_sha256": rec["features_sha256"]}
            print(json.dumps({f"{dt}_s{s}": runs[f"{dt}_s{s}"]}), flush=True)
            if a.out:   # the sets so far, in case the call is cut short (rewritten complete at the end)
                Path(a.out).write_text(json.dumps({"partial": True, "runs": runs}, indent=1) + "\n")
    ref_dt = dtypes[0]
    ref_fids = [runs[f"{ref_dt}_s{s}"]["fid_vs_heldout"] for s in seeds]
    spread = statistics.stdev(ref_fids) if len(ref_fids) > 1 else None
    out = {"model": a.model, "num_samples": a.num_samples, "batch_size": a.batch_size, "seeds": seeds,
           "reference": f"{a.reference} ({real.shape[0]} images)", "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu", "steps": a.steps,
           "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"), "runs": runs,
           f"{ref_dt}_seed_std_vs_heldout": spread,
           f"{ref_dt}_seed0_vs_seed": {str(s): frechet_distance_torch(*stats[(ref_dt, seeds[0])], *stats[(ref_dt, s)])
                                      for s in seeds[1:]}}
    for dt in dtypes[1:]:
        shift = {str(s): runs[f"{dt}_s{s}"]["fid_vs_heldout"] - runs[f"{ref_dt}_s{s}"]["fid_vs_heldout"] for s in seeds}
        direct = {str(s): frechet_distance_torch(*stats[(dt, s)], *stats[(ref_dt, s)]) for s in seeds}
        ok = spread is not None and all(abs(v) <= spread for v in shift.values())
        out[f"{dt}_minus_{ref_dt}_same_seed"] = shift
        out[f"{dt}_vs_{ref_dt}_same_seed_direct"] = direct
        out[f"{dt}_within_{ref_dt}_seed_spread"] = ok
        # the shift as a paired quantity: its mean over the seeds, in units of the reference seed std
        vals = list(shift.values())
        mean = statistics.fmean(vals)
        out[f"{dt}_minus_{ref_dt}_mean"] = mean
        out[f"{dt}_minus_{ref_dt}_std_over_seeds"] = statistics.stdev(vals) if len(vals) > 1 else None
        out[f"{dt}_minus_{ref_dt}_mean_in_seed_stds"] = mean / spread if spread else None
    tmp_dir.cleanup()
    out["wall_seconds"] = time.perf_counter() - t_start
    if a.out:
        Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1), flush=True)
    return out


if __name__ == "__main__":
    main()
