"""Phase 1 (backup): a verified backup of every path the upgrade may touch, made once per
session, before the first destructive step. What a backup holds and how it is made and
checked is :mod:`upgrade_tasks.backup_store`."""

from __future__ import annotations

from pathlib import Path

from . import fsutil, offsite
from .backup_store import create_backup, load_backup, new_backup_id, reserve_size, verify_backup
from .errors import BackupError
from .mcp_client import scan_registered_tools
from .runstate import Run


def step(run: Run) -> str:
    """Phase 1: the backup (made once per session; a resumed run verifies it)."""
    s, src, plan = run.need()
    inst = run.install
    # The tools the installed server declares (a static scan: starting the old server only to
    # list them cost a server start per upgrade, ~0.07 CPU s; validation starts the new one).
    old_tools: list[str] | None = None
    if inst.server_dir.is_dir():  # (the scan raises only for a missing directory)
        old_tools = sorted(scan_registered_tools(inst.server_dir))
    s.artifacts(1)["old_tools"] = old_tools
    bid = s.artifacts(1).get("backup_id") or new_backup_id()
    s.artifacts(1)["backup_id"] = bid
    s.save()
    if (inst.backups_dir / bid).exists():
        b = load_backup(inst, bid)
        verify_backup(b)
    else:
        writes = plan.writes({t: f.sha256 for t, f in src.server_files.items()})
        b = create_backup(inst, plan, s, bid, writes)
    s.artifacts(1)["venv_before"] = b.venv
    size = sum(int(e.get("size", 0)) for e in b.entries.values())
    s.artifacts(1).update({"backup_path": str(b.path), "files_backed_up": len(b.entries),
                           "backup_size": size, "integrity_verified": True})
    # room for the rollback, held until the session ends: a disk that fills up during phases
    # 2-4 must not stop the upgrade from being undone (the tree rebuilt beside the live one,
    # the largest file replaced, the checkpoint and the reports)
    room = reserve_size(b)
    fsutil.reserve(inst.reserve_file, room)
    s.artifacts(1)["reserve_bytes"] = room
    tools = "unknown" if old_tools is None else str(len(old_tools))
    copied = copy_offsite(run, b.path, bid)
    return (f"backup {bid}: {len(b.entries)} paths, {size / 1e3:.1f} kB, verified; "
            f"old server declares {tools} tools" + (f"; {copied}" if copied else ""))


def copy_offsite(run: Run, path: Path, bid: str) -> str:
    """``--backup-to``: the verified backup copied off the machine and verified there, before
    anything is changed (a failure stops the upgrade here: exit 3, nothing changed). Recorded
    in the checkpoint with the manifest's checksum, so a rollback fetches back exactly it."""
    spec = str(run.started_with("backup_to") or "")
    s = run.need()[0]
    if not spec or s.has_step("backup:offsite"):
        return ""
    dest = offsite.parse_destination(spec)
    line = offsite.push(path, bid, dest, run.connect)
    s.artifacts(1)["offsite"] = {"spec": spec, "where": dest.where(bid),
                                 "manifest_sha256": offsite.manifest_sha256(path)}
    s.step("backup:offsite")
    return line


def recheck(run: Run) -> bool:
    """Is the session's backup still intact? (A resume asks before going on.)"""
    s = run.session
    assert s is not None
    bid = s.backup_id
    if not bid or not (run.install.backups_dir / bid).exists():
        return False
    try:
        verify_backup(load_backup(run.install, bid))
    except BackupError:
        return False
    return True
