"""Fused ResnetBlock2D (``maskpro_eval.sampling.fused_resnet``) against the PyTorch block, per resnet of a
UNet at a sampling batch: correctness (relative L2 error against a float64 run of the same block, beside
PyTorch's own error in the same dtype) and time (CUDA events) for the eager block, the block under
``torch.compile`` and the fused block at each ``--configs`` tile; plus the bare 3x3 convolution (cuDNN vs the
Triton kernel with no prologue/epilogue) as a GEMM-efficiency figure.

    python -m benchmarks.fused_resnet --model ddpm-cifar10 --batch 1024 --dtype float16 --out fr.json

One record of schema ``maskpro-eval-bench/1`` (name ``fused-resnet``), rows per (resnet shape, variant).
"""
from __future__ import annotations

import argparse
import copy
import sys
import time

import torch


def _median_ms(fn, reps: int, warmup: int = 2) -> float:
    """Median ms per call by the project's CUDA-event timer (:func:`maskpro_eval.runtime.timing.time_callable`)."""
    from maskpro_eval.runtime.timing import time_callable
    return time_callable(fn, warmup=warmup, rounds=reps, device="cuda").median_s * 1e3


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.double() - ref).norm() / ref.norm())


def cuda_unet(model: str, dtype: str):
    """``(device, torch dtype, UNet)``: ``benchmarks.models.load_model(model)`` on CUDA in ``dtype``, eval, no grad."""
    from benchmarks.models import load_model
    dev = torch.device("cuda")
    unet, _ = load_model(model)
    return dev, getattr(torch, dtype), unet.to(dev, getattr(torch, dtype)).eval().requires_grad_(False)


def capture_resnet_inputs(unet, batch: int, dtype, device, seed: int = 0) -> dict:
    """``{name: (block, x, temb)}`` for every ResnetBlock2D, from one UNet call at ``batch`` (t = 500)."""
    from diffusers.models.resnet import ResnetBlock2D
    got = {}
    hooks = []

    def keep(name):
        def hook(mod, args):  # returns None: a pre-hook's return value would replace the block's arguments
            got.setdefault(name, (mod, args[0].detach().clone(), args[1].detach().clone()))
        return hook
    for n, m in unet.named_modules():
        if type(m) is ResnetBlock2D:
            hooks.append(m.register_forward_pre_hook(keep(n)))
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(batch, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size, generator=g)
    with torch.inference_mode():
        unet(x.to(device, dtype), torch.full((batch,), 500, device=device))
    for h in hooks:
        h.remove()
    return got


def shape_key(block, x) -> str:
    return f"{x.shape[1]}->{block.conv1.out_channels}@{x.shape[2]}x{x.shape[3]}"


def layer_inputs(unet, device, dtype, select, key) -> dict:
    """``{key(module, input): count}`` over the modules ``select(module)`` picks, from one UNet call at B = 2
    (t = 500): the distinct layer shapes a per-layer kernel benchmark times."""
    seen: dict = {}

    def hook(mod, args):
        k = key(mod, args[0])
        seen[k] = seen.get(k, 0) + 1
    hooks = [m.register_forward_pre_hook(hook) for m in unet.modules() if select(m)]
    s = unet.config.sample_size
    try:
        with torch.inference_mode():
            unet(torch.zeros(2, unet.config.in_channels, s, s, device=device, dtype=dtype),
                 torch.full((2,), 500, device=device))
    finally:
        for h in hooks:
            h.remove()
    return seen


def print_row(row: dict) -> None:
    """One result row of a per-layer kernel benchmark on stdout, floats to 4 decimals."""
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)


def finish_record(name: str, args, figures: dict, dev) -> int:
    """Write a per-layer kernel benchmark's record (schema ``maskpro-eval-bench/1``) to ``args.out`` when given."""
    from maskpro_eval.runtime.records import bench_record, write_record
    from maskpro_eval.runtime.timing import device_info
    rec = bench_record(name, settings=vars(args), figures=figures, command=sys.argv, device=device_info(dev))
    if args.out:
        write_record(args.out, rec)
    return 0


