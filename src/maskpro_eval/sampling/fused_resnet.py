"""Fused ResnetBlock2D for the fast sampler: Triton implicit-GEMM 3x3 convolutions that carry the memory-bound
work of the block with them (issue #13, "the main lever").

``diffusers``' ``ResnetBlock2D`` (``time_embedding_norm="default"``, no up/down-sampling) is::

    h = conv1(silu(norm1(x))) + time_emb_proj(silu(temb))
    out = (shortcut(x) + conv2(dropout(silu(norm2(h))))) / output_scale_factor

Unfused, every arrow between the convolutions is a pass over the activation (GroupNorm statistics, GroupNorm
apply + SiLU, bias/time add, residual add). Here one block is three kernels (plus a few tiny (B, C) torch ops
that turn the sums into a scale and shift):

1. :func:`group_stats`: per-(sample, group) sum and sum of squares of ``x`` (one read, per channel, then the
   channels of each group added);
2. :func:`conv3x3` for ``conv1``: the operand prologue applies ``norm1`` (per-sample, per-channel scale and
   shift from the statistics) and SiLU to each loaded input tile and re-zeroes the padding halo *after* the
   transform (a zero-padded input would otherwise become ``silu(shift)``); the epilogue adds the bias and the
   sample's time vector and accumulates ``norm2``'s per-(sample, group) sums of the (rounded) output;
3. :func:`conv3x3` for ``conv2``: prologue ``norm2`` + SiLU from those sums (dropout is the identity in
   eval), epilogue bias + residual (``x``, or ``conv_shortcut(x)`` by PyTorch's 1x1 convolution) and the
   division by ``output_scale_factor``.

Layout: any strides are accepted (the kernels index with the tensors' own strides); channels-last is the one
with contiguous channel loads. Accumulation is float32 (``tl.dot``); a float32 model's dot runs in TF32 on a
GPU unless ``allow_tf32=False``. Statistics are float32 sums, the variance ``E[x^2] - E[x]^2`` is formed in
float64 from them.

Where it runs: a CUDA device with Triton, or the CPU through Triton's interpreter (``TRITON_INTERPRET=1`` set
before the first call: slow, for tests). :func:`install_fused_resnets` swaps the supported blocks of a UNet
for :class:`FusedResnetBlock2D` and checks the patched model against the unpatched one on a probe batch; an
unsupported block (up/down-sampling inside the resnet, ``scale_shift`` time norm, a non-SiLU activation, a
spatial size whose H*W is not a multiple of 16) keeps its PyTorch module and is listed in the report.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from maskpro_eval.errors import MaskProEvalError
from maskpro_eval.sampling.module_swap import swap_and_check
from maskpro_eval.sampling.triton_loader import interpret, kernels_module, pow2_at_least, triton_unavailable

__all__ = ["FusedResnetError", "FusedResnetBlock2D", "conv3x3", "default_block", "group_stats", "norm_scale_shift",
           "install_fused_resnets", "fused_resnet_unavailable", "TOLERANCE", "pack_conv3x3_weight"]

#: max |patched - original| / max |original| allowed by the install check, per UNet dtype (float32 includes
#: TF32 dots on a GPU)
TOLERANCE = {torch.float32: 2e-3, torch.float16: 5e-3, torch.bfloat16: 3e-2}
_MIN_M = 16  # smallest M tile tl.dot takes


class FusedResnetError(MaskProEvalError):
    """The fused ResnetBlock2D cannot run here or cannot stand in for this UNet's blocks."""


def fused_resnet_unavailable(device: Any) -> str | None:
    """Why the fused blocks cannot run on ``device`` (None when they can)."""
    return triton_unavailable(device, "fused ResnetBlock2D kernels are Triton GPU kernels")


def _kernels(interpreted: bool):
    """``(conv3x3_kernel, channel_stats_kernel)`` built under the given interpreter setting."""
    mod = kernels_module("maskpro_eval.sampling.fused_resnet_kernels", interpreted)
    return mod.conv3x3_kernel, mod.channel_stats_kernel


def _strides4(t: torch.Tensor) -> tuple[int, int, int, int]:
    return tuple(int(s) for s in t.stride())  # (b, c, h, w) of a logical NCHW tensor, any memory format


