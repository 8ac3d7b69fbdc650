"""Python API sampling options: the fast backend (float32, CPU) gives the standard path's samples exactly,
float16 on the fast backend stays close, and a request the fast backend cannot serve is refused."""
from __future__ import annotations

import numpy as np
import pytest

from maskpro_eval.api import MaskProEvaluator
from maskpro_eval.sampling.config import SamplingError
from tests.builders import half_precision_on_cpu_ok

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@half_precision_on_cpu_ok
def test_fast_backend_matches_standard_samples(tmp_path):
    ev = MaskProEvaluator("demo:dense", output_dir=tmp_path / "api")
    std = ev.generate_samples(num_samples=6, steps=4, batch_size=4, save_grid=False)
    fast = ev.generate_samples(num_samples=6, steps=4, batch_size=4, save_grid=False, sampling_backend="fast")
    np.testing.assert_array_equal(fast, std)
    # float16 at 1 DDIM step: float16 convolutions run ~15x slower than float32 on this CPU (AVX2 only)
    std1 = ev.generate_samples(num_samples=6, steps=1, batch_size=4, save_grid=False)
    half = ev.generate_samples(num_samples=6, steps=1, batch_size=4, save_grid=True, sampling_backend="fast",
                               dtype="float16")
    assert not np.array_equal(half, std1)  # float16 was used
    assert np.abs(half.astype(int) - std1.astype(int)).mean() < 2
    assert (tmp_path / "api" / "samples" / "dense_grid.png").is_file()


def test_fast_backend_refuses_ddpm(tmp_path):
    ev = MaskProEvaluator("demo:dense", output_dir=tmp_path / "api")
    with pytest.raises(SamplingError, match="DDIM with eta 0 only"):
        ev.generate_samples(num_samples=2, steps=2, sampler="ddpm", sampling_backend="fast", save_grid=False)


def test_compute_fid_without_reference_refuses_a_users_model(tmp_path):
    """The demo digits are the default reference for the demo zoo only: a user's model without a
    reference gets the error `pytest -m full` gives without --fid-ref."""
    import shutil

    from maskpro_eval import MaskProEvaluator
    from maskpro_eval.checkpoints.zoo import zoo_model_path
    from maskpro_eval.errors import ReferenceSetError
    shutil.copytree(zoo_model_path("dense"), tmp_path / "mine")
    ev = MaskProEvaluator(model_checkpoint=str(tmp_path / "mine"), output_dir=str(tmp_path / "out"))
    with pytest.raises(ReferenceSetError, match=r"FID needs a reference set.*--fid-ref PATH \(pytest\) or pass reference=PATH"):
        ev.compute_fid(num_samples=4)
