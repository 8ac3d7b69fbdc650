"""The bad-input audit, table-driven: each bad option or input stops the run at start-up with exit 4
and ONE line naming the option (or file) and the fix, before any test runs and with nothing written."""
from __future__ import annotations

import pytest

from tests.builders import REPO_ROOT

# (arguments, text the one line must contain)
CASES = [
    (["--device=cuda"], "--device cuda: no CUDA device is usable"),
    (["--device=bogus"], "--device 'bogus' is not a torch device"),
    (["--num-samples=-5"], "--num-samples -5: must be >= 1"),
    (["--num-samples=0"], "--num-samples 0: must be >= 1"),
    (["--quick-samples=0"], "--quick-samples 0: must be >= 1"),
    (["--quick-steps=0"], "--quick-steps 0: must be >= 1"),
    (["--kid-subsets=0"], "--kid-subsets 0: must be >= 1"),
    (["--batch-size=0"], "--batch-size 0: must be >= 1"),
    (["--seed=-1"], "--seed -1: must be >= 0"),
    (["--fused-resnet"], "--fused-resnet runs inside the fast sampler. Fix: add --sampling-backend fast"),
    (["--fused-resnet", "--sampling-backend", "fast"], "--fused-resnet: fused ResnetBlock2D kernels are Triton GPU"),
    (["--onepass-group-norm"], "--onepass-group-norm runs inside the fast sampler. Fix: add --sampling-backend fast"),
    (["--onepass-group-norm", "--sampling-backend", "fast"], "--onepass-group-norm: the one-pass GroupNorm is a Triton GPU"),
    (["--onepass-group-norm", "--fused-resnet"], "both replace the resnets' GroupNorm. Fix: give one of them"),
    (["--compile-options", "max_autotune_pointwise=1"], "--compile-options sets options of the compiled UNet"),
    (["--sampling-backend", "fast", "--compile-sampler", "--compile-options", "max_autotune_pointwse=1"],
     "unknown inductor option(s) ['max_autotune_pointwse']"),
    (["--sampling-backend", "fast", "--compile-sampler", "--compile-options", "max_autotune_pointwise"],
     "expected KEY=VALUE"),
    (["--checkpoint=m=demo:nosuch"], "unknown demo model 'nosuch'"),
    (["--checkpoint", "/nonexistent/model"], "/nonexistent/model: does not exist"),
    (["--baseline", "/nonexistent/dense"], "--baseline: /nonexistent/dense: does not exist"),
    (["--reports-dir", "README.md/sub"], "README.md is a file, so the folder cannot be created"),
    (["--results-json", "README.md/r.json"], "README.md is a file, so the folder cannot be created"),
    (["--results-json", "src"], "--results-json src is a folder"),
    (["--nm", "2-4"], "is neither 'N:M'"),
    (["--min-nm-compliance=1.5"], "threshold min_nm_compliance (command line): 1.5 is outside [0.0, 1.0]"),
    (["--target-sparsity=2"], "threshold target_sparsity (command line): 2.0 is outside [0.0, 1.0]"),
    (["--sparsity-tolerance=-0.5", "--min-nm-compliance=-1"],   # every problem at once
     "min_nm_compliance (command line): -1.0 is outside [0.0, 1.0]; threshold sparsity_tolerance (command line): -0.5"),
    # habits from the original framework: one "did you mean" line, not pytest's usage dump
    (["--num_samples=5"], "unknown option --num_samples: did you mean --num-samples?"),
    (["--training_dir", "runs/x"], "unknown option --training_dir: did you mean --training-dir?"),
    (["--skip_fid"], "unknown option --skip_fid: run `-m quick`"),
    (["--magnitude", "runs/mag"], "unknown option --magnitude: give the model as --checkpoint magnitude=PATH"),
]


pytest_plugins = ["pytester"]


@pytest.fixture
def quick_from_root(project_root_pytest):
    """``pytest -m quick ARGS`` typed in the project root -> (exit code, output); in-process (conftest)."""
    return lambda *args: project_root_pytest("-m", "quick", *args)


