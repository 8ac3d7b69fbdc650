"""What the loader decided is visible: the base model a MaskPro trainer checkpoint was resolved to, how it
was found, and a warning when the walk up the folders left the checkpoint's own run tree."""
from __future__ import annotations

import shutil

import pytest

from maskpro_eval.checkpoints import load_checkpoint
from tests.builders import SHARED_FIXTURES

RUN = SHARED_FIXTURES / "real_formats" / "run"
pytestmark = pytest.mark.skipif(not RUN.is_dir(), reason="needs ../shared/fixtures/real_formats")
CKPT = "run/maskpro/training/checkpoints/best_checkpoint.pt"


def _copy(dst, with_pruned: bool):
    shutil.copytree(RUN / "maskpro", dst / "run" / "maskpro")
    if with_pruned:
        shutil.copytree(RUN / "pruned", dst / "run" / "pruned")


def test_base_found_inside_the_copied_run_is_named(tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    _copy(tmp_path / "copy", with_pruned=True)
    ck = load_checkpoint(tmp_path / "copy" / CKPT, trust_pickle=True)
    (note,) = [n for n in ck.notes if n.startswith("base model from")]
    assert str(tmp_path / "copy" / "run" / "pruned" / "magnitude" / "ddpm_tiny_pruned") in note
    assert "found 5 folder(s) above the checkpoint" in note
    assert not [n for n in ck.notes if n.startswith("WARNING")]


def test_walk_leaving_the_run_folder_warns(tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    _copy(tmp_path / "copy", with_pruned=False)          # the copy lacks its pruned model ...
    _copy(tmp_path, with_pruned=True)                      # ... but another run above it has one
    ck = load_checkpoint(tmp_path / "copy" / CKPT, trust_pickle=True)
    (warning,) = [n for n in ck.notes if n.startswith("WARNING")]
    assert str(tmp_path / "run" / "pruned") in warning and "--base-model" in warning
