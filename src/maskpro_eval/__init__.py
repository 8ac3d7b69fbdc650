"""maskpro-eval: evaluation and deployment gate for N:M-sparse pruned DDPM UNets.

Public API (imported lazily so ``import maskpro_eval`` stays cheap):
    load_checkpoint(path, base_model=None, trust_pickle=False) -> LoadedCheckpoint
    analyze_sparsity(unet, ...) -> SparsityReport
    fid_from_images(a, b, protocol="standard") -> float   (standard | pytorch-fid | clean)
    kid_from_images(a, b, protocol="standard") -> (mean, std)
    prdc_from_features(real, fake, nearest_k=5) -> {precision, recall, density, coverage, ...}
    prdc_from_images(real, fake) -> the same from uint8 images
    MaskProEvaluator(...)                    (issue 5: scripted evaluation)
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "load_checkpoint": ("maskpro_eval.checkpoints", "load_checkpoint"),
    "describe_checkpoint": ("maskpro_eval.checkpoints", "describe_checkpoint"),
    "LoadedCheckpoint": ("maskpro_eval.checkpoints.loaded", "LoadedCheckpoint"),
    "analyze_sparsity": ("maskpro_eval.analysis.sparsity", "analyze_sparsity"),
    "fid_from_images": ("maskpro_eval.metrics.fid", "fid_from_images"),
    "kid_from_images": ("maskpro_eval.metrics.fid", "kid_from_images"),
    "prdc_from_features": ("maskpro_eval.metrics.prdc", "prdc_from_features"),
    "prdc_from_images": ("maskpro_eval.metrics.prdc", "prdc_from_images"),
    "MaskProEvaluator": ("maskpro_eval.api", "MaskProEvaluator"),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        import importlib
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'maskpro_eval' has no attribute {name!r}")
