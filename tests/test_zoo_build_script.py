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
