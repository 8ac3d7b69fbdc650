"""Sample generation + Inception features sharded across processes (``torchrun``), features gathered,
FID identical to a single-process run on the same seeds.

Sharding rule: the samples ``0 .. N-1`` are cut into batches of ``batch_size``; process ``rank`` of
``world_size`` makes batches ``rank, rank + world_size, ...``. Every batch therefore has exactly the
composition and shape it has in a single-process run with the same batch size, each sample's noise
depends only on ``(seed, index)`` (:mod:`maskpro_eval.sampling.standard`), and the features are gathered back into
index order before the statistics are computed: the FID is the single-process FID (bit-identical where
the kernels are deterministic for a given shape, as cuDNN/cuBLAS inference kernels and CPU kernels are).

Backends: NCCL on GPUs (one process per GPU, ``cuda:LOCAL_RANK``), gloo on CPUs.

Command line (one node, 2 GPUs)::

    torchrun --standalone --nproc_per_node 2 -m maskpro_eval.runtime.distributed --model PATH \
        --num-samples 50000 --batch-size 1024 --dtype float16 --compile --ref-npz ref.npz --out fid.json

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) the same command runs in one process.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["DistContext", "init_distributed", "shard_batches", "shard_indices", "gather_features",
           "sharded_sample_features", "features_sha256", "main"]


@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"
    backend: str | None = None
    initialized: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.initialized:
            import torch.distributed as dist
            if self.backend == "nccl":
                dist.barrier(device_ids=[torch.device(self.device).index or 0])
            else:
                dist.barrier()

    def to_dict(self) -> dict:
        return asdict(self)


def _env_world_size() -> int:
    """The number of processes ``torchrun`` started (``WORLD_SIZE``; 1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_distributed(device: str | None = None, backend: str | None = None) -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``...). ``device``: ``"cuda"`` (each rank takes ``cuda:LOCAL_RANK``),
    ``"cpu"`` or None (CUDA if available). ``backend``: None -> NCCL for CUDA, gloo for CPU.
    Without ``WORLD_SIZE`` > 1 in the environment this is a single-process context.
    """
    world = _env_world_size()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev_type = torch.device(device).type
    if dev_type == "cuda":
        torch.cuda.set_device(local)
        dev = f"cuda:{local}"
    else:
        dev = "cpu"
    if world <= 1:
        return DistContext(0, 1, 0, dev, None, False)
    import torch.distributed as dist
    backend = backend or ("nccl" if dev_type == "cuda" else "gloo")
    if not dist.is_initialized():
        kwargs = {"device_id": torch.device(dev)} if backend == "nccl" else {}
        dist.init_process_group(backend=backend, **kwargs)
    return DistContext(dist.get_rank(), dist.get_world_size(), local, dev, backend, True)


def shard_batches(num_samples: int, batch_size: int, rank: int, world_size: int) -> list[tuple[int, int]]:
    """``(start, end)`` of the batches process ``rank`` makes: batch ``b`` goes to ``b % world_size``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    n, bs = int(num_samples), int(batch_size)
    return [(s, min(s + bs, n)) for k, s in enumerate(range(0, n, bs)) if k % world_size == rank]


def shard_indices(num_samples: int, batch_size: int, rank: int, world_size: int) -> list[int]:
    """Sample indices of process ``rank`` (in increasing order), see :func:`shard_batches`."""
    return [i for s, e in shard_batches(num_samples, batch_size, rank, world_size) for i in range(s, e)]


def gather_features(local: torch.Tensor, ctx: DistContext, num_samples: int, batch_size: int,
                    all_ranks: bool = False) -> torch.Tensor | None:
    """Features of every sample in index order (``N x D``) on rank 0 (every rank with ``all_ranks``);
    ``local`` holds this rank's rows in :func:`shard_indices` order. Single process: ``local`` itself."""
    if not ctx.initialized or ctx.world_size == 1:
        return local
    import torch.distributed as dist
    counts = [len(shard_indices(num_samples, batch_size, r, ctx.world_size)) for r in range(ctx.world_size)]
    if local.shape[0] != counts[ctx.rank]:
        raise ValueError(f"rank {ctx.rank}: {local.shape[0]} feature rows, expected {counts[ctx.rank]}")
    d = local.shape[1]
    comm_dev = torch.device(ctx.device) if ctx.backend == "nccl" else torch.device("cpu")
    pad = torch.zeros((max(counts), d), dtype=local.dtype, device=comm_dev)
    pad[:local.shape[0]] = local.to(comm_dev)
    bufs = [torch.empty_like(pad) for _ in range(ctx.world_size)]
    dist.all_gather(bufs, pad)
    if not (all_ranks or ctx.is_main):
        return None
    out = torch.empty((int(num_samples), d), dtype=local.dtype, device=comm_dev)
    for r in range(ctx.world_size):
        pos = 0
        for s, e in shard_batches(num_samples, batch_size, r, ctx.world_size):
            out[s:e] = bufs[r][pos:pos + (e - s)]
            pos += e - s
    return out


