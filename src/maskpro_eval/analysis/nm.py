"""N:M structured-sparsity arithmetic on single weight tensors.

Two grouping layouts are in use (see FORMATS.md):

* ``"row"`` (row-major): the weight is viewed as ``(out, in*kh*kw)`` and cut into consecutive
  groups of M (MaskPro-on-DDPM, SparseGPT, llm-compressor).
* ``"channel"``: Conv2d weights are permuted to ``(out, kh, kw, in)`` so a group holds M consecutive
  INPUT channels at one kernel tap (NVIDIA ASP/modelopt, sparse tensor cores). Linear weights group
  consecutive ``in_features`` in both layouts.

A group is *compliant* when it holds at most N non-zeros; where a mask is known, *exact* compliance
additionally requires exactly N kept entries.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

LAYOUTS = ("row", "channel")

#: Patterns tried by :func:`best_fit_pattern`, sparsest first within equal density.
COMMON_PATTERNS: tuple[tuple[int, int], ...] = ((1, 4), (1, 2), (2, 4), (2, 8), (4, 8), (4, 16), (8, 16))


def parse_nm(text) -> tuple[int, int]:
    """``"2:4"`` or ``(2, 4)`` -> ``(2, 4)``; raises ValueError with the expected form otherwise."""
    try:
        if isinstance(text, str):
            n_text, m_text = text.split(":")
        else:
            n_text, m_text = text
            if isinstance(n_text, (str, float)) or isinstance(m_text, (str, float)):
                raise TypeError
        n, m = int(n_text), int(m_text)
    except (ValueError, TypeError):
        raise ValueError(f"N:M pattern {text!r} is neither 'N:M' (e.g. '2:4') nor a pair of integers "
                         "(e.g. (2, 4))") from None
    if not (0 < n < m):
        raise ValueError(f"N:M pattern {text!r} needs 0 < N < M")
    return n, m


def reduction_size(shape: tuple[int, ...] | torch.Size) -> int:
    """Elements along the reduction dimension of a Conv2d/Linear weight (``in*kh*kw``)."""
    size = 1
    for d in tuple(shape)[1:]:
        size *= int(d)
    return size


def is_groupable(shape, m: int, layout: str = "row") -> bool:
    """Whether a weight of ``shape`` can be cut into N:M groups of size ``m`` in ``layout``."""
    shape = tuple(shape)
    if len(shape) < 2:
        return False
    if layout == "row" or len(shape) == 2:
        return reduction_size(shape) % m == 0
    if layout == "channel":
        return shape[1] % m == 0
    raise ValueError(f"unknown N:M layout {layout!r}; expected one of {LAYOUTS}")


def groups(weight: torch.Tensor, m: int, layout: str = "row") -> torch.Tensor:
    """The weight as a ``(num_groups, m)`` view/copy in the given layout."""
    if not is_groupable(weight.shape, m, layout):
        raise ValueError(f"weight of shape {tuple(weight.shape)} cannot be cut into groups of {m} "
                         f"in the {layout!r} layout")
    w = weight
    if layout == "channel" and w.dim() == 4:
        w = w.permute(0, 2, 3, 1)
    return w.reshape(-1, m)


def ungroup(grouped: torch.Tensor, shape, layout: str = "row") -> torch.Tensor:
    """Inverse of :func:`groups`: back to the weight's ``shape``."""
    shape = tuple(shape)
    if layout == "channel" and len(shape) == 4:
        out, cin, kh, kw = shape
        return grouped.reshape(out, kh, kw, cin).permute(0, 3, 1, 2).contiguous()
    return grouped.reshape(shape)


@dataclass(frozen=True)
class NMCompliance:
    """Compliance of one tensor with N:M in one layout.

    ``compliance``: fraction of groups with at most N non-zeros (0..1).
    ``exact``: fraction with exactly N non-zeros (meaningful where a mask is known).
    """

    n: int
    m: int
    layout: str
    num_groups: int
    compliant_groups: int
    exact_groups: int

    @property
    def compliance(self) -> float:
        return self.compliant_groups / self.num_groups if self.num_groups else 0.0

    @property
    def exact(self) -> float:
        return self.exact_groups / self.num_groups if self.num_groups else 0.0


def nm_compliance(weight: torch.Tensor, n: int, m: int, layout: str = "row") -> NMCompliance | None:
    """N:M compliance of the non-zero pattern of ``weight`` (or a bool mask); None if not groupable."""
    if not is_groupable(weight.shape, m, layout):
        return None
    nonzero = (groups(weight.detach(), m, layout) != 0).sum(dim=1)
    return NMCompliance(n=n, m=m, layout=layout, num_groups=int(nonzero.numel()),
                        compliant_groups=int((nonzero <= n).sum()),
                        exact_groups=int((nonzero == n).sum()))


def best_fit_pattern(weight: torch.Tensor, layout: str = "row", min_compliance: float = 0.999,
                     patterns=COMMON_PATTERNS) -> tuple[tuple[int, int] | None, float]:
    """The sparsest common N:M pattern the tensor satisfies (>= ``min_compliance``).

    Returns ``((n, m), compliance)``; if no pattern reaches ``min_compliance``, the pattern with the
    highest compliance (ties: sparsest), or ``(None, 0.0)`` when nothing is groupable.
    """
    scored = []
    for n, m in patterns:
        c = nm_compliance(weight, n, m, layout)
        if c is not None:
            scored.append(((n, m), c.compliance))
    if not scored:
        return None, 0.0
    passing = [s for s in scored if s[1] >= min_compliance]
    if passing:
        return min(passing, key=lambda s: (s[0][0] / s[0][1], s[0][1]))
    return max(scored, key=lambda s: (s[1], -s[0][0] / s[0][1]))


def topn_grouped(grouped: torch.Tensor, n: int) -> torch.Tensor:
    """Bool mask of ``grouped``'s shape ``(num_groups, M)``: True at the N largest entries of each row."""
    idx = grouped.topk(n, dim=1).indices
    mask = torch.zeros_like(grouped, dtype=torch.bool)
    mask.scatter_(1, idx, True)
    return mask


def num_groups(weight_shape, m: int) -> int:
    """Groups of ``m`` in a weight of ``weight_shape`` viewed as ``(-1, m)``."""
    return torch.Size(weight_shape).numel() // m


def topn_mask(logits: torch.Tensor, n: int, shape, layout: str = "row") -> torch.Tensor:
    """MaskPro's final mask (bool, ``shape``): keep the N largest logits of each ``(num_groups, M)`` row.

    The one rule for "final mask from logits" (loaders, inspect, the zoo builder)."""
    logits = logits.detach().float()
    if logits.dim() != 2 or logits.shape[0] * logits.shape[1] != torch.Size(shape).numel():
        raise ValueError(f"logits of shape {tuple(logits.shape)} do not group a weight of shape "
                         f"{tuple(shape)}")
    return ungroup(topn_grouped(logits, n), shape, layout)


def magnitude_nm_mask(weight: torch.Tensor, n: int, m: int, layout: str = "row") -> torch.Tensor:
    """Bool mask keeping the N largest-magnitude entries of each group of M."""
    return ungroup(topn_grouped(groups(weight.detach().abs(), m, layout), n), weight.shape, layout)
