"""The snapshot backend of :class:`~upgrade_tasks.source.Source`: a source commit packed
for hosts that have no git and no network.

The controller packs (:mod:`upgrade_tasks.snapshot_pack`) one zip file from its
git checkout: every file of the commit (``git archive --format=zip``),
``praxis-source.json`` (commit, branch, blob id and mode of every installed
file, the first-parent history of the mapped areas, the commit's ancestors and
descendants) and ``.praxis-blobs/<id>`` holding every historical version of the
mapped files (merge bases, recognition of copy-made installs). A host reads the
zip in place, without unpacking it: every file it installs is verified against
its blob id, and the historical versions are read from it. Nothing here runs
git (``git merge-file`` is used when the host has git; without it a conflict
keeps the user's file and writes the new version beside it). Reading in place
spares every host the ~100 file and directory creations an unpacked copy
costs, on every rollout.
"""

from __future__ import annotations

import hashlib
import json
import stat
import threading
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import PreflightError, UsageError
from .gitutil import git_blob_id
from .history import History
from .layout import map_source_path
from .source import BlobReader, Relation, Source, SourceFile

META = "praxis-source.json"
BLOBS = ".praxis-blobs"
SCHEMA = 2  # 1: an unpacked tar.gz; 2: a zip read in place


def is_snapshot(path: Path) -> bool:
    """A snapshot is a regular zip file named like one (a directory is a checkout)."""
    return path.name.startswith("source-") and path.suffix == ".zip" and path.is_file()


#: The controller uploads a snapshot only when the host has no file of that name.
_AGAIN = "remove {path} on the host and rerun the command (it is uploaded again)"


class Snapshot:
    """A snapshot zip opened for reading; members are read by name, never extracted. The files
    a source installs are held in memory once read (a prAxIs OS source's are a few MB)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # the content phase reads merge bases on several threads
        try:
            self.zf = zipfile.ZipFile(path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise UsageError(f"source snapshot {path} is unreadable", str(exc),
                             _AGAIN.format(path=path)) from exc

    def close(self) -> None:
        self.zf.close()

    def read(self, name: str) -> bytes | None:
        """A regular file's bytes (``None`` when absent; links and directories are refused)."""
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts:
            raise UsageError(f"snapshot entry {name!r} escapes the snapshot",
                             "absolute and '..' names are refused", "rebuild the snapshot")
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            return None
        kind = stat.S_IFMT(info.external_attr >> 16)
        if info.is_dir() or kind not in (0, stat.S_IFREG):
            return None
        try:
            with self._lock:
                return self.zf.read(info)
        except (OSError, zipfile.BadZipFile, ValueError, zlib.error, EOFError,
                NotImplementedError, RuntimeError) as exc:  # CRC, zlib, method, encryption
            raise PreflightError(f"source snapshot {self.path} is corrupted at {name}",
                                 f"{type(exc).__name__}: {exc}",
                                 _AGAIN.format(path=self.path)) from exc

    def meta(self) -> dict[str, Any]:
        raw = self.read(META)
        try:
            meta: dict[str, Any] = json.loads(raw or b"")
        except ValueError as exc:
            raise UsageError(f"source snapshot {self.path} has no readable {META}", str(exc),
                             _AGAIN.format(path=self.path)) from exc
        if meta.get("schema") != SCHEMA:
            raise UsageError(f"source snapshot {self.path} has schema {meta.get('schema')}",
                             f"this upgrader reads schema {SCHEMA}",
                             "use matching upgrader versions")
        return meta

    def blob(self, blob: str) -> bytes | None:
        """A historical version from ``.praxis-blobs/`` (``None`` when absent), verified
        against its id: merge bases feed what is installed."""
        if not blob or "/" in blob:
            return None
        data = self.read(f"{BLOBS}/{blob}")
        if data is not None:
            self.check(data, blob, f"source snapshot {self.path} holds a damaged version {blob}",
                       "its content does not match its blob id")
        return data

    def check(self, data: bytes, blob: str, what: str, why: str) -> None:
        """Refuse ``data`` (read from this zip) unless its git blob id is ``blob``."""
        if git_blob_id(data) != blob:
            raise PreflightError(what, why, _AGAIN.format(path=self.path))


def snapshot_commit(path: str) -> str | None:
    """The commit of the snapshot at ``path`` (``None`` when it is not a readable snapshot)."""
    if not is_snapshot(Path(path)):
        return None
    try:
        snap = Snapshot(Path(path))
    except UsageError:
        return None
    try:
        return str(snap.meta().get("commit"))
    except (UsageError, PreflightError):
        return None
    finally:
        snap.close()


def verify_file(snap: Snapshot, path: str, blob: str) -> bytes:
    """The bytes of ``path``, checked against the blob id the metadata gives. The ids travel in
    the same zip (over SSH, which protects it in transit): this catches a damaged or partial
    file, it is not a signature."""
    data = snap.read(path)
    if data is None:
        raise PreflightError(f"source snapshot entry {path} is missing or not a regular file",
                             "the snapshot is incomplete", _AGAIN.format(path=snap.path))
    snap.check(data, blob, f"source snapshot file {path} does not match its blob id",
               "the snapshot is damaged")
    return data


class _SnapshotBlobs:
    """Old versions from the snapshot's ``.praxis-blobs/`` (the snapshot stays open)."""

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap

    def read(self, blob: str) -> bytes | None:
        return self.snap.blob(blob)

    def close(self) -> None:
        pass


@dataclass
class SnapshotSource(Source):
    """A source read from a snapshot zip (no git needed)."""

    meta: dict[str, Any] = field(default_factory=dict, repr=False)
    archive: Snapshot | None = field(default=None, repr=False)

    def history(self) -> History:
        h = History()
        for commit, changes in self.meta["history"]["changes"]:
            h.changes.append((str(commit), {str(k): v for k, v in changes.items()}))
        h.versions = {str(p): set(v) for p, v in self.meta["history"]["versions"].items()}
        return h

    def blob_reader(self) -> BlobReader:
        assert self.archive is not None
        return _SnapshotBlobs(self.archive)

    def relation(self, installed: str) -> Relation:
        if installed == self.commit:
            return Relation.SAME
        if installed in set(self.meta.get("ancestors", [])):
            return Relation.OLDER
        if installed in set(self.meta.get("descendants", [])):
            return Relation.NEWER
        return Relation.UNKNOWN


def open_snapshot(root: Path, spec: str) -> SnapshotSource:
    """A source snapshot zip, read in place: every installed file is read once and verified
    against its blob id; no git, nothing unpacked."""
    snap = Snapshot(root)
    meta = snap.meta()
    src = SnapshotSource(root=root, commit=str(meta["commit"]), branch=str(meta.get("branch", "")),
                         spec=spec, meta=meta, archive=snap)
    for path, info in meta["files"].items():
        mapped = map_source_path(path)
        if mapped is None:
            continue
        area, target = mapped
        data = verify_file(snap, path, str(info["blob"]))
        src.files[target] = SourceFile(
            src=path, target=target, area=area, sha256=hashlib.sha256(data).hexdigest(),
            size=len(data), mode=int(info["mode"]), abspath=root / path, blob=str(info["blob"]),
            data=data)
    return src
