"""MaskPro-style N:M mask learning by policy gradient (REINFORCE), reusable and model-agnostic.

MaskPro (Sun et al., 2025, "MaskPro: Linear-Space Probabilistic Learning for Strict (N:M)-Sparsity")
keeps the weights frozen and learns, for every group of M consecutive weights, a categorical
distribution from which N entries are drawn *without replacement*. Here the distribution of a group
is ``softmax(logits_g)`` with logits of shape ``(num_groups, M)``; a mask is drawn by sequential
sampling without replacement (Plackett-Luce), implemented with the Gumbel-top-k trick. The logits
are trained with the score-function estimator

    grad E[L(mask)] = E[(L(mask) - b) * grad log p(mask)]

using MaskPro's variance reduction: the *loss residual* ``L(mask) - L(mask_ref)`` against a
reference mask (by default the initial, magnitude mask) evaluated on the same minibatch, minus a
moving average of that residual. The final (deployed) mask keeps the N largest logits per group.

Groups follow the row-major layout of :mod:`maskpro_eval.analysis.nm`: the weight viewed as
``(out, in*kh*kw)`` and cut into consecutive groups of M.

Everything here works on grouped ``(num_groups, M)`` tensors; the caller supplies a
``loss_fn(masks, step) -> float`` that applies grouped masks to its model and evaluates the loss on
the minibatch of ``step`` (the same minibatch for every call with the same ``step``).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import torch

from maskpro_eval.analysis.layers import DEFAULT_EXCLUDE_LAYERS, targeted_layers
from maskpro_eval.analysis.nm import groups as _nm_groups, topn_grouped, ungroup as _nm_ungroup

__all__ = [
    "group_view", "ungroup_view", "maskable_layers", "magnitude_logits", "sample_nm_mask",
    "log_prob_nm_mask", "final_mask", "masks_equal_fraction", "learn_masks", "MaskLearningLog",
    "apply_grouped_masks",
]


# --------------------------------------------------------------------------------------------
# group view helpers
# --------------------------------------------------------------------------------------------
def group_view(weight: torch.Tensor, m: int) -> torch.Tensor:
    """The weight as ``(num_groups, m)`` in the row-major layout (``(out, in*kh*kw)`` cut in m)."""
    return _nm_groups(weight, m, "row")


def ungroup_view(grouped: torch.Tensor, shape) -> torch.Tensor:
    """Inverse of :func:`group_view`."""
    return _nm_ungroup(grouped, shape, "row")


def maskable_layers(model: torch.nn.Module, m: int = 4,
                    exclude: Iterable[str] = DEFAULT_EXCLUDE_LAYERS) -> dict[str, torch.nn.Module]:
    """The layers MaskPro masks: the suite's masked-layer rule (``analysis.layers.targeted_layers``),
    strict: a non-excluded layer that cannot be cut into groups of ``m`` raises ValueError."""
    return targeted_layers(model, m, exclude, strict=True)


def magnitude_logits(weight: torch.Tensor, m: int, temperature: float = 5.0) -> torch.Tensor:
    """Initial logits from weight magnitudes: ``temperature * |w| / max|w| of the group``.

    The top-N of these logits is exactly the magnitude N:M mask; groups whose magnitudes are close
    get a flat distribution (much exploration), groups with one clear winner a peaked one.
    """
    g = group_view(weight.detach().abs().float(), m)
    return temperature * g / g.amax(dim=1, keepdim=True).clamp_min(1e-12)


# --------------------------------------------------------------------------------------------
# sampling, log-probabilities, final mask
# --------------------------------------------------------------------------------------------
def sample_nm_mask(logits: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw N of M per group without replacement from ``softmax(logits)`` (Gumbel-top-k).

    ``logits``: ``(num_groups, M)``. Returns a bool mask of the same shape with exactly N ``True``
    per row. Gumbel-top-k samples the same distribution as N sequential draws without replacement.
    """
    if logits.dim() != 2 or not 0 < n <= logits.shape[1]:
        raise ValueError(f"need (num_groups, M) logits and 0 < N <= M; got {tuple(logits.shape)}, N={n}")
    u = torch.rand(logits.shape, generator=generator, dtype=torch.float32, device=logits.device)
    u = u.clamp(1e-20, 1.0 - 1e-7)
    gumbel = -torch.log(-torch.log(u))
    idx = (logits.detach().float() + gumbel).topk(n, dim=1).indices
    mask = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
    mask.scatter_(1, idx, True)
    return mask


