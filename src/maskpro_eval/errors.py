"""Errors with a message a user can act on: the file, what was expected, and what to do."""
from __future__ import annotations

from pathlib import Path


class MaskProEvalError(Exception):
    """Base class of every error this library raises on purpose."""


class _ActionableError(MaskProEvalError):
    """One-line message: ``<path>: <problem>; expected <what>. Fix: <what to do>``."""

    def __init__(self, path: str | Path | None, problem: str, expected: str | None = None,
                 fix: str | None = None):
        self.path = None if path is None else str(path)
        self.problem = problem
        self.expected = expected
        self.fix = fix
        parts = [f"{self.path}: {problem}" if self.path else problem]
        if expected:
            parts.append(f"expected {expected}")
        msg = "; ".join(parts)
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)


class CheckpointError(_ActionableError, ValueError):
    """A checkpoint (or reference, or weight file) could not be used.

    The message is one line: ``<path>: <problem>; expected <what>. Fix: <what to do>``.
    """


class PickleNotTrustedError(CheckpointError):
    """A pickle would have to be executed to load this file, and the user did not allow it."""


class BaseModelNotFoundError(CheckpointError):
    """A checkpoint holds only weights or masks and its architecture could not be found."""


class ShapeMismatchError(CheckpointError):
    """Tensors in a file do not fit the model they must be loaded into (never re-initialised)."""


class NonFiniteWeightsError(CheckpointError):
    """NaN or Inf in the weights."""


class ReferenceSetError(_ActionableError, ValueError):
    """A FID reference set (npz, folder, CIFAR batches, cache) is missing or malformed.

    Same one-line message as :class:`CheckpointError`:
    ``<path>: <problem>; expected <what>. Fix: <what to do>``.
    """


#: Old name, kept as an alias.
ReferenceError_ = ReferenceSetError
