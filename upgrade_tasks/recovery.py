"""Recovery: the automatic rollback of a failed session, and ``invoke rollback``.

Both restore backups with :func:`upgrade_tasks.rollback.restore_backup` (every path
the run may have touched, nothing else), then check the restored server answers
and start again a headless server that was stopped. Signals are deferred while
files are restored.

``invoke rollback`` undoes the last upgrade, or every upgrade back to
``--backup ID``, newest first: each backup holds the install as it was before
its own upgrade, so restoring an older one alone would mix versions.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import backup_store, fsutil, gitcommit, offsite, report, signals
from . import venv as venv_mod
from .backup_store import Backup, verify_backup
from .checkpoint import Session, Status, list_sessions, now_iso, unfinished_session
from .errors import RollbackError, StateError, UpgradeError, UsageError
from .fsutil import atomic_write_json, sweep_temp_files
from .layout import Install, find_install
from .lock import UpgradeLock, probe_lock
from .mcp_client import probe_stdio
from .options import Options
from .plan import Plan
from .preflight import check_target
from .restart import restart_stopped, start_checked
from .rollback import RestoreResult, restore_backup
from .runstate import Run
from .server_process import find_running_servers, stop_server
from .trust import BACKUP_ID, Bad, ident, refuse, typed


def allowed_after(b: Backup, s: Session | None) -> dict[str, str]:
    """Path -> sha256 the upgrade that made backup ``b`` may have written (content a rollback
    may replace without saving it aside: anything else found there is a later edit). Backups
    record it themselves; for older ones it comes from the session's plan."""
    if b.writes is not None:
        return b.writes
    if s is None or s.plan is None:
        return {}
    out = Plan.from_json(s.plan).writes({})
    out.update(s.artifacts(3).get("server_tree", {}))
    return out


def revalidate(inst: Install, opts: Options) -> str:
    """Does the restored server answer? (A sentence for the report.)"""
    if not (inst.venv_python.exists() and inst.server_dir.is_dir()):
        return "not checked (no venv or server)"
    try:
        r = probe_stdio(inst.venv_python, inst.project, timeout=opts.probe_timeout)
    except UpgradeError as exc:
        return f"does NOT answer: {exc.what}"
    return f"answers with {len(r.tools)} tools"


def _stop_servers(inst: Install, opts: Options) -> bool:
    """Stop this install's running servers; whether one served over HTTP (restart it later)."""
    http = False
    if not opts.no_restart:
        for srv in find_running_servers(inst):
            http |= srv.transport in ("http", "dual")
            stop_server(srv.pid)
    return http


# -- the automatic rollback ---------------------------------------------------------------
def rollback_session(run: Run, s: Session, reason: str) -> RestoreResult:
    """Restore the session's backup after a failed phase (or finish an interrupted one).

    The session is marked ``rolling_back`` before the first file is touched, so a rollback
    killed half-way is finished by the next command. What follows the restore (pruning, the
    final status, the log line, the reports) is best effort: the install is already as before.
    """
    inst = run.install
    with signals.deferred():
        t0 = time.monotonic()
        if not s.backup_id:
            _best_effort(run, lambda: s.set_status(
                Status.ROLLED_BACK, error=reason, finished_at=now_iso(),
                rollback="nothing to restore (no backup was made)"))
            report.write_reports_or_warn(inst, s, run.say)
            run.release()
            return RestoreResult()
        try:
            if s.status != Status.ROLLING_BACK:
                s.set_status(Status.ROLLING_BACK, error=reason)
            for line in bring_back(run, [s]):
                run.say(f"  {line}")
            b = backup_store.load_backup(inst, s.backup_id)
            _stop_servers(inst, run.opts)
            res = restore_backup(inst, b, allowed_after(b, s))
            if res.moved_to is not None:  # moved back to .agent-os
                run.relocate(res.moved_to, s)
                inst = run.install
        except Exception as exc:
            err = exc if isinstance(exc, UpgradeError) else RollbackError(
                "the rollback stopped part-way", f"{type(exc).__name__}: {exc}",
                f"fix the cause, then rerun `invoke rollback --project {inst.project}` (it "
                "resumes)")
            _best_effort(run, lambda: s.set_status(Status.ROLLBACK_FAILED,
                                                   error=f"{reason}; rollback: {err.what}"))
            report.write_reports_or_warn(inst, s, run.say)
            run.release()
            raise err from exc
        _best_effort(run, lambda: fsutil.release(inst.reserve_file))
        _best_effort(run, lambda: venv_mod.prune_venvs(inst, backup_store.venv_refs(inst)))
        summary = (f"{res.summary()} in {time.monotonic() - t0:.2f}s; restored server: "
                   f"{revalidate(inst, run.opts)}")
        try:
            again = restart_stopped(inst, s, run.opts)
            if again:
                summary += f"; restarted over HTTP as pid {again['pid']} at {again['url']}"
        except UpgradeError as exc:
            summary += f"; the old server could NOT be restarted: {exc.what}"
        _best_effort(run, lambda: s.set_status(Status.ROLLED_BACK, error=reason,
                                               finished_at=now_iso(), rollback=summary))
        report.log_or_warn(
            inst, f"{now_iso()} | rolled back session {s.id} | {reason} | backup {s.backup_id}",
            run.say)
        report.write_reports_or_warn(inst, s, run.say)
        run.release()
        run.say(f"rollback complete: {summary}")
        return res


