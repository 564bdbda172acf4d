"""current_date: today's date, so assistants stop guessing it."""

from __future__ import annotations

import datetime

from mcp_server.core import Server


def register_date_tools(mcp: Server) -> None:
    @mcp.tool()
    def current_date() -> str:
        """Return today's date (ISO 8601, local time)."""
        return datetime.date.today().isoformat()
