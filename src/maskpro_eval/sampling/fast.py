"""Fast, faithful DDIM (eta 0) sampling for the full tier: fp16 by default (bf16 and fp32 options), large
batches, optional ``torch.compile`` and CUDA graphs, same per-sample noise rule as :mod:`maskpro_eval.sampling.standard`.

Why fp16 and not bf16: on a trained UNet (the demo zoo's dense model, N=10,240 per set, H100) the FID of
fp16 samples stayed within the fp32 seed-to-seed spread (differences 0.008/-0.001/0.003 against a spread of
std 0.016), while bf16 shifted it by 0.11-0.15 (7-10 standard deviations); both run at the same speed on
tensor cores (benchmarks/README.md). A non-finite UNet output (fp16 overflow) raises
:class:`FastSamplingError` instead of producing black images.

Faithfulness
------------
* Noise: sample ``i``'s ``x_T`` is :func:`maskpro_eval.sampling.noise.sample_noise` (one CPU generator per
  sample, ``noise_seed(seed, i)``), exactly as the standard path. DDIM with eta 0 draws nothing else,
  so the samples are a deterministic function of ``x_T``: which batch, process or GPU makes a sample
  does not change its noise.
* Scheduler: the per-step coefficients are computed from the same ``DDIMScheduler`` object
  (:func:`maskpro_eval.sampling.config.make_scheduler`) with the same float32 0-dim tensor arithmetic as
  ``DDIMScheduler.step``, and the update is applied with the same operand order. On the CPU in float32
  the fast path is bit-identical to :func:`maskpro_eval.sampling.standard.generate` (tested).
* The UNet runs in fp16 (default), bf16 (weights cast; ``autocast=True`` keeps fp32 weights under
  ``torch.autocast``) or fp32; its output is upcast, and the DDIM update and the uint8 quantisation
  ``(x*127.5+128).clamp(0,255)`` run eagerly in float32 (never compiled: a fused multiply-add would
  round differently).
* A last, partial batch is padded to the full batch (``pad_last_batch``, default on CUDA) so every
  UNet call has one shape: one compiled graph, one CUDA graph, and kernels chosen per shape are the same
  for every sample.

Only DDIM with eta 0 is supported (the published protocol); anything else raises with the fix (use
:func:`maskpro_eval.sampling.standard.generate`).
"""
from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, replace
from typing import Iterator, Sequence

import numpy as np
import torch

from maskpro_eval.errors import MaskProEvalError
from maskpro_eval.runtime.dtypes import torch_dtype
from maskpro_eval.sampling.config import (DEFAULT_DDIM_STEPS, NOISE_RULE, QUANTISATION, SamplingConfig, SamplingError,
                                          make_scheduler, warn_half_precision_on_cpu)
from maskpro_eval.sampling.noise import sample_noise
from maskpro_eval.sampling.unet_io import in_fixed_chunks, model_output, unet_info

__all__ = ["FastEngineOptions", "fast_configs", "FastDDIMSampler", "ddim_coefficients", "quantize_uint8", "inductor_options",
           "parse_compile_options"]



class FastSamplingError(MaskProEvalError, ValueError):
    """A request the fast path cannot serve faithfully."""


#: Fast-path defaults where the caller gives none: a batch that fills an H100/H200, and float16 (faithful
#: on a trained UNet; bf16 is not, see the module docstring).
FAST_DEFAULTS = {"batch_size": 1024, "dtype": "float16"}


