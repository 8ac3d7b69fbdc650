"""What the caller asked for, passed to every format loader."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LoadContext:
    base_model: Any = None
    trust_pickle: bool = False
    nm: tuple[int, int] | None = None
