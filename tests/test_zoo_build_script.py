"""scripts/build_demo_zoo.py --quick-check: the whole pipeline, a few steps, into a temp dir."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "build_demo_zoo.py"
NAMES = ("dense", "magnitude_2of4", "maskpro_2of4", "magnitude_2of4_ft", "maskpro_2of4_ft", "noncompliant")

# ~8 s on a shared 2-core CPU (one torch thread), so not marked slow
pytestmark = pytest.mark.unit


def test_smoke_build_makes_a_complete_small_zoo(tmp_path):
    out = tmp_path / "zoo"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "timing summary" in proc.stdout
    assert (out / "digits_heldout_32px.npz").is_file() and (out / "ZOO.md").is_file()
    manifest = json.loads((out / "MANIFEST.json").read_text())["files"]
    assert "maskpro_run/maskpro/training/checkpoints/best_checkpoint.pt" in manifest
    assert not any(k.startswith((".work/", "docs/")) for k in manifest)
    for name in NAMES:
        for rel in ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                    "scheduler/scheduler_config.json", "zoo_card.json"):
            assert (out / name / rel).is_file(), f"{name}/{rel}"
        card = json.loads((out / name / "zoo_card.json").read_text())
        if name.startswith(("magnitude_2of4", "maskpro_2of4")):
            assert card["compliance_2of4_row"] == 1.0
        if name == "noncompliant":
            assert card["compliance_2of4_row"] < 0.5
    assert (out / "docs" / "training_curve.png").is_file()
    # the grids come from the suite's own sampler (a separate step, CPU): 2 DDIM steps here
    proc = subprocess.run([sys.executable, str(SCRIPT), "--grids", "--out", str(out), "--docs", str(out / "grids"),
                           "--grid-steps", "2"], capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in (*NAMES, "heldout"):
        assert (out / "grids" / f"{name}.png").is_file(), name


def test_a_cut_and_resumed_dense_run_is_the_uncut_run(tmp_path, monkeypatch):
    """train(state_file=..., deadline=...) then a second call that resumes it gives bitwise the weights of
    one uncut call, dropout included (the global generators are saved with the loop state)."""
    import importlib.util
    import torch
    spec = importlib.util.spec_from_file_location("build_demo_zoo_under_test", SCRIPT)
    bz = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bz)
    g = torch.Generator().manual_seed(0)
    data = torch.rand((12, 3, 32, 32), generator=g) * 2 - 1
    kw = dict(steps=6, batch=4, lr=1e-3, warmup=1, seed=0, ema_decay=0.9, log_every=0)

    def run(state_file=None, deadline=None):
        unet = bz.new_unet(0, "cpu")                     # dropout 0.3, as the zoo trains
        assert unet.config.dropout > 0
        ema, info = bz.train(unet, data, state_file=state_file, deadline=deadline, **kw)
        return ema, info

    whole, _ = run()
    clock = iter(range(10**6))                           # a fake clock: each time.time() call is 1 s later
    monkeypatch.setattr(bz.time, "time", lambda: float(next(clock)))
    state = tmp_path / "dense.partial.pt"
    _, first = run(state_file=state, deadline=3.5)       # cut after a few steps
    monkeypatch.undo()
    assert not first["complete"] and state.is_file()
    assert 0 < torch.load(state, weights_only=False)["step"] < kw["steps"]
    resumed, second = run(state_file=state)
    assert second["complete"]
    for (k, a), (_, b) in zip(whole.state_dict().items(), resumed.state_dict().items()):
        assert torch.equal(a, b), k
