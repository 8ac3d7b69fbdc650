"""FID reference sets (``--fid-ref``): precomputed statistics, image arrays, image folders, CIFAR-10 batches.

``load_reference(spec, extractor)`` accepts

* an ``.npz`` with ``mu`` (2048,) and ``sigma`` (2048, 2048) (pytorch-fid / Diff-Pruning files): used as
  is; KID is impossible (no features);
* an ``.npz`` holding uint8 images under ``images``, ``arr_0`` or ``x`` (N x H x W x 3, or N x 3 x H x W);
* a folder of PNG/JPEG images (searched recursively; all must have one size; greyscale/RGBA/palette
  images are converted to RGB and the conversion is recorded in ``notes``);
* a torchvision ``cifar-10-batches-py/`` folder (or its parent): ``data_batch_1..5`` = train,
  ``test_batch`` = test (``PATH:test`` or ``PATH:all`` picks the split; the plain path is train). These are pickles: they are read with a restricted unpickler that only
  rebuilds plain containers and numpy arrays, never arbitrary objects.

Statistics of image sets (and their float32 features, for KID) are cached under
``<cache>/fid_stats`` keyed by the content hash, the Inception weights hash and the protocol version.
``<cache>`` is ``$MASKPRO_EVAL_CACHE`` if set, else ``~/.cache/maskpro_eval``. Entries are written
atomically (temp file + ``os.replace``); a corrupt entry is reported, deleted and recomputed.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from maskpro_eval.checkpoints.zoo import ZOO_REFERENCE_FEATURES_FILE
from maskpro_eval.reporting.atomic_io import atomic_savez
from maskpro_eval.errors import ReferenceSetError
from maskpro_eval.metrics.fid import FIDResult, call_features, feature_statistics, fid_from_stats, kid

__all__ = [
    "CACHE_ENV_VAR",
    "IMAGE_KEYS",
    "ReferenceCacheWarning",
    "ReferenceStats",
    "check_reference_protocol",
    "default_cache_dir",
    "fid_against_reference",
    "load_cifar10_batches",
    "load_image_folder",
    "load_reference",
    "split_reference_spec",
    "load_stats_npz",
    "stats_from_images",
]

CACHE_ENV_VAR = "MASKPRO_EVAL_CACHE"
IMAGE_KEYS = ("images", "arr_0", "x")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
CACHE_FORMAT = 1
_SPEC_EXPECTED = ("an .npz with mu (2048,) and sigma (2048, 2048), an .npz of uint8 images "
                  "(key images/arr_0/x, N x H x W x 3), a folder of PNG/JPEG images, or a "
                  "cifar-10-batches-py/ folder")


class ReferenceCacheWarning(UserWarning):
    """A cached reference statistics entry was unusable (corrupt, stale or unwritable)."""


@dataclass
class ReferenceStats:
    """Statistics of a reference set for FID (and its features for KID when available)."""

    mu: np.ndarray                    # float64 (D,)
    sigma: np.ndarray                 # float64 (D, D)
    n: int | None                     # number of images (None: unknown, e.g. a foreign mu/sigma npz)
    features: np.ndarray | None       # float32 (n, D), None when only mu/sigma are known
    source: str                       # the path (or description) it came from
    kind: str                         # stats-npz | images-npz | image-folder | cifar10-batches | images
    content_sha256: str | None
    weights_sha256: str | None        # Inception weights the statistics were computed with (None: unknown)
    notes: list[str] = field(default_factory=list)
    from_cache: bool = False
    cache_path: str | None = None
    split: str | None = None
    #: FID protocol key the statistics were computed with (None: unknown, a foreign mu/sigma npz)
    protocol: str | None = None
    #: True when ``protocol`` was assumed (or declared with --fid-ref-protocol), not read from the file
    protocol_assumed: bool = False

    @property
    def kid_available(self) -> bool:
        return self.features is not None

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])

    def save_npz(self, path: str | os.PathLike) -> Path:
        """Write pytorch-fid style ``mu``/``sigma`` plus ``n`` and ``meta`` (JSON: FID protocol, its
        version, Inception weights hash, N) to ``path`` atomically. pytorch-fid reads it as is."""
        path = Path(path)
        arrays = {"mu": self.mu, "sigma": self.sigma, "meta": np.asarray(json.dumps(self.meta()))}
        if self.n is not None:
            arrays["n"] = np.asarray(self.n, dtype=np.int64)
        atomic_savez(path, arrays)
        return path

    save = save_npz

    def meta(self) -> dict:
        """What travels with the statistics: protocol, its version, Inception hash, N, source."""
        from maskpro_eval.metrics.inception import get_protocol

        version = get_protocol(self.protocol).version if self.protocol else None
        return {"format": CACHE_FORMAT, "fid_protocol": self.protocol, "protocol_version": version,
                "weights_sha256": self.weights_sha256, "n": self.n, "kind": self.kind, "source": self.source,
                "content_sha256": self.content_sha256, "notes": self.notes, "split": self.split}


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    """``$MASKPRO_EVAL_CACHE/fid_stats`` if the variable is set, else ``~/.cache/maskpro_eval/fid_stats``."""
    base = os.environ.get(CACHE_ENV_VAR)
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "maskpro_eval"
    return root / "fid_stats"


def _sha256_bytes(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


def _array_sha256(images: np.ndarray) -> str:
    a = np.ascontiguousarray(images)
    h = hashlib.sha256(f"{a.dtype.str}|{a.shape}|".encode())
    h.update(memoryview(a.reshape(-1)).cast("B"))
    return h.hexdigest()


def _file_sha256(path: Path) -> str:
    from maskpro_eval.metrics.inception import sha256_of_file

    return sha256_of_file(path)


def _expected_dim(extractor) -> int:
    from maskpro_eval.metrics.inception import NUM_FEATURES

    d = getattr(extractor, "num_features", None) if extractor is not None else None
    return int(d) if isinstance(d, (int, np.integer)) else NUM_FEATURES


def no_reference_error() -> ReferenceSetError:
    """The one error for "FID asked for without a reference set" (pytest full tier and the API)."""
    return ReferenceSetError(None, "FID needs a reference set and none was given",
                             "a reference: .npz mu/sigma or images, an image folder, a cifar-10-batches-py folder "
                             "(:test for its test split) or 'baseline'",
                             "add --fid-ref PATH (pytest) or pass reference=PATH (API); the demo digits are the "
                             "default only for the bundled demo zoo")


#: A covariance may have eigenvalues this far below zero (relative to its largest, at least 1) from
#: float64 round-off; anything more negative is not a covariance and would give a meaningless FID.
PSD_TOLERANCE = 1e-6


def _validate_stats_arrays(path, mu, sigma, dim: int) -> tuple[np.ndarray, np.ndarray]:
    mu = np.asarray(mu)
    sigma = np.asarray(sigma)
    if mu.shape != (dim,):
        raise ReferenceSetError(path, f"'mu' has shape {mu.shape}", expected=f"shape ({dim},) (Inception pool3)",
                                fix="use statistics of 2048-d pool3 features (pytorch-fid dims=2048)")
    if sigma.shape != (dim, dim):
        raise ReferenceSetError(path, f"'sigma' has shape {sigma.shape}", expected=f"shape ({dim}, {dim})",
                                fix="use statistics of 2048-d pool3 features (pytorch-fid dims=2048)")
    if not (np.issubdtype(mu.dtype, np.floating) and np.issubdtype(sigma.dtype, np.floating)):
        raise ReferenceSetError(path, f"'mu'/'sigma' have dtypes {mu.dtype}/{sigma.dtype}",
                                expected="floating-point arrays", fix="recompute the statistics")
    mu = mu.astype(np.float64)
    sigma = sigma.astype(np.float64)
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise ReferenceSetError(path, "'mu'/'sigma' contain NaN or Inf", expected="finite values",
                                fix="recompute the statistics from the reference images")
    asym = float(np.max(np.abs(sigma - sigma.T)))
    scale = float(np.max(np.abs(sigma))) or 1.0
    if asym > 1e-6 * scale:
        raise ReferenceSetError(path, f"'sigma' is not symmetric (max |S - S^T| = {asym:.3g})",
                                expected="a covariance matrix", fix="check that 'sigma' is the covariance, "
                                                                    "not something else stored under that key")
    eig = np.linalg.eigvalsh((sigma + sigma.T) / 2)
    if eig[0] < -PSD_TOLERANCE * max(float(eig[-1]), 1.0):
        raise ReferenceSetError(path, f"'sigma' is not positive semi-definite (smallest eigenvalue {eig[0]:.4g}, "
                                f"largest {eig[-1]:.4g})", expected="a covariance matrix (eigenvalues >= "
                                f"-{PSD_TOLERANCE:g} x the largest)",
                                fix="recompute the statistics from the reference images")
    return mu, sigma


# ---------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------

def _open_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise ReferenceSetError(path, "holds pickled Python objects (refused: loading would run code)",
                                    expected="plain numeric arrays", fix="re-save it with np.savez of plain "
                                                                          "arrays") from exc
        raise ReferenceSetError(path, f"cannot be read as .npz ({exc})", expected=_SPEC_EXPECTED,
                                fix="re-create the file") from exc
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise ReferenceSetError(path, f"is not a readable .npz ({type(exc).__name__}: {exc})",
                                expected=_SPEC_EXPECTED, fix="re-create or re-download the file") from exc


def load_stats_npz(path: str | os.PathLike, dim: int = 2048, arrays: dict | None = None) -> ReferenceStats:
    """A ``mu``/``sigma`` ``.npz`` (validated: shapes, finite, symmetric)."""
    path = Path(path)
    z = arrays if arrays is not None else _open_npz(path)
    mu, sigma = _validate_stats_arrays(path, z["mu"], z["sigma"], dim)
    n = None
    for key in ("n", "num_samples", "N", "count"):
        if key in z and np.asarray(z[key]).size == 1:
            n = int(np.asarray(z[key]).reshape(()))
            break
    notes = []
    weights_sha = None
    protocol = None
    if "meta" in z:  # one of our own statistics/cache files
        try:
            meta = json.loads(str(np.asarray(z["meta"]).reshape(())))
            weights_sha = meta.get("weights_sha256")
            protocol = _protocol_from_meta(meta)
            if meta.get("protocol_version"):
                notes.append(f"computed with protocol {meta['protocol_version']}")
        except (ValueError, TypeError, AttributeError):
            pass
    features = None
    if "features" in z:
        f = np.asarray(z["features"])
        if f.ndim == 2 and f.shape[1] == dim and np.issubdtype(f.dtype, np.floating):
            features = f.astype(np.float32, copy=False)
            n = n if n is not None else int(f.shape[0])
    if features is None:
        notes.append("only mu/sigma: KID cannot be computed against this reference (it needs features)")
    if weights_sha is None:
        notes.append("Inception weights/protocol of these statistics are unknown: they must come from the "
                     "standard TF-Inception pool3 protocol to be comparable")
    if n is None:
        notes.append("number of reference images unknown (no 'n' key)")
    return ReferenceStats(mu=mu, sigma=sigma, n=n, features=features, source=str(path), kind="stats-npz",
                          content_sha256=_file_sha256(path), weights_sha256=weights_sha, notes=notes,
                          protocol=protocol)


def _protocol_from_meta(meta: dict) -> str | None:
    """The protocol key recorded in a meta dict (files of before the key existed: by version)."""
    from maskpro_eval.metrics.inception import PROTOCOLS

    if meta.get("fid_protocol") in PROTOCOLS:
        return meta["fid_protocol"]
    by_version = {p.version: k for k, p in PROTOCOLS.items()}
    return by_version.get(meta.get("protocol_version"))


def _protocol_of(extractor) -> "Any":
    from maskpro_eval.metrics.inception import get_protocol

    return get_protocol(getattr(getattr(extractor, "fid_protocol", None), "key", None))


def check_reference_protocol(ref: ReferenceStats, protocol: str, declared: str | None = None) -> ReferenceStats:
    """Refuse a reference of another protocol; for one of unknown protocol (a foreign mu/sigma npz)
    record the assumed (``declared`` by --fid-ref-protocol, else ``protocol``) and say so in its notes."""
    from maskpro_eval.metrics.inception import get_protocol

    want = get_protocol(protocol).key
    if ref.protocol is None or ref.protocol_assumed:
        assumed = get_protocol(declared).key if declared is not None else want
        ref.protocol, ref.protocol_assumed = assumed, True
        how = "declared by --fid-ref-protocol" if declared is not None else "assumed: the file does not record it"
        note = (f"reference protocol {assumed} ({how}); if the file was made with another protocol, declare it "
                "with --fid-ref-protocol")
        if note not in ref.notes:
            ref.notes.append(note)
    if ref.protocol != want:
        raise ReferenceSetError(
            ref.source, f"reference statistics were computed with FID protocol '{ref.protocol}'"
                        f"{' (declared)' if ref.protocol_assumed else ''} but the samples use '{want}'",
            expected=f"a reference of protocol '{want}' (FIDs of different protocols differ by ~1-3%)",
            fix=f"run with --fid-protocol {ref.protocol}, or recompute the reference: maskpro-eval fid-stats "
                f"IMAGES OUT.npz --fid-protocol {want}")
    return ref


def _check_image_array(path, arr: np.ndarray, key: str) -> np.ndarray:
    from maskpro_eval.metrics.inception import validate_uint8_images

    try:
        t = validate_uint8_images(arr, what=f"{path}['{key}']")
    except ValueError as exc:
        raise ReferenceSetError(path, f"array '{key}' of dtype {arr.dtype} and shape {arr.shape} is not "
                                      "an image batch", expected="uint8 N x H x W x 3 (or N x 3 x H x W)",
                                fix="save the images as uint8 RGB") from exc
    return t.permute(0, 2, 3, 1).contiguous().numpy()


def load_image_folder(folder: str | os.PathLike) -> tuple[np.ndarray, list[str], list[Path]]:
    """uint8 N x H x W x 3 images of a folder (recursive, sorted by relative path), notes, files."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    files = sorted((p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                    and not any(part.startswith(".") for part in p.relative_to(folder).parts)),
                   key=lambda p: p.relative_to(folder).as_posix())
    if not files:
        raise ReferenceSetError(folder, "contains no PNG/JPEG images", expected=_SPEC_EXPECTED,
                                fix="point --fid-ref at the folder that holds the images")
    images: list[np.ndarray] = []
    converted: dict[str, int] = {}
    size0 = None
    for p in files:
        try:
            with Image.open(p) as im:
                im.load()
                mode = im.mode
                if mode != "RGB":
                    try:
                        im = im.convert("RGB")
                    except (ValueError, OSError) as exc:
                        raise ReferenceSetError(p, f"image mode {mode} cannot be converted to RGB",
                                                expected="an RGB (or greyscale/RGBA/palette) image",
                                                fix="convert or remove this file") from exc
                    converted[mode] = converted.get(mode, 0) + 1
                arr = np.asarray(im, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise ReferenceSetError(p, f"cannot be read as an image ({type(exc).__name__})",
                                    expected="a valid PNG/JPEG file", fix="remove or replace this file") from exc
        if size0 is None:
            size0 = arr.shape[:2]
        elif arr.shape[:2] != size0:
            raise ReferenceSetError(
                p, f"is {arr.shape[1]}x{arr.shape[0]} (WxH) but {files[0].name} and the images before it are "
                   f"{size0[1]}x{size0[0]}", expected="all reference images of one size",
                fix="resize the reference set to one size first (FID resizing must not depend on the file)")
        images.append(arr)
    notes = [f"{len(files)} images of {size0[1]}x{size0[0]} from {folder}"]
    for mode, count in sorted(converted.items()):
        extra = " (alpha dropped, not composited)" if "A" in mode or mode == "P" else ""
        notes.append(f"converted {count} image(s) of mode {mode} to RGB{extra}")
    return np.stack(images), notes, files


class _RestrictedUnpickler(pickle.Unpickler):
    """Rebuilds only builtins containers and numpy arrays: anything else raises UnpicklingError."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),
        ("builtins", "bytearray"), ("builtins", "bytes"), ("builtins", "list"), ("builtins", "dict"),
        ("builtins", "tuple"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "str"),
        ("builtins", "int"), ("builtins", "float"), ("builtins", "complex"), ("builtins", "bool"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused to load global {module}.{name} (only numpy arrays and "
                                         "plain containers are allowed)")
        if module.startswith("numpy.core"):
            try:  # numpy >= 2 moved numpy.core to numpy._core (the old name warns)
                return getattr(importlib.import_module(module.replace("numpy.core", "numpy._core")), name)
            except (ImportError, AttributeError):
                pass
        return getattr(importlib.import_module(module), name)


def _safe_unpickle(path: Path) -> Any:
    data = path.read_bytes()
    try:
        return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as exc:
        raise ReferenceSetError(path, f"pickle refused or malformed ({exc})",
                                expected="a CIFAR-10 python batch (dict with uint8 'data' and 'labels')",
                                fix="re-download cifar-10-python.tar.gz from the official site") from exc
    except Exception as exc:  # noqa: BLE001 - truncated/garbled pickles raise many kinds of errors
        raise ReferenceSetError(path, f"cannot be unpickled ({type(exc).__name__}: {exc})",
                                expected="a CIFAR-10 python batch", fix="re-download the CIFAR-10 batches") from exc


CIFAR_SPLITS = {
    "train": [f"data_batch_{i}" for i in range(1, 6)],
    "test": ["test_batch"],
    "all": [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
}


def _cifar_dir(path: Path) -> Path | None:
    if (path / "cifar-10-batches-py").is_dir():
        return path / "cifar-10-batches-py"
    if any((path / n).is_file() for n in ("data_batch_1", "test_batch", "batches.meta")):
        return path
    return None


def _cifar_files(folder: Path, split: str) -> list[Path]:
    if split not in CIFAR_SPLITS:
        raise ReferenceSetError(folder, f"unknown split {split!r}", expected="one of " + ", ".join(CIFAR_SPLITS),
                                fix="use split='train' (the usual FID reference: 50,000 images)")
    files = [folder / n for n in CIFAR_SPLITS[split]]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise ReferenceSetError(folder, f"CIFAR-10 batch file(s) missing: {', '.join(missing)}",
                                expected=f"{', '.join(CIFAR_SPLITS[split])} for split '{split}'",
                                fix="extract the complete cifar-10-python.tar.gz")
    return files


def load_cifar10_batches(folder: str | os.PathLike, split: str = "train") -> np.ndarray:
    """uint8 N x 32 x 32 x 3 images of a torchvision-style ``cifar-10-batches-py`` folder (safe unpickling)."""
    folder = Path(folder)
    d = _cifar_dir(folder) or folder
    out = []
    for f in _cifar_files(d, split):
        obj = _safe_unpickle(f)
        if not isinstance(obj, dict):
            raise ReferenceSetError(f, f"unpickled a {type(obj).__name__}", expected="a dict with 'data' and "
                                    "'labels'", fix="re-download the CIFAR-10 batches")
        data = obj.get("data", obj.get(b"data"))
        labels = obj.get("labels", obj.get(b"labels"))
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            desc = (f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__)
            raise ReferenceSetError(f, f"'data' is {desc}", expected="uint8 array (N, 3072) in CHW order",
                                    fix="re-download the CIFAR-10 python batches")
        if labels is not None and len(labels) != data.shape[0]:
            raise ReferenceSetError(f, f"{len(labels)} labels for {data.shape[0]} images",
                                    expected="one label per image", fix="re-download the CIFAR-10 batches")
        out.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return np.ascontiguousarray(np.concatenate(out))


# ---------------------------------------------------------------------------------------------
# Statistics and the cache
# ---------------------------------------------------------------------------------------------

def _weights_sha(extractor, weights_path=None) -> str:
    sha = getattr(extractor, "weights_sha256", None) if extractor is not None else None
    if sha:
        return str(sha)
    from maskpro_eval.metrics.inception import find_inception_weights, sha256_of_file

    path = Path(weights_path) if weights_path is not None else find_inception_weights()
    if not path.is_file():
        from maskpro_eval.metrics.inception import InceptionFeatureExtractor

        InceptionFeatureExtractor(path)  # raises the clear missing-weights error
    return sha256_of_file(path)


def stats_from_images(images: Any, extractor, batch_size: int = 64, source: str = "images",
                      kind: str = "images", keep_features: bool = True, progress: bool | str = False,
                      content_sha256: str | None = None, notes: list[str] | None = None) -> ReferenceStats:
    """Features -> (mu, sigma) of uint8 images with ``extractor`` (any object with ``.features``)."""
    from maskpro_eval.metrics.inception import validate_uint8_images

    arr = images
    n = int(validate_uint8_images(arr, what=str(source)).shape[0])  # clear error for a wrong layout
    feats = np.asarray(call_features(extractor, arr, batch_size=batch_size, progress=progress))
    if feats.ndim != 2 or feats.shape[0] != n:
        raise ReferenceSetError(source, f"the feature extractor returned shape {feats.shape} for {n} images",
                                expected=f"({n}, D) features", fix="check the feature extractor")
    feats = feats.astype(np.float32, copy=False)
    mu, sigma = feature_statistics(feats)
    if content_sha256 is None:
        content_sha256 = _array_sha256(np.asarray(arr)) if isinstance(arr, np.ndarray) else None
    return ReferenceStats(mu=mu, sigma=sigma, n=n, features=feats if keep_features else None, source=source,
                          kind=kind, content_sha256=content_sha256,
                          weights_sha256=getattr(extractor, "weights_sha256", None), notes=list(notes or []),
                          protocol=_protocol_of(extractor).key)


def _cache_path(cache_dir: Path, kind: str, content_sha: str, weights_sha: str, split: str | None,
                protocol_version: str) -> Path:
    key = _sha256_bytes(kind, content_sha, weights_sha, protocol_version, split or "", str(CACHE_FORMAT))
    return cache_dir / f"{kind}-{key[:32]}.npz"


def _read_cache(path: Path, content_sha: str, weights_sha: str, want_features: bool,
                dim: int, protocol) -> ReferenceStats | None:
    """The cached entry, or None (missing, or corrupt: then warned about and deleted)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}  # reads (and CRC-checks) every member
        meta = json.loads(str(arrays["meta"].reshape(())))
        if (meta.get("content_sha256") != content_sha or meta.get("weights_sha256") != weights_sha
                or meta.get("protocol_version") != protocol.version):
            raise ValueError("metadata does not match its key")
        mu, sigma = _validate_stats_arrays(path, arrays["mu"], arrays["sigma"], dim)
        n = int(arrays["n"].reshape(()))
        feats = arrays.get("features")
        if feats is not None and (feats.shape != (n, dim) or feats.dtype != np.float32):
            raise ValueError(f"features of shape {feats.shape} / {feats.dtype} for n={n}")
    except Exception as exc:  # noqa: BLE001 - any failure means the entry is unusable
        warnings.warn(f"{path}: corrupt FID statistics cache entry ({type(exc).__name__}: "
                      f"{str(exc)[:160]}); deleted, recomputing", ReferenceCacheWarning, stacklevel=3)
        try:
            path.unlink()
        except OSError:
            pass
        return None
    if want_features and feats is None:
        return None  # written without features; recompute (and rewrite with them)
    return ReferenceStats(mu=mu, sigma=sigma, n=n, features=feats, source=meta.get("source", ""),
                          kind=meta.get("kind", ""), content_sha256=content_sha, weights_sha256=weights_sha,
                          notes=list(meta.get("notes", [])), from_cache=True, cache_path=str(path),
                          split=meta.get("split"), protocol=protocol.key)


