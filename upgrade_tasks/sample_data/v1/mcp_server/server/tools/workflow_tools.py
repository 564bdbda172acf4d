"""pos_workflow: workflow dispatcher (only list_workflows in the sample)."""

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
