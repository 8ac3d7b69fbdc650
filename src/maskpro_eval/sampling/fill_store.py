"""Filling a resumable sample store with either backend (several processes may share one store)."""
from __future__ import annotations

import time

import json
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

from maskpro_eval.sampling.config import SamplingConfig, SamplingError, protocol_metadata, scheduler_config_dict
from maskpro_eval.sampling.fast import FastDDIMSampler
from maskpro_eval.runtime.progress import make_bar
from maskpro_eval.sampling.standard import generate
from maskpro_eval.sampling.store import SampleStore, SampleStoreMismatchError
from maskpro_eval.sampling.unet_io import model_fingerprint

log = logging.getLogger(__name__)

_FAST_SAMPLERS: "OrderedDict[tuple, Any]" = OrderedDict()
_FAST_SAMPLERS_KEPT = 4


def fast_sampler(unet, config: SamplingConfig, scheduler_config=None):
    """The :class:`~maskpro_eval.sampling.fast.FastDDIMSampler` for ``config`` (backend ``"fast"``).

    Prepared samplers (weights cast, compiled) are kept for the last few (model weights, settings)
    and reused for other seeds, so evaluating several seeds or calling again does not copy and compile the
    UNet again. The key holds :func:`model_fingerprint`: changed weights get a fresh sampler.
    """
    cfg = config.resolved(scheduler_config)
    key = (model_fingerprint(unet), cfg.dtype, cfg.batch_size, cfg.compile, json.dumps(cfg.compile_options, sort_keys=True),
           cfg.fused_resnet, cfg.onepass_group_norm, cfg.device,
           cfg.num_inference_steps,
           json.dumps(scheduler_config_dict(scheduler_config), sort_keys=True, default=str))
    sampler = _FAST_SAMPLERS.pop(key, None)
    if sampler is None:
        sampler = FastDDIMSampler(unet, cfg, scheduler_config=scheduler_config)
    _FAST_SAMPLERS[key] = sampler
    while len(_FAST_SAMPLERS) > _FAST_SAMPLERS_KEPT:
        _FAST_SAMPLERS.popitem(last=False)
    return sampler.reseeded(cfg.seed)


def generate_to_store(unet, config: SamplingConfig, store: SampleStore | str | Path, num_samples: int, *,
                      scheduler_config=None, model_id: Any = None, chunk_size: int | None = None,
                      overwrite: bool = False, progress: bool = True, rank: int = 0,
                      world_size: int = 1, stats: dict | None = None) -> SampleStore:
    """Fill ``store`` with samples ``0 .. num_samples-1``, chunk by chunk; complete chunks are skipped.

    ``store``: a :class:`SampleStore` (its metadata must contain ``protocol_metadata(config, ...)``'s
    ``"sampling"`` and ``"scheduler_config"`` entries, else :class:`SampleStoreMismatchError`), or a folder,
    opened as ``SampleStore(folder, chunk_size, protocol_metadata(config, scheduler_config, model_id),
    overwrite)``. Each chunk is written atomically when done, so an interrupted run loses at most the
    chunk in progress; corrupt chunks are reported and regenerated. Returns the store;
    ``store.load(num_samples)`` gives the images.

    Several processes (e.g. one per GPU) can share one store: process ``rank`` of ``world_size`` makes the
    missing chunks whose chunk number ``start // chunk_size`` is ``rank`` modulo ``world_size`` (samples do
    not depend on who makes them); afterwards ``store.is_complete(num_samples)`` tells whether all are in.

    ``stats``: a dict filled with ``generated`` (samples made by this call), ``steps`` (denoising steps per
    sample), ``chunks`` (``[(samples, seconds), ...]`` per chunk made, GPU work synchronised) and, with the
    fast backend, ``warmup_seconds`` (its compile/warm-up on CUDA or when compiling, measured before the first
    batch; 0 otherwise or when already warm: the chunks hold sampling only). With the standard backend the
    first chunk includes any warm-up.
    """
    if not 0 <= int(rank) < int(world_size):
        raise SamplingError(f"rank must be in [0, world_size), got rank={rank}, world_size={world_size}")
    meta = protocol_metadata(config, scheduler_config, model_id)
    if not isinstance(store, SampleStore):
        store = SampleStore(store, chunk_size=chunk_size, metadata=meta, overwrite=overwrite)
    else:
        for key in ("sampling", "scheduler_config"):
            if store.metadata.get(key) != meta[key]:
                raise SampleStoreMismatchError(
                    f"{store.directory}: the store's metadata[{key!r}] = {store.metadata.get(key)!r} does not "
                    f"match this request's {meta[key]!r}. Fix: open the store with "
                    f"metadata=protocol_metadata(config, scheduler_config, model_id)")
    num_samples = int(num_samples)
    missing = [(s, e) for s, e in store.missing_chunks(num_samples)
               if (s // store.chunk_size) % int(world_size) == int(rank)]
    todo = sum(e - s for s, e in missing)
    if store.corrupt_chunks:
        log.warning("%s: regenerating corrupt chunk(s): %s", store.directory, ", ".join(store.corrupt_chunks))
    if missing and todo < num_samples:
        log.info("%s: resuming; %d sample(s) in %d chunk(s) to generate (of %d)",
                 store.directory, todo, len(missing), num_samples)
    cfg = config.resolved(scheduler_config)
    if stats is not None:
        stats.update(generated=0, steps=int(cfg.num_inference_steps), chunks=[])
    if not missing:
        return store
    fast = fast_sampler(unet, cfg, scheduler_config) if cfg.backend == "fast" else None
    mine = sum(e - s for i, (s, e) in enumerate(store.chunk_ranges(num_samples))
               if i % int(world_size) == int(rank))
    bar = make_bar(mine, f"{cfg.sampler} {cfg.num_inference_steps} steps -> store", progress, initial=mine - todo)

    def made(s: int, e: int, seconds: float) -> None:
        if stats is not None:
            stats["chunks"].append((e - s, seconds))   # the chunk's images are on the host: synced
            stats["generated"] += e - s

    try:
        if fast is not None:
            # compile / first-call set-up (CUDA, or compiling on a CPU), measured apart from the sampling
            warm = fast.warmup() if fast.compile_seconds is None and (fast.device.type == "cuda" or cfg.compile) \
                else 0.0
            if stats is not None:
                stats["warmup_seconds"] = warm
            # one stream of batches over all missing chunks: no partial batch per chunk, and each chunk is
            # written while the GPU works on the next batch (FastDDIMSampler.iter_images)
            t0 = time.perf_counter()
            for k, images in fast.iter_images([range(s, e) for s, e in missing]):
                s, e = missing[k]
                bar.update(e - s)
                now = time.perf_counter()   # wall time between chunks, the previous chunk's write included
                made(s, e, now - t0)
                t0 = now
                store.write_chunk(s, images)
        else:
            for s, e in missing:
                t0 = time.perf_counter()
                images = generate(unet, cfg, start=s, count=e - s, scheduler_config=scheduler_config,
                                  progress=progress, _bar=bar)
                made(s, e, time.perf_counter() - t0)
                store.write_chunk(s, images)
    finally:
        bar.close()
    return store
