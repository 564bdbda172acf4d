"""The driver: the phases in order, resume, and what a failure means.

The upgrade is one ordered table of phases (:data:`TABLE`), as nox keeps its
workflow as a tuple of functions. Each Invoke phase task runs exactly its phase
through :func:`run_phase`; the checkpoint decides whether it is already done, so
``invoke validate`` (chained with ``pre=`` to phases 0-3) after a crash resumes
at the first incomplete phase. The ``upgrade`` task ends with :func:`finish`,
which prints the summary; :func:`close` releases what the run holds. The host
engine, the demo and the tests use :func:`run_upgrade`, the same calls in order.

Failure policy, per phase (the table's ``on_failure``):

* ``abort`` (phases 0 and 1): nothing was changed; the session is marked aborted
  and a partial backup removed (exit 3, or 130 for Ctrl-C);
* ``rollback`` (phases 2, 3, 4): the backup is restored (exit 6; exit 7 if the
  rollback fails too), Ctrl-C included;
* ``finish`` (phase 5): the upgrade is applied and validated; rerunning finishes
  the cleanup (exit 8).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import backup, cleanup, content, faults, fsutil, planview, report, server, signals, validate
from . import venv as venv_mod
from .checkpoint import LAST, PHASES, Session, Status, now_iso, unfinished_session
from .errors import (
    BackupError,
    CleanupError,
    Interrupted,
    PhaseError,
    PreflightError,
    RollbackError,
    UpgradeError,
    UsageError,
)
from .fsutil import sweep_temp_files
from .index import IndexPlan
from .options import Options
from .output import Output
from .plan import Plan
from .preflight import check_target, dry_run, run_preflight
from .recovery import finish_interrupted, rollback_session
from .redact import is_redacted, redact
from .runstate import Run
from .snapshot import snapshot_commit
from .sources import open_source


@dataclass(frozen=True)
class Phase:
    number: int
    step: Callable[[Run], str]
    on_failure: str  # "abort", "rollback" or "finish"
    #: After a resume: is this phase's result still on disk? (``None``: nothing to check.)
    recheck: Callable[[Run], bool] | None = None

    @property
    def name(self) -> str:
        return PHASES[self.number]

    @property
    def label(self) -> str:
        return f"[{self.number}/{LAST}] {self.name}"


def _preflight_step(run: Run) -> str:
    raise AssertionError("phase 0 runs through begin()")  # pragma: no cover


#: The workflow: one row per phase, in order (names from :data:`checkpoint.PHASES`).
TABLE: tuple[Phase, ...] = (
    Phase(0, _preflight_step, "abort"),
    Phase(1, backup.step, "abort", backup.recheck),
    Phase(2, content.step, "rollback", content.recheck),
    Phase(3, server.step, "rollback", server.recheck),
    Phase(4, validate.step, "rollback"),
    Phase(5, cleanup.step, "finish"),
)
assert len(TABLE) == len(PHASES)


# -- phase 0: start a session, or resume the unfinished one -----------------------------------
def begin(run: Run) -> None:
    """Phase 0 for a new session (plan, confirm, lock, checkpoint), or attach to the
    install's unfinished session. A no-op upgrade ends here without a session."""
    inst = run.install
    check_target(inst)
    finished = finish_interrupted(run)
    if finished is not None:
        raise PhaseError(
            "an interrupted rollback was finished first; the upgrade did not start", finished,
            "the install is as it was before the upgrade that was rolled back; rerun `invoke "
            "upgrade` to upgrade it")
    unfinished = unfinished_session(inst)
    if unfinished is not None:
        resume(run, unfinished)
        return
    t0 = time.monotonic()
    waited = 0.0  # time at the prompts: the user's, not pre-flight's

    def ask(question: str) -> str:
        nonlocal waited
        t = time.monotonic()
        try:
            return run.ui.ask(question)
        finally:
            waited += time.monotonic() - t

    shown = False

    def show(plan: Plan) -> None:
        nonlocal shown
        run.ui.plan(planview.view(plan, inst))
        shown = True

    label = TABLE[0].label
    run.ui.phase_started(label)
    o = run.opts
    tty = not o.yes and sys.stdin is not None and sys.stdin.isatty()
    pre = run_preflight(inst, o, interactive=tty, ask=ask, say=run.say, before_questions=show)
    pv = planview.view(pre.plan, inst)
    run.result["plan"] = pv.to_json()
    if pre.plan.is_noop:
        run.noop = True
        run.result["outcome"] = "up-to-date"
        run.ui.phase_ended(label, time.monotonic() - t0, f"already up to date at "
                           f"{pre.source.short}; nothing to do")
        return
    if tty:
        if not shown:
            run.ui.plan(pv)
        for d in pre.plan.decisions:
            run.say(f"  your decision: {d['path']}: {d['decision']}")
        answer = ask("Proceed with the upgrade? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise Interrupted("upgrade cancelled; nothing was changed", "", "")
    s = Session.new(inst.state_dir, o.session_record())
    run.take_lock(s.id)
    sweep_temp_files({inst.root, inst.state_dir})  # left by a run killed mid-write
    # re-check under the lock: the world may have changed while we planned
    if unfinished_session(inst) is not None:
        raise UsageError(
            "another upgrade session appeared while planning",
            "a concurrent run started and stopped before us",
            "run `invoke status`, then `invoke upgrade` again",
        )
    s.artifacts(0).update(pre.artifacts())
    s.set_plan(pre.plan.to_json())
    run.session, run.source, run.plan = s, pre.source, pre.plan
    dt = time.monotonic() - t0 - waited
    s.mark_done(0, dt, pre.summary())
    run.ui.phase_ended(label, dt, pre.summary())


def resume(run: Run, s: Session) -> None:
    """Attach this process to an unfinished session (lock, source, plan), re-checking it."""
    inst = run.install
    if s.status == Status.ROLLING_BACK:
        run.take_lock(s.id)
        run.say(f"session {s.id} failed and its rollback was interrupted; finishing the rollback")
        res = rollback_session(run, s.reload(), reason=s.error or "interrupted")
        raise PhaseError(
            "the previous upgrade failed; its interrupted rollback has now been completed",
            s.error,
            f"the install is as before ({res.summary()}); rerun `invoke upgrade` to try again",
        )
    if s.status == Status.ROLLBACK_FAILED:
        raise RollbackError(
            f"a previous rollback of session {s.id} failed",
            s.error or "see its report",
            f"run `invoke rollback --project {inst.project}` again, or restore by hand from "
            f"{inst.backups_dir / (s.backup_id or '?')}",
        )
    arts0 = s.artifacts(0)
    spec = arts0.get("source_spec") or arts0.get("source_path", "")
    given = run.opts.source
    if given and redact(given) == spec:
        spec = given  # the URL again, with the credentials the checkpoint never holds
    elif is_redacted(spec):
        raise UsageError(
            f"the unfinished upgrade (session {s.id}) is from {spec}",
            "its credentials are never stored, so the source cannot be cloned again without them",
            f"resume with `invoke upgrade --project {inst.project} --source URL` (the same URL)",
        )
    elif given and given not in (spec, arts0.get("source_path")):
        if snapshot_commit(given) == arts0.get("source_commit"):
            spec = given  # the same commit's snapshot, uploaded again under a new name
        else:
            raise UsageError(
                f"an unfinished upgrade (session {s.id}) is in progress from {spec}",
                f"--source {run.opts.source} differs from that session's source",
                f"resume it with `invoke upgrade --project {inst.project}` (no --source), or undo it "
                f"with `invoke rollback --project {inst.project}`",
            )
    run.take_lock(s.id)
    # reload under the lock: another process may have finished it meanwhile
    s = s.reload()
    if s.status != Status.RUNNING:
        raise UsageError(
            f"session {s.id} finished while we waited ({s.status})",
            "another process completed or rolled it back",
            "run `invoke status` and start again if needed",
        )
    src = open_source(str(spec), commit=str(arts0.get("source_commit") or "") or None,
                      ref=str(arts0.get("source_ref") or ""))
    if src.commit != arts0.get("source_commit"):
        raise PreflightError(
            f"the source moved since session {s.id} started",
            f"it was at {str(arts0.get('source_commit'))[:10]}, now at {src.short}",
            f"check out {arts0.get('source_commit')} in {src.root} to resume, or run "
            f"`invoke rollback --project {inst.project}`",
        )
    assert s.plan is not None
    run.session, run.source, run.resumed = s, src, True
    run.plan = Plan.from_json(s.plan)
    sweep_temp_files({inst.path(rel).parent for rel in run.plan.touched_paths()}
                     | {inst.root, inst.state_dir})
    if run.lock is not None:
        run.lock.update_session(s.id)
    nxt = s.next_phase()
    run.say(f"resuming upgrade session {s.id} at phase {nxt} ({PHASES[nxt]})")
    recheck_last(run)


#: Recorded once, durably, before the first phase that changes the install (phase 2).
CHANGING = "install:changing"


def recheck_backup(run: Run) -> None:
    """Before a resumed session goes on: is its backup still there and intact? If the install
    has not been changed yet, a damaged or missing backup is simply made again; once it has,
    going on without a way back is refused (exit 7) and the message says how to proceed."""
    s = run.session
    assert s is not None
    bid = s.backup_id
    if 1 not in s.completed or not bid:
        return
    if backup.recheck(run):
        run.say(f"  rechecked backup {bid}: intact")
        return
    where = run.install.backups_dir / bid
    state = "damaged" if where.exists() else "missing"
    if not s.has_step(CHANGING):  # nothing has been changed yet: make it again
        run.say(f"  recheck: backup {bid} is {state}; making it again")
        shutil.rmtree(where, ignore_errors=True)
        s.artifacts(1).pop("backup_id", None)
        s.mark_undone(1)
        return
    raise BackupError(
        f"the backup of the unfinished upgrade session {s.id} is {state} ({where})",
        f"the install may be partly upgraded (phase {s.next_phase()} was next), and without its "
        "backup neither a rollback nor a safe resume is possible; nothing more was done",
        f"if you moved it, put it back at {where} and rerun `invoke upgrade` (or `invoke "
        f"rollback`). Otherwise move the checkpoint aside (mv {s.path} {s.path}.abandoned) and "
        "run `invoke upgrade` again: a new session backs up the install as it is now and "
        "completes the upgrade",
    )


def recheck_last(run: Run) -> None:
    """Re-check the result of the last completed phase before continuing: a phase whose
    result is gone runs again."""
    s = run.session
    assert s is not None
    recheck_backup(run)
    if not s.completed:
        return
    phase = TABLE[max(s.completed)]
    if phase.number <= 1 or phase.recheck is None:
        return
    if phase.recheck(run):
        run.say(f"  rechecked phase {phase.number} ({phase.name}): as planned")
        return
    run.say(f"  recheck of phase {phase.number} ({phase.name}) found its result changed; "
            "re-running it")
    if phase.number == 3:
        s.forget_steps("server:")
    s.mark_undone(phase.number)


# -- running one phase ----------------------------------------------------------------------
def run_phase(run: Run, n: int) -> None:
    """Run phase ``n`` of the run's session (starting or resuming it first), unless done."""
    o = run.opts
    if o.hosts or o.projects:
        return  # the phases run on each host or project (fleet.py, projects.py), not here
    if o.dry_run:
        if n == 0:
            dry_run(run)
        return
    signals.install_handlers()
    if run.session is None and not run.noop:
        try:
            begin(run)
        except KeyboardInterrupt:
            close(run)
            raise Interrupted("interrupted before any change", "Ctrl-C during pre-flight",
                              "nothing was changed; rerun when ready") from None
        except BaseException:
            close(run)
            raise
    if run.noop:
        return
    s = run.session
    assert s is not None
    if n in s.completed:
        return
    phase = TABLE[n]
    t0 = time.monotonic()
    run.ui.phase_started(phase.label)
    try:
        s.begin_phase(n)
        if phase.on_failure == "rollback" and not s.has_step(CHANGING):
            s.step(CHANGING)  # from here on, a lost backup can no longer simply be made again
        faults.point(f"phase-start:{phase.name}")
        summary = phase.step(run)
        s.mark_done(n, time.monotonic() - t0, summary)
        run.ui.phase_ended(phase.label, time.monotonic() - t0, summary)
    except BaseException as exc:  # noqa: B036 - Ctrl-C must roll back too
        on_failure(run, phase, exc, time.monotonic() - t0)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, UpgradeError):
        return exc.what + (f" ({exc.why})" if exc.why else "")
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C or SIGTERM)"
    return f"{type(exc).__name__}: {exc}"


