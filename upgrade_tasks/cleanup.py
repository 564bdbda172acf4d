"""Phase 5 (cleanup): the version record, one UPDATE_LOG line, old backups and
environments pruned, the reports. Each step is idempotent; the session is marked
completed only after they are written, so a crash here resumes here (exit 8 tells
the user to rerun ``invoke upgrade`` when a step fails)."""

from __future__ import annotations

from . import backup_store, faults, fsutil, index, report
from . import venv as venv_mod
from .checkout import is_git_url
from .checkpoint import now_iso
from .fsutil import atomic_write_bytes
from .redact import redact
from .runstate import Run


def step(run: Run) -> str:
    s, src, plan = run.need()
    inst = run.install
    prev = plan.installed_commit
    where = (redact(src.spec) if is_git_url(src.spec) or src.ref else str(src.root)) + (
        f" @ {src.ref}" if src.ref else "")
    report.write_version_record(inst, src.commit, prev, where, s.id)
    c = s.artifacts(2)
    line = (f"{now_iso()} | upgraded {(prev or 'unknown')[:10]} -> {src.short} | "
            f"added {len(c.get('added', []))}, updated {len(c.get('updated', []))}, "
            f"removed {len(c.get('removed', []))}, conflicts {len(c.get('conflicts', []))} | "
            f"backup {s.backup_id} | session {s.id}")
    report.append_update_log_once(inst, line, s.id)
    if plan.index_action == "defer" and not inst.path(index.FLAG).exists():
        # after validation, so the probe did not rebuild the index; the server's next start does
        atomic_write_bytes(inst.path(index.FLAG), b"", mode=0o644)
    faults.point("cleanup:logged")
    pruned = backup_store.prune_backups(inst, run.opts.keep_backups, s.backup_id)
    pruned_envs = venv_mod.prune_venvs(inst, backup_store.venv_refs(inst))
    s.artifacts(5).update({"pruned_venvs": pruned_envs, "old_backups_pruned": pruned,
                           "update_log_appended": True})
    fsutil.release(inst.reserve_file)
    s.note(finished_at=now_iso())
    report.write_reports_or_warn(inst, s, run.say)
    return f"pruned {len(pruned)} old backup(s)"
