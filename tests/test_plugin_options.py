"""The plugin is installed (pytest11) and knows its options before pytest parses the command line:
every path option works in the space form with an existing path OUTSIDE the project, with and
without ``NAME=``, and the rootdir stays the project (its markers, testpaths and addopts apply)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from tests.builders import REPO_ROOT, SHARED_FIXTURES

pytest_plugins = ["pytester"]

ZOO = REPO_ROOT / "src" / "maskpro_eval" / "demo_zoo"


def test_entry_point_is_registered():
    eps = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert eps.get("maskpro_eval") == "maskpro_eval.pytest_plugin"


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """Existing files and folders outside the project, one per kind of path option."""
    root = tmp_path_factory.mktemp("outside")
    assert REPO_ROOT not in root.parents
    shutil.copytree(ZOO / "magnitude_2of4", root / "model")
    shutil.copytree(ZOO / "dense", root / "dense")
    (root / "reports").mkdir()
    (root / "samples").mkdir()
    (root / "cache").mkdir()
    (root / "results.json").write_text("{}")
    (root / "thresholds.toml").write_text("[quick]\nmin_nm_compliance = 0.5\n")
    shutil.copy(ZOO / "digits_heldout_32px.npz", root / "ref.npz")
    run = SHARED_FIXTURES / "real_formats" / "run" / "maskpro" / "training"
    if run.is_dir():
        shutil.copytree(run, root / "training")
    return root


# (option, path under `outside`, NAME= allowed)
PATH_OPTIONS = [
    ("--checkpoint", "model", True), ("--baseline", "dense", True), ("--original", "dense", True),
    ("--base-model", "dense", False), ("--reports-dir", "reports", False), ("--fid-ref", "ref.npz", False),
    ("--thresholds", "thresholds.toml", False), ("--training-dir", "training", False),
    ("--results-json", "results.json", False), ("--samples-dir", "samples", False),
    ("--fid-cache-dir", "cache", False),
]


@pytest.fixture
def collect_from_root(project_root_pytest):
    """``pytest --collect-only -q -m "quick or workflow" ARGS`` typed in the project root -> (exit code,
    output); in-process (conftest), test_quick_run_with_model_outside_project below is the fresh-process run."""
    return lambda *args: project_root_pytest("--collect-only", "-q", "-m", "quick or workflow", *args)


CASES = [(o, r, False) for o, r, _ in PATH_OPTIONS] + [(o, r, True) for o, r, named in PATH_OPTIONS if named]


@pytest.mark.parametrize("option,rel,named", CASES,
                         ids=[f"{o}{' NAME=PATH' if n else ' PATH'}" for o, _, n in CASES])
def test_path_option_space_form_outside_project(outside, option, rel, named, collect_from_root):
    path = outside / rel
    if not path.exists():
        pytest.skip(f"{path} needs ../shared/fixtures")
    value = f"mine={path}" if named else str(path)
    extra = ["--trust-pickle"] if option == "--training-dir" else []
    returncode, out = collect_from_root(option, value, *extra)
    assert returncode == 0, out[-3000:]
    assert "unrecognized arguments" not in out
    assert "evaluation_tests/test_quick.py::" in out or "evaluation_tests/test_workflow.py::" in out, out[-2000:]
    assert "PytestUnknownMarkWarning" not in out  # the project's pyproject.toml was read: rootdir unchanged
    if option == "--checkpoint":
        assert f"test_checkpoint_loads[{'mine' if named else 'model'}]" in out


def test_quick_run_with_model_outside_project(outside, tmp_path):
    """The first thing a user types: their own checkpoint folder, space form, from the project root."""
    reports = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "quick", "-q", "-p", "no:cacheprovider",
                           "--checkpoint", str(outside / "model"), "--baseline", str(outside / "dense"),
                           "--reports-dir", str(reports), "--run-name", "r", "--quick-samples", "2",
                           "--quick-steps", "2", "--benchmark-disable"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert (reports / "r" / "evaluation_results.json").is_file()
