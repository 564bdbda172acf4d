"""The phase engine: one ordered list of phase functions, a checkpoint after each,
automatic rollback when phase 2, 3 or 4 fails or the user presses Ctrl-C.

Each Invoke phase task calls :func:`run_phase` with its phase number; the
tasks are chained with ``pre=`` so ``invoke validate`` runs 0..4. Within one
process the :class:`Run` (lock, session, source, plan) is shared by all phase
tasks, and a phase already completed in the session is skipped, so a rerun
after a crash resumes at the first incomplete phase.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from . import backup as backup_mod
from . import content as content_mod
from . import faults, report
from . import server as server_mod
from . import venv as venv_mod
from .checkpoint import (
    ABORTED,
    COMPLETED,
    PHASES,
    ROLLBACK_FAILED,
    ROLLED_BACK,
    ROLLING_BACK,
    RUNNING,
    Session,
    list_sessions,
    now_iso,
    unfinished_session,
)
from .errors import (
    BackupError,
    CleanupError,
    Interrupted,
    PhaseError,
    PreflightError,
    ProbeError,
    RollbackError,
    UpgradeError,
    UsageError,
)
from .fsutil import sweep_temp_files
from .layout import Install
from .lock import UpgradeLock, describe_owner, probe_lock
from .mcp_client import probe_http, probe_stdio, scan_registered_tools, stderr_problems
from .options import Options
from .plan import NEW_SUFFIX, WRITES, Plan, attention_items, render_plan
from .preflight import PreflightResult, check_target, run_preflight
from .rollback import RestoreResult, restore_backup
from .server_process import find_running_servers, start_headless, stop_server
from .snapshot import snapshot_commit
from .source import Source, open_source
from .validate import validate_server

LAST = len(PHASES) - 1


def say(msg: str) -> None:
    print(msg, flush=True)


@dataclass
class Run:
    """Everything one process knows about the upgrade it is running."""

    opts: Options
    install: Install
    session: Session | None = None
    source: Source | None = None
    plan: Plan | None = None
    lock: UpgradeLock | None = None
    resumed: bool = False
    noop: bool = False
    notes: list[str] = field(default_factory=list)

    def need(self) -> tuple[Session, Source, Plan]:
        assert self.session is not None and self.source is not None and self.plan is not None
        return self.session, self.source, self.plan


_RUNS: dict[Path, Run] = {}


def get_run(opts: Options) -> Run:
    run = _RUNS.get(opts.project)
    if run is None or run.opts != opts:
        run = Run(opts, Install(opts.project))
        _RUNS[opts.project] = run
    return run


def forget_runs() -> None:
    for run in _RUNS.values():
        if run.lock:
            run.lock.release()
    _RUNS.clear()


# -- signals ------------------------------------------------------------------
def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_signal_handlers() -> None:
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _sigterm)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Ignore Ctrl-C/SIGTERM while a rollback runs; it must not be cut in half."""
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, old_term)


# -- start / resume -------------------------------------------------------------
def _lock(run: Run, session_id: str) -> None:
    if run.lock is None:
        lock = UpgradeLock(run.install.lock_file, run.install.lock_owner_file)
        lock.acquire(session_id, " ".join(sys.argv[:6]))
        run.lock = lock


