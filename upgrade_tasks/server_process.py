"""Find and stop *this install's* running MCP server. Never ``pkill`` by name.

A process is ours when its command line runs ``-m mcp_server`` and either its
working directory is the project, its ``PYTHONPATH`` names this ``.praxis-os``,
or its interpreter is this install's venv python. A relative ``PYTHONPATH`` entry
(``PYTHONPATH=.praxis-os``, as users write it) or interpreter path is the
*process's*: it is resolved against that process's working directory, never
ours (resolving it against ours claimed other projects' servers). The pid in
``.praxis-os/.mcp_server_state.json`` is only a hint, checked like any other.
Processes are read through :mod:`upgrade_tasks.procs` (psutil, or ``/proc``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from . import procs
from .checkpoint import Session
from .errors import ProbeError
from .layout import Install


@dataclass(frozen=True)
class RunningServer:
    pid: int
    transport: str
    cmdline: tuple[str, ...]
    found_by: str  # "state-file" or "process-scan"


def pid_alive(pid: int) -> bool:
    return procs.alive(pid)


def _is_mcp_server(cmd: tuple[str, ...]) -> bool:
    return any(cmd[i] == "-m" and cmd[i + 1] == "mcp_server" for i in range(len(cmd) - 1))


def _absolute(path: str, cwd: str | None) -> Path | None:
    """``path`` as the process sees it (relative to *its* working directory)."""
    if os.path.isabs(path):
        return Path(os.path.normpath(path))
    if cwd is None:
        return None  # its cwd is not readable: a relative path cannot be placed
    return Path(os.path.normpath(os.path.join(cwd, path)))


def _same(a: Path | None, b: Path) -> bool:
    if a is None:
        return False
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def belongs_to(pid: int, install: Install) -> tuple[str, ...] | None:
    """The process's cmdline if it is an MCP server of this install, else ``None``."""
    proc = procs.inspect(pid)
    if proc is None or not _is_mcp_server(proc.cmdline):
        return None
    cmd = proc.cmdline
    if proc.cwd is not None and _same(Path(proc.cwd), install.project):
        return cmd
    for part in (proc.environ or {}).get("PYTHONPATH", "").split(os.pathsep):
        if part and _same(_absolute(part, proc.cwd), install.root):
            return cmd
    exe = _absolute(cmd[0], proc.cwd)
    if exe is not None and (exe.parent.parent == install.venv or str(exe).startswith(
            str(install.venv) + os.sep)):
        return cmd
    return None


def _transport(cmd: tuple[str, ...]) -> str:
    for i, part in enumerate(cmd):
        if part == "--transport" and i + 1 < len(cmd):
            return cmd[i + 1]
        if part.startswith("--transport="):
            return part.split("=", 1)[1]
    return "unknown"


def state_file_pid(install: Install) -> int | None:
    try:
        data = json.loads(install.server_state_file.read_text())
        return int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_running_servers(install: Install) -> list[RunningServer]:
    found: dict[int, RunningServer] = {}
    hint = state_file_pid(install)
    if hint and pid_alive(hint):
        cmd = belongs_to(hint, install)
        if cmd:
            found[hint] = RunningServer(hint, _transport(cmd), cmd, "state-file")
    for pid in procs.pids():
        if pid in found:
            continue
        cmd = belongs_to(pid, install)
        if cmd and pid_alive(pid):
            found[pid] = RunningServer(pid, _transport(cmd), cmd, "process-scan")
    return sorted(found.values(), key=lambda s: s.pid)


def stop_server(pid: int, timeouts: tuple[float, float, float] = (3.0, 3.0, 2.0)) -> str:
    """SIGINT, then SIGTERM, then SIGKILL, each with a timeout. Returns the signal that worked."""
    for sig, name, wait in zip(
        (signal.SIGINT, signal.SIGTERM, signal.SIGKILL), ("SIGINT", "SIGTERM", "SIGKILL"), timeouts
    ):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return "already gone"
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)  # reap if it happens to be our child
            except ChildProcessError:
                pass
            if not pid_alive(pid):
                return name
            time.sleep(0.02)
    return "SIGKILL (still present)"


def stop_for_upgrade(install: Install, session: Session, needs_stop: bool,
                     no_restart: bool) -> None:
    """Stop this install's running server(s) once per session (step ``server:stopped``).

    Phase 2 calls it before touching content the server reads (its index watcher would
    re-index half-written standards), phase 3 before swapping the code; whichever runs
    first does it, and a resumed run does not do it twice.
    """
    if session.has_step("server:stopped"):
        return
    arts = session.artifacts(3)
    if no_restart or not needs_stop:
        arts["stopped"] = []
        arts["restart_note"] = (
            "--no-restart: the running server (if any) was left alone" if no_restart
            else "server code unchanged: the running server was left alone"
        )
    else:
        stopped = []
        for s in find_running_servers(install):
            how = stop_server(s.pid)
            stopped.append({"pid": s.pid, "transport": s.transport, "signal": how,
                            "cmdline": list(s.cmdline), "found_by": s.found_by})
        clear_stale_state_file(install)
        arts["stopped"] = stopped
    session.step("server:stopped")


def clear_stale_state_file(install: Install) -> bool:
    """Remove ``.mcp_server_state.json`` only when the pid it names is dead."""
    pid = state_file_pid(install)
    if install.server_state_file.exists() and (pid is None or not pid_alive(pid)):
        try:
            install.server_state_file.unlink()
        except FileNotFoundError:
            return False
        return True
    return False


@dataclass(frozen=True)
class Restarted:
    pid: int
    url: str
    seconds: float
    log: str


def start_headless(install: Install, timeout: float = 10.0) -> Restarted:
    """Start this install's server over HTTP from its venv, detached, logging to a file.

    Waits until it has written its state file (our pid, a URL). Health checking over MCP is
    the caller's (``mcp_client.probe_http``).
    """
    log = install.root / ".cache" / "mcp_server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(install.root), "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    with open(log, "ab") as fh:
        fh.write(f"--- started by praxis-upgrade at {time.strftime('%Y-%m-%dT%H:%M:%S')} ---\n"
                 .encode())
        fh.flush()
        proc = subprocess.Popen(
            [str(install.venv_python), "-m", "mcp_server", "--transport", "http"],
            cwd=install.project, env=env, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh,
            start_new_session=True,
        )
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ProbeError(
                f"the restarted MCP server exited with code {proc.returncode}",
                _log_tail(log),
                f"see {log}",
            )
        try:
            data = json.loads(install.server_state_file.read_text())
            if int(data.get("pid", 0)) == proc.pid and data.get("url"):
                return Restarted(proc.pid, str(data["url"]), time.monotonic() - t0, str(log))
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    proc.terminate()
    raise ProbeError(f"the restarted MCP server did not come up within {timeout:.0f}s",
                     _log_tail(log), f"see {log}")


def _log_tail(log: Path, n: int = 10) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""
