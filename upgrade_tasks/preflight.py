"""Phase 0 (pre-flight): every check, read-only. A refusal changes nothing.

Source: a prAxIs OS git checkout (``universal/`` and ``mcp_server/``), clean,
its commit recorded, not older than the installed commit (unless
``--allow-downgrade``). Target: ``<project>/.praxis-os`` with a modern layout
(no ``usage/`` or ``config.json`` required), no symlink on any path the
upgrade writes. Free space for the backup and the staging, on the filesystem
that holds ``.praxis-os``. The plan is made here; the lock is taken by the
engine once every check has passed.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import gitcommit, index, offsite, planview, procs
from .backup_store import estimate_size
from .checkpoint import PHASES, unfinished_session
from .errors import ConflictAbort, PreflightError, UsageError
from .fsutil import lstat_or_none, tree_size
from .installed import Base, load_base
from .layout import PRAXIS_DIR, Install, SymlinkInPath
from .lock import check_lock_file, describe_owner, probe_lock
from .manifest import read_installed_manifest
from .mcp_client import tools_declared
from .options import Options
from .plan import (
    Plan,
    Resolution,
    decide_merge,
    plan_upgrade,
    unified_diff,
)
from .redact import redact
from .runstate import Run
from .server_process import find_running_servers
from .source import BlobReader, Relation, Source
from .sources import open_source

SYMLINK_CHECK = ("", "mcp_server", "standards", "workflows", "scripts", "standards/universal",
                 ".cache", ".cache/state", ".upgrade-state", ".backups")


@dataclass
class PreflightResult:
    """What phase 0 found: the source, the base, the plan and the disk space; its artifacts go into the
    checkpoint."""

    source: Source
    base: Base
    plan: Plan
    space_needed: int
    space_free: int

    def artifacts(self) -> dict[str, Any]:
        return {
            "source_path": str(self.source.root),
            "source_spec": redact(self.source.spec),
            "source_commit": self.source.commit,
            "source_branch": self.source.branch,
            "source_ref": self.source.ref,
            "source_git_clean": True,
            "installed_commit": self.base.commit,
            "base_origin": self.base.origin,
            "base_share": self.base.share,
            "base_note": self.base.note,
            "target_exists": True,
            "target_structure_valid": True,
            "disk_space_required": self.space_needed,
            "disk_space_available": self.space_free,
            "no_concurrent_workflows": True,
            "plan_counts": self.plan.counts(),
        }

    def summary(self) -> str:
        c = self.plan.counts()
        parts = [f"{c[k]} {k}" for k in ("add", "update", "remove", "conflict", "orphan") if c.get(k)]
        srv = "server changes" if self.plan.server.changed else "server unchanged"
        return (f"source {self.source.short} ({self.source.branch}), installed "
                f"{(self.plan.installed_commit or 'unknown')[:10]} ({self.base.origin}); "
                f"{', '.join(parts) or 'no content changes'}; {srv}")


def check_target(install: Install) -> None:
    """T2: the project and its .praxis-os look like a prAxIs OS install this user can upgrade. Raises
    UsageError (nothing to upgrade there) or PreflightError (refused, nothing changed)."""
    if not install.project.is_dir():
        raise UsageError(
            f"project directory {install.project} does not exist",
            "--project must be the directory that holds .praxis-os/",
            "pass --project DIR (default: the current directory)",
        )
    for rel in SYMLINK_CHECK:
        p = install.root / rel if rel else install.root
        if p.is_symlink():
            raise PreflightError(
                f"{p} is a symlink (to {os.readlink(p)})",
                "writing through it would change the files it points at (often a source checkout)",
                "replace it with a real copy (cp -rL), or remove the link, then rerun",
            )
    if not install.root.is_dir():
        raise UsageError(
            f"no prAxIs OS installation in {install.project}",
            f"{install.root} does not exist",
            "pass --project pointing at the project that holds .praxis-os/, or install "
            "prAxIs OS first",
        )
    present = [d for d in ("mcp_server", "standards", "workflows") if (install.root / d).is_dir()]
    if not present:
        raise PreflightError(
            f"{install.root} does not look like a prAxIs OS installation",
            "it has none of mcp_server/, standards/, workflows/",
            "check --project; the upgrader never creates an install from nothing",
        )
    if (install.root / "mcp_server").is_dir() and not install.venv_python.exists():
        raise PreflightError(
            f"the install's venv interpreter {install.venv_python} is missing",
            "the server runs from that venv and its dependencies are installed with it",
            f"recreate it: python3 -m venv {install.venv} && {install.venv_python} -m pip install "
            f"-r {install.requirements}; then rerun",
        )
    if (install.root / "mcp_server").is_dir() and not os.access(install.venv_python, os.X_OK):
        raise PreflightError(
            f"the install's venv interpreter {install.venv_python} cannot be run by this user",
            "it is not executable (its mode or owner), so the new server could not be checked",
            f"make it executable (`chmod +x {install.venv_python.resolve()}`) or recreate the "
            f"venv (`python3 -m venv --clear {install.venv}`), then rerun",
        )
    if not os.access(install.root, os.W_OK):
        raise PreflightError(
            f"{install.root} is not writable by this user",
            "the upgrade must write standards, workflows, the server and a backup there",
            "run as the owner of the install (or use --sudo on remote hosts)",
        )


#: The upgrader's own files and folders under .praxis-os: written as regular files and real
#: directories only, never through a link (a link could send a log line into your notes).
BOOKKEEPING = ("UPDATE_LOG.txt", "VERSION.json", ".installed-manifest.json",
               ".upgrade-lock.owner.json", ".upgrade-reports", ".venvs")


def check_bookkeeping(install: Install) -> None:
    """Refuse (exit 3) an upgrade whose bookkeeping paths are links or odd files."""
    check_lock_file(install.lock_file)
    for rel in BOOKKEEPING:
        st = lstat_or_none(install.root / rel)
        if st is None:
            continue
        want_dir = not rel.endswith((".txt", ".json"))
        ok = stat.S_ISDIR(st.st_mode) if want_dir else stat.S_ISREG(st.st_mode)
        if not ok:
            kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a regular " + (
                "directory" if want_dir else "file")
            raise PreflightError(
                f"{install.root / rel} is {kind}",
                "the upgrader writes its own bookkeeping there and never through a link",
                f"move it away (mv {install.root / rel} {install.root / rel}.moved), then rerun",
            )


def check_writable(install: Install, plan: Plan) -> None:
    """Refuse (exit 3) before any change what this user could not write, replace or remove:
    a FIFO, socket or device where the upgrade writes (it would block or fail half-way), and
    a directory this user cannot change (e.g. a root-owned ``__pycache__`` left by a server
    once run with sudo: the old ``mcp_server/`` could not be removed, nor a rollback done)."""
    def refuse(path: Path, why: str, fix: str) -> PreflightError:
        return PreflightError(f"the upgrade cannot write {path}", why, fix + "; then rerun")

    for rel in plan.touched_paths():
        path = install.path(rel)
        st = lstat_or_none(path)
        if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            raise refuse(path, "it is not a regular file (a FIFO, socket or device)",
                         f"move it out of .praxis-os (mv {path} ~/)")
        parent = path.parent  # the nearest existing directory (a file there becomes one)
        while not parent.is_dir() and parent != install.root:
            parent = parent.parent
        if not os.access(parent, os.W_OK | os.X_OK):
            raise refuse(path, f"this user cannot write the directory {parent}",
                         f"give it back to the install's owner (sudo chown -R $(id -un) {parent})")
    if plan.server.changed and install.server_dir.is_dir():
        for root, _dirs, files in os.walk(install.server_dir):
            if not os.access(root, os.W_OK | os.X_OK):
                raise refuse(Path(root), f"this user cannot change {root} (its owner or mode), so "
                             "the old mcp_server/ could not be replaced or restored",
                             "give the tree back to the install's owner (sudo chown -R "
                             f"$(id -un) {install.server_dir})")
            for name in files:
                mode = os.lstat(os.path.join(root, name)).st_mode
                if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                    full = Path(root) / name
                    raise refuse(full, "it is not a regular file (a FIFO, socket or device) in "
                                 "mcp_server/, which the upgrade replaces whole",
                                 f"move it out of .praxis-os (mv {full} ~/)")


def source_tools(source: Source) -> set[str]:
    """The tools the source's server declares (a static scan of its ``.py`` files)."""
    return tools_declared(f.raw() for t, f in source.server_files.items() if t.endswith(".py"))


