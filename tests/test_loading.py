"""Loaders on tiny faithful copies of every checkpoint format, bad inputs, and describe_checkpoint."""
from __future__ import annotations

import contextlib
import copy
import sys
import types
from pathlib import Path

import pytest
import torch
from torch import nn

from maskpro_eval.errors import (BaseModelNotFoundError, CheckpointError, NonFiniteWeightsError,
                                 PickleNotTrustedError, ShapeMismatchError)
from maskpro_eval.checkpoints import FORMATS, describe_checkpoint, load_checkpoint

TINY = dict(sample_size=16, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=4, attention_head_dim=None)
X = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
T = torch.tensor([10, 500])


def tiny_unet(**over):
    from diffusers import UNet2DModel
    torch.manual_seed(0)
    return UNet2DModel(**{**TINY, **over}).eval()


def out(unet):
    with torch.no_grad():
        return unet(X, T).sample


def same_output(a, b, tol=1e-5):
    return (out(a) - out(b)).abs().max().item() <= tol


def prune_resnet_inner(unet, block="down_blocks.0.resnets.0", keep=4):
    """Structural pruning of a resnet's inner channels in place (what torch-pruning does to conv1/norm2/conv2)."""
    r = unet.get_submodule(block)
    with torch.no_grad():
        c1 = nn.Conv2d(r.conv1.in_channels, keep, 3, padding=1)
        c1.weight.copy_(r.conv1.weight[:keep]), c1.bias.copy_(r.conv1.bias[:keep])
        te = nn.Linear(r.time_emb_proj.in_features, keep)
        te.weight.copy_(r.time_emb_proj.weight[:keep]), te.bias.copy_(r.time_emb_proj.bias[:keep])
        n2 = nn.GroupNorm(r.norm2.num_groups, keep, eps=r.norm2.eps)
        n2.weight.copy_(r.norm2.weight[:keep]), n2.bias.copy_(r.norm2.bias[:keep])
        c2 = nn.Conv2d(keep, r.conv2.out_channels, 3, padding=1)
        c2.weight.copy_(r.conv2.weight[:, :keep]), c2.bias.copy_(r.conv2.bias)
    r.conv1, r.time_emb_proj, r.norm2, r.conv2 = c1, te, n2, c2
    return unet


@contextlib.contextmanager
def old_diffusers_paths():
    """While active, UNet classes pickle under their diffusers-0.17 module paths."""
    from diffusers.models.unets import unet_2d, unet_2d_blocks
    moves = {"diffusers.models.unet_2d": [unet_2d.UNet2DModel],
             "diffusers.models.unet_2d_blocks": [getattr(unet_2d_blocks, n) for n in
                                                 ("DownBlock2D", "AttnDownBlock2D", "UpBlock2D", "AttnUpBlock2D",
                                                  "UNetMidBlock2D")]}
    saved = []
    for mod_name, classes in moves.items():
        fake = types.ModuleType(mod_name)
        for c in classes:
            setattr(fake, c.__name__, c)
            saved.append((c, c.__module__))
            c.__module__ = mod_name
        sys.modules[mod_name] = fake
    try:
        yield
    finally:
        for c, m in saved:
            c.__module__ = m
        for mod_name in moves:
            sys.modules.pop(mod_name, None)


def save_old_pickle(obj, path: Path):
    """torch.save(obj) as diffusers 0.17 wrote it: old module paths, and an attribute current code needs missing."""
    obj = copy.deepcopy(obj)
    for m in obj.modules():
        if type(m).__name__ == "Timesteps":
            m.__dict__.pop("scale", None)  # 0.17 Timesteps had no .scale
    path.parent.mkdir(parents=True, exist_ok=True)
    with old_diffusers_paths():
        torch.save(obj, path)
    return path


def save_pipeline(unet, folder: Path, safe=True):
    from diffusers import DDIMScheduler, DDPMPipeline
    DDPMPipeline(unet=unet, scheduler=DDIMScheduler(num_train_timesteps=1000)).save_pretrained(
        folder, safe_serialization=safe)
    return folder


@pytest.fixture(scope="module")
def unet():
    return tiny_unet()


