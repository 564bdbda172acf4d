"""``--json``: one JSON document per command, on stdout, in a published, versioned schema.

Scripts, CI jobs and AI assistants read this instead of the prose. The schema is
``upgrade_tasks/schema/output-v1.json`` (JSON Schema 2020-12; shipped in the package, so
``python -c "import upgrade_tasks.jsondoc as j; print(j.SCHEMA_PATH)"`` finds it). Every
document has the same envelope::

    {"schema": "praxis-upgrade/output/1", "tool": "praxis-upgrade 0.1.0",
     "command": "upgrade", "ok": true, "exit_code": 0,
     "result": {...}, "error": null}

``result`` is the command's own data: for ``upgrade`` and the phase tasks the plan, the
outcome and the report (the same object as the run's ``.upgrade-reports/<session>.json``);
for ``status`` the status; for ``rollback`` what was restored and the status after; for a
fleet the fleet report. ``error`` is the error's kind, what, why and next step, with its exit
code. A new field may appear within version 1; a field's meaning never changes (that would be
version 2).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from invoke.exceptions import Exit

from . import __version__
from .errors import EXIT_INTERRUPTED, UpgradeAvailable, UpgradeError
from .report import build_report
from .runstate import Run
from .wording import for_user

SCHEMA = "praxis-upgrade/output/1"
SCHEMA_PATH = Path(__file__).with_name("schema") / "output-v1.json"


def error_json(exc: BaseException, code: int) -> dict[str, Any]:
    if isinstance(exc, UpgradeError):
        return {"kind": exc.ref, "what": for_user(exc.what), "why": for_user(exc.why),
                "next": for_user(exc.hint), "exit_code": code}
    if isinstance(exc, Exit):
        text = str(exc.message or "")
        return {"kind": "exit", "what": for_user(text.splitlines()[0] if text else ""),
                "why": for_user("\n".join(text.splitlines()[1:])), "next": "", "exit_code": code}
    if isinstance(exc, KeyboardInterrupt):
        return {"kind": "interrupted", "what": "interrupted", "why": "", "next": "",
                "exit_code": EXIT_INTERRUPTED}
    return {"kind": "internal", "what": f"{type(exc).__name__}: {exc}",
            "why": "the upgrader met an error it does not handle (a bug)",
            "next": "rerun with --debug for the traceback and report it", "exit_code": code}


def result_of(run: Run | None) -> dict[str, Any]:
    """The command's result: what the tasks recorded, completed with the session's report."""
    if run is None:
        return {}
    out = dict(run.result)
    s = run.session
    if s is not None:
        s = s.reload() if s.path.exists() else s
        out.setdefault("outcome", {"completed": "completed", "rolled_back": "rolled-back",
                                   "aborted": "aborted", "running": "stopped",
                                   "rolling_back": "rollback-interrupted",
                                   "rollback_failed": "rollback-failed"}.get(str(s.status),
                                                                               str(s.status)))
        out.setdefault("report", build_report(s, run.install))
    return out


def document(command: str, run: Run | None, exc: BaseException | None, code: int) -> dict[str, Any]:
    """The whole ``--json`` document of one command."""
    return {
        "schema": SCHEMA,
        "tool": f"praxis-upgrade {__version__}",
        "command": command,
        "ok": code == 0 or isinstance(exc, UpgradeAvailable),
        "exit_code": code,
        "result": result_of(run),
        "error": error_json(exc, code) if exc is not None and not isinstance(
            exc, UpgradeAvailable) else None,
    }


def dumps(doc: dict[str, Any]) -> str:
    return for_user(json.dumps(doc, indent=2, sort_keys=True, default=str))
