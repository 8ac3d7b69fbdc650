"""The benchmark CLI: ``python -m benchmarks SUBCOMMAND [options] [--out RECORD.json]`` (repository root).

Every measuring subcommand writes ONE record of schema ``maskpro-eval-bench/1``
(:mod:`maskpro_eval.runtime.records`: name, device, versions, the exact command, date, settings, figures)
to ``--out`` (and prints it when ``--out`` is not given). ``table`` prints the records of a folder.

    env          device, versions, measured matmul peaks and copy bandwidth, UNet FLOPs per image-step
    make-models  a UNet and its magnitude 2:4 copy saved as diffusers folders (for --model)
    forward      UNet forward latency over batch sizes and dtypes (eager or torch.compile)
    sampling     DDIM sampling img-steps/s: standard vs fast path (vs diffusers' DDIMPipeline)
    settings     fast-path settings (compile, freezing, cudnn.benchmark, channels-last, dtype, ...)
    profile      where the time of one UNet call goes (torch.profiler, kernels grouped by kind)
    kernels      inductor's Triton kernels of one compiled UNet call, each in GB/s against the copy bandwidth
    overlap      features of the previous batch on a side stream while the next batch samples (time hidden)
    inception    Inception feature img/s: strict fp32 vs TF32, deterministic cuDNN or not
    frechet      time of the feature statistics + Frechet distance (numpy float64 vs torch float64)
    fid50k       the end-to-end full-tier route (maskpro_eval.runtime.distributed; torchrun for >1 GPU)
    table        a table of the records in folders/files
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import cases
from benchmarks.models import load_model, save_models
from maskpro_eval.runtime.records import bench_record, read_record, write_record
from maskpro_eval.runtime.timing import (cuda_available, device_info, peak_memory, strict_fp32, synchronize,
                                         time_callable)


def _device(args) -> str:
    return args.device or ("cuda" if cuda_available() else "cpu")


def _csv(text: str) -> list[str]:
    return [v for v in text.replace(" ", "").split(",") if v]


def _ints(text: str) -> list[int]:
    return [int(v) for v in _csv(text)]


def _reset_compiler():
    torch.compiler.reset()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def copy_bandwidth_gbs(dev: str, mib: int, rounds: int) -> float:
    """Device copy bandwidth in GB/s (read + write) of a ``mib`` MiB float32 tensor, median of ``rounds``."""
    x = torch.empty(mib * 2 ** 18, dtype=torch.float32, device=dev).uniform_()
    y = torch.empty_like(x)
    t = time_callable(lambda: y.copy_(x), warmup=3, rounds=rounds, device=dev)
    return 2 * x.numel() * 4 / t.median_s / 1e9


# ----------------------------------------------------------------------------------------- commands
def cmd_env(args):
    from maskpro_eval.analysis.flops import DATASHEET_BF16_DENSE_TFLOPS, unet_flops_per_image_step
    dev = _device(args)
    unet, _ = load_model(args.model, args.model_seed)
    figs = {"flops_per_image_step": unet_flops_per_image_step(unet)}
    n = args.matmul_n
    dtypes = ("bfloat16", "float32") if dev == "cuda" else ("float32",)
    for dt in dtypes:
        a = torch.randn(n, n, device=dev, dtype=getattr(torch, dt))
        b = torch.randn(n, n, device=dev, dtype=getattr(torch, dt))
        with strict_fp32():
            t = time_callable(lambda: a @ b, warmup=3, rounds=args.rounds, device=dev)
        figs[f"matmul_{dt}" + ("_strict" if dt == "float32" else "")] = {
            "n": n, "median_ms": t.median_s * 1e3, "tflops": 2 * n ** 3 / t.median_s / 1e12}
    figs["copy_bandwidth_gbs"] = copy_bandwidth_gbs(dev, args.copy_mib, args.rounds)
    name = device_info().get("device", "")
    figs["datasheet_bf16_tflops"] = next((v for k, v in DATASHEET_BF16_DENSE_TFLOPS.items() if k in name), None)
    return {"model": args.model, "matmul_n": n, "copy_mib": args.copy_mib, "rounds": args.rounds}, figs


def cmd_make_models(args):
    unet, _ = load_model(args.model, args.model_seed)
    return {"model": args.model, "model_seed": args.model_seed, "models_dir": args.models_dir}, \
        save_models(unet, args.models_dir)


def cmd_forward(args):
    dev = _device(args)
    rows = []
    for spec in args.model or ["tiny"]:
        unet, _ = load_model(spec, args.model_seed)
        for dt in _csv(args.dtypes):
            for b in _ints(args.batches):
                case = cases.forward(unet, dev, b, dt, compile=args.compile, compile_mode=args.compile_mode,
                                     name=spec)
                with peak_memory("cuda" if dev == "cuda" else "cpu") as mem:
                    row = cases.run_timed(case, rounds=args.rounds, warmup=args.warmup)
                peak = mem["peak_allocated_bytes"]
                rows.append({"model": spec, **row, "peak_memory_mib": None if peak is None else peak / 2 ** 20})
                print(json.dumps(rows[-1]), flush=True)
                _reset_compiler()
    return {"models": args.model or ["tiny"], "batches": _ints(args.batches), "dtypes": _csv(args.dtypes),
            "compile": args.compile, "compile_mode": args.compile_mode, "rounds": args.rounds,
            "warmup": args.warmup, "device": dev}, {"rows": rows}


def cmd_sampling(args):
    dev = _device(args)
    unet, sched = load_model(args.model, args.model_seed)
    rows, images = [], {}
    for path in _csv(args.paths):
        case = cases.sampling(path, unet, sched, args.n, args.steps, args.batch, dev, dtype=args.dtype,
                              compile=args.compile and path == "fast", seed=args.seed)
        row = cases.run_timed(case, rounds=args.rounds, warmup=args.warmup)
        row["images_per_s"] = row["rate"] / args.steps if row["rate"] else None
        row["extrapolated_50k_s"] = 50_000 / row["images_per_s"] if row["images_per_s"] else None
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.check_pixels:
            images[path] = case.fn()
    figs = {"rows": rows}
    if "standard" in images:
        for path, imgs in images.items():
            if path != "standard":
                d = np.abs(imgs.astype(np.int16) - images["standard"].astype(np.int16))
                figs[f"pixels_{path}_vs_standard"] = {"identical_fraction": float((d == 0).mean()),
                                                      "mean_abs_diff": float(d.mean()), "max_abs_diff": int(d.max())}
    return {"model": args.model, "paths": _csv(args.paths), "n": args.n, "steps": args.steps, "batch": args.batch,
            "dtype": args.dtype, "compile": args.compile, "seed": args.seed, "rounds": args.rounds,
            "warmup": args.warmup, "device": dev}, figs


def cmd_settings(args):
    dev = _device(args)
    unet, sched = load_model(args.model, args.model_seed)
    rows = []
    for setting in _csv(args.settings):
        sampler, warm_s = cases.fast_sampler(unet, sched, setting, args.batch, args.steps, dev)
        call = cases.run_timed(cases.unet_call(sampler, args.batch, setting), rounds=args.rounds, warmup=2)
        whole = cases.run_timed(cases.whole_batch(sampler, args.batch, setting), rounds=args.batch_rounds, warmup=0)
        rows.append({"setting": setting, "tokens": {t: cases.SETTING_TOKENS.get(t, f"inductor option {t.split('.', 1)[-1]} = {t.startswith('io.')}") for t in setting.split("+") if t},
                     "batch": args.batch, "compile_and_warmup_s": warm_s, "unet_call": call, "whole_batch": whole,
                     "projected_50k_sampling_s": 50_000 * args.steps / whole["rate"] if whole["rate"] else None,
                     "sampler": sampler.protocol()})
        print(json.dumps({k: rows[-1][k] for k in ("setting", "compile_and_warmup_s")} |
                         {"img_steps_per_s": call["rate"]}), flush=True)
        del sampler
        _reset_compiler()
    return {"model": args.model, "settings": _csv(args.settings), "batch": args.batch, "steps": args.steps,
            "rounds": args.rounds, "batch_rounds": args.batch_rounds, "device": dev}, {"rows": rows}


_KERNEL_KINDS = (  # first match wins
    ("triton (inductor: norm/SiLU/add/etc.)", ("triton",)),
    ("copies / layout", ("nchwtonhwc", "nhwctonchw", "transpose", "copy", "memcpy", "memset")),
    ("attention (SDPA)", ("flash", "fmha", "attention", "sdpa")),
    ("convolution (cuDNN)", ("conv", "xmma", "implicit", "cudnn", "sm90_x", "fprop", "dgrad", "wgrad")),
    ("GEMM (cuBLAS)", ("gemm", "cutlass", "nvjet", "cublas", "matmul")),
)


def kernel_kind(name: str) -> str:
    low = name.lower()
    return next((kind for kind, keys in _KERNEL_KINDS if any(k in low for k in keys)), "other")


def cmd_profile(args):
    from torch.profiler import ProfilerActivity, profile
    dev = _device(args)
    unet, sched = load_model(args.model, args.model_seed)
    sampler, _ = cases.fast_sampler(unet, sched, args.setting, args.batch, args.steps, dev)
    case = cases.unet_call(sampler, args.batch, args.setting)
    for _ in range(2):
        case.fn()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(args.calls):
            case.fn()
        synchronize()
    kinds, rows = {}, []
    attr = "device_time_total" if dev == "cuda" else "self_cpu_time_total"
    for ev in prof.key_averages():
        if dev == "cuda" and getattr(ev, "device_type", None) is not None and str(ev.device_type) != "DeviceType.CUDA":
            continue
        us = float(getattr(ev, attr, 0.0) or 0.0)
        if us <= 0:
            continue
        kind = kernel_kind(ev.key)
        kinds[kind] = kinds.get(kind, 0.0) + us
        rows.append({"kernel": ev.key[:160], "kind": kind, "us_per_call": us / args.calls,
                     "count": ev.count // args.calls})
    rows.sort(key=lambda r: -r["us_per_call"])
    total = sum(kinds.values()) / args.calls
    order = sorted(kinds.items(), key=lambda kv: -kv[1])
    flops = case.info["flops_per_unit"]
    figs = {"time_us_per_call": total, "timed_on": "device" if dev == "cuda" else "cpu (self time)",
            "kinds_us_per_call": {k: v / args.calls for k, v in order},
            "kinds_share": {k: v / args.calls / total for k, v in order} if total else {},
            "tflops_at_profiled_time": flops * args.batch / (total * 1e-6) / 1e12 if total else None,
            "top_kernels": rows[:40]}
    return {"model": args.model, "setting": args.setting, "batch": args.batch, "calls": args.calls,
            "device": dev}, figs


_BW_LINE = re.compile(r"^\s*([0-9.]+)ms\s+([0-9.]+) GB\s+([0-9.]+)GB/s\s+([0-9.]+)%\s+(\S+)\s*$")
_BW_SUMMARY = re.compile(r"^\s*([0-9.]+)ms\s+([0-9.]+) GB\s+([0-9.]+)GB/s\s*$")


def parse_inductor_bandwidth(text: str) -> list[dict]:
    """The blocks of inductor's ``profile_bandwidth_output`` file (one per compiled-graph call), each
    ``{"kernels": [{"ms", "gb", "gb_per_s", "share", "kernel"}], "total_ms", "total_gb", "gb_per_s"}``.
    Kernel times are inductor's own ``do_bench`` of each kernel alone; bytes are its estimate of the
    kernel's input + output traffic (``kernel_num_gb``)."""
    blocks, cur, want_summary = [], None, False
    for line in text.splitlines():
        if line.startswith("TRITON KERNELS BANDWIDTH INFO"):
            cur = {"kernels": []}
            continue
        if cur is None:
            continue
        if line.startswith("SUMMARY"):
            want_summary = True
            continue
        if want_summary:
            m = _BW_SUMMARY.match(line)
            if m:
                cur.update(total_ms=float(m[1]), total_gb=float(m[2]), gb_per_s=float(m[3]))
                blocks.append(cur)
            cur, want_summary = None, False
            continue
        m = _BW_LINE.match(line)
        if m:
            cur["kernels"].append({"ms": float(m[1]), "gb": float(m[2]), "gb_per_s": float(m[3]),
                                   "share": float(m[4]) / 100, "kernel": m[5]})
    return blocks


