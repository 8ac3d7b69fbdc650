"""Loaders against real checkpoints written by diffusers 0.17 / torch-pruning / MaskPro (../shared/fixtures)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from maskpro_eval.errors import BaseModelNotFoundError, PickleNotTrustedError, ShapeMismatchError
from maskpro_eval.checkpoints import describe_checkpoint, load_checkpoint

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "real_formats"
PRUNED = REAL / "run" / "pruned" / "magnitude" / "ddpm_tiny_pruned"
CKPTS = REAL / "run" / "maskpro" / "training" / "checkpoints"

pytestmark = pytest.mark.skipif(not (REAL / "magnitude_017_io.pt").is_file(),
                                reason=f"real checkpoint fixtures not found at {REAL}")


def _truth(name):
    return json.loads((REAL / name).read_text())


def _max_diff(unet, io_file):
    io = torch.load(REAL / io_file, weights_only=True)
    with torch.no_grad():
        y = unet(io["x"], io["t"]).sample
    return (y - io["y"]).abs().max().item()


@pytest.fixture(scope="module")
def magnitude():
    return load_checkpoint(PRUNED, trust_pickle=True)


@pytest.fixture(scope="module")
def trainer():
    return load_checkpoint(CKPTS / "best_checkpoint.pt", trust_pickle=True)


def test_pruned_folder_needs_trust():
    with pytest.raises(PickleNotTrustedError) as e:
        load_checkpoint(PRUNED)
    assert "--trust-pickle" in str(e.value) and "trust_pickle=True" in str(e.value)
    d = describe_checkpoint(PRUNED)
    assert d["format"] == "diffusers-pruned-pickle" and d["needs_trust_pickle"]


def test_magnitude_pickle_reproduces_017_output(magnitude):
    assert magnitude.format == "diffusers-pruned-pickle"
    assert _max_diff(magnitude.unet, "magnitude_017_io.pt") <= 1e-4
    assert magnitude.extra["params"] == _truth("magnitude_017_truth.json")["pruned_params"] == 777134
    remaps = magnitude.extra["pickle_remaps"]
    assert remaps["diffusers.models.unet_2d.UNet2DModel"] == "diffusers.models.unets.unet_2d.UNet2DModel"
    assert type(magnitude.scheduler).__name__ == "DDPMScheduler"


def test_pickle_file_directly(magnitude):
    ck = load_checkpoint(PRUNED / "pruned" / "unet_pruned.pth", trust_pickle=True)
    assert ck.format == "pickled-module"
    a, b = ck.unet.state_dict(), magnitude.unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_dense_config_with_pruned_bin_is_shape_error():
    with pytest.raises(ShapeMismatchError) as e:
        load_checkpoint(PRUNED / "unet")
    assert "conv_in.weight: file (24,3,3,3) vs model (32,3,3,3)" in str(e.value)


def test_dense_pipeline_loads():
    ck = load_checkpoint(REAL / "run" / "dense" / "ddpm_tiny")
    assert ck.format == "diffusers-pipeline"
    assert ck.extra["params"] == _truth("magnitude_017_truth.json")["dense_params"]


def test_maskpro_trainer_reproduces_017_output(trainer):
    truth = _truth("maskpro_017_truth.json")
    assert trainer.format == "maskpro-trainer" and trainer.nm == (2, 4) and trainer.epoch == 3
    assert _max_diff(trainer.unet, "maskpro_017_io.pt") <= 1e-4
    assert list(trainer.masks) == truth["wrapped_layers"] and len(trainer.masks) == 45
    kept = sum(int(m.sum()) for m in trainer.masks.values())
    total = sum(m.numel() for m in trainer.masks.values())
    assert total == truth["masked_weights"]
    assert 1 - kept / total == pytest.approx(truth["masked_sparsity"])
    assert trainer.extra["params"] == truth["total_params_excluding_logits"]
    zeros = sum(int((p == 0).sum()) for p in trainer.unet.parameters())
    assert zeros / trainer.extra["params"] == pytest.approx(truth["global_param_sparsity"], abs=1e-4)
    bad = {k for k, v in trainer.mask_disagreements.items() if v > 0}
    assert bad == {truth["current_mask_disagrees"]} == {"down_blocks.0.resnets.0.conv1"}
    assert any("down_blocks.0.resnets.0.conv1" in n for n in trainer.notes)
    assert [e["epoch"] for e in trainer.training_logs] == [0, 1, 2, 3]


def test_maskpro_trainer_without_trust_names_option():
    with pytest.raises(PickleNotTrustedError, match="--trust-pickle"):
        load_checkpoint(CKPTS / "checkpoint_epoch_3.pt")
    d = describe_checkpoint(CKPTS / "checkpoint_epoch_3.pt")
    assert d["format"] == "maskpro-trainer" and d["nm"] == (2, 4) and d["needs_trust_pickle"]


def test_maskpro_trainer_base_not_found(tmp_path, monkeypatch):
    shutil.copy(CKPTS / "checkpoint_epoch_3.pt", tmp_path / "checkpoint_epoch_3.pt")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BaseModelNotFoundError, match="--base-model"):
        load_checkpoint(tmp_path / "checkpoint_epoch_3.pt", trust_pickle=True)


def test_maskpro_state_matches_trainer(trainer, magnitude):
    st = load_checkpoint(CKPTS / "maskpro_state_epoch_3.pt", base_model=trainer)
    assert st.format == "maskpro-state" and st.nm == (2, 4)
    a, b = st.unet.state_dict(), trainer.unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)
    assert all(torch.equal(st.masks[k], trainer.masks[k]) for k in trainer.masks)
    # without base_model: the same-epoch trainer checkpoint beside it supplies the weights
    st2 = load_checkpoint(CKPTS / "maskpro_state_epoch_3.pt", trust_pickle=True)
    a = st2.unet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)
    # applied to the pruned base (untrained weights): same masks, masked weights zero
    st3 = load_checkpoint(CKPTS / "maskpro_state_epoch_3.pt", base_model=magnitude)
    w = st3.unet.get_submodule("mid_block.resnets.0.conv1").weight
    assert torch.equal(w == 0, ~trainer.masks["mid_block.resnets.0.conv1"] | (w == 0))


def test_truncated_real_checkpoint(tmp_path):
    data = (CKPTS / "maskpro_state_epoch_3.pt").read_bytes()
    p = tmp_path / "maskpro_state_epoch_3.pt"
    p.write_bytes(data[: len(data) - 1000])
    with pytest.raises(Exception) as e:
        load_checkpoint(p)
    assert "truncated or corrupt" in str(e.value) and str(p) in str(e.value)


def test_checkpoints_folder_asks_for_one_file():
    with pytest.raises(Exception, match="folder of checkpoints.*Fix: pass one file"):
        load_checkpoint(CKPTS)
