"""Generator of a sample prAxIs OS *source* git repository (two releases, v1 and v2).

The repository is shaped like the public ``praxis-os`` source tree (``universal/standards``,
``universal/workflows``, ``scripts``, ``mcp_server``, ``installation``) and contains a small,
stdlib-only MCP server that behaves like the real one: ``python -m mcp_server --transport
{stdio,http,dual}``, newline-delimited JSON-RPC on stdio, a state file
``.praxis-os/.mcp_server_state.json``, tools registered with ``@mcp.tool()``.

Version 2 differs from version 1 the way a real release does (changed, added, removed and
renamed standards, a changed and an added workflow file, a changed script, one new tool, one
removed server module, a new version string). ``server_fault`` breaks only the v2 server, so
tests can exercise the upgrader's post-upgrade validation and rollback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

__all__ = [
    "EXECUTABLE_PATHS",
    "SERVER_FAULTS",
    "TOOLS_V1",
    "TOOLS_V2",
    "SampleSource",
    "make_source_repo",
    "v1_files",
    "v2_files",
]

SERVER_FAULTS = ("crash", "hang", "lose_tool", "import_error", "traceback")

#: Tool names ``tools/list`` reports for each version of the sample server.
TOOLS_V1 = ("current_date", "get_server_info", "pos_workflow", "search_standards")
TOOLS_V2 = ("current_date", "get_server_info", "pos_browser", "pos_workflow", "search_standards")

#: Repo-relative paths committed with mode 100755.
EXECUTABLE_PATHS = frozenset({"scripts/build_rag_index.py", "scripts/validate.sh"})


@dataclass(frozen=True)
class SampleSource:
    """A generated source repository."""

    path: Path  # the git repository root (work tree at HEAD = v2)
    v1: str  # full commit sha of version 1
    v2: str  # full commit sha of version 2 (HEAD)


# ---------------------------------------------------------------------------------------------
# Standards
# ---------------------------------------------------------------------------------------------

_CREDENTIALS = """# Credential File Protection

**Keywords for search**: credentials, secrets, .env, api keys, never commit

## Rule

Never read, print, copy or commit credential files. This covers `.env`, `*.pem`,
`id_rsa*`, `credentials.json` and any file listed in the project's secret scanner
configuration.

## Why

An AI assistant that echoes a secret into a chat transcript has leaked it. Rotating a
leaked key costs hours; not reading it costs nothing.

## How to comply

1. Reference secrets by environment variable name only.
2. If a task needs a secret, ask the human to provide it through their own tooling.
3. Treat unknown dotfiles as sensitive until proven otherwise.
"""

_GIT_SAFETY_V1 = """# Git Safety Rules

**Keywords for search**: git, force push, reset, destructive operations

## Forbidden without explicit human approval

- `git push --force` to shared branches
- `git reset --hard` on a work tree with uncommitted changes
- `git clean -fdx`

## Required

- Commit small, reviewable changes with descriptive messages.
- Never rewrite published history.
"""

_GIT_SAFETY_V2 = """# Git Safety Rules

**Keywords for search**: git, force push, reset, destructive operations, stash, rebase

## Forbidden without explicit human approval

- `git push --force` (use `--force-with-lease` on your own branches only)
- `git reset --hard` on a work tree with uncommitted changes
- `git clean -fdx`
- `git rebase` of a branch other people have pulled

## Required

- Commit small, reviewable changes with descriptive messages.
- Never rewrite published history.
- Run `git status` before and after every operation that touches the work tree.

## Recovering

`git reflog` keeps every position of HEAD for 90 days; most "lost" work is recoverable.
"""

_PRODUCTION_CHECKLIST = """# Production Code Checklist

**Keywords for search**: production, checklist, error handling, logging, review

Before declaring any change done, confirm:

- [ ] Inputs are validated at the boundary; errors name the bad value.
- [ ] Every external call has a timeout.
- [ ] Failures are logged once, with context, at the right level.
- [ ] Resources (files, sockets, locks) are released on every path.
- [ ] Concurrency: shared state is protected or avoided.
- [ ] Tests cover the failure paths, not just the happy path.
- [ ] Documentation and changelog updated.
"""

_TEST_PYRAMID_V1 = """# The Test Pyramid

**Keywords for search**: testing, unit tests, integration tests, test pyramid

Write many fast unit tests, fewer integration tests and a handful of end-to-end tests.

| layer | share | runtime budget |
|---|---|---|
| unit | ~70% | < 10 ms each |
| integration | ~20% | < 1 s each |
| end-to-end | ~10% | < 30 s each |
"""

_TEST_PYRAMID_V2 = """# The Test Pyramid

**Keywords for search**: testing, unit tests, integration tests, test pyramid, test trophy

Write many fast unit tests, fewer integration tests and a handful of end-to-end tests.

| layer | share | runtime budget |
|---|---|---|
| unit | ~60% | < 10 ms each |
| integration | ~30% | < 2 s each |
| end-to-end | ~10% | < 60 s each |

## When to invert the pyramid

For glue code (CLIs, installers, upgraders) most bugs live at the boundaries: prefer
integration tests against real processes and real file systems over mocks.
"""

_INTEGRATION_TESTING = """# Integration Testing

