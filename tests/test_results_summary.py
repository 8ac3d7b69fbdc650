"""summary.md: each model's facts appear under that model."""
from __future__ import annotations

import pytest

from maskpro_eval.reporting.results import summary_markdown

pytestmark = pytest.mark.unit


def _entry(notes, fid=None):
    e = {"role": "model", "format": "diffusers", "parameters": {"total": 10, "nonzero": 5},
         "sparsity": {"global": 0.5, "masked_layers": 0.5}, "nm": {"n": 2, "m": 4, "compliance": 1.0,
                                                                  "compliance_channel": 1.0},
         "macs": {"eligible_share": 0.9, "dense": 2e9, "effective": 1e9}, "notes": notes}
    if fid is not None:
        e["quality"] = {"fid": fid, "fid_n": 100}
    return e


@pytest.mark.parametrize("with_quality", [True, False])
def test_notes_of_every_model_under_that_model(with_quality):
    results = {"models": {"alpha": _entry(["alpha note"], fid=10.0 if with_quality else None),
                          "beta": _entry(["beta note one", "beta note two"], fid=12.0 if with_quality else None)}}
    md = summary_markdown(results)
    assert "- note (alpha): alpha note" in md
    assert "- note (beta): beta note one" in md
    assert "- note (beta): beta note two" in md
    assert "- note (beta): alpha note" not in md and "- note (alpha): beta" not in md
