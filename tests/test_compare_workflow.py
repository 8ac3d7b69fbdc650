"""Compare-mode arithmetic, relative gates, and training-run discovery on the real fixture."""
import pytest

from maskpro_eval.gating.compare import comparison_rows, pareto_front, relative_gates
from maskpro_eval.checkpoints.training_run import discover, select
from tests.builders import SHARED_FIXTURES


def _entry(total, nonzero, fid, sparsity, std=None):
    return {"parameters": {"total": total, "nonzero": nonzero}, "sparsity": {"global": sparsity, "masked_layers": sparsity},
            "nm": {"n": 2, "m": 4, "compliance": 1.0, "compliance_channel_layout": 0.7},
            "quality": {"fid": fid, "consistency": {"std": std} if std else None}}


def test_rows_retention_and_pareto():
    models = {"dense": _entry(100, 100, 10.0, 0.0), "mag": _entry(100, 50, 15.0, 0.5),
              "maskpro": _entry(100, 50, 12.0, 0.5), "worse": _entry(100, 80, 20.0, 0.2)}
    rows = {r["model"]: r for r in comparison_rows(models, "dense")}
    assert rows["mag"]["compression_ratio"] == 2.0
    assert rows["maskpro"]["quality_retention"] == pytest.approx(10 / 12)
    assert rows["maskpro"]["retention_per_compression_unit"] == pytest.approx((10 / 12) / 1.0)
    assert rows["mag"]["fid_increase_per_compression_unit"] == pytest.approx(5.0)
    assert rows["dense"]["retention_per_compression_unit"] is None   # no compression gained
    assert {n for n, r in rows.items() if r["pareto_optimal"]} == {"dense", "maskpro"}


def test_pareto_front_ignores_missing_values():
    assert pareto_front([(1.0, 5.0), (2.0, None), (None, 1.0), (2.0, 6.0)]) == {0, 3}


def test_relative_gates_pass_fail_and_not_comparable():
    models = {"mag": _entry(100, 50, 15.0, 0.5), "maskpro": _entry(100, 50, 12.0, 0.5),
              "light": _entry(100, 90, 11.0, 0.1)}
    rows = comparison_rows(models, None)
    rules = [{"model": "maskpro", "reference": "mag", "metric": "fid"},
             {"model": "mag", "reference": "maskpro", "metric": "fid", "max_worse_relative": 0.1},
             {"model": "light", "reference": "mag", "metric": "fid"},
             {"model": "ghost", "reference": "mag", "metric": "fid"}]
    g = relative_gates(rows, rules)
    assert [x.passed for x in g] == [True, False, False, False]
    assert "not comparable" in g[2].detail and "ghost" in g[3].detail
    assert g[1].threshold == pytest.approx(12.0 * 1.1)


REAL_RUN = SHARED_FIXTURES / "real_formats" / "run" / "maskpro" / "training"


@pytest.mark.skipif(not REAL_RUN.exists(), reason="shared fixtures not present")
def test_discover_real_training_run():
    found = discover(REAL_RUN)
    assert {c.name for c in found} == {"epoch_3", "best", "state_epoch_3"}
    assert [c.name for c in select(found, "latest")] == ["epoch_3"]
    assert [c.name for c in select(found, "best")] == ["best"]
    assert {c.name for c in select(found, "all")} == {"epoch_3", "best"}  # state of epoch 3 covered


def test_discover_errors(tmp_path):
    from maskpro_eval.errors import CheckpointError
    with pytest.raises(CheckpointError, match="training directory not found"):
        discover(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no training checkpoints"):
        discover(tmp_path)
    with pytest.raises(ValueError):
        select([], "newest")


def test_ratios_are_relative_to_the_original():
    """A channel-pruned model (777k of the dense 1.11M parameters, all non-zero) is 1.43x smaller than the
    original, not 1.0x (the ratio used to be params / non-zero params inside each model)."""
    dense = _entry(1_110_000, 1_110_000, 10.0, 0.0)
    pruned = _entry(777_000, 777_000, 11.0, 0.0)
    for e, (dense_b, packed_b, macs) in ((dense, (2_220_000, 2_220_000, 6e9)), (pruned, (1_554_000, 1_554_000, 4e9))):
        e["compression"] = {"dense_bytes": dense_b, "packed_bytes": packed_b}
        e["macs"] = {"dense": macs, "effective": macs}
    rows = {r["model"]: r for r in comparison_rows({"dense": dense, "pruned": pruned}, "dense")}
    assert rows["pruned"]["compression_ratio"] == pytest.approx(1_110_000 / 777_000)
    assert rows["pruned"]["params_ratio"] == pytest.approx(1_110_000 / 777_000)
    assert rows["pruned"]["packed_bytes_ratio"] == pytest.approx(2_220_000 / 1_554_000)
    assert rows["pruned"]["macs_ratio"] == pytest.approx(1.5)
    assert rows["dense"]["compression_ratio"] == 1.0
    assert rows["pruned"]["retention_per_compression_unit"] == pytest.approx((10 / 11) / (1_110_000 / 777_000 - 1))
    assert comparison_rows({"dense": dense}, None)[0]["compression_ratio"] is None  # no original: undefined


def test_one_folder_given_twice_is_one_model(tmp_path):
    from maskpro_eval.evaluation import build_specs
    specs = build_specs([f"a={tmp_path}/m", f"{tmp_path}/x/../m"], baseline=f"dense={tmp_path}/d",
                        original=f"{tmp_path}/d")
    assert [(s.name, s.role) for s in specs] == [("a", "model"), ("dense", "baseline")]
    # the same file under two explicit names: the user asked for both
    assert [s.name for s in build_specs([f"a={tmp_path}/m", f"b={tmp_path}/m"])] == ["a", "b"]