def resume(run: Run, s: Session) -> None:
    """Attach this process to an unfinished session (lock, source, plan), re-checking it."""
    inst = run.install
    if s.status == ROLLING_BACK:
        _lock(run, s.id)
        say(f"session {s.id} failed and its rollback was interrupted; finishing the rollback")
        res = rollback_session(run, Session.load(s.path),
                               reason=str(s.data["metadata"].get("error", "interrupted")))
        raise PhaseError(
            "the previous upgrade failed; its interrupted rollback has now been completed",
            str(s.data["metadata"].get("error", "")),
            f"the install is as before ({res.summary()}); rerun `invoke upgrade` to try again",
        )
    if s.status == ROLLBACK_FAILED:
        raise RollbackError(
            f"a previous rollback of session {s.id} failed",
            str(s.data["metadata"].get("error", "see its report")),
            f"run `invoke rollback --project {inst.project}` again, or restore by hand from "
            f"{inst.backups_dir / (s.backup_id or '?')}",
        )
    arts0 = s.artifacts(0)
    spec = arts0.get("source_spec") or arts0.get("source_path", "")
    if run.opts.source and run.opts.source not in (spec, arts0.get("source_path")):
        if snapshot_commit(run.opts.source) == arts0.get("source_commit"):
            spec = run.opts.source  # the same commit's snapshot, uploaded again under a new name
        else:
            raise UsageError(
                f"an unfinished upgrade (session {s.id}) is in progress from {spec}",
                f"--source {run.opts.source} differs from that session's source",
                f"resume it with `invoke upgrade --project {inst.project}` (no --source), or undo it "
                f"with `invoke rollback --project {inst.project}`",
            )
    _lock(run, s.id)
    # reload under the lock: another process may have finished it meanwhile
    s = Session.load(s.path)
    if s.status != RUNNING:
        raise UsageError(
            f"session {s.id} finished while we waited ({s.status})",
            "another process completed or rolled it back",
            "run `invoke status` and start again if needed",
        )
    src = open_source(str(spec), commit=str(arts0.get("source_commit") or "") or None)
    if src.commit != arts0.get("source_commit"):
        raise PreflightError(
            f"the source moved since session {s.id} started",
            f"it was at {str(arts0.get('source_commit'))[:10]}, now at {src.short}",
            f"check out {arts0.get('source_commit')} in {src.root} to resume, or run "
            f"`invoke rollback --project {inst.project}`",
        )
    run.session, run.source, run.resumed = s, src, True
    run.plan = Plan.from_json(s.data["plan"])
    sweep_temp_files({inst.path(rel).parent for rel in run.plan.touched_paths()}
                     | {inst.root, inst.state_dir})
    run.lock.update_session(s.id) if run.lock else None
    nxt = next((i for i in range(len(PHASES)) if i not in s.completed), LAST)
    say(f"resuming upgrade session {s.id} at phase {nxt} ({PHASES[nxt]})")
    recheck_last(run)


def recheck_last(run: Run) -> None:
    """Re-check the result of the last completed phase before continuing."""
    s, src, plan = run.need()
    if not s.completed:
        return
    last = max(s.completed)
    inst = run.install
    if last <= 1:
        if s.backup_id and (inst.backups_dir / s.backup_id).exists():
            try:
                backup_mod.verify_backup(backup_mod.load_backup(inst, s.backup_id))
                say(f"  rechecked backup {s.backup_id}: intact")
            except BackupError as exc:
                # nothing has been changed yet: make the backup again
                say(f"  recheck: backup {s.backup_id} is damaged ({exc.why}); making it again")
                shutil.rmtree(inst.backups_dir / s.backup_id, ignore_errors=True)
                s.artifacts(1).pop("backup_id", None)
                s.data["completed_phases"] = [p for p in s.completed if p != 1]
                s.save()
    elif last == 2:
        bad = content_mod.verify_content(inst, plan)
        if bad:
            say(f"  recheck of phase 2 found {len(bad)} path(s) not as planned; re-running it")
            s.data["completed_phases"] = [p for p in s.completed if p != 2]
            s.save()
        else:
            say("  rechecked phase 2 (content): all files as planned")
    elif last == 3:
        bad = server_mod.verify_server(inst, src, plan)
        if bad:
            say("  recheck of phase 3 found mcp_server/ not as planned; re-running it")
            s.data["completed_phases"] = [p for p in s.completed if p != 3]
            s.data["steps"] = [x for x in s.data.get("steps", []) if not x.startswith("server:")]
            s.save()
        else:
            say("  rechecked phase 3 (server): mcp_server/ as planned")