**Keywords for search**: integration tests, real dependencies, fixtures, isolation

## Principles

- Use real dependencies where they are cheap to start (SQLite, a local git repo, a
  subprocess) and fakes only where they are not.
- Every test creates its own temporary directory; nothing touches the developer's home.
- Tests must be runnable in any order and in parallel.

## Anti-patterns

- Sleeping for a fixed time instead of waiting for a condition.
- Asserting on log text that is not part of the contract.
"""

_PROPERTY_TESTING = """# Property-Based Testing

**Keywords for search**: hypothesis, property-based testing, invariants, fuzzing

Describe *what must always hold* instead of listing examples:

- round trips: `decode(encode(x)) == x`
- idempotence: `normalise(normalise(x)) == normalise(x)`
- invariants: a sorted list stays sorted after `insert`

Keep generated inputs small and let the framework shrink failures.
"""

_SOLID_V1 = """# SOLID Principles

**Keywords for search**: SOLID, design principles, single responsibility, dependency inversion

- **S**ingle responsibility: one reason to change per module.
- **O**pen/closed: extend behaviour without editing stable code.
- **L**iskov substitution: subtypes honour their base type's contract.
- **I**nterface segregation: small, focused interfaces.
- **D**ependency inversion: depend on abstractions, not concretions.
"""

_SOLID_V2 = """# SOLID Principles

**Keywords for search**: SOLID, design principles, single responsibility, dependency inversion

- **S**ingle responsibility: one reason to change per module.
- **O**pen/closed: extend behaviour without editing stable code.
- **L**iskov substitution: subtypes honour their base type's contract.
- **I**nterface segregation: small, focused interfaces.
- **D**ependency inversion: depend on abstractions, not concretions.

## Applying SOLID pragmatically

Principles are heuristics. A 40-line script does not need five interfaces; a module that
three teams change every week probably needs at least one seam.
See also `dependency-injection.md`.
"""

_RACE_CONDITIONS = """# Race Conditions

**Keywords for search**: race condition, concurrency, TOCTOU, locking, atomic rename

## Typical shapes

- **Check-then-act (TOCTOU)**: `if not exists(p): create(p)` - another process can create
  `p` in between. Use `O_CREAT | O_EXCL` or a lock.
- **Read-modify-write** on shared files: write to a temp file and `os.replace` it.
- **Port probing** by bind-and-release: the port can be taken before the real bind.

## Rules

1. Prefer atomic primitives (rename, exclusive create) over check-then-act.
2. Hold locks for the shortest possible time and always release them in `finally`.
3. Test with many concurrent workers, not just two.
"""

_DEPENDENCY_INJECTION = """# Dependency Injection

**Keywords for search**: dependency injection, testability, constructor injection, seams

Pass collaborators in instead of constructing them inside:

```python
class Uploader:
    def __init__(self, client: StorageClient) -> None:
        self._client = client
```

- Constructor injection for required collaborators, parameters with defaults for optional ones.
- No service locators or global registries in library code.
- Tests pass fakes through the same constructor production code uses.
"""


def _standards_v1() -> dict[str, str]:
    return {
        "ai-safety/credential-file-protection.md": _CREDENTIALS,
        "ai-safety/git-safety-rules.md": _GIT_SAFETY_V1,
        "ai-safety/production-code-checklist.md": _PRODUCTION_CHECKLIST,
        "testing/test-pyramid.md": _TEST_PYRAMID_V1,
        "testing/integration-testing.md": _INTEGRATION_TESTING,
        "testing/property-based-testing.md": _PROPERTY_TESTING,
        "architecture/solid-principles.md": _SOLID_V1,
        "architecture/race-conditions.md": _RACE_CONDITIONS,
    }


def _standards_v2() -> dict[str, str]:
    return {
        "ai-safety/credential-file-protection.md": _CREDENTIALS,
        "ai-safety/git-safety-rules.md": _GIT_SAFETY_V2,
        "ai-safety/production-code-checklist.md": _PRODUCTION_CHECKLIST,
        "testing/test-pyramid.md": _TEST_PYRAMID_V2,
        "testing/integration-testing.md": _INTEGRATION_TESTING,
        "architecture/solid-principles.md": _SOLID_V2,
        "architecture/dependency-injection.md": _DEPENDENCY_INJECTION,
        "concurrency/race-conditions.md": _RACE_CONDITIONS,
    }


# ---------------------------------------------------------------------------------------------
# Workflows
# ---------------------------------------------------------------------------------------------

_SPEC_METADATA = """{
  "workflow_id": "spec_creation_v1",
  "name": "Specification Creation",
  "version": "1.0.0",
  "total_phases": 2,
  "phases": [
    {"phase": 0, "name": "Requirements", "file": "phases/0/phase.md"},
    {"phase": 1, "name": "Design", "file": "phases/1/phase.md"}
  ]
}
"""

_SPEC_PHASE0 = """# Phase 0: Requirements

Collect the problem statement, the users, and the acceptance criteria.

## Tasks

1. Write `srd.md` with goals, non-goals and success metrics.
2. List open questions and who answers them.

## Evidence for the gate

