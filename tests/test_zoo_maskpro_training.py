"""Unit tests of maskpro_training (MaskPro-style N:M mask learning)."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

import maskpro_training as mpt

pytestmark = pytest.mark.unit


def _brute_force_set_prob(logits: list[float], subset: tuple[int, ...]) -> float:
    """P(unordered subset) for sequential draws without replacement from softmax(logits)."""
    w = [math.exp(x) for x in logits]
    total = 0.0
    for order in itertools.permutations(subset):
        p, remaining = 1.0, sum(w)
        for i in order:
            p *= w[i] / remaining
            remaining -= w[i]
        total += p
    return total


@pytest.mark.parametrize("n,m", [(1, 4), (2, 4), (3, 4), (2, 8), (4, 8)])
def test_sampled_masks_keep_exactly_n_per_group(n, m):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(500, m, generator=g) * 3
    mask = mpt.sample_nm_mask(logits, n, generator=g)
    assert mask.dtype == torch.bool and mask.shape == logits.shape
    assert bool((mask.sum(dim=1) == n).all())


def test_sampling_is_deterministic_given_generator():
    logits = torch.randn(100, 4, generator=torch.Generator().manual_seed(1))
    a = mpt.sample_nm_mask(logits, 2, torch.Generator().manual_seed(7))
    b = mpt.sample_nm_mask(logits, 2, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_log_prob_matches_brute_force_enumeration_m4_n2():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(5, 4, generator=g, dtype=torch.float64) * 2
    subsets = list(itertools.combinations(range(4), 2))
    assert len(subsets) == 6
    for row in range(logits.shape[0]):
        total = 0.0
        for sub in subsets:
            mask = torch.zeros(1, 4, dtype=torch.bool)
            mask[0, list(sub)] = True
            lp = float(mpt.log_prob_nm_mask(logits[row:row + 1], mask, 2)[0])
            expected = _brute_force_set_prob(logits[row].tolist(), sub)
            assert math.exp(lp) == pytest.approx(expected, rel=1e-9, abs=1e-12)
            total += math.exp(lp)
        assert total == pytest.approx(1.0, abs=1e-9)


def test_log_prob_batched_equals_per_group_and_uniform_case():
    logits = torch.zeros(3, 4)
    masks = torch.tensor([[1, 1, 0, 0], [0, 1, 0, 1], [1, 0, 1, 0]], dtype=torch.bool)
    lp = mpt.log_prob_nm_mask(logits, masks, 2)
    assert torch.allclose(lp, torch.full((3,), math.log(1 / 6)), atol=1e-6)


def test_log_prob_rejects_wrong_counts():
    with pytest.raises(ValueError):
        mpt.log_prob_nm_mask(torch.zeros(1, 4), torch.tensor([[True, False, False, False]]), 2)


def test_sampling_frequencies_match_log_prob():
    logits = torch.tensor([[1.5, 0.5, -0.3, 0.0]]).repeat(20000, 1)
    mask = mpt.sample_nm_mask(logits, 2, torch.Generator().manual_seed(0))
    for sub in itertools.combinations(range(4), 2):
        target = torch.zeros(4, dtype=torch.bool)
        target[list(sub)] = True
        freq = float((mask == target).all(dim=1).float().mean())
        expected = _brute_force_set_prob(logits[0].tolist(), sub)
        assert freq == pytest.approx(expected, abs=0.015)


def test_log_prob_gradient_matches_finite_differences():
    logits = torch.randn(1, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    mask = torch.tensor([[False, True, True, False]])
    x = logits.clone().requires_grad_(True)
    mpt.log_prob_nm_mask(x, mask, 2).sum().backward()
    eps = 1e-6
    for j in range(4):
        plus, minus = logits.clone(), logits.clone()
        plus[0, j] += eps
        minus[0, j] -= eps
        fd = (float(mpt.log_prob_nm_mask(plus, mask, 2)[0]) - float(mpt.log_prob_nm_mask(minus, mask, 2)[0])) / (2 * eps)
        assert float(x.grad[0, j]) == pytest.approx(fd, abs=1e-6)


def test_final_mask_is_top_n():
    logits = torch.tensor([[0.1, 0.9, 0.5, -1.0], [3.0, 2.0, 1.0, 0.0], [-1.0, -2.0, 5.0, 4.0]])
    expected = torch.tensor([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(mpt.final_mask(logits, 2), expected)
    assert torch.equal(mpt.final_mask(logits, 1).sum(1), torch.ones(3, dtype=torch.long))


def test_group_view_round_trip_and_magnitude_logits():
    w = torch.randn(8, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    g = mpt.group_view(w, 4)
    assert g.shape == (8 * 36 // 4, 4)
    assert torch.equal(g[0], w.reshape(8, -1)[0, :4])          # row-major: consecutive in*kh*kw
    assert torch.equal(mpt.ungroup_view(g, w.shape), w)
    logits = mpt.magnitude_logits(w, 4, temperature=5.0)
    from maskpro_eval.analysis.nm import magnitude_nm_mask
    assert torch.equal(mpt.ungroup_view(mpt.final_mask(logits, 2), w.shape), magnitude_nm_mask(w, 2, 4))


def test_maskable_layers_follow_default_excludes():
    from diffusers import UNet2DModel
    unet = UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=(8, 8, 8, 8), norm_num_groups=4, attention_head_dim=None,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"))
    names = set(mpt.maskable_layers(unet, 4))
    assert "conv_in" not in names and "conv_out" not in names
    assert not any(n.startswith("time_embedding.") or n.endswith("time_emb_proj") for n in names)
    assert "down_blocks.0.resnets.0.conv1" in names
    assert any(".attentions." in n for n in names)


def test_learn_masks_finds_the_cheap_entries_on_a_toy_problem():
    """Loss = sum of costs of the kept entries: REINFORCE should move each group to its 2 cheapest."""
    g = torch.Generator().manual_seed(0)
    # per group two cheap entries (cost ~0) and two expensive ones (cost ~1), at random positions
    base = torch.tensor([0.0, 0.05, 0.95, 1.0])
    cost = {k: torch.stack([base[torch.randperm(4, generator=g)] for _ in range(rows)])
            for k, rows in (("a", 8), ("b", 4))}
    init = {k: torch.zeros_like(v) for k, v in cost.items()}

    def loss_fn(masks, step):
        return float(sum((masks[k].float() * cost[k]).sum() for k in masks)) / 12

    best = {k: mpt.final_mask(-v, 2) for k, v in cost.items()}
    for reference in (None, "initial"):
        logits, log = mpt.learn_masks(loss_fn, init, 2, 300, lr=0.1, num_samples=2, reference=reference,
                                      generator=torch.Generator().manual_seed(1))
        learned = {k: mpt.final_mask(v, 2) for k, v in logits.items()}
        assert mpt.masks_equal_fraction(learned, best) == 1.0, reference
        assert len(log.step) == 300
        assert sum(log.sampled_loss[-20:]) < sum(log.sampled_loss[:20])


def test_learn_masks_leaves_logits_unchanged_with_zero_steps_and_is_deterministic():
    init = {"a": torch.randn(10, 4, generator=torch.Generator().manual_seed(0))}
    out, log = mpt.learn_masks(lambda m, s: 0.0, init, 2, 0)
    assert torch.equal(out["a"], init["a"]) and log.step == []

    def loss_fn(masks, step):
        return float(masks["a"][:, 0].float().mean())

    r1, _ = mpt.learn_masks(loss_fn, init, 2, 10, generator=torch.Generator().manual_seed(2))
    r2, _ = mpt.learn_masks(loss_fn, init, 2, 10, generator=torch.Generator().manual_seed(2))
    assert torch.equal(r1["a"], r2["a"])
