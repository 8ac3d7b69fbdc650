"""runtime.phases: per-phase wall time, rates and FLOP/s, and their text forms."""
from __future__ import annotations

import time

import pytest

from maskpro_eval.runtime.phases import PhaseTimer, bf16_peak_tflops, timings_line, timings_markdown

pytestmark = pytest.mark.unit


def test_phases_accumulate_and_rates_follow_from_the_totals():
    t = PhaseTimer()
    t.add("sampling", 2.0, images=100, img_steps=10_000, flops=4e12)
    t.add("sampling", 2.0, images=100, img_steps=10_000, flops=4e12)
    with t.phase("features", images=50):
        time.sleep(0.01)
    s = t.summary("NVIDIA H200")
    p = s["phases"]["sampling"]
    assert p == {"seconds": 4.0, "calls": 2, "images": 200, "img_per_s": 50.0, "img_steps": 20_000,
                 "img_steps_per_s": 5000.0, "tflops": 2.0, "fraction_of_bf16_peak": round(2.0 / 989.4, 4)}
    assert s["phases"]["features"]["seconds"] >= 0.01 and s["phases"]["features"]["images"] == 50
    assert list(s["phases"]) == ["sampling", "features"]            # report order, not insertion order
    assert s["bf16_peak_tflops"] == 989.4 and s["timed_s"] >= 4.01


def test_unknown_device_has_no_peak_and_the_texts_say_so():
    assert bf16_peak_tflops(None) is None and bf16_peak_tflops("Some GPU") is None
    assert bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    t = PhaseTimer()
    t.add("sampling", 1.0, images=10, img_steps=1000, flops=1e12)
    s = t.summary(None)
    assert s["phases"]["sampling"]["fraction_of_bf16_peak"] is None
    line = timings_line(s)
    assert line.startswith("timings: sampling 1.0 s (10 img/s, 1000 img-steps/s, 1 TFLOP/s)")
    md = timings_markdown(s)
    assert md[0].startswith("| phase |") and "| sampling | 1.00 | 10 | 10.0 | 1000.0 | 1.0 |" in md[2]
    assert "n/a on this device" in md[-1]
    assert timings_markdown(PhaseTimer().summary()) == []
