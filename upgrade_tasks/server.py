"""Phase 3 (MCP server): replace ``mcp_server/`` exactly, install dependencies, stop the old server.

Sub-steps, each recorded in the checkpoint before the next risky action so a
killed run resumes at the right place:

``server:staged``   new tree copied to ``.mcp_server.staged`` and verified
``server:stopped``  this install's running server stopped (SIGINT, TERM, KILL)
``server:swapped``  live -> ``.mcp_server.old``, staged -> live (two renames)
``server:deps``     dependencies installed with the venv's own python
``server:done``     installed manifest written

The swap is resumable from any point between its two renames. No stale
module survives: the new tree is exactly the source's ``mcp_server/``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import faults, fsutil, index
from . import venv as venv_mod
from .backup_store import load_backup
from .checkpoint import Session, now_iso
from .errors import PhaseError
from .fsutil import (
    batched_dir_syncs,
    file_sha_or_none,
    fsync_dir,
    sync_dir,
)
from .layout import Install
from .manifest import InstalledManifest
from .options import Options
from .output import Output
from .plan import Plan
from .runstate import Run
from .server_process import stop_for_upgrade
from .source import Source


@dataclass
class ServerResult:
    """What phase 3 did, for its summary line."""

    files: int = 0
    stopped: list[dict[str, object]] = field(default_factory=list)
    deps: str = "not needed"
    installer: str = ""

    index: str = ""

    def summary(self) -> str:
        stopped = ", ".join(f"pid {s['pid']} ({s['signal']})" for s in self.stopped) or "none"
        return (f"{self.files} files in place; stopped: {stopped}; deps: {self.deps}"
                + (f"; {self.index}" if self.index else ""))


def live_tree(path: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file of a server tree (bytecode caches left out)."""
    out: dict[str, str] = {}
    if not path.is_dir():
        return out
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith((".pyc", ".pyo")):
                continue
            full = Path(root) / name
            sha = file_sha_or_none(full)  # never opens a FIFO or follows a link
            if sha is not None:
                out[full.relative_to(path).as_posix()] = sha
    return out


def expected_tree(source: Source) -> dict[str, str]:
    return {t[len("mcp_server/"):]: f.sha256 for t, f in source.server_files.items()}


def stage(install: Install, source: Source) -> None:
    """Copy the source's mcp_server/ to .mcp_server.staged (every file verified against its checksum,
    every directory fsynced), then check the whole staged tree."""
    staged = install.staging_server
    if staged.exists():
        shutil.rmtree(staged)
    with batched_dir_syncs():
        for t, f in sorted(source.server_files.items()):
            dst = staged / t[len("mcp_server/"):]
            f.install_to(dst, f.mode)
            faults.point("server:stage-file")
        staged.mkdir(exist_ok=True)
        for d in sorted({p.parent for p in staged.rglob("*")} | {staged}):
            sync_dir(d)  # every directory once, new subdirectories' entries included
    got = live_tree(staged)
    if got != expected_tree(source):
        raise PhaseError(
            "the staged mcp_server/ does not match the source",
            "checksum mismatch after copying",
            "check the disk (dmesg) and rerun `invoke upgrade`",
        )


def save_user_files(install: Install, plan: Plan, session: Session) -> list[str]:
    """Before the swap, copy into the backup's ``kept/`` every file of the live tree that the
    upgrade must not lose: the user's (the plan's ``user_modified``: edited, or never
    installed by us) and any file added or changed since the backup was made. A backup with a
    ``kept/`` folder is never pruned. Idempotent (a rerun copies the same bytes again)."""
    bid = session.backup_id
    if not bid or not install.server_dir.is_dir():
        return []
    b = load_backup(install, bid)
    live = {f"mcp_server/{rel}": sha for rel, sha in live_tree(install.server_dir).items()}
    keep = [rel for rel, sha in sorted(live.items())
            if rel in plan.server.user_modified or b.entries.get(rel, {}).get("sha256") != sha]
    for rel in keep:
        if live[rel].startswith(("symlink:", "special:")):
            continue
        fsutil.atomic_copy(install.path(rel), b.path / "kept" / rel)
    return keep


def swap(install: Install) -> None:
    """Put the staged tree in place with two renames (live -> .mcp_server.old, staged -> live);
    resumable from any point between them."""
    live, staged, old = install.server_dir, install.staging_server, install.old_server
    if staged.exists():
        if live.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(live, old)
            fsync_dir(install.root)
            faults.point("server:between-renames")
        os.replace(staged, live)
        fsync_dir(install.root)