def bandwidth_summary(block: dict, copy_gbs: float | None, top: int = 30) -> dict:
    """Figures of one parsed block: totals, time-weighted GB/s, the time a kernel would take at the copy
    bandwidth (its bytes / copy GB/s) summed, and the ``top`` kernels by time with their fraction of it."""
    ks = block["kernels"]
    at_copy = sum(k["gb"] for k in ks) / copy_gbs * 1e3 if copy_gbs else None
    rows = [dict(k, fraction_of_copy_bw=(k["gb_per_s"] / copy_gbs if copy_gbs else None))
            for k in sorted(ks, key=lambda k: -k["ms"])[:top]]
    return {"kernels": len(ks), "total_ms": block.get("total_ms"), "total_gb": block.get("total_gb"),
            "gb_per_s": block.get("gb_per_s"), "copy_bandwidth_gbs": copy_gbs,
            "fraction_of_copy_bw": block["gb_per_s"] / copy_gbs if copy_gbs and block.get("gb_per_s") else None,
            "ms_at_copy_bandwidth": at_copy,
            "kernels_below_half_copy_bw_ms": sum(k["ms"] for k in ks if copy_gbs and k["gb_per_s"] < copy_gbs / 2),
            "top_kernels": rows}


def cmd_kernels(args):
    import tempfile
    import torch._inductor.config as inductor_config
    dev = _device(args)
    raw = Path(args.raw) if args.raw else Path(tempfile.mkdtemp()) / "inductor_bandwidth.txt"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text("")
    inductor_config.profile_bandwidth = True
    inductor_config.profile_bandwidth_regex = ""
    inductor_config.profile_bandwidth_output = str(raw)
    # torch 2.11 calls benchmark_compiled_module() without its args when the harness is on (a TypeError at
    # compile time); the per-call table is written by the compiled wrapper either way
    inductor_config.benchmark_harness = False
    copy_gbs = copy_bandwidth_gbs(dev, args.copy_mib, rounds=20)
    unet, sched = load_model(args.model, args.model_seed)
    sampler, warm_s = cases.fast_sampler(unet, sched, args.setting, args.batch, args.steps, dev)
    cases.unet_call(sampler, args.batch, args.setting).fn()
    synchronize()
    blocks = parse_inductor_bandwidth(raw.read_text())
    if not blocks:
        raise ValueError(f"inductor wrote no bandwidth block to {raw} (is {args.setting!r} compiled?)")
    figs = {"copy_bandwidth_gbs": copy_gbs, "compile_and_warmup_s": warm_s, "graph_calls_profiled": len(blocks),
            "last_call": bandwidth_summary(blocks[-1], copy_gbs, top=args.top), "raw": str(raw)}
    return {"model": args.model, "setting": args.setting, "batch": args.batch, "device": dev}, figs


