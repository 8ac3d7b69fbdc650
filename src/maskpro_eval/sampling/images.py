"""Image helpers: float -> uint8 quantisation, image grids, PNG files and base64 PNGs.

Quantisation convention (StyleGAN2-ADA / StyleGAN3 / EDM, the one the standard FID protocol assumes)::

    uint8 = (x * 127.5 + 128).clamp(0, 255).to(torch.uint8)      # x in [-1, 1]

``x * 127.5 + 127.5`` maps [-1, 1] onto [0, 255]; the extra ``+ 0.5`` followed by the truncating cast
rounds half up (-1 -> 0, 0 -> 128, 1 -> 255.5 -> clamp -> 255). The arithmetic is done in float32
whatever the input dtype, so bf16/fp16 model outputs are quantised the same way as fp32 ones.
"""
from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np
import torch

__all__ = ["to_uint8", "make_grid", "save_png", "png_bytes", "png_base64"]


def to_uint8(x, channels_last: bool = True) -> np.ndarray:
    """Quantise images in [-1, 1] to uint8 with ``(x * 127.5 + 128).clamp(0, 255).to(uint8)``.

    Args:
        x: tensor or array, ``N x C x H x W`` (or ``C x H x W``), values nominally in [-1, 1].
        channels_last: return ``N x H x W x C`` (``H x W x C``) when True (default), else keep the layout.

    Returns:
        ``np.ndarray`` of dtype uint8 on the CPU. NaN maps to 0 (``nan_to_num`` first).
    """
    t = torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float32)
    t = torch.nan_to_num(t, nan=-1.0)  # NaN -> -1 -> 0 (defined behaviour instead of a platform-dependent cast)
    u = (t * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    if channels_last:
        if u.ndim == 4:
            u = u.permute(0, 2, 3, 1)
        elif u.ndim == 3:
            u = u.permute(1, 2, 0)
    return np.ascontiguousarray(u.numpy())


def make_grid(images: np.ndarray, nrow: int | None = None, padding: int = 2, pad_value: int = 0) -> np.ndarray:
    """Tile uint8 images ``N x H x W x C`` (or ``N x H x W``) into one ``H' x W' x C`` uint8 image.

    Args:
        images: uint8 array, NHWC (or NHW for grey images).
        nrow: images per row (torchvision's convention); default ``ceil(sqrt(N))``.
        padding: pixels between images and around the border.
        pad_value: value of the padding pixels.
    """
    a = np.asarray(images)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4:
        raise ValueError(f"make_grid expects N x H x W x C images, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise ValueError(f"make_grid expects uint8 images (use to_uint8 first), got {a.dtype}")
    n, h, w, c = a.shape
    if n == 0:
        raise ValueError("make_grid: no images")
    nrow = int(nrow) if nrow else int(math.ceil(math.sqrt(n)))
    nrow = max(1, min(nrow, n))
    ncol_rows = int(math.ceil(n / nrow))
    gh = ncol_rows * (h + padding) + padding
    gw = nrow * (w + padding) + padding
    grid = np.full((gh, gw, c), pad_value, dtype=np.uint8)
    for k in range(n):
        r, col = divmod(k, nrow)
        y = padding + r * (h + padding)
        x = padding + col * (w + padding)
        grid[y:y + h, x:x + w] = a[k]
    return grid


def _to_pil(arr: np.ndarray, nrow: int | None = None):
    from PIL import Image

    a = np.asarray(arr)
    if a.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {a.dtype} (use to_uint8 first)")
    if a.ndim == 4:
        a = make_grid(a, nrow=nrow)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ValueError(f"expected H x W, H x W x 3/4 or N x H x W x C uint8, got shape {a.shape}")
    return Image.fromarray(np.ascontiguousarray(a))


def save_png(path: str | Path, arr: np.ndarray, nrow: int | None = None) -> Path:
    """Write a uint8 ``H x W x C`` image (or an ``N x H x W x C`` batch, tiled with make_grid) as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _to_pil(arr, nrow=nrow).save(path, format="PNG")
    return path


def png_bytes(arr: np.ndarray, nrow: int | None = None) -> bytes:
    """PNG-encoded bytes of a uint8 image (or a batch, tiled)."""
    buf = io.BytesIO()
    _to_pil(arr, nrow=nrow).save(buf, format="PNG")
    return buf.getvalue()


def png_base64(arr: np.ndarray, nrow: int | None = None) -> str:
    """Base64 (ASCII) of the PNG of a uint8 image or batch: ``pytest_html.extras.png(png_base64(grid))``.

    For an HTML ``<img src=...>`` prepend ``"data:image/png;base64,"``.
    """
    return base64.b64encode(png_bytes(arr, nrow=nrow)).decode("ascii")
