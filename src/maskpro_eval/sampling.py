"""Deterministic, resumable sample generation for DDPM/DDIM ``UNet2DModel``s.

Reproducibility rule (noise seeding, version ``"seedseq-v1"``)
-----------------------------------------------------------------
Sample ``i`` of a run with seed ``s`` owns one CPU ``torch.Generator`` seeded with::

    noise_seed(s, i) = int(numpy.random.SeedSequence(entropy=s, spawn_key=(i,))
                           .generate_state(1, dtype=numpy.uint64)[0])

(i.e. the ``i``-th child of ``SeedSequence(s)``). That generator first draws the sample's initial noise
``x_T`` (``torch.randn((1, C, H, W), dtype=float32)``), then every per-step noise of the sampler
(DDPM, DDIM with eta > 0), through ``scheduler.step(..., generator=[g_0, ..., g_{B-1}])`` - diffusers'
``randn_tensor`` draws a ``(1, C, H, W)`` tensor from each generator of a list, on the CPU, then moves
it to the device. The scheduler step runs in float32. Sample ``i`` is therefore identical whatever the
batch size, chunking, order, device RNG or number of processes. The noise is exactly invariant; the
UNet's arithmetic is too on CPU fp32 (tested) because a lone sample is run as a pair (batch-1 calls take
other BLAS/oneDNN kernels whose last bits differ). On GPUs, kernels chosen per batch shape may differ in
the last bits, which can move a rare pixel by one uint8 level: keep the batch size fixed for a run.

Output: ``x0`` in [-1, 1] (the scheduler clips when ``clip_sample``) quantised as
``(x * 127.5 + 128).clamp(0, 255).to(uint8)`` - the StyleGAN2-ADA/StyleGAN3/EDM convention the standard
FID protocol assumes (see :mod:`maskpro_eval.images`); images are returned ``N x H x W x C`` uint8.
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .architecture import DDPM_CIFAR10_SCHEDULER_CONFIG
from .errors import MaskProEvalError
from .images import to_uint8
from .sample_store import SampleStore, SampleStoreMismatchError

__all__ = [
    "SamplingConfig", "make_scheduler", "noise_seed", "sample_generators", "sample_noise", "generate",
    "generate_to_store", "protocol_metadata", "model_fingerprint", "scheduler_config_dict",
    "NOISE_RULE", "QUANTISATION", "SamplingError",
]

log = logging.getLogger(__name__)

#: Version tag of the noise-seeding rule (module docstring); stored in the metadata of every sample store.
NOISE_RULE = ("seedseq-v1: g_i=torch.Generator(cpu).manual_seed(SeedSequence(seed,spawn_key=(i,))"
              ".generate_state(1,uint64)[0]); x_T then step noise, float32 (1,C,H,W) draws")
QUANTISATION = "(x*127.5+128).clamp(0,255).to(uint8)"

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16",
                  "half": "float16", "torch.float32": "float32", "torch.bfloat16": "bfloat16",
                  "torch.float16": "float16"}
SAMPLERS = ("ddim", "ddpm")
BACKENDS = ("standard", "fast")
DEFAULT_DDIM_STEPS = 100


class SamplingError(MaskProEvalError, ValueError):
    """Invalid sampling request."""


# --------------------------------------------------------------------------------------------- config
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
            (:class:`maskpro_eval.gpu.fast_sampling.FastDDIMSampler`: weights cast to ``dtype``, padded
            batches, optional ``torch.compile``; DDIM with eta 0 only). Same noise rule either way.
        compile: ``torch.compile`` the UNet (fast backend only).
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
        d = str(self.dtype)
        d = _DTYPE_ALIASES.get(d, d)
        if d not in _DTYPES:
            raise SamplingError(f"dtype must be one of {tuple(_DTYPES)}, got {self.dtype!r}")
        self.dtype = d
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
        return _DTYPES[self.dtype]

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
        if d["backend"] == "standard":  # keeps the standard path's protocol (and its stores) as it was
            d.pop("backend")
            d.pop("compile")
        return d


# ------------------------------------------------------------------------------------------ scheduler
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


# ---------------------------------------------------------------------------------------------- noise
def noise_seed(seed: int, index: int) -> int:
    """Seed of sample ``index``'s generator: ``SeedSequence(seed, spawn_key=(index,))`` -> one uint64."""
    if seed < 0 or index < 0:
        raise SamplingError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index),))
    return int(ss.generate_state(1, dtype=np.uint64)[0])


def sample_generators(seed: int, indices: Iterable[int]) -> list[torch.Generator]:
    """One fresh CPU ``torch.Generator`` per sample index, seeded with :func:`noise_seed`."""
    gens = []
    for i in indices:
        g = torch.Generator(device="cpu")
        g.manual_seed(noise_seed(seed, int(i)))
        gens.append(g)
    return gens


