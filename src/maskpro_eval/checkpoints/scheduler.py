"""Schedulers from ``scheduler_config.json`` (the class named in ``_class_name``)."""
from __future__ import annotations

import json
from pathlib import Path


def scheduler_from_config_file(path: Path, notes: list | None = None):
    """A diffusers scheduler built with ``from_config``, or None (with a note) if it cannot be."""
    path = Path(path)
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        if notes is not None:
            notes.append(f"{path}: unreadable scheduler config ({e}); no scheduler loaded")
        return None
    import diffusers
    from diffusers import SchedulerMixin
    name = cfg.get("_class_name", "DDPMScheduler")
    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        if notes is not None:
            notes.append(f"{path}: unknown scheduler class {name!r}; no scheduler loaded")
        return None
    return cls.from_config(cfg)


def find_scheduler(folders, notes: list | None = None):
    """The scheduler of the first folder holding ``scheduler/scheduler_config.json`` (or the file itself)."""
    for folder in folders:
        folder = Path(folder)
        for cand in (folder / "scheduler" / "scheduler_config.json", folder / "scheduler_config.json"):
            if cand.is_file():
                return scheduler_from_config_file(cand, notes), cand
    return None, None
