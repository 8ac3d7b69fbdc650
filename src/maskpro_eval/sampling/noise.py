"""The per-sample noise rule: sample ``i``'s noise depends only on ``(seed, i)``.

Reproducibility rule (noise seeding, version ``"seedseq-v1"``)
-----------------------------------------------------------------
Sample ``i`` of a run with seed ``s`` owns one CPU ``torch.Generator`` seeded with::

    noise_seed(s, i) = int(numpy.random.SeedSequence(entropy=s, spawn_key=(i,))
                           .generate_state(1, dtype=numpy.uint64)[0])

(i.e. the ``i``-th child of ``SeedSequence(s)``). That generator first draws the sample's initial noise
``x_T`` (``torch.randn((1, C, H, W), dtype=float32)``), then every per-step noise of the sampler
(DDPM, DDIM with eta > 0), through ``scheduler.step(..., generator=[g_0, ..., g_{B-1}])`` - diffusers'
``randn_tensor`` draws a ``(1, C, H, W)`` tensor from each generator of a list, on the CPU, then moves
it to the device. The scheduler step runs in float32. Sample ``i`` is therefore identical whatever the
batch size, chunking, order, device RNG or number of processes. The noise is exactly invariant; the
UNet's arithmetic is too on CPU fp32 (tested) because a lone sample is run as a pair (batch-1 calls take
other BLAS/oneDNN kernels whose last bits differ). On GPUs, kernels chosen per batch shape may differ in
the last bits, which can move a rare pixel by one uint8 level: keep the batch size fixed for a run.

Output: ``x0`` in [-1, 1] (the scheduler clips when ``clip_sample``) quantised as
``(x * 127.5 + 128).clamp(0, 255).to(uint8)`` - the StyleGAN2-ADA/StyleGAN3/EDM convention the standard
FID protocol assumes (see :mod:`maskpro_eval.sampling.images`); images are returned ``N x H x W x C`` uint8.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch

from maskpro_eval.sampling.config import SamplingError


def noise_seed(seed: int, index: int) -> int:
    """Seed of sample ``index``'s generator: ``SeedSequence(seed, spawn_key=(index,))`` -> one uint64."""
    if seed < 0 or index < 0:
        raise SamplingError(f"seed and index must be >= 0, got seed={seed}, index={index}")
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(index),))
    return int(ss.generate_state(1, dtype=np.uint64)[0])


def sample_generators(seed: int, indices: Iterable[int]) -> list[torch.Generator]:
    """One fresh CPU ``torch.Generator`` per sample index, seeded with :func:`noise_seed`."""
    gens = []
    for i in indices:
        g = torch.Generator(device="cpu")
        g.manual_seed(noise_seed(seed, int(i)))
        gens.append(g)
    return gens


def sample_noise(seed: int, indices: Iterable[int], shape: Sequence[int],
                 generators: list[torch.Generator] | None = None) -> torch.Tensor:
    """Initial noise ``x_T`` of the given samples: float32 CPU tensor ``(len(indices), *shape)``.

    ``shape`` is one sample's shape, e.g. ``(3, 32, 32)``. Row ``k`` is ``torch.randn((1, *shape))`` from
    sample ``indices[k]``'s generator (fresh from :func:`sample_generators` unless ``generators`` - which
    are then advanced - is given).
    """
    indices = list(indices)
    if generators is None:
        generators = sample_generators(seed, indices)
    if len(generators) != len(indices):
        raise SamplingError("one generator per index is needed")
    shape = tuple(int(s) for s in shape)
    if not indices:
        return torch.empty((0, *shape), dtype=torch.float32)
    return torch.cat([torch.randn((1, *shape), generator=g, dtype=torch.float32) for g in generators], dim=0)