def make_room(run: Run) -> None:
    """First thing after a failure: free what the rollback does not need, so that a full disk
    still lets it run (the room held for it, a staged server, a half-built environment)."""
    inst = run.install
    for release in (lambda: fsutil.release(inst.reserve_file),
                    lambda: fsutil.rmtree_durable(inst.staging_server),
                    lambda: venv_mod.drop_unswitched(
                        inst, run.need()[0].artifacts(3).get("new_venv_name"))):
        try:
            release()
        except OSError as exc:  # an error here must not hide the one being handled
            run.say(f"  warning: could not free space: {exc}")


def on_failure(run: Run, phase: Phase, exc: BaseException, dt: float) -> None:
    """Apply the phase's failure policy and raise the error the user sees.

    Runs with Ctrl-C and SIGTERM deferred from its first line to its last: a second Ctrl-C
    (or the first, arriving just after the failure) must not cut the way back in half. Its
    own bookkeeping (checkpoint, reports, log) is best effort: a disk that is full or read-only
    must not turn a rolled-back upgrade into an unexplained crash.
    """
    with signals.deferred():
        s = run.session
        assert s is not None
        what = _describe(exc)
        run.ui.phase_ended(phase.label, dt, what, ok=False)
        if phase.on_failure == "abort":
            _abort(run, s, exc, what)
        if phase.on_failure == "finish":
            _try(run, lambda: s.mark_failed(phase.number, dt, what))
            close(run)
            raise CleanupError("the upgrade was applied and validated, but its cleanup failed",
                               what, "rerun `invoke upgrade` to finish the cleanup (reports, "
                               "version record, pruning)") from exc
        make_room(run)
        _try(run, lambda: s.mark_failed(phase.number, dt, what))
        run.say(f"rolling back automatically (phase {phase.number} failed) ...")
        try:
            res = rollback_session(run, s, reason=f"phase {phase.number} ({phase.name}) failed: "
                                   f"{what}")
        except UpgradeError as rb_exc:
            raise RollbackError(
                f"phase {phase.number} ({phase.name}) failed and the automatic rollback failed too",
                f"{what}; rollback: {rb_exc.what} ({rb_exc.why})",
                f"restore by hand from {run.install.backups_dir / (s.backup_id or '?')} "
                f"(files/ holds the originals, MANIFEST.json lists them), or rerun "
                f"`invoke rollback --project {run.install.project}` once the cause is fixed",
            ) from exc
    hint = exc.hint if isinstance(exc, UpgradeError) and exc.hint else ""
    raise PhaseError(
        f"upgrade failed in phase {phase.number} ({phase.name}) and was rolled back",
        what,
        (hint + ". " if hint else "") + f"the install is as before ({res.summary()}); "
        f"report: {run.install.reports_dir / (s.id + '.md')}",
    ) from exc


