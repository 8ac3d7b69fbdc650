"""maskpro-eval speed benchmarks: a pytest-benchmark suite (``pytest benchmarks -m bench``) and one CLI
(``python -m benchmarks SUBCOMMAND``) whose every subcommand writes one record of the schema in
:mod:`maskpro_eval.runtime.records`. See benchmarks/README.md."""
