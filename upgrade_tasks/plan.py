"""The read-only planner. ``--dry-run`` prints its result; the real run executes it.

State in (the install on disk, its base, the source), plan out. The *base* of a
system file is what we installed there: from the installed manifest, or, for
installs made by copying, recognised from the source's git history
(:mod:`upgrade_tasks.history`). Classification of a system file:

=======================  =============================================  ======================
local vs base vs new     meaning                                        action
=======================  =============================================  ======================
absent, not in base      new upstream                                   ``add``
absent, in base          the user deleted it                            ``user-deleted`` (kept)
local == new             already current                                ``unchanged``
local == base != new     we installed it, user never changed it         ``update``
local != base == new     only the user changed it                       ``user-changed`` (kept)
local != base, != new    both changed it (or no base)                   ``conflict``
in base, not in new:
  local == base          upstream removed a file we installed           ``remove``
  local != base          upstream removed it, the user changed it       ``orphan`` (kept)
=======================  =============================================  ======================

A conflict is resolved by ``--on-conflict``: ``merge`` (three-way with
``git merge-file``: a clean merge is applied; a conflicting one keeps the
user's file and writes ``NAME.praxis-merge`` with markers and
``NAME.praxis-new``), ``keep`` (``NAME.praxis-new``), ``theirs``, ``abort`` or
``ask``. Binary files are never merged. Files in no manifest are the user's:
never planned, never touched.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import gitignore, ideconfig, index
from .enums import StrEnum
from .fsutil import file_sha_or_none
from .history import History
from .installed import Base
from .layout import (
    GITIGNORE,
    OFFERED,
    PRAXIS_DIR,
    REBUILD_FLAG,
    Install,
    area_of_target,
    is_protected,
    unmap_target,
)
from .merge import is_binary, merge3
from .source import BlobReader, Source
from .trust import COMMIT, SHA256, Bad, ident, opt, rel_path, typed
from .venv import normalise_requirements

OFFERED_AREAS = tuple(o.area for o in OFFERED)
NEW_SUFFIX = ".praxis-new"
MERGE_SUFFIX = ".praxis-merge"


class Action(StrEnum):
    """What the content phase does with one path (see the table above)."""

    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"
    CONFLICT = "conflict"
    FLAG = "flag"  # touch a flag file (the server's index rebuild)
    UNCHANGED = "unchanged"
    USER_CHANGED = "user-changed"
    USER_DELETED = "user-deleted"
    ORPHAN = "orphan"


#: Actions that write or delete something.
WRITES = (Action.ADD, Action.UPDATE, Action.REMOVE, Action.CONFLICT, Action.FLAG)


class Resolution(StrEnum):
    """How a conflict is resolved (``--on-conflict``, or the user's answer to ``ask``)."""

    KEEP = "keep"  # yours stays; NAME.praxis-new beside it
    THEIRS = "theirs"  # upstream's replaces it; yours is in the backup
    MERGED = "merged"  # a clean three-way merge, applied
    MERGE_CONFLICT = "merge-conflict"  # yours stays; NAME.praxis-merge (markers) + .praxis-new
    MINE = "mine"  # yours stays, nothing written (your decision)


def classify(local: str | None, base: str | None, new: str | None) -> Action | None:
    """The action for one system path from three checksums (``None``: absent / unknown).

    Pure: the whole classification table in one place. ``None`` means "nothing to plan"
    (not in the new source and not on disk).
    """
    if new is not None:
        if local is None:
            return Action.USER_DELETED if base is not None else Action.ADD
        if local == new:
            return Action.UNCHANGED
        if base is not None and local == base:
            return Action.UPDATE
        if base is not None and new == base:
            return Action.USER_CHANGED
        return Action.CONFLICT
    if local is None:
        return None
    return Action.REMOVE if local == base else Action.ORPHAN


@dataclass
class FileAction:
    """One planned action on one path under .praxis-os: what is there now, what the base and the new
    source hold, and (for a conflict) how it is resolved. Serialised into the checkpoint; the
    content phase and the rollback read it back."""

    target: str
    action: Action
    area: str
    old_sha: str | None = None  # on disk now
    new_sha: str | None = None  # in the source
    base_sha: str | None = None  # what we installed (manifest or history)
    resolution: Resolution | None = None  # conflicts only
    mode: int = 0o644
    base_blob: str | None = None  # git blob id of the base, for merging
    merged_sha: str | None = None  # sha256 of the merge result (clean, or with markers)
    note: str = ""
    #: set when a NAME.praxis-new / .praxis-merge from an earlier upgrade is still there: the
    #: files written for you to act on are yours once written, so this upgrade's go beside
    #: them as NAME.praxis-new.<tag> (the source commit's short id)
    side_tag: str = ""

    @property
    def path(self) -> str:
        """Where an add/update writes: the target, or, for a file offered beside yours
        (config.json, .cursorrules) when an earlier offer is still there, a tagged name
        beside that one (the earlier offer is yours once written)."""
        if self.side_tag and self.area in OFFERED_AREAS:
            return f"{self.target}.{self.side_tag}"
        return self.target

    @property
    def new_side(self) -> str:
        return self.target + NEW_SUFFIX + (f".{self.side_tag}" if self.side_tag else "")

    @property
    def merge_side(self) -> str:
        return self.target + MERGE_SUFFIX + (f".{self.side_tag}" if self.side_tag else "")

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> FileAction:
        a = cls(**raw)
        a.action = Action(a.action)
        a.resolution = Resolution(a.resolution) if a.resolution else None
        return a

    @property
    def writes_to(self) -> list[str]:
        """Paths under .praxis-os this action may write or remove (for the backup).

        An add/update may meet a file changed under our feet and then writes
        ``NAME.praxis-new`` instead, so that path is included too.
        """
        if self.action in (Action.ADD, Action.UPDATE):
            # a system file met changed under our feet gets upstream's version beside it
            beside = self.area not in ("gitignore", "flag", *OFFERED_AREAS)
            return [self.path] + ([self.new_side] if beside else [])
        if self.action in (Action.REMOVE, Action.FLAG):
            return [self.target]
        if self.action == Action.CONFLICT:
            return list(self.expected_after()) + [self.new_side]
        return []

    def expected_after(self) -> dict[str, str | None]:
        """Path -> sha256 (``None`` = absent) once the action has run."""
        if self.action in (Action.ADD, Action.UPDATE, Action.FLAG):
            return {self.path: self.new_sha}
        if self.action == Action.REMOVE:
            return {self.target: None}
        if self.action == Action.CONFLICT:
            r = self.resolution
            if r == Resolution.THEIRS:
                return {self.target: self.new_sha}
            if r == Resolution.MERGED:
                return {self.target: self.merged_sha}
            if r == Resolution.MERGE_CONFLICT:
                return {self.new_side: self.new_sha, self.merge_side: self.merged_sha}
            if r == Resolution.MINE:
                return {}
            return {self.new_side: self.new_sha}
        return {}


@dataclass
class ServerPlan:
    """What phase 3 will do: the mcp_server/ tree replaced exactly (files added, updated, removed;
    those that differed from what was installed), whether dependencies are installed, and the
    running server to stop."""

    changed: bool
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    #: live files that are not what was installed (edited, or added by you or an editor): the
    #: tree is replaced whole, so phase 3 saves them to the backup's kept/ first
    user_modified: list[str] = field(default_factory=list)
    requirements_changed: bool = False
    deps_action: str = "none"  # "install" or "none"
    deps_reason: str = ""
    running_pid: int | None = None
    running_transport: str | None = None
    stop_reason: str = ""

    @property
    def must_stop(self) -> bool:
        """The running server must stop: its code or its environment changes."""
        return self.changed or self.deps_action == "install"


@dataclass
class Plan:
    """The whole plan of one upgrade: every content action, the server plan, notes and attention items.
    Made by the read-only planner in phase 0, saved in the checkpoint, executed by phases 2 and
    3, printed by --dry-run."""

    source_commit: str
    installed_commit: str | None
    has_base: bool
    actions: list[FileAction]
    server: ServerPlan
    notes: list[str] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)  # IDE configs etc.: report, never rewrite
    base_origin: str = "none"
    base_share: float | None = None
    policy: str = "merge"
    decisions: list[dict[str, str]] = field(default_factory=list)  # --on-conflict ask
    #: the search index (:mod:`upgrade_tasks.index`): rebuild | defer | skip | none, and why
    index_action: str = "none"
    index_reasons: list[str] = field(default_factory=list)
    index_table: str | None = None
    #: an install made before the rename (``.agent-os``): phase 2 moves it to .praxis-os first
    migrate_from: str | None = None
    #: the ``--ref`` the source was opened at ("" when none was given)
    source_ref: str = ""

    # -- views ---------------------------------------------------------------
    def by_action(self, name: Action) -> list[FileAction]:
        return [a for a in self.actions if a.action == name]

    @property
    def conflicts(self) -> list[FileAction]:
        return self.by_action(Action.CONFLICT)

    def touched_paths(self) -> list[str]:
        """Every path (relative to .praxis-os) the content phase may write or remove."""
        out: list[str] = []
        for a in self.actions:
            out.extend(a.writes_to)
        return sorted(set(out))

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = {}
        for a in self.actions:
            c[str(a.action)] = c.get(str(a.action), 0) + 1
        return c

    def area_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for a in self.actions:
            out.setdefault(a.area, {}).setdefault(str(a.action), 0)
            out[a.area][str(a.action)] += 1
        return out

    def writes(self, server_tree: Mapping[str, str]) -> dict[str, str]:
        """Path -> sha256 this upgrade may write there: what a rollback may replace without
        saving it aside (anything else found there is a later edit). ``server_tree``: the new
        ``mcp_server/`` files and their checksums, when the tree is replaced."""
        out: dict[str, str] = {}
        for a in self.actions:
            after = a.expected_after()
            for rel in a.writes_to:
                # NAME.praxis-new: written instead when the file met a change under our feet
                sha = after.get(rel) or (a.new_sha if rel == a.new_side else None)
                if sha:
                    out[rel] = sha
        if self.server.changed:
            out.update(server_tree)
        return out

    def changed_paths(self, install: Install) -> list[Path]:
        """Every file this upgrade may write or delete, as absolute paths (what ``--git-commit``
        commits: the content actions with the files written beside yours, the server files
        added, updated, removed or replaced, ``.gitignore`` and the version records)."""
        rels = list(self.touched_paths())
        rels += [*self.server.added, *self.server.updated, *self.server.removed,
                 *self.server.user_modified]  # (already "mcp_server/...")
        # the rebuild flag is a request to this machine's server, which deletes it when done:
        # committed, it would show as a deletion right after (and in every clone)
        out = [install.path(r) for r in dict.fromkeys(rels) if r != REBUILD_FLAG]
        out += [install.installed_manifest, install.version_record, install.update_log]
        return out

    @property
    def is_noop(self) -> bool:
        """Already at the target commit with nothing to write: no session, no backup."""
        return (self.installed_commit == self.source_commit
                and not any(a.action in WRITES for a in self.actions)
                and not self.server.changed and self.server.deps_action == "none")

    def to_json(self) -> dict[str, Any]:
        # a json round trip is the C-speed deep copy (dataclasses.asdict took 28 ms here)
        d = dict(self.__dict__, actions=[a.__dict__ for a in self.actions],
                 server=self.server.__dict__)
        out: dict[str, Any] = json.loads(json.dumps(d))
        return out

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Plan:
        raw = dict(raw)
        raw["actions"] = [FileAction.from_json(a) for a in raw["actions"]]
        raw["server"] = ServerPlan(**raw["server"])
        return cls(**raw)


