"""Honest 2:4 hardware speed: which layers PyTorch can run on sparse tensor cores, and what it buys.

PyTorch's semi-structured sparsity (``torch.sparse.to_sparse_semi_structured``; cuSPARSELt on Hopper,
CUTLASS on compute capability 8.x) covers **matmul/linear only**, 16-bit weights (bf16/fp16) whose two
dims are multiples of 16 (see :func:`maskpro_eval.analysis.sparsity.analyze_sparsity`). In a DDPM UNet that is the
attention ``Linear`` layers and the 1x1 convolutions (rewritten here as matmuls over the
``B*H*W`` pixels); 3x3 convolutions - ~88% of the MACs - have no 2:4 kernel in PyTorch, cuDNN or
CUTLASS. So even a perfect 2x on every eligible GEMM gives at most the Amdahl bound
``1 / ((1-f) + f/2)`` end to end, ``f`` the eligible FLOP share (~1.05x for DDPM CIFAR-10).

Measurements (:func:`benchmark_layers`, :func:`benchmark_end_to_end`) use the model's real layer shapes
at the real batch, random bf16 inputs, median of many CUDA-graph replays (launch overhead removed),
and report eager per-call times separately (cuSPARSELt's per-call overhead dominates small GEMMs).
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from maskpro_eval.analysis.eligibility import layer_kind, sparse_tc_eligibility  # layer_kind: swap_to_sparse
from maskpro_eval.analysis.layers import DEFAULT_EXCLUDE_LAYERS, layer_is_excluded
from maskpro_eval.runtime.timing import capture_cuda_graph, time_callable

__all__ = ["eligibility_table", "Conv1x1AsLinear", "sparse24_available", "swap_to_sparse", "SemiStructuredLinear",
           "benchmark_layers", "benchmark_end_to_end", "amdahl_bound", "speedup_summary", "LayerTiming"]


def eligibility_table(unet: nn.Module, n: int = 2, m: int = 4, exclude_layers=DEFAULT_EXCLUDE_LAYERS,
                      report=None) -> dict:
    """Per Conv2d/Linear layer: can PyTorch run it on sparse tensor cores, and why (not).

    ``structural``: the layer is a matmul PyTorch's semi-structured path accepts (Linear or 1x1 conv,
    both weight dims multiples of 16, pattern 2:4); ``eligible``: structural AND its weights are strictly
    2:4 along the reduction dim (= :func:`maskpro_eval.analysis.sparsity.analyze_sparsity`'s ``eligible``).
    Returns ``{"layers": [...], "macs_total", "macs_eligible", "macs_structural", "eligible_share",
    "structural_share", "attention_macs", "amdahl_bound_2x"}``; MAC shares include the weight-free
    attention matmuls in the total (they cannot be made sparse).
    """
    from maskpro_eval.analysis.sparsity import analyze_sparsity
    from maskpro_eval.analysis.flops import attention_macs

    rep = report if report is not None else analyze_sparsity(unet, n, m, exclude_layers)
    mods = dict(unet.named_modules())
    rows = []
    for layer in rep.layers:
        e = sparse_tc_eligibility(mods[layer.name], n, m)
        rows.append({"name": layer.name, "type": layer.type, "kind": e.kind, "shape": list(layer.shape),
                     "excluded": layer_is_excluded(layer.name, exclude_layers), "macs": int(layer.macs),
                     "structural": e.structural, "eligible": e.eligible, "reason": e.reason})
    att = sum(attention_macs(unet).values())
    total = sum(r["macs"] for r in rows) + att
    elig = sum(r["macs"] for r in rows if r["eligible"])
    struct = sum(r["macs"] for r in rows if r["structural"])
    share = elig / total if total else 0.0
    return {"layers": rows, "macs_total": total, "attention_macs": att, "macs_eligible": elig,
            "macs_structural": struct, "eligible_share": share,
            "structural_share": struct / total if total else 0.0,
            "eligible_layers": sum(r["eligible"] for r in rows), "layer_count": len(rows),
            "amdahl_bound_2x": amdahl_bound(share, 2.0)}


def amdahl_bound(fraction: float, speedup: float = 2.0) -> float:
    """End-to-end speedup when ``fraction`` of the time runs ``speedup`` times faster."""
    return 1.0 / ((1.0 - fraction) + fraction / speedup)


class Conv1x1AsLinear(nn.Module):
    """A 1x1 convolution computed as ``linear`` over the pixels: ``(B,C,H,W) -> (B*H*W, C) @ W^T``.

    ``weight`` may be a dense tensor or a semi-structured sparse one. The output is returned in NCHW
    shape with channels-last strides (a view of the GEMM's result; no extra copy).
    """

    def __init__(self, conv: nn.Conv2d, weight: torch.Tensor | None = None):
        super().__init__()
        w = conv.weight.detach().reshape(conv.out_channels, conv.in_channels) if weight is None else weight
        self.weight = nn.Parameter(w, requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        self.out_channels = conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x2 = x.permute(0, 2, 3, 1).reshape(b * h * w, c)
        y = F.linear(x2, self.weight, self.bias)
        # reshape, not view: cuSPARSELt returns the product transposed in memory (a copy is then made)
        return y.reshape(b, h, w, self.out_channels).permute(0, 3, 1, 2)


class SemiStructuredLinear(nn.Module):
    """``nn.Linear`` with a semi-structured (2:4) sparse weight: any leading dims, flattened to one 2-D GEMM.

    ``torch``'s own ``F.linear`` on a 3-D input with a sparse weight fails in some versions (a ``view`` of
    cuSPARSELt's transposed result), so the input is flattened here and the output reshaped.
    """

    def __init__(self, linear: nn.Linear, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        y = F.linear(x.reshape(-1, x.shape[-1]), self.weight, self.bias)
        return y.reshape(*lead, self.out_features)


def sparse24_available() -> str | None:
    """None when semi-structured sparse matmuls can run here, else the reason."""
    if not torch.cuda.is_available():
        return "no CUDA device: semi-structured (2:4) sparse matmuls need an NVIDIA GPU (compute capability >= 8.0)"
    major, _ = torch.cuda.get_device_capability()
    if major < 8:
        return f"compute capability {major}.x: sparse tensor cores need >= 8.0"
    try:
        from torch.sparse import to_sparse_semi_structured  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        return f"torch.sparse.to_sparse_semi_structured unavailable ({exc})"
    return None


def _to_sparse(w2d: torch.Tensor) -> torch.Tensor:
    from torch.sparse import to_sparse_semi_structured
    return to_sparse_semi_structured(w2d.contiguous())


def _sparse_module(name: str, mod: nn.Module) -> nn.Module:
    if isinstance(mod, nn.Linear):
        return SemiStructuredLinear(mod, _to_sparse(mod.weight.detach()))
    w = mod.weight.detach().reshape(mod.out_channels, mod.in_channels)
    return Conv1x1AsLinear(mod, _to_sparse(w))


def swap_to_sparse(unet: nn.Module, names: list[str] | None = None, table: dict | None = None,
                   inplace: bool = False) -> tuple[nn.Module, list[str]]:
    """A copy of ``unet`` (16-bit, on CUDA) whose eligible layers run as semi-structured sparse matmuls.

    ``names``: layers to swap (default: every ``eligible`` layer of :func:`eligibility_table`).
    """
    model = unet if inplace else copy.deepcopy(unet)
    if names is None:
        table = table or eligibility_table(model)
        names = [r["name"] for r in table["layers"] if r["eligible"]]
    mods = dict(model.named_modules())
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = mods[parent_name] if parent_name else model
        setattr(parent, child, _sparse_module(name, mods[name]))
    return model, list(names)


def _layer_inputs(unet: nn.Module, names: list[str], batch: int, timestep: int = 500) -> dict[str, tuple]:
    """Input shape of each named layer in one forward pass at ``batch`` (forward pre-hooks)."""
    shapes: dict[str, tuple] = {}
    mods = dict(unet.named_modules())
    def make_hook(name):
        def hook(_m, args):
            shapes.setdefault(name, tuple(args[0].shape))
        return hook

    hooks = [mods[n].register_forward_pre_hook(make_hook(n)) for n in names]
    p = next(unet.parameters())
    cfg = unet.config
    size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
    try:
        with torch.inference_mode():
            x = torch.randn(batch, cfg.in_channels, size, size, device=p.device, dtype=p.dtype)
            unet(x, torch.full((batch,), timestep, device=p.device))
    finally:
        for h in hooks:
            h.remove()
    return shapes


@dataclass
class LayerTiming:
    name: str
    kind: str
    input_shape: list
    gemm_mnk: list           # [M (rows = tokens), N (out features), K (in features)]
    flops: float             # dense FLOPs of this call (2*M*N*K)
    dense_graph_us: float
    sparse_graph_us: float
    dense_eager_us: float
    sparse_eager_us: float
    dense_gemm_graph_us: float
    sparse_gemm_graph_us: float
    speedup_graph: float     # dense / sparse, module (layout changes included), CUDA graph
    speedup_gemm_graph: float  # dense / sparse, bare 2-D GEMM, CUDA graph
    speedup_eager: float
    rel_err_vs_masked_dense: float
    rel_err_sparse_vs_fp64: float
    rel_err_dense_vs_fp64: float

    def to_dict(self) -> dict:
        return asdict(self)


def _graph_time(fn, calls: int, rounds: int, warmup: int) -> float:
    graph, _ = capture_cuda_graph(lambda: [fn() for _ in range(calls)], warmup=warmup)
    return time_callable(graph.replay, warmup=2, rounds=rounds, device="cuda").median_s / calls


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a64, b64 = a.double(), b.double()
    return float((a64 - b64).norm() / b64.norm().clamp_min(1e-30))


def benchmark_layers(unet: nn.Module, batch: int, names: list[str] | None = None, dtype=torch.bfloat16,
                     calls_per_graph: int = 10, rounds: int = 20, eager_rounds: int = 30,
                     seed: int = 0) -> list[LayerTiming]:
    """Dense (masked, 16-bit) vs 2:4 sparse time of every eligible layer at its real input shape.

    ``unet`` must be on CUDA with strictly 2:4 eligible layers (e.g. magnitude-pruned); it is cast to
    ``dtype`` on a copy. Inputs are random (``seed``), never zeros.
    """
    model = copy.deepcopy(unet).to(dtype).eval()
    if names is None:
        names = [r["name"] for r in eligibility_table(model)["layers"] if r["eligible"]]
    shapes = _layer_inputs(model, names, batch)
    mods = dict(model.named_modules())
    g = torch.Generator(device="cuda").manual_seed(seed)
    out = []
    with torch.inference_mode():
        for name in names:
            dense = mods[name]
            kind = layer_kind(dense)
            shape = shapes[name]
            x = torch.randn(shape, device="cuda", dtype=dtype, generator=g)
            sparse = _sparse_module(name, dense)
            if kind == "conv1x1":
                dense_call = lambda d=dense, x=x: d(x)  # noqa: E731 - cuDNN's own 1x1 convolution
                w2 = dense.weight.reshape(dense.out_channels, dense.in_channels)
                x2 = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]).contiguous()
            else:
                dense_call = lambda d=dense, x=x: d(x)  # noqa: E731
                w2 = dense.weight
                x2 = x.reshape(-1, x.shape[-1]).contiguous()
            sparse_call = lambda s=sparse, x=x: s(x)  # noqa: E731
            ws = sparse.weight
            bias = dense.bias
            dgemm = lambda x2=x2, w2=w2, b=bias: F.linear(x2, w2, b)  # noqa: E731
            sgemm = lambda x2=x2, ws=ws, b=bias: F.linear(x2, ws, b)  # noqa: E731
            # correctness: sparse vs masked dense vs float64 reference
            y_d = dense_call().float()
            y_s = sparse_call().float()
            ref = F.linear(x2.double(), w2.double(), None if bias is None else bias.double())
            y_s2 = sgemm().double()
            y_d2 = dgemm().double()
            m_, k_ = x2.shape
            n_ = w2.shape[0]
            t = LayerTiming(
                name=name, kind=kind, input_shape=list(shape), gemm_mnk=[m_, n_, k_], flops=2.0 * m_ * n_ * k_,
                dense_graph_us=_graph_time(dense_call, calls_per_graph, rounds, 3) * 1e6,
                sparse_graph_us=_graph_time(sparse_call, calls_per_graph, rounds, 3) * 1e6,
                dense_eager_us=time_callable(dense_call, warmup=5, rounds=eager_rounds, device="cuda").median_s * 1e6,
                sparse_eager_us=time_callable(sparse_call, warmup=5, rounds=eager_rounds,
                                              device="cuda").median_s * 1e6,
                dense_gemm_graph_us=_graph_time(dgemm, calls_per_graph, rounds, 3) * 1e6,
                sparse_gemm_graph_us=_graph_time(sgemm, calls_per_graph, rounds, 3) * 1e6,
                speedup_graph=0.0, speedup_gemm_graph=0.0, speedup_eager=0.0,
                rel_err_vs_masked_dense=_rel(y_s, y_d),
                rel_err_sparse_vs_fp64=_rel(y_s2, ref), rel_err_dense_vs_fp64=_rel(y_d2, ref))
            t.speedup_graph = t.dense_graph_us / t.sparse_graph_us
            t.speedup_gemm_graph = t.dense_gemm_graph_us / t.sparse_gemm_graph_us
            t.speedup_eager = t.dense_eager_us / t.sparse_eager_us
            out.append(t)
            del x, x2, sparse
    return out


def benchmark_end_to_end(unet: nn.Module, batch: int, dtype=torch.bfloat16, rounds: int = 20,
                         calls_per_graph: int = 2, seed: int = 0, names: list[str] | None = None) -> dict:
    """Whole UNet forward at ``batch``: dense (masked weights) vs eligible layers swapped to 2:4 sparse,
    both under CUDA graphs (and eager), plus the output difference between the two."""
    dense = copy.deepcopy(unet).to(dtype).eval()
    table = eligibility_table(dense)
    sparse, swapped = swap_to_sparse(dense, names=names, table=table)
    cfg = dense.config
    size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(batch, cfg.in_channels, size, size, device="cuda", dtype=dtype, generator=g)
    t = torch.full((batch,), 500, device="cuda")
    with torch.inference_mode():
        fd = lambda: dense(x, t, return_dict=False)[0]  # noqa: E731
        fs = lambda: sparse(x, t, return_dict=False)[0]  # noqa: E731
        yd, ys = fd().float(), fs().float()
        res = {
            "batch": batch, "dtype": str(dtype).replace("torch.", ""), "swapped_layers": len(swapped),
            "dense_graph_ms": _graph_time(fd, calls_per_graph, rounds, 3) * 1e3,
            "sparse_graph_ms": _graph_time(fs, calls_per_graph, rounds, 3) * 1e3,
            "dense_eager_ms": time_callable(fd, warmup=3, rounds=rounds, device="cuda").median_s * 1e3,
            "sparse_eager_ms": time_callable(fs, warmup=3, rounds=rounds, device="cuda").median_s * 1e3,
            "output_rel_diff": _rel(ys, yd),
        }
    res["speedup_graph"] = res["dense_graph_ms"] / res["sparse_graph_ms"]
    res["speedup_eager"] = res["dense_eager_ms"] / res["sparse_eager_ms"]
    res["eligible_share"] = table["eligible_share"]
    res["amdahl_bound_2x"] = table["amdahl_bound_2x"]
    return res


def speedup_summary(layers: list[LayerTiming], e2e: dict, table: dict) -> dict:
    """Theory beside measurement: 2x per GEMM, eligible FLOP share, Amdahl bound, per-layer and
    end-to-end measured speedups, and the end-to-end speedup the measured per-layer times predict."""
    dense_sum = sum(l.dense_graph_us for l in layers) / 1e3
    sparse_sum = sum(l.sparse_graph_us for l in layers) / 1e3
    t_dense = e2e["dense_graph_ms"]
    time_share = dense_sum / t_dense if t_dense else float("nan")
    predicted = t_dense / (t_dense - dense_sum + sparse_sum) if t_dense else float("nan")
    sp = [l.speedup_graph for l in layers]
    gm = math.exp(sum(math.log(s) for s in sp) / len(sp)) if sp else float("nan")
    return {
        "theoretical_per_gemm": 2.0,
        "eligible_flop_share": table["eligible_share"],
        "amdahl_bound_2x": table["amdahl_bound_2x"],
        "eligible_time_share_dense": time_share,
        "amdahl_bound_2x_time_share": amdahl_bound(time_share, 2.0) if layers else float("nan"),
        "layer_speedup_graph_geomean": gm,
        "layer_speedup_graph_min": min(sp) if sp else float("nan"),
        "layer_speedup_graph_max": max(sp) if sp else float("nan"),
        "layer_speedup_gemm_graph_geomean": math.exp(sum(math.log(l.speedup_gemm_graph) for l in layers) / len(layers))
        if layers else float("nan"),
        "layer_speedup_eager_geomean": math.exp(sum(math.log(l.speedup_eager) for l in layers) / len(layers))
        if layers else float("nan"),
        "e2e_predicted_from_layers": predicted,
        "e2e_measured_graph": e2e["speedup_graph"],
        "e2e_measured_eager": e2e["speedup_eager"],
    }