@dataclass
class FastEngineOptions:
    """How the fast engine runs the UNet (none of these change which noise a sample gets; the sampling
    protocol itself - steps, seed, batch, dtype, compile, device - is the one :class:`SamplingConfig`).

    Attributes:
        autocast: reduced precision via ``torch.autocast`` with fp32 weights instead of casting the weights.
        compile_mode: ``torch.compile`` mode when ``SamplingConfig.compile`` (None = default mode).
        compile_options: inductor options for ``torch.compile(options=...)`` (e.g.
            ``{"coordinate_descent_tuning": True, "freezing": True}``); the mode is folded in
            (``"max-autotune-no-cudagraphs"`` -> ``max_autotune=True``), since torch takes one or the other.
        cudnn_benchmark: let cuDNN time its convolution algorithms per shape (``torch.backends.cudnn.benchmark``)
            while sampling; restored afterwards.
        cuda_graph: capture the UNet call in a CUDA graph (static buffers) and replay it.
        channels_last: run the UNet in channels-last memory format (always on with ``fused_resnet`` and
            ``onepass_group_norm``: their kernels load a pixel's channels contiguously).
        pad_last_batch: pad a partial last batch to ``batch_size`` (None: on CUDA only).
        allow_tf32: set TF32 for fp32 matmuls/convs during sampling (None: leave PyTorch's flags).
        time_table: compute the time embedding once per DDIM step for the whole batch (every sample shares
            ``t``): each resnet's projected time vector precomputed for the sampler's timesteps
            (:mod:`maskpro_eval.sampling.time_table`; checked against the unpatched UNet when installed).
        fused_block: the tile of the fused convolutions that ``SamplingConfig.fused_resnet`` (the one switch,
            part of the protocol; keyword ``fused_resnet=``) turns on; the install report is
            ``FastDDIMSampler.fused_report``. Tile ``(BLOCK_M, BLOCK_N, BLOCK_K[, num_warps[, num_stages]])``.
        tma_conv: run the UNet's 3x3 stride-1 convolutions (C_in, C_out multiples of 8) as TMA-fed implicit
            GEMMs in Triton instead of cuDNN (:mod:`maskpro_eval.sampling.tma_conv`; Hopper GPUs, float16/
            bfloat16; launch configuration timed per shape on the first call; checked against the unpatched
            UNet when installed; install report ``FastDDIMSampler.tma_conv_report``). Like ``cudnn_benchmark``
            it changes only which kernel computes a convolution (float32 accumulation either way). Measured
            slower than cuDNN in the compiled UNet (0.76x on an H100), so off by default.
        streams: split every batch into this many equal parts and run each part's DDIM steps on its own CUDA
            stream, so that one part's memory-bound kernels can run beside another part's convolutions. The
            UNet is then called at ``batch_size / streams`` (the batch size must divide). On a CPU the parts
            run one after the other (same images as ``streams=1``). Not with ``cuda_graph`` or ``time_table``.
    """

    autocast: bool = False
    compile_mode: str | None = None
    compile_options: dict | None = None
    cudnn_benchmark: bool = False
    cuda_graph: bool = False
    channels_last: bool = False
    pad_last_batch: bool | None = None
    allow_tf32: bool | None = None
    time_table: bool = False
    fused_block: tuple | None = None
    tma_conv: bool = False
    streams: int = 1

    def to_dict(self) -> dict:
        return asdict(self)


_ENGINE_KEYS = set(FastEngineOptions.__dataclass_fields__)
#: keyword -> SamplingConfig field (``steps`` is the fast path's historical name for the step count)
_SAMPLING_KEYS = {"steps": "num_inference_steps", "num_inference_steps": "num_inference_steps", "seed": "seed",
                  "batch_size": "batch_size", "dtype": "dtype", "compile": "compile", "device": "device",
                  "fused_resnet": "fused_resnet", "onepass_group_norm": "onepass_group_norm"}


def fast_configs(sampling: SamplingConfig | None = None, engine: FastEngineOptions | None = None,
                 **kwargs) -> tuple[SamplingConfig, FastEngineOptions]:
    """``(SamplingConfig, FastEngineOptions)`` of a fast sampler; keyword arguments override either
    (``steps``, ``seed``, ``batch_size``, ``dtype``, ``compile``, ``device`` or an engine option)."""
    unknown = set(kwargs) - _ENGINE_KEYS - set(_SAMPLING_KEYS)
    if unknown:
        raise FastSamplingError(f"unknown fast-sampler option(s) {sorted(unknown)}; expected SamplingConfig "
                                f"fields {sorted(_SAMPLING_KEYS)} or FastEngineOptions fields {sorted(_ENGINE_KEYS)}")
    samp = {_SAMPLING_KEYS[k]: v for k, v in kwargs.items() if k in _SAMPLING_KEYS}
    if sampling is None:
        samp = {**{k: v for k, v in FAST_DEFAULTS.items() if k not in samp}, **samp}
        samp.setdefault("num_inference_steps", DEFAULT_DDIM_STEPS)
    try:
        sampling = replace(sampling or SamplingConfig(backend="fast"), backend="fast", **samp)
    except SamplingError as e:
        raise FastSamplingError(str(e)) from None
    if sampling.sampler != "ddim" or sampling.eta != 0.0:
        raise FastSamplingError(f"the fast path runs DDIM with eta 0 only, got {sampling.sampler} eta={sampling.eta}")
    engine = replace(engine or FastEngineOptions(), **{k: v for k, v in kwargs.items() if k in _ENGINE_KEYS})
    return sampling, engine


