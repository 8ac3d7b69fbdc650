"""GPU timing logic (runs on CPU): the timer synchronises CUDA before reading the clock, event timing,
batch-sweep parsing, the pytest plugin's options/marker/timer/machine info, and clean skips without CUDA."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from maskpro_eval.runtime import timing
from maskpro_eval.runtime.bench import parse_batches

REPO = Path(__file__).resolve().parents[1]


def test_sync_timer_synchronizes_before_reading_the_clock(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("sync"))
    monkeypatch.setattr(timing.time, "perf_counter", lambda: calls.append("clock") or 42.0)
    assert timing.cuda_sync_perf_counter() == 42.0
    assert calls == ["sync", "clock"]


def test_sync_timer_without_cuda_is_the_host_clock(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: pytest.fail("synchronize without CUDA"))
    a = timing.cuda_sync_perf_counter()
    b = timing.cuda_sync_perf_counter()
    assert b >= a


def test_sync_timer_does_not_initialise_cuda(monkeypatch):
    """A CPU benchmark must not create a CUDA context just by reading the timer."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: pytest.fail("synchronize before init"))
    timing.cuda_sync_perf_counter()


def test_time_callable_host_clock_counts_warmup_and_rounds():
    n = {"calls": 0}

    def work():
        n["calls"] += 1
        time.sleep(0.002)

    r = timing.time_callable(work, warmup=2, rounds=5, inner=2)
    assert n["calls"] == (2 + 5) * 2
    assert r.rounds == 5 and r.method == "sync+perf_counter"
    assert 0.0018 <= r.median_s < 0.05 and r.min_s <= r.median_s


def test_time_callable_uses_cuda_events_on_cuda(monkeypatch):
    """The event path records start/end around the round and synchronises on the end event."""
    log = []

    class FakeEvent:
        def __init__(self, enable_timing=False):
            assert enable_timing
            self.t = None

        def record(self):
            log.append("record")

        def synchronize(self):
            log.append("sync")

        def elapsed_time(self, other):
            return 6.0  # ms

    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    monkeypatch.setattr(timing, "synchronize", lambda device=None: None)
    r = timing.time_callable(lambda: log.append("work"), warmup=1, rounds=3, inner=3, use_events=True)
    assert r.method == "cuda-events"
    assert r.median_s == pytest.approx(0.002)  # 6 ms / 3 inner calls
    assert log[:3] == ["work"] * 3                        # warm-up, untimed
    assert log[3:9] == ["record", "work", "work", "work", "record", "sync"]


def test_cuda_skip_reason_here():
    if timing.cuda_available():
        assert timing.cuda_skip_reason() is None
    else:
        reason = timing.cuda_skip_reason()
        assert reason and reason.startswith("no CUDA")


def test_parse_batches():
    assert parse_batches("256, 1,8,64,8") == [1, 8, 64, 256]
    assert parse_batches(None) == [1, 8, 64, 256]
    for bad in ("0,8", "a,b", "-1"):
        with pytest.raises(ValueError, match="comma-separated positive integers"):
            parse_batches(bad)


def test_device_info_is_json_serialisable():
    json.dumps(timing.device_info())


def test_peak_memory_on_cpu_is_none(monkeypatch):
    with timing.peak_memory("cpu") as mem:  # a CPU device, even where CUDA is present
        torch.ones(10)
    assert mem == {"peak_allocated_bytes": None, "peak_reserved_bytes": None}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with timing.peak_memory() as mem:
        torch.ones(10)
    assert mem == {"peak_allocated_bytes": None, "peak_reserved_bytes": None}


PLUGIN_TEST = '''
import pytest, torch
from maskpro_eval.runtime.timing import cuda_sync_perf_counter

pytestmark = [pytest.mark.bench, pytest.mark.benchmark(timer=cuda_sync_perf_counter)]

def test_sweep(bench_batch, benchmark, bench_settings):
    benchmark.group = f"g{bench_batch}"
    benchmark.pedantic(lambda: torch.ones(bench_batch).sum(), rounds=bench_settings.rounds,
                       warmup_rounds=bench_settings.warmup)

@pytest.mark.gpu
def test_gpu_sweep(bench_batch, cuda_device):
    pass
'''


