"""Issue 14.1: installed as a package, with no checkout anywhere on the path.

The wheel is built from this checkout as a user's ``pip install .`` builds it (and the checkout
is left as it was: no ``build/``, no ``*.egg-info``), installed as a tool with ``uv tool
install`` (what ``pipx install`` does: an isolated venv and a command on PATH), then run from
a directory that is not the checkout, with no ``PYTHONPATH``: ``--version``, ``--list``, the
demo, and an upgrade, status and rollback of a generated sample.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, digest

from upgrade_tasks import __version__
from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import make_source_repo


def _untracked_state(repo: Path) -> set[str]:
    """Files of the checkout that git does not track, ignored ones included (a build's traces)."""
    out = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
                         cwd=repo, capture_output=True, text=True, check=True).stdout
    return {line[3:] for line in out.splitlines() if line.startswith(("??", "!!"))
            and "__pycache__" not in line and not line[3:].startswith((".mypy_cache", ".ruff_cache",
                                                                        ".nox", ".hypothesis"))}


@pytest.fixture(scope="module")
def tool(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a user who installed the wheel as a tool: its command on PATH."""
    uv = shutil.which("uv")
    assert uv, "uv is a dev dependency (pip install -e '.[dev]')"
    tmp = tmp_path_factory.mktemp("pkg")
    before = _untracked_state(REPO)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"),
                    str(REPO)], check=True, capture_output=True)
    assert _untracked_state(REPO) == before, "building the wheel wrote into the checkout"
    (wheel,) = (tmp / "dist").glob("praxis_upgrade-*.whl")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("PRAXIS_UPGRADE_")}
    env.update(UV_TOOL_DIR=str(tmp / "tools"), UV_TOOL_BIN_DIR=str(tmp / "bin"))
    subprocess.run([uv, "tool", "install", "-q", "--python", sys.executable, str(wheel)], env=env,
                   check=True, capture_output=True, timeout=600)
    env["PATH"] = str(tmp / "bin") + os.pathsep + env.get("PATH", "")
    return env


def _run(env: dict[str, str], *args: str, cwd: Path,
         timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["praxis-upgrade", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def test_version_and_list_without_a_checkout(tool: dict[str, str], tmp_path: Path) -> None:
    r = _run(tool, "--version", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == f"praxis-upgrade {__version__}"
    r = _run(tool, "--list", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for task in ("preflight", "backup", "content", "server", "validate", "cleanup", "upgrade",
                 "rollback", "status", "demo"):
        assert f"  {task}" in r.stdout
    # the code that runs is the installed copy, not this checkout
    exe = Path(shutil.which("praxis-upgrade", path=tool["PATH"]) or "")
    here = subprocess.run([str(exe.resolve().parent / "python"), "-c",
                           "import upgrade_tasks; print(upgrade_tasks.__file__)"],
                          capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert not Path(here.strip()).resolve().is_relative_to(REPO)


def test_demo_and_a_real_upgrade_without_a_checkout(tool: dict[str, str], tmp_path: Path) -> None:
    r = _run(tool, "demo", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "install byte-identical to before the upgrade: yes" in r.stdout

    src = make_source_repo(tmp_path / "praxis-os")
    proj = make_project(tmp_path / "app", src.path, src.v1)
    before = digest(proj)
    r = _run(tool, "upgrade", "--source", str(src.path), "--project", str(proj), "--yes", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "upgrade complete" in r.stdout
    r = _run(tool, "status", "--project", str(proj), cwd=tmp_path)
    assert r.returncode == 0 and src.v2[:10] in r.stdout, r.stdout + r.stderr
    # hints name the command the user typed
    assert "`praxis-upgrade rollback" in r.stdout or "praxis-upgrade rollback" in r.stdout
    assert "invoke rollback" not in r.stdout
    r = _run(tool, "rollback", "--project", str(proj), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert digest(proj) == before


def test_a_usage_error_names_the_installed_command(tool: dict[str, str], tmp_path: Path) -> None:
    r = _run(tool, "upgrade", "--projcet", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 2
    assert "did you mean --project?" in r.stderr + r.stdout
