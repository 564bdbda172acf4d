"""``invoke schedule``: the options of the command line, handed to :mod:`upgrade_tasks.schedule`.

``--every WHEN [--job check|upgrade]`` installs (replacing this project's schedule), ``--show``
lists, ``--remove`` removes. A scheduled ``check`` exits 11 when an upgrade is available: that
code is declared a success to systemd, so a waiting upgrade does not mark the timer failed.
"""

from __future__ import annotations

from typing import Any

from . import schedule
from .errors import EXIT_UPGRADE_AVAILABLE, UsageError
from .options import Options


def run(opts: Options) -> dict[str, Any]:
    """Do what the flags ask; the result (``lines`` to print, and the entries as data)."""
    chosen = [name for name, on in (("--every", bool(opts.every)), ("--show", opts.show),
                                    ("--remove", opts.remove)) if on]
    if len(chosen) != 1:
        raise UsageError("schedule needs exactly one of --every WHEN, --show, --remove",
                         f"given: {', '.join(chosen) or 'none'}",
                         "e.g. `invoke schedule --project . --source ~/src/praxis-os --every daily`")
    project = opts.project.expanduser().absolute()
    if opts.show:
        found = schedule.show(None)  # every project's: the list is short, and says which
        lines = [f"{e.backend}: {e.project}: {e.what} at '{e.when}' ({e.where})" for e in found]
        return {"outcome": "shown", "schedules": [_entry(e) for e in found],
                "lines": lines or ["no schedule installed"]}
    if opts.remove:
        removed = schedule.remove(project, opts.backend)
        return {"outcome": "removed" if removed else "none", "project": str(project),
                "lines": [f"schedule of {project} removed" if removed else
                          f"no schedule of {project} to remove"]}
    job = schedule.Job(project, opts.source, opts.job, opts.every, opts.ref)
    done = schedule.install(job, opts.backend, ok_codes=(EXIT_UPGRADE_AVAILABLE,))
    lines = [f"installed ({done.backend}, {done.where}): {done.what} at '{done.when}'",
             f"  runs: {done.command}",
             f"  log:  {schedule.log_path(job.project)}"]
    lines += [f"  note: {n}" for n in done.note.splitlines() if n]
    return {"outcome": "installed", "schedule": _entry(done), "lines": lines}


def _entry(e: schedule.Installed) -> dict[str, Any]:
    return {"backend": e.backend, "project": str(e.project), "what": e.what, "when": e.when,
            "command": e.command, "source": e.source, "ref": e.ref or None, "where": e.where,
            "note": e.note}
