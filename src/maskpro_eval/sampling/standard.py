"""Standard-backend sampling: diffusers' scheduler step, any sampler, autocast (the reference path).

Output: ``x0`` in [-1, 1] (the scheduler clips when ``clip_sample``) quantised as
``(x * 127.5 + 128).clamp(0, 255).to(uint8)`` - the StyleGAN2-ADA/StyleGAN3/EDM convention the standard
FID protocol assumes (see :mod:`maskpro_eval.sampling.images`); images are returned ``N x H x W x C`` uint8.
"""
from __future__ import annotations

import contextlib
import copy
import warnings

import numpy as np
import torch

from maskpro_eval.runtime.progress import make_bar
from maskpro_eval.sampling.config import SamplingConfig, SamplingError, make_scheduler, warn_half_precision_on_cpu
from maskpro_eval.sampling.images import to_uint8
from maskpro_eval.sampling.noise import sample_generators, sample_noise
from maskpro_eval.sampling.unet_io import in_fixed_chunks, model_output, unet_info


def _resolve_indices(indices, start, count) -> list[int]:
    if indices is not None:
        if start is not None or count is not None:
            raise SamplingError("give either indices or (start, count), not both")
        if isinstance(indices, (int, np.integer)):
            return list(range(int(indices)))
        out = [int(i) for i in np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
               .reshape(-1)]
    else:
        if count is None:
            raise SamplingError("give indices or count (with optional start)")
        start = 0 if start is None else int(start)
        out = list(range(start, start + int(count)))
    if any(i < 0 for i in out):
        raise SamplingError("sample indices must be >= 0")
    return out


def generate(unet, config: SamplingConfig, indices=None, *, start: int | None = None,
             count: int | None = None, scheduler_config=None, progress: bool = True,
             _bar=None) -> np.ndarray:
    """Generate samples ``indices`` (or ``start .. start+count-1``) -> uint8 ``N x H x W x C`` (in order).

    The loop (per batch of ``config.batch_size`` samples)::

        x = x_T (per-sample CPU generators, float32)
        for t in scheduler.timesteps:
            eps = unet(scheduler.scale_model_input(x, t), t).sample      # under autocast(config.dtype)
            x = scheduler.step(eps.float(), t, x, eta=..., generator=[g_i ...]).prev_sample
        images = (x * 127.5 + 128).clamp(0, 255).to(uint8)

    ``scheduler_config``: the checkpoint's scheduler (object, dict or path) or None (DDPM CIFAR-10).
    Runs under ``torch.inference_mode``; the model is put in eval mode for the call and restored.
    Progress: a tqdm bar in images (``unit="img"``) showing img/s and ETA; ``progress=False`` hides it.
    """
    idx = _resolve_indices(indices, start, count)
    cfg = config.resolved(scheduler_config)
    p_device, p_dtype, shape = unet_info(unet)
    device = torch.device(cfg.device) if cfg.device is not None else p_device
    if device != p_device and not (device.type == p_device.type and device.index is None):
        unet.to(device)
    scheduler = make_scheduler(cfg.sampler, scheduler_config, cfg.num_inference_steps)
    timesteps = scheduler.timesteps
    step_kwargs = {"eta": cfg.eta} if cfg.sampler == "ddim" else {}
    use_autocast = cfg.dtype != "float32"
    if use_autocast and device.type not in ("cuda", "cpu", "xpu", "mps"):
        raise SamplingError(f"dtype {cfg.dtype} (autocast) is not supported on device {device}")
    if use_autocast:
        warn_half_precision_on_cpu(device, cfg.torch_dtype)

    out = np.empty((len(idx), shape[1], shape[2], shape[0]), dtype=np.uint8)
    bar = _bar if _bar is not None else make_bar(len(idx), f"{cfg.sampler} {cfg.num_inference_steps} steps",
                                                   progress)
    was_training = getattr(unet, "training", False)
    nonfinite = 0
    try:
        if hasattr(unet, "eval"):
            unet.eval()
        autocast = (torch.autocast(device_type=device.type, dtype=cfg.torch_dtype) if use_autocast
                    else contextlib.nullcontext())
        with torch.inference_mode(), autocast:
            for b0 in range(0, len(idx), cfg.batch_size):
                bidx = idx[b0:b0 + cfg.batch_size]
                gens = sample_generators(cfg.seed, bidx)
                x = sample_noise(cfg.seed, bidx, shape, generators=gens).to(device)
                sched = copy.deepcopy(scheduler)  # stateless for DDIM/DDPM, but never share state
                for t in timesteps:
                    x_in = sched.scale_model_input(x, t)
                    if not use_autocast and p_dtype != x_in.dtype:
                        x_in = x_in.to(p_dtype)
                    if device.type == "cpu":
                        # one call shape for every sample: the same bits whatever the batch size
                        eps = in_fixed_chunks(lambda c: model_output(unet(c, t)), x_in).float()
                    elif x_in.shape[0] == 1:
                        # Batch-1 calls take other kernels (BLAS gemv, oneDNN N=1 convolutions) whose last
                        # bits differ from the batched ones; run a pair so a lone sample (bs=1, or the
                        # remainder of a chunk) gets the same numerics as in any larger batch.
                        eps = model_output(unet(torch.cat([x_in, x_in]), t))[:1].float()
                    else:
                        eps = model_output(unet(x_in, t)).float()
                    x = sched.step(eps, t, x, generator=gens, **step_kwargs).prev_sample.float()
                    bar.update(len(bidx) / len(timesteps))  # moves every step, not once a batch
                bad = (~torch.isfinite(x)).flatten(1).any(1)
                nonfinite += int(bad.sum())
                out[b0:b0 + len(bidx)] = to_uint8(x)
    finally:
        if was_training and hasattr(unet, "train"):
            unet.train()
        if _bar is None:
            bar.close()
    if nonfinite:
        warnings.warn(f"{nonfinite} of {len(idx)} samples contain NaN/Inf (quantised NaN -> 0): the model "
                      f"output is not finite", RuntimeWarning, stacklevel=2)
    return out
