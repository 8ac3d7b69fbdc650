"""maskpro-eval's pytest plugin (entry point ``pytest11``: ``maskpro_eval = maskpro_eval.pytest_plugin``).

Installed with the package, pytest loads it before it parses the command line, so the suite's options
(``--checkpoint PATH`` with a space and a path anywhere) are known wherever pytest runs. Modules:

* :mod:`.rootdir` - keeps the rootdir and ini when a path option's value is an existing path;
* :mod:`.spelling` - a one-line "did you mean" for underscore spellings and the original framework's flags;
* :mod:`.options` - every option of the suite, parsed and validated once into the run state;
* :mod:`.models` - the models under test (parametrisation, session-wide loading, bad input -> exit 4);
* :mod:`.quality` - the full tier's QualityEvaluator (samples, features, reference statistics);
* :mod:`.reporting` - gate/model recording fixtures, the controller-side collector, report files, HTML;
* :mod:`.progress` - the library's progress bars as terminal lines (capture suspended), --no-progress;
* :mod:`.gpu` - speed-benchmark options, the ``bench`` marker, GPU fixtures;
* :mod:`.state` - the one :class:`~.state.RunState` in ``config.stash``.
"""
pytest_plugins = [
    "maskpro_eval.pytest_plugin.rootdir",
    "maskpro_eval.pytest_plugin.spelling",
    "maskpro_eval.pytest_plugin.options",
    "maskpro_eval.pytest_plugin.models",
    "maskpro_eval.pytest_plugin.quality",
    "maskpro_eval.pytest_plugin.reporting",
    "maskpro_eval.pytest_plugin.progress",
    "maskpro_eval.pytest_plugin.gpu",
]
