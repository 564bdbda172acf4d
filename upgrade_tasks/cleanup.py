"""Phase 5 (cleanup): the version record, one UPDATE_LOG line, old backups and
environments pruned, the reports. Each step is idempotent; the session is marked
completed only after they are written, so a crash here resumes here (exit 8 tells
the user to rerun ``invoke upgrade`` when a step fails)."""

from __future__ import annotations

from . import backup_store, faults, fsutil, gitcommit, index, report
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
    committed = git_commit(run) if run.started_with("git_commit") else ""
    return f"pruned {len(pruned)} old backup(s)" + committed


def git_commit(run: Run) -> str:
    """Commit exactly this upgrade's files (checked ready in phase 0); the commit's id goes
    into the checkpoint, for a rollback's revert commit. A rerun after a crash between the
    commit and its record finds the commit by its ``Session:`` line."""
    s, src, plan = run.need()
    inst = run.install
    arts = s.artifacts(5)
    if s.has_step("git:committed"):
        return f"; git commit {str(arts.get('git_commit') or 'none')[:10]}"
    repo = gitcommit.repo_of(inst.project)
    if repo is None:
        raise gitcommit.GitCommitError("the upgrade was applied but its git commit was not made",
                                       f"{inst.project} is no longer in a git repository",
                                       "commit the upgrade's files yourself, or ignore this")
    c = s.artifacts(2)
    counts = {"added": len(c.get("added", [])), "updated": len(c.get("updated", [])),
              "removed": len(c.get("removed", [])), "conflicts": len(c.get("conflicts", []))}
    message = gitcommit.message_for(plan.installed_commit, src.commit, counts,
                                    list(c.get("attention", [])), s.id)
    sha = gitcommit.commit_paths(repo, plan.changed_paths(inst), message)
    if sha is None:
        sha = gitcommit.commit_of_session(repo, s.id)  # made by an attempt killed before its record
    arts["git_commit"] = sha
    arts["git_repo"] = str(repo)
    s.step("git:committed")
    return f"; git commit {sha[:10]}" if sha else "; nothing to commit to git"

