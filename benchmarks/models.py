"""The UNets benchmarks run on: a tiny one built in code (CPU, CI), the DDPM CIFAR-10 architecture with
random weights (timing), or any checkpoint maskpro_eval loads; and a magnitude 2:4 copy of a model."""
from __future__ import annotations

import copy
from pathlib import Path

import torch

#: ``--model`` values that are not paths.
BUILT_IN = ("tiny", "ddpm-cifar10")


def tiny_unet(seed: int = 0):
    """A UNet2DModel with the DDPM CIFAR-10 block types at 16-32 channels, 32x32 (a CPU forward in ms)."""
    from diffusers import UNet2DModel
    torch.manual_seed(seed)
    return UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=(16, 32), norm_num_groups=4, attention_head_dim=None,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D")).eval()


def load_model(spec: str = "tiny", seed: int = 0):
    """``(unet, scheduler_config or None)`` for ``spec``: ``tiny``, ``ddpm-cifar10`` (random weights,
    ``torch.manual_seed(seed)``, 35.7 M parameters) or a checkpoint path."""
    if spec == "tiny":
        return tiny_unet(seed), None
    if spec == "ddpm-cifar10":
        from maskpro_eval.checkpoints.architecture import build_ddpm_cifar10_unet
        torch.manual_seed(seed)
        return build_ddpm_cifar10_unet().eval(), None
    from maskpro_eval.checkpoints import load_checkpoint
    loaded = load_checkpoint(Path(spec))
    return loaded.unet.eval(), None if loaded.scheduler is None else dict(loaded.scheduler.config)


def magnitude_24(unet):
    """A copy of ``unet`` magnitude-pruned 2:4 on every maskable, groupable Conv2d/Linear; ``(copy, count)``."""
    from maskpro_eval.analysis.layers import DEFAULT_EXCLUDE_LAYERS, layer_is_excluded
    from maskpro_eval.analysis.nm import is_groupable, magnitude_nm_mask
    pruned = copy.deepcopy(unet)
    count = 0
    with torch.no_grad():
        for name, mod in pruned.named_modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)) and not layer_is_excluded(
                    name, DEFAULT_EXCLUDE_LAYERS) and is_groupable(mod.weight.shape, 4):
                mod.weight.mul_(magnitude_nm_mask(mod.weight, 2, 4))
                count += 1
    return pruned, count


def save_models(unet, out) -> dict:
    """``unet`` and its magnitude 2:4 copy as diffusers pipelines ``OUT/dense`` and ``OUT/magnitude_2of4``
    (DDPM CIFAR-10 scheduler); returns the figures of the make-models record."""
    from diffusers import DDPMPipeline, DDPMScheduler

    from maskpro_eval.checkpoints.architecture import DDPM_CIFAR10_SCHEDULER_CONFIG
    out = Path(out)
    sched = DDPMScheduler(**DDPM_CIFAR10_SCHEDULER_CONFIG)
    DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(out / "dense", safe_serialization=True)
    pruned, count = magnitude_24(unet)
    DDPMPipeline(unet=pruned, scheduler=sched).save_pretrained(out / "magnitude_2of4", safe_serialization=True)
    return {"parameters": sum(p.numel() for p in unet.parameters()), "layers_pruned_2of4": count,
            "dense": str(out / "dense"), "magnitude_2of4": str(out / "magnitude_2of4")}
