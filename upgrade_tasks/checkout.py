"""The git-checkout backend of :class:`~upgrade_tasks.source.Source` (phase 0, T1).

A clean prAxIs OS git checkout (``universal/`` and ``mcp_server/``), or a git URL
cloned to a temporary directory. Its commit is recorded; every file it installs
is listed with its checksum, mode and blob id; symlinks, submodules and paths
that escape the repository are refused.
"""

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

from .errors import PreflightError, UsageError
from .fsutil import open_regular
from .gitutil import CatFile, git, git_blob_id, git_ok
from .history import History, load_history
from .layout import map_source_path
from .redact import redact
from .source import BlobReader, Relation, Source, SourceFile

_URL_RE = re.compile(r"^(?:[a-z+]+://|[\w.-]+@[\w.-]+:)", re.IGNORECASE)


def is_git_url(spec: str) -> bool:
    return bool(_URL_RE.match(spec)) and not Path(spec).exists()


@dataclass
class Checkout(Source):
    """A source read from a git checkout."""

    _history: History | None = field(default=None, repr=False)

    def history(self) -> History:
        if self._history is None:
            self._history = load_history(self.root, self.commit)
        return self._history

    def blob_reader(self) -> BlobReader:
        return CatFile(self.root)

    def relation(self, installed: str) -> Relation:
        if installed == self.commit:
            return Relation.SAME
        if not git_ok(self.root, "cat-file", "-e", installed + "^{commit}"):
            return Relation.UNKNOWN
        if git_ok(self.root, "merge-base", "--is-ancestor", self.commit, installed):
            return Relation.NEWER
        return Relation.OLDER


def clone(url: str) -> Path:
    """Clone ``url`` into a temporary directory removed when the process exits."""
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
            f"cannot clone the source {redact(url)}",
            redact(err[-1]) if err else f"git clone exited {proc.returncode}",
            "check the URL and your network/credentials, or clone it yourself and pass "
            "--source PATH",
        )
    if redact(url) != url:  # git keeps the URL in the clone's config: not its credentials
        git(tmp / "src", "remote", "set-url", "origin", redact(url))
    return tmp / "src"


