"""Phase 4 (validation): start the new server from the venv over stdio and speak MCP.

``initialize``, ``notifications/initialized``, ``tools/list`` (and the smoke
tools), then compare the live tool names with the tools the new source
registers (static scan of ``@mcp.tool`` registrations) and with the tools the
old server listed before the upgrade. A missing tool, a crash, a timeout or a
``Traceback`` in the server's stderr fails the phase (and the engine rolls back).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from typing import Any

from .errors import ProbeError
from .layout import Install
from .mcp_client import (
    ProbeResult,
    probe_stdio,
    scan_registered_tools,
    stderr_problems,
    tool_payload,
)
from .restart import restart_stopped
from .runstate import Run


@dataclass
class ValidationResult:
    """What phase 4 learned from the new server: its tools compared with the source's registrations and
    the old server's, and the smoke calls."""

    tools: list[str]
    expected: list[str]
    old_tools: list[str] | None
    new_tools: list[str] = field(default_factory=list)
    dropped_by_source: list[str] = field(default_factory=list)
    smoke: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0

    def summary(self) -> str:
        extra = f", new: {', '.join(self.new_tools)}" if self.new_tools else ""
        gone = f", dropped upstream: {', '.join(self.dropped_by_source)}" if (
            self.dropped_by_source) else ""
        smoke = ", ".join(f"{k} {v}" for k, v in self.smoke.items()) or "none"
        return f"{len(self.tools)} tools answer{extra}{gone}; smoke: {smoke}"

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


#: A search the validation asks the new server when it has a vector index of ours to use.
SEARCH = ("search_standards", {"query": "testing", "n_results": 1})


def probe(install: Install, timeout: float, smoke: tuple[str, ...] = (),
          search: bool = False) -> ProbeResult:
    return probe_stdio(install.venv_python, install.project, timeout=timeout, smoke_tools=smoke,
                       search=SEARCH if search else None)


def import_check(install: Install, timeout: float) -> None:
    """``import mcp_server`` with the venv's python, before speaking MCP to it."""
    py = install.venv_python
    if not py.exists():
        raise ProbeError(f"the venv interpreter {py} is missing",
                         "the server runs from the install's venv",
                         f"recreate it: python3 -m venv {install.venv}")
    env = {**os.environ, "PYTHONPATH": str(install.root), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        proc = subprocess.run([str(py), "-c", "import mcp_server"], cwd=install.project, env=env,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ProbeError("importing the new mcp_server hangs", f"no answer within {timeout:.0f}s",
                         "the upgrade was rolled back; report it upstream") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise ProbeError("the new mcp_server does not import with the venv's python", last,
                         "a dependency may be missing (--deps force) or the code is broken; "
                         "the upgrade was rolled back")


def validate_server(
    install: Install, old_tools: list[str] | None, timeout: float, smoke: tuple[str, ...],
    vector_search: bool = False,
) -> ValidationResult:
    """Probe the new server over stdio and hold it to the source: every tool the source registers
    answers, no tool the old server had is lost (unless upstream dropped it), the smoke calls
    succeed and nothing on stderr looks like an error."""
    expected = sorted(scan_registered_tools(install.server_dir))
    try:
        res = probe(install, timeout, smoke, search=vector_search)
    except ProbeError:
        import_check(install, timeout)  # a clearer cause when the code does not even import
        raise
    live = set(res.tools)
    problems = stderr_problems(res.stderr)
    if problems:
        raise ProbeError(
            "the new MCP server reported errors while starting",
            "; ".join(problems[:3]),
            f"see the server's log; the upgrade was rolled back. Server stderr:\n{res.stderr[-2000:]}",
        )
    missing = sorted(set(expected) - live)
    if missing:
        raise ProbeError(
            f"the new MCP server does not list {len(missing)} tool(s) its source registers",
            "missing: " + ", ".join(missing),
            "a registration is broken in the new source; report it upstream. "
            "The upgrade was rolled back",
        )
    lost = sorted((set(old_tools or ()) & set(expected)) - live)
    if lost:
        raise ProbeError(
            "tools the old server had disappeared",
            ", ".join(lost),
            "the upgrade was rolled back; report it upstream",
        )
    method = ""
    if vector_search and SEARCH[0] in live:
        payload = tool_payload(res.search)
        method = str(payload.get("retrieval_method", "")) if isinstance(payload, dict) else ""
        if method and method != "vector":
            raise ProbeError(
                f"the new server answers {SEARCH[0]} with {method!r}, not vector search",
                "it cannot use the search index built for it (see its log for the LanceDB error)",
                "the upgrade was rolled back; retry with --index rebuild, or upgrade with "
                "--index defer to leave the index to the server",
            )
    failed = {k: v for k, v in res.smoke.items() if v != "ok"}
    if failed:
        raise ProbeError(
            "smoke calls of the new MCP server failed",
            "; ".join(f"{k}: {v}" for k, v in failed.items()),
            "the upgrade was rolled back; report it upstream",
        )
    return ValidationResult(
        tools=sorted(live),
        expected=expected,
        old_tools=old_tools,
        new_tools=sorted(live - set(old_tools)) if old_tools is not None else [],
        dropped_by_source=sorted(set(old_tools or ()) - set(expected)),
        smoke={**res.smoke, **({SEARCH[0]: f"answered by {method} search"} if method else {})},
        duration_s=res.duration_s,
    )


def step(run: Run) -> str:
    """Phase 4: probe the new server, then restart a headless one the upgrade stopped."""
    s, _src, _plan = run.need()
    old_tools = s.artifacts(1).get("old_tools")
    v = validate_server(run.install, old_tools, run.opts.probe_timeout, run.opts.smoke_tools,
                        vector_search=run.need()[2].index_action == "rebuild")
    s.artifacts(4).update(v.to_json())
    summary = v.summary()
    restarted = restart_stopped(run.install, s, run.opts)
    if restarted:
        s.artifacts(4)["restarted"] = restarted
        summary += (f"; restarted over HTTP as pid {restarted['pid']} at {restarted['url']} "
                    f"(healthy in {restarted['seconds']:.2f}s)")
    return summary