def cmd_inception(args):
    dev = _device(args)
    rows, feats = [], {}
    for mode in _csv(args.modes):
        prec, det = mode.split("/")
        case = cases.inception(args.n, args.batch, dev, strict_fp32=prec == "strict-fp32",
                               deterministic=det == "deterministic", weights=args.weights)
        rows.append(cases.run_timed(case, rounds=args.rounds, warmup=1))
        feats[mode] = case.fn().double().cpu()
        print(json.dumps({k: rows[-1][k] for k in ("mode", "rate")}), flush=True)
    base = feats[rows[0]["mode"]]
    for r in rows:
        r["rel_feature_diff_vs_first"] = float((feats[r["mode"]] - base).norm() / base.norm())
    return {"modes": _csv(args.modes), "n": args.n, "batch": args.batch, "rounds": args.rounds,
            "weights": args.weights, "device": dev}, {"rows": rows}


def cmd_overlap(args):
    from benchmarks.overlap import feature_overlap
    from maskpro_eval.metrics.gpu_features import GPUInceptionFeatures, PixelBlockFeatures
    dev = _device(args)
    unet, sched = load_model(args.model, args.model_seed)
    sampler, warm_s = cases.fast_sampler(unet, sched, args.setting, args.batch, args.steps, dev)
    if args.features == "inception":
        ext = GPUInceptionFeatures(args.weights, device=dev, batch_size=args.feature_batch, trust=args.trust_weights)
        fprot = ext.protocol
    elif args.features == "pixel":
        ext, fprot = PixelBlockFeatures(device=dev), {"name": "pixel block sums (stand-in)"}
    else:
        raise ValueError(f"--features {args.features!r}; expected inception or pixel")
    figs = feature_overlap(sampler, ext, args.batches, dev, rounds=args.rounds)
    print(json.dumps({k: figs[k] for k in ("sampling_s", "features_s", "pipelined_s", "hidden_s")}), flush=True)
    return {"model": args.model, "setting": args.setting, "batch": args.batch, "steps": args.steps,
            "batches": args.batches, "features": args.features, "feature_batch": args.feature_batch,
            "rounds": args.rounds, "device": dev}, {**figs, "compile_and_warmup_s": warm_s,
                                                    "features_protocol": fprot, "sampler": sampler.protocol()}


