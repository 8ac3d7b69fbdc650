"""One-pass GroupNorm (+ a per-(sample, channel) add, + SiLU) for the fast sampler (issue #13 item 2).

Under ``torch.compile`` every ``GroupNorm`` of the UNet is two inductor kernels: a reduction that reads the
activation for the per-(sample, group) statistics, then a pointwise pass that reads it again and writes
``silu(norm(x))``. The reductions alone were 6.7 ms of a ~40 ms UNet call at B = 1024 on an H100, at 41 % of
the copy bandwidth (``benchmarks/README.md``). Here one Triton program holds GPP consecutive groups of one
sample (``GPP x CPG`` channels, any group size): when all their pixels fit in a 16 K-element tile it reads the
tile once, forms the mean and the centred second moment from the registers (exact two-pass variance, no
``E[x^2] - E[x]^2``), normalises, applies the affine map and SiLU, and writes once; a larger tile goes in chunks
(chunk means/M2 merged by Chan's formula, then a second read, mostly from L2). The launch heuristic
(:func:`group_norm_config`, from an H100 sweep) takes 64 channels per program for layers of >= 256 pixels, so a
32x32 layer of the DDPM CIFAR-10 UNet goes in 4 chunks of 256 pixels, and 16 channels below.

Measured (``benchmarks/README.md``, H100, 2026-12-07): the kernel alone is 1.4-1.5x faster than inductor's two
GroupNorm kernels at the large shapes, but the compiled UNet with it is slower (0.74x): inductor had fused the
adds and concatenations around each GroupNorm into its kernels, and they cannot fuse into an opaque op. Hence
off by default (``--onepass-group-norm``).

What it replaces in a ``ResnetBlock2D`` (:class:`GroupNormResnetBlock2D`, same parameters, eval only)::

    h = conv1(silu(norm1(x)))                       # norm1 + SiLU: one kernel
    h = silu(norm2(h + conv1.bias + time_emb_proj(silu(temb))))   # bias + time add + norm2 + SiLU: one kernel
    out = (shortcut(x) + conv2(h)) / output_scale_factor           # left to inductor

``conv1`` runs without its bias (cuDNN, as before); the bias and the sample's time vector are the kernel's
per-(sample, channel) add. The attention blocks' ``GroupNorm`` (no activation) and the UNet's
``conv_norm_out`` + ``conv_act`` become :class:`GroupNormAct` modules.

Numerics: statistics and the transform in float32 from the stored (float16/bfloat16/float32) input, one
rounding at the output; inductor's decomposition of ``GroupNorm`` does the same, except that it adds the bias
and time vector to the rounded convolution output in the input dtype (here: in float32). The install check
compares the patched UNet with the unpatched one on a probe batch.

Where it runs: CUDA with Triton, or the CPU through Triton's interpreter (``TRITON_INTERPRET=1`` before the
first import of ``triton``; slow, for tests). The op is a ``torch.library.triton_op``, so ``torch.compile``
sees the kernel and keeps compiling the rest of the UNet around it (no graph break).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from maskpro_eval.errors import MaskProEvalError
from maskpro_eval.sampling.module_swap import swap_and_check
from maskpro_eval.sampling.triton_loader import interpret, kernels_module, pow2_at_least, triton_unavailable

__all__ = ["GroupNormKernelError", "GroupNormAct", "GroupNormResnetBlock2D", "group_norm_act",
           "group_norm_act_reference", "group_norm_config", "install_onepass_group_norm",
           "onepass_group_norm_unavailable", "ONE_PASS_MAX_ELEMENTS", "TOLERANCE"]

#: largest tile (pixels x channels) one program keeps in registers; beyond it the chunked two-read path
ONE_PASS_MAX_ELEMENTS = 16384
#: channels one program reads per pixel, at least: 64 for layers of >= 256 pixels, 16 (one 32-byte sector of
#: float16) for smaller ones. H100, B = 1024, float16, DDPM CIFAR-10 shapes (benchmarks/README.md, 2026-12-07):
#: 64 channels and 8 warps ran 128@32x32 in 0.41 ms vs 0.65 ms with 16, 256@16x16 in 0.18 vs 0.36, 512@16x16
#: in 0.30 vs 0.67; at 8x8 and 4x4 16 channels were faster (256@8x8 0.09 vs 0.12 ms)
_MIN_CHANNELS_PER_PROGRAM = {256: 64, 0: 16}
#: max |patched - original| / max |original| allowed by the install check, per UNet dtype
TOLERANCE = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 3e-2}


class GroupNormKernelError(MaskProEvalError):
    """The one-pass GroupNorm kernel cannot run here or cannot stand in for this module."""


def onepass_group_norm_unavailable(device: Any) -> str | None:
    """Why the one-pass GroupNorm kernel cannot run on ``device`` (None when it can)."""
    return triton_unavailable(device, "the one-pass GroupNorm is a Triton GPU kernel")


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def group_norm_config(channels: int, groups: int, pixels: int,
                      config: tuple[int, ...] | list[int] | None = None) -> dict:
    """Launch configuration of :func:`group_norm_act` for ``(B, channels, pixels)``: ``{"cpg", "gpp", "cp",
    "gp2", "block_p", "one_pass", "num_warps"}`` (channels per group, groups per program, the channel tile (a
    power of two >= gpp * cpg), groups tile, pixels per chunk). ``config`` = ``(channels_per_program,
    block_pixels, num_warps)`` overrides the heuristic (0 = heuristic for that entry): whole groups of at
    least ``channels_per_program`` channels per program."""
    if groups < 1 or channels % groups:
        raise GroupNormKernelError(f"{channels} channels do not split into {groups} groups")
    cpg = channels // groups
    cp_req, bp_req, nw_req = (list(config) + [0, 0, 0])[:3] if config else (0, 0, 0)
    min_cp = next(v for p, v in _MIN_CHANNELS_PER_PROGRAM.items() if pixels >= p)
    gpp = min(groups, max(1, -(-(int(cp_req) or min_cp) // cpg)))
    cp = pow2_at_least(gpp * cpg)
    block_p = int(bp_req) or min(pow2_at_least(pixels), max(1, ONE_PASS_MAX_ELEMENTS // cp))
    if not _pow2(block_p):
        raise GroupNormKernelError(f"block of {block_p} pixels is not a power of two")
    elems = block_p * cp
    num_warps = int(nw_req) or (8 if elems >= 8192 else 4 if elems >= 2048 else 2)
    return {"cpg": cpg, "gpp": gpp, "cp": cp, "gp2": pow2_at_least(gpp), "block_p": block_p,
            "one_pass": block_p >= pixels, "num_warps": num_warps}


def _launch(kernel):
    if interpret():
        return kernel
    from torch.library import wrap_triton
    return wrap_triton(kernel)


@torch.library.triton_op("maskpro_eval::group_norm_act", mutates_args={})
def _group_norm_act_op(x: torch.Tensor, add: Optional[torch.Tensor], weight: Optional[torch.Tensor],
                       bias: Optional[torch.Tensor], groups: int, eps: float, silu: bool,
                       config: Optional[list[int]]) -> torch.Tensor:
    bsz, c = x.shape[0], x.shape[1]
    if x.dim() == 4:
        # channels-last: a pixel's channels contiguous (the kernel's loads). A no-op for a channels-last
        # tensor; under torch.compile it makes inductor write the producing kernel's output in this layout
        # instead of a layout it is free to choose (NCHW), which the kernel would read uncoalesced
        x = x.contiguous(memory_format=torch.channels_last)
    x3 = x.reshape(bsz, c, -1)  # a view (H and W merge)
    pixels = x3.shape[2]
    y3 = torch.empty_like(x3)
    cfg = group_norm_config(c, groups, pixels, config)
    kernel = kernels_module("maskpro_eval.sampling.group_norm_kernels", interpret()).group_norm_act_kernel
    sab, sac = (add.stride(0), add.stride(1)) if add is not None else (0, 0)
    _launch(kernel)[(bsz, -(-groups // cfg["gpp"]))](
        x3, add if add is not None else x3, weight if weight is not None else x3,
        bias if bias is not None else x3, y3, eps,
        x3.stride(0), x3.stride(1), x3.stride(2), y3.stride(0), y3.stride(1), y3.stride(2), sab, sac,
        P=pixels, C=c, CPG=cfg["cpg"], GPP=cfg["gpp"], CP=cfg["cp"], GP2=cfg["gp2"], BLOCK_P=cfg["block_p"],
        ONE_PASS=cfg["one_pass"],
        HAS_ADD=add is not None, HAS_AFFINE=weight is not None, SILU=silu, num_warps=cfg["num_warps"])
    return y3.view(x.shape)


def group_norm_act(x: torch.Tensor, groups: int, weight: torch.Tensor | None = None,
                   bias: torch.Tensor | None = None, eps: float = 1e-5, *, add: torch.Tensor | None = None,
                   silu: bool = False, config: tuple[int, ...] | None = None) -> torch.Tensor:
    """``silu(group_norm(x + add[:, :, None, ...], groups, weight, bias, eps))`` in one read and one write of
    ``x`` (Triton; :func:`group_norm_act_reference` is the same in PyTorch).

    ``x``: (B, C, *spatial), any dtype Triton loads; a 4-D ``x`` is made channels-last (a copy for NCHW) and
    so is the output, a 3-D one keeps its strides;
    ``add``: (B, C) added to every pixel before the statistics (any strides, e.g. a batch stride of 0);
    ``weight``/``bias``: the affine map (C,) (both or neither); ``silu``: SiLU after it; ``config``: see
    :func:`group_norm_config`. Statistics in float32."""
    if x.dim() < 3:
        raise GroupNormKernelError(f"expected (B, C, *spatial), got shape {tuple(x.shape)}")
    bsz, c = x.shape[0], x.shape[1]
    if add is not None and tuple(add.shape) != (bsz, c):
        raise GroupNormKernelError(f"add has shape {tuple(add.shape)}; expected {(bsz, c)}")
    if (weight is None) != (bias is None):
        dev = x.device
        weight = torch.ones(c, device=dev, dtype=x.dtype) if weight is None else weight
        bias = torch.zeros(c, device=dev, dtype=x.dtype) if bias is None else bias
    return _group_norm_act_op(x, add, weight, bias, int(groups), float(eps), bool(silu),
                              [int(v) for v in config] if config else None)


def group_norm_act_reference(x: torch.Tensor, groups: int, weight: torch.Tensor | None = None,
                             bias: torch.Tensor | None = None, eps: float = 1e-5, *,
                             add: torch.Tensor | None = None, silu: bool = False) -> torch.Tensor:
    """:func:`group_norm_act` in PyTorch, float32 inside (the independent spelling the tests compare with)."""
    v = x.float()
    if add is not None:
        v = v + add.float().reshape(add.shape + (1,) * (x.dim() - 2))
    y = F.group_norm(v, groups, None if weight is None else weight.float(), None if bias is None else bias.float(), eps)
    if silu:
        y = F.silu(y)
    return y.to(x.dtype)


class GroupNormAct(nn.Module):
    """Stands in for an ``nn.GroupNorm`` (its parameters, shared), optionally followed by SiLU."""

    def __init__(self, norm: nn.GroupNorm, silu: bool = False):
        super().__init__()
        if type(norm) is not nn.GroupNorm:
            raise GroupNormKernelError(f"expected torch.nn.GroupNorm, got {type(norm).__name__}")
        group_norm_config(norm.num_channels, norm.num_groups, 1)  # raises for channels not split into groups
        self.norm = norm
        self.silu = bool(silu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.norm
        return group_norm_act(x, n.num_groups, n.weight, n.bias, n.eps, silu=self.silu)


def resnet_pattern_unsupported(block: nn.Module) -> str | None:
    """Why a diffusers ``ResnetBlock2D`` is not the plain pattern the fast sampler's kernels stand in for
    (None when it is): no up/down-sampling inside, default time-embedding norm, SiLU, GroupNorm norms."""
    if getattr(block, "upsample", None) is not None or getattr(block, "downsample", None) is not None:
        return "up/down-sampling inside the resnet"
    if getattr(block, "time_embedding_norm", "default") != "default":
        return f"time_embedding_norm={block.time_embedding_norm!r}"
    if not isinstance(block.nonlinearity, nn.SiLU):
        return f"activation {type(block.nonlinearity).__name__} (SiLU only)"
    for name in ("norm1", "norm2"):
        if type(getattr(block, name)) is not nn.GroupNorm:
            return f"{name} is {type(getattr(block, name)).__name__} (GroupNorm only)"
    return None


def _resnet_unsupported(block: nn.Module) -> str | None:
    """Why this ResnetBlock2D cannot run as :class:`GroupNormResnetBlock2D` (None when it can)."""
    why = resnet_pattern_unsupported(block)
    if why:
        return why
    if type(block.conv1) is not nn.Conv2d or block.conv1.bias is None:
        return "conv1 is not an nn.Conv2d with bias"
    return None


class GroupNormResnetBlock2D(nn.Module):
    """Stands in for one diffusers ``ResnetBlock2D`` (same parameters, shared, not copied); eval only. Its
    two GroupNorm + SiLU steps run as :func:`group_norm_act` (the second with conv1's bias and the time
    vector as its add); the convolutions, time projection, shortcut and residual are the block's own."""

    def __init__(self, block: nn.Module):
        super().__init__()
        why = _resnet_unsupported(block)
        if why:
            raise GroupNormKernelError(f"cannot run this ResnetBlock2D with the one-pass GroupNorm: {why}")
        self.inner = block

    def forward(self, input_tensor: torch.Tensor, temb: torch.Tensor | None, *args, **kwargs) -> torch.Tensor:
        blk = self.inner
        n1, n2, conv1 = blk.norm1, blk.norm2, blk.conv1
        h = group_norm_act(input_tensor, n1.num_groups, n1.weight, n1.bias, n1.eps, silu=True)
        h = conv1._conv_forward(h, conv1.weight, None)
        add = conv1.bias[None, :].expand(h.shape[0], -1)
        if blk.time_emb_proj is not None and temb is not None:
            add = add + blk.time_emb_proj(temb if blk.skip_time_act else blk.nonlinearity(temb))
        h = group_norm_act(h, n2.num_groups, n2.weight, n2.bias, n2.eps, add=add, silu=True)
        h = blk.conv2(blk.dropout(h))
        x = input_tensor if blk.conv_shortcut is None else blk.conv_shortcut(input_tensor)
        return (x + h) / blk.output_scale_factor