def _write_cache(path: Path, stats: ReferenceStats, store_features: bool) -> None:
    arrays = {"mu": stats.mu, "sigma": stats.sigma, "n": np.asarray(stats.n, dtype=np.int64),
              "meta": np.asarray(json.dumps(stats.meta()))}
    if store_features and stats.features is not None:
        arrays["features"] = stats.features.astype(np.float32, copy=False)
    try:
        atomic_savez(path, arrays)
    except OSError as exc:
        warnings.warn(f"{path}: could not write the FID statistics cache ({exc}); continuing without it",
                      ReferenceCacheWarning, stacklevel=3)
        return
    stats.cache_path = str(path)


#: Read-only feature files shipped with the package (the demo zoo's held-out digits under the standard
#: protocol): consulted after a cache miss, used only when kind, content, weights and protocol all match.
BUNDLED_FEATURE_FILES: tuple[Path, ...] = (ZOO_REFERENCE_FEATURES_FILE,)


def bundled_features_meta(stats: ReferenceStats, command: str) -> dict:
    """The ``meta`` of a bundled feature file for ``stats`` (computed from images, with features)."""
    return {**stats.meta(), "bundled": True, "made_by": command}


def _read_bundled(kind: str, content_sha: str, weights_sha: str, split: str | None, dim: int,
                  protocol) -> ReferenceStats | None:
    for path in BUNDLED_FEATURE_FILES:
        if not path.is_file():
            continue
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"].reshape(())))
            if (meta.get("kind"), meta.get("content_sha256"), meta.get("weights_sha256"), meta.get("split"),
                    meta.get("protocol_version")) != (kind, content_sha, weights_sha, split, protocol.version):
                continue
            feats = np.asarray(z["features"])
        if feats.dtype != np.float32 or feats.shape != (meta.get("n"), dim):
            raise ReferenceSetError(path, f"bundled features of shape {feats.shape} / {feats.dtype}",
                                    expected=f"float32 ({meta.get('n')}, {dim})",
                                    fix="reinstall maskpro-eval, or rebuild it with scripts/bundle_reference_features.py")
        mu, sigma = feature_statistics(feats)
        return ReferenceStats(mu=mu, sigma=sigma, n=len(feats), features=feats, source=meta.get("source", ""),
                              kind=kind, content_sha256=content_sha, weights_sha256=weights_sha,
                              notes=list(meta.get("notes", [])) + [f"features from the bundled {path.name}"],
                              from_cache=True, cache_path=str(path), split=split, protocol=protocol.key)
    return None