- `srd_written`: true
- `open_questions`: list (may be empty)
"""

_SPEC_PHASE1 = """# Phase 1: Design

Turn the requirements into a technical design.

## Tasks

1. Write `specs.md`: components, data flow, failure modes.
2. Write `tasks.md`: ordered, independently verifiable tasks.

## Evidence for the gate

- `design_reviewed`: true
"""

_SPEC_GATE = """checkpoint:
  phase: 1
  strict: true
  evidence_schema:
    design_reviewed:
      type: boolean
      required: true
      validator: is_true
"""

_UPGRADE_METADATA_V1 = """{
  "workflow_id": "praxis_os_upgrade_v1",
  "name": "prAxIs OS Upgrade",
  "version": "1.0.0",
  "total_phases": 2,
  "phases": [
    {"phase": 0, "name": "Pre-flight", "file": "phases/0/phase.md"},
    {"phase": 1, "name": "Upgrade content", "file": "phases/1/phase.md"}
  ]
}
"""

_UPGRADE_METADATA_V2 = """{
  "workflow_id": "praxis_os_upgrade_v1",
  "name": "prAxIs OS Upgrade",
  "version": "1.1.0",
  "total_phases": 3,
  "phases": [
    {"phase": 0, "name": "Pre-flight", "file": "phases/0/phase.md"},
    {"phase": 1, "name": "Upgrade content", "file": "phases/1/phase.md"},
    {"phase": 2, "name": "Validate server", "file": "phases/2/phase.md"}
  ]
}
"""

_UPGRADE_PHASE0 = """# Phase 0: Pre-flight

Verify the installation before changing anything.

1. The source repository is clean and at a known commit.
2. `.praxis-os/` exists and is writable; at least 200 MB free.
3. No other upgrade is running (lock file).
4. Create a backup of `.praxis-os/` and record its checksum manifest.
"""

_UPGRADE_PHASE1 = """# Phase 1: Upgrade content

Copy `universal/standards` to `.praxis-os/standards/universal`, `universal/workflows` to
`.praxis-os/workflows`, `scripts` and `mcp_server` to `.praxis-os/`. Files the user edited
are conflicts: keep them and write the new version next to them.
"""

_UPGRADE_PHASE2 = """# Phase 2: Validate server

