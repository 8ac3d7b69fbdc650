"""SwanLab offline logging: no network, files on disk, every metric and verdict present."""
import pytest

from maskpro_eval.reporting.tracking import flatten_metrics

RESULTS = {
    "run": {"name": "r1"},
    "models": {"m": {"parameters": {"total": 10, "nonzero": 5}, "sparsity": {"global": 0.5},
                     "layers": [{"sparsity": 0.5}], "quality": {"fid": 12.5, "fid_biased": True}}},
    "gates": [{"model": "m", "metric": "fid", "value": 12.5, "passed": False, "message": "[FAIL] m: fid"}],
}


def test_flatten_metrics():
    flat = flatten_metrics(RESULTS)
    assert flat["m/parameters/total"] == 10.0 and flat["m/quality/fid"] == 12.5
    assert flat["m/quality/fid_biased"] == 1.0
    assert flat["gates/m/fid/value"] == 12.5 and flat["gates/m/fid/passed"] == 0.0
    assert flat["gates/all_passed"] == 0.0
    assert not any(k.startswith("m/layers") for k in flat)


def test_offline_swanlab_run(tmp_path, monkeypatch):
    pytest.importorskip("swanlab")
    import numpy as np
    from PIL import Image
    from maskpro_eval.reporting.tracking import log_to_swanlab

    monkeypatch.setenv("SWANLAB_MODE", "offline")
    run_dir = tmp_path / "run"
    (run_dir / "samples").mkdir(parents=True)
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(run_dir / "samples" / "grid.png")
    log_dir = log_to_swanlab(RESULTS, run_dir, tmp_path / "swan")
    runs = list(log_dir.glob("run-*"))
    assert len(runs) == 1
    data = b"".join(p.read_bytes() for p in runs[0].glob("*.swanlab"))
    for key in (b"m/quality/fid", b"gates/m/fid/passed", b"images/samples/grid.png"):
        assert key in data, key
    assert list(runs[0].rglob("media/image/*.png"))