def start(run: Run) -> None:
    """Phase 0 for a new session, or attach to the unfinished one."""
    inst = run.install
    check_target(inst)
    unfinished = unfinished_session(inst.state_dir)
    if unfinished is not None:
        resume(run, unfinished)
        return
    t0 = time.monotonic()
    say(f"[0/{LAST}] {PHASES[0]} ...")
    o = run.opts
    tty = not o.yes and sys.stdin is not None and sys.stdin.isatty()
    pre = run_preflight(inst, o.source, o.on_conflict, o.deps, o.no_restart, o.allow_downgrade,
                        interactive=tty)
    if is_noop(pre.plan):
        run.noop = True
        say(f"[0/{LAST}] {PHASES[0]} ok ({time.monotonic() - t0:.2f}s): already up to date at "
            f"{pre.source.short}; nothing to do")
        return
    if tty:
        say(render_plan(pre.plan, inst))
        answer = input("Proceed with the upgrade? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise Interrupted("upgrade cancelled; nothing was changed", "", "")
    s = Session.new(inst.state_dir, o.as_dict())
    _lock(run, s.id)
    sweep_temp_files({inst.root, inst.state_dir})  # left by a run killed mid-write
    # re-check under the lock: the world may have changed while we planned
    if unfinished_session(inst.state_dir) is not None:
        raise UsageError(
            "another upgrade session appeared while planning",
            "a concurrent run started and stopped before us",
            "run `invoke status`, then `invoke upgrade` again",
        )
    s.artifacts(0).update(pre.artifacts())
    s.data["plan"] = pre.plan.to_json()
    run.session, run.source, run.plan = s, pre.source, pre.plan
    s.complete_phase(0, time.monotonic() - t0, pre.summary())
    say(f"[0/{LAST}] {PHASES[0]} ok ({time.monotonic() - t0:.2f}s): {pre.summary()}")


def is_noop(plan: Plan) -> bool:
    """Already at the target commit with nothing to write: no session, no backup."""
    return (
        plan.installed_commit == plan.source_commit
        and not any(a.action in WRITES for a in plan.actions)
        and not plan.server.changed
        and plan.server.deps_action == "none"
    )


# -- the phases -------------------------------------------------------------------
def phase_backup(run: Run) -> str:
    s, _src, plan = run.need()
    inst = run.install
    # The tools the installed server declares (a static scan: starting the old server only to
    # list them cost a server start per upgrade, ~0.07 CPU s; validation starts the new one).
    old_tools: list[str] | None = None
    if inst.server_dir.is_dir():  # (the scan raises only for a missing directory)
        old_tools = sorted(scan_registered_tools(inst.server_dir))
    s.artifacts(1)["old_tools"] = old_tools
    bid = s.artifacts(1).get("backup_id") or backup_mod.new_backup_id()
    s.artifacts(1)["backup_id"] = bid
    s.save()
    existing = inst.backups_dir / bid
    if existing.exists():
        b = backup_mod.load_backup(inst, bid)
        backup_mod.verify_backup(b)
    else:
        b = backup_mod.create_backup(inst, plan, s, bid)
    s.artifacts(1)["venv_before"] = b.venv
    size = sum(int(e.get("size", 0)) for e in b.entries.values())
    s.artifacts(1).update({"backup_path": str(b.path), "files_backed_up": len(b.entries),
                           "backup_size": size, "integrity_verified": True})
    tools = "unknown" if old_tools is None else str(len(old_tools))
    return (f"backup {bid}: {len(b.entries)} paths, {size / 1e3:.1f} kB, verified; "
            f"old server declares {tools} tools")


def phase_content(run: Run) -> str:
    s, src, plan = run.need()
    # stop the old server (and its index watcher) before touching content it reads
    server_mod.stop_step(run.install, plan, s, run.opts.no_restart)
    res = content_mod.run_content(run.install, src, plan)
    s.artifacts(2).update({"added": res.added, "updated": res.updated, "removed": res.removed,
                           "conflicts": res.conflicts, "kept": res.kept,
                           "attention": attention_items(plan), "decisions": plan.decisions,
                           "gitignore_not_ignored": res.not_ignored})
    bad = content_mod.verify_content(run.install, plan)
    if bad:
        raise PhaseError(
            f"{len(bad)} file(s) are not as planned after the content phase",
            "first: " + ", ".join(bad[:5]),
            "this needs investigation; the upgrade was rolled back",
        )
    return res.summary()


def phase_server(run: Run) -> str:
    s, src, plan = run.need()
    o = run.opts
    res = server_mod.run_server(run.install, src, plan, s, o.no_restart,
                                server_mod.DepsOptions(o.find_links, o.offline, o.post_install))
    return res.summary()


def phase_validate(run: Run) -> str:
    s, _src, _plan = run.need()
    old_tools = s.artifacts(1).get("old_tools")
    v = validate_server(run.install, old_tools, run.opts.probe_timeout, run.opts.smoke_tools)
    s.artifacts(4).update(v.to_json())
    summary = v.summary()
    restarted = restart_stopped(run.install, s, run.opts)
    if restarted:
        s.artifacts(4)["restarted"] = restarted
        summary += (f"; restarted over HTTP as pid {restarted['pid']} at {restarted['url']} "
                    f"(healthy in {restarted['seconds']:.2f}s)")
    return summary


def wait_http(url: str, timeout: float) -> Any:
    """Health check over HTTP MCP, retrying while the port does not accept connections yet
    (servers write their state file before their transport listens)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe_http(url, timeout=max(1.0, deadline - time.monotonic()))
        except ProbeError as exc:
            if "could not reach" not in exc.what or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def restart_stopped(inst: Install, s: Session, opts: Options) -> dict[str, Any] | None:
    """Start again, headless over HTTP, a server we stopped that was not the IDE's (http/dual)."""
    stopped = [x for x in s.artifacts(3).get("stopped", [])
               if x.get("transport") in ("http", "dual")]
    if not stopped or opts.no_restart:
        return None
    for srv in find_running_servers(inst):  # a previous attempt of this step
        stop_server(srv.pid)
    return start_checked(inst, opts)


def start_checked(inst: Install, opts: Options) -> dict[str, Any]:
    """Start the server headless over HTTP and health-check it (MCP over HTTP, no errors in
    its log); a server that fails the check is stopped again."""
    r = start_headless(inst, timeout=max(10.0, opts.probe_timeout))
    try:
        probe = wait_http(r.url, opts.probe_timeout)
        log_new = Path(r.log).read_text(errors="replace").rsplit("--- started by praxis-upgrade", 1)[-1]
        problems = stderr_problems(log_new)
        if problems:
            raise ProbeError("the restarted MCP server logged errors", "; ".join(problems[:3]),
                             f"see {r.log}")
    except BaseException:
        stop_server(r.pid)
        raise
    return {"pid": r.pid, "url": r.url, "seconds": round(r.seconds + probe.duration_s, 3),
            "tools": list(probe.tools), "log": r.log}


def phase_cleanup(run: Run) -> str:
    """Version record, log line, pruning; each idempotent. The session is marked completed
    only after they are written (by :func:`run_phase`), so a crash here resumes here."""
    s, src, plan = run.need()
    inst = run.install
    prev = plan.installed_commit
    report.write_version_record(inst, src.commit, prev, str(src.root), s.id)
    c = s.artifacts(2)
    line = (f"{now_iso()} | upgraded {(prev or 'unknown')[:10]} -> {src.short} | "
            f"added {len(c.get('added', []))}, updated {len(c.get('updated', []))}, "
            f"removed {len(c.get('removed', []))}, conflicts {len(c.get('conflicts', []))} | "
            f"backup {s.backup_id} | session {s.id}")
    report.append_update_log_once(inst, line, s.id)
    faults.point("cleanup:logged")
    pruned = backup_mod.prune_backups(inst, run.opts.keep_backups, s.backup_id)
    pruned_envs = venv_mod.prune_venvs(inst, backup_mod.venv_refs(inst))
    s.artifacts(5).update({"pruned_venvs": pruned_envs,"lock_released": True, "old_backups_pruned": pruned,
                           "update_log_appended": True})
    s.data["metadata"]["finished_at"] = now_iso()
    _write_reports(run)
    return f"pruned {len(pruned)} old backup(s)"


PHASE_FUNCS: dict[int, Callable[[Run], str]] = {
    1: phase_backup,
    2: phase_content,
    3: phase_server,
    4: phase_validate,
    5: phase_cleanup,
}


# -- running one phase ----------------------------------------------------------------
def run_phase(opts: Options, phase: int) -> None:
    """Run phase ``phase`` of the current upgrade (skipping it when already done)."""
    if opts.hosts:
        return  # the phases run on each host (upgrade_tasks/fleet.py), not here
    run = get_run(opts)
    if opts.dry_run:
        if phase == 0:
            dry_run(run)
        return
    install_signal_handlers()
    if run.noop:
        if phase == LAST:
            _RUNS.pop(run.opts.project, None)
        return
    try:
        if run.session is None:
            start(run)
    except KeyboardInterrupt:
        _release(run)
        raise Interrupted("interrupted before any change", "Ctrl-C during pre-flight",
                          "nothing was changed; rerun when ready") from None
    except BaseException:
        _release(run)
        raise
    if run.noop:
        if phase == LAST:
            _RUNS.pop(run.opts.project, None)
        return
    s = run.session
    assert s is not None
    if phase in s.completed:
        if phase == LAST:
            _finish(run)
        return
    t0 = time.monotonic()
    say(f"[{phase}/{LAST}] {PHASES[phase]} ...")
    try:
        s.data["current_phase"] = phase
        faults.point(f"phase-start:{PHASES[phase]}")
        summary = PHASE_FUNCS[phase](run)
        if phase == LAST:
            s.data["status"] = COMPLETED
        s.complete_phase(phase, time.monotonic() - t0, summary)
        say(f"[{phase}/{LAST}] {PHASES[phase]} ok ({time.monotonic() - t0:.2f}s): {summary}")
    except BaseException as exc:  # noqa: B036 - Ctrl-C must roll back too
        _on_failure(run, phase, exc, time.monotonic() - t0)
    if phase == LAST:
        _finish(run)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, UpgradeError):
        return exc.what + (f" ({exc.why})" if exc.why else "")
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C or SIGTERM)"
    return f"{type(exc).__name__}: {exc}"


