"""The state file ``<base>/.mcp_server_state.json`` that IDE helpers read."""

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
