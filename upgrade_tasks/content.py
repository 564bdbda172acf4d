"""Phase 2 (content): apply the plan's file actions to standards, workflows, scripts, the
offered ``config.json.praxis-new`` and the project's ``.gitignore`` block.

Every action is idempotent and checks what is on disk before acting, so a run
killed half-way resumes by simply running the phase again:

* ``add``/``update`` write the new content only if the file still holds what
  the plan saw (or is already new); anything else is a change made under our
  feet, which is kept, with the new version written beside it.
* ``remove`` unlinks only a file that still equals what we installed.
* ``conflict`` follows the plan's resolution: ``merged`` writes the clean
  three-way merge; ``merge-conflict`` keeps the user's file and writes
  ``NAME.praxis-merge`` (markers) and ``NAME.praxis-new``; ``keep`` writes
  ``NAME.praxis-new``; ``theirs`` takes upstream's; ``mine`` does nothing.

Writes are temp file + fsync + rename (never through an existing inode), and
never through a symlink. ``specs/``, ``workspace/``, ``standards/development/``
and ``config.json`` are never written: :func:`upgrade_tasks.layout.is_protected`
is checked again here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import faults, gitignore
from .errors import PhaseError
from .fsutil import (
    atomic_write_bytes,
    batched_dir_syncs,
    durable_unlink,
    file_sha_or_none,
    fsync_dir,
    parallel_map,
    read_regular,
    remove_empty_parents,
    sha256_bytes,
)
from .layout import PRAXIS_DIR, Install, SymlinkInPath, is_protected
from .merge import merge3
from .plan import OFFERED_AREAS, Action, FileAction, Plan, Resolution, attention_items
from .runstate import Run
from .server_process import stop_for_upgrade
from .source import Source


@dataclass
class ContentResult:
    """What phase 2 did, path by path, for the checkpoint and the report."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    conflicts: list[dict[str, str]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    not_ignored: list[str] = field(default_factory=list)
    already_done: int = 0

    def merge(self, other: ContentResult) -> None:
        self.added += other.added
        self.updated += other.updated
        self.removed += other.removed
        self.conflicts += other.conflicts
        self.kept += other.kept
        self.not_ignored += other.not_ignored
        self.already_done += other.already_done

    def summary(self) -> str:
        merged = sum(1 for c in self.conflicts if c["resolution"] == "merged")
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{len(self.conflicts)} conflicts ({merged} merged cleanly), {len(self.kept)} kept"
        )


def _write(install: Install, rel: str, data: bytes, mode: int) -> None:
    _write_check(install, rel)
    atomic_write_bytes(install.path(rel), data, mode=mode)


def _write_check(install: Install, rel: str) -> None:
    if is_protected(rel):  # defence in depth: the planner never plans these
        raise PhaseError(
            f"refusing to write user-owned path {rel}",
            "specs/, workspace/, standards/development/ and config.json are never written",
            "report this as a bug; nothing else was changed by this step",
        )
    try:
        install.check_no_symlink(rel)
    except SymlinkInPath as exc:
        raise PhaseError(f"refusing to write through the symlink {exc.path}",
                         "it appeared after the plan was made",
                         "remove the link; the upgrade was rolled back") from None


def _install_file(install: Install, source: Source, src_target: str, rel: str, mode: int) -> None:
    """Copy a source file to ``rel`` (streamed, verified against the planned checksum)."""
    _write_check(install, rel)
    source.files[src_target].install_to(install.path(rel), mode)


def _keep_beside(install: Install, source: Source, a: FileAction, res: ContentResult,
                 note: str) -> None:
    side = a.new_side
    if file_sha_or_none(install.path(side)) != a.new_sha:
        _install_file(install, source, a.target, side, a.mode)
    res.conflicts.append({"path": a.target, "resolution": "keep", "new_version": side,
                          "note": note,
                          "compare": f"diff -u {PRAXIS_DIR}/{a.target} {PRAXIS_DIR}/{side}"})


