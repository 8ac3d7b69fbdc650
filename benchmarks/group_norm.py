"""One-pass GroupNorm (``maskpro_eval.sampling.group_norm``) against inductor's GroupNorm, per GroupNorm layer
shape of a UNet at a sampling batch (GPU only).

For every distinct (channels, H x W) a GroupNorm of the UNet sees (one probe call at B = 2), at ``--batch``,
channels-last, ``--dtype``: ``silu(group_norm(x + add))`` with a per-(sample, channel) add (a resnet's norm2)
timed (median ms, CUDA events) as eager PyTorch, under ``torch.compile`` (inductor: a reduction and a
pointwise kernel) and as the Triton kernel at the heuristic launch configuration and at each ``--configs``
entry; GB/s = (read x + write y) / time, beside the device's copy bandwidth; max |error| against a float32
PyTorch reference, beside inductor's own.

    python -m benchmarks.group_norm --model ddpm-cifar10 --batch 1024 --dtype float16 --out gn.json

One record of schema ``maskpro-eval-bench/1`` (name ``group-norm``), one row per shape.
"""
from __future__ import annotations

import sys
import time

import torch
import torch.nn.functional as F


def gn_shapes(unet, device, dtype) -> list[tuple[int, int, int, int]]:
    """Distinct ``(channels, groups, H, W)`` of the UNet's GroupNorm inputs (spatial 3-D inputs as H x 1)."""
    from torch import nn

    from benchmarks.fused_resnet import layer_inputs
    return list(layer_inputs(unet, device, dtype, lambda m: type(m) is nn.GroupNorm,
                             lambda m, x: (x.shape[1], m.num_groups)
                             + (tuple(x.shape[2:]) if x.dim() == 4 else (x.shape[2], 1))))


def main(argv: list[str] | None = None) -> int:
    from benchmarks.fused_resnet import kernel_bench_parser
    p = kernel_bench_parser(__doc__)
    p.add_argument("--configs", default="8,0,0;16,0,4;16,0,8;32,0,4;32,0,8;64,0,8;64,0,16",
                   help="launch configs channels_per_program,block_pixels,num_warps (0 = heuristic) separated by ';'")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--no-compile", action="store_true", help="skip inductor's GroupNorm")
    args = p.parse_args(argv)

    from benchmarks.fused_resnet import _median_ms, cuda_unet, finish_record, print_row
    from maskpro_eval.sampling import group_norm as gn

    dev, dtype, unet = cuda_unet(args.model, args.dtype)
    t_start = time.perf_counter()
    buf = torch.empty(1 << 28, dtype=torch.uint8, device=dev)
    copy_ms = _median_ms(lambda: buf.clone(), args.reps)
    copy_gbs = 2 * buf.numel() / copy_ms / 1e6
    del buf
    configs = [tuple(int(v) for v in c.split(",")) for c in args.configs.split(";") if c]

    def ref_fn(x, add, w, b, groups):
        return F.silu(F.group_norm(x + add[:, :, None, None], groups, w, b, 1e-5))
    rows = []
    for c, groups, h, w in gn_shapes(unet, dev, dtype):
        torch._dynamo.reset()   # one compilation per shape (more shapes than dynamo's recompile limit)
        compiled = None if args.no_compile else torch.compile(ref_fn, dynamic=False)
        g = torch.Generator(device="cpu").manual_seed(c * 100 + h)
        x = (torch.randn(args.batch, c, h, w, generator=g) * 2 + 0.5).to(dev, dtype).contiguous(
            memory_format=torch.channels_last)
        add = torch.randn(args.batch, c, generator=g).to(dev, dtype)
        wt = (torch.rand(c, generator=g) + 0.5).to(dev, dtype)
        bs = torch.randn(c, generator=g).to(dev, dtype)
        nbytes = 2 * x.numel() * x.element_size()
        ref = gn.group_norm_act_reference(x, groups, wt, bs, 1e-5, add=add, silu=True).float()
        row = {"shape": f"{c}@{h}x{w}", "groups": groups, "batch": args.batch, "bytes": nbytes}
        with torch.inference_mode():
            row["eager_ms"] = _median_ms(lambda: ref_fn(x, add, wt, bs, groups), args.reps)
            if compiled is not None:
                out = compiled(x, add, wt, bs, groups)
                row["inductor_ms"] = _median_ms(lambda: compiled(x, add, wt, bs, groups), args.reps)
                row["inductor_gbs"] = nbytes / row["inductor_ms"] / 1e6
                row["inductor_max_err"] = float((out.float() - ref).abs().max())
            for cfg in [None] + configs:
                tag = "heuristic" if cfg is None else ",".join(map(str, cfg))
                try:
                    out = gn.group_norm_act(x, groups, wt, bs, 1e-5, add=add, silu=True, config=cfg)
                    ms = _median_ms(lambda: gn.group_norm_act(x, groups, wt, bs, 1e-5, add=add, silu=True,
                                                              config=cfg), args.reps)
                    row[f"triton_ms[{tag}]"] = ms
                    row[f"triton_max_err[{tag}]"] = float((out.float() - ref).abs().max())
                except Exception as e:  # noqa: BLE001 - a config that does not compile is a figure too
                    row[f"triton_error[{tag}]"] = f"{type(e).__name__}: {str(e)[:300]}"
        tri = {k: v for k, v in row.items() if k.startswith("triton_ms[")}
        if tri:
            best = min(tri, key=tri.get)
            row["best"] = best[len("triton_ms["):-1]
            row["best_ms"] = tri[best]
            row["best_gbs"] = nbytes / tri[best] / 1e6
            row["heuristic_gbs"] = nbytes / row.get("triton_ms[heuristic]", float("nan")) / 1e6
            if "inductor_ms" in row:
                row["speedup_vs_inductor"] = row["inductor_ms"] / tri[best]
        rows.append(row)
        print_row(row)
    print({"copy_gbs": round(copy_gbs, 1)})
    return finish_record("group-norm", args, {"rows": rows, "copy_gbs": copy_gbs,
                                              "seconds": time.perf_counter() - t_start}, dev)


if __name__ == "__main__":
    raise SystemExit(main())
