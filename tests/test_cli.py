"""`maskpro-eval inspect`: the first troubleshooting step when a checkpoint won't load."""
import json

import pytest

from maskpro_eval.cli.main import main
from tests.builders import SHARED_FIXTURES

PRUNED = SHARED_FIXTURES / "real_formats" / "run" / "pruned" / "magnitude" / "ddpm_tiny_pruned"


def test_inspect_zoo_model(capsys):
    assert main(["inspect", "demo:magnitude_2of4"]) == 0
    out = capsys.readouterr().out
    assert "format:" in out and "diffusers-pipeline" in out
    assert "compliance row-major 1.0000" in out and "best fit 2:4" in out
    assert "options needed:       none" in out


@pytest.mark.skipif(not PRUNED.exists(), reason="shared fixtures not present")
def test_inspect_names_missing_option_and_never_runs_the_pickle(capsys):
    assert main(["inspect", str(PRUNED)]) == 1
    out = capsys.readouterr().out
    assert "options needed:       --trust-pickle" in out and "loads:                no" in out
    assert main(["inspect", str(PRUNED), "--trust-pickle", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "diffusers-pruned-pickle" and data["parameters"]["total"] == 777134


def test_inspect_missing_path(capsys, tmp_path):
    assert main(["inspect", str(tmp_path / "nope.pt")]) != 0
    captured = capsys.readouterr()
    assert "nope.pt" in captured.out + captured.err


def test_run_refuses_to_overwrite_an_earlier_run(tmp_path, capsys):
    (tmp_path / "quick").mkdir()
    assert main(["run", "--mode", "quick", "--output-dir", str(tmp_path)]) == 4
    err = capsys.readouterr().err
    assert "already holds quick" in err and "--overwrite" in err


def test_run_stops_after_bad_input_and_forwards_common_options(tmp_path):
    rc = main(["run", "--mode", "comprehensive", "--output-dir", str(tmp_path), "--checkpoint", "m=/nonexistent/x",
               "--trust-pickle", "--num-samples", "8"])
    assert rc == 4
    summary = json.loads((tmp_path / "workflow_results.json").read_text())
    assert [s["tier"] for s in summary["steps"]] == ["quick"] and summary["skipped"] == ["full", "compare"]
    assert summary["steps"][0]["verdict"] == "bad-input"


def test_step_verdict_never_pass_beside_a_failing_exit():
    from maskpro_eval.cli.run import _step_verdict
    assert _step_verdict(1, "pass") == "fail" and _step_verdict(0, "pass") == "pass"
    assert _step_verdict(1, "ungated") == "fail" and _step_verdict(0, "ungated") == "ungated"
    assert _step_verdict(3, None) == "error" and _step_verdict(4, None) == "bad-input"