def sample_noise(seed: int, indices: Iterable[int], shape: Sequence[int],
                 generators: list[torch.Generator] | None = None) -> torch.Tensor:
    """Initial noise ``x_T`` of the given samples: float32 CPU tensor ``(len(indices), *shape)``.

    ``shape`` is one sample's shape, e.g. ``(3, 32, 32)``. Row ``k`` is ``torch.randn((1, *shape))`` from
    sample ``indices[k]``'s generator (fresh from :func:`sample_generators` unless ``generators`` - which
    are then advanced - is given).
    """
    indices = list(indices)
    if generators is None:
        generators = sample_generators(seed, indices)
    if len(generators) != len(indices):
        raise SamplingError("one generator per index is needed")
    shape = tuple(int(s) for s in shape)
    if not indices:
        return torch.empty((0, *shape), dtype=torch.float32)
    return torch.cat([torch.randn((1, *shape), generator=g, dtype=torch.float32) for g in generators], dim=0)


# ---------------------------------------------------------------------------------------------- model
def _unet_info(unet) -> tuple[torch.device, torch.dtype, tuple[int, int, int]]:
    p = next(iter(unet.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None else torch.float32
    cfg = getattr(unet, "config", None)
    if cfg is None:
        raise SamplingError("the model has no .config (in_channels, sample_size): pass a diffusers "
                            "UNet2DModel or a module exposing .config")
    get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
    size = get("sample_size", 32)
    if isinstance(size, (list, tuple)):
        h, w = int(size[0]), int(size[1])
    else:
        h = w = int(size)
    return device, dtype, (int(get("in_channels", 3)), h, w)


def _model_output(out) -> torch.Tensor:
    if hasattr(out, "sample"):
        return out.sample
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


def model_fingerprint(unet) -> str:
    """sha256 over the model's state dict (names, dtypes, shapes, bytes) - a model identity for stores."""
    h = hashlib.sha256()
    for name, t in sorted(unet.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


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


# -------------------------------------------------------------------------------------------- sampling
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


def _make_bar(total: int, progress: bool, desc: str, initial: int = 0):
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, unit="img", desc=desc, disable=not progress,
                dynamic_ncols=True, smoothing=0.1)


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
    p_device, p_dtype, shape = _unet_info(unet)
    device = torch.device(cfg.device) if cfg.device is not None else p_device
    if device != p_device and not (device.type == p_device.type and device.index is None):
        unet.to(device)
    scheduler = make_scheduler(cfg.sampler, scheduler_config, cfg.num_inference_steps)
    timesteps = scheduler.timesteps
    step_kwargs = {"eta": cfg.eta} if cfg.sampler == "ddim" else {}
    use_autocast = cfg.dtype != "float32"
    if use_autocast and device.type not in ("cuda", "cpu", "xpu", "mps"):
        raise SamplingError(f"dtype {cfg.dtype} (autocast) is not supported on device {device}")

    out = np.empty((len(idx), shape[1], shape[2], shape[0]), dtype=np.uint8)
    bar = _bar if _bar is not None else _make_bar(len(idx), progress,
                                                   f"{cfg.sampler} {cfg.num_inference_steps} steps")
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
                    if x_in.shape[0] == 1:
                        # Batch-1 calls take other kernels (BLAS gemv, oneDNN N=1 convolutions) whose last
                        # bits differ from the batched ones; run a pair so a lone sample (bs=1, or the
                        # remainder of a chunk) gets the same numerics as in any larger batch.
                        eps = _model_output(unet(torch.cat([x_in, x_in]), t))[:1].float()
                    else:
                        eps = _model_output(unet(x_in, t)).float()
                    x = sched.step(eps, t, x, generator=gens, **step_kwargs).prev_sample.float()
                bad = (~torch.isfinite(x)).flatten(1).any(1)
                nonfinite += int(bad.sum())
                out[b0:b0 + len(bidx)] = to_uint8(x)
                bar.update(len(bidx))
    finally:
        if was_training and hasattr(unet, "train"):
            unet.train()
        if _bar is None:
            bar.close()
    if nonfinite:
        warnings.warn(f"{nonfinite} of {len(idx)} samples contain NaN/Inf (quantised NaN -> 0): the model "
                      f"output is not finite", RuntimeWarning, stacklevel=2)
    return out


_FAST_SAMPLERS: "OrderedDict[tuple, Any]" = OrderedDict()
_FAST_SAMPLERS_KEPT = 4


def fast_sampler(unet, config: SamplingConfig, scheduler_config=None):
    """The :class:`~maskpro_eval.gpu.fast_sampling.FastDDIMSampler` for ``config`` (backend ``"fast"``).

    Prepared samplers (weights cast, compiled) are kept for the last few (model weights, settings)
    and reused for other seeds, so evaluating several seeds or calling again does not copy and compile the
    UNet again. The key holds :func:`model_fingerprint`: changed weights get a fresh sampler.
    """
    from .gpu.fast_sampling import FastDDIMSampler
    cfg = config.resolved(scheduler_config)
    key = (model_fingerprint(unet), cfg.dtype, cfg.batch_size, cfg.compile, cfg.device, cfg.num_inference_steps,
           json.dumps(scheduler_config_dict(scheduler_config), sort_keys=True, default=str))
    sampler = _FAST_SAMPLERS.pop(key, None)
    if sampler is None:
        sampler = FastDDIMSampler(unet, scheduler_config=scheduler_config, steps=cfg.num_inference_steps,
                                  seed=cfg.seed, batch_size=cfg.batch_size, dtype=cfg.dtype, compile=cfg.compile,
                                  device=cfg.device)
    _FAST_SAMPLERS[key] = sampler
    while len(_FAST_SAMPLERS) > _FAST_SAMPLERS_KEPT:
        _FAST_SAMPLERS.popitem(last=False)
    return sampler.reseeded(cfg.seed)


def generate_to_store(unet, config: SamplingConfig, store: SampleStore | str | Path, num_samples: int, *,
                      scheduler_config=None, model_id: Any = None, chunk_size: int | None = None,
                      overwrite: bool = False, progress: bool = True, rank: int = 0,
                      world_size: int = 1) -> SampleStore:
    """Fill ``store`` with samples ``0 .. num_samples-1``, chunk by chunk; complete chunks are skipped.

    ``store``: a :class:`SampleStore` (its metadata must contain ``protocol_metadata(config, ...)``'s
    ``"sampling"`` and ``"scheduler_config"`` entries, else :class:`SampleStoreMismatchError`), or a folder,
    opened as ``SampleStore(folder, chunk_size, protocol_metadata(config, scheduler_config, model_id),
    overwrite)``. Each chunk is written atomically when done, so an interrupted run loses at most the
    chunk in progress; corrupt chunks are reported and regenerated. Returns the store;
    ``store.load(num_samples)`` gives the images.

    Several processes (e.g. one per GPU) can share one store: process ``rank`` of ``world_size`` makes the
    missing chunks whose chunk number ``start // chunk_size`` is ``rank`` modulo ``world_size`` (samples do
    not depend on who makes them); afterwards ``store.is_complete(num_samples)`` tells whether all are in.
    """
    if not 0 <= int(rank) < int(world_size):
        raise SamplingError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    meta = protocol_metadata(config, scheduler_config, model_id)
    if not isinstance(store, SampleStore):
        store = SampleStore(store, chunk_size=chunk_size, metadata=meta, overwrite=overwrite)
    else:
        for key in ("sampling", "scheduler_config"):
            if store.metadata.get(key) != meta[key]:
                raise SampleStoreMismatchError(
                    f"{store.directory}: the store's metadata[{key!r}] = {store.metadata.get(key)!r} does not "
                    f"match this request's {meta[key]!r}. Fix: open the store with "
                    f"metadata=protocol_metadata(config, scheduler_config, model_id)")
    num_samples = int(num_samples)
    missing = [(s, e) for s, e in store.missing_chunks(num_samples)
               if (s // store.chunk_size) % int(world_size) == int(rank)]
    todo = sum(e - s for s, e in missing)
    if store.corrupt_chunks:
        log.warning("%s: regenerating corrupt chunk(s): %s", store.directory, ", ".join(store.corrupt_chunks))
    if missing and todo < num_samples:
        log.info("%s: resuming; %d sample(s) in %d chunk(s) to generate (of %d)",
                 store.directory, todo, len(missing), num_samples)
    if not missing:
        return store
    cfg = config.resolved(scheduler_config)
    fast = fast_sampler(unet, cfg, scheduler_config) if cfg.backend == "fast" else None
    mine = sum(e - s for i, (s, e) in enumerate(store.chunk_ranges(num_samples))
               if i % int(world_size) == int(rank))
    bar = _make_bar(mine, progress, f"{cfg.sampler} {cfg.num_inference_steps} steps -> store",
                    initial=mine - todo)
    try:
        for s, e in missing:
            if fast is not None:
                images = fast.images(start=s, count=e - s)
                bar.update(e - s)
            else:
                images = generate(unet, cfg, start=s, count=e - s, scheduler_config=scheduler_config,
                                  progress=progress, _bar=bar)
            store.write_chunk(s, images)
    finally:
        bar.close()
    return store
