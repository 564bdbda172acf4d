"""Source snapshots (the zip a fleet host reads in place): equal to the checkout, refused when
altered, never unpacked."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import pytest
from conftest import digest, upgrade

from upgrade_tasks.errors import PreflightError, UsageError
from upgrade_tasks.history import BlobReader, blob_reader, history_of, load_history
from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import SampleSource
from upgrade_tasks.snapshot import BLOBS, META, make_snapshot
from upgrade_tasks.source import open_source


@pytest.fixture
def snap(tmp_path: Path, source: SampleSource) -> Path:
    return make_snapshot(open_source(str(source.path)), tmp_path / "out")


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
    hist, git_hist = history_of(zipped), load_history(source.path, source.v2)
    assert hist.changes == git_hist.changes and hist.versions == git_hist.versions
    reader, git_reader = blob_reader(zipped), BlobReader(source.path)
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
    before = sorted(p.name for p in snap.parent.iterdir())
    assert upgrade(source, a).code == 0
    r = upgrade(snap, b)
    assert r.code == 0, r.text
    assert digest(b, portable=True) == digest(a, portable=True)
    # read in place: nothing was unpacked beside the zip
    assert sorted(p.name for p in snap.parent.iterdir()) == before


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


def test_blob_names_cannot_escape(snap: Path) -> None:
    zipped = open_source(str(snap))
    reader = blob_reader(zipped)
    assert reader.read("../" + META) is None
    with pytest.raises(UsageError, match="escapes"):
        zipped.archive.read(f"{BLOBS}/../../etc/passwd")
