"""pytest-benchmark suite of maskpro-eval: ``pytest benchmarks -m bench`` (from the repository root).

Every case here is marked ``bench`` and timed with the CUDA-synchronising clock
(:func:`maskpro_eval.runtime.timing.cuda_sync_perf_counter`); each runs on the CPU at tiny sizes (a UNet
built in code, 2 DDIM steps) and on CUDA when present (``device`` parameter; CUDA cases SKIP with the
reason otherwise). The benchmark JSON's machine info carries the record schema's device, versions and
command (``maskpro_eval_bench``, from the package's pytest plugin).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from maskpro_eval.runtime.timing import cuda_skip_reason, cuda_sync_perf_counter

_HERE = Path(__file__).resolve().parent

#: Sizes per device: tiny on the CPU (each case ~a second), larger on a GPU.
SIZES = {"cpu": {"n": 4, "steps": 2, "features_n": 4, "frechet_n": 256, "frechet_dim": 64},
         "cuda": {"n": 256, "steps": 10, "features_n": 512, "frechet_n": 10_000, "frechet_dim": 2048}}
ROUNDS = {"cpu": (3, 1), "cuda": (10, 3)}  # (rounds, warm-up rounds)


def pytest_collection_modifyitems(config, items):
    """Cases under benchmarks/ are ``bench`` and use the synchronising timer."""
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.bench)
            item.add_marker(pytest.mark.benchmark(timer=cuda_sync_perf_counter))


@pytest.fixture(params=["cpu", "cuda"])
def device(request) -> str:
    """``cpu`` or ``cuda``; the CUDA case skips with the reason when no GPU is usable."""
    if request.param == "cuda":
        reason = cuda_skip_reason()
        if reason:
            pytest.skip(reason)
    return request.param


@pytest.fixture
def sizes(device) -> dict:
    return SIZES[device]


@pytest.fixture
def rounds(device) -> dict:
    r, w = ROUNDS[device]
    return {"rounds": r, "warmup": w}


@pytest.fixture(scope="session", autouse=True)
def _one_cpu_thread():
    """One intra-op thread: tiny convolutions on a small shared CPU run faster than with several."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny():
    """``(unet, scheduler_config)`` of the tiny UNet built in code."""
    from benchmarks.models import load_model
    return load_model("tiny")
