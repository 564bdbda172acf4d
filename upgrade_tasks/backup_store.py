"""The backup store: what a backup holds, how it is made, checked, listed and pruned.

A backup holds every path this upgrade may touch, and nothing else: the
content files the plan writes or removes (absent ones are recorded as
``absent`` so rollback removes what the upgrade added), the whole
``mcp_server/`` tree when it changes, the installed manifest and the version
record. Never the venv, never user content the upgrade won't touch.

Layout: ``.praxis-os/.backups/<id>/MANIFEST.json`` + ``files/<path>``. The
directory is built as ``<id>.partial`` and renamed when complete and fsynced;
``.backups/.gitignore`` (``*``) keeps it out of git whatever the project's
``.gitignore`` says.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import faults
from .checkpoint import FINISHED, Session, list_sessions, now_iso
from .errors import BackupError
from .fsutil import (
    atomic_write_bytes,
    atomic_write_json,
    copy_hashing,
    fsync_dir,
    lstat_or_none,
    parallel_map,
    sha256_file,
)
from .layout import Install
from .plan import Plan
from .venv import VENVS, venv_state

SCHEMA_VERSION = 1
MANIFEST = "MANIFEST.json"


@dataclass
class Backup:
    """A completed backup: its directory and its MANIFEST.json (what each path was before the upgrade)."""

    path: Path
    manifest: dict[str, Any]

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def entries(self) -> dict[str, dict[str, Any]]:
        e: dict[str, dict[str, Any]] = self.manifest["entries"]
        return e

    @property
    def venv(self) -> dict[str, str] | None:
        v = self.manifest.get("venv")
        return dict(v) if isinstance(v, dict) else None

    def venv_refs(self) -> set[str]:
        """Environments under .venvs/ this backup needs for its rollback."""
        v = self.venv or {}
        return {x for x in (v.get("target", ""), v.get("moved_to", "")) if x.startswith(VENVS)}

    @property
    def trees(self) -> list[str]:
        return list(self.manifest.get("trees", []))

    def file(self, rel: str) -> Path:
        return backup_file(self.path, rel)


def backup_file(backup_dir: Path, rel: str) -> Path:
    """Where a path's copy lives in a backup (project files such as ``../.gitignore``
    go under ``files/__project__/``, never outside the backup)."""
    if rel.startswith("../"):
        return backup_dir / "files" / "__project__" / rel[3:]
    return backup_dir / "files" / rel


def new_backup_id() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def paths_to_back_up(install: Install, plan: Plan) -> tuple[list[str], list[str]]:
    """(file paths, whole trees) that this upgrade may touch, relative to .praxis-os."""
    files = set(plan.touched_paths())
    files.add(install.installed_manifest.name)
    files.add(install.version_record.name)
    trees = ["mcp_server"] if plan.server.changed else []
    return sorted(files), trees


def estimate_size(install: Install, plan: Plan) -> int:
    """Bytes the backup of this plan will copy (the pre-flight space check adds the staging)."""
    files, trees = paths_to_back_up(install, plan)
    total = 0
    for rel in files:
        try:
            total += os.lstat(install.path(rel)).st_size
        except OSError:
            pass
    for t in trees:
        for root, _d, names in os.walk(install.path(t)):
            for n in names:
                try:
                    total += os.lstat(os.path.join(root, n)).st_size
                except OSError:
                    pass
    return total


def _entry_for(live: Path, dst: Path) -> dict[str, Any]:
    st = lstat_or_none(live)
    if st is None:
        return {"kind": "absent"}
    if stat.S_ISLNK(st.st_mode):
        return {"kind": "symlink", "target": os.readlink(live)}
    if stat.S_ISDIR(st.st_mode):  # a directory the plan replaces by a file; its files have
        return {"kind": "dir"}    # entries of their own
    if not stat.S_ISREG(st.st_mode):
        raise BackupError(
            f"cannot back up {live}",
            "it is not a regular file or symlink",
            "move it out of .praxis-os and rerun",
        )
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(live, "rb") as inp, open(dst, "wb") as out:
        sha = copy_hashing(inp, out)  # verify_backup reads the copies back afterwards
        out.flush()
        os.fsync(out.fileno())
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    return {
        "kind": "file",
        "sha256": sha,
        "size": st.st_size,
        "mode": stat.S_IMODE(st.st_mode),
    }


def create_backup(install: Install, plan: Plan, session: Session, backup_id: str) -> Backup:
    """Copy every path the upgrade may touch into a new backup, durably, and verify it."""
    backups = install.backups_dir
    backups.mkdir(parents=True, exist_ok=True)
    gi = backups / ".gitignore"
    if not gi.exists():
        atomic_write_bytes(gi, b"# prAxIs OS upgrade backups: never commit them\n*\n")
    final = backups / backup_id
    if final.exists():
        raise BackupError(
            f"backup {final} already exists",
            "backup ids are unique per run; an existing one is never reused",
            "rerun `invoke upgrade`",
        )
    partial = backups / (backup_id + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir()
    files, trees = paths_to_back_up(install, plan)
    todo = list(files)
    for t in trees:
        top = install.path(t)
        for root, dirs, names in os.walk(top):
            dirs.sort()
            for name in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                todo.append((Path(root) / name).relative_to(install.root).as_posix())

    def copy_one(rel: str) -> dict[str, Any]:
        entry = _entry_for(install.path(rel), backup_file(partial, rel))
        faults.point("backup:file")
        return entry

    entries: dict[str, dict[str, Any]] = dict(zip(todo, parallel_map(copy_one, todo)))
    for d in sorted({p.parent for p in (partial / "files").rglob("*")} | {partial / "files"}):
        if d.is_dir():
            fsync_dir(d)
    venv_before = None
    if plan.server.deps_action == "install":
        st = venv_state(install)
        venv_before = st.to_json()
        if st.kind == "dir":
            venv_before["moved_to"] = f"{VENVS}/initial-{backup_id}"
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "venv": venv_before,
        "backup_id": backup_id,
        "session_id": session.id,
        "created_at": now_iso(),
        "source_commit_before": plan.installed_commit,
        "source_commit_after": plan.source_commit,
        "trees": trees,
        "entries": entries,
    }
    atomic_write_json(partial / MANIFEST, manifest)
    os.replace(partial, final)
    fsync_dir(backups)
    b = Backup(final, manifest)
    verify_backup(b)
    return b


def load_backup(install: Install, backup_id: str) -> Backup:
    """Read a backup's manifest; a missing or unreadable one is a BackupError that says where to look."""
    path = install.backups_dir / backup_id
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(
            f"backup {backup_id} not found in {install.backups_dir}",
            "it was pruned, moved or never completed",
            "list backups with `invoke status`, then pass --backup ID",
        ) from None
    except (OSError, ValueError) as exc:
        raise BackupError(
            f"backup {backup_id} has an unreadable manifest", str(exc),
            f"inspect {path} by hand; do not delete it",
        ) from exc
    return Backup(path, manifest)