def ddim_coefficients(scheduler) -> list[dict]:
    """Per-step coefficients of ``DDIMScheduler.step`` (eta 0) as float32 0-dim CPU tensors.

    Computed with exactly the expressions of diffusers' ``DDIMScheduler.step`` so that applying them
    in the same order reproduces its result bit for bit.
    """
    cfg = scheduler.config
    if getattr(cfg, "thresholding", False):
        raise FastSamplingError("the scheduler uses dynamic thresholding; the fast path implements clip_sample "
                                "only. Fix: use maskpro_eval.sampling.standard.generate")
    n_train = int(cfg.num_train_timesteps)
    n_inf = int(scheduler.num_inference_steps)
    out = []
    for t in scheduler.timesteps:
        timestep = t
        prev_timestep = timestep - n_train // n_inf
        alpha_prod_t = scheduler.alphas_cumprod[timestep]
        alpha_prod_t_prev = (scheduler.alphas_cumprod[prev_timestep] if prev_timestep >= 0
                             else scheduler.final_alpha_cumprod)
        beta_prod_t = 1 - alpha_prod_t
        variance = scheduler._get_variance(timestep, prev_timestep)
        std_dev_t = 0.0 * variance ** (0.5)
        out.append({
            "t": int(timestep),
            "sqrt_beta": beta_prod_t ** (0.5),
            "sqrt_alpha": alpha_prod_t ** (0.5),
            "sqrt_alpha_prev": alpha_prod_t_prev ** (0.5),
            "dir": (1 - alpha_prod_t_prev - std_dev_t ** 2) ** (0.5),
        })
    return out


def quantize_uint8(x: torch.Tensor) -> torch.Tensor:
    """``(x*127.5+128).clamp(0,255).to(uint8)`` in float32 on x's device (NaN -> 0), NCHW kept.

    The same operations as :func:`maskpro_eval.sampling.images.to_uint8`, eagerly, so GPU and CPU agree exactly.
    """
    t = torch.nan_to_num(x.float(), nan=-1.0)
    return (t * 127.5 + 128).clamp(0, 255).to(torch.uint8)


