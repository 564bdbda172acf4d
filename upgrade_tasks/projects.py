"""Many projects on this machine at once: ``--projects GLOB|LIST|@FILE`` and ``discover DIR``.

Each project is upgraded (or checked, rolled back, shown) by its own process, the same
``praxis-upgrade`` program with ``--project P --json`` (forked from a server that imported it
once, :func:`_launcher`): its own lock, checkpoint, backup and reports, and a failure (or a
crash) of one never touches another. The rollout rules are the
fleet's (:func:`upgrade_tasks.fleet.run_rollout`): ``--canary``, ``--parallel``,
``--max-fail``, printed up front; a summary table, ``report.json`` and ``failed.txt`` (which
``--projects @failed.txt`` takes back) in ``--report-dir``.

Before anything runs, the list is made safe to run in parallel:

* the same project reached twice (a symlink, ``..``, a trailing slash) is handled once;
* projects whose ``.praxis-os/venv`` is the same environment (one venv shared by several
  projects), or whose running server is the same process, are chained: run one after the
  other in one worker, never at the same time (the dependency install and the server stop
  of one would otherwise pull the environment from under the other).
"""

from __future__ import annotations

import atexit
import glob
import importlib
import json
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from pathlib import Path
from typing import Any

from . import options, signals
from .check import local_checkout, newer_or_same, source_commit
from .errors import EXIT_UPGRADE_AVAILABLE, Interrupted, UsageError
from .fleet import Console, FleetResult, HostResult, Redactor, read_list, run_rollout
from .layout import LEGACY_DIR, PRAXIS_DIR, find_install
from .options import Options
from .server_process import find_running_servers
from .status import inspect

#: Directories never searched by ``discover`` (big, and never holding an install of their own).
SKIP_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "venv", ".venv", "__pycache__",
                       ".tox", ".nox", ".mypy_cache", ".cache", "site-packages", PRAXIS_DIR,
                       LEGACY_DIR})
#: The program each project's process runs (its ``main()`` reads ``sys.argv``).
ENTRY = "upgrade_tasks.program"
#: Options a project's own run must not get (they describe the rollout, not the project).
ROLLOUT_ONLY = frozenset({"projects", "hosts", "limit", "parallel", "canary", "max_fail",
                          "report_dir", "json", "project"})


def expand(spec: str, cwd: Path | None = None) -> list[Path]:
    """The projects ``--projects`` names: globs (directories holding an install), comma lists,
    ``@FILE`` (one per line, ``#`` comments; a relative line is relative to the file's own
    directory, so a list means the same from cron or another directory). Absolute paths (the
    reports and ``failed.txt`` must work from anywhere); order kept; nothing deduplicated yet."""
    out: list[Path] = []
    base = cwd or Path.cwd()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if part.startswith("@"):
            path = Path(part[1:]).expanduser()
            where = (base / path).parent
            out += [where / Path(e).expanduser() for e in read_list(
                path, "project list", "pass --projects @FILE with one project directory per line")]
        elif any(c in part for c in "*?["):
            found = sorted(base / p for p in glob.glob(str(Path(part).expanduser()), recursive=True))
            out += [p for p in found if (p / PRAXIS_DIR).is_dir() or (p / LEGACY_DIR).is_dir()]
        else:
            out.append(base / Path(part).expanduser())
    if not out:
        raise UsageError(f"--projects {spec} names no project",
                         "no directory matched that holds .praxis-os/ (or .agent-os/)",
                         "check the pattern, or list the projects: --projects ~/a,~/b or @FILE")
    return [Path(os.path.abspath(p)) for p in out]


@dataclass
class Unit:
    """Projects run one after the other by one worker (usually one project)."""

    projects: list[Path]
    why: str = ""

    @property
    def label(self) -> str:
        return ",".join(str(p) for p in self.projects)


