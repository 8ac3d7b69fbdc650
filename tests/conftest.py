"""Shared fixtures of the project's tests."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.builders import REPO_ROOT, save_pipeline, zoo_garbage_unet

#: The zoo builder's training code (scripts/maskpro_training.py) is imported by its own tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))


@pytest.fixture(scope="session", autouse=True)
def library_modules_imported():
    """Every maskpro_eval module imported before the first test (~4 s, triton included).

    pytester's in-process runs (runpytest_inprocess) drop from sys.modules whatever a run imported first;
    a library module imported lazily inside such a run (e.g. sampling.fused_resnet by the --fused-resnet
    start-up check) would later be imported a second time, with new classes, while its package keeps the
    old module as an attribute: ``pytest.raises(fr.FusedResnetError)`` then misses the error the new copy
    raises. Imported up front, every run finds the modules in place and keeps them."""
    import importlib
    import pkgutil

    import maskpro_eval
    for info in pkgutil.walk_packages(maskpro_eval.__path__, "maskpro_eval."):
        importlib.import_module(info.name)


@pytest.fixture
def project_root_pytest(pytester, monkeypatch):
    """``run(*ARGS)``: ``pytest -p no:cacheprovider ARGS`` typed in the project root -> (exit code, stdout +
    stderr). In-process (pytester.runpytest_inprocess with the project root as the working directory: pytest
    finds the rootdir and ini file and loads the entry-point plugin with a new Config and plugin manager, as
    a fresh ``pytest`` does), since a fresh interpreter costs 4-8 s per case and these cases end at start-up
    or collection. Fresh-process runs of the plugin: tests/test_plugin_options.py's
    test_quick_run_with_model_outside_project, tests/test_html_report.py, tests/test_verdict.py and CI's own
    ``pytest -m quick``. The using module needs ``pytest_plugins = ["pytester"]``."""
    monkeypatch.chdir(REPO_ROOT)

    def run(*args):
        result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)
        return int(result.ret), "\n".join(result.outlines + result.errlines).strip()
    return run


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``):
    tiny convolutions on a shared 2-CPU box run ~20x faster than with two (spin-waits)."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def small_ref(tmp_path_factory):
    """A 48-image FID reference (.npz of uint8 images) cut from the bundled digits set."""
    from maskpro_eval.checkpoints.zoo import zoo_reference_images
    path = tmp_path_factory.mktemp("ref") / "ref.npz"
    np.savez(path, images=zoo_reference_images()[:48])
    return path


@pytest.fixture(scope="session")
def shared_fid_cache(tmp_path_factory):
    """One --fid-cache-dir for the suite runs of a test session: a reference's statistics (the 397 held-out
    digits: ~40 s of CPU Inception) are computed by the first run that needs them. The cache is keyed by
    the reference's content, protocol and weights, and written atomically, so runs cannot disturb each other."""
    return tmp_path_factory.mktemp("fid_cache")


@pytest.fixture(scope="session")
def golden():
    """The golden FID fixture's images (A, B: 256 each), their real Inception features and FID, computed once
    per session (~45 s on 2 CPU cores; tests.test_fid.golden_run) for every test that needs them."""
    from tests.test_fid import golden_run
    return golden_run()


@pytest.fixture(scope="session")
def garbage_model(tmp_path_factory):
    """An untrained UNet of the zoo's architecture: its samples are noise, not digits."""
    return save_pipeline(zoo_garbage_unet(), tmp_path_factory.mktemp("garbage") / "g")