def _on_failure(run: Run, phase: int, exc: BaseException, dt: float) -> None:
    s = run.session
    assert s is not None
    what = _describe(exc)
    say(f"[{phase}/{LAST}] {PHASES[phase]} FAILED ({dt:.2f}s): {what}")
    try:
        s.fail_phase(phase, dt, what)
    except OSError:
        pass
    if phase == 1:
        with signals_deferred():
            bid = s.backup_id
            if bid:
                for p in (run.install.backups_dir / bid, run.install.backups_dir / (bid + ".partial")):
                    if p.exists():
                                shutil.rmtree(p, ignore_errors=True)
            s.set_status("aborted", error=what, finished_at=now_iso())
            _write_reports(run)
            _release(run)
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted("interrupted during the backup", "nothing was changed",
                              "rerun `invoke upgrade` when ready") from exc
        raise PreflightError(
            "the backup could not be made; nothing was changed",
            what,
            "fix the cause (disk space? permissions?) and rerun `invoke upgrade`",
        ) from exc
    if phase == LAST:
        _release(run)
        raise CleanupError("the upgrade was applied and validated, but its cleanup failed", what,
                           "rerun `invoke upgrade` to finish the cleanup (reports, version record, "
                           "pruning)") from exc
    # phases 2, 3, 4: automatic rollback
    say(f"rolling back automatically (phase {phase} failed) ...")
    try:
        res = rollback_session(run, s, reason=f"phase {phase} ({PHASES[phase]}) failed: {what}")
    except UpgradeError as rb_exc:
        raise RollbackError(
            f"phase {phase} ({PHASES[phase]}) failed and the automatic rollback failed too",
            f"{what}; rollback: {rb_exc.what} ({rb_exc.why})",
            f"restore by hand from {run.install.backups_dir / (s.backup_id or '?')} "
            f"(files/ holds the originals, MANIFEST.json lists them), or rerun "
            f"`invoke rollback --project {run.install.project}`",
        ) from exc
    hint = ""
    if isinstance(exc, UpgradeError) and exc.hint:
        hint = exc.hint
    raise PhaseError(
        f"upgrade failed in phase {phase} ({PHASES[phase]}) and was rolled back",
        what,
        (hint + ". " if hint else "") + f"the install is as before ({res.summary()}); "
        f"report: {run.install.reports_dir / (s.id + '.md')}",
    ) from exc


