"""Resolve a base model (path, LoadedCheckpoint or UNet2DModel) into a LoadedCheckpoint copy."""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

from maskpro_eval.checkpoints.loaded import LoadedCheckpoint
from maskpro_eval.errors import BaseModelNotFoundError, CheckpointError, PickleNotTrustedError
from maskpro_eval.checkpoints.fixes import BASE_FIX, TRUST_FIX


def resolve_base(base, ctx, needed_by, why: str = "it holds no architecture") -> LoadedCheckpoint:
    """The base as a LoadedCheckpoint whose ``unet`` may be modified freely (a deep copy)."""
    if base is None:
        raise BaseModelNotFoundError(needed_by, f"needs a base model: {why}", "a base model", BASE_FIX)
    if isinstance(base, LoadedCheckpoint):
        return dataclasses.replace(base, unet=copy.deepcopy(base.unet), masks=dict(base.masks),
                                   notes=list(base.notes), extra=dict(base.extra))
    from diffusers import UNet2DModel
    if isinstance(base, UNet2DModel):
        return LoadedCheckpoint(unet=copy.deepcopy(base).float().cpu().eval(), format="object",
                                source="<UNet2DModel object>")
    if isinstance(base, (str, Path)):
        if not Path(base).exists():
            raise BaseModelNotFoundError(needed_by, f"base model {base} does not exist", "an existing base model",
                                         BASE_FIX)
        try:
            return ctx.load(base, trust_pickle=ctx.trust_pickle)
        except PickleNotTrustedError as e:
            raise PickleNotTrustedError(
                needed_by, f"its base model {base} is a pickled module ({e.problem})",
                "permission to execute the base model's pickle",
                TRUST_FIX + "; or " + BASE_FIX.split(": ", 1)[1]) from None
    raise CheckpointError(needed_by, f"base_model of type {type(base).__name__} is not usable",
                          "a path, a LoadedCheckpoint or a diffusers UNet2DModel", BASE_FIX)
