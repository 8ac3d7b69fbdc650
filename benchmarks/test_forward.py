"""UNet forward latency over batch sizes and dtypes."""
from __future__ import annotations

import pytest

from benchmarks import cases


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("batch", [1, 8], ids=lambda b: f"B{b}")
def test_forward(benchmark, tiny, device, rounds, batch, dtype):
    benchmark.group = f"forward {device} {dtype}"
    figs = cases.run_pedantic(benchmark, cases.forward(tiny[0], device, batch, dtype), **rounds)
    assert figs["batch"] == batch and figs["rate_unit"] == "img-steps/s"
