"""Models under evaluation: specs from the command line/API, lazily loaded and analysed once."""
from __future__ import annotations

import math
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from maskpro_eval.analysis.layers import DEFAULT_EXCLUDE_LAYERS
from maskpro_eval.errors import CheckpointError

ROLES = ("model", "baseline", "original")


@dataclass(frozen=True)
class ModelSpec:
    """A model named on the command line: ``NAME=PATH`` or ``PATH`` (name from the path)."""

    name: str
    path: str
    role: str = "model"


@dataclass
class EvalSettings:
    """Everything that changes how a model is loaded and judged (see README: options)."""

    nm: tuple[int, int] | None = None          # None: from the checkpoint, else 2:4
    exclude_layers: tuple[str, ...] = DEFAULT_EXCLUDE_LAYERS
    base_model: str | None = None
    trust_pickle: bool = False
    device: str = "cpu"
    seed: int = 0
    quick_samples: int = 8
    quick_steps: int = 20

    def to_dict(self) -> dict:
        d = asdict(self)
        d["nm"] = None if self.nm is None else f"{self.nm[0]}:{self.nm[1]}"
        return d


def _name_from_path(path: str) -> str:
    p = Path(path.split(":", 1)[1] if path.startswith("demo:") else path)
    stem = p.name if p.is_dir() or not p.suffix else p.stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem) or "model"


def parse_model_spec(text: str, role: str = "model") -> ModelSpec:
    """``NAME=PATH`` or ``PATH`` -> ModelSpec (``demo:NAME`` names a bundled zoo model)."""
    if "=" in text and not text.startswith("demo:"):
        name, path = text.split("=", 1)
        if not name or not path:
            raise ValueError(f"--checkpoint {text!r}: expected NAME=PATH or PATH")
        return ModelSpec(name=name, path=path, role=role)
    if text.startswith("demo:"):
        return ModelSpec(name=text.split(":", 1)[1], path=text, role=role)
    return ModelSpec(name=_name_from_path(text), path=text, role=role)


def build_specs(checkpoints: list[str] | None, baseline: str | None = None,
                original: str | None = None, training_dir: str | None = None,
                training_select: str = "latest", demo_models: tuple[str, ...] | None = None) -> list[ModelSpec]:
    """Models under test plus optional baseline/original; the demo zoo when nothing is named.

    ``training_dir``: the selected checkpoints of a training run become models under test.
    ``demo_models``: the zoo models used when nothing is named (default ``zoo.DEFAULT_MODELS_UNDER_TEST``;
    a compare run passes ``zoo.STUDY_MODELS``).
    """
    from maskpro_eval.checkpoints import zoo

    specs: list[ModelSpec] = []
    if training_dir:
        from maskpro_eval.checkpoints.training_run import discover, select
        specs += [ModelSpec(name=c.name, path=str(c.path)) for c in select(discover(training_dir), training_select)]
    if checkpoints:
        specs += [parse_model_spec(c) for c in checkpoints]
    elif not training_dir:
        specs += [parse_model_spec(f"demo:{n}") for n in (demo_models or zoo.DEFAULT_MODELS_UNDER_TEST)]
        if baseline is None:
            baseline = f"demo:{zoo.DEFAULT_BASELINE}"
    if baseline:
        specs.append(parse_model_spec(baseline, role="baseline"))
    if original:
        o = parse_model_spec(original, role="original")
        same_as_baseline = baseline and _same_file(o.path, parse_model_spec(baseline).path)
        if not same_as_baseline:  # one folder given twice is one model (compare falls back to the baseline)
            specs.append(ModelSpec(name=o.name, path=o.path, role="original"))
    named = {c.split("=", 1)[0] for c in (checkpoints or []) if "=" in c and not c.startswith("demo:")}
    kept, paths = [], set()
    for s in specs:
        # a model under test reached twice (e.g. --training-dir and --checkpoint) is evaluated once; only
        # the same file given under two explicit NAME= is kept twice (the user asked for both names)
        key = _resolved(s.path)
        if s.role == "model" and key in paths and s.name not in named:
            continue
        if s.role == "model":
            paths.add(key)
        kept.append(s)
    specs = kept
    seen: dict[str, int] = {}
    unique = []
    for s in specs:
        if s.name in seen:
            seen[s.name] += 1
            s = ModelSpec(name=f"{s.name}-{seen[s.name]}", path=s.path, role=s.role)
        else:
            seen[s.name] = 1
        unique.append(s)
    return unique


def _resolved(spec_path: str) -> str:
    return spec_path if spec_path.startswith("demo:") else str(Path(spec_path).resolve())


def _same_file(a: str, b: str) -> bool:
    return _resolved(a) == _resolved(b)


def resolve_path(spec_path: str) -> Path:
    from maskpro_eval.checkpoints import zoo
    return Path(zoo.resolve_model_spec(spec_path))


