"""Build current-diffusers ``UNet2DModel``s: from a config, resized to (pruned) tensor shapes."""
from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping

import torch
from torch import nn

from maskpro_eval.errors import CheckpointError

#: Scalar attributes copied from an unpickled (old) module onto its freshly built counterpart.
COPIED_ATTRIBUTES = ("scale", "heads", "rescale_output_factor", "upcast_softmax", "upcast_attention",
                     "residual_connection", "output_scale_factor", "num_channels", "flip_sin_to_cos",
                     "downscale_freq_shift")


def config_dict(config: Mapping) -> dict:
    """A plain dict of a UNet config without the private ``_`` keys."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(config).items()
            if not str(k).startswith("_")}


def unet_from_config(config: Mapping, source=None):
    """A randomly initialised ``UNet2DModel`` from a (diffusers 0.17+) config dict."""
    from diffusers import UNet2DModel
    cls_name = dict(config).get("_class_name", "UNet2DModel")
    if cls_name != "UNet2DModel":
        raise CheckpointError(source, f"describes a {cls_name}, not a UNet2DModel", "a diffusers UNet2DModel",
                              "point at the UNet of a DDPM pipeline")
    cfg = config_dict(config)
    known = set(inspect.signature(UNet2DModel.__init__).parameters) - {"self"}
    unknown = sorted(k for k in cfg if k not in known)
    if unknown:  # diffusers would drop them and build its defaults (e.g. 32 norm groups instead of 8)
        hints = [f"{k!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, known, 1)) else repr(k)
                 for k in unknown]
        raise CheckpointError(source, f"its UNet config has unknown key(s) {', '.join(hints)}",
                              "only UNet2DModel arguments (a misspelled key would silently become its default)",
                              "fix or remove the key(s) in config.json")
    try:
        return UNet2DModel.from_config(cfg)
    except Exception as e:
        raise CheckpointError(source, f"its UNet config cannot be built ({type(e).__name__}: {e})",
                              "a UNet2DModel config.json", "check the config file") from None


def _parents_of(model: nn.Module) -> dict[int, list[tuple[nn.Module, str]]]:
    refs: dict[int, list[tuple[nn.Module, str]]] = {}
    for mod in model.modules():
        for attr, child in mod._modules.items():
            if child is not None:
                refs.setdefault(id(child), []).append((mod, attr))
    return refs


def _resized(mod: nn.Module, shape: torch.Size, template: nn.Module | None) -> nn.Module:
    t = template if template is not None and type(template) is type(mod) else mod
    if isinstance(mod, nn.Conv2d):
        return nn.Conv2d(shape[1] * t.groups, shape[0], t.kernel_size, t.stride, t.padding, t.dilation,
                         t.groups, bias=t.bias is not None, padding_mode=t.padding_mode)
    if isinstance(mod, nn.Linear):
        return nn.Linear(shape[1], shape[0], bias=t.bias is not None)
    if isinstance(mod, nn.GroupNorm):
        groups = t.num_groups
        if shape[0] % groups:
            raise ValueError(f"{shape[0]} channels not divisible by {groups} groups")
        return nn.GroupNorm(groups, shape[0], eps=t.eps, affine=t.affine)
    if isinstance(mod, nn.LayerNorm):
        return nn.LayerNorm(tuple(shape), eps=t.eps, elementwise_affine=t.elementwise_affine)
    raise ValueError(f"cannot resize {type(mod).__name__}")


def resize_to_shapes(model: nn.Module, shapes: Mapping[str, torch.Size],
                     templates: Mapping[str, nn.Module] | None = None) -> list[str]:
    """Replace Conv2d/Linear/GroupNorm/LayerNorm whose weight shape differs from ``shapes``.

    Used only where the file's shapes are the truth (a pickled module, structurally pruned).
    ``templates`` (name -> old module) supplies stride/padding/groups/eps. Returns resized names.
    """
    refs = _parents_of(model)
    resized = []
    for name, mod in list(model.named_modules()):
        if not isinstance(mod, (nn.Conv2d, nn.Linear, nn.GroupNorm, nn.LayerNorm)):
            continue
        w = getattr(mod, "weight", None)
        shape = shapes.get(f"{name}.weight")
        if w is None or shape is None or tuple(w.shape) == tuple(shape):
            continue
        new = _resized(mod, torch.Size(shape), (templates or {}).get(name))
        for parent, attr in refs.get(id(mod), []):
            setattr(parent, attr, new)
        resized.append(name)
    return resized


def fix_channel_attributes(model: nn.Module, templates: Mapping[str, nn.Module] | None = None) -> list[str]:
    """Make diffusers modules' scalar attributes agree with their (possibly pruned) layers.

    Copies ``COPIED_ATTRIBUTES`` from the old module of the same name, sets ``channels``/
    ``out_channels`` of Down/Upsample2D and ResnetBlock2D from their convs, and switches an
    Attention whose head size changed to ``AttnProcessor`` (which uses the stored ``scale``).
    """
    from diffusers.models.attention_processor import Attention, AttnProcessor
    changes = []
    templates = templates or {}
    for name, mod in model.named_modules():
        old = templates.get(name)
        if old is not None and type(old).__name__ == type(mod).__name__:
            for attr in COPIED_ATTRIBUTES:
                if attr in mod.__dict__ and attr in old.__dict__:
                    val = old.__dict__[attr]
                    if isinstance(val, (int, float, bool)) and val != mod.__dict__[attr]:
                        changes.append(f"{name}.{attr}: {mod.__dict__[attr]} -> {val}")
                        setattr(mod, attr, val)
        cls = type(mod).__name__
        conv = getattr(mod, "conv", None)
        if cls in ("Downsample2D", "Upsample2D") and isinstance(conv, nn.Conv2d):
            for attr, val in (("channels", conv.in_channels), ("out_channels", conv.out_channels)):
                if getattr(mod, attr, val) != val:
                    changes.append(f"{name}.{attr}: {getattr(mod, attr)} -> {val}")
                setattr(mod, attr, val)
        if cls == "ResnetBlock2D":
            mod.in_channels = mod.conv1.in_channels
            mod.out_channels = mod.conv2.out_channels
        if isinstance(mod, Attention) and isinstance(getattr(mod, "to_q", None), nn.Linear):
            inner = mod.to_q.out_features
            mod.inner_dim = inner
            head_dim = inner // max(int(mod.heads), 1)
            if abs(float(mod.scale) - head_dim ** -0.5) > 1e-9:
                mod.set_processor(AttnProcessor())
                changes.append(f"{name}: AttnProcessor (stored scale {mod.scale} != head_dim {head_dim}**-0.5)")
    return changes


def rebuild_from_module(old: nn.Module, source=None) -> tuple[nn.Module, dict]:
    """Fresh current ``UNet2DModel`` equal to an unpickled (possibly old, pruned) one.

    Built from the old module's config, layers resized to the old state dict's shapes, scalar
    attributes copied, then the state dict loaded strictly.
    """
    from maskpro_eval.checkpoints.state import load_state_strict
    config = getattr(old, "_internal_dict", None) or getattr(old, "config", None)
    if config is None:
        raise CheckpointError(source, f"pickled {type(old).__name__} has no diffusers config",
                              "a pickled diffusers UNet2DModel", "re-save it with diffusers")
    sd = {k: v.detach() for k, v in old.state_dict().items()}
    new = unet_from_config(config, source)
    templates = dict(old.named_modules())
    resized = resize_to_shapes(new, {k: v.shape for k, v in sd.items()}, templates)
    changes = fix_channel_attributes(new, templates)
    load_state_strict(new, sd, source, "the module rebuilt from the pickle's config")
    return new, {"resized_layers": resized, "attribute_fixes": changes}
