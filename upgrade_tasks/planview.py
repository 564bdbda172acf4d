"""The plan as people and programs read it: real paths, one legend, counts per place.

:class:`PlanView` is made once from a :class:`~upgrade_tasks.plan.Plan` and shown three ways:
plain lines (:meth:`PlanView.plain`: pipes, logs, hosts), a table (``upgrade_tasks/ui.py``)
and JSON (:meth:`PlanView.to_json`, part of the ``--json`` document and the report). Paths
are shown as they are in the project (``.praxis-os/standards/...``, ``.gitignore``), never
as the planner's internal area names. What each mark means is declared once, in
:data:`KINDS`, and the legend is derived from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from . import index
from .layout import PRAXIS_DIR, REBUILD_FLAG, Install
from .plan import MERGE_SUFFIX, NEW_SUFFIX, Action, FileAction, Plan


@dataclass(frozen=True)
class Kind:
    """One kind of planned change: its mark, its word, its colour on a terminal."""

    mark: str
    word: str
    style: str
    listed: bool = True  # one row per file (False: counted only)


#: Every kind of entry in a plan, in the order they are shown. (The marks are the legend.)
KINDS: dict[str, Kind] = {
    Action.ADD: Kind("+", "new", "green"),
    Action.UPDATE: Kind("~", "updated", "yellow"),
    Action.REMOVE: Kind("-", "removed", "red"),
    Action.CONFLICT: Kind("!", "changed by you and upstream", "bold magenta"),
    Action.ORPHAN: Kind("=", "kept: removed upstream, changed by you", "cyan"),
    Action.FLAG: Kind("*", "flag file: the server rebuilds its search index", "blue"),
    Action.USER_CHANGED: Kind(" ", "kept: changed by you only", "dim", listed=False),
    Action.USER_DELETED: Kind(" ", "kept deleted: you deleted them", "dim", listed=False),
    Action.UNCHANGED: Kind(" ", "unchanged", "dim", listed=False),
}
#: Short column titles for the counts per place.
COUNT_TITLES: dict[str, str] = {
    Action.ADD: "new", Action.UPDATE: "updated", Action.REMOVE: "removed",
    Action.CONFLICT: "conflicts", Action.ORPHAN: "orphaned", Action.FLAG: "flags",
    Action.USER_CHANGED: "yours", Action.USER_DELETED: "deleted by you",
    Action.UNCHANGED: "unchanged",
}
#: What happens to a conflicting file, by resolution.
RESOLUTIONS = {
    "theirs": "upstream's version replaces yours; yours stays in the backup",
    "keep": f"yours kept; upstream's written beside it as NAME{NEW_SUFFIX}",
    "merged": "the two merge cleanly; the merge is applied",
    "merge-conflict": f"the merge has conflicts: yours kept, NAME{MERGE_SUFFIX} (markers) and "
                      f"NAME{NEW_SUFFIX} written beside it",
    "mine": "yours kept as it is (your decision)",
}


def shown_path(target: str) -> str:
    """Where a planned path is, as the user sees it from the project directory."""
    return os.path.normpath(f"{PRAXIS_DIR}/{target}")


def place_of(target: str) -> str:
    """The place a path is counted under: its top folder in .praxis-os, or the file itself
    when it is a single file (``.gitignore``, ``.praxis-os/config.json``)."""
    shown = shown_path(target)
    parts = shown.split("/")
    if parts[0] != PRAXIS_DIR or len(parts) < 3:
        return shown
    return f"{parts[0]}/{parts[1]}/"


@dataclass(frozen=True)
class Row:
    mark: str
    kind: str
    path: str
    target: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "target": self.target, "action": self.kind,
                "detail": self.detail}


def _row(a: FileAction) -> Row | None:
    k = KINDS[a.action]
    if not k.listed:
        return None
    if a.action == Action.CONFLICT:
        detail = f"{k.word}: {RESOLUTIONS.get(a.resolution or 'keep', '')}"
        if a.note:
            detail += f" ({a.note})"
    elif a.action == Action.FLAG and a.target == REBUILD_FLAG:
        detail = k.word
    else:
        detail = k.word + (f" ({a.note})" if a.note else "")
    return Row(k.mark, str(a.action), shown_path(a.path), a.target, detail)


@dataclass
class PlanView:
    header: str
    install: str
    source_commit: str
    source_ref: str
    installed_commit: str | None
    base: str  # how the installed commit is known
    migrate_from: str | None
    policy: str
    places: list[tuple[str, dict[str, int]]]
    rows: list[Row]
    #: (what, description): mcp_server/, dependencies, search index, running server
    facts: list[tuple[str, str]]
    notes: list[str] = field(default_factory=list)
    attention: list[str] = field(default_factory=list)
    decisions: list[dict[str, str]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def legend(self) -> list[tuple[str, str, str]]:
        """(mark, word, style) of the kinds this plan lists."""
        kinds = {r.kind for r in self.rows}
        return [(k.mark, k.word, k.style) for name, k in KINDS.items() if name in kinds]

    @property
    def count_columns(self) -> list[str]:
        present = {k for _p, c in self.places for k in c}
        return [k for k in KINDS if k in present]

    def plain(self) -> str:
        lines = [f"{self.header}: {self.install}", f"  source commit {self.source_commit[:10]}"
                 + (f" (--ref {self.source_ref})" if self.source_ref else "") + ", "
                 + (f"installed {self.installed_commit[:10]} ({self.base})" if self.installed_commit
                    else "installed commit unknown")]
        if self.migrate_from:
            lines.append(f"  install directory        moved: {self.migrate_from}/ -> {PRAXIS_DIR}/")
        for place, counts in self.places:
            parts = [f"{counts[k]} {COUNT_TITLES[k]}" for k in KINDS if counts.get(k)]
            lines.append(f"  {place:<28} " + ", ".join(parts))
        for r in self.rows:
            lines.append(f"    {r.mark} {r.path}" + ("" if r.kind in (Action.ADD, Action.UPDATE,
                                                                   Action.REMOVE) else
                                                     f"  ({r.detail})"))
        if self.legend:
            lines.append("    (" + ", ".join(f"{m} {w}" for m, w, _s in self.legend) + ")")
        for what, text in self.facts:
            lines.append(f"  {what:<24} {text}")
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  attention: {a}" for a in self.attention]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "install": self.install, "source_commit": self.source_commit,
            "source_ref": self.source_ref or None,
            "installed_commit": self.installed_commit, "base": self.base,
            "migrate_from": self.migrate_from, "on_conflict": self.policy,
            "places": [{"place": p, "counts": c} for p, c in self.places],
            "files": [r.to_json() for r in self.rows],
            "server": self.raw["server"], "index": self.raw["index"],
            "notes": self.notes, "attention": self.attention, "decisions": self.decisions,
        }


def view(plan: Plan, install: Install, header: str = "Plan") -> PlanView:
    if plan.installed_commit:
        base = {"manifest": "installed manifest", "history": "recognised from history"}.get(
            plan.base_origin, plan.base_origin)
        if plan.base_origin == "history" and plan.base_share is not None:
            base += f", explains {plan.base_share:.0%} of the files"
    else:
        base = "unknown"
    places: dict[str, dict[str, int]] = {}
    for a in plan.actions:
        c = places.setdefault(place_of(a.path), {})
        c[str(a.action)] = c.get(str(a.action), 0) + 1
    order = {k: i for i, k in enumerate(KINDS)}
    rows = sorted((r for r in map(_row, plan.actions) if r is not None),
                  key=lambda r: (order[r.kind], r.path))
    sp = plan.server
    facts = []
    if sp.changed:
        facts.append(("mcp_server/", f"replaced exactly: {len(sp.added)} added, {len(sp.updated)} "
                      f"updated, {len(sp.removed)} removed"))
        for t in sp.user_modified:
            rows.append(Row("!", "server-user-file", shown_path(t), t,
                            "differs from what was installed; saved in the backup's kept/"))
    else:
        facts.append(("mcp_server/", "unchanged"))
    facts.append(("dependencies", f"{sp.deps_action} ({sp.deps_reason})"))
    idx = index.IndexPlan(plan.index_action, plan.index_reasons, plan.index_table)
    if plan.index_table:
        facts.append(("search index", idx.summary()))
    if sp.running_pid:
        facts.append(("running server", f"pid {sp.running_pid} ({sp.running_transport}): "
                      + (sp.stop_reason or "will be stopped so the new code is loaded")))
    else:
        facts.append(("running server", "none found for this project"))
    raw = {
        "server": {"changed": sp.changed, "added": len(sp.added), "updated": len(sp.updated),
                   "removed": len(sp.removed), "user_modified": list(sp.user_modified),
                   "dependencies": sp.deps_action, "dependencies_reason": sp.deps_reason,
                   "running_pid": sp.running_pid, "running_transport": sp.running_transport},
        "index": {"action": plan.index_action, "reasons": list(plan.index_reasons),
                  "table": plan.index_table},
    }
    return PlanView(header, str(install.root), plan.source_commit, plan.source_ref,
                    plan.installed_commit, base,
                    plan.migrate_from, plan.policy, sorted(places.items()), rows, facts,
                    list(plan.notes), list(plan.attention), list(plan.decisions), raw)


def render_plan(plan: Plan, install: Install, header: str = "Plan") -> str:
    """The plan as plain lines."""
    return view(plan, install, header).plain()