def check_plan_json(raw: Any) -> None:
    """Check a plan read back from a checkpoint (raises :class:`~upgrade_tasks.trust.Bad`):
    every path it will write is confined to the install, every value has its type."""
    typed(raw, dict, "plan")
    for i, a in enumerate(typed(raw.get("actions"), list, "plan.actions")):
        where = f"plan.actions[{i}]"
        typed(a, dict, where)
        unknown = set(a) - {f for f in FileAction.__dataclass_fields__}
        if unknown:
            raise Bad(f"{where}: unknown fields {sorted(unknown)}")
        rel_path(a.get("target"), f"{where}.target", project_file=True)
        if a.get("action") not in {x.value for x in Action}:
            raise Bad(f"{where}.action: {a.get('action')!r} is not an action")
        if a.get("resolution") not in (None, *(x.value for x in Resolution)):
            raise Bad(f"{where}.resolution: {a.get('resolution')!r} is not a resolution")
        for key in ("old_sha", "new_sha", "base_sha", "merged_sha"):
            value = a.get(key)
            if value is not None and not (isinstance(value, str) and (
                    SHA256.fullmatch(value) or value.startswith(("symlink:", "special:")))):
                raise Bad(f"{where}.{key}: {value!r} is not a checksum")
        opt(a.get("base_blob"), typed, str, f"{where}.base_blob")
        if not re.fullmatch(r"[0-9a-f]{0,40}", typed(a.get("side_tag", ""), str, f"{where}.side_tag")):
            raise Bad(f"{where}.side_tag: {a.get('side_tag')!r} is not a commit id")
        typed(a.get("mode", 0o644), int, f"{where}.mode")
    server = typed(raw.get("server"), dict, "plan.server")
    for key in ("added", "updated", "removed", "user_modified"):
        for p in typed(server.get(key, []), list, f"plan.server.{key}"):
            rel_path(p, f"plan.server.{key}", under="mcp_server")
    opt(raw.get("installed_commit"), typed, str, "plan.installed_commit")
    typed(raw.get("source_ref", ""), str, "plan.source_ref")
    ident(raw.get("source_commit"), COMMIT, "plan.source_commit")


