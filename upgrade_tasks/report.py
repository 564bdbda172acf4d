"""Reports: a JSON and a Markdown report per run, one UPDATE_LOG line, the version record.

* ``.praxis-os/.upgrade-reports/<session>.json`` and ``.md``: phases with status
  and duration, files added/updated/removed/kept, conflicts, backup id, source
  commit before and after.
* ``.praxis-os/UPDATE_LOG.txt``: exactly one line appended per run (O_APPEND).
* ``.praxis-os/VERSION.json``: the one version record, rewritten atomically.
"""

from __future__ import annotations

import errno
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import fsutil, planview
from .checkpoint import PHASES, Session, now_iso
from .fsutil import NotRegular, atomic_write_bytes, atomic_write_json, fsync_dir, read_regular
from .layout import Install
from .plan import Plan

#: The version of the report's shape (a field's meaning never changes within a version).
REPORT_SCHEMA = "praxis-upgrade/report/1"


def build_report(session: Session, install: Install | None = None) -> dict[str, Any]:
    """The run's report: the JSON report file, and the ``report`` of the ``--json`` document
    (the same object). With ``install``, it includes the plan as shown (real paths)."""
    meta = session.metadata
    pre, content = session.artifacts(0), session.artifacts(2)
    phases = []
    for i, name in enumerate(PHASES):
        r = session.phase_result(i)
        phases.append({"phase": i, "name": name, "status": r.get("status", "not run"),
                       "duration_s": r.get("duration_s"), "summary": r.get("summary", "")})
    plan = None
    if install is not None and session.plan is not None:
        plan = planview.view(Plan.from_json(session.plan), install).to_json()
    return {
        "schema": REPORT_SCHEMA,
        "session_id": session.id,
        "status": session.status,
        "started_at": meta.get("started_at"),
        "finished_at": meta.get("finished_at", now_iso()),
        "host": socket.gethostname(),
        "project": meta.get("options", {}).get("project"),
        # (with --ref the files were read from a temporary clone: name what the user gave)
        "source": pre.get("source_spec") if pre.get("source_ref") else pre.get("source_path"),
        "source_ref": pre.get("source_ref") or None,
        "source_commit_before": pre.get("installed_commit"),
        "source_commit_after": pre.get("source_commit"),
        "backup_id": session.backup_id,
        "phases": phases,
        "files": {k: content.get(k, []) for k in ("added", "updated", "removed", "kept")},
        "conflicts": content.get("conflicts", []),
        "attention": content.get("attention", []),
        "notes": (session.plan or {}).get("notes", []),
        "decisions": content.get("decisions", []),
        "base": {k: pre.get(k) for k in ("base_origin", "base_share", "base_note")},
        "server": session.artifacts(3),
        "validation": session.artifacts(4),
        "rollback": meta.get("rollback"),
        "error": meta.get("error"),
        "plan": plan,
    }


def render_markdown(rep: dict[str, Any]) -> str:
    lines = [
        f"# prAxIs OS upgrade {rep['status'].replace('_', ' ')}",
        "",
        f"- session: `{rep['session_id']}`",
        f"- project: `{rep['project']}`",
        f"- source: `{rep['source']}`" + (f" at `{rep['source_ref']}`" if rep.get("source_ref")
                                          else ""),
        f"- commit: `{(rep['source_commit_before'] or 'unknown')[:10]}` -> "
        f"`{(rep['source_commit_after'] or '?')[:10]}`",
        f"- backup: `{rep['backup_id']}` (restore with `invoke rollback --backup "
        f"{rep['backup_id']}`)",
        f"- started {rep['started_at']}, finished {rep['finished_at']}",
        "",
        "| phase | status | seconds | result |",
        "|---|---|---|---|",
    ]
    for p in rep["phases"]:
        secs = "" if p["duration_s"] is None else f"{p['duration_s']:.2f}"
        lines.append(f"| {p['phase']} {p['name']} | {p['status']} | {secs} | {p['summary']} |")
    f = rep["files"]
    lines += ["", "## Files", "",
              f"{len(f['added'])} added, {len(f['updated'])} updated, {len(f['removed'])} removed, "
              f"{len(f['kept'])} kept as yours."]
    attention = rep.get("attention") or []
    if attention:
        lines += ["", "## Needs your attention", ""]
        lines += [f"- {item}" for item in attention]
    if rep.get("notes"):
        lines += ["", "## Notes", ""]
        lines += [f"- {n}" for n in rep["notes"]]
    if rep.get("decisions"):
        lines += ["", "## Your decisions (--on-conflict ask)", ""]
        lines += [f"- `{d['path']}`: {d['decision']}" for d in rep["decisions"]]
    if rep.get("error"):
        lines += ["", "## Error", "", "```", str(rep["error"]), "```"]
    if rep.get("rollback"):
        lines += ["", "## Rollback", "", f"{rep['rollback']}"]
    return "\n".join(lines) + "\n"


def write_reports(install: Install, session: Session) -> tuple[Path, Path]:
    """Write ``<session>.json`` and ``.md`` atomically into the reports folder (a real folder:
    never through a link)."""
    rep = build_report(session, install)
    install.reports_dir.mkdir(parents=True, exist_ok=True)
    if install.reports_dir.is_symlink() or not install.reports_dir.is_dir():
        raise NotRegular(errno.ELOOP, "not a real directory", str(install.reports_dir))
    j = install.reports_dir / f"{session.id}.json"
    m = install.reports_dir / f"{session.id}.md"
    atomic_write_json(j, rep, pretty=True)
    atomic_write_bytes(m, render_markdown(rep).encode(), mode=0o644)
    return j, m


def write_reports_or_warn(install: Install, session: Session | None,
                          say: Callable[[str], None]) -> tuple[Path, Path] | None:
    """Write the run's reports; a failure to write them is a warning, never a failed run."""
    if session is None:
        return None
    try:
        return write_reports(install, session)
    except OSError as exc:
        say(f"warning: report not written: {exc}")
        return None


def append_update_log(install: Install, line: str) -> None:
    """Append exactly one line (O_APPEND: concurrent writers never interleave a line)."""
    data = (line.rstrip("\n") + "\n").encode()
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(install.update_log, flags, 0o644)  # never through a link
    try:
        os.write(fd, data)
        fsutil.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(install.root)


def append_update_log_once(install: Install, line: str, session: str) -> None:
    """Append the run's line unless a previous attempt of this session already did."""
    try:
        if session.encode() in read_regular(install.update_log):
            return
    except FileNotFoundError:
        pass
    append_update_log(install, line)


def log_or_warn(install: Install, line: str, say: Callable[[str], None]) -> None:
    """The UPDATE_LOG line of a rollback or an abort: wanted, but never worth failing the
    rollback for (a full disk, a log that is a link)."""
    try:
        append_update_log(install, line)
    except OSError as exc:
        say(f"warning: UPDATE_LOG.txt line not written ({exc.strerror or exc}): {line}")


def write_version_record(install: Install, commit: str, previous: str | None, source: str,
                         session: str) -> None:
    atomic_write_json(install.version_record, {
        "installed_commit": commit,
        "previous_commit": previous,
        "source": source,
        "updated_at": now_iso(),
        "session": session,
    }, pretty=True)