def install_deps(install: Install, plan: Plan, session: Session, res: ServerResult,
                 opts: Options, out: Output) -> None:
    """Build a new environment beside the old one and switch the ``venv`` link to it."""
    sp = plan.server
    arts = session.artifacts(3)
    if sp.deps_action != "install":
        res.deps = sp.deps_reason
        return
    before = session.artifacts(1).get("venv_before") or {"kind": "absent"}
    if before.get("kind") == "dir" and not session.has_step("server:venv-migrated"):
        venv_mod.migrate_dir(install, str(before["moved_to"]))
        session.step("server:venv-migrated")
    name = arts.get("new_venv_name")
    if not name:
        name = f"env-{session.backup_id or secrets.token_hex(3)}"
        arts["new_venv_name"] = name
        session.save()
    new_rel = f"{venv_mod.VENVS}/{name}"
    if not session.has_step("server:venv-built"):
        installer = "uv" if venv_mod.uv_path() else "pip"
        with out.progress(f"installing dependencies into {new_rel} with {installer}") as prog:
            built = venv_mod.build_venv(install, str(name), install.requirements,
                                        find_links=opts.find_links, offline=opts.offline,
                                        note=prog.note)
            if opts.post_install == "auto":
                venv_mod.run_post_install(install, new_rel, install.requirements, built,
                                          prog.note)
        arts["installer"] = built.installer
        arts["post_install"] = built.post_install
        arts["warnings"] = built.warnings
        session.step("server:venv-built")
    if not session.has_step("server:venv-switched"):
        venv_mod.link_venv(install, new_rel)
        session.step("server:venv-switched")
    res.installer = str(arts.get("installer", ""))
    res.deps = f"installed with {res.installer} into {new_rel} (venv -> {new_rel})"
    for w in arts.get("warnings", []):
        out.line(f"    warning: {w}")


def run_server(install: Install, source: Source, plan: Plan, session: Session,
               opts: Options, out: Output | None = None) -> ServerResult:
    """Phase 3's sub-steps, each skipped when the checkpoint records it done: stage, stop, swap,
    dependencies, installed manifest."""
    out = out or Output(print)
    res = ServerResult()
    arts = session.artifacts(3)
    if plan.server.changed and not session.has_step("server:staged"):
        stage(install, source)
        session.step("server:staged")
    stop_for_upgrade(install, session, plan.server.must_stop, opts.no_restart)
    res.stopped = list(arts.get("stopped", []))
    if plan.server.changed and not session.has_step("server:swapped"):
        arts["kept_aside"] = kept = save_user_files(install, plan, session)
        attention = session.artifacts(2).setdefault("attention", [])
        for rel in kept:
            if rel not in plan.server.user_modified:
                attention.append(f"{rel}: changed while the upgrade ran, in mcp_server/ (replaced "
                                 f"whole); saved in the backup's kept/{rel}")
        session.save()
        swap(install)
        session.step("server:swapped")
    if install.old_server.exists():
        shutil.rmtree(install.old_server)
    if plan.server.changed and live_tree(install.server_dir) != expected_tree(source):
        raise PhaseError(
            "mcp_server/ does not match the source after the swap",
            "a file differs or is missing",
            "rerun `invoke upgrade`; if it persists, `invoke rollback`",
        )
    if not session.has_step("server:deps"):
        install_deps(install, plan, session, res, opts, out)
        arts["deps"] = res.deps
        arts["installer"] = res.installer
        session.step("server:deps")
    res.deps = str(arts.get("deps", res.deps))
    res.installer = str(arts.get("installer", ""))
    if plan.index_action == "rebuild" and plan.index_table and session.backup_id:
        if not session.has_step("server:index-built"):
            t0 = time.monotonic()
            with out.progress("building the search index with the new code (minutes with the "
                              "real model)") as prog:
                index.build(install, plan.index_table, prog.note)
            arts["index_build_s"] = round(time.monotonic() - t0, 1)
            session.step("server:index-built")
        if not session.has_step("server:index-switched"):
            index.switch(install, session.backup_id)
            session.step("server:index-switched")
        res.index = f"index rebuilt in {arts.get('index_build_s', '?')}s"
    if not session.has_step("server:done"):
        write_installed_manifest(install, source, plan)
        arts["server_tree"] = {"mcp_server/" + k: v for k, v in expected_tree(source).items()}
        session.step("server:done")
    res.files = len(source.server_files)
    return res


def write_installed_manifest(install: Install, source: Source, plan: Plan) -> None:
    """Record what this upgrade installed: the next upgrade's base."""
    files = {t: f.sha256 for t, f in source.files.items()}
    sizes = {t: f.size for t, f in source.files.items()}
    blobs = {t: f.blob for t, f in source.files.items() if f.blob}
    InstalledManifest(source.commit, now_iso(), files, sizes, blobs).write(install.installed_manifest)


def verify_server(install: Install, source: Source, plan: Plan) -> list[str]:
    """Paths of mcp_server/ that differ from the source (empty when the tree is as planned)."""
    if not plan.server.changed:
        return []
    got, want = live_tree(install.server_dir), expected_tree(source)
    return sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))


def step(run: Run) -> str:
    """Phase 3: stage, stop, swap, dependencies, installed manifest."""
    s, src, plan = run.need()
    res = run_server(run.install, src, plan, s, run.opts, run.ui)
    return res.summary()


def recheck(run: Run) -> bool:
    """Is phase 3's result still on disk (``mcp_server/`` as planned)? A resume asks."""
    _s, src, plan = run.need()
    return not verify_server(run.install, src, plan)
