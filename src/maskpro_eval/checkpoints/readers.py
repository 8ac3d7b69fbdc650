"""Read files without executing code: safetensors, torch zip/legacy archives (``weights_only=True``)."""
from __future__ import annotations

import io
import json
import pickle
import pickletools
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from maskpro_eval.errors import CheckpointError

TENSOR_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


@dataclass
class PickleScan:
    """What a pickle references, found by reading its opcodes (nothing is executed)."""
    container: str  # "zip", "legacy", "safetensors"
    top: str = "unknown"  # "dict", "list", "tuple", "object", "unknown"
    globals: list[str] = field(default_factory=list)  # "module.Name" in first-seen order
    storages: int = 0  # persistent ids (tensor storages) referenced


class NeedsTrust(Exception):
    """Internal: ``weights_only`` refused the file; it references code (see ``scan``)."""

    def __init__(self, scan: PickleScan, reason: str):
        super().__init__(reason)
        self.scan = scan
        self.reason = reason


def missing_path_error(path) -> CheckpointError:
    return CheckpointError(path, "does not exist", "a checkpoint file or folder",
                           "check the path (relative paths are taken from the current directory)")


def corrupt_error(path, detail: str) -> CheckpointError:
    return CheckpointError(path, f"cannot be read, the file looks truncated or corrupt ({detail})",
                           "a complete torch.save archive or safetensors file",
                           "re-copy or re-download the file, or use another checkpoint of the run")


def is_safetensors(path: Path) -> bool:
    """True when the file starts with a safetensors header (8-byte length + JSON object)."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
            if len(head) < 9:
                return False
            (n,) = struct.unpack("<Q", head[:8])
            return head[8:9] == b"{" and 2 <= n <= path.stat().st_size - 8
    except OSError:
        return False


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file (CPU)."""
    from safetensors.torch import load_file
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own error types
        raise corrupt_error(path, f"{type(e).__name__}: {e}") from None


def safetensors_keys(path: Path) -> list[str]:
    """Tensor names from a safetensors header only."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return [k for k in header if k != "__metadata__"]


_PY2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}  # protocol-2 names


def _scan_ops(data) -> tuple[str, list[str], int]:
    """(top-level kind, referenced globals, persistent-id count) of one pickle stream; raises on bad opcodes."""
    top = "unknown"
    storages = 0
    found: list[str] = []
    strings: list[str] = []
    memo: dict = {}
    for op, arg, _pos in pickletools.genops(data):
        name = op.name
        if name in ("BINPERSID", "PERSID"):
            storages += 1
        if top == "unknown" and name not in ("PROTO", "FRAME", "MARK"):
            top = {"EMPTY_DICT": "dict", "DICT": "dict", "EMPTY_LIST": "list", "LIST": "list",
                   "EMPTY_TUPLE": "tuple", "TUPLE": "tuple", "GLOBAL": "object",
                   "STACK_GLOBAL": "object"}.get(name, "object" if isinstance(arg, str) else "unknown")
        if name == "GLOBAL":
            mod, _, attr = str(arg).partition(" ")
            g = f"{_PY2_MODULES.get(mod, mod)}.{attr}"
            if g not in found:
                found.append(g)
        elif name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(arg)
        elif name in ("BINPUT", "LONG_BINPUT", "PUT", "MEMOIZE") and strings:
            memo[arg if name != "MEMOIZE" else len(memo)] = strings[-1]
        elif name in ("BINGET", "LONG_BINGET", "GET") and arg in memo:
            strings.append(memo[arg])
        elif name == "STACK_GLOBAL" and len(strings) >= 2:
            g = f"{strings[-2]}.{strings[-1]}"
            if g not in found:
                found.append(g)
    return top, found, storages


def scan_pickle(path: Path) -> PickleScan:
    """Opcode scan of a torch.save file (zip or legacy); raises a corrupt-file CheckpointError."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if n.endswith("data.pkl")]
                if not names:
                    raise CheckpointError(path, "is a zip archive without data.pkl",
                                          "a torch.save archive", "pass the checkpoint file itself")
                data = z.read(names[0])
            top, found, n = _scan_ops(io.BytesIO(data))
        except CheckpointError:
            raise
        except Exception as e:
            raise corrupt_error(path, f"{type(e).__name__}: {e}") from None
        return PickleScan("zip", top, found, n)
    if is_safetensors(path):
        return PickleScan("safetensors", "dict", [])
    try:
        with open(path, "rb") as f:
            for _ in range(3):  # magic number, protocol version, sys info
                _scan_ops(f)
            top, found, n = _scan_ops(f)
    except Exception as e:
        raise corrupt_error(path, _what_is_left(path, e)) from None
    return PickleScan("legacy", top, found, n)


def _what_is_left(path: Path, exc: Exception) -> str:
    """A reader's description of an unreadable file (instead of the unpickler's decoding error)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04"):
        return f"a torch.save zip archive whose end (the zip directory) is missing: {size:,} bytes, cut short"
    if head[:1] == b"\x80":  # a pickle protocol opcode: the legacy torch.save format
        return f"a legacy torch.save file that ends early ({size:,} bytes)"
    if len(head) == 8 and head[:1] != b"{" and head[7:8] == b"\x00" and size > 8:
        return f"looks like a safetensors file whose header or data is cut short ({size:,} bytes)"
    return f"not a torch.save archive, legacy torch file or safetensors file ({size:,} bytes; {type(exc).__name__})"


def read_weights_only(path: Path, mmap: bool = False):
    """``torch.load(weights_only=True)`` with errors sorted into corrupt / needs-trust / ok.

    ``mmap=True`` maps zip archives instead of reading them (for ``describe_checkpoint``).
    """
    path = Path(path)
    if not path.exists():
        raise missing_path_error(path)
    if path.suffix == ".safetensors" or is_safetensors(path):
        return read_safetensors(path)
    scan = scan_pickle(path)  # raises on corrupt containers
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap and scan.container == "zip")
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "Weights only load failed" in msg:  # the opcode scan passed: it is code, not damage
            raise NeedsTrust(scan, msg.splitlines()[0]) from None
        raise corrupt_error(path, msg.splitlines()[0][:160]) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise corrupt_error(path, f"{type(e).__name__}: {str(e).splitlines()[0][:160]}") from None
