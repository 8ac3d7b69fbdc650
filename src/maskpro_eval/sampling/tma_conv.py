"""3x3 convolutions as TMA-fed implicit GEMMs in Triton, for the fast sampler (issue #13 item 3, second try).

The first fused convolution (:mod:`maskpro_eval.sampling.fused_resnet`) gathered its input tile with one pointer
per element and ran at 130-190 TFLOP/s where cuDNN ran at 320-490 (H100, ``benchmarks/README.md``). Here every
operand tile is a TMA copy (:mod:`maskpro_eval.sampling.tma_conv_kernels`), in two variants:

* **padded** (:func:`conv3x3_tma_padded`, the one the sampler uses): the input zero-padded to
  [N, H + 2, W + 2, C] and flattened to rows, so each tap is the same 2-D box moved by a row offset and the
  A operand goes from shared memory straight into the tensor cores; the halo pixels are computed and dropped.
* **4-D** (:func:`conv3x3_tma`, benchmarks only): a 4-D box [samples, rows, columns, channels] of the
  unpadded activation moved by one pixel per tap, TMA's zero fill standing in for the padding. Triton 3.6
  reshapes that box to the GEMM tile through registers, and on an H100 the tiles with BM = 128 and BK = 64 gave
  **wrong results** (0.06-0.48 of max |y| against cuDNN at every shape), and in a GPU test a tile that had
  passed a check against cuDNN was wrong on the next call (max error 0.90 where cuDNN's was 0.004); so on CUDA
  it runs only with ``experimental=True``.

Measured (``benchmarks/README.md``, H100, 2026-12-07): at most shapes the kernels match or beat cuDNN called
with a bias (``F.conv2d``), but inside the compiled UNet, where inductor calls cuDNN without the bias pass, the
convolutions took 18.4 ms per call with the 4-D kernel against ~14.9 ms by cuDNN, and the whole UNet ran at
0.93x (4-D) and 0.76x (padded: the padding passes, the halo work and the 4x4 layers) of the default route. So
``tma_conv`` is off by default.

:class:`TmaConv2d` stands in for an ``nn.Conv2d`` (3x3, stride 1, padding 1, no groups, C_in and C_out
multiples of 8: TMA needs 16-byte strides); :func:`install_tma_conv` swaps every such convolution of a UNet and
checks the result against the unpatched UNet. The op is a ``torch.library.custom_op``: ``torch.compile`` treats
it as it treats cuDNN's convolution, an external kernel between its own fused kernels (the padding fuses into
the kernel that produces the input). Launch configurations: :func:`tma_conv_config` (a fixed default) or, on
the GPU, a short timed search per shape on first use (:func:`tune_tma_conv`), every candidate checked against
cuDNN.

Where it runs: CUDA devices of compute capability >= 9.0 (TMA), or the CPU through Triton's interpreter
(``TRITON_INTERPRET=1`` before the first import of ``triton``; slow, for tests).
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import torch
from torch import nn

from maskpro_eval.errors import MaskProEvalError
from maskpro_eval.sampling.module_swap import swap_and_check
from maskpro_eval.sampling.triton_loader import interpret, kernels_module, pow2_at_least, triton_unavailable

__all__ = ["CANDIDATES", "CANDIDATE_TOLERANCE", "TOLERANCE", "TmaConv2d", "TmaConvConfig", "TmaConvError",
           "conv3x3_tma", "conv3x3_tma_padded", "install_tma_conv", "pack_weight", "pad_input", "tma_conv_config",
           "tma_conv_unavailable", "tune_tma_conv"]

#: max |patched - original| / max |original| allowed by the install check, per UNet dtype
TOLERANCE = {torch.float16: 5e-3, torch.bfloat16: 3e-2}


class TmaConvError(MaskProEvalError):
    """The TMA convolution cannot run here or cannot stand in for this module."""


class TmaConvConfig(NamedTuple):
    """A launch configuration: BM output pixels x BN output channels per program, BK input channels per K step,
    warps, software-pipeline stages."""
    bm: int = 128
    bn: int = 128
    bk: int = 64
    warps: int = 8
    stages: int = 4


#: the configurations :func:`tune_tma_conv` times per shape for the padded kernel (BN clamped to the padded
#: C_out): the fastest tiles of every DDPM CIFAR-10 shape on an H100 (2026-12-07)
CANDIDATES = (TmaConvConfig(128, 256, 64, 8, 3), TmaConvConfig(256, 128, 64, 8, 3), TmaConvConfig(128, 128, 64, 4, 4))
#: max |y - cuDNN| / max |cuDNN| a timed candidate may show on its shape (float16 rounding is ~5e-4)
CANDIDATE_TOLERANCE = 1e-2


def tma_conv_unavailable(device: Any) -> str | None:
    """Why the TMA convolution cannot run on ``device`` (None when it can): also a GPU older than Hopper."""
    why = triton_unavailable(device, "the TMA convolution is a Triton GPU kernel")
    dev = torch.device(device)
    if why is None and dev.type == "cuda":
        major, minor = torch.cuda.get_device_capability(dev)
        if major < 9:
            return (f"the TMA convolution needs a GPU of compute capability >= 9.0 (Hopper); "
                    f"{torch.cuda.get_device_name(dev)} is {major}.{minor}")
    return why


def _kernels():
    return kernels_module("maskpro_eval.sampling.tma_conv_kernels", interpret())


def _descriptor(t: torch.Tensor, block: list[int]):
    from triton.tools.tensor_descriptor import TensorDescriptor
    return TensorDescriptor.from_tensor(t, block)


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    """[C_out, C_in, 3, 3] -> the kernels' [C_out, 9 * C_in] (tap-major: (kh, kw), then input channel)."""
    c_out, c_in = weight.shape[:2]
    return weight.permute(0, 2, 3, 1).reshape(c_out, 9 * c_in).contiguous()


