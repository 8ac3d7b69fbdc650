"""Trusted unpickling (``weights_only=False``) that maps old diffusers module paths to current ones."""
from __future__ import annotations

import importlib
import pickle
import types
import zipfile
from pathlib import Path

import torch

from maskpro_eval.errors import CheckpointError
from maskpro_eval.checkpoints.readers import corrupt_error

#: Current diffusers modules searched (in order) for a class whose old module path no longer exists.
CURRENT_DIFFUSERS_MODULES: tuple[str, ...] = (
    "diffusers.models.unets.unet_2d",
    "diffusers.models.unets.unet_2d_blocks",
    "diffusers.models.unets.unet_2d_condition",
    "diffusers.models.resnet",
    "diffusers.models.downsampling",
    "diffusers.models.upsampling",
    "diffusers.models.attention_processor",
    "diffusers.models.attention",
    "diffusers.models.embeddings",
    "diffusers.models.activations",
    "diffusers.models.normalization",
    "diffusers.models.modeling_utils",
    "diffusers.configuration_utils",
    "diffusers.schedulers",
    "diffusers",
)

#: Classes renamed in diffusers (old name -> current name).
RENAMED_CLASSES: dict[str, str] = {
    "CrossAttention": "Attention",
    "CrossAttnProcessor": "AttnProcessor",
    "AttnProcessor2_0": "AttnProcessor2_0",
}


def _resolve_class(module: str, name: str, remaps: dict[str, str]):
    try:
        mod = importlib.import_module(module)
        if hasattr(mod, name):
            return getattr(mod, name)
    except ImportError:
        pass
    target = RENAMED_CLASSES.get(name, name)
    for cand in CURRENT_DIFFUSERS_MODULES:
        try:
            mod = importlib.import_module(cand)
        except ImportError:
            continue
        obj = getattr(mod, target, None)
        if obj is not None:
            new = f"{getattr(obj, '__module__', cand)}.{getattr(obj, '__qualname__', target)}"
            remaps[f"{module}.{name}"] = new
            return obj
    return None


def remapping_pickle_module(remaps: dict[str, str]) -> types.ModuleType:
    """A module object usable as ``torch.load(pickle_module=...)``; records remaps into ``remaps``."""

    class RemappingUnpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if module.split(".")[0] == "diffusers":
                obj = _resolve_class(module, name, remaps)
                if obj is not None:
                    return obj
            return super().find_class(module, name)

    mod = types.ModuleType("maskpro_eval_remapping_pickle")
    mod.Unpickler = RemappingUnpickler
    mod.load = pickle.load
    mod.loads = pickle.loads
    mod.UnpicklingError = pickle.UnpicklingError
    return mod


def load_trusted(path: Path):
    """Unpickle ``path`` executing its code (caller checked trust). Returns (object, remaps)."""
    remaps: dict[str, str] = {}
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False,
                         pickle_module=remapping_pickle_module(remaps))
    except (ModuleNotFoundError, AttributeError, ImportError) as e:
        raise CheckpointError(
            path, f"the pickle needs code that is not installed ({type(e).__name__}: {e})",
            "a pickled diffusers UNet2DModel (old diffusers module paths are remapped automatically)",
            "install the package that defined the class, or re-save the weights as a state dict "
            "(torch.save(model.state_dict())) with a config.json beside it") from None
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise corrupt_error(path, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}") from None
    return obj, remaps
