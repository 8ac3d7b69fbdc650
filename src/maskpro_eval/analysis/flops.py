"""Arithmetic of one UNet image-step: FLOPs (weights *and* attention matmuls) and the physical limit."""
from __future__ import annotations

from torch import nn

from maskpro_eval.analysis.macs import count_with_hooks, layer_macs

__all__ = ["attention_macs", "unet_flops_per_image_step", "physical_limit", "DATASHEET_BF16_DENSE_TFLOPS"]

#: Vendor datasheet dense bf16 tensor-core peaks (TFLOP/s, SXM parts, no sparsity). Leads only: the suite
#: measures the achievable rate with a large bf16 matmul on the machine (see benchmarks/README.md).
DATASHEET_BF16_DENSE_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0}


def attention_macs(unet, sample_size: int | None = None, in_channels: int | None = None) -> dict[str, int]:
    """MACs of the weight-free attention matmuls (Q K^T and softmax(QK^T) V) per image, per Attention module."""
    try:
        from diffusers.models.attention_processor import Attention
    except Exception:  # noqa: BLE001
        return {}
    return count_with_hooks(unet, lambda m: isinstance(m, Attention), _attention_matmul_macs,
                            sample_size, in_channels)


def _attention_matmul_macs(mod, args, kwargs, _out) -> int:
    x = args[0] if args else kwargs.get("hidden_states")
    tokens = x.shape[2] * x.shape[3] if x.ndim == 4 else x.shape[1]
    return 2 * tokens * tokens * mod.to_q.out_features


def unet_flops_per_image_step(unet) -> dict:
    """FLOPs (2 x MACs) of one image through one UNet call: convolutions/linears + attention matmuls.

    Returns ``{"weight_macs", "attention_macs", "macs", "flops", "conv3x3_macs", "conv1x1_macs",
    "linear_macs"}``. Norms, activations and softmax are not counted (not tensor-core work).
    """
    macs = layer_macs(unet)
    att = attention_macs(unet)
    mods = dict(unet.named_modules())
    split = {"conv3x3_macs": 0, "conv1x1_macs": 0, "linear_macs": 0, "other_conv_macs": 0}
    for name, m in macs.items():
        mod = mods[name]
        if isinstance(mod, nn.Linear):
            split["linear_macs"] += m
        elif isinstance(mod, nn.Conv2d) and mod.kernel_size == (1, 1):
            split["conv1x1_macs"] += m
        elif isinstance(mod, nn.Conv2d) and mod.kernel_size == (3, 3):
            split["conv3x3_macs"] += m
        else:
            split["other_conv_macs"] += m
    w = sum(macs.values())
    a = sum(att.values())
    return {"weight_macs": w, "attention_macs": a, "macs": w + a, "flops": 2 * (w + a), **split}


def physical_limit(flops_per_image_step: float, steps: int, num_images: int, peak_tflops: float) -> dict:
    """Seconds and img-steps/s if every FLOP ran at ``peak_tflops`` (the compute floor)."""
    total = float(flops_per_image_step) * steps * num_images
    seconds = total / (peak_tflops * 1e12)
    return {"total_flops": total, "peak_tflops": peak_tflops, "seconds": seconds,
            "img_steps_per_s": num_images * steps / seconds if seconds else float("inf")}