def resolve_ref(root: Path, ref: str, spec: str) -> str:
    """The commit ``ref`` (a branch, a tag, a commit, or a branch of the clone's origin) names
    in the repository at ``root``."""
    if ref.startswith("-") or any(c.isspace() or not c.isprintable() for c in ref):
        raise UsageError(f"--ref {ref!r} is not a branch, tag or commit name",
                         "it starts with '-' or holds spaces or control characters",
                         "pass a branch, a tag or a commit id")
    for name in (ref, f"origin/{ref}"):
        proc = subprocess.run(["git", "-C", str(root), "rev-parse", "--verify", "-q",
                               f"{name}^{{commit}}"], capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return proc.stdout.strip()
    raise UsageError(f"--ref {ref} is not a branch, tag or commit of {redact(spec)}",
                     "git cannot resolve it there",
                     f"list what there is with `git -C {root} branch -a` and `git tag`, or pass "
                     "a commit id")


def at_commit(root: Path, commit: str) -> Path:
    """A temporary clone of the repository at ``root`` with ``commit`` checked out: the user's
    own checkout is never switched (``--shared``: the objects are borrowed, not copied)."""
    tmp = Path(tempfile.mkdtemp(prefix="praxis-upgrade-ref-"))
    atexit.register(shutil.rmtree, tmp, True)
    for cmd in (["git", "clone", "--quiet", "--shared", "--no-checkout", str(root), str(tmp / "src")],
                ["git", "-C", str(tmp / "src"), "checkout", "--quiet", "--detach", commit]):
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise PreflightError(f"cannot check out {commit[:10]} of {root} in a temporary copy",
                                 proc.stderr.strip()[-300:], "check the source repository "
                                 "(git fsck) and the free space in the temporary directory")
    return tmp / "src"


def open_checkout(spec: str, commit: str | None = None, ref: str = "") -> Checkout:
    """Validate a checkout (or clone a URL) and list the files it installs. Reads only.

    With ``ref`` (``--ref``), or a resumed session's ``commit`` of a URL or a ``--ref`` run,
    that commit is what is read: in the temporary clone of a URL, or in a temporary clone of
    the user's checkout (which is left as it is).
    """
    url = is_git_url(spec)
    root = clone(spec) if url else Path(spec).expanduser().absolute()
    if (ref or (commit and url)) and root.is_dir() and (root / ".git").exists():
        want = commit or resolve_ref(root, ref, spec)
        if url:
            subprocess.run(["git", "-C", str(root), "checkout", "-q", "--detach", want],
                           capture_output=True, check=False)
        else:
            root = at_commit(root, want)
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
    # --no-optional-locks: a plain `git status` refreshes the index file; reading the source
    # must not write to it
    status = git(root, "--no-optional-locks", "status", "--porcelain", "--untracked-files=normal")
    if status.strip():
        lines = status.rstrip("\n").splitlines()
        shown = ", ".join(line[3:] for line in lines[:5]) + (" ..." if len(lines) > 5 else "")
        raise PreflightError(
            f"source {root} has uncommitted changes ({len(lines)} paths)",
            f"changed or untracked: {shown}",
            "commit or stash them (git stash -u), so the upgrade installs exactly one commit",
        )
    try:
        head = git(root, "rev-parse", "HEAD").strip()
    except subprocess.CalledProcessError as exc:
        raise UsageError(
            f"source {root} has no commits", "git rev-parse HEAD failed", "commit the source first"
        ) from exc
    branch = ref or git(root, "rev-parse", "--abbrev-ref", "HEAD").strip()
    src = Checkout(root=root, commit=head, branch=branch, spec=spec, ref=ref)
    _list_files(src)
    return src


def _list_files(src: Checkout) -> None:
    """List the files of the commit (``git ls-tree HEAD``: the commit, not the index) that an
    install receives. Each work-tree file is read once, for its sha256 and its git blob id;
    a file whose bytes are not the commit's (an edit hidden from ``git status`` with
    ``--assume-unchanged`` or ``--skip-worktree``) is taken from the commit's objects instead,
    so what is installed is exactly what is recorded."""
    out = git(src.root, "ls-tree", "-r", "-z", "--full-tree", "HEAD")
    objects: CatFile | None = None
    try:
        for rec in out.split("\0"):
            if not rec:
                continue
            meta, _, path = rec.partition("\t")
            mode, _kind, blob = meta.split(" ")[:3]
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
            sha, blob_now = _hash(full, st.st_size)
            data = None
            if blob_now != blob:
                objects = objects or CatFile(src.root)
                data = objects.read(blob)
                if data is None or git_blob_id(data) != blob:
                    raise PreflightError(f"source entry {path}: its committed version {blob} "
                                         "cannot be read", "the repository is incomplete",
                                         "run `git fsck` in the source")
                sha = hashlib.sha256(data).hexdigest()
                src.notes.append(f"source file {path} differs from its commit in the work tree "
                                 "(hidden from git status: assume-unchanged or skip-worktree?); "
                                 "the committed version is installed")
            src.files[target] = SourceFile(
                src=path, target=target, area=area, sha256=sha,
                size=len(data) if data is not None else st.st_size,
                mode=0o755 if mode == "100755" else 0o644, abspath=full, blob=blob, data=data,
            )
    finally:
        if objects is not None:
            objects.close()


def _hash(path: Path, size: int) -> tuple[str, str]:
    """(sha256, git blob id) of a file, in one read."""
    h = hashlib.sha256()
    g = hashlib.sha1(b"blob %d\0" % size, usedforsecurity=False)
    with open_regular(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            g.update(block)
    return h.hexdigest(), g.hexdigest()
