"""Which layers N:M masking targets: the exclusion rule (one source of truth)."""
from __future__ import annotations

import re

#: Layers left dense by default: first/last conv, time embedding, per-block time projections.
DEFAULT_EXCLUDE_LAYERS: tuple[str, ...] = (
    r"^conv_in$", r"^conv_out$", r"^time_embedding\..*", r".*time_emb_proj$",
)


def layer_is_excluded(name: str, exclude: tuple[str, ...] | list[str]) -> bool:
    """True when ``name`` matches any regex in ``exclude`` (``re.search`` semantics)."""
    return any(re.search(p, name) for p in exclude)
