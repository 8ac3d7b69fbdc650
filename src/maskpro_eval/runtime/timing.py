"""Timing that is honest on GPUs.

CUDA work is asynchronous: a host clock read right after a launch measures the launch, not the work.
Every timer here either synchronises the device before reading the host clock
(:func:`cuda_sync_perf_counter`, the pytest-benchmark timer) or brackets the work with CUDA events
(:func:`time_callable`). Warm-up rounds keep compilation, cuDNN/cuBLAS handle creation and autotuning
out of the numbers; the median over many rounds is reported.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch

__all__ = [
    "cuda_available", "cuda_skip_reason", "cuda_sync_perf_counter", "synchronize", "TimingResult",
    "time_callable", "capture_cuda_graph", "peak_memory", "strict_fp32", "device_info",
]


def cuda_available() -> bool:
    """True when torch was built with CUDA and at least one device is visible."""
    try:
        return bool(torch.cuda.is_available()) and torch.cuda.device_count() > 0
    except Exception:  # noqa: BLE001 - a broken driver counts as "no GPU"
        return False


def cuda_skip_reason() -> str | None:
    """None when a CUDA GPU is usable, else a one-line reason (for ``pytest.skip``)."""
    if torch.version.cuda is None:
        return (f"no CUDA: torch {torch.__version__} is a CPU-only build (GPU tests and benchmarks need "
                f"a CUDA build of torch and an NVIDIA GPU)")
    try:
        ok = torch.cuda.is_available()
        n = torch.cuda.device_count()
    except Exception as exc:  # noqa: BLE001
        return f"no CUDA: the driver could not be initialised ({type(exc).__name__}: {exc})"
    if not ok or n == 0:
        return (f"no CUDA device visible: torch {torch.__version__} (CUDA {torch.version.cuda}) finds no GPU "
                f"(check the driver and CUDA_VISIBLE_DEVICES)")
    return None


def synchronize(device=None) -> None:
    """``torch.cuda.synchronize`` when CUDA has been initialised; a no-op otherwise (CPU runs)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize(device)


def cuda_sync_perf_counter() -> float:
    """Host clock read AFTER the device has finished all queued work: the pytest-benchmark timer.

    Use as ``@pytest.mark.benchmark(timer=cuda_sync_perf_counter)`` or
    ``--benchmark-timer maskpro_eval.runtime.timing.cuda_sync_perf_counter``. pytest-benchmark reads the
    timer before and after each round, so each round is bracketed by two synchronisations: the round's
    work is fully inside the interval. On a machine without CUDA (or before CUDA is initialised) it is
    ``time.perf_counter``.
    """
    synchronize()
    return time.perf_counter()


@dataclass
class TimingResult:
    """Per-call times in seconds over ``rounds`` timed rounds (after ``warmup`` untimed rounds)."""

    median_s: float
    min_s: float
    mean_s: float
    stdev_s: float
    rounds: int
    warmup: int
    inner: int
    method: str
    times_s: list[float] = field(default_factory=list, repr=False)

    @property
    def iqr_s(self) -> float:
        """Interquartile range of the per-call times (seconds): the spread beside the median."""
        if len(self.times_s) < 2:
            return 0.0
        q = statistics.quantiles(self.times_s, n=4, method="inclusive")
        return q[2] - q[0]

    def to_dict(self, with_times: bool = False) -> dict:
        d = asdict(self)
        d["iqr_s"] = self.iqr_s
        if not with_times:
            d.pop("times_s")
        return d


def time_callable(fn: Callable[[], object], *, warmup: int = 3, rounds: int = 20, inner: int = 1,
                  device=None, use_events: bool | None = None) -> TimingResult:
    """Median time of ``fn()`` per call.

    On CUDA (``device`` a CUDA device, or ``use_events=True``) each round is ``inner`` calls bracketed by
    CUDA events on the current stream, then synchronised; elsewhere the host clock after a
    synchronisation. ``warmup`` untimed rounds come first.
    """
    dev = torch.device(device) if device is not None else None
    if use_events is None:
        use_events = dev is not None and dev.type == "cuda"
    for _ in range(max(0, int(warmup))):
        for _ in range(inner):
            fn()
    synchronize()
    times = []
    if use_events:
        for _ in range(int(rounds)):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000.0 / inner)
        method = "cuda-events"
    else:
        for _ in range(int(rounds)):
            t0 = cuda_sync_perf_counter()
            for _ in range(inner):
                fn()
            times.append((cuda_sync_perf_counter() - t0) / inner)
        method = "sync+perf_counter"
    return TimingResult(median_s=statistics.median(times), min_s=min(times), mean_s=statistics.fmean(times),
                        stdev_s=statistics.stdev(times) if len(times) > 1 else 0.0, rounds=len(times),
                        warmup=int(warmup), inner=int(inner), method=method, times_s=times)


