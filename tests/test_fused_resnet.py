"""The fused ResnetBlock2D kernels (sampling.fused_resnet): the interpreter cases in a fresh process, and
what a machine without CUDA is told."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import run_in_triton_interpreter

pytestmark = pytest.mark.unit

pytest.importorskip("triton", reason="pip install triton (test extra)")

CASES = Path(__file__).with_name("fused_resnet_cases.py")


def test_fused_resnet_kernels_equal_the_unfused_modules_through_the_triton_interpreter():
    """tests/fused_resnet_cases.py under TRITON_INTERPRET=1 (which must be set before triton is imported)."""
    run_in_triton_interpreter(CASES)


def test_not_available_on_a_cpu_without_the_interpreter(monkeypatch):
    from maskpro_eval.sampling import fused_resnet as fr
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    why = fr.fused_resnet_unavailable("cpu")
    assert why and "not CUDA" in why and "TRITON_INTERPRET=1" in why
    from diffusers import UNet2DModel
    unet = UNet2DModel(sample_size=16, block_out_channels=(16, 32), norm_num_groups=8, layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    with pytest.raises(fr.FusedResnetError, match="not CUDA"):
        fr.install_fused_resnets(unet)


def test_the_fast_sampler_refuses_fused_resnets_on_a_cpu_with_the_reason(monkeypatch):
    from diffusers import UNet2DModel

    from maskpro_eval.sampling import fused_resnet as fr
    from maskpro_eval.sampling.fast import FastDDIMSampler
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    unet = UNet2DModel(sample_size=16, block_out_channels=(16, 32), norm_num_groups=8, layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    with pytest.raises(fr.FusedResnetError, match="not CUDA"):
        FastDDIMSampler(unet, steps=2, batch_size=2, dtype="float32", device="cpu", fused_resnet=True)


@pytest.mark.gpu
def test_fused_resnets_on_cuda_match_the_unfused_ddpm_cifar10_blocks():
    """On a GPU: every resnet of the DDPM CIFAR-10 architecture (random weights, fp16, B=8), fused vs a
    float64 run of the same block: the fused error at most 2x PyTorch's own fp16 error (plus 1e-4); then the
    whole UNet patched by install_fused_resnets within its fp16 tolerance."""
    from maskpro_eval.runtime.timing import cuda_skip_reason
    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    import copy

    import torch

    from benchmarks.fused_resnet import capture_resnet_inputs
    from maskpro_eval.checkpoints.architecture import build_ddpm_cifar10_unet
    from maskpro_eval.sampling import fused_resnet as fr
    torch.manual_seed(0)
    unet = build_ddpm_cifar10_unet().cuda().half().eval().requires_grad_(False)
    bad = []
    with torch.inference_mode():
        for name, (block, x, temb) in capture_resnet_inputs(unet, 8, torch.float16, "cuda").items():
            ref = copy.deepcopy(block).double()(x.double(), temb.double())
            e_torch = float((block(x, temb).double() - ref).norm() / ref.norm())
            e_fused = float((fr.FusedResnetBlock2D(block)(x, temb).double() - ref).norm() / ref.norm())
            if not e_fused <= 2 * e_torch + 1e-4:
                bad.append(f"{name}: fused {e_fused:.3g} vs torch {e_torch:.3g}")
    assert not bad, bad
    report = fr.install_fused_resnets(unet)
    assert len(report["fused"]) == 22 and not report["kept"], report
    assert report["check_rel_error"] <= fr.TOLERANCE[torch.float16]


@pytest.mark.gpu
def test_the_fast_sampler_with_fused_resnets_on_cuda_is_as_close_to_float32_as_cudnn_float16():
    """Images of the trained demo model, same x_T: the fused float16 path is no further from the float32 images
    than PyTorch's float16 path is. (Pixel identity with cuDNN's float16 images is not the criterion: on a
    random-weight DDPM CIFAR-10 UNet, 10 steps, H100, 2026-12-06, 75% of pixels differed by >= 1 level, max 40,
    while the fused blocks were closer to float64 than cuDNN's, 3-4e-4 vs 5-7e-4 relative.)"""
    from maskpro_eval.runtime.timing import cuda_skip_reason
    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    import numpy as np
    from diffusers import UNet2DModel

    from maskpro_eval.checkpoints.zoo import zoo_model_path
    from maskpro_eval.sampling.fast import FastDDIMSampler
    unet = UNet2DModel.from_pretrained(zoo_model_path("dense"), subfolder="unet").eval()
    kw = dict(steps=20, batch_size=64, device="cuda", seed=3)
    ref = FastDDIMSampler(unet, dtype="float32", allow_tf32=False, **kw).images(64).astype(int)
    half = FastDDIMSampler(unet, dtype="float16", **kw).images(64).astype(int)
    fused = FastDDIMSampler(unet, dtype="float16", fused_resnet=True, **kw)
    assert not fused.fused_report["kept"] and fused.fused_report["fused"]
    got = fused.images(64).astype(int)
    err_half, err_fused = np.abs(half - ref).mean(), np.abs(got - ref).mean()
    assert err_fused <= 1.5 * err_half + 0.25, (err_fused, err_half)


def test_the_python_api_passes_fused_resnet_on_and_a_cpu_refuses_it(monkeypatch, tmp_path):
    from maskpro_eval.api import MaskProEvaluator
    from maskpro_eval.sampling import fused_resnet as fr
    from maskpro_eval.sampling.config import SamplingError
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    ev = MaskProEvaluator("demo:dense", output_dir=tmp_path / "api")
    with pytest.raises(fr.FusedResnetError, match="not CUDA"):
        ev.generate_samples(num_samples=2, steps=2, batch_size=2, sampling_backend="fast", fused_resnet=True,
                            save_grid=False)
    with pytest.raises(SamplingError, match="needs backend='fast'"):
        ev.generate_samples(num_samples=2, steps=2, fused_resnet=True, save_grid=False)


def test_fused_resnet_is_part_of_the_full_tier_protocol_and_store_key(tmp_path):
    """The results say when the fused kernels made the samples, and their samples never share a store
    with cuDNN's (an end-to-end run on the CPU through the interpreter works but takes minutes: done by hand)."""
    from maskpro_eval.metrics.quality import FullSettings
    from maskpro_eval.sampling.config import SamplingConfig

    def settings(fused):
        return FullSettings(sampling=SamplingConfig(backend="fast", dtype="float16", fused_resnet=fused),
                            samples_dir=str(tmp_path))
    assert settings(True).protocol()["fused_resnet"] is True
    assert "fused_resnet" not in settings(False).protocol()
    assert settings(True).sampling_config(0).protocol_dict() != settings(False).sampling_config(0).protocol_dict()


def test_default_tiles_divide_every_supported_spatial_size():
    from maskpro_eval.sampling.fused_resnet import default_block
    assert default_block(1024, 128) == (64, 128, 32, 4, 3)     # the H100 sweep's best at 128->128@32x32
    assert default_block(256, 256) == (128, 256, 32, 8, 3)     # ... and at 256->256@16x16
    assert default_block(16, 256) == (16, 128, 32, 4, 3)
    for hw in (16, 48, 64, 112, 784, 1024, 4096):   # e.g. 28x28 = 784 = 16 x 49
        bm = default_block(hw, 64)[0]
        assert hw % bm == 0 and bm >= 16
