"""What is installed: the *base* of every system file, the content we installed there.

From the installed manifest when there is one; for installs made by copying (every
install in the world before this upgrader), recognised from the source's history
(:mod:`upgrade_tasks.history`). The planner classifies each file against it.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field

from .fsutil import read_regular
from .gitutil import git_blob_id
from .history import History, local_system_files, recognise
from .layout import Install
from .manifest import InstalledManifest
from .source import BlobReader


@dataclass
class Base:
    """What is installed: per target path, the sha256 and (when known) git blob id."""

    origin: str  # "manifest", "history" or "none"
    commit: str | None
    files: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    share: float | None = None
    pristine: int = 0
    edited: int = 0
    note: str = ""
    skipped: list[str] = field(default_factory=list)  # FIFOs, sockets, devices: never opened
    #: history only: files the installed commit had that are not on disk. With no manifest there
    #: is no record that they were ever installed (early installers skipped whole areas), so
    #: they are not "deleted by you": the upgrade installs them again and says so
    absent: list[str] = field(default_factory=list)


def from_manifest(m: InstalledManifest) -> Base:
    files = {t: (sha, m.blobs.get(t)) for t, sha in m.files.items()}
    return Base("manifest", m.source_commit, files, note=f"installed manifest: commit "
                f"{m.source_commit[:10]}, {len(files)} files")


def from_history(install: Install, hist: History, reader: BlobReader) -> Base:
    """Recognise pristine files from the source's history (installs without a manifest)."""
    skipped: list[str] = []
    local = local_system_files(install, skipped)
    blobs: dict[str, str] = {}
    shas: dict[str, str] = {}
    for t, p in local.items():
        data = read_regular(p)
        blobs[t] = git_blob_id(data)
        shas[t] = hashlib.sha256(data).hexdigest()
    rec = recognise(install, hist, blobs)
    files: dict[str, tuple[str, str | None]] = {}
    for t, blob in rec.pristine.items():
        files[t] = (shas[t], blob)
    for t in rec.edited:
        chosen = closest(read_regular(local[t]), rec.candidates.get(t) or [
            b for b in [rec.base_at_installed.get(t)] if b], reader)
        if chosen is not None:
            files[t] = chosen
    base = Base("history", rec.installed_commit, files, share=rec.share,
                pristine=len(rec.pristine), edited=len(rec.edited), skipped=skipped,
                absent=sorted(t for t in rec.tree_at_installed if t not in local))
    if rec.installed_commit:
        base.note = (f"no installed manifest: recognised {len(rec.pristine)} pristine and "
                     f"{len(rec.edited)} edited system files from the source's history; installed "
                     f"commit looks like {rec.installed_commit[:10]} (explains {rec.share:.0%} of "
                     "the pristine files)")
    else:
        base.note = "no installed manifest and no match in the source's history"
    return base


def closest(local: bytes, blobs: list[str], reader: BlobReader) -> tuple[str, str] | None:
    """(sha256, blob id) of the version the user most likely started from: of the candidate
    versions, the one whose lines differ least from the file on disk. (One candidate: that
    one. The merge then replays only upstream's later changes over the user's.)"""
    best: tuple[float, str, str] | None = None
    mine = local.decode("utf-8", "replace").splitlines()
    for blob in blobs:
        data = reader.read(blob)
        if data is None:
            continue
        ratio = 1.0 if len(blobs) == 1 else difflib.SequenceMatcher(
            None, mine, data.decode("utf-8", "replace").splitlines(), autojunk=False).ratio()
        if best is None or ratio > best[0]:
            best = (ratio, hashlib.sha256(data).hexdigest(), blob)
    return (best[1], best[2]) if best else None


def load_base(install: Install, manifest: InstalledManifest | None, hist: History,
              reader: BlobReader) -> Base:
    if manifest is not None:
        return from_manifest(manifest)
    if not hist.changes:
        return Base("none", None, note="no installed manifest and no source history")
    return from_history(install, hist, reader)
