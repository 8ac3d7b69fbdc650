"""The full tier's features cache: a damaged cached array is detected by its checksum and recomputed,
so it can never silently change the FID."""
from __future__ import annotations

import numpy as np

from maskpro_eval.evaluation import EvalSettings, EvaluatedModel, parse_model_spec
from maskpro_eval.metrics.quality import FullSettings, QualityEvaluator
from maskpro_eval.sampling.config import SamplingConfig


class CountingFeatures:
    """A deterministic stand-in for Inception (2048-d, per-image pixel statistics) that counts calls."""

    weights_sha256 = "f" * 64
    calls = 0

    def features(self, images, batch_size=64):
        CountingFeatures.calls += 1
        x = images.reshape(len(images), -1).astype(np.float32) / 255.0
        return np.repeat(x[:, :64], 32, axis=1)


def test_damaged_features_cache_is_recomputed(tmp_path):
    settings = FullSettings(sampling=SamplingConfig(num_inference_steps=2, batch_size=4), num_samples=4,
                            samples_dir=str(tmp_path), progress=False)
    model = EvaluatedModel(parse_model_spec("demo:dense"), EvalSettings())
    model.load()
    first = QualityEvaluator(settings, extractor=CountingFeatures()).features(model)
    (cached,) = list(tmp_path.rglob("features-*.npz"))
    again = QualityEvaluator(settings, extractor=CountingFeatures())
    calls = CountingFeatures.calls
    assert np.array_equal(again.features(model), first) and CountingFeatures.calls == calls  # read from cache
    raw = bytearray(cached.read_bytes())
    raw[1000:1200] = bytes(200)  # overwrite bytes inside the stored feature array (npz is not compressed)
    cached.write_bytes(bytes(raw))
    fresh = QualityEvaluator(settings, extractor=CountingFeatures()).features(model)
    assert CountingFeatures.calls == calls + 1  # the damage was noticed: features recomputed
    assert np.array_equal(fresh, first)


def test_store_reads_and_writes_are_their_own_phase(tmp_path):
    """Reading the samples back from their store and writing/reading the features cache is timed as
    ``store_io`` (not left outside every phase)."""
    settings = FullSettings(sampling=SamplingConfig(num_inference_steps=2, batch_size=4), num_samples=4,
                            samples_dir=str(tmp_path), progress=False)
    model = EvaluatedModel(parse_model_spec("demo:dense"), EvalSettings())
    model.load()
    q = QualityEvaluator(settings, extractor=CountingFeatures())
    q.features(model)
    phases = q.timer.summary()["phases"]
    assert {"sampling", "features", "store_io"} <= set(phases) and phases["store_io"]["seconds"] > 0
    names = list(phases)
    assert names.index("features") < names.index("store_io")
    cached = QualityEvaluator(settings, extractor=CountingFeatures())
    cached.features(model)
    assert set(cached.timer.summary()["phases"]) == {"store_io"}   # only the cache was read