def _release(run: Run) -> None:
    if run.lock is not None:
        run.lock.release()
        run.lock = None


def _write_reports(run: Run) -> tuple[Path, Path] | None:
    if run.session is None:
        return None
    try:
        return report.write_reports(run.install, run.session)
    except OSError as exc:
        say(f"warning: report not written: {exc}")
        return None


def _finish(run: Run) -> None:
    s = run.session
    assert s is not None
    paths = _write_reports(run)
    _release(run)
    arts3 = s.artifacts(3)
    say("")
    say(f"upgrade complete: {run.install.root} is at {run.need()[1].short}")
    for item in s.artifacts(2).get("attention", []):
        say(f"  needs your attention: {item}")
    for pat in s.artifacts(2).get("gitignore_not_ignored", []):
        say(f"  warning: git does not ignore {pat} (a rule in .gitignore overrides ours)")
    for st in arts3.get("stopped", []):
        say(f"  stopped the running MCP server pid {st['pid']} ({st['transport']}): "
            "reload it in your IDE (Cursor: Settings > MCP > toggle praxis-os) to use the new code")
    if arts3.get("restart_note"):
        say(f"  {arts3['restart_note']}")
    for n in run.notes:
        say(f"  note: {n}")
    if paths:
        say(f"  report: {paths[1]}")
    _RUNS.pop(run.opts.project, None)


