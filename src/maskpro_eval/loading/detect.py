"""Format detection from what a file or folder holds, without executing anything."""
from __future__ import annotations

from pathlib import Path

from torch import nn

from .diffusers_dirs import is_pipeline_dir, is_unet_dir, pruned_pickles
from .masks_dir import looks_like_mask_dir
from .plain import find_state_dict


def detect_folder(path: Path) -> str | None:
    """Format name of a folder, or None."""
    if is_pipeline_dir(path):
        return "diffusers-pruned-pickle" if pruned_pickles(path) else "diffusers-pipeline"
    if is_unet_dir(path):
        return "diffusers-unet"
    if looks_like_mask_dir(path):
        return "mask-folder"
    return None


def detect_object(obj) -> str | None:
    """Format name of an unpickled object, or None."""
    if isinstance(obj, nn.Module):
        return "pickled-module"
    if isinstance(obj, (list, tuple)) and obj and (isinstance(obj[0], nn.Module) or
                                                    (len(obj) >= 4 and isinstance(obj[1], dict))):
        return "ddim-list"
    if isinstance(obj, dict):
        if "mask_parameters" in obj:
            return "maskpro-state"
        if "model_state_dict" in obj and ("config" in obj or "mask_optimizer_state_dict" in obj):
            return "maskpro-trainer"
        if isinstance(obj.get("model"), nn.Module):
            return "pickled-module"
        if find_state_dict(obj)[0] is not None:
            return "state-dict"
    return None


def describe_keys(obj) -> list[str]:
    if isinstance(obj, dict):
        return [str(k) for k in list(obj)[:50]]
    if isinstance(obj, (list, tuple)):
        return [f"[{i}] {type(v).__name__}" for i, v in enumerate(obj)]
    return [type(obj).__name__]
