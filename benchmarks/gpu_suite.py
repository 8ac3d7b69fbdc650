"""GPU measurement suite of maskpro-eval (issue #4). One subcommand per topic; each writes a JSON.

    python benchmarks/gpu_suite.py env        --out env.json
    python benchmarks/gpu_suite.py make-models --out DIR            # random DDPM CIFAR-10: dense + magnitude 2:4
    python benchmarks/gpu_suite.py precision  --model DIR/dense --out precision.json
    python benchmarks/gpu_suite.py anchor     --model DIR/dense --n 1024 --out anchor.json
    python benchmarks/gpu_suite.py reference  --model DIR/dense --seed 1 --n 10000 --weights W --npz ref.npz --out ref.json
    python benchmarks/gpu_suite.py stdpath    --model DIR/dense --n 10240 --weights W --store S --out std.json
    python benchmarks/gpu_suite.py fidelity   --model DIR/dense --store S --fast-features F.npy --ref ref.npz --out fid.json

The timed 50k fast run is ``python -m maskpro_eval.runtime.distributed`` (see run_gpu_suite.sh). Everything runs on the
CPU too (``--device cpu --tiny``), which is how the scripts are tested before any device time is spent.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from maskpro_eval.runtime.timing import backend_flags, capture_cuda_graph, device_info, strict_fp32, synchronize, time_callable


def _dev(args):
    return args.device or ("cuda" if torch.cuda.is_available() else "cpu")


def _write(path, obj):
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=1, default=str))
    print(f"wrote {path}", flush=True)


def _tiny_unet():
    from diffusers import UNet2DModel
    torch.manual_seed(0)
    return UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=(16, 32), norm_num_groups=4, attention_head_dim=None,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D")).eval()


def _load(path):
    from maskpro_eval.checkpoints import load_checkpoint
    loaded = load_checkpoint(Path(path))
    sched = None if loaded.scheduler is None else dict(loaded.scheduler.config)
    return loaded.unet.eval(), sched


# ----------------------------------------------------------------------------------------------- env
def cmd_env(args):
    from maskpro_eval.checkpoints.architecture import build_ddpm_cifar10_unet
    from maskpro_eval.analysis.flops import DATASHEET_BF16_DENSE_TFLOPS, unet_flops_per_image_step
    dev = _dev(args)
    info = device_info()
    res = {"device_info": info, "flops": unet_flops_per_image_step(build_ddpm_cifar10_unet().eval())}
    if dev == "cuda":
        n = args.matmul_n
        a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        t = time_callable(lambda: a @ b, warmup=5, rounds=30, device=dev)
        res["bf16_matmul"] = {"n": n, "median_ms": t.median_s * 1e3, "tflops": 2 * n ** 3 / t.median_s / 1e12}
        a32, b32 = a.float(), b.float()
        with strict_fp32():
            t = time_callable(lambda: a32 @ b32, warmup=3, rounds=10, device=dev)
        res["fp32_matmul_strict"] = {"n": n, "median_ms": t.median_s * 1e3, "tflops": 2 * n ** 3 / t.median_s / 1e12}
        x = torch.empty(2 ** 28, dtype=torch.float32, device=dev).uniform_()  # 1 GiB
        y = torch.empty_like(x)
        t = time_callable(lambda: y.copy_(x), warmup=3, rounds=20, device=dev)
        res["copy_bandwidth_gbs"] = 2 * x.numel() * 4 / t.median_s / 1e9
        name = info.get("device", "")
        res["datasheet_bf16_tflops"] = next((v for k, v in DATASHEET_BF16_DENSE_TFLOPS.items() if k in name), None)
    _write(args.out, res)


# --------------------------------------------------------------------------------------- make-models
def cmd_make_models(args):
    from diffusers import DDPMPipeline, DDPMScheduler

    from maskpro_eval.checkpoints.architecture import DDPM_CIFAR10_SCHEDULER_CONFIG, build_ddpm_cifar10_unet
    from maskpro_eval.analysis.layers import DEFAULT_EXCLUDE_LAYERS, layer_is_excluded
    from maskpro_eval.analysis.nm import is_groupable, magnitude_nm_mask
    torch.manual_seed(args.seed)
    unet = _tiny_unet() if args.tiny else build_ddpm_cifar10_unet().eval()
    out = Path(args.out)
    sched = DDPMScheduler(**DDPM_CIFAR10_SCHEDULER_CONFIG)
    DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(out / "dense", safe_serialization=True)
    pruned = copy.deepcopy(unet)
    count = 0
    with torch.no_grad():
        for name, mod in pruned.named_modules():
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)) and not layer_is_excluded(
                    name, DEFAULT_EXCLUDE_LAYERS) and is_groupable(mod.weight.shape, 4):
                mod.weight.mul_(magnitude_nm_mask(mod.weight, 2, 4))
                count += 1
    DDPMPipeline(unet=pruned, scheduler=sched).save_pretrained(out / "magnitude_2of4", safe_serialization=True)
    print(f"saved dense and magnitude_2of4 ({count} layers pruned 2:4) under {out}", flush=True)


# ----------------------------------------------------------------------------------------- precision
def cmd_precision(args):
    """UNet forward img-steps/s at one batch in every precision/compile mode (same random input)."""
    from maskpro_eval.runtime.bench import prepare_unet
    from maskpro_eval.analysis.flops import unet_flops_per_image_step
    dev = _dev(args)
    unet, _ = _load(args.model) if args.model else (_tiny_unet(), None)
    flops = unet_flops_per_image_step(unet)["flops"]
    b = args.batch
    g = torch.Generator().manual_seed(0)
    x32 = torch.randn(b, 3, 32, 32, generator=g).to(dev)
    t = torch.full((b,), 500, device=dev)
    rows = []

    def measure(label, fwd, x, ctx=None, graph=False, rounds=None):
        import contextlib
        ctx = ctx or contextlib.nullcontext()
        with torch.inference_mode(), ctx:
            t0 = time.perf_counter()
            fwd(x, t)
            synchronize()
            first = time.perf_counter() - t0
            fn = (lambda: fwd(x, t))
            if graph and dev == "cuda":
                gr, _ = capture_cuda_graph(fn)
                fn = gr.replay
            r = time_callable(fn, warmup=3, rounds=rounds or args.rounds, device=dev)
        row = {"mode": label, "batch": b, "median_ms": r.median_s * 1e3, "img_steps_per_s": b / r.median_s,
               "tflops": flops * b / r.median_s / 1e12, "first_call_s": first}
        rows.append(row)
        print(json.dumps(row), flush=True)

    info = device_info()
    modes = [m for m in args.modes.split(",") if m]
    for mode in modes:
        try:
            torch._dynamo.reset()
            if mode == "fp32-strict":
                m, f = prepare_unet(unet, dev, "float32")
                measure(mode, f, x32, ctx=strict_fp32(), rounds=max(3, args.rounds // 3))
            elif mode == "fp32-default":
                m, f = prepare_unet(unet, dev, "float32")
                measure(mode, f, x32, rounds=max(3, args.rounds // 3))
            elif mode == "tf32":
                m, f = prepare_unet(unet, dev, "float32")
                measure(mode, f, x32, ctx=backend_flags(tf32=True))
            elif mode == "bf16-autocast":
                m, f = prepare_unet(unet, dev, "float32")
                measure(mode, f, x32, ctx=torch.autocast(dev, dtype=torch.bfloat16))
            elif mode == "bf16":
                m, f = prepare_unet(unet, dev, "bfloat16")
                measure(mode, f, x32.bfloat16())
            elif mode == "bf16-graph":
                m, f = prepare_unet(unet, dev, "bfloat16")
                measure(mode, f, x32.bfloat16(), graph=True)
            elif mode == "bf16-channels-last":
                m, f = prepare_unet(unet, dev, "bfloat16")
                m.to(memory_format=torch.channels_last)
                measure(mode, f, x32.bfloat16().contiguous(memory_format=torch.channels_last))
            elif mode.startswith("bf16-compile"):
                # bf16-compile, bf16-compile-freezing, bf16-compile-graph
                import torch._inductor.config as icfg
                old_freezing = icfg.freezing
                icfg.freezing = "freezing" in mode
                try:
                    m, f = prepare_unet(unet, dev, "bfloat16", compile=True)
                    measure(mode, f, x32.bfloat16(), graph="graph" in mode)
                finally:
                    icfg.freezing = old_freezing
            else:
                raise ValueError(mode)
        except Exception as exc:  # noqa: BLE001 - record and go on: one failed mode must not lose the others
            rows.append({"mode": mode, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
            print(rows[-1], flush=True)
        finally:
            if dev == "cuda":
                torch.cuda.empty_cache()
            # written after every mode: a step stopped by its time limit keeps what it measured
            _write(args.out, {"device_info": info, "flops_per_image_step": flops, "rows": rows})


# -------------------------------------------------------------------------------------------- anchor
def cmd_anchor(args):
    """diffusers DDIMPipeline with fp32 defaults (the protocol as published), img/s on a subset."""
    from diffusers import DDIMPipeline, DDIMScheduler

    from maskpro_eval.checkpoints.architecture import DDPM_CIFAR10_SCHEDULER_CONFIG
    dev = _dev(args)
    unet, sched_cfg = _load(args.model) if args.model else (_tiny_unet(), None)
    sched = DDIMScheduler.from_config(sched_cfg or DDPM_CIFAR10_SCHEDULER_CONFIG)
    pipe = DDIMPipeline(unet=unet, scheduler=sched).to(dev)
    pipe.set_progress_bar_config(disable=True)
    pipe(batch_size=2, num_inference_steps=2, output_type="np")  # warm-up (cuDNN handles, allocator)
    synchronize()
    gen = torch.Generator(device="cpu").manual_seed(0)
    times = []
    done = 0
    while done < args.n:
        bs = min(args.batch, args.n - done)
        t0 = time.perf_counter()
        pipe(batch_size=bs, num_inference_steps=args.steps, generator=gen, output_type="np")
        synchronize()
        times.append(time.perf_counter() - t0)
        done += bs
        print(f"anchor: {done}/{args.n} ({done / sum(times):.2f} img/s)", flush=True)
    ips = done / sum(times)
    _write(args.out, {"what": "diffusers DDIMPipeline fp32 defaults (output_type=np)", "device_info": device_info(),
                      "n": done, "batch": args.batch, "steps": args.steps, "seconds": sum(times),
                      "images_per_s": ips, "img_steps_per_s": ips * args.steps,
                      "extrapolated_50k_minutes": 50_000 / ips / 60,
                      "note": f"measured on {done} samples, extrapolated linearly to 50,000"})


# ----------------------------------------------------------------------------------------- reference
def cmd_reference(args):
    """Reference statistics: the fast path (bf16) on seed ``--seed``; plus a TF32-vs-strict feature check."""
    from maskpro_eval.sampling.fast import FastDDIMSampler
    from maskpro_eval.metrics.gpu_features import GPUInceptionFeatures, feature_statistics_torch, frechet_distance_torch, sample_and_extract
    dev = _dev(args)
    unet, sched_cfg = _load(args.model) if args.model else (_tiny_unet(), None)
    t0 = time.perf_counter()
    sampler = FastDDIMSampler(unet, scheduler_config=sched_cfg, steps=args.steps, seed=args.seed,
                              batch_size=args.batch, dtype=args.dtype, compile=args.compile and dev == "cuda",
                              device=dev)
    ext = GPUInceptionFeatures(args.weights, device=dev, batch_size=args.feature_batch, strict_fp32=True)
    warm = sampler.warmup() if dev == "cuda" else 0.0
    res = sample_and_extract(sampler, ext, args.n, keep_images=args.tf32_check > 0)
    feats = res["features"]
    mu, sigma = feature_statistics_torch(feats)
    np.savez(args.npz, mu=mu.cpu().numpy(), sigma=sigma.cpu().numpy(), n=args.n,
             what=f"fast path {args.dtype} samples 0..{args.n - 1}, seed {args.seed}, random-weight model {args.model}")
    out = {"n": args.n, "seed": args.seed, "sampler": sampler.protocol(), "warmup_s": warm,
           "sampling_gpu_s": res["sampling_s"], "features_gpu_s": res["features_s"],
           "features_img_per_s_strict_fp32": args.n / res["features_s"], "wall_s": time.perf_counter() - t0,
           "features_protocol": ext.protocol}
    if args.tf32_check > 0:
        k = min(args.tf32_check, args.n)
        imgs = res["images"][:k]
        ext_tf32 = GPUInceptionFeatures(args.weights, device=dev, batch_size=args.feature_batch, strict_fp32=False)
        strict = feats[:k]
        with backend_flags(tf32=True):
            ext_tf32(imgs[:8].to(dev))
            synchronize()
            t1 = time.perf_counter()
            f_tf32 = ext_tf32(imgs.to(dev))
            synchronize()
            t_tf32 = time.perf_counter() - t1
        synchronize()
        t1 = time.perf_counter()
        f_strict2 = ext(imgs.to(dev))
        synchronize()
        t_strict = time.perf_counter() - t1
        rel = float((f_tf32.double() - strict.double()).norm() / strict.double().norm())
        repro = float((f_strict2.double() - strict.double()).abs().max())
        fid_s = frechet_distance_torch(*feature_statistics_torch(strict), mu, sigma)
        fid_t = frechet_distance_torch(*feature_statistics_torch(f_tf32), mu, sigma)
        out["tf32_check"] = {"n": k, "img_per_s_tf32": k / t_tf32, "img_per_s_strict": k / t_strict,
                             "feature_rel_diff_tf32_vs_strict": rel, "strict_rerun_max_abs_diff": repro,
                             "fid_vs_ref_strict": fid_s, "fid_vs_ref_tf32": fid_t,
                             "fid_rel_diff": abs(fid_t - fid_s) / abs(fid_s)}
    _write(args.out, out)


# ------------------------------------------------------------------------------------------- stdpath
def cmd_stdpath(args):
    """Issue #3 item 8: the standard (fp32, correct-first) full-tier path - QualityEvaluator's own calls:
    sampling.generate_to_store (fp32, batch 256, resumable chunks) then InceptionFeatureExtractor.features."""
    from maskpro_eval.metrics.inception import InceptionFeatureExtractor
    from maskpro_eval.sampling.config import SamplingConfig
    from maskpro_eval.sampling.fill_store import generate_to_store
    from maskpro_eval.sampling.unet_io import model_fingerprint
    dev = _dev(args)
    unet, sched_cfg = _load(args.model) if args.model else (_tiny_unet(), None)
    unet.to(dev)
    cfg = SamplingConfig(sampler="ddim", num_inference_steps=args.steps, eta=0.0, seed=args.seed,
                         batch_size=args.batch, dtype="float32", device=dev)
    store_dir = Path(args.store)
    before = sum(1 for _ in store_dir.glob("samples_*.npz")) if store_dir.is_dir() else 0
    t0 = time.perf_counter()
    store = generate_to_store(unet, cfg, store_dir, args.n, scheduler_config=sched_cfg,
                              model_id={"fingerprint": model_fingerprint(unet)}, chunk_size=args.chunk,
                              progress=False)
    synchronize()
    t_gen = time.perf_counter() - t0
    after_chunks = sum(1 for _ in store_dir.glob("samples_*.npz"))
    made = min(args.n, after_chunks * args.chunk) - min(args.n, before * args.chunk)
    out = {"what": "standard full-tier path: sampling.generate_to_store fp32 (PyTorch default TF32 flags) + "
                   "InceptionFeatureExtractor.features (fp32, batch 64)",
           "device_info": device_info(), "n_requested": args.n, "batch": args.batch, "chunk": args.chunk,
           "steps": args.steps, "samples_made_this_call": made, "sampling_s_this_call": t_gen,
           "sampling_img_per_s": made / t_gen if made else None,
           "complete": store.is_complete(args.n)}
    if args.features and store.is_complete(args.n):
        images = store.load(args.n)
        ext = InceptionFeatureExtractor(args.weights, device=dev)
        ext.features(images[:64], batch_size=64)  # warm-up
        synchronize()
        t1 = time.perf_counter()
        feats = ext.features(images, batch_size=64)
        synchronize()
        t_feat = time.perf_counter() - t1
        np.save(args.features, feats)
        out.update({"features_s": t_feat, "features_img_per_s": len(images) / t_feat, "features_file": args.features})
    _write(args.out, out)


# ------------------------------------------------------------------------------------------ fidelity
def cmd_fidelity(args):
    """bf16 fast path vs fp32 standard path on the same seeds: FID (N and subsets), spread, pixels."""
    from maskpro_eval.metrics.fid import feature_statistics, frechet_distance
    from maskpro_eval.sampling.fast import FastDDIMSampler
    from maskpro_eval.sampling.store import SampleStore
    dev = _dev(args)
    ref = np.load(args.ref)
    mu_r, sig_r = ref["mu"], ref["sigma"]
    f32 = np.load(args.std_features)
    fbf = np.load(args.fast_features, mmap_mode="r")
    n = len(f32)
    fbf_same = np.asarray(fbf[:n])

    from maskpro_eval.metrics.gpu_features import feature_statistics_torch, frechet_distance_torch
    mu_rt = torch.as_tensor(mu_r, device=dev)
    sig_rt = torch.as_tensor(sig_r, device=dev)

    def fid(f):  # float64 on the device (the GPU route; equal to fid.frechet_distance to ~1e-9 relative)
        mu, s = feature_statistics_torch(torch.as_tensor(np.asarray(f), device=dev))
        return frechet_distance_torch(mu, s, mu_rt, sig_rt)

    mu0, s0 = feature_statistics(f32)
    check = {"numpy_fid_fp32": frechet_distance(mu0, s0, mu_r, sig_r)}
    out = {"n_same_seeds": n, "reference": str(ref["what"]) if "what" in ref else args.ref,
           "fid_fp32_standard": fid(f32), "fid_bf16_fast": fid(fbf_same)}
    out["fid_abs_diff"] = abs(out["fid_fp32_standard"] - out["fid_bf16_fast"])
    out["numpy_cpu_fid_fp32"] = check["numpy_fid_fp32"]
    out["gpu_vs_numpy_rel_diff"] = abs(check["numpy_fid_fp32"] - out["fid_fp32_standard"]) / abs(check["numpy_fid_fp32"])
    k = args.subset
    subs = []
    for s in range(0, n - k + 1, k):
        a, b = fid(f32[s:s + k]), fid(fbf_same[s:s + k])
        subs.append({"samples": [s, s + k - 1], "fid_fp32": a, "fid_bf16": b, "diff": b - a})
    f32_vals = [r["fid_fp32"] for r in subs]
    out["subsets"] = subs
    out["subset_n"] = k
    out["fp32_spread_std_over_subsets"] = float(np.std(f32_vals, ddof=1)) if len(f32_vals) > 1 else None
    out["max_abs_subset_diff"] = max(abs(r["diff"]) for r in subs) if subs else None
    # symmetric view (no reference bias: the reference above was made by the bf16 path): FID between
    # halves of the same-seed sets, within and across precisions
    h = n // 2
    f32_t = torch.as_tensor(f32, device=dev)
    fbf_t = torch.as_tensor(fbf_same, device=dev)

    def fid2(a, b):
        return frechet_distance_torch(*feature_statistics_torch(a), *feature_statistics_torch(b))

    out["halves"] = {"n_each": h, "fp32_vs_fp32": fid2(f32_t[:h], f32_t[h:]),
                     "bf16_vs_bf16": fid2(fbf_t[:h], fbf_t[h:]),
                     "fp32_first_vs_bf16_second": fid2(f32_t[:h], fbf_t[h:]),
                     "bf16_first_vs_fp32_second": fid2(fbf_t[:h], f32_t[h:]),
                     "fp32_vs_bf16_same_seeds": fid2(f32_t[:h], fbf_t[:h])}
    big = []
    for s in range(n, len(fbf) - n + 1, n):
        big.append(fid(np.asarray(fbf[s:s + n])))
    out["bf16_disjoint_sets_of_n"] = big
    out["bf16_spread_std_at_n"] = float(np.std(big + [out["fid_bf16_fast"]], ddof=1)) if big else None
    # pixels: fast bf16 vs the fp32 store, and fast fp32 vs the fp32 store (same batch size) on the GPU
    unet, sched_cfg = _load(args.model) if args.model else (_tiny_unet(), None)
    from maskpro_eval.sampling.store import _STORE_FILE
    header = json.loads((Path(args.store) / _STORE_FILE).read_text())
    store = SampleStore(args.store, metadata=header["metadata"])
    std_imgs = store.load(n)[:args.pixels]
    px = {}
    for label, kw in (("bf16_fast_b1024", dict(dtype="bfloat16", batch_size=1024)),
                      ("fp32_fast_b256_same_batching", dict(dtype="float32", batch_size=args.std_batch,
                                                             pad_last_batch=False))):
        s = FastDDIMSampler(unet, scheduler_config=sched_cfg, steps=args.steps, seed=args.seed, device=dev, **kw)
        imgs = s.images(args.pixels)
        d = np.abs(imgs.astype(np.int16) - std_imgs.astype(np.int16))
        px[label] = {"n": args.pixels, "identical_fraction": float((d == 0).mean()), "mean_abs_diff": float(d.mean()),
                     "max_abs_diff": int(d.max()), "images_identical": int((d.reshape(len(d), -1).max(1) == 0).sum())}
        print(label, px[label], flush=True)
    out["pixels_vs_fp32_standard"] = px
    _write(args.out, out)


# --------------------------------------------------------------------------------------------- sweep
SWEEP_TOKENS = {
    "compile": "torch.compile (default mode)",
    "cdt": "inductor coordinate_descent_tuning",
    "freeze": "inductor freezing (weights constant-folded)",
    "bench": "cudnn.benchmark",
    "cl": "channels-last UNet",
    "graph": "CUDA graph around the UNet call",
    "ma": "max-autotune-no-cudagraphs",
    "fp16": "float16 UNet (default: bfloat16)",
    "tf32": "float32 UNet with TF32 matmuls/convolutions (default: bfloat16)",
}


def sweep_config(variant: str, batch: int):
    """``"compile+cdt+bench"`` -> FastSamplingConfig kwargs (bf16, DDIM 100)."""
    toks = [t for t in variant.split("+") if t]
    bad = [t for t in toks if t not in SWEEP_TOKENS]
    if bad:
        raise SystemExit(f"unknown sweep tokens {bad}; known: {sorted(SWEEP_TOKENS)}")
    opts = {}
    if "cdt" in toks:
        opts["coordinate_descent_tuning"] = True
    if "freeze" in toks:
        opts["freezing"] = True
    dtype = "float16" if "fp16" in toks else "float32" if "tf32" in toks else "bfloat16"
    return dict(batch_size=batch, dtype=dtype, allow_tf32=True if "tf32" in toks else None, compile="compile" in toks,
                compile_mode="max-autotune-no-cudagraphs" if "ma" in toks else None,
                compile_options=opts or None, cudnn_benchmark="bench" in toks, channels_last="cl" in toks,
                cuda_graph="graph" in toks)


def cmd_sweep(args):
    """One fast-path configuration: compile time, UNet-call median (CUDA events) and one whole batch of
    100 DDIM steps, in img-steps/s. One process per variant (inductor/cuDNN state does not leak)."""
    from maskpro_eval.sampling.fast import FastDDIMSampler
    from maskpro_eval.analysis.flops import unet_flops_per_image_step
    dev = _dev(args)
    unet, sched = _load(args.model) if args.model else (_tiny_unet(), None)
    flops = unet_flops_per_image_step(unet)["flops"]
    kw = sweep_config(args.variant, args.batch)
    s = FastDDIMSampler(unet, scheduler_config=sched, steps=args.steps, device=dev, **kw)
    compile_s = s.warmup()
    x = s.noise(range(args.batch))
    xin = s._prep_input(x)
    t_mid = s.coefs[len(s.coefs) // 2]["t"]
    with s.forward_context():
        r = time_callable(lambda: s._call_unet(xin, t_mid), warmup=3, rounds=args.rounds, device=dev)
    synchronize()
    t0 = time.perf_counter()
    s.denoise(x)
    synchronize()
    batch_s = time.perf_counter() - t0
    row = {"variant": args.variant, "tokens": {t: SWEEP_TOKENS[t] for t in args.variant.split("+") if t},
           "batch": args.batch, "compile_s": compile_s, "unet_median_ms": r.median_s * 1e3,
           "unet_min_max_ms": [r.min_s * 1e3, max(r.times_s) * 1e3 if r.times_s else None],
           "img_steps_per_s": args.batch / r.median_s, "tflops": flops * args.batch / r.median_s / 1e12,
           "batch_100_steps_s": batch_s, "img_steps_per_s_whole_batch": args.batch * args.steps / batch_s,
           "projected_50k_sampling_s": 50_000 * args.steps / (args.batch * args.steps / batch_s),
           "device_info": device_info()}
    print(json.dumps({k: v for k, v in row.items() if k != "device_info"}), flush=True)
    _write(args.out, row)


def cmd_profile(args):
    """Where the GPU time of one compiled bf16 UNet call goes: kernels grouped by kind (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    from maskpro_eval.sampling.fast import FastDDIMSampler
    from maskpro_eval.analysis.flops import unet_flops_per_image_step
    dev = _dev(args)
    unet, sched = _load(args.model) if args.model else (_tiny_unet(), None)
    flops = unet_flops_per_image_step(unet)
    s = FastDDIMSampler(unet, scheduler_config=sched, steps=args.steps, device=dev,
                        **sweep_config(args.variant, args.batch))
    s.warmup()
    x = s._prep_input(s.noise(range(args.batch)))
    t = s.coefs[len(s.coefs) // 2]["t"]
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev == "cuda" else [])
    with s.forward_context():
        for _ in range(2):
            s._call_unet(x, t)
        synchronize()
        with profile(activities=acts) as prof:
            for _ in range(args.calls):
                s._call_unet(x, t)
            synchronize()
    kinds = {}
    rows = []
    attr = "device_time_total" if dev == "cuda" else "self_cpu_time_total"
    for ev in prof.key_averages():
        us = float(getattr(ev, attr, 0.0) or getattr(ev, "cuda_time_total", 0.0) or 0.0)
        if dev == "cuda" and getattr(ev, "device_type", None) is not None and str(ev.device_type) != "DeviceType.CUDA":
            continue
        if us <= 0:
            continue
        name = ev.key
        low = name.lower()
        if "triton" in low:
            kind = "triton (inductor: norm/SiLU/add/etc.)"
        elif any(k in low for k in ("nchwtonhwc", "nhwctonchw", "transpose", "copy", "memcpy", "memset")):
            kind = "copies / layout"
        elif any(k in low for k in ("flash", "fmha", "attention", "sdpa")):
            kind = "attention (SDPA)"
        elif any(k in low for k in ("conv", "xmma", "implicit", "cudnn", "sm90_x", "fprop", "dgrad", "wgrad")):
            kind = "convolution (cuDNN)"
        elif any(k in low for k in ("gemm", "cutlass", "nvjet", "cublas", "matmul")):
            kind = "GEMM (cuBLAS)"
        else:
            kind = "other"
        kinds[kind] = kinds.get(kind, 0.0) + us
        rows.append({"kernel": name[:160], "kind": kind, "us_per_call": us / args.calls, "count": ev.count // args.calls})
    rows.sort(key=lambda r: -r["us_per_call"])
    total = sum(kinds.values()) / args.calls
    out = {"variant": args.variant, "batch": args.batch, "calls": args.calls, "gpu_us_per_call": total,
           "kinds_us_per_call": {k: v / args.calls for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
           "kinds_share": {k: v / args.calls / total for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
           "flops": flops, "tflops_at_gpu_time": flops["flops"] * args.batch / (total * 1e-6) / 1e12 if total else None,
           "top_kernels": rows[:40], "device_info": device_info()}
    print(json.dumps({k: out[k] for k in ("gpu_us_per_call", "kinds_share", "tflops_at_gpu_time")}), flush=True)
    for r in rows[:15]:
        print(f"{r['us_per_call']:9.1f} us x{r['count']:3d}  {r['kind'][:12]:12s} {r['kernel'][:90]}", flush=True)
    _write(args.out, out)


# ------------------------------------------------------------------------------ fidelity, trained UNet
def cmd_trained_fidelity(args):
    """Reduced precision vs fp32 on a TRAINED UNet (the demo zoo's dense model): FIDs of the same seeds in each
    precision against fixed references, the fp32 seed-to-seed spread, and pixel differences on identical x_T."""
    from maskpro_eval.metrics.fid import frechet_distance
    from maskpro_eval.sampling.fast import FastDDIMSampler
    from maskpro_eval.metrics.gpu_features import GPUInceptionFeatures, feature_statistics_torch, sample_and_extract
    from maskpro_eval.checkpoints.zoo import zoo_model_path, zoo_reference_images
    dev = _dev(args)
    model = args.model or str(zoo_model_path("dense"))
    unet, sched = _load(model)
    if args.pixel_features:
        from maskpro_eval.metrics.gpu_features import PixelBlockFeatures
        ext = PixelBlockFeatures(16, device=dev)
    else:
        ext = GPUInceptionFeatures(args.weights, device=dev, batch_size=args.feature_batch)
    kinds = {"fp32-strict": dict(dtype="float32", allow_tf32=False), "fp32-default": dict(dtype="float32"),
             "bf16": dict(dtype="bfloat16"), "fp16": dict(dtype="float16")}
    others = [p for p in args.precisions.split(",") if p and p != "fp32-strict"]
    bad = [p for p in others if p not in kinds]
    if bad:
        raise SystemExit(f"unknown precisions {bad}; known: {sorted(kinds)}")
    seeds = [int(v) for v in args.seeds.split(",")]
    plan = [("fp32-strict", sd) for sd in seeds]
    for p in others:
        plan += [(p, sd) for sd in (seeds if p != "fp32-default" else seeds[:1])]
    plan.append(("fp32-strict", args.ref_seed))
    stats, images, timing = {}, {}, {}
    for prec, sd in plan:
        t0 = time.perf_counter()
        smp = FastDDIMSampler(unet, scheduler_config=sched, steps=args.steps, seed=sd, batch_size=args.batch,
                              device=dev, **kinds[prec])
        res = sample_and_extract(smp, ext, args.n, keep_images=(sd == seeds[0]))
        stats[(prec, sd)] = tuple(v.cpu().numpy() for v in feature_statistics_torch(res["features"]))
        if res["images"] is not None:
            images[prec] = res["images"][:args.pixels].numpy()
        timing[f"{prec}/seed{sd}"] = time.perf_counter() - t0
        print(f"{prec} seed {sd}: {timing[f'{prec}/seed{sd}']:.1f}s", flush=True)
    real = zoo_reference_images()
    rf = ext(torch.from_numpy(real).permute(0, 3, 1, 2).contiguous())
    refs = {"real digits (1,797)": tuple(v.cpu().numpy() for v in feature_statistics_torch(rf)),
            f"fp32-strict seed {args.ref_seed} (N={args.n})": stats[("fp32-strict", args.ref_seed)]}
    table = {}
    for rname, (mr, sr) in refs.items():
        t = {f"{p}/seed{sd}": float(frechet_distance(*stats[(p, sd)], mr, sr))
             for (p, sd) in plan if not (p == "fp32-strict" and sd == args.ref_seed)}
        f32 = np.array([t[f"fp32-strict/seed{sd}"] for sd in seeds])
        t["fp32_seed_std"] = float(f32.std(ddof=1)) if len(seeds) > 1 else None
        t["fp32_seed_range"] = float(f32.max() - f32.min())
        for p in others:
            ss = seeds if p != "fp32-default" else seeds[:1]
            diff = np.array([t[f"{p}/seed{sd}"] for sd in ss]) - f32[:len(ss)]
            t[f"{p}_minus_fp32_same_seed"] = [float(v) for v in diff]
            t[f"{p}_within_fp32_spread"] = bool(np.abs(diff).max() <= max(t["fp32_seed_range"], 1e-12))
        table[rname] = t
    direct = {}
    for p in others:
        direct[f"FID(fp32 seed {seeds[0]}, {p} seed {seeds[0]})"] = float(frechet_distance(
            *stats[("fp32-strict", seeds[0])], *stats[(p, seeds[0])]))
    for sd in seeds[1:]:
        direct[f"FID(fp32 seed {seeds[0]}, fp32 seed {sd})"] = float(frechet_distance(
            *stats[("fp32-strict", seeds[0])], *stats[("fp32-strict", sd)]))
    px = {}
    for prec in others:
        d = np.abs(images[prec].astype(np.int16) - images["fp32-strict"].astype(np.int16))
        px[f"{prec} vs fp32-strict"] = {"n": int(len(d)), "mean_abs_uint8": float(d.mean()), "max_abs_uint8": int(d.max()),
                                        "identical_pixels": float((d == 0).mean()),
                                        "within_1_level": float((d <= 1).mean())}
    out = {"model": model, "n": args.n, "steps": args.steps, "seeds": seeds, "ref_seed": args.ref_seed,
           "batch": args.batch, "precisions": ["fp32-strict", *others], "fid_tables": table, "direct": direct,
           "pixels": px, "timing_s": timing, "features": ext.protocol, "device_info": device_info()}
    print(json.dumps({"fid_tables": table, "direct": direct, "pixels": px}, indent=1), flush=True)
    _write(args.out, out)


def cmd_inception_speed(args):
    """Inception features img/s on the GPU: strict fp32 vs TF32, deterministic cuDNN or not; FID change."""
    from maskpro_eval.metrics.fid import frechet_distance
    from maskpro_eval.metrics.gpu_features import GPUInceptionFeatures, feature_statistics_torch
    dev = _dev(args)
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (args.n, 3, 32, 32), generator=g, dtype=torch.uint8).to(dev)
    # smooth them a bit so they are not white noise (features of noise sit in one corner of the space)
    rows, feats = [], {}
    for strict in (True, False):
        for det in (True, False):
            ext = GPUInceptionFeatures(args.weights, device=dev, batch_size=args.feature_batch, strict_fp32=strict,
                                       deterministic=det)
            ext(imgs[:args.feature_batch])
            synchronize()
            t0 = time.perf_counter()
            f = ext(imgs)
            synchronize()
            dt = time.perf_counter() - t0
            key = f"{'strict-fp32' if strict else 'tf32'}/{'deterministic' if det else 'nondeterministic'}"
            feats[key] = f.double().cpu()
            rows.append({"mode": key, "img_per_s": args.n / dt, "seconds": dt, "n": args.n})
            print(json.dumps(rows[-1]), flush=True)
    base = feats["strict-fp32/deterministic"]
    ms = tuple(v.numpy() for v in feature_statistics_torch(base[: args.n // 2]))
    for r in rows:
        f = feats[r["mode"]]
        r["rel_feature_diff_vs_strict"] = float((f - base).norm() / base.norm())
        a = tuple(v.numpy() for v in feature_statistics_torch(f[args.n // 2:]))
        r["fid_halves"] = float(frechet_distance(*a, *ms))
    _write(args.out, {"rows": rows, "device_info": device_info()})


def cmd_best(args):
    """Flags for ``python -m maskpro_eval.runtime.distributed`` from the fastest sweep result whose compile took at most
    ``--max-compile-s`` (ranked by whole-batch img-steps/s, DDIM update included)."""
    rows = [json.loads(Path(f).read_text()) for f in sorted(Path(args.dir).glob("sweep_*.json"))]
    rows = [r for r in rows if r.get("compile_s", 1e9) <= args.max_compile_s]
    if not rows:
        print("--compile --batch-size 1024")
        return
    best = max(rows, key=lambda r: r["img_steps_per_s_whole_batch"])
    toks = best["variant"].split("+")
    flags = ["--batch-size", str(best["batch"])]
    if "compile" in toks:
        flags.append("--compile")
    opts = [o for t, o in (("cdt", "coordinate_descent_tuning=1"), ("freeze", "freezing=1")) if t in toks]
    if opts:
        flags += ["--compile-options", ",".join(opts)]
    if "bench" in toks:
        flags.append("--cudnn-benchmark")
    if "cl" in toks:
        flags.append("--channels-last")
    if "graph" in toks:
        flags.append("--cuda-graph")
    print(" ".join(flags))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--device", default=None)
        sp.add_argument("--out", required=True)
        return sp

    sp = common(sub.add_parser("env"))
    sp.add_argument("--matmul-n", type=int, default=8192)
    sp = sub.add_parser("make-models")
    sp.add_argument("--out", required=True)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--tiny", action="store_true")
    sp = common(sub.add_parser("precision"))
    sp.add_argument("--model")
    sp.add_argument("--batch", type=int, default=1024)
    sp.add_argument("--rounds", type=int, default=10)
    sp.add_argument("--modes", default="fp32-strict,fp32-default,tf32,bf16-autocast,bf16,bf16-graph,"
                                       "bf16-channels-last,bf16-compile,bf16-compile-graph,bf16-compile-freezing")
    sp = common(sub.add_parser("anchor"))
    sp.add_argument("--model")
    sp.add_argument("--n", type=int, default=1024)
    sp.add_argument("--batch", type=int, default=128)
    sp.add_argument("--steps", type=int, default=100)
    sp = common(sub.add_parser("reference"))
    sp.add_argument("--model")
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--n", type=int, default=10_000)
    sp.add_argument("--steps", type=int, default=100)
    sp.add_argument("--batch", type=int, default=1024)
    sp.add_argument("--dtype", default="bfloat16")
    sp.add_argument("--compile", action="store_true")
    sp.add_argument("--weights", default=None)
    sp.add_argument("--feature-batch", type=int, default=500)
    sp.add_argument("--npz", required=True)
    sp.add_argument("--tf32-check", type=int, default=2048)
    sp = common(sub.add_parser("stdpath"))
    sp.add_argument("--model")
    sp.add_argument("--n", type=int, default=10_240)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--steps", type=int, default=100)
    sp.add_argument("--batch", type=int, default=256)
    sp.add_argument("--chunk", type=int, default=1024)
    sp.add_argument("--store", required=True)
    sp.add_argument("--weights", default=None)
    sp.add_argument("--features", default=None, help="compute features when the store is complete, save .npy here")
    sp = common(sub.add_parser("fidelity"))
    sp.add_argument("--model")
    sp.add_argument("--store", required=True)
    sp.add_argument("--std-features", required=True)
    sp.add_argument("--fast-features", required=True)
    sp.add_argument("--ref", required=True)
    sp.add_argument("--subset", type=int, default=2048)
    sp.add_argument("--pixels", type=int, default=1024)
    sp.add_argument("--std-batch", type=int, default=256)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--steps", type=int, default=100)
    def fast_path(sp):  # sweep and profile: one fast-path setting (see SWEEP_TOKENS)
        sp.add_argument("--model")
        sp.add_argument("--variant", default="compile", help="tokens joined by '+': " + ", ".join(SWEEP_TOKENS))
        sp.add_argument("--batch", type=int, default=1024)
        sp.add_argument("--steps", type=int, default=100)
        return sp

    fast_path(common(sub.add_parser("sweep"))).add_argument("--rounds", type=int, default=15)
    fast_path(common(sub.add_parser("profile"))).add_argument("--calls", type=int, default=3)
    sp = common(sub.add_parser("trained-fidelity"))
    sp.add_argument("--model", default=None, help="default: the demo zoo's dense model")
    sp.add_argument("--n", type=int, default=10_240)
    sp.add_argument("--seeds", default="0,1,2")
    sp.add_argument("--ref-seed", type=int, default=9)
    sp.add_argument("--steps", type=int, default=100)
    sp.add_argument("--batch", type=int, default=2048)
    sp.add_argument("--pixels", type=int, default=2048)
    sp.add_argument("--weights", default=None)
    sp.add_argument("--feature-batch", type=int, default=500)
    sp.add_argument("--pixel-features", action="store_true", help="stand-in features (CPU dry runs only)")
    sp.add_argument("--precisions", default="fp32-strict,bf16,fp32-default",
                    help="compared with fp32-strict: any of bf16, fp16, fp32-default (cuDNN TF32)")
    sp = common(sub.add_parser("inception-speed"))
    sp.add_argument("--weights", default=None)
    sp.add_argument("--n", type=int, default=4096)
    sp.add_argument("--feature-batch", type=int, default=500)
    sp = sub.add_parser("best")
    sp.add_argument("--dir", required=True)
    sp.add_argument("--max-compile-s", type=float, default=90.0)
    args = p.parse_args(argv)
    {"best": cmd_best, "sweep": cmd_sweep, "profile": cmd_profile, "trained-fidelity": cmd_trained_fidelity,
     "inception-speed": cmd_inception_speed, "env": cmd_env, "make-models": cmd_make_models, "precision": cmd_precision, "anchor": cmd_anchor,
     "reference": cmd_reference, "stdpath": cmd_stdpath, "fidelity": cmd_fidelity}[args.cmd](args)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
