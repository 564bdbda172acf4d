"""A small newline-delimited JSON-RPC (MCP stdio) client for the real server, with timings.

Each request is written, then its answer is read before anything else is sent (closing stdin
early is racy: the server may exit before answering). stdout is read by a thread into a queue;
non-JSON lines and messages that are not the awaited answer are kept in ``other``.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Optional

PROTOCOL_VERSION = "2025-06-18"


class ProbeError(RuntimeError):
    """The server died, answered with an error, or did not answer in time."""


@dataclass
class Event:
    """One timed step of a session (seconds since the process was spawned)."""

    name: str
    at: float
    ok: bool
    detail: str = ""


@dataclass
class StdioSession:
    """A running server process and the client side of its stdio channel."""

    proc: subprocess.Popen[bytes]
    stderr_path: Path
    t0: float
    events: list[Event] = field(default_factory=list)
    other: list[Any] = field(default_factory=list)
    _q: queue.Queue[tuple[float, Optional[bytes]]] = field(default_factory=queue.Queue)
    _next_id: int = 1

    def __post_init__(self) -> None:
        assert self.proc.stdout is not None
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()

    def _pump(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            self._q.put((time.monotonic(), line))
        self._q.put((time.monotonic(), None))

    def elapsed(self) -> float:
        """Seconds since spawn."""
        return time.monotonic() - self.t0

    def _send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            raise ProbeError(f"server stdin closed ({e}); exit code {self.proc.poll()}") from e

    def notify(self, method: str, params: Optional[dict[str, Any]] = None) -> None:
        """Send a notification (no answer expected)."""
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self._send(msg)
        self.events.append(Event(method, self.elapsed(), True))

    def request(
        self,
        method: str,
        params: Optional[dict[str, Any]] = None,
        timeout: float = 60.0,
        label: Optional[str] = None,
    ) -> Any:
        """Send a request and wait for its answer; return ``result`` or raise :class:`ProbeError`."""
        rid = self._next_id
        self._next_id += 1
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        self._send(msg)
        deadline = time.monotonic() + timeout
        name = label or method
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.events.append(Event(name, self.elapsed(), False, f"no answer in {timeout:g} s"))
                raise ProbeError(f"{name}: no answer in {timeout:g} s")
            try:
                at, line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait(timeout=10)
                self.events.append(Event(name, self.elapsed(), False, f"stdout closed, exit {code}"))
                raise ProbeError(f"{name}: server closed stdout (exit code {code})")
            try:
                data = json.loads(line)
            except ValueError:
                self.other.append(line.decode("utf-8", "replace"))
                continue
            if isinstance(data, dict) and data.get("id") == rid and ("result" in data or "error" in data):
                t = at - self.t0
                if "error" in data:
                    self.events.append(Event(name, t, False, json.dumps(data["error"])[:300]))
                    raise ProbeError(f"{name}: error {data['error']}")
                self.events.append(Event(name, t, True))
                return data["result"]
            self.other.append(data)

    def initialize(self, timeout: float = 600.0) -> Any:
        """``initialize`` then ``notifications/initialized``; returns the server's answer."""
        res = self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "praxis-real-harness", "version": "1"},
            },
            timeout=timeout,
        )
        self.notify("notifications/initialized")
        return res

    def list_tools(self, timeout: float = 60.0) -> list[str]:
        """``tools/list``: the tool names."""
        res = self.request("tools/list", {}, timeout=timeout)
        return [t["name"] for t in res.get("tools", [])]

    def call_tool(self, name: str, arguments: dict[str, Any], timeout: float = 120.0) -> Any:
        """``tools/call``; returns the raw result (``content`` / ``structuredContent`` / ``isError``)."""
        return self.request(
            "tools/call", {"name": name, "arguments": arguments}, timeout=timeout, label=f"tools/call {name}"
        )

    def stop(self, *, how: str = "eof", timeout: float = 10.0) -> dict[str, Any]:
        """Stop the server: ``eof`` (close stdin), ``sigint`` or ``sigterm``, escalating to SIGTERM then
        SIGKILL after ``timeout`` s each. Returns what stopped it and how long it took."""
        t = time.monotonic()
        steps: list[str] = []
        if self.proc.poll() is None:
            if how == "eof":
                if self.proc.stdin:
                    try:
                        self.proc.stdin.close()
                    except OSError:
                        pass
            else:
                os.killpg(self.proc.pid, signal.SIGINT if how == "sigint" else signal.SIGTERM)
            steps.append(how)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    self.proc.wait(timeout=timeout)
                    break
                except subprocess.TimeoutExpired:
                    steps.append(sig.name)
                    os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=timeout)
        return {
            "stopped_by": steps[-1] if steps else "already exited",
            "steps": steps,
            "seconds": round(time.monotonic() - t, 3),
            "returncode": self.proc.returncode,
        }

    def stderr_text(self) -> str:
        """Everything the server wrote to stderr so far."""
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""


def spawn(argv: list[str], *, cwd: Path, env: dict[str, str], stderr_path: Path) -> StdioSession:
    """Start ``argv`` in its own process group with pipes for stdin/stdout and stderr to a file."""
    stderr_path.parent.mkdir(parents=True, exist_ok=True)
    err = open(stderr_path, "wb")  # noqa: SIM115 - handed to the child
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv,
            cwd=str(cwd),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    finally:
        err.close()
    return StdioSession(proc, stderr_path, t0)