def features_sha256(feats) -> str:
    """sha256 of the float32 bytes of a feature matrix (bit-identity check between runs)."""
    a = feats.detach().to("cpu", torch.float32).contiguous().numpy() if isinstance(feats, torch.Tensor) \
        else np.ascontiguousarray(feats, dtype=np.float32)
    return hashlib.sha256(a.tobytes()).hexdigest()


def sharded_sample_features(sampler, extractor, num_samples: int, ctx: DistContext) -> dict:
    """This rank's share of samples -> features, then gathered (rank 0). Times with barriers around the work."""
    from maskpro_eval.metrics.gpu_features import sample_and_extract
    bs = int(sampler.sampling.batch_size)
    mine = shard_indices(num_samples, bs, ctx.rank, ctx.world_size)
    ctx.barrier()
    t0 = time.perf_counter()
    res = sample_and_extract(sampler, extractor, mine)
    if sampler.device.type == "cuda":
        torch.cuda.synchronize(sampler.device)
    t_local = time.perf_counter() - t0
    ctx.barrier()
    t_work = time.perf_counter() - t0
    t1 = time.perf_counter()
    feats = gather_features(res["features"], ctx, num_samples, bs)
    t_gather = time.perf_counter() - t1
    return {"features": feats, "local_count": len(mine), "local_seconds": t_local, "work_seconds": t_work,
            "gather_seconds": t_gather, "sampling_s": res["sampling_s"], "features_s": res["features_s"]}


# ------------------------------------------------------------------------------------------------ CLI
def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m maskpro_eval.runtime.distributed", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="checkpoint (diffusers folder or any format maskpro_eval loads)")
    src.add_argument("--random-ddpm-cifar10", type=int, metavar="SEED",
                     help="a random-weight DDPM CIFAR-10 UNet (torch.manual_seed(SEED)) for timing")
    p.add_argument("--num-samples", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"),
                   help="UNet dtype (default float16: FID within the fp32 seed spread on a trained UNet; "
                        "bfloat16 shifted it, see benchmarks/README.md)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--compile-mode", default=None)
    p.add_argument("--compile-options", default=None, metavar="K=V,...",
                   help="inductor options, e.g. coordinate_descent_tuning=1,freezing=1")
    p.add_argument("--cudnn-benchmark", action="store_true", help="cudnn.benchmark while sampling")
    p.add_argument("--channels-last", action="store_true", help="UNet in channels-last memory format")
    p.add_argument("--cuda-graph", action="store_true")
    p.add_argument("--time-table", action="store_true",
                   help="time embedding computed once per DDIM step for the whole batch (sampling.time_table)")
    p.add_argument("--fused-resnet", action="store_true",
                   help="Triton fused ResnetBlock2D (sampling.fused_resnet; CUDA, checked against the unfused UNet)")
    p.add_argument("--onepass-group-norm", action="store_true",
                   help="one-pass GroupNorm Triton kernel (sampling.group_norm; CUDA, checked against the unpatched UNet)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda if available)")
    p.add_argument("--features", default="inception", choices=("inception", "pixel16"),
                   help="inception (standard FID features) or pixel16 (a tiny exact stand-in for tests)")
    p.add_argument("--inception-weights", default=None)
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow --inception-weights other than the standard file, and pickled models (executes code)")
    p.add_argument("--feature-batch", type=int, default=512)
    p.add_argument("--tf32-features", action="store_true", help="allow TF32 in Inception (default: strict fp32)")
    p.add_argument("--nondeterministic-features", action="store_true",
                   help="let cuDNN pick non-deterministic Inception kernels (default: deterministic, bit-reproducible)")
    p.add_argument("--ref-npz", default=None, help="reference statistics (.npz with mu, sigma) for FID")
    p.add_argument("--save-stats", default=None, help="write mu/sigma (.npz) of the generated set (rank 0)")
    p.add_argument("--save-features", default=None, help="write the gathered features (.npy, rank 0)")
    p.add_argument("--out", default=None, help="result JSON (rank 0)")
    p.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up/compile batch")
    return p


def _load_unet(args):
    if args.model:
        from maskpro_eval.checkpoints import load_checkpoint
        loaded = load_checkpoint(Path(args.model), trust_pickle=args.trust_pickle)
        sched = None if loaded.scheduler is None else dict(loaded.scheduler.config)
        return loaded.unet.eval(), sched
    from maskpro_eval.checkpoints.architecture import build_ddpm_cifar10_unet
    torch.manual_seed(int(args.random_ddpm_cifar10))
    return build_ddpm_cifar10_unet().eval(), None


