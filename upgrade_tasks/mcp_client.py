"""Probe a prAxIs OS MCP server (stdio or HTTP) and scan its tool registrations statically.

Stdlib only: the checking interpreter does not need the ``mcp`` SDK. Over stdio the protocol is
newline-delimited JSON-RPC 2.0; each response is read before the next request is sent (writing
everything and closing stdin at once is racy: servers drop in-flight requests at EOF).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .errors import ProbeError, UsageError
from .fsutil import atomic_write_bytes, read_regular

__all__ = [
    "CLIENT_NAME",
    "PROTOCOL_VERSION",
    "STATE_FILE_NAME",
    "ProbeResult",
    "probe_http",
    "probe_stdio",
    "scan_registered_tools",
    "tools_declared",
    "stderr_problems",
]

PROTOCOL_VERSION = "2025-06-18"
CLIENT_NAME = "praxis-upgrade-probe"
STATE_FILE_NAME = ".mcp_server_state.json"
_EXIT_WAIT_S = 5.0
#: After the last answer the probe closes stdin and gives the server this long to exit on its
#: own, then sends SIGTERM to its process group. The real server needs ~2.5 s to exit on EOF
#: (measured, tests/real/FINDINGS.md 6.2) and ~0.1 s on SIGTERM; everything the probe needed
#: is answered by then, its index build (if any) happened before it answered, and the state
#: file SIGTERM leaves behind is restored by :func:`probe_stdio`. The MCP SDK's own stdio
#: client does the same after 2 s; this saves ~2 s on every validation and rollback.
_CLEAN_EXIT_S = 0.3
_STDERR_TAIL = 20


@dataclass(frozen=True)
class ProbeResult:
    """What a probe learned from the server."""

    tools: tuple[str, ...]  # sorted tool names from tools/list
    server_name: str
    server_version: str
    protocol_version: str
    stderr: str  # everything the server wrote to stderr during the probe
    duration_s: float
    smoke: dict[str, str] = field(default_factory=dict)  # tool -> "ok" or the error text
    search: Any = None  # the search call's ``result`` (see :func:`tool_payload`)


# ---------------------------------------------------------------------------------------------
# helpers shared by both transports
# ---------------------------------------------------------------------------------------------


def _initialize_message(msg_id: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": msg_id,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": CLIENT_NAME, "version": "1"},
        },
    }


def _request(msg_id: int, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    msg: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params is not None:
        msg["params"] = dict(params)
    return msg


_INITIALIZED: dict[str, Any] = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def _result_of(response: Mapping[str, Any], method: str, where: str) -> dict[str, Any]:
    """The ``result`` object of a response, or ProbeError for a JSON-RPC error."""
    error = response.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else error
        raise ProbeError(
            f"MCP server returned an error for {method}",
            why=f"{where}: {message}",
            hint="the server started but rejected the request; check its log",
        )
    result = response.get("result")
    if not isinstance(result, dict):
        raise ProbeError(
            f"MCP server sent a malformed {method} response",
            why=f"{where}: result is {type(result).__name__}, not an object",
            hint="the server does not speak MCP as expected; check its version",
        )
    return result


def _parse_init(result: Mapping[str, Any]) -> tuple[str, str, str]:
    info = result.get("serverInfo")
    info = info if isinstance(info, dict) else {}
    return (
        str(info.get("name", "")),
        str(info.get("version", "")),
        str(result.get("protocolVersion", "")),
    )


def _parse_tools(result: Mapping[str, Any], where: str) -> tuple[str, ...]:
    tools = result.get("tools")
    if not isinstance(tools, list):
        raise ProbeError(
            "MCP server sent a malformed tools/list response",
            why=f"{where}: 'tools' is missing or not a list",
            hint="the server does not speak MCP as expected; check its version",
        )
    names = {str(t["name"]) for t in tools if isinstance(t, dict) and "name" in t}
    return tuple(sorted(names))


def _call_error_text(response: Mapping[str, Any]) -> str | None:
    """None when a tools/call succeeded, else a one-line error text."""
    error = response.get("error")
    if error is not None:
        if isinstance(error, dict):
            return str(error.get("message") or error)
        return str(error)
    result = response.get("result")
    if not isinstance(result, dict):
        return "malformed tools/call response"
    if result.get("isError"):
        texts = [
            str(item.get("text", ""))
            for item in result.get("content") or []
            if isinstance(item, dict) and item.get("type") == "text"
        ]
        return " ".join(t for t in texts if t).strip() or "tool reported isError"
    return None


#: tqdm progress bars (the real server's embedding batches): they fill a tail and say nothing
_PROGRESS = re.compile(r"\d+%\||it/s\]|s/it\]|\r")


def _tail(text: str, n: int = _STDERR_TAIL) -> str:
    lines = [line for line in text.splitlines() if line.strip() and not _PROGRESS.search(line)]
    if not lines:
        return "the server wrote nothing to stderr"
    return "last stderr lines:\n" + "\n".join(lines[-n:])


# ---------------------------------------------------------------------------------------------
# stdio
# ---------------------------------------------------------------------------------------------


class _EarlyExit(Exception):
    pass


class _Timeout(Exception):
    pass


class _StdioSession:
    """One server process; a reader thread per pipe; requests answered one at a time."""

    def __init__(self, proc: subprocess.Popen[bytes], deadline: float) -> None:
        self.proc = proc
        self.deadline = deadline
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        self.noise: list[str] = []  # non-JSON stdout lines
        self._stderr: list[str] = []
        self._stderr_lock = threading.Lock()
        assert proc.stdout is not None and proc.stderr is not None
        self._out_thread = threading.Thread(target=self._read_stdout, args=(proc.stdout,), daemon=True)
        self._err_thread = threading.Thread(target=self._read_stderr, args=(proc.stderr,), daemon=True)
        self._out_thread.start()
        self._err_thread.start()

    def _read_stdout(self, pipe: IO[bytes]) -> None:
        try:
            for line in iter(pipe.readline, b""):
                self.lines.put(line)
        except (OSError, ValueError):
            pass
        finally:
            self.lines.put(None)

    def _read_stderr(self, pipe: IO[bytes]) -> None:
        try:
            for line in iter(pipe.readline, b""):
                with self._stderr_lock:
                    self._stderr.append(line.decode("utf-8", "replace"))
        except (OSError, ValueError):
            pass

    def stderr(self) -> str:
        with self._stderr_lock:
            return "".join(self._stderr)

    def join_readers(self, timeout: float = 2.0) -> None:
        self._out_thread.join(timeout)
        self._err_thread.join(timeout)

    def send(self, message: Mapping[str, Any]) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(message).encode("utf-8") + b"\n")
            stdin.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError, OSError) as exc:
            raise _EarlyExit from exc

    def receive(self, msg_id: int) -> dict[str, Any]:
        """The response with ``id == msg_id``; other messages and non-JSON lines are skipped."""
        while True:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise _Timeout
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                raise _Timeout from None
            if line is None:
                raise _EarlyExit
            text = line.decode("utf-8", "replace").strip()
            if not text:
                continue
            try:
                message = json.loads(text)
            except ValueError:
                self.noise.append(text)
                continue
            if (
                isinstance(message, dict)
                and message.get("id") == msg_id
                and ("result" in message or "error" in message)
            ):
                return message
            # a server notification or request: not what we wait for

    def request(self, message: Mapping[str, Any]) -> dict[str, Any]:
        self.send(message)
        return self.receive(int(message["id"]))


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the probe's process group (the server and anything it started)."""
    killpg = getattr(os, "killpg", None)
    try:
        if killpg is not None:
            killpg(proc.pid, sig)
        else:  # pragma: no cover - Windows
            proc.terminate()
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(OSError):
            proc.send_signal(sig)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    killpg = getattr(os, "killpg", None)
    try:
        if killpg is not None:
            killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(OSError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _snapshot_state(path: Path) -> tuple[bytes, int] | None:
    try:
        data = path.read_bytes()
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        return None
    return data, mode


def _restore_state(path: Path, original: tuple[bytes, int] | None) -> None:
    """Put the state file back exactly as it was before the probe."""
    if original is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    data, mode = original
    try:
        current: bytes | None = path.read_bytes()
    except OSError:
        current = None
    if current != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data, mode=mode)


