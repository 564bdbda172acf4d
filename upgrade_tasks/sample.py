"""Sample projects for the demo and the tests: a prAxIs OS install made at a given commit.

The source repository comes from :mod:`upgrade_tasks.sample_source`; here it is
installed the way a real install looks (mapping table, a venv, an installed
manifest or none for a legacy copy-made install) and customised the way users
do (an edited standard, a user spec, a user workflow, a config.json).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

from .checkpoint import now_iso
from .gitutil import git_blob_id
from .layout import OWN_BOOKKEEPING, PRAXIS_DIR, map_source_path
from .manifest import InstalledManifest

#: The standard the sample user edits where upstream changes it too in v2 (a merge conflict).
EDITED_CONFLICT = "standards/universal/ai-safety/git-safety-rules.md"
#: A standard the sample user edits away from upstream's changes (merges cleanly).
EDITED_MERGE = "standards/universal/testing/test-pyramid.md"
#: A standard the sample user edits that upstream leaves alone (kept, no conflict).
EDITED_LOCAL = "standards/universal/testing/integration-testing.md"

USER_FILES: dict[str, bytes] = {
    "specs/approved/2026-01-10-login/spec.md": b"# Login spec\n\nWritten by the user.\n",
    "specs/review/notes.md": b"user review notes\n",
    "workspace/scratch/idea.md": b"scratch\n",
    "standards/development/python.md": b"# Our Python standards\n",
    "workflows/my_release_v1/metadata.json": b'{"workflow_type": "my_release_v1"}\n',
    "workflows/my_release_v1/phases/0/phase.md": b"# Phase 0 of the user's workflow\n",
    "config.json": b'{"project": {"language": "python"}, "rag": {"embedding_provider": "local"}}\n',
}


def export_commit(repo: Path, commit: str) -> dict[str, tuple[bytes, int]]:
    """Repo-relative path -> (content, mode) of every file at ``commit``."""
    raw = subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit],
                         capture_output=True, check=True).stdout
    out: dict[str, tuple[bytes, int]] = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        for m in tf.getmembers():
            if m.isfile():
                f = tf.extractfile(m)
                assert f is not None
                out[m.name] = (f.read(), 0o755 if m.mode & 0o111 else 0o644)
    return out


def install_at(project: Path, repo: Path, commit: str, *, with_manifest: bool = True,
               venv: bool = True) -> Path:
    """Install the source at ``commit`` into ``project/.praxis-os`` like a real install."""
    root = project / PRAXIS_DIR
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, str] = {}
    sizes: dict[str, int] = {}
    blobs: dict[str, str] = {}
    for path, (data, mode) in export_commit(repo, commit).items():
        mapped = map_source_path(path)
        if mapped is None:
            continue
        area, target = mapped
        if area in ("content", "server"):  # config.json, .cursorrules: offered, never installed
            dst = root / target
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(data)
            os.chmod(dst, mode)
        files[target] = hashlib.sha256(data).hexdigest()
        sizes[target] = len(data)
        blobs[target] = git_blob_id(data)
    for d in ("specs/review", "specs/approved", "specs/completed", "workspace/design",
              ".cache/state"):
        (root / d).mkdir(parents=True, exist_ok=True)
    if with_manifest:
        InstalledManifest(commit, now_iso(), files, sizes, blobs).write(
            root / ".installed-manifest.json")
    if venv and not (root / "venv").exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")],
                       check=True)
    return root


def customize(project: Path) -> None:
    """Make the edits a real user makes."""
    root = project / PRAXIS_DIR
    for rel, data in USER_FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    for rel in (EDITED_CONFLICT, EDITED_LOCAL):
        edited = root / rel
        if edited.exists():
            edited.write_bytes(edited.read_bytes() + b"\n## Our team's extra rule\n\nAlways pair.\n")
    merge = root / EDITED_MERGE
    if merge.exists():
        merge.write_bytes(merge.read_bytes().replace(b"Write many fast unit tests",
                                                     b"Write many fast unit tests (we use pytest)"))
    gi = project / ".gitignore"
    gi.write_text("node_modules/\n.praxis-os/venv/\n.praxis-os/.cache/\n")
    # an IDE launch config from an older install: no --transport, a tool that no longer exists
    cursor = project / ".cursor" / "mcp.json"
    cursor.parent.mkdir(parents=True, exist_ok=True)
    cursor.write_text(json.dumps({"mcpServers": {"praxis-os": {
        "command": "${workspaceFolder}/.praxis-os/venv/bin/python",
        "args": ["-m", "mcp_server", "--log-level", "INFO"],
        "env": {"PYTHONPATH": "${workspaceFolder}/.praxis-os"},
        "autoApprove": ["search_standards", "get_current_phase"]}}}, indent=2) + "\n")


def make_project(dest: Path, repo: Path, commit: str, *, with_manifest: bool = True,
                 customized: bool = True, venv: bool = True) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    install_at(dest, repo, commit, with_manifest=with_manifest, venv=venv)
    if customized:
        customize(dest)
    return dest


def tree_digest(root: Path, exclude: tuple[str, ...] = OWN_BOOKKEEPING,
                mtimes: bool = False) -> dict[str, tuple[str, int, float]]:
    """Path -> (sha256 or link target, mode, mtime if asked) of every entry under ``root``."""
    out: dict[str, tuple[str, int, float]] = {}
    for r, dirs, files in os.walk(root):
        rel_dir = Path(r).relative_to(root).as_posix()
        if rel_dir != "." and any(rel_dir == e or rel_dir.startswith(e + "/") for e in exclude):
            dirs[:] = []
            continue
        for name in sorted(files) + sorted(dirs):
            p = Path(r) / name
            rel = p.relative_to(root).as_posix()
            if any(rel == e or rel.startswith(e + "/") for e in exclude):
                continue
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                val = "link:" + os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                val = "dir"
            else:
                val = hashlib.sha256(p.read_bytes()).hexdigest()
            out[rel] = (val, stat.S_IMODE(st.st_mode), st.st_mtime_ns / 1e9 if mtimes else 0.0)
    return out


def dump(obj: object) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
