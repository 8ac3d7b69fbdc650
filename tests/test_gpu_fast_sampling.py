"""Fast sampling path on the CPU: bit-identical to sampling.generate in fp32, same noise rule, quantisation
identical to images.to_uint8, GPU-style FID statistics equal to the numpy ones, streaming features."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from maskpro_eval.metrics.fid import feature_statistics, frechet_distance
from maskpro_eval.sampling.fast import FastDDIMSampler, FastSamplingError, ddim_coefficients, quantize_uint8
from maskpro_eval.metrics.gpu_features import PixelBlockFeatures, feature_statistics_torch, fid_from_features_torch, sample_and_extract
from maskpro_eval.sampling.images import to_uint8
from maskpro_eval.sampling.config import SamplingConfig, make_scheduler
from maskpro_eval.sampling.standard import generate

from .builders import half_precision_on_cpu_ok, tiny_unet

pytestmark = [pytest.mark.usefixtures("one_torch_thread"),
              half_precision_on_cpu_ok]
STEPS = 4


@pytest.fixture(scope="module")
def unet():
    return tiny_unet()


@pytest.fixture(scope="module")
def reference(unet):
    """The standard path's samples 0..6 (seed 3), batch 4 (one full batch and a partial one)."""
    return generate(unet, SamplingConfig(num_inference_steps=STEPS, seed=3, batch_size=4), count=7, progress=False)


@pytest.mark.parametrize("batch,pad", [(4, False), (3, False), (1, False), (4, True), (8, True)])
def test_fp32_fast_path_equals_standard_path_bit_for_bit(unet, reference, batch, pad):
    s = FastDDIMSampler(unet, steps=STEPS, seed=3, batch_size=batch, dtype="float32", device="cpu",
                        pad_last_batch=pad)
    out = s.images(7)
    assert out.dtype == np.uint8 and out.shape == reference.shape
    np.testing.assert_array_equal(out, reference)


@pytest.mark.parametrize("streams", [2, 4])
def test_batch_split_over_streams_gives_the_same_images(unet, reference, streams):
    """``streams`` splits each batch into parts issued step by step (on a CPU one after the other): same samples,
    and the recorded protocol says so."""
    s = FastDDIMSampler(unet, steps=STEPS, seed=3, batch_size=4, dtype="float32", device="cpu", pad_last_batch=True,
                        streams=streams)
    np.testing.assert_array_equal(s.images(7), reference)
    assert s.protocol()["streams"] == streams
    assert s.stats["unet_calls"] == 2 * STEPS * streams  # two batches (7 padded to 8), one call per part and step


@pytest.mark.parametrize("kw,words", [(dict(streams=3), "divides the batch size 4"),
                                      (dict(streams=0), "positive integer"),
                                      (dict(streams=2, cuda_graph=True), "cuda_graph"),
                                      (dict(streams=2, time_table=True), "time_table")])
def test_bad_streams_are_refused_with_the_reason(unet, kw, words):
    with pytest.raises(FastSamplingError, match=words):
        FastDDIMSampler(unet, steps=STEPS, seed=3, batch_size=4, dtype="float32", device="cpu", **kw)


def test_any_subset_of_indices_gives_the_same_samples(unet, reference):
    s = FastDDIMSampler(unet, steps=STEPS, seed=3, batch_size=2, dtype="float32", device="cpu")
    np.testing.assert_array_equal(s.images(indices=[6, 2, 5]), reference[[6, 2, 5]])


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
def test_other_prediction_types_match_diffusers(unet, prediction_type):
    from maskpro_eval.checkpoints.architecture import DDPM_CIFAR10_SCHEDULER_CONFIG
    cfg = {**DDPM_CIFAR10_SCHEDULER_CONFIG, "prediction_type": prediction_type}
    ref = generate(unet, SamplingConfig(num_inference_steps=3, seed=1, batch_size=3), count=3,
                   scheduler_config=cfg, progress=False)
    out = FastDDIMSampler(unet, scheduler_config=cfg, steps=3, seed=1, batch_size=3, dtype="float32",
                          device="cpu").images(3)
    np.testing.assert_array_equal(out, ref)


def test_thresholding_is_refused_with_the_fix(unet):
    from maskpro_eval.checkpoints.architecture import DDPM_CIFAR10_SCHEDULER_CONFIG
    cfg = {**DDPM_CIFAR10_SCHEDULER_CONFIG, "thresholding": True}
    with pytest.raises(FastSamplingError, match="sampling.standard.generate"):
        FastDDIMSampler(unet, scheduler_config=cfg, steps=3, device="cpu", dtype="float32")


