"""``maskpro-eval run --mode quick|full|compare|comprehensive``: pytest with presets and the output
tree users expect (``quick/``, ``full/{samples,metrics,analysis,visualizations}``, ``comparison/``,
``workflow_results.json``)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import maskpro_eval

MODES = {
    "quick": [("quick", "quick")],
    "full": [("full", "full")],
    "compare": [("compare", "comparison")],
    "comprehensive": [("quick", "quick"), ("full", "full"), ("compare", "comparison")],
}


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
    p.add_argument("--training-dir", default=None, help="evaluate a training run's checkpoints (adds the workflow tier)")
    p.add_argument("--training-select", choices=("best", "latest", "all"), default=None)
    p.add_argument("pytest_args", nargs="*", help="extra pytest options after '--' (e.g. --checkpoint X=Y)")
    p.set_defaults(func=run)


def run(args) -> int:
    root = project_root()
    out = Path(args.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    extra = list(args.pytest_args)
    if args.training_dir:
        extra += ["--training-dir", args.training_dir]
    if args.training_select:
        extra += ["--training-select", args.training_select]
    steps = list(MODES[args.mode])
    if args.training_dir:
        steps.append(("workflow", "workflow"))
    summary = {"mode": args.mode, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "steps": []}
    worst = 0
    for marker, run_name in steps:
        cmd = [sys.executable, "-m", "pytest", str(root / "evaluation_tests"), "-m", marker,
               "--rootdir", str(root), "-c", str(root / "pyproject.toml"),
               "--reports-dir", str(out), "--run-name", run_name, *extra]
        print("+ " + " ".join(cmd), flush=True)
        rc = subprocess.call(cmd, cwd=str(root))
        results = out / run_name / "evaluation_results.json"
        step = {"tier": marker, "exit_code": rc, "folder": str(out / run_name),
                "results": str(results) if results.exists() else None}
        if results.exists():
            data = json.loads(results.read_text())
            step["verdict"] = data.get("verdict")
            step["failed_gates"] = [g["message"] for g in data.get("gates", []) if not g["passed"]]
        summary["steps"].append(step)
        worst = rc if worst == 0 else worst
    summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    summary["exit_code"] = worst
    (out / "workflow_results.json").write_text(json.dumps(summary, indent=2))
    print(f"maskpro-eval run: {out / 'workflow_results.json'} (exit {worst})")
    return worst
