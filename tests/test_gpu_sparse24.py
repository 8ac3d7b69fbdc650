"""2:4 sparse-tensor-core eligibility (matches analyze_sparsity), the Amdahl bound, the 1x1-conv-as-matmul
rewrite, FLOP counts - all on the CPU. Speed itself is measured by evaluation_tests/test_gpu.py on a GPU."""
from __future__ import annotations

import pytest
import torch

from maskpro_eval.analysis.eligibility import layer_kind
from maskpro_eval.runtime.sparse24 import Conv1x1AsLinear, amdahl_bound, eligibility_table, sparse24_available
from maskpro_eval.analysis.sparsity import analyze_sparsity

from .builders import prune_nm, tiny_unet


def _unet16(seed=0):
    return tiny_unet(seed, block_out_channels=(16, 32))


@pytest.fixture(scope="module")
def ddpm_24():
    from maskpro_eval.checkpoints.architecture import build_ddpm_cifar10_unet
    torch.manual_seed(0)
    u = build_ddpm_cifar10_unet().eval()
    prune_nm(u)
    return u


def test_eligibility_matches_analyze_sparsity_layer_by_layer():
    u = _unet16()
    prune_nm(u)
    rep = analyze_sparsity(u, 2, 4)
    table = eligibility_table(u, report=rep)
    assert [r["name"] for r in table["layers"]] == [l.name for l in rep.layers]
    for row, layer in zip(table["layers"], rep.layers):
        assert row["eligible"] == layer.eligible, row
        assert not row["eligible"] or row["structural"], row
        if row["kind"] == "conv3x3":
            assert not row["structural"] and "3x3" in row["reason"]
    assert any(r["eligible"] and r["kind"] == "linear" for r in table["layers"])


def test_dense_weights_are_structural_but_not_eligible():
    u = _unet16()
    table = eligibility_table(u)
    assert table["eligible_layers"] == 0 and table["eligible_share"] == 0.0
    assert any(r["structural"] for r in table["layers"])
    assert all("2:4" in r["reason"] for r in table["layers"] if r["structural"])


def test_other_patterns_are_never_eligible():
    u = _unet16()
    prune_nm(u, 1, 4)
    table = eligibility_table(u, 1, 4)
    assert table["eligible_layers"] == 0 and not any(r["structural"] for r in table["layers"])


def test_ddpm_cifar10_eligible_share_and_amdahl_bound(ddpm_24):
    """Attention Linears and 1x1 convs only: ~9.5% of the FLOPs, so a perfect 2x gives ~1.05x end to end."""
    t = eligibility_table(ddpm_24)
    kinds = {}
    for r in t["layers"]:
        if r["eligible"]:
            kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    assert kinds == {"linear": 24, "conv1x1": 13}
    assert t["eligible_share"] == pytest.approx(0.0947, abs=0.001)
    assert t["amdahl_bound_2x"] == pytest.approx(1.0497, abs=0.001)
    assert t["macs_total"] == t["attention_macs"] + sum(r["macs"] for r in t["layers"])


def test_flops_per_image_step_of_ddpm_cifar10(ddpm_24):
    from maskpro_eval.analysis.flops import physical_limit, unet_flops_per_image_step
    from maskpro_eval.analysis.macs import layer_macs
    f = unet_flops_per_image_step(ddpm_24)
    assert f["weight_macs"] == sum(layer_macs(ddpm_24).values())
    assert f["flops"] == 2 * (f["weight_macs"] + f["attention_macs"])
    assert 12.0e9 < f["flops"] < 12.6e9
    assert (f["weight_macs"], f["attention_macs"]) == (6_053_953_536, 167_903_232)  # 12.44 GFLOP
    assert f["conv3x3_macs"] / f["macs"] == pytest.approx(0.878, abs=0.01)
    lim = physical_limit(f["flops"], 100, 50_000, 790.0)
    assert lim["seconds"] == pytest.approx(f["flops"] * 5e6 / 790e12)


def test_amdahl_bound():
    assert amdahl_bound(0.0) == 1.0
    assert amdahl_bound(1.0) == 2.0
    assert amdahl_bound(0.1, 2.0) == pytest.approx(1 / 0.95)


def test_conv1x1_as_matmul_equals_the_convolution():
    conv = torch.nn.Conv2d(32, 48, 1)
    x = torch.randn(3, 32, 5, 7)
    with torch.no_grad():
        y = Conv1x1AsLinear(conv)(x)
        ref = conv(x)
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    assert layer_kind(conv) == "conv1x1" and layer_kind(torch.nn.Conv2d(4, 4, 3)) == "conv3x3"
    assert layer_kind(torch.nn.Conv2d(4, 4, 1, stride=2)) == "conv_other"


def test_sparse_kernels_report_why_they_cannot_run_here(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    reason = sparse24_available()
    assert reason and "no CUDA device" in reason
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert "compute capability 7.x" in sparse24_available()
