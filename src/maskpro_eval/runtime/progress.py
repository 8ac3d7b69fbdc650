"""Progress of long loops (sampling, Inception features, reference statistics) in images, with img/s
and ETA. By default a tqdm bar; a caller that owns the terminal (the pytest plugin, which would
otherwise have its output captured) installs its own sink for a block of code with :func:`progress_sink`."""
from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Protocol


class Bar(Protocol):
    def update(self, n: float) -> None: ...
    def close(self) -> None: ...


#: ``factory(total, desc, initial) -> Bar`` in force, or None for tqdm.
_SINK: contextvars.ContextVar[Callable[..., Bar] | None] = contextvars.ContextVar("maskpro_progress", default=None)


@contextlib.contextmanager
def progress_sink(factory: Callable[..., Bar] | None):
    """Inside the block, every progress bar the library opens comes from ``factory``."""
    token = _SINK.set(factory)
    try:
        yield
    finally:
        _SINK.reset(token)


def install_sink(factory: Callable[..., Bar] | None):
    """Install ``factory`` until :func:`remove_sink` (for callers whose scope is not one block)."""
    return _SINK.set(factory)


def remove_sink(token) -> None:
    _SINK.reset(token)


class _Off:
    def update(self, n: float) -> None:
        pass

    def close(self) -> None:
        pass


def make_bar(total: float, desc: str, enabled: bool = True, initial: float = 0) -> Bar:
    """A progress bar over ``total`` images (hidden when ``enabled`` is False)."""
    if not enabled:
        return _Off()
    factory = _SINK.get()
    if factory is not None:
        return factory(total=total, desc=desc, initial=initial)
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, unit="img", desc=desc, dynamic_ncols=True, smoothing=0.1, leave=False)


def format_eta(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``42s``."""
    s = int(max(seconds, 0))
    if s >= 3600:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"
