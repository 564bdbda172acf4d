"""get_server_info: version, transport and pid of this server."""

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
