"""Sparsity analysis of a UNet: per-layer table, N:M compliance in both layouts, eligibility for
sparse tensor cores, compression and effective MACs."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from torch import nn

from maskpro_eval.analysis.eligibility import sparse_tc_eligibility
from maskpro_eval.analysis.layers import DEFAULT_EXCLUDE_LAYERS, is_targeted
from maskpro_eval.analysis.macs import layer_macs
from maskpro_eval.analysis.nm import best_fit_pattern, is_groupable, nm_compliance

#: cuSPARSELt (Hopper) semi-structured constraints for 16-bit weights: both dims multiples of 16.


@dataclass
class LayerSparsity:
    """One Conv2d/Linear layer. Sparsity is the fraction of exactly-zero weights (0..1)."""

    name: str
    type: str
    shape: list[int]
    parameters: int
    zeros: int
    sparsity: float
    masked: bool
    nm_compliance: float | None
    nm_compliance_channel: float | None
    nm_exact: float | None
    mask_known: bool
    best_fit: str | None
    eligible: bool
    eligibility_reason: str
    macs: int
    effective_macs: float


@dataclass
class SparsityReport:
    """Whole-model sparsity facts. Fractions are 0..1; bytes are bytes; MACs per image per step."""

    n: int
    m: int
    parameters_total: int
    parameters_nonzero: int
    global_sparsity: float
    masked_layers_sparsity: float
    masked_layer_count: int
    nm_compliance: float
    nm_compliance_channel: float
    nm_exact: float | None
    best_fit: str | None
    eligible_macs_share: float
    macs_dense: int
    macs_effective: float
    compression: dict
    layers: list[LayerSparsity] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        return d

    def worst_layers(self, k: int = 5, key: str = "nm_compliance") -> list[LayerSparsity]:
        """The k masked layers with the lowest ``key`` value."""
        rows = [l for l in self.layers if l.masked and getattr(l, key) is not None]
        return sorted(rows, key=lambda l: getattr(l, key))[:k]


def analyze_sparsity(unet: nn.Module, n: int = 2, m: int = 4,
                     exclude_layers=DEFAULT_EXCLUDE_LAYERS, masks: dict | None = None,
                     value_bytes: int = 2, masked_layers: set[str] | None = None) -> SparsityReport:
    """Analyse every Conv2d/Linear of ``unet`` against the N:M pattern ``n:m``.

    A layer is *masked* (targeted by N:M) when it is not excluded by ``exclude_layers`` (regexes)
    and its reduction dimension is divisible by ``m``. ``masks`` (layer -> bool tensor, True =
    keep) enables the exact-N check. ``value_bytes`` is the deployed value size for the packed size
    (2 = fp16/bf16, what sparse tensor cores consume). ``masked_layers``: an explicit set of
    targeted layer names (e.g. the layers a MaskPro checkpoint wrapped), replacing ``exclude_layers``.
    """
    masks = masks or {}
    macs = layer_macs(unet)
    layers: list[LayerSparsity] = []
    for name, module in unet.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        w = module.weight.detach()
        zeros = int((w == 0).sum())
        if masked_layers is not None:
            masked = name in masked_layers
        else:
            masked = is_targeted(name, w.shape, m, exclude_layers)
        row = nm_compliance(w, n, m, "row")
        chan = nm_compliance(w, n, m, "channel")
        mask = masks.get(name)
        exact = nm_compliance(mask, n, m, "row").exact if mask is not None and is_groupable(
            mask.shape, m, "row") else None
        fit, _ = best_fit_pattern(w, "row")
        elig = sparse_tc_eligibility(module, n, m, w)
        eligible, reason = elig.eligible, elig.reason
        layer_mac = macs.get(name, 0)
        density = 1.0 - zeros / w.numel()
        layers.append(LayerSparsity(
            name=name, type=type(module).__name__, shape=list(w.shape), parameters=w.numel(),
            zeros=zeros, sparsity=zeros / w.numel(), masked=masked,
            nm_compliance=None if row is None else row.compliance,
            nm_compliance_channel=None if chan is None else chan.compliance,
            nm_exact=exact, mask_known=mask is not None,
            best_fit=None if fit is None or zeros == 0 else f"{fit[0]}:{fit[1]}",
            eligible=eligible, eligibility_reason=reason,
            macs=layer_mac, effective_macs=layer_mac * density))

    total = sum(p.numel() for p in unet.parameters())
    nonzero = sum(int((p.detach() != 0).sum()) for p in unet.parameters())
    masked_rows = [l for l in layers if l.masked]
    masked_params = sum(l.parameters for l in masked_rows)
    masked_zeros = sum(l.zeros for l in masked_rows)

    def weighted(attr):
        rows = [l for l in masked_rows if getattr(l, attr) is not None]
        groups = sum(l.parameters / m for l in rows)
        return sum(getattr(l, attr) * l.parameters / m for l in rows) / groups if groups else 0.0

    exact_rows = [l for l in masked_rows if l.nm_exact is not None]
    macs_dense = sum(l.macs for l in layers)
    macs_eff = sum(l.effective_macs for l in layers)
    eligible_macs = sum(l.macs for l in layers if l.eligible)
    fit_counts: dict[str, int] = {}
    for l in masked_rows:
        if l.best_fit:
            fit_counts[l.best_fit] = fit_counts.get(l.best_fit, 0) + l.parameters
    return SparsityReport(
        n=n, m=m, parameters_total=total, parameters_nonzero=nonzero,
        global_sparsity=1.0 - nonzero / total if total else 0.0,
        masked_layers_sparsity=masked_zeros / masked_params if masked_params else 0.0,
        masked_layer_count=len(masked_rows),
        nm_compliance=weighted("nm_compliance"),
        nm_compliance_channel=weighted("nm_compliance_channel"),
        nm_exact=weighted("nm_exact") if exact_rows else None,
        best_fit=max(fit_counts, key=fit_counts.get) if fit_counts else None,
        eligible_macs_share=eligible_macs / macs_dense if macs_dense else 0.0,
        macs_dense=macs_dense, macs_effective=macs_eff,
        compression=compression_summary(unet, layers, n, m, value_bytes),
        layers=layers)


@dataclass
class CheckpointAnalysis:
    """:func:`analyze_checkpoint`'s answer: the report, the pattern judged and where the masked layers came from."""

    report: SparsityReport
    n: int
    m: int
    masked_layers_from: str  # "checkpoint masks" or "exclude rule"


