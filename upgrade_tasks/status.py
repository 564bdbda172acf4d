"""``invoke status``: what is installed, what is going on, and the command that goes on from here.

:func:`inspect` reads the install once (validating what it reads: the version record and the
installed manifest are input like any other) into an :class:`InstallStatus`; the text, the
``--json`` document and the fleet controller's per-host record are views of that one value.

It tells the truth in the states that used to confuse it:

* after a rollback of an install that had no version record, the installed commit is the one
  the rolled-back session recognised (not "unknown"), and no rollback is offered, since
  there is none left to do (``invoke rollback`` would refuse);
* a session whose process died shows as *interrupted*, not *running*: running means some
  process holds the install's lock;
* every suggested command is one that works in that state (a test runs each of them).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from . import backup_store
from .checkpoint import PHASES, Session, Status, list_sessions, unfinished_session
from .errors import StateError
from .fsutil import NotRegular, read_regular
from .layout import Install, find_install
from .lock import describe_owner, probe_lock
from .manifest import read_installed_manifest
from .options import Options
from .preflight import check_target
from .recovery import last_undoable
from .redact import is_redacted
from .trust import COMMIT, Bad, ident, typed
from .wording import program_name


@dataclass(frozen=True)
class Next:
    """A command that goes on from here: why, and the task with its flags."""

    why: str
    args: tuple[str, ...]
    #: False when the user must fill something in first (a URL whose credentials we never keep)
    runnable: bool = True

    @property
    def command(self) -> str:
        return " ".join([program_name(), *(shlex.quote(a) if a != "URL" else a for a in self.args)])

    def to_json(self) -> dict[str, Any]:
        return {"why": self.why, "args": list(self.args), "command": self.command,
                "runnable": self.runnable}


@dataclass
class InstallStatus:
    install: str
    project: str
    installed_commit: str | None
    #: where the installed commit was learned (installed manifest, VERSION.json, a session)
    installed_from: str
    updated_at: str | None
    lock_held: bool
    lock_owner: str
    rollback_interrupted: bool
    #: the unfinished session, else the last one (None: never upgraded by this tool)
    session: dict[str, Any] | None
    unfinished: bool
    #: what the session is doing now, in words: running / interrupted / completed / ...
    state: str
    backups: list[str] = field(default_factory=list)
    next: list[Next] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "install": self.install, "project": self.project,
            "installed_commit": self.installed_commit, "installed_from": self.installed_from,
            "updated_at": self.updated_at, "lock_held": self.lock_held,
            "lock_owner": self.lock_owner if self.lock_held else None,
            "rollback_interrupted": self.rollback_interrupted, "session": self.session,
            "unfinished": self.unfinished, "state": self.state, "backups": self.backups,
            "next": [n.to_json() for n in self.next],
        }

    def lines(self) -> list[str]:
        c = self.installed_commit
        out = [f"install: {self.install}",
               "installed commit: " + (f"{c[:10]} ({self.installed_from}"
                                       + (f", updated {self.updated_at}" if self.updated_at else "")
                                       + ")" if c else self.installed_from),
               "lock: " + (self.lock_owner if self.lock_held else "free")]
        s = self.session
        if s is not None:
            head = "unfinished session" if self.unfinished else "last session"
            out.append(f"{head}: {s['id']}: {self.state} (started {s['started_at']}"
                       + (f", finished {s['finished_at']}" if s.get("finished_at") else "") + ")")
            if self.unfinished:
                out.append("  phase          status     seconds  result")
                for p in s["phases"]:
                    secs = "" if p["duration_s"] is None else f"{p['duration_s']:.2f}"
                    out.append(f"  {p['phase']} {p['name']:<12} {p['status']:<10} {secs:>7}  "
                               f"{str(p['summary'])[:70]}")
            if s.get("error") and s["status"] != Status.COMPLETED:
                out.append(f"  error: {str(s['error'])[:200]}")
        out.append(f"backups ({len(self.backups)}): " + (", ".join(self.backups) or "none"))
        for n in self.next:
            out.append(f"  {n.why}: {n.command}")
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


def _version_record(inst: Install) -> tuple[str | None, str | None, str]:
    """(commit, updated_at, problem) from VERSION.json, validated."""
    try:
        raw = json.loads(read_regular(inst.version_record))
        typed(raw, dict, "VERSION.json")
        commit = ident(raw.get("installed_commit"), COMMIT, "installed_commit")
        at = raw.get("updated_at")
        return commit, at if isinstance(at, str) else None, ""
    except FileNotFoundError:
        return None, None, ""
    except (OSError, ValueError, Bad, NotRegular) as exc:
        return None, None, f"VERSION.json is unreadable ({exc})"


def _installed(inst: Install, sessions: list[Session], un: Session | None) -> tuple[
        str | None, str, str | None]:
    """(commit, where it was learned, updated_at): the installed manifest, then the version
    record, then the last finished session's own record of the commit before or after it."""
    if un is not None:
        a0 = un.artifacts(0)
        before, after = a0.get("installed_commit"), a0.get("source_commit")
        return (None, f"an upgrade from {str(before or 'unknown')[:10]} to {str(after)[:10]} "
                      "did not finish: part of the install may be at either", None)
    problems = []
    try:
        m, _note = read_installed_manifest(inst.installed_manifest)
        if m is not None:
            _c, at, _p = _version_record(inst)
            return m.source_commit, "installed manifest", at
    except StateError as exc:
        problems.append(f"the installed manifest is unreadable ({exc.why})")
    commit, at, problem = _version_record(inst)
    if commit:
        return commit, "VERSION.json", at
    if problem:
        problems.append(problem)
    for s in reversed(sessions):
        a0 = s.artifacts(0)
        if s.status == Status.COMPLETED and a0.get("source_commit"):
            return str(a0["source_commit"]), f"session {s.id}", None
        if s.status in (Status.ROLLED_BACK, Status.ABORTED):
            if a0.get("installed_commit"):
                return (str(a0["installed_commit"]),
                        f"as recognised by session {s.id} before it was {s.status.replace('_', ' ')}",
                        None)
            break
    why = "; ".join(problems) or "no record: made by an installer, never upgraded by this tool"
    return None, (f"unknown ({why}; `invoke upgrade --dry-run --source SOURCE` recognises it "
                  "from the source's history)"), None


