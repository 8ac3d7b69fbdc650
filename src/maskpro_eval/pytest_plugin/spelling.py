"""Options users type from habit get a one-line "did you mean" instead of pytest's usage dump:
underscore spellings (``--num_samples``) and the original framework's flags (``--skip_fid``,
``--magnitude``, ...; README "Migration from the original framework")."""
from __future__ import annotations

import pytest

#: Flags of the original evaluation framework -> what to type here.
FRAMEWORK_FLAGS = {
    "--skip_fid": "run `-m quick` (FID is the full tier), or `-m 'full and not ...'` to pick tests",
    "--skip_benchmark": "add --benchmark-skip (or --benchmark-disable to run the latency cases once, untimed)",
    "--magnitude": "give the model as --checkpoint magnitude=PATH",
    "--maskpro": "give the model as --checkpoint maskpro=PATH",
    "--additional": "give each extra model as --checkpoint NAME=PATH (repeatable)",
    "--mode": "choose the tier with -m quick|full|compare|workflow (or: maskpro-eval run --mode ...)",
    "--model_path": "give the model as --checkpoint PATH",
    "--output_dir": "use --reports-dir DIR",
}


def suggestion(option: str, known: set[str]) -> str | None:
    """The fix for an unknown ``option``, or None when it is not a spelling we recognise."""
    if option in FRAMEWORK_FLAGS:
        return FRAMEWORK_FLAGS[option]
    hyphen = option.replace("_", "-")
    if hyphen != option and hyphen in known:
        return f"did you mean {hyphen}?"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    argparser = getattr(parser, "optparser", None) or parser._getparser()  # pytest 9 | 8
    known = set(argparser._option_string_actions)
    for arg in args:
        option = arg.split("=", 1)[0]
        if option.startswith("--") and option not in known:
            fix = suggestion(option, known)
            if fix:
                raise pytest.UsageError(f"maskpro-eval: unknown option {option}: {fix}")
