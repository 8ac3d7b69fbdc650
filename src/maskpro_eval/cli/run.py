"""``maskpro-eval run --mode quick|full|compare|comprehensive``: the tiers through pytest, one run folder
per tier under ``--output-dir`` (``quick/``, ``full/``, ``compare/`` with ``comparison/`` inside,
``workflow/`` with ``trends/`` inside) and ``workflow_results.json`` with each tier's exit code and verdict."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import maskpro_eval

MODES = {
    "quick": ["quick"],
    "full": ["full"],
    "compare": ["compare"],
    "comprehensive": ["quick", "full", "compare"],
}

#: Common pytest options ``run`` takes itself (option, argparse kwargs); anything else goes after ``--``.
PASSED_OPTIONS = (
    ("--checkpoint", dict(action="append", metavar="[NAME=]PATH", help="model under test (repeatable)")),
    ("--baseline", dict(metavar="[NAME=]PATH", help="dense/reference model")),
    ("--original", dict(metavar="[NAME=]PATH", help="the unpruned model for compare mode")),
    ("--base-model", dict(metavar="PATH", help="architecture/weights for files that carry none")),
    ("--fid-ref", dict(metavar="REF", help="FID reference set (see pytest --help)")),
    ("--device", dict(help="torch device")),
    ("--num-samples", dict(type=int, help="samples per model for FID/KID")),
    ("--thresholds", dict(metavar="TOML", help="thresholds file")),
    ("--trust-pickle", dict(action="store_true", help="allow executing pickles of files you trust")),
)

#: pytest's exit code for bad input or options: the next tiers would fail the same way.
BAD_INPUT = 4


def project_root() -> Path:
    """The checkout holding ``evaluation_tests/`` (the suite is not part of the installed wheel)."""
    here = Path(maskpro_eval.__file__).resolve()
    for parent in here.parents:
        if (parent / "evaluation_tests").is_dir() and (parent / "conftest.py").is_file():
            return parent
    raise SystemExit("maskpro-eval run: evaluation_tests/ not found next to the installed package; "
                     "install the project from its checkout with 'pip install -e .'")


def add_run_parser(sub) -> None:
    p = sub.add_parser("run", help="run the evaluation suite with presets (wraps pytest)")
    p.add_argument("--mode", choices=sorted(MODES), default="quick")
    p.add_argument("--output-dir", default="reports", help="root of the output tree (default reports/)")
    p.add_argument("--overwrite", action="store_true", help="replace the tier folders of an earlier run there")
    p.add_argument("--training-dir", default=None, help="evaluate a training run's checkpoints (adds the workflow tier)")
    p.add_argument("--training-select", choices=("best", "latest", "all"), default=None)
    for option, kwargs in PASSED_OPTIONS:
        p.add_argument(option, **kwargs)
    p.add_argument("pytest_args", nargs="*", help="other pytest options after '--' (e.g. --benchmark-disable)")
    p.set_defaults(func=run)


def _forwarded(args) -> list[str]:
    out = []
    for option, kwargs in PASSED_OPTIONS:
        value = getattr(args, option.lstrip("-").replace("-", "_"))
        if kwargs.get("action") == "store_true":
            out += [option] if value else []
        elif isinstance(value, list):
            for v in value:
                out += [option, v]
        elif value is not None:
            out += [option, str(value)]
    if args.training_dir:
        out += ["--training-dir", args.training_dir]
    if args.training_select:
        out += ["--training-select", args.training_select]
    return out + list(args.pytest_args)


def _step_verdict(rc: int, verdict: str | None) -> str:
    """A tier's verdict never reads "pass" beside a failing exit code."""
    if rc == BAD_INPUT:
        return "bad-input"
    if rc not in (0, 1):
        return "error"
    if rc == 1 and verdict in (None, "pass", "ungated"):
        return "fail"
    return verdict or ("pass" if rc == 0 else "fail")


def run(args) -> int:
    root = project_root()
    out = Path(args.output_dir).resolve()
    # comprehensive with no model named: the demo zoo, and the workflow tier over the demo MaskPro run
    demo_run = args.mode == "comprehensive" and not args.checkpoint
    tiers = list(MODES[args.mode]) + (["workflow"] if args.training_dir or demo_run else [])
    existing = [t for t in tiers if (out / t).exists()] + (["workflow_results.json"]
                                                           if (out / "workflow_results.json").exists() else [])
    if existing and not args.overwrite:
        print(f"maskpro-eval run: {out} already holds {', '.join(existing)} from an earlier run. Fix: choose "
              f"another --output-dir, or add --overwrite to replace them", file=sys.stderr)
        return BAD_INPUT
    out.mkdir(parents=True, exist_ok=True)
    extra = _forwarded(args)
    summary = {"mode": args.mode, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "steps": []}
    worst = 0
    for tier in tiers:
        cmd = [sys.executable, "-m", "pytest", str(root / "evaluation_tests"), "-m", tier,
               "--rootdir", str(root), "-c", str(root / "pyproject.toml"),
               "--reports-dir", str(out), "--run-name", tier, *extra]
        print("+ " + " ".join(cmd), flush=True)
        rc = subprocess.call(cmd, cwd=str(root))
        results = out / tier / "evaluation_results.json"
        step = {"tier": tier, "exit_code": rc, "folder": str(out / tier),
                "results": str(results) if results.exists() else None}
        data = json.loads(results.read_text()) if results.exists() else {}
        step["verdict"] = _step_verdict(rc, data.get("verdict"))
        step["failed_gates"] = [g["message"] for g in data.get("gates", []) if not g["passed"]]
        summary["steps"].append(step)
        worst = rc if worst == 0 else worst
        if rc == BAD_INPUT:
            skipped = tiers[tiers.index(tier) + 1:]
            summary["skipped"] = skipped
            print(f"maskpro-eval run: the {tier} tier stopped on bad input (exit 4); not running "
                  f"{', '.join(skipped) or 'anything else'}", file=sys.stderr)
            break
    summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    summary["exit_code"] = worst
    (out / "workflow_results.json").write_text(json.dumps(summary, indent=2))
    print(f"maskpro-eval run: {out / 'workflow_results.json'} (exit {worst})")
    return worst
