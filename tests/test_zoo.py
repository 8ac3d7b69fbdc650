"""The bundled demo zoo: files present, loadable, and with the sparsity each model claims."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from maskpro_eval.checkpoints import zoo
from maskpro_eval.checkpoints.architecture import DDPM_CIFAR10_SCHEDULER_CONFIG
from maskpro_eval.analysis.layers import DEFAULT_EXCLUDE_LAYERS
from maskpro_training import maskable_layers
from maskpro_eval.analysis.nm import nm_compliance

pytestmark = pytest.mark.unit

PIPELINE_FILES = ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                  "scheduler/scheduler_config.json", "zoo_card.json")
STRICT_2OF4 = ("magnitude_2of4", "maskpro_2of4", "magnitude_2of4_ft", "maskpro_2of4_ft")


@pytest.fixture(scope="module")
def unets():
    import diffusers
    from diffusers import UNet2DModel
    diffusers.utils.logging.set_verbosity_error()
    return {name: UNet2DModel.from_pretrained(str(zoo.zoo_model_path(name)), subfolder="unet")
            for name in zoo.ZOO_MODELS}


def _card(name):
    return json.loads((zoo.zoo_model_path(name) / "zoo_card.json").read_text())


def _masked(unet):
    return maskable_layers(unet, 4, DEFAULT_EXCLUDE_LAYERS)


@pytest.mark.parametrize("name", zoo.ZOO_MODELS)
def test_zoo_model_files_exist_and_are_small(name):
    path = zoo.zoo_model_path(name)
    for rel in PIPELINE_FILES:
        assert (path / rel).is_file(), f"{name}: missing {rel}"
    assert (path / "unet/diffusion_pytorch_model.safetensors").stat().st_size <= 1.5e6   # float16
    assert not list(path.rglob("*.bin")), "weights must be safetensors only"
    index = json.loads((path / "model_index.json").read_text())
    assert index["_class_name"] == "DDPMPipeline"


def test_zoo_total_size_and_index_files():
    size = sum(p.stat().st_size for p in zoo.ZOO_ROOT.rglob("*") if p.is_file())
    # 22.4 MB of models, curves and digits + 2.8 MB of the digits' bundled Inception features
    assert size <= 25.5e6, f"demo zoo is {size / 1e6:.2f} MB"
    for name in ("ZOO.md", "MANIFEST.json", "build.json", "training_curve.json"):
        assert (zoo.ZOO_ROOT / name).is_file(), name
    assert zoo.ZOO_REFERENCE_FILE.is_file()


def test_every_bundled_file_matches_its_recorded_hash():
    """MANIFEST.json (written by the builder) lists every file of the zoo with its sha256: nothing missing,
    nothing extra, nothing changed since the build."""
    import hashlib
    manifest = json.loads((zoo.ZOO_ROOT / "MANIFEST.json").read_text())["files"]
    on_disk = {p.relative_to(zoo.ZOO_ROOT).as_posix() for p in zoo.ZOO_ROOT.rglob("*")
               if p.is_file() and p.name != "MANIFEST.json"}
    assert on_disk == set(manifest), f"unlisted: {sorted(on_disk - set(manifest))}; missing: {sorted(set(manifest) - on_disk)}"
    bad = [rel for rel, rec in manifest.items()
           if hashlib.sha256((zoo.ZOO_ROOT / rel).read_bytes()).hexdigest() != rec["sha256"]]
    assert not bad, f"files changed since the build: {bad}"
    for name in zoo.ZOO_MODELS:   # the card's own hash agrees too
        rel = f"{name}/unet/diffusion_pytorch_model.safetensors"
        assert _card(name)["weights_sha256"] == manifest[rel]["sha256"], name


def test_reference_images_are_the_held_out_split():
    imgs = zoo.zoo_reference_images()
    assert imgs.dtype == np.uint8 and imgs.shape == (397, 32, 32, 3)
    assert np.array_equal(imgs[..., 0], imgs[..., 1]) and np.array_equal(imgs[..., 0], imgs[..., 2])
    assert imgs.max() == 255 and imgs.min() == 0
    build = json.loads((zoo.ZOO_ROOT / "build.json").read_text())
    split = {k: set(v) for k, v in build["split"].items()}
    assert not (split["test"] & split["train"]) and not (split["test"] & split["val"]) and not (split["val"] & split["train"])
    assert len(split["test"]) + len(split["val"]) + len(split["train"]) == 1797
    with np.load(zoo.ZOO_REFERENCE_FILE) as d:
        assert set(d["indices"].tolist()) == split["test"]


def test_resolve_model_spec_and_errors(tmp_path):
    assert zoo.resolve_model_spec("demo:dense") == zoo.ZOO_ROOT / "dense"
    assert zoo.resolve_model_spec(str(tmp_path)) == tmp_path
    assert zoo.resolve_model_spec(tmp_path) == tmp_path
    with pytest.raises(ValueError) as exc:
        zoo.resolve_model_spec("demo:nope")
    for name in zoo.ZOO_MODELS:
        assert name in str(exc.value)
    assert set(zoo.DEFAULT_MODELS_UNDER_TEST) <= set(zoo.ZOO_MODELS)
    assert zoo.DEFAULT_BASELINE in zoo.ZOO_MODELS


@pytest.mark.parametrize("name", zoo.ZOO_MODELS)
def test_weights_finite_and_scheduler_is_ddpm_cifar10(unets, name):
    from diffusers import DDPMScheduler
    unet = unets[name]
    assert all(torch.isfinite(p).all() for p in unet.parameters())
    assert tuple(unet.config.block_out_channels) == (16, 32, 48, 48)
    assert tuple(unet.config.down_block_types) == ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D")
    assert unet.config.sample_size == 32 and unet.config.in_channels == 3 and unet.config.out_channels == 3
    sched = DDPMScheduler.from_pretrained(str(zoo.zoo_model_path(name)), subfolder="scheduler")
    for key, value in DDPM_CIFAR10_SCHEDULER_CONFIG.items():
        assert sched.config[key] == value, key


@pytest.mark.parametrize("name", STRICT_2OF4)
def test_pruned_models_are_strictly_2of4(unets, name):
    layers = _masked(unets[name])
    assert len(layers) > 10
    zeros = total = 0
    for lname, mod in layers.items():
        c = nm_compliance(mod.weight, 2, 4, "row")
        assert c.compliance == 1.0, f"{name}.{lname}: 2:4 compliance {c.compliance}"
        zeros += int((mod.weight == 0).sum())
        total += mod.weight.numel()
    assert zeros / total >= 0.5
    for excluded in ("conv_in", "conv_out"):
        w = dict(unets[name].named_modules())[excluded].weight
        assert float((w == 0).float().mean()) < 0.01


def test_noncompliant_model_is_sparse_but_not_2of4(unets):
    zeros = total = groups = compliant = 0
    for mod in _masked(unets["noncompliant"]).values():
        c = nm_compliance(mod.weight, 2, 4, "row")
        groups += c.num_groups
        compliant += c.compliant_groups
        zeros += int((mod.weight == 0).sum())
        total += mod.weight.numel()
    assert compliant / groups < 0.5
    assert zeros / total == pytest.approx(0.5, abs=0.01)


def test_dense_model_has_no_masked_zeros(unets):
    zeros = total = 0
    for mod in _masked(unets["dense"]).values():
        zeros += int((mod.weight == 0).sum())
        total += mod.weight.numel()
    assert zeros / total < 1e-3


@pytest.mark.parametrize("name", zoo.ZOO_MODELS)
def test_cards_agree_with_weights(unets, name):
    card = _card(name)
    assert card["name"] == name and card["weights_dtype"].startswith("float16")
    built = card.get("built_on") or _card(card["parent"])["built_on"]   # one-shot magnitude: no stage of its own
    assert built["device_name"] and built["versions"]["torch"]
    assert card["params"] == sum(p.numel() for p in unets[name].parameters())
    assert math.isfinite(card["val_loss"]) and math.isfinite(card["test_loss"])
    layers = _masked(unets[name])
    assert sorted(card["masked_layers"]) == sorted(layers)
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    total = sum(m.weight.numel() for m in layers.values())
    assert card["sparsity_masked_layers"] == pytest.approx(zeros / total, abs=1e-9)
    if name in STRICT_2OF4:
        assert card["nm_pattern"] == "2:4" and card["compliance_2of4_row"] == 1.0


def test_maskpro_learned_a_different_mask_with_frozen_weights(unets):
    """maskpro_2of4 keeps the weights it was learned on (frozen: the dense model before its polish, which is
    maskpro_run/pruned_model) and only chose other 2-of-4 entries than magnitude."""
    from diffusers import UNet2DModel
    base = _masked(UNet2DModel.from_pretrained(str(zoo.ZOO_ROOT / "maskpro_run" / "pruned_model"), subfolder="unet"))
    mag, mp = (_masked(unets[n]) for n in ("magnitude_2of4", "maskpro_2of4"))
    dense = base
    changed = total = 0
    for k, mod in mp.items():
        w = mod.weight
        kept = w != 0
        assert torch.equal(w[kept], dense[k].weight[kept]), f"{k}: a kept weight differs from dense"
        changed += int((kept != (mag[k].weight != 0)).sum())
        total += w.numel()
    assert changed / total > 0.01
    assert _card("maskpro_2of4")["val_loss"] < _card("magnitude_2of4")["val_loss"]


def test_zoo_models_denoise(unets):
    """A forward check: at a mid-range t every model predicts the noise far better than chance."""
    from diffusers import DDPMScheduler
    imgs = torch.from_numpy(zoo.zoo_reference_images()[:32]).permute(0, 3, 1, 2).float() / 127.5 - 1
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(imgs.shape, generator=g)
    t = torch.full((imgs.shape[0],), 300)
    xt = DDPMScheduler(**DDPM_CIFAR10_SCHEDULER_CONFIG).add_noise(imgs, noise, t)
    with torch.no_grad():
        for name, unet in unets.items():
            mse = float(torch.nn.functional.mse_loss(unet(xt, t).sample, noise))
            limit = 0.5 if name == "magnitude_2of4" else 0.25   # one-shot magnitude 2:4 is the damaged model
            assert mse < limit, f"{name}: eps-MSE {mse:.3f} at t=300"


def test_demo_training_run_is_in_the_trainer_format():
    """maskpro_run: the trainer's keys, wrapped layers, logits whose top-2 is maskpro_2of4's last-epoch mask."""
    from maskpro_eval.checkpoints.load import load_checkpoint
    from maskpro_eval.checkpoints.training_run import discover
    names = sorted(p.name for p in zoo.ZOO_TRAINING_DIR.iterdir())
    assert "best_checkpoint.pt" in names
    assert len([n for n in names if n.startswith("checkpoint_epoch_")]) >= 2
    assert len([n for n in names if n.startswith("maskpro_state_epoch_")]) >= 2
    obj = torch.load(zoo.ZOO_TRAINING_DIR / "best_checkpoint.pt", weights_only=True)
    assert {"epoch", "step", "model_state_dict", "model_optimizer_state_dict", "mask_optimizer_state_dict",
            "model_scheduler_state_dict", "mask_scheduler_state_dict", "config", "best_val_loss",
            "training_logs"} <= set(obj)
    sd = obj["model_state_dict"]
    assert any(k.endswith(".original_layer.weight") for k in sd) and any(k.endswith(".mask_logits") for k in sd)
    assert obj["config"]["model"]["n"] == 2 and obj["config"]["model"]["m"] == 4
    assert len(obj["training_logs"]) == obj["epoch"]
    found = discover(zoo.ZOO_TRAINING_DIR)
    assert len(found) >= 3
    ck = load_checkpoint(zoo.ZOO_TRAINING_DIR / "best_checkpoint.pt")
    assert ck.format == "maskpro-trainer" and not any("WARNING" in n for n in ck.notes)
    for mod in _masked(ck.unet).values():
        assert nm_compliance(mod.weight, 2, 4, "row").compliance == 1.0