def _venv_hint(python: Path, project: Path) -> str:
    venv = python.parent.parent if python.parent.name in ("bin", "Scripts") else python.parent
    req = project / ".praxis-os" / "mcp_server" / "requirements.txt"
    return f"recreate the venv: python3 -m venv {venv} && {venv}/bin/python -m pip install -r {req}"


def probe_stdio(
    python: Path,
    project: Path,
    *,
    timeout: float = 15.0,
    smoke_tools: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    protect_state_file: bool = True,
    search: tuple[str, Mapping[str, Any]] | None = None,
) -> ProbeResult:
    """Start ``python -m mcp_server --transport stdio`` in ``project`` and list its tools.

    Sends ``initialize``, ``notifications/initialized``, ``tools/list`` and one ``tools/call``
    (empty arguments) per smoke tool that is registered, reading each response before the next
    request, then closes stdin. ``timeout`` bounds everything up to the last response.
    With ``protect_state_file`` the project's ``.mcp_server_state.json`` is restored
    byte-for-byte (or removed if it did not exist) after the probe process has ended.
    """
    if timeout <= 0:
        raise UsageError(f"probe timeout must be positive, got {timeout}")
    if isinstance(smoke_tools, str):
        raise UsageError("smoke_tools must be a sequence of tool names, not a string")
    python = Path(python)
    project = Path(project)
    if not python.exists():
        raise ProbeError(
            f"the venv interpreter is missing: {python}",
            why="the virtual environment was deleted, moved or never created",
            hint=_venv_hint(python, project),
        )
    state_path = project / ".praxis-os" / STATE_FILE_NAME
    original = _snapshot_state(state_path) if protect_state_file else None
    try:
        return _probe_stdio(python, project, timeout, smoke_tools, env, search)
    finally:
        if protect_state_file:
            _restore_state(state_path, original)