@pytest.fixture(scope="module")
def pruned():
    return prune_resnet_inner(tiny_unet())


# ---------------------------------------------------------------- diffusers folders

def test_formats_documented():
    assert {"diffusers-pipeline", "diffusers-unet", "diffusers-masked", "diffusers-pruned-pickle", "pickled-module",
            "ddim-list", "maskpro-trainer", "maskpro-state", "mask-folder", "state-dict"} == set(FORMATS)


@pytest.mark.parametrize("safe", [True, False])
def test_pipeline_folder(tmp_path, unet, safe):
    folder = save_pipeline(unet, tmp_path / "pipe", safe)
    ck = load_checkpoint(folder)
    assert ck.format == "diffusers-pipeline"
    assert type(ck.scheduler).__name__ == "DDIMScheduler"
    assert not ck.unet.training and next(ck.unet.parameters()).dtype == torch.float32
    assert same_output(ck.unet, unet, 0)
    assert ck.extra["params"] == sum(p.numel() for p in unet.parameters())


def test_unet_folder(tmp_path, unet):
    unet.save_pretrained(tmp_path / "u")
    ck = load_checkpoint(tmp_path / "u")
    assert ck.format == "diffusers-unet" and ck.scheduler is None
    assert same_output(ck.unet, unet, 0)


