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
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fsutil import file_sha_or_none
from .gitutil import git_ok
from .history import (
    BlobReader,
    History,
    blob_reader,
    git_blob_id,
    local_system_files,
    recognise,
    unmap_target,
)
from .layout import (
    CONFIG_NEW,
    GITIGNORE,
    PRAXIS_DIR,
    Install,
    area_of_target,
    is_protected,
)
from .manifest import InstalledManifest
from .merge import is_binary, merge3
from .source import Source

NEW_SUFFIX = ".praxis-new"
MERGE_SUFFIX = ".praxis-merge"
REBUILD_FLAG = "standards/.rebuild_index"

# content actions that write or delete something
WRITES = ("add", "update", "remove", "conflict", "flag")

#: Patterns the install needs in the project's .gitignore (no trailing comments: git has none).
GITIGNORE_PATTERNS = (
    f"{PRAXIS_DIR}/.cache/",
    f"{PRAXIS_DIR}/venv/",
    f"{PRAXIS_DIR}/.backups/",
    f"{PRAXIS_DIR}/.upgrade-lock",
    f"{PRAXIS_DIR}/.upgrade-lock.owner.json",
    f"{PRAXIS_DIR}/.upgrade-reports/",
    f"{PRAXIS_DIR}/.mcp_server_state.json",
    f"{PRAXIS_DIR}/.mcp_server.staged/",
    f"{PRAXIS_DIR}/.mcp_server.old/",
    f"{PRAXIS_DIR}/.venvs/",
    f"{PRAXIS_DIR}/**/__pycache__/",
)
GITIGNORE_BEGIN = "# >>> prAxIs OS upgrader: patterns the install needs (managed block)"
GITIGNORE_END = "# <<< prAxIs OS upgrader"


@dataclass
class FileAction:
    target: str
    action: str
    area: str
    old_sha: str | None = None  # on disk now
    new_sha: str | None = None  # in the source
    base_sha: str | None = None  # what we installed (manifest or history)
    resolution: str | None = None  # conflicts: keep | theirs | merged | merge-conflict | mine
    mode: int = 0o644
    base_blob: str | None = None  # git blob id of the base, for merging
    merged_sha: str | None = None  # sha256 of the merge result (clean, or with markers)
    note: str = ""

    @property
    def writes_to(self) -> list[str]:
        """Paths under .praxis-os this action may write or remove (for the backup).

        An add/update may meet a file changed under our feet and then writes
        ``NAME.praxis-new`` instead, so that path is included too.
        """
        if self.action in ("add", "update"):
            return [self.target] + ([self.target + NEW_SUFFIX] if self.area not in (
                "gitignore", "flag") else [])
        if self.action in ("remove", "flag"):
            return [self.target]
        if self.action == "conflict":
            return list(self.expected_after()) + [self.target + NEW_SUFFIX]
        return []

    def expected_after(self) -> dict[str, str | None]:
        """Path -> sha256 (``None`` = absent) once the action has run."""
        if self.action in ("add", "update", "flag"):
            return {self.target: self.new_sha}
        if self.action == "remove":
            return {self.target: None}
        if self.action == "conflict":
            r = self.resolution
            if r == "theirs":
                return {self.target: self.new_sha}
            if r == "merged":
                return {self.target: self.merged_sha}
            if r == "merge-conflict":
                return {self.target + NEW_SUFFIX: self.new_sha,
                        self.target + MERGE_SUFFIX: self.merged_sha}
            if r == "mine":
                return {}
            return {self.target + NEW_SUFFIX: self.new_sha}
        return {}


@dataclass
class ServerPlan:
    changed: bool
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    user_modified: list[str] = field(default_factory=list)  # differs from base: overwritten
    requirements_changed: bool = False
    deps_action: str = "none"  # "install" or "none"
    deps_reason: str = ""
    running_pid: int | None = None
    running_transport: str | None = None
    stop_reason: str = ""


@dataclass
class Base:
    """What is installed: per target path, the sha256 and (when known) git blob id."""

    origin: str  # "manifest", "history" or "none"
    commit: str | None
    files: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    share: float | None = None
    pristine: int = 0
    edited: int = 0
    note: str = ""


