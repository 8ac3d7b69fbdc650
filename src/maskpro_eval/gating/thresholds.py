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

import difflib
from pathlib import Path

from maskpro_eval.errors import CheckpointError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as the tomli package (a 3.10-only dependency)
    import tomli as tomllib

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

#: The one registry of threshold keys: every key here is read by a gate of evaluation_tests/
#: (tests/test_gates_thresholds.py checks it), and :meth:`Thresholds.get` reads no other key, so a
#: file, the command line and the gates cannot disagree on what a key is.
GATE_KEYS: dict[str, dict[str, str]] = {
    "quick": {
        "min_nm_compliance": "fraction of N:M groups compliant over the masked layers",
        "target_sparsity": "sparsity the model must have (absent: 1 - N/M)",
        "sparsity_tolerance": "allowed |sparsity - target|",
        "sparsity_scope": '"masked" layers or "global" (all parameters)',
        "min_sample_std": "quick samples must not be constant",
        "max_output_rel_error": "relative UNet output error vs the baseline",
    },
    "full": {
        "max_fid": "FID",
        "max_fid_increase": "absolute FID points over the baseline",
        "max_fid_increase_relative": "fraction of the baseline FID",
        "max_kid": "KID mean",
        "max_consistency_std": "FID std over seeds",
        "max_drift_mse_mean": "paired per-sample MSE to the baseline",
        "min_precision": "precision (Kynkaanniemi et al.) of the samples vs the reference",
        "min_recall": "recall (Kynkaanniemi et al.) of the samples vs the reference",
        "max_precision_drop": "baseline precision minus the model's",
        "max_recall_drop": "baseline recall minus the model's",
    },
}

#: key -> (allowed types, lowest, highest, or the allowed values): one schema for the file and the command line.
_FRACTION = ((int, float), 0.0, 1.0)
VALUE_RULES: dict[str, tuple] = {
    "min_nm_compliance": _FRACTION, "target_sparsity": _FRACTION, "sparsity_tolerance": _FRACTION,
    "sparsity_scope": ((str,), ("masked", "global")), "min_sample_std": ((int, float), 0.0, 1.0),
    "max_output_rel_error": ((int, float), 0.0, None),
    "max_fid": ((int, float), 0.0, None), "max_fid_increase": ((int, float), None, None),
    "max_fid_increase_relative": ((int, float), None, None), "max_kid": ((int, float), None, None),
    "max_consistency_std": ((int, float), 0.0, None), "max_drift_mse_mean": ((int, float), 0.0, 1.0),
    "min_precision": _FRACTION, "min_recall": _FRACTION, "max_precision_drop": ((int, float), -1.0, 1.0),
    "max_recall_drop": ((int, float), -1.0, 1.0),
}


def value_problem(key: str, value) -> str | None:
    """What is wrong with ``value`` for threshold ``key`` (type, range, allowed values), or None."""
    rule = VALUE_RULES.get(key)
    if rule is None or value is None:
        return None
    types = rule[0]
    if isinstance(value, bool) or not isinstance(value, types):
        return f"{value!r} is a {type(value).__name__}; expected {' or '.join(t.__name__ for t in types)}"
    if len(rule) == 2:
        return None if value in rule[1] else f"{value!r} is not one of {list(rule[1])}"
    lo, hi = rule[1], rule[2]
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        span = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
        return f"{value!r} is outside {span}"
    return None


#: ``[compare]`` holds only ``relative``: a list of rule tables (see gating.compare.relative_gates).
COMPARE_KEYS = ("relative",)
SECTIONS = (*GATE_KEYS, "compare", "models")


class Thresholds:
    """Resolved thresholds: defaults < file < file per-model < command line."""

    def __init__(self, file_data: dict | None = None, cli: dict | None = None, source: str = "defaults"):
        self.file_data = file_data or {}
        self.cli = {k: dict(v) for k, v in (cli or {}).items()}
        problems = []
        for tier, section in self.cli.items():
            for key, value in section.items():
                _registered(tier, key)
                if (msg := value_problem(key, value)):
                    problems.append(f"threshold {key} (command line): {msg}")
        if problems:  # every bad option at once, as one usage error
            raise ValueError("; ".join(problems))
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
        _registered(tier, key)
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


def _registered(tier: str, key: str) -> None:
    """A gate (or a command-line option) may only use a key of :data:`GATE_KEYS`."""
    if key not in GATE_KEYS.get(tier, {}):
        raise KeyError(f"threshold key {tier}.{key} is not in gating.thresholds.GATE_KEYS "
                       f"(known: {sorted(GATE_KEYS.get(tier, {}))}); register it where its gate reads it")


def _unknown(path: Path, what: str, name: str, where: str, known) -> CheckpointError:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return CheckpointError(path, f"unknown {what} {name!r} in {where}", f"one of {sorted(known)}",
                           f"{hint}fix or remove it (a key no gate reads would be ignored)")


def _validate(path: Path, data: dict) -> None:
    for tier, section in data.items():
        if tier == "models":
            for model, per in _table(path, section, "[models]").items():
                for t, s in _table(path, per, f"[models.{model}]").items():
                    if t not in GATE_KEYS:
                        raise _unknown(path, "section", t, f"[models.{model}]", GATE_KEYS)
                    _check_keys(path, t, s, f"[models.{model}.{t}]")
        elif tier == "compare":
            _check_compare(path, _table(path, section, "[compare]"))
        elif tier in GATE_KEYS:
            _check_keys(path, tier, section, f"[{tier}]")
        else:
            raise _unknown(path, "section", tier, "the file", SECTIONS)


def _table(path: Path, value, where: str) -> dict:
    if not isinstance(value, dict):
        raise CheckpointError(path, f"{where} is a {type(value).__name__}", "a table", "make it a [table]")
    return value


def _check_keys(path: Path, tier: str, section, where: str) -> None:
    section = dict(_table(path, section, where))
    if tier == "full" and NO_BASELINE in section:
        _check_keys(path, tier, section.pop(NO_BASELINE), f"{where[:-1]}.{NO_BASELINE}]")
    for key in section:
        if key not in GATE_KEYS[tier]:
            raise _unknown(path, "key", key, where, GATE_KEYS[tier])
    problems = [f"{where} {k}: {msg}" for k, v in section.items() if (msg := value_problem(k, v))]
    if problems:
        raise CheckpointError(path, "; ".join(problems), "values of the types and ranges in gating.thresholds.VALUE_RULES",
                              "fix the value(s)")


def _check_compare(path: Path, section: dict) -> None:
    from maskpro_eval.gating.compare import RULE_KEYS, RULE_REQUIRED_KEYS
    for key in section:
        if key not in COMPARE_KEYS:
            raise _unknown(path, "key", key, "[compare]", COMPARE_KEYS)
    rules = section.get("relative", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise CheckpointError(path, "[[compare.relative]] is not a list of tables",
                              "[[compare.relative]] tables, one per rule", "write each rule as [[compare.relative]]")
    for i, rule in enumerate(rules, 1):
        where = f"[[compare.relative]] rule {i}"
        for key in rule:
            if key not in RULE_KEYS:
                raise _unknown(path, "key", key, where, RULE_KEYS)
        missing = [k for k in RULE_REQUIRED_KEYS if k not in rule]
        if missing:
            raise CheckpointError(path, f"{where}: missing {', '.join(map(repr, missing))}",
                                  f"the keys {list(RULE_REQUIRED_KEYS)} in every rule", "add them")
