"""IDE launch configs (``.cursor/mcp.json``, ``.mcp.json``): read, never rewritten.

What the new server would reject is reported as needing attention: a server started
without ``--transport`` (required since upstream ``395aab3``) and ``autoApprove``
names of tools the new server no longer registers.
"""

from __future__ import annotations

import json
from pathlib import Path

CONFIGS = (".cursor/mcp.json", ".mcp.json")
#: Project files that name the install directory (launch configs, assistant rules).
NAMING = (*CONFIGS, ".cursorrules", ".clinerules", ".vscode/settings.json", ".vscode/mcp.json")


def problems(project: Path, tools: set[str]) -> list[str]:
    """References in IDE launch configs that the new server no longer accepts (report only)."""
    out = []
    for rel in CONFIGS:
        p = project / rel
        try:
            cfg = json.loads(p.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            out.append(f"{rel}: unreadable JSON ({exc}); not checked")
            continue
        servers = cfg.get("mcpServers", {}) if isinstance(cfg, dict) else {}
        for name, srv in servers.items() if isinstance(servers, dict) else []:
            if not isinstance(srv, dict):
                continue
            args = [str(a) for a in srv.get("args", [])]
            runs_ours = any("mcp_server" in a for a in args)
            if runs_ours and not any(a == "--transport" or a.startswith("--transport=")
                                     for a in args):
                out.append(f"{rel}: server {name!r} starts mcp_server without --transport, which "
                           "the server requires: add \"--transport\", \"dual\" (or stdio) to args")
            approve = srv.get("autoApprove", [])
            if (runs_ours or srv.get("url")) and isinstance(approve, list) and tools:
                gone = sorted(str(t) for t in approve if str(t) not in tools)
                if gone:
                    out.append(f"{rel}: server {name!r} autoApproves tools the new server does not "
                               f"have: {', '.join(gone)}; remove them")
    return out


def legacy_references(project: Path, old: str, new: str) -> list[str]:
    """Lines of the project's IDE files that name ``old`` (the install moves to ``new``): the
    user changes them (report only; these files are the user's)."""
    out = []
    for rel in NAMING:
        try:
            text = (project / rel).read_text(encoding="utf-8", errors="replace")
        except (OSError, ValueError):
            continue
        lines = [n for n, line in enumerate(text.splitlines(), 1) if old in line]
        if lines:
            shown = ", ".join(map(str, lines[:8])) + (" ..." if len(lines) > 8 else "")
            out.append(f"{rel} (line {shown}) names {old}/: the install is now in {new}/; "
                       f"change {old} to {new} there (e.g. `perl -pi -e 's#{old}/#{new}/#g' "
                       f"{rel}`, which works on Linux and macOS alike), then reload the MCP "
                       "server in your IDE")
    return out