class EvaluatedModel:
    """One model: loaded once, analysed once; every figure the suite gates on comes from here."""

    def __init__(self, spec: ModelSpec, settings: EvalSettings):
        self.spec = spec
        self.settings = settings
        self._loaded = None
        self._analysis = None
        self._forward = None
        self._samples = None
        self.records: dict = {}

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def path(self) -> Path:
        return resolve_path(self.spec.path)

    @property
    def is_loaded(self) -> bool:
        return self._loaded is not None

    def load(self):
        """The LoadedCheckpoint (raises MaskProEvalError subclasses on bad input)."""
        if self._loaded is None:
            from maskpro_eval.checkpoints import load_checkpoint
            path = self.path
            if not path.exists():
                raise CheckpointError(path, "no such file or folder", "a checkpoint file or folder",
                                      "check the path given to --checkpoint/--baseline")
            base = resolve_path(self.settings.base_model) if self.settings.base_model else None
            loaded = load_checkpoint(path, base_model=base, trust_pickle=self.settings.trust_pickle)
            loaded.unet.to(self.settings.device).eval()
            self._loaded = loaded
        return self._loaded

    @property
    def unet(self):
        return self.load().unet

    @property
    def nm(self) -> tuple[int, int]:
        if self.settings.nm is not None:
            return self.settings.nm
        return self.load().nm or (2, 4)

    def analysis(self):
        """SparsityReport (cached)."""
        if self._analysis is None:
            from maskpro_eval.analysis.sparsity import analyze_checkpoint
            result = analyze_checkpoint(self.load(), self.settings.nm, self.settings.exclude_layers)
            self._analysis = result.report
            if result.masked_layers_from == "checkpoint masks":
                self.records["masked_layers_from"] = result.masked_layers_from
        return self._analysis

    def nonfinite_parameters(self) -> list[str]:
        return [n for n, p in self.unet.named_parameters() if not torch.isfinite(p).all()]

    def forward_check(self, batch: int = 2) -> dict:
        """One forward pass on fixed noise: output shape, finiteness, magnitude."""
        if self._forward is None:
            unet = self.unet
            cfg = unet.config
            size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
            g = torch.Generator().manual_seed(self.settings.seed)
            x = torch.randn(batch, cfg.in_channels, size, size, generator=g).to(self.settings.device)
            t = torch.tensor([10, 500][:batch] + [999] * max(0, batch - 2), device=self.settings.device)
            with torch.inference_mode():
                y = unet(x, t).sample
            self._forward = {
                "input_shape": list(x.shape), "output_shape": list(y.shape),
                "expected_shape": [batch, cfg.out_channels, size, size],
                "finite": bool(torch.isfinite(y).all()), "output_std": float(y.float().std()),
                "x": x, "t": t, "y": y,
            }
        return self._forward

    def scheduler_config(self):
        sched = self.load().scheduler
        return None if sched is None else dict(sched.config)

    def quick_samples(self):
        """A handful of DDIM samples (uint8 NHWC) for the quick tier."""
        if self._samples is None:
            from maskpro_eval.sampling.config import SamplingConfig
            from maskpro_eval.sampling.standard import generate
            cfg = SamplingConfig(sampler="ddim", num_inference_steps=self.settings.quick_steps, eta=0.0,
                                 seed=self.settings.seed, batch_size=self.settings.quick_samples,
                                 device=self.settings.device)
            start = time.perf_counter()
            imgs = generate(self.unet, cfg, start=0, count=self.settings.quick_samples,
                            scheduler_config=self.scheduler_config(), progress=False)
            self.records["quick_sampling_s"] = time.perf_counter() - start
            self._samples = (imgs, cfg)
        return self._samples

    def entry(self) -> dict:
        """This model's section of ``evaluation_results.json``."""
        loaded = self.load()
        rep = self.analysis()
        n, m = self.nm
        entry = {
            "source": str(self.spec.path), "resolved_path": str(self.path), "role": self.spec.role,
            "format": loaded.format,
            "parameters": {"total": rep.parameters_total, "nonzero": rep.parameters_nonzero},
            "sparsity": {"global": rep.global_sparsity, "masked_layers": rep.masked_layers_sparsity,
                         "masked_layer_count": rep.masked_layer_count},
            "nm": {"n": n, "m": m, "compliance": rep.nm_compliance,
                   "compliance_channel_layout": rep.nm_compliance_channel,
                   "compliance_channel": rep.nm_compliance_channel,
                   "exact_n_kept": rep.nm_exact, "best_fit": rep.best_fit,
                   "declared_by_checkpoint": None if loaded.nm is None else f"{loaded.nm[0]}:{loaded.nm[1]}"},
            "macs": {"dense": rep.macs_dense, "effective": rep.macs_effective,
                     "eligible_share": rep.eligible_macs_share, "unit": "MACs per image per denoising step"},
            "compression": rep.compression,
            "layers": [asdict(l) for l in rep.layers],
            "notes": list(loaded.notes),
            "mask_disagreements": dict(loaded.mask_disagreements),
        }
        if loaded.epoch is not None:
            entry["epoch"] = loaded.epoch
        entry.update({k: v for k, v in self.records.items() if k not in entry})
        return _finite_json(entry)


def _finite_json(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_json(v) for v in obj]
    return obj
