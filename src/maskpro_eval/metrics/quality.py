"""Full-tier quality measurements of one model: samples (chunked, resumable), Inception features
(cached next to the samples), FID/KID against a reference set, consistency over seeds, and paired
drift against a baseline on identical noise."""
from __future__ import annotations

import hashlib
import logging
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from maskpro_eval.reporting.atomic_io import atomic_savez
from maskpro_eval.sampling.config import SamplingConfig

log = logging.getLogger(__name__)

#: Inception features per second on a 2-core CPU (measured on this project's CI machine), for estimates.
CPU_INCEPTION_IMG_S = 12.0

#: Seed offset of the baseline samples used as ``--fid-ref baseline`` (independent of the models' noise).
BASELINE_REFERENCE_SEED_OFFSET = 1_000_003


@dataclass
class FullSettings:
    """Full-tier protocol: how samples are drawn (``sampling``, the one :class:`SamplingConfig`) plus
    how many, the reference set and the metrics' settings. Defaults: the published DDPM CIFAR-10
    pruning protocol (50,000 samples, DDIM 100 steps, eta 0)."""

    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    num_samples: int = 50_000
    fid_ref: str | None = None
    inception_weights: str | None = None
    fid_protocol: str = "standard"
    fid_ref_protocol: str | None = None
    prdc_k: int = 5
    feature_batch_size: int = 64
    consistency_seeds: int = 0
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    samples_dir: str = "reports/samples_cache"
    cache_dir: str | None = None
    progress: bool = True
    trust_weights: bool = False   # load --inception-weights that are not the standard file (--trust-pickle)

    @property
    def seed(self) -> int:
        return self.sampling.seed

    @property
    def device(self) -> str:
        return self.sampling.device or "cpu"

    def sampling_config(self, seed: int | None = None) -> SamplingConfig:
        """The sampling protocol, at ``seed`` (default: the run's)."""
        return self.sampling if seed is None else replace(self.sampling, seed=int(seed))

    def protocol(self) -> dict:
        """What defines the full tier's numbers (not where files go, not batch sizes)."""
        sc = self.sampling
        return {"num_samples": self.num_samples, "sampler": sc.sampler, "steps": sc.num_inference_steps,
                "eta": sc.eta, "seed": sc.seed, "dtype": sc.dtype, "device": self.device,
                "sampling_backend": sc.backend, "compile": sc.compile, **({"fused_resnet": True} if sc.fused_resnet else {}),
                **({"onepass_group_norm": True} if sc.onepass_group_norm else {}),
                **({"compile_options": sc.compile_options} if sc.compile_options else {}),
                "fid_ref": self.fid_ref,
                "inception_weights": self.inception_weights, "fid_protocol": self.fid_protocol,
                "fid_ref_protocol": self.fid_ref_protocol, "prdc_k": self.prdc_k, "consistency_seeds": self.consistency_seeds,
                "kid_subsets": self.kid_subsets, "kid_subset_size": self.kid_subset_size}


def _sha256(feats: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(feats, dtype=np.float32).tobytes()).hexdigest()