def _probe_stdio(
    python: Path,
    project: Path,
    timeout: float,
    smoke_tools: Sequence[str],
    env: Mapping[str, str] | None,
    search: tuple[str, Mapping[str, Any]] | None = None,
) -> ProbeResult:
    run_env = dict(os.environ)
    run_env["PYTHONPATH"] = str(project / ".praxis-os")
    run_env["PYTHONUNBUFFERED"] = "1"
    run_env["PYTHONDONTWRITEBYTECODE"] = "1"
    if env:
        run_env.update(env)
    cmd = [str(python), "-m", "mcp_server", "--transport", "stdio"]
    command_text = f"cd {project} && PYTHONPATH=.praxis-os {' '.join(cmd)}"
    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            cmd,
            cwd=str(project),
            env=run_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise ProbeError(
            f"the venv interpreter is missing: {python}",
            why=str(exc),
            hint=_venv_hint(python, project),
        ) from exc
    except OSError as exc:
        raise ProbeError(
            f"could not start the MCP server with {python}",
            why=str(exc),
            hint=_venv_hint(python, project),
        ) from exc

    session = _StdioSession(proc, start + timeout)
    method = "initialize"
    try:
        try:
            init = session.request(_initialize_message(1))
            name, version, protocol = _parse_init(_result_of(init, method, "stdio"))
            session.send(_INITIALIZED)
            method = "tools/list"
            listed = session.request(_request(2, method))
            tools = _parse_tools(_result_of(listed, method, "stdio"), "stdio")
            smoke: dict[str, str] = {}
            next_id = 3
            for tool in smoke_tools:
                if tool not in tools or tool in smoke:
                    continue
                method = f"tools/call {tool}"
                response = session.request(_request(next_id, "tools/call", {"name": tool, "arguments": {}}))
                next_id += 1
                error = _call_error_text(response)
                smoke[tool] = "ok" if error is None else error
            search_result = None
            if search is not None and search[0] in tools:
                method = f"tools/call {search[0]}"
                response = session.request(_request(next_id, "tools/call",
                                                    {"name": search[0], "arguments": search[1]}))
                search_result = response.get("result", {"error": response.get("error")})
        except _Timeout:
            _kill_group(proc)
            session.join_readers(1.0)
            raise ProbeError(
                f"MCP server did not answer {method} within {timeout:g}s",
                why=_tail(session.stderr()),
                hint=(f"the server is hung or very slow to start; run it by hand to see why: {command_text}"),
            ) from None
        except _EarlyExit:
            try:
                rc: int | None = proc.wait(timeout=max(0.5, min(2.0, start + timeout - time.monotonic())))
            except subprocess.TimeoutExpired:
                rc = None
            _kill_group(proc)
            session.join_readers(2.0)
            what = (
                f"MCP server exited with code {rc} before answering {method}"
                if rc is not None
                else f"MCP server closed its stdout before answering {method}"
            )
            why = _tail(session.stderr())
            if session.noise:
                why += "\nnon-JSON stdout:\n" + "\n".join(session.noise[-5:])
            raise ProbeError(
                what,
                why=why,
                hint=f"run the server by hand to see the full error: {command_text}",
            ) from None

        # shutdown: EOF on stdin; SIGTERM when the server does not exit at once (see
        # _CLEAN_EXIT_S); SIGKILL as the last resort
        with contextlib.suppress(OSError, ValueError):
            assert proc.stdin is not None
            proc.stdin.close()
        # the stdout reader ends at the server's exit: joining it wakes us at once, where
        # Popen.wait(timeout) would poll with sleeps of up to 50 ms
        session.join_readers(_CLEAN_EXIT_S)
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            session.join_readers(_EXIT_WAIT_S)
        try:
            proc.wait(timeout=_EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
        session.join_readers(2.0)
        return ProbeResult(
            tools=tools,
            server_name=name,
            server_version=version,
            protocol_version=protocol,
            stderr=session.stderr(),
            duration_s=time.monotonic() - start,
            smoke=smoke,
            search=search_result,
        )
    finally:
        _kill_group(proc)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------


def _decode_http_body(body: bytes, content_type: str, msg_id: int | None) -> dict[str, Any] | None:
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return None
    if "text/event-stream" in content_type:
        found: dict[str, Any] | None = None
        for line in text.splitlines():
            if not line.startswith("data:"):
                continue
            try:
                message = json.loads(line[5:].strip())
            except ValueError:
                continue
            if isinstance(message, dict) and (msg_id is None or message.get("id") == msg_id):
                found = message
        return found
    message = json.loads(text)
    return message if isinstance(message, dict) else None


def probe_http(url: str, *, timeout: float = 10.0) -> ProbeResult:
    """``initialize`` + ``notifications/initialized`` + ``tools/list`` over HTTP POST."""
    if not url.startswith(("http://", "https://")):
        raise UsageError(
            f"not an HTTP URL: {url!r}",
            hint="pass the url from the state file, e.g. http://127.0.0.1:4242/mcp",
        )
    if timeout <= 0:
        raise UsageError(f"probe timeout must be positive, got {timeout}")
    # imported here: urllib.request (http.client, ssl, email) costs ~11 ms of start-up that
    # every stdio-only run would pay
    import urllib.error
    import urllib.request

    start = time.monotonic()
    deadline = start + timeout
    headers: dict[str, str] = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
    }

    def post(message: Mapping[str, Any], method: str) -> dict[str, Any] | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProbeError(
                f"MCP server at {url} did not answer {method} within {timeout:g}s",
                why="the overall probe timeout elapsed",
                hint="check that the server is running and not overloaded",
            )
        req = urllib.request.Request(
            url, data=json.dumps(message).encode("utf-8"), headers=dict(headers), method="POST"
        )
        msg_id = message.get("id")
        try:
            with urllib.request.urlopen(req, timeout=remaining) as resp:  # noqa: S310
                session_id = resp.headers.get("Mcp-Session-Id")
                if session_id:
                    headers["Mcp-Session-Id"] = session_id
                body = resp.read()
                ctype = resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace").strip()[:500]
            raise ProbeError(
                f"MCP server at {url} answered HTTP {exc.code} to {method}",
                why=detail or str(exc.reason),
                hint="check the URL path (usually /mcp) and the server log",
            ) from exc
        except (socket.timeout, TimeoutError) as exc:
            raise ProbeError(
                f"MCP server at {url} did not answer {method} within {timeout:g}s",
                why=str(exc),
                hint="the server accepts connections but does not respond; check its log",
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise ProbeError(
                    f"MCP server at {url} did not answer {method} within {timeout:g}s",
                    why=str(reason),
                    hint="the server accepts connections but does not respond; check its log",
                ) from exc
            raise ProbeError(
                f"could not reach the MCP server at {url}",
                why=str(reason),
                hint="check that the server runs with --transport http or dual and that the "
                "url in .praxis-os/.mcp_server_state.json is current",
            ) from exc
        try:
            return _decode_http_body(body, ctype, msg_id if isinstance(msg_id, int) else None)
        except ValueError as exc:
            raise ProbeError(
                f"MCP server at {url} sent a non-JSON answer to {method}",
                why=body.decode("utf-8", "replace")[:200],
                hint="check that the URL points at the MCP endpoint",
            ) from exc

    def ask(message: Mapping[str, Any], method: str) -> dict[str, Any]:
        response = post(message, method)
        if response is None:
            raise ProbeError(
                f"MCP server at {url} sent an empty answer to {method}",
                why="a response body with a JSON-RPC result was expected",
                hint="check that the URL points at the MCP endpoint",
            )
        return _result_of(response, method, url)

    init = ask(_initialize_message(1), "initialize")
    name, version, protocol = _parse_init(init)
    if protocol:
        headers["MCP-Protocol-Version"] = protocol
    post(_INITIALIZED, "notifications/initialized")
    tools = _parse_tools(ask(_request(2, "tools/list"), "tools/list"), url)
    return ProbeResult(
        tools=tools,
        server_name=name,
        server_version=version,
        protocol_version=protocol,
        stderr="",
        duration_s=time.monotonic() - start,
        smoke={},
    )


# ---------------------------------------------------------------------------------------------
# static scan, stderr triage
# ---------------------------------------------------------------------------------------------


def _tool_name(decorator: ast.expr, function_name: str) -> str | None:
    """The tool name if ``decorator`` is ``@x.tool``, ``@x.tool()`` or ``@x.tool(name=...)``."""
    if isinstance(decorator, ast.Attribute):
        return function_name if decorator.attr == "tool" else None
    if isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute):
        if decorator.func.attr != "tool":
            return None
        for keyword in decorator.keywords:
            if (
                keyword.arg == "name"
                and isinstance(keyword.value, ast.Constant)
                and isinstance(keyword.value.value, str)
            ):
                return keyword.value.value
        if (
            decorator.args
            and isinstance(decorator.args[0], ast.Constant)
            and isinstance(decorator.args[0].value, str)
        ):
            return decorator.args[0].value
        return function_name
    return None