def _try(run: Run, write: Callable[[], object]) -> None:
    try:
        write()
    except OSError as exc:
        run.say(f"  warning: bookkeeping not written ({exc.strerror or exc})")


def _abort(run: Run, s: Session, exc: BaseException, what: str) -> None:
    """Phases 0-1 failed: nothing was changed. Remove the partial backup (first: it frees the
    space a full disk needs), record the abort, and say what to do."""
    inst = run.install
    bid = s.backup_id
    if bid:
        for p in (inst.backups_dir / bid, inst.backups_dir / (bid + ".partial")):
            if p.exists():
                shutil.rmtree(p, ignore_errors=True)
    _try(run, lambda: fsutil.release(inst.reserve_file))
    _try(run, lambda: s.set_status(Status.ABORTED, error=what, finished_at=now_iso()))
    report.write_reports_or_warn(inst, s, run.say)
    close(run)
    if isinstance(exc, KeyboardInterrupt):
        raise Interrupted("interrupted during the backup", "nothing was changed",
                          "rerun `invoke upgrade` when ready") from exc
    if isinstance(exc, UpgradeError):  # it says what to do itself (e.g. --backup-to's copy)
        raise PreflightError(f"{exc.what}; nothing was changed", exc.why,
                             exc.hint or "fix the cause and rerun `invoke upgrade`") from exc
    need = s.artifacts(0).get("disk_space_required")
    room = (f"; the backup and the upgrade need about {int(need) / 1e6:.1f} MB free on the file "
            f"system of {inst.root}" if isinstance(need, int) else "")
    raise PreflightError(
        "the backup could not be made; nothing was changed", what + room,
        "fix the cause (free disk space, e.g. old backups in .praxis-os/.backups/, or "
        "permissions) and rerun `invoke upgrade`",
    ) from exc