def test_coefficients_come_from_the_scheduler():
    sched = make_scheduler("ddim", None, 10)
    c = ddim_coefficients(sched)
    assert [x["t"] for x in c] == [int(t) for t in sched.timesteps]
    assert all(x["sqrt_alpha"].dtype == torch.float32 and x["sqrt_alpha"].ndim == 0 for x in c)
    assert float(c[-1]["sqrt_alpha_prev"]) == 1.0  # set_alpha_to_one: the last step lands on x_0


def test_bf16_is_close_but_not_required_identical(unet, reference):
    """bf16 UNet: most pixels within a few uint8 levels of fp32 (the GPU check is FID, see benchmarks)."""
    out = FastDDIMSampler(unet, steps=STEPS, seed=3, batch_size=4, dtype="bfloat16", device="cpu").images(7)
    d = np.abs(out.astype(int) - reference.astype(int))
    assert d.mean() < 8, d.mean()


def test_default_fp16_is_close_to_fp32(unet, reference):
    """The default precision is float16 (faithful on a trained UNet on the GPU, benchmarks/README.md)."""
    s = FastDDIMSampler(unet, steps=STEPS, seed=3, batch_size=4, device="cpu")
    assert s.sampling.dtype == "float16" and s.model.conv_in.weight.dtype == torch.float16
    d = np.abs(s.images(7).astype(int) - reference.astype(int))
    assert d.mean() < 2, d.mean()


def test_overflow_raises_instead_of_black_images(unet):
    """A UNet whose output overflows float16 stops the run with the fix named (never silent black images)."""
    import copy
    hot = copy.deepcopy(unet)
    with torch.no_grad():
        hot.conv_out.weight.mul_(1e6)
    with pytest.raises(FastSamplingError, match=r"non-finite.*float16.*samples 0\.\.2.*dtype='float32'"):
        FastDDIMSampler(hot, steps=2, seed=0, batch_size=3, device="cpu").images(5)
    with pytest.raises(FastSamplingError, match=r"non-finite.*samples 0\.\.2"):   # the only (last) batch too
        FastDDIMSampler(hot, steps=2, seed=0, batch_size=3, device="cpu").images(3)
    # the same model in float32 samples without error (finite, clipped by the scheduler)
    out = FastDDIMSampler(hot, steps=2, seed=0, batch_size=3, device="cpu", dtype="float32").images(5)
    assert out.shape[0] == 5 and out.dtype == np.uint8


def test_model_is_not_modified(unet):
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    FastDDIMSampler(unet, steps=2, dtype="bfloat16", device="cpu").images(2)
    after = unet.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())


def test_quantize_uint8_equals_images_to_uint8():
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(2, 3, 8, 8, generator=g) * 1.5,
                   torch.tensor([-1.0, 1.0, 0.0, float("nan"), float("inf"), -float("inf"), 127.4 / 127.5 - 128 / 127.5,
                                 0.5 / 127.5 - 128 / 127.5]).repeat(24).reshape(1, 3, 8, 8)])
    np.testing.assert_array_equal(quantize_uint8(x).permute(0, 2, 3, 1).numpy(), to_uint8(x))


def test_gpu_route_statistics_and_fid_equal_numpy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 48)).astype(np.float32)
    b = (rng.normal(size=(250, 48)) * 1.1 + 0.2).astype(np.float32)
    mu_t, sig_t = feature_statistics_torch(torch.from_numpy(a))
    mu, sig = feature_statistics(a)
    np.testing.assert_allclose(mu_t.numpy(), mu, rtol=0, atol=1e-13)
    np.testing.assert_allclose(sig_t.numpy(), sig, rtol=1e-10, atol=1e-13)
    mu_b, sig_b = feature_statistics(b)
    ref = frechet_distance(mu, sig, mu_b, sig_b)
    got = fid_from_features_torch(torch.from_numpy(a), mu_b, sig_b)
    assert got == pytest.approx(ref, rel=1e-9)
    assert mu_t.dtype == torch.float64 and sig_t.dtype == torch.float64


