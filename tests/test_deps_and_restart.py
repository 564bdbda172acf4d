"""Issue 4: dependencies in a new venv switched by a symlink (O(1) rollback), offline
wheelhouses, post-install steps, HTTP servers restarted and health-checked, hangs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

from conftest import digest, invoke, sessions, upgrade, wait_for
from test_server_phase import _commit_requirements, _wheel

from upgrade_tasks.mcp_client import probe_http
from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import SampleSource

P = ".praxis-os"


def _clone(source: SampleSource, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(source.path), str(dest)], check=True)
    return dest


def _project_with_pip(tmp: Path, source: SampleSource) -> Path:
    proj = make_project(tmp / "p", source.path, source.v1, venv=False)
    subprocess.run([sys.executable, "-m", "venv", str(proj / P / "venv")], check=True)
    return proj


def _deps_world(tmp: Path, source: SampleSource, requirements: str,
                wheel: Callable[[Path], Path] | None = None) -> tuple[Path, Path, Path]:
    """(source with new requirements, project with a pip venv, wheelhouse)."""
    wheels = tmp / "wheels"
    wheels.mkdir()
    if wheel is not None:
        wheel(wheels)
    repo = _clone(source, tmp / "src")
    _commit_requirements(repo, requirements)
    return repo, _project_with_pip(tmp, source), wheels


def _can_import(project: Path, module: str) -> bool:
    py = project / P / "venv" / "bin" / "python"  # the path the IDE is configured with
    return subprocess.run([str(py), "-c", f"import {module}"]).returncode == 0


def test_new_venv_is_switched_by_symlink_and_rolled_back_by_rename(
    tmp_path: Path, source: SampleSource
) -> None:
    repo, proj, wheels = _deps_world(tmp_path, source, "praxis-demo-dep==0.1\n", _wheel)
    before = digest(proj)
    r = upgrade(repo, proj, "--find-links", str(wheels), "--offline")
    assert r.code == 0, r.text
    venv = proj / P / "venv"
    assert venv.is_symlink() and os.readlink(venv).startswith(".venvs/env-")
    assert _can_import(proj, "praxis_demo_dep")
    # the old environment was moved aside, untouched, not copied
    (s,) = sessions(proj)
    moved = s["phase_artifacts"]["1"]["venv_before"]["moved_to"]
    assert (proj / P / moved / "pyvenv.cfg").exists()
    # uv when it is on PATH (measured with and without it), else the venv's own pip
    assert f"installed with {'uv' if shutil.which('uv') else 'pip'}" in s["phase_artifacts"]["3"][
        "deps"]
    rb = invoke("rollback", "--project", str(proj))
    assert rb.code == 0, rb.text
    assert venv.is_dir() and not venv.is_symlink()
    assert not _can_import(proj, "praxis_demo_dep")
    assert not (proj / P / ".venvs").exists()
    assert digest(proj) == before


def test_unresolvable_requirement_is_explained_and_rolled_back(
    tmp_path: Path, source: SampleSource
) -> None:
    repo, proj, _ = _deps_world(tmp_path, source, "no-such-package-praxis==9.9\n")
    before = digest(proj)
    r = upgrade(repo, proj, "--offline", "--find-links", str(tmp_path))
    assert r.code == 6, r.text
    assert "no-such-package-praxis" in r.err and "could not be resolved" in r.err
    assert "--find-links" in r.err
    assert digest(proj) == before
    assert (proj / P / "venv").is_dir() and not (proj / P / "venv").is_symlink()


def _fake_playwright(dest: Path, message: str) -> Path:
    """A wheel named playwright whose `python -m playwright install chromium` fails."""
    whl = _wheel(dest, name="playwright", version="1.0")
    with zipfile.ZipFile(whl, "a") as zf:
        zf.writestr("playwright/__init__.py", "")
        zf.writestr("playwright/__main__.py",
                    f"import sys\nprint({message!r})\nsys.exit(1)\n")
    return whl


def test_post_install_download_failure_is_a_warning(tmp_path: Path, source: SampleSource) -> None:
    repo, proj, wheels = _deps_world(
        tmp_path, source,
        "# browsers: the word playwright in a comment means nothing\nplaywright==1.0\n",
        lambda d: _fake_playwright(d, "Downloading Chromium failed: getaddrinfo ENOTFOUND cdn"))
    r = upgrade(repo, proj, "--find-links", str(wheels), "--offline")
    assert r.code == 0, r.text
    assert "could not download the Chromium browser; run it later" in r.out
    assert "venv/bin/python -m playwright install chromium" in r.out
    (s,) = sessions(proj)
    assert s["phase_artifacts"]["3"]["post_install"][0]["status"] == "warning"


def test_post_install_real_failure_rolls_back(tmp_path: Path, source: SampleSource) -> None:
    repo, proj, wheels = _deps_world(tmp_path, source, "playwright==1.0\n",
                                     lambda d: _fake_playwright(d, "Error: unknown browser channel"))
    before = digest(proj)
    r = upgrade(repo, proj, "--find-links", str(wheels), "--offline")
    assert r.code == 6, r.text
    assert "post-install step failed" in r.err and "--post-install skip" in r.err
    assert digest(proj) == before
    r2 = upgrade(repo, proj, "--find-links", str(wheels), "--offline", "--post-install", "skip")
    assert r2.code == 0, r2.text


def _free_port() -> int:
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return int(sk.getsockname()[1])


def _start_http(project: Path, port: int, transport: str = "http") -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(project / P), "PRAXIS_MCP_PORT": str(port)}
    proc = subprocess.Popen(
        [str(project / P / "venv" / "bin" / "python"), "-m", "mcp_server", "--transport", transport],
        cwd=project, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: (project / P / ".mcp_server_state.json").exists(), timeout=10)
    return proc


def _state(project: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((project / P / ".mcp_server_state.json").read_text())
    return data


def test_http_server_is_restarted_headless_and_health_checked(
    tmp_path: Path, source: SampleSource
) -> None:
    proj = make_project(tmp_path / "p", source.path, source.v1)
    port = _free_port()
    old = _start_http(proj, port)
    restarted_pid = None
    try:
        assert "pos_browser" not in probe_http(str(_state(proj)["url"])).tools
        r = upgrade(source, proj, env={"PRAXIS_MCP_PORT": str(port)})
        assert r.code == 0, r.text
        assert old.wait(timeout=10) is not None
        st = _state(proj)
        restarted_pid = int(str(st["pid"]))
        assert restarted_pid != old.pid and st["transport"] == "http"
        assert "pos_browser" in probe_http(str(st["url"])).tools
        assert "restarted over HTTP" in r.out
        (s,) = sessions(proj)
        assert s["phase_artifacts"]["4"]["restarted"]["seconds"] < 10
        assert (proj / P / ".cache" / "mcp_server.log").exists()
    finally:
        old.kill()
        if restarted_pid:
            os.kill(restarted_pid, signal.SIGKILL)


def test_dual_server_is_stopped_and_rollback_restarts_the_old_one(
    tmp_path: Path, source_factory  # type: ignore[no-untyped-def]
) -> None:
    src = source_factory("lose_tool")
    proj = make_project(tmp_path / "p", src.path, src.v1)
    port = _free_port()
    old = _start_http(proj, port, transport="dual")
    again = None
    try:
        r = upgrade(src, proj, env={"PRAXIS_MCP_PORT": str(port)})
        assert r.code == 6, r.text
        assert "restarted over HTTP" in r.out
        st = _state(proj)
        again = int(str(st["pid"]))
        assert again != old.pid
        tools = probe_http(str(st["url"])).tools
        assert "pos_browser" not in tools and "current_date" in tools  # the old server, restored
    finally:
        old.kill()
        if again:
            os.kill(again, signal.SIGKILL)


def test_hanging_new_server_times_out_and_rolls_back(tmp_path: Path,
                                                     source_factory) -> None:  # type: ignore[no-untyped-def]
    src = source_factory("hang")
    proj = make_project(tmp_path / "p", src.path, src.v1)
    before = digest(proj)
    r = upgrade(src, proj, env={"INVOKE_UPGRADE_PROBE_TIMEOUT": "3"})
    assert r.code == 6, r.text
    assert "did not answer" in r.err and "within 3" in r.err
    assert "restored server: answers with 4 tools" in r.out
    assert digest(proj) == before
