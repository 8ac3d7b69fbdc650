#!/usr/bin/env python
"""Build the bundled demo model zoo (``src/maskpro_eval/demo_zoo/``) from scratch, on a CPU.

Deterministic (fixed seeds, fixed data order, ``torch.use_deterministic_algorithms(True)``, fixed
thread count). Writes:

* ``digits_reference_32px.npz`` -- the FID reference set (key ``images``, uint8 (1797, 32, 32, 3)):
  scikit-learn's 8x8 digits (values 0..16), bilinearly upscaled to 32x32
  (``F.interpolate(mode="bilinear", align_corners=False, antialias=False)``; antialiasing only acts
  when downsampling, so it is irrelevant here), scaled to 0..255, rounded, grey replicated to RGB.
  The models are trained on exactly these uint8 images mapped to [-1, 1].
* ``dense/``, ``magnitude_2of4/``, ``noncompliant/``, ``maskpro_2of4/`` -- diffusers DDPMPipeline
  folders (``save_pretrained(safe_serialization=True)``) plus ``zoo_card.json`` each.
* ``ZOO.md`` -- summary table; ``docs/zoo/<name>.png`` 8x8 DDIM-100 (eta 0, seed 0) sample grids and
  ``docs/zoo/data.png`` (training data).

Usage::

    python scripts/build_demo_zoo.py                      # the real zoo (~30 min on 2 CPU cores)
    python scripts/build_demo_zoo.py --quick-check        # a few steps into a temp dir (tests)
    python scripts/build_demo_zoo.py --out /tmp/zoo --steps 500 --finetune-steps 50
"""
from __future__ import annotations

import argparse
import copy
import datetime as _dt
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

import maskpro_training as mpt  # noqa: E402
from maskpro_eval.checkpoints.architecture import DDPM_CIFAR10_SCHEDULER_CONFIG, DDPM_CIFAR10_UNET_CONFIG
from maskpro_eval.analysis.layers import DEFAULT_EXCLUDE_LAYERS
from maskpro_eval.analysis.nm import magnitude_nm_mask, nm_compliance  # noqa: E402

#: The zoo's UNet: DDPM CIFAR-10 block layout, shrunk (384,083 parameters, 1.5 MB in fp32).
ZOO_UNET_CONFIG: dict = {**DDPM_CIFAR10_UNET_CONFIG, "layers_per_block": 1, "block_out_channels": (16, 32, 32, 32),
                         "norm_num_groups": 8}
N, M = 2, 4
REFERENCE_NAME = "digits_reference_32px.npz"
NUM_VAL = 197                      # held-out images (1797 = 1600 train + 197 val)
MODEL_NAMES = ("dense", "magnitude_2of4", "noncompliant", "maskpro_2of4")


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
def digits_uint8() -> np.ndarray:
    """sklearn digits as uint8 (1797, 32, 32, 3): bilinear x4 upscale, grey replicated."""
    from sklearn.datasets import load_digits
    imgs = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0)[:, None]   # 0..1
    up = F.interpolate(imgs, size=(32, 32), mode="bilinear", align_corners=False, antialias=False)
    u8 = (up.clamp(0, 1) * 255.0).round().to(torch.uint8)[:, 0].numpy()
    return np.repeat(u8[..., None], 3, axis=-1)


def to_model_space(u8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def split(x: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    return x[perm[NUM_VAL:]].contiguous(), x[perm[:NUM_VAL]].contiguous()


def save_grid(images_u8: np.ndarray, path: Path, ncol: int = 8, scale: int = 2) -> None:
    from PIL import Image
    n, h, w, c = images_u8.shape
    nrow = math.ceil(n / ncol)
    pad = 2
    grid = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, c), 255, dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w] = images_u8[i]
    img = Image.fromarray(grid)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, optimize=True)


# ------------------------------------------------------------------------------------------------
# model helpers
# ------------------------------------------------------------------------------------------------
def new_unet(seed: int):
    from diffusers import UNet2DModel
    torch.manual_seed(seed)
    return UNet2DModel(**ZOO_UNET_CONFIG)


def masked_layers(unet) -> dict:
    return mpt.maskable_layers(unet, M, DEFAULT_EXCLUDE_LAYERS)


