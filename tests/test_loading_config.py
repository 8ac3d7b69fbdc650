"""A UNet config.json with a misspelled key must not load with diffusers' default for it (a
``norm_num_groups`` typo gave 32 groups instead of 8 and outputs 70% off, silently)."""
from __future__ import annotations

import json

import pytest

from maskpro_eval.checkpoints import describe_checkpoint, load_checkpoint
from maskpro_eval.errors import CheckpointError
from tests.builders import tiny_unet


def test_misspelled_config_key_is_an_error_naming_the_closest_key(tmp_path):
    tiny_unet().save_pretrained(tmp_path / "u")
    cfg_path = tmp_path / "u" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["norm_num_grups"] = cfg.pop("norm_num_groups")
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint(tmp_path / "u")
    msg = str(ei.value)
    assert "'norm_num_grups' (did you mean 'norm_num_groups'?)" in msg and str(tmp_path / "u") in msg
    assert "\n" not in msg and "Fix:" in msg


def test_unmodified_config_still_loads(tmp_path):
    tiny_unet().save_pretrained(tmp_path / "u")
    assert load_checkpoint(tmp_path / "u").format == "diffusers-unet"
    assert describe_checkpoint(tmp_path / "u")["format"] == "diffusers-unet"


def test_truncated_torch_file_says_so_without_decoder_noise(tmp_path):
    """A torch.save file cut short names what it is (was: "not a torch zip archive ... UnicodeDecodeError")."""
    import torch
    torch.save(tiny_unet().state_dict(), tmp_path / "full.pt")
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint(tmp_path / "cut.pt")
    msg = str(ei.value)
    assert "zip archive whose end (the zip directory) is missing" in msg and "cut short" in msg
    assert "UnicodeDecodeError" not in msg and "Fix:" in msg
