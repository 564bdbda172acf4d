"""Helpers kept from the agent-os era (removed in 2.0.0)."""

from __future__ import annotations


def normalise_query(query: str) -> str:
    return " ".join(query.lower().split())


def legacy_base_dir_name() -> str:
    return ".agent-os"
