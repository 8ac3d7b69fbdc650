"""The plugin's per-run state: one :class:`RunState` in ``config.stash`` (no module globals).

Every hook and fixture reaches it through :func:`run_state`. Under pytest-xdist each worker has its
own; results travel from the workers to the controller as ``user_properties`` (see ``reporting``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class Results:
    """What the run found: gates, model facts, protocol, files (assembled into evaluation_results.json)."""

    gates: list = field(default_factory=list)
    models: dict = field(default_factory=dict)
    protocol: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)
    ran: list = field(default_factory=list)       # {"model", "tier"} of every evaluation test that ran
    problems: list = field(default_factory=list)  # tests that errored or failed outside a gate

    def as_dict(self) -> dict:
        return {"gates": self.gates, "models": self.models, "protocol": self.protocol, "files": self.files,
                "ran": list(self.ran), "problems": list(self.problems)}


@dataclass
class RunState:
    """Settings parsed once at configure time, the model specs, the output folder and the collector."""

    settings: Any = None            # maskpro_eval.evaluation.EvalSettings
    thresholds: Any = None          # maskpro_eval.gating.thresholds.Thresholds
    specs: list | None = None       # [ModelSpec], parsed on first use
    bench: Any = None               # pytest_plugin.gpu.BenchSettings
    bench_records: list = field(default_factory=list)
    facts_recorded: set = field(default_factory=set)  # models whose analysis this process has recorded
    out: Any = None                 # maskpro_eval.reporting.results.RunOutput
    results: Results = field(default_factory=Results)
    started: str = ""
    eval_ran: bool = False          # a test of an evaluation tier reported
    own_html: bool = False          # the plugin chose the pytest-html path (the run folder's report.html)
    bad_input: str | None = None    # set when bad input stopped the run (exit 4)
    ready: bool = False             # reports written: commit the run folder at unconfigure
    verdict: str = ""               # pass / fail / ungated (gating.verdict)
    ungated: list = field(default_factory=list)
    timer: Any = None               # maskpro_eval.runtime.phases.PhaseTimer (created with the state)
    timings: dict | None = None     # timer.summary() as written into the results


STATE = pytest.StashKey[RunState]()


def run_state(config) -> RunState:
    """The run's state (created on first use)."""
    state = config.stash.get(STATE, None)
    if state is None:
        from maskpro_eval.runtime.phases import PhaseTimer
        state = config.stash[STATE] = RunState(timer=PhaseTimer())
    return state
