"""What the user reads names the command they typed.

Messages and hints are written once, naming the Invoke task (``invoke upgrade --project P``).
Run as the installed ``praxis-upgrade`` command (or ``python -m upgrade_tasks``), the same
hint must say ``praxis-upgrade upgrade --project P``: a user of the installed command has no
checkout for ``invoke`` to find. :func:`for_user` is applied where text leaves the process
(the run's printer and :func:`upgrade_tasks.errors.exit_status`), together with the
credential masking of :mod:`upgrade_tasks.redact`.
"""

from __future__ import annotations

import os
import re
import sys

from .redact import redact

PROGRAM = "praxis-upgrade"
#: ``invoke TASK`` in a message (a task name is a lowercase word; "invoke from" is prose)
_COMMAND = re.compile(r"(?<![\w./-])invoke (?=(?!from\b)[a-z])")


def program_name() -> str:
    """``praxis-upgrade`` when this process is that command (or ``python -m upgrade_tasks``),
    else ``invoke`` (``invoke -r CHECKOUT ...``, the fabfile, the tests' in-process runs)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) == PROGRAM:
        return PROGRAM
    parts = argv0.replace(os.sep, "/").split("/")
    return PROGRAM if parts[-2:] == ["upgrade_tasks", "__main__.py"] else "invoke"


def for_user(text: str) -> str:
    """``text`` as the user should read it: credentials masked, commands named as typed."""
    text = redact(text)
    if "invoke " in text and program_name() == PROGRAM:
        text = _COMMAND.sub(PROGRAM + " ", text)
    return text
