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
STRICT_2OF4 = ("magnitude_2of4", "maskpro_2of4")


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
    assert (path / "unet/diffusion_pytorch_model.safetensors").stat().st_size <= 1.6e6
    assert not list(path.rglob("*.bin")), "weights must be safetensors only"
    index = json.loads((path / "model_index.json").read_text())
    assert index["_class_name"] == "DDPMPipeline"


def test_zoo_total_size_and_index_files():
    size = sum(p.stat().st_size for p in zoo.ZOO_ROOT.rglob("*") if p.is_file())
    assert size <= 8.5e6, f"demo zoo is {size / 1e6:.2f} MB"
    assert (zoo.ZOO_ROOT / "ZOO.md").is_file()
    assert zoo.ZOO_REFERENCE_FILE.is_file()


def test_reference_images():
    imgs = zoo.zoo_reference_images()
    assert imgs.dtype == np.uint8 and imgs.shape == (1797, 32, 32, 3)
    assert np.array_equal(imgs[..., 0], imgs[..., 1]) and np.array_equal(imgs[..., 0], imgs[..., 2])
    assert imgs.max() == 255 and imgs.min() == 0


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
    assert unet.config.block_out_channels == [16, 32, 32, 32] or tuple(unet.config.block_out_channels) == (16, 32, 32, 32)
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
    assert card["name"] == name and card["device"] == "cpu"
    assert card["params"] == sum(p.numel() for p in unets[name].parameters())
    assert math.isfinite(card["val_loss"]) and card["val_loss"] < 0.2
    layers = _masked(unets[name])
    assert sorted(card["masked_layers"]) == sorted(layers)
    zeros = sum(int((m.weight == 0).sum()) for m in layers.values())
    total = sum(m.weight.numel() for m in layers.values())
    assert card["sparsity_masked_layers"] == pytest.approx(zeros / total, abs=1e-9)
    if name in STRICT_2OF4:
        assert card["nm_pattern"] == "2:4" and card["compliance_2of4_row"] == 1.0
        cmp = card["comparison_magnitude_vs_maskpro"]
        assert set(cmp["after_fine_tune_val_loss"]) == {"magnitude", "maskpro"}


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
            assert mse < 0.25, f"{name}: eps-MSE {mse:.3f} at t=300"