def kernel_bench_parser(doc: str) -> argparse.ArgumentParser:
    """The options every per-layer kernel benchmark takes: ``--model``, ``--batch``, ``--dtype``, ``--out``."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--model", default="ddpm-cifar10")
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    p.add_argument("--out", default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    p = kernel_bench_parser(__doc__)
    p.add_argument("--configs", default="64,64,32,4,3;128,64,32,4,3;128,128,32,8,3;128,128,64,8,3;64,128,64,4,3",
                   help="fused tiles BM,BN,BK,warps,stages separated by ';'")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--channels-last", action="store_true", help="activations in channels-last (NHWC) memory")
    p.add_argument("--silu", default="fast,exact", help="SiLU variants of the fused kernels: fast (tanh.approx), exact")
    p.add_argument("--shapes", default=None, help="only these resnet shapes, e.g. '128->128@32x32;256->256@16x16'")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile'd block")
    p.add_argument("--ref-batch", type=int, default=16, help="samples of the float64 correctness reference")
    args = p.parse_args(argv)

    from maskpro_eval.sampling import fused_resnet as fr

    dev, dtype, unet = cuda_unet(args.model, args.dtype)
    inputs = capture_resnet_inputs(unet, args.batch, dtype, dev)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    silus = [v.strip() for v in args.silu.split(",") if v.strip()]
    only = set(args.shapes.split(";")) if args.shapes else None
    configs = [tuple(int(v) for v in c.split(",")) for c in args.configs.split(";") if c]
    seen, rows = set(), []
    t_start = time.perf_counter()
    for name, (block, x, temb) in inputs.items():
        key = shape_key(block, x)
        if key in seen or (only is not None and key not in only):
            continue
        x = x.contiguous(memory_format=fmt)
        seen.add(key)
        row = {"shape": key, "example": name, "batch": args.batch, "dtype": args.dtype,
               "conv_flops": 2 * 9 * x.shape[0] * x.shape[2] * x.shape[3] * block.conv1.out_channels
               * (x.shape[1] + block.conv1.out_channels)}
        # correctness on the first ref-batch samples: float64 copy of the block is the reference
        nb = min(args.ref_batch, x.shape[0])
        xr, tr = x[:nb], temb[:nb]
        b64 = copy.deepcopy(block).double()
        with torch.inference_mode():
            ref = b64(xr.double(), tr.double())
            row["torch_rel_err"] = _rel(block(xr, tr), ref)
        with torch.inference_mode():
            eager = lambda: block(x, temb)  # noqa: E731
            row["eager_ms"] = _median_ms(eager, args.reps)
            if not args.no_compile:
                torch._dynamo.reset()  # one fresh compile per shape (dynamo's recompile limit would fall back to eager)
                cblock = torch.compile(block, dynamic=False)
                t0 = time.perf_counter()
                cblock(x, temb)
                torch.cuda.synchronize()
                row["compile_s"] = time.perf_counter() - t0
                row["compiled_ms"] = _median_ms(lambda: cblock(x, temb), args.reps)
            # the bare convolution: cuDNN vs the Triton kernel, conv2 shape (cout -> cout)
            w2 = block.conv2.weight
            hid = torch.randn(x.shape[0], w2.shape[1], x.shape[2], x.shape[3], device=dev, dtype=dtype
                              ).contiguous(memory_format=fmt)
            row["cudnn_conv2_ms"] = _median_ms(lambda: torch.nn.functional.conv2d(hid, w2, block.conv2.bias, padding=1),
                                               args.reps)
            packed = fr.pack_conv3x3_weight(w2)
            for cfg, silu in [(c, v) for c in configs for v in silus]:
                tag = "x".join(map(str, cfg)) + ("" if silu == "fast" else "-exact")
                try:
                    fb = fr.FusedResnetBlock2D(block, cfg, fast_silu=silu == "fast")
                    got = fb(xr, tr)
                    row[f"fused_rel_err[{tag}]"] = _rel(got, ref)
                    row[f"fused_ms[{tag}]"] = _median_ms(lambda: fb(x, temb), args.reps)
                    row[f"triton_conv2_ms[{tag}]"] = _median_ms(
                        lambda: fr.conv3x3(hid, packed, block.conv2.bias, block=cfg), args.reps)
                    row[f"fused_tflops[{tag}]"] = row["conv_flops"] / row[f"fused_ms[{tag}]"] / 1e9
                except Exception as e:  # noqa: BLE001 - a config that does not compile is a figure too
                    row[f"fused_error[{tag}]"] = f"{type(e).__name__}: {str(e)[:300]}"
        conv2_flops = 2 * 9 * x.shape[0] * x.shape[2] * x.shape[3] * w2.shape[0] * w2.shape[1]
        row["cudnn_conv2_tflops"] = conv2_flops / row["cudnn_conv2_ms"] / 1e9
        fused = {k: v for k, v in row.items() if k.startswith("fused_ms[")}
        if fused:
            best = min(fused, key=fused.get)
            row["best_fused"] = best[len("fused_ms["):-1]
            row["best_fused_ms"] = fused[best]
            row["speedup_vs_eager"] = row["eager_ms"] / fused[best]
            if "compiled_ms" in row:
                row["speedup_vs_compiled"] = row["compiled_ms"] / fused[best]
        rows.append(row)
        print_row(row)
    return finish_record("fused-resnet", args, {"rows": rows, "seconds": time.perf_counter() - t_start}, dev)


if __name__ == "__main__":
    raise SystemExit(main())
