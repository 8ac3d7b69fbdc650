"""Gates and thresholds-as-data."""
import pytest

from maskpro_eval.errors import CheckpointError
from maskpro_eval.gating.gates import assert_gates, check
from maskpro_eval.gating.thresholds import Thresholds


def test_gate_ops_and_messages():
    assert check("m", "fid", 10.0, "<=", 12.0).passed
    assert not check("m", "fid", 12.5, "<=", 12.0).passed
    assert check("m", "s", 0.49, "within", 0.5, tolerance=0.02).passed
    assert not check("m", "s", 0.45, "within", 0.5, tolerance=0.02).passed
    assert not check("m", "x", None, ">=", 0.9).passed
    assert not check("m", "x", float("nan"), ">=", 0.9).passed
    g = check("m", "nm_compliance_2:4", 0.5, ">=", 0.9, detail="worst: a=0.1")
    assert g.message == "[FAIL] m: nm_compliance_2:4 = 0.5 (gate: nm_compliance_2:4 >= 0.9); worst: a=0.1"


def test_assert_gates_lists_every_failure():
    gates = [check("a", "fid", 20.0, "<=", 10.0), check("b", "kid", 0.1, "<=", 0.01), check("c", "fid", 1.0, "<=", 10.0)]
    with pytest.raises(AssertionError) as err:
        assert_gates(gates)
    text = str(err.value)
    assert "2 gate(s) failed" in text and "a: fid = 20" in text and "b: kid = 0.1" in text and "c:" not in text


def test_threshold_precedence(tmp_path):
    f = tmp_path / "t.toml"
    f.write_text("[quick]\nmin_nm_compliance = 0.8\n[full]\nmax_fid = 30.0\n"
                 "[models.special.quick]\nmin_nm_compliance = 0.99\n")
    t = Thresholds.from_file(f, {"full": {"max_fid": None}})
    assert t.get("quick", "min_nm_compliance") == 0.8
    assert t.get("quick", "min_nm_compliance", "special") == 0.99
    assert t.get("quick", "sparsity_tolerance") == 0.02          # default
    assert t.get("full", "max_fid") == 30.0
    t2 = Thresholds.from_file(f, {"quick": {"min_nm_compliance": 0.5}})
    assert t2.get("quick", "min_nm_compliance", "special") == 0.5  # command line wins
    assert t.get("full", "max_kid") is None                        # absent: gate off


@pytest.mark.parametrize("text,err", [("[quick]\nmin_nm_compliance = \n", "invalid TOML"),
                                      ("[quik]\nx = 1\n", "unknown section"),
                                      ("[quick]\nmin_compliance = 0.9\n", "unknown key")])
def test_bad_thresholds_file(tmp_path, text, err):
    f = tmp_path / "t.toml"
    f.write_text(text)
    with pytest.raises(CheckpointError, match=err):
        Thresholds.from_file(f)


def test_missing_thresholds_file(tmp_path):
    with pytest.raises(CheckpointError, match="thresholds file not found"):
        Thresholds.from_file(tmp_path / "nope.toml")


def test_shipped_thresholds_files_are_valid():
    from tests.builders import REPO_ROOT
    for name in ("thresholds.toml", "thresholds_demo.toml"):
        path = REPO_ROOT / "evaluation_tests" / name
        assert path.is_file(), f"{name} is shipped with the suite"
        t = Thresholds.from_file(path)  # validates every section and key
        assert t.source == str(path) and t.file_data.get("quick"), name


def test_thresholds_load_on_python_310_through_tomli(tmp_path, monkeypatch):
    """Python 3.10 has no tomllib: the thresholds module falls back to tomli (a 3.10-only dependency)."""
    import importlib.util
    import sys
    import tomllib as real
    import types

    import maskpro_eval.gating.thresholds as mod

    fake_tomli = types.ModuleType("tomli")
    fake_tomli.loads, fake_tomli.TOMLDecodeError = real.loads, real.TOMLDecodeError
    monkeypatch.setitem(sys.modules, "tomllib", None)  # `import tomllib` raises ModuleNotFoundError
    monkeypatch.setitem(sys.modules, "tomli", fake_tomli)
    spec = importlib.util.spec_from_file_location("thresholds_py310", mod.__file__)
    py310 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(py310)  # a separate copy: the real module is left alone
    assert py310.tomllib is fake_tomli
    f = tmp_path / "t.toml"
    f.write_text("[full]\nmax_fid = 30.0\n")
    assert py310.Thresholds.from_file(f).get("full", "max_fid") == 30.0
    f.write_text("[full]\nmax_fid = \n")
    with pytest.raises(CheckpointError, match="invalid TOML"):
        py310.Thresholds.from_file(f)


