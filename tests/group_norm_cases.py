"""One-pass GroupNorm kernel (sampling.group_norm) against PyTorch's GroupNorm, on the CPU through Triton's
interpreter.

Not collected by the suite itself: Triton's interpreter must be on before ``triton`` is first imported, so
``tests/test_group_norm.py`` runs this file in a fresh process with ``TRITON_INTERPRET=1``. By hand:
``TRITON_INTERPRET=1 pytest tests/group_norm_cases.py``."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.unit

pytest.importorskip("triton", reason="pip install triton (test extra)")

from maskpro_eval.sampling import group_norm as gn  # noqa: E402
from maskpro_eval.sampling.triton_loader import interpret  # noqa: E402

if not interpret():
    pytest.exit("run with TRITON_INTERPRET=1 set before Python starts (tests/test_group_norm.py does)", returncode=3)


def _inputs(b, c, spatial, fmt, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(b, c, *spatial, generator=g) * 3 + 1.5).to(dtype)  # a mean far from 0: the variance must be centred
    if fmt == "cl":
        x = x.contiguous(memory_format=torch.channels_last)
    return (x, torch.randn(b, c, generator=g).to(dtype), (torch.rand(c, generator=g) + 0.5).to(dtype),
            torch.randn(c, generator=g).to(dtype))


def _same_layout(a, b) -> bool:
    return all(sa == sb for sa, sb, n in zip(a.stride(), b.stride(), a.shape) if n > 1)


def _torch(x, groups, w, b, eps, add=None, silu=False):
    """The unfused ops in float64 (an independent spelling: F.group_norm)."""
    v = x.double() + (0 if add is None else add.double()[(...,) + (None,) * (x.dim() - 2)])
    y = F.group_norm(v, groups, None if w is None else w.double(), None if b is None else b.double(), eps)
    return F.silu(y) if silu else y


# group sizes 4, 8 (the DDPM CIFAR-10 UNet), 12 (its 384-channel concatenations), 6, 1; pixel counts a
# power of two, not one (5x7), and larger than one program's tile (64x64 x 16 channels: the chunked path)
@pytest.mark.parametrize("b,c,groups,spatial,fmt", [(3, 128, 32, (8, 8), "cl"), (2, 256, 32, (4, 4), "cl"),
                                                    (2, 384, 32, (4, 4), "cl"), (2, 48, 8, (5, 7), "nchw"),
                                                    (2, 16, 16, (3, 3), "cl"), (1, 32, 2, (64, 64), "cl")])
@pytest.mark.parametrize("silu,with_add", [(True, True), (False, False)])
def test_group_norm_act_equals_group_norm_plus_silu(b, c, groups, spatial, fmt, silu, with_add):
    x, add, w, bias = _inputs(b, c, spatial, fmt, torch.float32, c + spatial[0])
    add = add if with_add else None
    y = gn.group_norm_act(x, groups, w, bias, 1e-6, add=add, silu=silu)
    ref = _torch(x, groups, w, bias, 1e-6, add, silu)
    # a 4-D output is channels-last (an NCHW input is copied to it first: the kernel reads a pixel's channels)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert _same_layout(y, x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x)
    assert float((y.double() - ref).abs().max()) < 2e-5
    # the PyTorch spelling of the module agrees with the same float64 reference
    assert float((gn.group_norm_act_reference(x, groups, w, bias, 1e-6, add=add, silu=silu).double() - ref)
                 .abs().max()) < 2e-5


def test_the_chunked_path_equals_the_one_pass_path_and_a_three_dimensional_input_works():
    x, add, w, bias = _inputs(2, 64, (6, 10), "cl", torch.float32, 5)
    one = gn.group_norm_act(x, 16, w, bias, 1e-5, add=add, silu=True)
    chunked = gn.group_norm_act(x, 16, w, bias, 1e-5, add=add, silu=True, config=(16, 16, 2))  # 60 px in 4 chunks
    assert gn.group_norm_config(64, 16, 60, (16, 16, 2))["one_pass"] is False
    assert float((one - chunked).abs().max()) < 2e-6
    seq = x.reshape(2, 64, 60).transpose(1, 2)          # as diffusers' attention hands it over: (B, C, L) strided
    y3 = gn.group_norm_act(seq.transpose(1, 2), 16, w, bias, 1e-5)
    assert float((y3.double() - _torch(seq.transpose(1, 2), 16, w, bias, 1e-5)).abs().max()) < 2e-5


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_reduced_precision_input_keeps_its_dtype_and_float32_statistics(dtype):
    x, add, w, bias = _inputs(2, 64, (8, 8), "cl", dtype, 9)
    y = gn.group_norm_act(x, 16, w, bias, 1e-6, add=add, silu=True)
    assert y.dtype == dtype
    ref = _torch(x, 16, w, bias, 1e-6, add, True)
    ulp = 2 ** -10 if dtype == torch.float16 else 2 ** -7
    assert float(((y.double() - ref).abs() / ref.abs().clamp_min(1.0)).max()) <= ulp


def test_every_output_element_is_written_and_a_constant_group_normalises_to_its_bias():
    x = torch.full((2, 32, 4, 4), 7.0).contiguous(memory_format=torch.channels_last)
    bias = torch.linspace(-1, 1, 32)
    y = gn.group_norm_act(x, 8, torch.ones(32), bias, 1e-5)
    assert torch.equal(y, bias[None, :, None, None].expand_as(y).contiguous(memory_format=torch.channels_last))


def _tiny_unet(groups=8):
    from diffusers import UNet2DModel
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, block_out_channels=(32, 48), norm_num_groups=groups, layers_per_block=1,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D")).eval()
    with torch.no_grad():
        for p in unet.parameters():
            p.add_(torch.randn_like(p) * 0.05)   # non-trivial norms (weight != 1, bias != 0)
    return unet


def test_install_swaps_every_resnet_and_group_norm_and_keeps_the_output():
    """Every ResnetBlock2D, the attention GroupNorms and conv_norm_out (+ conv_act) of a UNet2DModel with
    skip concatenations (group sizes 4, 6, 10, 12); checked against the unpatched model inside install and here."""
    unet = _tiny_unet()
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 700])
    with torch.no_grad():
        ref = unet(x, t).sample
    patched = copy.deepcopy(unet)
    rep = gn.install_onepass_group_norm(patched)
    assert rep["kept"] == {} and rep["check_rel_error"] <= gn.TOLERANCE[torch.float32]
    kinds = {type(m).__name__ for m in patched.modules()}
    assert "GroupNormResnetBlock2D" in kinds and "GroupNormAct" in kinds
    assert type(patched.conv_act).__name__ == "Identity" and patched.conv_norm_out.silu
    assert sum(type(m).__name__ == "GroupNormResnetBlock2D" for m in patched.modules()) == \
        sum(type(m).__name__ == "ResnetBlock2D" for m in unet.modules())
    assert not [n for n, m in patched.named_modules() if type(m) is torch.nn.GroupNorm
                and not (n.endswith(".norm") or ".inner." in n)], "a GroupNorm left unswapped"
    with torch.no_grad():
        got = patched(x, t).sample
    assert float((got - ref).abs().max() / ref.abs().max()) < 1e-5


def test_install_refuses_and_restores_when_the_check_fails(monkeypatch):
    unet = _tiny_unet()
    before = [type(m) for m in unet.modules()]
    monkeypatch.setitem(gn.TOLERANCE, torch.float32, 0.0)
    monkeypatch.setattr(gn, "group_norm_act", lambda x, *a, **k: gn.group_norm_act_reference(x, *a, **k) * 1.01)
    with pytest.raises(gn.GroupNormKernelError, match="differs from the unpatched UNet"):
        gn.install_onepass_group_norm(unet)
    assert [type(m) for m in unet.modules()] == before


def test_fast_sampler_installs_the_kernel_on_its_copy_and_matches_the_unpatched_sampler():
    """onepass_group_norm=True through FastDDIMSampler: installed (and checked) on the sampler's copy, the
    caller's model untouched, the patched copy's UNet call equal to the plain sampler's. (Whole images would
    take ~90 s here: a CPU sampler calls the UNet on 40-sample chunks; the GPU test samples them.)"""
    from maskpro_eval.sampling.fast import FastDDIMSampler
    unet = _tiny_unet()
    kw = dict(steps=2, batch_size=2, dtype="float32", device="cpu", seed=1)
    plain = FastDDIMSampler(unet, **kw)
    fused = FastDDIMSampler(unet, onepass_group_norm=True, **kw)
    assert fused.group_norm_report["swapped"] and not fused.group_norm_report["kept"]
    assert fused.group_norm_report["check_rel_error"] <= gn.TOLERANCE[torch.float32]
    assert all(type(m).__name__ != "GroupNormResnetBlock2D" for m in unet.modules()), "the caller's model changed"
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([999, 999])
    with torch.no_grad():
        a, b = plain.model(x, t).sample, fused.model(x, t).sample
    assert float((a - b).abs().max() / a.abs().max()) < 1e-5