def _best_effort(run: Run, write: Callable[[], object]) -> None:
    try:
        write()
    except OSError as exc:
        run.say(f"  warning: bookkeeping not written ({exc.strerror or exc})")


# -- invoke rollback ------------------------------------------------------------------------------
@dataclass
class Chain:
    """The backups to restore, newest first, each with the session that made it."""

    target: str
    links: list[tuple[str, Session | None]]


def _nothing_to_roll_back(inst: Install) -> UsageError:
    if inst.lock_file.exists() and not probe_lock(inst.lock_file):
        # a run killed before its session existed may have left a temp file of its lock
        # record; sweep it under the lock (never while another run holds it)
        sweeper = UpgradeLock(inst.lock_file, inst.lock_owner_file)
        try:
            sweeper.acquire("rollback", " ".join(sys.argv[:6]))
            sweep_temp_files({inst.root, inst.state_dir})
        except UpgradeError:
            pass
        finally:
            sweeper.release()
    return UsageError(
        "nothing to roll back",
        f"no upgrade has made a backup in {inst.backups_dir} (or they were pruned)",
        "nothing to do: the install was not changed by an upgrade",
    )


def _abort_unstarted(inst: Install, un: Session) -> str:
    """The unfinished run never completed its backup, so it changed nothing: mark it aborted."""
    lock = UpgradeLock(inst.lock_file, inst.lock_owner_file)
    lock.acquire("rollback", " ".join(sys.argv[:6]))
    try:
        if un.backup_id:
            shutil.rmtree(inst.backups_dir / (un.backup_id + ".partial"), ignore_errors=True)
        un.set_status(Status.ABORTED, finished_at=now_iso(),
                      error="interrupted before its backup was complete; nothing was changed")
        report.log_or_warn(inst, f"{now_iso()} | aborted session {un.id} | "
                           "interrupted before any change", print)
    finally:
        lock.release()
    return (f"session {un.id} was interrupted before it changed anything; marked aborted. "
            "Nothing to restore.")


def last_undoable(inst: Install, ids: list[str]) -> str | None:
    """The backup ``invoke rollback`` (no ``--backup``) restores: the newest one whose upgrade
    was not already rolled back or aborted; None when there is none (``invoke status`` offers
    a rollback only then, so the command it suggests works)."""
    by_backup = {s.backup_id: s for s in list_sessions(inst) if s.backup_id}
    live = [bid for bid in ids if bid not in by_backup
            or by_backup[bid].status not in (Status.ROLLED_BACK, Status.ABORTED)]
    return live[-1] if live else None


