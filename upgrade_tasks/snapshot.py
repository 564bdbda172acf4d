"""Source snapshots: a source commit packed for hosts that have no git and no network.

The controller packs, from its git checkout: every file of the commit (``git
archive``), ``praxis-source.json`` (commit, branch, blob id and mode of every
installed file, the first-parent history of the mapped areas, the commit's
ancestors and descendants) and ``.praxis-blobs/<id>`` holding every historical
version of the mapped files (merge bases, recognition of copy-made installs).
On the host, :func:`upgrade_tasks.source.open_source` opens the unpacked
directory like a checkout, verifying every file against its blob id; nothing
there runs git (``git merge-file`` is used when the host has git; without it a
conflict keeps the user's file and writes the new version beside it).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import PreflightError, UsageError
from .gitutil import git
from .history import BlobReader, git_blob_id, load_history
from .source import Source

META = "praxis-source.json"
BLOBS = ".praxis-blobs"
SCHEMA = 1


def snapshot_name(commit: str) -> str:
    return f"source-{commit}.tar.gz"


def make_snapshot(source: Source, out_dir: Path) -> Path:
    """Pack ``source`` (a git checkout) into ``out_dir/source-<commit>.tar.gz``; reused if present."""
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / snapshot_name(source.commit)
    if dest.exists():
        return dest
    repo = source.root
    archive = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", source.commit],
                             capture_output=True, check=True).stdout
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
        with tarfile.open(tmp, "w:gz") as out:
            with tarfile.open(fileobj=io.BytesIO(archive)) as inp:
                for m in inp.getmembers():
                    f = inp.extractfile(m) if m.isfile() else None
                    out.addfile(m, f)
            _add(out, META, json.dumps(meta, sort_keys=True).encode())
            for blob in sorted({b for v in hist.versions.values() for b in v}):
                data = reader.read(blob)
                if data is not None:
                    _add(out, f"{BLOBS}/{blob}", data)
        os.replace(tmp, dest)
    finally:
        reader.close()
        if tmp.exists():
            tmp.unlink()
    return dest


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


def unpack(archive: Path, dest: Path) -> Path:
    """Extract a snapshot safely (regular files and dirs only, no absolute or ``..`` names)."""
    if (dest / META).exists():
        return dest
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tf:
        for m in tf.getmembers():
            p = PurePosixPath(m.name)
            if p.is_absolute() or ".." in p.parts:
                raise UsageError(f"snapshot entry {m.name!r} escapes the snapshot",
                                 "absolute and '..' names are refused", "rebuild the snapshot")
            target = tmp / m.name
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif m.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tf.extractfile(m)
                assert src is not None
                target.write_bytes(src.read())
                os.chmod(target, 0o755 if m.mode & 0o111 else 0o644)
            # links and devices are never extracted
    os.replace(tmp, dest)
    return dest


def is_snapshot(root: Path) -> bool:
    return (root / META).is_file()


def load_meta(root: Path) -> dict[str, Any]:
    try:
        meta: dict[str, Any] = json.loads((root / META).read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"source snapshot {root} is unreadable", str(exc),
                         "upload it again (rerun the command)") from exc
    if meta.get("schema") != SCHEMA:
        raise UsageError(f"source snapshot {root} has schema {meta.get('schema')}",
                         f"this upgrader reads schema {SCHEMA}", "use matching upgrader versions")
    return meta


def verify_file(root: Path, path: str, blob: str) -> bytes:
    data = (root / path).read_bytes()
    if git_blob_id(data) != blob:
        raise PreflightError(f"source snapshot file {path} does not match its blob id",
                             "the snapshot is corrupted or was altered", "upload it again")
    return data
