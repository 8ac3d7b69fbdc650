"""Precision/recall/density/coverage against the prdc package (random and real Inception features)."""
from __future__ import annotations

import numpy as np
import pytest

from maskpro_eval.metrics.prdc import PRDCError, prdc_from_features

pytestmark = pytest.mark.unit

prdc = pytest.importorskip("prdc", reason="pip install prdc (test extra)")

KEYS = ("precision", "recall", "density", "coverage")


def _check_equal(real, fake, k, **kw):
    ours = prdc_from_features(real, fake, nearest_k=k, **kw)
    ref = prdc.compute_prdc(real_features=real, fake_features=fake, nearest_k=k)
    for key in KEYS:
        assert ours[key] == pytest.approx(float(ref[key]), rel=1e-9, abs=1e-12), key
    return ours


@pytest.mark.parametrize("seed,shift,scale", [(0, 0.0, 1.0), (1, 0.5, 1.0), (2, 0.0, 0.4), (3, 1.0, 2.0)])
def test_prdc_matches_package_on_random_features(seed, shift, scale):
    rng = np.random.RandomState(seed)
    real = rng.randn(300, 16)
    fake = rng.randn(250, 16) * scale + shift
    ours = _check_equal(real, fake, 5)
    assert (ours["n_real"], ours["n_fake"], ours["nearest_k"]) == (300, 250, 5) and ours["small_n"]


def test_prdc_chunking_does_not_change_the_result():
    rng = np.random.RandomState(4)
    real, fake = rng.randn(120, 8), rng.randn(90, 8) + 0.3
    full = _check_equal(real, fake, 3)
    tiny = _check_equal(real, fake, 3, chunk_budget=500)  # chunks of a few rows
    assert {k: full[k] for k in KEYS} == {k: tiny[k] for k in KEYS}


def test_prdc_mode_dropping_and_noise_behave():
    rng = np.random.RandomState(5)
    real = rng.randn(400, 10)
    dropped = real[rng.choice(20, 400)] + 0.01 * rng.randn(400, 10)  # repeats of 20 real samples
    noisy = rng.randn(400, 10) * 3.0
    d = prdc_from_features(real, dropped)
    n = prdc_from_features(real, noisy)
    assert d["precision"] > 0.9 and d["recall"] < 0.2
    assert n["precision"] < 0.5


def test_prdc_errors():
    with pytest.raises(PRDCError, match="dimensions"):
        prdc_from_features(np.zeros((10, 3)), np.zeros((10, 4)))
    with pytest.raises(PRDCError, match="nearest_k=5 with 4 real"):
        prdc_from_features(np.random.randn(4, 3), np.random.randn(10, 3))
    with pytest.raises(PRDCError, match="NaN"):
        prdc_from_features(np.full((10, 3), np.nan), np.zeros((10, 3)))


@pytest.mark.slow
def test_prdc_on_real_inception_features(golden):
    """Real pool3 features: the golden fixture's first 64 images of A vs of B (the session's golden features,
    computed once in batches of 16 as before: the same arrays as extracting the 64 images alone)."""
    real = golden["fa"][:64]
    fake = golden["fb"][:64]
    _check_equal(real, fake, 5)
    same = prdc_from_features(real, real[::-1].copy(), nearest_k=5)  # exact ties: 1 / 1 / 1 / 1 exactly
    assert {k: same[k] for k in KEYS} == dict.fromkeys(KEYS, 1.0)


@pytest.mark.parametrize("seed,n,d,dtype,budget", [
    (0, 64, 333, np.float32, 1 << 26), (4, 150, 2048, np.float32, 1 << 26), (5, 257, 2048, np.float64, 1799),
    (6, 150, 64, np.float32, 1 << 26), (24, 150, 333, np.float32, 1 << 26), (33, 64, 333, np.float64, 1 << 26)])
def test_a_set_against_a_permutation_of_itself_scores_exactly_one(seed, n, d, dtype, budget):
    """Exact ties (the k-th neighbour is itself a fake) stay ties whatever order the matmul sums in.

    Without the tie band each case here scored density 1.0008-1.025 on the 2-core dev CPU (rounding put
    some k-th neighbours strictly inside their ball), and CI's CPU gave 1.009 for 64 real Inception
    features against their reverse.
    """
    rng = np.random.RandomState(seed)
    real = (np.abs(rng.randn(n, d)) * rng.uniform(0.1, 3.0)).astype(dtype)
    out = prdc_from_features(real, real[rng.permutation(n)], nearest_k=5, chunk_budget=budget)
    assert {k: out[k] for k in KEYS} == dict.fromkeys(KEYS, 1.0)


def test_quality_records_state_n_kid_standard_error_and_prdc():
    """QualityEvaluator.kid_record / prdc: KID with s.e., subset size as used and N; PRDC with N, small-N flag."""
    from maskpro_eval.metrics.fid import feature_statistics
    from maskpro_eval.metrics.quality import FullSettings, QualityEvaluator
    from maskpro_eval.metrics.reference import ReferenceStats

    rng = np.random.RandomState(6)
    ref_f, model_f = rng.randn(80, 8).astype(np.float32), rng.randn(50, 8).astype(np.float32)
    q = QualityEvaluator(FullSettings(num_samples=50, kid_subsets=4, kid_subset_size=1000, prdc_k=3))
    mu, sigma = feature_statistics(ref_f)
    q._reference = ReferenceStats(mu=mu, sigma=sigma, n=80, features=ref_f, source="r", kind="images",
                                  content_sha256=None, weights_sha256=None, protocol="standard")
    q.features = lambda model, seed=None, num=None: model_f

    class M:
        name = "m"

    rec = q.kid_record(M())
    assert rec["kid_subset_size"] == 50 and rec["kid_n"] == 50 and rec["kid_subsets"] == 4
    assert rec["kid_se"] == pytest.approx(rec["kid_std"] / 2)
    pr = q.prdc(M())
    assert (pr["n_real"], pr["n_fake"], pr["nearest_k"], pr["small_n"]) == (80, 50, 3, True)
    ref = prdc.compute_prdc(real_features=ref_f, fake_features=model_f, nearest_k=3)
    assert pr["recall"] == pytest.approx(float(ref["recall"]), rel=1e-9)
