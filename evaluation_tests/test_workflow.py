"""Training-run workflow: the checkpoints of --training-dir (default: the demo MaskPro run), against epoch."""
from __future__ import annotations

import pytest

from maskpro_eval.pytest_plugin.models import training_dir, training_select

pytestmark = pytest.mark.workflow


def test_training_run_trend(pytestconfig, model_registry, run_output, attach_image, record_model, record_protocol):
    """Every selected checkpoint's sparsity/N:M facts against epoch, with the training logs found inside."""
    from maskpro_eval.reporting.results import write_results_json
    from maskpro_eval.reporting.trends import plot_trends

    run_dir = training_dir(pytestconfig)
    if not run_dir:
        pytest.skip("no --training-dir given (and --checkpoint names models: no demo run)")
    points, logs = [], None
    for name in model_registry.by_role("model"):
        m = model_registry.get(name)
        loaded = m.load()
        rep = m.analysis()
        points.append({"name": name, "epoch": loaded.epoch, "nm_compliance": rep.nm_compliance,
                       "masked_layers_sparsity": rep.masked_layers_sparsity, "global_sparsity": rep.global_sparsity,
                       "max_mask_disagreement": max(loaded.mask_disagreements.values(), default=0.0)})
        record_model(name, m.entry())
        if loaded.training_logs and (logs is None or len(loaded.training_logs) > len(logs)):
            logs = list(loaded.training_logs)
    assert points, "no checkpoints selected"
    png = plot_trends(run_output.path("trends", "trend.png"), points, logs)
    attach_image("trends/trend.png", png.read_bytes(), label="metrics against epoch")
    write_results_json(run_output.path("workflow_results.json"),
                       {"training_dir": run_dir, "select": training_select(pytestconfig), "checkpoints": points,
                        "training_logs": logs})
    record_protocol({"training_dir": run_dir})
    no_epoch = [p["name"] for p in points if p["epoch"] is None and p["name"] != "best"]
    assert not no_epoch, f"checkpoints without an epoch (cannot be placed on the trend): {', '.join(no_epoch)}"
