"""Reference architecture and scheduler defaults (DDPM CIFAR-10, google/ddpm-cifar10-32)."""
from __future__ import annotations

#: ``UNet2DModel`` config of DDPM CIFAR-10 (35,746,307 parameters, ~6.1 GMAC per image-step).
DDPM_CIFAR10_UNET_CONFIG: dict = dict(
    sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
    block_out_channels=(128, 256, 256, 256),
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=None, norm_num_groups=32, norm_eps=1e-6, freq_shift=1,
    flip_sin_to_cos=False, downsample_padding=0, time_embedding_type="positional", act_fn="silu",
)

#: DDPM scheduler of DDPM CIFAR-10: 1000 steps, linear betas 1e-4..0.02.
DDPM_CIFAR10_SCHEDULER_CONFIG: dict = dict(
    num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
    clip_sample=True, variance_type="fixed_large", prediction_type="epsilon",
)

def build_ddpm_cifar10_unet():
    """A randomly initialised DDPM CIFAR-10 ``UNet2DModel`` (for timing; no weights exist offline)."""
    from diffusers import UNet2DModel
    return UNet2DModel(**DDPM_CIFAR10_UNET_CONFIG)


def default_scheduler():
    """The DDPM CIFAR-10 ``DDPMScheduler`` (used when a checkpoint carries no scheduler config)."""
    from diffusers import DDPMScheduler
    return DDPMScheduler(**DDPM_CIFAR10_SCHEDULER_CONFIG)
