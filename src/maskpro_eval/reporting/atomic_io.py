"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

Readers see the old file or the complete new one, never a partial one. On any error (``KeyboardInterrupt``
included) the temporary file is removed, the target is left as it was and the error propagates.
Temporary files are named ``.<name>.<random>.tmp``, so a leftover one is easy to recognise.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import IO, Callable

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "atomic_savez"]


def atomic_write(path: str | os.PathLike, write_fn: Callable[[IO], object], *, binary: bool = True,
                 fsync: bool = True, fsync_dir: bool = False, perms: int = 0o600) -> Path:
    """Write ``path`` through ``write_fn(fileobj)`` atomically; returns the path.

    Args:
        binary: open the temporary file in binary (else text, locale encoding) mode.
        fsync: flush and fsync the file before the rename.
        fsync_dir: fsync the folder after the rename, so that the rename survives a crash (best effort).
        perms: permission bits of the new file (the process umask applies).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), perms)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write_fn(f)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if fsync_dir:
        _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, fsync: bool = True,
                       fsync_dir: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (private file, fsynced by default)."""
    return atomic_write(path, lambda f: f.write(data), fsync=fsync, fsync_dir=fsync_dir)


def atomic_write_text(path: str | os.PathLike, text: str, *, fsync: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically, as ``Path.write_text`` would (locale encoding, umask perms)."""
    return atomic_write(path, lambda f: f.write(text), binary=False, fsync=fsync, perms=0o666)


def atomic_savez(path: str | os.PathLike, arrays: dict, *, fsync: bool = True, fsync_dir: bool = False) -> Path:
    """``np.savez(path, **arrays)`` atomically (private file, fsynced by default)."""
    import numpy as np

    return atomic_write(path, lambda f: np.savez(f, **arrays), fsync=fsync, fsync_dir=fsync_dir)


def _fsync_dir(folder: Path) -> None:
    try:  # not supported everywhere (e.g. Windows)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
