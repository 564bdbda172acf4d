"""prAxIs OS upgrader: safe, resumable, reversible upgrades of a ``.praxis-os`` install."""

__version__ = "0.1.0"
