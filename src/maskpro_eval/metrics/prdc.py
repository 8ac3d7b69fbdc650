"""Precision, recall, density and coverage on Inception pool3 features (no second network).

* precision/recall: Kynkaenniemi et al. 2019, "Improved Precision and Recall Metric for Assessing
  Generative Models" (k-NN balls around real resp. fake features);
* density/coverage: Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models".

Same definitions as the ``prdc`` package (``prdc.compute_prdc``): Euclidean distances, the radius of
a point is the distance to its ``nearest_k``-th nearest neighbour in its own set (itself excluded),
strict ``<`` comparisons. Strict ``<`` is made robust to rounding: squared distances are compared, and
a pair within ``TIE_RTOL x (|x|^2 + |y|^2)`` of a radius counts as on the sphere (outside), so exact
ties stay ties whatever order a BLAS sums in (a set against a permutation of itself gives precision,
recall, density and coverage 1 on every machine; a tie-fragile comparison gave density 1.009 on one CPU
and 1.0 on another, for the ``prdc`` package as much as for a plain port). Computed in chunks of real rows so memory stays bounded: never a full
N x M matrix, at most ``chunk`` x max(N, M) float64 distances at a time (``chunk_budget`` default 2^26
entries = 512 MiB; with the temporaries of one chunk the peak is ~4 x that, ~2 GiB, plus the features
held in float64: 0.8 GB per 50,000 x 2048 set). Cost: three distance passes (real-real, fake-fake,
real-fake), about 3 x 2 N M D flops: at N = M = 50,000, D = 2048 ~3e13 float64 flops. Measured on 2
shared CPU cores: 3,000 x 3,000 in 5.8 s, so 50k x 50k ~25-30 min on such a CPU (N^2 scaling); on a
GPU it is fp64 matmul bound (an H200 has ~60 TFLOP/s fp64: seconds; not measured here). Distances are
float64 squared (``|x|^2 + |y|^2 - 2 x.y``, clamped at 0) on the device of the run (``device="cuda"``: GPU).
Time/memory at any size: ``python scripts/bench_prdc.py --n 50000 --device cuda``.

The authors' recommended sizes: k = 5 and at least 10,000 samples per side (Naeem et al. use 10k real
and fake; Kynkaenniemi et al. 50k); fewer are flagged ``small_n`` in the result.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from maskpro_eval.errors import MaskProEvalError

__all__ = ["PRDC_RECOMMENDED_N", "prdc_from_features", "prdc_from_images"]

#: Below this many samples on either side precision/recall/density/coverage are flagged (small_n).
PRDC_RECOMMENDED_N = 10_000
_DEFAULT_BUDGET = 1 << 26  # float64 distance entries per chunk (512 MiB)
#: Relative tie band on squared distances, per pair (|x|^2 + |y|^2): rounding of the float64
#: dot-product form is ~1e-15 of that; genuine gaps between float32 features are far larger.
TIE_RTOL = 1e-12


class PRDCError(MaskProEvalError, ValueError):
    """Feature arrays unusable for precision/recall/density/coverage."""


def _as_tensor(x: Any, name: str, device):
    import torch

    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.ndim != 2 or not (torch.is_floating_point(t) or t.dtype in (torch.int32, torch.int64)):
        raise PRDCError(f"{name}: shape {tuple(t.shape)} / dtype {t.dtype}; expected float features (N, D). "
                        "Fix: pass Inception pool3 features, e.g. InceptionFeatureExtractor.features(images)")
    t = t.to(device=device, dtype=torch.float64)
    if not bool(torch.isfinite(t).all()):
        raise PRDCError(f"{name}: contains NaN/Inf; expected finite features")
    return t


def _chunks(n_rows: int, n_cols: int, budget: int):
    step = max(1, min(n_rows, budget // max(n_cols, 1)))
    return range(0, n_rows, step), step


def _dist2(x, x_sq, y, y_sq):
    """Squared Euclidean distances (rows of ``x`` x rows of ``y``), float64, clamped at 0."""
    import torch

    d2 = x_sq[:, None] + y_sq[None, :] - 2.0 * (x @ y.T)
    return torch.clamp_(d2, min=0.0)


def _radii2(x, k: int, budget: int):
    """Squared distance of every row of ``x`` to its k-th nearest other row (self excluded)."""
    import torch

    sq = (x * x).sum(1)
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    starts, step = _chunks(x.shape[0], x.shape[0], budget)
    for s in starts:
        d2 = _dist2(x[s:s + step], sq[s:s + step], x, sq)
        idx = torch.arange(s, min(s + step, x.shape[0]), device=x.device)
        d2[idx - s, idx] = 0.0  # self distance exactly 0 (as sklearn's pairwise_distances(X))
        out[s:s + step] = torch.kthvalue(d2, k + 1, dim=1).values
    return out


def prdc_from_features(real_features, fake_features, nearest_k: int = 5, device: Any = None,
                       chunk_budget: int = _DEFAULT_BUDGET) -> dict:
    """``{"precision", "recall", "density", "coverage", "nearest_k", "n_real", "n_fake", "small_n"}``.

    ``real_features``/``fake_features``: (N, D) and (M, D) arrays or tensors (e.g. Inception pool3).
    ``device``: where the distances are computed (default: the features' device, CPU for numpy).
    Equal to ``prdc.compute_prdc(real, fake, nearest_k)``; memory bounded by ``chunk_budget`` entries.
    """
    import torch

    k = int(nearest_k)
    if device is None:
        device = real_features.device if isinstance(real_features, torch.Tensor) else "cpu"
    real = _as_tensor(real_features, "real_features", device)
    fake = _as_tensor(fake_features, "fake_features", device)
    if real.shape[1] != fake.shape[1]:
        raise PRDCError(f"feature dimensions {real.shape[1]} (real) and {fake.shape[1]} (fake) differ; "
                        "expected one feature space. Fix: use the same network for both")
    if k < 1 or k >= min(real.shape[0], fake.shape[0]):
        raise PRDCError(f"nearest_k={k} with {real.shape[0]} real and {fake.shape[0]} fake samples; expected "
                        "1 <= k < the smaller set. Fix: more samples, or a smaller --prdc-k")
    r_real = _radii2(real, k, chunk_budget)
    r_fake = _radii2(fake, k, chunk_budget)
    real_sq, fake_sq = (real * real).sum(1), (fake * fake).sum(1)
    n, m = real.shape[0], fake.shape[0]
    in_real_ball = torch.zeros(m, dtype=torch.bool, device=real.device)   # precision
    count_real_balls = torch.zeros(m, dtype=torch.float64, device=real.device)  # density
    recall = torch.empty(n, dtype=torch.bool, device=real.device)
    coverage = torch.empty(n, dtype=torch.bool, device=real.device)
    starts, step = _chunks(n, m, chunk_budget)
    for s in starts:
        rs = real_sq[s:s + step]
        d2 = _dist2(real[s:s + step], rs, fake, fake_sq)     # (chunk, m)
        d2 += TIE_RTOL * (rs[:, None] + fake_sq[None, :])    # a near-tie is on the sphere: not inside
        inside = d2 < r_real[s:s + step, None]
        in_real_ball |= inside.any(0)
        count_real_balls += inside.sum(0, dtype=torch.float64)
        recall[s:s + step] = (d2 < r_fake[None, :]).any(1)
        coverage[s:s + step] = inside.any(1)
    return {"precision": float(in_real_ball.double().mean()), "recall": float(recall.double().mean()),
            "density": float(count_real_balls.mean() / k), "coverage": float(coverage.double().mean()),
            "nearest_k": k, "n_real": int(n), "n_fake": int(m),
            "small_n": bool(min(n, m) < PRDC_RECOMMENDED_N)}


def prdc_from_images(real_images, fake_images, nearest_k: int = 5, batch_size: int = 64, device: Any = "cpu",
                     weights_path=None, extractor=None, protocol: Any = None, progress: bool = False) -> dict:
    """:func:`prdc_from_features` on the Inception pool3 features of two uint8 image sets."""
    from maskpro_eval.metrics.fid import _resolve_extractor, call_features

    ext, key = _resolve_extractor(extractor, weights_path, device, protocol)
    fr = call_features(ext, real_images, batch_size, "features real" if progress else False)
    ff = call_features(ext, fake_images, batch_size, "features fake" if progress else False)
    out = prdc_from_features(fr, ff, nearest_k=nearest_k, device=device)
    out["fid_protocol"] = key
    return out