def check_downgrade(source: Source, installed: str | None, allow: bool) -> str | None:
    """Refuse a source older than the installed commit; returns a note, if any."""
    if not installed:
        return None
    rel = source.relation(installed)
    if rel == Relation.UNKNOWN:
        return (f"the installed commit {installed[:10]} is not in the source's history; "
                "cannot tell whether this is an upgrade or a downgrade")
    if rel != Relation.NEWER:
        return None
    if not allow:
        raise PreflightError(
            f"the source ({source.short}) is older than the installed commit ({installed[:10]})",
            "this would be a downgrade",
            "check out a newer commit in the source, or pass --allow-downgrade if you mean it",
        )
    return f"downgrade from {installed[:10]} to {source.short} (--allow-downgrade)"


def check_git(install: Install, plan: Plan) -> str:
    """``--git-commit``: the project is a git repository tracking the install, and it is ready
    for a commit of exactly this upgrade's files (nothing staged, no other edits to them), or
    the run is refused before any change (exit 3). Returns the repository's root."""
    repo = gitcommit.repo_of(install.project)
    if repo is None:
        raise PreflightError(f"--git-commit: {install.project} is not in a git repository",
                             "there is nothing to commit the upgrade to",
                             "run without --git-commit, or put the project under git first")
    if plan.migrate_from:
        raise PreflightError(
            f"--git-commit: this upgrade moves {plan.migrate_from}/ to {PRAXIS_DIR}/",
            "the move touches every file of the install, yours included, and is not one "
            "upgrade's change set", f"upgrade once without --git-commit and commit the move "
            f"yourself (git add -A {plan.migrate_from} {PRAXIS_DIR}); later upgrades can use it")
    if not gitcommit.tracks_install(repo, install.root):
        raise PreflightError(
            f"--git-commit: git does not track {install.root.name}/ in {repo}",
            "only an install that is committed can get the upgrade's commit",
            f"commit it first (git add {install.root.name} && git commit), or run without "
            "--git-commit")
    gitcommit.check_ready(repo, plan.changed_paths(install))
    return str(repo)