def merged_content(a: FileAction, install: Install, source: Source) -> bytes:
    """Recompute the merge the plan decided on (same inputs, same bytes)."""
    reader = source.blob_reader()
    try:
        base = reader.read(a.base_blob or "")
    finally:
        reader.close()
    if base is None:
        raise PhaseError(f"the base version {a.base_blob} of {a.target} is gone from the source",
                         "the plan merged against it", "rerun `invoke upgrade`")
    merged, _clean = merge3(install.path(a.target).read_bytes(), base,
                            source.files[a.target].read())
    return merged


def apply_action(install: Install, source: Source, a: FileAction, res: ContentResult) -> None:
    """Carry out one planned action, idempotently: each branch first checks what is on disk, so a rerun
    after a crash does the rest and nothing twice."""
    path = install.path(a.path)
    cur = file_sha_or_none(path)
    if a.area == "gitignore":
        try:
            now = read_regular(path)
        except FileNotFoundError:
            now = b""
        want = gitignore.with_block(now)
        if cur != sha256_bytes(want):
            atomic_write_bytes(path, want, mode=0o644)
        (res.added if a.action == Action.ADD else res.updated).append(a.target)
        res.not_ignored = gitignore.not_ignored(install.project, gitignore.probe_paths())
        return
    if a.action == Action.FLAG:
        if cur is None:
            _write(install, a.target, b"", 0o644)
        res.added.append(a.target)
        return
    if a.action in (Action.ADD, Action.UPDATE):
        if cur == a.new_sha:
            res.already_done += 1
            (res.added if a.action == Action.ADD else res.updated).append(a.path)
            return
        if cur != a.old_sha:
            if a.area in OFFERED_AREAS:  # an offer is written once, never over yours
                res.kept.append(a.path)
                return
            # changed since the plan was made: keep it, write the new version beside it
            _keep_beside(install, source, a, res, "changed while the upgrade ran")
            return
        _install_file(install, source, a.target, a.path, a.mode)
        (res.added if a.action == Action.ADD else res.updated).append(a.path)
    elif a.action == Action.REMOVE:
        if cur is None:
            res.already_done += 1
            res.removed.append(a.target)
            return
        if cur != a.old_sha:
            res.kept.append(a.target)
            return
        durable_unlink(path)
        remove_empty_parents(path, install.root)
        res.removed.append(a.target)
    elif a.action == Action.CONFLICT:
        r = a.resolution
        if r == Resolution.THEIRS:
            if cur != a.new_sha:
                _install_file(install, source, a.target, a.target, a.mode)
            res.conflicts.append({"path": a.target, "resolution": "theirs",
                                  "note": "upstream version installed; yours is in the backup"})
        elif r == Resolution.MERGED:
            if cur != a.merged_sha:
                if cur != a.old_sha:
                    _keep_beside(install, source, a, res, "changed while the upgrade ran")
                    return
                data = merged_content(a, install, source)
                if sha256_bytes(data) != a.merged_sha:
                    raise PhaseError(f"the merge of {a.target} differs from the planned one",
                                     "the inputs changed", "rerun `invoke upgrade`")
                _write(install, a.target, data, a.mode)
            res.conflicts.append({"path": a.target, "resolution": "merged",
                                  "note": "your changes and upstream's merged cleanly"})
        elif r == Resolution.MERGE_CONFLICT:
            side_m = a.merge_side
            if file_sha_or_none(install.path(side_m)) != a.merged_sha:
                if cur != a.old_sha:
                    _keep_beside(install, source, a, res, "changed while the upgrade ran")
                    return
                data = merged_content(a, install, source)
                _write(install, side_m, data, a.mode)
            side_n = a.new_side
            if file_sha_or_none(install.path(side_n)) != a.new_sha:
                _install_file(install, source, a.target, side_n, a.mode)
            res.conflicts.append({
                "path": a.target, "resolution": "merge-conflict", "merge": side_m,
                "new_version": side_n,
                "compare": f"resolve the markers in {PRAXIS_DIR}/{side_m}, then "
                           f"mv {PRAXIS_DIR}/{side_m} {PRAXIS_DIR}/{a.target}"})
        elif r == Resolution.MINE:
            res.conflicts.append({"path": a.target, "resolution": "mine",
                                  "note": "kept as is (your decision); upstream's not written"})
        else:
            _keep_beside(install, source, a, res, a.note)
    elif a.action in (Action.ORPHAN, Action.USER_DELETED, Action.USER_CHANGED):
        res.kept.append(a.target)


