"""Gate recording and the run's report files (JSON, Markdown, CSV, plots, pytest-html).

Tests record gates and model facts as ``user_properties`` so they reach the controller under
pytest-xdist; the controller assembles ``evaluation_results.json`` at session end and moves the
run folder into place only if the run completed (no half-written reports).
"""
from __future__ import annotations

import base64
import html
import time
from pathlib import Path

import pytest

from maskpro_eval.gating.gates import Gate, format_number
from maskpro_eval.gating.verdict import RUN, ungated, ungated_message, verdict
from maskpro_eval.pytest_plugin.state import RunState, run_state
from maskpro_eval.reporting.results import RunOutput, write_run_reports
from maskpro_eval.reporting.terminal import loader_notes, model_rows, model_table, reference_lines

EVAL_MARKERS = ("quick", "full", "compare", "workflow", "gpu", "bench")
_GATE = "maskpro_gate"
_MODEL = "maskpro_model"
_FILE = "maskpro_file"
_PROTOCOL = "maskpro_protocol"
_RAN = "maskpro_ran"
_PROBLEM = "maskpro_problem"
_IMAGES = pytest.StashKey[list]()


def _run_name(config) -> str:
    if hasattr(config, "workerinput") and "maskpro_run_name" in config.workerinput:
        return config.workerinput["maskpro_run_name"]
    name = config.getoption("--run-name")
    if name:
        return name
    mark = (config.option.markexpr or "all").replace(" ", "_")
    mark = "".join(c if c.isalnum() or c in "_-" else "_" for c in mark)
    return time.strftime("%Y%m%d-%H%M%S") + f"-{mark}"


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    reports_dir = Path(config.getoption("--reports-dir"))
    if not reports_dir.is_absolute():
        reports_dir = Path(config.invocation_params.dir) / reports_dir
    state = run_state(config)
    worker = getattr(config, "workerinput", {})
    state.out = RunOutput(reports_dir, _run_name(config), staging_name=worker.get("maskpro_staging"),
                          replace=bool(config.getoption("--run-name")))
    state.started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    config.pluginmanager.register(_Collector(state), "maskpro-collector")
    if not hasattr(config, "workerinput"):
        if config.pluginmanager.hasplugin("html"):
            config.pluginmanager.register(_HtmlHooks(), "maskpro-html")
            markexpr = config.option.markexpr or ""
            if not config.option.htmlpath and any(m in markexpr for m in EVAL_MARKERS):
                config.option.htmlpath = str(state.out.staging_dir / "report.html")
                state.own_html = True
            if config.option.htmlpath:  # one file to hand on: no assets/ folder beside --html=PATH
                config.option.self_contained_html = True
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(_XdistHooks(), "maskpro-xdist")


class _XdistHooks:
    def pytest_configure_node(self, node):
        out = run_state(node.config).out
        node.workerinput["maskpro_run_name"] = out.run_name
        node.workerinput["maskpro_staging"] = out.staging_name