def ask_conflicts(plan: Plan, install: Install, source: Source, reader: BlobReader,
                  prompt: Callable[[str], str] = input, say: Callable[[str], None] = print) -> None:
    """``--on-conflict ask``: show a diff per conflict and take the user's decision."""
    choices = "[k]eep mine / [t]ake new / [m]erge / [s]kip / [a]bort"
    for i, a in enumerate(plan.conflicts, 1):
        local = install.path(a.target).read_bytes()
        new = source.files[a.target].raw()
        say(f"\nconflict {i} of {len(plan.conflicts)}: {a.target} (changed by you and upstream)")
        say(unified_diff(local, new, a.target))
        while True:
            ans = prompt(f"{a.target}: {choices}? ").strip().lower()[:1]
            if ans in ("k", "t", "m", "s", "a"):
                break
        if ans == "a":
            plan.decisions.append({"path": a.target, "decision": "abort"})
            raise ConflictAbort(f"aborted at {a.target}", "you chose abort",
                                "nothing was changed; rerun when ready")
        if ans == "k":
            a.resolution = Resolution.MINE
        elif ans == "t":
            a.resolution = Resolution.THEIRS
        elif ans == "s":
            a.resolution = Resolution.KEEP
        else:
            decide_merge(a, install, source, reader, None)
            if a.resolution == Resolution.MERGE_CONFLICT:
                say(f"  the merge has conflicts: yours is kept, {a.merge_side} gets the "
                    f"markers and {a.new_side} upstream's version")
        plan.decisions.append({"path": a.target, "decision": {"k": "keep mine", "t": "take new",
                               "s": "skip", "m": "merge"}[ans], "resolution": a.resolution or ""})