def cmd_frechet(args):
    dev = _device(args)
    rows = [cases.run_timed(cases.frechet(args.n, args.dim, be, dev), rounds=args.rounds, warmup=1)
            for be in _csv(args.backends)]
    return {"n": args.n, "dim": args.dim, "backends": _csv(args.backends), "rounds": args.rounds,
            "device": dev}, {"rows": rows}


def cmd_fid50k(args):
    from maskpro_eval.runtime import distributed
    t0 = time.perf_counter()
    out = distributed.main(list(args.distributed_args))
    if out is None:  # not rank 0 of a torchrun job: rank 0 writes the record
        return None
    out = {**out, "benchmark_cli_wall_s": time.perf_counter() - t0}
    return {"distributed_argv": list(args.distributed_args)}, out


def cmd_table(args):
    paths = []
    for p in map(Path, args.paths):
        paths += sorted(p.rglob("*.json")) if p.is_dir() else [p]
    lines = ["| record | name | date | device | figure |", "|---|---|---|---|---|"]
    archived = []
    for p in paths:
        rec = read_record(p)
        if rec is None:
            archived.append(str(p))
            continue
        for label, value in summary_figures(rec["figures"]):
            lines.append(f"| {p.name} | {rec['name']} | {rec['date'][:10]} | {rec['device'].get('device')} | "
                         f"{label}: {value} |")
    print("\n".join(lines))
    if archived:
        print(f"\n{len(archived)} JSON file(s) are not maskpro-eval-bench/1 records (e.g. the archived results "
              "described in benchmarks/README.md), first ones:\n  " + "\n  ".join(archived[:10]))
    return None