# -- helpers -------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def decide_merge(a: FileAction, install: Install, source: Source, reader: BlobReader | None,
                  hist: History | None) -> None:
    """Try a three-way merge for a conflict; sets ``a.resolution`` (and ``merged_sha``)."""
    local = install.path(a.target).read_bytes()
    new = source.files[a.target].raw()
    base_data = None
    if a.base_blob and reader is not None:
        base_data = reader.read(a.base_blob)
    if base_data is None and a.base_sha and reader is not None and hist is not None:
        src = unmap_target(a.target)
        for blob in sorted(hist.versions.get(src or "", ())):
            d = reader.read(blob)
            if d is not None and hashlib.sha256(d).hexdigest() == a.base_sha:
                base_data, a.base_blob = d, blob
                break
    if base_data is None:
        a.resolution, a.note = Resolution.KEEP, "no base version to merge with"
        return
    if is_binary(local, base_data, new):
        a.resolution, a.note = Resolution.KEEP, "binary file: never merged"
        return
    if shutil.which("git") is None:
        a.resolution, a.note = Resolution.KEEP, "git is not installed on this host: not merged"
        return
    merged, clean = merge3(local, base_data, new)
    a.merged_sha = hashlib.sha256(merged).hexdigest()
    a.resolution = Resolution.MERGED if clean else Resolution.MERGE_CONFLICT