Start the upgraded MCP server once over stdio, run `initialize` and `tools/list`, and compare
the tool names with the expected set for the target release. On failure, roll back.
"""

_WORKFLOWS_V1 = {
    "spec_creation_v1/metadata.json": _SPEC_METADATA,
    "spec_creation_v1/phases/0/phase.md": _SPEC_PHASE0,
    "spec_creation_v1/phases/1/phase.md": _SPEC_PHASE1,
    "spec_creation_v1/gate-definition.yaml": _SPEC_GATE,
    "praxis_os_upgrade_v1/metadata.json": _UPGRADE_METADATA_V1,
    "praxis_os_upgrade_v1/phases/0/phase.md": _UPGRADE_PHASE0,
    "praxis_os_upgrade_v1/phases/1/phase.md": _UPGRADE_PHASE1,
    "praxis_os_upgrade_v1/gate-definition.yaml": _SPEC_GATE.replace("phase: 1", "phase: 0"),
}


def _workflows_v2() -> dict[str, str]:
    files = dict(_WORKFLOWS_V1)
    files["praxis_os_upgrade_v1/metadata.json"] = _UPGRADE_METADATA_V2
    files["praxis_os_upgrade_v1/phases/2/phase.md"] = _UPGRADE_PHASE2
    return files


# ---------------------------------------------------------------------------------------------
# Scripts, top-level files
# ---------------------------------------------------------------------------------------------

_BUILD_INDEX_V1 = r'''#!/usr/bin/env python3
"""Build the (toy) search index for .praxis-os/standards."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".praxis-os")
    standards = base / "standards"
    docs = sorted(str(p.relative_to(standards)) for p in standards.rglob("*.md"))
    out = base / ".cache" / "index.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"documents": docs}), encoding="utf-8")
    print(f"indexed {len(docs)} documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

_BUILD_INDEX_V2 = r'''#!/usr/bin/env python3
"""Build the (toy) search index for .praxis-os/standards (schema 2: with sizes)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCHEMA = 2


def main() -> int:
    base = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".praxis-os")
    standards = base / "standards"
    docs = [
        {"path": str(p.relative_to(standards)), "bytes": p.stat().st_size}
        for p in sorted(standards.rglob("*.md"))
    ]
    out = base / ".cache" / "index.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"schema": SCHEMA, "documents": docs}), encoding="utf-8")
    tmp.replace(out)
    print(f"indexed {len(docs)} documents (schema {SCHEMA})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

_VALIDATE_SH = """#!/bin/sh
# Validate a prAxIs OS installation: required directories exist.
set -eu
base="${1:-.praxis-os}"
for d in standards workflows mcp_server scripts; do
    if [ ! -d "$base/$d" ]; then
        echo "missing: $base/$d" >&2
        exit 1
    fi
done
echo "ok: $base"
"""

_README_V1 = """# prAxIs OS

Portable standards, workflows and an MCP server for AI-assisted development.

- `universal/standards/` - standards the assistant searches (`search_standards`)
- `universal/workflows/` - phase-gated workflows (`pos_workflow`)
- `mcp_server/` - the MCP server (`python -m mcp_server --transport stdio`)
- `scripts/` - index builder and validators
- `installation/` - step-by-step installation guide, start with `00-START.md`

Version 1.0.0.
"""

_README_V2 = _README_V1.replace("Version 1.0.0.", "Version 2.0.0 - adds the `pos_browser` tool.")

_START = """# Installation - Start Here

This guide is followed by an AI assistant. It is *not* copied into the project.

1. Clone this repository to a temporary directory.
2. Copy `universal/standards` to `.praxis-os/standards/universal`.
3. Copy `universal/workflows` to `.praxis-os/workflows`.
4. Copy `mcp_server` and `scripts` to `.praxis-os/`.
5. Create `.praxis-os/venv` and install `mcp_server/requirements.txt`.
6. Register the server in the IDE: `python -m mcp_server --transport dual`.
"""

_REQUIREMENTS_V1 = """# prAxIs OS MCP server requirements
# stdlib only: the sample server needs no third-party packages
"""

_REQUIREMENTS_V2 = """# stdlib only: the sample server needs no third-party packages

# prAxIs OS MCP server requirements (v2)
"""


# ---------------------------------------------------------------------------------------------
# The sample MCP server
# ---------------------------------------------------------------------------------------------

_SRV_INIT = '''"""prAxIs OS MCP server (stdlib-only sample)."""
'''

_SRV_VERSION = '''"""Server version, reported in serverInfo, get_server_info and the state file."""

__version__ = "@@VERSION@@"
'''

_SRV_CORE = r'''"""Minimal MCP server core: decorator tool registry and JSON-RPC 2.0 dispatch."""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from mcp_server.version import __version__

logger = logging.getLogger("mcp_server.core")

SUPPORTED_PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18")
LATEST_PROTOCOL_VERSION = "2025-06-18"

_JSON_TYPES = {"str": "string", "int": "integer", "bool": "boolean", "float": "number"}


def _json_type(annotation: Any) -> str:
    if isinstance(annotation, str):
        name = annotation
    else:
        name = getattr(annotation, "__name__", "")
    return _JSON_TYPES.get(name, "string")


def _input_schema(fn: Callable[..., Any]) -> Dict[str, Any]:
    properties: Dict[str, Any] = {}
    required: List[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        prop: Dict[str, Any] = {"type": _json_type(param.annotation), "title": param.name}
        if param.default is param.empty:
            required.append(param.name)
        else:
            prop["default"] = param.default
        properties[param.name] = prop
    schema: Dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


class Tool:
    def __init__(self, name: str, fn: Callable[..., Any], description: str) -> None:
        self.name = name
        self.fn = fn
        self.description = description
        self.input_schema = _input_schema(fn)

    def describe(self) -> Dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
        }


def _error(msg_id: Any, code: int, message: str) -> Dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}


class Server:
    """Tool registry with a FastMCP-like decorator API: ``@mcp.tool()``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.version = __version__
        self.transport = "stdio"
        self.base_path = Path(".praxis-os")
        self._tools: Dict[str, Tool] = {}

    def tool(
        self, name: Optional[str] = None, description: Optional[str] = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            tool_name = name or fn.__name__
            doc = description or inspect.getdoc(fn) or ""
            self._tools[tool_name] = Tool(tool_name, fn, doc)
            return fn

        return decorator

    def tool_names(self) -> List[str]:
        return sorted(self._tools)

    def handle(self, message: Any) -> Optional[Dict[str, Any]]:
        """Answer one JSON-RPC message; ``None`` for notifications and responses."""
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return _error(None, -32600, "Invalid Request")
        method = message.get("method")
        is_notification = "id" not in message
        msg_id = message.get("id")
        if not isinstance(method, str):
            return None if is_notification else _error(msg_id, -32600, "Invalid Request")
        if is_notification:
            logger.debug("notification %s", method)
            return None
        params = message.get("params") or {}
        try:
            if method == "initialize":
                result = self._initialize(params)
            elif method == "ping":
                result = {}
            elif method == "tools/list":
                result = {"tools": [self._tools[n].describe() for n in self.tool_names()]}
            elif method == "tools/call":
                result = self._call_tool(params)
            else:
                return _error(msg_id, -32601, "Method not found: " + method)
        except Exception as exc:  # internal error, answered, not fatal
            logger.exception("internal error while handling %s", method)
            return _error(msg_id, -32603, "Internal error: %s" % exc)
        return {"jsonrpc": "2.0", "id": msg_id, "result": result}

    def _initialize(self, params: Dict[str, Any]) -> Dict[str, Any]:
        requested = params.get("protocolVersion")
        if requested in SUPPORTED_PROTOCOL_VERSIONS:
            version = requested
        else:
            version = LATEST_PROTOCOL_VERSION
        return {
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": self.name, "version": self.version},
        }

    def _call_tool(self, params: Dict[str, Any]) -> Dict[str, Any]:
        name = params.get("name")
        arguments = params.get("arguments") or {}
        tool = self._tools.get(name) if isinstance(name, str) else None
        if tool is None:
            return _text_result("Unknown tool: %s" % name, True)
        try:
            value = tool.fn(**arguments)
        except Exception as exc:
            logger.warning("tool %s failed: %s", name, exc)
            return _text_result("Error executing tool %s: %s" % (name, exc), True)
        text = value if isinstance(value, str) else json.dumps(value)
        return _text_result(text, False)


def _text_result(text: str, is_error: bool) -> Dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], "isError": is_error}
'''

_SRV_STATE = r'''"""The state file ``<base>/.mcp_server_state.json`` that IDE helpers read."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from mcp_server.version import __version__