class FastDDIMSampler:
    """DDIM eta-0 sampler for a ``UNet2DModel`` (or any module with ``.config`` and ``(x, t)`` forward).

    ``sampler.images(seed, count)`` -> uint8 ``N x H x W x C`` numpy (like ``sampling.generate``);
    ``sampler.iter_batches(indices)`` yields ``(batch_indices, uint8 NCHW tensor on the device)`` for
    streaming consumers (GPU feature extraction). The model given is not modified (a copy is made when
    a dtype cast, compile or channels-last is asked for).
    """

    def __init__(self, unet, sampling: SamplingConfig | None = None, engine: FastEngineOptions | None = None,
                 scheduler_config=None, **kwargs):
        self.sampling, self.engine = fast_configs(sampling, engine, **kwargs)
        cfg, eng = self.sampling, self.engine
        p_device, p_dtype, shape = unet_info(unet)
        self.shape = shape
        if cfg.device is not None:
            device = torch.device(cfg.device)
        else:
            device = torch.device("cuda") if torch.cuda.is_available() else p_device
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = device
        self.dtype = torch_dtype(cfg.dtype)
        warn_half_precision_on_cpu(device, self.dtype)
        self.pad_last_batch = (device.type == "cuda") if eng.pad_last_batch is None else bool(eng.pad_last_batch)
        self.scheduler = make_scheduler("ddim", scheduler_config, int(cfg.num_inference_steps))
        self.coefs = ddim_coefficients(self.scheduler)
        self.prediction_type = self.scheduler.config.prediction_type
        if self.prediction_type not in ("epsilon", "sample", "v_prediction"):
            raise FastSamplingError(f"prediction_type {self.prediction_type!r} unsupported")
        self.clip = bool(self.scheduler.config.clip_sample)
        self.clip_range = float(self.scheduler.config.clip_sample_range)

        if not isinstance(eng.streams, int) or eng.streams < 1 or int(cfg.batch_size) % eng.streams:
            raise FastSamplingError(f"streams={eng.streams!r}: expected a positive integer that divides the batch "
                                    f"size {cfg.batch_size}")
        if eng.streams > 1 and (eng.cuda_graph or eng.time_table):
            raise FastSamplingError("streams > 1 runs the batch's parts on separate CUDA streams; it does not combine "
                                    "with cuda_graph (one captured call per batch) or time_table (one step index "
                                    "shared by every call): choose one")
        if cfg.compile_options:  # the protocol's inductor options; an engine option of the same name wins
            eng = self.engine = replace(eng, compile_options={**cfg.compile_options, **(eng.compile_options or {})})
        if cfg.compile and eng.compile_options:
            check_inductor_options(eng.compile_options)
        if eng.tma_conv and (cfg.fused_resnet or cfg.onepass_group_norm):
            raise FastSamplingError("tma_conv replaces the convolutions that fused_resnet and onepass_group_norm "
                                    "call themselves; choose one")
        needs_copy = (device != p_device or (self.dtype != p_dtype and not eng.autocast) or cfg.compile
                      or eng.channels_last or eng.time_table or cfg.fused_resnet or cfg.onepass_group_norm
                      or eng.tma_conv)
        model = copy.deepcopy(unet) if needs_copy else unet
        model = model.to(device)
        if not eng.autocast and self.dtype != p_dtype:
            import logging
            dl = logging.getLogger("diffusers")
            level = dl.level
            dl.setLevel(logging.ERROR)  # diffusers' advice about .to(dtype) does not apply to UNet2DModel
            try:
                model = model.to(self.dtype)
            finally:
                dl.setLevel(level)
        self.channels_last = bool(eng.channels_last or cfg.fused_resnet or cfg.onepass_group_norm or eng.tma_conv)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        model.eval().requires_grad_(False)
        self._t_rows, self._t_index = None, None
        if eng.time_table:
            from maskpro_eval.sampling.time_table import install_time_table
            self._t_rows, self._t_index = install_time_table(model, [int(c["t"]) for c in self.coefs])
        self.fused_report = None
        self.group_norm_report = None
        if cfg.onepass_group_norm:  # the install report: SamplingConfig.onepass_group_norm, self.group_norm_report
            from maskpro_eval.sampling.group_norm import install_onepass_group_norm
            self.group_norm_report = install_onepass_group_norm(model)
        if cfg.fused_resnet:
            from maskpro_eval.sampling.fused_resnet import install_fused_resnets
            kw = {"block_shape": tuple(eng.fused_block)} if eng.fused_block else {}
            self.fused_report = install_fused_resnets(model, **kw)
        self.tma_conv_report = None
        if eng.tma_conv:
            from maskpro_eval.sampling.tma_conv import install_tma_conv
            self.tma_conv_report = install_tma_conv(model)
        self.model = model
        self.in_dtype = torch.float32 if eng.autocast else self.dtype
        self._fwd = self._make_forward()
        self._graph = None
        self.compile_seconds: float | None = None
        self.stats = {"unet_calls": 0, "images": 0, "padded_images": 0}

    # ------------------------------------------------------------------ model call
    def _make_forward(self):
        model, cfg, eng = self.model, self.sampling, self.engine

        def fwd(x, t):
            return model_output(model(x, t, return_dict=False))

        if cfg.compile:
            if eng.compile_options:
                fwd = torch.compile(fwd, dynamic=False, options=inductor_options(eng.compile_mode, eng.compile_options))
            else:
                fwd = torch.compile(fwd, mode=eng.compile_mode, dynamic=False)
        return fwd

    def _autocast(self):
        import contextlib
        if self.engine.autocast and self.dtype != torch.float32:
            return torch.autocast(device_type=self.device.type, dtype=self.dtype)
        return contextlib.nullcontext()

    def forward_context(self):
        """Everything a UNet call of this sampler runs under: inference mode, autocast (if asked for) and the
        backend flags (TF32, ``cudnn.benchmark``), all restored on exit."""
        import contextlib
        stack = contextlib.ExitStack()
        for ctx in (torch.inference_mode(), self._autocast(), self._backend_flags()):
            stack.enter_context(ctx)
        return stack

    def _backend_flags(self):
        """Backend flags while sampling: TF32 (``allow_tf32``) and ``cudnn.benchmark``; restored on exit."""
        import contextlib
        if self.device.type != "cuda" or (self.engine.allow_tf32 is None and not self.engine.cudnn_benchmark):
            return contextlib.nullcontext()
        from maskpro_eval.runtime.timing import backend_flags
        return backend_flags(tf32=self.engine.allow_tf32, cudnn_benchmark=True if self.engine.cudnn_benchmark else None)

    def _prep_input(self, x: torch.Tensor) -> torch.Tensor:
        x_in = x if self.in_dtype == torch.float32 else x.to(self.in_dtype)
        if self.channels_last:
            x_in = x_in.contiguous(memory_format=torch.channels_last)
        return x_in

    def _timestep_tensor(self, t: int, batch: int) -> torch.Tensor:
        key = (t, batch)
        cache = self.__dict__.setdefault("_tcache", {})
        if key not in cache:
            cache[key] = torch.full((batch,), t, dtype=torch.long, device=self.device)
        return cache[key]

    def _call_unet(self, x_in: torch.Tensor, t: int) -> torch.Tensor:
        b = x_in.shape[0]
        self.stats["unet_calls"] += 1
        if self._t_index is not None:
            if t not in self._t_rows:
                raise FastSamplingError(f"time table: timestep {t} is not one of this sampler's DDIM timesteps")
            self._t_index.fill_(self._t_rows[t])
        if self.engine.cuda_graph and self.device.type == "cuda":
            return self._call_graph(x_in, t)
        if self.device.type == "cpu":
            # fixed call shape on a CPU, as sampling.standard.generate (bit-identical images, any batch)
            return in_fixed_chunks(lambda c: self._fwd(c, self._timestep_tensor(t, c.shape[0])), x_in)
        if b == 1:
            # batch-1 calls take other kernels than batched ones (sampling.generate does the same)
            return self._fwd(torch.cat([x_in, x_in]), self._timestep_tensor(t, 2))[:1]
        return self._fwd(x_in, self._timestep_tensor(t, b))

    def _call_graph(self, x_in: torch.Tensor, t: int) -> torch.Tensor:
        b = x_in.shape[0]
        if self._graph is None or self._graph[0] != b:
            from maskpro_eval.runtime.timing import capture_cuda_graph
            static_x = torch.zeros_like(x_in)
            static_t = torch.full((b,), int(self.coefs[0]["t"]), dtype=torch.long, device=self.device)
            static_x.copy_(x_in)

            def run():
                return self._fwd(static_x, static_t)

            with self.forward_context():
                graph, out = capture_cuda_graph(run, warmup=3)
            self._graph = (b, graph, static_x, static_t, out)
        _, graph, static_x, static_t, out = self._graph
        static_x.copy_(x_in)
        static_t.fill_(int(t))
        graph.replay()
        return out

    def unet_call(self, x: torch.Tensor, step: int | None = None) -> torch.Tensor:
        """One UNet call exactly as sampling makes it: ``x`` (float32, ``B x C x H x W`` on the device) cast
        to the sampler's input dtype and layout, the timestep of DDIM step ``step`` (default: the middle
        one), the compiled forward or CUDA graph when configured. Returns the raw model output.

        Call it inside :meth:`forward_context` (as :meth:`denoise` does): this is the unit that speed
        benchmarks and profiles time, without the DDIM update around it.
        """
        k = len(self.coefs) // 2 if step is None else int(step)
        return self._call_unet(self._prep_input(x), self.coefs[k]["t"])

    # ------------------------------------------------------------------ DDIM
    def _step(self, eps: torch.Tensor, k: int, x: torch.Tensor) -> torch.Tensor:
        c = self.coefs[k]
        if self.prediction_type == "epsilon":
            x0 = (x - c["sqrt_beta"] * eps) / c["sqrt_alpha"]
            pred_eps = eps
        elif self.prediction_type == "sample":
            x0 = eps
            pred_eps = (x - c["sqrt_alpha"] * x0) / c["sqrt_beta"]
        else:  # v_prediction
            x0 = c["sqrt_alpha"] * x - c["sqrt_beta"] * eps
            pred_eps = c["sqrt_alpha"] * eps + c["sqrt_beta"] * x
        if self.clip:
            x0 = x0.clamp(-self.clip_range, self.clip_range)
        direction = c["dir"] * pred_eps
        return c["sqrt_alpha_prev"] * x0 + direction

    def _denoise_step(self, x: torch.Tensor, k: int) -> torch.Tensor:
        eps = self._call_unet(self._prep_input(x), self.coefs[k]["t"]).float()
        if self.channels_last:
            eps = eps.contiguous()
        return self._step(eps, k, x).float()

    def _part_streams(self) -> list:
        """The side streams of ``engine.streams`` (CUDA only; created once)."""
        if self.device.type != "cuda":
            return [None] * self.engine.streams
        if getattr(self, "_streams", None) is None:
            self._streams = [torch.cuda.Stream(self.device) for _ in range(self.engine.streams)]
        return self._streams

    def denoise(self, x_T: torch.Tensor) -> torch.Tensor:
        """x_T (float32, on the device) -> x_0 (float32): all DDIM steps."""
        if self.engine.streams > 1:
            return self._denoise_parts(x_T)
        x = x_T
        with self.forward_context():
            for k in range(len(self.coefs)):
                x = self._denoise_step(x, k)
        return x

    def _denoise_parts(self, x_T: torch.Tensor) -> torch.Tensor:
        """:meth:`denoise` with the batch split into ``engine.streams`` parts, each on its own stream; the
        steps are issued part after part, so the GPU may overlap one part's kernels with another's."""
        import contextlib
        if x_T.shape[0] % self.engine.streams:
            raise FastSamplingError(f"streams={self.engine.streams}: a batch of {x_T.shape[0]} does not split evenly")
        parts = list(x_T.chunk(self.engine.streams))
        streams = self._part_streams()
        main = torch.cuda.current_stream(self.device) if self.device.type == "cuda" else None
        with self.forward_context():
            for s in streams:
                if s is not None:
                    s.wait_stream(main)
            for k in range(len(self.coefs)):
                for j, s in enumerate(streams):
                    with torch.cuda.stream(s) if s is not None else contextlib.nullcontext():
                        parts[j] = self._denoise_step(parts[j], k)
            for j, s in enumerate(streams):
                if s is not None:
                    main.wait_stream(s)
                    parts[j].record_stream(main)
        return torch.cat(parts)

    def warmup(self, batch_size: int | None = None) -> float:
        """Compile / capture at the run's UNet call shape (the batch size over ``engine.streams``) on random
        input; returns the seconds it took."""
        b = int(batch_size or self.sampling.batch_size) // self.engine.streams
        t0 = time.perf_counter()
        x = torch.randn((b, *self.shape), device=self.device, generator=None)
        with self.forward_context():
            for c in self.coefs[:2]:
                self._call_unet(self._prep_input(x), c["t"])
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.compile_seconds = time.perf_counter() - t0
        return self.compile_seconds

    def reseeded(self, seed: int) -> "FastDDIMSampler":
        """This sampler for another run seed, sharing the prepared (cast, compiled) model: no second copy
        or compilation. Sample ``i`` of the result gets the noise of ``(seed, i)``."""
        if int(seed) == int(self.sampling.seed):
            return self
        other = copy.copy(self)
        other.sampling = replace(self.sampling, seed=int(seed))
        other.stats = {"unet_calls": 0, "images": 0, "padded_images": 0}
        return other

    # ------------------------------------------------------------------ batches
    def noise(self, indices: Sequence[int]) -> torch.Tensor:
        """x_T of the given samples on the device (drawn on the CPU by the standard rule)."""
        x = sample_noise(self.sampling.seed, list(indices), self.shape)
        if self.device.type == "cuda":
            return x.pin_memory().to(self.device, non_blocking=True)
        return x.to(self.device)

    def iter_batches(self, indices: Sequence[int] | int, batch_size: int | None = None
                     ) -> Iterator[tuple[list[int], torch.Tensor]]:
        """Yield ``(batch_indices, uint8 N x C x H x W on the device)`` batch by batch (no host sync)."""
        idx = list(range(indices)) if isinstance(indices, (int, np.integer)) else [int(i) for i in indices]
        b = int(batch_size or self.sampling.batch_size)
        pending = None  # (indices, device flag) of the previous batch: checked one batch late (no stall)
        for s in range(0, len(idx), b):
            bidx = idx[s:s + b]
            x = self.noise(bidx)
            n = len(bidx)
            if self.pad_last_batch and n < b:
                pad = torch.zeros((b - n, *self.shape), dtype=x.dtype, device=x.device)
                x = torch.cat([x, pad])
                self.stats["padded_images"] += b - n
            x0 = self.denoise(x)[:n]
            self.stats["images"] += n
            finite = torch.isfinite(x0).all()
            if pending is not None:
                self._check_finite(*pending)
            pending = (bidx, finite)
            yield bidx, quantize_uint8(x0)
        if pending is not None:
            self._check_finite(*pending)

    def _check_finite(self, bidx: list[int], flag: torch.Tensor) -> None:
        if not bool(flag):
            raise FastSamplingError(
                f"the UNet gave non-finite values (overflow) in {self.sampling.dtype} for samples {bidx[0]}..{bidx[-1]} "
                f"(seed {self.sampling.seed}). Fix: sample with dtype='float32' (CLI: --dtype float32), or check the "
                "checkpoint (the quick tier's forward-finite gate)")

    def images(self, count: int | None = None, *, start: int = 0, indices: Sequence[int] | None = None
               ) -> np.ndarray:
        """uint8 ``N x H x W x C`` samples (same layout and values as ``sampling.generate``)."""
        if indices is None:
            if count is None:
                raise FastSamplingError("give count (with optional start) or indices")
            indices = range(int(start), int(start) + int(count))
        return next(self.iter_images([list(indices)]))[1]

    def iter_images(self, groups: Sequence[Sequence[int]]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(k, uint8 N x H x W x C)`` for each group ``k`` of sample indices, in order, as soon as
        the group's last image is on the host (same values as :meth:`images` of each group).

        The groups' samples are made in batches of the sampler's batch size over the concatenated indices
        (a batch may span two groups, so only the very last batch can be partial). A group comes out only
        once every batch it holds was checked finite; see :meth:`_host_batches` for why neither the host copies
        nor the caller's work on a finished group leave the GPU idle.
        """
        groups = [[int(i) for i in g] for g in groups]
        h, w, c = self.shape[1], self.shape[2], self.shape[0]
        batches = self._host_batches([i for g in groups for i in g])
        arr, off = np.empty((0, h, w, c), dtype=np.uint8), 0
        for k, g in enumerate(groups):
            out, pos = np.empty((len(g), h, w, c), dtype=np.uint8), 0
            while pos < len(g):
                if off == len(arr):
                    arr, off = next(batches), 0
                n = min(len(g) - pos, len(arr) - off)
                out[pos:pos + n] = arr[off:off + n]
                pos, off = pos + n, off + n
            yield k, out

    def _host_batches(self, indices: list[int]) -> Iterator[np.ndarray]:
        """uint8 ``N x H x W x C`` host arrays of :meth:`iter_batches`, in order, each handed out one batch late:
        only after :meth:`iter_batches` has checked it finite (so no caller stores a non-finite batch) and, on
        CUDA, with its copy to pinned memory issued as soon as the batch is queued and waited for only after the
        next batch has been queued, so the GPU never waits for the host between batches."""
        cuda = self.device.type == "cuda"
        pending = None   # (host tensor, copy event or None) of the previous batch
        for _, u8 in self.iter_batches(indices):
            nhwc, done = u8.permute(0, 2, 3, 1), None
            if cuda:
                host = torch.empty(nhwc.shape, dtype=torch.uint8, pin_memory=True)
                host.copy_(nhwc.contiguous(), non_blocking=True)
                done = torch.cuda.Event()
                done.record(torch.cuda.current_stream(self.device))   # the sampler's device, not the current one
            else:
                host = nhwc
            if pending is not None:
                yield _finished(*pending)
            pending = (host, done)
        if pending is not None:
            yield _finished(*pending)

    def protocol(self) -> dict:
        return {"sampler": "ddim", "eta": 0.0, "steps": int(self.sampling.num_inference_steps), "seed": int(self.sampling.seed),
                "noise_rule": NOISE_RULE, "quantisation": QUANTISATION, "dtype": self.sampling.dtype,
                "autocast": self.engine.autocast, "compile": self.sampling.compile,
                "compile_mode": self.engine.compile_mode, "compile_options": self.engine.compile_options,
                "cudnn_benchmark": self.engine.cudnn_benchmark, "cuda_graph": self.engine.cuda_graph,
                "channels_last": self.channels_last, "batch_size": int(self.sampling.batch_size),
                "pad_last_batch": self.pad_last_batch, "allow_tf32": self.engine.allow_tf32,
                "device": str(self.device), **({"time_table": True} if self.engine.time_table else {}),
                **({"tma_conv": True} if self.engine.tma_conv else {}),
                **({"streams": self.engine.streams} if self.engine.streams > 1 else {}),
                **({"fused_resnet": True, "fused_block": list(self.engine.fused_block or ())}
                   if self.sampling.fused_resnet else {}),
                **({"onepass_group_norm": True} if self.sampling.onepass_group_norm else {})}


_MODE_OPTIONS = {
    None: {}, "default": {},
    "reduce-overhead": {"triton.cudagraphs": True},
    "max-autotune": {"max_autotune": True, "triton.cudagraphs": True},
    "max-autotune-no-cudagraphs": {"max_autotune": True},
}


def _finished(host: torch.Tensor, done) -> np.ndarray:
    """A host batch of :meth:`FastDDIMSampler._host_batches` once its copy (``done``: CUDA event or None) is over."""
    if done is not None:
        done.synchronize()
    return host.numpy()


def inductor_options(mode: str | None, options: dict | None) -> dict:
    """One inductor options dict from a ``torch.compile`` mode plus explicit options (explicit ones win)."""
    if mode not in _MODE_OPTIONS:
        raise FastSamplingError(f"compile mode {mode!r}; expected one of {sorted(k for k in _MODE_OPTIONS if k)}")
    return {**_MODE_OPTIONS[mode], **(options or {})}


def check_inductor_options(options: dict) -> None:
    """Raise :class:`FastSamplingError` naming every key that is not an inductor option (``torch.compile`` would
    refuse it only when the first call compiles)."""
    from torch._inductor import config as inductor_config
    known = set(inductor_config.get_config_copy())
    bad = sorted(k for k in options if k not in known)
    if bad:
        raise FastSamplingError(f"unknown inductor option(s) {bad} (torch {torch.__version__}); expected names of "
                                "torch._inductor.config, e.g. max_autotune_pointwise, coordinate_descent_tuning")


def parse_compile_options(text: str | None) -> dict:
    """``"coordinate_descent_tuning=1,freezing=1"`` -> ``{"coordinate_descent_tuning": True, "freezing": True}``
    (values: 1/0/true/false, integers, else strings)."""
    out: dict = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise FastSamplingError(f"compile option {item!r}: expected KEY=VALUE, e.g. coordinate_descent_tuning=1")
        k, v = (x.strip() for x in item.split("=", 1))
        low = v.lower()
        if low in ("1", "true", "yes", "on"):
            out[k] = True
        elif low in ("0", "false", "no", "off"):
            out[k] = False
        else:
            try:
                out[k] = int(v)
            except ValueError:
                out[k] = v
    return out
