"""``load_checkpoint``: detect the format, dispatch to its loader, then check and finalise the model."""
from __future__ import annotations

from pathlib import Path

import torch

from maskpro_eval.analysis.nm import parse_nm
from maskpro_eval.checkpoints.context import LoadContext
from maskpro_eval.checkpoints.loaded import LoadedCheckpoint
from maskpro_eval.checkpoints.masks_dir import checkpoint_files
from maskpro_eval.checkpoints.pickled import load_pickle_file
from maskpro_eval.checkpoints.readers import NeedsTrust, missing_path_error, read_weights_only
from maskpro_eval.checkpoints.registry import FORMATS, describe_keys, detect_folder, detect_object
from maskpro_eval.checkpoints.state import check_finite
from maskpro_eval.errors import CheckpointError


def _unknown(path, found: list[str], what: str) -> CheckpointError:
    return CheckpointError(path, f"unknown checkpoint format ({what}; found: {', '.join(found[:20]) or 'nothing'})",
                           "one of: " + ", ".join(FORMATS),
                           "point at the model file or folder itself (see FORMATS.md)")


def from_object(path: Path, obj, ctx: LoadContext) -> LoadedCheckpoint:
    """Dispatch an already-read object to its format's loader."""
    fmt = detect_object(obj)
    if fmt is not None:
        return FORMATS[fmt].load(path, obj, ctx)
    if isinstance(obj, torch.Tensor):
        raise _unknown(path, [f"a single tensor of shape {tuple(obj.shape)}"], "a lone tensor is a mask or weight, "
                       "not a model; a folder of them is a mask folder")
    raise _unknown(path, describe_keys(obj), f"a {type(obj).__name__}")


def _load_file(path: Path, ctx: LoadContext) -> LoadedCheckpoint:
    try:
        obj = read_weights_only(path)
    except NeedsTrust as e:
        return load_pickle_file(path, ctx, e.scan)
    return from_object(path, obj, ctx)


def _load_folder(path: Path, ctx: LoadContext) -> LoadedCheckpoint:
    fmt = detect_folder(path)
    if fmt is not None:
        return FORMATS[fmt].load(path, None, ctx)
    ckpts = checkpoint_files(path)
    if ckpts:
        raise CheckpointError(path, f"is a folder of checkpoints ({', '.join(ckpts[:6])})", "one checkpoint",
                              f"pass one file, e.g. {path / ckpts[0]}")
    raise _unknown(path, sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir()), "a folder")


def finalize(ck: LoadedCheckpoint, path: Path) -> LoadedCheckpoint:
    """float32, CPU, eval mode, finite weights; parameter count into ``extra['params']``."""
    ck.unet = ck.unet.cpu().float().eval()  # .float(): ModelMixin.to(dtype) warns
    for p in ck.unet.parameters():
        p.requires_grad_(False)
    check_finite(ck.unet, path)
    ck.masks = {k: v.bool().cpu() for k, v in ck.masks.items()}
    ck.source = str(path)
    ck.extra["params"] = sum(p.numel() for p in ck.unet.parameters())
    return ck


def _nm_argument(nm) -> tuple[int, int] | None:
    if nm is None:
        return None
    try:
        return parse_nm(nm)
    except ValueError as e:
        raise ValueError(f"load_checkpoint(nm=...): {e}") from None


def load_checkpoint(path, base_model=None, trust_pickle: bool = False, nm=None) -> LoadedCheckpoint:
    """Load any supported checkpoint (see ``FORMATS``) into a runnable ``UNet2DModel``.

    Args:
        path: file or folder.
        base_model: architecture/weights for formats that carry none (mask folders, maskpro_state,
            plain state dicts) or an override of a MaskPro trainer checkpoint's ``pruned_model_path``:
            a path of any loadable format, a LoadedCheckpoint or a UNet2DModel.
        trust_pickle: allow executing pickles (``weights_only=False``); never needed for tensor-only files.
        nm: ``(N, M)`` used where the checkpoint declares none (a declared pattern wins).
    Raises:
        CheckpointError and its subclasses, with a one-line message naming the file and the fix.
    """
    path = Path(path)
    if not path.exists():
        raise missing_path_error(path)
    ctx = LoadContext(base_model=base_model, trust_pickle=bool(trust_pickle), nm=_nm_argument(nm),
                      load=load_checkpoint, from_object=from_object)
    ck = _load_folder(path, ctx) if path.is_dir() else _load_file(path, ctx)
    if base_model is not None and not FORMATS[ck.format].uses_base:
        ck.notes.append(f"base_model ignored: a {ck.format} checkpoint carries its own architecture")
    if ck.nm is None and ctx.nm:
        ck.nm = ctx.nm
        ck.extra.setdefault("nm_source", "argument")
    elif ck.nm is not None:
        ck.extra.setdefault("nm_source", "checkpoint")
    return finalize(ck, path)