def alphas_cumprod() -> torch.Tensor:
    from diffusers import DDPMScheduler
    return DDPMScheduler(**DDPM_CIFAR10_SCHEDULER_CONFIG).alphas_cumprod.float()


ACP = None


def diffusion_loss(unet, x0, t, noise) -> torch.Tensor:
    global ACP
    if ACP is None:
        ACP = alphas_cumprod()
    a = ACP[t].view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    return F.mse_loss(unet(xt, t).sample, noise)


@torch.no_grad()
def eval_loss(unet, x: torch.Tensor, repeats: int, seed: int, batch: int = 256) -> float:
    """Mean epsilon-MSE over ``repeats`` fixed (t, noise) draws per image (deterministic)."""
    unet.eval()
    total, count = 0.0, 0
    for r in range(repeats):
        g = torch.Generator().manual_seed(seed + r)
        t = torch.randint(0, 1000, (x.shape[0],), generator=g)
        noise = torch.randn(x.shape, generator=g)
        for i in range(0, x.shape[0], batch):
            sl = slice(i, i + batch)
            n = x[sl].shape[0]
            total += float(diffusion_loss(unet, x[sl], t[sl], noise[sl])) * n
            count += n
    unet.train()
    return total / count


def train(unet, data: torch.Tensor, *, steps: int, batch: int, lr: float, warmup: int, seed: int,
          ema_decay: float, masks: dict | None = None, log_every: int = 100, tag: str = "train"):
    """AdamW + linear warmup + cosine decay (to lr/10), grad-clip 1, EMA; masks kept applied.

    Returns ``(ema_unet, info)``. ``masks``: name -> bool weight-shaped mask (re-applied to the
    gradients before and to the weights after every optimizer step; the EMA stays masked too).
    """
    layers = dict(unet.named_modules())
    if masks:
        with torch.no_grad():
            for k, mk in masks.items():
                layers[k].weight.mul_(mk)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    n = data.shape[0]
    perm, pos = torch.randperm(n, generator=g), 0
    losses, t0, smooth = [], time.time(), None
    unet.train()
    for step in range(steps):
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=g), 0
        idx = perm[pos:pos + batch]
        pos += batch
        x0 = data[idx]
        t = torch.randint(0, 1000, (batch,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        cur_lr = lr * min(1.0, (step + 1) / max(1, warmup))
        if step >= warmup and steps > warmup:
            frac = (step - warmup) / (steps - warmup)
            cur_lr = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))
        for pg in opt.param_groups:
            pg["lr"] = cur_lr
        loss = diffusion_loss(unet, x0, t, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if masks:
            for k, mk in masks.items():
                layers[k].weight.grad.mul_(mk)
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            if masks:
                for k, mk in masks.items():
                    layers[k].weight.mul_(mk)
            d = min(ema_decay, (1 + step) / (10 + step))
            for pe, p in zip(ema.parameters(), unet.parameters()):
                pe.mul_(d).add_(p.detach(), alpha=1 - d)
        lv = float(loss.detach())
        losses.append(lv)
        smooth = lv if smooth is None else 0.99 * smooth + 0.01 * lv
        if log_every and ((step + 1) % log_every == 0 or step == 0):
            el = time.time() - t0
            print(f"[{tag}] step {step + 1}/{steps} loss {lv:.4f} (ema {smooth:.4f}) lr {cur_lr:.2e} "
                  f"{(step + 1) / el:.2f} it/s, {el:.0f}s", flush=True)
    wall = time.time() - t0
    if masks:
        ema_layers = dict(ema.named_modules())
        with torch.no_grad():
            for k, mk in masks.items():
                ema_layers[k].weight.mul_(mk)
    tail = losses[-min(len(losses), 100):] if losses else [float("nan")]
    info = dict(steps=steps, batch=batch, lr=lr, warmup_steps=warmup, lr_schedule="linear warmup + cosine to lr/10",
                optimizer="AdamW(betas=(0.9,0.999), weight_decay=0)", grad_clip=1.0, ema_decay=ema_decay,
                seed=seed, final_train_loss=float(np.mean(tail)), final_train_loss_window=len(tail),
                wall_time_s=round(wall, 1), steps_per_s=round(steps / wall, 3) if wall > 0 else None)
    return ema, info


@torch.no_grad()
def ddim_samples(unet, n: int, steps: int, seed: int = 0, batch: int = 64) -> np.ndarray:
    from diffusers import DDIMScheduler, DDPMScheduler
    sched = DDIMScheduler.from_config(DDPMScheduler(**DDPM_CIFAR10_SCHEDULER_CONFIG).config)
    sched.set_timesteps(steps)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, 3, 32, 32), generator=g)
    unet.eval()
    outs = []
    for i in range(0, n, batch):
        xi = x[i:i + batch]
        for t in sched.timesteps:
            eps = unet(xi, t).sample
            xi = sched.step(eps, t, xi, eta=0.0).prev_sample
        outs.append(xi)
    x = torch.cat(outs).clamp(-1, 1)
    return ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def sparsity_stats(unet) -> dict:
    layers = masked_layers(unet)
    zeros_masked = total_masked = 0
    groups = compliant = 0
    per_layer = {}
    for k, mod in layers.items():
        w = mod.weight.detach()
        z = int((w == 0).sum())
        zeros_masked += z
        total_masked += w.numel()
        c = nm_compliance(w, N, M, "row")
        groups += c.num_groups
        compliant += c.compliant_groups
        per_layer[k] = dict(shape=list(w.shape), sparsity=round(z / w.numel(), 6),
                            compliance_2of4_row=round(c.compliance, 6))
    zeros_all = sum(int((p == 0).sum()) for p in unet.parameters())
    total_all = sum(p.numel() for p in unet.parameters())
    return dict(masked_layer_count=len(layers), masked_params=total_masked,
                sparsity_masked_layers=zeros_masked / total_masked,
                sparsity_global=zeros_all / total_all,
                compliance_2of4_row=compliant / groups, per_layer=per_layer)


