"""Triton kernel of :mod:`maskpro_eval.sampling.group_norm` (loaded by
:func:`maskpro_eval.sampling.triton_loader.kernels_module`). ``INTERPRET`` records the interpreter setting the
kernel was built under."""
import os

import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@triton.jit
def _load_tile(x_ptr, add_ptr, b, c, cm, p, P, sxb, sxc, sxp, sab, sac, HAS_ADD: tl.constexpr):
    # (BLOCK_P, CP) float32 of x[b, c, p] (+ add[b, c]); rows past P and masked channels are 0
    m = (p < P)[:, None] & cm[None, :]
    v = tl.load(x_ptr + b * sxb + p[:, None] * sxp + c[None, :] * sxc, mask=m, other=0.0).to(tl.float32)
    if HAS_ADD:
        v = tl.where(m, v + tl.load(add_ptr + b * sab + c * sac, mask=cm, other=0.0).to(tl.float32)[None, :], 0.0)
    return v, m


@triton.jit
def _per_group(per_channel, onehot):
    # (CP,) per-channel sums -> (GP2,) per-group sums (onehot: (CP, GP2), channel j in group g)
    return tl.sum(per_channel[:, None] * onehot, axis=0)


@triton.jit
def _per_channel(per_group, onehot):
    # (GP2,) -> (CP,): each channel gets its group's value
    return tl.sum(onehot * per_group[None, :], axis=1)


@triton.jit
def _apply_store(v, m, mean_c, rstd_c, w, bias, y_ptr, b, c, p, syb, syc, syp,
                 HAS_AFFINE: tl.constexpr, SILU: tl.constexpr):
    y = (v - mean_c[None, :]) * rstd_c[None, :]
    if HAS_AFFINE:
        y = y * w[None, :] + bias[None, :]
    if SILU:
        y = y * tl.sigmoid(y)
    tl.store(y_ptr + b * syb + p[:, None] * syp + c[None, :] * syc, y.to(y_ptr.dtype.element_ty), mask=m)


@triton.jit
def group_norm_act_kernel(x_ptr, add_ptr, w_ptr, bias_ptr, y_ptr, eps,
                          sxb, sxc, sxp, syb, syc, syp, sab, sac,
                          P: tl.constexpr, C: tl.constexpr, CPG: tl.constexpr, GPP: tl.constexpr,
                          CP: tl.constexpr, GP2: tl.constexpr, BLOCK_P: tl.constexpr, ONE_PASS: tl.constexpr,
                          HAS_ADD: tl.constexpr, HAS_AFFINE: tl.constexpr, SILU: tl.constexpr):
    # P: pixels per sample, C: channels (constants of the layer; the interpreter also needs P constant in
    # range()). One program: sample b, the GPP consecutive groups of CPG channels each from group
    # program_id(1) * GPP on, all P pixels; the channel tile CP (a power of two >= GPP * CPG, extra lanes
    # masked), groups found through a (CP, GP2) one-hot map (any group size).
    # ONE_PASS (P <= BLOCK_P): the tile is read once, kept in registers, reduced (mean, then the centred
    # second moment: two passes over registers, not over memory), normalised and written.
    # Otherwise: chunks of BLOCK_P pixels, mean/M2 per chunk merged by Chan's formula, then a second read.
    b = tl.program_id(0).to(tl.int64)
    j = tl.arange(0, CP)
    c = tl.program_id(1) * (GPP * CPG) + j
    cm = (j < GPP * CPG) & (c < C)
    onehot = ((j // CPG)[:, None] == tl.arange(0, GP2)[None, :]) & cm[:, None]
    onehot = onehot.to(tl.float32)
    w = c
    bias = c
    if HAS_AFFINE:
        w = tl.load(w_ptr + c, mask=cm, other=0.0).to(tl.float32)
        bias = tl.load(bias_ptr + c, mask=cm, other=0.0).to(tl.float32)
    if ONE_PASS:
        p = tl.arange(0, BLOCK_P)
        v, m = _load_tile(x_ptr, add_ptr, b, c, cm, p, P, sxb, sxc, sxp, sab, sac, HAS_ADD)
        count = P * CPG * 1.0
        mean_c = _per_channel(_per_group(tl.sum(v, axis=0), onehot) / count, onehot)
        d = tl.where(m, v - mean_c[None, :], 0.0)
        var = _per_group(tl.sum(d * d, axis=0), onehot) / count
        rstd_c = _per_channel(1.0 / tl.sqrt(var + eps), onehot)
        _apply_store(v, m, mean_c, rstd_c, w, bias, y_ptr, b, c, p, syb, syc, syp, HAS_AFFINE, SILU)
    else:
        mean = tl.zeros((GP2,), dtype=tl.float32)
        m2 = tl.zeros((GP2,), dtype=tl.float32)
        n = 0.0
        for p0 in range(0, P, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            v, m = _load_tile(x_ptr, add_ptr, b, c, cm, p, P, sxb, sxc, sxp, sab, sac, HAS_ADD)
            k = (tl.minimum(P - p0, BLOCK_P) * CPG).to(tl.float32)
            cmean = _per_group(tl.sum(v, axis=0), onehot) / k
            d = tl.where(m, v - _per_channel(cmean, onehot)[None, :], 0.0)
            cm2 = _per_group(tl.sum(d * d, axis=0), onehot)
            tot = n + k
            delta = cmean - mean
            mean = mean + delta * (k / tot)
            m2 = m2 + cm2 + delta * delta * (n * k / tot)
            n = tot
        mean_c = _per_channel(mean, onehot)
        rstd_c = _per_channel(1.0 / tl.sqrt(m2 / n + eps), onehot)
        for p0 in range(0, P, BLOCK_P):
            p = p0 + tl.arange(0, BLOCK_P)
            v, m = _load_tile(x_ptr, add_ptr, b, c, cm, p, P, sxb, sxc, sxp, sab, sac, HAS_ADD)
            _apply_store(v, m, mean_c, rstd_c, w, bias, y_ptr, b, c, p, syb, syc, syp, HAS_AFFINE, SILU)
