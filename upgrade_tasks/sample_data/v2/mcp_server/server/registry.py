"""Calls every ``register_*_tools`` function."""

from __future__ import annotations

import logging

from mcp_server.core import Server
from mcp_server.server.tools.server_info_tools import register_server_info_tools
from mcp_server.server.tools.rag_tools import register_rag_tools
from mcp_server.server.tools.workflow_tools import register_workflow_tools
from mcp_server.server.tools.date_tools import register_date_tools
from mcp_server.server.tools.browser_tools import register_browser_tools

logger = logging.getLogger("mcp_server.registry")


def register_all_tools(mcp: Server) -> int:
    register_server_info_tools(mcp)
    register_rag_tools(mcp)
    register_workflow_tools(mcp)
    register_date_tools(mcp)
    register_browser_tools(mcp)
    logger.debug("registered tools: %s", ", ".join(mcp.tool_names()))
    return len(mcp.tool_names())