def _session_json(s: Session) -> dict[str, Any]:
    a0 = s.artifacts(0)
    phases = []
    for i, name in enumerate(PHASES):
        r = s.phase_result(i)
        d = r.get("duration_s")
        phases.append({"phase": i, "name": name, "status": str(r.get("status", "pending")),
                       "duration_s": float(d) if isinstance(d, (int, float)) else None,
                       "summary": str(r.get("summary", ""))})
    return {
        "id": s.id, "status": str(s.status), "completed_phases": sorted(s.completed),
        "phase_reached": max(s.completed) if s.completed else None,
        "source_commit_before": a0.get("installed_commit"),
        "source_commit_after": a0.get("source_commit"),
        "source": a0.get("source_spec") or a0.get("source_path"),
        "backup_id": s.backup_id,
        "started_at": s.metadata.get("started_at"),
        "finished_at": s.metadata.get("finished_at"),
        "error": s.metadata.get("error"),
        "phases": phases,
    }


def _state(s: Session, unfinished: bool, owner: str) -> str:
    """The session's state in words; ``owner`` describes the lock's holder ("" when free)."""
    if not unfinished:
        return str(s.status).replace("_", " ")
    if s.status == Status.RUNNING:
        if owner:
            return f"running, {owner}"
        return (f"interrupted after phase {max(s.completed)} ({PHASES[max(s.completed)]})"
                if s.completed else "interrupted before its first phase completed"
                ) + "; its process is gone"
    if s.status == Status.ROLLING_BACK:
        return "failed; its rollback was interrupted"
    return "failed; its rollback failed too"


def inspect(opts: Options) -> InstallStatus:
    """Read the install's state (read-only: no lock taken, nothing written)."""
    inst = find_install(opts.project)
    check_target(inst)
    sessions = list_sessions(inst)
    un = unfinished_session(inst)
    held = probe_lock(inst.lock_file)
    owner = describe_owner(inst.lock_owner_file) if held else ""
    commit, origin, at = _installed(inst, sessions, un)
    last = un or (sessions[-1] if sessions else None)
    ids = backup_store.list_backups(inst)
    st = InstallStatus(
        install=str(inst.root), project=str(inst.project), installed_commit=commit,
        installed_from=origin, updated_at=at, lock_held=held,
        lock_owner=owner,
        rollback_interrupted=inst.rollback_journal.exists(),
        session=_session_json(last) if last is not None else None, unfinished=un is not None,
        state=_state(last, un is not None, owner) if last is not None else "never upgraded",
        backups=ids)
    st.next = _next(inst, st, un, ids, held)
    return st


def _next(inst: Install, st: InstallStatus, un: Session | None, ids: list[str],
          held: bool) -> list[Next]:
    proj = ("--project", str(inst.project))
    if held:
        return [Next("another run holds the lock; look again when it ends", ("status", *proj))]
    if st.rollback_interrupted:
        return [Next("finish the interrupted rollback", ("rollback", *proj))]
    if un is not None:
        out = []
        if un.status == Status.RUNNING:
            spec = str(un.artifacts(0).get("source_spec") or "")
            if is_redacted(spec):
                out.append(Next("resume (with the same source URL and its credentials)",
                                ("upgrade", *proj, "--source", "URL"), runnable=False))
            else:
                out.append(Next("resume", ("upgrade", *proj)))
        out.append(Next("or undo it" if out else "finish undoing it", ("rollback", *proj)))
        return out
    target = last_undoable(inst, ids)
    if target is None:
        return []
    by_backup = {s.backup_id: s for s in list_sessions(inst) if s.backup_id}
    s = by_backup.get(target)
    what = "roll back the last upgrade"
    if s is not None:
        a0 = s.artifacts(0)
        what += (f" ({str(a0.get('installed_commit') or 'unknown')[:10]} -> "
                 f"{str(a0.get('source_commit'))[:10]})")
    return [Next(what, ("rollback", *proj))]


def status_text(opts: Options) -> str:
    """The status as text (what ``invoke status`` prints)."""
    return inspect(opts).text()


def status_json(opts: Options) -> dict[str, Any]:
    """The status as data (``--json``, and what the fleet controller reads from each host)."""
    return inspect(opts).to_json()