def tma_conv_config(c_in: int, c_out: int) -> TmaConvConfig:
    """The default launch configuration (no timed search): 256 pixels x up to 128 channels, BK 64 (16-32 for
    fewer input channels), 8 warps, 3 stages: the fastest 4-D tile that was right on every DDPM CIFAR-10 shape
    on an H100, and within 10 % of the best padded tile at the large shapes."""
    return TmaConvConfig(256, min(128, pow2_at_least(c_out, 16)), 64 if c_in >= 64 else pow2_at_least(c_in, 16),
                         8, 3)


def _box(config: TmaConvConfig, h: int, w: int) -> tuple[int, int, int]:
    """(samples, rows, columns) of the 4-D box of BM pixels: whole padded rows, as many rows as fit."""
    bw = pow2_at_least(w)
    if config.bm < bw:
        raise TmaConvError(f"BM={config.bm} is smaller than one padded image row ({bw} pixels)")
    th = min(pow2_at_least(h), config.bm // bw)
    return config.bm // (bw * th), th, bw


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _check_operands(x: torch.Tensor, weight_k: torch.Tensor) -> tuple[int, int, int, int, int]:
    if x.dim() != 4 or weight_k.dim() != 2:
        raise TmaConvError(f"expected x [N, C, H, W] and a packed weight [C_out, 9*C_in]; got {tuple(x.shape)} "
                           f"and {tuple(weight_k.shape)}")
    n, c_in, h, w = x.shape
    c_out = weight_k.shape[0]
    if weight_k.shape[1] != 9 * c_in:
        raise TmaConvError(f"packed weight {tuple(weight_k.shape)} does not match {c_in} input channels")
    if c_in % 8 or c_out % 8:
        raise TmaConvError(f"TMA needs 16-byte strides: C_in ({c_in}) and C_out ({c_out}) must be multiples of 8")
    return n, c_in, h, w, c_out


def _launch_4d(x, weight_k, bias, residual, config: TmaConvConfig) -> torch.Tensor:
    n, c_in, h, w, c_out = _check_operands(x, weight_k)
    xh = x.permute(0, 2, 3, 1)
    if not xh.is_contiguous():
        xh = xh.contiguous()
    out = torch.empty((n, h, w, c_out), device=x.device, dtype=x.dtype)
    imgs, th, bw = _box(config, h, w)
    bn = min(config.bn, pow2_at_least(c_out, 16))
    bk = config.bk
    o_desc = _descriptor(out, [imgs, th, bw, bn])
    if residual is not None:
        rh = residual.permute(0, 2, 3, 1)
        rh = rh if rh.is_contiguous() else rh.contiguous()
        r_desc = _descriptor(rh, [imgs, th, bw, bn])
    else:
        r_desc = o_desc  # not read (HAS_RES=False)
    grid = (_cdiv(c_out, bn), _cdiv(n, imgs) * _cdiv(h, th))
    _kernels().conv3x3_tma4d_kernel[grid](
        _descriptor(xh, [imgs, th, bw, bk]), _descriptor(weight_k, [bn, bk]), bias, r_desc, o_desc, c_out,
        CIN=c_in, H=h, IMGS=imgs, TH=th, BW=bw, BN=bn, BK=bk, HAS_RES=residual is not None,
        num_warps=config.warps, num_stages=config.stages)
    return out.permute(0, 3, 1, 2)


def conv3x3_tma(x: torch.Tensor, weight_k: torch.Tensor, bias: torch.Tensor,
                residual: Optional[torch.Tensor] = None, config: Optional[TmaConvConfig] = None,
                experimental: bool = False) -> torch.Tensor:
    """``conv2d(x, w, bias, padding=1) (+ residual)`` by the 4-D TMA kernel; ``weight_k = pack_weight(w)``.

    ``x`` [N, C_in, H, W] (float16/bfloat16; channels-last memory avoids a copy), result [N, C_out, H, W] in
    channels-last memory, float32 accumulation, one rounding. ``config``: None takes :func:`tma_conv_config`.
    On CUDA it needs ``experimental=True``: on an H100 with Triton 3.6 the tiles with BM = 128 and BK = 64 gave
    wrong results, and a tile that passed a check against cuDNN was wrong on the next call (see the module)."""
    config = config or tma_conv_config(x.shape[1], weight_k.shape[0])
    if x.is_cuda and not experimental:
        raise TmaConvError("the 4-D-box TMA convolution gave wrong results at some tiles on an H100 (Triton 3.6); "
                           "use conv3x3_tma_padded, or pass experimental=True (benchmarks)")
    return _launch_4d(x, weight_k, bias, residual, config)


def pad_input(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> the padded variant's input: [N, H + 2, W + 2, C], zero halo, contiguous."""
    return torch.nn.functional.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1)).contiguous()


