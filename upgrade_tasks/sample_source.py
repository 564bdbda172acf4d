"""Generator of a sample prAxIs OS *source* git repository (two releases, v1 and v2).

The repository is shaped like the public ``praxis-os`` source tree (``universal/standards``,
``universal/workflows``, ``scripts``, ``mcp_server``, ``installation``) and contains a small,
stdlib-only MCP server that behaves like the real one: ``python -m mcp_server --transport
{stdio,http,dual}``, newline-delimited JSON-RPC on stdio, a state file
``.praxis-os/.mcp_server_state.json``, tools registered with ``@mcp.tool()``.

The trees are package data, files under ``upgrade_tasks/sample_data/``: ``v1/`` and ``v2/``
are the two releases, ``faults/<name>/`` the v2 files a broken server replaces. Version 2
differs from version 1 the way a real release does (changed, added, removed and renamed
standards, a changed and an added workflow file, a changed script, one new tool, one removed
server module, a new version string). ``server_fault`` breaks only the v2 server, so tests
can exercise the upgrader's post-upgrade validation and rollback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

from .errors import UsageError

__all__ = [
    "EXECUTABLE_PATHS",
    "SERVER_FAULTS",
    "TOOLS_V1",
    "TOOLS_V2",
    "SampleSource",
    "make_source_repo",
    "v1_files",
    "v2_files",
]

SERVER_FAULTS = ("crash", "hang", "lose_tool", "import_error", "traceback")

#: Tool names ``tools/list`` reports for each version of the sample server.
TOOLS_V1 = ("current_date", "get_server_info", "pos_workflow", "search_standards")
TOOLS_V2 = ("current_date", "get_server_info", "pos_browser", "pos_workflow", "search_standards")

#: Repo-relative paths committed with mode 100755.
EXECUTABLE_PATHS = frozenset({"scripts/build_rag_index.py", "scripts/validate.sh"})


@dataclass(frozen=True)
class SampleSource:
    """A generated source repository."""

    path: Path  # the git repository root (work tree at HEAD = v2)
    v1: str  # full commit sha of version 1
    v2: str  # full commit sha of version 2 (HEAD)


def _read_tree(top: Traversable, prefix: str = "") -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for entry in top.iterdir():
        rel = prefix + entry.name
        if entry.is_dir():
            out.update(_read_tree(entry, rel + "/"))
        else:
            out[rel] = entry.read_bytes()
    return out


def _data(*parts: str) -> Traversable:
    return resources.files("upgrade_tasks").joinpath("sample_data", *parts)


def v1_files() -> dict[str, bytes]:
    """Repo-relative path -> content of the version 1 tree."""
    return dict(sorted(_read_tree(_data("v1")).items()))


def v2_files(server_fault: str | None = None) -> dict[str, bytes]:
    """Repo-relative path -> content of the version 2 tree (optionally with a server fault)."""
    _check_fault(server_fault)
    files = _read_tree(_data("v2"))
    if server_fault:
        files.update(_read_tree(_data("faults", server_fault)))
    return dict(sorted(files.items()))


# ---------------------------------------------------------------------------------------------
# Bulk standards for benchmarks
# ---------------------------------------------------------------------------------------------

_BULK_PARAGRAPH = (
    "Every change to shared state must be reviewed for concurrency hazards, failure paths "
    "and observability. Prefer small, reversible steps; record what was done so it can be "
    "undone. Tests exercise the failure paths as well as the happy path.\n"
)


def _bulk_files(count: int, size_scale: int, version: int) -> dict[str, bytes]:
    target = 4096 * size_scale
    body = (_BULK_PARAGRAPH * (target // len(_BULK_PARAGRAPH) + 1)).encode("utf-8")
    files: dict[str, bytes] = {}
    for i in range(1, count + 1):
        header = f"# Bulk standard {i:04d}\n\n**Keywords for search**: bulk, doc-{i:04d}\n\n"
        if version >= 2 and i % 3 == 0:
            header += f"Revised in 2.0.0 (change {i:04d}).\n\n"
        head = header.encode("utf-8")
        files[f"universal/standards/bulk/doc-{i:04d}.md"] = head + body[: max(0, target - len(head))]
    return files


# ---------------------------------------------------------------------------------------------
# Repository construction
# ---------------------------------------------------------------------------------------------


def _check_fault(server_fault: str | None) -> None:
    if server_fault is not None and server_fault not in SERVER_FAULTS:
        raise UsageError(
            f"unknown server fault {server_fault!r}",
            why=f"supported faults: {', '.join(SERVER_FAULTS)}",
            hint="pass one of the supported faults or None",
        )


def _git_env(date: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GIT_AUTHOR_NAME": "prAxIs Release Bot",
            "GIT_AUTHOR_EMAIL": "release@praxis-os.invalid",
            "GIT_COMMITTER_NAME": "prAxIs Release Bot",
            "GIT_COMMITTER_EMAIL": "release@praxis-os.invalid",
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_DATE": date,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    return env


_GIT_OPTS = (
    "-c", "init.defaultBranch=main",
    "-c", "commit.gpgsign=false",
    "-c", "core.autocrlf=false",
    "-c", "core.fileMode=true",
)  # fmt: skip


def _git(repo: Path, env: dict[str, str], *args: str) -> str:
    cmd = ["git", *_GIT_OPTS, "-C", str(repo), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, env=env, check=False)
    except FileNotFoundError as exc:
        raise UsageError("git is not installed", str(exc), "install git (e.g. apt-get install git)") from exc
    if proc.returncode != 0:
        raise UsageError(
            f"git {' '.join(args)} failed in {repo} (exit {proc.returncode})",
            why=proc.stderr.decode("utf-8", "replace").strip(),
            hint="check that git works and the destination is writable",
        )
    return proc.stdout.decode("utf-8", "replace")


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    made: set[Path] = set()
    for rel, data in files.items():
        path = root / rel
        parent = path.parent
        if parent not in made:
            parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        path.write_bytes(data)
        if rel in EXECUTABLE_PATHS:
            path.chmod(0o755)


def _clear_work_tree(root: Path) -> None:
    for entry in root.iterdir():
        if entry.name == ".git":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _commit(repo: Path, env: dict[str, str], message: str) -> str:
    _git(repo, env, "add", "-A")
    _git(repo, env, "update-index", "--chmod=+x", *sorted(EXECUTABLE_PATHS))
    _git(repo, env, "commit", "-q", "--no-verify", "-m", message)
    return _git(repo, env, "rev-parse", "HEAD").strip()


def make_source_repo(
    dest: Path,
    *,
    server_fault: str | None = None,
    system_files: int = 0,
    size_scale: int = 1,
) -> SampleSource:
    """Create a git repository at ``dest`` with two commits, "prAxIs OS v1" and "... v2".

    Commit shas are deterministic for equal arguments. The work tree is left clean at v2.
    """
    _check_fault(server_fault)
    if system_files < 0:
        raise UsageError(f"system_files must be >= 0, got {system_files}")
    if size_scale < 1:
        raise UsageError(f"size_scale must be >= 1, got {size_scale}")
    dest = Path(dest)
    if dest.exists():
        if not dest.is_dir():
            raise UsageError(
                f"cannot create a sample source repository at {dest}",
                why="the path exists and is not a directory",
                hint="pass a path that does not exist or an empty directory",
            )
        if any(dest.iterdir()):
            raise UsageError(
                f"cannot create a sample source repository at {dest}",
                why="the directory is not empty",
                hint="pass a path that does not exist or an empty directory",
            )
    dest.mkdir(parents=True, exist_ok=True)

    env1 = _git_env("2025-01-06T10:00:00+00:00")
    env2 = _git_env("2025-03-03T10:00:00+00:00")
    _git(dest, env1, "init", "-q")

    files1 = v1_files()
    if system_files:
        files1.update(_bulk_files(system_files, size_scale, 1))
    _write_tree(dest, files1)
    sha1 = _commit(dest, env1, "prAxIs OS v1")

    _clear_work_tree(dest)
    files2 = v2_files(server_fault)
    if system_files:
        files2.update(_bulk_files(system_files, size_scale, 2))
    _write_tree(dest, files2)
    sha2 = _commit(dest, env2, "prAxIs OS v2")
    return SampleSource(path=dest, v1=sha1, v2=sha2)
