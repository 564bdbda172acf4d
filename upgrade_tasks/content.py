"""Phase 2 (content): apply the plan's file actions to standards, workflows and scripts.

Every action is idempotent and checks what is on disk before acting, so a run
killed half-way resumes by simply running the phase again:

* ``add``/``update`` write the new content only if the file still holds what
  the plan saw (or is already new); anything else is a change made under our
  feet, which is kept and treated as a conflict.
* ``remove`` unlinks only a file that still equals what we installed.
* ``conflict`` keeps the user's file and writes ``NAME.praxis-new`` beside it
  (``--on-conflict keep``) or takes the upstream version (``theirs``; the
  user's file is in the backup).

Writes are temp file + fsync + rename (never through an existing inode).
``specs/``, ``workspace/``, ``standards/development/`` and ``config.json`` are
never written: :func:`upgrade_tasks.layout.is_protected` is checked again here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from . import faults
from .errors import PhaseError
from .fsutil import atomic_write_bytes, durable_unlink, file_sha_or_none, remove_empty_parents
from .layout import Install, is_protected
from .plan import NEW_SUFFIX, WRITES, FileAction, Plan
from .source import Source

WRITES_ACTIONS = WRITES


@dataclass
class ContentResult:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    conflicts: list[dict[str, str]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    already_done: int = 0

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{len(self.conflicts)} conflicts, {len(self.kept)} kept"
        )


def _write(install: Install, rel: str, data: bytes, mode: int) -> None:
    if is_protected(rel):  # defence in depth: the planner never plans these
        raise PhaseError(
            f"refusing to write user-owned path {rel}",
            "specs/, workspace/, standards/development/ and config.json are never written",
            "report this as a bug; nothing else was changed by this step",
        )
    atomic_write_bytes(install.path(rel), data, mode=mode)


def apply_action(install: Install, source: Source, a: FileAction, res: ContentResult) -> None:
    path = install.path(a.target)
    cur = file_sha_or_none(path)
    if a.action in ("add", "update"):
        if cur == a.new_sha:
            res.already_done += 1
            (res.added if a.action == "add" else res.updated).append(a.target)
            return
        if cur != a.old_sha:
            # changed since the plan was made: keep it, write the new version beside it
            a = FileAction(a.target, "conflict", a.area, cur, a.new_sha, a.base_sha, "keep", a.mode)
            apply_action(install, source, a, res)
            return
        _write(install, a.target, source.files[a.target].read(), a.mode)
        (res.added if a.action == "add" else res.updated).append(a.target)
    elif a.action == "remove":
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
    elif a.action == "conflict":
        if a.resolution == "theirs":
            if cur != a.new_sha:
                _write(install, a.target, source.files[a.target].read(), a.mode)
            res.conflicts.append({"path": a.target, "resolution": "theirs",
                                  "note": "upstream version installed; yours is in the backup"})
        else:
            side = a.target + NEW_SUFFIX
            if file_sha_or_none(install.path(side)) != a.new_sha:
                _write(install, side, source.files[a.target].read(), a.mode)
            res.conflicts.append({"path": a.target, "resolution": "keep",
                                  "new_version": side,
                                  "compare": f"diff -u {Path('.praxis-os') / a.target} "
                                             f"{Path('.praxis-os') / side}"})
    elif a.action in ("orphan", "user-deleted", "user-changed"):
        res.kept.append(a.target)


def run_content(install: Install, source: Source, plan: Plan) -> ContentResult:
    res = ContentResult()
    for a in plan.actions:
        if a.action == "unchanged":
            continue
        apply_action(install, source, a, res)
        faults.point("content:file")
    return res


def verify_content(install: Install, plan: Plan) -> list[str]:
    """Paths whose content is not what the content phase leaves (empty = all good)."""
    bad = []
    for a in plan.actions:
        for rel, sha in a.expected_after().items():
            cur = file_sha_or_none(install.path(rel))
            if cur == sha:
                continue
            if a.action in ("add", "update") and file_sha_or_none(
                install.path(rel + NEW_SUFFIX)
            ) == sha:
                continue  # met a concurrent change: kept, new version written beside it
            if a.action == "remove" and cur is not None and cur != a.old_sha:
                continue  # changed under our feet: kept
            bad.append(rel)
    return bad
