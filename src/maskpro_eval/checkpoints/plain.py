"""Plain state dicts: architecture from a ``config.json`` beside the file or from a base model."""
from __future__ import annotations

import json
from pathlib import Path

from maskpro_eval.checkpoints.loaded import LoadedCheckpoint
from maskpro_eval.errors import BaseModelNotFoundError
from maskpro_eval.checkpoints.base_model import resolve_base
from maskpro_eval.checkpoints.build import unet_from_config
from maskpro_eval.checkpoints.fixes import BASE_FIX
from maskpro_eval.checkpoints.scheduler import find_scheduler
from maskpro_eval.checkpoints.state import load_state_strict, prepare_state_dict, tensor_dict

#: Keys under which a state dict may be nested, in order of preference (EMA first: what DDPM samples from).
NESTED_KEYS = ("ema", "ema_state_dict", "state_dict", "model_state_dict", "model")


def find_state_dict(obj) -> tuple[dict | None, str | None]:
    """(tensor dict, the key it was under or None) or (None, None)."""
    if tensor_dict(obj):
        return obj, None
    if isinstance(obj, dict):
        for k in NESTED_KEYS:
            if tensor_dict(obj.get(k)):
                return obj[k], k
    return None, None


def config_beside(path: Path) -> Path | None:
    for cand in (path.with_suffix(".json"), path.parent / "config.json"):
        if cand.is_file():
            try:
                cfg = json.loads(cand.read_text())
            except ValueError:
                continue
            if isinstance(cfg, dict) and "block_out_channels" in cfg:
                return cand
    return None


def load_plain(path: Path, obj, ctx) -> LoadedCheckpoint:
    """Strict load of a tensor dict into the base model's or the config's architecture."""
    sd, key = find_state_dict(obj)
    notes = [f"weights taken from key {key!r}"] if key else []
    cfg_file = None
    if ctx.base_model is not None:
        base = resolve_base(ctx.base_model, ctx, path)
        model, scheduler, arch = base.unet, base.scheduler, f"the base model {base.source}"
    else:
        cfg_file = config_beside(path)
        if cfg_file is None:
            raise BaseModelNotFoundError(path, "is a plain state dict with no architecture (no config.json beside it)",
                                         "a UNet config.json beside the file or a base model",
                                         BASE_FIX + ", or put the UNet's config.json beside the file")
        model = unet_from_config(json.loads(cfg_file.read_text()), cfg_file)
        scheduler, _ = find_scheduler([path.parent, path.parent.parent], notes)
        arch = f"the architecture in {cfg_file}"
    prep = prepare_state_dict(sd, path, ctx.nm, model.state_dict().keys())
    load_state_strict(model, prep.sd, path, arch)
    extra = {"state_dict_key": key, "config_file": str(cfg_file) if cfg_file else None}
    if ctx.base_model is not None:
        extra["base_model"] = base.source
    if prep.wrapped:
        extra["wrapped_layers"] = prep.wrapped
    keys = list(obj) if isinstance(obj, dict) else []
    return LoadedCheckpoint(unet=model, scheduler=scheduler, format="state-dict", source=str(path), masks=prep.masks,
                            nm=tuple(ctx.nm) if ctx.nm else None, keys=keys[:50] if key else keys[:50],
                            notes=notes + prep.notes, mask_disagreements=prep.disagreements, extra=extra)
