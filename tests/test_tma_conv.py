"""The TMA implicit-GEMM 3x3 convolution (sampling.tma_conv): the interpreter cases in a fresh process, what a
machine without a Hopper GPU is told, and on a GPU every 3x3 shape of DDPM CIFAR-10 and the compiled sampler."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import half_precision_on_cpu_ok, run_in_triton_interpreter, tiny_unet

pytestmark = pytest.mark.unit

pytest.importorskip("triton", reason="pip install triton (test extra)")

CASES = Path(__file__).with_name("tma_conv_cases.py")


def test_tma_conv_equals_conv2d_through_the_triton_interpreter():
    """tests/tma_conv_cases.py under TRITON_INTERPRET=1 (which must be set before triton is imported)."""
    run_in_triton_interpreter(CASES)


@half_precision_on_cpu_ok
def test_not_available_on_a_cpu_without_the_interpreter(monkeypatch):
    """The reason names the device and the interpreter; install and the sampler refuse; the sampler refuses it
    together with the kernels that call the convolutions themselves."""
    from maskpro_eval.sampling import tma_conv as tc
    from maskpro_eval.sampling.fast import FastDDIMSampler, FastSamplingError
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    why = tc.tma_conv_unavailable("cpu")
    assert why and "not CUDA" in why and "TRITON_INTERPRET=1" in why
    unet = tiny_unet()
    with pytest.raises(tc.TmaConvError, match="not CUDA"):
        tc.install_tma_conv(unet)
    with pytest.raises(tc.TmaConvError, match="not CUDA"):
        FastDDIMSampler(unet, steps=2, batch_size=2, dtype="float16", device="cpu", tma_conv=True)
    for other in ("fused_resnet", "onepass_group_norm"):
        with pytest.raises(FastSamplingError, match="choose one"):
            FastDDIMSampler(unet, steps=2, batch_size=2, dtype="float16", device="cpu", tma_conv=True,
                            **{other: True})


def test_default_configuration_and_box():
    from maskpro_eval.sampling.tma_conv import TmaConvConfig, _box, tma_conv_config
    assert tma_conv_config(128, 128) == TmaConvConfig(256, 128, 64, 8, 3)
    assert tma_conv_config(256, 256).bn == 128
    assert _box(TmaConvConfig(128), 32, 32) == (1, 4, 32)    # 4 whole rows of one sample
    assert _box(TmaConvConfig(128), 8, 8) == (2, 8, 8)       # 2 whole samples
    assert _box(TmaConvConfig(128), 4, 4) == (8, 4, 4)
    assert _box(TmaConvConfig(64), 5, 7) == (1, 8, 8)        # padded to powers of two, the rest clipped by TMA


def _cuda_hopper_or_skip():
    from maskpro_eval.runtime.timing import cuda_skip_reason
    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    from maskpro_eval.sampling.tma_conv import tma_conv_unavailable
    why = tma_conv_unavailable("cuda")
    if why:
        pytest.skip(why)


@pytest.mark.gpu
def test_on_cuda_every_3x3_shape_of_ddpm_cifar10_matches_cudnn_and_compiles():
    """float16, B=64: the padded kernel's error against a float64 convolution at most cuDNN's own float16 error
    plus an fp16 ulp of the output scale, at the default configuration and after the timed search, eager and as
    a custom op inside torch.compile; the 4-D kernel is refused on CUDA without experimental=True."""
    _cuda_hopper_or_skip()
    import torch
    import torch.nn.functional as F

    from benchmarks.tma_conv import conv_shapes
    from maskpro_eval.checkpoints.architecture import build_ddpm_cifar10_unet
    from maskpro_eval.sampling import tma_conv as tc
    unet = build_ddpm_cifar10_unet().cuda().half().eval()
    shapes = conv_shapes(unet, "cuda", torch.float16)
    assert len(shapes) >= 8, shapes
    bad = []
    for c_in, c_out, h, w in shapes:
        torch._dynamo.reset()
        g = torch.Generator(device="cpu").manual_seed(c_in + h)
        x = torch.randn(64, c_in, h, w, generator=g).cuda().half().contiguous(memory_format=torch.channels_last)
        wt = (torch.randn(c_out, c_in, 3, 3, generator=g) / (3 * c_in ** 0.5)).cuda().half()
        b = torch.randn(c_out, generator=g).cuda().half()
        conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1).cuda().half()
        conv.weight.data.copy_(wt)
        conv.bias.data.copy_(b)
        mod = tc.TmaConv2d(conv)
        ref = F.conv2d(x.double(), wt.double(), b.double(), padding=1)
        ulp = float(ref.abs().max()) * 2.0 ** -11
        e_cudnn = float((F.conv2d(x, wt, b, padding=1).double() - ref).abs().max())
        compiled = torch.compile(mod, fullgraph=True, dynamic=False)
        with torch.no_grad():
            outs = (("default", tc.conv3x3_tma_padded(x, tc.pack_weight(wt), b)), ("tuned+op", mod(x)),
                    ("tuned+op again", mod(x)), ("compiled", compiled(x)))
        for name, y in outs:
            e = float((y.double() - ref).abs().max())
            if not (e <= e_cudnn + ulp and y.is_contiguous(memory_format=torch.channels_last)):
                bad.append(f"{c_in}->{c_out}@{h}x{w} {name}: {e:.3g} vs cuDNN {e_cudnn:.3g}")
    with pytest.raises(tc.TmaConvError, match="experimental=True"):
        tc.conv3x3_tma(x, tc.pack_weight(wt), b)
    assert not bad, bad


@pytest.mark.gpu
def test_on_cuda_the_fast_sampler_with_tma_conv_agrees_with_cudnn():
    """The compiled fp16 sampler of the trained demo model with tma_conv: every eligible 3x3 convolution replaced,
    the images as close to the float32 images as the cuDNN route's."""
    _cuda_hopper_or_skip()
    import numpy as np
    from diffusers import UNet2DModel

    from maskpro_eval.checkpoints.zoo import zoo_model_path
    from maskpro_eval.sampling.fast import FastDDIMSampler
    demo = UNet2DModel.from_pretrained(zoo_model_path("dense"), subfolder="unet").eval()
    kw = dict(steps=20, batch_size=64, device="cuda", seed=3)
    ref = FastDDIMSampler(demo, dtype="float32", allow_tf32=False, **kw).images(64).astype(int)
    half = FastDDIMSampler(demo, dtype="float16", compile=True, **kw).images(64).astype(int)
    fast = FastDDIMSampler(demo, dtype="float16", compile=True, tma_conv=True, **kw)
    rep = fast.tma_conv_report
    assert rep["replaced"] and set(rep["kept"]) >= {"conv_in", "conv_out"}
    got = fast.images(64).astype(int)
    err_half, err_tc = np.abs(half - ref).mean(), np.abs(got - ref).mean()
    assert err_tc <= 1.5 * err_half + 0.25, (err_tc, err_half)
