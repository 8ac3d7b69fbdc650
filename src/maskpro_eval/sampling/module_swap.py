"""Swap a named submodule of a model in place, and put the originals back (the install functions of the fast
sampler's kernels: :mod:`maskpro_eval.sampling.fused_resnet`, :mod:`maskpro_eval.sampling.group_norm`)."""
from __future__ import annotations

from torch import nn

__all__ = ["swap_module", "restore_modules", "swap_and_check"]


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


def restore_modules(swapped: list[tuple[nn.Module, str, nn.Module]]) -> None:
    """Undo :func:`swap_module` for each ``(parent, child, original)`` it returned, last swap first."""
    for parent, child, orig in reversed(swapped):
        if child.isdigit():
            parent[int(child)] = orig
        else:
            setattr(parent, child, orig)


def _probe(unet: nn.Module, probe_batch: int, seed: int):
    """A random probe batch ``(x, t = 500)`` of the UNet's input shape, dtype and device."""
    import torch
    p = next(unet.parameters())
    size = unet.config.sample_size
    hw = (size, size) if isinstance(size, int) else tuple(size)
    g = torch.Generator(device="cpu").manual_seed(seed)
    xs = torch.randn(probe_batch, unet.config.in_channels, *hw, generator=g).to(p.device, p.dtype)
    return xs, torch.full((probe_batch,), 500, dtype=torch.long, device=p.device)


def swap_and_check(unet: nn.Module, replacements: list[tuple[str, nn.Module]], *, check: bool, tolerance: dict,
                   error: type[Exception], what: str, probe_batch: int = 2, seed: int = 0) -> float | None:
    """Swap each ``(name, module)`` into ``unet`` (in place). With ``check``, run the UNet before and after on a
    random probe batch (timestep 500) and, when ``max|patched - original| / max|original|`` exceeds
    ``tolerance[dtype]`` (1e-3 for a dtype not listed) or the patched call fails, restore the originals and
    raise (``error`` with a message naming ``what``). Returns that relative error (None without ``check``)."""
    import torch
    dtype = next(unet.parameters()).dtype
    ref = None
    if check:
        xs, ts = _probe(unet, probe_batch, seed)
        with torch.no_grad():
            ref = unet(xs, ts).sample.float()
    swapped = [swap_module(unet, name, new) for name, new in replacements]
    if not check:
        return None
    try:
        with torch.no_grad():
            got = unet(xs, ts).sample.float()
    except Exception:
        restore_modules(swapped)
        raise
    rel = float((got - ref).abs().max() / ref.abs().max().clamp_min(1e-12))
    tol = tolerance.get(dtype, 1e-3)
    if not (rel <= tol):
        restore_modules(swapped)
        raise error(f"{what} output differs from the unpatched UNet by {rel:.3g} (relative to max |output|; "
                    f"tolerance {tol:g} for {dtype}); model left unpatched")
    return rel
