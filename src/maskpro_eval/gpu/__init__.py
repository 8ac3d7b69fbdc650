"""GPU performance: honest timing, a fast faithful sampling + FID path, 2:4 sparse-tensor-core speed.

Modules (imported lazily; nothing here needs CUDA at import time):

* :mod:`.timing` - CUDA-synchronising timers for pytest-benchmark, CUDA-event/graph timing helpers,
  the skip reason when no GPU is present.
* :mod:`.flops` - FLOPs per image-step (convs, linears *and* attention matmuls) and the physical limit.
* :mod:`.fast_sampling` - :class:`FastDDIMSampler`: DDIM (eta 0) on the GPU in fp16 (bf16/fp32 options),
  optional ``torch.compile`` / CUDA graphs, same per-sample noise rule as :mod:`maskpro_eval.sampling`.
* :mod:`.features` - Inception features computed on the GPU as samples are produced (strict fp32),
  FID statistics and the Frechet distance in float64 on the GPU.
* :mod:`.sparse24` - per-layer eligibility for sparse tensor cores, dense vs ``to_sparse_semi_structured``
  (cuSPARSELt) timings under CUDA graphs, end-to-end swap, Amdahl bound.
* :mod:`.pytest_plugin` - options (``--bench-batches`` ...), the ``bench`` marker, fixtures, machine info.
"""
from __future__ import annotations
