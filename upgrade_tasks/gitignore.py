"""The project's ``.gitignore``: a managed block holding the patterns the install needs.

Patterns not already present (compared line by line) go into one delimited block
(``# >>> prAxIs OS upgrader`` ... ``# <<< prAxIs OS upgrader``); running it twice
changes nothing. No trailing comments: git has none (the old installer's lines with
``# ~1.3GB`` comments match nothing). The result is checked with ``git check-ignore``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .gitutil import git_ok
from .layout import PRAXIS_DIR

#: Patterns the install needs in the project's .gitignore.
PATTERNS = (
    f"{PRAXIS_DIR}/.cache/",
    f"{PRAXIS_DIR}/venv/",
    f"{PRAXIS_DIR}/.backups/",
    f"{PRAXIS_DIR}/.upgrade-lock",
    f"{PRAXIS_DIR}/.upgrade-lock.owner.json",
    f"{PRAXIS_DIR}/.upgrade-reports/",
    f"{PRAXIS_DIR}/.mcp_server_state.json",
    f"{PRAXIS_DIR}/.mcp_server.staged/",
    f"{PRAXIS_DIR}/.mcp_server.old/",
    f"{PRAXIS_DIR}/.venvs/",
    f"{PRAXIS_DIR}/**/__pycache__/",
)
BEGIN = "# >>> prAxIs OS upgrader: patterns the install needs (managed block)"
END = "# <<< prAxIs OS upgrader"


def with_block(current: str) -> str:
    """The project's .gitignore with our managed block: only patterns not already present
    (line by line, exact), no trailing comments; idempotent."""
    lines = current.splitlines()
    outside: list[str] = []
    block_at: int | None = None
    inside = False
    for ln in lines:
        if ln.strip() == BEGIN:
            inside, block_at = True, len(outside)
            continue
        if inside:
            if ln.strip() == END:
                inside = False
            continue
        outside.append(ln)
    present = {ln.strip() for ln in outside}
    needed = [p for p in PATTERNS
              if p not in present and p.rstrip("/") not in present and "/" + p not in present]
    block = [BEGIN, *needed, END] if needed else []
    if block_at is None:
        if block and outside and outside[-1].strip():
            block = ["", *block]
        new_lines = outside + block
    else:
        new_lines = outside[:block_at] + block + outside[block_at:]
    text = "\n".join(new_lines)
    return text + "\n" if text else ""


def probe_paths() -> list[str]:
    """A path each pattern must match (``x`` inside directories, ``mcp_server/`` for ``**/``)."""
    return [p.replace("**/", "mcp_server/").rstrip("/") + ("/x" if p.endswith("/") else "")
            for p in PATTERNS]


def not_ignored(project: Path, paths: list[str]) -> list[str]:
    """Paths git would NOT ignore (empty when not a git work tree or all are ignored)."""
    if shutil.which("git") is None:
        return []
    if not git_ok(project, "rev-parse", "--is-inside-work-tree"):
        return []
    proc = subprocess.run(["git", "-C", str(project), "check-ignore", "--no-index", "--stdin"],
                          input="\n".join(paths) + "\n", capture_output=True, text=True)
    ignored = set(proc.stdout.split("\n"))
    return [p for p in paths if p not in ignored]