def _revert_git(inst: Install, s: Session) -> str:
    """After the files of an upgrade made with ``--git-commit`` are restored: a commit that
    records it (a revert of the upgrade's commit), or exactly why it was not made. The rollback
    itself has succeeded either way."""
    upgrade_sha = str(s.artifacts(5)["git_commit"])
    a0 = s.artifacts(0)
    old, new = str(a0.get("installed_commit") or "unknown")[:7], str(a0.get("source_commit"))[:7]
    repo = gitcommit.repo_of(inst.project)
    if repo is None or s.plan is None:
        return (f"git: the revert of {upgrade_sha[:10]} was NOT committed: the project is no "
                "longer in a git repository (the files are restored)")
    message = (f"praxis-os: revert upgrade {old} -> {new}\n\nThe rollback restored the files of "
               f"upgrade session {s.id}.\n\nThis reverts commit {upgrade_sha}.")
    try:
        sha = gitcommit.revert_paths(repo, upgrade_sha, Plan.from_json(s.plan).changed_paths(inst),
                                     message)
    except UpgradeError as exc:
        return (f"git: the revert of {upgrade_sha[:10]} was NOT committed (the files are restored): "
                f"{exc.why}; {exc.hint}")
    return (f"git: revert commit {sha[:10]} (of {upgrade_sha[:10]})" if sha else
            f"git: nothing to commit for the revert of {upgrade_sha[:10]} (already as before)")


def plan_chain(inst: Install, ids: list[str], wanted: str, un: Session | None) -> Chain:
    """Which backups ``invoke rollback`` restores, newest first."""
    if wanted:
        target = wanted
    elif un is not None and un.backup_id:
        target = un.backup_id
    else:
        last = last_undoable(inst, ids)
        if last is None:
            raise UsageError(
                "nothing to roll back",
                "every upgrade with a backup here was already rolled back",
                "pass --backup ID to restore a specific backup again (see `invoke status`)",
            )
        target = last
    if target not in ids:
        raise UsageError(
            f"backup {target} not found",
            f"available: {', '.join(ids)}",
            "pass one of them with --backup ID",
        )
    sessions = {s.id: s for s in list_sessions(inst)}
    links: list[tuple[str, Session | None]] = []
    for bid in reversed(ids[ids.index(target):]):  # ``ids`` is in backup order, oldest first
        b = backup_store.load_backup(inst, bid)
        sess = sessions.get(str(b.manifest.get("session_id")))
        if bid != target and sess is not None and sess.status in (Status.ROLLED_BACK,
                                                                  Status.ABORTED):
            continue
        links.append((bid, sess))
    return Chain(target, links)


def _restore_chain(run: Run, chain: Chain) -> list[str]:
    done = []
    for bid, sess in chain.links:
        inst = run.install  # (a restore may move the install back to .agent-os)
        b = backup_store.load_backup(inst, bid)
        try:
            res = restore_backup(inst, b, allowed_after(b, sess))
            if res.moved_to is not None:
                run.relocate(res.moved_to, sess, *(s for _b, s in chain.links))
                inst = run.install
        except Exception as exc:
            err = exc if isinstance(exc, UpgradeError) else RollbackError(
                "the rollback stopped part-way", f"{type(exc).__name__}: {exc}",
                f"rerun `invoke rollback --project {inst.project}` (it resumes), or restore "
                f"by hand from {b.path}/files/")
            if sess is not None:
                sess.set_status(Status.ROLLBACK_FAILED, error=err.what)
            raise err from exc
        done.append(f"{bid}: {res.summary()}")
        if sess is not None:
            sess.set_status(Status.ROLLED_BACK, finished_at=now_iso(),
                            rollback=f"by hand from backup {bid}: {res.summary()}",
                            error=sess.error or "rolled back by hand")
            report.write_reports_or_warn(inst, sess, run.say)
        report.log_or_warn(
            inst, f"{now_iso()} | rolled back by hand to backup {bid} | "
            f"session {sess.id if sess else 'unknown'}", run.say)
    return done


