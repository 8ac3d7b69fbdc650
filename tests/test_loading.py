"""Loaders' error paths and overrides: bad inputs, missing base models, shape mismatches, describe_checkpoint.
What every format must do on a good checkpoint is checked once per format in tests/test_loader_formats.py."""
from __future__ import annotations

import shutil

import pytest
import torch

from maskpro_eval.errors import (BaseModelNotFoundError, CheckpointError, NonFiniteWeightsError,
                                 PickleNotTrustedError, ShapeMismatchError)
from maskpro_eval.checkpoints import describe_checkpoint, load_checkpoint
from tests.builders import build_maskpro_run, ddim_pipeline, prune_resnet_inner, tiny_unet
from tests.loader_tester import state_dicts_equal


@pytest.fixture(scope="module")
def unet():
    return tiny_unet(0)


@pytest.fixture(scope="module")
def pruned():
    return prune_resnet_inner(tiny_unet(0))


# ---------------------------------------------------------------- diffusers folders

def test_config_weights_mismatch_is_error(tmp_path, unet, pruned):
    folder = ddim_pipeline(unet, tmp_path / "pipe")
    from safetensors.torch import save_file
    save_file(pruned.state_dict(), folder / "unet" / "diffusion_pytorch_model.safetensors")
    with pytest.raises(ShapeMismatchError) as e:
        load_checkpoint(folder)
    msg = str(e.value)
    assert "down_blocks.0.resnets.0.conv1.weight: file (4,8,3,3) vs model (8,8,3,3)" in msg
    assert "\n" not in msg
    assert ("down_blocks.0.resnets.0.conv1.weight", (4, 8, 3, 3), (8, 8, 3, 3)) in e.value.mismatches


# ---------------------------------------------------------------- pickles

def test_describe_never_executes_pickles(tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').close()",))
    p = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, p)
    d = describe_checkpoint(p)
    assert d["needs_trust_pickle"] and "builtins.exec" in d["pickle_globals"]
    with pytest.raises(PickleNotTrustedError):
        load_checkpoint(p)
    assert not marker.exists()


# ---------------------------------------------------------------- MaskPro

@pytest.fixture(scope="module")
def maskpro_run(tmp_path_factory, unet):
    return build_maskpro_run(tmp_path_factory.mktemp("mp"), unet)


def same_weights(ck, ref) -> bool:
    return state_dicts_equal(ck.unet.state_dict(), ref.state_dict())


def test_maskpro_trainer_base_override_and_missing(maskpro_run, tmp_path, unet, monkeypatch):
    p = tmp_path / "best_checkpoint.pt"
    shutil.copy(maskpro_run.ckdir / "best_checkpoint.pt", p)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BaseModelNotFoundError) as e:
        load_checkpoint(p)
    assert "--base-model" in str(e.value) and "base_model=" in str(e.value)
    assert "run/pruned/magnitude/ddpm_tiny" in str(e.value)
    assert same_weights(load_checkpoint(p, base_model=unet), maskpro_run.ref)
    monkeypatch.chdir(maskpro_run.root)  # pruned_model_path is relative to where training ran
    assert same_weights(load_checkpoint(p), maskpro_run.ref)


def test_maskpro_state_base_override_and_alone(maskpro_run, tmp_path):
    p = maskpro_run.ckdir / "maskpro_state_epoch_2.pt"
    assert same_weights(load_checkpoint(p, base_model=maskpro_run.trained), maskpro_run.ref)
    alone = tmp_path / "maskpro_state_epoch_2.pt"
    shutil.copy(p, alone)
    with pytest.raises(BaseModelNotFoundError, match="--base-model"):
        load_checkpoint(alone)
    assert describe_checkpoint(alone)["needs_base_model"]


def test_mask_folder_shape_mismatch(tmp_path, unet):
    folder = tmp_path / "learned_mask"
    folder.mkdir()
    torch.save(torch.ones(3, 3, dtype=torch.bool), folder / "down_blocks_0_resnets_0_conv1.pt")
    with pytest.raises(ShapeMismatchError, match="down_blocks.0.resnets.0.conv1"):
        load_checkpoint(folder, base_model=unet)


# ---------------------------------------------------------------- plain state dicts

def test_plain_state_dict_needs_architecture(tmp_path, unet, pruned):
    p = tmp_path / "w.pt"
    torch.save({"model_state_dict": pruned.state_dict()}, p)
    with pytest.raises(BaseModelNotFoundError, match="--base-model"):
        load_checkpoint(p)
    assert describe_checkpoint(p)["needs_base_model"]
    assert same_weights(load_checkpoint(p, base_model=pruned), pruned)
    with pytest.raises(ShapeMismatchError, match="conv1.weight: file"):
        load_checkpoint(p, base_model=unet)
    sd = dict(pruned.state_dict())
    sd["extra.weight"] = sd.pop("conv_in.weight")
    torch.save(sd, p)
    with pytest.raises(ShapeMismatchError) as e:
        load_checkpoint(p, base_model=pruned)
    assert "missing (conv_in.weight)" in str(e.value) and "unexpected (extra.weight)" in str(e.value)


def test_non_finite_weights(tmp_path, unet):
    sd = {k: v.clone() for k, v in unet.state_dict().items()}
    sd["mid_block.resnets.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    sd["conv_out.bias"][0] = float("inf")
    unet.save_config(tmp_path)
    torch.save(sd, tmp_path / "w.pt")
    with pytest.raises(NonFiniteWeightsError) as e:
        load_checkpoint(tmp_path / "w.pt")
    assert "mid_block.resnets.0.conv1.weight" in str(e.value) and "conv_out.bias" in str(e.value)


# ---------------------------------------------------------------- bad inputs

def _one_line(err):
    assert "\n" not in str(err) and "Fix:" in str(err)


def test_missing_path(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist") as e:
        load_checkpoint(tmp_path / "nope.pt")
    _one_line(e.value)
    assert describe_checkpoint(tmp_path / "nope.pt")["format"] == "missing"


def test_random_bytes(tmp_path):
    p = tmp_path / "junk.pth"
    p.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(CheckpointError, match="truncated or corrupt") as e:
        load_checkpoint(p)
    _one_line(e.value)
    assert describe_checkpoint(p)["format"] == "corrupt"


def test_unknown_format_lists_keys(tmp_path):
    p = tmp_path / "odd.pt"
    torch.save({"generator": {"w": 1}, "iteration": 5}, p)
    with pytest.raises(CheckpointError, match="unknown checkpoint format") as e:
        load_checkpoint(p)
    assert "generator" in str(e.value) and "iteration" in str(e.value)
    _one_line(e.value)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "notes.md").write_text("x")
    with pytest.raises(CheckpointError, match="notes.md"):
        load_checkpoint(tmp_path / "folder")
