"""Rollback: undo exactly what a run changed, from its backup, and verify the result.

The backup manifest lists every path the run may touch, as it was before the
run (``file``, ``symlink`` or ``absent``) and the trees replaced whole
(``mcp_server``). Restoring makes each of those paths equal to the backup and
touches nothing else (``specs/``, ``workspace/``, the venv, user files are
never listed, so never touched). Every step is idempotent: a rollback killed
half-way is finished by running it again. A file changed since the upgrade began by
someone else than the upgrade is left as it is and reported; in the
``mcp_server/`` tree (restored whole) such files are first saved to
``<backup>/kept/``, and a backup with a ``kept/`` folder is never pruned.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from . import faults, fsutil, index
from .backup_store import Backup, verify_backup
from .errors import BackupError, RollbackError
from .fsutil import (
    atomic_copy,
    atomic_symlink,
    durable_unlink,
    file_sha_or_none,
    fsync_dir,
    lstat_or_none,
    remove_empty_parents,
    sha256_file,
    sweep_temp_files,
)
from .layout import Install
from .venv import link_venv


@dataclass
class RestoreResult:
    """What a restore did, for the report: paths restored and removed, trees rebuilt, later edits saved
    aside or left alone."""

    restored: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    saved_aside: list[str] = field(default_factory=list)
    left_alone: list[str] = field(default_factory=list)
    trees: list[str] = field(default_factory=list)
    #: the install was moved back to its old directory (``.agent-os``): the caller follows it
    moved_to: Install | None = None

    def summary(self) -> str:
        s = (f"{len(self.restored)} restored, {len(self.removed)} removed, "
             f"trees rebuilt: {', '.join(self.trees) or 'none'}")
        if self.saved_aside:
            s += f"; {len(self.saved_aside)} later edits saved aside in the backup's kept/"
        if self.left_alone:
            s += (f"; {len(self.left_alone)} changed since the upgrade began, left as they are: "
                  + ", ".join(self.left_alone[:5]))
        return s


def _entry_matches(path: Path, e: dict[str, object]) -> bool:
    kind = e["kind"]
    st = lstat_or_none(path)
    if st is None:
        return kind == "absent"
    if kind == "symlink":
        return stat.S_ISLNK(st.st_mode) and os.readlink(path) == e["target"]
    if kind == "dir":
        return stat.S_ISDIR(st.st_mode)
    if kind == "file":
        return (stat.S_ISREG(st.st_mode) and st.st_size == e["size"]
                and sha256_file(path) == e["sha256"])
    return False


def _save_aside(b: Backup, rel: str, live: Path, res: RestoreResult) -> None:
    dst = b.path / "kept" / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    if live.is_symlink():
        return
    shutil.copy2(live, dst)
    res.saved_aside.append(rel)


def _tree_entries(b: Backup, tree: str) -> dict[str, dict[str, object]]:
    return {k: v for k, v in b.entries.items() if k.startswith(tree + "/")}


def _live_files(top: Path, root: Path) -> set[str]:
    out: set[str] = set()
    if not top.is_dir():
        return out
    for r, dirs, files in os.walk(top):
        for n in files + [d for d in dirs if os.path.islink(os.path.join(r, d))]:
            out.add((Path(r) / n).relative_to(root).as_posix())
    return out


def _tree_ok(install: Install, b: Backup, tree: str) -> bool:
    want = _tree_entries(b, tree)
    if _live_files(install.path(tree), install.root) != set(want):
        return False
    return all(_entry_matches(install.path(rel), e) for rel, e in want.items())


def restore_tree(install: Install, b: Backup, tree: str, allowed: dict[str, str],
                 res: RestoreResult) -> None:
    """Rebuild a tree the upgrade replaced whole (mcp_server/) from the backup, beside the live one,
    then swap it in with two renames. Files changed since the upgrade began by someone else are
    first saved to the backup's kept/."""
    if _tree_ok(install, b, tree):
        return
    live = install.path(tree)
    # keep edits made after the upgrade (not ours, not the backup's)
    want = _tree_entries(b, tree)
    for rel in sorted(_live_files(live, install.root)):
        sha = file_sha_or_none(install.path(rel))
        e = want.get(rel)
        if sha is not None and (e is None or e.get("sha256") != sha) and allowed.get(rel) != sha \
                and not rel.endswith((".pyc", ".pyo")):
            _save_aside(b, rel, install.path(rel), res)
    build = install.root / f".{tree}.restore"
    if build.exists():
        shutil.rmtree(build)
    build.mkdir()
    for rel, e in sorted(want.items()):
        dst = build / rel[len(tree) + 1:]
        dst.parent.mkdir(parents=True, exist_ok=True)
        if e["kind"] == "symlink":
            os.symlink(str(e["target"]), dst)
        else:
            shutil.copyfile(b.file(rel), dst)
            os.chmod(dst, int(str(e["mode"])))
            with open(dst, "rb") as fh:
                fsutil.fsync(fh.fileno())
    for d in sorted({p.parent for p in build.rglob("*")} | {build}):
        fsync_dir(d)
    old = install.root / f".{tree}.rollback-old"
    if old.exists():
        shutil.rmtree(old)
    if live.exists() or live.is_symlink():
        os.replace(live, old)
        fsync_dir(install.root)
        faults.point("rollback:between-renames")
    os.replace(build, live)
    fsync_dir(install.root)
    shutil.rmtree(old, ignore_errors=True)
    res.trees.append(tree)


