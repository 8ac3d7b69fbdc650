"""Tiny models and checkpoints built in code (diffusers style: fixed seed, small, fast)."""
from __future__ import annotations

import contextlib
import copy
import sys
import types
from pathlib import Path

import pytest
import torch

from maskpro_eval.analysis.layers import DEFAULT_EXCLUDE_LAYERS, layer_is_excluded
from maskpro_eval.checkpoints.architecture import DDPM_CIFAR10_SCHEDULER_CONFIG
from maskpro_eval.analysis.nm import is_groupable, magnitude_nm_mask

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"

#: For tests that run float16/bfloat16 on the CPU on purpose (the only place CI reaches those paths): the
#: sampler's CPUHalfPrecisionWarning is itself tested in tests/test_sampling.py.
half_precision_on_cpu_ok = pytest.mark.filterwarnings("ignore::maskpro_eval.sampling.config.CPUHalfPrecisionWarning")


def tiny_unet(seed: int = 0, sample_size: int = 16, block_out_channels: tuple[int, int] = (8, 16)):
    """A tiny UNet2DModel with an attention block (~40k parameters at the default widths)."""
    from diffusers import UNet2DModel
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=sample_size, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=block_out_channels, norm_num_groups=4, attention_head_dim=None,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D")).eval()


def masked_layers(unet, m: int = 4, exclude=DEFAULT_EXCLUDE_LAYERS):
    return [(n, mod) for n, mod in unet.named_modules()
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))
            and not layer_is_excluded(n, exclude) and is_groupable(mod.weight.shape, m)]


@torch.no_grad()
def prune_nm(unet, n: int = 2, m: int = 4, layers=None):
    """Magnitude N:M (row-major) on the masked layers (or the given names); returns the masks."""
    masks = {}
    for name, mod in masked_layers(unet, m):
        if layers is not None and name not in layers:
            continue
        mask = magnitude_nm_mask(mod.weight, n, m)
        mod.weight.mul_(mask)
        masks[name] = mask
    return masks


@torch.no_grad()
def prune_unstructured(unet, sparsity: float = 0.5):
    """Per-layer unstructured magnitude pruning of the masked layers (not N:M compliant)."""
    for _, mod in masked_layers(unet):
        w = mod.weight
        k = int(w.numel() * sparsity)
        thresh = w.abs().flatten().kthvalue(k).values
        w.mul_(w.abs() > thresh)


def under_sparse_layers(unet, dense_fraction=(0.05, 0.09), m: int = 4):
    """Names of the masked layers to prune so that 5-9% of the masked weights stay dense."""
    layers = masked_layers(unet, m)
    total = sum(mod.weight.numel() for _, mod in layers)
    dense, keep_dense = 0, set()
    for name, mod in sorted(layers, key=lambda x: x[1].weight.numel()):
        if (dense + mod.weight.numel()) / total > dense_fraction[1]:
            continue
        keep_dense.add(name)
        dense += mod.weight.numel()
        if dense / total >= dense_fraction[0]:
            break
    assert dense_fraction[0] <= dense / total <= dense_fraction[1], dense / total
    return [n for n, _ in layers if n not in keep_dense]


def save_pipeline(unet, folder: Path, scheduler_config: dict | None = None, *, scheduler=None,
                  safe: bool = True) -> Path:
    """Write a diffusers DDPMPipeline folder the way users' tools do (safetensors, or .bin with ``safe=False``);
    the scheduler is ``scheduler`` or a DDPMScheduler of ``scheduler_config`` (default DDPM CIFAR-10)."""
    from diffusers import DDPMPipeline, DDPMScheduler
    sched = scheduler or DDPMScheduler(**(scheduler_config or DDPM_CIFAR10_SCHEDULER_CONFIG))
    DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(folder, safe_serialization=safe)
    return Path(folder)