def _launch_padded(xp, weight_k, bias, config: TmaConvConfig) -> torch.Tensor:
    n, hp, wp, c_in = xp.shape
    h, w = hp - 2, wp - 2
    c_out = weight_k.shape[0]
    _check_operands(xp.permute(0, 3, 1, 2), weight_k)
    rows = n * hp * wp
    out = torch.empty((n, h, w, c_out), device=xp.device, dtype=xp.dtype)
    bn = min(config.bn, pow2_at_least(c_out, 16))
    grid = (_cdiv(c_out, bn), _cdiv(rows, config.bm))
    _kernels().conv3x3_tma_padded_kernel[grid](
        _descriptor(xp.view(rows, c_in), [config.bm, config.bk]), _descriptor(weight_k, [bn, config.bk]),
        bias, out, rows, c_out, H=h, W=w, CIN=c_in, BM=config.bm, BN=bn, BK=config.bk,
        num_warps=config.warps, num_stages=config.stages)
    return out.permute(0, 3, 1, 2)


def conv3x3_tma_padded(x: torch.Tensor, weight_k: torch.Tensor, bias: torch.Tensor,
                       config: Optional[TmaConvConfig] = None, padded: Optional[torch.Tensor] = None
                       ) -> torch.Tensor:
    """The same convolution by the 2-D kernel over a zero-padded input (see the kernel). ``padded``: the input
    already padded (:func:`pad_input`), else padded here from ``x`` (one extra pass)."""
    xp = pad_input(x) if padded is None else padded
    if config is None:
        config = _TUNED.get(_shape_key(xp, weight_k)) or tma_conv_config(xp.shape[3], weight_k.shape[0])
    return _launch_padded(xp, weight_k, bias, config)


# ------------------------------------------------------------------------------------- per-shape search
_TUNED: dict[tuple, TmaConvConfig] = {}


def _shape_key(x: torch.Tensor, weight_k: torch.Tensor) -> tuple:
    return (tuple(x.shape), int(weight_k.shape[0]), str(x.dtype), str(x.device))


def tune_tma_conv(xp: torch.Tensor, weight_k: torch.Tensor, bias: torch.Tensor,
                  candidates=CANDIDATES) -> tuple[TmaConvConfig, dict]:
    """Time each candidate configuration of the padded kernel on these operands (``xp`` from :func:`pad_input`;
    median of 20 calls by :func:`~maskpro_eval.runtime.timing.time_callable`, CUDA events on a GPU) and remember
    the fastest for this shape; returns it and ``{config: ms}``. A candidate that fails to build, or whose result differs from cuDNN's by more than
    :data:`CANDIDATE_TOLERANCE` (relative to max |y|), gets ``inf``."""
    from maskpro_eval.runtime.timing import time_callable
    c_out = weight_k.shape[0]
    xin = xp[:, 1:-1, 1:-1, :].permute(0, 3, 1, 2)
    c_in = xin.shape[1]
    ref = torch.nn.functional.conv2d(xin, weight_k.view(c_out, 3, 3, c_in).permute(0, 3, 1, 2), bias,
                                     padding=1).float()
    scale = float(ref.abs().max()) or 1.0
    times: dict[TmaConvConfig, float] = {}
    for cfg in dict.fromkeys(c._replace(bn=min(c.bn, pow2_at_least(c_out, 16))) for c in candidates):
        def fn(cfg=cfg):
            return _launch_padded(xp, weight_k, bias, cfg)
        try:
            err = float((fn().float() - ref).abs().max()) / scale
            times[cfg] = (time_callable(fn, warmup=5, rounds=20, device=xp.device).median_s * 1e3
                          if err <= CANDIDATE_TOLERANCE else float("inf"))
        except Exception:  # a configuration that does not fit (shared memory, registers) is skipped
            times[cfg] = float("inf")
    if not times or min(times.values()) == float("inf"):
        raise TmaConvError(f"no TMA convolution configuration builds and matches cuDNN for input "
                           f"{tuple(xp.shape)} -> {c_out} channels: {times}")
    best = min(times, key=times.get)
    _TUNED[_shape_key(xp, weight_k)] = best
    return best, times


