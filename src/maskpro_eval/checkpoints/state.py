"""State-dict plumbing: strict loading, key normalisation, mask buffers and MaskPro wrappers."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import nn

from maskpro_eval.errors import CheckpointError, NonFiniteWeightsError, ShapeMismatchError
from maskpro_eval.analysis.nm import num_groups, topn_mask

LEGACY_ATTENTION_KEYS = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
PREFIXES = ("module.", "_orig_mod.", "model.", "unet.")


def tensor_dict(obj) -> bool:
    """True for a non-empty mapping of str -> tensor."""
    return (isinstance(obj, dict) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _fmt_shape(s) -> str:
    return "(" + ",".join(str(int(x)) for x in s) + ")"


def load_state_strict(model: nn.Module, sd: dict, source, what: str = "the model") -> None:
    """``load_state_dict(strict=True)`` after our own check: ShapeMismatchError lists every problem."""
    msd = model.state_dict()
    missing = [k for k in msd if k not in sd]
    unexpected = [k for k in sd if k not in msd]
    mism = [(k, tuple(sd[k].shape), tuple(msd[k].shape)) for k in msd
            if k in sd and tuple(sd[k].shape) != tuple(msd[k].shape)]
    if missing or unexpected or mism:
        parts = []
        if mism:
            shown = "; ".join(f"{k}: file {_fmt_shape(a)} vs model {_fmt_shape(b)}" for k, a, b in mism[:6])
            parts.append(f"{len(mism)} tensors with other shapes ({shown}{'; ...' if len(mism) > 6 else ''})")
        if missing:
            parts.append(f"{len(missing)} missing ({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected "
                         f"({', '.join(unexpected[:5])}{', ...' if len(unexpected) > 5 else ''})")
        err = ShapeMismatchError(
            source, f"weights do not fit {what}: " + ", ".join(parts),
            "tensor names and shapes equal to the architecture's (never re-initialised)",
            "use the config/base model the weights were saved with (a structurally pruned model needs its "
            "pickled module or a config with its channel counts)")
        err.mismatches, err.missing, err.unexpected = mism, missing, unexpected
        raise err
    model.load_state_dict(sd, strict=True)


def normalise_keys(sd: dict, model_keys=None) -> tuple[dict, list[str]]:
    """Strip a common wrapper prefix (``module.`` ...) and rename pre-0.14 attention keys."""
    notes = []
    if model_keys is not None:
        model_keys = set(model_keys)
    for p in PREFIXES:
        if sd and all(k.startswith(p) for k in sd) and (model_keys is None or not (set(sd) & model_keys)):
            sd = {k[len(p):]: v for k, v in sd.items()}
            notes.append(f"stripped key prefix '{p}'")
    pat = re.compile(r"(attentions\.\d+)\.(query|key|value|proj_attn)\.")
    if any(pat.search(k) for k in sd):
        sd = {pat.sub(lambda m: f"{m.group(1)}.{LEGACY_ATTENTION_KEYS[m.group(2)]}.", k): v for k, v in sd.items()}
        notes.append("renamed pre-0.14 attention keys (query/key/value/proj_attn -> to_q/to_k/to_v/to_out.0)")
    return sd, notes


@dataclass
class Prepared:
    """Weights ready for a plain UNet, with what was found on the way."""
    sd: dict
    masks: dict = field(default_factory=dict)
    disagreements: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    wrapped: list = field(default_factory=list)
    dense: dict = field(default_factory=dict)  # MaskPro: unmasked original weights per layer


def strip_mask_buffers(sd: dict, source) -> Prepared:
    """Move ``<layer>.mask`` tensors to masks (bool); require ``weight == weight * mask``."""
    out = Prepared(sd={})
    for k, v in sd.items():
        if k.endswith(".mask") and f"{k[:-5]}.weight" in sd:
            layer = k[:-5]
            w = sd[f"{layer}.weight"]
            if tuple(v.shape) != tuple(w.shape):
                raise ShapeMismatchError(source, f"mask {k} has shape {_fmt_shape(v.shape)} but {layer}.weight has "
                                         f"{_fmt_shape(w.shape)}", "a mask of the weight's shape",
                                         "re-export the masked model")
            if v.dtype != torch.bool and not bool(((v == 0) | (v == 1)).all()):
                raise CheckpointError(source, f"mask {k} holds values other than 0/1", "a 0/1 or bool mask",
                                      "re-export the masked model")
            mask = v.bool()
            if not torch.equal(w, w * mask.to(w.dtype)):
                bad = int(((w != 0) & ~mask).sum())
                raise CheckpointError(source, f"layer {layer}: {bad} weights are non-zero where its mask is 0 "
                                      "(weight != weight * mask)", "weights already multiplied by their mask",
                                      "re-export the model with the mask applied (weight.mul_(mask))")
            out.masks[layer] = mask
        else:
            out.sd[k] = v
    return out


def unwrap_maskpro(sd: dict, nm, source) -> Prepared:
    """Turn MaskPro wrapper keys into plain ones, applying the top-N-of-M mask from the logits.

    ``<layer>.original_layer.weight/bias`` -> ``<layer>.weight/bias``; weight = original * mask with
    mask = top-N of ``<layer>.mask_logits`` per group; ``current_mask`` is only compared.
    """
    out = Prepared(sd={})
    logits, current = {}, {}
    for k, v in sd.items():
        if k.endswith(".mask_logits"):
            logits[k[: -len(".mask_logits")]] = v
        elif k.endswith(".current_mask"):
            current[k[: -len(".current_mask")]] = v
        elif ".original_layer." in k:
            out.sd[k.replace(".original_layer.", ".")] = v
        else:
            out.sd[k] = v
    for layer, lg in logits.items():
        wkey = f"{layer}.weight"
        if wkey not in out.sd:
            raise CheckpointError(source, f"{layer}.mask_logits has no {layer}.original_layer.weight",
                                  "wrapped layers with original_layer weights", "use a complete checkpoint")
        n, m = nm if nm else (None, lg.shape[1])
        if n is None:
            raise CheckpointError(source, f"N of the N:M pattern is not declared (M={m} from the logits)",
                                  "config['model']['n'] or layer_configurations",
                                  "pass nm=(N, M) (API) / --nm N:M")
        w = out.sd[wkey]
        if lg.dim() != 2 or lg.shape[1] != m or lg.shape[0] != num_groups(w.shape, m) or w.numel() % m:
            raise ShapeMismatchError(source, f"{layer}.mask_logits has shape {_fmt_shape(lg.shape)} but the weight "
                                     f"{_fmt_shape(w.shape)} has {num_groups(w.shape, m)} groups of {m}",
                                     "(num_groups, M) logits", "check N:M and the checkpoint")
        mask = topn_mask(lg, n, w.shape)
        out.dense[layer] = w
        out.sd[wkey] = w * mask.to(w.dtype)
        out.masks[layer] = mask
        out.wrapped.append(layer)
        if layer in current:
            cm = current[layer]
            if tuple(cm.shape) == tuple(w.shape):
                out.disagreements[layer] = float((cm.bool() != mask).float().mean())
            else:
                out.notes.append(f"{layer}.current_mask has shape {_fmt_shape(cm.shape)}, not compared")
    bad = {k: v for k, v in out.disagreements.items() if v > 0}
    if bad:
        shown = ", ".join(f"{k} ({v:.1%})" for k, v in list(bad.items())[:5])
        out.notes.append(f"current_mask disagrees with the top-{nm[0] if nm else '?'} mask of the logits in "
                         f"{len(bad)} layer(s): {shown}; the logits' mask was used")
    return out


def prepare_state_dict(sd: dict, source, nm=None, model_keys=None) -> Prepared:
    """Normalise keys, then handle MaskPro wrappers or ``.mask`` buffers if present."""
    sd, notes = normalise_keys(dict(sd), model_keys)
    if any(k.endswith(".mask_logits") or ".original_layer." in k for k in sd):
        prep = unwrap_maskpro(sd, nm, source)
    elif any(k.endswith(".mask") for k in sd):
        prep = strip_mask_buffers(sd, source)
    else:
        prep = Prepared(sd=sd)
    prep.notes[:0] = notes
    return prep


def check_finite(model: nn.Module, source) -> None:
    """NonFiniteWeightsError naming every parameter/buffer holding NaN or Inf."""
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise NonFiniteWeightsError(source, f"NaN/Inf in {len(bad)} tensor(s): {', '.join(bad[:8])}"
                                    f"{', ...' if len(bad) > 8 else ''}", "finite weights",
                                    "training diverged or the file is damaged: use an earlier checkpoint")


def apply_masks(model: nn.Module, masks: dict, source, what: str = "mask") -> None:
    """Multiply each ``<layer>.weight`` of ``model`` by its bool mask (shapes checked)."""
    sd = model.state_dict()
    missing = [layer for layer in masks if f"{layer}.weight" not in sd]
    if missing:
        raise CheckpointError(source, f"{len(missing)} {what}(s) name layers the base model does not have: "
                              f"{', '.join(missing[:5])}", "layer names of the base model",
                              "use the base model the masks were made for")
    bad = [(layer, tuple(m.shape), tuple(sd[f"{layer}.weight"].shape)) for layer, m in masks.items()
           if tuple(m.shape) != tuple(sd[f"{layer}.weight"].shape)]
    if bad:
        shown = "; ".join(f"{k}: {what} {_fmt_shape(a)} vs weight {_fmt_shape(b)}" for k, a, b in bad[:6])
        err = ShapeMismatchError(source, f"{len(bad)} {what}(s) do not fit the base model ({shown})",
                                 "masks of the weights' shapes", "use the base model the masks were made for")
        err.mismatches = bad
        raise err
    with torch.no_grad():
        for layer, m in masks.items():
            w = model.get_submodule(layer).weight
            w.mul_(m.to(w.dtype))