# -- rollback --------------------------------------------------------------------
def _allowed_after(s: Session | None) -> dict[str, str]:
    """Path -> sha256 the session wrote there (content it may replace without saving aside)."""
    out: dict[str, str] = {}
    if s is None or "plan" not in s.data:
        return out
    plan = Plan.from_json(s.data["plan"])
    for a in plan.actions:
        for rel, sha in a.expected_after().items():
            if sha:
                out[rel] = sha
        if a.new_sha and a.action in ("add", "update", "conflict"):
            out[a.target + NEW_SUFFIX] = a.new_sha  # written instead when it met a change
    for rel, sha in s.artifacts(3).get("server_tree", {}).items():
        out[rel] = sha
    return out


def rollback_session(run: Run, s: Session, reason: str) -> RestoreResult:
    """Restore the session's backup (used by the automatic rollback)."""
    inst = run.install
    with signals_deferred():
        t0 = time.monotonic()
        if not s.backup_id:
            s.set_status(ROLLED_BACK, error=reason, finished_at=now_iso(),
                         rollback="nothing to restore (no backup was made)")
            _write_reports(run)
            _release(run)
            return RestoreResult()
        if s.status != ROLLING_BACK:
            s.set_status(ROLLING_BACK, error=reason)
        try:
            b = backup_mod.load_backup(inst, s.backup_id)
            if not run.opts.no_restart:
                for srv in find_running_servers(inst):
                    stop_server(srv.pid)
            res = restore_backup(inst, b, _allowed_after(s))
        except Exception as exc:
            err = exc if isinstance(exc, UpgradeError) else RollbackError(
                "the rollback stopped part-way", f"{type(exc).__name__}: {exc}",
                f"rerun `invoke rollback --project {inst.project}` (it resumes)")
            s.set_status(ROLLBACK_FAILED, error=f"{reason}; rollback: {err.what}")
            _write_reports(run)
            _release(run)
            raise err from exc
        venv_mod.prune_venvs(inst, backup_mod.venv_refs(inst))
        check = _revalidate(inst, run.opts)
        summary = f"{res.summary()} in {time.monotonic() - t0:.2f}s; restored server: {check}"
        try:
            again = restart_stopped(inst, s, run.opts)
            if again:
                summary += f"; restarted over HTTP as pid {again['pid']} at {again['url']}"
        except UpgradeError as exc:
            summary += f"; the old server could NOT be restarted: {exc.what}"
        s.set_status(ROLLED_BACK, error=reason, finished_at=now_iso(), rollback=summary)
        report.append_update_log(
            inst, f"{now_iso()} | rolled back session {s.id} | {reason} | backup {s.backup_id}")
        _write_reports(run)
        _release(run)
        say(f"rollback complete: {summary}")
        return res


def _revalidate(inst: Install, opts: Options) -> str:
    if not (inst.venv_python.exists() and inst.server_dir.is_dir()):
        return "not checked (no venv or server)"
    try:
        r = probe_stdio(inst.venv_python, inst.project, timeout=opts.probe_timeout)
    except UpgradeError as exc:
        return f"does NOT answer: {exc.what}"
    return f"answers with {len(r.tools)} tools"


