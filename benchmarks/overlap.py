"""Inception features of the previous batch on a side CUDA stream while the next batch is sampled: how much of
the feature time the sampling hides (``python -m benchmarks overlap``).

The full tier computes features after sampling; its GPU is busy with the fp16 UNet (tensor cores, memory)
while the strict-fp32 Inception runs on the FMA pipes. This measures, on the same batches, sampling alone,
features alone and the two pipelined (batch k sampled on the main stream, batch k-1's feature chunks issued
on a side stream between the DDIM steps), all with the same work.
"""
from __future__ import annotations

import contextlib

import torch

from maskpro_eval.runtime.timing import time_callable
from maskpro_eval.sampling.fast import quantize_uint8


def chunk_steps(n_chunks: int, steps: int) -> list[int]:
    """The DDIM steps after which feature chunk 0..n_chunks-1 is issued (spread evenly, first after step 0)."""
    return [j * steps // n_chunks for j in range(n_chunks)]


def feature_overlap(sampler, extractor, batches: int, device: str, rounds: int = 1) -> dict:
    """Seconds of ``batches`` batches sampled, their features, both sequentially and pipelined.

    ``extractor``: callable uint8 ``N x C x H x W`` -> features, with a ``batch_size`` (chunk) attribute or not
    (one chunk). Returns the medians of ``rounds`` timed runs after one warm-up run of each and the features'
    largest difference between the pipelined and the sequential route (0 when the extractor is deterministic).
    """
    b = int(sampler.sampling.batch_size)
    steps = len(sampler.coefs)
    xs = [sampler.noise(range(i * b, (i + 1) * b)) for i in range(batches)]
    cuda = torch.device(device).type == "cuda"
    side = torch.cuda.Stream() if cuda else None
    fb = int(getattr(extractor, "batch_size", b) or b)
    first = quantize_uint8(sampler.denoise(xs[0]))
    images = [first] * batches  # the features' work: every batch of the same size (the images' values do not matter)

    def sample_only():
        return [quantize_uint8(sampler.denoise(x)) for x in xs]

    def features_only():
        return [extractor(u) for u in images]

    def on_side():
        return torch.cuda.stream(side) if side is not None else contextlib.nullcontext()

    def pipelined():
        """Batch i sampled on the main stream with batch i-1's feature chunks issued between its DDIM steps;
        the last batch's features after the loop (as a streaming full tier would run)."""
        feats = []
        main = torch.cuda.current_stream() if cuda else None
        for i, x in enumerate(xs):
            chunks = [] if i == 0 else [images[i - 1][s:s + fb] for s in range(0, b, fb)]
            when = chunk_steps(len(chunks), steps)
            if side is not None:
                side.wait_stream(main)
            with sampler.forward_context():
                for k in range(steps):
                    x = sampler._denoise_step(x, k)
                    for j in (j for j, w in enumerate(when) if w == k):
                        with on_side():
                            feats.append(extractor(chunks[j]))
            quantize_uint8(x)
        if side is not None:
            side.wait_stream(main)
        with on_side():
            feats.extend(extractor(images[-1][s:s + fb]) for s in range(0, b, fb))
        if side is not None:
            main.wait_stream(side)
        return feats

    kw = dict(warmup=1, rounds=rounds, device=device)
    t_s = time_callable(sample_only, **kw).median_s
    t_f = time_callable(features_only, **kw).median_s
    t_p = time_callable(pipelined, **kw).median_s
    seq = torch.cat(features_only())
    pip = torch.cat(pipelined())
    if cuda:
        torch.cuda.synchronize()
    return {"batches": batches, "batch": b, "feature_chunk": fb, "steps": steps,
            "sampling_s": t_s, "features_s": t_f, "sequential_s": t_s + t_f, "pipelined_s": t_p,
            "hidden_s": t_s + t_f - t_p, "hidden_fraction_of_features": (t_s + t_f - t_p) / t_f if t_f else None,
            "max_abs_feature_diff_pipelined_vs_sequential": float((pip.float() - seq.float()).abs().max())}
