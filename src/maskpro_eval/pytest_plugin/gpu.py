"""pytest plugin: speed-benchmark options, the ``bench`` marker, GPU fixtures and machine info.

Part of the package's pytest11 plugin (loaded whenever maskpro-eval is installed). Options:

    --bench-batches 1,8,64,256     GPU forward batch sweep
    --bench-cpu-batches 1,8        CPU forward batch sweep
    --bench-dtype bfloat16         GPU forward dtype (CPU benchmarks run float32)
    --bench-rounds 20 --bench-warmup 5
    --bench-compile [--bench-compile-mode MODE]
    --bench-sparse-batch 256       batch of the 2:4 per-layer and end-to-end measurements
    --min-sparse-speedup X         gate: end-to-end 2:4 speedup >= X (off by default)
    --bench-plot PATH              also write the scaling plot (PNG) here at session end
    --bench-records PATH           also write every forward record (JSON) here

pytest-benchmark's own options apply: ``--benchmark-json``, ``--benchmark-autosave``,
``--benchmark-compare``, ``--benchmark-compare-fail=median:10%`` (regression gating in CI),
``--benchmark-disable`` (run each case once, no timing), ``--benchmark-skip``.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from maskpro_eval.pytest_plugin.state import run_state
from maskpro_eval.runtime.bench import parse_batches

BENCH_MARKER = "bench: speed benchmarks (pytest-benchmark): forward latency sweeps, 2:4 sparse speed"


@dataclass
class BenchSettings:
    batches: list
    cpu_batches: list
    dtype: str
    rounds: int
    warmup: int
    compile: bool
    compile_mode: str | None
    sparse_batch: int
    min_sparse_speedup: float | None
    plot: str | None
    records: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def pytest_addoption(parser):
    g = parser.getgroup("maskpro-eval-bench", "maskpro-eval: speed benchmarks (pytest-benchmark)")
    g.addoption("--bench-batches", default="1,8,64,256", metavar="B1,B2,...",
                help="batch sizes of the GPU forward-latency sweep (default 1,8,64,256; e.g. 1,8,64,256,1024)")
    g.addoption("--bench-cpu-batches", default="1,8", metavar="B1,B2,...",
                help="batch sizes of the CPU forward-latency sweep (default 1,8)")
    g.addoption("--bench-dtype", choices=("float32", "bfloat16", "float16"), default="bfloat16",
                help="GPU forward dtype (weights cast; default bfloat16). CPU benchmarks run float32")
    g.addoption("--bench-rounds", type=int, default=20, help="timed rounds per case (default 20)")
    g.addoption("--bench-warmup", type=int, default=5, help="untimed warm-up rounds per case (default 5)")
    g.addoption("--bench-compile", action="store_true", help="torch.compile the UNet in GPU forward benchmarks")
    g.addoption("--bench-compile-mode", default=None, help="torch.compile mode (default: PyTorch's default)")
    g.addoption("--bench-sparse-batch", type=int, default=256,
                help="batch size of the 2:4 sparse per-layer/end-to-end measurements (default 256)")
    g.addoption("--min-sparse-speedup", type=float, default=None,
                help="gate: end-to-end speedup of the 2:4-sparse UNet over the masked-dense one must be >= this "
                     "(default: off; the speed is recorded, not gated)")
    g.addoption("--bench-plot", default=None, metavar="PNG", help="also write the scaling plot here")
    g.addoption("--bench-records", default=None, metavar="JSON", help="also write the forward records here")


def _settings(config) -> BenchSettings:
    return BenchSettings(
        batches=parse_batches(config.getoption("--bench-batches")),
        cpu_batches=parse_batches(config.getoption("--bench-cpu-batches"), "1,8"),
        dtype=config.getoption("--bench-dtype"), rounds=int(config.getoption("--bench-rounds")),
        warmup=int(config.getoption("--bench-warmup")), compile=bool(config.getoption("--bench-compile")),
        compile_mode=config.getoption("--bench-compile-mode"),
        sparse_batch=int(config.getoption("--bench-sparse-batch")),
        min_sparse_speedup=config.getoption("--min-sparse-speedup"),
        plot=config.getoption("--bench-plot"), records=config.getoption("--bench-records"))


def pytest_configure(config):
    config.addinivalue_line("markers", BENCH_MARKER)
    state = run_state(config)
    try:
        state.bench = _settings(config)
    except ValueError as exc:
        raise pytest.UsageError(f"maskpro-eval: {exc}") from None
    if state.bench.rounds < 1 or state.bench.warmup < 0:
        raise pytest.UsageError("maskpro-eval: --bench-rounds must be >= 1 and --bench-warmup >= 0")


def pytest_generate_tests(metafunc):
    """``bench_batch``: the GPU sweep for tests marked ``gpu``, else the CPU sweep."""
    if "bench_batch" in metafunc.fixturenames:
        s = run_state(metafunc.config).bench
        gpu = metafunc.definition.get_closest_marker("gpu") is not None
        batches = s.batches if gpu else s.cpu_batches
        metafunc.parametrize("bench_batch", batches, ids=[f"B{b}" for b in batches])


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Plot tests (name contains ``scaling_plot``) run after every benchmark they summarise."""
    plots = [i for i in items if "scaling_plot" in i.name]
    if plots:
        rest = [i for i in items if "scaling_plot" not in i.name]
        items[:] = rest + plots


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    """Into the benchmark JSON: ``maskpro_device`` (device, driver, versions, TF32 flags) and
    ``maskpro_eval_bench``: the benchmark record's schema, device, versions, exact command and date
    (:func:`maskpro_eval.runtime.records.machine_record`, the same as every ``python -m benchmarks`` record)."""
    from maskpro_eval.runtime.records import machine_record
    try:
        rec = machine_record()
        machine_info["maskpro_device"] = rec["device"]
        machine_info["maskpro_eval_bench"] = rec
    except Exception as exc:  # noqa: BLE001 - never break a run over metadata
        machine_info["maskpro_device"] = {"error": repr(exc)}


