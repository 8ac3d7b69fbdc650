"""TMA implicit-GEMM 3x3 convolutions (``maskpro_eval.sampling.tma_conv``) against cuDNN, per 3x3 convolution shape
of a UNet at a sampling batch (GPU only).

For every distinct (C_in, C_out, H x W) of the UNet's 3x3 stride-1 convolutions with C_in, C_out multiples of 8
(one probe call at B = 2; counted per UNet call), at ``--batch``, channels-last, ``--dtype``, median ms by CUDA
events of: cuDNN (``F.conv2d`` with the bias, and without it as inductor calls it), cuBLAS on the GEMM of the same M x K x N
(M = B*H*W pixels, K = 9*C_in, N = C_out: a ceiling without the convolution's gather), the 4-D TMA kernel at each
``--configs`` entry, and the padded 2-D TMA kernel at each entry (the input padded beforehand; the padding pass
timed apart). TFLOP/s = 2 M K N / time. Error: max |y - ref| / max |ref| against a float32 cuDNN convolution
(TF32 off), beside cuDNN's own in ``--dtype`` (a 4-D tile whose error is far above cuDNN's is a wrong result:
see ``sampling.tma_conv``). The last lines: per shape the best configurations, and the UNet call's total
3x3-convolution time by cuDNN without bias and by the best of it and the padded kernel (times the shape counts).

    python -m benchmarks.tma_conv --model ddpm-cifar10 --batch 1024 --dtype float16 --out tma_conv.json

One record of schema ``maskpro-eval-bench/1`` (name ``tma-conv``), one row per shape.
"""
from __future__ import annotations

import sys
import time

import torch
import torch.nn.functional as F

DEFAULT_CONFIGS = "128,128,64,8,4;128,128,64,4,4;128,256,64,8,3;256,128,64,8,3;64,128,64,4,4;128,128,32,4,5;128,64,64,4,4"


def conv_shapes(unet, device, dtype) -> dict[tuple[int, int, int, int], int]:
    """``{(C_in, C_out, H, W): count}`` of the UNet's 3x3 stride-1 padding-1 convolutions (C_in, C_out % 8 == 0)."""
    from torch import nn

    from benchmarks.fused_resnet import layer_inputs
    return layer_inputs(unet, device, dtype,
                        lambda m: (type(m) is nn.Conv2d and m.kernel_size == (3, 3) and m.stride == (1, 1)
                                   and m.padding == (1, 1) and m.in_channels % 8 == 0 and m.out_channels % 8 == 0),
                        lambda m, x: (m.in_channels, m.out_channels) + tuple(x.shape[2:]))


