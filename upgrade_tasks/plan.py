"""The read-only planner. ``--dry-run`` prints its result; the real run executes it.

State in (the install on disk, the installed manifest, the source), plan out.
Classification of a system file (paths under ``.praxis-os``):

=====================  ==============================================  ============
local vs base vs new   meaning                                         action
=====================  ==============================================  ============
absent, not in base    new upstream                                    ``add``
absent, in base        the user deleted it                             ``user-deleted`` (not resurrected)
local == new           already current                                 ``unchanged``
local == base != new   we installed it, user never changed it          ``update``
local != base == new   only the user changed it                        ``user-changed`` (kept)
local != base, != new  both changed it (or no base: legacy)            ``conflict``
in base, not in new:
  local == base        upstream removed a file we installed            ``remove``
  local != base        upstream removed it, the user changed it        ``orphan`` (kept)
=====================  ==============================================  ============

Files in no manifest are the user's: never planned, never touched.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .fsutil import file_sha_or_none
from .layout import Install, area_of_target, is_protected
from .manifest import InstalledManifest
from .source import Source

NEW_SUFFIX = ".praxis-new"

# content actions that write or delete something
WRITES = ("add", "update", "remove", "conflict")


@dataclass
class FileAction:
    target: str
    action: str
    area: str
    old_sha: str | None = None  # on disk now
    new_sha: str | None = None  # in the source
    base_sha: str | None = None  # in the installed manifest
    resolution: str | None = None  # for conflicts: "keep" (write .praxis-new) or "theirs"
    mode: int = 0o644

    @property
    def writes_to(self) -> list[str]:
        """Paths under .praxis-os this action may write or remove."""
        if self.action in ("add", "update", "remove"):
            return [self.target]
        if self.action == "conflict":
            return [self.target] if self.resolution == "theirs" else [self.target + NEW_SUFFIX]
        return []

    def expected_after(self) -> dict[str, str | None]:
        """Path -> sha256 (``None`` = absent) once the action has run."""
        if self.action in ("add", "update"):
            return {self.target: self.new_sha}
        if self.action == "remove":
            return {self.target: None}
        if self.action == "conflict":
            if self.resolution == "theirs":
                return {self.target: self.new_sha}
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
class Plan:
    source_commit: str
    installed_commit: str | None
    has_base: bool
    actions: list[FileAction]
    server: ServerPlan
    notes: list[str] = field(default_factory=list)

    # -- views ---------------------------------------------------------------
    def by_action(self, name: str) -> list[FileAction]:
        return [a for a in self.actions if a.action == name]

    @property
    def conflicts(self) -> list[FileAction]:
        return self.by_action("conflict")

    def touched_paths(self) -> list[str]:
        """Every path under .praxis-os the content phase may write or remove."""
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
        return {
            "source_commit": self.source_commit,
            "installed_commit": self.installed_commit,
            "has_base": self.has_base,
            "actions": [asdict(a) for a in self.actions],
            "server": asdict(self.server),
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Plan:
        return cls(
            source_commit=raw["source_commit"],
            installed_commit=raw.get("installed_commit"),
            has_base=bool(raw.get("has_base")),
            actions=[FileAction(**a) for a in raw["actions"]],
            server=ServerPlan(**raw["server"]),
            notes=list(raw.get("notes", [])),
        )


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


def plan_upgrade(
    install: Install,
    source: Source,
    manifest: InstalledManifest | None,
    on_conflict: str,
    deps: str,
    running: tuple[int, str] | None = None,
) -> Plan:
    base = manifest.files if manifest else {}
    actions: list[FileAction] = []
    notes: list[str] = []
    new = source.content_files

    for target in sorted(set(new) | {t for t in base if area_of_target(t) != "mcp_server"}):
        if is_protected(target):
            notes.append(f"{target}: user-owned path, never written")
            continue
        sf = new.get(target)
        local = file_sha_or_none(install.path(target))
        b = base.get(target)
        area = area_of_target(target)
        if sf is not None:
            a = FileAction(target, "", area, local, sf.sha256, b, mode=sf.mode)
            if local is None:
                a.action = "user-deleted" if b is not None else "add"
            elif local == sf.sha256:
                a.action = "unchanged"
            elif b is not None and local == b:
                a.action = "update"
            elif b is not None and sf.sha256 == b:
                a.action = "user-changed"  # only the user changed it: keep, nothing to do
            else:
                a.action = "conflict"
                a.resolution = "theirs" if on_conflict == "theirs" else "keep"
        else:
            a = FileAction(target, "", area, local, None, b)
            if local is None:
                continue
            a.action = "remove" if local == b else "orphan"
        actions.append(a)

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
            if base.get(t) is not None and live[t] != base[t]:
                sp.user_modified.append(t)
    for t in sorted(set(live) - set(srv_new)):
        sp.removed.append(t)
        if base.get(t) is not None and live[t] != base[t] or base and t not in base:
            sp.user_modified.append(t)
    sp.changed = bool(sp.added or sp.updated or sp.removed)

    old_req = normalise_requirements(_read_text(install.requirements))
    req_sf = srv_new.get("mcp_server/requirements.txt")
    new_req = normalise_requirements(req_sf.abspath.read_text("utf-8", "replace") if req_sf else "")
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
    return Plan(
        source_commit=source.commit,
        installed_commit=manifest.source_commit if manifest else None,
        has_base=manifest is not None,
        actions=actions,
        server=sp,
        notes=notes,
    )


def render_plan(plan: Plan, install: Install, header: str = "Plan") -> str:
    """Human-readable plan, per area: new, updated, removed, kept, conflicts; deps; server."""
    lines = [
        f"{header}: {install.root}",
        f"  source commit {plan.source_commit[:10]}"
        + (f", installed {plan.installed_commit[:10]}" if plan.installed_commit else
           ", installed commit unknown (no installed manifest)"),
    ]
    labels = [
        ("add", "new"),
        ("update", "updated"),
        ("remove", "removed"),
        ("conflict", "conflicts"),
        ("user-changed", "kept (changed by you, not upstream)"),
        ("orphan", "kept (removed upstream, changed by you)"),
        ("user-deleted", "kept deleted (you deleted them)"),
        ("unchanged", "unchanged"),
    ]
    for area, counts in sorted(plan.area_counts().items()):
        parts = [f"{counts[k]} {label}" for k, label in labels if counts.get(k)]
        lines.append(f"  {area + '/':<24} " + ", ".join(parts))
    for a in plan.actions:
        if a.action in ("add", "update", "remove"):
            sign = {"add": "+", "update": "~", "remove": "-"}[a.action]
            lines.append(f"    {sign} {a.target}")
        elif a.action == "conflict":
            if a.resolution == "theirs":
                lines.append(f"    ! {a.target}  (changed by you; upstream version replaces it, "
                             "yours stays in the backup)")
            else:
                lines.append(f"    ! {a.target}  (changed by you; kept, new version -> "
                             f"{a.target}{NEW_SUFFIX})")
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
    return "\n".join(lines)
