"""Progress a user sees: pytest captures output, so the library's bars (sampling, features, reference
statistics) are written through the terminal reporter with capture suspended, a line every few seconds
with images done, img/s and ETA. ``--no-progress`` hides them."""
from __future__ import annotations

import time

import pytest

from maskpro_eval.runtime.progress import format_eta, install_sink, remove_sink

#: Seconds between two progress lines of one bar.
INTERVAL_S = 3.0
_TOKEN = pytest.StashKey[object]()


class TerminalBar:
    """A progress bar as terminal lines: ``desc: 120/400 img (30%), 11.8 img/s, ETA 24s``."""

    def __init__(self, config, total: float, desc: str, initial: float = 0, clock=time.monotonic):
        self.config, self.total, self.desc, self.n, self.clock = config, float(total), desc, float(initial), clock
        self.start = self.last = clock()
        self.start_n = self.n

    def line(self) -> str:
        elapsed = self.clock() - self.start
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.n) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.n / self.total if self.total else 100.0
        eta = format_eta(left) if left != float("inf") else "?"
        return f"  {self.desc}: {self.n:.0f}/{self.total:.0f} img ({pct:.0f}%), {rate:.1f} img/s, ETA {eta}"

    def update(self, n: float) -> None:
        self.n += n
        if self.clock() - self.last >= INTERVAL_S:
            self.last = self.clock()
            self._write(self.line())

    def close(self) -> None:
        if self.clock() - self.start >= INTERVAL_S:  # a bar that took a while says it finished
            self._write(self.line().replace(", ETA", ", done; ETA"))

    def _write(self, text: str) -> None:
        terminal_line(self.config, text)


def terminal_line(config, text: str, **markup) -> None:
    """Write one line to the terminal now, even from inside a test or fixture (capture suspended)."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if tr is None:
        return
    if capman is not None:
        with capman.global_and_fixture_disabled():
            tr.write_line(text, **markup)
    else:
        tr.write_line(text, **markup)


def pytest_configure(config):
    if hasattr(config, "workerinput") or config.getoption("--no-progress"):
        return
    config.stash[_TOKEN] = install_sink(lambda total, desc, initial=0: TerminalBar(config, total, desc, initial))


def pytest_unconfigure(config):
    token = config.stash.get(_TOKEN, None)
    if token is not None:
        remove_sink(token)