def restore_dir_modes(install: Install, b: Backup) -> None:
    """Directories recreated or rebuilt by the restore get their recorded modes back."""
    for rel, mode in sorted(b.manifest.get("dirs", {}).items()):
        st = lstat_or_none(install.path(rel))
        if st is not None and stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) != mode:
            os.chmod(install.path(rel), mode)


def restore_venv(install: Install, b: Backup, res: RestoreResult) -> None:
    """Put ``venv`` back as it was: one rename (a link switch, or the migrated dir moved back)."""
    v = b.venv
    if not v:
        return
    link = install.venv
    if v["kind"] == "symlink":
        if not link.is_symlink() or os.readlink(link) != v["target"]:
            link_venv(install, v["target"])
            res.trees.append("venv")
    elif v["kind"] == "dir":
        moved = install.root / v["moved_to"]
        if link.is_symlink() and moved.is_dir():
            os.unlink(link)
            fsync_dir(install.root)
        if not link.exists() and moved.is_dir():
            os.replace(moved, link)
            fsync_dir(install.root)
            res.trees.append("venv")
    elif v["kind"] == "absent" and link.is_symlink():
        os.unlink(link)
        fsync_dir(install.root)
        res.trees.append("venv")


def restore_backup(install: Install, b: Backup, allowed: dict[str, str]) -> RestoreResult:
    """Make every path in the backup equal to it again; verify; return what was done.

    ``allowed`` maps paths to the sha256 the upgrade wrote there: such content
    is simply replaced; any other content is saved aside first.
    """
    try:
        verify_backup(b)
    except BackupError as exc:
        raise RollbackError(
            f"rollback refused: backup {b.id} is damaged",
            exc.why,
            f"nothing was restored. Inspect {b.path} and restore the files by hand",
        ) from exc
    res = RestoreResult()
    for tree in b.trees:
        restore_tree(install, b, tree, allowed, res)
    for leftover in (install.staging_server, install.old_server):
        if leftover.exists():
            shutil.rmtree(leftover)
    tree_prefixes = tuple(t + "/" for t in b.trees)
    sweep_temp_files({install.path(rel).parent for rel in b.entries} | {install.root})
    # paths that did not exist first, deepest first, then files and links in path order: a
    # file that became a directory (or the reverse) is emptied before it is put back
    entries = sorted(b.entries.items())
    first = ("absent", "dir")
    order = ([x for x in reversed(entries) if x[1]["kind"] in first]
             + [x for x in entries if x[1]["kind"] not in first])
    for rel, e in order:
        if rel.startswith(tree_prefixes):
            continue
        live = install.path(rel)
        if _entry_matches(live, e):
            if e["kind"] == "absent":
                remove_empty_parents(live, install.root)  # dirs made for it by a killed run
            continue
        cur = file_sha_or_none(live)
        ours = rel in (install.installed_manifest.name, install.version_record.name)
        if cur is not None and allowed.get(rel) != cur and not ours:
            # neither what the backup holds nor what the upgrade wrote: someone changed it
            # since the upgrade began. Leave it as it is and report it.
            res.left_alone.append(rel)
            continue
        if e["kind"] == "file":
            atomic_copy(b.file(rel), live, mode=int(e["mode"]))
            res.restored.append(rel)
        elif e["kind"] == "symlink":
            atomic_symlink(live, str(e["target"]))
            res.restored.append(rel)
        elif e["kind"] == "dir":  # the file the upgrade put in its place goes; the
            durable_unlink(live)   # directory's own entries bring it back
            res.removed.append(rel)
        else:
            if live.is_dir() and not live.is_symlink():
                raise RollbackError(
                    f"cannot remove {live}: it is now a directory",
                    "the upgrade did not create it as a directory",
                    f"move it away by hand, then rerun `invoke rollback --backup {b.id}`",
                )
            durable_unlink(live)
            remove_empty_parents(live, install.root)
            res.removed.append(rel)
        faults.point("rollback:file")
    restore_venv(install, b, res)
    restore_dir_modes(install, b)
    if index.restore(install, b.id):
        res.trees.append("search index")
    skip = set(res.left_alone)
    origin = b.manifest.get("migrated_from")
    bad = [rel for rel, e in b.entries.items()
           if rel not in skip and not _entry_matches(install.path(rel), e)]
    bad += [t for t in b.trees if not _tree_ok(install, b, t)]
    if bad:
        raise RollbackError(
            f"rollback incomplete: {len(bad)} path(s) still differ from backup {b.id}",
            "first: " + ", ".join(bad[:5]),
            f"restore them by hand from {b.path}/files/",
        )
    if origin and install.name != origin:
        back = Install(install.project, str(origin))
        if back.root.exists():
            raise RollbackError(f"cannot move the install back to {back.root}",
                                "that directory exists again",
                                f"move it aside, then rerun `invoke rollback --backup {b.id}`")
        os.rename(install.root, back.root)
        fsync_dir(install.project)
        res.moved_to = back
        res.trees.append(f"{install.name} -> {origin}")
    return res
