"""``invoke status``: the install's version, lock, sessions and backups, and the command
that goes on from here (as text, and as JSON for the fleet controller)."""

from __future__ import annotations

import json
from typing import Any

from . import backup_store
from .checkpoint import PHASES, list_sessions, unfinished_session
from .layout import find_install
from .lock import describe_owner, probe_lock
from .options import Options
from .preflight import check_target


def status_text(opts: Options) -> str:
    """The status as text: version, lock, the unfinished session's phases (or the last session),
    backups, and the command to go on."""
    inst = find_install(opts.project)
    check_target(inst)
    lines = [f"install: {inst.root}"]
    try:
        ver = json.loads(inst.version_record.read_text())
        lines.append(f"installed commit: {str(ver.get('installed_commit'))[:10]} "
                     f"(updated {ver.get('updated_at')})")
    except (OSError, ValueError):
        lines.append("installed commit: unknown (no VERSION.json yet)")
    held = probe_lock(inst.lock_file)
    lines.append("lock: " + (describe_owner(inst.lock_owner_file) if held else "free"))
    if inst.rollback_journal.exists():
        lines.append("an `invoke rollback` was interrupted before it finished: run "
                     f"`invoke rollback --project {inst.project}` to finish it")
    sessions = list_sessions(inst)
    un = unfinished_session(inst)
    if un is not None:
        lines.append(f"unfinished session: {un.id} ({un.status}), started "
                     f"{un.metadata.get('started_at')}")
        lines.append("  phase          status     seconds  result")
        for i, name in enumerate(PHASES):
            r = un.phase_result(i)
            st = r.get("status", "pending")
            lines.append(f"  {i} {name:<12} {st:<10} {r.get('duration_s', ''):>7}  "
                         f"{str(r.get('summary', ''))[:70]}")
        if not held:
            lines.append(f"  resume:   invoke upgrade --project {inst.project}")
            lines.append(f"  rollback: invoke rollback --project {inst.project}")
    elif sessions:
        last = sessions[-1]
        lines.append(f"last session: {last.id}: {last.status} "
                     f"({last.metadata.get('finished_at', '')})")
    ids = backup_store.list_backups(inst)
    lines.append(f"backups ({len(ids)}): " + (", ".join(ids) if ids else "none"))
    if ids:
        lines.append(f"  roll back the last upgrade: invoke rollback --project {inst.project}")
    return "\n".join(lines)


def status_json(opts: Options) -> dict[str, Any]:
    """Machine-readable status (what the fleet controller reads from each host)."""
    inst = find_install(opts.project)
    check_target(inst)
    out: dict[str, Any] = {"project": str(inst.project), "lock_held": probe_lock(inst.lock_file)}
    try:
        out["installed_commit"] = json.loads(inst.version_record.read_text()).get(
            "installed_commit")
    except (OSError, ValueError):
        out["installed_commit"] = None
    sessions = list_sessions(inst)
    if sessions:
        s = sessions[-1]
        arts0 = s.artifacts(0)
        out["session"] = {
            "id": s.id, "status": s.status, "completed_phases": s.completed,
            "phase_reached": max(s.completed) if s.completed else None,
            "source_commit_before": arts0.get("installed_commit"),
            "source_commit_after": arts0.get("source_commit"),
            "backup_id": s.backup_id,
            "started_at": s.metadata.get("started_at"),
            "finished_at": s.metadata.get("finished_at"),
            "error": s.metadata.get("error"),
        }
    out["backups"] = backup_store.list_backups(inst)
    return out
