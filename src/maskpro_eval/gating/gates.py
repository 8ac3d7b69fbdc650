"""Gates: a measured value, a threshold, a verdict and a message that says all three."""
from __future__ import annotations

import math
import operator
from dataclasses import asdict, dataclass, field

_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}


@dataclass
class Gate:
    """One assertion on one model. ``op`` reads ``value <op> threshold``; ``within`` means
    ``|value - threshold| <= tolerance``."""

    model: str
    metric: str
    value: float | None
    threshold: float | None
    op: str
    passed: bool
    unit: str = ""
    tolerance: float | None = None
    detail: str = ""
    protocol: dict = field(default_factory=dict)

    @property
    def message(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        if self.op == "within":
            rule = f"|{self.metric} - {_fmt(self.threshold)}| <= {_fmt(self.tolerance)}"
        else:
            rule = f"{self.metric} {self.op} {_fmt(self.threshold)}"
        text = f"[{verdict}] {self.model}: {self.metric} = {_fmt(self.value)}{self.unit} (gate: {rule})"
        if self.detail:
            text += f"; {self.detail}"
        if self.protocol:
            text += "; protocol: " + ", ".join(f"{k}={v}" for k, v in self.protocol.items())
        return text

    def to_dict(self) -> dict:
        d = asdict(self)
        d["message"] = self.message
        return d


def format_number(x, digits: int = 6) -> str:
    """A value for reports: ``None`` -> ``"n/a"``, floats with ``digits`` significant digits, else ``str``."""
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


_fmt = format_number


def check(model: str, metric: str, value, op: str, threshold, *, tolerance=None, unit: str = "",
          detail: str = "", protocol: dict | None = None) -> Gate:
    """Build a gate; a missing or non-finite value always fails."""
    if threshold is None:
        raise ValueError(f"gate {metric!r} of {model!r} has no threshold (a gate without one is off)")
    ok_value = value is not None and not (isinstance(value, float) and math.isnan(value))
    if op == "within":
        passed = ok_value and abs(value - threshold) <= tolerance
    else:
        passed = ok_value and bool(_OPS[op](value, threshold))
    return Gate(model=model, metric=metric, value=value, threshold=threshold, op=op,
                passed=bool(passed), unit=unit, tolerance=tolerance, detail=detail,
                protocol=protocol or {})


def failure_message(gates: list[Gate]) -> str:
    """One message listing every failed gate (llm-compressor style)."""
    failed = [g for g in gates if not g.passed]
    return f"{len(failed)} gate(s) failed:\n" + "\n".join("  " + g.message for g in failed)


def assert_gates(gates: list[Gate]) -> None:
    """Raise one AssertionError naming every failed gate, with values and thresholds."""
    if any(not g.passed for g in gates):
        raise AssertionError(failure_message(gates))