def run_content(install: Install, source: Source, plan: Plan) -> ContentResult:
    """Apply the plan: removals first, one by one and deepest first (so a file that becomes a
    directory upstream, or a directory that becomes a file, is out of the way), then every
    other action on several threads: each writes only its own paths. Results in plan order."""
    res = ContentResult()

    def one(a: FileAction) -> ContentResult:
        r = ContentResult()
        apply_action(install, source, a, r)
        faults.point("content:file")
        return r

    todo = [a for a in plan.actions if a.action != Action.UNCHANGED]
    removals = sorted((a for a in todo if a.action == Action.REMOVE), key=lambda a: a.target,
                      reverse=True)
    with batched_dir_syncs():  # the phase's checkpoint is written after the block
        for a in removals:
            res.merge(one(a))
        for r in parallel_map(one, [a for a in todo if a.action != Action.REMOVE]):
            res.merge(r)
    return res


def verify_content(install: Install, plan: Plan) -> list[str]:
    """Paths whose content is not what the content phase leaves (empty = all good)."""
    bad = []
    for a in plan.actions:
        if a.area == "gitignore":
            continue  # recomputed from the file at apply time
        for rel, sha in a.expected_after().items():
            cur = file_sha_or_none(install.path(rel))
            if cur == sha:
                continue
            if a.action in (Action.ADD, Action.UPDATE, Action.CONFLICT) and file_sha_or_none(
                install.path(a.new_side)
            ) == a.new_sha:
                continue  # met a concurrent change: kept, new version written beside it
            if a.action == Action.REMOVE and cur is not None and cur != a.old_sha:
                continue  # changed under our feet: kept
            bad.append(rel)
    return bad


def migrate(run: Run) -> None:
    """An install made before the rename moves to .praxis-os: one rename, the first change the
    upgrade makes (the backup, made before it, moves with it). Resumable: after a crash
    between the rename and its record, the install is found at .praxis-os."""
    s, _src, plan = run.need()
    if not plan.migrate_from or s.has_step("install:migrated"):
        return
    old = Install(run.install.project, plan.migrate_from)
    new = old.renamed()
    if old.root.is_dir() and not new.root.exists():
        os.rename(old.root, new.root)
        fsync_dir(new.project)
        faults.point("install:moved")
    run.relocate(new)
    s.step("install:migrated")


def step(run: Run) -> str:
    """Phase 2: stop the old server (and its index watcher) before touching content it reads,
    move a pre-rename install to .praxis-os, apply the plan, and check every path is as
    planned."""
    s, src, plan = run.need()
    # (a server of a pre-rename install runs from .agent-os: it is found there, before the move)
    stop_for_upgrade(run.install, s, plan.server.must_stop or bool(plan.migrate_from),
                     run.opts.no_restart)
    migrate(run)
    res = run_content(run.install, src, plan)
    s.artifacts(2).update({"added": res.added, "updated": res.updated, "removed": res.removed,
                           "conflicts": res.conflicts, "kept": res.kept,
                           "attention": attention_items(plan), "decisions": plan.decisions,
                           "gitignore_not_ignored": res.not_ignored})
    bad = verify_content(run.install, plan)
    if bad:
        raise PhaseError(
            f"{len(bad)} file(s) are not as planned after the content phase",
            "first: " + ", ".join(bad[:5]),
            "this needs investigation; the upgrade was rolled back",
        )
    return res.summary()


def recheck(run: Run) -> bool:
    """Is phase 2's result still on disk? (A resume asks before going on.)"""
    _s, _src, plan = run.need()
    return not verify_content(run.install, plan)
