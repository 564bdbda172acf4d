"""Small builders for data-driven scenarios: a source history from dicts, an install made
at one of its commits, and an in-process upgrade through the same engine the tasks use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from upgrade_tasks import options as options_mod
from upgrade_tasks.driver import run_upgrade as drive
from upgrade_tasks.layout import PRAXIS_DIR
from upgrade_tasks.options import Options
from upgrade_tasks.sample import install_at
from upgrade_tasks.sample_source import v1_files

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
}
SERVER = {k: v for k, v in v1_files().items() if k.startswith("mcp_server/")}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          env={**os.environ, **GIT_ENV}, text=True).stdout.strip()


def build_repo(dest: Path, commits: list[dict[str, bytes | None]]) -> list[str]:
    """Each commit applies its changes (``None`` deletes) on top of the previous tree."""
    dest.mkdir(parents=True)
    git(dest, "init", "-q", "-b", "main")
    tree: dict[str, bytes] = dict(SERVER)
    shas = []
    for i, changes in enumerate(commits):
        for path, data in changes.items():
            if data is None:
                tree.pop(path, None)
            else:
                tree[path] = data
        for p in dest.iterdir():
            if p.name != ".git":
                subprocess.run(["rm", "-rf", str(p)], check=True)
        for path, data in tree.items():
            f = dest / path
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(data)
        (dest / "universal").mkdir(exist_ok=True)
        (dest / "universal" / ".keep").write_text("")
        git(dest, "add", "-A")
        git(dest, "commit", "-q", "--allow-empty", "-m", f"c{i}")
        shas.append(git(dest, "rev-parse", "HEAD"))
    return shas


def make_install(project: Path, repo: Path, commit: str, with_manifest: bool = True) -> Path:
    install_at(project, repo, commit, with_manifest=with_manifest, venv=False)
    venv = project / PRAXIS_DIR / "venv"
    if not venv.exists():
        # a venv without pip is all the stdlib sample server needs (0.1 s)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return project


def options(source: Path, project: Path, **kw: object) -> Options:
    return options_mod.resolve({"source": str(source), "project": str(project), "yes": True, **kw})


def run_upgrade(source: Path, project: Path, **kw: object) -> None:
    """The whole chain, in this process (what `invoke upgrade` runs)."""
    drive(options(source, project, **kw))


