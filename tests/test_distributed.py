"""Sharded generation + features with torchrun (gloo on the CPU): every sample made exactly once, features
gathered in index order, features and FID identical to the single-process run on the same seeds."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from maskpro_eval.runtime.distributed import DistContext, gather_features, shard_batches, shard_indices

from .builders import save_pipeline, tiny_unet


@pytest.mark.parametrize("n,bs,world", [(10, 4, 2), (7, 3, 3), (5, 8, 2), (1024, 256, 4)])
def test_shards_cover_every_sample_once_with_single_run_batches(n, bs, world):
    seen = []
    for r in range(world):
        for s, e in shard_batches(n, bs, r, world):
            assert s % bs == 0 and e - s <= bs  # the batches of a single-process run, unchanged
            seen += list(range(s, e))
    assert sorted(seen) == list(range(n))
    assert shard_indices(n, bs, 0, 1) == list(range(n))


def test_single_process_gather_is_identity():
    x = torch.arange(12.0).reshape(6, 2)
    assert gather_features(x, DistContext(), 6, 4) is x


def test_bad_rank_is_refused():
    with pytest.raises(ValueError, match="rank"):
        shard_batches(10, 4, 2, 2)


def _run(args, nproc, tmp_path, name):
    out = tmp_path / f"{name}.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    if nproc == 1:
        cmd = [sys.executable, "-m", "maskpro_eval.runtime.distributed"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "maskpro_eval.runtime.distributed"]
    res = subprocess.run(cmd + args + ["--out", str(out)], capture_output=True, text=True, timeout=180, env=env,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return json.loads(out.read_text())


def test_two_gloo_processes_equal_one_process(tmp_path):
    torch.manual_seed(0)
    model = save_pipeline(tiny_unet(sample_size=16), tmp_path / "m")
    common = ["--model", str(model), "--steps", "3", "--batch-size", "4", "--device", "cpu",
              "--features", "pixel16", "--dtype", "float32"]
    # reference statistics: another seed, one process
    ref = _run(common + ["--seed", "7", "--num-samples", "12", "--save-stats", str(tmp_path / "ref.npz")], 1,
               tmp_path, "ref")
    assert ref["world_size"] == 1
    args = common + ["--seed", "0", "--num-samples", "10", "--ref-npz", str(tmp_path / "ref.npz"),
                     "--save-features", str(tmp_path / "f.npy")]
    one = _run(args, 1, tmp_path, "one")
    f_one = np.load(tmp_path / "f.npy")
    two = _run(args, 2, tmp_path, "two")
    f_two = np.load(tmp_path / "f.npy")
    assert two["world_size"] == 2 and two["backend"] == "gloo"
    np.testing.assert_array_equal(f_two, f_one)
    assert two["features_sha256"] == one["features_sha256"]
    assert two["fid"] == one["fid"] and np.isfinite(one["fid"])
    # and the features are those of the standard sampling path's images
    from maskpro_eval.checkpoints import load_checkpoint
    from maskpro_eval.sampling.config import SamplingConfig
    from maskpro_eval.sampling.standard import generate
    from maskpro_eval.metrics.gpu_features import PixelBlockFeatures
    unet = load_checkpoint(model).unet
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        imgs = generate(unet, SamplingConfig(num_inference_steps=3, seed=0, batch_size=4), count=10, progress=False)
    finally:
        torch.set_num_threads(n)
    np.testing.assert_array_equal(PixelBlockFeatures(16)(torch.from_numpy(imgs).permute(0, 3, 1, 2)).numpy(), f_one)


@pytest.mark.parametrize("world,rc", [("2", 0), ("1", 3)])
def test_a_torchrun_worker_ends_without_finalisation_and_keeps_its_output(world, rc):
    # a worker of a multi-process run leaves by os._exit(0) once done (gloo can abort interpreter shutdown),
    # after flushing what it printed; a single process returns normally (here: to the SystemExit(3) below)
    code = ("import sys; from maskpro_eval.runtime.distributed import _exit_after_process_group; "
            "print('written', end=''); sys.stderr.write('err'); _exit_after_process_group(); raise SystemExit(3)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "WORLD_SIZE": world})
    assert (res.returncode, res.stdout, res.stderr[-3:]) == (rc, "written", "err")
