"""Upgrades of real prAxIs OS installs: real commits, made the way each era's installer made them,
upgraded to the source's HEAD with the real MCP server validated (``nox -s real -- SOURCE``).

SOURCE is ``$PRAXIS_REAL_SOURCE``: a checkout, the history bundle or a URL (default: the bundle
in ``../shared/data``). The server's venv is built with uv (torch's CPU wheel from the local wheel
directory), cached by requirements hash; the embedding model is a tiny one built locally (the
real server loads it as it would the hub's). Nothing here is skipped: a missing part fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from upgrade_tasks.history import load_history
from upgrade_tasks.layout import map_source_path
from upgrade_tasks.sample import tree_digest

from . import harness as h

pytestmark = pytest.mark.real

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "praxis-os-history.bundle"
#: upstream ids of the commits the scenarios install
AFTER_RENAME = "925b10d"  # the first install-script install in .praxis-os
EARLY = "d07d0d6"  # commit 9: the first installer's guide, .agent-os, no workflows/ copied


@dataclass
class Real:
    source: Path  # a checkout at the source's HEAD
    venv: Path  # the real server's venv (HEAD's requirements)
    env: dict[str, str]  # the model variables (and a quiet, single-threaded torch)


@pytest.fixture(scope="session")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Real]:
    spec = os.environ.get("PRAXIS_REAL_SOURCE") or str(DEFAULT_SOURCE)
    work = tmp_path_factory.mktemp("real")
    source = h.clone_source(spec, work / "src")
    req = work / "requirements.txt"
    req.write_bytes((source / "mcp_server" / "requirements.txt").read_bytes())
    venv = h.server_venv(req)
    env = {**h.tiny_model(work / "hf"), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    yield Real(source, venv, env)


def install(real: Real, commit: str, project: Path) -> Path:
    """An install of upstream ``commit`` as its installer made it, committed to the project's git
    (so the upgrade's changes show in ``git status``)."""
    h.new_project(project)
    root = h.make_install(real.source, h.resolve_commit(real.source, commit), project,
                          venv=real.venv)
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", "install", "--allow-empty")
    return root


def _git(project: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True,
                          text=True, env=env).stdout


def cli(real: Real, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """The upgrader's CLI (the same ``invoke -r`` users run), with the model in its environment."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PRAXIS_UPGRADE_", "INVOKE_UPGRADE_"))}
    env.update(real.env)
    return subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), *args], cwd=REPO,
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def upgrade(real: Real, project: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli(real, "upgrade", "--source", str(real.source), "--project", str(project), "--yes",
               *extra)


def state(root: Path) -> dict[str, object]:
    """The install as the user sees it: everything but the venv, caches and our bookkeeping."""
    d = tree_digest(root, exclude=(".upgrade-state", ".cache", ".backups", ".upgrade-reports",
                                   ".upgrade-lock", ".upgrade-lock.owner.json", "UPDATE_LOG.txt",
                                   "venv", ".venvs"))
    return {k: v for k, v in d.items() if "__pycache__" not in k}


def tables(root: Path, real: Real) -> list[str]:
    """The LanceDB tables of the install's index (``<table>.lance`` directories)."""
    index = root / ".cache" / "vector_index"
    return sorted(p.name[: -len(".lance")] for p in index.glob("*.lance")) if index.is_dir() else []


def search_method(project: Path, real: Real) -> str:
    env = h.server_env(project, real.env)
    res = h.probe(project, env, transport="stdio",
                  calls=[("search_standards", {"query": "testing", "n_results": 1})],
                  init_timeout=180)
    assert res.ok, res.error
    return res.retrieval or "no answer"


def head_targets(real: Real) -> set[str]:
    out = subprocess.run(["git", "-C", str(real.source), "ls-files"], capture_output=True,
                         text=True, check=True).stdout.split()
    return {m[1] for p in out if (m := map_source_path(p)) and m[0] == "content"}


def test_an_install_after_the_rename_gets_a_new_index_and_rolls_back_byte_for_byte(
        real: Real, tmp_path: Path) -> None:
    """925b10d -> HEAD: the table was renamed upstream (agent_os_standards ->
    praxis_os_standards); the index is rebuilt beside the live one with the new code, the new
    server answers searches by vector search, and a rollback puts the old index back."""
    project = tmp_path / "p"
    root = install(real, AFTER_RENAME, project)
    build = h.build_index(project, h.server_env(project, real.env), force=True)
    assert build.returncode == 0, build.tail
    (root / "standards" / ".rebuild_index").unlink(missing_ok=True)  # the first start took it
    assert tables(root, real) == ["agent_os_standards"]
    before = state(root)
    r = upgrade(real, project)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "index rebuilt in" in r.stdout and "answered by vector search" in r.stdout
    assert tables(root, real) == ["praxis_os_standards"]
    assert not (root / "standards" / ".rebuild_index").exists()
    assert search_method(project, real) == "vector"
    back = cli(real, "rollback", "--project", str(project))
    assert back.returncode == 0, back.stdout + back.stderr
    assert tables(root, real) == ["agent_os_standards"]
    assert not list((root / ".cache").glob("vector_index.*"))
    assert state(root) == before


def test_defer_leaves_the_rebuild_to_the_server(real: Real, tmp_path: Path) -> None:
    project = tmp_path / "p"
    root = install(real, AFTER_RENAME, project)
    (root / "standards" / ".rebuild_index").unlink(missing_ok=True)
    r = upgrade(real, project, "--index", "defer")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "left to the server" in r.stdout
    assert (root / "standards" / ".rebuild_index").exists()  # touched after validation


def test_an_install_of_a_tied_commit_is_recognised_as_it_and_gets_every_file(
        real: Real, tmp_path: Path) -> None:
    """The commit after the installed one only adds files: both explain the install equally.
    The installed commit is the earlier one, so the added files are new, not "deleted by you"."""
    hist = load_history(real.source)
    tree: set[str] = set()
    tied = None
    for (commit, changes), (_nxt, after) in zip(hist.changes, hist.changes[1:]):
        tree |= {p for p, b in changes.items() if b}
        tree -= {p for p, b in changes.items() if not b}
        if after and all(b and p not in tree for p, b in after.items()):
            tied = commit
    assert tied is not None, "no commit of this source is followed by one that only adds files"
    project = tmp_path / "p"
    install(real, tied, project)
    dry = upgrade(real, project, "--dry-run", "--index", "skip")
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert f"installed {tied[:10]}" in dry.stdout, dry.stdout
    assert "kept deleted" not in dry.stdout
    r = upgrade(real, project, "--index", "skip")
    assert r.returncode == 0, r.stdout + r.stderr
    root = project / ".praxis-os"  # (an early install was in .agent-os: the upgrade moved it)
    have = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert head_targets(real) <= have, sorted(head_targets(real) - have)[:10]


def test_an_early_agent_os_install_is_moved_and_completed(real: Real, tmp_path: Path) -> None:
    """Commit 9's installer copied no workflows/ and no scripts/ into .agent-os; the upgrade moves
    the install to .praxis-os and completes it (every workflow whole), removes the pristine
    usage guides upstream dropped, builds the index; the rollback moves it all back."""
    project = tmp_path / "p"
    old = install(real, EARLY, project)
    assert old.name == ".agent-os" and not (old / "workflows").exists()
    before = state(old)
    r = upgrade(real, project)
    assert r.returncode == 0, r.stdout + r.stderr
    root = project / ".praxis-os"
    assert not old.exists() and root.is_dir()
    wf = root / "workflows" / "spec_creation_v1"
    want = {t for t in head_targets(real) if t.startswith("workflows/spec_creation_v1/")}
    assert {p.relative_to(root).as_posix() for p in wf.rglob("*") if p.is_file()} == want
    assert (wf / "metadata.json").exists()
    assert not list((root / "usage").glob("*")) if (root / "usage").exists() else True
    assert ".cursor/mcp.json (line" in r.stdout  # the IDE config still names .agent-os
    assert search_method(project, real) == "vector"
    back = cli(real, "rollback", "--project", str(project))
    assert back.returncode == 0, back.stdout + back.stderr
    assert not root.exists() and state(old) == before
