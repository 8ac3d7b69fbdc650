"""diffusers folders: pipelines, bare UNet folders, ``.mask``-buffer variants, Diff-Pruning folders."""
from __future__ import annotations

import json
import re
from pathlib import Path

from maskpro_eval.checkpoints.loaded import LoadedCheckpoint
from maskpro_eval.errors import CheckpointError, PickleNotTrustedError
from maskpro_eval.checkpoints.build import unet_from_config
from maskpro_eval.checkpoints.fixes import TRUST_FIX
from maskpro_eval.checkpoints.readers import NeedsTrust, read_safetensors, read_weights_only
from maskpro_eval.checkpoints.scheduler import find_scheduler
from maskpro_eval.checkpoints.state import load_state_strict, prepare_state_dict, tensor_dict

WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
                "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.fp16.bin",
                "model.safetensors", "pytorch_model.bin")
_STEP = re.compile(r"^(unet(?:_ema)?_pruned)-(\d+)\.pth$")


def is_pipeline_dir(path: Path) -> bool:
    return (path / "model_index.json").is_file() or (path / "unet" / "config.json").is_file()


def is_unet_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and (find_weights(path) is not None)


def find_weights(unet_dir: Path) -> Path | None:
    """The weights file of a diffusers model folder (safetensors first), or a sharded index."""
    for name in WEIGHT_NAMES:
        if (unet_dir / name).is_file():
            return unet_dir / name
    for index in sorted(unet_dir.glob("*.index.json")):
        return index
    return None


def read_weights(file: Path) -> dict:
    """Tensors of a diffusers weights file (``weights_only`` for .bin; shards merged)."""
    if file.name.endswith(".index.json"):
        shards = sorted(set(json.loads(file.read_text())["weight_map"].values()))
        sd = {}
        for shard in shards:
            sd.update(read_weights(file.parent / shard))
        return sd
    if file.suffix == ".safetensors":
        return read_safetensors(file)
    try:
        obj = read_weights_only(file)
    except NeedsTrust as e:
        raise CheckpointError(file, f"the weights file holds pickled objects, not only tensors ({e.reason[:100]})",
                              "a tensor-only weights file", "re-save it with save_pretrained") from None
    if not tensor_dict(obj):
        raise CheckpointError(file, f"holds a {type(obj).__name__}, not a name -> tensor dict",
                              "a diffusers weights file", "re-save it with save_pretrained")
    return obj


def pruned_pickles(pipeline_dir: Path) -> list[Path]:
    """Diff-Pruning pickles in ``<dir>/pruned``, best first.

    Order: ``unet_ema_pruned.pth``, highest-step ``unet_ema_pruned-<step>.pth``, ``unet_pruned.pth``
    (written after fine-tuning ends, so newer than any step file), highest-step ``unet_pruned-<step>.pth``,
    then other ``*.pth``. EMA weights are what DDPM evaluations sample from.
    """
    d = pipeline_dir / "pruned"
    if not d.is_dir():
        return []
    files = sorted(d.glob("*.pth"))

    def rank(p: Path):
        m = _STEP.match(p.name)
        if p.name == "unet_ema_pruned.pth":
            return (0, 0)
        if m and m.group(1) == "unet_ema_pruned":
            return (1, -int(m.group(2)))
        if p.name == "unet_pruned.pth":
            return (2, 0)
        if m:
            return (3, -int(m.group(2)))
        return (4, 0)
    return sorted(files, key=lambda p: (rank(p), p.name))


def load_pruned_pipeline(path: Path, ctx) -> LoadedCheckpoint:
    """Diff-Pruning folder: the pickled module is the truth (unet/config.json is the dense model)."""
    from maskpro_eval.checkpoints.pickled import load_pickle_file
    cands = pruned_pickles(path)
    chosen = cands[0]
    if not ctx.trust_pickle:
        raise PickleNotTrustedError(
            path, f"the pruned model is the pickled module pruned/{chosen.name} (unet/config.json describes the "
                  "DENSE model and does not fit the pruned weights, so only the pickle can be used) and loading a "
                  "pickle executes code", "permission to execute the pickle", TRUST_FIX)
    ck = load_pickle_file(chosen, ctx)
    ck.format = "diffusers-pruned-pickle"
    ck.keys = sorted(p.name for p in path.iterdir())
    ck.extra["weights_file"] = str(chosen)
    ck.extra["pruned_candidates"] = [c.name for c in cands]
    ck.notes.append(f"weights from pruned/{chosen.name} (preference: EMA final, EMA latest step, final, "
                    f"latest step); unet/config.json (dense) ignored")
    sched, where = find_scheduler([path])
    ck.scheduler = sched
    if where:
        ck.extra["scheduler_config"] = str(where)
    return ck


def load_diffusers_dir(path: Path, ctx) -> LoadedCheckpoint:
    """A pipeline or bare UNet folder, loaded strictly against its own config."""
    path = Path(path)
    pipeline = is_pipeline_dir(path)
    if pipeline and pruned_pickles(path):
        return load_pruned_pipeline(path, ctx)
    unet_dir = path / "unet" if pipeline else path
    cfg_file = unet_dir / "config.json"
    if not cfg_file.is_file():
        raise CheckpointError(path, "has no unet/config.json", "a diffusers pipeline folder with unet/config.json",
                              "point at a complete diffusers folder")
    weights = find_weights(unet_dir)
    if weights is None:
        raise CheckpointError(unet_dir, "has a config.json but no weights file",
                              "diffusion_pytorch_model.safetensors or .bin", "copy the weights file as well")
    try:
        config = json.loads(cfg_file.read_text())
    except ValueError as e:
        raise CheckpointError(cfg_file, f"is not valid JSON ({e})", "a UNet2DModel config", "fix the file") from None
    model = unet_from_config(config, cfg_file)
    prep = prepare_state_dict(read_weights(weights), weights, ctx.nm, model.state_dict().keys())
    load_state_strict(model, prep.sd, weights, f"the architecture in {cfg_file}")
    notes = list(prep.notes)
    sched, where = find_scheduler([path] if pipeline else [path.parent, path], notes)
    fmt = "diffusers-masked" if prep.masks else ("diffusers-pipeline" if pipeline else "diffusers-unet")
    extra = {"weights_file": str(weights), "config_file": str(cfg_file)}
    if where:
        extra["scheduler_config"] = str(where)
    if prep.wrapped:
        extra["wrapped_layers"] = prep.wrapped
    return LoadedCheckpoint(unet=model, scheduler=sched, format=fmt, source=str(path), masks=prep.masks,
                            keys=sorted(p.name for p in path.iterdir()), notes=notes,
                            mask_disagreements=prep.disagreements, extra=extra)