# -- the planner -------------------------------------------------------------------------------
def plan_upgrade(
    install: Install,
    source: Source,
    base: Base,
    on_conflict: str,
    deps: str,
    running: tuple[int, str] | None = None,
    reader: BlobReader | None = None,
    hist: History | None = None,
    new_tools: set[str] | None = None,
    index_mode: str = "rebuild",
) -> Plan:
    """Plan the upgrade of ``install`` to ``source`` against ``base``.

    Reads the install and the source, writes nothing: ``--dry-run`` prints exactly what the
    real run then does. Each system path is classified by :func:`classify`; a conflict is
    resolved by ``on_conflict`` (a merge is computed now, so the plan knows the checksum of
    its result and the content phase can check it wrote exactly that).
    """
    actions: list[FileAction] = []
    notes: list[str] = []
    new = {t: f for t, f in source.files.items() if f.area == "content"}
    bfiles = base.files
    symlink_cache: dict[str, bool] = {}

    content_targets = {t for t in bfiles if area_of_target(t) not in (
        "mcp_server", *(o.area for o in OFFERED))}
    for target in sorted(set(new) | content_targets):
        if is_protected(target):
            notes.append(f"{target}: user-owned path, never written")
            continue
        sf = new.get(target)
        local = file_sha_or_none(install.path(target))
        b_sha, b_blob = bfiles.get(target) or (None, None)
        action = classify(local, b_sha, sf.sha256 if sf else None)
        if action is None:
            continue
        a = FileAction(target, action, area_of_target(target), local,
                       sf.sha256 if sf else None, b_sha, mode=sf.mode if sf else 0o644,
                       base_blob=b_blob)
        if action == Action.CONFLICT:
            if on_conflict == "theirs":
                a.resolution = Resolution.THEIRS
            elif on_conflict == "merge" and local is not None and not local.startswith(
                    ("symlink:", "special:")):
                decide_merge(a, install, source, reader, hist)
            else:
                a.resolution = Resolution.KEEP
        actions.append(a)

    # -- files written for the user by an earlier upgrade are theirs: never overwritten
    for a in actions:
        if a.action in (Action.ADD, Action.UPDATE, Action.CONFLICT) and a.area not in (
                "gitignore", "flag", *OFFERED_AREAS):
            sides = {a.new_side: a.new_sha, a.merge_side: a.merged_sha}
            if any(file_sha_or_none(install.path(p)) not in (None, sha) for p, sha in sides.items()):
                a.side_tag = source.commit[:10]

    # -- a directory that becomes a file upstream: when every file in the directory is one we
    #    remove (pristine, deleted upstream), the new file replaces it (content removes first)
    removed = {a.target for a in actions if a.action == Action.REMOVE}
    for a in actions:
        if a.action == Action.CONFLICT and (a.old_sha or "").startswith("special:") and a.new_sha:
            d = install.path(a.target)
            inside = {(Path(r) / n).relative_to(install.root).as_posix()
                      for r, _dirs, names in os.walk(d) for n in names}
            if inside and inside <= removed:
                a.action, a.resolution, a.old_sha = Action.ADD, None, None
                a.note = "replaces a directory whose files were all removed upstream"

    # -- yours, never written (config.json, .cursorrules): upstream's changes offered beside
    for o in OFFERED:
        sf = source.files.get(o.side)
        if sf is None:
            continue
        mine = file_sha_or_none(install.path(o.mine))
        offered = bfiles.get(o.side, (None, None))[0]  # what was installed or offered before
        side = file_sha_or_none(install.path(o.side))
        if mine is None:
            notes.append(f"{o.mine.removeprefix('../')}: none here; upstream's is "
                         f"{sf.src} in the source (not installed: it is yours to have)")
        elif mine != sf.sha256 and offered != sf.sha256 and side != sf.sha256:
            a = FileAction(o.side, Action.ADD, o.area, None, sf.sha256, offered, mode=0o644,
                           note=f"upstream changed its {o.mine.removeprefix('../')}")
            if side is not None:  # an earlier offer is still there: it is yours now
                a.side_tag = source.commit[:10]
                a.old_sha = file_sha_or_none(install.path(a.path))
                if a.old_sha == sf.sha256:
                    continue
            actions.append(a)

    # -- the project's .gitignore: a managed block, line by line, idempotent
    gi_path = install.path(GITIGNORE)
    try:
        gi_now = gi_path.read_bytes()
    except FileNotFoundError:
        gi_now = None
    gi_new = gitignore.with_block(gi_now or b"")
    if gi_now is None or gi_new != gi_now:
        new_sha = hashlib.sha256(gi_new).hexdigest()
        actions.append(FileAction(GITIGNORE, Action.ADD if gi_now is None else Action.UPDATE, "gitignore",
                                  hashlib.sha256(gi_now).hexdigest() if gi_now is not None else None,
                                  new_sha, mode=0o644))

    # -- the search index: rebuilt beside the live one when the new code needs it
    changed = sum(1 for a in actions if a.target.startswith("standards/") and (
        a.action in (Action.ADD, Action.UPDATE, Action.REMOVE)
        or a.resolution in (Resolution.THEIRS, Resolution.MERGED)))
    idx = index.plan_index(install, source, changed, index_mode)
    if idx.table is None and any(a.action == Action.REMOVE and a.target.startswith("standards/")
                                 for a in actions) and not install.path(REBUILD_FLAG).exists():
        # a server without a vector index of ours: removed standards reach its index only
        # through the rebuild the flag asks for (lesson: stale chunks)
        actions.append(FileAction(REBUILD_FLAG, Action.FLAG, "standards", None,
                                  hashlib.sha256(b"").hexdigest(), mode=0o644,
                                  note="standards were removed: the server rebuilds its index"))

    # -- symlinks anywhere on a path we write would write through them
    for a in actions:
        if a.action in WRITES:
            for rel in a.writes_to:
                install.check_no_symlink(rel, symlink_cache)

    # -- server: replaced exactly ---------------------------------------------
    srv_new = source.server_files
    live: dict[str, str] = {}
    if install.server_dir.is_dir():
        for root, dirs, files in os.walk(install.server_dir):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                if name.endswith((".pyc", ".pyo")):
                    continue
                full = Path(root) / name
                rel = "mcp_server/" + full.relative_to(install.server_dir).as_posix()
                sha = file_sha_or_none(full)
                if sha is not None:
                    live[rel] = sha
    sp = ServerPlan(changed=False)
    for t, sf in sorted(srv_new.items()):
        if t not in live:
            sp.added.append(t)
        elif live[t] != sf.sha256:
            sp.updated.append(t)
            if bfiles.get(t) is not None and live[t] != bfiles[t][0]:
                sp.user_modified.append(t)
    for t in sorted(set(live) - set(srv_new)):
        sp.removed.append(t)
        if t not in bfiles or live[t] != bfiles[t][0]:  # edited, or never installed by us
            sp.user_modified.append(t)
    sp.changed = bool(sp.added or sp.updated or sp.removed)

    old_req = normalise_requirements(_read_text(install.requirements))
    req_sf = srv_new.get("mcp_server/requirements.txt")
    new_req = normalise_requirements(req_sf.raw().decode("utf-8", "replace") if req_sf else "")
    sp.requirements_changed = old_req != new_req
    if deps == "force":
        sp.deps_action, sp.deps_reason = "install", "--deps force"
    elif deps == "skip":
        sp.deps_action = "none"
        sp.deps_reason = "--deps skip" + (" (requirements changed!)" if sp.requirements_changed else "")
    elif sp.requirements_changed:
        sp.deps_action, sp.deps_reason = "install", "normalised requirements changed"
    else:
        sp.deps_action, sp.deps_reason = "none", "requirements unchanged"
    if running is not None:
        sp.running_pid, sp.running_transport = running
    if base.note:
        notes.append(base.note)
    attention = ideconfig.problems(install.project, new_tools or set())
    if install.legacy:
        notes.append(f"this install lives in {install.name}/ (made before the product was "
                     f"renamed): the upgrade moves it to {PRAXIS_DIR}/ (one rename; a rollback "
                     "moves it back)")
        attention += ideconfig.legacy_references(install.project, install.name, PRAXIS_DIR)
    for a in actions:
        if a.action == Action.ADD and a.target in base.absent:
            a.note = ("was not in the install (no record that it was ever installed or that you "
                      "deleted it): installed now; delete it again if you meant to")
    if base.absent:
        notes.append(f"{len(base.absent)} system file(s) of the recognised commit were not in the "
                     "install (early installers skipped whole areas): installed now, and listed "
                     "in the report; delete any again if you meant to")
    for rel in base.skipped:
        notes.append(f"{rel}: not a regular file (a FIFO, socket or device); never opened, "
                     "left as it is")
    return Plan(
        source_commit=source.commit,
        installed_commit=base.commit,
        has_base=base.origin != "none",
        actions=actions,
        server=sp,
        notes=notes,
        attention=attention,
        base_origin=base.origin,
        base_share=base.share,
        policy=on_conflict,
        index_action=idx.action,
        index_reasons=idx.reasons if idx.table else [],
        index_table=idx.table,
        migrate_from=install.name if install.legacy else None,
    )


