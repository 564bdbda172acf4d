"""MCP tool modules; each exposes a ``register_*_tools(mcp)`` function."""
