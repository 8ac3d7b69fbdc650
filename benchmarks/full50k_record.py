"""The record of issue #13's target run, ``benchmarks/results/full_50k_latest.json``, built from what a
``pytest -m full`` run wrote (its ``evaluation_results.json``) plus the wall time measured around it, and
optionally the fp32 fidelity figures of ``benchmarks.trained_fidelity`` (FID of the fast path vs fp32 on the
same seeds, fp32 seed spread).

    python -m benchmarks.full50k_record --results reports/RUN/evaluation_results.json --total-seconds 171.2 \\
        --command "pytest -m full ..." [--fidelity trained_fidelity.json] \
        [--warm-total-seconds S --warm-results reports/RUN2/evaluation_results.json] \
        [--previous benchmarks/results/full_50k_latest.json] --out F.json

``--previous`` keeps the headline figures of the record this one replaces (``previous_record``), so a
record of a route with other options still shows the default route's figures beside it.

Every figure is copied from those files; nothing is estimated here. Missing inputs stay ``null``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

#: issue #13's target: command to exit, one H200, cold compile cache
TARGET_SECONDS = 180.0


def _model_fid(results: dict) -> tuple[str | None, float | None]:
    for name, entry in (results.get("models") or {}).items():
        q = entry.get("quality") if isinstance(entry, dict) else None
        if isinstance(q, dict) and q.get("fid") is not None:
            return name, float(q["fid"])
    return None, None


def build_record(results: dict, *, command: str, total_seconds: float, fidelity: dict | None = None,
                 warm_total_seconds: float | None = None, device: str | None = None,
                 warm_results: dict | None = None) -> dict:
    """The issue's record from a run's results dict (see the module docstring). ``results`` is the cold
    compile-cache run; ``warm_results`` (optional) the same command again with inductor's cache filled."""
    timings = results.get("timings") or {}
    phases = timings.get("phases") or {}
    sampling = phases.get("sampling") or {}
    run = results.get("run") or {}
    name, fid = _model_fid(results)
    rec = {
        "device": device or timings.get("device_name") or run.get("device"),
        "torch": run.get("torch"),
        "diffusers": run.get("diffusers"),
        "date": run.get("started"),
        "command": command,
        "total_seconds": round(float(total_seconds), 2),
        "warm_total_seconds": None if warm_total_seconds is None else round(float(warm_total_seconds), 2),
        "target_seconds": TARGET_SECONDS,
        "seconds_over_target": round(float(total_seconds) - TARGET_SECONDS, 2),
        "phases": phases,
        "sampling_img_steps_per_s": sampling.get("img_steps_per_s"),
        "sampling_tflops": sampling.get("tflops"),
        "bf16_peak_tflops": timings.get("bf16_peak_tflops"),
        "sampling_fraction_of_bf16_peak": sampling.get("fraction_of_bf16_peak"),
        "model": name,
        "fid_fast": fid,
        "fid_fp32_same_seeds": None,
        "fp32_seed_spread": None,
        "verdict": results.get("verdict"),
        "exit_status": run.get("exit_status"),
    }
    if warm_results is not None:
        wt = warm_results.get("timings") or {}
        rec["warm_phases"] = wt.get("phases") or {}
        rec["warm_date"] = (warm_results.get("run") or {}).get("started")
        rec["warm_fid_fast"] = _model_fid(warm_results)[1]
    if fidelity:
        for key in ("fid_fp32_same_seeds", "fp32_seed_spread", "fid_fast_same_seeds", "fast_within_fp32_seed_spread",
                    "fast_minus_fp32_mean_in_seed_stds"):
            rec[key] = fidelity.get(key)
        rec["fidelity_source"] = fidelity.get("source")  # a trained model at N >= 10,240 (issue #13 item 4)
    return rec


#: the headline fields of an earlier record kept under ``previous_record`` (``--previous``)
PREVIOUS_FIELDS = ("device", "date", "command", "total_seconds", "warm_total_seconds", "sampling_img_steps_per_s",
                   "sampling_tflops")


def previous_summary(record: dict) -> dict:
    """The headline figures of an earlier ``full_50k_latest.json`` (its own ``previous_record`` dropped)."""
    return {k: record.get(k) for k in PREVIOUS_FIELDS}


def fidelity_summary(record: dict) -> dict:
    """``fid_fp32_same_seeds`` (the reference precision's FID per seed), ``fid_fast_same_seeds`` (the other
    precision's, same seeds), ``fp32_seed_spread`` (std over seeds) from a ``benchmarks.trained_fidelity`` output."""
    runs = record.get("runs") or {}
    seeds = [str(s) for s in record.get("seeds") or []]
    ref = next((k[: -len("_seed_std_vs_heldout")] for k in record if k.endswith("_seed_std_vs_heldout")), None)
    fast = next((k.split("_minus_")[0] for k in record if "_minus_" in k), None)
    out = {"source": {"model": record.get("model"), "num_samples": record.get("num_samples"),
                      "reference": record.get("reference"), "device": record.get("device"),
                      "date": record.get("date"), "torch": record.get("torch")}}
    if ref:
        out["fid_fp32_same_seeds"] = {s: runs.get(f"{ref}_s{s}", {}).get("fid_vs_heldout") for s in seeds}
        out["fp32_seed_spread"] = record.get(f"{ref}_seed_std_vs_heldout")
    if fast:
        out["fid_fast_same_seeds"] = {s: runs.get(f"{fast}_s{s}", {}).get("fid_vs_heldout") for s in seeds}
        out["fast_within_fp32_seed_spread"] = record.get(f"{fast}_within_{ref}_seed_spread")
        out["fast_minus_fp32_mean_in_seed_stds"] = record.get(f"{fast}_minus_{ref}_mean_in_seed_stds")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True, help="evaluation_results.json of the pytest -m full run")
    p.add_argument("--total-seconds", type=float, required=True, help="command start to exit, measured outside")
    p.add_argument("--warm-total-seconds", type=float, default=None, help="the same with a warm compile cache")
    p.add_argument("--warm-results", default=None, help="evaluation_results.json of the warm-cache run")
    p.add_argument("--command", required=True, help="the exact command that was timed")
    p.add_argument("--fidelity", default=None, help="a benchmarks.trained_fidelity record (JSON)")
    p.add_argument("--device", default=None, help="device name (default: the run's timings)")
    p.add_argument("--previous", default=None, help="an earlier record whose headline figures are kept beside")
    p.add_argument("--note", action="append", default=[], help="a line for the record's notes (repeatable)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    results = json.loads(Path(args.results).read_text())
    fid = fidelity_summary(json.loads(Path(args.fidelity).read_text())) if args.fidelity else None
    rec = build_record(results, command=args.command, total_seconds=args.total_seconds, fidelity=fid,
                       warm_total_seconds=args.warm_total_seconds, device=args.device,
                       warm_results=json.loads(Path(args.warm_results).read_text()) if args.warm_results else None)
    if args.previous:
        rec["previous_record"] = previous_summary(json.loads(Path(args.previous).read_text()))
    if args.note:
        rec["notes"] = list(args.note)
    from maskpro_eval.reporting.atomic_io import atomic_write_text
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(rec, indent=2) + "\n")
    print(json.dumps({k: rec[k] for k in ("device", "total_seconds", "sampling_img_steps_per_s", "sampling_tflops",
                                           "fid_fast")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
