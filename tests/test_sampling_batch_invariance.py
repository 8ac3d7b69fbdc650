"""Sample i's bits do not depend on the batch it is drawn in, on the demo zoo's real UNet (not only on a
tiny one): the CPU samplers call the UNet with one fixed shape (sampling.unet_io.in_fixed_chunks).

Before that, batch 8 and batch 256 gave 1-uint8-level differences on ~10% of the zoo's samples (oneDNN
picks its convolution kernels by the batch shape), so "--batch-size does not change the samples" was not
true on a CPU. The torch thread count is left as it is (2 on this project's CPU)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from maskpro_eval.sampling.config import SamplingConfig
from maskpro_eval.sampling.standard import generate
from maskpro_eval.sampling.unet_io import CPU_MICRO_BATCH, in_fixed_chunks

N, STEPS = 90, 20     # 90 = two full calls of 40 + a padded one; 20 steps: enough for rounding to reach uint8


@pytest.fixture(scope="module")
def zoo_unet():
    from diffusers import UNet2DModel
    from maskpro_eval.checkpoints.zoo import zoo_model_path
    return UNet2DModel.from_pretrained(zoo_model_path("dense"), subfolder="unet").eval()


@pytest.fixture(scope="module")
def ref(zoo_unet):
    return generate(zoo_unet, SamplingConfig(num_inference_steps=STEPS, batch_size=256), count=N, progress=False)


def test_in_fixed_chunks_calls_one_shape_and_keeps_order():
    shapes = []

    def call(c):
        shapes.append(tuple(c.shape))
        return c * 2

    x = torch.arange(2 * CPU_MICRO_BATCH + 3, dtype=torch.float32).reshape(-1, 1)
    out = in_fixed_chunks(call, x)
    assert torch.equal(out, x * 2)
    assert shapes == [(CPU_MICRO_BATCH, 1)] * 3


def test_zoo_samples_identical_for_every_batch_size(zoo_unet, ref):
    assert ref.std() > 10
    for bs in (30, CPU_MICRO_BATCH):
        got = generate(zoo_unet, SamplingConfig(num_inference_steps=STEPS, batch_size=bs), count=N, progress=False)
        diff = (got != ref).reshape(N, -1).any(1)
        assert not diff.any(), f"batch {bs}: samples {np.nonzero(diff)[0].tolist()} differ from batch 256"
    part = generate(zoo_unet, SamplingConfig(num_inference_steps=STEPS, batch_size=256), start=85, count=5,
                    progress=False)
    np.testing.assert_array_equal(part, ref[85:])


def test_zoo_fast_path_float32_equals_standard_path(zoo_unet, ref):
    from maskpro_eval.sampling.fast import FastDDIMSampler
    fast = FastDDIMSampler(zoo_unet, steps=STEPS, seed=0, batch_size=45, dtype="float32", device="cpu")
    got = fast.images(N)
    np.testing.assert_array_equal(got, ref)
