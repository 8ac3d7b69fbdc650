"""Inception feature throughput and the time of the Frechet distance."""
from __future__ import annotations

import pytest

from benchmarks import cases


def test_inception_features(benchmark, device, sizes, rounds):
    benchmark.group = f"inception {device}"
    n = sizes["features_n"]
    figs = cases.run_pedantic(benchmark, cases.inception(n, n, device), **rounds)
    assert figs["rate_unit"] == "img/s"


@pytest.mark.parametrize("backend", cases.FRECHET_BACKENDS)
def test_frechet_distance(benchmark, device, sizes, rounds, backend):
    if backend == "numpy" and device == "cuda":
        pytest.skip("the numpy route runs on the CPU only")
    benchmark.group = f"frechet {device}"
    case = cases.frechet(sizes["frechet_n"], sizes["frechet_dim"], backend, device)
    figs = cases.run_pedantic(benchmark, case, **rounds)
    assert figs["backend"] == backend