class _HtmlHooks:
    def pytest_html_results_summary(self, prefix, summary, postfix, session):
        state = run_state(session.config)
        gates = state.results.gates
        if not gates and not state.ungated and not state.results.problems:
            return
        failed = sum(not g["passed"] for g in gates)
        rows = "".join(
            f"<tr><td>{html.escape(g['model'])}</td><td>{html.escape(g['metric'])}</td>"
            f"<td>{html.escape(_num(g['value']))}{html.escape(g.get('unit', ''))}</td>"
            f"<td>{html.escape(_rule(g))}</td>"
            f"<td style='color:{'green' if g['passed'] else 'red'}'><b>{'PASS' if g['passed'] else 'FAIL'}</b></td>"
            f"<td>{html.escape(g.get('detail', ''))}</td></tr>" for g in gates)
        prefix.append(
            f"<h2>Gate verdicts: {html.escape(state.verdict.upper())} ({len(gates) - failed}/{len(gates)} passed)</h2>"
            "<table border='1' cellpadding='3' style='border-collapse:collapse'><tr><th>model</th><th>metric</th>"
            f"<th>value</th><th>gate</th><th>verdict</th><th>detail</th></tr>{rows}</table>")
        if state.ungated:
            prefix.append(f"<p style='color:red'><b>{html.escape(ungated_message(state.ungated))}</b></p>")
        prefix.append(_models_table({**state.results.as_dict(), "ungated": state.ungated}))
        for prob in state.results.problems:
            prefix.append(f"<p style='color:red'><b>{html.escape(prob['kind'].upper())}</b> "
                          f"{html.escape(prob['test'])} ({html.escape(prob['when'])}): {html.escape(prob['message'])}</p>")
        out = state.out
        for key in ("layer_sparsity_png", "quality_png", "drift_png"):
            rel = state.results.files.get(key)
            if rel and (out.dir / rel).is_file():
                b64 = base64.b64encode((out.dir / rel).read_bytes()).decode("ascii")
                prefix.append(f"<h3>{html.escape(rel)}</h3><img style='max-width:100%' src='data:image/png;base64,{b64}'/>")
        timings = getattr(state, "timings", None) or {}
        if timings.get("phases"):
            from maskpro_eval.runtime.phases import timings_markdown
            rows = [line for line in timings_markdown(timings) if line.startswith("| ") and "---" not in line]
            cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows]
            prefix.append("<h3>Timings</h3><table border='1' cellpadding='3' style='border-collapse:collapse'>" + "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c)}</{'th' if i == 0 else 'td'}>"
                                 for c in row) + "</tr>" for i, row in enumerate(cells)) + "</table>"
                + f"<p>{html.escape(timings_markdown(timings)[-1])}</p>")
        proto = state.results.protocol
        if proto:
            prefix.append("<h3>Protocol</h3><ul>" + "".join(
                f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in proto.items()) + "</ul>")

    @pytest.hookimpl(wrapper=True)
    def pytest_terminal_summary(self, terminalreporter, config):
        """pytest-html names the staging folder; say where its report ends up (or that it is dropped)."""
        result = yield
        state = run_state(config)
        if state.own_html:
            if state.ready:
                final = state.out.final_dir / "report.html"
                terminalreporter.write_sep("-", f"final html report: {final.as_uri()}")
            else:
                terminalreporter.write_sep("-", "html report discarded: the run did not complete")
        return result

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        images = item.stash.get(_IMAGES, [])
        if report.when == "call" and images:
            from pytest_html import extras
            report.extras = getattr(report, "extras", []) + [extras.png(b64, name) for b64, name in images]


_num = format_number


def _rule(g: dict) -> str:
    """The gate as a reader states it: ``<= 10``, ``within 0.5 +- 0.02``."""
    if g["op"] == "within":
        return f"within {_num(g['threshold'])} ± {_num(g.get('tolerance'))}"
    return f"{g['op']} {_num(g['threshold'])}"