def read_journal(inst: Install) -> Chain | None:
    """The chain of an ``invoke rollback`` that did not finish (``None``: there is none)."""
    try:
        raw = json.loads(inst.rollback_journal.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise StateError(f"the rollback journal {inst.rollback_journal} is unreadable", str(exc),
                         f"move it aside (mv {inst.rollback_journal} "
                         f"{inst.rollback_journal}.broken) and run `invoke rollback` again"
                         ) from exc
    try:
        typed(raw, dict, "journal")
        target = ident(raw.get("target"), BACKUP_ID, "target")
        ids = [ident(b, BACKUP_ID, "chain[]") for b in typed(raw.get("chain"), list, "chain")]
    except Bad as exc:
        raise refuse(inst.rollback_journal, exc, f"move it aside (mv {inst.rollback_journal} "
                     f"{inst.rollback_journal}.broken) and run `invoke rollback` again") from None
    by_backup = {s.backup_id: s for s in list_sessions(inst) if s.backup_id}
    return Chain(target, [(bid, by_backup.get(bid)) for bid in ids])


def finish_interrupted(run: Run) -> str | None:
    """Finish an ``invoke rollback`` that was killed half-way (every restore is idempotent, so
    the whole chain is simply run again); ``None`` when there is none. Takes the lock."""
    chain = read_journal(run.install)
    if chain is None:
        return None
    run.take_lock("rollback")
    run.say(f"an interrupted rollback to backup {chain.target} was found; finishing it first")
    with signals.deferred():
        done = _restore_chain(run, chain)
        fsutil.durable_unlink(run.install.rollback_journal)
    return f"finished the interrupted rollback to backup {chain.target}: " + "; ".join(done)


def bring_back(run: Run, sessions: list[Session]) -> list[str]:
    """Backups also kept off the machine (``--backup-to``) are fetched back, checked against
    the manifest that was pushed, when the local copy is missing or damaged; one line each."""
    out = []
    for s in sessions:
        rec, bid = s.artifacts(1).get("offsite"), s.backup_id
        if not isinstance(rec, dict) or not bid:
            continue
        try:
            verify_backup(backup_store.load_backup(run.install, bid))
            continue
        except (UpgradeError, OSError):
            pass
        dest = offsite.parse_destination(str(rec.get("spec", "")))
        offsite.fetch(dest, bid, run.install.backups_dir, run.connect,
                      expect_manifest_sha256=rec.get("manifest_sha256"))
        out.append(f"fetched backup {bid} back from {rec.get('where') or dest.spec} (the local "
                   "copy was missing or damaged)")
    return out


def manual_rollback(opts: Options, connect: Callable[[Any], Any] | None = None) -> str:
    """``invoke rollback``: restore the latest backup (or ``--backup ID``), newest first.
    ``connect``: how to reach an SFTP ``--backup-to`` destination (see :class:`Run`)."""
    inst = find_install(opts.project)
    check_target(inst)
    signals.install_handlers()
    run = Run.of(opts)
    run.connect = connect
    try:
        finished = finish_interrupted(run)
    finally:
        run.release()
    if finished is not None:
        return finished + f"\n  restored server: {revalidate(run.install, opts)}"
    fetched = bring_back(run, [s for s in list_sessions(inst)
                               if s.status not in (Status.ROLLED_BACK, Status.ABORTED)])
    ids = backup_store.list_backups(inst)
    un = unfinished_session(inst)
    if not ids and un is None:
        raise _nothing_to_roll_back(inst)
    if un is not None and not opts.backup and (not un.backup_id or un.backup_id not in ids):
        return _abort_unstarted(inst, un)
    chain = plan_chain(inst, ids, opts.backup, un)
    run.take_lock("rollback")
    sweep_temp_files({inst.root, inst.state_dir})
    try:
        with signals.deferred():
            # the intent first: a rollback killed half-way is finished by the next command
            atomic_write_json(inst.rollback_journal, {
                "target": chain.target, "chain": [bid for bid, _s in chain.links],
                "started_at": now_iso()})
            http_was_running = _stop_servers(inst, opts)
            t0 = time.monotonic()
            done = _restore_chain(run, chain)
            inst = run.install  # (moved back to .agent-os, when the chain's upgrade moved it)
            fsutil.durable_unlink(inst.rollback_journal)
        venv_mod.prune_venvs(inst, backup_store.venv_refs(inst))
        _best_effort(run, lambda: fsutil.release(inst.reserve_file))
        restore_s = time.monotonic() - t0
    finally:
        run.release()
    lines = ["rollback complete:"] + [f"  {d}" for d in [*fetched, *done]]
    lines.append(f"  restored in {restore_s:.2f}s (the server's check follows)")
    lines += [f"  {_revert_git(inst, sess)}" for _bid, sess in chain.links
              if sess is not None and sess.artifacts(5).get("git_commit")]
    lines.append(f"  restored server: {revalidate(inst, opts)}")
    if http_was_running:
        try:
            r = start_checked(inst, opts)
            lines.append(f"  restarted over HTTP as pid {r['pid']} at {r['url']}")
        except UpgradeError as exc:
            lines.append(f"  the restored server could NOT be restarted: {exc.what} ({exc.why})")
    return "\n".join(lines)