def log_prob_nm_mask(logits: torch.Tensor, mask: torch.Tensor, n: int) -> torch.Tensor:
    """``log p(mask)`` per group for N sequential draws without replacement from ``softmax(logits)``.

    The mask is an unordered set, so the probability sums over the N! orders in which its entries
    could have been drawn (Plackett-Luce). Differentiable w.r.t. ``logits``; returns ``(num_groups,)``.
    """
    if mask.shape != logits.shape:
        raise ValueError(f"mask {tuple(mask.shape)} and logits {tuple(logits.shape)} differ in shape")
    counts = mask.sum(dim=1)
    if not bool((counts == n).all()):
        raise ValueError(f"every group of the mask must keep exactly N={n} entries")
    # indices of the selected entries, (G, N), in ascending index order
    sel = mask.float().topk(n, dim=1, sorted=False).indices.sort(dim=1).values
    sel_logits = logits.gather(1, sel)                                  # (G, N)
    per_order = []
    for perm in itertools.permutations(range(n)):
        remaining = logits
        lp = torch.zeros(logits.shape[0], dtype=logits.dtype, device=logits.device)
        removed = torch.zeros_like(mask)
        for i in perm:
            lp = lp + sel_logits[:, i] - torch.logsumexp(remaining, dim=1)
            removed = removed.clone()
            removed.scatter_(1, sel[:, i:i + 1], True)
            remaining = logits.masked_fill(removed, float("-inf"))
        per_order.append(lp)
    return torch.logsumexp(torch.stack(per_order, dim=0), dim=0)


def final_mask(logits: torch.Tensor, n: int) -> torch.Tensor:
    """The deployed mask: keep the N largest logits of each group (bool, ``(num_groups, M)``)."""
    return topn_grouped(logits.detach(), n)