@pytest.mark.parametrize("args, text", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_option_stops_at_startup(args, text, quick_from_root):
    returncode, out = quick_from_root(*args)
    assert returncode == 4, out[-2000:]
    errors = [line for line in out.splitlines() if line.startswith("ERROR: ")]
    assert len(errors) == 1 and text in errors[0] and "maskpro-eval" in errors[0], out[-2000:]
    assert "passed" not in out and "failed" not in out  # no test ran
    assert "usage:" not in out


@pytest.mark.parametrize("toml, text", [
    ('[quick]\nmin_nm_compliance = "high"\n', "[quick] min_nm_compliance: 'high' is a str; expected int or float"),
    ("[quick]\nsparsity_scope = \"all\"\n", "[quick] sparsity_scope: 'all' is not one of ['masked', 'global']"),
    ("[full.no_baseline]\nmax_fid = -3\n", "[full.no_baseline] max_fid: -3 is outside [0.0, inf]"),
    ("quick = 3\n", "[quick] is a int"),
])
def test_bad_thresholds_file_stops_at_startup(toml, text, tmp_path, quick_from_root):
    path = tmp_path / "t.toml"
    path.write_text(toml)
    returncode, out = quick_from_root("--thresholds", str(path))
    errors = [line for line in out.splitlines() if line.startswith("ERROR: ")]
    assert returncode == 4 and len(errors) == 1, out[-2000:]
    assert text in errors[0] and str(path) in errors[0], errors[0]


@pytest.mark.slow
def test_corrupt_sample_store_stops_the_full_tier_at_startup(pytester, small_ref, shared_fid_cache):
    """A damaged store.json in the sample cache used to error inside the tests (verdict PASS, exit 1)."""
    from tests.test_full_suite import run_full
    args = ("--checkpoint", "demo:dense", "--fid-ref", str(small_ref), "--max-fid", "1000", "--max-kid", "10",
            "--num-samples", "4", "--steps", "2")
    assert run_full(pytester, *args, fid_cache=shared_fid_cache).ret == 0
    (header,) = list((pytester.path / "reports" / "samples_cache").rglob("store.json"))
    header.write_text("{broken")
    result = run_full(pytester, *args, "--run-name", "again", fid_cache=shared_fid_cache)
    assert result.ret == 4, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines([f"*bad input*{header}: unreadable store header*Fix: delete*--samples-dir*"])
    assert not (pytester.path / "reports" / "again").exists()


# ---------------------------------------------------------------------------------------------
# The audit's library-level cases: each bad input -> the error type and the words of its one line.

def _case_config_key(tmp):
    import json as _json

    from maskpro_eval.checkpoints import load_checkpoint
    from tests.builders import tiny_unet
    tiny_unet().save_pretrained(tmp / "u")
    cfg = _json.loads((tmp / "u" / "config.json").read_text())
    cfg["norm_num_grups"] = cfg.pop("norm_num_groups")
    (tmp / "u" / "config.json").write_text(_json.dumps(cfg))
    load_checkpoint(tmp / "u")


def _case_non_psd_sigma(tmp):
    import numpy as np

    from maskpro_eval.metrics.reference import load_reference
    sigma = np.eye(2048)
    sigma[3, 3] = -1.0
    np.savez(tmp / "s.npz", mu=np.zeros(2048), sigma=sigma)
    load_reference(tmp / "s.npz", extractor=None, cache_dir=tmp)


def _case_nm_string(tmp):
    from maskpro_eval.checkpoints import load_checkpoint
    from maskpro_eval.checkpoints.zoo import resolve_model_spec
    load_checkpoint(resolve_model_spec("demo:dense"), nm=(3, 2))


def _case_truncated_pt(tmp):
    import torch

    from maskpro_eval.checkpoints import load_checkpoint
    from tests.builders import tiny_unet
    torch.save(tiny_unet().state_dict(), tmp / "f.pt")
    data = (tmp / "f.pt").read_bytes()
    (tmp / "f.pt").write_bytes(data[: len(data) // 2])
    load_checkpoint(tmp / "f.pt")


def _case_store_json(tmp):
    from maskpro_eval.sampling.store import SampleStore
    (tmp / "s").mkdir()
    (tmp / "s" / "store.json").write_text("{")
    SampleStore(tmp / "s", metadata={"a": 1})


def _case_inception_weights(tmp):
    from maskpro_eval.metrics.inception import InceptionFeatureExtractor, find_inception_weights
    (tmp / "w.pt").write_bytes(find_inception_weights().read_bytes()[:-1] + b"!")
    InceptionFeatureExtractor(weights_path=tmp / "w.pt")


def _case_thresholds_value(tmp):
    from maskpro_eval.gating.thresholds import Thresholds
    (tmp / "t.toml").write_text("[quick]\nmin_nm_compliance = 1.5\n")
    Thresholds.from_file(tmp / "t.toml")


LIBRARY_CASES = [
    (_case_config_key, "CheckpointError", "'norm_num_grups' (did you mean 'norm_num_groups'?)"),
    (_case_non_psd_sigma, "ReferenceSetError", "not positive semi-definite"),
    (_case_nm_string, "ValueError", "load_checkpoint(nm=...)"),
    (_case_truncated_pt, "CheckpointError", "zip archive whose end (the zip directory) is missing"),
    (_case_store_json, "SampleStoreError", "--samples-dir"),
    (_case_inception_weights, "PickleNotTrustedError", "--trust-pickle"),
    (_case_thresholds_value, "CheckpointError", "min_nm_compliance: 1.5 is outside [0.0, 1.0]"),
]


@pytest.mark.parametrize("case, error, text", LIBRARY_CASES, ids=[c.__name__[6:] for c, _, _ in LIBRARY_CASES])
def test_bad_input_gives_one_actionable_line(case, error, text, tmp_path):
    with pytest.raises(Exception) as ei:
        case(tmp_path)
    msg = str(ei.value)
    assert type(ei.value).__name__ == error, (type(ei.value), msg)
    assert text in msg and "\n" not in msg, msg
    if error != "ValueError":
        assert "Fix" in msg or "fix" in msg, msg

# Audit cases tested where their machinery lives (each failed before its fix):
#   damaged features cache recomputed: tests/test_quality_cache.py; two runs in one second:
#   tests/test_atomic_io.py; errors make the verdict "error": tests/test_verdict.py; greyscale/size notes:
#   tests/test_terminal_table.py, tests/test_fid.py::test_fid_of_sets_of_different_sizes_warns_and_records_both.


def test_good_compile_options_are_accepted_and_reach_the_sampling_protocol(quick_from_root):
    """The valid form of the --compile-options cases above starts (collection only), and the full tier's
    sampling config carries the parsed options."""
    from types import SimpleNamespace

    from maskpro_eval.pytest_plugin.quality import compile_options
    args = ["--sampling-backend", "fast", "--compile-sampler", "--compile-options", "max_autotune_pointwise=1"]
    returncode, out = quick_from_root(*args, "--co", "-q")
    assert returncode == 0, out[-2000:]
    cfg = SimpleNamespace(getoption=lambda name, default=None: "max_autotune_pointwise=1,split_reductions=0")
    assert compile_options(cfg) == {"max_autotune_pointwise": True, "split_reductions": False}
