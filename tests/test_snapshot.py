"""Source snapshots (the zip a fleet host reads in place): equal to the checkout, refused when
altered, never unpacked."""

from __future__ import annotations

import json
import stat
import tempfile
import zipfile
from pathlib import Path

import pytest
from conftest import digest, upgrade

from upgrade_tasks.checkout import open_checkout
from upgrade_tasks.errors import PreflightError, UsageError
from upgrade_tasks.fleet import controller_dir
from upgrade_tasks.gitutil import CatFile
from upgrade_tasks.history import load_history
from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import SampleSource
from upgrade_tasks.snapshot import BLOBS, META
from upgrade_tasks.snapshot_pack import make_snapshot
from upgrade_tasks.sources import open_source


@pytest.fixture
def snap(tmp_path: Path, source: SampleSource) -> Path:
    return make_snapshot(open_checkout(str(source.path)), tmp_path / "out")


def _rewrite(src: Path, dest: Path, change: dict[str, bytes | None],
             symlink: str | None = None) -> Path:
    """A copy of the zip ``src`` with members replaced (``None``: dropped) or one made a link."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename in change and change[info.filename] is None:
                continue
            data = change.get(info.filename) or zin.read(info)
            if info.filename == symlink:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zout.writestr(info, data)
    return dest


def test_snapshot_opens_like_the_checkout(snap: Path, source: SampleSource) -> None:
    checkout = open_source(str(source.path))
    zipped = open_source(str(snap))
    assert zipped.commit == checkout.commit == source.v2
    assert {t: (f.sha256, f.mode, f.blob, f.area) for t, f in zipped.files.items()} == \
        {t: (f.sha256, f.mode, f.blob, f.area) for t, f in checkout.files.items()}
    assert all(f.raw() == checkout.files[t].raw() for t, f in zipped.files.items())
    hist, git_hist = zipped.history(), load_history(source.path, source.v2)
    assert hist.changes == git_hist.changes and hist.versions == git_hist.versions
    reader, git_reader = zipped.blob_reader(), CatFile(source.path)
    try:
        blobs = {b for v in hist.versions.values() for b in v}
        assert len(blobs) > len(zipped.files)  # older versions too, not only the commit's
        assert all(reader.read(b) == git_reader.read(b) for b in blobs)
        assert reader.read("0" * 40) is None
    finally:
        git_reader.close()


def test_upgrade_from_the_snapshot_equals_upgrade_from_the_checkout(
        tmp_path: Path, source: SampleSource, snap: Path) -> None:
    a = make_project(tmp_path / "a", source.path, source.v1)
    b = make_project(tmp_path / "b", source.path, source.v1)
    assert upgrade(source, a).code == 0
    r = upgrade(snap, b)
    assert r.code == 0, r.text
    assert digest(b, portable=True) == digest(a, portable=True)


def test_a_killed_run_resumes_from_the_same_commit_uploaded_again(
        tmp_path: Path, source: SampleSource, snap: Path) -> None:
    """A rerun after a dropped connection may bring the same commit's snapshot under another
    name (the controller's cache was rebuilt): the session resumes from it."""
    a = make_project(tmp_path / "a", source.path, source.v1)
    b = make_project(tmp_path / "b", source.path, source.v1)
    assert upgrade(source, a).code == 0
    killed = upgrade(snap, b, env={"PRAXIS_UPGRADE_KILL": "phase-start:validate"})
    assert killed.code != 0
    (tmp_path / "again").mkdir()
    again = tmp_path / "again" / snap.name.replace("-s2-", "-s2-0")
    again.write_bytes(snap.read_bytes())
    r = upgrade(again, b)
    assert r.code == 0, r.text
    assert "resuming upgrade session" in r.text
    assert digest(b, portable=True) == digest(a, portable=True)


def test_an_altered_file_is_refused(tmp_path: Path, snap: Path) -> None:
    meta = json.loads(zipfile.ZipFile(snap).read(META))
    path = next(p for p in meta["files"] if p.startswith("universal/standards/"))
    bad = _rewrite(snap, tmp_path / snap.name, {path: b"# tampered\n"})
    with pytest.raises(PreflightError, match="does not match its blob id"):
        open_source(str(bad))


def test_a_missing_file_or_a_link_is_refused(tmp_path: Path, snap: Path) -> None:
    meta = json.loads(zipfile.ZipFile(snap).read(META))
    path = next(p for p in meta["files"] if p.startswith("mcp_server/"))
    (tmp_path / "gone").mkdir()
    gone = _rewrite(snap, tmp_path / "gone" / snap.name, {path: None})
    with pytest.raises(PreflightError, match="missing or not a regular file"):
        open_source(str(gone))
    (tmp_path / "link").mkdir()
    link = _rewrite(snap, tmp_path / "link" / snap.name, {}, symlink=path)
    with pytest.raises(PreflightError, match="missing or not a regular file"):
        open_source(str(link))


def test_a_truncated_or_foreign_snapshot_is_refused(tmp_path: Path, snap: Path) -> None:
    cut = tmp_path / snap.name
    cut.write_bytes(snap.read_bytes()[: snap.stat().st_size // 2])
    with pytest.raises(UsageError, match="unreadable"):
        open_source(str(cut))
    meta = json.loads(zipfile.ZipFile(snap).read(META))
    (tmp_path / "old").mkdir()
    old = _rewrite(snap, tmp_path / "old" / snap.name,
                   {META: json.dumps({**meta, "schema": 1}).encode()})
    with pytest.raises(UsageError, match="schema 1"):
        open_source(str(old))


def _member_offset(snap: Path, name: str) -> int:
    """Where ``name``'s compressed bytes start in the zip."""
    with zipfile.ZipFile(snap) as zf:
        info = zf.getinfo(name)
    raw = snap.read_bytes()
    h = info.header_offset
    name_len = int.from_bytes(raw[h + 26:h + 28], "little")
    extra_len = int.from_bytes(raw[h + 28:h + 30], "little")
    return h + 30 + name_len + extra_len


@pytest.mark.parametrize("which", ["installed file", "historical version"])
def test_damaged_bytes_in_a_member_are_refused(tmp_path: Path, snap: Path, which: str) -> None:
    with zipfile.ZipFile(snap) as zf:
        meta = json.loads(zf.read(META))
        if which == "installed file":
            name = max((p for p in meta["files"] if p.startswith("universal/")),
                       key=lambda p: zf.getinfo(p).compress_size)
        else:
            name = max((i.filename for i in zf.infolist() if i.filename.startswith(BLOBS)),
                       key=lambda n: zf.getinfo(n).compress_size)
        size = zf.getinfo(name).compress_size
    raw = bytearray(snap.read_bytes())
    at = _member_offset(snap, name) + size // 2
    raw[at] ^= 0xFF
    bad = tmp_path / snap.name
    bad.write_bytes(bytes(raw))
    with pytest.raises(PreflightError, match="corrupted") as err:
        src = open_source(str(bad))
        src.blob_reader().read(name.split("/")[-1])
    assert f"remove {bad}" in err.value.render()


def test_a_damaged_historical_version_is_refused(tmp_path: Path, snap: Path) -> None:
    with zipfile.ZipFile(snap) as zf:
        blob = next(i.filename for i in zf.infolist() if i.filename.startswith(BLOBS))
    bad = _rewrite(snap, tmp_path / snap.name, {blob: b"not that version\n"})
    src = open_source(str(bad))
    with pytest.raises(PreflightError, match="does not match its blob id"):
        src.blob_reader().read(blob.split("/")[-1])


def test_a_path_escaping_the_install_is_refused(tmp_path: Path, snap: Path) -> None:
    with zipfile.ZipFile(snap) as zf:
        meta = json.loads(zf.read(META))
    evil = "universal/standards/../../../../escaped.md"
    meta["files"][evil] = {"blob": "0" * 40, "mode": 420}
    bad = _rewrite(snap, tmp_path / snap.name, {META: json.dumps(meta).encode()})
    with pytest.raises(UsageError, match="escapes the snapshot"):
        open_source(str(bad))
    assert not (tmp_path / "escaped.md").exists()


def test_the_controller_refuses_a_work_dir_it_does_not_own_privately(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The zipapp and snapshots cached there run on every host: a dir others can write is
    refused, never used."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    work = controller_dir()
    assert work.parent == tmp_path and stat.S_IMODE(work.stat().st_mode) == 0o700
    work.chmod(0o777)
    with pytest.raises(UsageError, match="not a private directory"):
        controller_dir()
