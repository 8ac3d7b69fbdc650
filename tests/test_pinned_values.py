"""Pinned expected values (diffusers' ``expected_slice`` style): the noise rule, a 3-step DDIM sample of a
tiny seeded UNet, and FID/KID on fixed features.

The numbers were computed once with the code under test (torch 2 / numpy 2, CPU float32, one and two
torch threads gave the same uint8 output) and pasted here. A failure means the rule changed: the noise
seeding, the scheduler/sampling loop, the quantisation, or the Frechet/KID arithmetic. If the change is
intended, recompute, paste the new numbers and say so in the commit (results of earlier runs are then
no longer comparable).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from maskpro_eval.metrics.fid import feature_statistics, frechet_distance, kid
from maskpro_eval.sampling.config import SamplingConfig
from maskpro_eval.sampling.noise import noise_seed, sample_noise
from maskpro_eval.sampling.standard import generate
from tests.builders import tiny_unet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------ the noise rule (seedseq-v1)

def test_noise_seed_pinned():
    """``noise_seed(s, i)``: SeedSequence(s, spawn_key=(i,)).generate_state(1, uint64)[0] (exact)."""
    assert [noise_seed(0, i) for i in (0, 1, 5, 123)] == [
        8668861027912758289, 4881901421217228719, 14153166575370824094, 10309539795452009575]
    assert noise_seed(7, 0) == 3386250816931739734


def test_sample_noise_pinned():
    """Initial noise of samples 0, 5 and 123 of seed 0: the first six float32 values of each (exact)."""
    x = sample_noise(0, [0, 5, 123], (3, 32, 32))
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32
    expected_slice = torch.tensor([
        [-0.020734889432787895, -0.7969589829444885, -0.21269208192825317, -0.0734463781118393,
         1.7671352624893188, -0.4613841474056244],
        [0.010362581349909306, 0.8731407523155212, -0.34516870975494385, 1.92812979221344,
         -1.0687812566757202, 0.732684314250946],
        [-0.7436995506286621, -1.8400391340255737, 0.5167672634124756, 0.5191753506660461,
         -0.4324145019054413, -1.9788155555725098]])
    torch.testing.assert_close(x.flatten(1)[:, :6], expected_slice, rtol=0, atol=1e-6)
    # the last values of a row too (the whole tensor is drawn, not just its head)
    torch.testing.assert_close(x[1, 2, 31, -3:], torch.tensor([-1.0122005939483643, -0.7066017985343933,
                                                               1.5048953294754028]), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------ a tiny seeded UNet

@pytest.fixture(scope="module")
def seeded_unet():
    """tests.builders.tiny_unet(0): UNet2DModel(16px, (8, 16) channels, one attention level), torch.manual_seed(0)."""
    return tiny_unet(0)


def test_tiny_unet_forward_pinned(seeded_unet):
    """Forward of the seeded tiny UNet on the rule's noise for samples 0 and 1 at t = 999 and 10 (float32)."""
    x = sample_noise(0, [0, 1], (3, 16, 16))
    with torch.no_grad():
        y = seeded_unet(x, torch.tensor([999, 10])).sample
    torch.testing.assert_close(y[0, 0, 0, :6], torch.tensor([
        0.07448939979076385, -0.07345698773860931, 0.09774014353752136, -0.20798861980438232,
        0.040844548493623734, -0.3622545599937439]), rtol=0, atol=1e-5)
    torch.testing.assert_close(y[1, 2, -1, -4:], torch.tensor([
        -0.06917845457792282, 0.3238022029399872, 0.19370299577713013, 0.06091195344924927]), rtol=0, atol=1e-5)
    assert float(y.double().abs().mean()) == pytest.approx(0.28028035, abs=1e-6)


def test_ddim_3_steps_pinned(seeded_unet):
    """``generate`` with DDIM, 3 steps, eta 0, seed 0, samples 0-3 (DDPM CIFAR-10 scheduler): uint8 exact.

    The untrained UNet's x0 predictions clip at +-1 for many pixels; 58% of them are not 0 or 255, so the
    slice below still moves with any change of the noise, the schedule or the quantisation.
    """
    img = generate(seeded_unet, SamplingConfig(num_inference_steps=3, batch_size=4), count=4, progress=False)
    assert img.shape == (4, 16, 16, 3) and img.dtype == np.uint8
    expected_slice = np.array([[16, 0, 146], [255, 73, 0], [255, 102, 255], [243, 173, 255], [184, 255, 61],
                               [251, 118, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(img[0, 8, 4:10, :], expected_slice)
    np.testing.assert_array_equal(img[3, :, 7, 1], [47, 186, 37, 0, 178, 255, 255, 205, 255, 139, 0, 86, 36,
                                                    247, 23, 0])
    np.testing.assert_array_equal(img[:, 0, 0, :], [[0, 214, 42], [237, 28, 0], [234, 255, 0], [0, 255, 205]])
    assert int(img.astype(np.int64).sum()) == 390132
    assert float(img.astype(np.float64).std()) == pytest.approx(108.50928212672811, rel=1e-12)
    # sample 2 alone (its own generator, run as a pair internally) is the same image
    np.testing.assert_array_equal(generate(seeded_unet, SamplingConfig(num_inference_steps=3, batch_size=4),
                                           indices=[2], progress=False)[0], img[2])


# ------------------------------------------------------------------------------ FID and KID on fixed features

@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((200, 64))
    b = rng.standard_normal((180, 64)) * 1.1 + 0.05
    return a, b


def test_fid_on_fixed_features_pinned(features):
    a, b = features
    stats = (*feature_statistics(a), *feature_statistics(b))
    assert frechet_distance(*stats) == pytest.approx(14.022901689465016, rel=1e-9)
    assert frechet_distance(*stats, method="sqrtm") == pytest.approx(14.02290168946493, rel=1e-9)


def test_kid_on_fixed_features_pinned(features):
    mean, std = kid(*features, num_subsets=10, subset_size=100)
    assert mean == pytest.approx(0.010937764536717243, rel=1e-9)
    assert std == pytest.approx(0.01194416523397726, rel=1e-9)
