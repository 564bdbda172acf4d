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

from .errors import StateError
from .fsutil import atomic_write_json
from .layout import area_of_target, is_protected
from .trust import COMMIT, SHA256, Bad, ident, opt, refuse, rel_path, required, typed

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
    """Return ``(manifest, note)``; no manifest gives ``None`` (an install made by copying:
    its base is recognised from the source's history).

    A manifest that cannot be read, or whose checks fail (an entry outside the system areas, a
    user-owned path, a bad checksum), is refused with a StateError (exit 2): the planner would
    otherwise remove or replace whatever it names, and the file may have come through git.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "no installed manifest (install made by copying): differing files are kept"
    except (OSError, ValueError) as exc:
        raise StateError(f"installed manifest {path} is unreadable", str(exc), _HINT.format(
            path=path)) from exc
    try:
        m = _check(raw)
    except Bad as exc:
        raise refuse(path, exc, _HINT.format(path=path)) from None
    return m, f"installed manifest: commit {m.source_commit[:10]}, {len(m.files)} files"


_HINT = ("move it aside (mv {path} {path}.broken): the upgrade then recognises what is installed "
         "from the source's history")


def _check(raw: Any) -> InstalledManifest:
    typed(raw, dict, "manifest")
    if typed(raw.get("schema_version", 0), int, "schema_version") > SCHEMA_VERSION:
        raise Bad(f"schema_version: {raw['schema_version']} is newer than this upgrader's "
                  f"({SCHEMA_VERSION}); use the newer upgrader")
    m = InstalledManifest(ident(raw.get("source_commit"), COMMIT, "source_commit"),
                          str(raw.get("installed_at", "")))
    for target, entry in typed(required(raw, "files", ""), dict, "files").items():
        rel_path(target, "files", project_file=True)
        if area_of_target(target) == "other" or is_protected(target):
            raise Bad(f"files: {target!r} is not a path the upgrader installs")
        typed(entry, dict, f"files[{target!r}]")
        m.files[target] = ident(entry.get("sha256"), SHA256, f"files[{target!r}].sha256")
        m.sizes[target] = typed(entry.get("size", 0), int, f"files[{target!r}].size")
        blob = opt(entry.get("blob"), ident, COMMIT, f"files[{target!r}].blob")
        if blob:
            m.blobs[target] = blob
    return m
