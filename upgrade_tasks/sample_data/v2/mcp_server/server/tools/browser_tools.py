"""pos_browser: browser automation facade (no real browser in the sample)."""

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
