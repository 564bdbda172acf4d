"""The source's git history: recognise pristine files of installs that have no manifest.

Every prAxIs OS install made by copying has no record of what was installed.
A file whose content equals *some* version of its mapped source path anywhere
in the source's history was installed by us and never changed by the user;
that historical version is its merge base. The installed commit is the commit
whose tree explains most pristine files.

All of it comes from one ``git log --raw`` process over the mapped areas
(first-parent history of HEAD, oldest first), replayed in memory (a snapshot
carries the same data), plus the source's blob reader for the few old versions
a merge needs.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .fsutil import read_regular
from .gitutil import git_blob_id
from .layout import CONTENT_MAP, OFFERED, SERVER_MAP, Install, map_source_path, unmap_target

ZERO = "0" * 40


@dataclass
class History:
    """Blob versions per source path, and the first-parent commits that changed them."""

    versions: dict[str, set[str]] = field(default_factory=dict)  # src path -> blob ids ever seen
    # (commit, {src path: blob id or None for deleted}) oldest first
    changes: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)

    @property
    def commits(self) -> list[str]:
        return [c for c, _ in self.changes]


def load_history(repo: Path, ref: str = "HEAD") -> History:
    """The first-parent history of the mapped areas, from one git log --raw process: per commit, the
    blob id each mapped path got (None when deleted), and every blob id each path ever had."""
    areas = sorted({p.split("/")[0] for p, _ in CONTENT_MAP} | {SERVER_MAP[0].rstrip("/")}
                   | {o.source.split("/")[0] for o in OFFERED})
    proc = subprocess.run(
        ["git", "-C", str(repo), "log", "--first-parent", "--reverse", "--raw", "--no-renames",
         "--no-abbrev", "--diff-merges=first-parent", "-z", "--format=C %H", ref, "--", *areas],
        capture_output=True, check=False,
    )
    hist = History()
    if proc.returncode != 0:
        return hist
    toks = proc.stdout.split(b"\0")
    i = 0
    cur: dict[str, str | None] | None = None
    while i < len(toks):
        tok = toks[i].lstrip(b"\n")
        i += 1
        if tok.startswith(b"C "):
            cur = {}
            hist.changes.append((tok[2:].decode(), cur))
        elif tok.startswith(b":") and cur is not None and i < len(toks):
            meta = tok.decode().split()
            path = os.fsdecode(toks[i])
            i += 1
            old, new, status = meta[2], meta[3], meta[4]
            if map_source_path(path) is None:
                continue
            vs = hist.versions.setdefault(path, set())
            if old != ZERO:
                vs.add(old)
            if new != ZERO and not status.startswith("D"):
                vs.add(new)
                cur[path] = new
            else:
                cur[path] = None
    return hist


@dataclass
class Recognition:
    """What history says about the files on disk of an install without a manifest."""

    pristine: dict[str, str] = field(default_factory=dict)  # target -> blob id (== a historical version)
    edited: list[str] = field(default_factory=list)  # system paths whose content matches no version
    installed_commit: str | None = None
    explained: int = 0  # pristine files the installed commit's tree explains
    base_at_installed: dict[str, str] = field(default_factory=dict)  # target -> blob at that commit
    tree_at_installed: dict[str, str] = field(default_factory=dict)  # target -> blob, whole tree
    #: commits right after the installed one that explain the files just as well (a tie)
    tied: list[str] = field(default_factory=list)
    #: edited files: the distinct versions they had across the tie (their base is one of them)
    candidates: dict[str, list[str]] = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.explained / len(self.pristine) if self.pristine else 0.0


#: NAME.praxis-new / NAME.praxis-merge, with the tag a later upgrade adds (plan.side_tag)
_SIDE_FILE = re.compile(r"\.praxis-(new|merge)(\.[0-9a-f]+)?$")


def local_system_files(install: Install, skipped: list[str] | None = None) -> dict[str, Path]:
    """Regular files on disk under the system-owned areas (target path -> absolute path).
    Links are left out; FIFOs, sockets and devices too, never opened, and listed in
    ``skipped`` when given (they are the user's: reported, never touched)."""
    out: dict[str, Path] = {}
    tops = [t for _s, t in CONTENT_MAP] + [SERVER_MAP[1]]
    for top in tops:
        base = install.root / top
        if not base.is_dir() or base.is_symlink():
            continue
        for root, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".mcp_server")]
            for name in files:
                full = Path(root) / name
                rel = full.relative_to(install.root).as_posix()
                if name.endswith((".pyc", ".pyo")) or _SIDE_FILE.search(name):
                    continue
                mode = os.lstat(full).st_mode
                if stat.S_ISLNK(mode):
                    continue
                if not stat.S_ISREG(mode):
                    if skipped is not None:
                        skipped.append(rel)
                    continue
                out[rel] = full
    return out


def recognise(install: Install, hist: History, blobs: dict[str, str] | None = None) -> Recognition:
    """Classify the install's system files against history; infer the installed commit.

    ``blobs`` (target -> blob id of the file on disk) may be given to avoid re-reading.
    """
    rec = Recognition()
    if blobs is None:
        blobs = {t: git_blob_id(read_regular(p)) for t, p in local_system_files(install).items()}
    src_of: dict[str, str] = {}
    for target, blob in blobs.items():
        src = unmap_target(target)
        if src is None or src not in hist.versions or map_source_path(src) is None:
            continue  # never a system path: the user's own file
        src_of[src] = target
        if blob in hist.versions[src]:
            rec.pristine[target] = blob
        else:
            rec.edited.append(target)
    # replay first-parent history; score = pristine files whose blob equals the tree's. When
    # several commits in a row explain the files equally (the commits between them only add
    # files, or only touch files the user edited or deleted), the installed commit is the
    # *earliest* of them: a later one would turn the files it adds into "deleted by you" and
    # take its changes to edited files for the user's own. The edited files' versions across
    # the tie are kept as candidates for their merge base.
    tree: dict[str, str] = {}
    score = 0
    best: tuple[int, int] = (-1, -1)
    best_tree: dict[str, str] = {}
    in_tie = False
    edited_src = {src for src, tgt in src_of.items() if tgt in rec.edited}
    seen: dict[str, list[str]] = {}
    for idx, (commit, changes) in enumerate(hist.changes):
        for path, changed in changes.items():
            tgt = src_of.get(path)
            if tgt is not None and tgt in rec.pristine:
                was = tree.get(path) == rec.pristine[tgt]
                now = changed is not None and changed == rec.pristine[tgt]
                score += int(now) - int(was)
            if changed is None:
                tree.pop(path, None)
            else:
                tree[path] = changed
        if score > best[0]:
            best, in_tie = (score, idx), True
            rec.installed_commit, rec.tied = commit, []
            best_tree = dict(tree)
            seen = {src: [tree[src]] for src in edited_src if src in tree}
        elif score == best[0] and in_tie:
            rec.tied.append(commit)
            for src in edited_src:
                version = tree.get(src)
                if version is not None and version not in seen.setdefault(src, []):
                    seen[src].append(version)
        else:
            in_tie = False
    rec.candidates = {src_of[src]: blobs for src, blobs in seen.items()}
    rec.explained = max(best[0], 0)
    for src, target in src_of.items():
        if src in best_tree:
            rec.base_at_installed[target] = best_tree[src]
    for path, at in best_tree.items():
        mapped = map_source_path(path)
        if mapped is not None:
            rec.tree_at_installed[mapped[1]] = at
    return rec
