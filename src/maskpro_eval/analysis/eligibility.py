"""Can PyTorch run a layer on sparse tensor cores? (one rule for the analysis and the 2:4 benchmarks)

PyTorch runs 2:4 only for matmuls (``to_sparse_semi_structured``, cuSPARSELt on Hopper: 16-bit values,
both weight dimensions multiples of 16): Linear layers and plain 1x1 convolutions whose weights are
strictly 2:4 along the reduction dimension. No 2:4 convolution exists in PyTorch/cuDNN/CUTLASS.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from maskpro_eval.analysis.nm import nm_compliance

#: Both weight dimensions must be multiples of this for cuSPARSELt's 16-bit semi-structured matmul.
SPARSE_TC_MIN_MULTIPLE = 16


def layer_kind(module: nn.Module) -> str:
    """``"linear"``, ``"conv1x1"``, ``"conv3x3"``, ``"conv_other"`` or ``"other"``."""
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Conv2d):
        if module.kernel_size == (1, 1) and module.stride == (1, 1) and module.groups == 1 and \
                module.padding in ((0, 0), 0, "valid"):
            return "conv1x1"
        if module.kernel_size == (3, 3):
            return "conv3x3"
        return "conv_other"
    return "other"


@dataclass(frozen=True)
class Eligibility:
    """``structural``: a matmul of a shape the semi-structured path accepts, pattern 2:4;
    ``eligible``: structural and its weights strictly 2:4; ``reason``: why (not)."""

    kind: str
    structural: bool
    eligible: bool
    reason: str


def sparse_tc_eligibility(module: nn.Module, n: int, m: int, weight: torch.Tensor | None = None) -> Eligibility:
    """The sparse-tensor-core verdict of one layer for pattern ``n:m`` (``weight``: default its own)."""
    kind = layer_kind(module)
    w = (module.weight if weight is None else weight).detach()
    if kind == "conv3x3":
        return Eligibility(kind, False, False, "3x3 convolution: no 2:4 convolution kernel in PyTorch/cuDNN/CUTLASS")
    if kind not in ("linear", "conv1x1"):
        return Eligibility(kind, False, False, "strided/grouped/other convolution: not a plain matmul")
    out_f, in_f = int(w.shape[0]), int(w.shape[1])
    if out_f % SPARSE_TC_MIN_MULTIPLE or in_f % SPARSE_TC_MIN_MULTIPLE:
        return Eligibility(kind, False, False,
                           f"weight ({out_f}, {in_f}) not a multiple of {SPARSE_TC_MIN_MULTIPLE} in both dims")
    if (n, m) != (2, 4):
        return Eligibility(kind, False, False, f"sparse tensor cores support 2:4 only, not {n}:{m}")
    c = nm_compliance(w.reshape(out_f, in_f), 2, 4, "row")
    if c is None or c.compliance < 1.0:
        return Eligibility(kind, True, False, "weights are not strictly 2:4 along the reduction dimension")
    return Eligibility(kind, True, True, "matmul with strict 2:4 weights (to_sparse_semi_structured)")
