"""`--html=PATH` gives ONE self-contained file (no assets/ folder beside it) with the per-model table and
gate cells that state their tolerance; a compliant model's gate lists no "worst layers"."""
from __future__ import annotations

from tests.builders import REPO_ROOT

pytest_plugins = ["pytester"]


def test_html_path_is_self_contained_with_models_table(pytester):
    out = pytester.path / "out"
    result = pytester.runpytest_subprocess(
        str(REPO_ROOT / "evaluation_tests" / "test_quick.py"), "-m", "quick", "-p", "no:cacheprovider",
        "--rootdir", str(REPO_ROOT), "-c", str(REPO_ROOT / "pyproject.toml"), "--checkpoint", "demo:maskpro_2of4",
        "--checkpoint", "demo:noncompliant", "--reports-dir", str(pytester.path / "reports"),
        "--quick-samples", "2", "--quick-steps", "2", "--benchmark-disable", f"--html={out / 'gate.html'}")
    assert result.ret == 1, result.stdout.str()[-2000:]   # noncompliant fails its N:M gate
    assert sorted(p.name for p in out.iterdir()) == ["gate.html"]
    page = (out / "gate.html").read_text()
    assert "<h2>Models</h2>" in page and "<td>maskpro_2of4</td>" in page and "<td>noncompliant</td>" in page
    assert "within 0.5 ± 0.02" in page                     # the sparsity gate with its tolerance
    assert "data:image/png;base64," in page                # images embedded
    good = [line for line in result.stdout.lines if "[PASS] maskpro_2of4: nm_compliance" in line]
    bad = [line for line in result.stdout.lines if "[FAIL] noncompliant: nm_compliance" in line]
    assert good and "worst layers" not in good[0]
    assert bad and "worst layers" in bad[0]
