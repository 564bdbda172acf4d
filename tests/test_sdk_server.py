"""The upgrade against a real server built on the official ``mcp`` Python SDK (2.x),
validated over stdio and restarted and health-checked over streamable HTTP."""

from __future__ import annotations

import os
import shutil
import signal
import site
import subprocess
import sys
from pathlib import Path

import mcp.server  # noqa: F401 - a missing SDK must fail here, in CI too, never skip
from conftest import digest, sessions, upgrade
from scenario_lib import git
from test_deps_and_restart import _free_port, _start_http, _state

from upgrade_tasks.mcp_client import probe_http, probe_stdio
from upgrade_tasks.sample import install_at

P = ".praxis-os"

SERVER = '''"""prAxIs OS MCP server built on the official SDK."""
import argparse
import datetime
import json
import os
import sys
from pathlib import Path

from mcp.server import MCPServer

mcp = MCPServer("praxis-os-rag", version=VERSION)


@mcp.tool()
def get_server_info() -> str:
    """Server information."""
    return json.dumps({"version": VERSION, "pid": os.getpid()})


@mcp.tool()
def current_date() -> str:
    """Today's date."""
    return datetime.date.today().isoformat()


@mcp.tool()
def search_standards(query: str) -> str:
    """Search the standards."""
    return query
EXTRA


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transport", required=True, choices=["stdio", "http"])
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args()
    base = Path(os.environ.get("AGENT_OS_BASE_PATH") or Path.cwd() / ".praxis-os")
    port = int(os.environ.get("PRAXIS_MCP_PORT", "4242"))
    url = f"http://127.0.0.1:{port}/mcp" if args.transport == "http" else None
    state = base / ".mcp_server_state.json"
    tmp = state.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": VERSION, "transport": args.transport, "port": port,
                               "url": url, "pid": os.getpid()}))
    os.replace(tmp, state)
    try:
        if args.transport == "stdio":
            mcp.run()
        else:
            mcp.run(transport="streamable-http", host="127.0.0.1", port=port)
    finally:
        try:
            state.unlink()
        except FileNotFoundError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''
V2_EXTRA = '''

@mcp.tool()
def pos_browser(action: str) -> str:
    """Browser automation."""
    return action
'''


def _sdk_source(base: Path, sample: Path) -> tuple[Path, str, str]:
    repo = base / "sdk-src"
    subprocess.run(["git", "clone", "-q", str(sample), str(repo)], check=True)
    shas = []
    for version, extra in (("1.0.0", ""), ("2.0.0", V2_EXTRA)):
        shutil.rmtree(repo / "mcp_server")
        (repo / "mcp_server").mkdir()
        (repo / "mcp_server" / "__init__.py").write_text("")
        (repo / "mcp_server" / "__main__.py").write_text(
            SERVER.replace("VERSION", repr(version)).replace("EXTRA", extra))
        (repo / "mcp_server" / "requirements.txt").write_text("mcp>=2,<3\n")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"sdk server {version}")
        shas.append(git(repo, "rev-parse", "HEAD"))
    return repo, shas[0], shas[1]


def _sdk_project(base: Path, repo: Path, commit: str) -> Path:
    proj = base / "proj"
    install_at(proj, repo, commit, venv=False)
    # the venv sees the SDK installed for the tests (no network needed here): a .pth adds the
    # running interpreter's site-packages. (``--system-site-packages`` would add the *base*
    # interpreter's, which lacks the SDK when the tests run in a virtualenv.)
    venv = proj / P / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (own,) = venv.glob("lib/python*/site-packages")
    dirs = [d for d in site.getsitepackages() if Path(d).is_dir()]
    (own / "_tests_sdk.pth").write_text("".join(f"import site; site.addsitedir({d!r})\n"
                                                for d in dirs))
    return proj


def test_sdk_server_upgrade_validated_over_stdio(tmp_path: Path, source) -> None:  # type: ignore[no-untyped-def]
    repo, v1, v2 = _sdk_source(tmp_path, source.path)
    proj = _sdk_project(tmp_path, repo, v1)
    old = probe_stdio(proj / P / "venv" / "bin" / "python", proj, timeout=30)
    assert old.server_version == "1.0.0" and "pos_browser" not in old.tools
    r = upgrade(repo, proj)
    assert r.code == 0, r.text
    (s,) = sessions(proj)
    v = s["phase_artifacts"]["4"]
    assert "pos_browser" in v["tools"] and v["new_tools"] == ["pos_browser"]
    assert v["smoke"] == {"get_server_info": "ok", "current_date": "ok"}
    new = probe_stdio(proj / P / "venv" / "bin" / "python", proj, timeout=30)
    assert new.server_version == "2.0.0"


def test_sdk_server_over_http_is_restarted_and_rolled_back(tmp_path: Path, source) -> None:  # type: ignore[no-untyped-def]
    repo, v1, v2 = _sdk_source(tmp_path, source.path)
    proj = _sdk_project(tmp_path, repo, v1)
    before = digest(proj)
    port = _free_port()
    old = _start_http(proj, port)
    pids: list[int] = []
    try:
        r = upgrade(repo, proj, env={"PRAXIS_MCP_PORT": str(port), "INVOKE_UPGRADE_PROBE_TIMEOUT": "30"})
        assert r.code == 0, r.text
        st = _state(proj)
        pids.append(int(str(st["pid"])))
        assert "pos_browser" in probe_http(str(st["url"]), timeout=30).tools
        # roll back: the old code comes back and is restarted over HTTP too
        from conftest import invoke

        rb = invoke("rollback", "--project", str(proj),
                    env={"PRAXIS_MCP_PORT": str(port), "INVOKE_UPGRADE_PROBE_TIMEOUT": "30"})
        assert rb.code == 0, rb.text
        assert "restarted over HTTP" in rb.out
        st = _state(proj)
        pids.append(int(str(st["pid"])))
        assert "pos_browser" not in probe_http(str(st["url"]), timeout=30).tools
    finally:
        old.kill()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    after = digest(proj)
    after.pop(".mcp_server_state.json", None)
    before.pop(".mcp_server_state.json", None)
    assert {k: v for k, v in after.items() if not k.startswith(".cache/mcp_server.log")} == {
        k: v for k, v in before.items() if not k.startswith(".cache/mcp_server.log")}
