"""Benchmark cases: one zero-argument callable per measurement plus the work it does per call.

The pytest-benchmark suite times a case with ``benchmark.pedantic`` (:func:`run_pedantic`), the CLI with
:func:`maskpro_eval.runtime.timing.time_callable` (:func:`run_timed`); both report the same figures.
Only public library APIs are used.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from maskpro_eval.runtime.timing import TimingResult, time_callable


@dataclass
class Case:
    """``fn()`` does ``work`` units of ``unit`` (images, image-steps, ...) on ``device``."""

    name: str
    fn: Callable[[], object]
    work: float
    unit: str
    device: str
    info: dict = field(default_factory=dict)

    def figures(self, median_s: float | None, min_s: float | None = None) -> dict:
        """Median/min time per call, the rate (``unit`` per second) and, with ``flops_per_unit`` in
        ``info``, TFLOP/s."""
        out = {"median_ms": None if median_s is None else median_s * 1e3,
               "min_ms": None if min_s is None else min_s * 1e3,
               "work_per_call": self.work, "rate": None if not median_s else self.work / median_s,
               "rate_unit": f"{self.unit}/s"}
        flops = self.info.get("flops_per_unit")
        out["tflops"] = None if not (median_s and flops) else flops * self.work / median_s / 1e12
        return {**out, **{k: v for k, v in self.info.items() if k != "flops_per_unit"}}


def run_timed(case: Case, rounds: int = 10, warmup: int = 2) -> dict:
    """Time ``case`` with CUDA events (GPU) or a synchronised host clock; its figures plus the timing."""
    r: TimingResult = time_callable(case.fn, warmup=warmup, rounds=rounds, device=case.device)
    return {**case.figures(r.median_s, r.min_s), "rounds": r.rounds, "warmup": r.warmup, "method": r.method}


def run_pedantic(benchmark, case: Case, rounds: int = 3, warmup: int = 1) -> dict:
    """``benchmark.pedantic`` over ``case`` (timer: the suite's CUDA-synchronising clock); figures into
    ``benchmark.extra_info`` and returned (times None under ``--benchmark-disable``)."""
    benchmark.pedantic(case.fn, rounds=int(rounds), warmup_rounds=int(warmup), iterations=1)
    stats = getattr(benchmark, "stats", None)
    median = float(stats.stats.median) if stats is not None else None
    minimum = float(stats.stats.min) if stats is not None else None
    figs = case.figures(median, minimum)
    benchmark.extra_info.update({"case": case.name, **figs})
    return figs


# ------------------------------------------------------------------------------------------- forward
def forward(unet, device: str, batch: int, dtype: str = "float32", compile: bool = False,
            compile_mode: str | None = None, name: str = "unet", copy_model: bool = True) -> Case:
    """One UNet forward at ``batch`` (weights cast to ``dtype``; random input, timestep 500).
    ``copy_model=False``: time ``unet`` as it is (already on ``device`` in ``dtype``, e.g. 2:4-sparse)."""
    from maskpro_eval.analysis.flops import unet_flops_per_image_step
    from maskpro_eval.runtime.bench import forward_case, prepare_unet
    module, fwd = prepare_unet(unet, device, dtype, compile=compile, compile_mode=compile_mode, copy_model=copy_model)
    flops = unet_flops_per_image_step(module)["flops"]
    fc = forward_case(name, module, fwd, batch, device, dtype, flops_per_image=flops)
    return Case(f"forward-{name}-{dtype}-B{batch}", fc, batch, "img-steps", str(device),
                {"batch": batch, "dtype": dtype, "compile": compile, "flops_per_unit": flops})


# ------------------------------------------------------------------------------------------ sampling
SAMPLING_PATHS = ("standard", "fast", "diffusers")


def sampling(path: str, unet, scheduler_config, n: int, steps: int, batch: int, device: str,
             dtype: str = "float32", compile: bool = False, seed: int = 0) -> Case:
    """``n`` DDIM (eta 0) samples of ``steps`` steps by one path:

    * ``standard``: :func:`maskpro_eval.sampling.standard.generate` (diffusers scheduler, autocast dtype);
    * ``fast``: :meth:`maskpro_eval.sampling.fast.FastDDIMSampler.images` (weights cast, padded batches);
    * ``diffusers``: ``diffusers.DDIMPipeline`` with ``output_type="np"`` (the published protocol's anchor).
    """
    import copy
    model = copy.deepcopy(unet)
    info = {"path": path, "n": n, "steps": steps, "batch": batch, "dtype": dtype, "compile": compile}
    if path == "standard":
        from maskpro_eval.sampling.config import SamplingConfig
        from maskpro_eval.sampling.standard import generate
        cfg = SamplingConfig(sampler="ddim", num_inference_steps=steps, eta=0.0, seed=seed, batch_size=batch,
                             dtype=dtype, device=device)

        def fn():
            return generate(model, cfg, start=0, count=n, scheduler_config=scheduler_config, progress=False)
    elif path == "fast":
        from maskpro_eval.sampling.fast import FastDDIMSampler
        sampler = FastDDIMSampler(model, scheduler_config=scheduler_config, steps=steps, seed=seed,
                                  batch_size=batch, dtype=dtype, compile=compile, device=device)

        def fn():
            return sampler.images(n)
    elif path == "diffusers":
        from diffusers import DDIMPipeline, DDIMScheduler

        from maskpro_eval.checkpoints.architecture import DDPM_CIFAR10_SCHEDULER_CONFIG
        sched = DDIMScheduler.from_config(scheduler_config or DDPM_CIFAR10_SCHEDULER_CONFIG)
        pipe = DDIMPipeline(unet=model, scheduler=sched).to(device)
        pipe.set_progress_bar_config(disable=True)

        def fn():
            gen = torch.Generator(device="cpu").manual_seed(seed)
            out = [pipe(batch_size=min(batch, n - s), num_inference_steps=steps, generator=gen,
                        output_type="np").images for s in range(0, n, batch)]
            return np.concatenate(out)
    else:
        raise ValueError(f"sampling path {path!r}; expected one of {SAMPLING_PATHS}")
    return Case(f"sampling-{path}-{dtype}", fn, n * steps, "img-steps", str(device), info)


# ------------------------------------------------------------------------ fast-path settings (sweep)
#: Tokens of a fast-path setting, joined by '+' (e.g. ``compile+freeze+bf16``); besides these, ``io.NAME`` sets the
#: boolean inductor option NAME (e.g. ``compile+fp16+io.max_autotune_pointwise``) and ``io0.NAME`` clears it.
SETTING_TOKENS = {
    "compile": "torch.compile (default mode)",
    "ma": "torch.compile mode max-autotune-no-cudagraphs",
    "freeze": "inductor freezing (weights constant-folded)",
    "cdt": "inductor coordinate_descent_tuning",
    "bench": "cudnn.benchmark",
    "cl": "channels-last UNet and input",
    "graph": "CUDA graph around the UNet call",
    "tt": "time embedding once per step for the whole batch (sampling.time_table)",
    "gn": "one-pass GroupNorm (+ bias/time add, + SiLU) Triton kernel (sampling.group_norm)",
    "tcp": "3x3 convolutions as TMA-fed implicit GEMMs in Triton over a zero-padded input instead of cuDNN "
           "(sampling.tma_conv)",
    "2s": "each batch split in two halves, each half's DDIM steps on its own CUDA stream (engine option streams=2)",
    "4s": "each batch split in four parts on four CUDA streams (engine option streams=4)",
    "fr": "fused ResnetBlock2D: Triton 3x3 convolutions with GroupNorm/SiLU prologue, bias/time/residual/stats epilogue",
    "fp16": "float16 UNet (the default)",
    "bf16": "bfloat16 UNet",
    "tf32": "float32 UNet, TF32 matmuls/convolutions",
    "fp32": "float32 UNet, TF32 off (strict)",
}


def setting_config(setting: str, batch: int) -> dict:
    """``"compile+freeze+bf16"`` -> FastDDIMSampler keyword arguments (SamplingConfig fields and FastEngineOptions)."""
    toks = [t for t in setting.split("+") if t]
    # any boolean inductor option: io.NAME sets it, io0.NAME clears it
    io = [t for t in toks if t.startswith(("io.", "io0."))]
    extra = {t.split(".", 1)[1]: t.startswith("io.") for t in io}
    toks = [t for t in toks if t not in io]
    bad = [t for t in toks if t not in SETTING_TOKENS]
    if bad:
        raise ValueError(f"unknown setting tokens {bad}; known: {', '.join(SETTING_TOKENS)}")
    dtypes = [t for t in toks if t in ("fp16", "bf16", "tf32", "fp32")]
    if len(dtypes) > 1:
        raise ValueError(f"setting {setting!r}: at most one of fp16, bf16, tf32, fp32")
    dt = dtypes[0] if dtypes else "fp16"
    opts = {k: True for t, k in (("cdt", "coordinate_descent_tuning"), ("freeze", "freezing")) if t in toks} | extra
    return dict(batch_size=batch, dtype={"fp16": "float16", "bf16": "bfloat16"}.get(dt, "float32"),
                allow_tf32={"tf32": True, "fp32": False}.get(dt), compile="compile" in toks or "ma" in toks,
                compile_mode="max-autotune-no-cudagraphs" if "ma" in toks else None,
                compile_options=opts or None, cudnn_benchmark="bench" in toks, channels_last="cl" in toks,
                cuda_graph="graph" in toks, time_table="tt" in toks, fused_resnet="fr" in toks,
                onepass_group_norm="gn" in toks, tma_conv="tcp" in toks,
                streams=4 if "4s" in toks else 2 if "2s" in toks else 1)


def fast_sampler(unet, scheduler_config, setting: str, batch: int, steps: int, device: str):
    """A warmed-up :class:`~maskpro_eval.sampling.fast.FastDDIMSampler` for ``setting``; ``(sampler, warmup_s)``."""
    from maskpro_eval.sampling.fast import FastDDIMSampler
    s = FastDDIMSampler(unet, scheduler_config=scheduler_config, steps=steps, device=device,
                        **setting_config(setting, batch))
    return s, s.warmup()


def unet_call(sampler, batch: int, setting: str = "") -> Case:
    """One UNet call of ``sampler`` as sampling makes it (:meth:`FastDDIMSampler.unet_call`, middle step)."""
    from maskpro_eval.analysis.flops import unet_flops_per_image_step
    call_batch = batch // sampler.engine.streams  # with streams, sampling calls the UNet on one part at a time
    x = sampler.noise(range(call_batch))

    def fn():
        with sampler.forward_context():
            return sampler.unet_call(x)
    return Case(f"unet-call-{setting}", fn, call_batch, "img-steps", str(sampler.device),
                {"setting": setting, "batch": batch, "call_batch": call_batch,
                 "flops_per_unit": unet_flops_per_image_step(sampler.model)["flops"]})


def whole_batch(sampler, batch: int, setting: str = "") -> Case:
    """All DDIM steps of one batch (:meth:`FastDDIMSampler.denoise`: UNet calls plus the DDIM updates)."""
    x = sampler.noise(range(batch))
    steps = int(sampler.sampling.num_inference_steps)
    return Case(f"denoise-{setting}", lambda: sampler.denoise(x), batch * steps, "img-steps", str(sampler.device),
                {"setting": setting, "batch": batch, "steps": steps})


# ------------------------------------------------------------------------------------------ features
def inception(n: int, batch: int, device: str, strict_fp32: bool = True, deterministic: bool = True,
              weights=None, seed: int = 0) -> Case:
    """Inception pool3 features of ``n`` random 32x32 uint8 images (:class:`GPUInceptionFeatures`)."""
    from maskpro_eval.metrics.gpu_features import GPUInceptionFeatures
    ext = GPUInceptionFeatures(weights, device=device, batch_size=batch, strict_fp32=strict_fp32,
                               deterministic=deterministic)
    g = torch.Generator().manual_seed(seed)
    imgs = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8).to(device)
    mode = f"{'strict-fp32' if strict_fp32 else 'tf32'}/{'deterministic' if deterministic else 'nondeterministic'}"
    return Case(f"inception-{mode}", lambda: ext(imgs), n, "img", str(device),
                {"mode": mode, "n": n, "batch": batch, "features_protocol": ext.protocol})


FRECHET_BACKENDS = ("numpy", "torch")


def frechet(n: int, dim: int, backend: str = "numpy", device: str = "cpu", seed: int = 0) -> Case:
    """Statistics (mean, covariance) of ``n`` x ``dim`` features plus the Frechet distance to a fixed
    reference: ``numpy`` (:mod:`maskpro_eval.metrics.fid`, float64 CPU) or ``torch`` (float64 on ``device``)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, dim)).astype(np.float32)
    b = rng.standard_normal((n, dim)).astype(np.float32) * 1.1 + 0.1
    if backend == "numpy":
        from maskpro_eval.metrics.fid import feature_statistics, frechet_distance
        ref = feature_statistics(b)

        def fn():
            return frechet_distance(*feature_statistics(a), *ref)
        dev = "cpu"
    elif backend == "torch":
        from maskpro_eval.metrics.gpu_features import feature_statistics_torch, frechet_distance_torch
        ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
        ref = feature_statistics_torch(tb)

        def fn():
            return frechet_distance_torch(*feature_statistics_torch(ta), *ref, device=ta.device)
        dev = str(device)
    else:
        raise ValueError(f"frechet backend {backend!r}; expected one of {FRECHET_BACKENDS}")
    return Case(f"frechet-{backend}", fn, 1, "FID", dev, {"backend": backend, "n": n, "dim": dim})
