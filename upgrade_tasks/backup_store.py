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
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import faults, fsutil, index
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
from .layout import LEGACY_DIR, Install
from .plan import Plan
from .trust import BACKUP_ID, SESSION_ID, SHA256, Bad, ident, opt, refuse, rel_path, required, typed
from .venv import VENVS, venv_state

#: 1: entries only; 2: also ``seq`` (the order of backups) and ``writes`` (what the upgrade may
#: write, so a rollback needs no checkpoint to tell the upgrade's content from later edits).
SCHEMA_VERSION = 2
MANIFEST = "MANIFEST.json"
ENTRY_KINDS = ("file", "symlink", "absent", "dir")


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

    @property
    def writes(self) -> dict[str, str] | None:
        """Path -> sha256 the upgrade may write there (None: a schema-1 backup, which does not
        know; the rollback then asks the session's plan)."""
        w = self.manifest.get("writes")
        return dict(w) if isinstance(w, dict) else None

    @property
    def seq(self) -> int:
        return int(self.manifest.get("seq", 0))

    def file(self, rel: str) -> Path:
        return backup_file(self.path, rel)


def backup_file(backup_dir: Path, rel: str) -> Path:
    """Where a path's copy lives in a backup (project files such as ``../.gitignore``
    go under ``files/__project__/``, never outside the backup)."""
    if rel.startswith("../"):
        return backup_dir / "files" / "__project__" / rel[3:]
    return backup_dir / "files" / rel


