"""What the samplers need to know about a UNet: its sample shape, its output tensor, its identity."""
from __future__ import annotations

import hashlib

import torch

from maskpro_eval.sampling.config import SamplingError


def unet_info(unet) -> tuple[torch.device, torch.dtype, tuple[int, int, int]]:
    """(device, dtype, (C, H, W)) of a UNet's parameters and one sample."""
    p = next(iter(unet.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None else torch.float32
    cfg = getattr(unet, "config", None)
    if cfg is None:
        raise SamplingError("the model has no .config (in_channels, sample_size): pass a diffusers "
                            "UNet2DModel or a module exposing .config")
    get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
    size = get("sample_size", 32)
    if isinstance(size, (list, tuple)):
        h, w = int(size[0]), int(size[1])
    else:
        h = w = int(size)
    return device, dtype, (int(get("in_channels", 3)), h, w)


def model_output(out) -> torch.Tensor:
    """The tensor of a UNet call's output (``.sample``, a tuple's first item, or the tensor)."""
    if hasattr(out, "sample"):
        return out.sample
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


#: Samples per UNet call on a CPU (:func:`in_fixed_chunks`). 40 divides the protocol sizes (200, 10,240,
#: 50,000) and runs at the best throughput measured for the demo zoo's UNet on the 2-core CPU
#: (2026-12-03: ~700 img-steps/s at 32-64 per call, 440 at 256).
CPU_MICRO_BATCH = 40


def in_fixed_chunks(call, x: torch.Tensor, size: int = CPU_MICRO_BATCH) -> torch.Tensor:
    """``call(x)`` evaluated in chunks of exactly ``size`` samples (the last chunk padded by repeating its
    last sample; the padding's outputs are dropped).

    Why: a CPU library picks convolution kernels by the batch shape, and kernels for different shapes
    round differently (the demo zoo's UNet on the 2-core CPU: up to 1 uint8 level on ~10% of the samples
    between batch 8 and 256). With one shape for every call, sample ``i`` gets the same bits whatever the
    batch, chunk or process it is drawn in (tests/test_sampling.py checks this on the zoo UNet)."""
    n = x.shape[0]
    outs = []
    for s in range(0, n, size):
        c = x[s:s + size]
        m = c.shape[0]
        if m < size:
            c = torch.cat([c, c[-1:].expand(size - m, *c.shape[1:])])
        outs.append(call(c)[:m])
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def model_fingerprint(unet) -> str:
    """sha256 over the model's state dict (names, dtypes, shapes, bytes) - a model identity for stores."""
    h = hashlib.sha256()
    for name, t in sorted(unet.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