STATE_FILE = ".mcp_server_state.json"


def write_state_file(
    base: Path,
    transport: str,
    host: Optional[str],
    port: Optional[int],
    path: Optional[str],
    url: Optional[str],
) -> Path:
    root = base.resolve().parent
    data = {
        "version": __version__,
        "transport": transport,
        "port": port,
        "host": host,
        "path": path,
        "url": url,
        "pid": os.getpid(),
        "started_at": datetime.now(timezone.utc).isoformat(),
        "project": {"name": root.name, "root": str(root)},
    }
    target = base / STATE_FILE
    tmp = base / ".mcp_server_state.tmp"
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, target)
    try:
        os.chmod(target, 0o600)
    except OSError:
        pass
    return target


def remove_state_file(base: Path) -> None:
    try:
        (base / STATE_FILE).unlink()
    except FileNotFoundError:
        pass
'''

_RUN_STDIO_OK = r'''def run_stdio(server: Server) -> None:
    """Newline-delimited JSON-RPC on stdin/stdout until stdin reaches EOF."""
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    while True:
        raw = stdin.readline()
        if not raw:
            logger.debug("stdin closed")
            return
        if not raw.strip():
            continue
        try:
            message = json.loads(raw.decode("utf-8"))
        except ValueError:
            response: Optional[Dict[str, Any]] = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32700, "message": "Parse error"},
            }
        else:
            response = server.handle(message)
        if response is not None:
            stdout.write(json.dumps(response).encode("utf-8") + b"\n")
            stdout.flush()
'''

_RUN_STDIO_HANG = r'''def run_stdio(server: Server) -> None:
    """Reads requests but never answers them (a wedged event loop)."""
    stdin = sys.stdin.buffer
    while stdin.readline():
        pass
    while True:
        time.sleep(3600)
'''

_SRV_TRANSPORT = r'''"""Transports: stdio (newline-delimited JSON-RPC) and HTTP (POST /mcp)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Optional

from mcp_server.core import Server

logger = logging.getLogger("mcp_server.transport")

MCP_PATH = "/mcp"
PORT_RANGE = range(4242, 5243)


@@RUN_STDIO@@

def _handler_for(server: Server) -> type:
    class Handler(BaseHTTPRequestHandler):
        def _send_json(self, status: int, payload: Any) -> None:
            body = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            if self.path.split("?", 1)[0] != MCP_PATH:
                self._send_json(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            try:
                message = json.loads(body.decode("utf-8"))
            except ValueError:
                self._send_json(
                    400, {"jsonrpc": "2.0", "id": None,
                          "error": {"code": -32700, "message": "Parse error"}}
                )
                return
            response = server.handle(message)
            if response is None:
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send_json(200, response)

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self._send_json(405, {"error": "use POST " + MCP_PATH})

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            logger.debug("http: " + format, *args)

    return Handler


def make_http_server(server: Server, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Bind the first free port of 4242..5242 (or ``PRAXIS_MCP_PORT``)."""
    env_port = os.environ.get("PRAXIS_MCP_PORT")
    ports = [int(env_port)] if env_port else list(PORT_RANGE)
    handler = _handler_for(server)
    last_error: Optional[OSError] = None
    for port in ports:
        try:
            httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            last_error = exc
            continue
        httpd.daemon_threads = True
        return httpd
    raise RuntimeError("no free port for the HTTP transport: %s" % last_error)
