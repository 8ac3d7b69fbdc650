"""Multiply-accumulate counts per Conv2d/Linear layer for one image and one denoising step."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def count_with_hooks(unet, select: Callable[[nn.Module], bool], count: Callable[..., int],
                     sample_size: int | None = None, in_channels: int | None = None) -> dict[str, int]:
    """Per-module sums of ``count(module, args, kwargs, output)`` over ONE forward of one image.

    A forward hook goes on every module that ``select`` accepts; the UNet runs once on a zero batch-1
    input of its configured size (or ``sample_size``/``in_channels``) at timestep 10.
    """
    cfg = getattr(unet, "config", None)
    size = sample_size or (cfg.sample_size if cfg is not None else 32)
    if isinstance(size, (tuple, list)):
        size = size[0]
    chans = in_channels or (cfg.in_channels if cfg is not None else 3)
    counts: dict[str, int] = {}
    hooks = []

    def make_hook(name, module):
        def hook(_mod, args, kwargs, out):
            counts[name] = counts.get(name, 0) + int(count(module, args, kwargs, out))
        return hook

    for name, module in unet.named_modules():
        if select(module):
            hooks.append(module.register_forward_hook(make_hook(name, module), with_kwargs=True))
    try:
        param = next(unet.parameters())
        x = torch.zeros(1, chans, size, size, device=param.device, dtype=param.dtype)
        t = torch.tensor([10], device=param.device)
        with torch.inference_mode():
            unet(x, t)
    finally:
        for h in hooks:
            h.remove()
    return counts


def _weight_macs(module, _args, _kwargs, out) -> int:
    if isinstance(module, nn.Conv2d):
        per_out = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        return int(out.numel()) * per_out
    return int(out.numel()) * module.in_features


def layer_macs(unet, sample_size: int | None = None, in_channels: int | None = None) -> dict[str, int]:
    """MACs of every Conv2d/Linear module for ONE image at one timestep (forward hooks, batch 1).

    Counts weight MACs only (``out_elements * in/groups * kh * kw`` for convs, tokens x in x out for
    Linear); the attention score/value matmuls have no weights and are not counted here.
    """
    return count_with_hooks(unet, lambda m: isinstance(m, (nn.Conv2d, nn.Linear)), _weight_macs,
                            sample_size, in_channels)
