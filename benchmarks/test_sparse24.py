"""2:4 semi-structured sparse layers (maskpro_eval.runtime.sparse24): masked-dense vs sparse forward."""
from __future__ import annotations

import pytest

from benchmarks import cases


@pytest.fixture(scope="module")
def pruned():
    """The DDPM CIFAR-10 architecture (random weights) magnitude-pruned 2:4, bf16 on CUDA, and its
    2:4-sparse twin; SKIPS with the reason without sparse tensor cores."""
    from maskpro_eval.runtime.sparse24 import sparse24_available, swap_to_sparse
    reason = sparse24_available()
    if reason:
        pytest.skip(reason)
    import torch

    from benchmarks.models import load_model, magnitude_24
    dense, _ = magnitude_24(load_model("ddpm-cifar10")[0])
    dense = dense.to("cuda", torch.bfloat16).eval()
    sparse, swapped = swap_to_sparse(dense)
    return {"masked-dense": dense, "sparse24": sparse, "swapped": len(swapped)}


@pytest.mark.parametrize("kind", ["masked-dense", "sparse24"])
@pytest.mark.parametrize("batch", [64, 256], ids=lambda b: f"B{b}")
def test_sparse24_forward(benchmark, pruned, kind, batch):
    benchmark.group = f"2:4 sparse forward B={batch}"
    case = cases.forward(pruned[kind], "cuda", batch, "bfloat16", name=kind, copy_model=False)  # sparse: no copy
    figs = cases.run_pedantic(benchmark, case, rounds=10, warmup=3)
    benchmark.extra_info["swapped_layers"] = pruned["swapped"]
    assert figs["batch"] == batch