def arrange(paths: list[Path]) -> tuple[list[Unit], list[str]]:
    """Deduplicate (the same directory twice) and chain projects that share a venv or a
    running server; returns the units in order and a note for each thing done."""
    notes: list[str] = []
    groups: dict[Path, list[Path]] = {}
    for p in paths:
        groups.setdefault(Path(os.path.realpath(p)), []).append(p)
    unique: list[Path] = []
    for real, names in groups.items():
        # the name that is the directory itself, rather than a link to it
        keep = next((n for n in names if Path(os.path.abspath(n)) == real), names[0])
        unique.append(keep)
        notes += [f"{n} is {keep} (the same directory): handled once"
                  for n in dict.fromkeys(names) if n != keep]
    files = [p for p in unique if p.exists() and not p.is_dir()]
    if files:
        raise UsageError(f"--projects names {files[0]}, which is a file",
                         "a project is the directory holding .praxis-os/ (or .agent-os/)",
                         "name the project's directory instead")
    missing = [p for p in unique if not p.is_dir()]
    if missing:
        raise UsageError(f"--projects names {len(missing)} director{'y' if len(missing) == 1 else 'ies'} "
                         "that do not exist", ", ".join(str(p) for p in missing[:5]),
                         "fix the list (failed.txt lists directories that existed)")
    units: list[Unit] = []
    by_key: dict[str, Unit] = {}
    for p in unique:
        keys = _shared_keys(p)
        unit = next((by_key[k] for k in keys if k in by_key), None)
        if unit is None:
            unit = Unit([p])
            units.append(unit)
        else:
            unit.projects.append(p)
            unit.why = "they share " + ("one venv" if any(k.startswith("venv:") for k in keys
                                                          if by_key.get(k) is unit)
                                        else "one running server")
            notes.append(f"{p} shares {unit.why[len('they share '):]} with {unit.projects[0]}: "
                         "they run one after the other")
        for k in keys:
            by_key.setdefault(k, unit)
    return units, notes


def _shared_keys(project: Path) -> list[str]:
    """What a project may share with another: its venv (resolved) and its running servers."""
    keys = []
    for name in (PRAXIS_DIR, LEGACY_DIR):
        venv = project / name / "venv"
        if venv.exists():
            keys.append("venv:" + os.path.realpath(venv))
            break
    try:
        keys += [f"pid:{s.pid}" for s in find_running_servers(find_install(project))]
    except Exception:  # noqa: BLE001 - an install that cannot be inspected shares nothing known
        pass
    return keys


def child_argv(opts: Options, command: str) -> tuple[list[str], dict[str, str]]:
    """The flags of one project's own run (what was given, but the rollout's own), and the
    config-only options as ``INVOKE_UPGRADE_*`` variables."""
    argv: list[str] = []
    env: dict[str, str] = {}
    taken = {f.name for f in options.options_for(command)}
    for f in fields(Options):
        if f.name in ROLLOUT_ONLY:
            continue
        value = getattr(opts, f.name)
        if value == f.default:
            continue
        text = ",".join(value) if isinstance(value, tuple) else str(value)
        if f.name not in taken:
            if not f.metadata["spec"].tasks:  # config only (keep_backups, probe_timeout, ...)
                env[f"INVOKE_UPGRADE_{f.name.upper()}"] = text
            continue  # (else another command's flag: not this one's business)
        if f.default is False:
            argv.append(options.flag(f.name))
        else:
            argv += [options.flag(f.name), text]
    if command == "upgrade" and "--yes" not in argv:
        argv.append("--yes")  # each project's run is not interactive: the rollout asked once
    return argv, env


def _child(argv: list[str], env: dict[str, str], out_path: str, err: Connection) -> None:
    """One project's run, in a process forked from the preloaded server: the same program the
    command line runs, its JSON document to ``out_path``, its lines (stderr) into ``err``."""
    os.setpgrp()  # signals come from the rollout (Workers), once, not from the terminal too
    signals.install_handlers()  # (the forkserver may have inherited SIGINT as ignored)
    os.environ.update(env)
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.close(fd)
    os.dup2(err.fileno(), 2)
    err.close()
    sys.argv = argv
    try:
        # by name, as ``python -m upgrade_tasks`` would: the program is the layer above this one
        importlib.import_module(ENTRY).main()
    finally:
        # a multiprocessing child ends with os._exit: run what a normal exit runs (the
        # removal of a temporary --ref clone, checkout.py)
        atexit._run_exitfuncs()


