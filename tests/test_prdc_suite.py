"""Precision/recall gates and the FID-protocol checks in the full tier, run as users run it (pytester).

Samples are injected (a plugin replaces QualityEvaluator.samples per model name) so the gates see
known distributions: fresh digits (good), repeats of three digits (mode dropping: precise, no
recall) and uniform noise (imprecise). Real Inception on the CPU, small N."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tests.builders import REPO_ROOT
from tests.test_full_suite import run_full

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow

INJECT = '''
import numpy as np
from maskpro_eval.checkpoints.zoo import zoo_reference_images
from maskpro_eval.metrics.quality import QualityEvaluator


def _samples(self, model, seed=None, num=None):
    num = num or self.settings.num_samples
    digits = zoo_reference_images()
    if model.name == "dropper":
        return digits[200 + np.arange(num) % 3]
    if model.name == "noisy":
        return np.random.RandomState(0).randint(0, 256, (num,) + digits.shape[1:], dtype=np.uint8)
    return digits[200:200 + num]


QualityEvaluator.samples = _samples
'''


def test_mode_dropping_fails_recall_noise_fails_precision(pytester, small_ref, shared_fid_cache):
    """N = 48 against the session's 48-digit reference (its statistics and features cached once per session)."""
    pytester.makepyfile(inject_samples=INJECT)
    result = run_full(pytester, "-p", "inject_samples", "-k", "precision_recall",
                      "--checkpoint", "good=demo:dense", "--checkpoint", "dropper=demo:dense",
                      "--checkpoint", "noisy=demo:dense", "--fid-ref", str(small_ref), "--num-samples", "48",
                      "--min-precision", "0.5", "--min-recall", "0.3", fid_cache=shared_fid_cache,
                      inprocess=False)  # the plugin patches QualityEvaluator
    out = result.stdout.str()
    assert result.ret == 1, out[-3000:]
    data = json.loads((pytester.path / "reports" / "run" / "evaluation_results.json").read_text())
    gates = {(g["model"], g["metric"]): g for g in data["gates"]}
    assert gates[("good", "precision")]["passed"] and gates[("good", "recall")]["passed"], out[-3000:]
    assert gates[("dropper", "precision")]["passed"], gates[("dropper", "precision")]
    assert not gates[("dropper", "recall")]["passed"] and gates[("dropper", "recall")]["value"] < 0.1
    assert not gates[("noisy", "precision")]["passed"] and gates[("noisy", "precision")]["value"] < 0.2
    pr = data["models"]["dropper"]["quality"]["prdc"]
    assert pr["n_fake"] == 48 and pr["n_real"] == 48 and pr["nearest_k"] == 5 and pr["small_n"] is True
    assert set(pr) >= {"precision", "recall", "density", "coverage"}
    result.stdout.fnmatch_lines(["*[[]FAIL[]] dropper: recall = * (gate: recall >= 0.3); precision *SMALL N*"])
    summary = (pytester.path / "reports" / "run" / "evaluation_summary.md").read_text()
    assert "precision / recall" in summary and "small N" in summary
    result.stdout.fnmatch_lines(["dropper *P 1.00 R 0.00 (N=48, small N)*FAIL recall*"])


def _stats_file(path, protocol):
    meta = {"fid_protocol": protocol, "weights_sha256": "7ff4a85c" + "0" * 56, "n": 100}
    np.savez(path, mu=np.zeros(2048), sigma=np.eye(2048), n=np.asarray(100), meta=np.asarray(json.dumps(meta)))
    return path


def test_reference_of_other_protocol_stops_the_run(pytester):
    ref = _stats_file(pytester.path / "clean_stats.npz", "clean")
    result = run_full(pytester, "--checkpoint", "m=demo:dense", "--fid-ref", str(ref), "--fid-protocol", "standard")
    assert result.ret == 4, result.stdout.str()[-2000:]
    result.stdout.fnmatch_lines(["*bad input*protocol 'clean' but the samples use 'standard'*--fid-protocol clean*"])