def zoo_garbage_unet(seed: int = 0):
    """An untrained UNet of the demo zoo's architecture: its samples are noise, not digits."""
    from diffusers import UNet2DModel
    from maskpro_eval.checkpoints.zoo import zoo_model_path
    torch.manual_seed(seed)
    return UNet2DModel.from_config(UNet2DModel.load_config(zoo_model_path("dense") / "unet")).eval()


def build_model_folder(kind: str, folder: Path, seed: int = 0) -> Path:
    """``kind`` in dense | strict24 | noncompliant | undersparse | nan | overflow | constant.

    ``overflow`` and ``constant`` are strict 2:4 models with finite weights whose output conv is broken:
    huge weights (the forward overflows to Inf/NaN), or zero weights and a large bias (a constant noise
    prediction, so every DDIM sample is the same flat image).
    """
    unet = tiny_unet(seed)
    if kind in ("strict24", "overflow", "constant"):
        prune_nm(unet)
        with torch.no_grad():
            if kind == "overflow":
                unet.conv_out.weight.fill_(3e38)
            elif kind == "constant":
                unet.conv_out.weight.zero_()
                unet.conv_out.bias.fill_(1e4)
    elif kind == "noncompliant":
        prune_unstructured(unet, 0.5)
    elif kind == "undersparse":
        prune_nm(unet, layers=set(under_sparse_layers(unet)))
    elif kind == "nan":
        prune_nm(unet)
        with torch.no_grad():
            masked_layers(unet)[0][1].weight[0].view(-1)[0] = float("nan")
    elif kind != "dense":
        raise ValueError(kind)
    return save_pipeline(unet, folder)


# ---------------------------------------------------------------- faithful copies of every checkpoint format
# (tests/test_loading.py and tests/test_loader_formats.py build their checkpoints with these)

def ddim_pipeline(unet, folder: Path, safe: bool = True) -> Path:
    """A pipeline folder with a DDIMScheduler (what Diff-Pruning and most DDIM users save)."""
    from diffusers import DDIMScheduler
    return save_pipeline(unet, folder, scheduler=DDIMScheduler(num_train_timesteps=1000), safe=safe)


def prune_resnet_inner(unet, block="down_blocks.0.resnets.0", keep=4):
    """Structural pruning of a resnet's inner channels in place (what torch-pruning does to conv1/norm2/conv2)."""
    from torch import nn
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


def save_old_pickle(obj, path: Path) -> Path:
    """torch.save(obj) as diffusers 0.17 wrote it: old module paths, and an attribute current code needs missing."""
    obj = copy.deepcopy(obj)
    for m in obj.modules():
        if type(m).__name__ == "Timesteps":
            m.__dict__.pop("scale", None)  # 0.17 Timesteps had no .scale
    path.parent.mkdir(parents=True, exist_ok=True)
    with old_diffusers_paths():
        torch.save(obj, path)
    return path


def save_diff_pruning_folder(unet, pruned, folder: Path):
    """Diff-Pruning's output: dense config + pruned .bin + pruned/unet*_pruned*.pth pickles (EMA at steps 100
    and 200). Returns the EMA module of the latest step (the one the loader must pick)."""
    ddim_pipeline(unet, folder, safe=False)
    torch.save(pruned.state_dict(), folder / "unet" / "diffusion_pytorch_model.bin")
    save_old_pickle(pruned, folder / "pruned" / "unet_pruned.pth")
    ema = copy.deepcopy(pruned)
    with torch.no_grad():
        ema.conv_out.weight.mul_(0.5)
    save_old_pickle(ema, folder / "pruned" / "unet_ema_pruned-200.pth")
    save_old_pickle(pruned, folder / "pruned" / "unet_ema_pruned-100.pth")
    return ema


