"""Source snapshots: a source commit packed for hosts that have no git and no network.

The controller packs, from its git checkout, one zip file: every file of the
commit (``git archive --format=zip``), ``praxis-source.json`` (commit, branch,
blob id and mode of every installed file, the first-parent history of the mapped
areas, the commit's ancestors and descendants) and ``.praxis-blobs/<id>`` holding
every historical version of the mapped files (merge bases, recognition of
copy-made installs). A host reads the zip in place, without unpacking it:
:func:`upgrade_tasks.source.open_source` opens it like a checkout, verifying every
file it installs against its blob id, and :class:`upgrade_tasks.history.BlobReader`
reads the historical versions from it. Nothing there runs git (``git merge-file``
is used when the host has git; without it a conflict keeps the user's file and
writes the new version beside it). Reading in place spares every host the ~100 file
and directory creations an unpacked copy costs, on every rollout.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import PreflightError, UsageError
from .fsutil import sha256_file
from .gitutil import git
from .history import BlobReader, git_blob_id, load_history
from .source import Source

META = "praxis-source.json"
BLOBS = ".praxis-blobs"
SCHEMA = 2  # 1: an unpacked tar.gz; 2: a zip read in place


def make_snapshot(source: Source, out_dir: Path) -> Path:
    """Pack ``source`` (a git checkout) into ``out_dir/source-<commit>-s<schema>-<sha12>.zip``
    (reused when present). The name carries the format and the content hash, so a host that
    holds a file of that name holds these bytes, and a new format never meets an old file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"source-{source.commit}-s{SCHEMA}-"
    for old in sorted(out_dir.glob(prefix + "*.zip")):
        return old
    repo = source.root
    hist = load_history(repo, source.commit)
    ancestors = git(repo, "rev-list", source.commit).split()
    descendants = git(repo, "rev-list", "--all", "--ancestry-path",
                      f"{source.commit}..").split()
    meta: dict[str, Any] = {
        "schema": SCHEMA,
        "commit": source.commit,
        "branch": source.branch,
        "spec": source.spec,
        "files": {f.src: {"blob": f.blob, "mode": f.mode} for f in source.files.values()},
        "history": {
            "changes": [[c, ch] for c, ch in hist.changes],
            "versions": {p: sorted(v) for p, v in hist.versions.items()},
        },
        "ancestors": ancestors,
        "descendants": descendants,
    }
    tmp = out_dir / f"{prefix}.tmp-{os.getpid()}"
    reader = BlobReader(repo)
    try:
        git(repo, "archive", "--format=zip", "-o", str(tmp.absolute()), source.commit)
        with zipfile.ZipFile(tmp, "a", zipfile.ZIP_DEFLATED) as out:
            out.writestr(META, json.dumps(meta, sort_keys=True))
            for blob in sorted({b for v in hist.versions.values() for b in v}):
                data = reader.read(blob)
                if data is not None:
                    out.writestr(f"{BLOBS}/{blob}", data)
        dest = out_dir / f"{prefix}{sha256_file(tmp)[:12]}.zip"
        os.replace(tmp, dest)
    finally:
        reader.close()
        if tmp.exists():
            tmp.unlink()
    return dest


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