def verify_backup(b: Backup) -> None:
    """Re-hash every file of the backup against its manifest; raise on any mismatch."""
    bad = []
    for rel, e in b.entries.items():
        if e["kind"] != "file":
            continue
        p = b.file(rel)
        try:
            if p.stat().st_size != e["size"] or sha256_file(p) != e["sha256"]:
                bad.append(rel)
        except FileNotFoundError:
            bad.append(rel)
    if bad:
        raise BackupError(
            f"backup {b.id} is damaged: {len(bad)} file(s) do not match its manifest",
            "first: " + ", ".join(bad[:5]),
            f"do not roll back from it; inspect {b.path} and restore the files by hand",
        )


def venv_refs(install: Install) -> set[str]:
    """Environments under .venvs/ that some backup still needs for its rollback (never pruned)."""
    out: set[str] = set()
    for bid in list_backups(install):
        try:
            out |= load_backup(install, bid).venv_refs()
        except BackupError:
            continue
    return out


def list_backups(install: Install) -> list[str]:
    """Completed backups (a MANIFEST.json, not .partial), oldest first."""
    d = install.backups_dir
    if not d.is_dir():
        return []
    return sorted(
        p.name for p in d.iterdir() if p.is_dir() and not p.name.endswith(".partial")
        and (p / MANIFEST).exists()
    )


def prune_backups(install: Install, keep: int, current: str | None) -> list[str]:
    """Keep the newest ``keep`` backups; delete older ones of finished sessions only."""
    ids = list_backups(install)
    referenced = {current} if current else set()
    for s in list_sessions(install.state_dir):
        if s.status not in FINISHED and s.backup_id:
            referenced.add(s.backup_id)
    pruned = []
    for bid in ids[: max(0, len(ids) - keep)]:
        if bid in referenced or (install.backups_dir / bid / "kept").exists():
            continue  # in use, or holds edits a rollback saved aside
        path = install.backups_dir / bid
        trash = install.backups_dir / f".{bid}.pruning-{int(time.time())}"
        os.replace(path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        pruned.append(bid)
    for leftover in install.backups_dir.glob("*.partial") if install.backups_dir.is_dir() else []:
        sid_refs = {s.backup_id for s in list_sessions(install.state_dir) if s.status not in FINISHED}
        if leftover.name[: -len(".partial")] not in sid_refs:
            shutil.rmtree(leftover, ignore_errors=True)
    return pruned