def test_config_weights_mismatch_is_error(tmp_path, unet, pruned):
    folder = save_pipeline(unet, tmp_path / "pipe")
    from safetensors.torch import save_file
    save_file(pruned.state_dict(), folder / "unet" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(ShapeMismatchError) as e:
        load_checkpoint(folder)
    msg = str(e.value)
    assert "down_blocks.0.resnets.0.conv1.weight: file (4,8,3,3) vs model (8,8,3,3)" in msg
    assert "\n" not in msg
    assert ("down_blocks.0.resnets.0.conv1.weight", (4, 8, 3, 3), (8, 8, 3, 3)) in e.value.mismatches


def masked_copy(unet):
    """(state dict with '<layer>.mask' buffers, masks): a 2:4 mask on two layers, weights multiplied."""
    sd = {k: v.clone() for k, v in unet.state_dict().items()}
    masks = {}
    for layer in ("down_blocks.0.resnets.0.conv2", "mid_block.attentions.0.to_q"):
        w = sd[f"{layer}.weight"]
        g = w.reshape(-1, 4)
        mask = torch.zeros_like(g, dtype=torch.bool).scatter_(1, g.abs().topk(2, 1).indices, True).reshape(w.shape)
        sd[f"{layer}.weight"] = w * mask
        sd[f"{layer}.mask"] = mask if layer.endswith("to_q") else mask.float()
        masks[layer] = mask
    return sd, masks


def test_masked_diffusers_folder(tmp_path, unet):
    from safetensors.torch import save_file
    unet.save_pretrained(tmp_path / "m")
    sd, masks = masked_copy(unet)
    save_file(sd, tmp_path / "m" / "diffusion_pytorch_model.safetensors")
    ck = load_checkpoint(tmp_path / "m")
    assert ck.format == "diffusers-masked"
    assert set(ck.masks) == set(masks) and all(torch.equal(ck.masks[k], masks[k]) for k in masks)
    assert all(v.dtype == torch.bool for v in ck.masks.values())
    w = ck.unet.get_submodule("down_blocks.0.resnets.0.conv2").weight
    assert (w[~masks["down_blocks.0.resnets.0.conv2"]] == 0).all()
    # a weight not multiplied by its mask is an error naming the layer
    sd["down_blocks.0.resnets.0.conv2.weight"] = unet.state_dict()["down_blocks.0.resnets.0.conv2.weight"]
    save_file(sd, tmp_path / "m" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(CheckpointError, match=r"down_blocks\.0\.resnets\.0\.conv2"):
        load_checkpoint(tmp_path / "m")


# ---------------------------------------------------------------- pickles

def test_pickled_module_old_paths(tmp_path, pruned):
    p = save_old_pickle(pruned, tmp_path / "unet_pruned.pth")
    assert b"diffusers.models.unet_2d\n" in __import__("zipfile").ZipFile(p).read("unet_pruned/data.pkl")
    with pytest.raises(PickleNotTrustedError, match="--trust-pickle"):
        load_checkpoint(p)
    ck = load_checkpoint(p, trust_pickle=True)
    assert ck.format == "pickled-module"
    assert ck.extra["pickle_remaps"]["diffusers.models.unet_2d.UNet2DModel"] == \
        "diffusers.models.unets.unet_2d.UNet2DModel"
    assert ck.unet.get_submodule("down_blocks.0.resnets.0.conv1").out_channels == 4
    assert same_output(ck.unet, pruned)


def test_diff_pruning_folder(tmp_path, unet, pruned):
    """Dense config + pruned .bin + pruned/*.pth: the pickle is used, EMA latest step preferred."""
    folder = save_pipeline(unet, tmp_path / "run" / "pruned" / "ddpm_tiny_pruned", safe=False)
    torch.save(pruned.state_dict(), folder / "unet" / "diffusion_pytorch_model.bin")
    save_old_pickle(pruned, folder / "pruned" / "unet_pruned.pth")
    ema = copy.deepcopy(pruned)
    with torch.no_grad():
        ema.conv_out.weight.mul_(0.5)
    save_old_pickle(ema, folder / "pruned" / "unet_ema_pruned-200.pth")
    save_old_pickle(pruned, folder / "pruned" / "unet_ema_pruned-100.pth")
    with pytest.raises(PickleNotTrustedError) as e:
        load_checkpoint(folder)
    assert "--trust-pickle" in str(e.value) and "trust_pickle=True" in str(e.value)
    ck = load_checkpoint(folder, trust_pickle=True)
    assert ck.format == "diffusers-pruned-pickle"
    assert Path(ck.extra["weights_file"]).name == "unet_ema_pruned-200.pth"
    assert type(ck.scheduler).__name__ == "DDIMScheduler"
    assert same_output(ck.unet, ema)
    d = describe_checkpoint(folder)
    assert d["format"] == "diffusers-pruned-pickle" and d["needs_trust_pickle"]


def test_ddim_list_checkpoint(tmp_path, pruned):
    model = nn.DataParallel(pruned)  # the DDIM codebase saves the DataParallel-wrapped model
    opt = torch.optim.Adam(pruned.parameters(), lr=1e-4)
    ema_model = copy.deepcopy(pruned)
    with torch.no_grad():
        for p in ema_model.parameters():
            p.mul_(0.9)
    ema_state = {f"module.{k}": v.clone() for k, v in ema_model.named_parameters()}  # EMAHelper.shadow
    p = tmp_path / "logs" / "ckpt_1000.pth"
    p.parent.mkdir()
    with old_diffusers_paths():
        torch.save([model, opt.state_dict(), 7, 1000, ema_state], p)
    with pytest.raises(PickleNotTrustedError, match="trust_pickle=True"):
        load_checkpoint(p)
    ck = load_checkpoint(p, trust_pickle=True)
    assert ck.format == "ddim-list" and ck.epoch == 7 and ck.extra["step"] == 1000
    assert ck.extra["weights"] == "ema"
    assert same_output(ck.unet, ema_model)
    assert describe_checkpoint(p)["format"] == "ddim-list"


def test_describe_never_executes_pickles(tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))
    p = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, p)
    d = describe_checkpoint(p)
    assert d["needs_trust_pickle"] and "builtins.exec" in d["pickle_globals"]
    with pytest.raises(PickleNotTrustedError):
        load_checkpoint(p)
    assert not marker.exists()


# ---------------------------------------------------------------- MaskPro

class MaskProLayer(nn.Module):
    """The MaskPro-for-DDPM wrapper's state layout: original_layer, mask_logits, current_mask."""

    def __init__(self, layer, m=4):
        super().__init__()
        self.original_layer = layer
        groups = layer.weight.numel() // m
        self.mask_logits = nn.Parameter(torch.randn(groups, m))
        self.register_buffer("current_mask", torch.ones_like(layer.weight))


