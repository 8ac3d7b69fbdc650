"""Progress a user sees through pytest's capture: terminal lines every few seconds with img/s and ETA;
the library's bars (sampling per denoising step, features per batch) go to whatever sink is installed."""
from __future__ import annotations

import numpy as np

from maskpro_eval.pytest_plugin.progress import INTERVAL_S, TerminalBar
from maskpro_eval.runtime.progress import format_eta, make_bar, progress_sink

pytest_plugins = ["pytester"]


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_terminal_bar_lines_rate_and_eta(monkeypatch):
    lines = []
    monkeypatch.setattr("maskpro_eval.pytest_plugin.progress.terminal_line", lambda config, text: lines.append(text))
    clock = FakeClock()
    bar = TerminalBar(None, total=400, desc="ddim 100 steps", clock=clock)
    clock.t += 1.0
    bar.update(10)                       # within the interval: no line yet
    assert lines == []
    clock.t += INTERVAL_S
    bar.update(38)                       # 48 images in 4 s
    assert lines == ["  ddim 100 steps: 48/400 img (12%), 12.0 img/s, ETA 29s"]
    clock.t += 30
    bar.update(352)
    bar.close()
    assert lines[-1].startswith("  ddim 100 steps: 400/400 img (100%)") and "done" in lines[-1]


def test_format_eta():
    assert (format_eta(42), format_eta(185), format_eta(3720)) == ("42s", "3m05s", "1h02m")


class Recorder:
    def __init__(self, total, desc, initial=0):
        self.total, self.desc, self.updates = total, desc, []
        RECORDED.append(self)

    def update(self, n):
        self.updates.append(n)

    def close(self):
        pass


RECORDED: list = []


def test_sampling_progress_moves_every_denoising_step():
    from maskpro_eval.sampling.config import SamplingConfig
    from maskpro_eval.sampling.standard import generate
    from tests.builders import tiny_unet
    RECORDED.clear()
    with progress_sink(Recorder):
        generate(tiny_unet(0), SamplingConfig(num_inference_steps=4, batch_size=3), count=6)
    (bar,) = RECORDED
    assert bar.total == 6 and len(bar.updates) == 2 * 4 and np.isclose(sum(bar.updates), 6)
    assert make_bar(5, "x", enabled=False).update(1) is None   # hidden bars accept updates


def test_full_run_shows_its_plan_and_progress_through_capture(pytester, small_ref):
    from tests.builders import REPO_ROOT

    def run(*extra):
        return pytester.runpytest_subprocess(
            str(REPO_ROOT / "evaluation_tests" / "test_full.py"), "-m", "full", "-p", "no:cacheprovider",
            "--rootdir", str(REPO_ROOT), "-c", str(REPO_ROOT / "pyproject.toml"), "--checkpoint", "demo:dense",
            "--fid-ref", str(small_ref), "--num-samples", "8", "--steps", "4", "--consistency-seeds", "0",
            "--reports-dir", str(pytester.path / "r"), "--fid-cache-dir", str(pytester.path / "c"),
            "--max-fid", "1000", "--max-kid", "10", *extra)
    result = run()
    assert result.ret == 0, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(["*maskpro-eval: full tier: 1 model(s) x 8 samples x 4 DDIM steps = 8 images*CPU estimate*",
                                 "*reference features: */48 img (*), * img/s, *"])
    quiet = run("--no-progress")
    assert quiet.ret == 0 and "img/s" not in quiet.stdout.str() and "full tier:" not in quiet.stdout.str()