def run_preflight(install: Install, opts: Options, interactive: bool = False,
                  ask: Callable[[str], str] = input, say: Callable[[str], None] = print,
                  before_questions: Callable[[Plan], None] | None = None) -> PreflightResult:
    """Every check, and the plan. Reads only; a refusal raises and changes nothing.

    With ``--on-conflict ask`` on a terminal, ``before_questions`` is shown the whole plan
    first (the questions are about it), then each conflict is asked through ``ask``."""
    check_target(install)
    on_conflict = opts.on_conflict
    if opts.backup_to:  # a destination we cannot use is bad input, refused before anything
        offsite.parse_destination(opts.backup_to)
    source = open_source(opts.source, ref=opts.ref)
    manifest, _note = read_installed_manifest(install.installed_manifest)
    hist = source.history()
    reader = source.blob_reader()
    try:
        base = load_base(install, manifest, hist, reader)
        downgrade = check_downgrade(source, base.commit, opts.allow_downgrade)
        running = None
        if not opts.no_restart:
            servers = find_running_servers(install)
            if servers:
                running = (servers[0].pid, servers[0].transport)
        try:
            tools = source_tools(source)
        except Exception:
            tools = set()
        try:
            plan = plan_upgrade(install, source, base, on_conflict, opts.deps, running, reader, hist,
                                tools, opts.index)
        except SymlinkInPath as exc:
            raise PreflightError(
                f"{exc.path} is a symlink inside the install",
                "the upgrade would write through it (often into a source checkout)",
                "replace it with a real copy (cp -rL) or remove it, then rerun",
            ) from None
        plan.source_ref = source.ref
        if downgrade:
            plan.notes.append(downgrade)
        if not procs.available() and not opts.no_restart:
            plan.notes.append("processes cannot be inspected on this machine (no psutil, no "
                              "/proc): a running server is not stopped; reload it yourself "
                              "after the upgrade")
        plan.notes.extend(source.notes)
        if plan.conflicts and on_conflict == "abort":
            names = ", ".join(a.target for a in plan.conflicts[:10])
            raise ConflictAbort(
                f"{len(plan.conflicts)} file(s) changed by you were also changed upstream",
                names + (" ..." if len(plan.conflicts) > 10 else ""),
                "nothing was changed. Rerun with --on-conflict merge (the default), keep "
                "(keeps yours, writes NAME.praxis-new) or theirs (takes upstream; yours stays "
                "in the backup)",
            )
        if plan.conflicts and on_conflict == "ask":
            if not interactive:
                raise ConflictAbort(
                    f"--on-conflict ask needs a terminal, and there are {len(plan.conflicts)} "
                    "conflict(s)",
                    "without a terminal (or with --yes), ask behaves as abort: "
                    + ", ".join(a.target for a in plan.conflicts[:10]),
                    "nothing was changed. Run it in a terminal without --yes, or choose "
                    "--on-conflict merge|keep|theirs",
                )
            if before_questions is not None:
                before_questions(plan)
            ask_conflicts(plan, install, source, reader, ask, say)
    finally:
        reader.close()
    check_bookkeeping(install)
    check_writable(install, plan)
    if opts.git_commit:
        check_git(install, plan)
    staged = sum(f.size for f in source.server_files.values()) if plan.server.changed else 0
    written = sum(source.files[a.target].size for a in plan.actions
                  if a.action in ("add", "update", "conflict") and a.target in source.files)
    # the backup, the staged server, the new files, and the room held for a rollback
    # (backup_store.reserve_size: the server tree again, the largest file, 1 MB)
    rebuilt = tree_size(install.root / index.INDEX) if plan.index_action == "rebuild" else 0
    need = int((estimate_size(install, plan) + 2 * staged + written + rebuilt) * 1.1) + (4 << 20)
    free = shutil.disk_usage(install.root).free
    if free < need:
        raise PreflightError(
            f"not enough free space on the filesystem of {install.root}",
            f"{free / 1e6:.1f} MB free, {need / 1e6:.1f} MB needed for the backup and staging",
            "free some space (old backups live in .praxis-os/.backups/), then rerun",
        )
    return PreflightResult(source, base, plan, need, free)


def dry_run(run: Run) -> None:
    """``--dry-run``: the plan the real run would execute (or resume), and nothing written."""
    inst = run.install
    check_target(inst)
    if inst.rollback_journal.exists():
        run.say("dry run: an `invoke rollback` was interrupted; the upgrade would first finish it "
                "and then stop (run `invoke rollback` to finish it yourself)")
        run.result.update(outcome="dry-run", rollback_interrupted=True)
        return
    unfinished = unfinished_session(inst)
    if unfinished is not None and unfinished.plan is not None:
        nxt = unfinished.next_phase()
        run.say(f"dry run: an unfinished session {unfinished.id} would resume at phase {nxt} "
                f"({PHASES[nxt]}); its plan:")
        pv = planview.view(Plan.from_json(unfinished.plan), inst, header="Plan")
        run.ui.plan(pv)
        run.result.update(outcome="dry-run", resumes={"session": unfinished.id, "phase": nxt},
                          plan=pv.to_json())
        return
    o = run.opts
    # a dry run never asks: "ask" is planned as "keep" (what an unanswered question leaves)
    pre = run_preflight(inst, o.replace(on_conflict="keep") if o.on_conflict == "ask" else o)
    pv = planview.view(pre.plan, inst, header="Dry run (nothing written)")
    run.ui.plan(pv)
    run.result.update(outcome="dry-run", plan=pv.to_json(), space_needed=pre.space_needed,
                      space_free=pre.space_free)
    if probe_lock(inst.lock_file):
        run.say(f"  lock: another upgrade is running ({describe_owner(inst.lock_owner_file)})")
    run.say(f"  disk: {pre.space_needed / 1e6:.1f} MB needed, {pre.space_free / 1e6:.1f} MB free")
