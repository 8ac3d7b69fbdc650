"""The sampling protocol: how samples are drawn (:class:`SamplingConfig`), the scheduler it builds and the
metadata that identifies a set of samples. The noise rule is in :mod:`maskpro_eval.sampling.noise`."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskpro_eval.checkpoints.architecture import DDPM_CIFAR10_SCHEDULER_CONFIG
from maskpro_eval.errors import MaskProEvalError
from maskpro_eval.runtime.dtypes import DTYPES, dtype_name

#: Version tag of the noise-seeding rule (module docstring); stored in the metadata of every sample store.
NOISE_RULE = ("seedseq-v1: g_i=torch.Generator(cpu).manual_seed(SeedSequence(seed,spawn_key=(i,))"
              ".generate_state(1,uint64)[0]); x_T then step noise, float32 (1,C,H,W) draws")
QUANTISATION = "(x*127.5+128).clamp(0,255).to(uint8)"

SAMPLERS = ("ddim", "ddpm")
BACKENDS = ("standard", "fast")
DEFAULT_DDIM_STEPS = 100


class SamplingError(MaskProEvalError, ValueError):
    """Invalid sampling request."""


class CPUHalfPrecisionWarning(UserWarning):
    """float16/bfloat16 sampling on a CPU (either backend): allowed, but a GPU setting (it is slow there)."""


def warn_half_precision_on_cpu(device: torch.device, dtype: torch.dtype) -> None:
    """Warn (:class:`CPUHalfPrecisionWarning`) when a sampler is asked for float16/bfloat16 on a CPU: the demo
    UNet runs ~13-15x slower there than in float32 (AVX2 CPU, 2026-12-06; the fast backend's cast weights and the
    standard backend's autocast alike)."""
    if device.type != "cpu" or dtype not in (torch.float16, torch.bfloat16):
        return
    import warnings
    warnings.warn(
        f"{dtype_name(dtype)} sampling on a CPU: half-precision convolutions are a GPU setting and run ~15x slower "
        "than float32 on a CPU without half-precision units (the demo UNet on an AVX2 CPU, 2026-12-06). Fix: "
        "--dtype float32 on a CPU (the fast backend's float32 gives the standard path's images bit for bit), or "
        "--device cuda", CPUHalfPrecisionWarning, stacklevel=3)


@dataclass
class SamplingConfig:
    """How samples are drawn.

    Attributes:
        sampler: ``"ddim"`` (default; the published protocol) or ``"ddpm"`` (ancestral).
        num_inference_steps: denoising steps; ``None`` -> 100 for DDIM, the scheduler's
            ``num_train_timesteps`` (1000 for DDPM CIFAR-10) for DDPM (resolved by :meth:`resolved`).
        eta: DDIM eta (0 = deterministic DDIM; ignored by DDPM).
        seed: run seed; sample ``i``'s noise depends only on ``(seed, i)`` (see module docstring).
        batch_size: images per UNet call (does not change the samples).
        dtype: ``"float32"``, ``"bfloat16"`` or ``"float16"``: the UNet runs under ``torch.autocast`` of that
            dtype (the model's weights are not modified); the scheduler arithmetic stays float32.
        device: where the UNet runs; ``None`` -> the device of the UNet's parameters. A given device
            different from the UNet's moves the UNet there (``unet.to(device)``, in place).
        backend: ``"standard"`` (this module: diffusers' scheduler step, autocast) or ``"fast"``
            (:class:`maskpro_eval.sampling.fast.FastDDIMSampler`: weights cast to ``dtype``, padded
            batches, optional ``torch.compile``; DDIM with eta 0 only). Same noise rule either way.
        compile: ``torch.compile`` the UNet (fast backend only).
        fused_resnet: run every supported ``ResnetBlock2D`` as the Triton fused block (fast backend on
            CUDA only; :mod:`maskpro_eval.sampling.fused_resnet`, checked against the unfused UNet when
            installed). Part of the protocol (its float16 rounding differs from cuDNN's), so its samples
            get their own store.
        compile_options: inductor options for the compiled UNet (``torch.compile(options=...)``; needs
            ``compile``), e.g. ``{"max_autotune_pointwise": True}``: inductor times a few launch configurations of
            each pointwise/reduction kernel while compiling and keeps the fastest (+6.6 % img-steps/s on an
            H100, compile time unchanged, benchmarks/README.md). Part of the protocol: a reduction's launch
            configuration sets its summation order, so the samples get their own store; and as inductor picks
            it by timing, two processes with empty compile caches gave different images (measured, H100).
        onepass_group_norm: run every GroupNorm (+ SiLU, + the resnets' bias and time add) as one Triton
            kernel that reads the activation once (fast backend on CUDA only;
            :mod:`maskpro_eval.sampling.group_norm`, checked against the unpatched UNet when installed; not
            with ``fused_resnet``). Part of the protocol, like ``fused_resnet``.
    """

    sampler: str = "ddim"
    num_inference_steps: int | None = None
    eta: float = 0.0
    seed: int = 0
    batch_size: int = 256
    dtype: str = "float32"
    device: str | None = None
    backend: str = "standard"
    compile: bool = False
    fused_resnet: bool = False
    onepass_group_norm: bool = False
    compile_options: dict | None = None

    def __post_init__(self):
        self.sampler = str(self.sampler).lower()
        if self.sampler not in SAMPLERS:
            raise SamplingError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.backend not in BACKENDS:
            raise SamplingError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "fast" and (self.sampler != "ddim" or float(self.eta) != 0.0):
            raise SamplingError(f"the fast backend runs DDIM with eta 0 only (got sampler={self.sampler!r}, "
                                f"eta={self.eta}). Fix: --sampling-backend standard, or --sampler ddim --eta 0")
        if self.compile and self.backend != "fast":
            raise SamplingError("compile=True needs backend='fast' (CLI: --sampling-backend fast --compile-sampler)")
        if self.compile_options:
            opts = self.compile_options
            if not isinstance(opts, dict) or not all(isinstance(k, str) and isinstance(v, (bool, int, float, str))
                                                     for k, v in opts.items()):
                raise SamplingError(f"compile_options must map inductor option names to values, got {opts!r}")
            if not self.compile:
                raise SamplingError("compile_options need compile=True (CLI: --compile-sampler --compile-options ...)")
            self.compile_options = dict(sorted(opts.items()))
        else:
            self.compile_options = None
        self.fused_resnet = bool(self.fused_resnet)
        if self.fused_resnet and self.backend != "fast":
            raise SamplingError("fused_resnet=True needs backend='fast' (CLI: --sampling-backend fast --fused-resnet)")
        self.onepass_group_norm = bool(self.onepass_group_norm)
        if self.onepass_group_norm and self.backend != "fast":
            raise SamplingError("onepass_group_norm=True needs backend='fast' "
                                "(CLI: --sampling-backend fast --onepass-group-norm)")
        if self.onepass_group_norm and self.fused_resnet:
            raise SamplingError("onepass_group_norm and fused_resnet both replace the resnets' GroupNorm; "
                                "choose one (CLI: --onepass-group-norm or --fused-resnet)")
        try:
            self.dtype = dtype_name(self.dtype)
        except ValueError as e:
            raise SamplingError(str(e)) from None
        if self.num_inference_steps is None and self.sampler == "ddim":
            self.num_inference_steps = DEFAULT_DDIM_STEPS
        if self.num_inference_steps is not None:
            self.num_inference_steps = int(self.num_inference_steps)
            if self.num_inference_steps <= 0:
                raise SamplingError(f"num_inference_steps must be positive, got {self.num_inference_steps}")
        self.eta = float(self.eta)
        if self.eta < 0:
            raise SamplingError(f"eta must be >= 0, got {self.eta}")
        self.seed = int(self.seed)
        if self.seed < 0:
            raise SamplingError(f"seed must be >= 0, got {self.seed}")
        self.batch_size = int(self.batch_size)
        if self.batch_size <= 0:
            raise SamplingError(f"batch_size must be positive, got {self.batch_size}")
        if self.device is not None:
            self.device = str(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def resolved(self, scheduler_config=None) -> "SamplingConfig":
        """A copy with ``num_inference_steps`` filled in (DDPM: the scheduler's ``num_train_timesteps``)."""
        if self.num_inference_steps is not None:
            return replace(self)
        cfg = scheduler_config_dict(scheduler_config)
        return replace(self, num_inference_steps=int(cfg.get("num_train_timesteps", 1000)))

    def to_dict(self) -> dict:
        return asdict(self)

    def protocol_dict(self) -> dict:
        """The fields that define the samples (not batch size or device)."""
        d = self.to_dict()
        d.pop("batch_size")
        d.pop("device")
        for opt in ("fused_resnet", "onepass_group_norm", "compile_options"):
            if not d[opt]:  # stores made before the option existed keep their key
                d.pop(opt)
        if d["backend"] == "standard":  # keeps the standard path's protocol (and its stores) as it was
            d.pop("backend")
            d.pop("compile")
        return d


def scheduler_config_dict(scheduler_config_or_scheduler=None) -> dict:
    """Plain dict of a scheduler config: a scheduler object, a (Frozen)dict, a path to a
    ``scheduler_config.json`` (or a folder holding one), or ``None`` (DDPM CIFAR-10 defaults)."""
    src = scheduler_config_or_scheduler
    if src is None:
        return dict(DDPM_CIFAR10_SCHEDULER_CONFIG)
    if hasattr(src, "config") and not isinstance(src, dict):
        return dict(src.config)
    if isinstance(src, (str, Path)):
        p = Path(src)
        if p.is_dir():
            for name in ("scheduler_config.json", "scheduler/scheduler_config.json"):
                if (p / name).is_file():
                    p = p / name
                    break
        try:
            return json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise SamplingError(f"{src}: cannot read a scheduler config ({e})") from e
    if isinstance(src, dict):
        return dict(src)
    raise SamplingError(f"unsupported scheduler config {type(src).__name__}: give a diffusers scheduler, a "
                        f"dict, a scheduler_config.json path or None")


def make_scheduler(sampler: str = "ddim", scheduler_config_or_scheduler=None,
                   num_inference_steps: int | None = None, device=None):
    """A fresh ``DDIMScheduler``/``DDPMScheduler`` built with ``.from_config`` and ``set_timesteps`` done.

    The betas, ``clip_sample`` (+ range), ``prediction_type``, ``timestep_spacing``, thresholding ...
    come from the checkpoint's scheduler config when given, else from DDPM CIFAR-10
    (``architecture.DDPM_CIFAR10_SCHEDULER_CONFIG``: linear 1e-4..0.02, 1000 steps, clip_sample=True,
    fixed_large). A DDIM scheduler made from a DDPM config keeps all shared keys (clip_sample included)
    and uses DDIM's defaults for its own (``set_alpha_to_one=True``, ``steps_offset=0``), exactly like
    ``DDIMScheduler.from_pretrained("google/ddpm-cifar10-32")`` in the Diff-Pruning evaluation.
    ``num_inference_steps=None``: 100 for DDIM, ``num_train_timesteps`` for DDPM.
    """
    from diffusers import DDIMScheduler, DDPMScheduler

    sampler = str(sampler).lower()
    if sampler not in SAMPLERS:
        raise SamplingError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    cfg = {k: v for k, v in scheduler_config_dict(scheduler_config_or_scheduler).items()
           if not k.startswith("_")}
    cls = DDIMScheduler if sampler == "ddim" else DDPMScheduler
    # Keys of the other scheduler (e.g. DDPM's variance_type for DDIM) are harmless; keep diffusers quiet.
    from diffusers.utils import logging as dlogging
    level = dlogging.get_verbosity()
    dlogging.set_verbosity_error()
    try:
        sched = cls.from_config(cfg)
    finally:
        dlogging.set_verbosity(level)
    if num_inference_steps is None:
        num_inference_steps = (DEFAULT_DDIM_STEPS if sampler == "ddim"
                               else int(sched.config.num_train_timesteps))
    n_train = int(sched.config.num_train_timesteps)
    if int(num_inference_steps) > n_train:
        raise SamplingError(f"num_inference_steps={num_inference_steps} exceeds the scheduler's "
                            f"num_train_timesteps={n_train}")
    sched.set_timesteps(int(num_inference_steps), device=device)
    return sched


def protocol_metadata(config: SamplingConfig, scheduler_config=None, model_id: Any = None,
                      extra: dict | None = None) -> dict:
    """Metadata that identifies a set of samples: the sampling protocol + scheduler config + model.

    ``model_id``: anything JSON-serialisable naming the model (e.g. ``model_fingerprint(unet)``, a
    checkpoint path and sha256). Batch size and device are left out: they do not change the samples.
    """
    cfg = config.resolved(scheduler_config)
    # The config of the scheduler actually used (DDIM or DDPM class, all defaults filled in), so that a
    # scheduler object, its dict and a scheduler_config.json of the same scheduler give equal metadata.
    built = make_scheduler(cfg.sampler, scheduler_config, cfg.num_inference_steps)
    sched = {k: v for k, v in dict(built.config).items() if not k.startswith("_")}
    meta = {
        "sampling": {**cfg.protocol_dict(), "noise_rule": NOISE_RULE, "quantisation": QUANTISATION},
        "scheduler_config": sched,
        "model": model_id,
    }
    if extra:
        meta["extra"] = extra
    return json.loads(json.dumps(meta, sort_keys=True, default=lambda o: o.item()
                                 if isinstance(o, np.generic) else str(o)))
