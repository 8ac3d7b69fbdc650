"""Triton kernels of :mod:`maskpro_eval.sampling.fused_resnet` (loaded by
:func:`maskpro_eval.sampling.triton_loader.kernels_module`). ``INTERPRET`` records the setting the kernels were
built under."""
import os

import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@triton.jit
def _silu(x, FAST_SILU: tl.constexpr):
    # x * sigmoid(x) in float32. FAST_SILU: 0.5 x (1 + tanh(x / 2)) with the hardware tanh.approx.f32 (one
    # special-function op instead of exp + reciprocal; max relative error ~2^-11, an fp16 ulp); GPU only
    if FAST_SILU:
        t = tl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=f,f", [x * 0.5], dtype=tl.float32,
                                      is_pure=True, pack=1)
        return x * (0.5 + 0.5 * t)
    else:
        return x * tl.sigmoid(x)


@triton.jit
def _conv_step(acc, x_ptr, w_ptr, scale_ptr, shift_ptr, b, oh, ow, tap, offs_k, offs_n, n_mask,
               H, W, COUT, sxb, sxc, sxh, sxw, CIN: tl.constexpr, HAS_NORM: tl.constexpr,
               HAS_SILU: tl.constexpr, FAST_SILU: tl.constexpr):
    # one K block of one tap: gather the shifted input tile, apply GroupNorm + SiLU, zero the halo, dot
    ih = oh + (tap // 3 - 1)
    iw = ow + (tap % 3 - 1)
    inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
    k_mask = offs_k < CIN
    amask = inside[:, None] & k_mask[None, :]
    a = tl.load(x_ptr + b * sxb + ih[:, None] * sxh + iw[:, None] * sxw + offs_k[None, :] * sxc,
                mask=amask, other=0.0)
    if HAS_NORM:
        sc = tl.load(scale_ptr + b * CIN + offs_k, mask=k_mask, other=0.0)
        sh = tl.load(shift_ptr + b * CIN + offs_k, mask=k_mask, other=0.0)
        af = a.to(tl.float32) * sc[None, :] + sh[None, :]
        if HAS_SILU:
            af = _silu(af, FAST_SILU)
        # the halo is zero padding of the *transformed* tensor: re-zero it after the transform
        a = tl.where(amask, af, 0.0).to(w_ptr.dtype.element_ty)
    elif HAS_SILU:
        af = a.to(tl.float32)
        a = tl.where(amask, _silu(af, FAST_SILU), 0.0).to(w_ptr.dtype.element_ty)
    wt = tl.load(w_ptr + (tap * CIN + offs_k)[:, None] * COUT + offs_n[None, :],
                 mask=k_mask[:, None] & n_mask[None, :], other=0.0)
    return tl.dot(a, wt, acc)


@triton.jit
def conv3x3_kernel(x_ptr, w_ptr, bias_ptr, scale_ptr, shift_ptr, temb_ptr, res_ptr, out_ptr, stats_ptr,
                   H, W, COUT,
                   sxb, sxc, sxh, sxw, sob, soc, soh, sow, srb, src, srh, srw, stb, stc,
                   inv_out_scale, CIN: tl.constexpr,
                   HAS_NORM: tl.constexpr, HAS_SILU: tl.constexpr, HAS_TEMB: tl.constexpr,
                   HAS_RES: tl.constexpr, HAS_STATS: tl.constexpr,
                   FAST_SILU: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    # one program: BLOCK_M output pixels of ONE sample (H*W % BLOCK_M == 0) x BLOCK_N output channels
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    hw_per = H * W
    tiles_per_sample = hw_per // BLOCK_M
    b = pid_m // tiles_per_sample
    pix = (pid_m % tiles_per_sample) * BLOCK_M + tl.arange(0, BLOCK_M)
    oh = pix // W
    ow = pix % W
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < COUT
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if CIN % BLOCK_K == 0:
        # one flat K loop over the 9 taps x CIN channels (a K block never straddles two taps): the form
        # Triton's software pipeliner overlaps best
        for kk in range(0, 9 * CIN, BLOCK_K):
            tap = kk // CIN
            offs_k = (kk % CIN) + tl.arange(0, BLOCK_K)
            acc = _conv_step(acc, x_ptr, w_ptr, scale_ptr, shift_ptr, b, oh, ow, tap, offs_k, offs_n, n_mask,
                             H, W, COUT, sxb, sxc, sxh, sxw, CIN, HAS_NORM, HAS_SILU, FAST_SILU)
    else:
        for tap in range(9):
            for k0 in range(0, CIN, BLOCK_K):
                offs_k = k0 + tl.arange(0, BLOCK_K)
                acc = _conv_step(acc, x_ptr, w_ptr, scale_ptr, shift_ptr, b, oh, ow, tap, offs_k, offs_n,
                                 n_mask, H, W, COUT, sxb, sxc, sxh, sxw, CIN, HAS_NORM, HAS_SILU, FAST_SILU)
    y = acc + tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
    if HAS_TEMB:
        y = y + tl.load(temb_ptr + b * stb + offs_n * stc, mask=n_mask, other=0.0).to(tl.float32)[None, :]
    omask = n_mask[None, :] & (pix[:, None] < hw_per)
    if HAS_RES:
        r = tl.load(res_ptr + b * srb + oh[:, None] * srh + ow[:, None] * srw + offs_n[None, :] * src,
                    mask=omask, other=0.0).to(tl.float32)
        y = (r + y) * inv_out_scale
    yq = y.to(out_ptr.dtype.element_ty)
    tl.store(out_ptr + b * sob + oh[:, None] * soh + ow[:, None] * sow + offs_n[None, :] * soc, yq, mask=omask)
    if HAS_STATS:
        # the next GroupNorm's sums per (sample, channel), of the values as stored (rounded); the caller adds
        # the channels of each group (any group size)
        yr = tl.where(omask, yq.to(tl.float32), 0.0)
        tl.atomic_add(stats_ptr + (b * COUT + offs_n) * 2, tl.sum(yr, axis=0), mask=n_mask)
        tl.atomic_add(stats_ptr + (b * COUT + offs_n) * 2 + 1, tl.sum(yr * yr, axis=0), mask=n_mask)


@triton.jit
def channel_stats_kernel(x_ptr, stats_ptr, W, sxb, sxc, sxh, sxw, HW: tl.constexpr, C: tl.constexpr,
                         BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # one program: one sample; per-channel sum and sum of squares over its H*W pixels -> stats[b, c, 0:2].
    # The tile holds all channels of BLOCK_P pixels, so the loads are contiguous in either memory format
    # (channels in channels-last, pixels in NCHW); groups are summed from these by the caller.
    b = tl.program_id(0)
    offs_c = tl.arange(0, BLOCK_C)
    c_mask = offs_c < C
    s1 = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    s2 = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
    for p0 in range(0, HW, BLOCK_P):
        p = p0 + tl.arange(0, BLOCK_P)
        m = (p < HW)[:, None] & c_mask[None, :]
        v = tl.load(x_ptr + b * sxb + (p // W)[:, None] * sxh + (p % W)[:, None] * sxw
                    + offs_c[None, :] * sxc, mask=m, other=0.0).to(tl.float32)
        s1 += v
        s2 += v * v
    tl.store(stats_ptr + (b * C + offs_c) * 2, tl.sum(s1, axis=0), mask=c_mask)
    tl.store(stats_ptr + (b * C + offs_c) * 2 + 1, tl.sum(s2, axis=0), mask=c_mask)