def assert_strict_2of4(unet, name: str) -> None:
    for k, mod in masked_layers(unet).items():
        c = nm_compliance(mod.weight, N, M, "row")
        if c.compliance != 1.0:
            raise AssertionError(f"{name}: layer {k} is not 2:4 (compliance {c.compliance:.4f})")


def save_model(unet, path: Path) -> None:
    from diffusers import DDPMPipeline, DDPMScheduler
    if path.exists():
        shutil.rmtree(path)
    pipe = DDPMPipeline(unet=unet, scheduler=DDPMScheduler(**DDPM_CIFAR10_SCHEDULER_CONFIG))
    pipe.save_pretrained(str(path), safe_serialization=True)


def noncompliant_masks(unet) -> dict:
    """50%-sparse masks that are deliberately far from 2:4 (row-major).

    Per masked layer, groups of 4 (row-major) are ranked by L2 norm; the weakest third of the
    groups is zeroed entirely and every other group keeps its 3 largest |w| (3:4). Sparsity is
    (4*G/3 + 2*G/3) / (4*G) = 50%, but only the emptied groups (~1/3) hold <= 2 non-zeros, so the
    2:4 compliance is ~0.33 -- the sparsity target is met while the N:M pattern is not.
    """
    out = {}
    for k, mod in masked_layers(unet).items():
        w = mod.weight.detach()
        g = mpt.group_view(w.abs(), M)
        keep = torch.zeros_like(g, dtype=torch.bool)
        keep.scatter_(1, g.topk(3, dim=1).indices, True)
        norms = g.pow(2).sum(1)
        k_empty = round(g.shape[0] / 3)
        order = torch.sort(norms, stable=True).indices
        keep[order[:k_empty]] = False
        out[k] = mpt.ungroup_view(keep, w.shape)
    return out


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="zoo directory (default: src/maskpro_eval/demo_zoo; "
                    "with --quick-check a temp dir)")
    ap.add_argument("--docs", type=Path, default=None, help="grid PNG directory (default docs/zoo; "
                    "with --quick-check OUT/docs)")
    ap.add_argument("--steps", type=int, default=None, help="dense training steps (default 4000)")
    ap.add_argument("--finetune-steps", type=int, default=None, help="masked fine-tune steps of the 2:4 models (default 600)")
    ap.add_argument("--noncompliant-steps", type=int, default=None,
                    help="masked fine-tune steps of the noncompliant model (default 200)")
    ap.add_argument("--maskpro-steps", type=int, default=None, help="MaskPro mask-learning steps (default 200)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared, oversubscribed CPU one thread is faster "
                    "than two; results are only bit-reproducible for the same thread count)")
    ap.add_argument("--sample-steps", type=int, default=None, help="DDIM steps for grids (default 100)")
    ap.add_argument("--quick-check", action="store_true", help="a few steps of everything into a temp dir")
    args = ap.parse_args(argv)

    quick = args.quick_check
    steps = args.steps if args.steps is not None else (4 if quick else 4000)
    ft_steps = args.finetune_steps if args.finetune_steps is not None else (2 if quick else 600)
    nc_steps = args.noncompliant_steps if args.noncompliant_steps is not None else (2 if quick else 200)
    mp_steps = args.maskpro_steps if args.maskpro_steps is not None else (2 if quick else 200)
    sample_steps = args.sample_steps if args.sample_steps is not None else (3 if quick else 100)
    n_samples = 8 if quick else 64
    batch = 8 if quick and args.batch == 32 else args.batch
    eval_repeats = 1 if quick else 4
    if args.out is not None:
        out = args.out
    elif quick:
        out = Path(tempfile.mkdtemp(prefix="demo_zoo_quick_"))
    else:
        out = REPO / "src" / "maskpro_eval" / "demo_zoo"
    docs = args.docs if args.docs is not None else (out / "docs" if quick else REPO / "docs" / "zoo")
    out.mkdir(parents=True, exist_ok=True)
    docs.mkdir(parents=True, exist_ok=True)

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)
    import diffusers
    import sklearn
    diffusers.utils.logging.set_verbosity_error()   # no "accelerate not found" noise on reload
    versions = dict(torch=torch.__version__, diffusers=diffusers.__version__, sklearn=sklearn.__version__,
                    numpy=np.__version__, python=platform.python_version())
    cmd = " ".join(["python scripts/build_demo_zoo.py", *(argv if argv is not None else sys.argv[1:])])
    t_start = time.time()
    timings: dict[str, float] = {}

    # ---- data ------------------------------------------------------------------------------
    t0 = time.time()
    u8 = digits_uint8()
    np.savez_compressed(out / REFERENCE_NAME, images=u8)
    save_grid(u8[:64], docs / "data.png")
    x_all = to_model_space(u8)
    x_train, x_val = split(x_all, args.seed)
    if quick:
        x_train, x_val = x_train[:64], x_val[:16]
    x_train_eval = x_train[:256]
    timings["data"] = time.time() - t0
    print(f"data: train {tuple(x_train.shape)} val {tuple(x_val.shape)}; reference "
          f"{(out / REFERENCE_NAME).stat().st_size / 1e6:.2f} MB", flush=True)

    def losses_of(unet) -> dict:
        return dict(val_loss=eval_loss(unet, x_val, eval_repeats, seed=10_000),
                    train_eval_loss=eval_loss(unet, x_train_eval, eval_repeats, seed=20_000))

    log_every = 1 if quick else 100
    cards: dict[str, dict] = {}
    models: dict[str, torch.nn.Module] = {}
    common = dict(architecture="diffusers.UNet2DModel (DDPM CIFAR-10 block layout, shrunk)",
                  unet_config=ZOO_UNET_CONFIG, scheduler="DDPMScheduler, DDPM CIFAR-10 config "
                  "(1000 steps, linear betas 1e-4..0.02, clip_sample, fixed_large, epsilon)",
                  data=dict(source="sklearn.datasets.load_digits (1797 8x8 images, values 0..16)",
                            preprocessing="bilinear upscale to 32x32 (align_corners=False, no antialias), "
                            "x/16 -> 0..255 uint8 (rounded), grey replicated to RGB, /127.5-1 -> [-1,1]",
                            train_images=int(x_train.shape[0]), val_images=int(x_val.shape[0]),
                            split=f"torch.randperm(1797, seed={args.seed}); first {NUM_VAL} = val",
                            reference=REFERENCE_NAME + " (all 1797 images)"),
                  loss_protocol=f"epsilon-MSE, t ~ U{{0..999}}, {eval_repeats} fixed (t, noise) draws per "
                  "image; val = held-out images, train_eval = first 256 train images",
                  device="cpu", threads=args.threads, versions=versions, command=cmd,
                  masking=dict(layout="row-major: weight viewed as (out, in*kh*kw), "
                               "groups of 4 consecutive elements",
                               excluded_layers=list(DEFAULT_EXCLUDE_LAYERS),
                               masked_layers="every Conv2d/Linear not matching excluded_layers "
                               "(listed under masked_layers; for dense: the layers the pruned models mask)"))

    # ---- (a) dense -------------------------------------------------------------------------
    unet = new_unet(args.seed)
    n_params = sum(p.numel() for p in unet.parameters())
    print(f"UNet: {n_params:,} parameters", flush=True)
    dense, info = train(unet, x_train, steps=steps, batch=batch, lr=args.lr, warmup=min(200, steps // 10),
                        seed=args.seed, ema_decay=0.995, log_every=log_every, tag="dense")
    timings["dense_train"] = info["wall_time_s"]
    models["dense"] = dense
    cards["dense"] = dict(name="dense", description="Dense tiny DDPM UNet trained from scratch on 32px "
                          "digits (EMA weights). The baseline of the demo zoo.", training=info,
                          nm_pattern=None, **losses_of(dense))
    save_model(dense, out / "dense")
    print(f"dense: {cards['dense']['val_loss']=:.4f}", flush=True)

    dense_state = {k: v.clone() for k, v in dense.state_dict().items()}
    dense_layers = masked_layers(dense)
    dense_w = {k: m.weight.detach().clone() for k, m in dense_layers.items()}

    def fine_tune(masks: dict, tag: str, seed_off: int, n_steps: int):
        u = new_unet(args.seed)
        u.load_state_dict(dense_state)
        return train(u, x_train, steps=n_steps, batch=batch, lr=args.lr * 0.5,
                     warmup=min(50, max(1, n_steps // 10)), seed=args.seed + seed_off,
                     ema_decay=0.995, masks=masks, log_every=log_every, tag=tag)

    def one_shot(masks: dict):
        u = new_unet(args.seed)
        u.load_state_dict(dense_state)
        lay = dict(u.named_modules())
        with torch.no_grad():
            for k, mk in masks.items():
                lay[k].weight.mul_(mk)
        return u

    # ---- (b) magnitude 2:4 -----------------------------------------------------------------
    t0 = time.time()
    mag_masks = {k: magnitude_nm_mask(w, N, M, "row") for k, w in dense_w.items()}
    mag_oneshot = losses_of(one_shot(mag_masks))
    mag, info = fine_tune(mag_masks, "magnitude_ft", 1, ft_steps)
    assert_strict_2of4(mag, "magnitude_2of4")
    models["magnitude_2of4"] = mag
    cards["magnitude_2of4"] = dict(
        name="magnitude_2of4", description="dense -> magnitude 2:4 (row-major) on the masked layers -> "
        "masked fine-tune (weights and EMA re-masked every step); zeros merged into the weights.",
        parent="dense", nm_pattern="2:4", fine_tune=info, one_shot_before_fine_tune=mag_oneshot,
        **losses_of(mag))
    save_model(mag, out / "magnitude_2of4")
    timings["magnitude_2of4"] = time.time() - t0

    # ---- (c) non-compliant -----------------------------------------------------------------
    t0 = time.time()
    nc_masks = noncompliant_masks(dense)
    nc, info = fine_tune(nc_masks, "noncompliant_ft", 2, nc_steps)
    models["noncompliant"] = nc
    st = sparsity_stats(nc)
    if not st["compliance_2of4_row"] < 0.5:
        raise AssertionError(f"noncompliant model is too 2:4 compliant: {st['compliance_2of4_row']:.3f}")
    cards["noncompliant"] = dict(
        name="noncompliant", description="NEGATIVE-TEST model: 50% sparse on the masked layers but "
        "deliberately NOT 2:4: per layer the weakest third of the row-major groups of 4 (by L2 norm) "
        "is emptied and every other group keeps its 3 largest |w| (3:4); then a shorter masked "
        "fine-tune (same recipe as magnitude_2of4). Meets a 50% sparsity target; 2:4 compliance ~0.33.",
        parent="dense", nm_pattern=None, fine_tune=info, **losses_of(nc))
    save_model(nc, out / "noncompliant")
    timings["noncompliant"] = time.time() - t0

    # ---- (d) MaskPro 2:4 (learned masks) ---------------------------------------------------
    t0 = time.time()
    mp_temperature, mp_lr, mp_samples, mp_momentum, mp_batch = 5.0, 0.02, 2, 0.9, batch
    probe = new_unet(args.seed)
    probe.load_state_dict(dense_state)
    probe.eval().requires_grad_(False)
    probe_layers = masked_layers(probe)
    g = torch.Generator().manual_seed(args.seed + 3)
    mp_batches = []
    for _ in range(mp_steps):
        idx = torch.randint(0, x_train.shape[0], (mp_batch,), generator=g)
        mp_batches.append((idx, torch.randint(0, 1000, (mp_batch,), generator=g),
                           torch.randn((mp_batch, 3, 32, 32), generator=g)))

    def mp_loss(masks: dict, step: int) -> float:
        mpt.apply_grouped_masks(probe_layers, dense_w, masks)
        idx, t, noise = mp_batches[step]
        with torch.no_grad():
            return float(diffusion_loss(probe, x_train[idx], t, noise))

    def cb(step, log):
        if (step + 1) % (1 if quick else 25) == 0 or step == 0:
            ch = [c for c in log.changed_vs_init if not math.isnan(c)]
            print(f"[maskpro] step {step + 1}/{mp_steps} sampled {log.sampled_loss[-1]:.4f} "
                  f"ref {log.reference_loss[-1]:.4f} baseline {log.baseline[-1]:+.5f} "
                  f"changed {ch[-1] if ch else 0:.4f} {time.time() - t0:.0f}s", flush=True)

    init_logits = {k: mpt.magnitude_logits(w, M, mp_temperature) for k, w in dense_w.items()}
    logits, mplog = mpt.learn_masks(mp_loss, init_logits, N, mp_steps, lr=mp_lr, num_samples=mp_samples,
                                    baseline_momentum=mp_momentum, reference="initial", optimizer="adam",
                                    generator=torch.Generator().manual_seed(args.seed + 4), callback=cb)
    learn_wall = time.time() - t0
    mp_grouped = {k: mpt.final_mask(v, N) for k, v in logits.items()}
    changed = 1.0 - mpt.masks_equal_fraction(mp_grouped, {k: mpt.group_view(v, M) for k, v in mag_masks.items()})
    mp_masks = {k: mpt.ungroup_view(v, dense_w[k].shape) for k, v in mp_grouped.items()}
    mp_oneshot = losses_of(one_shot(mp_masks))
    mp, info = fine_tune(mp_masks, "maskpro_ft", 1, ft_steps)   # same recipe and data order as magnitude_2of4
    assert_strict_2of4(mp, "maskpro_2of4")
    models["maskpro_2of4"] = mp
    mp_final = losses_of(mp)
    sl = mplog.sampled_loss
    k = max(1, len(sl) // 10)
    cards["maskpro_2of4"] = dict(
        name="maskpro_2of4", description="dense -> 2:4 masks LEARNED with MaskPro-style policy gradient "
        "(weights frozen; per-group logits (num_groups, 4) initialised from |w|; N-of-M sampled without "
        "replacement from softmax(logits) by Gumbel-top-k; REINFORCE on the diffusion loss with the "
        "loss residual vs the initial magnitude mask on the same minibatch minus a moving-average "
        "baseline; final mask = top-2 logits) -> the same masked fine-tune as magnitude_2of4 "
        "(same steps, lr, seed and data order); zeros merged into the weights.",
        parent="dense", nm_pattern="2:4",
        mask_learning=dict(steps=mp_steps, batch=mp_batch, optimizer="Adam on logits", lr=mp_lr,
                           samples_per_step=mp_samples, baseline="moving average (momentum "
                           f"{mp_momentum}) of L(sampled) - L(initial magnitude mask)",
                           init="logits = 5 * |w| / max|w| of the group (top-2 == magnitude mask)",
                           init_temperature=mp_temperature, wall_time_s=round(learn_wall, 1),
                           sampled_loss_first_10pct=float(np.mean(sl[:k])) if sl else None,
                           sampled_loss_last_10pct=float(np.mean(sl[-k:])) if sl else None,
                           groups_changed_vs_magnitude=changed,
                           code="maskpro_training.learn_masks"),
        one_shot_before_fine_tune=mp_oneshot, fine_tune=info, **mp_final)
    save_model(mp, out / "maskpro_2of4")
    timings["maskpro_2of4"] = time.time() - t0

    # honest comparison, recorded in both cards
    cmp = dict(equal_sparsity="2:4 on the same masked layers",
               one_shot_val_loss=dict(magnitude=mag_oneshot["val_loss"], maskpro=mp_oneshot["val_loss"]),
               one_shot_train_eval_loss=dict(magnitude=mag_oneshot["train_eval_loss"],
                                             maskpro=mp_oneshot["train_eval_loss"]),
               after_fine_tune_val_loss=dict(magnitude=cards["magnitude_2of4"]["val_loss"],
                                             maskpro=mp_final["val_loss"]),
               after_fine_tune_train_eval_loss=dict(magnitude=cards["magnitude_2of4"]["train_eval_loss"],
                                                    maskpro=mp_final["train_eval_loss"]),
               dense_val_loss=cards["dense"]["val_loss"])
    cmp["winner_after_fine_tune_val"] = ("maskpro" if mp_final["val_loss"] < cards["magnitude_2of4"]["val_loss"]
                                         else "magnitude")
    cmp["winner_one_shot_val"] = "maskpro" if mp_oneshot["val_loss"] < mag_oneshot["val_loss"] else "magnitude"
    cards["magnitude_2of4"]["comparison_magnitude_vs_maskpro"] = cmp
    cards["maskpro_2of4"]["comparison_magnitude_vs_maskpro"] = cmp

    # ---- samples, cards, ZOO.md ------------------------------------------------------------
    t0 = time.time()
    for name in MODEL_NAMES:
        ts = time.time()
        imgs = ddim_samples(models[name], n_samples, sample_steps, seed=0)
        save_grid(imgs, docs / f"{name}.png")
        print(f"samples {name}: {time.time() - ts:.0f}s", flush=True)
    timings["sampling"] = time.time() - t0
    total = time.time() - t_start
    date = _dt.date.today().isoformat()
    machine = f"{os.cpu_count()}-core CPU, {date}"
    for name in MODEL_NAMES:
        # reload from disk so the card describes exactly what was written
        from diffusers import UNet2DModel
        u = UNet2DModel.from_pretrained(str(out / name), subfolder="unet")
        st = sparsity_stats(u)
        if name in ("magnitude_2of4", "maskpro_2of4"):
            assert_strict_2of4(u, name)
        card = dict(cards[name])
        card.update(common)
        card["masking"] = dict(common["masking"], pattern={
            "dense": "none (dense)", "magnitude_2of4": "2:4 (magnitude)", "maskpro_2of4": "2:4 (learned, MaskPro)",
            "noncompliant": "50% unstructured-like (3:4 + emptied groups), NOT 2:4"}[name])
        card.update(params=n_params, weights_bytes=(out / name / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size,
                    masked_layers=list(st["per_layer"]), masked_layer_count=st["masked_layer_count"],
                    masked_params=st["masked_params"], sparsity_masked_layers=st["sparsity_masked_layers"],
                    sparsity_global=st["sparsity_global"], sparsity_global_definition="exact zeros / all parameters",
                    compliance_2of4_row=st["compliance_2of4_row"], per_layer=st["per_layer"],
                    sample_grid=f"docs/zoo/{name}.png (DDIM-{sample_steps}, eta 0, seed 0)",
                    machine=machine, build_total_wall_time_s=round(total, 1))
        cards[name] = card
        (out / name / "zoo_card.json").write_text(json.dumps(card, indent=2) + "\n")

    def train_time(name):
        c = cards[name]
        t = c.get("training", {}).get("wall_time_s", 0) + c.get("fine_tune", {}).get("wall_time_s", 0)
        t += c.get("mask_learning", {}).get("wall_time_s", 0)
        return t

    lines = ["# Demo model zoo", "",
             "Tiny DDPM UNets (diffusers `UNet2DModel`, DDPM CIFAR-10 block layout shrunk to "
             f"`block_out_channels={ZOO_UNET_CONFIG['block_out_channels']}`, layers_per_block 1) trained on "
             "CPU on scikit-learn's 8x8 digits upscaled to 32x32. Built by `scripts/build_demo_zoo.py`; "
             "every number below comes from that run. Each model folder has a `zoo_card.json`.", "",
             f"Command: `{cmd.strip()}`  ", f"Machine: {machine}  ",
             f"Total build wall time: {total / 60:.1f} min  ",
             f"Versions: torch {versions['torch']}, diffusers {versions['diffusers']}, scikit-learn {versions['sklearn']}", "",
             "| model | params | masked-layer sparsity | global sparsity | 2:4 compliance (row) | val loss | train-eval loss | train time |",
             "|---|---|---|---|---|---|---|---|"]
    for name in MODEL_NAMES:
        c = cards[name]
        lines.append(f"| `{name}` | {c['params']:,} | {c['sparsity_masked_layers']:.4f} | {c['sparsity_global']:.4f} | "
                     f"{c['compliance_2of4_row']:.4f} | {c['val_loss']:.4f} | {c['train_eval_loss']:.4f} | "
                     f"{train_time(name):.0f} s |")
    lines += ["", "Train time: dense = training from scratch; pruned models = their own fine-tune "
              "(maskpro also its mask learning), on top of the dense training.", "",
              "## Magnitude vs MaskPro (2:4, same masked layers)", "",
              "| | magnitude | maskpro |", "|---|---|---|",
              f"| val loss, one-shot (masks only) | {cmp['one_shot_val_loss']['magnitude']:.4f} | {cmp['one_shot_val_loss']['maskpro']:.4f} |",
              f"| val loss, after the same fine-tune | {cmp['after_fine_tune_val_loss']['magnitude']:.4f} | {cmp['after_fine_tune_val_loss']['maskpro']:.4f} |",
              f"| train-eval loss, one-shot | {cmp['one_shot_train_eval_loss']['magnitude']:.4f} | {cmp['one_shot_train_eval_loss']['maskpro']:.4f} |",
              f"| train-eval loss, after fine-tune | {cmp['after_fine_tune_train_eval_loss']['magnitude']:.4f} | {cmp['after_fine_tune_train_eval_loss']['maskpro']:.4f} |",
              "", f"Dense val loss: {cmp['dense_val_loss']:.4f}. MaskPro changed "
              f"{changed * 100:.2f}% of the 2:4 groups relative to the magnitude mask in {mp_steps} "
              "policy-gradient steps. Lower is better; the loss is the epsilon-MSE of the DDPM "
              "objective on fixed (t, noise) draws.", "",
              "`noncompliant` is a negative-test model: 50% sparse but deliberately not 2:4.", "",
              "Reference data: `digits_reference_32px.npz` (key `images`, uint8 (1797, 32, 32, 3)).", "",
              "## Timing (s)", ""] + [f"- {k}: {v:.1f}" for k, v in timings.items()] + [f"- total: {total:.1f}", ""]
    (out / "ZOO.md").write_text("\n".join(lines))

    print("\n==== timing summary ====")
    for k, v in timings.items():
        print(f"{k:>16}: {v:8.1f} s")
    print(f"{'total':>16}: {total:8.1f} s ({total / 60:.1f} min)")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"zoo size on disk: {size / 1e6:.2f} MB at {out}")
    for name in MODEL_NAMES:
        c = cards[name]
        print(f"{name:>16}: val {c['val_loss']:.4f} train-eval {c['train_eval_loss']:.4f} "
              f"sparsity(masked) {c['sparsity_masked_layers']:.3f} 2:4 compliance {c['compliance_2of4_row']:.3f}")
    print(f"OUT={out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
