"""What the caller asked for, passed to every format loader."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class LoadContext:
    base_model: Any = None
    trust_pickle: bool = False
    nm: tuple[int, int] | None = None
    #: ``load(path, trust_pickle=...)``: load another checkpoint (a base model) with the same rules.
    load: Callable[..., Any] | None = None
    #: ``from_object(path, obj, ctx)``: dispatch an unpickled object to its format's loader.
    from_object: Callable[..., Any] | None = None
