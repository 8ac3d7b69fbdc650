#!/usr/bin/env python
"""Build the bundled demo model zoo (``src/maskpro_eval/demo_zoo/``): a small pruning study, on a GPU.

One command (``python scripts/build_demo_zoo.py``; ``--device cuda`` is picked when a GPU is there).
Seeded throughout: data order from a CPU generator, timesteps/noise from a generator on the training
device, so a rebuild on the same device kind draws the same stream. On a CPU it is bit-reproducible
(``torch.use_deterministic_algorithms``, one thread count); on a GPU it is not bitwise (cuDNN/atomics):
with ``torch.use_deterministic_algorithms`` a dense step took 70 ms on an H200 (14 it/s), without it
43 ms (23 it/s, batch 256), so the GPU build leaves it off. What it trains, on scikit-learn's 8x8 digits
upscaled to 32x32 (split once: ``test`` held out from everything, ``val`` for curves and best-epoch
choice, ``train`` for training):

* ``dense``               -- trained from scratch to convergence; EMA weights (as DDPM).
* ``magnitude_2of4``      -- one-shot magnitude 2:4 (row-major groups) on the masked layers, no training.
* ``maskpro_2of4``        -- MaskPro as its paper runs it: weights frozen, only the N:M mask distribution
  learned (per-group logits over the M entries, N drawn without replacement, REINFORCE with the
  loss-residual baseline); deployed mask = top-N logits.
* ``magnitude_2of4_ft`` / ``maskpro_2of4_ft`` -- each followed by the same masked fine-tune budget.
* ``noncompliant``        -- negative-test model: 50% sparse, deliberately not 2:4.
* ``maskpro_run/``        -- the MaskPro mask-learning run as the trainer writes it (checkpoint_epoch_*.pt,
  best_checkpoint.pt, maskpro_state_epoch_*.pt with its training_logs) over ``maskpro_run/pruned_model``.
* ``digits_heldout_32px.npz`` -- the held-out test digits (the demo FID reference), ``MANIFEST.json``
  (sha256 of every file), ``ZOO.md``, ``training_curve.json``.

Weights ship as float16 safetensors (diffusers restores float32 on load); every number in the cards is
measured on the reloaded shipped weights. Grids (``docs/zoo/``) come from the suite's own sampler and seed
rule: ``--grids`` (CPU is fine) after a build.

Usage::

    python scripts/build_demo_zoo.py                         # the real zoo (GPU; on one H200, 2026-12-04: dense
                                                             # 9k steps 572 s with --curve-samples 200; then, as
                                                             # parallel --stages processes, MaskPro 199 s and the
                                                             # 4k-step fine-tunes 240-270 s at 14-17 it/s)
    python scripts/build_demo_zoo.py --grids                 # docs/zoo/*.png from the bundled zoo
    python scripts/build_demo_zoo.py --smoke                 # a few steps of everything, CPU, temp dir
    python scripts/build_demo_zoo.py --work W --resume       # continue a build whose stages are in W
"""
from __future__ import annotations

import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # deterministic cuBLAS (before torch/CUDA init)

import argparse  # noqa: E402
import copy  # noqa: E402
import datetime as _dt  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import maskpro_training as mpt  # noqa: E402
from maskpro_eval.analysis.layers import DEFAULT_EXCLUDE_LAYERS  # noqa: E402
from maskpro_eval.analysis.nm import magnitude_nm_mask, nm_compliance  # noqa: E402
from maskpro_eval.checkpoints.architecture import DDPM_CIFAR10_SCHEDULER_CONFIG, DDPM_CIFAR10_UNET_CONFIG  # noqa: E402

#: The zoo's UNet: DDPM CIFAR-10 block types and 32x32x3 I/O, narrower (665,907 parameters).
ZOO_UNET_CONFIG: dict = {**DDPM_CIFAR10_UNET_CONFIG, "layers_per_block": 1, "block_out_channels": (16, 32, 48, 48),
                         "norm_num_groups": 8, "dropout": 0.3}
DENSE_BATCH, DENSE_LR, FT_LR = 512, 1.5e-3, 2e-4
STAGES = ("dense", "maskpro_2of4", "magnitude_2of4_ft", "maskpro_2of4_ft", "dense_ft", "noncompliant")
N, M = 2, 4
REFERENCE_NAME = "digits_heldout_32px.npz"
NUM_TEST, NUM_VAL = 397, 140          # 1797 = 397 held-out test + 140 val + 1260 train
MODEL_NAMES = ("dense", "magnitude_2of4", "maskpro_2of4", "magnitude_2of4_ft", "maskpro_2of4_ft", "noncompliant")
RUN_DIR = "maskpro_run"
RUN_BASE = "pruned_model"
KEEP_EPOCHS = 2                       # trainer keeps only the last few epoch checkpoints

#: Step budgets (real build, smoke build).
BUDGETS = {"dense_steps": (9000, 4), "finetune_steps": (4000, 2), "dense_finetune_steps": (2000, 2),
           "noncompliant_steps": (800, 2),
           "maskpro_steps": (1200, 4), "maskpro_epochs": (8, 2), "maskpro_samples": (4, 2)}


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