def save_ddim_list(pruned, path: Path):
    """DDIM-codebase ckpt_<step>.pth: [DataParallel(model), optimizer state, epoch 7, step 1000, EMA shadow].
    Returns the EMA model (the weights the loader must pick)."""
    from torch import nn
    model = nn.DataParallel(pruned)  # the DDIM codebase saves the DataParallel-wrapped model
    opt = torch.optim.Adam(pruned.parameters(), lr=1e-4)
    ema_model = copy.deepcopy(pruned)
    with torch.no_grad():
        for p in ema_model.parameters():
            p.mul_(0.9)
    ema_state = {f"module.{k}": v.clone() for k, v in ema_model.named_parameters()}  # EMAHelper.shadow
    path.parent.mkdir(parents=True, exist_ok=True)
    with old_diffusers_paths():
        torch.save([model, opt.state_dict(), 7, 1000, ema_state], path)
    return ema_model


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


def save_masked_unet_folder(unet, folder: Path):
    """A bare UNet folder whose safetensors carry '<layer>.mask' buffers; returns (state dict, masks)."""
    from safetensors.torch import save_file
    unet.save_pretrained(folder)
    sd, masks = masked_copy(unet)
    save_file(sd, Path(folder) / "diffusion_pytorch_model.safetensors")
    return sd, masks


def save_plain_state_dict(unet, folder: Path, kind: str) -> Path:
    """``kind`` in pt-state_dict | pth-ema | safetensors | bare: the UNet's tensors, config.json beside the file."""
    sd = unet.state_dict()
    unet.save_config(folder)
    if kind == "safetensors":
        from safetensors.torch import save_file
        p = Path(folder) / "model.safetensors"
        save_file(sd, p)
        return p
    p = Path(folder) / ("model.pth" if kind == "pth-ema" else "model.pt")
    obj = {"state_dict": sd} if kind == "pt-state_dict" else \
        {"model": {k: v * 0 for k, v in sd.items()}, "ema": sd} if kind == "pth-ema" else sd
    torch.save(obj, p)
    return p


class MaskProLayer(torch.nn.Module):
    """The MaskPro-for-DDPM wrapper's state layout: original_layer, mask_logits, current_mask."""

    def __init__(self, layer, m=4):
        super().__init__()
        self.original_layer = layer
        groups = layer.weight.numel() // m
        self.mask_logits = torch.nn.Parameter(torch.randn(groups, m))
        self.register_buffer("current_mask", torch.ones_like(layer.weight))


def wrap_maskpro(unet, n=2, m=4):
    """Copy of ``unet`` with MaskPro's default targets wrapped; returns (model, wrapped names)."""
    import re
    from torch import nn
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
    """(``unet`` with the top-n-of-logits masks multiplied in, masks): what loading a MaskPro run must give."""
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


def build_maskpro_run(root: Path, unet):
    """root/run/pruned/.../ddpm_tiny (base pipeline) + root/run/maskpro/training/checkpoints/* as MaskPro
    writes them (checkpoint_epoch_2.pt, best_checkpoint.pt, maskpro_state_epoch_2.pt).

    Returns a namespace: root, ckdir, wrapped (layer names), ref (the expected final model), masks,
    trained (the fine-tuned dense weights), logs.
    """
    ddim_pipeline(unet, root / "run" / "pruned" / "magnitude" / "ddpm_tiny")
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


def save_mask_folder(masks: dict, folder: Path, style: str = "underscores") -> Path:
    """One torch.save(bool tensor) per layer, named '<layer_with_underscores>.pt' or '<layer.with.dots>.pt'."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, m in masks.items():
        torch.save(m, folder / f"{name.replace('.', '_') if style == 'underscores' else name}.pt")
    return folder


def run_in_triton_interpreter(cases: Path, timeout: int = 900) -> None:
    """Run the pytest file ``cases`` in a fresh process with ``TRITON_INTERPRET=1`` (Triton reads it when
    ``triton`` is first imported) and assert that it passed, with nothing failed or skipped."""
    import os
    import subprocess
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(cases)],
                       cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-3000:]
    assert " passed" in r.stdout and " failed" not in r.stdout and "skipped" not in r.stdout, r.stdout[-2000:]
