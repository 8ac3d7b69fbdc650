"""N:M arithmetic against hand-computed cases."""
import pytest
import torch

from maskpro_eval.analysis.nm import best_fit_pattern, groups, is_groupable, magnitude_nm_mask, nm_compliance, parse_nm, topn_mask, ungroup


def test_parse_nm():
    assert parse_nm("2:4") == (2, 4)
    for bad in ("2-4", "4:2", "0:4", "a:b"):
        with pytest.raises(ValueError):
            parse_nm(bad)


def test_row_groups_of_linear_weight_by_hand():
    w = torch.tensor([[1., 0., 2., 0., 3., 4., 0., 0.],
                      [0., 0., 0., 5., 6., 7., 8., 0.]])
    c = nm_compliance(w, 2, 4, "row")
    # groups: [1,0,2,0] ok(2) ; [3,4,0,0] ok(2) ; [0,0,0,5] ok(1) ; [6,7,8,0] bad(3)
    assert (c.num_groups, c.compliant_groups, c.exact_groups) == (4, 3, 2)
    assert c.compliance == 0.75 and c.exact == 0.5


def test_channel_layout_groups_input_channels_per_tap():
    # conv weight (out=1, in=4, 1, 2): taps (0,0) and (0,1)
    w = torch.zeros(1, 4, 1, 2)
    w[0, :, 0, 0] = torch.tensor([1., 1., 0., 0.])   # tap 0: 2 non-zeros over channels
    w[0, :, 0, 1] = torch.tensor([1., 1., 1., 0.])   # tap 1: 3 non-zeros over channels
    chan = nm_compliance(w, 2, 4, "channel")
    assert (chan.num_groups, chan.compliant_groups) == (2, 1)
    # row-major view (1, 8) = [1,1, 1,1, 0,1, 0,0] -> groups [1,1,1,1] bad, [0,1,0,0] ok
    row = nm_compliance(w, 2, 4, "row")
    assert (row.num_groups, row.compliant_groups) == (2, 1)
    assert groups(w, 4, "channel").tolist() == [[1., 1., 0., 0.], [1., 1., 1., 0.]]


def test_ungroup_inverts_groups():
    w = torch.randn(8, 12, 3, 3)
    for layout in ("row", "channel"):
        assert torch.equal(ungroup(groups(w, 4, layout), w.shape, layout), w)


def test_not_groupable():
    assert not is_groupable((8, 3, 3, 3), 4, "row")        # 27 not divisible by 4
    assert is_groupable((8, 4, 3, 3), 4, "channel")
    assert not is_groupable((8, 6, 3, 3), 4, "channel")   # 54 % 4 != 0 and 6 % 4 != 0
    assert nm_compliance(torch.ones(8, 3, 3, 3), 2, 4) is None


def test_magnitude_mask_keeps_largest_two_of_four():
    w = torch.tensor([[0.1, -3.0, 2.0, 0.5, 4.0, 0.0, -0.2, 0.3]])
    mask = magnitude_nm_mask(w, 2, 4)
    assert mask.tolist() == [[False, True, True, False, True, False, False, True]]


def test_topn_from_logits_and_strict_compliance():
    torch.manual_seed(0)
    shape = (16, 8, 3, 3)
    logits = torch.randn(16 * 8 * 9 // 4, 4)
    mask = topn_mask(logits, 2, shape)
    assert mask.shape == shape and mask.sum() == mask.numel() // 2
    c = nm_compliance(mask, 2, 4)
    assert c.compliance == 1.0 and c.exact == 1.0
    # strict in row layout is generally not strict in channel layout
    assert nm_compliance(mask, 2, 4, "channel").compliance < 1.0


def test_best_fit_pattern():
    torch.manual_seed(0)
    w = torch.randn(8, 16)
    assert best_fit_pattern(w * magnitude_nm_mask(w, 2, 4))[0] == (2, 4)
    assert best_fit_pattern(w * magnitude_nm_mask(w, 1, 4))[0] == (1, 4)
    assert best_fit_pattern(w * magnitude_nm_mask(w, 4, 8))[0] == (4, 8)
    pattern, comp = best_fit_pattern(w)  # dense: nothing fits
    assert comp == 0.0


@pytest.mark.parametrize("value", ["2:4", (2, 4), [2, 4]])
def test_nm_argument_forms(value):
    from maskpro_eval.checkpoints import load_checkpoint
    from maskpro_eval.checkpoints.zoo import resolve_model_spec
    assert load_checkpoint(resolve_model_spec("demo:dense"), nm=value).nm == (2, 4)


@pytest.mark.parametrize("value", [(3, 2), (0, 4), (2, 2), "2-4", ("2", "4"), (2.5, 4), (2, 4, 8)])
def test_nm_argument_refused(value):
    from maskpro_eval.checkpoints import load_checkpoint
    from maskpro_eval.checkpoints.zoo import resolve_model_spec
    with pytest.raises(ValueError, match="nm="):
        load_checkpoint(resolve_model_spec("demo:dense"), nm=value)