'''

_CRASH = r"""    raise RuntimeError("vector index is corrupt: .praxis-os/.cache/vector_index")
"""

_TRACEBACK = r"""    try:
        raise FileNotFoundError(str(base / ".cache" / "watcher.pid"))
    except FileNotFoundError:
        logger.warning("standards watcher failed to start; continuing without it", exc_info=True)
"""

_SRV_MAIN = r'''"""Entry point: ``python -m mcp_server --transport {stdio,http,dual}``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from pathlib import Path
from typing import List, Optional

from mcp_server.core import Server
from mcp_server.server.registry import register_all_tools
from mcp_server.state import remove_state_file, write_state_file
from mcp_server.transport import MCP_PATH, make_http_server, run_stdio
from mcp_server.version import __version__

logger = logging.getLogger("mcp_server")


def find_base_dir() -> Optional[Path]:
    env = os.environ.get("AGENT_OS_BASE_PATH")
    candidate = Path(env) if env else Path.cwd() / ".praxis-os"
    return candidate if candidate.is_dir() else None


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mcp_server", description="prAxIs OS MCP")
    parser.add_argument("--transport", required=True, choices=["stdio", "http", "dual"])
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    base = find_base_dir()
    if base is None:
        sys.stderr.write(
            "prAxIs OS base directory not found: set AGENT_OS_BASE_PATH or run from the "
            "project root (expected ./.praxis-os)\n"
        )
        return 1
@@CRASH@@
    mcp = Server("praxis-os-rag")
    mcp.transport = args.transport
    mcp.base_path = base
    register_all_tools(mcp)
@@TRACEBACK@@
    httpd = None
    host = path = url = None
    port = None
    if args.transport in ("http", "dual"):
        httpd = make_http_server(mcp, "127.0.0.1")
        host = "127.0.0.1"
        port = int(httpd.server_address[1])
        path = MCP_PATH
        url = "http://%s:%d%s" % (host, port, path)
    write_state_file(base, args.transport, host, port, path, url)
    logger.info(
        "praxis-os-rag %s started (transport=%s, pid=%d, url=%s, tools=%d)",
        __version__, args.transport, os.getpid(), url, len(mcp.tool_names()),
    )
    try:
        if httpd is not None and args.transport == "http":
            httpd.serve_forever()
        else:
            if httpd is not None:
                threading.Thread(target=httpd.serve_forever, daemon=True).start()
            run_stdio(mcp)
    except KeyboardInterrupt:
        logger.info("interrupted, shutting down")
    finally:
        remove_state_file(base)
        if httpd is not None:
            httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''

_SRV_SERVER_INIT = '''"""Server wiring: tool modules and their registry."""
'''

_SRV_TOOLS_INIT = '''"""MCP tool modules; each exposes a ``register_*_tools(mcp)`` function."""
'''

_SRV_REGISTRY = r'''"""Calls every ``register_*_tools`` function."""

from __future__ import annotations

import logging

from mcp_server.core import Server
@@IMPORTS@@
logger = logging.getLogger("mcp_server.registry")


def register_all_tools(mcp: Server) -> int:
@@CALLS@@
    logger.debug("registered tools: %s", ", ".join(mcp.tool_names()))
    return len(mcp.tool_names())
'''

_RAG_TOOLS_V1 = r'''"""search_standards: text search over .praxis-os/standards."""

from __future__ import annotations

import json

from mcp_server.core import Server
from mcp_server.legacy_helpers import normalise_query


def register_rag_tools(mcp: Server) -> None:
    @mcp.tool()
    def search_standards(query: str, n_results: int = 5) -> str:
        """Search the prAxIs OS standards for a query; returns matching file paths."""
        needle = normalise_query(query)
        standards = mcp.base_path / "standards"
        hits = []
        for path in sorted(standards.rglob("*.md")):
            text = path.read_text(encoding="utf-8", errors="replace").lower()
            if needle and needle in text:
                hits.append(str(path.relative_to(standards)))
        return json.dumps({"query": query, "results": hits[:n_results]})
'''

_RAG_TOOLS_V2 = r'''"""search_standards: text search over .praxis-os/standards."""

from __future__ import annotations

import json

from mcp_server.core import Server


def register_rag_tools(mcp: Server) -> None:
    @mcp.tool()
    def search_standards(query: str, n_results: int = 5) -> str:
        """Search the prAxIs OS standards for a query; returns matching file paths."""
        needle = " ".join(query.lower().split())
        standards = mcp.base_path / "standards"
        hits = []
        for path in sorted(standards.rglob("*.md")):
            text = path.read_text(encoding="utf-8", errors="replace").lower()
            if needle and needle in text:
                hits.append(str(path.relative_to(standards)))
        return json.dumps({"query": query, "results": hits[:n_results], "total": len(hits)})
'''

_LEGACY_HELPERS = r'''"""Helpers kept from the agent-os era (removed in 2.0.0)."""

from __future__ import annotations


def normalise_query(query: str) -> str:
    return " ".join(query.lower().split())


def legacy_base_dir_name() -> str:
    return ".agent-os"
'''

_WORKFLOW_TOOLS = r'''"""pos_workflow: workflow dispatcher (only list_workflows in the sample)."""

from __future__ import annotations

import json

from mcp_server.core import Server


def register_workflow_tools(mcp: Server) -> None:
    @mcp.tool()
    def pos_workflow(action: str, workflow_id: str = "") -> str:
        """Workflow operations; action "list_workflows" lists the installed workflows."""
        workflows = mcp.base_path / "workflows"
        if action == "list_workflows":
            names = []
            if workflows.is_dir():
                names = sorted(p.name for p in workflows.iterdir() if p.is_dir())
            return json.dumps({"workflows": names})
        raise ValueError("unsupported action: %s" % action)
'''

_SERVER_INFO_TOOLS = r'''"""get_server_info: version, transport and pid of this server."""

from __future__ import annotations

import json
import os

from mcp_server.core import Server


def register_server_info_tools(mcp: Server) -> None:
    @mcp.tool()
    def get_server_info() -> str:
        """Report the server name, version, transport, pid and registered tools."""
        return json.dumps(
            {
                "name": mcp.name,
                "version": mcp.version,
                "transport": mcp.transport,
                "pid": os.getpid(),
                "base_path": str(mcp.base_path),
                "tools": mcp.tool_names(),
            }
        )
'''

_DATE_TOOLS = r'''"""current_date: today's date, so assistants stop guessing it."""