def test_sample_and_extract_streams_features_in_index_order(unet, reference):
    s = FastDDIMSampler(unet, steps=STEPS, seed=3, batch_size=3, dtype="float32", device="cpu")
    ext = PixelBlockFeatures(16)
    res = sample_and_extract(s, ext, [0, 1, 2, 3, 4, 5, 6], keep_images=True)
    expected = ext(torch.from_numpy(reference).permute(0, 3, 1, 2))
    assert torch.equal(res["features"], expected)
    np.testing.assert_array_equal(res["images"].permute(0, 2, 3, 1).numpy(), reference)
    assert res["sampling_s"] > 0 and res["features_s"] >= 0


def test_gpu_inception_features_equal_the_standard_extractor_on_cpu():
    from maskpro_eval.metrics.inception import InceptionFeatureExtractor, InceptionWeightsNotFoundError
    try:
        std = InceptionFeatureExtractor(device="cpu")
    except InceptionWeightsNotFoundError as exc:
        pytest.skip(str(exc))
    from maskpro_eval.metrics.gpu_features import GPUInceptionFeatures
    imgs = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    fast = GPUInceptionFeatures(std.weights_path, device="cpu", batch_size=2)
    got = fast(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous())
    np.testing.assert_array_equal(got.numpy(), std.features(imgs, batch_size=2))
    with pytest.raises(Exception, match="uint8"):
        fast(torch.zeros(1, 3, 32, 32))


@pytest.mark.gpu
def test_on_cuda_streams_give_the_images_of_the_same_call_shape():
    """On a GPU, ``streams=2`` at batch 2B calls the UNet at B, on two streams at once: its images equal those
    of ``streams=1`` at batch B (same call shape, same kernels), compiled and float16 as the route runs."""
    from maskpro_eval.runtime.timing import cuda_skip_reason
    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    from maskpro_eval.checkpoints.architecture import build_ddpm_cifar10_unet
    torch.manual_seed(0)
    model = build_ddpm_cifar10_unet()
    kw = dict(steps=10, seed=5, device="cuda", dtype="float16", compile=True)
    one = FastDDIMSampler(model, batch_size=64, **kw).images(256)
    two = FastDDIMSampler(model, batch_size=128, streams=2, **kw).images(256)
    np.testing.assert_array_equal(two, one)


def test_compile_options_are_part_of_the_protocol_and_reach_the_compiled_unet(unet, monkeypatch):
    """``SamplingConfig.compile_options`` needs compile, is recorded in the protocol (its own store) and becomes the
    sampler's inductor options; a name inductor does not know is refused before anything compiles."""
    from maskpro_eval.sampling.config import SamplingError
    with pytest.raises(SamplingError, match="need compile=True"):
        SamplingConfig(backend="fast", compile_options={"max_autotune_pointwise": True})
    plain = SamplingConfig(backend="fast", compile=True)
    tuned = SamplingConfig(backend="fast", compile=True, compile_options={"max_autotune_pointwise": True})
    assert "compile_options" not in plain.protocol_dict()
    assert tuned.protocol_dict()["compile_options"] == {"max_autotune_pointwise": True}
    seen = {}
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: seen.update(kw) or fn)
    s = FastDDIMSampler(unet, tuned, steps=STEPS, device="cpu", dtype="float32")
    assert seen["options"] == {"max_autotune_pointwise": True} and s.protocol()["compile_options"] == seen["options"]
    with pytest.raises(FastSamplingError, match=r"unknown inductor option\(s\) \['nope'\]"):
        FastDDIMSampler(unet, SamplingConfig(backend="fast", compile=True, compile_options={"nope": True}),
                        steps=STEPS, device="cpu", dtype="float32")


@pytest.mark.gpu
def test_on_cuda_iter_images_equals_the_batches_copied_one_by_one():
    """On a GPU, ``iter_images`` (pinned copies, each batch finished one batch late, groups spanning batches)
    gives the bytes of the plain per-batch ``.cpu()`` copies."""
    from maskpro_eval.runtime.timing import cuda_skip_reason
    if cuda_skip_reason():
        pytest.skip(cuda_skip_reason())
    from maskpro_eval.checkpoints.architecture import build_ddpm_cifar10_unet
    torch.manual_seed(0)
    fast = FastDDIMSampler(build_ddpm_cifar10_unet(), steps=5, seed=1, batch_size=64, device="cuda", dtype="float16")
    direct = np.concatenate([u8.permute(0, 2, 3, 1).cpu().numpy() for _, u8 in fast.iter_batches(200)])
    got = dict(fast.iter_images([range(0, 50), range(50, 130), range(130, 200)]))
    np.testing.assert_array_equal(np.concatenate([got[k] for k in range(3)]), direct)
