"""Thresholds as data: a TOML file, overridden per model, overridden by command-line options.

File layout (every key optional; an absent gate threshold switches that gate off)::

    [quick]
    min_nm_compliance = 0.90      # fraction of N:M groups compliant over masked layers
    target_sparsity = 0.5         # absent: 1 - N/M over the masked layers
    sparsity_tolerance = 0.02
    sparsity_scope = "masked"     # or "global"
    min_sample_std = 0.05         # quick samples must not be constant (std of [0,1] pixels)

    [full]
    max_fid = 50.0
    max_fid_increase = 5.0            # absolute FID points over the baseline
    max_fid_increase_relative = 0.25  # fraction of the baseline FID
    max_kid = 0.02
    max_consistency_std = 2.0         # FID std over seeds
    max_drift_mse_mean = 0.05         # paired per-sample MSE to the baseline (pixels in [0,1])

    [full.no_baseline]                # applied only when the run has no --baseline
    max_fid = 10.0

    [models.magnitude_2of4.quick]     # per-model overrides
    min_nm_compliance = 0.99
"""
from __future__ import annotations

import tomllib
from pathlib import Path

from maskpro_eval.errors import CheckpointError

DEFAULTS: dict[str, dict] = {
    "quick": {
        "min_nm_compliance": 0.90,
        "sparsity_tolerance": 0.02,
        "sparsity_scope": "masked",
        "min_sample_std": 0.02,
    },
    "full": {},
    "compare": {},
}

#: Sub-table of a tier whose keys apply only when the run has no baseline (``[full.no_baseline]``).
NO_BASELINE = "no_baseline"

KNOWN_KEYS = {
    "quick": {"min_nm_compliance", "target_sparsity", "sparsity_tolerance", "sparsity_scope",
              "min_sample_std", "max_output_rel_error"},
    "full": {"max_fid", "max_fid_increase", "max_fid_increase_relative", "max_kid",
             "max_consistency_std", "max_drift_mse_mean", "min_drift_psnr_mean",
             "min_precision", "min_recall", "max_precision_drop", "max_recall_drop"},
    "compare": {"relative"},
}


class Thresholds:
    """Resolved thresholds: defaults < file < file per-model < command line."""

    def __init__(self, file_data: dict | None = None, cli: dict | None = None, source: str = "defaults"):
        self.file_data = file_data or {}
        self.cli = {k: dict(v) for k, v in (cli or {}).items()}
        self.source = source

    @classmethod
    def from_file(cls, path: str | Path | None, cli: dict | None = None) -> "Thresholds":
        if path is None:
            return cls(None, cli)
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(path, "thresholds file not found", "a TOML file",
                                  "pass an existing file to --thresholds")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise CheckpointError(path, f"invalid TOML ({exc})", "a TOML thresholds file",
                                  "fix the syntax (see evaluation_tests/thresholds.toml)") from None
        _validate(path, data)
        return cls(data, cli, source=str(path))

    def get(self, tier: str, key: str, model: str | None = None, default=None, has_baseline: bool = True):
        """The threshold of ``key``: defaults < file < ``[TIER.no_baseline]`` (only when the run has no
        baseline) < ``[models.NAME.TIER]`` < command line. None = that gate is off."""
        value = DEFAULTS.get(tier, {}).get(key, default)
        section = self.file_data.get(tier, {})
        value = section.get(key, value)
        if not has_baseline:
            value = section.get(NO_BASELINE, {}).get(key, value)
        if model is not None:
            value = self.file_data.get("models", {}).get(model, {}).get(tier, {}).get(key, value)
        cli_value = self.cli.get(tier, {}).get(key)
        return value if cli_value is None else cli_value

    def section(self, tier: str, model: str | None = None) -> dict:
        keys = (set(DEFAULTS.get(tier, {})) | set(self.file_data.get(tier, {})) | set(self.cli.get(tier, {}))) - {NO_BASELINE}
        if model is not None:
            keys |= set(self.file_data.get("models", {}).get(model, {}).get(tier, {}))
        return {k: self.get(tier, k, model) for k in sorted(keys) if self.get(tier, k, model) is not None}

    def to_dict(self) -> dict:
        return {"source": self.source, "file": self.file_data, "command_line": self.cli}


def _validate(path: Path, data: dict) -> None:
    for tier, section in data.items():
        if tier == "models":
            for model, per in section.items():
                for t, s in per.items():
                    _check_keys(path, t, s, f"models.{model}.{t}")
            continue
        _check_keys(path, tier, section, tier)


def _check_keys(path: Path, tier: str, section: dict, where: str) -> None:
    if tier not in KNOWN_KEYS:
        raise CheckpointError(path, f"unknown section [{where}]", f"one of {sorted(KNOWN_KEYS)}",
                              "fix the section name")
    if tier == "compare":
        return
    if isinstance(section.get(NO_BASELINE), dict):
        section = dict(section)
        _check_keys(path, tier, section.pop(NO_BASELINE), f"{where}.{NO_BASELINE}")
    unknown = set(section) - KNOWN_KEYS[tier]
    if unknown:
        raise CheckpointError(path, f"unknown key(s) {sorted(unknown)} in [{where}]",
                              f"keys among {sorted(KNOWN_KEYS[tier])}", "fix the key names")
