"""Root conftest: only what this repository needs beyond the installed plugin.

The suite's options, fixtures and report hooks are the package's pytest plugin
(``maskpro_eval.pytest_plugin``, entry point ``pytest11``): nothing to register here.
"""
from __future__ import annotations

from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    """Everything under tests/ is the project's own unit suite (marker ``unit``)."""
    tests_dir = _ROOT / "tests"
    for item in items:
        if tests_dir in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.unit)
