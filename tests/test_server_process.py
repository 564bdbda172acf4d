"""Finding *this* install's running server among others: several projects' servers started the
way users start them (relative ``PYTHONPATH=.praxis-os``, relative interpreter), the scan run
from each directory, through psutil and through ``/proc``."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import wait_for

from upgrade_tasks import procs
from upgrade_tasks.layout import Install
from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import SampleSource
from upgrade_tasks.server_process import find_running_servers

P = ".praxis-os"


def _start(project: Path, relative_python: bool) -> subprocess.Popen[bytes]:
    """A stdio server as an IDE starts it: cwd = the project, PYTHONPATH relative."""
    python = f"{P}/venv/bin/python" if relative_python else str(project / P / "venv/bin/python")
    env = {**os.environ, "PYTHONPATH": P, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([python, "-m", "mcp_server", "--transport", "stdio"], cwd=project,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_for(lambda: any(os.path.basename(a) == "mcp_server" or a == "mcp_server"
                         for a in (procs.inspect(proc.pid) or procs.Proc(0, (), None, None)
                                   ).cmdline))
    return proc


@pytest.fixture(params=["psutil", "/proc"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "/proc":
        monkeypatch.setattr(procs, "psutil", None)
    assert procs.backend() == request.param
    yield request.param


def test_each_project_finds_only_its_own_server(tmp_path: Path, source: SampleSource,
                                                backend: str) -> None:
    projects = [make_project(tmp_path / name, source.path, source.v1) for name in "abc"]
    servers = [_start(p, relative_python=(i == 1)) for i, p in enumerate(projects)]
    here = os.getcwd()
    try:
        for cwd in [*projects, tmp_path]:  # the scan run from every directory
            os.chdir(cwd)
            for project, server in zip(projects, servers):
                found = find_running_servers(Install(project))
                assert [s.pid for s in found] == [server.pid], (backend, cwd, project)
                assert found[0].transport == "stdio"
    finally:
        os.chdir(here)
        for s in servers:
            s.kill()
            s.wait()


def test_a_dead_or_foreign_pid_in_the_state_file_is_not_trusted(tmp_path: Path,
                                                                source: SampleSource,
                                                                backend: str) -> None:
    a = make_project(tmp_path / "a", source.path, source.v1)
    b = make_project(tmp_path / "b", source.path, source.v1)
    server_b = _start(b, relative_python=False)
    try:
        (a / P / ".mcp_server_state.json").write_text(f'{{"pid": {server_b.pid}}}')
        assert find_running_servers(Install(a)) == []
    finally:
        server_b.kill()
        server_b.wait()