# --------------------------------------------------------------------------------------- the op, the module
@torch.library.custom_op("maskpro_eval::conv3x3_tma_padded", mutates_args=())
def _conv3x3_tma_padded_op(xp: torch.Tensor, weight_k: torch.Tensor, bias: torch.Tensor,
                           tune: bool) -> torch.Tensor:
    if tune and xp.is_cuda and _shape_key(xp, weight_k) not in _TUNED:
        tune_tma_conv(xp, weight_k, bias)
    return conv3x3_tma_padded(None, weight_k, bias, padded=xp)


@_conv3x3_tma_padded_op.register_fake
def _(xp, weight_k, bias, tune):
    n, hp, wp, _ = xp.shape
    return torch.empty((n, weight_k.shape[0], hp - 2, wp - 2), device=xp.device, dtype=xp.dtype,
                       memory_format=torch.channels_last)


def _conv_unsupported(conv: nn.Module) -> str | None:
    if type(conv) is not nn.Conv2d:
        return f"{type(conv).__name__}, not nn.Conv2d"
    if conv.kernel_size != (3, 3) or conv.stride != (1, 1) or conv.padding != (1, 1) or conv.dilation != (1, 1):
        return f"kernel {conv.kernel_size}, stride {conv.stride}, padding {conv.padding}, dilation {conv.dilation}"
    if conv.groups != 1 or conv.padding_mode != "zeros":
        return f"groups={conv.groups}, padding_mode={conv.padding_mode!r}"
    if conv.in_channels % 8 or conv.out_channels % 8:
        return f"{conv.in_channels} -> {conv.out_channels} channels (TMA needs multiples of 8)"
    if conv.weight.dtype not in (torch.float16, torch.bfloat16):
        return f"dtype {conv.weight.dtype} (float16/bfloat16 only)"
    return None


class TmaConv2d(nn.Module):
    """An ``nn.Conv2d`` (3x3, stride 1, padding 1) run by :func:`conv3x3_tma_padded`; eval only. The weight is
    kept packed ([C_out, 9 * C_in]); ``tune``: time the candidate configurations on the first call of each shape
    (CUDA)."""

    def __init__(self, conv: nn.Conv2d, tune: bool = True):
        super().__init__()
        why = _conv_unsupported(conv)
        if why:
            raise TmaConvError(f"cannot run this convolution as a TMA implicit GEMM: {why}")
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.weight_k = nn.Parameter(pack_weight(conv.weight.detach()), requires_grad=False)
        bias = conv.bias.detach() if conv.bias is not None else conv.weight.new_zeros(conv.out_channels)
        self.bias = nn.Parameter(bias.clone(), requires_grad=False)
        self.tune = bool(tune)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # under torch.compile the padding is written by the kernel that produces x
        return _conv3x3_tma_padded_op(pad_input(x), self.weight_k, self.bias, self.tune)


def install_tma_conv(unet: nn.Module, *, check: bool = True, tune: bool = True, probe_batch: int = 2) -> dict:
    """Swap every eligible 3x3 convolution of ``unet`` (in place) for a :class:`TmaConv2d`; with ``check``, compare
    the patched UNet with the original on a probe batch and restore it beyond :data:`TOLERANCE` (raises
    :class:`TmaConvError`). Returns ``{"replaced": [names], "kept": {name: reason}, "max_rel_error"}``."""
    dev = next(unet.parameters()).device
    why = tma_conv_unavailable(dev)
    if why:
        raise TmaConvError(why)
    replaced, kept = [], {}
    for name, mod in unet.named_modules():
        if isinstance(mod, nn.Conv2d):
            reason = _conv_unsupported(mod)
            if reason:
                kept[name] = reason
            else:
                replaced.append((name, TmaConv2d(mod, tune=tune)))
    if not replaced:
        raise TmaConvError(f"no 3x3 convolution of this UNet can run as a TMA implicit GEMM: {kept}")
    rel = swap_and_check(unet, replaced, check=check, tolerance=TOLERANCE, error=TmaConvError,
                         what="the TMA-convolution UNet", probe_batch=probe_batch)
    return {"replaced": [n for n, _ in replaced], "kept": kept, "max_rel_error": rel}
