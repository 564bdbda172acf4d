"""The sample prAxIs OS source repo and the MCP probe, against real git and real servers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from upgrade_tasks.errors import ProbeError, UsageError
from upgrade_tasks.layout import map_source_path
from upgrade_tasks.mcp_client import (
    probe_http,
    probe_stdio,
    scan_registered_tools,
    stderr_problems,
    tools_declared,
)
from upgrade_tasks.sample_source import (
    SERVER_FAULTS,
    TOOLS_V1,
    TOOLS_V2,
    make_source_repo,
    v1_files,
    v2_files,
)

PY = Path(sys.executable)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def write_files(root: Path, files: dict[str, bytes], prefix: str = "") -> None:
    for rel, data in files.items():
        if not rel.startswith(prefix):
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def install(tmp_path: Path, files: dict[str, bytes]) -> Path:
    """A minimal project: .praxis-os/{mcp_server,standards/universal,workflows}."""
    project = tmp_path / "project"
    base = project / ".praxis-os"
    base.mkdir(parents=True)
    for rel, data in files.items():
        mapped = map_source_path(rel)
        if mapped is None or mapped[1].startswith("scripts/") or mapped[0] == "config":
            continue
        target = base / mapped[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return project


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# sample source repository
# ---------------------------------------------------------------------------------------------


def test_make_source_repo_two_commits_clean_and_deterministic(tmp_path: Path) -> None:
    src = make_source_repo(tmp_path / "src")
    assert git(src.path, "rev-parse", "HEAD").strip() == src.v2
    assert git(src.path, "rev-list", "HEAD").split() == [src.v2, src.v1]
    assert git(src.path, "log", "--format=%s").splitlines() == ["prAxIs OS v2", "prAxIs OS v1"]
    assert git(src.path, "status", "--porcelain", "--ignored") == ""
    assert git(src.path, "branch", "--show-current").strip() == "main"
    again = make_source_repo(tmp_path / "again")
    assert (again.v1, again.v2) == (src.v1, src.v2)
    # work tree == v2_files()
    on_disk = {
        str(p.relative_to(src.path)): p.read_bytes()
        for p in src.path.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(src.path).parts
    }
    assert on_disk == v2_files()
    modes = dict(
        (line.split("\t")[1], line.split()[0]) for line in git(src.path, "ls-tree", "-r", "HEAD").splitlines()
    )
    assert modes["scripts/build_rag_index.py"] == "100755"
    assert modes["scripts/validate.sh"] == "100755"
    assert modes["README.md"] == "100644"
    assert "installation/00-START.md" in modes


def test_make_source_repo_rejects_bad_arguments(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UsageError):
        make_source_repo(tmp_path / "full")
    with pytest.raises(UsageError):
        make_source_repo(tmp_path / "f", server_fault="explode")
    (tmp_path / "empty").mkdir()
    assert make_source_repo(tmp_path / "empty").path == tmp_path / "empty"


def test_v1_v2_differences(tmp_path: Path) -> None:
    src = make_source_repo(tmp_path / "src")
    status = {}
    for line in git(src.path, "diff", "--name-status", "-M", src.v1, src.v2).splitlines():
        parts = line.split("\t")
        status[parts[-1]] = (parts[0][0], parts[1])
    assert status["universal/standards/concurrency/race-conditions.md"] == (
        "R",
        "universal/standards/architecture/race-conditions.md",
    )
    assert status["mcp_server/legacy_helpers.py"][0] == "D"
    assert status["universal/standards/testing/property-based-testing.md"][0] == "D"
    assert status["universal/standards/architecture/dependency-injection.md"][0] == "A"
    assert status["mcp_server/server/tools/browser_tools.py"][0] == "A"
    assert status["universal/workflows/praxis_os_upgrade_v1/phases/2/phase.md"][0] == "A"
    assert status["universal/workflows/praxis_os_upgrade_v1/metadata.json"][0] == "M"
    assert status["scripts/build_rag_index.py"][0] == "M"
    assert "scripts/validate.sh" not in status
    assert "installation/00-START.md" not in status

    v1, v2 = v1_files(), v2_files()
    changed_standards = [p for p in v1 if p.startswith("universal/standards/") and p in v2 and v1[p] != v2[p]]
    assert len(changed_standards) == 3
    assert b'"1.0.0"' in v1["mcp_server/version.py"]
    assert b'"2.0.0"' in v2["mcp_server/version.py"]

    def reqs(data: bytes) -> list[str]:
        lines = (ln.split("#")[0].strip() for ln in data.decode().splitlines())
        return sorted(ln for ln in lines if ln)

    req1, req2 = v1["mcp_server/requirements.txt"], v2["mcp_server/requirements.txt"]
    assert req1 != req2 and reqs(req1) == reqs(req2) == []


def test_system_files_bulk(tmp_path: Path) -> None:
    src = make_source_repo(tmp_path / "src", system_files=30, size_scale=2)
    bulk = sorted((src.path / "universal/standards/bulk").glob("doc-*.md"))
    assert len(bulk) == 30
    assert all(7000 < p.stat().st_size <= 8192 for p in bulk)
    changed = git(src.path, "diff", "--name-only", src.v1, src.v2, "--", "universal/standards/bulk")
    assert len(changed.split()) == 10


def test_fault_changes_only_v2_server() -> None:
    clean = v2_files()
    for fault in SERVER_FAULTS:
        broken = v2_files(fault)
        assert broken.keys() == clean.keys()
        diff = [p for p in clean if clean[p] != broken[p]]
        assert diff and all(p.startswith("mcp_server/") for p in diff), fault


def test_scan_registered_tools(tmp_path: Path) -> None:
    write_files(tmp_path / "v1", v1_files(), "mcp_server/")
    write_files(tmp_path / "v2", v2_files(), "mcp_server/")
    write_files(tmp_path / "lost", v2_files("lose_tool"), "mcp_server/")
    assert scan_registered_tools(tmp_path / "v1" / "mcp_server") == set(TOOLS_V1)
    assert scan_registered_tools(tmp_path / "v2" / "mcp_server") == set(TOOLS_V2)
    assert scan_registered_tools(tmp_path / "lost" / "mcp_server") == set(TOOLS_V2)

    extra = tmp_path / "extra"
    (extra / "__pycache__").mkdir(parents=True)
    (extra / "a.py").write_text(
        "@mcp.tool\ndef bare(): ...\n"
        "@server.app.tool(name='renamed')\nasync def inner(): ...\n"
        "@mcp.resource()\ndef not_a_tool(): ...\n"
        "@tool\ndef plain_decorator(): ...\n"
    )
    (extra / "broken.py").write_text("def (:\n")
    (extra / "__pycache__" / "c.py").write_text("@mcp.tool()\ndef cached(): ...\n")
    assert scan_registered_tools(extra) == {"bare", "renamed"}


def test_the_scan_finds_tools_spelt_without_the_ascii_word() -> None:
    """Files without the bytes ``tool`` are skipped unparsed, but only when nothing else can
    spell the name: Python normalises (NFKC) identifiers, and a coding line re-encodes a file."""
    assert tools_declared([b"@mcp.resource()\ndef r(): ...\n"]) == set()
    fullwidth = "@mcp.\uff54\uff4f\uff4f\uff4c()\ndef search(): ...\n".encode()
    utf7 = b"# coding: utf-7\n@mcp.+AHQ-ool()\ndef search(): ...\n"
    assert b"tool" not in fullwidth and b"tool" not in utf7
    assert tools_declared([fullwidth]) == {"search"}
    assert tools_declared([utf7]) == {"search"}


def test_stderr_problems() -> None:
    text = (
        "2025-01-01 INFO mcp_server: started\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1\n'
        "2025-01-01 10:00:00 ERROR mcp_server: boom  \n"
        "ERROR: could not import\n"
        "error: lowercase is fine\n"
    )
    assert stderr_problems(text) == [
        "Traceback (most recent call last):",
        "2025-01-01 10:00:00 ERROR mcp_server: boom",
        "ERROR: could not import",
    ]


# ---------------------------------------------------------------------------------------------
# live probes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "tools", "version"),
    [(v1_files(), TOOLS_V1, "1.0.0"), (v2_files(), TOOLS_V2, "2.0.0")],
    ids=["v1", "v2"],
)
def test_probe_stdio(tmp_path: Path, files: dict[str, bytes], tools: tuple[str, ...], version: str) -> None:
    project = install(tmp_path, files)
    result = probe_stdio(PY, project, timeout=10, smoke_tools=("get_server_info", "current_date", "nope"))
    assert result.tools == tools
    assert result.server_name == "praxis-os-rag"
    assert result.server_version == version
    assert result.protocol_version == "2025-06-18"
    assert result.smoke == {"get_server_info": "ok", "current_date": "ok"}
    assert "started" in result.stderr
    assert stderr_problems(result.stderr) == []
    assert result.duration_s < 10
    assert not (project / ".praxis-os" / ".mcp_server_state.json").exists()


def test_probe_smoke_failure_is_reported(tmp_path: Path) -> None:
    project = install(tmp_path, v2_files())
    result = probe_stdio(PY, project, smoke_tools=("search_standards", "pos_workflow"))
    assert "query" in result.smoke["search_standards"]
    assert result.smoke["pos_workflow"] != "ok"


def test_fault_crash(tmp_path: Path) -> None:
    project = install(tmp_path, v2_files("crash"))
    with pytest.raises(ProbeError) as info:
        probe_stdio(PY, project, timeout=10)
    assert "exited with code 1" in info.value.what
    assert "RuntimeError" in info.value.why


def test_fault_import_error(tmp_path: Path) -> None:
    project = install(tmp_path, v2_files("import_error"))
    with pytest.raises(ProbeError) as info:
        probe_stdio(PY, project, timeout=10)
    assert "exited with code 1" in info.value.what
    assert "ModuleNotFoundError" in info.value.why and "vector_tools" in info.value.why


def test_fault_hang(tmp_path: Path) -> None:
    project = install(tmp_path, v2_files("hang"))
    start = time.monotonic()
    with pytest.raises(ProbeError) as info:
        probe_stdio(PY, project, timeout=2.5)
    elapsed = time.monotonic() - start
    assert "did not answer initialize within 2.5s" in info.value.what
    assert 2.4 < elapsed < 6


def test_fault_lose_tool(tmp_path: Path) -> None:
    project = install(tmp_path, v2_files("lose_tool"))
    result = probe_stdio(PY, project, timeout=10)
    assert "current_date" not in result.tools
    assert set(TOOLS_V2) - set(result.tools) == {"current_date"}
    static = scan_registered_tools(project / ".praxis-os" / "mcp_server")
    assert static - set(result.tools) == {"current_date"}


def test_fault_traceback(tmp_path: Path) -> None:
    project = install(tmp_path, v2_files("traceback"))
    result = probe_stdio(PY, project, timeout=10)
    assert result.tools == TOOLS_V2
    assert "Traceback (most recent call last):" in stderr_problems(result.stderr)


def test_probe_missing_python(tmp_path: Path) -> None:
    project = install(tmp_path, v2_files())
    with pytest.raises(ProbeError) as info:
        probe_stdio(project / ".praxis-os" / "venv" / "bin" / "python", project)
    assert "interpreter is missing" in info.value.what
    assert "venv" in info.value.hint


def test_probe_http(tmp_path: Path) -> None:
    project = install(tmp_path, v2_files())
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(project / ".praxis-os"), PRAXIS_MCP_PORT=str(port))
    proc = subprocess.Popen(
        [str(PY), "-m", "mcp_server", "--transport", "http"],
        cwd=project,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    state_file = project / ".praxis-os" / ".mcp_server_state.json"
    try:
        deadline = time.monotonic() + 10
        while not state_file.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        state = json.loads(state_file.read_text())
        assert state["port"] == port and state["pid"] == proc.pid
        assert state["transport"] == "http"
        result = probe_http(state["url"], timeout=5)
        assert result.tools == TOOLS_V2
        assert result.server_version == "2.0.0"
        assert result.stderr == ""
    finally:
        proc.send_signal(2)  # SIGINT: the server removes its state file
        proc.wait(timeout=5)
        if proc.stderr:
            proc.stderr.close()
    assert not state_file.exists()
    with pytest.raises(ProbeError, match="could not reach"):
        probe_http(f"http://127.0.0.1:{port}/mcp", timeout=2)


def test_state_file_restored_byte_identical(tmp_path: Path) -> None:
    project = install(tmp_path, v2_files())
    state_file = project / ".praxis-os" / ".mcp_server_state.json"
    original = b'{"pid": 999999, "transport": "dual", "url": "http://127.0.0.1:4242/mcp"}\n'
    state_file.write_bytes(original)
    os.chmod(state_file, 0o600)
    probe_stdio(PY, project, timeout=10)
    assert state_file.read_bytes() == original
    assert state_file.stat().st_mode & 0o777 == 0o600
    # also after a failed probe
    crash = install(tmp_path / "c", v2_files("crash"))
    (crash / ".praxis-os" / ".mcp_server_state.json").write_bytes(original)
    with pytest.raises(ProbeError):
        probe_stdio(PY, crash, timeout=10)
    assert (crash / ".praxis-os" / ".mcp_server_state.json").read_bytes() == original


def test_state_file_not_left_behind(tmp_path: Path) -> None:
    project = install(tmp_path, v2_files("hang"))
    state_file = project / ".praxis-os" / ".mcp_server_state.json"
    with pytest.raises(ProbeError):
        probe_stdio(PY, project, timeout=1.0)  # killed: the server cannot clean up itself
    assert not state_file.exists()
    unprotected = install(tmp_path / "u", v2_files("hang"))
    with pytest.raises(ProbeError):
        probe_stdio(PY, unprotected, timeout=1.0, protect_state_file=False)
    assert (unprotected / ".praxis-os" / ".mcp_server_state.json").exists()