def manual_rollback(opts: Options) -> str:
    """``invoke rollback``: restore the latest backup (or ``--backup ID``), newest first."""
    inst = Install(opts.project)
    check_target(inst)
    install_signal_handlers()
    ids = backup_mod.list_backups(inst)
    if not ids and unfinished_session(inst.state_dir) is None:
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
        raise UsageError(
            "nothing to roll back",
            f"no upgrade has made a backup in {inst.backups_dir} (or they were pruned)",
            "nothing to do: the install was not changed by an upgrade",
        )
    un = unfinished_session(inst.state_dir)
    if un is not None and not opts.backup and (not un.backup_id or un.backup_id not in ids):
        # the unfinished run never completed its backup, so it changed nothing
        lock = UpgradeLock(inst.lock_file, inst.lock_owner_file)
        lock.acquire("rollback", " ".join(sys.argv[:6]))
        try:
            if un.backup_id:
                shutil.rmtree(inst.backups_dir / (un.backup_id + ".partial"), ignore_errors=True)
            un.set_status("aborted", finished_at=now_iso(),
                          error="interrupted before its backup was complete; nothing was changed")
            report.append_update_log(inst, f"{now_iso()} | aborted session {un.id} | "
                                     "interrupted before any change")
        finally:
            lock.release()
        return (f"session {un.id} was interrupted before it changed anything; marked aborted. "
                "Nothing to restore.")
    sessions_by_backup: dict[str, Session] = {}
    for known in list_sessions(inst.state_dir):
        if known.backup_id:
            sessions_by_backup[known.backup_id] = known
    if opts.backup:
        target = opts.backup
    elif un is not None and un.backup_id:
        target = un.backup_id
    else:
        live = [bid for bid in ids if bid not in sessions_by_backup
                or sessions_by_backup[bid].status not in (ROLLED_BACK, ABORTED)]
        if not live:
            raise UsageError(
                "nothing to roll back",
                "every upgrade with a backup here was already rolled back",
                "pass --backup ID to restore a specific backup again (see `invoke status`)",
            )
        target = live[-1]
    if target not in ids:
        raise UsageError(
            f"backup {target} not found",
            f"available: {', '.join(ids)}",
            "pass one of them with --backup ID",
        )
    sessions = {s.id: s for s in list_sessions(inst.state_dir)}
    run = Run(opts, inst)
    lock = UpgradeLock(inst.lock_file, inst.lock_owner_file)
    lock.acquire("rollback", " ".join(sys.argv[:6]))
    run.lock = lock
    sweep_temp_files({inst.root, inst.state_dir})
    chain: list[tuple[str, Session | None]] = []
    for bid in reversed(ids):
        if bid < target:
            break
        b = backup_mod.load_backup(inst, bid)
        sess: Session | None = sessions.get(str(b.manifest.get("session_id")))
        if bid != target and sess is not None and sess.status in (ROLLED_BACK, ABORTED):
            continue
        chain.append((bid, sess))
    done = []
    http_was_running = False
    try:
        with signals_deferred():
            if not opts.no_restart:
                for srv in find_running_servers(inst):
                    http_was_running |= srv.transport in ("http", "dual")
                    stop_server(srv.pid)
            for bid, sess in chain:
                b = backup_mod.load_backup(inst, bid)
                try:
                    res = restore_backup(inst, b, _allowed_after(sess))
                except Exception as exc:
                    err = exc if isinstance(exc, UpgradeError) else RollbackError(
                        "the rollback stopped part-way", f"{type(exc).__name__}: {exc}",
                        f"rerun `invoke rollback --project {inst.project}` (it resumes), or restore "
                        f"by hand from {b.path}/files/")
                    if sess is not None:
                        sess.set_status(ROLLBACK_FAILED, error=err.what)
                    raise err from exc
                done.append(f"{bid}: {res.summary()}")
                if sess is not None:
                    sess.set_status(ROLLED_BACK, finished_at=now_iso(),
                                    rollback=f"by hand from backup {bid}: {res.summary()}",
                                    error=sess.data["metadata"].get("error") or "rolled back by hand")
                    run.session = sess
                    _write_reports(run)
                report.append_update_log(
                    inst, f"{now_iso()} | rolled back by hand to backup {bid} | "
                    f"session {sess.id if sess else 'unknown'}")
        venv_mod.prune_venvs(inst, backup_mod.venv_refs(inst))
    finally:
        lock.release()
    check = _revalidate(inst, opts)
    lines = ["rollback complete:"] + [f"  {d}" for d in done] + [f"  restored server: {check}"]
    if http_was_running:
        try:
            r = start_checked(inst, opts)
            lines.append(f"  restarted over HTTP as pid {r['pid']} at {r['url']}")
        except UpgradeError as exc:
            lines.append(f"  the restored server could NOT be restarted: {exc.what} ({exc.why})")
    return "\n".join(lines)