from __future__ import annotations

import datetime

from mcp_server.core import Server


def register_date_tools(mcp: Server) -> None:
    @mcp.tool()
    def current_date() -> str:
        """Return today's date (ISO 8601, local time)."""
        return datetime.date.today().isoformat()
'''

_BROWSER_TOOLS = r'''"""pos_browser: browser automation facade (no real browser in the sample)."""

from __future__ import annotations

import json

from mcp_server.core import Server


def register_browser_tools(mcp: Server) -> None:
    @mcp.tool()
    def pos_browser(action: str, url: str = "", headless: bool = True) -> str:
        """Browser actions (navigate, screenshot, ...); the sample only echoes the request."""
        return json.dumps(
            {"action": action, "url": url, "headless": headless, "status": "unavailable"}
        )
'''


def _registry(version: int, fault: str | None) -> str:
    modules = [
        ("server_info_tools", "register_server_info_tools"),
        ("rag_tools", "register_rag_tools"),
        ("workflow_tools", "register_workflow_tools"),
        ("date_tools", "register_date_tools"),
    ]
    if version >= 2:
        modules.append(("browser_tools", "register_browser_tools"))
    if fault == "import_error":
        modules.append(("vector_tools", "register_vector_tools"))
    imports = "".join(f"from mcp_server.server.tools.{m} import {f}\n" for m, f in modules)
    calls = []
    for _module, func in modules:
        if fault == "lose_tool" and func == "register_date_tools":
            calls.append(f"    # {func}(mcp)  # TODO: re-enable after the dispatcher refactor\n")
        else:
            calls.append(f"    {func}(mcp)\n")
    return _SRV_REGISTRY.replace("@@IMPORTS@@\n", imports + "\n").replace("@@CALLS@@\n", "".join(calls))


def _server_files(version: int, fault: str | None) -> dict[str, str]:
    run_stdio = _RUN_STDIO_HANG if fault == "hang" else _RUN_STDIO_OK
    main = _SRV_MAIN.replace("@@CRASH@@\n", _CRASH if fault == "crash" else "")
    main = main.replace("@@TRACEBACK@@\n", _TRACEBACK if fault == "traceback" else "")
    files = {
        "__init__.py": _SRV_INIT,
        "__main__.py": main,
        "version.py": _SRV_VERSION.replace("@@VERSION@@", "1.0.0" if version == 1 else "2.0.0"),
        "core.py": _SRV_CORE,
        "state.py": _SRV_STATE,
        "transport.py": _SRV_TRANSPORT.replace("@@RUN_STDIO@@\n", run_stdio + "\n"),
        "requirements.txt": _REQUIREMENTS_V1 if version == 1 else _REQUIREMENTS_V2,
        "server/__init__.py": _SRV_SERVER_INIT,
        "server/registry.py": _registry(version, fault),
        "server/tools/__init__.py": _SRV_TOOLS_INIT,
        "server/tools/rag_tools.py": _RAG_TOOLS_V1 if version == 1 else _RAG_TOOLS_V2,
        "server/tools/workflow_tools.py": _WORKFLOW_TOOLS,
        "server/tools/server_info_tools.py": _SERVER_INFO_TOOLS,
        "server/tools/date_tools.py": _DATE_TOOLS,
    }
    if version == 1:
        files["legacy_helpers.py"] = _LEGACY_HELPERS
    else:
        files["server/tools/browser_tools.py"] = _BROWSER_TOOLS
    return {f"mcp_server/{name}": text for name, text in files.items()}


def _tree(version: int, fault: str | None) -> dict[str, bytes]:
    texts: dict[str, str] = {}
    standards = _standards_v1() if version == 1 else _standards_v2()
    for rel, text in standards.items():
        texts[f"universal/standards/{rel}"] = text
    workflows = _WORKFLOWS_V1 if version == 1 else _workflows_v2()
    for rel, text in workflows.items():
        texts[f"universal/workflows/{rel}"] = text
    texts["scripts/build_rag_index.py"] = _BUILD_INDEX_V1 if version == 1 else _BUILD_INDEX_V2
    texts["scripts/validate.sh"] = _VALIDATE_SH
    texts["README.md"] = _README_V1 if version == 1 else _README_V2
    texts["installation/00-START.md"] = _START
    texts.update(_server_files(version, fault))
    return {path: text.encode("utf-8") for path, text in sorted(texts.items())}


def v1_files() -> dict[str, bytes]:
    """Repo-relative path -> content of the version 1 tree."""
    return _tree(1, None)


def v2_files(server_fault: str | None = None) -> dict[str, bytes]:
    """Repo-relative path -> content of the version 2 tree (optionally with a server fault)."""
    _check_fault(server_fault)
    return _tree(2, server_fault)


# ---------------------------------------------------------------------------------------------
# Bulk standards for benchmarks
# ---------------------------------------------------------------------------------------------

_BULK_PARAGRAPH = (
    "Every change to shared state must be reviewed for concurrency hazards, failure paths "
    "and observability. Prefer small, reversible steps; record what was done so it can be "
    "undone. Tests exercise the failure paths as well as the happy path.\n"
)


def _bulk_files(count: int, size_scale: int, version: int) -> dict[str, bytes]:
    target = 4096 * size_scale
    body = (_BULK_PARAGRAPH * (target // len(_BULK_PARAGRAPH) + 1)).encode("utf-8")
    files: dict[str, bytes] = {}
    for i in range(1, count + 1):
        header = f"# Bulk standard {i:04d}\n\n**Keywords for search**: bulk, doc-{i:04d}\n\n"
        if version >= 2 and i % 3 == 0:
            header += f"Revised in 2.0.0 (change {i:04d}).\n\n"
        head = header.encode("utf-8")
        files[f"universal/standards/bulk/doc-{i:04d}.md"] = head + body[: max(0, target - len(head))]
    return files


# ---------------------------------------------------------------------------------------------
# Repository construction
# ---------------------------------------------------------------------------------------------


def _check_fault(server_fault: str | None) -> None:
    if server_fault is not None and server_fault not in SERVER_FAULTS:
        raise UsageError(
            f"unknown server fault {server_fault!r}",
            why=f"supported faults: {', '.join(SERVER_FAULTS)}",
            hint="pass one of the supported faults or None",
        )


def _git_env(date: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GIT_AUTHOR_NAME": "prAxIs Release Bot",
            "GIT_AUTHOR_EMAIL": "release@praxis-os.invalid",
            "GIT_COMMITTER_NAME": "prAxIs Release Bot",
            "GIT_COMMITTER_EMAIL": "release@praxis-os.invalid",
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_DATE": date,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
        }
    )
    return env


_GIT_OPTS = (
    "-c", "init.defaultBranch=main",
    "-c", "commit.gpgsign=false",
    "-c", "core.autocrlf=false",
    "-c", "core.fileMode=true",
)  # fmt: skip


def _git(repo: Path, env: dict[str, str], *args: str) -> str:
    cmd = ["git", *_GIT_OPTS, "-C", str(repo), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, env=env, check=False)
    except FileNotFoundError as exc:
        raise UsageError("git is not installed", str(exc), "install git (e.g. apt-get install git)") from exc
    if proc.returncode != 0:
        raise UsageError(
            f"git {' '.join(args)} failed in {repo} (exit {proc.returncode})",
            why=proc.stderr.decode("utf-8", "replace").strip(),
            hint="check that git works and the destination is writable",
        )
    return proc.stdout.decode("utf-8", "replace")


def _write_tree(root: Path, files: dict[str, bytes]) -> None:
    made: set[Path] = set()
    for rel, data in files.items():
        path = root / rel
        parent = path.parent
        if parent not in made:
            parent.mkdir(parents=True, exist_ok=True)
            made.add(parent)
        path.write_bytes(data)
        if rel in EXECUTABLE_PATHS:
            path.chmod(0o755)


def _clear_work_tree(root: Path) -> None:
    for entry in root.iterdir():
        if entry.name == ".git":
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _commit(repo: Path, env: dict[str, str], message: str) -> str:
    _git(repo, env, "add", "-A")
    _git(repo, env, "update-index", "--chmod=+x", *sorted(EXECUTABLE_PATHS))
    _git(repo, env, "commit", "-q", "--no-verify", "-m", message)
    return _git(repo, env, "rev-parse", "HEAD").strip()


def make_source_repo(
    dest: Path,
    *,
    server_fault: str | None = None,
    system_files: int = 0,
    size_scale: int = 1,
) -> SampleSource:
    """Create a git repository at ``dest`` with two commits, "prAxIs OS v1" and "... v2".

    Commit shas are deterministic for equal arguments. The work tree is left clean at v2.
    """
    _check_fault(server_fault)
    if system_files < 0:
        raise UsageError(f"system_files must be >= 0, got {system_files}")
    if size_scale < 1:
        raise UsageError(f"size_scale must be >= 1, got {size_scale}")
    dest = Path(dest)
    if dest.exists():
        if not dest.is_dir():
            raise UsageError(
                f"cannot create a sample source repository at {dest}",
                why="the path exists and is not a directory",
                hint="pass a path that does not exist or an empty directory",
            )
        if any(dest.iterdir()):
            raise UsageError(
                f"cannot create a sample source repository at {dest}",
                why="the directory is not empty",
                hint="pass a path that does not exist or an empty directory",
            )
    dest.mkdir(parents=True, exist_ok=True)

    env1 = _git_env("2025-01-06T10:00:00+00:00")
    env2 = _git_env("2025-03-03T10:00:00+00:00")
    _git(dest, env1, "init", "-q")

    files1 = v1_files()
    if system_files:
        files1.update(_bulk_files(system_files, size_scale, 1))
    _write_tree(dest, files1)
    sha1 = _commit(dest, env1, "prAxIs OS v1")

    _clear_work_tree(dest)
    files2 = v2_files(server_fault)
    if system_files:
        files2.update(_bulk_files(system_files, size_scale, 2))
    _write_tree(dest, files2)
    sha2 = _commit(dest, env2, "prAxIs OS v2")
    return SampleSource(path=dest, v1=sha1, v2=sha2)
