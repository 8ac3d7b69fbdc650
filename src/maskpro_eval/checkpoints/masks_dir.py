"""Per-layer mask folders (``initial_masks/``, ``learned_mask*/``) applied to a base model."""
from __future__ import annotations

from pathlib import Path

import re

import torch

from maskpro_eval.checkpoints.loaded import LoadedCheckpoint
from maskpro_eval.errors import CheckpointError
from maskpro_eval.checkpoints.base_model import resolve_base
from maskpro_eval.checkpoints.readers import NeedsTrust, TENSOR_SUFFIXES, read_weights_only
from maskpro_eval.checkpoints.state import apply_masks

MASK_SUFFIXES = (".pt", ".pth", ".bin")
#: File names that are whole checkpoints, not per-layer masks.
CHECKPOINT_NAME = re.compile(r"^(checkpoint_epoch_\d+|best_checkpoint|maskpro_state.*|ckpt.*|unet.*pruned.*|"
                             r"diffusion_pytorch_model.*|model|pytorch_model)\.")


def mask_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in MASK_SUFFIXES)


def checkpoint_files(folder: Path) -> list[str]:
    """Names of whole-checkpoint files in ``folder`` (a run's checkpoints/ folder is not a mask folder)."""
    return sorted(p.name for p in folder.iterdir() if p.is_file() and CHECKPOINT_NAME.match(p.name))


def looks_like_mask_dir(folder: Path) -> bool:
    files = [p for p in folder.iterdir() if p.is_file()]
    return (bool(files) and bool(mask_files(folder)) and not checkpoint_files(folder)
            and all(p.suffix in TENSOR_SUFFIXES or p.suffix in (".json", ".txt", ".yaml") for p in files))


def resolve_layer_names(stems: list[str], layer_names: list[str], source) -> dict[str, str]:
    """File stem -> module name: dots kept, or dots written as underscores (matched to the model)."""
    by_underscore: dict[str, list[str]] = {}
    for name in layer_names:
        by_underscore.setdefault(name.replace(".", "_"), []).append(name)
    out, unknown = {}, []
    for stem in stems:
        s = stem.removesuffix("_mask").removesuffix(".mask") if stem not in layer_names else stem
        if s in layer_names:
            out[stem] = s
        elif len(by_underscore.get(s, [])) == 1:
            out[stem] = by_underscore[s][0]
        else:
            unknown.append(stem)
    if unknown:
        raise CheckpointError(source, f"{len(unknown)} mask file(s) match no layer of the base model: "
                              f"{', '.join(unknown[:5])}", "one file per layer named like the module "
                              "(dots or underscores)", "use the base model the masks were made for")
    return out


def load_mask_dir(path: Path, ctx) -> LoadedCheckpoint:
    """Read each mask (bool tensor), match it to a layer, multiply the base weights."""
    files = mask_files(path)
    base = resolve_base(ctx.base_model, ctx, path, "a mask folder holds masks only")
    layers = [n for n, m in base.unet.named_modules() if isinstance(getattr(m, "weight", None), torch.Tensor)]
    names = resolve_layer_names([f.stem for f in files], layers, path)
    masks = {}
    for f in files:
        try:
            t = read_weights_only(f)
        except NeedsTrust:
            raise CheckpointError(f, "holds pickled objects, not a tensor", "a torch.save(bool tensor) file",
                                  "re-save the mask with torch.save(mask.bool())") from None
        if not isinstance(t, torch.Tensor):
            raise CheckpointError(f, f"holds a {type(t).__name__}, not a tensor", "a torch.save(bool tensor) file",
                                  "re-save the mask with torch.save(mask.bool())")
        if t.dtype != torch.bool and not bool(((t == 0) | (t == 1)).all()):
            raise CheckpointError(f, "holds values other than 0/1", "a bool (keep = True) mask",
                                  "re-save the mask with torch.save(mask.bool())")
        masks[names[f.stem]] = t.bool()
    apply_masks(base.unet, masks, path, "mask")
    nm = tuple(ctx.nm) if ctx.nm else None
    return LoadedCheckpoint(unet=base.unet, scheduler=base.scheduler, format="mask-folder", source=str(path),
                            masks=masks, nm=nm, keys=[f.name for f in files],
                            notes=[f"{len(masks)} masks applied to {base.source}"],
                            extra={"base_model": base.source, "layer_files": {names[f.stem]: f.name for f in files}})
