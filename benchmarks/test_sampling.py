"""DDIM sampling img-steps/s: the standard path vs the fast path, and one fast-path UNet call."""
from __future__ import annotations

import pytest

from benchmarks import cases


@pytest.mark.parametrize("path", ["standard", "fast"])
def test_sampling(benchmark, tiny, device, sizes, rounds, path):
    benchmark.group = f"sampling {device}"
    case = cases.sampling(path, *tiny, n=sizes["n"], steps=sizes["steps"], batch=sizes["n"], device=device)
    figs = cases.run_pedantic(benchmark, case, **rounds)
    assert figs["work_per_call"] == sizes["n"] * sizes["steps"]


@pytest.mark.parametrize("setting", ["fp32", "fp16"])
def test_fast_unet_call(benchmark, tiny, device, sizes, rounds, setting):
    if device == "cpu" and setting == "fp16":
        pytest.skip("float16 is the GPU fast path's setting: without half-precision CPU kernels it runs ~15x "
                    "slower than float32 (2-core AVX2 CI machine, 2026-12-06); the float16 path's CPU "
                    "correctness is tests/test_api_sampling.py's")
    benchmark.group = f"fast-path UNet call {device}"
    sampler, _ = cases.fast_sampler(*tiny, setting, sizes["n"], sizes["steps"], device)
    figs = cases.run_pedantic(benchmark, cases.unet_call(sampler, sizes["n"], setting), **rounds)
    assert figs["setting"] == setting
