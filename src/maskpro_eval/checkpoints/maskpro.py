"""MaskPro files: trainer checkpoints (wrapped layers + logits) and ``maskpro_state_epoch_<E>.pt``."""
from __future__ import annotations

import re
from pathlib import Path

from maskpro_eval.checkpoints.loaded import LoadedCheckpoint
from maskpro_eval.errors import BaseModelNotFoundError, CheckpointError
from maskpro_eval.checkpoints.base_model import resolve_base
from maskpro_eval.checkpoints.fixes import BASE_FIX
from maskpro_eval.analysis.nm import topn_mask
from maskpro_eval.checkpoints.readers import read_weights_only
from maskpro_eval.checkpoints.state import apply_masks, load_state_strict, prepare_state_dict, tensor_dict


def find_pruned_model(ckpt: Path, rel) -> Path | None:
    """``pruned_model_path`` resolved against the cwd, then every folder above the checkpoint."""
    found = locate_pruned_model(ckpt, rel)
    return found[0] if found else None


def locate_pruned_model(ckpt: Path, rel) -> tuple[Path, str, bool] | None:
    """``(path, how it was found, outside)`` of ``pruned_model_path``, or None.

    Tried in order: the path itself if absolute, the current directory, every folder above the
    checkpoint. ``outside``: the walk found it beside a DIFFERENT tree than the one holding the checkpoint
    (e.g. a copied run whose pruned model is missing, resolved against the original run's folder).
    """
    if not rel:
        return None
    p = Path(str(rel)).expanduser()
    if p.is_absolute():
        return (p, "absolute path in the checkpoint's config", False) if p.exists() else None
    ckpt = Path(ckpt).resolve()
    if (Path.cwd() / p).exists():
        return Path.cwd() / p, "resolved against the current directory", False
    for depth, root in enumerate(ckpt.parents, start=1):
        if (root / p).exists():
            inside = (root / p.parts[0]) in (ckpt, *ckpt.parents)
            return root / p, f"found {depth} folder(s) above the checkpoint, under {root}", not inside
    return None


def _declared_nm(obj: dict, ctx, notes: list):
    mc = (obj.get("config") or {}).get("model") or {}
    n, m = mc.get("n"), mc.get("m")
    declared = (int(n), int(m)) if n is not None and m is not None else None
    if declared and ctx.nm and tuple(ctx.nm) != declared:
        notes.append(f"nm={tuple(ctx.nm)} given but the checkpoint declares {declared[0]}:{declared[1]}; "
                     "the declared one is used")
    return declared or (tuple(ctx.nm) if ctx.nm else None)


def trainer_parts(path: Path, obj: dict, ctx):
    """(base LoadedCheckpoint, Prepared weights, nm, notes) of a trainer checkpoint."""
    notes: list[str] = []
    nm = _declared_nm(obj, ctx, notes)
    sd = obj.get("model_state_dict")
    if not tensor_dict(sd):
        raise CheckpointError(path, "model_state_dict is missing or not a tensor dict",
                              "a MaskPro trainer checkpoint", "use another checkpoint of the run")
    rel = ((obj.get("config") or {}).get("model") or {}).get("pruned_model_path")
    base_arg = ctx.base_model
    if base_arg is None:
        located = locate_pruned_model(path, rel)
        found = located[0] if located else None
        if found is None:
            raise BaseModelNotFoundError(
                path, f"its base model config['model']['pruned_model_path']={rel!r} was not found (looked in the "
                      "current directory and every folder above the checkpoint)",
                "the structurally pruned model the masks were trained on", BASE_FIX)
        base_arg = found
        notes.append(f"base model from config['model']['pruned_model_path'] = {rel!r}: {found} ({located[1]})")
        if located[2]:
            notes.append(f"WARNING: the base model {found} lies outside the tree that holds the checkpoint: the "
                         "walk up the checkpoint's folders left its own run folder, so it may belong to another "
                         "run. Fix: pass --base-model PATH to be explicit")
    base = resolve_base(base_arg, ctx, path, "its architecture comes from the pruned model it was trained on")
    prep = prepare_state_dict(sd, path, nm, base.unet.state_dict().keys())
    return base, prep, nm, notes


