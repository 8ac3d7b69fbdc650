"""``describe_checkpoint``: what a checkpoint holds and what loading it needs; never executes pickles."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from maskpro_eval.errors import CheckpointError
from maskpro_eval.checkpoints.registry import describe_keys, detect_folder, detect_object
from maskpro_eval.checkpoints.diffusers_dirs import find_weights, pruned_pickles, read_weights
from maskpro_eval.checkpoints.masks_dir import mask_files
from maskpro_eval.checkpoints.maskpro import _sibling_trainer, find_pruned_model
from maskpro_eval.checkpoints.plain import config_beside, find_state_dict
from maskpro_eval.checkpoints.readers import NeedsTrust, read_weights_only, scan_pickle


def _count_tensors(obj, depth: int = 0) -> int:
    if isinstance(obj, torch.Tensor):
        return 1
    if depth > 4:
        return 0
    if isinstance(obj, dict):
        return sum(_count_tensors(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_count_tensors(v, depth + 1) for v in obj)
    return 0


def _base_needs(report: dict, base: Path | None, why_missing: str) -> None:
    """Fill base/trust needs for a format whose architecture comes from another model."""
    if base is None:
        report.update(needs_base_model=True, base_reason=why_missing)
        return
    report["base_model_found"] = str(base)
    sub = describe_checkpoint(base)
    if sub.get("needs_trust_pickle"):
        report.update(needs_trust_pickle=True,
                      trust_reason=f"its base model {base} is a pickled module ({sub.get('trust_reason')})")


def _describe_object(path: Path, obj, report: dict) -> None:
    fmt = detect_object(obj)
    report.update(format=fmt or "unknown", keys=describe_keys(obj), num_tensors=_count_tensors(obj))
    if fmt == "maskpro-trainer":
        mc = (obj.get("config") or {}).get("model") or {}
        if mc.get("n") is not None:
            report["nm"] = (int(mc["n"]), int(mc["m"]))
        sd = obj.get("model_state_dict") or {}
        report["num_tensors"] = len(sd)
        report["wrapped_layers"] = sum(k.endswith(".mask_logits") for k in sd)
        report["epoch"] = obj.get("epoch")
        rel = mc.get("pruned_model_path")
        _base_needs(report, find_pruned_model(path, rel),
                    f"config['model']['pruned_model_path']={rel!r} was not found from the current directory "
                    "or any folder above the checkpoint")
    elif fmt == "maskpro-state":
        confs = obj.get("layer_configurations") or {}
        nms = {(int(c["n"]), int(c["m"])) for c in confs.values() if "n" in c and "m" in c}
        report["nm"] = nms.pop() if len(nms) == 1 else None
        report["num_tensors"] = len(obj.get("mask_parameters") or {})
        sib = _sibling_trainer(path)
        if sib is None:
            report.update(needs_base_model=True, base_reason="it holds mask logits only and no "
                          "checkpoint_epoch_<E>.pt of the same epoch is beside it")
        else:
            report["base_model_found"] = str(sib)
            sub = describe_checkpoint(sib)
            report.update({k: sub[k] for k in ("needs_trust_pickle", "trust_reason", "needs_base_model", "base_reason")
                           if sub.get(k)})
    elif fmt == "state-dict":
        sd, key = find_state_dict(obj)
        report["num_tensors"] = len(sd)
        report["state_dict_key"] = key
        report["mask_buffers"] = sum(k.endswith(".mask") for k in sd)
        report["wrapped_layers"] = sum(k.endswith(".mask_logits") for k in sd)
        cfg = config_beside(path)
        if cfg is None:
            report.update(needs_base_model=True, base_reason="a plain state dict has no architecture and no "
                          "config.json is beside it")
        else:
            report["config_file"] = str(cfg)


def _describe_pickle(path: Path, scan, report: dict) -> None:
    classes = [g for g in scan.globals if not g.startswith(("torch.", "collections."))]
    fmt = ("ddim-list" if scan.top == "list" else
           "pickled-module" if any(g.endswith(".UNet2DModel") for g in scan.globals) else "unknown")
    report.update(format=fmt, pickle_globals=scan.globals, needs_trust_pickle=True,
                  trust_reason=f"the file is a pickle of Python objects ({', '.join(classes[:4]) or scan.top}); "
                               "loading it executes code")
    report["num_tensors"] = scan.storages or None


def _describe_folder(path: Path, report: dict) -> None:
    fmt = detect_folder(path)
    report.update(format=fmt or "unknown",
                  keys=sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir()))
    if fmt == "diffusers-pruned-pickle":
        cands = pruned_pickles(path)
        report.update(pruned_candidates=[c.name for c in cands], weights_file=str(cands[0]), needs_trust_pickle=True,
                      trust_reason=f"the pruned model is the pickled module pruned/{cands[0].name} "
                                   "(unet/config.json describes the dense model)")
        try:
            report["pickle_globals"] = scan_pickle(cands[0]).globals
        except CheckpointError as e:
            report["error"] = str(e)
    elif fmt in ("diffusers-pipeline", "diffusers-unet"):
        unet_dir = path / "unet" if fmt == "diffusers-pipeline" else path
        weights = find_weights(unet_dir)
        report["weights_file"] = str(weights) if weights else None
        if weights is None:
            report["error"] = f"{unet_dir}: no weights file"
            return
        try:
            sd = read_weights(weights)
        except CheckpointError as e:
            report["error"] = str(e)
            return
        report["num_tensors"] = len(sd)
        masks = sum(k.endswith(".mask") for k in sd)
        if masks:
            report.update(format="diffusers-masked", mask_buffers=masks)
        try:
            from maskpro_eval.checkpoints.build import unet_from_config
            msd = unet_from_config(json.loads((unet_dir / "config.json").read_text())).state_dict()
            bad = [k for k, v in sd.items() if not k.endswith(".mask") and (k not in msd or
                                                                           tuple(msd[k].shape) != tuple(v.shape))]
            report["config_matches_weights"] = not bad and all(k in sd for k in msd)
            if bad:
                report["mismatched_tensors"] = bad[:20]
        except Exception as e:  # describe must not fail on a broken config
            report["error"] = f"config not buildable: {e}"
    elif fmt == "mask-folder":
        files = mask_files(path)
        report.update(num_tensors=len(files), needs_base_model=True, base_reason="a mask folder holds masks only")
        for f in files:  # small tensors: read them all, so inspect reports the file loading would reject
            try:
                read_weights_only(f)
            except NeedsTrust:
                report["error"] = f"{f}: holds pickled objects, not a tensor"
                return
            except CheckpointError as e:
                report["error"] = str(e)
                return


def describe_checkpoint(path) -> dict:
    """Format guess, keys/files, tensor count, declared N:M, and whether trust_pickle / base_model are needed.

    Reads tensor files with ``weights_only=True`` and pickles only by opcode scan; never raises for a
    bad checkpoint (the problem is in ``report['error']``).
    """
    path = Path(path)
    report = {"path": str(path), "exists": path.exists(), "kind": None, "format": None, "keys": [],
              "num_tensors": None, "nm": None, "needs_trust_pickle": False, "trust_reason": None,
              "needs_base_model": False, "base_reason": None, "pickle_globals": [], "error": None}
    if not path.exists():
        report.update(format="missing", error=f"{path}: does not exist")
        return report
    report["kind"] = "folder" if path.is_dir() else "file"
    try:
        if path.is_dir():
            _describe_folder(path, report)
        else:
            try:
                obj = read_weights_only(path, mmap=True)
            except NeedsTrust as e:
                _describe_pickle(path, e.scan, report)
            else:
                _describe_object(path, obj, report)
    except CheckpointError as e:
        report.update(format=report["format"] or "corrupt", error=str(e))
    return report
