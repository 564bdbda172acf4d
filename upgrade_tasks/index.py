"""The server's search index, treated as part of the upgrade.

The real prAxIs OS server searches its standards through a LanceDB index in
``.praxis-os/.cache/vector_index``. Left alone, an upgrade breaks it quietly: when
the new code opens another table (``agent_os_standards`` became
``praxis_os_standards`` at upstream dc10c02) the new server logs a warning and
falls back to grep; when standards change, stale chunks stay searchable; and the old
way of asking for a rebuild (touching ``standards/.rebuild_index``) makes the new
server rebuild the whole index before it answers anything, inside the validation
probe, writing into the live index that a rollback then leaves behind.

So (``--index rebuild``, the default) the planner decides whether the new code needs
a new index (:func:`plan_index`: no index, an empty one, the table the new server
opens missing, no ``metadata.json``, standards changed), phase 3 builds it *beside*
the live one with the new code's own ``scripts/build_rag_index.py`` in the install's
venv (:func:`build`, streamed), and switches it in with two renames; the old index
stays as ``vector_index.old-<backup id>`` until that backup is pruned, so a rollback
puts it back with one rename (:func:`restore`). Validation then starts a server that
rebuilds nothing and checks that search is answered by vector search.
``--index defer`` leaves the rebuild to the server (the flag is touched in cleanup,
after validation); ``--index skip`` leaves the index alone; both say so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import faults
from .errors import PhaseError
from .fsutil import fsync_dir, rmtree_durable
from .layout import REBUILD_FLAG, Install
from .source import Source

INDEX = ".cache/vector_index"
BUILDER = "scripts/build_rag_index.py"
ENGINE = "mcp_server/rag_engine.py"
FLAG = REBUILD_FLAG
_TABLE = re.compile(rb"""open_table\(\s*["']([\w.-]+)["']""")


@dataclass
class IndexPlan:
    """What the upgrade does about the search index, and why."""

    action: str  # "rebuild", "defer", "skip" or "none" (up to date, or no index to keep)
    reasons: list[str] = field(default_factory=list)
    table: str | None = None  # the table the new server opens

    def summary(self) -> str:
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        return {"rebuild": "rebuilt beside the live one, then switched",
                "defer": "left to the server (it rebuilds at its next start)",
                "skip": "left as it is (--index skip)",
                "none": "up to date"}[self.action] + why


def index_dir(install: Install) -> Path:
    return install.root / INDEX


def old_index(install: Install, backup_id: str) -> Path:
    return install.root / f"{INDEX}.old-{backup_id}"


def new_index(install: Install) -> Path:
    return install.root / f"{INDEX}.new"


def table_of(source: Source) -> str | None:
    """The LanceDB table the new server opens (read from its ``rag_engine.py``)."""
    sf = source.files.get(ENGINE)
    m = _TABLE.search(sf.raw()) if sf is not None else None
    return m.group(1).decode() if m else None


def builder_supported(source: Source) -> bool:
    """The new source's index builder takes the paths on its command line (upstream's does,
    from its first release in ``scripts/``)."""
    sf = source.files.get(BUILDER)
    return sf is not None and b"--index-path" in sf.raw() and b"--standards-path" in sf.raw()


def plan_index(install: Install, source: Source, standards_changed: int, mode: str) -> IndexPlan:
    """Does the new code need a new index? ``mode``: the ``--index`` option."""
    table = table_of(source)
    if table is None or not builder_supported(source):
        return IndexPlan("none", ["this source's server keeps no vector index"])
    live = index_dir(install)
    reasons = []
    if not live.is_dir():
        reasons.append("there is no index (the new server would build it before answering)")
    else:
        names = os.listdir(live)
        tables = sorted(n[: -len(".lance")] for n in names if n.endswith(".lance"))
        if not names:
            reasons.append("the index is empty (searches fall back to grep)")
        elif table not in tables:
            reasons.append(f"the new server opens table {table!r}; the index has "
                           f"{', '.join(map(repr, tables)) or 'none'} (it would fall back to grep)")
        elif "metadata.json" not in names:
            reasons.append("the index has no metadata.json (an interrupted build?)")
    if standards_changed:
        reasons.append(f"{standards_changed} standard(s) changed")
    if not reasons:
        return IndexPlan("none", [], table)
    return IndexPlan(mode, reasons, table)


def build(install: Install, table: str, note: Callable[[str], None]) -> Path:
    """Build the new code's index beside the live one (``vector_index.new``) with the install's
    venv and the installed ``scripts/build_rag_index.py``; check it has the table."""
    dest = new_index(install)
    if dest.exists():
        shutil.rmtree(dest)  # a build killed half-way: start again
    cmd = [str(install.venv_python), str(install.path(BUILDER)), "--force", "--index-path",
           str(dest), "--standards-path", str(install.path("standards"))]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=install.project, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        note(line.rstrip())
    rc = proc.wait()
    faults.point("index:built")
    have = dest.is_dir() and (dest / f"{table}.lance").is_dir() and (dest / "metadata.json").is_file()
    if rc != 0 or not have:
        why = next((ln for ln in reversed(tail) if "rror" in ln), tail[-1] if tail else "")
        raise PhaseError(f"the search index could not be built (exit {rc})", why.strip()[-300:],
                         "the upgrade was rolled back; to upgrade without rebuilding it pass "
                         "--index defer (the server rebuilds it) or --index skip")
    fsync_dir(dest)
    return dest


def switch(install: Install, backup_id: str) -> None:
    """New index in, old one kept as ``vector_index.old-<backup id>``: two renames, resumable
    between them (a rerun sees the old one already aside)."""
    live, new, old = index_dir(install), new_index(install), old_index(install, backup_id)
    if not new.exists():
        return  # already switched
    if live.exists() and not old.exists():
        os.replace(live, old)
        fsync_dir(live.parent)
        faults.point("index:between-renames")
    elif live.exists():
        rmtree_durable(live)  # a rerun: the old one is already kept
    os.replace(new, live)
    fsync_dir(live.parent)


def restore(install: Install, backup_id: str) -> bool:
    """Rollback: put back the index the upgrade of ``backup_id`` replaced (one rename);
    whether there was one. Idempotent."""
    old = old_index(install, backup_id)
    live = index_dir(install)
    rmtree_durable(new_index(install))
    if not old.exists():
        return False
    if live.exists():
        rmtree_durable(live)
    os.replace(old, live)
    fsync_dir(live.parent)
    return True


def prune(install: Install, backup_id: str) -> None:
    """The old index of a pruned backup goes with it."""
    rmtree_durable(old_index(install, backup_id))