def load_trainer(path: Path, obj: dict, ctx) -> LoadedCheckpoint:
    """Trainer checkpoint: unwrapped weights times the top-N-of-M masks of the logits."""
    base, prep, nm, notes = trainer_parts(path, obj, ctx)
    model = base.unet
    load_state_strict(model, prep.sd, path, f"the base model {base.source}")
    extra = {k: obj[k] for k in ("step", "best_val_loss", "config") if k in obj}
    extra.update(base_model=base.source, base_format=base.format, wrapped_layers=prep.wrapped)
    if "pickle_remaps" in base.extra:
        extra["pickle_remaps"] = base.extra["pickle_remaps"]
    return LoadedCheckpoint(unet=model, scheduler=base.scheduler, format="maskpro-trainer", source=str(path),
                            masks=prep.masks, nm=nm, keys=list(obj), notes=notes + prep.notes,
                            mask_disagreements=prep.disagreements, training_logs=obj.get("training_logs"),
                            epoch=obj.get("epoch"), extra=extra)


def _sibling_trainer(path: Path) -> Path | None:
    m = re.search(r"epoch_(\d+)", path.name)
    if m:
        cand = path.parent / f"checkpoint_epoch_{m.group(1)}.pt"
        if cand.is_file():
            return cand
    return None


def load_maskpro_state(path: Path, obj: dict, ctx) -> LoadedCheckpoint:
    """Mask logits applied to a base: ``base_model``, else the same-epoch trainer checkpoint beside it."""
    notes: list[str] = []
    logits = {k[: -len(".mask_logits")] if k.endswith(".mask_logits") else k: v
              for k, v in (obj.get("mask_parameters") or {}).items()}
    confs = obj.get("layer_configurations") or {}
    if ctx.base_model is not None:
        base = resolve_base(ctx.base_model, ctx, path)
        model = base.unet
    else:
        sib = _sibling_trainer(path)
        if sib is None:
            raise BaseModelNotFoundError(path, "holds only mask logits and no trainer checkpoint of the same epoch "
                                         "is beside it", "a base model to apply the masks to", BASE_FIX)
        sib_obj = read_weights_only(sib)
        base, prep, _, _ = trainer_parts(sib, sib_obj, ctx)
        prep.sd.update({f"{k}.weight": v for k, v in prep.dense.items()})  # unmasked weights
        model = base.unet
        load_state_strict(model, prep.sd, sib, f"the base model {base.source}")
        notes.append(f"weights (unmasked) from the trainer checkpoint beside it: {sib.name}")
        base.source = str(sib)
    sd = model.state_dict()
    masks, nms = {}, set()
    for layer, lg in logits.items():
        conf = confs.get(layer) or {}
        n, m = conf.get("n"), conf.get("m")
        if n is None and ctx.nm:
            n, m = ctx.nm
        if n is None:
            raise CheckpointError(path, f"no N:M declared for {layer}", "layer_configurations with n and m",
                                  "pass nm=(N, M) (API) / --nm N:M")
        m = int(m or lg.shape[1])
        nms.add((int(n), m))
        w = sd.get(f"{layer}.weight")
        if w is None:
            raise CheckpointError(path, f"mask logits for {layer}, a layer the base model does not have",
                                  "layer names of the base model", BASE_FIX)
        shape = tuple(conf.get("original_shape") or w.shape)
        if shape != tuple(w.shape) or lg.shape[0] * lg.shape[1] != w.numel() or lg.shape[1] != m:
            raise CheckpointError(path, f"{layer}: logits {tuple(lg.shape)} / original_shape {shape} do not fit "
                                  f"the base weight {tuple(w.shape)}", "the base model the masks were learned on",
                                  BASE_FIX)
        masks[layer] = topn_mask(lg, int(n), w.shape)
    apply_masks(model, masks, path, "mask")
    nm = nms.pop() if len(nms) == 1 else None
    if nm is None and len(logits):
        notes.append("layers use different N:M patterns")
    extra = {"base_model": base.source, "sparsity_summary": obj.get("sparsity_summary")}
    m_ = re.search(r"epoch_(\d+)", path.name)
    return LoadedCheckpoint(unet=model, scheduler=base.scheduler, format="maskpro-state", source=str(path),
                            masks=masks, nm=nm, keys=list(obj), notes=notes,
                            epoch=int(m_.group(1)) if m_ else None, extra=extra)
