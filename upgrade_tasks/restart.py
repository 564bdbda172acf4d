"""Start this install's server again, headless over HTTP, and health-check it.

Only a server the upgrade (or a rollback) stopped that was not the IDE's own
(``http`` or ``dual`` transport) is started again: a ``stdio`` server belongs to
the IDE, which restarts it when the user reloads it. The check is MCP over HTTP
(``initialize``, ``tools/list`` on the server's URL) and no errors in its log; a
server that fails it is stopped again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .checkpoint import Session
from .errors import ProbeError
from .layout import Install
from .mcp_client import ProbeResult, probe_http, stderr_problems
from .options import Options
from .server_process import find_running_servers, start_headless, stop_server


def wait_http(url: str, timeout: float) -> ProbeResult:
    """Health check over HTTP MCP, retrying while the port does not accept connections yet
    (servers write their state file before their transport listens)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe_http(url, timeout=max(1.0, deadline - time.monotonic()))
        except ProbeError as exc:
            if "could not reach" not in exc.what or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def start_checked(inst: Install, opts: Options) -> dict[str, Any]:
    """Start the server headless over HTTP and health-check it (MCP over HTTP, no errors in
    its log); a server that fails the check is stopped again."""
    r = start_headless(inst, timeout=max(10.0, opts.probe_timeout))
    try:
        probe = wait_http(r.url, opts.probe_timeout)
        log_new = Path(r.log).read_text(errors="replace").rsplit("--- started by praxis-upgrade", 1)[-1]
        problems = stderr_problems(log_new)
        if problems:
            raise ProbeError("the restarted MCP server logged errors", "; ".join(problems[:3]),
                             f"see {r.log}")
    except BaseException:
        stop_server(r.pid)
        raise
    return {"pid": r.pid, "url": r.url, "seconds": round(r.seconds + probe.duration_s, 3),
            "tools": list(probe.tools), "log": r.log}


def restart_stopped(inst: Install, s: Session, opts: Options) -> dict[str, Any] | None:
    """Start again, headless over HTTP, a server the session stopped that was not the IDE's."""
    stopped = [x for x in s.artifacts(3).get("stopped", [])
               if x.get("transport") in ("http", "dual")]
    if not stopped or opts.no_restart:
        return None
    for srv in find_running_servers(inst):  # a previous attempt of this step
        stop_server(srv.pid)
    return start_checked(inst, opts)
