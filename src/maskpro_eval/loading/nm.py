"""N:M masks from MaskPro logits (row-major groups of M consecutive weights)."""
from __future__ import annotations

import torch


def num_groups(weight_shape, m: int) -> int:
    """Groups of ``m`` in a Conv2d ``(out, in*kh*kw)`` / Linear ``(out, in)`` weight viewed as ``(-1, m)``."""
    numel = 1
    for s in weight_shape:
        numel *= int(s)
    return numel // m


def topn_mask(logits: torch.Tensor, n: int, weight_shape) -> torch.Tensor:
    """Bool mask of ``weight_shape``: in each row of ``logits`` (num_groups, M) keep the ``n`` largest."""
    logits = logits.detach().float()
    idx = logits.topk(n, dim=1).indices
    mask = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, idx, True)
    return mask.reshape(tuple(weight_shape))