def wrap_maskpro(unet, n=2, m=4):
    """Copy of ``unet`` with MaskPro's default targets wrapped; returns (model, wrapped names)."""
    import re
    model = copy.deepcopy(unet)
    targets = [".*conv.*", ".*linear.*", ".*to_[qkv].*", ".*proj.*"]
    excludes = [".*norm.*", ".*embed.*", ".*time_embed.*", ".*conv_out.*"]
    torch.manual_seed(3)
    wrapped = []
    for name, mod in list(model.named_modules()):
        if not isinstance(mod, (nn.Conv2d, nn.Linear)):
            continue
        if not any(re.match(t, name) for t in targets) or any(re.match(x, name) for x in excludes):
            continue
        if (mod.weight.numel() // mod.weight.shape[0]) % m:
            continue
        w = MaskProLayer(mod, m)
        w.current_mask.copy_(torch.zeros_like(w.mask_logits, dtype=torch.bool).scatter_(
            1, w.mask_logits.topk(n, 1).indices, True).reshape(mod.weight.shape).float())
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, w)
        wrapped.append(name)
    first = model.get_submodule(wrapped[0])
    first.current_mask.fill_(1.0)  # a training-mode forward left a sampled mask behind
    return model, wrapped


def expected_masked(unet, wrapped_model, wrapped, n=2):
    ref = copy.deepcopy(unet)
    masks = {}
    with torch.no_grad():
        for name in wrapped:
            w = wrapped_model.get_submodule(name)
            mask = torch.zeros_like(w.mask_logits, dtype=torch.bool).scatter_(
                1, w.mask_logits.topk(n, 1).indices, True).reshape(w.original_layer.weight.shape)
            ref.get_submodule(name).weight.mul_(mask)
            masks[name] = mask
    return ref, masks


@pytest.fixture(scope="module")
def maskpro_run(tmp_path_factory, unet):
    """run/pruned/.../ddpm_tiny (base pipeline) + run/maskpro/training/checkpoints/* as MaskPro writes them."""
    root = tmp_path_factory.mktemp("mp")
    save_pipeline(unet, root / "run" / "pruned" / "magnitude" / "ddpm_tiny")
    trained = copy.deepcopy(unet)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.01)
    model, wrapped = wrap_maskpro(trained)
    ckdir = root / "run" / "maskpro" / "training" / "checkpoints"
    ckdir.mkdir(parents=True)
    config = {"model": {"pruned_model_path": "run/pruned/magnitude/ddpm_tiny", "n": 2, "m": 4,
                        "target_layers": [".*conv.*"], "exclude_layers": [".*norm.*"]},
              "training": {"epochs": 50}}
    logs = [{"epoch": e, "train_loss": 0.1 - e / 100, "val_loss": 0.09 - e / 100} for e in range(3)]
    ckpt = {"epoch": 2, "step": 30, "model_state_dict": model.state_dict(), "model_optimizer_state_dict": {},
            "mask_optimizer_state_dict": {}, "model_scheduler_state_dict": {}, "mask_scheduler_state_dict": {},
            "config": config, "best_val_loss": 0.07, "training_logs": logs}
    torch.save(ckpt, ckdir / "checkpoint_epoch_2.pt")
    torch.save(ckpt, ckdir / "best_checkpoint.pt")
    state = {"mask_parameters": {f"{n}.mask_logits": model.get_submodule(n).mask_logits for n in wrapped},
             "sparsity_summary": {"overall_stats": {}},
             "layer_configurations": {n: {"n": 2, "m": 4, "layer_type": "conv2d",
                                          "original_shape": model.get_submodule(n).original_layer.weight.shape,
                                          "use_gumbel": True, "temperature": 1.0} for n in wrapped}}
    torch.save(state, ckdir / "maskpro_state_epoch_2.pt")
    ref, masks = expected_masked(trained, model, wrapped)
    return types.SimpleNamespace(root=root, ckdir=ckdir, wrapped=wrapped, ref=ref, masks=masks, trained=trained,
                                 logs=logs)


