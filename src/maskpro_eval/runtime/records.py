"""The one record schema of every benchmark figure (``benchmarks/`` CLI and pytest-benchmark machine info).

A record is a JSON object::

    {"schema": "maskpro-eval-bench/1", "name": "forward",
     "device": {...device_info()...},
     "versions": {"torch", "diffusers", "python", "cuda", "cudnn", "maskpro_eval"},
     "command": ["python", "-m", "benchmarks", "forward", ...],   # the exact argv
     "date": "2026-11-26T08:30:00+00:00",                         # UTC, ISO 8601
     "settings": {...what was asked for...},
     "figures": {...what was measured...}}

:func:`bench_record` builds one, :func:`write_record` writes it atomically, :func:`check_record` says
what is wrong with one (empty list: valid).
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
from pathlib import Path

__all__ = ["SCHEMA", "RECORD_KEYS", "VERSION_KEYS", "versions", "machine_record", "bench_record", "write_record", "check_record",
           "read_record"]

SCHEMA = "maskpro-eval-bench/1"
#: Keys of a record and the JSON type of each value.
RECORD_KEYS = {"schema": str, "name": str, "device": dict, "versions": dict, "command": list, "date": str,
               "settings": dict, "figures": dict}
VERSION_KEYS = ("torch", "diffusers", "python", "cuda", "cudnn", "maskpro_eval")


def versions() -> dict:
    """torch, diffusers, Python, CUDA and cuDNN (None without them) and maskpro_eval versions."""
    import torch

    import maskpro_eval
    try:
        import diffusers
        diffusers_version = diffusers.__version__
    except Exception:  # noqa: BLE001
        diffusers_version = None
    try:
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:  # noqa: BLE001
        cudnn = None
    return {"torch": torch.__version__, "diffusers": diffusers_version, "python": platform.python_version(),
            "cuda": torch.version.cuda, "cudnn": cudnn, "maskpro_eval": maskpro_eval.__version__}


def machine_record(command: list[str] | None = None, device: dict | None = None) -> dict:
    """The part of a record that describes where and how it ran: ``schema``, ``device``, ``versions``,
    ``command`` (default: this process's exact argv, ``sys.orig_argv``) and ``date`` (UTC). The
    pytest-benchmark suite puts this into its machine info; :func:`bench_record` adds name, settings, figures."""
    from maskpro_eval.runtime.timing import device_info
    argv = list(command) if command is not None else list(getattr(sys, "orig_argv", None) or
                                                          [sys.executable, *sys.argv])
    return {"schema": SCHEMA, "device": device if device is not None else device_info(), "versions": versions(),
            "command": [str(a) for a in argv],
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def bench_record(name: str, settings: dict, figures: dict, command: list[str] | None = None,
                 device: dict | None = None) -> dict:
    """A record of schema :data:`SCHEMA` (``command`` and ``device`` as in :func:`machine_record`)."""
    rec = machine_record(command, device)
    return {"schema": rec.pop("schema"), "name": str(name), **rec, "settings": dict(settings),
            "figures": dict(figures)}


def check_record(rec) -> list[str]:
    """Problems of ``rec`` against the schema (keys, types, version keys); an empty list when valid."""
    if not isinstance(rec, dict):
        return [f"not a JSON object: {type(rec).__name__}"]
    problems = []
    if rec.get("schema") != SCHEMA:
        problems.append(f"schema {rec.get('schema')!r}, expected {SCHEMA!r}")
    for key, typ in RECORD_KEYS.items():
        if key not in rec:
            problems.append(f"missing key {key!r}")
        elif not isinstance(rec[key], typ):
            problems.append(f"{key!r} is {type(rec[key]).__name__}, expected {typ.__name__}")
    missing = [k for k in VERSION_KEYS if k not in (rec.get("versions") or {})]
    if missing:
        problems.append(f"versions lacks {missing}")
    return problems


def write_record(path, rec: dict) -> Path:
    """Write ``rec`` as indented JSON (atomically: a reader never sees half a file); returns the path."""
    from maskpro_eval.reporting.atomic_io import atomic_write_text
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(rec, indent=1, default=str))
    return path


def read_record(path) -> dict | None:
    """The record in ``path``, or None when the file is not a record of this schema (e.g. archived JSON)."""
    try:
        rec = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("schema") == SCHEMA else None
