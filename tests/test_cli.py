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
    assert main(["inspect", str(PRUNED)]) == 0   # it could tell the user what to do
    out = capsys.readouterr().out
    assert "options needed:       --trust-pickle" in out and "loads:                with --trust-pickle" in out
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


MASKPRO_BEST = SHARED_FIXTURES / "real_formats" / "run" / "maskpro" / "training" / "checkpoints" / "best_checkpoint.pt"


def _inspect_json(capsys, *argv) -> dict:
    assert main(["inspect", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _suite_numbers(path, **settings) -> dict:
    """What the pytest run gates on (EvaluatedModel.entry(), the evaluation_results.json section)."""
    from maskpro_eval.evaluation import EvalSettings, EvaluatedModel, parse_model_spec
    e = EvaluatedModel(parse_model_spec(str(path)), EvalSettings(**settings)).entry()
    return {"masked_layer_count": e["sparsity"]["masked_layer_count"], "global_sparsity": e["sparsity"]["global"],
            "masked_layers_sparsity": e["sparsity"]["masked_layers"], "nm_compliance_row": e["nm"]["compliance"],
            "nm_compliance_channel": e["nm"]["compliance_channel"], "nm_judged": f"{e['nm']['n']}:{e['nm']['m']}"}


def _assert_same(inspected: dict, suite: dict):
    assert {k: inspected[k] for k in suite} == suite


def _masked_folder(tmp_path):
    """A diffusers-masked UNet folder: '<layer>.mask' buffers on two layers (2:4 there, the rest dense)."""
    from safetensors.torch import save_file

    from tests.builders import prune_nm, tiny_unet
    unet = tiny_unet()
    unet.save_pretrained(tmp_path / "m")
    masks = prune_nm(unet, layers={"down_blocks.0.resnets.0.conv2", "up_blocks.1.resnets.0.conv1"})
    sd = dict(unet.state_dict()) | {f"{k}.mask": v for k, v in masks.items()}
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "m" / "diffusion_pytorch_model.safetensors")
    return tmp_path / "m"


def test_inspect_judges_the_layers_the_suite_judges(capsys, tmp_path):
    """A checkpoint that names its masked layers is judged on exactly those, by inspect as by the suite."""
    folder = _masked_folder(tmp_path)
    inspected = _inspect_json(capsys, str(folder))
    assert inspected["masked_layer_count"] == 2 and inspected["nm_compliance_row"] == 1.0
    _assert_same(inspected, _suite_numbers(folder))
    # --exclude-layers chooses the layers in both
    _assert_same(_inspect_json(capsys, str(folder), "--exclude-layers", "conv_out"),
                 _suite_numbers(folder, exclude_layers=("conv_out",)))


@pytest.mark.skipif(not MASKPRO_BEST.exists(), reason="shared fixtures not present")
def test_inspect_equals_suite_on_the_real_maskpro_checkpoint(capsys):
    inspected = _inspect_json(capsys, str(MASKPRO_BEST), "--trust-pickle")
    suite = _suite_numbers(MASKPRO_BEST, trust_pickle=True)
    assert suite["masked_layer_count"] == 45 and suite["masked_layers_sparsity"] == 0.5  # the 45 wrapped layers
    _assert_same(inspected, suite)


@pytest.mark.skipif(not SHARED_FIXTURES.is_dir(), reason="needs ../shared/fixtures")
def test_inspect_of_a_file_that_only_needs_trust_exits_0_and_says_so(capsys):
    path = SHARED_FIXTURES / "real_formats" / "run" / "pruned" / "magnitude" / "ddpm_tiny_pruned"
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "options needed:       --trust-pickle" in text and "loads:                with --trust-pickle" in text


def test_inspect_never_says_nothing_is_needed_beside_loads_no(capsys, tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x00not a checkpoint" * 8)
    assert main(["inspect", str(tmp_path / "junk.pt")]) == 1
    text = capsys.readouterr().out
    assert "none beyond those given" not in text and "none would help" in text and "loads:                no" in text