def analyze_checkpoint(loaded, nm: tuple[int, int] | None = None,
                       exclude_layers=None) -> CheckpointAnalysis:
    """The one analysis of a loaded checkpoint that ``maskpro-eval inspect``, the API and the pytest run share.

    ``loaded``: a LoadedCheckpoint (``.unet``, ``.masks``, ``.nm``). ``nm``: the pattern judged (None:
    the checkpoint's declared one, else 2:4). ``exclude_layers``: None (or the default rule): a
    checkpoint that names its masked layers (MaskPro wrappers, mask buffers/folders) is judged on
    exactly those, others by :data:`DEFAULT_EXCLUDE_LAYERS`; any other rule chooses the layers.
    """
    n, m = nm if nm is not None else (loaded.nm or (2, 4))
    rule = DEFAULT_EXCLUDE_LAYERS if exclude_layers is None else tuple(exclude_layers)
    masks = loaded.masks or {}
    targeted = set(masks) if masks and rule == tuple(DEFAULT_EXCLUDE_LAYERS) else None
    report = analyze_sparsity(loaded.unet, n, m, rule, masks=masks, masked_layers=targeted)
    return CheckpointAnalysis(report=report, n=n, m=m,
                              masked_layers_from="checkpoint masks" if targeted is not None else "exclude rule")


def compression_summary(unet: nn.Module, layers: list[LayerSparsity], n: int, m: int,
                        value_bytes: int = 2) -> dict:
    """Storage if strictly N:M layers were packed: kept values + per-value index metadata.

    Metadata costs ``ceil(log2(m))`` bits per kept value (2 bits for 2:4, as in cuSPARSELt).
    Layers that are not fully compliant (and all other parameters) stay dense.
    """
    total = sum(p.numel() for p in unet.parameters())
    index_bits = math.ceil(math.log2(m))
    packed = 0.0
    packed_layers = 0
    packed_params = 0
    for l in layers:
        if l.masked and l.nm_compliance is not None and l.nm_compliance >= 1.0:
            kept = l.parameters * n // m
            packed += kept * value_bytes + kept * index_bits / 8
            packed_layers += 1
            packed_params += l.parameters
    dense_other = (total - packed_params) * value_bytes
    packed_total = packed + dense_other
    dense_total = total * value_bytes
    return {
        "value_bytes": value_bytes,
        "dense_bytes": dense_total,
        "dense_bytes_fp32": total * 4,
        "packed_bytes": packed_total,
        "packed_layers": packed_layers,
        "index_bits_per_kept_value": index_bits,
        "packed_size_ratio": dense_total / packed_total if packed_total else 1.0,  # this model's own dense/packed
    }
