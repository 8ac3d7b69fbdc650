"""maskpro_eval.reporting.atomic_io: temp file in the same folder, fsync, os.replace, no partial file on error."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from maskpro_eval.reporting import atomic_io
from maskpro_eval.reporting.atomic_io import atomic_savez, atomic_write, atomic_write_bytes, atomic_write_text


def test_writers_round_trip_and_create_folders(tmp_path):
    t = atomic_write_text(tmp_path / "a" / "x.md", "héllo\n")
    b = atomic_write_bytes(tmp_path / "b" / "x.bin", b"\x00\x01")
    z = atomic_savez(tmp_path / "c" / "x.npz", {"a": np.arange(3), "s": np.array("meta")})
    assert t.read_text() == "héllo\n" and b.read_bytes() == b"\x00\x01"
    with np.load(z) as f:
        assert f["a"].tolist() == [0, 1, 2] and str(f["s"]) == "meta"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "c", "x.bin", "x.md", "x.npz"]


def test_replaces_existing_file_and_keeps_permissions_of_each_kind(tmp_path):
    p = tmp_path / "r.txt"
    p.write_text("old")
    atomic_write_text(p, "new")
    assert p.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask  # like Path.write_text
    q = atomic_write_bytes(tmp_path / "q.bin", b"x")
    assert stat.S_IMODE(q.stat().st_mode) == 0o600 & ~umask  # like tempfile.mkstemp


@pytest.mark.parametrize("exc", [OSError("disk full"), KeyboardInterrupt()])
def test_failure_leaves_no_partial_file_and_old_content(tmp_path, exc):
    target = tmp_path / "t.npz"
    seen = []

    def half_then_fail(f):
        f.write(b"PK partial")
        seen.extend(p.name for p in tmp_path.iterdir())
        raise exc

    with pytest.raises(type(exc)):
        atomic_write(target, half_then_fail)
    assert len(seen) == 1 and seen[0].startswith(".t.npz.") and seen[0].endswith(".tmp")  # same folder
    assert list(tmp_path.iterdir()) == []  # no target, no temp file
    atomic_write_bytes(target, b"good")
    with pytest.raises(type(exc)):
        atomic_write(target, half_then_fail)
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"] and target.read_bytes() == b"good"


def test_failed_rename_removes_temp_file(tmp_path, monkeypatch):
    def no_replace(src, dst):
        raise PermissionError("replace denied")

    monkeypatch.setattr(atomic_io.os, "replace", no_replace)
    with pytest.raises(PermissionError, match="replace denied"):
        atomic_savez(tmp_path / "s.npz", {"a": np.zeros(2)})
    assert list(tmp_path.iterdir()) == []


def test_fsync_of_file_and_folder(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(atomic_io.os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    atomic_write_text(tmp_path / "a.txt", "x")
    assert calls == []  # text reports: no fsync (as before)
    atomic_write_bytes(tmp_path / "b.bin", b"x")
    assert len(calls) == 1
    atomic_savez(tmp_path / "c.npz", {"a": np.zeros(1)}, fsync_dir=True)
    assert len(calls) == 3  # the file, then its folder


def test_run_outputs_of_the_same_name_never_share_a_staging_folder(tmp_path):
    """Two runs started in the same second (same auto name): separate staging folders, both committed."""
    from maskpro_eval.reporting.results import RunOutput
    a, b = RunOutput(tmp_path, "20261202-101010-quick", replace=False), RunOutput(tmp_path, "20261202-101010-quick", replace=False)
    assert a.staging_dir != b.staging_dir
    a.path("x.txt").write_text("a")
    b.path("x.txt").write_text("b")
    assert a.commit().name == "20261202-101010-quick" and b.commit().name == "20261202-101010-quick-2"
    assert (tmp_path / "20261202-101010-quick" / "x.txt").read_text() == "a"
    assert (tmp_path / "20261202-101010-quick-2" / "x.txt").read_text() == "b"
    assert not list(tmp_path.glob(".staging-*"))


def test_explicit_run_name_replaces_its_older_folder(tmp_path):
    from maskpro_eval.reporting.results import RunOutput
    old = RunOutput(tmp_path, "r")
    old.path("old.txt").write_text("1")
    old.commit()
    new = RunOutput(tmp_path, "r")
    new.path("new.txt").write_text("2")
    assert new.commit() == tmp_path / "r"
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["new.txt"]