@dataclass
class Plan:
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

    # -- views ---------------------------------------------------------------
    def by_action(self, name: str) -> list[FileAction]:
        return [a for a in self.actions if a.action == name]

    @property
    def conflicts(self) -> list[FileAction]:
        return self.by_action("conflict")

    def touched_paths(self) -> list[str]:
        """Every path (relative to .praxis-os) the content phase may write or remove."""
        out: list[str] = []
        for a in self.actions:
            out.extend(a.writes_to)
        return sorted(set(out))

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = {}
        for a in self.actions:
            c[a.action] = c.get(a.action, 0) + 1
        return c

    def area_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for a in self.actions:
            out.setdefault(a.area, {}).setdefault(a.action, 0)
            out[a.area][a.action] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        # a json round trip is the C-speed deep copy (dataclasses.asdict took 28 ms here)
        d = dict(self.__dict__, actions=[a.__dict__ for a in self.actions],
                 server=self.server.__dict__)
        out: dict[str, Any] = json.loads(json.dumps(d))
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Plan:
        raw = dict(raw)
        raw["actions"] = [FileAction(**a) for a in raw["actions"]]
        raw["server"] = ServerPlan(**raw["server"])
        return cls(**raw)


# -- the base ------------------------------------------------------------------------
def base_from_manifest(m: InstalledManifest) -> Base:
    files = {t: (sha, m.blobs.get(t)) for t, sha in m.files.items()}
    return Base("manifest", m.source_commit, files, note=f"installed manifest: commit "
                f"{m.source_commit[:10]}, {len(files)} files")


def base_from_history(install: Install, hist: History, reader: BlobReader) -> Base:
    """Recognise pristine files from the source's history (installs without a manifest)."""
    local = local_system_files(install)
    blobs: dict[str, str] = {}
    shas: dict[str, str] = {}
    for t, p in local.items():
        data = p.read_bytes()
        blobs[t] = git_blob_id(data)
        shas[t] = hashlib.sha256(data).hexdigest()
    rec = recognise(install, hist, blobs)
    files: dict[str, tuple[str, str | None]] = {}
    for t, blob in rec.tree_at_installed.items():
        if t not in local:  # installed at that commit, absent now
            gone = reader.read(blob)
            if gone is not None:
                files[t] = (hashlib.sha256(gone).hexdigest(), blob)
    for t, blob in rec.pristine.items():
        files[t] = (shas[t], blob)
    for t in rec.edited:
        base_blob = rec.base_at_installed.get(t)
        base_data = reader.read(base_blob) if base_blob else None
        if base_blob and base_data is not None:
            files[t] = (hashlib.sha256(base_data).hexdigest(), base_blob)
    base = Base("history", rec.installed_commit, files, share=rec.share,
                pristine=len(rec.pristine), edited=len(rec.edited))
    if rec.installed_commit:
        base.note = (f"no installed manifest: recognised {len(rec.pristine)} pristine and "
                     f"{len(rec.edited)} edited system files from the source's history; installed "
                     f"commit looks like {rec.installed_commit[:10]} (explains {rec.share:.0%} of "
                     "the pristine files)")
    else:
        base.note = "no installed manifest and no match in the source's history"
    return base


def load_base(install: Install, manifest: InstalledManifest | None, hist: History,
              reader: BlobReader) -> Base:
    if manifest is not None:
        return base_from_manifest(manifest)
    if not hist.changes:
        return Base("none", None, note="no installed manifest and no source history")
    return base_from_history(install, hist, reader)


# -- helpers -------------------------------------------------------------------------------
def normalise_requirements(text: str) -> list[str]:
    """Requirements as a sorted list: comments, blank lines, order and spacing do not count."""
    out = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"\s+", "", line)
        name = re.split(r"[<>=!~;\[@ ]", line, maxsplit=1)[0]
        out.append(name.lower().replace("_", "-") + line[len(name) :])
    return sorted(out)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""


class SymlinkInPath(Exception):
    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


def check_no_symlink(install: Install, rel: str, cache: dict[str, bool] | None = None) -> None:
    """Raise :class:`SymlinkInPath` when a directory between .praxis-os and ``rel`` is a link.
    (Plain strings and ``os.path``: this runs for every planned and every written path.)"""
    cache = {} if cache is None else cache
    target = os.path.normpath(os.path.join(str(install.root), rel))
    root = str(install.root if not rel.startswith("../") else install.project)
    prefix = root.rstrip(os.sep) + os.sep
    d = os.path.dirname(target)
    while d != root and d.startswith(prefix):
        if d not in cache:
            cache[d] = os.path.islink(d)
        if cache[d]:
            raise SymlinkInPath(Path(d))
        d = os.path.dirname(d)
    if os.path.islink(target):
        raise SymlinkInPath(Path(target))