def test_tomli_is_a_dependency_below_python_311():
    import tomllib

    from tests.builders import REPO_ROOT
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
    deps = [d.replace(" ", "").replace("'", '"') for d in project["dependencies"]]
    assert 'tomli>=2;python_version<"3.11"' in deps


# ------------------------------------------------------------------------------------------------
# Keys: the known keys are exactly the ones the gates read
# ------------------------------------------------------------------------------------------------

def _gate_sources() -> str:
    from tests.builders import REPO_ROOT
    return "\n".join(p.read_text() for p in sorted((REPO_ROOT / "evaluation_tests").glob("test_*.py")))


def test_every_known_key_is_read_by_a_gate():
    """A key in the registry that no gate reads would be accepted and then silently ignored."""
    from maskpro_eval.gating.thresholds import GATE_KEYS
    sources = _gate_sources()
    unread = [f"{tier}.{key}" for tier, keys in GATE_KEYS.items() for key in keys
              if f'"{key}"' not in sources]
    assert unread == []


def test_a_gate_cannot_read_an_unregistered_key():
    with pytest.raises(KeyError, match="min_drift_psnr_mean"):
        Thresholds().get("full", "min_drift_psnr_mean")


def test_command_line_threshold_options_are_registered_keys():
    from maskpro_eval.gating.thresholds import GATE_KEYS
    from maskpro_eval.pytest_plugin.options import FULL_THRESHOLD_OPTIONS
    assert all(key in GATE_KEYS[tier] for tier, key, _ in FULL_THRESHOLD_OPTIONS)
    with pytest.raises(KeyError, match="max_fdi"):
        Thresholds(cli={"full": {"max_fdi": 3.0}})


@pytest.mark.parametrize("text,key,closest", [
    ("[full]\nmin_drift_psnr_mean = 30.0\n", "min_drift_psnr_mean", None),  # was known, read by no gate
    ("[full]\nmax_fdi = 30.0\n", "max_fdi", "max_fid"),
    ("[models.m.quick]\nmin_nm_compliace = 0.9\n", "min_nm_compliace", "min_nm_compliance"),
])
def test_unknown_key_error_names_file_key_known_keys_and_closest(tmp_path, text, key, closest):
    from maskpro_eval.gating.thresholds import GATE_KEYS
    f = tmp_path / "mine.toml"
    f.write_text(text)
    with pytest.raises(CheckpointError) as err:
        Thresholds.from_file(f)
    msg = str(err.value)
    tier = "quick" if "quick" in text else "full"
    assert str(f) in msg and repr(key) in msg
    assert all(k in msg for k in GATE_KEYS[tier])
    if closest:
        assert f"did you mean {closest!r}" in msg


def _rules_file(tmp_path, body: str):
    f = tmp_path / "rules.toml"
    f.write_text(body)
    return f


def test_compare_relative_rules_validated(tmp_path):
    ok = ('[[compare.relative]]\nmodel = "a"\nreference = "b"\nmetric = "fid"\nmax_worse = 1.0\n')
    assert Thresholds.from_file(_rules_file(tmp_path, ok)).file_data["compare"]["relative"][0]["model"] == "a"
    bad = [
        ('[[compare.relative]]\nmodel = "a"\nreference = "b"\nmetric = "fid"\nmax_wrose = 1.0\n',
         r"unknown key 'max_wrose' in \[\[compare.relative\]\] rule 1.*did you mean 'max_worse'"),
        ('[[compare.relative]]\nmodel = "a"\nmetric = "fid"\n', r"rule 1.*missing 'reference'"),
        ('[[compare.relative]]\nmodel = "a"\nreference = "b"\nmetric = "fid"\n'
         '[[compare.relative]]\nreference = "b"\nmetric = "fid"\n', r"rule 2.*missing 'model'"),
        ('[compare]\nrelatve = []\n', r"unknown key 'relatve' in \[compare\].*did you mean 'relative'"),
        ('[compare]\nrelative = 3\n', r"\[\[compare.relative\]\].*tables"),
    ]
    for body, match in bad:
        with pytest.raises(CheckpointError, match=match) as err:
            Thresholds.from_file(_rules_file(tmp_path, body))
        assert str(tmp_path / "rules.toml") in str(err.value)
