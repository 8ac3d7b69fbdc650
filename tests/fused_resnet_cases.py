"""Fused ResnetBlock2D (Triton implicit-GEMM 3x3 conv with GroupNorm/SiLU prologue and bias/time/residual/
statistics epilogue) against the unfused PyTorch modules, on the CPU through Triton's interpreter.

Not collected by the suite itself: Triton's interpreter must be on before ``triton`` is first imported
(``triton.language`` builds its helpers then), so ``tests/test_fused_resnet.py`` runs this file in a fresh
process with ``TRITON_INTERPRET=1``. By hand: ``TRITON_INTERPRET=1 pytest tests/fused_resnet_cases.py``."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.unit

pytest.importorskip("triton", reason="pip install triton (test extra)")

from maskpro_eval.sampling import fused_resnet as fr  # noqa: E402
from maskpro_eval.sampling.triton_loader import interpret  # noqa: E402


if not interpret():
    pytest.exit("run with TRITON_INTERPRET=1 set before Python starts (tests/test_fused_resnet.py does)", returncode=3)


def _ref_conv(x, weight, bias, scale_shift=None, silu=False, temb=None, residual=None, osf=1.0):
    """The unfused computation in float64."""
    a = x.double()
    if scale_shift is not None:
        sc, sh = scale_shift
        a = a * sc.double()[:, :, None, None] + sh.double()[:, :, None, None]
    if silu:
        a = F.silu(a)
    y = F.conv2d(a, weight.double(), bias.double(), padding=1)
    if temb is not None:
        y = y + temb.double()[:, :, None, None]
    if residual is not None:
        y = (residual.double() + y) / osf
    return y


def _rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("cin,cout,hw,fmt", [(16, 32, (4, 4), "nchw"), (48, 40, (8, 8), "cl"),
                                              (32, 64, (8, 16), "nchw"), (24, 16, (32, 32), "cl")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_conv3x3_with_every_fused_stage_equals_the_unfused_ops(cin, cout, hw, fmt, dtype):
    g = torch.Generator().manual_seed(cin * 1000 + cout)
    b, (h, w) = 3, hw
    x = torch.randn(b, cin, h, w, generator=g).to(dtype)
    if fmt == "cl":
        x = x.contiguous(memory_format=torch.channels_last)
    weight = (torch.randn(cout, cin, 3, 3, generator=g) * 0.1).to(dtype)
    bias = torch.randn(cout, generator=g).to(dtype)
    sc = torch.rand(b, cin, generator=g) + 0.5
    sh = torch.randn(b, cin, generator=g)
    temb = torch.randn(1, cout, generator=g).to(dtype).expand(b, cout)  # batch stride 0, as the time table
    res = torch.randn(b, cout, h, w, generator=g).to(dtype)
    out = torch.full((b, cout, h, w), float("nan"), dtype=dtype)  # poisoned: every element must be written
    groups = cout // 8 if cout % 8 == 0 else cout // 4
    got, stats = fr.conv3x3(x, fr.pack_conv3x3_weight(weight), bias, scale_shift=(sc, sh), silu=True, temb=temb,
                            residual=res, output_scale_factor=1.5, stats_groups=groups, out=out)
    ref = _ref_conv(x, weight, bias, (sc, sh), True, temb, res, 1.5)
    assert torch.isfinite(got).all()
    tol = 1e-6 if dtype == torch.float32 else 2e-3
    assert _rel(got, ref) < tol
    # the next GroupNorm's sums, of the stored values
    v = got.double().reshape(b, groups, -1)
    want = torch.stack([v.sum(-1), (v * v).sum(-1)], -1)
    assert torch.allclose(stats.double(), want, rtol=1e-5, atol=1e-3)


def test_conv3x3_plain_and_partial_fusions_equal_the_unfused_ops():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 20, 8, 8, generator=g)
    weight, bias = torch.randn(24, 20, 3, 3, generator=g) * 0.1, torch.randn(24, generator=g)
    pw = fr.pack_conv3x3_weight(weight)
    plain, none = fr.conv3x3(x, pw, bias)
    assert none is None and _rel(plain, _ref_conv(x, weight, bias)) < 1e-6
    assert _rel(plain, F.conv2d(x, weight, bias, padding=1)) < 1e-6
    s, _ = fr.conv3x3(x, pw, bias, silu=True)
    assert _rel(s, _ref_conv(x, weight, bias, silu=True)) < 1e-6
    temb = torch.randn(2, 24, generator=g)
    t, _ = fr.conv3x3(x, pw, bias, temb=temb)
    assert _rel(t, _ref_conv(x, weight, bias, temb=temb)) < 1e-6


def test_the_padding_halo_is_zero_after_the_transform_not_before():
    """A zero-padded *input* becomes silu(shift) != 0 under the prologue; the kernel must re-zero the halo."""
    x = torch.zeros(1, 16, 4, 4)
    weight = torch.ones(16, 16, 3, 3)
    bias = torch.zeros(16)
    sc, sh = torch.ones(1, 16), torch.full((1, 16), 2.0)  # every in-bounds input -> silu(2)
    got, _ = fr.conv3x3(x, fr.pack_conv3x3_weight(weight), bias, scale_shift=(sc, sh), silu=True)
    per_tap = 16 * float(F.silu(torch.tensor(2.0)))
    assert got[0, 0, 0, 0].item() == pytest.approx(4 * per_tap, rel=1e-6)   # corner: 4 of 9 taps inside
    assert got[0, 0, 1, 1].item() == pytest.approx(9 * per_tap, rel=1e-6)   # interior: all 9


@pytest.mark.parametrize("c, groups, hw, fmt", [(24, 2, (5, 7), torch.contiguous_format),   # group size 12
                                                  (48, 4, (4, 4), torch.channels_last),
                                                  (40, 8, (3, 3), torch.contiguous_format)])
def test_group_stats_any_group_size_layout_and_pixel_count(c, groups, hw, fmt):
    g = torch.Generator().manual_seed(4)
    x = (torch.randn(2, c, *hw, generator=g) * 3 - 1).half().contiguous(memory_format=fmt)
    v = x.double().reshape(2, groups, -1)
    want = torch.stack([v.sum(-1), (v * v).sum(-1)], -1)
    assert torch.allclose(fr.group_stats(x, groups).double(), want, rtol=1e-5)


def test_group_stats_and_scale_shift_equal_group_norm():
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(3, 32, 8, 8, generator=g) * 2 + 0.5).contiguous(memory_format=torch.channels_last)
    gn = torch.nn.GroupNorm(8, 32, eps=1e-6)
    with torch.no_grad():
        gn.weight.normal_(1, 0.2, generator=g)
        gn.bias.normal_(0, 0.2, generator=g)
    st = fr.group_stats(x, 8)
    v = x.double().reshape(3, 8, -1)
    assert torch.allclose(st.double(), torch.stack([v.sum(-1), (v * v).sum(-1)], -1), rtol=1e-5)
    sc, sh = fr.norm_scale_shift(st, 8 * 8 * 4, gn.weight, gn.bias, gn.eps, 32)
    with torch.no_grad():
        assert _rel(x * sc[:, :, None, None] + sh[:, :, None, None], gn(x)) < 1e-5


def _resnet(cin, cout, dtype=torch.float32, seed=0, **kw):
    from diffusers.models.resnet import ResnetBlock2D
    torch.manual_seed(seed)
    blk = ResnetBlock2D(in_channels=cin, out_channels=cout, temb_channels=32, groups=8, eps=1e-6, **kw).eval()
    with torch.no_grad():
        for p in blk.parameters():
            p.normal_(0, 0.2)
    return blk.to(dtype)


# identity and 1x1-conv shortcut; 48 channels in 8 groups: group size 6 (the demo zoo's widest level)
@pytest.mark.parametrize("cin,cout", [(32, 32), (32, 64), (48, 48)])
def test_fused_block_equals_resnet_block2d(cin, cout):
    blk = _resnet(cin, cout, output_scale_factor=2.0)
    g = torch.Generator().manual_seed(1)
    x, temb = torch.randn(2, cin, 8, 8, generator=g), torch.randn(2, 32, generator=g)
    with torch.no_grad():
        ref = blk(x, temb)
        got = fr.FusedResnetBlock2D(blk)(x, temb)
        ref64 = blk.double()(x.double(), temb.double())
    assert _rel(got, ref) < 1e-5
    # float16: the fused block is as close to the float64 truth as PyTorch's own float16 block
    blk16 = _resnet(cin, cout, torch.float16, output_scale_factor=2.0)
    with torch.no_grad():
        got16 = fr.FusedResnetBlock2D(blk16)(x.half(), temb.half())
        ref16 = blk16(x.half(), temb.half())
    assert _rel(got16, ref64) < max(2 * _rel(ref16, ref64), 2e-3)


def test_unsupported_blocks_are_named_with_the_reason():
    with pytest.raises(fr.FusedResnetError, match="up/down-sampling"):
        fr.FusedResnetBlock2D(_resnet(32, 32, down=True))
    with pytest.raises(fr.FusedResnetError, match="scale_shift"):
        fr.FusedResnetBlock2D(_resnet(32, 32, time_embedding_norm="scale_shift"))
    with pytest.raises(fr.FusedResnetError, match="multiple of 16"):
        fr.conv3x3(torch.randn(1, 16, 3, 3), torch.randn(144, 16), torch.zeros(16))


def test_install_on_a_ddpm_style_unet_fuses_every_resnet_and_matches(tiny_ddpm_unet):
    unet = tiny_ddpm_unet
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 3, 16, 16, generator=g)
    t = torch.tensor([10, 900])
    with torch.no_grad():
        ref = unet(x, t).sample
    n_resnets = sum(type(m).__name__ == "ResnetBlock2D" for m in unet.modules())
    rep = fr.install_fused_resnets(unet)
    n_fused = sum(isinstance(m, fr.FusedResnetBlock2D) for m in unet.modules())
    assert n_resnets == 8 and n_fused == len(rep["fused"]) == 8 and rep["kept"] == {}
    # idempotent: nothing left to swap (check=False: its probe would run the fused UNet twice through the
    # interpreter, ~20 s, for a comparison of the patched model with itself)
    assert fr.install_fused_resnets(unet, check=False)["fused"] == []
    assert rep["check_rel_error"] < 1e-5
    with torch.no_grad():
        assert _rel(unet(x, t).sample, ref) < 1e-5


def test_install_refuses_a_wrong_kernel_and_leaves_the_model_unpatched(tiny_ddpm_unet, monkeypatch):
    unet = tiny_ddpm_unet
    real = fr.conv3x3

    def off_by_a_bit(*a, **kw):
        out, st = real(*a, **kw)
        return out * 1.01, st
    monkeypatch.setattr(fr, "conv3x3", off_by_a_bit)
    with pytest.raises(fr.FusedResnetError, match="differs from the unpatched UNet"):
        fr.install_fused_resnets(unet)
    assert not any(isinstance(m, fr.FusedResnetBlock2D) for m in unet.modules())


@pytest.fixture
def tiny_ddpm_unet():
    """DDPM CIFAR-10 block types (attention at one resolution), tiny widths, random weights."""
    from diffusers import UNet2DModel
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(16, 32),
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), layers_per_block=1, norm_num_groups=8,
                       attention_head_dim=8).eval()
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return unet


def test_fast_sampler_installs_fused_resnets_on_a_copy_and_reports_them(tiny_ddpm_unet):
    """fused_resnet=True (SamplingConfig.fused_resnet) through FastDDIMSampler: installed on the sampler's copy (checked there),
    reported in ``fused_report`` and the protocol. (Images through the interpreter take minutes: the
    pixel comparison runs on the GPU, tests/test_fused_resnet.py.)"""
    import time

    from maskpro_eval.sampling.fast import FastDDIMSampler
    kw = dict(steps=2, batch_size=2, dtype="float32", device="cpu", seed=5)
    t0 = time.perf_counter()
    fused = FastDDIMSampler(tiny_ddpm_unet, fused_resnet=True, **kw)
    print(f"install {time.perf_counter() - t0:.1f} s")
    assert len(fused.fused_report["fused"]) == 8 and fused.fused_report["check_rel_error"] < 1e-5
    assert fused.protocol()["fused_resnet"] is True
    assert "fused_resnet" not in FastDDIMSampler(tiny_ddpm_unet, **kw).protocol()
    assert not any(isinstance(m, fr.FusedResnetBlock2D) for m in tiny_ddpm_unet.modules())  # a copy was patched
    assert sum(isinstance(m, fr.FusedResnetBlock2D) for m in fused.model.modules()) == 8
