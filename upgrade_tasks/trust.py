"""Everything read back from disk is input: checks for the upgrader's own state files.

The checkpoint, a backup's ``MANIFEST.json``, the installed manifest and the lock's
owner record are written by the upgrader, but anyone who can write the install can
change them (and ``.installed-manifest.json`` is not gitignored, so it can arrive
through ``git pull``; with ``--sudo`` root then acts on it). Every id and every path
in them is therefore checked before use: ids against their exact format, paths
confined to where they belong (relative, no ``..``, no absolute path, only the one
project files the upgrader manages, ``layout.PROJECT_FILES``). A file that fails is refused
with :class:`~upgrade_tasks.errors.StateError` (exit 2), naming the file, the field
and the command that repairs it; nothing is acted on before that.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from .errors import StateError
from .layout import PROJECT_FILE_RE

SESSION_ID = re.compile(r"upgrade-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: ``YYYYmmdd-HHMMSS-<6 hex>`` (local time, before 0.2) or ``...Z-<6 hex>`` (UTC).
BACKUP_ID = re.compile(r"\d{8}-\d{6}Z?-[0-9a-f]{6}")
VENV_NAME = re.compile(r"(env|initial)-[A-Za-z0-9][A-Za-z0-9._-]{0,80}")
COMMIT = re.compile(r"[0-9a-f]{40}")
SHA256 = re.compile(r"[0-9a-f]{64}")


class Bad(Exception):
    """A field that fails its check (turned into a StateError naming the file)."""


def rel_path(value: Any, field: str, *, under: str = "", project_file: bool = False) -> str:
    """A path relative to ``.praxis-os``: a string, relative, no ``..``, no empty or ``.``
    parts, no NUL; under ``under`` when given. ``project_file`` also allows the few project
    files the upgrader manages (``../.gitignore``, ``../.cursorrules.praxis-new``)."""
    if project_file and isinstance(value, str) and PROJECT_FILE_RE.fullmatch(value):
        return value
    if not isinstance(value, str) or not value or "\0" in value or "\\" in value:
        raise Bad(f"{field}: {value!r} is not a relative path")
    p = PurePosixPath(value)
    if p.is_absolute() or any(part in ("..", ".", "") for part in value.split("/")):
        raise Bad(f"{field}: {value!r} leaves the install (absolute, '..' or an empty part)")
    if under and not value.startswith(under.rstrip("/") + "/"):
        raise Bad(f"{field}: {value!r} is not under {under}")
    return value


def ident(value: Any, pattern: re.Pattern[str], field: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise Bad(f"{field}: {value!r} is not a valid id")
    return value


def typed(value: Any, kind: type | tuple[type, ...], field: str) -> Any:
    if isinstance(value, bool) and kind in (int, (int, float)):
        raise Bad(f"{field}: {value!r} is not a number")
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise Bad(f"{field}: {value!r} is not {name}")
    return value


def opt(value: Any, check: Any, *args: Any) -> Any:
    """``check(value, *args)`` unless ``value`` is None."""
    return None if value is None else check(value, *args)


def required(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise Bad(f"{where}{key}: missing")
    return obj[key]


def refuse(path: Any, problem: Bad, hint: str) -> StateError:
    return StateError(f"{path} fails its check and was not used", str(problem), hint)
