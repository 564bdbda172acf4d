"""prAxIs OS MCP server (stdlib-only sample)."""
