"""The object every loader returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class LoadedCheckpoint:
    """A checkpoint turned into a runnable model.

    Attributes:
        unet: ``diffusers.UNet2DModel`` carrying the FINAL weights (masks already multiplied in), eval mode.
        scheduler: a diffusers scheduler from the checkpoint, or None (callers fall back to DDPM CIFAR-10).
        format: short name of the detected format (see ``maskpro_eval.checkpoints.FORMATS``).
        source: the path that was loaded.
        masks: layer name -> bool tensor (weight's shape, True = keep) where the format carries masks.
        nm: ``(n, m)`` declared by the checkpoint (MaskPro config / layer configurations), else None.
        keys: top-level keys (or file names) found, for ``inspect`` and error messages.
        notes: human-readable findings (e.g. ``current_mask`` disagreeing with logits).
        mask_disagreements: layer -> fraction of entries where a stored mask disagrees with the final one.
        training_logs: per-epoch metrics found in the checkpoint (MaskPro trainer), else None.
        epoch: training epoch of the checkpoint when known.
        extra: format-specific facts (base model path used, pickle module remaps applied, ...).
    """

    unet: Any
    scheduler: Any = None
    format: str = "unknown"
    source: str = ""
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    nm: tuple[int, int] | None = None
    keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    mask_disagreements: dict[str, float] = field(default_factory=dict)
    training_logs: list | dict | None = None
    epoch: int | None = None
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.source).name or self.source
