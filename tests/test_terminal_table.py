"""The terminal summary table: one row per model with its headline figures and gate verdict."""
from maskpro_eval.reporting.terminal import model_table


def test_model_table_rows():
    results = {
        "models": {
            "m": {"role": "model", "nm": {"n": 2, "m": 4, "compliance": 0.97}, "sparsity": {"masked_layers": 0.49},
                  "quality": {"fid": 12.345, "fid_n": 5000, "fid_biased": True, "kid_mean": 0.0123,
                              "prdc": {"precision": 0.912, "recall": 0.456, "n_fake": 5000, "small_n": True}},
                  "cpu_forward_latency": {"median_ms": 27.0, "iqr_ms": 2.0, "contended": True}},
            "u": {"role": "model"},
            "dense": {"role": "baseline"},
        },
        "gates": [{"model": "m", "metric": "fid", "passed": False}, {"model": "m", "metric": "kid", "passed": True}],
        "ungated": [{"model": "u", "tier": "full"}],
    }
    header, m, u, dense = model_table(results)
    assert header.split() == ["model", "role", "N:M", "compl.", "sparsity", "FID", "/", "KID", "/", "prec.", "rec.",
                              "latency", "gates"]
    assert "0.9700 (2:4)" in m and "0.4900" in m and "12.35 (N=5000, biased) / KID 0.0123 / P 0.91 R 0.46 (N=5000, small N)" in m
    assert "27 ms +-1 CONTENDED" in m and m.endswith("FAIL fid")
    assert u.endswith("ungated") and dense.endswith("-")


def test_loader_notes_name_what_the_loader_decided():
    from maskpro_eval.reporting.terminal import loader_notes
    lines = loader_notes({"models": {
        "best": {"format": "maskpro-trainer", "notes": ["base model from ...: /r/pruned (found 5 folder(s) above)",
                                                       "2 old diffusers class path(s) remapped to current ones"],
                 "mask_disagreements": {"a.conv": 0.0, "b.conv": 0.125}},
        "dense": {"format": "diffusers-pipeline", "notes": []}}})
    assert lines[0] == "best (maskpro-trainer):" and "remapped" in lines[2]
    assert lines[3] == "  - current_mask disagrees with the final mask in 1 layer(s) (worst b.conv: 12.50% of entries)"
    assert len(lines) == 4  # nothing to say about dense


def test_reference_notes_are_shown():
    from maskpro_eval.reporting.terminal import reference_lines
    lines = reference_lines({"protocol": {"reference": "/data/ref", "reference_n": 48, "reference_kind": "image-folder",
                                          "reference_notes": ["converted 48 image(s) of mode L to RGB"]}})
    assert lines == ["reference: /data/ref (N=48, image-folder)", "  - converted 48 image(s) of mode L to RGB"]
    assert reference_lines({"protocol": {}}) == []
