"""``python -m benchmarks SUBCOMMAND ...`` (run from the repository root): see :mod:`benchmarks.cli`."""
from benchmarks.cli import main

raise SystemExit(main())
