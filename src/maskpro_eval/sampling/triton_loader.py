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

__all__ = ["interpret", "kernels_module", "pow2_at_least", "triton_unavailable"]


def interpret() -> bool:
    """Whether Triton's CPU interpreter is on (``TRITON_INTERPRET`` set and not ``0``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_unavailable(device, what: str) -> str | None:
    """Why the Triton kernel(s) ``what`` (e.g. "the one-pass GroupNorm is a Triton GPU kernel") cannot run on
    ``device``: Triton not importable, or not CUDA and the interpreter off. None when they can."""
    import torch
    try:
        import triton  # noqa: F401
    except Exception as e:  # pragma: no cover - depends on the install
        return f"Triton is not importable ({type(e).__name__}: {e}); install the 'triton' package"
    dev = torch.device(device)
    if dev.type == "cuda" or interpret():
        return None
    return (f"{what}; device {dev} is not CUDA "
            "(on a CPU only through Triton's interpreter, TRITON_INTERPRET=1, for tests)")


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
