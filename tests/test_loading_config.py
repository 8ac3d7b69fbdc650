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