def masks_equal_fraction(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """Fraction of groups (over all layers) whose masks in ``a`` and ``b`` are identical."""
    same = total = 0
    for k in a:
        eq = (a[k] == b[k]).all(dim=1)
        same += int(eq.sum())
        total += eq.numel()
    return same / total if total else 1.0


@torch.no_grad()
def apply_grouped_masks(layers: Mapping[str, torch.nn.Module], dense: Mapping[str, torch.Tensor],
                        masks: Mapping[str, torch.Tensor]) -> None:
    """Set ``layers[k].weight = dense[k] * ungroup(masks[k])`` in place."""
    for k, mod in layers.items():
        w = dense[k]
        mod.weight.copy_(w * ungroup_view(masks[k], w.shape).to(w.dtype))


# --------------------------------------------------------------------------------------------
# the learning loop
# --------------------------------------------------------------------------------------------
@dataclass
class MaskLearningLog:
    """Per-step record of :func:`learn_masks`."""

    step: list[int] = field(default_factory=list)
    sampled_loss: list[float] = field(default_factory=list)     # mean over the step's samples
    reference_loss: list[float] = field(default_factory=list)   # loss of the reference mask
    baseline: list[float] = field(default_factory=list)         # moving average of the residual
    changed_vs_init: list[float] = field(default_factory=list)  # fraction of groups whose top-N moved
    resume: dict | None = None   # optimizer state and baseline after the last step (see ``learn_masks(resume=)``)

    def as_dict(self) -> dict:
        return {k: list(v) for k, v in self.__dict__.items() if k != "resume"}


def learn_masks(loss_fn: Callable[[dict[str, torch.Tensor], int], float],
                init_logits: Mapping[str, torch.Tensor], n: int, steps: int, *,
                lr: float = 0.05, num_samples: int = 2, baseline_momentum: float = 0.9,
                reference: str | Mapping[str, torch.Tensor] | None = "initial",
                optimizer: str = "adam", generator: torch.Generator | None = None,
                callback: Callable[[int, MaskLearningLog], None] | None = None,
                resume: dict | None = None,
                ) -> tuple[dict[str, torch.Tensor], MaskLearningLog]:
    """Learn N:M mask logits with REINFORCE; the model's weights are never touched here.

    ``loss_fn(masks, step)``: loss (float) of the model with the grouped bool ``masks`` applied, on
    the minibatch of ``step``. ``reference``: ``"initial"`` (top-N of ``init_logits``, MaskPro's
    loss residual), a dict of grouped masks, or None (plain moving-average baseline on the loss).
    Per step, ``num_samples`` masks are drawn; the advantage of each is
    ``(L(mask) - L(ref)) - b`` with ``b`` a moving average (``baseline_momentum``) of the residual.
    ``optimizer``: ``"adam"`` or ``"sgd"`` on the logits. ``resume``: ``log.resume`` of an earlier call
    (optimizer state and baseline), to continue a run in chunks (epochs) exactly. Returns ``(logits, log)``.
    """
    if num_samples < 1 or steps < 0:
        raise ValueError("num_samples must be >= 1 and steps >= 0")
    names = list(init_logits)
    sizes = [int(init_logits[k].shape[0]) for k in names]
    # one (sum of groups, M) parameter for all layers: sampling, log-probabilities and the optimizer step
    # are a handful of kernels per step instead of a handful per layer (the per-layer dicts are views)
    flat = torch.cat([init_logits[k].detach().float() for k in names], dim=0).clone().requires_grad_(True)

    def split(t: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(names, torch.split(t, sizes, dim=0)))

    init_top_flat = final_mask(flat, n)
    init_top = split(init_top_flat)
    if isinstance(reference, str):
        if reference != "initial":
            raise ValueError(f"reference must be 'initial', a mask dict or None; got {reference!r}")
        ref_masks = init_top
    else:
        ref_masks = reference
    if optimizer == "adam":
        opt = torch.optim.Adam([flat], lr=lr)
    elif optimizer == "sgd":
        opt = torch.optim.SGD([flat], lr=lr)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'sgd'; got {optimizer!r}")
    log = MaskLearningLog()
    baseline: float | None = None
    if resume is not None:
        opt.load_state_dict(resume["optimizer"])
        baseline = resume["baseline"]
    for step in range(steps):
        ref_loss = float(loss_fn(ref_masks, step)) if ref_masks is not None else 0.0
        samples, losses = [], []
        for _ in range(num_samples):
            mask = sample_nm_mask(flat, n, generator)
            samples.append(mask)
            losses.append(float(loss_fn(split(mask), step)))
        residuals = [x - ref_loss for x in losses]
        mean_res = sum(residuals) / len(residuals)
        if baseline is None:
            baseline = mean_res
        advs = [r - baseline for r in residuals]   # the baseline is a constant: no gradient
        opt.zero_grad(set_to_none=True)
        surrogate = 0.0
        for mask, adv in zip(samples, advs):
            if adv == 0.0:
                continue
            surrogate = surrogate + adv * log_prob_nm_mask(flat, mask, n).sum() / num_samples
        if torch.is_tensor(surrogate):
            surrogate.backward()
            opt.step()
        baseline = baseline_momentum * baseline + (1.0 - baseline_momentum) * mean_res
        log.step.append(step)
        log.sampled_loss.append(sum(losses) / len(losses))
        log.reference_loss.append(ref_loss)
        log.baseline.append(baseline)
        if step % 25 == 0 or step == steps - 1:
            now = final_mask(flat, n)
            log.changed_vs_init.append(1.0 - float((now == init_top_flat).all(dim=1).float().mean()))
        else:
            log.changed_vs_init.append(math.nan)
        if callback is not None:
            callback(step, log)
    log.resume = {"optimizer": opt.state_dict(), "baseline": baseline}
    return {k: v.detach().clone() for k, v in split(flat.detach()).items()}, log