def test_maskpro_trainer_checkpoint(maskpro_run):
    ck = load_checkpoint(maskpro_run.ckdir / "checkpoint_epoch_2.pt")  # base found above the checkpoint
    assert ck.format == "maskpro-trainer" and ck.nm == (2, 4) and ck.epoch == 2
    assert ck.training_logs == maskpro_run.logs
    assert list(ck.masks) == maskpro_run.wrapped
    assert all(torch.equal(ck.masks[k], v) for k, v in maskpro_run.masks.items())
    assert same_output(ck.unet, maskpro_run.ref, 0)
    first = maskpro_run.wrapped[0]
    assert ck.mask_disagreements[first] == pytest.approx(0.5)
    assert all(v == 0 for k, v in ck.mask_disagreements.items() if k != first)
    assert any(first in n and "current_mask" in n for n in ck.notes)
    assert ck.extra["params"] == sum(p.numel() for p in maskpro_run.trained.parameters())


def test_maskpro_trainer_base_override_and_missing(maskpro_run, tmp_path, unet, monkeypatch):
    import shutil
    p = tmp_path / "best_checkpoint.pt"
    shutil.copy(maskpro_run.ckdir / "best_checkpoint.pt", p)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BaseModelNotFoundError) as e:
        load_checkpoint(p)
    assert "--base-model" in str(e.value) and "base_model=" in str(e.value)
    assert "run/pruned/magnitude/ddpm_tiny" in str(e.value)
    ck = load_checkpoint(p, base_model=unet)
    assert same_output(ck.unet, maskpro_run.ref, 0)
    monkeypatch.chdir(maskpro_run.root)  # pruned_model_path is relative to where training ran
    assert same_output(load_checkpoint(p).unet, maskpro_run.ref, 0)


def test_maskpro_state(maskpro_run, tmp_path):
    p = maskpro_run.ckdir / "maskpro_state_epoch_2.pt"
    ck = load_checkpoint(p)  # sibling checkpoint_epoch_2.pt gives the weights
    assert ck.format == "maskpro-state" and ck.nm == (2, 4) and ck.epoch == 2
    assert same_output(ck.unet, maskpro_run.ref, 0)
    ck2 = load_checkpoint(p, base_model=maskpro_run.trained)
    assert same_output(ck2.unet, maskpro_run.ref, 0)
    import shutil
    alone = tmp_path / "maskpro_state_epoch_2.pt"
    shutil.copy(p, alone)
    with pytest.raises(BaseModelNotFoundError, match="--base-model"):
        load_checkpoint(alone)
    assert describe_checkpoint(alone)["needs_base_model"]


@pytest.mark.parametrize("style", ["underscores", "dots"])
def test_mask_folder(maskpro_run, tmp_path, style):
    folder = tmp_path / ("initial_masks" if style == "underscores" else "learned_masks")
    folder.mkdir()
    for name, m in maskpro_run.masks.items():
        torch.save(m, folder / f"{name.replace('.', '_') if style == 'underscores' else name}.pt")
    with pytest.raises(BaseModelNotFoundError, match="--base-model"):
        load_checkpoint(folder)
    ck = load_checkpoint(folder, base_model=maskpro_run.trained)
    assert ck.format == "mask-folder" and set(ck.masks) == set(maskpro_run.masks)
    assert same_output(ck.unet, maskpro_run.ref, 0)
    d = describe_checkpoint(folder)
    assert d["format"] == "mask-folder" and d["needs_base_model"] and d["num_tensors"] == len(maskpro_run.masks)


def test_mask_folder_shape_mismatch(maskpro_run, tmp_path, unet):
    folder = tmp_path / "learned_mask"
    folder.mkdir()
    torch.save(torch.ones(3, 3, dtype=torch.bool), folder / "down_blocks_0_resnets_0_conv1.pt")
    with pytest.raises(ShapeMismatchError, match="down_blocks.0.resnets.0.conv1"):
        load_checkpoint(folder, base_model=unet)


# ---------------------------------------------------------------- plain state dicts