def summary_figures(figs: dict):
    """``(label, value)`` pairs of a record's headline figures: each row's rate, else the top-level numbers."""
    if isinstance(figs.get("rows"), list):
        for r in figs["rows"]:
            label = " ".join(f"{k}={r[k]}" for k in ("model", "path", "setting", "mode", "backend", "dtype", "batch")
                             if k in r)
            rate = r.get("rate") if "rate" in r else (r.get("unet_call") or {}).get("rate")
            unit = r.get("rate_unit") or (r.get("unet_call") or {}).get("rate_unit", "")
            yield label, "n/a" if rate is None else f"{rate:,.1f} {unit}"
        return
    for k in HEADLINE_FIGURES:
        v = figs.get(k)
        if isinstance(v, dict):
            v = v.get("tflops")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            yield k, f"{v:,.4g}"


#: Figures ``table`` shows of records without rows (env, make-models, profile, fid50k).
HEADLINE_FIGURES = ("matmul_bfloat16", "matmul_float32_strict", "copy_bandwidth_gbs", "layers_pruned_2of4",
                    "time_us_per_call", "tflops_at_profiled_time", "fid", "throughput_img_per_s",
                    "rank0_sampling_gpu_s", "rank0_features_gpu_s", "warmup_seconds_rank0", "wall_seconds")


