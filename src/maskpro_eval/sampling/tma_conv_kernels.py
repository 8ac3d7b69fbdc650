"""Triton kernels of :mod:`maskpro_eval.sampling.tma_conv` (loaded by
:func:`maskpro_eval.sampling.triton_loader.kernels_module`). ``INTERPRET`` records the setting the kernels were
built under.

Both kernels are implicit GEMMs of a 3x3, stride-1, padding-1 convolution over channels-last (NHWC) float16/
bfloat16 activations: M = output pixels, N = output channels, K = 9 taps x input channels, float32 accumulation.
Every operand tile arrives by TMA (a tensor-memory-accelerator copy into shared memory, issued by one thread,
zero-filled outside the tensor), so the K loop has no address arithmetic per element."""
import os

import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@triton.jit
def conv3x3_tma4d_kernel(x_desc, w_desc, bias_ptr, res_desc, o_desc, COUT, CIN: tl.constexpr,
                         H: tl.constexpr, IMGS: tl.constexpr, TH: tl.constexpr, BW: tl.constexpr,
                         BN: tl.constexpr, BK: tl.constexpr, HAS_RES: tl.constexpr):
    """One program: the output tile of IMGS samples x TH rows x BW columns (BM = IMGS*TH*BW pixels) x BN channels.

    ``x_desc``: 4-D descriptor over the input [N, H, W, CIN], box [IMGS, TH, BW, BK]. A tap (dh, dw) is the
    same box moved by (dh - 1, dw - 1): TMA fills the rows and columns outside the image with zeros, which is
    the convolution's zero padding (per sample: H is a dimension of its own, so no row of a neighbouring
    sample is read). Channels beyond CIN are zero-filled as well, so a K block may run past CIN.
    ``w_desc``: 2-D over the weight [COUT, 9 * CIN] (tap-major, then input channel), box [BN, BK].
    ``res_desc`` (HAS_RES) and ``o_desc``: 4-D over [N, H, W, COUT], box [IMGS, TH, BW, BN]; stores outside the
    tensor are dropped by the TMA unit, so N, H and W need not be multiples of the box."""
    BM: tl.constexpr = IMGS * TH * BW
    pid_n = tl.program_id(0)  # fastest: the programs sharing one input tile run together (L2 reuse)
    pid_m = tl.program_id(1)
    tiles_h: tl.constexpr = (H + TH - 1) // TH
    n0 = (pid_m // tiles_h) * IMGS
    h0 = (pid_m % tiles_h) * TH
    c0 = pid_n * BN
    KCH: tl.constexpr = (CIN + BK - 1) // BK
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for kk in range(9 * KCH):
        tap = kk // KCH
        k0 = (kk % KCH) * BK
        a = x_desc.load([n0, h0 + tap // 3 - 1, tap % 3 - 1, k0]).reshape(BM, BK)
        b = w_desc.load([c0, tap * CIN + k0])
        acc = tl.dot(a, b.T, acc)
    offs_n = c0 + tl.arange(0, BN)
    acc += tl.load(bias_ptr + offs_n, mask=offs_n < COUT, other=0.0).to(tl.float32)[None, :]
    if HAS_RES:
        acc += res_desc.load([n0, h0, 0, c0]).reshape(BM, BN).to(tl.float32)
    o_desc.store([n0, h0, 0, c0], acc.to(o_desc.dtype).reshape(IMGS, TH, BW, BN))


@triton.jit
def conv3x3_tma_padded_kernel(x_desc, w_desc, bias_ptr, out_ptr, ROWS, COUT, H: tl.constexpr, W: tl.constexpr,
                              CIN: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
    """One program: BM consecutive pixels of the zero-padded grid [N, H + 2, W + 2] x BN output channels.

    ``x_desc``: 2-D over the padded input flattened to [N * (H + 2) * (W + 2), CIN], box [BM, BK]: tap (dh, dw)
    is the same box moved by (dh - 1) * (W + 2) + (dw - 1) rows, a plain 2-D GEMM tile, so the A operand goes
    from shared memory straight into the tensor cores. The price: the halo pixels of the padded grid are
    computed too ((H + 2)(W + 2) / HW more work: 1.13x at 32x32, 1.27x at 16x16) and dropped at the store.
    ``out_ptr``: the unpadded output [N, H, W, COUT], contiguous."""
    WP: tl.constexpr = W + 2
    PLANE: tl.constexpr = (H + 2) * (W + 2)
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    r0 = pid_m * BM
    c0 = pid_n * BN
    KCH: tl.constexpr = (CIN + BK - 1) // BK
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for kk in range(9 * KCH):
        tap = kk // KCH
        k0 = (kk % KCH) * BK
        a = x_desc.load([r0 + (tap // 3 - 1) * WP + (tap % 3 - 1), k0])
        b = w_desc.load([c0, tap * CIN + k0])
        acc = tl.dot(a, b.T, acc)
    offs_n = c0 + tl.arange(0, BN)
    n_mask = offs_n < COUT
    acc += tl.load(bias_ptr + offs_n, mask=n_mask, other=0.0).to(tl.float32)[None, :]
    rows = r0 + tl.arange(0, BM)
    q = rows % PLANE
    hp = q // WP
    wp = q % WP
    inside = (rows < ROWS) & (hp >= 1) & (hp <= H) & (wp >= 1) & (wp <= W)
    orow = (rows // PLANE) * (H * W) + (hp - 1) * W + (wp - 1)
    tl.store(out_ptr + orow[:, None].to(tl.int64) * COUT + offs_n[None, :], acc.to(out_ptr.dtype.element_ty),
             mask=inside[:, None] & n_mask[None, :])
