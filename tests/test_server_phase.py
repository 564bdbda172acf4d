"""Phase 3: only this install's running server is stopped; dependencies use the venv's python."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import digest, sessions, upgrade, wait_for

from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import SampleSource

P = ".praxis-os"


def start_server(project: Path) -> subprocess.Popen[bytes]:
    """Start a project's server the way an IDE does: venv python, stdio, stdin kept open."""
    env = {**os.environ, "PYTHONPATH": str(project / P), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.Popen(
        [str(project / P / "venv" / "bin" / "python"), "-m", "mcp_server", "--transport", "stdio"],
        cwd=project, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    wait_for((project / P / ".mcp_server_state.json").exists, timeout=10)
    return proc


def test_only_this_projects_server_is_stopped(tmp_path: Path, source: SampleSource) -> None:
    mine = make_project(tmp_path / "mine", source.path, source.v1)
    other = make_project(tmp_path / "other", source.path, source.v1)
    a, b = start_server(mine), start_server(other)
    try:
        r = upgrade(source, mine)
        assert r.code == 0, r.text
        assert a.wait(timeout=10) is not None  # ours: stopped
        assert b.poll() is None  # the other project's: untouched
        (s,) = sessions(mine)
        stopped = s["phase_artifacts"]["3"]["stopped"]
        assert [x["pid"] for x in stopped] == [a.pid] and stopped[0]["signal"] == "SIGINT"
        assert "reload it in your IDE" in r.out
        # SIGINT lets the server remove its own state file; none is left stale
        assert not (mine / P / ".mcp_server_state.json").exists()
        assert (other / P / ".mcp_server_state.json").exists()
    finally:
        for p in (a, b):
            p.kill()
            p.wait()


def test_no_restart_leaves_the_server_running(tmp_path: Path, source: SampleSource) -> None:
    mine = make_project(tmp_path / "mine", source.path, source.v1)
    a = start_server(mine)
    try:
        state_before = (mine / P / ".mcp_server_state.json").read_bytes()
        r = upgrade(source, mine, "--no-restart")
        assert r.code == 0, r.text
        assert a.poll() is None
        # the validation probe must not clobber the live server's state file
        assert (mine / P / ".mcp_server_state.json").read_bytes() == state_before
    finally:
        a.kill()
        a.wait()


def _wheel(dest: Path, name: str = "praxis_demo_dep", version: str = "0.1") -> Path:
    """A minimal pure-Python wheel, built by hand so the test needs no network."""
    dist = f"{name}-{version}"
    files = {
        f"{name}.py": b"VALUE = 42\n",
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}.dist-info/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, data in files.items():
        digest_b64 = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest_b64},{len(data)}")
    record.append(f"{dist}.dist-info/RECORD,,")
    files[f"{dist}.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    whl = dest / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        for path, data in files.items():
            zf.writestr(path, data)
    return whl


def _commit_requirements(repo: Path, text: str) -> None:
    (repo / "mcp_server" / "requirements.txt").write_text(text)
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-qm", "requirements changed"], check=True)


def test_changed_requirements_are_installed_with_the_venv_python(
    tmp_path: Path, source: SampleSource
) -> None:
    repo = tmp_path / "src"
    subprocess.run(["git", "clone", "-q", str(source.path), str(repo)], check=True)
    whl = _wheel(tmp_path)
    _commit_requirements(repo, f"# our deps\n{whl}\n")
    proj = make_project(tmp_path / "p", source.path, source.v1, venv=False)
    subprocess.run([sys.executable, "-m", "venv", str(proj / P / "venv")], check=True)
    dry = upgrade(repo, proj, "--dry-run")
    assert "dependencies             install (normalised requirements changed)" in dry.out
    r = upgrade(repo, proj)
    assert r.code == 0, r.text
    venv_py = proj / P / "venv" / "bin" / "python"
    out = subprocess.run([str(venv_py), "-c", "import praxis_demo_dep; print(praxis_demo_dep.VALUE)"],
                         capture_output=True, text=True)
    assert out.stdout.strip() == "42"
    # the interpreter running the upgrader did not get it
    assert subprocess.run([sys.executable, "-c", "import praxis_demo_dep"]).returncode != 0
    (s,) = sessions(proj)
    assert s["phase_artifacts"]["3"]["deps"].startswith("installed with")
    # unchanged (only reordered / commented) requirements are not reinstalled
    _commit_requirements(repo, f"{whl}   # same requirement, other spacing\n\n# comment\n")
    r2 = upgrade(repo, proj)
    assert r2.code == 0, r2.text
    assert "deps: requirements unchanged" in r2.out


def test_failing_dependency_install_rolls_back(tmp_path: Path, source: SampleSource) -> None:
    repo = tmp_path / "src"
    subprocess.run(["git", "clone", "-q", str(source.path), str(repo)], check=True)
    _commit_requirements(repo, "this-package-does-not-exist-praxis==0.0.0\n")
    proj = make_project(tmp_path / "p", source.path, source.v1)  # venv without pip
    before = digest(proj)
    r = upgrade(repo, proj)
    assert r.code == 6, r.text
    assert "phase 3 (server)" in r.err and "dependency install failed" in r.err
    assert digest(proj) == before
