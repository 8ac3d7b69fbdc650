"""Which layers N:M masking targets (one source of truth for the analysis, the loaders' reports and the
zoo builder): every Conv2d/Linear not excluded by a regex whose reduction dimension splits into groups
of M (row-major: weight viewed as ``(out, in*kh*kw)``)."""
from __future__ import annotations

import re
from typing import Iterable

from torch import nn

from maskpro_eval.analysis.nm import is_groupable, reduction_size

#: Layers left dense by default: first/last conv, time embedding, per-block time projections.
DEFAULT_EXCLUDE_LAYERS: tuple[str, ...] = (
    r"^conv_in$", r"^conv_out$", r"^time_embedding\..*", r".*time_emb_proj$",
)


def layer_is_excluded(name: str, exclude: Iterable[str]) -> bool:
    """True when ``name`` matches any regex in ``exclude`` (``re.search`` semantics)."""
    return any(re.search(p, name) for p in exclude)


def is_targeted(name: str, weight_shape, m: int, exclude: Iterable[str] = DEFAULT_EXCLUDE_LAYERS) -> bool:
    """The masked-layer rule: not excluded, and the reduction dimension is a multiple of ``m``."""
    return not layer_is_excluded(name, tuple(exclude)) and is_groupable(weight_shape, m, "row")


def targeted_layers(model: nn.Module, m: int = 4, exclude: Iterable[str] = DEFAULT_EXCLUDE_LAYERS,
                    strict: bool = False) -> dict[str, nn.Module]:
    """Every Conv2d/Linear of ``model`` the rule targets, by name (module order).

    ``strict``: a layer that is not excluded but cannot be cut into groups of ``m`` raises ValueError
    (for code that is about to mask every non-excluded layer) instead of being left dense.
    """
    exclude = tuple(exclude)
    out: dict[str, nn.Module] = {}
    for name, mod in model.named_modules():
        if not isinstance(mod, (nn.Conv2d, nn.Linear)) or layer_is_excluded(name, exclude):
            continue
        if not is_groupable(mod.weight.shape, m, "row"):
            if strict:
                raise ValueError(f"layer {name!r} has reduction size {reduction_size(mod.weight.shape)} "
                                 f"(weight {tuple(mod.weight.shape)}), not a multiple of M={m}")
            continue
        out[name] = mod
    return out
