"""Pickled modules: ``torch.save(UNet2DModel)`` files and the DDIM codebase's ``ckpt_<step>.pth`` lists."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from maskpro_eval.checkpoints.loaded import LoadedCheckpoint
from maskpro_eval.errors import CheckpointError, PickleNotTrustedError
from maskpro_eval.checkpoints.build import rebuild_from_module
from maskpro_eval.checkpoints.fixes import TRUST_FIX
from maskpro_eval.checkpoints.unpickle import load_trusted
from maskpro_eval.checkpoints.readers import PickleScan
from maskpro_eval.checkpoints.scheduler import find_scheduler
from maskpro_eval.checkpoints.state import load_state_strict, normalise_keys, tensor_dict


def not_trusted(path: Path, scan: PickleScan | None) -> PickleNotTrustedError:
    """The error for a pickle the user did not allow to execute (names the classes it references)."""
    classes = [g for g in (scan.globals if scan else []) if not g.startswith(("torch.", "collections."))]
    shown = ", ".join(classes[:4]) + (", ..." if len(classes) > 4 else "")
    what = {"list": "a pickled list (DDIM-codebase ckpt)", "object": "a pickled Python object"}.get(
        scan.top if scan else "", "pickled Python objects")
    refs = f" referencing {shown}" if shown else ""
    return PickleNotTrustedError(path, f"holds {what}{refs}; loading it executes code",
                                 "permission to execute the pickle", TRUST_FIX)


def unwrap_module(obj):
    """The model inside DataParallel/DistributedDataParallel (``.module``) or torch.compile (``._orig_mod``)."""
    for _ in range(3):
        inner = getattr(obj, "_orig_mod", None) or (obj.module if isinstance(getattr(obj, "module", None), nn.Module)
                                                    else None)
        if inner is None:
            break
        obj = inner
    return obj


def module_to_unet(obj, path: Path):
    """A fresh current UNet2DModel equal to the unpickled module ``obj``; (unet, info)."""
    obj = unwrap_module(obj)
    if type(obj).__name__ != "UNet2DModel":
        raise CheckpointError(path, f"the pickled model is a {type(obj).__module__}.{type(obj).__name__}",
                              "a diffusers UNet2DModel",
                              "convert the model to a diffusers UNet2DModel (only those can be evaluated)")
    return rebuild_from_module(obj, path)


def load_pickle_file(path: Path, ctx, scan: PickleScan | None = None) -> LoadedCheckpoint:
    """Unpickle (trust required) and turn the object into a LoadedCheckpoint."""
    if not ctx.trust_pickle:
        raise not_trusted(path, scan)
    obj, remaps = load_trusted(path)
    ck = ctx.from_object(path, obj, ctx)
    ck.extra["pickle_remaps"] = remaps
    if remaps:
        ck.notes.append(f"{len(remaps)} old diffusers class path(s) remapped to current ones")
    return ck


def from_module(path: Path, obj) -> LoadedCheckpoint:
    unet, info = module_to_unet(obj, path)
    sched, where = find_scheduler([path.parent, path.parent.parent])
    extra = dict(info)
    if where:
        extra["scheduler_config"] = str(where)
    return LoadedCheckpoint(unet=unet, scheduler=sched, format="pickled-module", source=str(path),
                            keys=[f"{type(obj).__module__}.{type(obj).__name__}"], extra=extra)


def from_ddim_list(path: Path, obj) -> LoadedCheckpoint:
    """``[model_module, optimizer_state, epoch, step, ema_state]``; EMA weights used when they fit."""
    model = obj[0]
    if not isinstance(model, nn.Module):
        raise CheckpointError(path, f"first list item is a {type(model).__name__}, not a model module",
                              "[model_module, optimizer_state, epoch, step, ema_state]",
                              "load the state dict with a config.json or --base-model")
    unet, info = module_to_unet(model, path)
    notes = []
    ema = obj[4] if len(obj) > 4 else None
    if isinstance(ema, dict) and tensor_dict(ema):
        ema_sd, _ = normalise_keys(ema, unet.state_dict().keys())
        msd = unet.state_dict()
        params = {k for k, _ in unet.named_parameters()}
        fits = (set(ema_sd) <= set(msd) and params <= set(ema_sd)
                and all(tuple(v.shape) == tuple(msd[k].shape) for k, v in ema_sd.items()))
        if fits:
            load_state_strict(unet, {**msd, **ema_sd}, path, "the pickled module")
            notes.append("EMA weights (list item 4) used")
            info["weights"] = "ema"
        else:
            notes.append("EMA state (list item 4) does not match the module; the module's own weights used")
            info["weights"] = "model"
    else:
        info["weights"] = "model"
    sched, where = find_scheduler([path.parent, path.parent.parent])
    if where:
        info["scheduler_config"] = str(where)
    epoch = obj[2] if len(obj) > 2 and isinstance(obj[2], int) else None
    if len(obj) > 3 and isinstance(obj[3], int):
        info["step"] = obj[3]
    return LoadedCheckpoint(unet=unet, scheduler=sched, format="ddim-list", source=str(path),
                            keys=[f"[{i}] {type(v).__name__}" for i, v in enumerate(obj)], notes=notes,
                            epoch=epoch, extra=info)
