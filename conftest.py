"""Root conftest: registers the suite's plugins (options, models, reports) and tier markers.

Options are registered here (the rootdir conftest), never in nested conftests, so
``pytest -m quick --checkpoint PATH`` works from any directory inside the project.
"""
from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["fixtures.options", "fixtures.models", "fixtures.quality", "fixtures.reporting",
                  "maskpro_eval.gpu.pytest_plugin"]

_ROOT = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Everything under tests/ is the project's own unit suite (marker ``unit``)."""
    tests_dir = _ROOT / "tests"
    for item in items:
        if tests_dir in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.unit)