def new_backup_id() -> str:
    """A fresh id: UTC time (readable; never used for ordering, which is ``seq``) and 6 random
    hex digits (unique within the second)."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%SZ-") + secrets.token_hex(3)


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
        fsutil.fsync(out.fileno())
    os.chmod(dst, stat.S_IMODE(st.st_mode))
    return {
        "kind": "file",
        "sha256": sha,
        "size": st.st_size,
        "mode": stat.S_IMODE(st.st_mode),
    }


def dir_modes(install: Install, paths: list[str]) -> dict[str, int]:
    """Relative directory -> mode, for every existing directory above ``paths`` inside the
    install (and the paths that are directories themselves)."""
    out: dict[str, int] = {}
    for rel in paths:
        if rel.startswith("../"):
            continue
        parts = rel.split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d in out:
                continue
            st = lstat_or_none(install.path(d))
            if st is not None and stat.S_ISDIR(st.st_mode):
                out[d] = stat.S_IMODE(st.st_mode)
    return out


def ensure_backups_dir(backups: Path) -> None:
    """The backups directory, with a ``.gitignore`` that keeps every backup out of git."""
    backups.mkdir(parents=True, exist_ok=True)
    gi = backups / ".gitignore"
    if not gi.exists():
        atomic_write_bytes(gi, b"# prAxIs OS upgrade backups: never commit them\n*\n")


def create_backup(install: Install, plan: Plan, session: Session, backup_id: str,
                  writes: dict[str, str]) -> Backup:
    """Copy every path the upgrade may touch into a new backup, durably, and verify it."""
    backups = install.backups_dir
    ensure_backups_dir(backups)
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
    tree_dirs = []
    for t in trees:
        top = install.path(t)
        for root, dirs, names in os.walk(top):
            dirs.sort()
            tree_dirs.append(Path(root).relative_to(install.root).as_posix())
            for name in sorted(names) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                todo.append((Path(root) / name).relative_to(install.root).as_posix())

    def copy_one(rel: str) -> dict[str, Any]:
        entry = _entry_for(install.path(rel), backup_file(partial, rel))
        faults.point("backup:file")
        return entry

    entries: dict[str, dict[str, Any]] = dict(zip(todo, parallel_map(copy_one, todo)))
    modes = dir_modes(install, todo + tree_dirs)
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
        "seq": 1 + max((backup_order(install, bid)[0] for bid in _backup_dirs(install)),
                       default=0),
        "venv": venv_before,
        "backup_id": backup_id,
        "session_id": session.id,
        "created_at": now_iso(),
        "writes": writes,
        # the install was moved from this directory to .praxis-os: a rollback moves it back
        "migrated_from": plan.migrate_from,
        "source_commit_before": plan.installed_commit,
        "source_commit_after": plan.source_commit,
        "trees": trees,
        "entries": entries,
        # the mode of every directory above a backed-up path (a rollback recreates removed ones
        # with it, and puts back the rebuilt tree's): byte for byte, modes included
        "dirs": modes,
    }
    atomic_write_json(partial / MANIFEST, manifest)
    os.replace(partial, final)
    fsync_dir(backups)
    b = Backup(final, manifest)
    verify_backup(b)
    return b


#: What the rollback needs besides the tree and the largest file: the checkpoint, reports, logs.
RESERVE_MIN = 1 << 20


def reserve_size(b: Backup) -> int:
    """Bytes to hold for the rollback of ``b``: the ``mcp_server/`` tree it rebuilds beside the
    live one, the largest file it puts back (temp file + rename) and :data:`RESERVE_MIN`."""
    sizes = {rel: int(e.get("size", 0)) for rel, e in b.entries.items() if e["kind"] == "file"}
    tree = sum(n for rel, n in sizes.items() if rel.split("/", 1)[0] in b.trees)
    return tree + max(sizes.values(), default=0) + RESERVE_MIN


def load_backup(install: Install, backup_id: str) -> Backup:
    """Read and check a backup's manifest. Missing: a BackupError that says where to look;
    unreadable, or failing its check (a path that leaves the install, a bad kind): a StateError
    (exit 2), and nothing is restored from it."""
    path = install.backups_dir / ident(backup_id, BACKUP_ID, "--backup")
    mpath = path / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
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
    try:
        check_manifest(manifest, backup_id)
    except Bad as exc:
        raise refuse(mpath, exc, f"do not restore from it: move it aside (mv {path} {path}.broken) "
                     f"and restore by hand from {path}/files/ what you know to be yours") from None
    return Backup(path, manifest)


def check_manifest(m: Any, backup_id: str) -> None:
    """Check a backup manifest read back from disk (raises :class:`~upgrade_tasks.trust.Bad`):
    the rollback writes, removes and links exactly these paths, so each must be confined."""
    typed(m, dict, "manifest")
    if typed(m.get("schema_version"), int, "schema_version") > SCHEMA_VERSION:
        raise Bad(f"schema_version: {m['schema_version']} is newer than this upgrader's "
                  f"({SCHEMA_VERSION}); use the newer upgrader")
    if m.get("backup_id") != backup_id:
        raise Bad(f"backup_id: {m.get('backup_id')!r} is not the directory's name {backup_id!r}")
    opt(m.get("session_id"), ident, SESSION_ID, "session_id")
    typed(m.get("seq", 0), int, "seq")
    for tree in typed(m.get("trees", []), list, "trees"):
        if tree != "mcp_server":
            raise Bad(f"trees: {tree!r} is not a tree the upgrade replaces")
    for rel, e in typed(required(m, "entries", ""), dict, "entries").items():
        rel_path(rel, "entries", project_file=True)
        typed(e, dict, f"entries[{rel!r}]")
        if e.get("kind") not in ENTRY_KINDS:
            raise Bad(f"entries[{rel!r}].kind: {e.get('kind')!r} is not one of {ENTRY_KINDS}")
        if e["kind"] == "file":
            ident(e.get("sha256"), SHA256, f"entries[{rel!r}].sha256")
            if typed(e.get("size"), int, f"entries[{rel!r}].size") < 0 or not 0 <= typed(
                    e.get("mode"), int, f"entries[{rel!r}].mode") <= 0o7777:
                raise Bad(f"entries[{rel!r}]: bad size or mode")
        if e["kind"] == "symlink":
            typed(e.get("target"), str, f"entries[{rel!r}].target")
    for rel, mode in typed(m.get("dirs") or {}, dict, "dirs").items():
        rel_path(rel, "dirs")
        if not 0 <= typed(mode, int, f"dirs[{rel!r}]") <= 0o7777:
            raise Bad(f"dirs[{rel!r}]: {mode!r} is not a mode")
    for rel, sha in typed(m.get("writes") or {}, dict, "writes").items():
        rel_path(rel, "writes", project_file=True)
        ident(sha, SHA256, f"writes[{rel!r}]")
    if m.get("migrated_from") not in (None, LEGACY_DIR):
        raise Bad(f"migrated_from: {m.get('migrated_from')!r} is not {LEGACY_DIR!r}")
    venv = m.get("venv")
    if venv is not None:
        typed(venv, dict, "venv")
        if venv.get("kind") not in ("dir", "symlink", "absent"):
            raise Bad(f"venv.kind: {venv.get('kind')!r}")
        for key in ("target", "moved_to"):
            if venv.get(key):
                rel_path(venv[key], f"venv.{key}", under=VENVS)


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


def _backup_dirs(install: Install) -> list[str]:
    d = install.backups_dir
    if not d.is_dir():
        return []
    return [p.name for p in d.iterdir() if p.is_dir() and not p.is_symlink()
            and BACKUP_ID.fullmatch(p.name) and (p / MANIFEST).exists()]


def backup_order(install: Install, backup_id: str) -> tuple[int, str, str]:
    """The sort key of a backup: its recorded sequence number, then its UTC creation time (for
    backups made before sequence numbers), then its id. Never the local wall clock: a clock or
    ``TZ`` that goes back must not make an older backup look newer."""
    try:
        m = json.loads((install.backups_dir / backup_id / MANIFEST).read_text())
        seq, created = int(m.get("seq", 0)), str(m.get("created_at", ""))
    except (OSError, ValueError, TypeError, AttributeError):
        seq, created = 0, ""
    return seq, created, backup_id


def list_backups(install: Install) -> list[str]:
    """Completed backups (a MANIFEST.json, not .partial), oldest first (:func:`backup_order`)."""
    return sorted(_backup_dirs(install), key=lambda bid: backup_order(install, bid))


def prune_backups(install: Install, keep: int, current: str | None) -> list[str]:
    """Keep the newest ``keep`` backups; delete older ones of finished sessions only."""
    ids = list_backups(install)
    referenced = {current} if current else set()
    for s in list_sessions(install):
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
        index.prune(install, bid)  # the search index it would have switched back to
        pruned.append(bid)
    for leftover in install.backups_dir.glob("*.partial") if install.backups_dir.is_dir() else []:
        sid_refs = {s.backup_id for s in list_sessions(install) if s.status not in FINISHED}
        if leftover.name[: -len(".partial")] not in sid_refs:
            shutil.rmtree(leftover, ignore_errors=True)
    return pruned

