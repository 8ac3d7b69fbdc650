"""Inception features computed on the GPU as samples are produced, and FID in float64 on the GPU.

Protocol (unchanged from :mod:`maskpro_eval.metrics.inception`): uint8 samples -> float32 -> TF1 bilinear
resize to 299 -> ``(x-128)/128`` -> Inception pool3 in **float32** (TF32 off by default: cuDNN would
otherwise run the float32 convolutions with 10-bit mantissa inputs) -> 2048-d float32 features;
statistics (mean, unbiased covariance) and the Frechet distance in float64.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import torch

from maskpro_eval.errors import MaskProEvalError
from maskpro_eval.runtime.timing import cudnn_deterministic, strict_fp32

__all__ = ["GPUInceptionFeatures", "PixelBlockFeatures", "feature_statistics_torch", "fid_from_features_torch",
           "sample_and_extract", "frechet_distance_torch"]


class GPUInceptionFeatures:
    """Callable: uint8 ``N x 3 x H x W`` tensor (any device) -> float32 ``N x 2048`` tensor on ``device``.

    ``strict_fp32=True`` (default) disables TF32 while the network runs. ``batch_size`` bounds the
    299x299 float32 activations held at once (500 images ~ 20 GB peak on an H100).
    """

    num_features = 2048

    def __init__(self, weights_path=None, device="cuda", batch_size: int = 512, strict_fp32: bool = True,
                 deterministic: bool = True, trust: bool = False):
        from maskpro_eval.metrics.inception import InceptionFeatureExtractor
        self.device = torch.device(device)
        self.extractor = InceptionFeatureExtractor(weights_path, device=self.device, trust=trust)
        self.module = self.extractor.torch_module()
        self.batch_size = int(batch_size)
        self.strict_fp32 = bool(strict_fp32)
        self.deterministic = bool(deterministic)
        self.weights_sha256 = self.extractor.weights_sha256

    @property
    def protocol(self) -> dict:
        return {**self.extractor.protocol, "tf32": not self.strict_fp32, "cudnn_deterministic": self.deterministic,
                "computed_on": str(self.device)}

    def __call__(self, images_u8: torch.Tensor) -> torch.Tensor:
        if images_u8.dtype != torch.uint8:
            raise MaskProEvalError(f"GPUInceptionFeatures: dtype {images_u8.dtype}; expected uint8 images "
                                   "(quantise with (x*127.5+128).clamp(0,255) first)")
        outs = []
        cuda = self.device.type == "cuda"
        with torch.inference_mode(), strict_fp32(self.strict_fp32 and cuda), \
                cudnn_deterministic(self.deterministic and cuda):
            for s in range(0, images_u8.shape[0], self.batch_size):
                chunk = images_u8[s:s + self.batch_size].to(self.device, non_blocking=True)
                outs.append(self.module(chunk))
        return torch.cat(outs) if len(outs) > 1 else outs[0]


class PixelBlockFeatures:
    """A tiny, exactly reproducible stand-in for Inception (tests, CI): per-image sums of ``dim`` pixel
    blocks of the uint8 image (integers, exact in float32 up to 2^24), as float32 ``N x dim``.

    Its values do not depend on the batch an image is in, so sharded runs reproduce a single run bit
    for bit. Not a quality metric.
    """

    weights_sha256 = "pixel-block-sums"

    def __init__(self, dim: int = 16, device="cpu"):
        self.num_features = int(dim)
        self.device = torch.device(device)

    @property
    def protocol(self) -> dict:
        return {"name": f"pixel block sums ({self.num_features}-d): test stand-in, not Inception"}

    def __call__(self, images_u8: torch.Tensor) -> torch.Tensor:
        n = images_u8.shape[0]
        flat = images_u8.to(self.device).reshape(n, -1)
        if flat.shape[1] % self.num_features:
            raise MaskProEvalError(f"PixelBlockFeatures: {flat.shape[1]} values per image not divisible by "
                                   f"dim={self.num_features}")
        return flat.reshape(n, self.num_features, -1).to(torch.float32).sum(-1)


def feature_statistics_torch(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mu, sigma) in float64 on the features' device: mean and unbiased (ddof=1) covariance.

    Same definition as :func:`maskpro_eval.metrics.fid.feature_statistics` (``np.cov``); agrees to float64
    rounding (the GEMM's summation order differs).
    """
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise MaskProEvalError(f"feature_statistics_torch: features of shape {tuple(feats.shape)}; expected "
                               "(N >= 2, D)")
    f = feats.to(torch.float64)
    mu = f.mean(dim=0)
    c = f - mu
    sigma = (c.T @ c) / (f.shape[0] - 1)
    return mu, sigma


