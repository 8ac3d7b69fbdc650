"""The time embedding computed once per DDIM step for the whole batch (issue #13, a "cheap win").

Every sample of a DDIM batch shares the timestep ``t``, yet ``UNet2DModel.forward`` computes the sinusoidal
projection, the two-layer time MLP and, in every ``ResnetBlock2D``, ``time_emb_proj(silu(temb))`` for each of
the B rows. :func:`install_time_table` precomputes, for the sampler's timesteps only, each resnet's projected
time vector (one row per timestep, in the model's own dtype and device, with its own modules) and swaps each
``time_emb_proj`` for a :class:`TimeTableProj` that returns the row of the current step, broadcast to the
batch. The row is chosen by a one-element index buffer shared by the model (set before each call with an
in-place ``fill_``, so a compiled graph or a CUDA graph replays with the new step, no recompilation). The batch-wide
MLP is still in the graph but no longer used: ``torch.compile`` drops it; an eager model still runs it.

The added vector then enters ``conv1``'s output as before (``hidden + temb[:, :, None, None]``); under
inductor that add is fused into the next GroupNorm's pass, so folding it into the convolution's bias would
save no memory pass and is not done.

Equivalence is checked, not assumed: :func:`install_time_table` runs the model once before and after the swap
on a probe batch and refuses (:class:`TimeTableError`) when the outputs differ beyond the dtype's tolerance
(e.g. a UNet whose time embedding also feeds something other than ``ResnetBlock2D``, or a class embedding).
"""
from __future__ import annotations

import torch
from torch import nn

from maskpro_eval.errors import MaskProEvalError

__all__ = ["TimeTableError", "TimeTableProj", "install_time_table", "TOLERANCE"]

#: max |patched - original| / max |original| allowed by the install check, per UNet dtype
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}


class TimeTableError(MaskProEvalError):
    """The time table cannot stand in for this UNet's per-row time embedding."""


class TimeTableProj(nn.Module):
    """Stands in for ``ResnetBlock2D.time_emb_proj``: ignores its input (the batch's time MLP output) and
    returns ``table[index]`` expanded to ``(B, C)``. ``table``: ``(steps, C)``; ``index``: shared ``(1,)`` long."""

    def __init__(self, table: torch.Tensor, index: torch.Tensor):
        super().__init__()
        self.register_buffer("table", table, persistent=False)
        self.register_buffer("index", index, persistent=False)   # the same tensor in every TimeTableProj

    def forward(self, temb: torch.Tensor) -> torch.Tensor:
        return self.table.index_select(0, self.index).expand(temb.shape[0], -1)


def _resnets(unet) -> dict[str, nn.Module]:
    from diffusers.models.resnet import ResnetBlock2D
    return {n: m for n, m in unet.named_modules() if isinstance(m, ResnetBlock2D) and m.time_emb_proj is not None}


@torch.no_grad()
def _projected_rows(unet, timesteps: list[int]) -> dict[str, torch.Tensor]:
    """Per resnet ``time_emb_proj(silu(time_embedding(time_proj(t))))`` for each t: ``(len(timesteps), C)``."""
    p = next(unet.parameters())
    t = torch.tensor(timesteps, dtype=torch.long, device=p.device)
    emb = unet.time_embedding(unet.time_proj(t).to(dtype=p.dtype))
    rows = {}
    for name, r in _resnets(unet).items():
        e = emb if r.skip_time_act else r.nonlinearity(emb)
        rows[name] = r.time_emb_proj(e).contiguous()
    return rows


@torch.no_grad()
def install_time_table(unet, timesteps: list[int], probe_batch: int = 2) -> tuple[dict[int, int], torch.Tensor]:
    """Swap every resnet's ``time_emb_proj`` for its row table (in place). Returns ``(row_of_t, index)``:
    ``index.fill_(row_of_t[t])`` before a call at timestep ``t``. Raises :class:`TimeTableError` when the
    model has no resnet time projection, has a class embedding, or the patched output differs."""
    if getattr(unet, "class_embedding", None) is not None:
        raise TimeTableError("time table: the UNet has a class embedding added to the time embedding; "
                             "run without the time table")
    resnets = _resnets(unet)
    if not resnets:
        raise TimeTableError("time table: the UNet has no ResnetBlock2D with a time projection")
    timesteps = [int(t) for t in timesteps]
    rows = _projected_rows(unet, timesteps)
    p = next(unet.parameters())
    index = torch.zeros(1, dtype=torch.long, device=p.device)
    row_of_t = {t: i for i, t in enumerate(timesteps)}
    # probe: original vs patched output at the middle timestep
    cfg = unet.config
    g = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn((probe_batch, cfg.in_channels, cfg.sample_size, cfg.sample_size), generator=g).to(p.device, p.dtype)
    t_mid = timesteps[len(timesteps) // 2]
    tt = torch.full((probe_batch,), t_mid, dtype=torch.long, device=p.device)
    ref = unet(x, tt, return_dict=False)[0].float()
    originals = {}
    for name, r in resnets.items():
        originals[name] = r.time_emb_proj
        r.time_emb_proj = TimeTableProj(rows[name], index)
    index.fill_(row_of_t[t_mid])
    out = unet(x, tt, return_dict=False)[0].float()
    err = float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-12))
    tol = TOLERANCE.get(p.dtype, 2e-2)
    if not err <= tol:
        for name, r in resnets.items():
            r.time_emb_proj = originals[name]
        raise TimeTableError(f"time table: the patched UNet's output differs from the original by {err:.3g} "
                             f"(relative max; tolerance {tol:g} for {p.dtype}); run without the time table")
    return row_of_t, index
