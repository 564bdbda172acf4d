"""Shared fixtures: real git source repositories, real installs, the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import system_packages

from upgrade_tasks.sample import make_project, tree_digest
from upgrade_tasks.sample_source import SampleSource, make_source_repo

REPO = Path(__file__).resolve().parents[1]

def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail at once, in one line, when the machine lacks a system component the tests use
    (rather than one traceback per test); root is needed too (mounts, users, loop devices)."""
    missing = system_packages.missing()
    problems = []
    if missing:
        problems.append("missing system packages: " + " ".join(missing) + " (Debian/Ubuntu: "
                        "sudo apt-get install -y " + " ".join(missing) + ")")
    if os.geteuid() != 0:
        problems.append("the tests run as root (they mount file systems and create users): "
                        "run them with sudo, or in a container or CI job as root")
    if problems:
        pytest.exit("; ".join(problems), returncode=4)

#: Files whose content carries a timestamp; compared separately.
TIMESTAMPED = (".installed-manifest.json", "VERSION.json")


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


def invoke(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
           timeout: float = 120) -> Result:
    """Run the real CLI: ``python -m invoke -r REPO ARGS`` (no stdin, like CI)."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("PRAXIS_UPGRADE_", "INVOKE_UPGRADE_"))}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(REPO), *args],
        cwd=cwd or REPO, env=full_env, stdin=subprocess.DEVNULL, capture_output=True,
        text=True, timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def praxis(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
           timeout: float = 120) -> Result:
    """Run the installed command's code: ``python -m upgrade_tasks ARGS`` (``praxis-upgrade``)."""
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("PRAXIS_UPGRADE_", "INVOKE_UPGRADE_"))}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = os.pathsep.join(  # this checkout's package, whatever the cwd
        [str(REPO), *filter(None, [full_env.get("PYTHONPATH")])])
    proc = subprocess.run([sys.executable, "-m", "upgrade_tasks", *args], cwd=cwd or REPO,
                          env=full_env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session")
def source_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., SampleSource]:
    cache: dict[str | None, SampleSource] = {}

    def make(fault: str | None = None) -> SampleSource:
        if fault not in cache:
            cache[fault] = make_source_repo(tmp_path_factory.mktemp("src") / "praxis-os",
                                            server_fault=fault)
        return cache[fault]

    return make


@pytest.fixture
def source(source_factory: Callable[..., SampleSource]) -> SampleSource:
    return source_factory()


@pytest.fixture
def project(tmp_path: Path, source: SampleSource) -> Path:
    return make_project(tmp_path / "proj", source.path, source.v1)


def digest(project: Path, portable: bool = False) -> dict[str, tuple[str, int, float]]:
    """The install as the user sees it, minus the upgrader's own bookkeeping and timestamps.

    ``portable`` also leaves out the venv, whose scripts embed the project's absolute path
    (for comparing two projects with each other).
    """
    d = tree_digest(project / ".praxis-os")
    if portable:
        d = {k: v for k, v in d.items() if k != "venv" and not k.startswith("venv/")}
    for name in TIMESTAMPED:
        d.pop(name, None)
    return d


def manifest_files(project: Path) -> dict[str, object]:
    p = project / ".praxis-os" / ".installed-manifest.json"
    return json.loads(p.read_text())["files"] if p.exists() else {}


def sessions(project: Path) -> list[dict[str, object]]:
    d = project / ".praxis-os" / ".upgrade-state"
    return [json.loads(p.read_text()) for p in sorted(d.glob("upgrade-*.json"))]


def upgrade(source: SampleSource | Path | str, project: Path, *extra: str,
            env: dict[str, str] | None = None) -> Result:
    src = str(source.path if isinstance(source, SampleSource) else source)
    return invoke("upgrade", "--source", src, "--project", str(project), "--yes", *extra, env=env)


@pytest.fixture
def pause_flag(tmp_path: Path) -> Iterator[Path]:
    flag = tmp_path / "pause.flag"
    yield flag
    if flag.exists():
        flag.unlink()


def wait_for(pred: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def run_on_pty(argv: list[str], env: dict[str, str], timeout: float = 120,
               stdin_tty: bool = True) -> tuple[int, str]:
    """Run ``argv`` with stdout/stderr (and stdin, unless ``stdin_tty`` is False) on a real
    pseudo-terminal; its exit code and everything it drew there."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave if stdin_tty else subprocess.DEVNULL, stdout=slave,
                            stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode(errors="replace")