def main(argv=None) -> dict | None:
    args = _build_parser().parse_args(argv)
    t_start = time.perf_counter()
    ctx = init_distributed(args.device)
    from maskpro_eval.sampling.fast import FastDDIMSampler, parse_compile_options
    from maskpro_eval.metrics.gpu_features import GPUInceptionFeatures, PixelBlockFeatures, feature_statistics_torch, frechet_distance_torch
    setup = {"init_distributed_s": time.perf_counter() - t_start}
    t0 = time.perf_counter()
    unet, sched_cfg = _load_unet(args)
    sampler = FastDDIMSampler(unet, scheduler_config=sched_cfg, steps=args.steps, seed=args.seed,
                              batch_size=args.batch_size, dtype=args.dtype, compile=args.compile,
                              compile_mode=args.compile_mode,
                              compile_options=parse_compile_options(args.compile_options) or None,
                              cudnn_benchmark=args.cudnn_benchmark, channels_last=args.channels_last,
                              cuda_graph=args.cuda_graph, time_table=args.time_table,
                              fused_resnet=args.fused_resnet, onepass_group_norm=args.onepass_group_norm,
                              device=ctx.device)
    setup["load_unet_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if args.features == "inception":
        extractor = GPUInceptionFeatures(args.inception_weights, device=ctx.device, batch_size=args.feature_batch,
                                         strict_fp32=not args.tf32_features,
                                         deterministic=not args.nondeterministic_features, trust=args.trust_pickle)
    else:
        extractor = PixelBlockFeatures(16, device=ctx.device)
    setup["load_features_s"] = time.perf_counter() - t0
    warm = 0.0
    if not args.no_warmup and sampler.device.type == "cuda":
        warm = sampler.warmup()
        t0 = time.perf_counter()
        if args.features == "inception":
            # at the shapes of the run (cuDNN builds its plans per shape: keep that out of the timed work)
            fb = min(args.feature_batch, args.batch_size)
            for n_warm in sorted({fb, args.batch_size % fb} - {0}):
                extractor(torch.full((n_warm, *sampler.shape), 128, dtype=torch.uint8, device=sampler.device))
            torch.cuda.synchronize()
        setup["features_warmup_s"] = time.perf_counter() - t0
    res = sharded_sample_features(sampler, extractor, args.num_samples, ctx)
    out = None
    if ctx.is_main:
        feats = res["features"]
        t0 = time.perf_counter()
        mu, sigma = feature_statistics_torch(feats)
        fid = None
        if args.ref_npz:
            with np.load(args.ref_npz) as ref:
                fid = frechet_distance_torch(mu, sigma, ref["mu"], ref["sigma"], device=feats.device)
        t_fid = time.perf_counter() - t0
        if args.save_stats:
            np.savez(args.save_stats, mu=mu.cpu().numpy(), sigma=sigma.cpu().numpy(), n=args.num_samples)
        if args.save_features:
            np.save(args.save_features, feats.cpu().numpy())
        n = int(args.num_samples)
        out = {
            "world_size": ctx.world_size, "backend": ctx.backend, "device": ctx.device,
            "device_name": torch.cuda.get_device_name(sampler.device) if sampler.device.type == "cuda" else "cpu",
            "num_samples": n, "seed": args.seed, "steps": args.steps, "batch_size": args.batch_size,
            "dtype": args.dtype, "compile": args.compile, "compile_options": args.compile_options,
            "cudnn_benchmark": args.cudnn_benchmark, "channels_last": args.channels_last,
            "cuda_graph": args.cuda_graph, "time_table": args.time_table,
            "fused_resnet": args.fused_resnet, "onepass_group_norm": args.onepass_group_norm,
            "features": args.features,
            "features_protocol": extractor.protocol, "fid": fid, "fid_seconds": t_fid,
            "features_sha256": features_sha256(feats),
            "warmup_seconds_rank0": warm, "setup_seconds_rank0": setup, "work_seconds": res["work_seconds"],
            "gather_seconds": res["gather_seconds"], "rank0_sampling_gpu_s": res["sampling_s"],
            "rank0_features_gpu_s": res["features_s"],
            "throughput_img_per_s": n / res["work_seconds"],
            "wall_seconds": time.perf_counter() - t_start,
            "sampler": sampler.protocol(), "torch": torch.__version__,
        }
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(out, indent=1))
        print(json.dumps({k: v for k, v in out.items() if k not in ("sampler", "features_protocol")}), flush=True)
    ctx.barrier()
    if ctx.initialized:
        import torch.distributed as dist
        dist.destroy_process_group()
    return out


def _exit_after_process_group() -> None:
    """End a torchrun worker once its work is done and written, without interpreter finalisation.

    gloo's C++ worker threads can abort the process while the interpreter and static objects are torn down
    after ``destroy_process_group`` ("terminate called without an active exception", then SIGABRT/SIGBUS):
    seen in 1 of 40 two-process CPU runs on torch 2.13, always after every output had been written, and
    turned by torchrun into a failed run. Every file of :func:`main` is closed by then; only the standard
    streams need flushing. Single-process runs exit normally."""
    if _env_world_size() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
    _exit_after_process_group()
