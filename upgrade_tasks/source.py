"""The prAxIs OS source: one protocol, two backends.

A :class:`Source` is one commit of a prAxIs OS repository: the files an install
receives (already mapped to their targets, with checksums), the first-parent
history of the installed areas (for recognising copy-made installs and for
merge bases), old versions of files by git blob id, and where another commit
stands relative to it (upgrade or downgrade). Two backends implement it:

* :mod:`upgrade_tasks.checkout`: a clean git checkout (or a URL, cloned);
* :mod:`upgrade_tasks.snapshot`: a snapshot zip on a remote host (no git).

:func:`upgrade_tasks.sources.open_source` picks the backend.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .enums import StrEnum
from .errors import PhaseError, PreflightError
from .fsutil import ChangedSource, atomic_copy_verified, atomic_write_bytes
from .history import History


class Relation(StrEnum):
    """Where the installed commit stands relative to the source's commit."""

    SAME = "same"
    OLDER = "older"  # the installed commit is an ancestor: an upgrade
    NEWER = "newer"  # the installed commit descends from the source's: a downgrade
    UNKNOWN = "unknown"  # not in the source's history


class BlobReader(Protocol):
    """Old versions of source files, by git blob id (merge bases, recognition)."""

    def read(self, blob: str) -> bytes | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class SourceFile:
    """One file of the source that an install receives."""

    src: str  # path in the source repo
    target: str  # path under .praxis-os
    area: str  # "content", "server" or "config"
    sha256: str
    size: int
    mode: int  # 0o644 or 0o755
    abspath: Path  # a checkout's file (a snapshot's: the zip's path / the member, never opened)
    blob: str = ""  # git blob id
    data: bytes | None = field(default=None, compare=False, repr=False)  # a snapshot's, verified

    def raw(self) -> bytes:
        """The file's bytes, unverified (planning reads)."""
        return self.data if self.data is not None else self.abspath.read_bytes()

    def install_to(self, dst: Path, mode: int) -> None:
        """Write this file to ``dst`` atomically, verified against the planned checksum (a
        checkout's file is streamed; a snapshot's bytes were verified when it was opened)."""
        if self.data is not None:
            atomic_write_bytes(dst, self.data, mode)
            return
        try:
            atomic_copy_verified(self.abspath, dst, self.sha256, mode)
        except ChangedSource:
            raise PhaseError(f"source file {self.src} changed during the upgrade",
                             "its checksum no longer matches the one planned",
                             "do not edit the source checkout while an upgrade runs; rerun "
                             "`invoke upgrade`") from None

    def read(self) -> bytes:
        data = self.raw()
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise PreflightError(
                f"source file {self.src} changed during the upgrade",
                "its checksum no longer matches the one planned",
                "do not edit the source checkout while an upgrade runs; rerun `invoke upgrade`",
            )
        return data


@dataclass
class Source(ABC):
    """One commit of a prAxIs OS source, whatever it is read from."""

    root: Path
    commit: str
    branch: str
    spec: str
    files: dict[str, SourceFile] = field(default_factory=dict)  # keyed by target path
    notes: list[str] = field(default_factory=list)  # what the plan should say about the source
    #: the ``--ref`` it was opened at ("": what the checkout has checked out)
    ref: str = ""

    @property
    def content_files(self) -> dict[str, SourceFile]:
        return {t: f for t, f in self.files.items() if f.area == "content"}

    @property
    def server_files(self) -> dict[str, SourceFile]:
        return {t: f for t, f in self.files.items() if f.area == "server"}

    @property
    def short(self) -> str:
        return self.commit[:10]

    @abstractmethod
    def history(self) -> History:
        """First-parent history of the mapped areas, oldest first."""

    @abstractmethod
    def blob_reader(self) -> BlobReader:
        """A reader of old versions by blob id (close it when done)."""

    @abstractmethod
    def relation(self, installed: str) -> Relation:
        """Where ``installed`` stands relative to this source's commit."""
