"""Python API: the same objects the pytest fixtures use, returning plain data (dicts, arrays)."""
from __future__ import annotations


from pathlib import Path

import numpy as np

from maskpro_eval.analysis.layers import DEFAULT_EXCLUDE_LAYERS
from maskpro_eval.evaluation import EvalSettings, EvaluatedModel, ModelSpec, parse_model_spec
from maskpro_eval.metrics.quality import FullSettings, QualityEvaluator
from maskpro_eval.sampling.config import SamplingConfig


class MaskProEvaluator:
    """Evaluate one checkpoint (and optionally a baseline) from Python.

    Example::

        ev = MaskProEvaluator(model_checkpoint="demo:maskpro_2of4", baseline_model="demo:dense",
                              output_dir="reports/api")
        ev.load_models(); ev.analyze_sparsity()["nm"]["compliance"]
        ev.compute_fid(reference="demo-digits", num_samples=300)["fid"]
    """

    def __init__(self, model_checkpoint: str | Path, baseline_model: str | Path | None = None,
                 output_dir: str | Path = "reports/api", base_model: str | None = None,
                 trust_pickle: bool = False, nm: tuple[int, int] | None = None,
                 exclude_layers=DEFAULT_EXCLUDE_LAYERS, device: str = "cpu", seed: int = 0):
        self.output_dir = Path(output_dir)
        self.settings = EvalSettings(nm=nm, exclude_layers=tuple(exclude_layers), base_model=base_model,
                                     trust_pickle=trust_pickle, device=device, seed=seed)
        spec = parse_model_spec(str(model_checkpoint))
        self.model = EvaluatedModel(spec, self.settings)
        self.baseline = None
        if baseline_model is not None:
            b = parse_model_spec(str(baseline_model), role="baseline")
            if b.name == spec.name:
                b = ModelSpec(name=f"{b.name}-baseline", path=b.path, role="baseline")
            self.baseline = EvaluatedModel(b, self.settings)
        self._quality: dict = {}

    def _models(self) -> list[EvaluatedModel]:
        return [self.model] + ([self.baseline] if self.baseline is not None else [])

    def load_models(self) -> dict:
        """Load every model; returns ``{name: {"format", "path", "role", "parameters", "nm_declared", "notes"}}``."""
        out = {}
        for m in self._models():
            loaded = m.load()
            out[m.name] = {"format": loaded.format, "path": str(m.path), "role": m.spec.role,
                           "parameters": sum(p.numel() for p in loaded.unet.parameters()),
                           "nm_declared": loaded.nm, "notes": list(loaded.notes)}
        return out

    def analyze_sparsity(self, which: str = "model") -> dict:
        """The model's results entry (same dict as ``evaluation_results.json`` ``models[NAME]``)."""
        m = self.model if which == "model" else self.baseline
        return m.entry()

    def _quality_for(self, num_samples: int, sampler: str, steps: int | None, eta: float, batch_size: int,
                     reference: str | None, consistency_seeds: int = 0, dtype: str = "float32",
                     sampling_backend: str = "standard", compile: bool = False, protocol: str = "standard",
                     reference_protocol: str | None = None, prdc_k: int = 5,
                     fused_resnet: bool = False, onepass_group_norm: bool = False) -> QualityEvaluator:
        if reference == "demo-digits" or (reference is None and str(self.model.spec.path).startswith("demo:")):
            from maskpro_eval.checkpoints.zoo import ZOO_REFERENCE_FILE
            reference = str(ZOO_REFERENCE_FILE)
        elif reference is None:
            from maskpro_eval.metrics.reference import no_reference_error
            raise no_reference_error()
        key = (num_samples, sampler, steps, eta, reference, consistency_seeds, dtype, sampling_backend, compile,
               protocol, reference_protocol, prdc_k, fused_resnet, onepass_group_norm)
        if key not in self._quality:
            sampling = SamplingConfig(sampler=sampler, num_inference_steps=steps, eta=eta, seed=self.settings.seed,
                                      batch_size=batch_size, device=self.settings.device, dtype=dtype,
                                      backend=sampling_backend, compile=compile, fused_resnet=fused_resnet,
                                      onepass_group_norm=onepass_group_norm)
            fs = FullSettings(sampling=sampling, num_samples=num_samples, fid_ref=reference, consistency_seeds=consistency_seeds,
                              fid_protocol=protocol, fid_ref_protocol=reference_protocol, prdc_k=prdc_k,
                              samples_dir=str(self.output_dir / "samples_cache"), progress=False)
            self._quality[key] = QualityEvaluator(fs)
        return self._quality[key]

    def generate_samples(self, num_samples: int = 64, sampler: str = "ddim", steps: int | None = None,
                         eta: float = 0.0, batch_size: int = 256, save_grid: bool = True, dtype: str = "float32",
                         sampling_backend: str = "standard", compile: bool = False,
                         fused_resnet: bool = False, onepass_group_norm: bool = False) -> np.ndarray:
        """uint8 (N, H, W, 3) samples (sample i's noise depends only on (seed, i)); grid PNG saved.

        ``dtype``, ``sampling_backend`` (``"standard"``/``"fast"``), ``compile``, ``fused_resnet``,
        ``onepass_group_norm``: as ``--dtype``, ``--sampling-backend``, ``--compile-sampler``, ``--fused-resnet``,
        ``--onepass-group-norm`` (on a GPU: ``"float16"``, ``"fast"``, ``True``; the last two need the fast
        backend on CUDA)."""
        q = self._quality_for(num_samples, sampler, steps, eta, batch_size, reference="unused", dtype=dtype,
                              sampling_backend=sampling_backend, compile=compile, fused_resnet=fused_resnet,
                              onepass_group_norm=onepass_group_norm)
        images = q.samples(self.model)
        if save_grid:
            from maskpro_eval.sampling.images import make_grid, save_png
            save_png(self.output_dir / "samples" / f"{self.model.name}_grid.png", make_grid(images[:64], nrow=8))
        return images

    def compute_fid(self, reference: str | None = None, num_samples: int = 50_000, sampler: str = "ddim",
                    steps: int | None = None, eta: float = 0.0, batch_size: int = 256,
                    consistency_seeds: int = 0, dtype: str = "float32", sampling_backend: str = "standard",
                    compile: bool = False, protocol: str = "standard", reference_protocol: str | None = None,
                    prdc_k: int = 5, fused_resnet: bool = False, onepass_group_norm: bool = False) -> dict:
        """FID (and KID, precision/recall/density/coverage where the reference has images) of the samples.

        ``protocol``: as ``--fid-protocol`` (``"standard"``, ``"pytorch-fid"``, ``"clean"``);
        ``reference_protocol``: as ``--fid-ref-protocol`` (what a foreign mu/sigma file was made with).

        ``reference``: as ``--fid-ref`` (``"baseline"`` uses the baseline's samples). Without one, a demo
        zoo model is judged against the demo digits; any other model raises ReferenceSetError (as
        ``pytest -m full`` without ``--fid-ref``). ``dtype``/``sampling_backend``/``compile``/``fused_resnet``/``onepass_group_norm``: see
        :meth:`generate_samples`.
        Returns plain data with N, bias flag and protocol.
        """
        q = self._quality_for(num_samples, sampler, steps, eta, batch_size, reference, consistency_seeds, dtype,
                              sampling_backend, compile, protocol, reference_protocol, prdc_k, fused_resnet,
                              onepass_group_norm)
        fid = q.fid(self.model, baseline=self.baseline)
        ref = q.reference(self.baseline)
        out = {"fid": fid.value, "fid_method": fid.method, "fid_crosscheck": fid.value_crosscheck, "fid_crosscheck_method": fid.crosscheck_method, "n": fid.n_a, "reference_n": ref.n,
               "reference": ref.source, "biased": fid.biased, "fid_protocol": q.protocol_key,
               "reference_fid_protocol": ref.protocol, "reference_fid_protocol_assumed": ref.protocol_assumed,
               **q.kid_record(self.model, self.baseline),
               "prdc": q.prdc(self.model, self.baseline),
               "protocol": {**fid.protocol, **q.settings.protocol()}}
        if consistency_seeds >= 2:
            out["consistency"] = q.consistency(self.model, self.baseline)
        if self.baseline is not None:
            out["baseline_fid"] = q.fid(self.baseline, baseline=self.baseline).value
            out["fid_increase"] = out["fid"] - out["baseline_fid"]
            from maskpro_eval.metrics.quality import drift_summary
            d = q.drift(self.model, self.baseline)
            out["drift"] = drift_summary(d)
        return out

    def benchmark_inference_speed(self, batch_sizes=(1, 8), rounds: int = 10, warmup: int = 2) -> dict:
        """Forward latency per batch size for the model (and baseline): median ms, images/s, peak memory."""
        from maskpro_eval.runtime.latency import measure_forward_latency
        return {m.name: [measure_forward_latency(m.unet, b, rounds=rounds, warmup=warmup) for b in batch_sizes]
                for m in self._models()}
