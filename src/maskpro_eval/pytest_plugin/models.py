"""Models under test: parametrisation from options, session-scoped loading, bad input -> exit."""
from __future__ import annotations

import pytest

from maskpro_eval.errors import MaskProEvalError
from maskpro_eval.evaluation import EvaluatedModel, build_specs
from maskpro_eval.pytest_plugin.state import run_state

#: Exit status of a run stopped by bad input (missing file, corrupt checkpoint, untrusted pickle, ...).
BAD_INPUT_EXIT = 4


def selects_tier(config, tier: str) -> bool:
    """The run's ``-m`` expression names ``tier``."""
    import re
    return re.search(rf"\b{tier}\b", config.option.markexpr or "") is not None


def training_dir(config) -> str | None:
    """``--training-dir``, or the demo zoo's MaskPro run for a workflow run that names no model."""
    given = config.getoption("--training-dir")
    if given or config.getoption("--checkpoint") or not selects_tier(config, "workflow"):
        return given
    from maskpro_eval.checkpoints.zoo import ZOO_TRAINING_DIR
    return str(ZOO_TRAINING_DIR)


def training_select(config) -> str:
    """``--training-select``; default ``latest``, ``all`` for the demo run (its trend needs every epoch)."""
    given = config.getoption("--training-select")
    if given:
        return given
    return "all" if training_dir(config) and not config.getoption("--training-dir") else "latest"


def _specs(config):
    state = run_state(config)
    if state.specs is None:
        from maskpro_eval.checkpoints import zoo
        demo = zoo.STUDY_MODELS if selects_tier(config, "compare") else None
        try:
            state.specs = build_specs(config.getoption("--checkpoint"), config.getoption("--baseline"),
                                      config.getoption("--original"), training_dir(config),
                                      training_select(config), demo_models=demo)
        except ValueError as exc:
            raise pytest.UsageError(f"maskpro-eval: {exc}") from None
    return state.specs


def pytest_configure(config):
    """Every model named on the command line exists before anything runs (exit 4, one line, otherwise)."""
    from maskpro_eval.checkpoints.readers import missing_path_error
    from maskpro_eval.checkpoints.zoo import resolve_model_spec
    for spec in _specs(config):
        try:
            path = resolve_model_spec(spec.path)
        except (ValueError, FileNotFoundError) as exc:
            raise pytest.UsageError(f"maskpro-eval: --{_OPTION[spec.role]} {spec.path}: {exc}") from None
        if not path.exists():
            raise pytest.UsageError(f"maskpro-eval: --{_OPTION[spec.role]}: {missing_path_error(path)}")


_OPTION = {"model": "checkpoint", "baseline": "baseline", "original": "original"}


def pytest_addoption(parser):
    g = parser.getgroup("maskpro-eval-workflow", "maskpro-eval: training-run workflow")
    g.addoption("--training-dir", default=None, metavar="DIR",
                help="evaluate the checkpoints of a MaskPro training run (checkpoint_epoch_*.pt, "
                     "best_checkpoint.pt, maskpro_state_*.pt)")
    g.addoption("--training-select", choices=("best", "latest", "all"), default=None,
                help="which checkpoints of --training-dir: best, latest (default) or all (batch evaluation); "
                     "the demo run (-m workflow with no model named): all")


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist ``--dist loadgroup``, all tests of one model run on one worker."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        name = getattr(getattr(item, "callspec", None), "params", {}).get("model_name")
        if name is not None:
            item.add_marker(pytest.mark.xdist_group(name))


def pytest_generate_tests(metafunc):
    """``model_name``: every model under test (role "model"), in command-line order."""
    if "model_name" in metafunc.fixturenames:
        names = [s.name for s in _specs(metafunc.config) if s.role == "model"]
        metafunc.parametrize("model_name", names, ids=names, scope="session")


class ModelRegistry:
    """Session-wide: each model is loaded and analysed at most once per process."""

    def __init__(self, config):
        self.config = config
        self.settings = run_state(config).settings
        self.specs = {s.name: s for s in _specs(config)}
        self._models: dict[str, EvaluatedModel] = {}

    def get(self, name: str) -> EvaluatedModel:
        if name not in self._models:
            self._models[name] = EvaluatedModel(self.specs[name], self.settings)
        model = self._models[name]
        try:
            if not model.is_loaded:
                with run_state(self.config).timer.phase("model_load"):
                    model.load()
        except MaskProEvalError as exc:
            run_state(self.config).bad_input = str(exc)
            pytest.exit(f"maskpro-eval: bad input: {exc}", returncode=BAD_INPUT_EXIT)
        return model

    def by_role(self, role: str) -> list[str]:
        return [n for n, s in self.specs.items() if s.role == role]


@pytest.fixture(scope="session")
def model_registry(pytestconfig) -> ModelRegistry:
    return ModelRegistry(pytestconfig)


@pytest.fixture(scope="session")
def model(model_registry, model_name) -> EvaluatedModel:
    """The model under test (loaded once per session)."""
    return model_registry.get(model_name)


@pytest.fixture(scope="session")
def baseline(model_registry) -> EvaluatedModel | None:
    """The baseline model (``--baseline``; the zoo's dense model by default), or None."""
    names = model_registry.by_role("baseline")
    return model_registry.get(names[0]) if names else None


@pytest.fixture(scope="session")
def baseline_required(baseline):
    if baseline is None:
        pytest.skip("no --baseline given: relative gates need a baseline model")
    return baseline