# -------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n")[2])
    sub = p.add_subparsers(dest="cmd", required=True)

    def cmd(name, fn, help, model=True, model_default="tiny"):
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(fn=fn)
        sp.add_argument("--out", default=None, help="record JSON (default: print the record)")
        sp.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
        if model:
            sp.add_argument("--model", default=model_default,
                            help="tiny (built in code), ddpm-cifar10 (random weights) or a checkpoint path")
            sp.add_argument("--model-seed", type=int, default=0, help="torch seed of the built-in models")
        return sp

    sp = cmd("env", cmd_env, "device, versions, matmul peaks, copy bandwidth, FLOPs per image-step",
             model_default="ddpm-cifar10")
    sp.add_argument("--matmul-n", type=int, default=8192)
    sp.add_argument("--copy-mib", type=int, default=1024)
    sp.add_argument("--rounds", type=int, default=20)
    sp = cmd("make-models", cmd_make_models, "save MODEL and its magnitude 2:4 copy as diffusers folders",
             model_default="ddpm-cifar10")
    sp.add_argument("--models-dir", required=True)
    sp = cmd("forward", cmd_forward, "UNet forward latency over batch sizes and dtypes", model=False)
    sp.add_argument("--model", action="append", default=None,
                    help="tiny, ddpm-cifar10 or a checkpoint path; repeat to compare models (default tiny)")
    sp.add_argument("--model-seed", type=int, default=0)
    sp.add_argument("--batches", default="1,8,64,256")
    sp.add_argument("--dtypes", default="float32", help="comma-separated: float32, bfloat16, float16")
    sp.add_argument("--compile", action="store_true")
    sp.add_argument("--compile-mode", default=None)
    sp.add_argument("--rounds", type=int, default=20)
    sp.add_argument("--warmup", type=int, default=5)
    sp = cmd("sampling", cmd_sampling, "DDIM sampling img-steps/s by path (standard, fast, diffusers)")
    sp.add_argument("--paths", default="standard,fast", help=f"comma-separated: {', '.join(cases.SAMPLING_PATHS)}")
    sp.add_argument("--n", type=int, default=1024)
    sp.add_argument("--steps", type=int, default=100)
    sp.add_argument("--batch", type=int, default=256)
    sp.add_argument("--dtype", default="float32")
    sp.add_argument("--compile", action="store_true", help="torch.compile the fast path")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--rounds", type=int, default=1)
    sp.add_argument("--warmup", type=int, default=1)
    sp.add_argument("--check-pixels", action="store_true", help="also compare each path's images with standard's")
    sp = cmd("settings", cmd_settings, "fast-path settings: tokens joined by '+': " + ", ".join(cases.SETTING_TOKENS)
                 + ", io.NAME / io0.NAME (boolean inductor option NAME on / off)")
    sp.add_argument("--settings", default="compile", help="comma-separated settings, e.g. compile,compile+freeze+bf16")
    sp.add_argument("--batch", type=int, default=1024)
    sp.add_argument("--steps", type=int, default=100)
    sp.add_argument("--rounds", type=int, default=15)
    sp.add_argument("--batch-rounds", type=int, default=1)
    sp = cmd("profile", cmd_profile, "torch.profiler over UNet calls of one fast-path setting")
    sp.add_argument("--setting", default="compile+bf16")
    sp.add_argument("--batch", type=int, default=1024)
    sp.add_argument("--steps", type=int, default=100)
    sp.add_argument("--calls", type=int, default=3)
    sp = cmd("kernels", cmd_kernels, "per-kernel GB/s of inductor's Triton kernels in one compiled UNet call "
             "(torch._inductor.config.profile_bandwidth), against the measured copy bandwidth")
    sp.add_argument("--setting", default="compile+fp16")
    sp.add_argument("--batch", type=int, default=1024)
    sp.add_argument("--steps", type=int, default=100)
    sp.add_argument("--copy-mib", type=int, default=1024)
    sp.add_argument("--top", type=int, default=30)
    sp.add_argument("--raw", default=None, help="where inductor writes its per-call kernel table (kept)")
    sp = cmd("inception", cmd_inception, "Inception feature throughput by numeric mode", model=False)
    sp.add_argument("--modes", default="strict-fp32/deterministic,strict-fp32/nondeterministic,tf32/deterministic,"
                                       "tf32/nondeterministic")
    sp.add_argument("--n", type=int, default=4096)
    sp.add_argument("--batch", type=int, default=500)
    sp.add_argument("--rounds", type=int, default=3)
    sp.add_argument("--weights", default=None, help="Inception weights (default: the installed default_1.pt)")
    sp = cmd("overlap", cmd_overlap, "features of batch k-1 on a side stream while batch k samples: the feature "
             "time hidden by the sampling")
    sp.add_argument("--setting", default="compile+fp16")
    sp.add_argument("--batch", type=int, default=1024)
    sp.add_argument("--steps", type=int, default=100)
    sp.add_argument("--batches", type=int, default=3)
    sp.add_argument("--features", default="inception", help="inception (needs the weights) or pixel (stand-in)")
    sp.add_argument("--feature-batch", type=int, default=512)
    sp.add_argument("--weights", default=None, help="Inception weights (default: the installed default_1.pt)")
    sp.add_argument("--trust-weights", action="store_true",
                    help="load a --weights file that is not the standard default_1.pt (e.g. a same-architecture copy "
                         "with zeroed weights: the speed is the network's, the features are not)")
    sp.add_argument("--rounds", type=int, default=1)
    sp = cmd("frechet", cmd_frechet, "feature statistics + Frechet distance time", model=False)
    sp.add_argument("--n", type=int, default=50_000)
    sp.add_argument("--dim", type=int, default=2048)
    sp.add_argument("--backends", default="numpy,torch")
    sp.add_argument("--rounds", type=int, default=3)
    sp = cmd("fid50k", cmd_fid50k, "end-to-end full tier: arguments after -- go to "
             "python -m maskpro_eval.runtime.distributed", model=False)
    sp.add_argument("distributed_args", nargs=argparse.REMAINDER)
    sp = sub.add_parser("table", help="a table of the records in folders or files")
    sp.set_defaults(fn=cmd_table)
    sp.add_argument("paths", nargs="+")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; ``argv`` None -> the process's arguments (recorded exactly as given)."""
    command = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]) if argv is None else \
        [sys.executable, "-m", "benchmarks", *argv]
    args = build_parser().parse_args(argv)
    if args.cmd == "fid50k" and args.distributed_args[:1] == ["--"]:
        args.distributed_args = args.distributed_args[1:]
    try:
        result = args.fn(args)
    except ValueError as exc:
        print(f"python -m benchmarks {args.cmd}: {exc}", file=sys.stderr)
        return 2
    if result is None:
        return 0
    settings, figures = result
    rec = bench_record(args.cmd, settings, figures, command=command)
    if args.out:
        print(f"wrote {write_record(args.out, rec)}", flush=True)
    else:
        print(json.dumps(rec, indent=1, default=str))
    return 0

