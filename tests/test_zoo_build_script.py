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
NAMES = ("dense", "magnitude_2of4", "noncompliant", "maskpro_2of4")

# ~8 s on a shared 2-core CPU (one torch thread), so not marked slow
pytestmark = pytest.mark.unit


def test_quick_check_builds_a_complete_small_zoo(tmp_path):
    out = tmp_path / "zoo"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick-check", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "timing summary" in proc.stdout
    assert (out / "digits_reference_32px.npz").is_file() and (out / "ZOO.md").is_file()
    for name in NAMES:
        for rel in ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                    "scheduler/scheduler_config.json", "zoo_card.json"):
            assert (out / name / rel).is_file(), f"{name}/{rel}"
        assert (out / "docs" / f"{name}.png").is_file()
        card = json.loads((out / name / "zoo_card.json").read_text())
        if name in ("magnitude_2of4", "maskpro_2of4"):
            assert card["compliance_2of4_row"] == 1.0
        if name == "noncompliant":
            assert card["compliance_2of4_row"] < 0.5
    assert (out / "docs" / "data.png").is_file()
