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
from .layout import PRAXIS_DIR, REBUILD_FLAG

#: Patterns the install needs in the project's .gitignore.
PATTERNS = (
    f"{PRAXIS_DIR}/.cache/",
    # no trailing slash: after a dependency upgrade ``venv`` is a symlink, which a ``venv/``
    # pattern (directories only) does not match
    f"{PRAXIS_DIR}/venv",
    f"{PRAXIS_DIR}/.upgrade-state/",
    f"{PRAXIS_DIR}/.backups/",
    f"{PRAXIS_DIR}/.upgrade-lock",
    f"{PRAXIS_DIR}/.upgrade-lock.owner.json",
    f"{PRAXIS_DIR}/.upgrade-reports/",
    f"{PRAXIS_DIR}/.mcp_server_state.json",
    f"{PRAXIS_DIR}/.mcp_server.staged/",
    f"{PRAXIS_DIR}/.mcp_server.old/",
    f"{PRAXIS_DIR}/.venvs/",
    f"{PRAXIS_DIR}/**/__pycache__/",
    # a request to this machine's server, deleted by it once the index is rebuilt
    f"{PRAXIS_DIR}/{REBUILD_FLAG}",
)
BEGIN = "# >>> prAxIs OS upgrader: patterns the install needs (managed block)"
END = "# <<< prAxIs OS upgrader"


def with_block(current: bytes) -> bytes:
    """The project's .gitignore with our managed block: only patterns not already present
    (line by line, exact), no trailing comments; idempotent.

    Edited as bytes: every byte outside the block is kept as it is (a Latin-1 line stays
    Latin-1), the block uses the file's own line ending (CRLF if the file has any), and a
    file without a final newline still has none.
    """
    nl = b"\r\n" if b"\r\n" in current else b"\n"
    begin, end = BEGIN.encode(), END.encode()
    outside: list[bytes] = []
    block_at: int | None = None
    inside = False
    for ln in current.splitlines(keepends=True):
        if ln.strip() == begin:
            inside, block_at = True, len(outside)
            continue
        if inside:
            if ln.strip() == end:
                inside = False
            continue
        outside.append(ln)
    present = {ln.strip() for ln in outside}
    needed = [p.encode() for p in PATTERNS if not {p.encode(), p.rstrip("/").encode(),
                                                   b"/" + p.encode()} & present]
    if block_at is None:
        if needed and outside:
            if not outside[-1].endswith((b"\n", b"\r")):
                outside[-1] += nl  # the block starts on a line of its own
            if outside[-1].strip():
                outside.append(nl)  # and after a blank line
        block_at = len(outside)
    block = b"".join(line + nl for line in [begin, *needed, end]) if needed else b""
    after = b"".join(outside[block_at:])
    if block and not after and current and not current.endswith((b"\n", b"\r")):
        block = block[: -len(nl)]  # the file had no final newline: it still has none
    return b"".join(outside[:block_at]) + block + after


def probe_paths() -> list[str]:
    """A path each pattern must match (``x`` inside directories, ``mcp_server/`` for ``**/``;
    the venv itself, never a path inside it: when it is a symlink git refuses to look "beyond
    a symbolic link" and fails the whole check)."""
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