def gitignore_block(current: str) -> str:
    """The project's .gitignore with our managed block: only patterns not already present
    (line by line, exact), no trailing comments; idempotent."""
    lines = current.splitlines()
    outside: list[str] = []
    block_at: int | None = None
    inside = False
    for ln in lines:
        if ln.strip() == GITIGNORE_BEGIN:
            inside, block_at = True, len(outside)
            continue
        if inside:
            if ln.strip() == GITIGNORE_END:
                inside = False
            continue
        outside.append(ln)
    present = {ln.strip() for ln in outside}
    needed = [p for p in GITIGNORE_PATTERNS
              if p not in present and p.rstrip("/") not in present and "/" + p not in present]
    block = [GITIGNORE_BEGIN, *needed, GITIGNORE_END] if needed else []
    if block_at is None:
        if block and outside and outside[-1].strip():
            block = ["", *block]
        new_lines = outside + block
    else:
        new_lines = outside[:block_at] + block + outside[block_at:]
    text = "\n".join(new_lines)
    return text + "\n" if text else ""


def ide_config_problems(project: Path, tools: set[str]) -> list[str]:
    """References in IDE launch configs that the new server no longer accepts (report only)."""
    out = []
    for rel in (".cursor/mcp.json", ".mcp.json"):
        p = project / rel
        try:
            cfg = json.loads(p.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            out.append(f"{rel}: unreadable JSON ({exc}); not checked")
            continue
        servers = cfg.get("mcpServers", {}) if isinstance(cfg, dict) else {}
        for name, srv in servers.items() if isinstance(servers, dict) else []:
            if not isinstance(srv, dict):
                continue
            args = [str(a) for a in srv.get("args", [])]
            runs_ours = any("mcp_server" in a for a in args)
            if runs_ours and not any(a == "--transport" or a.startswith("--transport=")
                                     for a in args):
                out.append(f"{rel}: server {name!r} starts mcp_server without --transport, which "
                           "the server requires: add \"--transport\", \"dual\" (or stdio) to args")
            approve = srv.get("autoApprove", [])
            if (runs_ours or srv.get("url")) and isinstance(approve, list) and tools:
                gone = sorted(str(t) for t in approve if str(t) not in tools)
                if gone:
                    out.append(f"{rel}: server {name!r} autoApproves tools the new server does not "
                               f"have: {', '.join(gone)}; remove them")
    return out


def _merge_action(a: FileAction, install: Install, source: Source, reader: BlobReader | None,
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
        a.resolution, a.note = "keep", "no base version to merge with"
        return
    if is_binary(local, base_data, new):
        a.resolution, a.note = "keep", "binary file: never merged"
        return
    if shutil.which("git") is None:
        a.resolution, a.note = "keep", "git is not installed on this host: not merged"
        return
    merged, clean = merge3(local, base_data, new)
    a.merged_sha = hashlib.sha256(merged).hexdigest()
    a.resolution = "merged" if clean else "merge-conflict"


def merged_content(a: FileAction, install: Install, source: Source, repo: Path) -> bytes:
    """Recompute the merge the plan decided on (same inputs, same bytes)."""
    reader = blob_reader(source)
    try:
        base = reader.read(a.base_blob or "")
    finally:
        reader.close()
    if base is None:
        raise ValueError(f"base blob {a.base_blob} of {a.target} is gone from the source")
    merged, _clean = merge3(install.path(a.target).read_bytes(), base,
                            source.files[a.target].read())
    return merged


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
) -> Plan:
    actions: list[FileAction] = []
    notes: list[str] = []
    new = {t: f for t, f in source.files.items() if f.area == "content"}
    bfiles = base.files
    symlink_cache: dict[str, bool] = {}

    content_targets = {t for t in bfiles if area_of_target(t) not in ("mcp_server", "config")}
    for target in sorted(set(new) | content_targets):
        if is_protected(target):
            notes.append(f"{target}: user-owned path, never written")
            continue
        sf = new.get(target)
        local = file_sha_or_none(install.path(target))
        b = bfiles.get(target)
        b_sha, b_blob = (b if b else (None, None))
        area = area_of_target(target)
        if sf is not None:
            a = FileAction(target, "", area, local, sf.sha256, b_sha, mode=sf.mode, base_blob=b_blob)
            if local is None:
                a.action = "user-deleted" if b_sha is not None else "add"
            elif local == sf.sha256:
                a.action = "unchanged"
            elif b_sha is not None and local == b_sha:
                a.action = "update"
            elif b_sha is not None and sf.sha256 == b_sha:
                a.action = "user-changed"
            else:
                a.action = "conflict"
                if on_conflict == "theirs":
                    a.resolution = "theirs"
                elif on_conflict == "merge" and local is not None and not local.startswith(
                        ("symlink:", "special:")):
                    _merge_action(a, install, source, reader, hist)
                else:
                    a.resolution = "keep"
        else:
            a = FileAction(target, "", area, local, None, b_sha, base_blob=b_blob)
            if local is None:
                continue
            a.action = "remove" if local == b_sha else "orphan"
        actions.append(a)

    # -- a directory that becomes a file upstream: when every file in the directory is one we
    #    remove (pristine, deleted upstream), the new file replaces it (content removes first)
    removed = {a.target for a in actions if a.action == "remove"}
    for a in actions:
        if a.action == "conflict" and (a.old_sha or "").startswith("special:") and a.new_sha:
            d = install.path(a.target)
            inside = {(Path(r) / n).relative_to(install.root).as_posix()
                      for r, _dirs, names in os.walk(d) for n in names}
            if inside and inside <= removed:
                a.action, a.resolution, a.old_sha = "add", None, None
                a.note = "replaces a directory whose files were all removed upstream"

    # -- config.json: never written; changed upstream defaults are offered beside it
    cfg_sf = source.files.get(CONFIG_NEW)
    if cfg_sf is not None:
        user_cfg = file_sha_or_none(install.path("config.json"))
        offered = bfiles.get(CONFIG_NEW, (None, None))[0]
        side = file_sha_or_none(install.path(CONFIG_NEW))
        if user_cfg is None:
            notes.append("config.json: none in the install; the server uses its built-in defaults "
                         "(upstream's are in the source's universal/config.json)")
        elif user_cfg != cfg_sf.sha256 and offered != cfg_sf.sha256 and side != cfg_sf.sha256:
            actions.append(FileAction(CONFIG_NEW, "add" if side is None else "update", "config",
                                      side, cfg_sf.sha256, offered, mode=0o644,
                                      note="upstream changed its default config.json"))

    # -- the project's .gitignore: a managed block, line by line, idempotent
    gi_path = install.path(GITIGNORE)
    try:
        gi_now = gi_path.read_bytes()
    except FileNotFoundError:
        gi_now = None
    gi_new = gitignore_block(gi_now.decode("utf-8", "replace") if gi_now is not None else "")
    if gi_now is None or gi_new.encode() != gi_now:
        new_sha = hashlib.sha256(gi_new.encode()).hexdigest()
        actions.append(FileAction(GITIGNORE, "add" if gi_now is None else "update", "gitignore",
                                  hashlib.sha256(gi_now).hexdigest() if gi_now is not None else None,
                                  new_sha, mode=0o644))

    # -- removed standards reach the RAG index only through a rebuild (lesson: stale chunks)
    if any(a.action == "remove" and a.target.startswith("standards/") for a in actions) and \
            not install.path(REBUILD_FLAG).exists():
        actions.append(FileAction(REBUILD_FLAG, "flag", "standards", None,
                                  hashlib.sha256(b"").hexdigest(), mode=0o644,
                                  note="standards were removed: the server rebuilds its index"))

    # -- symlinks anywhere on a path we write would write through them
    for a in actions:
        if a.action in WRITES:
            for rel in a.writes_to:
                check_no_symlink(install, rel, symlink_cache)

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
        if t in bfiles and live[t] != bfiles[t][0]:
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
    return Plan(
        source_commit=source.commit,
        installed_commit=base.commit,
        has_base=base.origin != "none",
        actions=actions,
        server=sp,
        notes=notes,
        attention=ide_config_problems(install.project, new_tools or set()),
        base_origin=base.origin,
        base_share=base.share,
        policy=on_conflict,
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
        if a.action == "conflict":
            if a.resolution == "keep":
                why = f" ({a.note})" if a.note else ""
                out.append(f"{a.target}: changed by you and upstream; yours kept{why}. Compare: "
                           f"diff -u {d}/{a.target} {d}/{a.target}{NEW_SUFFIX}")
            elif a.resolution == "merge-conflict":
                out.append(f"{a.target}: changed by you and upstream; the merge has conflicts. "
                           f"Yours kept; resolve {d}/{a.target}{MERGE_SUFFIX} (markers) and copy "
                           f"it over; upstream's is {d}/{a.target}{NEW_SUFFIX}")
            elif a.resolution == "merged":
                out.append(f"{a.target}: your changes and upstream's merged cleanly; the version "
                           "before is in the backup")
            elif a.resolution == "theirs":
                out.append(f"{a.target}: upstream's version installed; yours is in the backup")
        elif a.action == "orphan":
            out.append(f"{a.target}: removed upstream but changed by you; kept (orphaned)")
        elif a.area == "config":
            out.append(f"config.json: upstream changed its defaults; review "
                       f"diff -u {d}/config.json {d}/{CONFIG_NEW}")
    for t in plan.server.user_modified:
        out.append(f"{t}: differed from what was installed; replaced (your version is in the "
                   "backup)")
    out.extend(plan.attention)
    return out


def render_plan(plan: Plan, install: Install, header: str = "Plan") -> str:
    """Human-readable plan, per area: new, updated, removed, kept, conflicts; deps; server."""
    if plan.installed_commit:
        how = {"manifest": "installed manifest", "history": "recognised from history"}.get(
            plan.base_origin, plan.base_origin)
        inst = f", installed {plan.installed_commit[:10]} ({how})"
    else:
        inst = ", installed commit unknown"
    lines = [f"{header}: {install.root}", f"  source commit {plan.source_commit[:10]}{inst}"]
    labels = [
        ("add", "new"),
        ("update", "updated"),
        ("remove", "removed"),
        ("conflict", "conflicts"),
        ("user-changed", "kept (changed by you, not upstream)"),
        ("orphan", "kept (removed upstream, changed by you)"),
        ("user-deleted", "kept deleted (you deleted them)"),
        ("unchanged", "unchanged"),
        ("flag", "flag"),
    ]
    for area, counts in sorted(plan.area_counts().items()):
        parts = [f"{counts[k]} {label}" for k, label in labels if counts.get(k)]
        lines.append(f"  {area + '/':<24} " + ", ".join(parts))
    res_text = {
        "theirs": "changed by you; upstream version replaces it, yours stays in the backup",
        "keep": f"changed by you; kept, new version -> NAME{NEW_SUFFIX}",
        "merged": "changed by you and upstream; merges cleanly",
        "merge-conflict": f"changed by you and upstream; merge conflicts -> NAME{MERGE_SUFFIX}, "
                          f"NAME{NEW_SUFFIX}; yours kept",
        "mine": "changed by you; kept as is (your decision)",
    }
    for a in plan.actions:
        if a.action in ("add", "update", "remove", "flag"):
            sign = {"add": "+", "update": "~", "remove": "-", "flag": "*"}[a.action]
            lines.append(f"    {sign} {a.target}")
        elif a.action == "conflict":
            lines.append(f"    ! {a.target}  ({res_text.get(a.resolution or 'keep', '')}"
                         + (f"; {a.note}" if a.note else "") + ")")
        elif a.action == "orphan":
            lines.append(f"    = {a.target}  (removed upstream, changed by you: kept)")
    sp = plan.server
    if sp.changed:
        lines.append(
            f"  mcp_server/              replaced exactly: {len(sp.added)} added, "
            f"{len(sp.updated)} updated, {len(sp.removed)} removed"
        )
        for t in sp.user_modified:
            lines.append(f"    ! {t}  (differs from what was installed; saved in the backup)")
    else:
        lines.append("  mcp_server/              unchanged")
    lines.append(f"  dependencies             {sp.deps_action} ({sp.deps_reason})")
    if sp.running_pid:
        lines.append(
            f"  running server           pid {sp.running_pid} ({sp.running_transport}): "
            + (sp.stop_reason or "will be stopped so the new code is loaded")
        )
    else:
        lines.append("  running server           none found for this project")
    for n in plan.notes:
        lines.append(f"  note: {n}")
    for item in plan.attention:
        lines.append(f"  attention: {item}")
    return "\n".join(lines)


def git_check_ignore(project: Path, paths: list[str]) -> list[str]:
    """Paths git would NOT ignore (empty when not a git work tree or all are ignored)."""
    if shutil.which("git") is None:
        return []
    if not git_ok(project, "rev-parse", "--is-inside-work-tree"):
        return []
    proc = subprocess.run(["git", "-C", str(project), "check-ignore", "--no-index", "--stdin"],
                          input="\n".join(paths) + "\n", capture_output=True, text=True)
    ignored = set(proc.stdout.split("\n"))
    return [p for p in paths if p not in ignored]