def _launcher() -> ForkServerContext:
    """Processes forked from a server that has imported the program once: each project still
    runs in a process of its own (its own lock, memory, exit), without paying ~0.3 s of
    imports each time (issue 15's benchmark). ``forkserver``: its server is single-threaded,
    so forking it is safe while this process runs the rollout's threads."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([ENTRY])
    return ctx


def run_project(project: Path, command: str, opts: Options, console: Console,
                scratch: Path, workers: Workers | None = None) -> HostResult:
    """One project's run in its own process; its lines go to the console, its JSON is read."""
    label = str(project)
    res = console.rows.setdefault(label, HostResult(label))
    res.result = "running"
    argv, extra_env = child_argv(opts, command)
    argv = [sys.argv[0] if sys.argv else "praxis-upgrade", command, "--project", str(project),
            *argv, "--json"]
    out_path = scratch / f"{abs(hash(label)):x}-{threading.get_ident():x}.json"
    ctx = _launcher()
    reader, writer = ctx.Pipe(duplex=False)
    t0 = time.monotonic()
    proc = ctx.Process(target=_child, args=(argv, extra_env, str(out_path), writer),
                       name=f"praxis-upgrade {label}")
    proc.start()
    writer.close()
    if workers is not None and proc.pid is not None:
        workers.started(proc.pid)
    with os.fdopen(os.dup(reader.fileno()), "r", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            console.line(label, line)
    reader.close()
    proc.join()
    if workers is not None and proc.pid is not None:
        workers.ended(proc.pid)
    code = proc.exitcode if proc.exitcode is not None else 1
    doc: dict[str, Any] = {}
    try:
        text = out_path.read_text(encoding="utf-8", errors="replace")
        doc = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        doc = {}
    finally:
        out_path.unlink(missing_ok=True)
    _fill(res, doc)
    res.exit_code = code
    res.duration_s = round(time.monotonic() - t0, 2)
    ok = code == 0 or (command == "check" and code == EXIT_UPGRADE_AVAILABLE)
    if command == "check" and code == EXIT_UPGRADE_AVAILABLE:
        res.message = "upgrade available"
    elif code < 0:
        res.message = f"its process was killed by signal {-code}" + (
            f"; last line: {res.last_line}" if res.last_line else "")
    elif not ok:
        err = doc.get("error") or {}
        res.message = (str(err.get("what", "")) + (f" ({err['why']})" if err.get("why") else "")
                       ) or res.last_line or f"exit {code}"
    res.result = "ok" if ok else "failed"
    return res


def _fill(res: HostResult, doc: dict[str, Any]) -> None:
    result = doc.get("result") or {}
    rep = result.get("report") or {}
    st = result.get("status") or result
    if rep:
        res.old_commit = rep.get("source_commit_before")
        res.new_commit = rep.get("source_commit_after")
        res.backup_id = rep.get("backup_id")
        done = [p["name"] for p in rep.get("phases", []) if p.get("status") == "ok"]
        res.phase_reached = done[-1] if done else ""
        if rep.get("status") not in (None, "completed"):
            res.phase_reached = f"{res.phase_reached} ({rep['status']})".strip()
    elif "available_commit" in result:
        res.old_commit, res.new_commit = result.get("installed_commit"), result.get("available_commit")
    elif "installed_commit" in st:
        res.new_commit = st.get("installed_commit")
        sess = st.get("session") or {}
        res.backup_id = sess.get("backup_id")
        res.phase_reached = str(st.get("state", ""))[:14]
    if result.get("outcome") == "up-to-date":
        res.message = "already up to date"


def rollout(command: str, opts: Options,
            confirm: Callable[[str], bool] | None = None) -> FleetResult:
    """``COMMAND --projects SPEC``: every project, by the fleet's rollout rules. ``confirm``
    (an upgrade on a terminal without ``--yes``) is asked once, with the list, before any."""
    if command == "upgrade" and opts.on_conflict == "ask":
        raise UsageError("--on-conflict ask cannot be used with --projects",
                         "the projects run without a terminal, several at a time",
                         "choose --on-conflict merge, keep or theirs, or upgrade them one by one")
    units, notes = arrange(expand(opts.projects))
    console = Console(Redactor([]), stream=sys.stderr if opts.json else None)
    for n in notes:
        console.say(f"note: {n}")
    by_label = {u.label: u for u in units}
    if confirm is not None:
        listing = "\n".join(f"  {u.label}" for u in units)
        if not confirm(f"{command} {sum(len(u.projects) for u in units)} project(s):\n{listing}\n"
                       "Proceed? [y/N] "):
            raise Interrupted("cancelled; nothing was changed", "", "")

    workers = Workers()
    with tempfile.TemporaryDirectory(prefix="praxis-projects-") as tmp:
        def runner(label: str) -> list[HostResult]:
            return [workers.run(p, command, opts, console, Path(tmp)) for p in by_label[label].projects]

        fr = run_rollout(command, [u.label for u in units], runner, opts, console, "project", [],
                         None, members=lambda label: [str(p) for p in by_label[label].projects],
                         on_interrupt=workers.interrupt)
    fr.notes = notes
    return fr


class Workers:
    """The projects' processes of one rollout: after an interrupt nothing new starts, and each
    running project gets the signal once (its run rolls back, as with Ctrl-C on one project).
    The children are in process groups of their own, so a Ctrl-C at the terminal reaches
    them only this way, once, never twice."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._live: set[int] = set()

    def run(self, project: Path, command: str, opts: Options, console: Console,
            scratch: Path) -> HostResult:
        if self.stopping.is_set():
            res = console.rows.setdefault(str(project), HostResult(str(project)))
            res.result, res.message = "skipped", "not started: interrupted"
            return res
        return run_project(project, command, opts, console, scratch, self)

    def started(self, pid: int) -> None:
        with self._lock:
            self._live.add(pid)
            stop = self.stopping.is_set()
        if stop:  # started as the interrupt came
            _signal(pid)

    def ended(self, pid: int) -> None:
        with self._lock:
            self._live.discard(pid)

    def interrupt(self) -> None:
        with self._lock:
            self.stopping.set()
            live = list(self._live)
        for pid in live:
            _signal(pid)


def _signal(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        pass


# -- discover ----------------------------------------------------------------------------------
@dataclass
class Found:
    project: Path
    install: str  # .praxis-os or .agent-os
    installed_commit: str | None
    state: str
    behind: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {"project": str(self.project), "install": self.install,
                "installed_commit": self.installed_commit, "state": self.state,
                "behind": self.behind}


def find_installs(root: Path) -> Iterator[Path]:
    """Every project below ``root`` holding an install, without following links or entering
    the directories in :data:`SKIP_DIRS` (nor an install itself)."""
    for dirpath, dirnames, _files in os.walk(root, followlinks=False):
        if PRAXIS_DIR in dirnames or LEGACY_DIR in dirnames:
            yield Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)


def discover(opts: Options) -> list[Found]:
    """``discover DIR``: each install below DIR, its installed commit, and (with ``--source``)
    whether it is behind the source's commit."""
    root = Path(opts.directory or ".").expanduser()
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", "discover searches a directory tree",
                         "pass the directory holding your projects: discover ~/code")
    head = source_commit(opts.source, opts.ref) if opts.source else None
    history = local_checkout(opts.source) if opts.source else None
    out = []
    for project in find_installs(root):
        try:
            st = inspect(opts.replace(project=project))
            commit, state = st.installed_commit, st.state
        except Exception as exc:  # noqa: BLE001 - one unreadable install must not hide the rest
            commit, state = None, f"unreadable: {getattr(exc, 'what', exc)}"
        inst = PRAXIS_DIR if (project / PRAXIS_DIR).is_dir() else LEGACY_DIR
        # behind: what ``check`` calls "upgrade available" (an install newer than the source is not)
        behind = None if head is None or commit is None else not newer_or_same(history, commit, head)
        out.append(Found(project, inst, commit, state, behind))
    return out


def discover_text(found: list[Found], root: str) -> str:
    if not found:
        return f"no prAxIs OS install below {root}"
    width = max(len(str(f.project)) for f in found)
    lines = [f"{'project':<{width}}  {'install':<10} {'installed':<10}  {'behind':<7} state"]
    for f in found:
        behind = "-" if f.behind is None else ("yes" if f.behind else "no")
        commit = (f.installed_commit or "unknown")[:10]
        lines.append(f"{str(f.project):<{width}}  {f.install:<10} {commit:<10}  {behind:<7} {f.state}")
    n_behind = sum(1 for f in found if f.behind)
    lines.append(f"{len(found)} install(s)" + (f", {n_behind} behind the source" if any(
        f.behind is not None for f in found) else ""))
    return "\n".join(lines)