def capture_cuda_graph(fn: Callable[[], object], warmup: int = 3, repeat: int = 1):
    """Capture ``repeat`` calls of ``fn`` (static inputs/outputs!) into a ``torch.cuda.CUDAGraph``.

    Warm-up runs on a side stream first (as the PyTorch docs require). Returns ``(graph, last_output)``;
    ``graph.replay()`` re-runs the captured kernels with no Python or launch overhead.
    """
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(max(1, warmup)):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    out = None
    with torch.cuda.graph(g):
        for _ in range(repeat):
            out = fn()
    torch.cuda.synchronize()
    return g, out


@contextlib.contextmanager
def peak_memory(device=None):
    """Yields a dict filled on exit with ``peak_allocated_bytes`` (``max_memory_allocated`` since entry,
    after a reset) and ``peak_reserved_bytes``; empty dict values are None on CPU."""
    rec: dict = {"peak_allocated_bytes": None, "peak_reserved_bytes": None}
    on_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    if on_cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    try:
        yield rec
    finally:
        if on_cuda:
            torch.cuda.synchronize(device)
            rec["peak_allocated_bytes"] = int(torch.cuda.max_memory_allocated(device))
            rec["peak_reserved_bytes"] = int(torch.cuda.max_memory_reserved(device))


@contextlib.contextmanager
def backend_flags(tf32: bool | None = None, cudnn_benchmark: bool | None = None,
                  cudnn_deterministic: bool | None = None):
    """Set PyTorch's numeric backend flags inside the block and restore them on exit; None leaves a flag alone.

    ``tf32``: cuBLAS matmuls and cuDNN convolutions in TF32 (True) or strict float32 (False);
    ``cudnn_benchmark``: let cuDNN time its algorithms per shape; ``cudnn_deterministic``: deterministic
    cuDNN algorithms only (also turns ``benchmark`` off, which could otherwise pick another algorithm).
    """
    import warnings
    b = torch.backends
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = (b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.benchmark, b.cudnn.deterministic)
        if tf32 is not None:
            b.cuda.matmul.allow_tf32 = b.cudnn.allow_tf32 = bool(tf32)
        if cudnn_benchmark is not None:
            b.cudnn.benchmark = bool(cudnn_benchmark)
        if cudnn_deterministic is not None:
            b.cudnn.deterministic = bool(cudnn_deterministic)
            if cudnn_deterministic:
                b.cudnn.benchmark = False
    try:
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            b.cuda.matmul.allow_tf32, b.cudnn.allow_tf32, b.cudnn.benchmark, b.cudnn.deterministic = old


def cudnn_deterministic(enabled: bool = True):
    """cuDNN restricted to deterministic algorithms inside the block (restored on exit): the same image
    gives the same feature bits in every process and run (measured without it: reruns differ by ~6e-6)."""
    return backend_flags(cudnn_deterministic=True) if enabled else contextlib.nullcontext()


def strict_fp32(enabled: bool = True):
    """Disable TF32 for cuBLAS matmuls and cuDNN convolutions inside the block (restored on exit).

    PyTorch's default lets cuDNN run float32 convolutions in TF32 (10-bit mantissa inputs) on
    Ampere/Hopper; FID features are specified in float32, so the suite computes them strictly.
    """
    return backend_flags(tf32=False) if enabled else contextlib.nullcontext()


def device_info(device=None) -> dict:
    """Device name, capability, memory, driver/CUDA/cuDNN/torch versions and TF32 flags (JSON-able)."""
    import platform
    import warnings
    info = {"torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info["allow_tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
        info["allow_tf32_cudnn"] = bool(torch.backends.cudnn.allow_tf32)
    try:
        import diffusers
        info["diffusers"] = diffusers.__version__
    except Exception:  # noqa: BLE001
        info["diffusers"] = None
    if cuda_available():
        d = torch.device(device) if device is not None else torch.device("cuda", torch.cuda.current_device())
        p = torch.cuda.get_device_properties(d)
        info.update({"device": p.name, "capability": f"{p.major}.{p.minor}", "sm_count": p.multi_processor_count,
                     "memory_bytes": int(p.total_memory), "cudnn": torch.backends.cudnn.version(),
                     "device_count": torch.cuda.device_count()})
        try:
            import subprocess
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm,power.limit",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            info["nvidia_smi"] = out.stdout.strip().splitlines()
        except Exception:  # noqa: BLE001
            pass
    else:
        info.update({"device": f"cpu ({platform.processor() or platform.machine()})",
                     "threads": torch.get_num_threads()})
    return info
