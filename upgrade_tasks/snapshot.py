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
import subprocess
import threading
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import PreflightError, UsageError
from .gitutil import git
from .history import BlobReader, git_blob_id, load_history
from .source import Source

META = "praxis-source.json"
BLOBS = ".praxis-blobs"
SCHEMA = 2  # 1: an unpacked tar.gz; 2: a zip read in place


def snapshot_name(commit: str) -> str:
    return f"source-{commit}.zip"


def make_snapshot(source: Source, out_dir: Path) -> Path:
    """Pack ``source`` (a git checkout) into ``out_dir/source-<commit>.zip``; reused if present."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / snapshot_name(source.commit)
    if dest.exists():
        return dest
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
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    reader = BlobReader(repo)
    try:
        subprocess.run(["git", "-C", str(repo), "archive", "--format=zip", "-o", str(tmp),
                        source.commit], capture_output=True, check=True)
        with zipfile.ZipFile(tmp, "a", zipfile.ZIP_DEFLATED) as out:
            out.writestr(META, json.dumps(meta, sort_keys=True))
            for blob in sorted({b for v in hist.versions.values() for b in v}):
                data = reader.read(blob)
                if data is not None:
                    out.writestr(f"{BLOBS}/{blob}", data)
        os.replace(tmp, dest)
    finally:
        reader.close()
        if tmp.exists():
            tmp.unlink()
    return dest


def is_snapshot(path: Path) -> bool:
    """A snapshot is a regular zip file named like one (a directory is a checkout)."""
    return path.name.startswith("source-") and path.suffix == ".zip" and path.is_file()


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
                             "upload it again (rerun the command)") from exc

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
        except (OSError, zipfile.BadZipFile, ValueError) as exc:  # CRC or zlib errors
            raise PreflightError(f"source snapshot {self.path} is corrupted at {name}", str(exc),
                                 "upload it again (rerun the command)") from exc

    def meta(self) -> dict[str, Any]:
        raw = self.read(META)
        try:
            meta: dict[str, Any] = json.loads(raw or b"")
        except ValueError as exc:
            raise UsageError(f"source snapshot {self.path} has no readable {META}", str(exc),
                             "upload it again (rerun the command)") from exc
        if meta.get("schema") != SCHEMA:
            raise UsageError(f"source snapshot {self.path} has schema {meta.get('schema')}",
                             f"this upgrader reads schema {SCHEMA}",
                             "use matching upgrader versions")
        return meta


def verify_file(snap: Snapshot, path: str, blob: str) -> bytes:
    data = snap.read(path)
    if data is None:
        raise PreflightError(f"source snapshot entry {path} is missing or not a regular file",
                             "the snapshot is incomplete", "upload it again")
    if git_blob_id(data) != blob:
        raise PreflightError(f"source snapshot file {path} does not match its blob id",
                             "the snapshot is corrupted or was altered", "upload it again")
    return data
