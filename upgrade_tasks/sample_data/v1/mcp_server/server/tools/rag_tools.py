"""search_standards: text search over .praxis-os/standards."""

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
