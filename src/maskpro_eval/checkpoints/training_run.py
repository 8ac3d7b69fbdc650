"""A training run's checkpoints: discovery, selection (best / latest / all) and trend plots."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from maskpro_eval.errors import CheckpointError

_EPOCH = re.compile(r"(?:checkpoint|maskpro_state)_epoch_(\d+)\.pt$")
SELECT_MODES = ("best", "latest", "all")


@dataclass(frozen=True)
class RunCheckpoint:
    """One file of a training run: ``kind`` is "trainer" (checkpoint_epoch_E / best) or "state"."""

    name: str
    path: Path
    kind: str
    epoch: int | None


def discover(training_dir: str | Path) -> list[RunCheckpoint]:
    """Every MaskPro checkpoint under ``training_dir`` (recursively), sorted by epoch then name."""
    root = Path(training_dir)
    if not root.is_dir():
        raise CheckpointError(root, "training directory not found", "a folder holding checkpoint_epoch_*.pt, "
                              "best_checkpoint.pt or maskpro_state_*.pt", "check --training-dir")
    found = []
    for p in sorted(root.rglob("*.pt")):
        m = _EPOCH.search(p.name)
        if p.name == "best_checkpoint.pt":
            found.append(RunCheckpoint("best", p, "trainer", None))
        elif m and p.name.startswith("checkpoint_epoch_"):
            found.append(RunCheckpoint(f"epoch_{int(m.group(1))}", p, "trainer", int(m.group(1))))
        elif m and p.name.startswith("maskpro_state_epoch_"):
            found.append(RunCheckpoint(f"state_epoch_{int(m.group(1))}", p, "state", int(m.group(1))))
    if not found:
        raise CheckpointError(root, "no training checkpoints found",
                              "checkpoint_epoch_<E>.pt, best_checkpoint.pt or maskpro_state_epoch_<E>.pt",
                              "point --training-dir at the run's output (or its checkpoints/) folder")
    return sorted(found, key=lambda c: (c.epoch if c.epoch is not None else 1 << 30, c.name))


def select(found: list[RunCheckpoint], mode: str = "latest") -> list[RunCheckpoint]:
    """``best``: best_checkpoint.pt; ``latest``: highest-epoch trainer checkpoint; ``all``: every trainer
    checkpoint plus state files for epochs without one."""
    if mode not in SELECT_MODES:
        raise ValueError(f"--training-select {mode!r}: expected one of {SELECT_MODES}")
    trainer = [c for c in found if c.kind == "trainer"]
    if mode == "best":
        best = [c for c in trainer if c.name == "best"]
        if not best:
            raise CheckpointError(found[0].path.parent, "no best_checkpoint.pt", "best_checkpoint.pt",
                                  "use --training-select latest or all")
        return best
    if mode == "latest":
        epochs = [c for c in trainer if c.epoch is not None] or [c for c in found if c.epoch is not None]
        return [max(epochs, key=lambda c: c.epoch)] if epochs else trainer[:1]
    covered = {c.epoch for c in trainer}
    return trainer + [c for c in found if c.kind == "state" and c.epoch not in covered]
