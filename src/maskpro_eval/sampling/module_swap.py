"""Swap a named submodule of a model in place, and put the originals back (the install functions of the fast
sampler's kernels: :mod:`maskpro_eval.sampling.fused_resnet`, :mod:`maskpro_eval.sampling.group_norm`)."""
from __future__ import annotations

from torch import nn

__all__ = ["swap_module", "restore_modules"]


def swap_module(root: nn.Module, name: str, new: nn.Module) -> tuple[nn.Module, str, nn.Module]:
    """Put ``new`` where ``root.get_submodule(name)`` is; returns ``(parent, child, original)`` for
    :func:`restore_modules`. Children of ``nn.ModuleList``/``nn.Sequential`` are addressed by index."""
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    orig = parent[int(child)] if child.isdigit() else getattr(parent, child)
    if child.isdigit():
        parent[int(child)] = new
    else:
        setattr(parent, child, new)
    return parent, child, orig


def restore_modules(swapped) -> None:
    """Undo :func:`swap_module` for each ``(parent, child, original)`` (an iterable, or a dict's values),
    last swap first."""
    entries = list(swapped.values()) if isinstance(swapped, dict) else list(swapped)
    for parent, child, orig in reversed(entries):
        if child.isdigit():
            parent[int(child)] = orig
        else:
            setattr(parent, child, orig)