# -- dry run and status ---------------------------------------------------------------
def dry_run(run: Run) -> None:
    inst = run.install
    check_target(inst)
    unfinished = unfinished_session(inst.state_dir)
    if unfinished is not None:
        nxt = next((i for i in range(len(PHASES)) if i not in unfinished.completed), LAST)
        say(f"dry run: an unfinished session {unfinished.id} would resume at phase {nxt} "
            f"({PHASES[nxt]}); its plan:")
        say(render_plan(Plan.from_json(unfinished.data["plan"]), inst, header="Plan"))
        return
    o = run.opts
    pre: PreflightResult = run_preflight(inst, o.source, o.on_conflict if o.on_conflict != "ask"
                                         else "keep", o.deps, o.no_restart, o.allow_downgrade)
    say(render_plan(pre.plan, inst, header="Dry run (nothing written)"))
    if probe_lock(inst.lock_file):
        say(f"  lock: another upgrade is running ({describe_owner(inst.lock_owner_file)})")
    say(f"  disk: {pre.space_needed / 1e6:.1f} MB needed, {pre.space_free / 1e6:.1f} MB free")


def status_text(opts: Options) -> str:
    inst = Install(opts.project)
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
    sessions = list_sessions(inst.state_dir)
    un = unfinished_session(inst.state_dir)
    if un is not None:
        lines.append(f"unfinished session: {un.id} ({un.status}), started "
                     f"{un.data['metadata'].get('started_at')}")
        lines.append("  phase          status     seconds  result")
        for i, name in enumerate(PHASES):
            r = un.data.get("phase_results", {}).get(str(i), {})
            st = r.get("status", "pending")
            lines.append(f"  {i} {name:<12} {st:<10} {r.get('duration_s', ''):>7}  "
                         f"{str(r.get('summary', ''))[:70]}")
        if not held:
            lines.append(f"  resume:   invoke upgrade --project {inst.project}")
            lines.append(f"  rollback: invoke rollback --project {inst.project}")
    elif sessions:
        last = sessions[-1]
        lines.append(f"last session: {last.id}: {last.status} "
                     f"({last.data['metadata'].get('finished_at', '')})")
    ids = backup_mod.list_backups(inst)
    lines.append(f"backups ({len(ids)}): " + (", ".join(ids) if ids else "none"))
    if ids:
        lines.append(f"  roll back the last upgrade: invoke rollback --project {inst.project}")
    return "\n".join(lines)


def status_json(opts: Options) -> dict[str, Any]:
    """Machine-readable status (what the fleet controller reads from each host)."""
    inst = Install(opts.project)
    check_target(inst)
    out: dict[str, Any] = {"project": str(inst.project), "lock_held": probe_lock(inst.lock_file)}
    try:
        out["installed_commit"] = json.loads(inst.version_record.read_text()).get(
            "installed_commit")
    except (OSError, ValueError):
        out["installed_commit"] = None
    sessions = list_sessions(inst.state_dir)
    if sessions:
        s = sessions[-1]
        arts0 = s.artifacts(0)
        out["session"] = {
            "id": s.id, "status": s.status, "completed_phases": s.completed,
            "phase_reached": max(s.completed) if s.completed else None,
            "source_commit_before": arts0.get("installed_commit"),
            "source_commit_after": arts0.get("source_commit"),
            "backup_id": s.backup_id,
            "started_at": s.data["metadata"].get("started_at"),
            "finished_at": s.data["metadata"].get("finished_at"),
            "error": s.data["metadata"].get("error"),
        }
    out["backups"] = backup_mod.list_backups(inst)
    return out


def run_all(opts: Options, phases: range = range(len(PHASES))) -> None:
    """Run phases in order in this process (what the task chain does; used by the demo)."""
    for p in phases:
        run_phase(opts, p)


def describe_error(exc: BaseException, debug: bool) -> tuple[str, int]:
    if isinstance(exc, UpgradeError):
        return exc.render(), exc.exit_code
    return (f"error[unexpected]: {type(exc).__name__}: {exc}\n  next: rerun with --debug for "
            "the traceback and report it", 1)