def unified_diff(a: bytes, b: bytes, name: str, limit: int = 60) -> str:
    if is_binary(a, b):
        return f"(binary file {name}: {len(a)} -> {len(b)} bytes)"
    lines = list(difflib.unified_diff(
        a.decode("utf-8", "replace").splitlines(), b.decode("utf-8", "replace").splitlines(),
        f"yours/{name}", f"upstream/{name}", lineterm=""))
    more = len(lines) - limit
    return "\n".join(lines[:limit]) + (f"\n... {more} more lines" if more > 0 else "")


def attention_items(plan: Plan) -> list[str]:
    """Everything that needs the user's attention, with the exact paths to compare."""
    d = PRAXIS_DIR
    out = []
    for a in plan.actions:
        if a.action == Action.CONFLICT:
            if a.resolution == Resolution.KEEP:
                why = f" ({a.note})" if a.note else ""
                out.append(f"{a.target}: changed by you and upstream; yours kept{why}. Compare: "
                           f"diff -u {d}/{a.target} {d}/{a.new_side}")
            elif a.resolution == Resolution.MERGE_CONFLICT:
                out.append(f"{a.target}: changed by you and upstream; the merge has conflicts. "
                           f"Yours kept; resolve {d}/{a.merge_side} (markers) and copy it over; "
                           f"upstream's is {d}/{a.new_side}")
            elif a.resolution == Resolution.MERGED:
                out.append(f"{a.target}: your changes and upstream's merged cleanly; the version "
                           "before is in the backup")
            elif a.resolution == Resolution.THEIRS:
                out.append(f"{a.target}: upstream's version installed; yours is in the backup")
        elif a.action == Action.ORPHAN:
            out.append(f"{a.target}: removed upstream but changed by you; kept (orphaned)")
        elif a.area in {o.area for o in OFFERED}:
            o = next(x for x in OFFERED if x.area == a.area)
            out.append(f"{o.mine.removeprefix('../')}: upstream changed its version; review "
                       f"`diff -u {os.path.normpath(d + '/' + o.mine)} "
                       f"{os.path.normpath(d + '/' + o.side)}` and take what you want")
    for t in plan.server.user_modified:
        out.append(f"{t}: yours (not what was installed) in mcp_server/, which is replaced "
                   f"whole; saved in the backup's kept/{t}")
    out.extend(plan.attention)
    return out