# -- the end of a run --------------------------------------------------------------------------
def finish(run: Run) -> None:
    """The ``upgrade`` task's own work: release the lock and print the summary of a
    completed session (where to look, what needs the user's attention)."""
    s = run.session
    if run.opts.hosts or run.opts.projects or run.opts.dry_run or run.noop or s is None:
        close(run)
        return
    if s.status != Status.COMPLETED:  # pragma: no cover - upgrade runs after cleanup
        close(run)
        return
    paths = report.write_reports_or_warn(run.install, s, run.say)
    close(run)
    arts3 = s.artifacts(3)
    say = run.say
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
    plan = run.need()[2]
    if plan.index_table:
        say("  search index: " + IndexPlan(plan.index_action, plan.index_reasons,
                                           plan.index_table).summary())
    for n in [*run.need()[2].notes, *run.notes]:
        say(f"  note: {n}")
    if paths:
        say(f"  report: {paths[1]}")


def close(run: Run) -> None:
    """Release what the run holds (the lock). Safe to call more than once."""
    run.release()


def run_upgrade(opts: Options, printer: Callable[[str], None] | None = None,
                out: Output | None = None) -> Run:
    """The whole upgrade in this process: every phase in order, then :func:`finish` (what the
    ``upgrade`` task chain does; the host engine, the demo and the tests call it)."""
    run = Run.of(opts, printer, out) if printer is not None else Run.of(opts, out=out)
    try:
        for phase in TABLE:
            run_phase(run, phase.number)
        finish(run)
    finally:
        close(run)
    return run