def main(argv: list[str] | None = None) -> int:
    from benchmarks.fused_resnet import kernel_bench_parser
    p = kernel_bench_parser(__doc__)
    p.add_argument("--configs", default=DEFAULT_CONFIGS, help="BM,BN,BK,warps,stages separated by ';'")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--shapes", default=None, help="only these shapes, e.g. '128->128@32x32;256->256@16x16'")
    p.add_argument("--no-padded", action="store_true", help="skip the padded 2-D variant")
    args = p.parse_args(argv)

    from benchmarks.fused_resnet import _median_ms, cuda_unet, finish_record, print_row
    from maskpro_eval.sampling import tma_conv as tc

    dev, dtype, unet = cuda_unet(args.model, args.dtype)
    t_start = time.perf_counter()
    configs = [tc.TmaConvConfig(*(int(v) for v in c.split(","))) for c in args.configs.split(";") if c]
    wanted = set(args.shapes.split(";")) if args.shapes else None
    rows = []
    total_cudnn = total_best = 0.0
    for (c_in, c_out, h, w), count in conv_shapes(unet, dev, dtype).items():
        name = f"{c_in}->{c_out}@{h}x{w}"
        if wanted and name not in wanted:
            continue
        g = torch.Generator(device="cpu").manual_seed(c_in * 7 + c_out + h)
        x = torch.randn(args.batch, c_in, h, w, generator=g).to(dev, dtype).contiguous(
            memory_format=torch.channels_last)
        wt = (torch.randn(c_out, c_in, 3, 3, generator=g) / (3 * c_in ** 0.5)).to(dev, dtype)
        b = torch.randn(c_out, generator=g).to(dev, dtype)
        wcl = wt.contiguous(memory_format=torch.channels_last)
        wk = tc.pack_weight(wt)
        m, k = args.batch * h * w, 9 * c_in
        flops = 2.0 * m * k * c_out
        tf32 = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        with torch.inference_mode():
            ref = F.conv2d(x.float(), wt.float(), b.float(), padding=1)
        torch.backends.cudnn.allow_tf32 = tf32
        scale = float(ref.abs().max())

        def err(y):
            return float((y.float() - ref).abs().max()) / scale
        row = {"shape": name, "count": count, "batch": args.batch, "gflop": flops / 1e9}
        with torch.inference_mode():
            row["cudnn_ms"] = _median_ms(lambda: F.conv2d(x, wcl, b, padding=1), args.reps)
            row["cudnn_err"] = err(F.conv2d(x, wcl, b, padding=1))
            # as inductor calls it: no bias (the bias joins the next fused pointwise kernel)
            row["cudnn_nobias_ms"] = _median_ms(lambda: F.conv2d(x, wcl, None, padding=1), args.reps)
            a2 = torch.randn(m, k, device=dev, dtype=dtype)
            b2 = torch.randn(k, c_out, device=dev, dtype=dtype)
            row["cublas_gemm_ms"] = _median_ms(lambda: a2 @ b2, args.reps)
            del a2, b2
            xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1)).contiguous()
            if not args.no_padded:
                row["pad_pass_ms"] = _median_ms(
                    lambda: F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 1, 1, 1)).contiguous(), args.reps)
            for cfg in configs:
                tag = ",".join(map(str, cfg))
                variants = [("tma4d", lambda: tc.conv3x3_tma(x, wk, b, config=cfg, experimental=True))]
                if not args.no_padded:
                    variants.append(("padded", lambda: tc.conv3x3_tma_padded(x, wk, b, config=cfg, padded=xp)))
                for vname, fn in variants:
                    try:
                        e = err(fn())
                        row[f"{vname}_ms[{tag}]"] = _median_ms(fn, args.reps)
                        row[f"{vname}_err[{tag}]"] = e
                    except Exception as ex:  # noqa: BLE001 - a config that does not build is a figure too
                        row[f"{vname}_error[{tag}]"] = f"{type(ex).__name__}: {str(ex)[:200]}"
        for key in ("cudnn", "cudnn_nobias", "cublas_gemm"):
            row[f"{key}_tflops"] = flops / row[f"{key}_ms"] / 1e9
        for vname in ("tma4d", "padded"):
            times = {kk: v for kk, v in row.items() if kk.startswith(f"{vname}_ms[")}
            if times:
                best = min(times, key=times.get)
                row[f"{vname}_best"] = best[len(vname) + 4:-1]
                row[f"{vname}_best_ms"] = times[best]
                row[f"{vname}_best_tflops"] = flops / times[best] / 1e9
                row[f"{vname}_speedup_vs_cudnn"] = row["cudnn_ms"] / times[best]
                row[f"{vname}_speedup_vs_cudnn_nobias"] = row["cudnn_nobias_ms"] / times[best]
        total_cudnn += count * row["cudnn_nobias_ms"]
        total_best += count * min(row.get("padded_best_ms", float("inf")), row["cudnn_nobias_ms"])
        rows.append(row)
        print_row(row)
    print({"unet_call_3x3_cudnn_nobias_ms": round(total_cudnn, 3), "with_best_padded_ms": round(total_best, 3)})
    return finish_record("tma-conv", args, {"rows": rows, "unet_call_3x3_cudnn_nobias_ms": total_cudnn,
                                            "unet_call_3x3_best_of_padded_and_cudnn_nobias_ms": total_best,
                                            "seconds": time.perf_counter() - t_start}, dev)


if __name__ == "__main__":
    raise SystemExit(main())