def _plan(unet: nn.Module) -> tuple[list[tuple[str, nn.Module]], dict[str, str]]:
    """``([(name, replacement)], {name: why kept})`` for every resnet and GroupNorm of ``unet``."""
    from diffusers.models.resnet import ResnetBlock2D
    todo, kept, inside = [], {}, set()
    for name, m in unet.named_modules():
        if type(m) is ResnetBlock2D:
            why = _resnet_unsupported(m)
            if why:
                kept[name] = why
            else:
                todo.append((name, GroupNormResnetBlock2D(m)))
                inside.update({f"{name}.norm1", f"{name}.norm2"})
    fuse_out = (type(getattr(unet, "conv_norm_out", None)) is nn.GroupNorm
                and type(getattr(unet, "conv_act", None)) is nn.SiLU
                and type(unet).__name__ == "UNet2DModel")  # whose forward runs conv_norm_out, then conv_act
    for name, m in unet.named_modules():
        if type(m) is not nn.GroupNorm or name in inside:
            continue
        silu = fuse_out and name == "conv_norm_out"
        try:
            todo.append((name, GroupNormAct(m, silu=silu)))
        except GroupNormKernelError as e:
            kept[name] = str(e)
            continue
        if silu:
            todo.append(("conv_act", nn.Identity()))
    return todo, kept


