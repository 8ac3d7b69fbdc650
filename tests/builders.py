"""Tiny models and checkpoints built in code (diffusers style: fixed seed, small, fast)."""
from __future__ import annotations

from pathlib import Path

import torch

from maskpro_eval.analysis.layers import DEFAULT_EXCLUDE_LAYERS, layer_is_excluded
from maskpro_eval.checkpoints.architecture import DDPM_CIFAR10_SCHEDULER_CONFIG
from maskpro_eval.analysis.nm import is_groupable, magnitude_nm_mask

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


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


def save_pipeline(unet, folder: Path, scheduler_config: dict | None = None) -> Path:
    """Write a diffusers DDPMPipeline folder (safetensors) the way users' tools do."""
    from diffusers import DDPMPipeline, DDPMScheduler
    sched = DDPMScheduler(**(scheduler_config or DDPM_CIFAR10_SCHEDULER_CONFIG))
    DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(folder, safe_serialization=True)
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
