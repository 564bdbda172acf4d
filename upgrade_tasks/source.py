"""The prAxIs OS source: validation (phase 0, T1) and the list of files it installs."""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .errors import PhaseError, PreflightError, UsageError
from .fsutil import ChangedSource, atomic_copy_verified, atomic_write_bytes
from .gitutil import git
from .layout import map_source_path

if TYPE_CHECKING:  # snapshot imports this module
    from .snapshot import Snapshot

_URL_RE = re.compile(r"^(?:[a-z+]+://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)


@dataclass(frozen=True)
class SourceFile:
    """One file of the source that an install receives."""

    src: str  # path in the source repo
    target: str  # path under .praxis-os
    area: str  # "content" or "server"
    sha256: str
    size: int
    mode: int  # 0o644 or 0o755
    abspath: Path  # in a snapshot zip: the zip's path / the member (never opened)
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
class Source:
    root: Path
    commit: str
    branch: str
    spec: str
    files: dict[str, SourceFile] = field(default_factory=dict)  # keyed by target path
    snapshot: dict[str, Any] | None = None  # a snapshot's metadata (no git needed)
    archive: Snapshot | None = None  # the open snapshot zip

    @property
    def content_files(self) -> dict[str, SourceFile]:
        return {t: f for t, f in self.files.items() if f.area == "content"}

    @property
    def server_files(self) -> dict[str, SourceFile]:
        return {t: f for t, f in self.files.items() if f.area == "server"}

    @property
    def short(self) -> str:
        return self.commit[:10]


def is_git_url(spec: str) -> bool:
    return bool(_URL_RE.match(spec)) and not Path(spec).exists()


_clones: dict[str, Path] = {}


def _clone(url: str) -> Path:
    if url in _clones:
        return _clones[url]
    tmp = Path(tempfile.mkdtemp(prefix="praxis-upgrade-src-"))
    atexit.register(shutil.rmtree, tmp, True)
    proc = subprocess.run(
        ["git", "clone", "--quiet", url, str(tmp / "src")],
        capture_output=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise UsageError(
            f"cannot clone the source {url}",
            err[-1] if err else f"git clone exited {proc.returncode}",
            "check the URL and your network/credentials, or clone it yourself and pass "
            "--source PATH",
        )
    _clones[url] = tmp / "src"
    return tmp / "src"


def open_source(spec: str, commit: str | None = None) -> Source:
    """Validate the source and list the files it installs. Reads only.

    For a git URL, ``commit`` (a resumed session's) is checked out in the temporary clone,
    so a remote that moved on does not stop the resume.
    """
    if not spec:
        raise UsageError(
            "no source given",
            "the upgrade needs a prAxIs OS source repository",
            "pass --source PATH (a git checkout) or --source URL",
        )
    root = _clone(spec) if is_git_url(spec) else Path(spec).expanduser().absolute()
    from .snapshot import is_snapshot

    if is_snapshot(root):
        return _open_snapshot(root, spec)
    if commit and is_git_url(spec):
        subprocess.run(["git", "-C", str(root), "checkout", "-q", "--detach", commit],
                       capture_output=True, check=False)
    if not root.is_dir():
        raise UsageError(
            f"source {spec} does not exist or is not a directory",
            "--source must point at a prAxIs OS git checkout",
            "clone it first: git clone <url> praxis-os, then pass --source praxis-os",
        )
    try:
        top = git(root, "rev-parse", "--show-toplevel").strip()
    except subprocess.CalledProcessError as exc:
        raise UsageError(
            f"source {root} is not a git repository",
            (exc.stderr or b"").decode(errors="replace").strip() or "git rev-parse failed",
            "pass the root of a prAxIs OS git checkout (the upgrade records its commit)",
        ) from exc
    if Path(top).resolve() != root.resolve():
        raise UsageError(
            f"source {root} is inside a git repository but not its root",
            f"the repository root is {top}",
            f"pass --source {top}",
        )
    missing = [d for d in ("universal", "mcp_server") if not (root / d).is_dir()]
    if missing:
        raise UsageError(
            f"source {root} is not a prAxIs OS repository",
            f"it has no {' and no '.join(d + '/' for d in missing)}",
            "pass the root of a praxis-os checkout (it has universal/ and mcp_server/)",
        )
    status = git(root, "status", "--porcelain", "--untracked-files=normal")
    if status.strip():
        lines = status.rstrip("\n").splitlines()
        shown = ", ".join(line[3:] for line in lines[:5]) + (" ..." if len(lines) > 5 else "")
        raise PreflightError(
            f"source {root} has uncommitted changes ({len(lines)} paths)",
            f"changed or untracked: {shown}",
            "commit or stash them (git stash -u), so the upgrade installs exactly one commit",
        )
    try:
        commit = git(root, "rev-parse", "HEAD").strip()
    except subprocess.CalledProcessError as exc:
        raise UsageError(
            f"source {root} has no commits", "git rev-parse HEAD failed", "commit the source first"
        ) from exc
    branch = git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    src = Source(root=root, commit=commit, branch=branch, spec=spec)
    _list_files(src)
    return src


def _list_files(src: Source) -> None:
    out = git(src.root, "ls-files", "-s", "-z")
    for rec in out.split("\0"):
        if not rec:
            continue
        meta, _, path = rec.partition("\t")
        mode, blob = meta.split(" ")[:2]
        mapped = map_source_path(path)
        if mapped is None:
            continue
        area, target = mapped
        pp = PurePosixPath(path)
        if pp.is_absolute() or ".." in pp.parts:
            raise PreflightError(
                f"source entry {path!r} escapes the repository",
                "absolute paths and '..' components are never installed",
                "fix the source repository",
            )
        if mode in ("120000", "160000"):
            kind = "a symlink" if mode == "120000" else "a submodule"
            raise PreflightError(
                f"source entry {path} is {kind}",
                "only regular files are installed; links could point outside the source",
                "replace it with a regular file in the source repository",
            )
        full = src.root / path
        st = os.lstat(full)
        if not stat.S_ISREG(st.st_mode):
            raise PreflightError(
                f"source entry {path} is not a regular file",
                "only regular files are installed",
                "fix the source repository",
            )
        h = hashlib.sha256()
        with open(full, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        src.files[target] = SourceFile(
            src=path,
            target=target,
            area=area,
            sha256=h.hexdigest(),
            size=st.st_size,
            mode=0o755 if mode == "100755" else 0o644,
            abspath=full,
            blob=blob,
        )


def _open_snapshot(root: Path, spec: str) -> Source:
    """A source snapshot zip (see :mod:`upgrade_tasks.snapshot`), read in place: every installed
    file is read once and verified against its blob id; no git, nothing unpacked."""
    from .snapshot import Snapshot, verify_file

    snap = Snapshot(root)
    meta = snap.meta()
    src = Source(root=root, commit=str(meta["commit"]), branch=str(meta.get("branch", "")),
                 spec=spec, snapshot=meta, archive=snap)
    for path, info in meta["files"].items():
        mapped = map_source_path(path)
        if mapped is None:
            continue
        area, target = mapped
        data = verify_file(snap, path, str(info["blob"]))
        src.files[target] = SourceFile(
            src=path, target=target, area=area, sha256=hashlib.sha256(data).hexdigest(),
            size=len(data), mode=int(info["mode"]), abspath=root / path, blob=str(info["blob"]),
            data=data)
    return src
