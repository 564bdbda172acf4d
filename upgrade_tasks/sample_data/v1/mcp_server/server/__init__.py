"""Server wiring: tool modules and their registry."""
