"""Names of the checkpoint formats ``load_checkpoint`` recognises, and the fixes it suggests."""
from __future__ import annotations

#: format name -> one-line description (``LoadedCheckpoint.format`` is always one of these keys).
FORMATS: dict[str, str] = {
    "diffusers-pipeline": "pipeline folder (model_index.json, unet/, scheduler/), unet config matching its weights",
    "diffusers-unet": "bare UNet folder (config.json + diffusion_pytorch_model.safetensors/.bin)",
    "diffusers-masked": "diffusers folder whose weights carry '<layer>.mask' buffers (reported, weights verified)",
    "diffusers-pruned-pickle": "Diff-Pruning pipeline folder with pruned/unet*_pruned*.pth (the pickled module is the truth)",
    "pickled-module": "torch.save(UNet2DModel module) file, old diffusers module paths remapped",
    "ddim-list": "DDIM-codebase ckpt_<step>.pth: [model_module, optimizer_state, epoch, step, ema_state]",
    "maskpro-trainer": "MaskPro trainer checkpoint (checkpoint_epoch_<E>.pt / best_checkpoint.pt)",
    "maskpro-state": "maskpro_state_epoch_<E>.pt: mask logits + layer configurations, applied to a base model",
    "mask-folder": "folder with one torch.save(bool tensor) per layer, applied to a base model",
    "state-dict": "plain tensor dict (.pt/.pth/.bin/.safetensors); architecture from config.json beside it or a base",
}

TRUST_FIX = ("if you trust the file, allow executing its pickle: add --trust-pickle (pytest option) "
             "or pass trust_pickle=True (API)")
BASE_FIX = ("pass the model the masks/weights belong to: --base-model PATH (pytest option) or base_model=PATH (API) "
            "(a diffusers pipeline/unet folder, a pickled module with trust, or a loaded checkpoint)")