def split_indices(n: int, seed: int) -> dict[str, np.ndarray]:
    """``test`` (held out from training and selection), ``val`` (curves, best epoch), ``train``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    return {"test": np.sort(perm[:NUM_TEST]), "val": np.sort(perm[NUM_TEST:NUM_TEST + NUM_VAL]),
            "train": np.sort(perm[NUM_TEST + NUM_VAL:])}


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
def new_unet(seed: int, device, **overrides):
    """The zoo UNet (``ZOO_UNET_CONFIG`` with ``overrides``, e.g. ``dropout``), initialised from ``seed``."""
    from diffusers import UNet2DModel
    torch.manual_seed(seed)
    return UNet2DModel(**{**ZOO_UNET_CONFIG, **overrides}).to(device)


def masked_layers(unet) -> dict:
    return mpt.maskable_layers(unet, M, DEFAULT_EXCLUDE_LAYERS)


_ACP: dict = {}


def alphas_cumprod(device) -> torch.Tensor:
    key = str(device)
    if key not in _ACP:
        from diffusers import DDPMScheduler
        _ACP[key] = DDPMScheduler(**DDPM_CIFAR10_SCHEDULER_CONFIG).alphas_cumprod.float().to(device)
    return _ACP[key]


def diffusion_loss(unet, x0, t, noise) -> torch.Tensor:
    a = alphas_cumprod(x0.device)[t].view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
    return F.mse_loss(unet(xt, t).sample, noise)


@torch.no_grad()
def eval_loss(unet, x: torch.Tensor, repeats: int, seed: int, batch: int = 512) -> float:
    """Mean epsilon-MSE over ``repeats`` fixed (t, noise) draws per image (drawn on the CPU)."""
    was_training = unet.training
    unet.eval()
    total, count = 0.0, 0
    dev = x.device
    for r in range(repeats):
        g = torch.Generator().manual_seed(seed + r)
        t = torch.randint(0, 1000, (x.shape[0],), generator=g).to(dev)
        noise = torch.randn(x.shape, generator=g).to(dev)
        for i in range(0, x.shape[0], batch):
            sl = slice(i, i + batch)
            n = x[sl].shape[0]
            total += float(diffusion_loss(unet, x[sl], t[sl], noise[sl])) * n
            count += n
    unet.train(was_training)
    return total / count


def train(unet, data: torch.Tensor, *, steps: int, batch: int, lr: float, warmup: int, seed: int,
          ema_decay: float, masks: dict | None = None, log_every: int = 500, tag: str = "train",
          curve_every: int = 0, val: torch.Tensor | None = None, on_curve=None, val_repeats: int = 2,
          state_file: Path | None = None, save_every: int = 1000, deadline: float | None = None):
    """AdamW + linear warmup + cosine decay (to lr/10), grad-clip 1, EMA; masks kept applied.

    Returns ``(ema_unet, info)``. ``masks``: name -> bool weight-shaped mask (re-applied to the
    gradients before and to the weights after every optimizer step; the EMA stays masked too).
    ``curve_every``: every that many steps the EMA model's val loss (``val_repeats`` fixed draws per image)
    goes into ``info["curve"]``, and ``on_curve(entry, ema)`` is called (best-val snapshots, sweeps).
    Minibatch order comes from a CPU generator; timesteps and noise from a generator on the training
    device (the same stream for the same device kind).
    ``state_file``: every ``save_every`` steps the whole loop state (weights, EMA, optimizer, generator
    states, data position, logs) is saved there, and a call that finds it continues from it, so a run cut
    into several invocations is the run made in one. ``deadline`` (``time.time()`` value): stop there,
    save, and return ``info["complete"] = False``.
    """
    dev = data.device
    layers = dict(unet.named_modules())
    if masks:
        masks = {k: v.to(dev) for k, v in masks.items()}
        with torch.no_grad():
            for k, mk in masks.items():
                layers[k].weight.mul_(mk)
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    kw = {"fused": True} if dev.type == "cuda" else {}
    opt = torch.optim.AdamW(unet.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=0.0, **kw)
    g = torch.Generator().manual_seed(seed)                      # data order (CPU)
    gd = g if dev.type == "cpu" else torch.Generator(device=dev).manual_seed(seed + 7919)   # t, noise
    n = data.shape[0]
    perm, pos = torch.randperm(n, generator=g), 0
    losses, curve, t0, smooth = [], [], time.time(), None
    start, wall_before = 0, 0.0
    if state_file is not None and Path(state_file).is_file():
        st = torch.load(state_file, map_location="cpu", weights_only=False)
        if st["steps"] != steps or st["batch"] != batch:
            raise SystemExit(f"{state_file}: a partial run of {st['steps']} steps at batch {st['batch']}, not "
                             f"{steps} at batch {batch}; delete it to start over or give the same budget")
        unet.load_state_dict(st["unet"])
        ema.load_state_dict(st["ema"])
        opt.load_state_dict(st["opt"])
        g.set_state(st["g"])
        if gd is not g:
            gd.set_state(st["gd"])
        perm, pos, start, losses, curve, smooth = st["perm"], st["pos"], st["step"], st["losses"], st["curve"], st["smooth"]
        wall_before = st["wall"]
        if st.get("rng_cpu") is not None:
            torch.set_rng_state(st["rng_cpu"])
        if st.get("rng_cuda") is not None and dev.type == "cuda":
            torch.cuda.set_rng_state(st["rng_cuda"], dev)
        print(f"[{tag}] resumed at step {start}/{steps} from {state_file}", flush=True)

    def save_state(step_done: int) -> None:
        tmp = Path(state_file).with_suffix(".tmp")
        torch.save({"steps": steps, "batch": batch, "unet": unet.state_dict(), "ema": ema.state_dict(),
                    "opt": opt.state_dict(), "g": g.get_state(), "gd": gd.get_state() if gd is not g else None,
                    "perm": perm, "pos": pos, "step": step_done, "losses": losses, "curve": curve,
                    "smooth": smooth, "wall": wall_before + time.time() - t0,
                    # the global generators drive dropout: without them a resumed run would restart its
                    # dropout stream from the seed's state instead of continuing it
                    "rng_cpu": torch.get_rng_state(),
                    "rng_cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None}, tmp)
        os.replace(tmp, state_file)

    complete = True
    unet.train()
    for step in range(start, steps):
        if deadline is not None and time.time() > deadline:
            complete = False
            if state_file is not None:
                save_state(step)
            print(f"[{tag}] time budget reached at step {step}/{steps}; state saved to {state_file}", flush=True)
            break
        if pos + batch > n:
            perm, pos = torch.randperm(n, generator=g), 0
        idx = perm[pos:pos + batch]
        pos += batch
        x0 = data[idx.to(dev)]
        t = torch.randint(0, 1000, (batch,), generator=gd, device=dev)
        noise = torch.randn(x0.shape, generator=gd, device=dev)
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
            torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in unet.parameters()], 1 - d)
        if log_every and ((step + 1) % log_every == 0 or step == 0 or step == steps - 1):
            lv = float(loss.detach())
            losses.append((step + 1, lv))
            smooth = lv if smooth is None else 0.8 * smooth + 0.2 * lv
            el = time.time() - t0
            print(f"[{tag}] step {step + 1}/{steps} loss {lv:.4f} (smoothed {smooth:.4f}) lr {cur_lr:.2e} "
                  f"{(step + 1 - start) / el:.1f} it/s, {el + wall_before:.0f}s", flush=True)
        if curve_every and val is not None and ((step + 1) % curve_every == 0 or step == steps - 1):
            curve.append({"step": step + 1, "train_loss_last": float(loss.detach()),
                          "val_loss_ema": eval_loss(ema, val, val_repeats, seed=10_000),
                          "wall_s": round(wall_before + time.time() - t0, 1)})
            print(f"[{tag}] curve step {step + 1}: val loss (EMA) {curve[-1]['val_loss_ema']:.5f}", flush=True)
            if on_curve is not None:
                on_curve(curve[-1], ema)
        if state_file is not None and save_every and (step + 1) % save_every == 0 and step + 1 < steps:
            save_state(step + 1)
    wall = wall_before + time.time() - t0
    if masks:
        ema_layers = dict(ema.named_modules())
        with torch.no_grad():
            for k, mk in masks.items():
                ema_layers[k].weight.mul_(mk)
    info = dict(steps=steps, batch=batch, lr=lr, warmup_steps=warmup, lr_schedule="linear warmup + cosine to lr/10",
                optimizer="AdamW(betas=(0.9,0.999), weight_decay=0)", grad_clip=1.0, ema_decay=ema_decay,
                ema_warmup="decay = min(ema_decay, (1+step)/(10+step))", seed=seed,
                logged_train_loss=losses, wall_time_s=round(wall, 1),
                steps_per_s=round(steps / wall, 2) if wall > 0 else None, complete=complete)
    if curve:
        info["curve"] = curve
    return ema, info


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


def save_pipeline_fp16(unet, path: Path) -> None:
    """A diffusers DDPMPipeline folder with float16 safetensors weights (loads back as float32)."""
    from diffusers import DDPMPipeline, DDPMScheduler
    if path.exists():
        shutil.rmtree(path)
    half = copy.deepcopy(unet).to("cpu").half()
    DDPMPipeline(unet=half, scheduler=DDPMScheduler(**DDPM_CIFAR10_SCHEDULER_CONFIG)).save_pretrained(
        str(path), safe_serialization=True)


def reload_unet(path: Path, device):
    from diffusers import UNet2DModel
    return UNet2DModel.from_pretrained(str(path), subfolder="unet").to(device).float()


def noncompliant_masks(unet) -> dict:
    """50%-sparse masks that are deliberately far from 2:4 (row-major).

    Per masked layer, groups of 4 (row-major) are ranked by L2 norm; the weakest third of the
    groups is zeroed entirely and every other group keeps its 3 largest |w| (3:4). Sparsity is
    (4*G/3 + 2*G/3) / (4*G) = 50%, but only the emptied groups (~1/3) hold <= 2 non-zeros, so the
    2:4 compliance is ~0.33 -- the sparsity target is met while the N:M pattern is not.
    """
    out = {}
    for k, mod in masked_layers(unet).items():
        w = mod.weight.detach().cpu()
        g = mpt.group_view(w.abs(), M)
        keep = torch.zeros_like(g, dtype=torch.bool)
        keep.scatter_(1, g.topk(3, dim=1).indices, True)
        norms = g.pow(2).sum(1)
        k_empty = round(g.shape[0] / 3)
        order = torch.sort(norms, stable=True).indices
        keep[order[:k_empty]] = False
        out[k] = mpt.ungroup_view(keep, w.shape)
    return out


def _stage_devices(cards: dict) -> dict[str, list[str]]:
    """``{device name: [stages built on it]}`` from the cards' ``built_on`` records (one-shot models have none)."""
    out: dict[str, list[str]] = {}
    for name, c in cards.items():
        for key, label in (("built_on", name), ("fine_tune_built_on", f"{name} polish")):
            if c.get(key):
                out.setdefault(c[key]["device_name"], []).append(label)
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(out: Path) -> dict:
    files = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and p.name != "MANIFEST.json" and not rel.startswith((".work/", "docs/")):
            files[rel] = {"sha256": sha256(p), "bytes": p.stat().st_size}
    manifest = {"files": files, "total_bytes": sum(f["bytes"] for f in files.values())}
    (out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


# ------------------------------------------------------------------------------------------------
# MaskPro run (trainer format)
# ------------------------------------------------------------------------------------------------
def trainer_state_dict(unet, dense_w: dict, logits: dict, current: dict) -> dict:
    """``model_state_dict`` of the MaskPro trainer: wrapped layers (original_layer.*, mask_logits,
    current_mask), float16 (current_mask bool) to fit the repo; every other tensor under its plain name."""
    sd = {}
    layers = set(dense_w)
    for k, v in unet.state_dict().items():
        layer, _, leaf = k.rpartition(".")
        if layer in layers:
            sd[f"{layer}.original_layer.{leaf}"] = (dense_w[layer] if leaf == "weight" else v).detach().cpu().half()
        else:
            sd[k] = v.detach().cpu().half()
    for layer in sorted(layers):
        shape = dense_w[layer].shape
        sd[f"{layer}.mask_logits"] = logits[layer].detach().cpu().half()
        sd[f"{layer}.current_mask"] = mpt.ungroup_view(current[layer].cpu(), shape)   # bool: 1 byte/entry
    return sd


def training_config(seed: int, steps: int, epochs: int, lr: float, batch: int, samples: int) -> dict:
    return {"model": {"pruned_model_path": f"{RUN_DIR}/{RUN_BASE}", "n": N, "m": M,
                      "target_layers": [".*conv.*", ".*linear.*", ".*to_[qkv].*", ".*proj.*", ".*to_out.*",
                                        ".*time_emb_proj.*"],
                      "exclude_layers": list(DEFAULT_EXCLUDE_LAYERS)},
            "training": {"epochs": epochs, "steps": steps, "steps_per_epoch": steps // epochs, "batch_size": batch,
                         "mask_lr": lr, "mask_optimizer": "adam", "model_lr": 0.0, "freeze_weights": True,
                         "samples_per_step": samples, "seed": seed},
            "maskpro": {"estimator": "REINFORCE", "baseline": "loss residual vs the initial (magnitude) mask on "
                        "the same minibatch, minus its moving average", "init": "magnitude logits",
                        "sampling": "N of M without replacement (Gumbel-top-k)"}}


# ------------------------------------------------------------------------------------------------
# grids (the suite's own sampler and seed rule)
# ------------------------------------------------------------------------------------------------
def make_grids(zoo_dir: Path, docs: Path, count: int = 64, steps: int | None = None, device: str = "cpu") -> dict:
    """``docs/<name>.png``: samples 0..count-1 of each zoo model by ``maskpro_eval.sampling.standard.generate``
    (DDIM, eta 0, seed 0: the full tier's protocol); ``docs/heldout.png``: the first held-out digits."""
    from maskpro_eval.checkpoints.load import load_checkpoint
    from maskpro_eval.sampling.config import SamplingConfig
    from maskpro_eval.sampling.standard import generate
    timings = {}
    with np.load(zoo_dir / REFERENCE_NAME) as d:
        save_grid(d["images"][:count], docs / "heldout.png")
    cfg = SamplingConfig(sampler="ddim", num_inference_steps=steps, eta=0.0, seed=0, batch_size=count, device=device)
    for name in MODEL_NAMES:
        t0 = time.time()
        ck = load_checkpoint(zoo_dir / name)
        imgs = generate(ck.unet, cfg, count=count, start=0, scheduler_config=ck.scheduler, progress=False)
        save_grid(imgs, docs / f"{name}.png")
        timings[name] = round(time.time() - t0, 1)
        print(f"grid {name}: {timings[name]}s", flush=True)
    return timings


def plot_curve(curve_json: Path, png: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    data = json.loads(curve_json.read_text())
    quality = data.get("dense_sample_quality") or []
    fig, axes = plt.subplots(1, 3 if quality else 2, figsize=(15 if quality else 10, 3.6))
    dc = data["dense"]
    axes[0].plot([c["step"] for c in dc], [c["val_loss_ema"] for c in dc], "o-", label="val loss (EMA weights)")
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("epsilon-MSE")
    axes[0].set_yscale("log")
    axes[0].set_title("dense training (val split)")
    axes[0].legend()
    if quality:
        ax = axes[2]
        ax.plot([q["step"] for q in quality], [q["kid"] for q in quality], "o-", label="KID")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel("KID vs held-out digits (log)")
        ax2 = ax.twinx()
        ax2.plot([q["step"] for q in quality], [q["fid"] for q in quality], "s--", color="C1", label="FID")
        ax2.set_ylabel("FID (N=200, biased)")
        ax.set_title(f"dense EMA samples (suite sampler, N={quality[0]['n']})")
        ax.legend(loc="upper center")
        ax2.legend(loc="upper right")
    mp = data["maskpro"]
    axes[1].plot([e["epoch"] for e in mp], [e["val_loss"] for e in mp], "o-", label="val loss (top-2 mask)")
    axes[1].plot([e["epoch"] for e in mp], [e["mask_sampled_loss"] for e in mp], "s--", label="sampled masks (train)")
    axes[1].set_xlabel("MaskPro epoch")
    axes[1].set_title("MaskPro mask learning (weights frozen)")
    axes[1].legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=90)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------
class _Incomplete(Exception):
    """The dense training stopped at --time-budget (its state is saved)."""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=None, help="zoo directory (default: src/maskpro_eval/demo_zoo; "
                    "with --smoke a temp dir)")
    ap.add_argument("--docs", type=Path, default=None, help="grid/curve PNG directory (default docs/zoo; "
                    "with --smoke OUT/docs)")
    ap.add_argument("--work", type=Path, default=None, help="stage states (float32) for --resume (default .zoo_work; --smoke: OUT/.work)")
    ap.add_argument("--resume", action="store_true", help="skip the stages whose states are in --work")
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cuda or cpu")
    for key, (real, _smoke) in BUDGETS.items():
        ap.add_argument("--" + key.replace("_", "-"), type=int, default=None, help=f"default {real}")
    ap.add_argument("--batch", type=int, default=256, help="batch of the fine-tunes and of MaskPro")
    ap.add_argument("--dense-batch", type=int, default=None, help=f"batch of the dense training (default {DENSE_BATCH}; "
                    "--smoke: --batch)")
    ap.add_argument("--lr", type=float, default=None, help=f"dense learning rate (default {DENSE_LR}; fine-tunes "
                    "use 2e-4)")
    ap.add_argument("--dropout", type=float, default=ZOO_UNET_CONFIG["dropout"],
                    help=f"ResnetBlock2D dropout while training (default {ZOO_UNET_CONFIG['dropout']})")
    ap.add_argument("--time-budget", type=float, default=None, metavar="S",
                    help="stop the dense training after S seconds of this invocation, save its state in --work and "
                    "exit 3; --resume continues it exactly")
    ap.add_argument("--curve-samples", type=int, default=0, metavar="N",
                    help="also draw N suite samples at every dense curve point into WORK/dense_curve_samples.npz")
    ap.add_argument("--stages", default=None, help="comma list: run only these stages (reusing the others' saved "
                    "states from --work), no export; lets independent stages run as parallel processes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="CPU torch threads (bit-reproducible per thread count)")
    ap.add_argument("--grids", action="store_true", help="only make docs/zoo grids from the zoo at --out (suite sampler)")
    ap.add_argument("--grid-steps", type=int, default=None, help="DDIM steps of the grids (default 100)")
    ap.add_argument("--smoke", "--quick-check", dest="smoke", action="store_true",
                    help="a few steps of everything on the CPU into a temp dir (tests)")
    args = ap.parse_args(argv)

    smoke = args.smoke
    out = args.out or (Path(tempfile.mkdtemp(prefix="demo_zoo_smoke_")) if smoke else REPO / "src" / "maskpro_eval" / "demo_zoo")
    docs = args.docs or (out / "docs" if smoke else REPO / "docs" / "zoo")
    import diffusers
    diffusers.utils.logging.set_verbosity_error()
    if args.grids:
        make_grids(out, docs, steps=args.grid_steps)
        if (out / "training_curve.json").is_file():
            plot_curve(out / "training_curve.json", docs / "training_curve.png")
        return 0

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if smoke:
        device = torch.device("cpu") if args.device == "auto" else device
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    b = {k: (getattr(args, k) if getattr(args, k) is not None else (v[1] if smoke else v[0])) for k, v in BUDGETS.items()}
    batch = 8 if smoke and args.batch == 256 else args.batch
    dense_batch = args.dense_batch or (batch if smoke else DENSE_BATCH)
    dense_lr = args.lr if args.lr is not None else DENSE_LR
    ZOO_UNET_CONFIG["dropout"] = float(args.dropout)
    only = None if args.stages is None else [x.strip() for x in args.stages.split(",") if x.strip()]
    if only is not None and (not only or set(only) - set(STAGES)):
        ap.error(f"--stages: expected a comma list of {', '.join(STAGES)}; got {args.stages!r}")
    deadline = None if args.time_budget is None else time.time() + args.time_budget
    eval_repeats = 1 if smoke else 4
    work = args.work or (out / ".work" if smoke else REPO / ".zoo_work")
    out.mkdir(parents=True, exist_ok=True)
    docs.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)

    torch.backends.cudnn.benchmark = False
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)   # bit-reproducible for one thread count
    else:
        # Seeded, same data order and noise stream per device kind; NOT bitwise deterministic: under
        # torch.use_deterministic_algorithms a training step took 70 ms on an H200 (14 it/s) instead of ~10.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    nondeterministic: list[str] = []
    warnings.showwarning = (lambda msg, *a, **k: nondeterministic.append(str(msg)[:200]))
    torch.manual_seed(args.seed)
    import sklearn
    versions = dict(torch=torch.__version__, diffusers=diffusers.__version__, sklearn=sklearn.__version__,
                    numpy=np.__version__, python=platform.python_version(),
                    cuda=torch.version.cuda if device.type == "cuda" else None)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    cmd = " ".join(["python scripts/build_demo_zoo.py", *(argv if argv is not None else sys.argv[1:])])
    t_start = time.time()
    timings: dict[str, float] = {}
    print(f"device: {device} ({device_name}); torch {torch.__version__}; budgets {b}; batch {batch}", flush=True)

    # ---- data ------------------------------------------------------------------------------
    u8 = digits_uint8()
    sp = split_indices(len(u8), args.seed)
    np.savez_compressed(out / REFERENCE_NAME, images=u8[sp["test"]], indices=sp["test"])
    x_all = to_model_space(u8)
    x_train, x_val, x_test = (x_all[sp[k]].to(device) for k in ("train", "val", "test"))
    if smoke:
        x_train, x_val, x_test = x_train[:64], x_val[:16], x_test[:16]
    data_card = dict(source="sklearn.datasets.load_digits (1797 8x8 images, values 0..16)",
                     preprocessing="bilinear upscale to 32x32 (align_corners=False, no antialias), x/16 -> 0..255 "
                     "uint8 (rounded), grey replicated to RGB, /127.5-1 -> [-1,1]",
                     split=f"torch.randperm(1797, seed={args.seed}): first {NUM_TEST} = test (held out: no model "
                     f"trains on it or is chosen by it; the demo FID reference), next {NUM_VAL} = val (curves, best "
                     "epoch), rest = train", train_images=int(x_train.shape[0]), val_images=int(x_val.shape[0]),
                     test_images=int(x_test.shape[0]), reference=f"{REFERENCE_NAME} (key images: the {NUM_TEST} test "
                     "images; key indices: their load_digits indices)")

    def losses_of(unet) -> dict:
        return dict(val_loss=eval_loss(unet, x_val, eval_repeats, seed=10_000),
                    test_loss=eval_loss(unet, x_test, eval_repeats, seed=30_000),
                    train_eval_loss=eval_loss(unet, x_train[:256], eval_repeats, seed=20_000))

    log_every = 1 if smoke else (1000 if device.type == "cuda" else 100)
    cards: dict[str, dict] = {}
    stage_file = lambda name: work / f"{name}.pt"  # noqa: E731

    def stage(name: str, fn):
        """Run ``fn() -> (state_dict, card)`` or reuse its saved float32 state (``--resume``, or a stage left
        out of ``--stages``: then ``(None, None, None)`` when it has no saved state)."""
        path = stage_file(name)
        skipped = only is not None and name not in only
        if skipped and not path.is_file():
            print(f"{name}: not in --stages and no saved state; skipped", flush=True)
            return None, None, None
        if skipped or (args.resume and path.is_file()):
            saved = torch.load(path, map_location="cpu", weights_only=False)
            print(f"{name}: reused stage state {path}", flush=True)
            return saved["state"], saved["card"], saved.get("extra")
        t0 = time.time()
        state, card, extra = fn()
        timings[name] = round(time.time() - t0, 1)
        card["built_on"] = dict(device=device.type, device_name=device_name, versions=versions, command=cmd.strip(),
                                date=_dt.date.today().isoformat(), wall_s=timings[name],
                                batch=dense_batch if name == "dense" else batch)
        tmp = path.with_suffix(".tmp")
        torch.save({"state": state, "card": card, "extra": extra}, tmp)
        os.replace(tmp, path)
        return state, card, extra

    # ---- dense -----------------------------------------------------------------------------
    def dense_stage():
        partial = work / "dense.partial.pt"
        if not args.resume and partial.is_file():
            partial.unlink()          # a fresh build does not continue an earlier one
        unet = new_unet(args.seed, device)
        curve_samples: dict = {}
        if args.resume and partial.is_file() and (work / "dense_curve_samples.npz").is_file():
            with np.load(work / "dense_curve_samples.npz") as d:      # the points drawn before the cut
                curve_samples.update({k: d[k] for k in d.files if k != "meta"})

        def on_curve(entry, ema):
            # the suite's sampler (DDIM-100, seed 0, samples 0..N-1) at every curve point: FID/KID vs step
            # afterwards (scripts/dense_sweep.py score WORK/dense_curve_samples.npz)
            if not args.curve_samples:
                return
            from maskpro_eval.sampling.config import SamplingConfig
            from maskpro_eval.sampling.standard import generate
            cfg = SamplingConfig(sampler="ddim", eta=0.0, seed=0, batch_size=args.curve_samples, device=str(device))
            curve_samples[f"ddim100_step{entry['step']}"] = generate(ema, cfg, count=args.curve_samples, start=0,
                                                                    progress=False)
            meta = {"variant": "dense", "snapshots": [entry]}
            np.savez_compressed(work / "dense_curve_samples.npz", meta=np.array(json.dumps(meta)), **curve_samples)

        ema, info = train(unet, x_train, steps=b["dense_steps"], batch=dense_batch, lr=dense_lr,
                          warmup=min(500, b["dense_steps"] // 10), seed=args.seed, ema_decay=0.9995,
                          log_every=log_every, tag="dense", curve_every=max(1, b["dense_steps"] // 12), val=x_val,
                          state_file=partial, deadline=deadline,
                          on_curve=on_curve)
        if not info["complete"]:
            raise _Incomplete()
        info["dropout"] = float(args.dropout)
        return {k: v.detach().cpu().clone() for k, v in ema.state_dict().items()}, {"training": info}, None

    try:
        dense_state, dense_card, _ = stage("dense", dense_stage)
    except _Incomplete:
        print(f"dense: stopped by --time-budget; continue with --resume --work {work} (same budgets)", flush=True)
        return 3
    if dense_state is None:
        raise SystemExit("dense: no saved dense stage in --work; run the dense stage first")
    cards["dense"] = dict(name="dense", description="Dense DDPM UNet trained from scratch on the 32px digits "
                          "(train split), EMA weights, then the same fine-tune as the *_ft models (unmasked). The "
                          "baseline of the demo zoo. The pruned models start from it before that fine-tune "
                          f"(= {RUN_DIR}/{RUN_BASE}).", nm_pattern=None, **dense_card)

    def from_dense():
        u = new_unet(args.seed, device)
        u.load_state_dict(dense_state)
        return u

    dense_w = {k: mod.weight.detach().clone() for k, mod in masked_layers(from_dense()).items()}

    def masked_copy(masks: dict):
        u = from_dense()
        lay = dict(u.named_modules())
        with torch.no_grad():
            for k, mk in masks.items():
                lay[k].weight.mul_(mk.to(device))
        return u

    # ---- magnitude 2:4, one shot ---------------------------------------------------------------
    mag_masks = {k: magnitude_nm_mask(w.cpu(), N, M, "row") for k, w in dense_w.items()}
    mag_state = {k: v.cpu() for k, v in masked_copy(mag_masks).state_dict().items()}
    cards["magnitude_2of4"] = dict(name="magnitude_2of4", parent="dense", nm_pattern="2:4", description=(
        "dense -> one-shot magnitude 2:4 (row-major groups of 4: keep the 2 largest |w|) on the masked "
        "layers; no training."))

    # ---- MaskPro 2:4: weights frozen, mask distribution learned ---------------------------------
    mp_lr, mp_samples, mp_momentum, mp_temp = 0.02, b["maskpro_samples"], 0.9, 5.0
    steps_per_epoch = max(1, b["maskpro_steps"] // b["maskpro_epochs"])

    def maskpro_stage():
        probe = from_dense().eval().requires_grad_(False)
        probe_layers = masked_layers(probe)
        g = torch.Generator().manual_seed(args.seed + 3)
        gd = g if device.type == "cpu" else torch.Generator(device=device).manual_seed(args.seed + 5)
        cache: dict = {}

        def minibatch(step):
            if step not in cache:
                cache.clear()
                idx = torch.randint(0, x_train.shape[0], (batch,), generator=g)
                cache[step] = (x_train[idx.to(device)], torch.randint(0, 1000, (batch,), generator=gd, device=device),
                               torch.randn((batch, 3, 32, 32), generator=gd, device=device))
            return cache[step]

        dense_dev = {k: v.to(device) for k, v in dense_w.items()}

        def mp_loss(masks: dict, step: int) -> float:
            mpt.apply_grouped_masks(probe_layers, dense_dev, masks)
            x0, t, noise = minibatch(step)
            with torch.no_grad():
                return float(diffusion_loss(probe, x0, t, noise))

        def val_of(masks: dict) -> float:
            mpt.apply_grouped_masks(probe_layers, dense_dev, masks)
            return eval_loss(probe, x_val, 2, seed=10_000)

        logits = {k: mpt.magnitude_logits(w, M, mp_temp) for k, w in dense_dev.items()}
        init_top = {k: mpt.final_mask(v, N) for k, v in logits.items()}
        logs, epochs, t0 = [], [], time.time()
        gen = torch.Generator(device=device).manual_seed(args.seed + 4)
        best = None
        last_drawn = init_top
        stopped_early = False
        for epoch in range(1, b["maskpro_epochs"] + 1):
            if deadline is not None and epochs and time.time() > deadline:
                stopped_early = True      # --time-budget: the run ends after the last whole epoch (recorded)
                print(f"[maskpro] time budget reached after epoch {epoch - 1}", flush=True)
                break
            # one epoch = steps_per_epoch policy-gradient steps; learn_masks continues exactly (logits, Adam
            # state, baseline), so the epochs are one run cut in pieces.
            offset = (epoch - 1) * steps_per_epoch
            logits, log = mpt.learn_masks(lambda mk, s: mp_loss(mk, offset + s), logits, N, steps_per_epoch,
                                          lr=mp_lr, num_samples=mp_samples, baseline_momentum=mp_momentum,
                                          reference=init_top, optimizer="adam", generator=gen,
                                          resume=epochs[-1]["resume"] if epochs else None)
            last_drawn = {k: mpt.sample_nm_mask(v, N, gen) for k, v in logits.items()}
            top = {k: mpt.final_mask(v, N) for k, v in logits.items()}
            entry = {"epoch": epoch, "step": epoch * steps_per_epoch,
                     "mask_sampled_loss": float(np.mean(log.sampled_loss)),
                     "reference_loss": float(np.mean(log.reference_loss)),
                     "val_loss": val_of(top),
                     "changed_vs_magnitude": 1.0 - mpt.masks_equal_fraction(top, init_top),
                     "sparsity": 0.5, "nm_compliance": 1.0, "wall_s": round(time.time() - t0, 1)}
            logs.append(entry)
            print(f"[maskpro] epoch {epoch}: sampled {entry['mask_sampled_loss']:.4f} ref "
                  f"{entry['reference_loss']:.4f} val(top-2) {entry['val_loss']:.5f} changed "
                  f"{entry['changed_vs_magnitude']:.4f} {entry['wall_s']}s", flush=True)
            epochs.append({"epoch": epoch, "logits": {k: v.detach().cpu().clone() for k, v in logits.items()},
                           "current": {k: v.cpu() for k, v in last_drawn.items()}, "log": dict(entry),
                           "resume": log.resume})
            if best is None or entry["val_loss"] < best["val_loss"]:
                best = dict(entry)
        final = {k: mpt.ungroup_view(mpt.final_mask(v, N), dense_w[k].shape).cpu() for k, v in logits.items()}
        state = {k: v.cpu() for k, v in masked_copy(final).state_dict().items()}
        done = len(logs)
        info = dict(steps=done * steps_per_epoch, epochs=done, planned_epochs=b["maskpro_epochs"],
                    stopped_by_time_budget=stopped_early, steps_per_epoch=steps_per_epoch, batch=batch,
                    optimizer="Adam on logits", lr=mp_lr, samples_per_step=mp_samples,
                    baseline=f"L(sampled) - L(initial magnitude mask) on the same minibatch, minus its moving average "
                    f"(momentum {mp_momentum})", init=f"logits = {mp_temp} * |w| / max|w| of the group (top-2 == "
                    "magnitude mask)", weights="frozen (dense EMA)", wall_time_s=round(time.time() - t0, 1),
                    epochs_log=logs, best_epoch=best["epoch"], code="scripts/maskpro_training.learn_masks")
        keep = {e["epoch"] for e in epochs[-KEEP_EPOCHS:]} | {best["epoch"]}
        epochs = [e for e in epochs if e["epoch"] in keep]   # what the run directory ships
        for e in epochs:
            e.pop("resume", None)
        return state, {"mask_learning": info}, {"epochs": epochs, "best_epoch": best["epoch"], "final": final}

    mp_state, mp_card, mp_extra = stage("maskpro_2of4", maskpro_stage)
    mp_masks = mp_extra["final"] if mp_extra is not None else None
    cards["maskpro_2of4"] = dict(name="maskpro_2of4", parent="dense", nm_pattern="2:4", description=(
        "dense -> MaskPro 2:4 with the weights frozen: per-group logits (num_groups, 4) initialised from |w|, 2 of 4 "
        "drawn without replacement from softmax(logits) (Gumbel-top-k), REINFORCE on the diffusion loss with the "
        "loss residual vs the magnitude mask on the same minibatch minus its moving average; deployed mask = top-2 "
        "logits. No weight is trained."), **(mp_card or {}))

    # ---- the same masked fine-tune budget for both ----------------------------------------------
    def fine_tune(masks: dict, tag: str, seed_off: int, n_steps: int):
        def run():
            u = from_dense()
            ema, info = train(u, x_train, steps=n_steps, batch=batch, lr=FT_LR,
                              warmup=min(200, max(1, n_steps // 10)), seed=args.seed + seed_off, ema_decay=0.999,
                              masks=masks, log_every=log_every, tag=tag)
            return {k: v.detach().cpu().clone() for k, v in ema.state_dict().items()}, {"fine_tune": info}, None
        return run

    ft_note = ("the masked fine-tune shared by both *_ft models (same steps, lr, seed and data order; weights and EMA "
               "re-masked every step; zeros merged into the weights)")
    s, c, _ = stage("magnitude_2of4_ft", fine_tune(mag_masks, "magnitude_ft", 1, b["finetune_steps"]))
    ft_states = {"magnitude_2of4_ft": s}
    cards["magnitude_2of4_ft"] = dict(name="magnitude_2of4_ft", parent="magnitude_2of4", nm_pattern="2:4",
                                      description=f"magnitude_2of4 -> {ft_note}.", **(c or {}))
    s, c, _ = (stage("maskpro_2of4_ft", fine_tune(mp_masks, "maskpro_ft", 1, b["finetune_steps"]))
               if mp_masks is not None else (None, None, None))
    ft_states["maskpro_2of4_ft"] = s
    cards["maskpro_2of4_ft"] = dict(name="maskpro_2of4_ft", parent="maskpro_2of4", nm_pattern="2:4",
                                    description=f"maskpro_2of4 -> {ft_note}.", **(c or {}))
    # the dense baseline gets the fine-tune recipe too (unmasked, --dense-finetune-steps), so that it is not
    # the only model without the fine-tune's low-lr EMA phase
    s, c, _ = stage("dense_ft", fine_tune(None, "dense_ft", 1, b["dense_finetune_steps"]))
    dense_final = s
    if c is not None:
        cards["dense"]["fine_tune"] = c["fine_tune"]
        cards["dense"]["fine_tune_built_on"] = c.get("built_on")
    nc_masks = noncompliant_masks(from_dense())
    s, c, _ = stage("noncompliant", fine_tune(nc_masks, "noncompliant_ft", 2, b["noncompliant_steps"]))
    ft_states["noncompliant"] = s
    cards["noncompliant"] = dict(name="noncompliant", parent="dense", nm_pattern=None, description=(
        "NEGATIVE-TEST model: 50% sparse on the masked layers but deliberately NOT 2:4: per layer the weakest third "
        "of the row-major groups of 4 (by L2 norm) is emptied and every other group keeps its 3 largest |w| (3:4); "
        "then a shorter masked fine-tune. Meets a 50% sparsity target; 2:4 compliance ~0.33."), **(c or {}))
    if only is not None:
        print(f"--stages {','.join(only)}: done ({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())}); "
              "export with --resume once every stage is in --work", flush=True)
        return 0

    # ---- export (float16), reload, measure -------------------------------------------------------
    states = {"dense": dense_final, "magnitude_2of4": mag_state, "maskpro_2of4": mp_state, **ft_states}
    t0 = time.time()
    versions_line = f"torch {versions['torch']}, diffusers {versions['diffusers']}, scikit-learn {versions['sklearn']}"
    common = dict(architecture="diffusers.UNet2DModel (DDPM CIFAR-10 block types, 32x32x3, narrower)",
                  unet_config=ZOO_UNET_CONFIG, scheduler="DDPMScheduler, DDPM CIFAR-10 config (1000 steps, linear "
                  "betas 1e-4..0.02, clip_sample, fixed_large, epsilon)", data=data_card,
                  loss_protocol=f"epsilon-MSE, t ~ U{{0..999}}, {eval_repeats} fixed (t, noise) draws per image, on "
                  "the reloaded float16->float32 shipped weights; val/test/train_eval = val split, held-out test "
                  "split, first 256 train images", measured_on=device_name, export_command=cmd.strip(), weights_dtype="float16 safetensors (diffusers loads float32)",
                  masking=dict(layout="row-major: weight viewed as (out, in*kh*kw), groups of 4 consecutive elements",
                               excluded_layers=list(DEFAULT_EXCLUDE_LAYERS)))
    for name in MODEL_NAMES:
        u = new_unet(args.seed, device)
        u.load_state_dict(states[name])
        save_pipeline_fp16(u, out / name)
        r = reload_unet(out / name, device)
        if name in ("magnitude_2of4", "maskpro_2of4", "magnitude_2of4_ft", "maskpro_2of4_ft"):
            assert_strict_2of4(r, name)
        st = sparsity_stats(r)
        if name == "noncompliant" and not st["compliance_2of4_row"] < 0.5:
            raise AssertionError(f"noncompliant model is too 2:4 compliant: {st['compliance_2of4_row']:.3f}")
        card = dict(cards[name], **losses_of(r), **common)
        wfile = out / name / "unet" / "diffusion_pytorch_model.safetensors"
        card.update(params=sum(p.numel() for p in r.parameters()), weights_bytes=wfile.stat().st_size,
                    weights_sha256=sha256(wfile), masked_layers=list(st["per_layer"]),
                    masked_layer_count=st["masked_layer_count"], masked_params=st["masked_params"],
                    sparsity_masked_layers=st["sparsity_masked_layers"], sparsity_global=st["sparsity_global"],
                    compliance_2of4_row=st["compliance_2of4_row"], per_layer=st["per_layer"],
                    sample_grid=f"docs/zoo/{name}.png (python scripts/build_demo_zoo.py --grids)")
        cards[name] = card
        (out / name / "zoo_card.json").write_text(json.dumps(card, indent=2) + "\n")
        print(f"{name:>18}: val {card['val_loss']:.5f} test {card['test_loss']:.5f} sparsity(masked) "
              f"{st['sparsity_masked_layers']:.3f} 2:4 compliance {st['compliance_2of4_row']:.3f}", flush=True)

    # ---- the MaskPro run directory (trainer format) --------------------------------------------
    run = out / RUN_DIR
    if run.exists():
        shutil.rmtree(run)
    save_pipeline_fp16(from_dense(), run / RUN_BASE)
    ck_dir = run / "maskpro" / "training" / "checkpoints"
    ck_dir.mkdir(parents=True)
    epochs = mp_extra["epochs"]
    logs_all = cards["maskpro_2of4"]["mask_learning"]["epochs_log"]   # every epoch (only a few are kept as files)
    ml_info = cards["maskpro_2of4"]["mask_learning"]
    config = training_config(args.seed, ml_info["steps"], ml_info["epochs"], mp_lr, batch, mp_samples)
    base_unet = from_dense()
    best_val = min(e["val_loss"] for e in logs_all)

    def trainer_ckpt(e):
        upto = [x for x in logs_all if x["epoch"] <= e["epoch"]]
        return {"epoch": e["epoch"], "step": e["log"]["step"],
                "model_state_dict": trainer_state_dict(base_unet, dense_w, e["logits"], e["current"]),
                "model_optimizer_state_dict": {}, "mask_optimizer_state_dict": {"note": "state stripped to fit the repo"},
                "model_scheduler_state_dict": {}, "mask_scheduler_state_dict": {"last_epoch": e["epoch"]},
                "config": config, "best_val_loss": min(x["val_loss"] for x in upto), "training_logs": upto}

    for e in epochs[-KEEP_EPOCHS:]:
        torch.save(trainer_ckpt(e), ck_dir / f"checkpoint_epoch_{e['epoch']}.pt")
        layer_conf = {k: {"n": N, "m": M, "layer_type": type(dict(base_unet.named_modules())[k]).__name__,
                          "original_shape": list(dense_w[k].shape), "use_gumbel": True, "temperature": 1.0}
                      for k in dense_w}
        torch.save({"mask_parameters": {k: v.half() for k, v in e["logits"].items()},
                    "sparsity_summary": {"target": 0.5, "n": N, "m": M, "layers": len(dense_w)},
                    "layer_configurations": layer_conf}, ck_dir / f"maskpro_state_epoch_{e['epoch']}.pt")
    best_e = next(e for e in epochs if e["epoch"] == mp_extra["best_epoch"])
    best_ck = trainer_ckpt(best_e)
    best_ck["best_val_loss"] = best_val
    torch.save(best_ck, ck_dir / "best_checkpoint.pt")
    timings["export"] = round(time.time() - t0, 1)

    # ---- curve, ZOO.md, manifest ---------------------------------------------------------------------
    curve = {"dense": cards["dense"]["training"].get("curve", []), "maskpro": logs_all}
    scores_file = work / "dense_curve_scores.json"      # scripts/dense_sweep.py score WORK/dense_curve_samples.npz
    if scores_file.is_file():
        sc = json.loads(scores_file.read_text())
        curve["dense_sample_quality"] = sorted(
            ({"step": int(k.rsplit("_step", 1)[1]), "n": v["n"], "fid": v["fid"], "kid": v["kid"],
              "kid_std": v["kid_std"]} for k, v in sc.items() if "/ddim100_step" in k), key=lambda q: q["step"])
        curve["dense_sample_quality_protocol"] = ("suite sampler (DDIM-100, eta 0, seed 0, samples 0..N-1) on the "
                                                  "training device at each curve point; standard FID/KID vs the "
                                                  "held-out digits, scored on the CPU; before the dense polish")
    (out / "training_curve.json").write_text(json.dumps(curve, indent=1) + "\n")
    plot_curve(out / "training_curve.json", docs / "training_curve.png")
    total = time.time() - t_start
    date = _dt.date.today().isoformat()
    build = dict(command=cmd.strip(), device=device_name, date=date, versions=versions, budgets=b, batch=batch,
                 timings_s=timings, total_wall_s=round(total, 1), nondeterminism_warnings=sorted(set(nondeterministic)),
                 split={k: v.tolist() for k, v in sp.items()})
    (out / "build.json").write_text(json.dumps(build, indent=1) + "\n")
    lines = ["# Demo model zoo", "",
             f"DDPM UNets (diffusers `UNet2DModel`, DDPM CIFAR-10 block types, 32x32x3, `block_out_channels="
             f"{ZOO_UNET_CONFIG['block_out_channels']}`, layers_per_block 1) trained on scikit-learn's 8x8 digits "
             "upscaled to 32x32. Built by `scripts/build_demo_zoo.py`; every number below comes from that run "
             "(`build.json`, each model's `zoo_card.json`). Weights: float16 safetensors, loaded as float32.", "",
             f"Export command: `{cmd.strip()}`  ", f"Export device: {device_name}, {date}  ",
             "Stages trained on: " + "; ".join(
                 f"{dev} ({', '.join(names)})" for dev, names in _stage_devices(cards).items()) + "  ",
             f"Export wall time: {total / 60:.1f} min (stages run in this invocation: "
             f"{', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})  ", f"Versions: {versions_line}  ",
             f"Data: {data_card['train_images']} train / {data_card['val_images']} val / {data_card['test_images']} "
             f"held-out test images; the held-out set is `{REFERENCE_NAME}`, the demo FID reference.", "",
             "| model | masked-layer sparsity | 2:4 compliance (row) | val loss | held-out test loss | training |",
             "|---|---|---|---|---|---|"]
    for name in MODEL_NAMES:
        c = cards[name]
        parts = [f"{k.replace('_', ' ')} {c[k]['steps']} steps ({c[k]['wall_time_s']:.0f} s)"
                 for k in ("training", "mask_learning", "fine_tune") if k in c]
        what = " + ".join(parts) if parts else "none (one shot)"
        lines.append(f"| `{name}` | {c['sparsity_masked_layers']:.4f} | {c['compliance_2of4_row']:.4f} | "
                     f"{c['val_loss']:.5f} | {c['test_loss']:.5f} | {what} |")
    ml = cards["maskpro_2of4"]["mask_learning"]
    lines += ["", f"MaskPro: {ml['steps']} policy-gradient steps in {ml['epochs']} epochs, {ml['samples_per_step']} "
              f"masks per step, batch {ml['batch']}; it changed {ml['epochs_log'][-1]['changed_vs_magnitude'] * 100:.2f}% "
              "of the 2:4 groups relative to the magnitude mask. Curves: `training_curve.json`, "
              "`docs/zoo/training_curve.png`.", "",
              f"`{RUN_DIR}/`: that mask-learning run as the MaskPro trainer writes it (last {KEEP_EPOCHS} epoch "
              "checkpoints, best_checkpoint.pt, maskpro_state_epoch_*.pt; tensors stored float16 and optimizer "
              f"state stripped to fit the repo) over its base `{RUN_DIR}/{RUN_BASE}` (the dense model).", ""]
    (out / "ZOO.md").write_text("\n".join(lines))
    manifest = write_manifest(out)
    print("\n==== timing summary ====")
    for k, v in timings.items():
        print(f"{k:>18}: {v:8.1f} s")
    print(f"{'total':>18}: {total:8.1f} s ({total / 60:.1f} min)")
    print(f"zoo size on disk: {manifest['total_bytes'] / 1e6:.2f} MB at {out}")
    if nondeterministic:
        print(f"nondeterminism warnings: {sorted(set(nondeterministic))}")
    print(f"OUT={out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