def scan_registered_tools(server_dir: Path) -> set[str]:
    """Names of functions decorated with ``@<anything>.tool`` in ``server_dir/**/*.py``.

    Files in ``__pycache__`` and files that cannot be read or parsed are skipped. This finds
    what the source *declares*; whether a ``register_*`` function is actually called is only
    visible to a live ``tools/list``.
    """
    server_dir = Path(server_dir)
    if not server_dir.is_dir():
        raise ProbeError(
            f"MCP server directory not found: {server_dir}",
            why="the path does not exist or is not a directory",
            hint="check that .praxis-os/mcp_server was installed",
        )
    def files() -> Iterator[bytes]:
        for path in sorted(server_dir.rglob("*.py")):
            if "__pycache__" in path.relative_to(server_dir).parts:
                continue
            try:
                yield read_regular(path)  # never a FIFO a user (or an attacker) left there
            except OSError:
                continue

    return tools_declared(files())


def tools_declared(sources: Iterable[bytes]) -> set[str]:
    """The union of the tools each Python source (a file's bytes) declares."""
    names: set[str] = set()
    for data in sources:
        names |= _tools_in(data)
    return names


_SCANNED: dict[bytes, frozenset[str]] = {}


def _tools_in(data: bytes) -> frozenset[str]:
    """The tools one file registers; cached by content (pre-flight scans the source's server,
    validation the same files once installed)."""
    if b"tool" not in data and data.isascii() and b"coding" not in b"\n".join(data.split(b"\n", 2)[:2]):
        # every decorator the scan knows names ``tool``; in plain ASCII with no coding line
        # (PEP 263) no other spelling of that name exists: nothing to parse
        return frozenset()
    key = hashlib.sha256(data).digest()
    if key not in _SCANNED:
        found: set[str] = set()
        try:
            tree = ast.parse(data)
        except (SyntaxError, ValueError):
            tree = None
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for decorator in node.decorator_list:
                    name = _tool_name(decorator, node.name)
                    if name is not None:
                        found.add(name)
        _SCANNED[key] = frozenset(found)
    return _SCANNED[key]


def tool_payload(result: Any) -> Any:
    """What a tool returned, from a ``tools/call`` result: its ``structuredContent`` (FastMCP
    wraps plain values as ``{"result": ...}``) or the JSON of its text content."""
    if not isinstance(result, dict):
        return result
    sc = result.get("structuredContent")
    if isinstance(sc, dict):
        return sc.get("result", sc) if set(sc) == {"result"} else sc
    for item in result.get("content") or []:
        if isinstance(item, dict) and item.get("type") == "text":
            try:
                return json.loads(str(item.get("text", "")))
            except ValueError:
                return item.get("text")
    return None


def stderr_problems(stderr: str) -> list[str]:
    """Stripped stderr lines containing ``Traceback``, `` ERROR `` or ``ERROR:``."""
    return [
        line.strip()
        for line in stderr.splitlines()
        if "Traceback" in line or " ERROR " in line or "ERROR:" in line
    ]