@pytest.mark.parametrize("kind", ["pt-state_dict", "pth-ema", "safetensors", "bare"])
def test_plain_state_dict_with_config(tmp_path, unet, kind):
    sd = unet.state_dict()
    unet.save_config(tmp_path)  # config.json beside the file
    if kind == "safetensors":
        from safetensors.torch import save_file
        p = tmp_path / "model.safetensors"
        save_file(sd, p)
    else:
        p = tmp_path / ("model.pth" if kind == "pth-ema" else "model.pt")
        obj = {"state_dict": sd} if kind == "pt-state_dict" else \
            {"model": {k: v * 0 for k, v in sd.items()}, "ema": sd} if kind == "pth-ema" else sd
        torch.save(obj, p)
    ck = load_checkpoint(p)
    assert ck.format == "state-dict"
    assert same_output(ck.unet, unet, 0)
    assert not describe_checkpoint(p)["needs_base_model"]


def test_plain_state_dict_needs_architecture(tmp_path, unet, pruned):
    p = tmp_path / "w.pt"
    torch.save({"model_state_dict": pruned.state_dict()}, p)
    with pytest.raises(BaseModelNotFoundError, match="--base-model"):
        load_checkpoint(p)
    assert describe_checkpoint(p)["needs_base_model"]
    assert same_output(load_checkpoint(p, base_model=pruned).unet, pruned, 0)
    with pytest.raises(ShapeMismatchError, match="conv1.weight: file"):
        load_checkpoint(p, base_model=unet)
    sd = dict(pruned.state_dict())
    sd["extra.weight"] = sd.pop("conv_in.weight")
    torch.save(sd, p)
    with pytest.raises(ShapeMismatchError) as e:
        load_checkpoint(p, base_model=pruned)
    assert "missing (conv_in.weight)" in str(e.value) and "unexpected (extra.weight)" in str(e.value)


def test_non_finite_weights(tmp_path, unet):
    sd = {k: v.clone() for k, v in unet.state_dict().items()}
    sd["mid_block.resnets.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    sd["conv_out.bias"][0] = float("inf")
    unet.save_config(tmp_path)
    torch.save(sd, tmp_path / "w.pt")
    with pytest.raises(NonFiniteWeightsError) as e:
        load_checkpoint(tmp_path / "w.pt")
    assert "mid_block.resnets.0.conv1.weight" in str(e.value) and "conv_out.bias" in str(e.value)


# ---------------------------------------------------------------- bad inputs

def _one_line(err):
    assert "\n" not in str(err) and "Fix:" in str(err)


def test_missing_path(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist") as e:
        load_checkpoint(tmp_path / "nope.pt")
    _one_line(e.value)
    assert describe_checkpoint(tmp_path / "nope.pt")["format"] == "missing"


def test_truncated_zip(tmp_path, unet):
    p = tmp_path / "w.pt"
    torch.save(unet.state_dict(), p)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as e:
        load_checkpoint(p)
    _one_line(e.value)
    assert str(p) in str(e.value)
    assert describe_checkpoint(p)["error"]


def test_random_bytes(tmp_path):
    p = tmp_path / "junk.pth"
    p.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(CheckpointError, match="truncated or corrupt") as e:
        load_checkpoint(p)
    _one_line(e.value)
    assert describe_checkpoint(p)["format"] == "corrupt"


def test_unknown_format_lists_keys(tmp_path):
    p = tmp_path / "odd.pt"
    torch.save({"generator": {"w": 1}, "iteration": 5}, p)
    with pytest.raises(CheckpointError, match="unknown checkpoint format") as e:
        load_checkpoint(p)
    assert "generator" in str(e.value) and "iteration" in str(e.value)
    _one_line(e.value)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.md").write_text("x")
    with pytest.raises(CheckpointError, match="notes.md"):
        load_checkpoint(tmp_path / "folder")


def test_describe_plain_and_pipeline(tmp_path, unet):
    folder = save_pipeline(unet, tmp_path / "pipe")
    d = describe_checkpoint(folder)
    assert d["format"] == "diffusers-pipeline" and d["config_matches_weights"]
    assert d["num_tensors"] == len(unet.state_dict()) and not d["needs_trust_pickle"]
    assert "unet/" in d["keys"]
