#!/usr/bin/env python
"""The dense-recipe sweep behind the demo zoo's dense model (README "Demo study").

Two steps, because the GPU machine has no Inception weights and the CPU is slow at training:

    # on the GPU: train each variant (one process per variant, in parallel), EMA snapshots every
    # --every steps with their val loss, and the suite's own samples of every snapshot
    python scripts/dense_sweep.py train --out SWEEP --variant d0:dropout=0.0 --variant d1:dropout=0.1 ...
    # on any machine with the FID Inception weights: FID/KID of every snapshot vs the held-out digits
    python scripts/dense_sweep.py score SWEEP/*.npz --json SWEEP/scores.json

A variant is ``name:key=value,...`` with keys ``dropout``, ``lr``, ``steps``, ``batch``, ``ema``.
Samples: ``maskpro_eval.sampling.standard.generate`` (DDIM-100, eta 0, seed 0, samples 0..N-1), the full
tier's protocol; the last snapshot is also sampled with DDPM-1000 (ancestral) as a sampler diagnostic.
The held-out digits are never used for anything but the score.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_demo_zoo as bz  # noqa: E402


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    opts = dict(dropout=0.0, lr=1e-3, steps=6000, batch=256, ema=0.9995)
    for kv in filter(None, rest.split(",")):
        k, _, v = kv.partition("=")
        if k not in opts:
            raise SystemExit(f"variant {text!r}: unknown key {k!r}; expected one of {sorted(opts)}")
        opts[k] = type(opts[k])(v)
    return name, opts


def train_variant(name: str, opts: dict, out: Path, every: int, num: int, seed: int) -> None:
    from maskpro_eval.sampling.config import SamplingConfig
    from maskpro_eval.sampling.standard import generate
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    u8 = bz.digits_uint8()
    sp = bz.split_indices(len(u8), seed)
    x = bz.to_model_space(u8)
    x_train, x_val = x[sp["train"]].to(dev), x[sp["val"]].to(dev)
    result: dict = {"variant": name, "opts": opts, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda"
                    else "cpu", "torch": torch.__version__, "snapshots": []}
    arrays: dict = {}
    ddim = SamplingConfig(sampler="ddim", eta=0.0, seed=0, batch_size=num, device=str(dev))

    def save():
        tmp = out / f"{name}.tmp.npz"
        np.savez_compressed(tmp, meta=np.array(json.dumps(result)), **arrays)
        tmp.replace(out / f"{name}.npz")

    def on_curve(entry, ema):
        t0 = time.time()
        arrays[f"ddim100_step{entry['step']}"] = generate(ema, ddim, count=num, start=0, progress=False)
        result["snapshots"].append({**entry, "sample_s": round(time.time() - t0, 1)})
        save()
        print(f"[{name}] snapshot {entry['step']}: val {entry['val_loss_ema']:.5f}", flush=True)

    unet = bz.new_unet(seed, dev, dropout=opts["dropout"])
    ema, info = bz.train(unet, x_train, steps=opts["steps"], batch=opts["batch"], lr=opts["lr"],
                         warmup=min(500, opts["steps"] // 10), seed=seed, ema_decay=opts["ema"], log_every=1000,
                         tag=name, curve_every=every, val=x_val, on_curve=on_curve, val_repeats=8)
    result["training"] = {k: v for k, v in info.items() if k != "curve"}
    t0 = time.time()
    ddpm = SamplingConfig(sampler="ddpm", seed=0, batch_size=num, device=str(dev))
    arrays[f"ddpm1000_step{opts['steps']}"] = generate(ema, ddpm, count=num, start=0, progress=False)
    result["ddpm1000_s"] = round(time.time() - t0, 1)
    save()
    print(f"[{name}] done: {info['steps_per_s']} it/s", flush=True)


def score(files: list[Path], out_json: Path | None, reference: Path, extra_real: bool) -> dict:
    from maskpro_eval.metrics.fid import feature_statistics, fid_from_stats, kid
    from maskpro_eval.metrics.inception import get_extractor
    ext = get_extractor()
    with np.load(reference) as d:
        ref = d["images"]
    f_ref = ext.features(ref, batch_size=64)
    mu_r, sig_r = feature_statistics(f_ref)
    scores: dict = {}

    def one(key: str, imgs: np.ndarray) -> dict:
        f = ext.features(imgs, batch_size=64)
        mu, sig = feature_statistics(f)
        k_mean, k_std = kid(f, f_ref)
        r = {"n": int(len(imgs)), "fid": float(fid_from_stats(mu, sig, mu_r, sig_r, warn_small_n=False)),
             "kid": k_mean, "kid_std": k_std}
        print(f"{key:>40}: FID {r['fid']:7.2f}  KID {k_mean:.4f} +- {k_std:.4f}", flush=True)
        return r

    if extra_real:   # the floor: real train/val digits against the held-out ones
        u8 = bz.digits_uint8()
        sp = bz.split_indices(len(u8), 0)
        scores["real/train_first200"] = one("real/train_first200", u8[sp["train"][:200]])
        scores["real/val140"] = one("real/val140", u8[sp["val"]])
    for path in files:
        with np.load(path) as d:
            meta = json.loads(str(d["meta"]))
            for key in sorted(k for k in d.files if k != "meta"):
                scores[f"{path.stem}/{key}"] = {**one(f"{path.stem}/{key}", d[key]), "meta_variant": meta["variant"]}
        if out_json:
            out_json.write_text(json.dumps(scores, indent=1) + "\n")
    if out_json:
        out_json.write_text(json.dumps(scores, indent=1) + "\n")
    return scores


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--variant", action="append", required=True)
    t.add_argument("--every", type=int, default=750)
    t.add_argument("--num", type=int, default=200)
    t.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("score")
    s.add_argument("files", type=Path, nargs="*")
    s.add_argument("--json", type=Path, default=None)
    s.add_argument("--reference", type=Path, default=bz.REPO / "src" / "maskpro_eval" / "demo_zoo" / bz.REFERENCE_NAME)
    s.add_argument("--real", action="store_true", help="also score real train/val digits (the floor)")
    a = ap.parse_args(argv)
    import diffusers
    diffusers.utils.logging.set_verbosity_error()
    if a.cmd == "train":
        a.out.mkdir(parents=True, exist_ok=True)
        if len(a.variant) == 1:
            name, opts = parse_variant(a.variant[0])
            train_variant(name, opts, a.out, a.every, a.num, a.seed)
            return 0
        import subprocess
        procs = [subprocess.Popen([sys.executable, __file__, "train", "--out", str(a.out), "--variant", v,
                                   "--every", str(a.every), "--num", str(a.num), "--seed", str(a.seed)])
                 for v in a.variant]
        return max(p.wait() for p in procs)
    score(a.files, a.json, a.reference, a.real)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
