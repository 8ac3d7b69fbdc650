"""Whole-model sparsity analysis against hand-computed figures."""
import pytest
import torch
from torch import nn

from maskpro_eval.analysis.sparsity import analyze_sparsity
from tests.builders import masked_layers, prune_nm, prune_unstructured, tiny_unet


class TwoLayer(nn.Module):
    """Not a UNet: checks the arithmetic of analyze_sparsity on a model we can count by hand."""

    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv2d(3, 4, 3, padding=1)      # excluded by default (reduction 27)
        self.proj = nn.Conv2d(4, 16, 1)                    # 1x1 conv: matmul-eligible shape? 16x4 -> no
        self.to_q = nn.Linear(32, 32)
        self.config = type("C", (), {"sample_size": 4, "in_channels": 3})()

    def forward(self, x, t):
        h = self.proj(self.conv_in(x))                    # (1, 16, 4, 4)
        return self.to_q(h.flatten(1)[:, :32])


def test_hand_computed_model():
    model = TwoLayer()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
        model.to_q.weight.view(-1, 4)[:, 2:] = 0          # strict 2:4 on to_q
        model.proj.weight.view(-1, 4)[:, 3:] = 0          # 1 zero per group (3 non-zeros): not 2:4
    rep = analyze_sparsity(model, 2, 4)
    layers = {l.name: l for l in rep.layers}
    assert set(layers) == {"conv_in", "proj", "to_q"}
    assert not layers["conv_in"].masked and layers["proj"].masked and layers["to_q"].masked
    assert layers["to_q"].sparsity == 0.5 and layers["to_q"].nm_compliance == 1.0
    assert layers["proj"].sparsity == 0.25 and layers["proj"].nm_compliance == 0.0
    # masked sparsity: (512 + 16) zeros over (1024 + 64) weights
    assert rep.masked_layers_sparsity == pytest.approx((512 + 16) / (1024 + 64))
    # compliance weighted by groups: to_q 256 groups compliant, proj 16 not
    assert rep.nm_compliance == pytest.approx(256 / 272)
    total = sum(p.numel() for p in model.parameters())
    assert rep.parameters_total == total and rep.parameters_nonzero == total - 528
    # MACs per image: conv_in 4*16*27, proj 16*16*4, to_q 32*32
    assert layers["conv_in"].macs == 4 * 16 * 27 and layers["proj"].macs == 16 * 16 * 4
    assert layers["to_q"].macs == 32 * 32
    assert layers["to_q"].effective_macs == 32 * 32 * 0.5
    # eligibility: to_q strict 2:4 with dims multiple of 16; proj is 16x4 (in=4 not multiple of 16)
    assert layers["to_q"].eligible and not layers["proj"].eligible and not layers["conv_in"].eligible
    assert rep.eligible_macs_share == pytest.approx(1024 / (4 * 16 * 27 + 16 * 16 * 4 + 1024))
    # packed storage: to_q packed = 512 kept * (2 bytes + 2 bits); everything else dense 16-bit
    c = rep.compression
    assert c["packed_bytes"] == pytest.approx(512 * 2 + 512 * 2 / 8 + (total - 1024) * 2)
    assert c["dense_bytes"] == total * 2 and c["packed_layers"] == 1


def test_strict_24_unet():
    unet = tiny_unet()
    masks = prune_nm(unet)
    rep = analyze_sparsity(unet, 2, 4, masks=masks)
    assert rep.masked_layers_sparsity == 0.5 and rep.nm_compliance == 1.0 and rep.nm_exact == 1.0
    assert rep.masked_layer_count == len(masked_layers(unet)) > 0
    assert rep.best_fit == "2:4"
    assert 0 < rep.global_sparsity < 0.5
    assert rep.compression["packed_size_ratio"] > 1.0
    assert rep.macs_effective < rep.macs_dense


def test_unstructured_is_not_compliant():
    unet = tiny_unet()
    prune_unstructured(unet, 0.5)
    rep = analyze_sparsity(unet, 2, 4)
    assert rep.masked_layers_sparsity == pytest.approx(0.5, abs=0.01)
    assert rep.nm_compliance < 0.8
    assert rep.worst_layers(3)[0].nm_compliance <= rep.nm_compliance


def test_ddpm_cifar10_reference_numbers():
    """FORMATS.md: 35,746,307 params, 113 Conv2d/Linear, 87 masked layers, 45.95% conv/linear sparsity."""
    from maskpro_eval.checkpoints.architecture import build_ddpm_cifar10_unet
    torch.manual_seed(0)
    unet = build_ddpm_cifar10_unet().eval()
    prune_nm(unet)
    rep = analyze_sparsity(unet, 2, 4)
    assert rep.parameters_total == 35_746_307 and len(rep.layers) == 113
    assert rep.masked_layer_count == 87
    conv_lin = sum(l.parameters for l in rep.layers)
    assert sum(l.zeros for l in rep.layers) / conv_lin == pytest.approx(0.4595, abs=5e-5)
    assert rep.macs_dense / 1e9 == pytest.approx(6.05, abs=0.05)