def _models_table(results: dict) -> str:
    """Per-model HTML table (the terminal table's columns), with the loader's notes."""
    header, *rows = model_rows(results)
    cell = "".join
    out = ("<h2>Models</h2><table border='1' cellpadding='3' style='border-collapse:collapse'><tr>"
           + cell(f"<th>{html.escape(c)}</th>" for c in header) + "</tr>"
           + cell("<tr>" + cell(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows) + "</table>")
    notes = loader_notes(results)
    if notes:
        out += "<h3>Loader notes</h3><pre>" + html.escape("\n".join(notes)) + "</pre>"
    return out


def pytest_addoption(parser):
    g = parser.getgroup("maskpro-eval", "maskpro-eval: models under test")
    g.addoption("--require-gates", action="store_true", default=False,
                help="fail the run (exit 1) when a model ends a tier with no gate applied (verdict 'ungated')")
    g = parser.getgroup("maskpro-eval-tracking", "maskpro-eval: experiment tracking")
    g.addoption("--swanlab", action="store_true", default=False,
                help="also log every metric, plot and verdict to SwanLab in offline mode (needs the 'tracking' extra)")
    g.addoption("--swanlab-dir", default=None, help="SwanLab offline log folder (default <run>/swanlab)")


# ---------------------------------------------------------------- fixtures used by tests

@pytest.fixture
def record_gate(request):
    """Record a Gate in the results (value, threshold, verdict, the test's tier) and return it."""
    def _record(gate: Gate) -> Gate:
        request.node.user_properties.append((_GATE, {**gate.to_dict(), "tier": _tier(request.node)}))
        return gate
    return _record


@pytest.fixture
def gate(record_gate):
    """Record a Gate and assert it, with a message naming value, threshold and protocol."""
    def _assert(g: Gate) -> Gate:
        record_gate(g)
        assert g.passed, g.message
        return g
    return _assert


@pytest.fixture(autouse=True)
def _model_facts_in_every_tier(request):
    """Every evaluated model gets its (cheap) analysis recorded once per process, whatever tier runs, so
    a full-tier-only run still reports sparsity, N:M and the layer table."""
    if _tier(request.node) is None:
        return
    done = run_state(request.config).facts_recorded
    for fixture in ("model", "baseline", "baseline_required"):
        if fixture in request.fixturenames:
            m = request.getfixturevalue(fixture)
            if m is not None and m.name not in done:
                request.node.user_properties.append((_MODEL, {"name": m.name, "entry": m.entry()}))
                done.add(m.name)


@pytest.fixture
def record_model(request):
    """Record (merge) facts about a model into ``models[name]`` of the results."""
    def _record(name: str, entry: dict) -> None:
        request.node.user_properties.append((_MODEL, {"name": name, "entry": entry}))
    return _record


@pytest.fixture
def record_protocol(request):
    def _record(facts: dict) -> None:
        request.node.user_properties.append((_PROTOCOL, facts))
    return _record


@pytest.fixture
def run_output(pytestconfig) -> RunOutput:
    """The run's output folder (staging until the run completes)."""
    return run_state(pytestconfig).out


@pytest.fixture
def attach_image(request, pytestconfig):
    """Save a PNG into the run folder and embed it in the HTML report (``name``, png bytes)."""
    def _attach(relpath: str, png_bytes: bytes, label: str | None = None) -> Path:
        path = run_state(pytestconfig).out.path(relpath)
        path.write_bytes(png_bytes)
        request.node.user_properties.append((_FILE, {"key": label or relpath, "path": relpath}))
        request.node.stash.setdefault(_IMAGES, []).append(
            (base64.b64encode(png_bytes).decode("ascii"), label or relpath))
        return path
    return _attach


# ---------------------------------------------------------------- controller-side collection

def _tier(item) -> str | None:
    return next((m for m in EVAL_MARKERS if item.get_closest_marker(m) is not None), None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Each evaluation test says which model and tier it judged (for the ungated check)."""
    outcome = yield
    report = outcome.get_result()
    tier = _tier(item)
    model = getattr(item, "callspec", None) and item.callspec.params.get("model_name")
    if report.when == "call" and tier is not None:
        report.user_properties.append((_RAN, {"model": model or RUN, "tier": tier}))
    if report.failed and tier is not None:
        # a test that errored (setup/teardown, or an exception other than a failed check) or whose check
        # failed without a gate: the verdict must not read "pass"
        error = report.when != "call" or not (call.excinfo and call.excinfo.errisinstance(AssertionError))
        line = call.excinfo.exconly().splitlines()[0][:300] if call.excinfo else report.when
        report.user_properties.append((_PROBLEM, {"test": item.nodeid, "when": report.when, "model": model,
                                                  "kind": "error" if error else "failed", "message": line}))


class _Collector:
    """Controller side: merges what every test recorded (``user_properties``) into the run's results."""

    def __init__(self, state: RunState):
        self.state = state

    def pytest_runtest_logreport(self, report):
        if report.when != "call" and not report.failed:
            return
        if any(m in report.keywords for m in EVAL_MARKERS):
            self.state.eval_ran = True
        results = self.state.results
        for key, value in report.user_properties:
            if report.when == "teardown" and key != _PROBLEM:
                continue  # a teardown report repeats what the call phase recorded
            if key == _GATE:
                results.gates.append(value)
            elif key == _MODEL:
                _merge(results.models.setdefault(value["name"], {}), value["entry"])
            elif key == _FILE:
                results.files[value["key"]] = value["path"]
            elif key == _PROTOCOL:
                results.protocol.update(value)
            elif key == _RAN:
                results.ran.append(value)
            elif key == _PROBLEM:
                results.problems.append(value)


def _merge(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    config = session.config
    state = run_state(config)
    if hasattr(config, "workerinput") or not state.eval_ran:
        return
    if int(exitstatus) not in (0, 1) or state.bad_input:
        return
    import torch
    import diffusers
    results = state.results.as_dict()
    results["run"] = {
        "name": state.out.run_name, "started": state.started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "markers": config.option.markexpr or "(all)",
        "device": state.settings.device, "torch": torch.__version__,
        "diffusers": diffusers.__version__, "exit_status": int(exitstatus),
        "settings": state.settings.to_dict(),
    }
    results["thresholds"] = state.thresholds.to_dict()
    device_name = torch.cuda.get_device_name() if str(state.settings.device).startswith("cuda") else None
    if not config.pluginmanager.hasplugin("xdist") or not getattr(config.option, "numprocesses", None):
        results["timings"] = state.timer.summary(device_name)   # this process's phases (not xdist workers')
    results["ungated"] = ungated(results.pop("ran"), results["gates"])
    results["verdict"] = verdict(results["gates"], results["ungated"], results["problems"])
    state.verdict, state.ungated = results["verdict"], results["ungated"]
    if results["ungated"] and config.getoption("--require-gates") and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    out: RunOutput = state.out
    if state.own_html:
        results["files"]["html_report"] = "report.html"  # pytest-html writes it right after this hook
    state.timings = results.get("timings")
    write_run_reports(out, results, config.getoption("--results-json"))
    if config.getoption("--swanlab"):
        from maskpro_eval.reporting.tracking import log_to_swanlab
        log_dir = config.getoption("--swanlab-dir") or str(out.dir / "swanlab")
        log_to_swanlab(results, out.dir, log_dir)
        results["files"]["swanlab"] = log_dir
    state.ready = True


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = run_state(config)
    if hasattr(config, "workerinput") or not state.ready:
        return
    gates = state.results.gates
    tr = terminalreporter
    tr.section("maskpro-eval models")
    for line in model_table({**state.results.as_dict(), "ungated": state.ungated}):
        tr.write_line(line)
    notes = loader_notes(state.results.as_dict()) + reference_lines(state.results.as_dict())
    if notes:
        tr.section("maskpro-eval loader notes")
        for line in notes:
            tr.write_line(line, yellow=line.lstrip().startswith("- WARNING"))
    tr.section("maskpro-eval gates")
    for g in gates:
        tr.write_line(Gate(**{k: v for k, v in g.items() if k not in ("message", "tier")}).message)
    if state.ungated:
        tr.write_line(ungated_message(state.ungated), red=True, bold=True)
    note = (state.results.as_dict().get("protocol") or {}).get("reference_fid_protocol_note")
    if note:
        tr.write_line(f"FID: {note}", yellow=True)
    for prob in state.results.problems:
        tr.write_line(f"{prob['kind'].upper()}: {prob['test']} ({prob['when']}): {prob['message']}", red=True)
    timings = getattr(state, "timings", None)
    if timings and timings.get("phases"):
        from maskpro_eval.runtime.phases import timings_line
        tr.write_line(timings_line(timings))
    tr.write_line(f"verdict: {state.verdict.upper()}", bold=True,
                  **({"green": True} if state.verdict == "pass" else {"red": True}))
    tr.write_line(f"reports: {state.out.final_dir}")


def pytest_unconfigure(config):
    state = run_state(config)
    out = state.out
    if out is None or hasattr(config, "workerinput"):
        return
    if state.ready:
        out.commit()
    else:
        out.discard()
