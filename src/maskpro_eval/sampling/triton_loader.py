"""Load a module of Triton kernels under the current interpreter setting; the power-of-two tile sizes their
launchers share.

Triton reads ``TRITON_INTERPRET`` when a kernel is decorated, so a kernels module imported once keeps the
setting it was imported under. :func:`kernels_module` reloads it when the setting changed since (tests flip
it in a fresh process; a GPU run never sets it)."""
from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType

__all__ = ["interpret", "kernels_module", "pow2_at_least"]


def interpret() -> bool:
    """Whether Triton's CPU interpreter is on (``TRITON_INTERPRET`` set and not ``0``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.lru_cache(maxsize=8)
def kernels_module(name: str, interpreted: bool) -> ModuleType:
    """The kernels module ``name`` built under ``interpreted`` (its ``INTERPRET`` flag records the setting)."""
    mod = importlib.import_module(name)
    if getattr(mod, "INTERPRET", None) != interpreted:
        mod = importlib.reload(mod)
    return mod


def pow2_at_least(n: int, lo: int = 1) -> int:
    """The smallest power of two >= ``max(n, lo)`` (``lo`` a power of two): a Triton block size."""
    p = lo
    while p < n:
        p *= 2
    return p