def split_reference_spec(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """``PATH`` -> (PATH, None); ``PATH:train|test|all`` -> (PATH, split) unless the whole text is an
    existing path (a file or folder may have a colon in its name)."""
    text = os.fspath(spec)
    path = Path(text).expanduser()
    head, sep, tail = text.rpartition(":")
    if sep and head and tail in CIFAR_SPLITS and not path.exists():
        return Path(head).expanduser(), tail
    return path, None


def load_reference(spec: str | os.PathLike, extractor=None, cache_dir: str | os.PathLike | None = None,
                   split: str = "train", batch_size: int = 64, use_cache: bool = True,
                   store_features: bool = True, progress: bool | str = False,
                   weights_path: str | os.PathLike | None = None, device: Any = "cpu") -> ReferenceStats:
    """Reference statistics for FID from ``spec`` (see the module docstring for what it may be).

    ``extractor``: any object with ``.features(images)`` and ``.weights_sha256``; ``None``: the
    standard :class:`~maskpro_eval.metrics.inception.InceptionFeatureExtractor` (loaded only on a cache miss).
    ``split``: for CIFAR-10 batches: ``train`` (data_batch_1..5), ``test`` or ``all``; a ``:SPLIT``
    suffix on ``spec`` (``--fid-ref cifar-10-batches-py:test``) overrides it.
    """
    path, spec_split = split_reference_spec(spec)
    if not path.exists():
        raise ReferenceSetError(path, "does not exist", expected=_SPEC_EXPECTED,
                                fix="check the --fid-ref path")
    if spec_split is not None:
        if not (path.is_dir() and _cifar_dir(path) is not None):
            raise ReferenceSetError(path, f"the split suffix ':{spec_split}' applies only to a "
                                    "cifar-10-batches-py folder", expected=_SPEC_EXPECTED,
                                    fix="drop the suffix, or point --fid-ref at the CIFAR-10 batches")
        split = spec_split
    dim = _expected_dim(extractor)

    # -- what is it, and what identifies its content? ------------------------------------------
    images_loader = None
    notes: list[str] = []
    used_split = None
    if path.is_file():
        arrays = _open_npz(path)
        if "mu" in arrays and "sigma" in arrays:
            return load_stats_npz(path, dim=dim, arrays=arrays)
        key = next((k for k in IMAGE_KEYS if k in arrays), None)
        if key is None:
            raise ReferenceSetError(path, f"has keys {sorted(arrays)}",
                                    expected="'mu' and 'sigma', or uint8 images under 'images', 'arr_0' or 'x'",
                                    fix="re-save with np.savez(path, mu=mu, sigma=sigma) or images=uint8 array")
        imgs = _check_image_array(path, arrays[key], key)
        kind = "images-npz"
        content_sha = _sha256_bytes(key, _array_sha256(imgs))
        notes.append(f"{len(imgs)} images of {imgs.shape[2]}x{imgs.shape[1]} from {path.name}['{key}']")
        images_loader = lambda: (imgs, [])  # noqa: E731
    elif path.is_dir():
        cdir = _cifar_dir(path)
        if cdir is not None:
            kind = "cifar10-batches"
            used_split = split
            files = _cifar_files(cdir, split)
            content_sha = _sha256_bytes(split, *(f"{f.name}:{_file_sha256(f)}" for f in files))
            notes.append(f"CIFAR-10 {split} split from {cdir} ({', '.join(f.name for f in files)})")
            images_loader = lambda: (load_cifar10_batches(cdir, split), [])  # noqa: E731
            path = cdir
        else:
            kind = "image-folder"
            files = sorted((p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                            and not any(part.startswith(".") for part in p.relative_to(path).parts)),
                           key=lambda p: p.relative_to(path).as_posix())
            if not files:
                raise ReferenceSetError(path, "contains no PNG/JPEG images (and no CIFAR-10 batches)",
                                        expected=_SPEC_EXPECTED, fix="point --fid-ref at the folder of images")
            content_sha = _sha256_bytes(*(f"{p.relative_to(path).as_posix()}:{_file_sha256(p)}" for p in files))

            def images_loader():
                imgs, folder_notes, _ = load_image_folder(path)
                return imgs, folder_notes
    else:
        raise ReferenceSetError(path, "is neither a file nor a folder", expected=_SPEC_EXPECTED,
                                fix="check the --fid-ref path")

    # -- cache lookup -------------------------------------------------------------------------
    weights_sha = _weights_sha(extractor, weights_path)
    cdir_cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    protocol = _protocol_of(extractor)
    cpath = _cache_path(cdir_cache, kind, content_sha, weights_sha, used_split, protocol.version)
    if use_cache:
        hit = _read_cache(cpath, content_sha, weights_sha, want_features=store_features, dim=dim,
                          protocol=protocol)
        if hit is None:
            hit = _read_bundled(kind, content_sha, weights_sha, used_split, dim, protocol)
        if hit is not None:
            hit.source, hit.kind = str(path), kind
            if not store_features:
                hit.features = None
            return hit

    # -- compute --------------------------------------------------------------------------------
    imgs, more_notes = images_loader()
    if extractor is None:
        from maskpro_eval.metrics.inception import get_extractor

        extractor = get_extractor(weights_path, device=device)
    stats = stats_from_images(imgs, extractor, batch_size=batch_size, source=str(path), kind=kind,
                              keep_features=True, progress=progress, content_sha256=content_sha,
                              notes=notes + list(more_notes))
    stats.split = used_split
    stats.weights_sha256 = getattr(extractor, "weights_sha256", None) or weights_sha
    if use_cache:
        _write_cache(cpath, stats, store_features)
    if not store_features:
        stats.features = None
    return stats


def fid_against_reference(images: Any, ref: ReferenceStats, extractor=None, batch_size: int = 64,
                          compute_kid: bool = True, kid_subsets: int = 100, kid_subset_size: int = 1000,
                          seed: int = 0, crosscheck: bool = False, progress: bool | str = False,
                          weights_path=None, device: Any = "cpu", warn_small_n: bool = True,
                          protocol: Any = None, reference_protocol: str | None = None) -> FIDResult:
    """FID (and KID when the reference has features) of uint8 images against a :class:`ReferenceStats`.

    ``protocol``: the samples' FID protocol (default: the extractor's, else standard); a reference of
    another protocol is refused (:func:`check_reference_protocol`); one of unknown protocol is assumed
    to be ``reference_protocol`` (default: ``protocol``) and the assumption recorded.

    Warns (UserWarning) when the reference was computed with other Inception weights than
    ``extractor``; the mismatch is also recorded in ``protocol["reference_weights_mismatch"]``.
    """
    from maskpro_eval.metrics.fid import _resolve_extractor

    extractor, key = _resolve_extractor(extractor, weights_path, device, protocol)
    check_reference_protocol(ref, key, reference_protocol)
    feats = np.asarray(call_features(extractor, images, batch_size=batch_size, progress=progress),
                       dtype=np.float32)
    if feats.ndim != 2 or feats.shape[1] != ref.dim:
        raise ReferenceSetError(ref.source, f"features of the images have shape {feats.shape} but the reference "
                                            f"is {ref.dim}-d", expected="one feature space",
                                fix="use the same Inception network for both")
    mu, sigma = feature_statistics(feats)
    res = fid_from_stats(mu, sigma, ref.mu, ref.sigma, n_a=len(feats), n_b=ref.n,
                         weights_sha256=getattr(extractor, "weights_sha256", None), crosscheck=crosscheck,
                         warn_small_n=warn_small_n, protocol=key, features_a=feats, features_b=ref.features)
    ours = getattr(extractor, "weights_sha256", None)
    res.protocol["reference"] = {"source": ref.source, "kind": ref.kind, "n": ref.n, "split": ref.split,
                                 "weights_sha256": ref.weights_sha256, "fid_protocol": ref.protocol,
                                 "fid_protocol_assumed": ref.protocol_assumed}
    if ref.weights_sha256 is not None and ours is not None and ref.weights_sha256 != ours:
        res.protocol["reference_weights_mismatch"] = True
        warnings.warn(f"{ref.source}: reference statistics were computed with Inception weights "
                      f"{ref.weights_sha256[:12]}... but the samples with {ours[:12]}...: the FID is not "
                      "meaningful", UserWarning, stacklevel=2)
    if compute_kid and ref.features is not None:
        res.kid_mean, res.kid_std = kid(feats, ref.features, num_subsets=kid_subsets,
                                        subset_size=kid_subset_size, seed=seed)
    res.features_a = feats
    return res
