"""The checkpoint formats: how each is recognised and loaded, in one table (detection order matters).

``FORMATS`` maps a format name to a :class:`Format`. Folder formats are recognised from the folder's
files, object formats from an object read without executing code (or, with trust, unpickled).
``load_checkpoint`` and ``describe_checkpoint`` both go through :func:`detect_folder` /
:func:`detect_object`, so what ``inspect`` says and what loading does cannot disagree.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from torch import nn

from maskpro_eval.checkpoints.diffusers_dirs import is_pipeline_dir, is_unet_dir, load_diffusers_dir, pruned_pickles
from maskpro_eval.checkpoints.maskpro import load_maskpro_state, load_trainer
from maskpro_eval.checkpoints.masks_dir import load_mask_dir, looks_like_mask_dir
from maskpro_eval.checkpoints.pickled import from_ddim_list, from_module
from maskpro_eval.checkpoints.plain import find_state_dict, load_plain


@dataclass(frozen=True)
class Format:
    """One checkpoint format: ``detect(folder_path | object) -> bool``, ``load(path, folder_or_obj, ctx)``."""

    name: str
    description: str
    kind: str  # "folder" or "object"
    detect: Callable[[Any], bool] | None  # None: a variant another format's loader reports
    load: Callable[..., Any]
    uses_base: bool = False


def _is_module(obj) -> bool:
    return isinstance(obj, nn.Module) or (isinstance(obj, dict) and isinstance(obj.get("model"), nn.Module))


def _is_ddim_list(obj) -> bool:
    return isinstance(obj, (list, tuple)) and bool(obj) and (
        isinstance(obj[0], nn.Module) or (len(obj) >= 4 and isinstance(obj[1], dict)))


def _is_trainer(obj) -> bool:
    return isinstance(obj, dict) and "model_state_dict" in obj and (
        "config" in obj or "mask_optimizer_state_dict" in obj)


_TABLE = [
    Format("diffusers-pruned-pickle",
           "Diff-Pruning pipeline folder with pruned/unet*_pruned*.pth (the pickled module is the truth)",
           "folder", lambda p: is_pipeline_dir(p) and bool(pruned_pickles(p)), lambda path, _, ctx: load_diffusers_dir(path, ctx)),
    Format("diffusers-pipeline", "pipeline folder (model_index.json, unet/, scheduler/), unet config matching its weights",
           "folder", is_pipeline_dir, lambda path, _, ctx: load_diffusers_dir(path, ctx)),
    Format("diffusers-unet", "bare UNet folder (config.json + diffusion_pytorch_model.safetensors/.bin)",
           "folder", is_unet_dir, lambda path, _, ctx: load_diffusers_dir(path, ctx)),
    Format("diffusers-masked",
           "diffusers folder whose weights carry '<layer>.mask' buffers (reported, weights verified)",
           "folder", None, lambda path, _, ctx: load_diffusers_dir(path, ctx)),  # a variant the loader finds
    Format("mask-folder", "folder with one torch.save(bool tensor) per layer, applied to a base model",
           "folder", looks_like_mask_dir, lambda path, _, ctx: load_mask_dir(path, ctx), uses_base=True),
    Format("maskpro-state", "maskpro_state_epoch_<E>.pt: mask logits + layer configurations, applied to a base model",
           "object", lambda o: isinstance(o, dict) and "mask_parameters" in o, load_maskpro_state, uses_base=True),
    Format("maskpro-trainer", "MaskPro trainer checkpoint (checkpoint_epoch_<E>.pt / best_checkpoint.pt)",
           "object", _is_trainer, load_trainer, uses_base=True),
    Format("pickled-module", "torch.save(UNet2DModel module) file, old diffusers module paths remapped",
           "object", _is_module,
           lambda path, obj, ctx: from_module(path, obj if isinstance(obj, nn.Module) else obj["model"])),
    Format("ddim-list", "DDIM-codebase ckpt_<step>.pth: [model_module, optimizer_state, epoch, step, ema_state]",
           "object", _is_ddim_list, lambda path, obj, ctx: from_ddim_list(path, obj)),
    Format("state-dict",
           "plain tensor dict (.pt/.pth/.bin/.safetensors); architecture from config.json beside it or a base",
           "object", lambda o: isinstance(o, dict) and find_state_dict(o)[0] is not None, load_plain, uses_base=True),
]

#: format name -> Format (``LoadedCheckpoint.format`` is always one of these keys).
FORMATS: dict[str, Format] = {f.name: f for f in _TABLE}


def detect_folder(path: Path) -> str | None:
    """Format name of a folder, or None."""
    return next((f.name for f in _TABLE if f.kind == "folder" and f.detect and f.detect(path)), None)


def detect_object(obj) -> str | None:
    """Format name of an object read from a file, or None."""
    return next((f.name for f in _TABLE if f.kind == "object" and f.detect and f.detect(obj)), None)


def describe_keys(obj) -> list[str]:
    """Top-level keys (or element types) of an object, for messages and ``inspect``."""
    if isinstance(obj, dict):
        return [str(k) for k in list(obj)[:50]]
    if isinstance(obj, (list, tuple)):
        return [f"[{i}] {type(v).__name__}" for i, v in enumerate(obj)]
    return [type(obj).__name__]
