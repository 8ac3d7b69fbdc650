"""The one-pass GroupNorm kernel (sampling.group_norm): the interpreter cases in a fresh process, what a machine
without CUDA is told, and on a GPU the DDPM CIFAR-10 UNet patched, compiled and sampled."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import run_in_triton_interpreter, tiny_unet

pytestmark = pytest.mark.unit

pytest.importorskip("triton", reason="pip install triton (test extra)")

CASES = Path(__file__).with_name("group_norm_cases.py")


def test_group_norm_kernel_equals_pytorch_through_the_triton_interpreter():
    """tests/group_norm_cases.py under TRITON_INTERPRET=1 (which must be set before triton is imported)."""
    run_in_triton_interpreter(CASES)


def test_not_available_on_a_cpu_without_the_interpreter(monkeypatch):
    """The reason names the device and the interpreter; install, the sampler and a clash with --fused-resnet
    are refused."""
    from maskpro_eval.sampling import group_norm as gn
    from maskpro_eval.sampling.fast import FastDDIMSampler, FastSamplingError
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    why = gn.onepass_group_norm_unavailable("cpu")
    assert why and "not CUDA" in why and "TRITON_INTERPRET=1" in why
    unet = tiny_unet()
    with pytest.raises(gn.GroupNormKernelError, match="not CUDA"):
        gn.install_onepass_group_norm(unet)
    with pytest.raises(gn.GroupNormKernelError, match="not CUDA"):
        FastDDIMSampler(unet, steps=2, batch_size=2, dtype="float32", device="cpu", onepass_group_norm=True)
    with pytest.raises(FastSamplingError, match="choose one"):
        FastDDIMSampler(unet, steps=2, batch_size=2, dtype="float32", device="cpu", onepass_group_norm=True,
                        fused_resnet=True)


def test_onepass_group_norm_is_part_of_the_full_tier_protocol_and_store_key(tmp_path):
    from maskpro_eval.metrics.quality import FullSettings
    from maskpro_eval.sampling.config import SamplingConfig

    def settings(on):
        return FullSettings(sampling=SamplingConfig(backend="fast", dtype="float16", onepass_group_norm=on),
                            samples_dir=str(tmp_path))
    assert settings(True).protocol()["onepass_group_norm"] is True
    assert "onepass_group_norm" not in settings(False).protocol()
    assert settings(True).sampling_config(0).protocol_dict() != settings(False).sampling_config(0).protocol_dict()


def test_launch_configuration_covers_whole_groups():
    from maskpro_eval.sampling.group_norm import GroupNormKernelError, group_norm_config
    c = group_norm_config(128, 32, 1024)          # the DDPM CIFAR-10 UNet's first level: 64 channels, 4 chunks
    assert (c["cpg"], c["gpp"], c["cp"], c["block_p"], c["one_pass"], c["num_warps"]) == (4, 16, 64, 256, False, 8)
    c = group_norm_config(256, 32, 64)            # 8x8: 16 channels, one pass
    assert (c["gpp"], c["cp"], c["block_p"], c["one_pass"]) == (2, 16, 64, True)
    c = group_norm_config(384, 32, 1024)          # group size 12: 6 groups in a 128-lane channel tile
    assert (c["gpp"], c["cp"], c["one_pass"]) == (6, 128, False) and c["block_p"] * c["cp"] <= 16384
    assert group_norm_config(384, 32, 64)["one_pass"]
    assert group_norm_config(64, 1, 4096)["gpp"] == 1   # one group of 64 channels
    with pytest.raises(GroupNormKernelError, match="do not split"):
        group_norm_config(30, 4, 16)


def _cuda_or_skip():
    from maskpro_eval.runtime.timing import cuda_skip_reason
    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())


@pytest.mark.gpu
def test_on_cuda_every_group_norm_shape_of_ddpm_cifar10_matches_pytorch_and_compiles():
    """float16, B=64, channels-last: the kernel's error against float64 at most PyTorch's own float16 error
    plus an fp16 ulp, eager and inside torch.compile (the triton_op is traced, no graph break)."""
    _cuda_or_skip()
    import torch
    import torch.nn.functional as F

    from benchmarks.group_norm import gn_shapes
    from maskpro_eval.checkpoints.architecture import build_ddpm_cifar10_unet
    from maskpro_eval.sampling import group_norm as gn
    unet = build_ddpm_cifar10_unet().cuda().half().eval()
    shapes = gn_shapes(unet, "cuda", torch.float16)
    assert len(shapes) >= 8, shapes

    def step(x, add, w, b, groups):
        return gn.group_norm_act(x, groups, w, b, 1e-5, add=add, silu=True)
    bad = []
    for c, groups, h, w in shapes:
        torch._dynamo.reset()   # one compilation per shape (more shapes than dynamo's recompile limit)
        compiled = torch.compile(step, fullgraph=True, dynamic=False)
        g = torch.Generator(device="cpu").manual_seed(c + h)
        x = (torch.randn(64, c, h, w, generator=g) * 2 + 1).cuda().half().contiguous(memory_format=torch.channels_last)
        add = torch.randn(64, c, generator=g).cuda().half()
        wt, bs = (torch.rand(c, generator=g) + 0.5).cuda().half(), torch.randn(c, generator=g).cuda().half()
        ref = F.silu(F.group_norm(x.double() + add.double()[:, :, None, None], groups, wt.double(), bs.double(), 1e-5))
        e_torch = float((F.silu(F.group_norm(x + add[:, :, None, None], groups, wt, bs, 1e-5)).double() - ref).abs().max())
        for name, y in (("eager", step(x, add, wt, bs, groups)), ("compiled", compiled(x, add, wt, bs, groups))):
            e = float((y.double() - ref).abs().max())
            if not (e <= e_torch + 2e-3 and y.stride() == x.stride()):
                bad.append(f"{c}@{h}x{w} {name}: {e:.3g} vs torch {e_torch:.3g}")
    assert not bad, bad


@pytest.mark.gpu
def test_on_cuda_the_patched_ddpm_cifar10_unet_and_the_fast_sampler_agree_with_the_unpatched_ones():
    """install_onepass_group_norm swaps all 22 resnets and the 7 other GroupNorms of the DDPM CIFAR-10 UNet
    (fp16) within its tolerance; the compiled fast sampler's images of the trained demo model are as close to
    its float32 images with the kernel as without it."""
    _cuda_or_skip()
    import numpy as np
    import torch
    from diffusers import UNet2DModel

    from maskpro_eval.checkpoints.architecture import build_ddpm_cifar10_unet
    from maskpro_eval.checkpoints.zoo import zoo_model_path
    from maskpro_eval.sampling import group_norm as gn
    from maskpro_eval.sampling.fast import FastDDIMSampler
    torch.manual_seed(0)
    unet = build_ddpm_cifar10_unet().cuda().half().eval().requires_grad_(False)
    rep = gn.install_onepass_group_norm(unet, probe_batch=8)
    assert not rep["kept"] and sum(n.endswith(tuple(f"resnets.{i}" for i in range(3))) for n in rep["swapped"]) == 22
    assert rep["check_rel_error"] <= gn.TOLERANCE[torch.float16]

    demo = UNet2DModel.from_pretrained(zoo_model_path("dense"), subfolder="unet").eval()
    kw = dict(steps=20, batch_size=64, device="cuda", seed=3)
    ref = FastDDIMSampler(demo, dtype="float32", allow_tf32=False, **kw).images(64).astype(int)
    half = FastDDIMSampler(demo, dtype="float16", compile=True, **kw).images(64).astype(int)
    fast = FastDDIMSampler(demo, dtype="float16", compile=True, onepass_group_norm=True, **kw)
    assert fast.group_norm_report["swapped"] and not fast.group_norm_report["kept"]
    got = fast.images(64).astype(int)
    err_half, err_gn = np.abs(half - ref).mean(), np.abs(got - ref).mean()
    assert err_gn <= 1.5 * err_half + 0.25, (err_gn, err_half)