def frechet_distance_torch(mu1, sigma1, mu2, sigma2, device=None) -> float:
    """The eigenvalue route of :func:`maskpro_eval.metrics.fid.frechet_distance` in float64 with torch (GPU or CPU)."""
    from maskpro_eval.metrics.fid import frechet_distance_torch as _fd
    return _fd(mu1, sigma1, mu2, sigma2, device=device)


def fid_from_features_torch(feats: torch.Tensor, mu_ref, sigma_ref) -> float:
    """FID of features (N x D, any float dtype, on any device) against reference statistics, float64."""
    mu, sigma = feature_statistics_torch(feats)
    return frechet_distance_torch(mu, sigma, mu_ref, sigma_ref, device=feats.device)


def sample_and_extract(sampler, extractor: Callable[[torch.Tensor], torch.Tensor], indices: Sequence[int] | int,
                       *, keep_images: bool = False, progress: bool = False) -> dict:
    """Generate samples ``indices`` with ``sampler`` (a :class:`~.fast_sampling.FastDDIMSampler`) and
    compute their features batch by batch on the device, without host synchronisation in between.

    Returns ``{"features": float32 (N, D) tensor on the device (index order), "indices": list,
    "images": uint8 (N, C, H, W) on the CPU or None, "sampling_s", "features_s" (GPU time from CUDA
    events; host clock on the CPU), "wall_s"}``.
    """
    idx = list(range(indices)) if isinstance(indices, (int, np.integer)) else [int(i) for i in indices]
    dev = sampler.device
    on_cuda = dev.type == "cuda"
    feats = torch.empty((len(idx), int(extractor.num_features)), dtype=torch.float32, device=dev)
    images = (torch.empty((len(idx), *sampler.shape), dtype=torch.uint8, device="cpu")
              if keep_images else None)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(idx), unit="img", desc="sample+features", dynamic_ncols=True)
    marks = []  # per batch: (start, sampled, featured) events or host times

    def mark():
        if on_cuda:
            e = torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    t_wall = time.perf_counter()
    prev = mark()
    pos = 0
    for bidx, u8 in sampler.iter_batches(idx):
        sampled = mark()
        f = extractor(u8)
        feats[pos:pos + len(bidx)] = f.to(device=dev, dtype=torch.float32)
        featured = mark()
        if images is not None:
            images[pos:pos + len(bidx)] = u8.cpu()
        marks.append((prev, sampled, featured))
        prev = featured
        pos += len(bidx)
        if bar is not None:
            bar.update(len(bidx))
    if on_cuda:
        torch.cuda.synchronize(dev)
        sampling_s = sum(a.elapsed_time(b) for a, b, _ in marks) / 1000.0
        features_s = sum(b.elapsed_time(c) for _, b, c in marks) / 1000.0
    else:
        sampling_s = sum(b - a for a, b, _ in marks)
        features_s = sum(c - b for _, b, c in marks)
    if bar is not None:
        bar.close()
    return {"features": feats, "indices": idx, "images": images, "sampling_s": sampling_s,
            "features_s": features_s, "wall_s": time.perf_counter() - t_wall}