def _load_checked_features(path: Path, shape: tuple) -> np.ndarray | None:
    """Cached features if the file is whole and its checksum matches, else None (recomputed).

    A damaged cache file would silently change the FID, so every cached array carries its sha256."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            feats, digest = z["features"], str(z["sha256"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        log.warning("%s: unreadable features cache (%s); recomputing", path, exc)
        return None
    if feats.shape != shape or _sha256(feats) != digest:
        log.warning("%s: features cache fails its checksum (damaged); recomputing", path)
        return None
    return feats


def _histogram(values, bins: int = 30) -> dict:
    counts, edges = np.histogram(values, bins=bins)
    return {"counts": counts.tolist(), "edges": edges.tolist()}


def drift_summary(drift: dict) -> dict:
    """The JSON-able part of :meth:`QualityEvaluator.drift` (per-sample arrays dropped, histogram kept)."""
    return {k: v for k, v in drift.items() if k not in ("mse", "psnr")}


class QualityEvaluator:
    """Computes and caches everything the full tier gates on, for any number of models."""

    def __init__(self, settings: FullSettings, extractor=None, timer=None):
        from maskpro_eval.runtime.phases import PhaseTimer
        self.settings = settings
        self._extractor = extractor
        self._reference = None
        self._features: dict = {}
        self.timer = timer if timer is not None else PhaseTimer()   # wall time per phase (runtime.phases)
        self._macs: dict = {}

    def _record_sampling(self, model, stats: dict) -> None:
        """Sampling and compile/warm-up phases from ``generate_to_store``'s per-chunk times.

        A warm-up measured apart (``warmup_seconds``: the fast backend) is booked as ``compile_warmup`` (none
        when 0); else, with two or more chunks made, the first chunk's excess over the steady rate of the
        others is booked so (an estimate: it also holds the first allocations and cuDNN's choices)."""
        chunks = stats.get("chunks") or []
        if not chunks:
            return
        steps = stats["steps"]
        if model.name not in self._macs:
            from maskpro_eval.analysis.macs import layer_macs
            try:
                self._macs[model.name] = sum(layer_macs(model.unet).values())
            except Exception:  # noqa: BLE001 - FLOPs are a figure, not a requirement
                self._macs[model.name] = 0
        macs = self._macs[model.name]
        warm = 0.0
        if "warmup_seconds" in stats:
            if stats["warmup_seconds"]:
                self.timer.add("compile_warmup", float(stats["warmup_seconds"]))
        elif len(chunks) >= 2:
            rest_n, rest_s = sum(n for n, _ in chunks[1:]), sum(t for _, t in chunks[1:])
            if rest_n and rest_s > 0:
                warm = max(0.0, chunks[0][1] - chunks[0][0] * rest_s / rest_n)
        n = sum(c for c, _ in chunks)
        if warm:
            self.timer.add("compile_warmup", warm)
        self.timer.add("sampling", sum(t for _, t in chunks) - warm, images=n, img_steps=n * steps,
                       flops=2.0 * macs * n * steps)

    # ---------------------------------------------------------------- building blocks
    @property
    def extractor(self):
        if self._extractor is None:
            from maskpro_eval.metrics.inception import get_extractor
            self._extractor = get_extractor(self.settings.inception_weights, device=self.settings.device,
                                            trust=self.settings.trust_weights, protocol=self.settings.fid_protocol)
        return self._extractor

    @property
    def protocol_key(self) -> str:
        p = getattr(self.extractor, "fid_protocol", None)
        return p.key if p is not None else self.settings.fid_protocol

    def store_dir(self, model, seed: int) -> Path:
        from maskpro_eval.sampling.unet_io import model_fingerprint
        fp = model_fingerprint(model.unet)
        cfg = self.settings.sampling_config(seed)
        proto = hashlib.sha256(repr(sorted(cfg.protocol_dict().items())).encode()).hexdigest()[:10]
        return Path(self.settings.samples_dir) / f"{model.name}-{fp[:12]}" / f"{cfg.sampler}-{proto}-seed{seed}"

    def samples(self, model, seed: int | None = None, num: int | None = None) -> np.ndarray:
        """uint8 (N, H, W, 3) samples 0..N-1 of ``model`` at ``seed`` (resumes a partial store)."""
        from maskpro_eval.sampling.fill_store import generate_to_store
        from maskpro_eval.sampling.unet_io import model_fingerprint
        seed = self.settings.seed if seed is None else seed
        num = num or self.settings.num_samples
        stats: dict = {}
        store = generate_to_store(model.unet, self.settings.sampling_config(seed), self.store_dir(model, seed), num,
                                  scheduler_config=model.scheduler_config(),
                                  model_id={"name": model.name, "fingerprint": model_fingerprint(model.unet)},
                                  progress=self.settings.progress, stats=stats)
        self._record_sampling(model, stats)
        with self.timer.phase("store_io"):   # read back (checksums checked)
            return store.load(num)

    def check_stores(self, models: list) -> None:
        """Open every existing sample store this run will use, so that a damaged or foreign store
        (unreadable store.json, another protocol) stops the run before any test (SampleStoreError)."""
        from maskpro_eval.sampling.config import protocol_metadata
        from maskpro_eval.sampling.store import SampleStore
        from maskpro_eval.sampling.unet_io import model_fingerprint
        seeds = [self.settings.seed + i for i in range(max(1, self.settings.consistency_seeds))]
        for model in models:
            for seed in seeds:
                folder = self.store_dir(model, seed)
                if folder.is_dir():
                    meta = protocol_metadata(self.settings.sampling_config(seed), model.scheduler_config(),
                                             {"name": model.name, "fingerprint": model_fingerprint(model.unet)})
                    SampleStore(folder, metadata=meta)

    def features(self, model, seed: int | None = None, num: int | None = None) -> np.ndarray:
        """float32 (N, 2048) Inception features of :meth:`samples` (cached on disk beside them)."""
        seed = self.settings.seed if seed is None else seed
        num = num or self.settings.num_samples
        key = (model.name, seed, num)
        if key in self._features:
            return self._features[key]
        tag = "" if self.protocol_key == "standard" else f"-{self.protocol_key}"
        path = self.store_dir(model, seed) / f"features-{num}-{self.extractor.weights_sha256[:16]}{tag}.npz"
        with self.timer.phase("store_io"):
            feats = _load_checked_features(path, (num, 2048))
        if feats is None:
            images = self.samples(model, seed, num)
            from maskpro_eval.metrics.fid import call_features
            with self.timer.phase("features", images=len(images)):
                feats = call_features(self.extractor, images, self.settings.feature_batch_size,
                                      progress=f"features {model.name}" if self.settings.progress else False)
            with self.timer.phase("store_io"):
                atomic_savez(path, {"features": feats, "sha256": np.array(_sha256(feats)),
                                    "fid_protocol": np.array(self.protocol_key),
                                    "weights_sha256": np.array(self.extractor.weights_sha256)}, fsync=False)
        self._features[key] = feats
        return feats

    def reference(self, baseline=None):
        """ReferenceStats of ``--fid-ref`` (``baseline``: the baseline's samples, independent noise)."""
        if self._reference is None:
            spec = self.settings.fid_ref
            if spec == "baseline":
                if baseline is None:
                    from maskpro_eval.errors import ReferenceSetError
                    raise ReferenceSetError(None, "--fid-ref baseline needs a baseline model, and none was given",
                                            "a baseline model", "add --baseline PATH or give --fid-ref a reference set")
                from maskpro_eval.metrics.fid import feature_statistics
                from maskpro_eval.metrics.reference import ReferenceStats
                seed = self.settings.seed + BASELINE_REFERENCE_SEED_OFFSET
                feats = self.features(baseline, seed)
                with self.timer.phase("statistics"):
                    mu, sigma = feature_statistics(feats)
                self._reference = ReferenceStats(
                    mu=mu, sigma=sigma, n=len(feats), features=feats, source=f"baseline:{baseline.name}",
                    kind="baseline-samples", content_sha256=str(self.store_dir(baseline, seed)),
                    weights_sha256=self.extractor.weights_sha256, protocol=self.protocol_key)
            else:
                from maskpro_eval.metrics.reference import check_reference_protocol, load_reference
                with self.timer.phase("reference"):   # load, or features + statistics of the images, cached
                    ref = load_reference(spec, self.extractor, cache_dir=self.settings.cache_dir,
                                         batch_size=self.settings.feature_batch_size,
                                         progress="reference features" if self.settings.progress else False)
                self._reference = check_reference_protocol(ref, self.protocol_key, self.settings.fid_ref_protocol)
        return self._reference

    def reference_protocol_note(self, baseline=None) -> str | None:
        """The line saying which protocol a foreign mu/sigma reference was assumed to have (else None)."""
        ref = self.reference(baseline)
        return next((n for n in ref.notes if n.startswith("reference protocol ")), None) \
            if ref.protocol_assumed else None

    def plan(self, models: list, cpu_inception_img_s: float = CPU_INCEPTION_IMG_S) -> str:
        """One line: the work this full tier will do and, on a CPU, a rough time (one timed UNet call)."""
        st, sc = self.settings, self.settings.sampling
        seeds = max(1, st.consistency_seeds)
        steps = sc.num_inference_steps or 1000
        images = len(models) * st.num_samples * seeds
        text = (f"full tier: {len(models)} model(s) x {st.num_samples:,} samples x {steps} {sc.sampler.upper()} steps"
                f"{f' x {seeds} seeds' if seeds > 1 else ''} = {images:,} images; FID reference: {st.fid_ref}")
        if self.settings.device.startswith("cpu") and models:
            from maskpro_eval.runtime.latency import measure_forward_latency
            per_img_step = max(measure_forward_latency(m.unet, batch_size=8, rounds=2, warmup=1)["median_ms"]
                               for m in models) / 8 / 1e3
            est = images * steps * per_img_step + images / cpu_inception_img_s
            from maskpro_eval.runtime.progress import format_eta
            text += (f"; CPU estimate ~{format_eta(est)} (not counting cached samples/features and the reference; "
                     f"Inception at ~{cpu_inception_img_s:g} img/s)")
        return text

    def protocol_record(self, n: int | None = None, baseline=None) -> dict:
        """What a full-tier figure was measured under: N, sampling, reference (and its N), Inception hash."""
        sc, ref = self.settings.sampling, self.reference(baseline)
        return {"N": self.settings.num_samples if n is None else n, "sampler": sc.sampler,
                "steps": sc.num_inference_steps, "eta": sc.eta, "seed": sc.seed,
                "reference": f"{ref.source} (N={ref.n})", "inception_sha256": self.extractor.weights_sha256[:16],
                "fid_protocol": self.protocol_key,
                "reference_protocol": f"{ref.protocol}{' (assumed)' if ref.protocol_assumed else ''}",
                "dtype": sc.dtype, "device": self.settings.device,
                **({"sampling_backend": "fast", "fused_resnet": True} if sc.fused_resnet else {}),
                **({"sampling_backend": "fast", "onepass_group_norm": True} if sc.onepass_group_norm else {})}

    def run_protocol(self, baseline=None) -> dict:
        """The run-level protocol record: the FID protocol (metrics.fid.fid_protocol), reference, settings."""
        from maskpro_eval.metrics.fid import fid_protocol
        ref = self.reference(baseline)
        fp = fid_protocol(self.extractor.weights_sha256, weights_are_standard=self.extractor.weights_are_standard,
                          protocol=self.protocol_key)
        note = self.reference_protocol_note(baseline)
        return {"fid_protocol": fp["name"], "fid_protocol_id": fp["id"], "fid_protocol_version": fp["version"],
                "reference_fid_protocol": ref.protocol, "reference_fid_protocol_assumed": ref.protocol_assumed,
                **({"reference_fid_protocol_note": note} if note else {}),
                "inception_weights_sha256": fp["weights_sha256"],
                "inception_weights_standard": fp["weights_are_standard"],
                "reference": ref.source, "reference_kind": ref.kind, "reference_n": ref.n,
                "reference_notes": list(ref.notes),
                **{f"full_{k}": v for k, v in self.settings.protocol().items()}}

    # ---------------------------------------------------------------- metrics
    def fid(self, model, seed: int | None = None, baseline=None):
        """FIDResult of the model's samples against the reference set (computed once per model and seed:
        the main seed's value, cross-checked with ``scipy.linalg.sqrtm``, is reused by the consistency)."""
        from maskpro_eval.metrics.fid import feature_statistics, fid_from_stats
        seed = self.settings.seed if seed is None else seed
        key = ("fid", model.name, seed)
        if key in self._features:
            return self._features[key]
        ref = self.reference(baseline)
        feats = self.features(model, seed)
        with self.timer.phase("statistics"):
            mu, sigma = feature_statistics(feats)
        with self.timer.phase("metrics"):
            self._features[key] = fid_from_stats(mu, sigma, ref.mu, ref.sigma, n_a=len(feats), n_b=ref.n,
                                                 weights_sha256=self.extractor.weights_sha256,
                                                 crosscheck=seed == self.settings.seed, warn_small_n=False,
                                                 protocol=self.protocol_key, features_a=feats,
                                                 features_b=ref.features)
        return self._features[key]

    def kid(self, model, baseline=None) -> tuple[float, float] | None:
        """KID (mean, std) against the reference features; None if the reference has only mu/sigma."""
        from maskpro_eval.metrics.fid import kid
        ref = self.reference(baseline)
        if ref.features is None:
            return None
        feats = self.features(model)
        with self.timer.phase("metrics"):
            return kid(feats, ref.features, num_subsets=self.settings.kid_subsets,
                       subset_size=self.settings.kid_subset_size, seed=self.settings.seed)

    def kid_record(self, model, baseline=None) -> dict:
        """KID with its N and standard error: ``kid_mean``, ``kid_std`` (over subsets), ``kid_se``
        (std / sqrt(subsets): the standard error of the mean, approximate as subsets overlap),
        ``kid_subsets``, ``kid_subset_size`` (as used: capped at the smaller set), ``kid_n``. All None
        when the reference has only mu/sigma."""
        k = self.kid(model, baseline)
        if k is None:
            return {"kid_mean": None, "kid_std": None, "kid_se": None}
        ref = self.reference(baseline)
        n = self.settings.num_samples
        subsets = self.settings.kid_subsets
        return {"kid_mean": k[0], "kid_std": k[1], "kid_se": k[1] / subsets ** 0.5, "kid_subsets": subsets,
                "kid_subset_size": min(self.settings.kid_subset_size, n, len(ref.features)), "kid_n": n}

    def prdc(self, model, baseline=None) -> dict | None:
        """Precision/recall/density/coverage of the model's features against the reference features
        (k = ``prdc_k``, on the run's device); None if the reference has only mu/sigma, or either side
        has no more than k samples (k-NN radii need k other samples)."""
        ref = self.reference(baseline)
        if ref.features is None or min(len(ref.features), self.settings.num_samples) <= self.settings.prdc_k:
            return None
        key = ("prdc", model.name)
        if key not in self._features:
            from maskpro_eval.metrics.prdc import prdc_from_features
            feats = self.features(model)
            with self.timer.phase("metrics"):
                self._features[key] = prdc_from_features(ref.features, feats, nearest_k=self.settings.prdc_k,
                                                         device=self.settings.device)
        return self._features[key]

    def consistency(self, model, baseline=None) -> dict | None:
        """FID over ``consistency_seeds`` seeds (seed, seed+1, ...): values, mean, std (ddof=1)."""
        k = self.settings.consistency_seeds
        if k < 2:
            return None
        values = [self.fid(model, self.settings.seed + i, baseline).value for i in range(k)]
        return {"seeds": [self.settings.seed + i for i in range(k)], "fid": values,
                "mean": float(np.mean(values)), "std": float(np.std(values, ddof=1))}

    def drift(self, model, baseline) -> dict:
        """Per-sample MSE and PSNR between model and baseline samples drawn from identical noise."""
        a = self.samples(model).astype(np.float64) / 255.0
        b = self.samples(baseline).astype(np.float64) / 255.0
        mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
        psnr = np.where(mse > 0, 10 * np.log10(1.0 / np.maximum(mse, 1e-12)), np.inf)
        finite = psnr[np.isfinite(psnr)]
        return {"mse": mse, "psnr": psnr, "mse_histogram": _histogram(mse), "mse_mean": float(mse.mean()), "mse_median": float(np.median(mse)),
                "mse_p95": float(np.quantile(mse, 0.95)),
                "psnr_mean": float(finite.mean()) if len(finite) else float("inf"),
                "psnr_median": float(np.median(psnr)), "identical_fraction": float((mse == 0).mean()),
                "pixel_range": "[0, 1]", "pairs": int(len(mse))}
