"""Command-line options of the evaluation suite -> EvalSettings and Thresholds."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from maskpro_eval.pytest_plugin.state import run_state

from maskpro_eval.analysis.layers import DEFAULT_EXCLUDE_LAYERS
from maskpro_eval.evaluation import EvalSettings
from maskpro_eval.analysis.nm import parse_nm
from maskpro_eval.gating.thresholds import Thresholds


#: Full-tier gate options: (tier, thresholds key, option).
FULL_THRESHOLD_OPTIONS = [
    ("full", "max_fid", "--max-fid"),
    ("full", "max_fid_increase", "--max-fid-increase"),
    ("full", "max_fid_increase_relative", "--max-fid-increase-relative"),
    ("full", "max_kid", "--max-kid"),
    ("full", "max_consistency_std", "--max-consistency-std"),
    ("full", "max_drift_mse_mean", "--max-drift-mse"),
    ("full", "min_precision", "--min-precision"),
    ("full", "min_recall", "--min-recall"),
]


def uses_demo_zoo(config) -> bool:
    """No model given: the run evaluates the bundled demo zoo (with its own thresholds and protocol)."""
    return not config.getoption("--checkpoint") and not config.getoption("--training-dir")


def pytest_addoption(parser):
    g = parser.getgroup("maskpro-eval", "maskpro-eval: models under test")
    g.addoption("--checkpoint", action="append", default=[], metavar="[NAME=]PATH",
                help="model under test (repeatable). PATH may be demo:NAME for a bundled zoo model. "
                     "Default: the demo zoo (demo:magnitude_2of4, demo:maskpro_2of4).")
    g.addoption("--baseline", default=None, metavar="[NAME=]PATH",
                help="dense/reference model for relative gates (default with the zoo: demo:dense)")
    g.addoption("--original", default=None, metavar="[NAME=]PATH",
                help="the original (unpruned) model, for compare mode")
    g.addoption("--base-model", default=None, metavar="PATH",
                help="architecture/weights for checkpoints that carry none (MaskPro trainer/state "
                     "files, mask folders, plain state dicts)")
    g.addoption("--trust-pickle", action="store_true", default=False,
                help="allow loading pickled modules (executes code from the file: only for files you trust)")
    g.addoption("--nm", default=None, metavar="N:M",
                help="N:M pattern to judge (default: from the checkpoint, else 2:4)")
    g.addoption("--exclude-layers", action="append", default=None, metavar="REGEX",
                help="layers left dense (repeatable; default: conv_in, conv_out, time_embedding.*, "
                     "*time_emb_proj)")
    g.addoption("--min-nm-compliance", type=float, default=None,
                help="minimum N:M compliance over masked layers (default 0.90)")
    g.addoption("--target-sparsity", type=float, default=None,
                help="sparsity the model must reach (default: 1 - N/M over the masked layers)")
    g.addoption("--sparsity-tolerance", type=float, default=None,
                help="allowed |sparsity - target| (default 0.02)")
    g.addoption("--sparsity-scope", choices=("masked", "global"), default=None,
                help="which sparsity --target-sparsity refers to (default: masked layers)")
    g.addoption("--thresholds", default=None, metavar="TOML",
                help="thresholds file (default: evaluation_tests/thresholds.toml)")
    g.addoption("--device", default="cpu", help="torch device for evaluation (default cpu)")
    g.addoption("--seed", type=int, default=0, help="seed of every noise draw (default 0)")
    g.addoption("--quick-samples", type=int, default=8, help="samples in the quick tier (default 8)")
    g.addoption("--quick-steps", type=int, default=20, help="DDIM steps in the quick tier (default 20)")
    g.addoption("--reports-dir", default="reports", help="where run folders are written (default reports/)")
    g.addoption("--run-name", default=None, help="name of this run's folder (default: <time>-<tier>)")
    g.addoption("--results-json", default=None, metavar="PATH",
                help="also write evaluation_results.json here")


def _settings(config) -> EvalSettings:
    nm = config.getoption("--nm")
    exclude = config.getoption("--exclude-layers")
    return EvalSettings(
        nm=parse_nm(nm) if nm else None,
        exclude_layers=tuple(exclude) if exclude else DEFAULT_EXCLUDE_LAYERS,
        base_model=config.getoption("--base-model"),
        trust_pickle=config.getoption("--trust-pickle"),
        device=config.getoption("--device"),
        seed=config.getoption("--seed"),
        quick_samples=config.getoption("--quick-samples"),
        quick_steps=config.getoption("--quick-steps"),
    )


def _thresholds(config) -> Thresholds:
    cli = {"quick": {
        "min_nm_compliance": config.getoption("--min-nm-compliance"),
        "target_sparsity": config.getoption("--target-sparsity"),
        "sparsity_tolerance": config.getoption("--sparsity-tolerance"),
        "sparsity_scope": config.getoption("--sparsity-scope"),
    }}
    for tier, key, opt in FULL_THRESHOLD_OPTIONS:
        cli.setdefault(tier, {})[key] = config.getoption(opt)
    path = config.getoption("--thresholds")
    if path is None:
        default = "thresholds_demo.toml" if uses_demo_zoo(config) else "thresholds.toml"
        path = config.rootpath / "evaluation_tests" / default
        path = path if path.is_file() else None
    return Thresholds.from_file(path, cli)


#: The suite's tier markers, registered by the plugin itself (a user's project needs no ini entry).
TIER_MARKERS = (
    "quick: seconds on a CPU: load, sparsity, N:M, a few samples, a forward check",
    "full: FID/KID and friends at paper sample counts, HTML report",
    "compare: several models side by side",
    "workflow: a training run's checkpoints",
    "gpu: needs a CUDA GPU (skips cleanly without one)",
)


#: (option, smallest allowed value) of the numeric options; None values (unset) are not checked.
_MINIMA = (("--seed", 0), ("--quick-samples", 1), ("--quick-steps", 1), ("--num-samples", 1), ("--steps", 1),
           ("--eta", 0.0), ("--batch-size", 1), ("--consistency-seeds", 0), ("--kid-subsets", 1),
           ("--kid-subset-size", 2), ("--prdc-k", 1))


def _check_device(text: str) -> None:
    import torch
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {text!r} is not a torch device. Fix: --device cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {text}: no CUDA device is usable on this machine "
                             "(torch.cuda.is_available() is False). Fix: --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s). "
                             f"Fix: --device cuda:0 .. cuda:{torch.cuda.device_count() - 1}")


def _check_triton_kernels(config) -> None:
    """``--fused-resnet`` / ``--onepass-group-norm`` need the fast backend and a device where the Triton kernels
    run; they exclude each other."""
    import importlib
    given = [(opt, module, fn) for opt, module, fn in (
        ("--fused-resnet", "maskpro_eval.sampling.fused_resnet", "fused_resnet_unavailable"),
        ("--onepass-group-norm", "maskpro_eval.sampling.group_norm", "onepass_group_norm_unavailable"))
        if config.getoption(opt, default=False)]   # their modules are imported only when asked for
    if len(given) > 1:
        raise ValueError("--fused-resnet and --onepass-group-norm both replace the resnets' GroupNorm. "
                         "Fix: give one of them")
    for opt, module, fn in given:
        if config.getoption("--sampling-backend", default="standard") != "fast":
            raise ValueError(f"{opt} runs inside the fast sampler. Fix: add --sampling-backend fast")
        why = getattr(importlib.import_module(module), fn)(config.getoption("--device"))
        if why:
            raise ValueError(f"{opt}: {why}. Fix: --device cuda on a machine with an NVIDIA GPU, or drop {opt}")


def _check_compile_options(config) -> None:
    """``--compile-options``: KEY=VALUE pairs naming inductor options, with --compile-sampler (fast backend)."""
    text = config.getoption("--compile-options", default=None)
    if not text:
        return
    if not (config.getoption("--compile-sampler", default=False)
            and config.getoption("--sampling-backend", default="standard") == "fast"):
        raise ValueError("--compile-options sets options of the compiled UNet. Fix: add --sampling-backend fast "
                         "--compile-sampler, or drop --compile-options")
    from maskpro_eval.sampling.fast import FastSamplingError, check_inductor_options, parse_compile_options
    try:
        check_inductor_options(parse_compile_options(text))
    except FastSamplingError as exc:
        raise ValueError(f"--compile-options {text}: {exc}") from None


def _check_writable_dir(option: str, folder: Path) -> None:
    """The folder exists as a folder or can be created (its first existing ancestor is a writable folder)."""
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{option} {folder}: {probe} is a file, so the folder cannot be created. "
                         f"Fix: choose a path under a folder")
    if not os.access(probe, os.W_OK):
        raise ValueError(f"{option} {folder}: {probe} is not writable. Fix: choose a writable folder")


def check_options(config) -> None:
    """Bad option values stop the run at start-up (exit 4, one line naming the option and the fix)."""
    for option, minimum in _MINIMA:
        value = config.getoption(option)
        if value is not None and value < minimum:
            raise ValueError(f"{option} {value}: must be >= {minimum}. Fix: give {option} a value >= {minimum}"
                             + (" (omit it for the default)" if option == "--num-samples" else ""))
    _check_device(config.getoption("--device"))
    _check_triton_kernels(config)
    _check_compile_options(config)
    _check_writable_dir("--reports-dir", Path(config.invocation_params.dir) / config.getoption("--reports-dir"))
    for option in ("--results-json",):
        value = config.getoption(option)
        if value:
            path = Path(config.invocation_params.dir) / value
            if path.is_dir():
                raise ValueError(f"{option} {value} is a folder. Fix: give a file path (e.g. {path / 'results.json'})")
            _check_writable_dir(option, path.parent)
    for option in ("--samples-dir", "--fid-cache-dir"):
        value = config.getoption(option)
        if value:
            _check_writable_dir(option, Path(config.invocation_params.dir) / value)


def pytest_configure(config):
    for line in TIER_MARKERS:
        config.addinivalue_line("markers", line)
    try:
        check_options(config)
        nm = config.getoption("--nm")
        if nm:
            parse_nm(nm)
        state = run_state(config)
        state.settings = _settings(config)
        state.thresholds = _thresholds(config)
    except ValueError as exc:  # bad option values: one line, usage error, nothing written
        raise pytest.UsageError(f"maskpro-eval: {exc}") from None


@pytest.fixture(scope="session")
def eval_settings(pytestconfig) -> EvalSettings:
    return run_state(pytestconfig).settings


@pytest.fixture(scope="session")
def thresholds(pytestconfig) -> Thresholds:
    return run_state(pytestconfig).thresholds
