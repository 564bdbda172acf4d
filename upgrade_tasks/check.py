"""``invoke check``: is an upgrade available from the source? Read-only and fast.

It compares the installed commit (what ``status`` knows: the installed manifest, the version
record, the last session; recognised from the source's history when none of them says) with the
source's commit (its ``HEAD``, or ``--ref``), without listing the source's files, taking the
lock or writing anything. For a local checkout it also counts the upstream commits in between
and sums up what changed in the installed areas (``git diff --shortstat``); a URL is asked with
``git ls-remote`` (nothing cloned) unless the installed commit must be recognised.

Exit codes (for scripts and the schedule): 0 up to date (or the install is newer than the
source), :data:`upgrade_tasks.errors.EXIT_UPGRADE_AVAILABLE` (11) when an upgrade is available.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkout import is_git_url, resolve_ref
from .errors import UsageError
from .gitutil import git, git_ok
from .installed import load_base
from .layout import find_install
from .manifest import read_installed_manifest
from .options import Options
from .redact import redact
from .snapshot import is_snapshot, snapshot_commit
from .sources import open_source
from .status import inspect

#: The source paths an install receives (what "changed upstream" is counted over).
INSTALLED_AREAS = ("universal", "mcp_server", "scripts", "installation")
_SHA = re.compile(r"[0-9a-f]{40}")


@dataclass
class CheckResult:
    installed: str | None
    installed_from: str
    available: str
    source: str
    ref: str
    #: up-to-date | available | newer-installed | unknown-installed | unfinished
    state: str
    commits_behind: int | None = None
    changes: str = ""
    unfinished: bool = False

    @property
    def upgrade_available(self) -> bool:
        return self.state in ("available", "unknown-installed", "unfinished")

    def text(self) -> str:
        inst = self.installed[:10] if self.installed else "unknown"
        head = f"installed {inst}, available {self.available[:10]}" + (
            f" ({self.ref})" if self.ref else "") + f" from {self.source}"
        if self.state == "up-to-date":
            return f"up to date: {head}"
        if self.state == "newer-installed":
            return f"nothing to do: the install is newer than the source ({head})"
        behind = f"{self.commits_behind} upstream commit(s); " if self.commits_behind is not None else ""
        lines = [f"upgrade available: {head}", f"  {behind}{self.changes or 'changes not counted'}"]
        if self.state == "unknown-installed":
            lines.append(f"  the installed commit is unknown ({self.installed_from}); an upgrade "
                         "recognises it")
        if self.state == "unfinished":
            lines.append(f"  an upgrade is unfinished here ({self.installed_from}): `invoke status "
                         "--project ...` says how to go on")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"installed_commit": self.installed, "installed_from": self.installed_from,
                "available_commit": self.available, "source": self.source, "ref": self.ref or None,
                "state": self.state, "upgrade_available": self.upgrade_available,
                "commits_behind": self.commits_behind, "changes": self.changes,
                "unfinished": self.unfinished}


def _git(root: Path, *args: str) -> str | None:
    """git's answer, stripped; None when git says no (the caller words what that means)."""
    try:
        return git(root, *args).strip()
    except subprocess.CalledProcessError:
        return None


def _remote_commit(url: str, ref: str) -> str | None:
    """The commit a URL's ref (or HEAD) names, asked with ``git ls-remote`` (no clone)."""
    if ref and _SHA.fullmatch(ref):
        return ref
    proc = subprocess.run(["git", "ls-remote", "--", url, ref or "HEAD"], capture_output=True,
                          text=True, check=False, timeout=120,
                          env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if proc.returncode != 0:
        raise UsageError(f"cannot reach the source {redact(url)}",
                         redact(proc.stderr.strip().splitlines()[-1]) if proc.stderr.strip() else
                         f"git ls-remote exited {proc.returncode}",
                         "check the URL and your network/credentials")
    for line in proc.stdout.splitlines():
        sha, _tab, name = line.partition("\t")
        if name in (ref or "HEAD", f"refs/heads/{ref}", f"refs/tags/{ref}", f"refs/tags/{ref}^{{}}"):
            return sha
    return None


def local_checkout(spec: str) -> Path | None:
    """The source's own git history on this machine (None for a URL or a snapshot)."""
    if is_git_url(spec) or is_snapshot(Path(spec).expanduser()):
        return None
    return Path(spec).expanduser().absolute()


def newer_or_same(history: Path | None, installed: str, available: str) -> bool:
    """Is the install at ``available`` or past it? Without the history (a URL), only "the
    same commit" is known."""
    if installed == available:
        return True
    return history is not None and git_ok(history, "merge-base", "--is-ancestor", available,
                                          installed)


def source_commit(spec: str, ref: str = "") -> str:
    """The commit a source names (its HEAD, or ``ref``), without reading its files: ``git
    ls-remote`` for a URL, the snapshot's record, ``git rev-parse`` for a checkout."""
    if is_git_url(spec):
        commit = _remote_commit(spec, ref)
    elif is_snapshot(Path(spec).expanduser()):
        commit = snapshot_commit(str(Path(spec).expanduser()))
    else:
        local = Path(spec).expanduser().absolute()
        if not (local / ".git").exists():
            raise UsageError(f"source {spec} is not a git checkout",
                             "its commit is read with git",
                             "pass the root of a prAxIs OS git checkout, or a URL")
        commit = resolve_ref(local, ref, spec) if ref else _git(local, "rev-parse", "HEAD")
    if not commit:
        raise UsageError(f"--ref {ref} is not a branch or tag of {redact(spec)}",
                         "git ls-remote does not list it", "pass a branch, a tag or a full commit id")
    return commit


def check(opts: Options) -> CheckResult:
    """Compare the installed commit with the source's (see the module docstring)."""
    spec, ref = opts.source, opts.ref
    if not spec:
        raise UsageError("no source given", "check compares the install with a source",
                         "pass --source PATH (a git checkout) or --source URL")
    st = inspect(opts)
    installed, origin = st.installed_commit, st.installed_from
    available = source_commit(spec, ref)
    local = local_checkout(spec)
    if installed is None and not st.unfinished:
        # nothing on record (an installer's install): recognise it the way the upgrade would
        src = open_source(spec, ref=ref)
        manifest, _note = read_installed_manifest(find_install(opts.project).installed_manifest)
        reader = src.blob_reader()
        try:
            base = load_base(find_install(opts.project), manifest, src.history(), reader)
        finally:
            reader.close()
        if base.commit:
            installed, origin = base.commit, f"recognised from the source's history ({base.note})"
        if local is None:
            local = src.root
    res = CheckResult(installed, origin, available, redact(spec), ref, "available",
                      unfinished=st.unfinished)
    if st.unfinished:
        res.state = "unfinished"
    elif installed is None:
        res.state = "unknown-installed"
    elif installed == available:
        res.state = "up-to-date"
    elif local is not None:
        if newer_or_same(local, installed, available):
            res.state = "newer-installed"
        else:
            count = _git(local, "rev-list", "--count", f"{installed}..{available}")
            res.commits_behind = int(count) if count and count.isdigit() else None
            stat = _git(local, "diff", "--shortstat", installed, available, "--", *INSTALLED_AREAS)
            res.changes = (stat or "").strip() or "no change in the installed areas"
    elif is_git_url(spec):
        res.changes = "a URL: commits not counted (nothing is cloned); pass a checkout to count them"
    else:
        res.changes = ("commits not counted on the host (the source travels as a snapshot); "
                       "check it from a checkout to count them")
    return res