def _run_pytest(tmp_path, *args):
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs a GPU\n")
    (tmp_path / "test_sweep.py").write_text(PLUGIN_TEST)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "maskpro_eval.pytest_plugin.gpu", "-p",
                           "no:cacheprovider", "--strict-markers", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_plugin_options_marker_timer_and_machine_info(tmp_path):
    res = _run_pytest(tmp_path, "--bench-cpu-batches", "2,4", "--bench-batches", "16", "--bench-rounds", "3",
                      "--bench-warmup", "1", "--benchmark-json", "b.json", "-rs", "-q")
    text = res.stdout + res.stderr
    assert res.returncode == 0, text
    if timing.cuda_available():   # the GPU sweep's case runs too
        assert "3 passed" in text, text
    else:
        assert "2 passed" in text and "1 skipped" in text and "no CUDA" in text, text
    data = json.loads((tmp_path / "b.json").read_text())
    names = sorted(b["name"] for b in data["benchmarks"])
    assert names == ["test_sweep[B2]", "test_sweep[B4]"]
    for b in data["benchmarks"]:
        assert b["options"]["timer"].endswith("cuda_sync_perf_counter")  # not time.perf_counter
        assert b["stats"]["rounds"] == 3
    assert "maskpro_device" in data["machine_info"]


def test_plugin_rejects_bad_batches(tmp_path):
    res = _run_pytest(tmp_path, "--bench-batches", "0,x")
    assert res.returncode == 4, res.stdout + res.stderr  # pytest's usage error
    assert "comma-separated positive integers" in res.stderr + res.stdout


@pytest.mark.skipif(timing.cuda_available(), reason="checks the no-GPU behaviour")
def test_gpu_tier_skips_cleanly_without_cuda():
    """``pytest -m gpu`` on a machine without CUDA: timing tests skip with the reason, nothing fails."""
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "maskpro_eval.pytest_plugin.gpu", "-m", "gpu",
                          "evaluation_tests/test_gpu.py", "-q", "-rs", "-p", "no:cacheprovider",
                          "--reports-dir", "/tmp/maskpro_gpu_skip_reports", "-k", "not eligibility"],
                         cwd=REPO, capture_output=True, text=True, timeout=240)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "failed" not in text and "error" not in text.lower().split("short test summary")[-1], text[-3000:]
    assert "skipped" in text and "no CUDA" in text, text[-3000:]


def test_latency_spread_flags_a_contended_cpu():
    from maskpro_eval.runtime.latency import latency_spread
    calm = latency_spread(0.027, 0.001, 0.026, 0.030)
    assert not calm["contended"] and abs(calm["iqr_over_median"] - 1 / 27) < 1e-12
    # the same model read 27 ms and 1,397 ms in two runs: such rounds within one run say "contended"
    assert latency_spread(0.030, 0.002, 0.027, 1.397)["contended"]
    assert latency_spread(0.030, 0.015, 0.027, 0.060)["contended"]


def test_forward_record_problems():
    """The benchmark tests' check: the timed forward's output shape and the record's timings."""
    from maskpro_eval.runtime.bench import forward_case, forward_record_problems, prepare_unet
    from tests.builders import tiny_unet
    module, fwd = prepare_unet(tiny_unet(0), "cpu")
    case = forward_case("m", module, fwd, 2, "cpu", "float32")
    assert forward_record_problems(case, module, {"median_ms": None, "min_ms": None}) == []  # untimed
    assert forward_record_problems(case, module, {"median_ms": 2.0, "min_ms": 1.5}) == []
    assert "expected 0 < min <= median" in forward_record_problems(case, module, {"median_ms": 2.0, "min_ms": 3.0})[0]
    case.forward = lambda x, t: fwd(x, t)[:1]  # a forward that drops samples
    assert "gave shape (1, 3, 16, 16), expected (2, 3, 16, 16)" in forward_record_problems(case, module, {})[0]