@torch.no_grad()
def install_onepass_group_norm(unet: nn.Module, *, check: bool = True, probe_batch: int = 2,
                               seed: int = 0) -> dict:
    """Swap (in place) every supported ``ResnetBlock2D`` of ``unet`` for :class:`GroupNormResnetBlock2D`,
    every other ``nn.GroupNorm`` for :class:`GroupNormAct` (with the SiLU of ``conv_norm_out`` folded in and
    ``conv_act`` made the identity).

    Returns ``{"swapped": [names], "kept": {name: reason}, "check_rel_error": float | None}``. With ``check``
    the patched model is run against the unpatched one on a random probe batch (timestep 500) and
    :class:`GroupNormKernelError` is raised (model restored) when ``max|patched - original| / max|original|``
    exceeds :data:`TOLERANCE` for the UNet's dtype."""
    p = next(unet.parameters())
    why = onepass_group_norm_unavailable(p.device)
    if why:
        raise GroupNormKernelError(why)
    todo, kept = _plan(unet)
    rel = swap_and_check(unet, todo, check=check, tolerance=TOLERANCE, error=GroupNormKernelError,
                         what="one-pass GroupNorm UNet", probe_batch=probe_batch, seed=seed)
    return {"swapped": [name for name, _ in todo], "kept": kept, "check_rel_error": rel}