@pytest.fixture(scope="session")
def bench_settings(pytestconfig) -> BenchSettings:
    return run_state(pytestconfig).bench


@pytest.fixture(scope="session")
def cuda_device():
    """``torch.device("cuda")``; the test SKIPS (with the reason) when no CUDA GPU is usable."""
    from maskpro_eval.runtime.timing import cuda_skip_reason
    reason = cuda_skip_reason()
    if reason:
        pytest.skip(reason)
    import torch
    return torch.device("cuda", torch.cuda.current_device())


@pytest.fixture(scope="session")
def bench_records(pytestconfig) -> list:
    """Session-wide list of forward-benchmark records (the scaling plot reads it)."""
    return run_state(pytestconfig).bench_records


@pytest.fixture(scope="session")
def prepared_unets():
    """Session cache of device/dtype/compiled copies of models: ``key -> (module, forward)``."""
    return {}


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if hasattr(config, "workerinput"):
        return
    state = run_state(config)
    s, recs = state.bench, state.bench_records
    if s is None or not recs:
        return
    if s.records:
        Path(s.records).parent.mkdir(parents=True, exist_ok=True)
        Path(s.records).write_text(json.dumps(recs, indent=1))
    if s.plot:
        from maskpro_eval.runtime.bench import scaling_plot_png
        png = scaling_plot_png(recs, title=_plot_title(recs))
        if png:
            Path(s.plot).parent.mkdir(parents=True, exist_ok=True)
            Path(s.plot).write_bytes(png)


def _plot_title(recs) -> str:
    devs = sorted({r.get("device_name") or r["device"] for r in recs})
    dts = sorted({r["dtype"] for r in recs})
    return f"UNet forward scaling - {', '.join(devs)} - {', '.join(dts)}"
