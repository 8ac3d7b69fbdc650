"""Checkpoint loading: every format users arrive with, turned into a ``LoadedCheckpoint``.

``load_checkpoint(path, base_model=None, trust_pickle=False, nm=None)`` detects the format (see
``FORMATS``); ``describe_checkpoint(path)`` reports what a file holds without executing pickles.
"""
from maskpro_eval.checkpoints.load import load_checkpoint
from maskpro_eval.checkpoints.describe import describe_checkpoint
from maskpro_eval.checkpoints.registry import FORMATS

__all__ = ["load_checkpoint", "describe_checkpoint", "FORMATS"]
