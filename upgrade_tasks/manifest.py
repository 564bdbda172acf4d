"""The installed manifest: what the last upgrade installed, so the next one has a true base.

Stored at ``.praxis-os/.installed-manifest.json``::

    {"schema_version": 1, "source_commit": "<sha>", "installed_at": "<iso>",
     "files": {"standards/universal/x.md": {"sha256": "...", "size": 12, "blob": "<git id>"}}}

A file whose content equals its manifest entry was installed by us and never
changed by the user; anything not listed is the user's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fsutil import atomic_write_json

SCHEMA_VERSION = 1


@dataclass
class InstalledManifest:
    """What the last upgrade installed: the source commit and, per target path, the sha256, size and
    git blob id."""

    source_commit: str
    installed_at: str
    files: dict[str, str] = field(default_factory=dict)  # target -> sha256
    sizes: dict[str, int] = field(default_factory=dict)
    blobs: dict[str, str] = field(default_factory=dict)  # target -> git blob id (merge base)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "source_commit": self.source_commit,
            "installed_at": self.installed_at,
            "files": {
                k: {"sha256": v, "size": self.sizes.get(k, 0), "blob": self.blobs.get(k)}
                for k, v in sorted(self.files.items())
            },
        }

    def write(self, path: Path) -> None:
        atomic_write_json(path, self.to_json())


def read_installed_manifest(path: Path) -> tuple[InstalledManifest | None, str]:
    """Return ``(manifest, note)``; a missing or unreadable manifest gives ``None``.

    An unreadable manifest is not fatal: the upgrade then treats every file that
    differs from the new source as changed by the user (the conservative choice).
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "no installed manifest (install made by copying): differing files are kept"
    except (OSError, ValueError) as exc:
        return None, f"installed manifest unreadable ({exc}); treating the install as legacy"
    try:
        if int(raw.get("schema_version", 0)) > SCHEMA_VERSION:
            return None, "installed manifest is from a newer upgrader; treating install as legacy"
        files = {str(k): str(v["sha256"]) for k, v in raw["files"].items()}
        sizes = {str(k): int(v.get("size", 0)) for k, v in raw["files"].items()}
        blobs = {str(k): str(v["blob"]) for k, v in raw["files"].items() if v.get("blob")}
        return (
            InstalledManifest(str(raw["source_commit"]), str(raw.get("installed_at", "")), files,
                              sizes, blobs),
            f"installed manifest: commit {str(raw['source_commit'])[:10]}, {len(files)} files",
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        return None, f"installed manifest malformed ({exc!r}); treating the install as legacy"