def group_stats(x: torch.Tensor, groups: int) -> torch.Tensor:
    """``(B, groups, 2)`` float32: per (sample, group) sum and sum of squares of ``x`` (B, C, H, W).

    One program per sample reads all channels of a block of pixels at a time (contiguous loads in NCHW and
    channels-last alike) and writes per-channel sums; the channels of a group are then added here."""
    bsz, c, h, w = x.shape
    if c % groups:
        raise FusedResnetError(f"{c} channels do not split into {groups} groups")
    stats = torch.empty(bsz, c, 2, dtype=torch.float32, device=x.device)
    _, kernel = _kernels(interpret())
    block_c = pow2_at_least(c, 16)
    block_p = max(1, min(pow2_at_least(h * w, 1), 4096 // block_c))
    kernel[(bsz,)](x, stats, w, *_strides4(x), HW=h * w, C=c, BLOCK_P=block_p, BLOCK_C=block_c)
    return stats.view(bsz, groups, c // groups, 2).sum(dim=2)


def norm_scale_shift(stats: torch.Tensor, count: int, weight: torch.Tensor | None, bias: torch.Tensor | None,
                     eps: float, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """GroupNorm as a per-(sample, channel) affine map: ``(scale, shift)`` float32 (B, C), from the sums of
    :func:`group_stats` (``count`` = elements per group = H*W*C/groups)."""
    bsz, groups, _ = stats.shape
    s = stats.double()
    mean = s[..., 0] / count
    var = (s[..., 1] / count - mean * mean).clamp_min(0.0)
    rstd = torch.rsqrt(var + eps)
    gs = channels // groups
    rstd_c = rstd.repeat_interleave(gs, dim=1)
    mean_c = mean.repeat_interleave(gs, dim=1)
    w = torch.ones(channels, dtype=torch.float64, device=stats.device) if weight is None else weight.double()
    b = torch.zeros(channels, dtype=torch.float64, device=stats.device) if bias is None else bias.double()
    scale = w[None, :] * rstd_c
    shift = b[None, :] - mean_c * scale
    return scale.float().contiguous(), shift.float().contiguous()


def pack_conv3x3_weight(weight: torch.Tensor) -> torch.Tensor:
    """(COUT, CIN, 3, 3) -> (9*CIN, COUT) contiguous, row ``(ky*3 + kx)*CIN + ci`` (the kernel's K order)."""
    co, ci, kh, kw = weight.shape
    if (kh, kw) != (3, 3):
        raise FusedResnetError(f"expected a 3x3 kernel, got {kh}x{kw}")
    return weight.permute(2, 3, 1, 0).reshape(9 * ci, co).contiguous()


def default_block(hw: int, cout: int) -> tuple[int, int, int, int, int]:
    """The tile ``(BLOCK_M, BLOCK_N, BLOCK_K, num_warps, num_stages)`` of a fused convolution with ``hw``
    output pixels per sample and ``cout`` output channels, from the tile sweep on an H100 (2026-12-06,
    ``benchmarks/README.md``): 128 x 256 x 32 with 8 warps for 256-channel layers of >= 128 pixels (one N tile,
    so the prologue transforms each input tile once per tap; 4.28 ms vs 7.48 for 128 x 128 at 256->256@16x16,
    B=1024), 64 x 128 x 32 with 4 warps otherwise (5.42 vs 6.93 ms at 128->128@32x32), M then being the largest
    of 64, 32, 16 that divides ``hw``; 3 pipeline stages. (Even so the fused blocks are slower than the compiled
    PyTorch UNet; the same README says why.)"""
    if cout > 128 and hw % 128 == 0:
        return 128, 256, 32, 8, 3
    bm = next((m for m in (64, 32, 16) if hw % m == 0), _MIN_M)
    return bm, min(128, pow2_at_least(cout, 16)), 32, 4, 3


def conv3x3(x: torch.Tensor, packed_weight: torch.Tensor, bias: torch.Tensor, *,
            scale_shift: tuple[torch.Tensor, torch.Tensor] | None = None, silu: bool = False,
            temb: torch.Tensor | None = None, residual: torch.Tensor | None = None,
            output_scale_factor: float = 1.0, stats_groups: int | None = None,
            out: torch.Tensor | None = None, block: tuple[int, ...] | None = None,
            fast_silu: bool | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """3x3, stride 1, padding 1 convolution with the fused prologue/epilogue; returns ``(out, stats)``.

    ``x``: (B, CIN, H, W), H*W a multiple of 16; ``packed_weight``: :func:`pack_conv3x3_weight`;
    ``scale_shift``: per-(sample, channel) float32 (B, CIN) affine applied to the input (GroupNorm);
    ``silu``: SiLU after it; padding is zero in the transformed tensor. ``temb``: (B, COUT) added per sample
    (a batch stride of 0 is fine); ``residual``: (B, COUT, H, W) added, then the sum divided by
    ``output_scale_factor``. ``stats_groups``: also return ``(B, G, 2)`` float32 sums/sums of squares of
    the output per (sample, group). ``out``: preallocated output (default: ``x``'s memory format).
    ``block``: ``(BLOCK_M, BLOCK_N, BLOCK_K[, num_warps[, num_stages]])`` (Triton's defaults for the last two);
    None: :func:`default_block` for this shape.
    ``fast_silu``: SiLU through the hardware ``tanh.approx`` (one special-function op per element instead of
    two; error ~ an fp16 ulp); default on a GPU, never under the interpreter (no inline assembly there).
    """
    bsz, cin, h, w = x.shape
    k9, cout = packed_weight.shape
    if k9 != 9 * cin:
        raise FusedResnetError(f"packed weight {tuple(packed_weight.shape)} does not fit {cin} input channels")
    hw = h * w
    block = default_block(hw, cout) if block is None else block
    bm, bn, bk = block[:3]
    launch = {k: int(v) for k, v in zip(("num_warps", "num_stages"), block[3:])}
    bm = min(bm, hw)
    if hw % _MIN_M or hw % bm:
        raise FusedResnetError(f"H*W = {h}x{w} is not a multiple of the {bm}-pixel tile (needs a multiple of 16)")
    bk = max(16, min(bk, pow2_at_least(cin, 16)))
    bn = max(16, min(bn, pow2_at_least(cout, 16)))
    if out is None:
        fmt = (torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
               else torch.contiguous_format)
        out = torch.empty((bsz, cout, h, w), dtype=x.dtype, device=x.device, memory_format=fmt)
    dummy = bias
    stats = None
    if stats_groups:
        if cout % stats_groups:
            raise FusedResnetError(f"{cout} output channels do not split into {stats_groups} groups")
        stats = torch.zeros(bsz, cout, 2, dtype=torch.float32, device=x.device)  # per channel; groups below
    sc, sh = scale_shift if scale_shift is not None else (dummy, dummy)
    if temb is not None:
        if temb.shape != (bsz, cout):
            raise FusedResnetError(f"temb shape {tuple(temb.shape)}; expected {(bsz, cout)}")
        stb, stc = int(temb.stride(0)), int(temb.stride(1))
    else:
        stb = stc = 0
    res = residual if residual is not None else out
    if residual is not None and residual.shape != (bsz, cout, h, w):
        raise FusedResnetError(f"residual shape {tuple(residual.shape)}; expected {(bsz, cout, h, w)}")
    kernel, _ = _kernels(interpret())
    grid = (bsz * (hw // bm), -(-cout // bn))
    kernel[grid](x, packed_weight, bias, sc, sh, temb if temb is not None else dummy, res, out,
                 stats if stats is not None else dummy,
                 h, w, cout,
                 *_strides4(x), *_strides4(out), *_strides4(res), stb, stc,
                 1.0 / float(output_scale_factor), CIN=cin,
                 HAS_NORM=scale_shift is not None, HAS_SILU=bool(silu), HAS_TEMB=temb is not None,
                 HAS_RES=residual is not None, HAS_STATS=stats is not None,
                 FAST_SILU=(not interpret()) if fast_silu is None else (bool(fast_silu) and not interpret()),
                 BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk, **launch)
    if stats is not None:
        stats = stats.view(bsz, stats_groups, cout // stats_groups, 2).sum(dim=2)
    return out, stats


def _unsupported(block: nn.Module, hw: int | None) -> str | None:
    """Why this ResnetBlock2D cannot be fused (None when it can)."""
    from maskpro_eval.sampling.group_norm import resnet_pattern_unsupported
    why = resnet_pattern_unsupported(block)
    if why:
        return why
    for name in ("conv1", "conv2"):
        c = getattr(block, name)
        if type(c) is not nn.Conv2d or c.kernel_size != (3, 3) or c.stride != (1, 1) or c.padding != (1, 1) \
                or c.dilation != (1, 1) or c.groups != 1 or c.bias is None or c.padding_mode != "zeros":
            return f"{name} is not a plain 3x3 stride-1 padding-1 convolution with bias"
    if block.conv_shortcut is not None and type(block.conv_shortcut) is not nn.Conv2d:
        return "conv_shortcut is not nn.Conv2d"
    if hw is not None and hw % _MIN_M:
        return f"H*W = {hw} is not a multiple of 16"
    return None


class FusedResnetBlock2D(nn.Module):
    """Stands in for one ``ResnetBlock2D`` (same parameters, shared, not copied); eval only."""

    def __init__(self, block: nn.Module, block_shape: tuple[int, ...] | None = None, fast_silu: bool | None = None):
        super().__init__()
        why = _unsupported(block, None)
        if why:
            raise FusedResnetError(f"cannot fuse this ResnetBlock2D: {why}")
        self.inner = block
        self.block_shape = block_shape
        self.fast_silu = fast_silu
        self.register_buffer("w1", pack_conv3x3_weight(block.conv1.weight.detach()), persistent=False)
        self.register_buffer("w2", pack_conv3x3_weight(block.conv2.weight.detach()), persistent=False)

    @torch.compiler.disable
    def forward(self, input_tensor: torch.Tensor, temb: torch.Tensor | None, *args, **kwargs) -> torch.Tensor:
        # opaque to torch.compile: inductor compiles the UNet around the fused blocks (graph breaks here)
        blk = self.inner
        x = input_tensor
        bsz, c, h, w = x.shape
        n1, n2 = blk.norm1, blk.norm2
        st1 = group_stats(x, n1.num_groups)
        ss1 = norm_scale_shift(st1, h * w * c // n1.num_groups, n1.weight, n1.bias, n1.eps, c)
        t = None
        if blk.time_emb_proj is not None and temb is not None:
            t = blk.time_emb_proj(temb if blk.skip_time_act else blk.nonlinearity(temb))
        hid, st2 = conv3x3(x, self.w1, blk.conv1.bias, scale_shift=ss1, silu=True, temb=t,
                           stats_groups=n2.num_groups, block=self.block_shape, fast_silu=self.fast_silu)
        cout = hid.shape[1]
        ss2 = norm_scale_shift(st2, h * w * cout // n2.num_groups, n2.weight, n2.bias, n2.eps, cout)
        res = x if blk.conv_shortcut is None else blk.conv_shortcut(x)
        out, _ = conv3x3(hid, self.w2, blk.conv2.bias, scale_shift=ss2, silu=True, residual=res,
                         output_scale_factor=blk.output_scale_factor, block=self.block_shape,
                         fast_silu=self.fast_silu)
        return out


def _resnets(unet: nn.Module) -> dict[str, nn.Module]:
    from diffusers.models.resnet import ResnetBlock2D
    return {n: m for n, m in unet.named_modules() if type(m) is ResnetBlock2D and not n.endswith(".inner")}


def _spatial_sizes(unet: nn.Module, sample_size: int) -> dict[str, int]:
    """H*W each resnet sees for a ``sample_size`` input (hooks on one tiny forward)."""
    sizes: dict[str, int] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, args, n=n: sizes.__setitem__(n, args[0].shape[-1] * args[0].shape[-2]))
             for n, m in _resnets(unet).items()]
    try:
        p = next(unet.parameters())
        with torch.no_grad():
            unet(torch.zeros(1, unet.config.in_channels, sample_size, sample_size, device=p.device, dtype=p.dtype),
                 torch.tensor([1], device=p.device))
    finally:
        for hk in hooks:
            hk.remove()
    return sizes


@torch.no_grad()
def install_fused_resnets(unet: nn.Module, *, check: bool = True, probe_batch: int = 2, seed: int = 0,
                          block_shape: tuple[int, ...] | None = None) -> dict:
    """Swap every supported ``ResnetBlock2D`` of ``unet`` (in place) for :class:`FusedResnetBlock2D`.

    Returns ``{"fused": [names], "kept": {name: reason}, "check_rel_error": float | None}``. With ``check``
    the patched model is run against the unpatched one on a random probe batch (same timestep) and
    :class:`FusedResnetError` is raised (model restored) when ``max|patched - original| / max|original|``
    exceeds :data:`TOLERANCE` for the UNet's dtype.
    """
    p = next(unet.parameters())
    why = fused_resnet_unavailable(p.device)
    if why:
        raise FusedResnetError(why)
    size = int(unet.config.sample_size if isinstance(unet.config.sample_size, int) else unet.config.sample_size[0])
    sizes = _spatial_sizes(unet, size)
    blocks = _resnets(unet)
    kept = {n: r for n, m in blocks.items() if (r := _unsupported(m, sizes.get(n)))}
    todo = [n for n in blocks if n not in kept]
    rel = swap_and_check(unet, [(n, FusedResnetBlock2D(unet.get_submodule(n), block_shape)) for n in todo],
                         check=check, tolerance=TOLERANCE, error=FusedResnetError, what="fused ResnetBlock2D",
                         probe_batch=probe_batch, seed=seed)
    return {"fused": todo, "kept": kept, "check_rel_error": rel}

