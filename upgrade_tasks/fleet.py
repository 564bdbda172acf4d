"""Remote hosts over SSH (Fabric): the same upgrade on one host or a fleet.

The engine runs *on each host*: the controller uploads this package as a
self-contained zipapp and a snapshot of the source commit (hosts need python3 >=
3.9 and sshd, no network, no access to the source repository), starts the run
detached from the SSH session, and follows its log, prefixing each line with
the host. The lock, checkpoint, backup and rollback are the host's own, written
by code running there: a dropped connection leaves the run going to a
consistent end, and rerunning the same command reattaches to it or resumes.

Rollout: ``--canary K`` hosts first (any failure stops the rollout), then
batches of ``--parallel N``; the failure budget ``--max-fail PCT`` stops the
rollout before its next batch once more than PCT% of all hosts have failed.
Host keys are checked against known_hosts (unknown keys refused unless
``--accept-new-host-keys``); every value put in a remote command is quoted; no
secret is ever put in a command line, a log or a report.
"""

from __future__ import annotations

import errno
import getpass
import json
import math
import os
import posixpath
import re
import shlex
import socket
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import inventory, options, signals
from .checkout import open_checkout
from .checkpoint import now_iso
from .errors import EXIT_INTERRUPTED, EXIT_SOME_FAILED, EXIT_STOPPED, EXIT_UPGRADE_AVAILABLE, UsageError
from .options import Options
from .snapshot_pack import make_snapshot
from .zipapp import build_zipapp

PHASE_RE = re.compile(r"^\[(\d)/5\] (\w+)")


# -- hosts and the budget ------------------------------------------------------------
def split_host(item: str) -> tuple[str, str | None]:
    """``user@host:port`` or ``alias``, optionally ``=/abs/project`` (a per-host project)."""
    host, sep, project = item.partition("=")
    if sep and not project.startswith("/"):
        raise UsageError(f"per-host project {project!r} of {host} is not absolute",
                         "remote paths must be absolute", f"write {host}=/abs/path/to/project")
    return host.strip(), (project.strip() if sep else None)


def read_list(path: Path, what: str, hint: str) -> list[str]:
    """The entries of an ``@FILE`` list: one per line, ``#`` comments and blank lines left out."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}", str(exc), hint) from exc
    return [e for e in (ln.split("#", 1)[0].strip() for ln in lines) if e]


def parse_hosts(spec: str, limit: str = "", sudo: bool = False) -> list[str]:
    """``h1,h2`` or ``@FILE`` (one host per line, ``#`` comments); duplicates removed.

    An entry may end with ``=/abs/project`` to name that host's project directory. A FILE that
    is an Ansible inventory (INI or YAML: groups, ``ansible_host``, ``ansible_user``,
    ``ansible_port``, ``praxis_project``) is read as one (:mod:`upgrade_tasks.inventory`), and
    ``limit`` (``--limit``) selects hosts and groups in it as Ansible's ``--limit`` does.
    """
    items: list[str] = []
    inventories = 0
    for part in spec.split(","):
        part = part.strip()
        if part.startswith("@"):
            path = Path(part[1:]).expanduser()
            if inventory.is_inventory(path):
                inventories += 1
                items += inventory.load(path, limit, sudo=sudo)
                continue
            items += read_list(path, "host list", "pass --hosts h1,h2 or @FILE with one host per line")
        else:
            items.append(part)
    if limit and not inventories:
        raise UsageError(f"--limit {limit} needs an inventory",
                         "--hosts names no Ansible inventory (an .ini/.yml file with groups)",
                         "pass --hosts @inventory.ini (or .yml), or leave out --limit")
    out: list[str] = []
    for h in items:
        if h and h not in out:
            out.append(h)
    if not out:
        raise UsageError("no hosts given", "--hosts is empty" + (f" after --limit {limit}" if limit
                                                                   else ""),
                         "pass --hosts h1,h2 or @FILE")
    return out


@dataclass(frozen=True)
class Budget:
    """The failure budget of a rollout: how many of total hosts (or projects) may fail (pct
    percent, rounded down)."""

    total: int
    pct: float
    noun: str = "host"

    @property
    def allowed(self) -> int:
        """Failures tolerated: floor(total * pct / 100); more than that stops the rollout."""
        return math.floor(self.total * self.pct / 100 + 1e-9)

    def exceeded(self, failed: int) -> bool:
        return failed > self.allowed

    def sentence(self) -> str:
        return (f"failure budget: the rollout stops before its next batch once more than "
                f"{self.pct:g}% of {self.total} {self.noun}s have failed, i.e. more than "
                f"{self.allowed} {self.noun}(s)")


def plan_batches(hosts: list[str], canary: int, parallel: int) -> list[tuple[str, list[str]]]:
    """``[("canary", [...]), ("batch 1", [...]), ...]``."""
    out: list[tuple[str, list[str]]] = []
    k = min(canary, len(hosts))
    if k:
        out.append(("canary", hosts[:k]))
    rest = hosts[k:]
    for i in range(0, len(rest), parallel):
        out.append((f"batch {i // parallel + 1}", rest[i:i + parallel]))
    return out


# -- output -------------------------------------------------------------------------------
class Redactor:
    """Replaces secrets (the sudo password) in everything the controller prints or writes."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [s for s in secrets if s]

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "****")
        return text


@dataclass
class HostResult:
    """One host's outcome, for the live table, the summary and report.json."""

    host: str
    result: str = "pending"  # ok | failed | unreachable | skipped
    exit_code: int | None = None
    phase_reached: str = ""
    old_commit: str | None = None
    new_commit: str | None = None
    duration_s: float = 0.0
    backup_id: str | None = None
    message: str = ""
    last_line: str = ""
    tail: list[str] = field(default_factory=list)


class Console:
    """Plain lines prefixed by host, or a live per-host table on a terminal."""

    def __init__(self, redact: Redactor, live: bool | None = None, stream: Any = None) -> None:
        self.redact = redact
        #: stdout; stderr with --json (stdout then carries the one JSON document)
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.lock = threading.Lock()
        self.rows: dict[str, HostResult] = {}
        #: what a row is: "host" or "project" (set by the rollout)
        self.noun = "host"
        self._drawn = 0

    def say(self, text: str) -> None:
        with self.lock:
            self._clear()
            print(self.redact(text), file=self.stream, flush=True)
            self._draw()

    def finished(self, r: HostResult) -> None:
        """A host is done: its row (and the bar) redrawn."""
        with self.lock:
            self.rows[r.host] = r
            self._clear()
            self._draw()

    def line(self, host: str, text: str) -> None:
        text = self.redact(text.rstrip("\n"))
        with self.lock:
            row = self.rows.get(host)
            if row is not None:
                row.tail = (row.tail + [text])[-30:]
                if not text.startswith("PRAXIS-STATUS "):
                    row.last_line = text
                m = PHASE_RE.match(text)
                if m:
                    row.phase_reached = f"{m.group(1)} {m.group(2)}"
            if text.startswith("PRAXIS-STATUS "):
                return  # machine-readable, for the report
            if self.live:
                self._clear()
                self._draw()
            else:
                print(f"[{host}] {text}", file=self.stream, flush=True)

    def _clear(self) -> None:
        if self.live and self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self) -> None:
        if not self.live or not self.rows:
            return
        done = sum(1 for r in self.rows.values() if r.result not in ("pending", "running"))
        total = len(self.rows)
        filled = round(30 * done / total)
        lines = [f"{self.noun}s [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} done",
                 f"{self.noun:<28} {'state':<11} {'phase':<12} last line"]
        for r in self.rows.values():
            lines.append(f"{r.host[:28]:<28} {r.result:<11} {r.phase_reached[:12]:<12} "
                         f"{r.last_line[:60]}")
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self._drawn = len(lines)


class _HostStream:
    """A file-like sink for Fabric's out_stream: splits lines, hands them to the console."""

    def __init__(self, console: Console, host: str) -> None:
        self.console, self.host, self.buf = console, host, ""

    def write(self, s: str) -> int:
        self.buf += s
        while "\n" in self.buf:
            line, self.buf = self.buf.split("\n", 1)
            self.console.line(self.host, line)
        return len(s)

    def flush(self) -> None:
        pass


# -- one host -------------------------------------------------------------------------------------
@dataclass
class Prepared:
    """What the controller ships: the zipapp and the source snapshot (built once per run)."""

    pyz: Path
    snapshot: Path | None
    commit: str | None


def controller_dir() -> Path:
    """This user's cache of zipapps and snapshots: ``$TMPDIR/praxis-upgrade-controller-<uid>``,
    mode 0700 and owned by us (what it holds runs on every host: nobody else may plant it)."""
    work = Path(tempfile.gettempdir()) / f"praxis-upgrade-controller-{os.getuid()}"
    try:
        work.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(work)
    except OSError as exc:
        raise UsageError(f"cannot create the controller's work dir {work}", str(exc),
                         "set TMPDIR to a directory you can write") from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise UsageError(f"the controller's work dir {work} is not a private directory of yours",
                         "the zipapp and snapshots in it are run on every host",
                         f"remove it (rm -rf {work}) and rerun, or set TMPDIR elsewhere")
    return work


def prepare(opts: Options, need_source: bool) -> Prepared:
    work = controller_dir()
    pyz = build_zipapp(work)
    if not need_source:
        return Prepared(pyz, None, None)
    src = open_checkout(opts.source, ref=opts.ref)
    return Prepared(pyz, make_snapshot(src, work / "snapshots"), src.commit)


def connect(host: str, opts: Options) -> Any:
    """A Fabric Connection whose host key is checked against known_hosts."""
    from fabric import Config, Connection

    cfg_kwargs: dict[str, Any] = {"overrides": {"run": {"in_stream": False}}}
    if opts.ssh_config:
        cfg_kwargs["runtime_ssh_path"] = opts.ssh_config
    config = Config(**cfg_kwargs)
    connect_kwargs: dict[str, Any] = {}
    if opts.identity:
        connect_kwargs.update(key_filename=opts.identity, look_for_keys=False, allow_agent=False)
    c = Connection(host, config=config, connect_timeout=10, connect_kwargs=connect_kwargs)
    apply_host_key_policy(c, opts)
    return c


def known_hosts_path(c: Any, opts: Options) -> Path:
    if opts.known_hosts:
        return Path(opts.known_hosts).expanduser()
    from_cfg = c.ssh_config.get("userknownhostsfile") if hasattr(c, "ssh_config") else None
    if from_cfg:
        return Path(str(from_cfg).split()[0]).expanduser()
    return Path("~/.ssh/known_hosts").expanduser()


def apply_host_key_policy(c: Any, opts: Options) -> None:
    """Fabric accepts any host key by default; we check known_hosts and refuse unknown keys."""
    import paramiko

    path = known_hosts_path(c, opts)
    c.client._host_keys_filename = None
    if path.exists():
        c.client.load_host_keys(str(path))
    if opts.accept_new_host_keys:
        c.client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    else:
        c.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    c._praxis_known_hosts = path


def _q(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def _forwarded_env() -> str:
    """Test-only fault hooks travel to the host (never secrets)."""
    pairs = [f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
             if k.startswith("PRAXIS_UPGRADE_") or k in ("PRAXIS_MCP_PORT",)]
    return ("env " + " ".join(pairs) + " ") if pairs else ""


def run_on_host(c: Any, command: str, opts: Options, prep: Prepared, console: Console,
                sudo_password: str | None, label: str | None = None) -> HostResult:
    """One host: upload what is missing (zipapp, source snapshot), run the engine there detached from
    the SSH session, follow its log, and read its final status. Every SSH failure becomes a
    HostResult, never an exception."""
    host = label or (c.original_host if hasattr(c, "original_host") else str(c.host))
    res = console.rows.setdefault(host, HostResult(host))
    res.result = "running"
    t0 = time.monotonic()
    if not str(opts.project).startswith("/"):
        raise UsageError("--project must be an absolute path on remote hosts",
                         f"got {opts.project}", "pass --project /abs/path")

    def run(cmd: str, stream: bool = False) -> Any:
        kw: dict[str, Any] = {"hide": True, "warn": True, "in_stream": False, "pty": False}
        if stream:
            out = _HostStream(console, host)
            kw.update(out_stream=out, err_stream=out, hide=False)
        if opts.sudo:
            return c.sudo(cmd, password=sudo_password or "", **kw)
        return c.run(cmd, **kw)

    try:
        names = [prep.pyz.name] + ([f"sources/{prep.snapshot.name}"] if prep.snapshot else [])
        if opts.sudo:  # the files live in the target user's home: a shell round trip as them
            boot = BOOTSTRAP.replace("REMOTE_DIR", repr(opts.remote_dir)).replace(
                "NAMES", repr(names)).replace("HOME_SUBDIR", repr(DEFAULT_REMOTE_DIR))
            r = run("python3 -c " + shlex.quote(boot))
            if r.exited != 0 or not r.stdout.startswith("PRAXIS-BOOT"):
                text = (r.stderr or r.stdout).strip()
                if r.exited == 127 or "not found" in text:
                    res.message = NO_PYTHON
                else:
                    res.message = f"python3 failed on the host: {text[-200:]}"
                return _done(res, "failed", 2, t0)
            _tag, ver, rdir, have = (r.stdout.splitlines()[0].split("\t") + [""])[:4]
            if tuple(int(x) for x in ver.split(".")) < (3, 9):
                res.message = f"python3 on the host is {ver}; the upgrader needs >= 3.9"
                return _done(res, "failed", 2, t0)
            present = set(have.split(",")) if have else set()
        else:  # no shell and no interpreter start: SFTP only (the zipapp checks the version)
            sftp = c.sftp()
            rdir = opts.remote_dir or f"{sftp.normalize('.')}/{DEFAULT_REMOTE_DIR}"
            try:
                for sub in ("runs", "sources"):
                    _sftp_makedirs(sftp, f"{rdir}/{sub}")
                present = {n for n in names if _sftp_exists(sftp, f"{rdir}/{n}")}
            except OSError as exc:
                if exc.errno not in _FS_ERRNOS:
                    raise
                res.message = (f"cannot prepare the remote dir {rdir} on the host: "
                               f"{exc.strerror or exc}; pass --remote-dir with a directory the "
                               "login user can write (default ~/.cache/praxis-upgrade)")
                return _done(res, "failed", 2, t0)
        if not rdir.startswith("/"):
            raise UsageError("--remote-dir must be absolute", rdir, "pass an absolute path")
        pyz_remote = f"{rdir}/{prep.pyz.name}"
        if prep.pyz.name not in present:
            _upload(c.sftp(), run, prep.pyz, pyz_remote, shell_rename=opts.sudo)
        # -S -E: the zipapp is self-contained; no site-packages scan, no PYTHON* variables
        py = f"{_forwarded_env()}python3 -S -E {shlex.quote(pyz_remote)}"
        go = ["--project", str(opts.project)]
        source_zip = None
        if prep.snapshot is not None and prep.commit:
            name = f"sources/{prep.snapshot.name}"
            source_zip = f"{rdir}/{name}"
            if name not in present:
                _upload(c.sftp(), run, prep.snapshot, source_zip, shell_rename=opts.sudo)
        if command == "upgrade" and not opts.dry_run:
            go += ["--detach"]
        go.append(f"{rdir}/runs")
        argv = options.to_argv(opts, command, source=source_zip or "")
        t = run(f"{py} go {_q(go)} -- {_q(argv)}", stream=True)
        code = int(t.exited)
        if code == 127 and not opts.sudo:  # the shell did not find python3
            res.message = NO_PYTHON
            return _done(res, "failed", 2, t0)
        for ln in reversed(res.tail):
            if ln.startswith("PRAXIS-STATUS "):
                _fill_from_status(res, ln[len("PRAXIS-STATUS "):])
                break
        res.tail = [x for x in res.tail if not x.startswith("PRAXIS-STATUS ")]
        if code == -1:  # the channel closed without an exit status: the connection dropped
            res.message = (f"connection to {host} lost during the run. The run continues on the "
                           "host to a consistent end; rerun the same command to reattach or "
                           "resume")
        elif code != 0:
            err = [i for i, ln in enumerate(res.tail) if ln.startswith("error[")]
            res.message = (" ".join(x.strip() for x in res.tail[err[-1]:]) if err
                           else res.last_line or f"exit {code}")
        if command == "check" and code == EXIT_UPGRADE_AVAILABLE:
            res.message = "upgrade available"
            return _done(res, "ok", code, t0)
        return _done(res, "ok" if code == 0 else "failed", code, t0)
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - every SSH failure becomes a host result
        res.message = describe_ssh_error(exc, host, c, opts)
        return _done(res, "unreachable" if _is_connect_error(exc) else "failed", None, t0)


#: Under the login user's home, when --remote-dir is not given.
DEFAULT_REMOTE_DIR = ".cache/praxis-upgrade"
_FS_ERRNOS = (errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR, errno.EROFS, errno.ENOSPC)
NO_PYTHON = ("python3 was not found on the host; it needs python3 >= 3.9 (and sshd), nothing "
             "else: install python3 there and rerun")

#: With --sudo, one round trip as the target user before anything else: python version, the
#: remote dir (created), and which of the content-addressed artifacts are already there.
#: Without --sudo the same is done over SFTP (no shell, no interpreter start on the host).
BOOTSTRAP = """
import os, sys
rdir = REMOTE_DIR or os.path.join(os.path.expanduser('~'), HOME_SUBDIR)
for sub in ('runs', 'sources'):
    os.makedirs(os.path.join(rdir, sub), exist_ok=True)
have = [n for n in NAMES if os.path.isfile(os.path.join(rdir, n))]
print('PRAXIS-BOOT\t%d.%d\t%s\t%s' % (sys.version_info[0], sys.version_info[1], rdir, ','.join(have)))
"""


def _sftp_exists(sftp: Any, path: str) -> bool:
    try:
        sftp.stat(path)
    except FileNotFoundError:
        return False
    return True


def _sftp_makedirs(sftp: Any, path: str) -> None:
    """``mkdir -p`` over SFTP (hosts may share a disk: a concurrent mkdir is fine)."""
    if _sftp_exists(sftp, path):
        return
    parent = path.rsplit("/", 1)[0]
    if parent and parent != path:
        _sftp_makedirs(sftp, parent)
    try:
        sftp.mkdir(path)
    except OSError:
        if not _sftp_exists(sftp, path):
            raise


def _upload(sftp: Any, run: Callable[..., Any], local: Path, remote: str,
            shell_rename: bool) -> None:
    """Upload to a temp name, then an atomic rename (hosts may share a disk): over SFTP
    (OpenSSH's posix-rename), or with ``mv`` through ``run`` (under --sudo, as the target
    user, and on servers without posix-rename)."""
    tmp = f"{remote}.tmp-{os.getpid()}-{threading.get_ident()}"
    sftp.put(str(local), tmp)
    if not shell_rename:
        try:
            sftp.posix_rename(tmp, remote)
            return
        except OSError:
            pass
    run(_q(["mv", "-f", tmp, remote]))


def _fill_from_status(res: HostResult, text: str) -> None:
    try:
        st = json.loads(text.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return
    sess = st.get("session") or {}
    res.old_commit = sess.get("source_commit_before")
    res.new_commit = st.get("installed_commit") or sess.get("source_commit_after")
    res.backup_id = sess.get("backup_id")
    if sess.get("phase_reached") is not None and not res.phase_reached:
        res.phase_reached = str(sess["phase_reached"])
    if sess.get("status") and sess.get("status") != "completed":
        res.phase_reached = f"{res.phase_reached} ({sess['status']})".strip()


def _done(res: HostResult, result: str, code: int | None, t0: float) -> HostResult:
    res.result, res.exit_code, res.duration_s = result, code, round(time.monotonic() - t0, 2)
    return res


def _is_connect_error(exc: BaseException) -> bool:
    import paramiko

    return isinstance(exc, (paramiko.ssh_exception.NoValidConnectionsError, socket.timeout,
                            socket.gaierror, ConnectionRefusedError, paramiko.SSHException,
                            paramiko.AuthenticationException))


def describe_ssh_error(exc: BaseException, host: str, c: Any, opts: Options) -> str:
    import paramiko

    text = str(exc)
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in text:
        kh = getattr(c, "_praxis_known_hosts", "~/.ssh/known_hosts")
        port = getattr(c, "port", 22)
        name = getattr(c, "host", host)
        return (f"host key of {name} is not in {kh}; refused. Check the fingerprint, then trust "
                f"it: ssh-keyscan -p {port} {name} >> {kh} (or pass --accept-new-host-keys)")
    if isinstance(exc, paramiko.AuthenticationException):
        return f"authentication failed for {host}: check --identity or your ssh-agent"
    if isinstance(exc, (paramiko.ssh_exception.NoValidConnectionsError, ConnectionRefusedError,
                        socket.timeout, socket.gaierror)):
        return f"cannot connect to {host}: {text}"
    if isinstance(exc, (EOFError, paramiko.SSHException, OSError)):
        return (f"connection to {host} lost: {text or type(exc).__name__}. The run continues on "
                "the host to a consistent end; rerun the same command to reattach or resume")
    return f"{type(exc).__name__}: {text}"


# -- the fleet -----------------------------------------------------------------------------------------
@dataclass
class FleetResult:
    """The outcome of a rollout: every host's result, why it stopped, the exit code and the reports
    written."""

    command: str
    hosts: list[HostResult] = field(default_factory=list)
    stopped_by: str = ""
    exit_code: int = 0
    report: Path | None = None
    failed_file: Path | None = None
    #: what the rollout is over: "host" or "project"
    noun: str = "host"
    notes: list[str] = field(default_factory=list)
    #: what report.json holds (the ``--json`` document's result too)
    data: dict[str, Any] = field(default_factory=dict)


def sudo_password(opts: Options) -> str | None:
    if not opts.sudo:
        return None
    pw = os.environ.get("PRAXIS_SUDO_PASSWORD")
    if pw is None and sys.stdin is not None and sys.stdin.isatty():
        pw = getpass.getpass("sudo password for the hosts: ")
    return pw


def rollout(command: str, opts: Options, console: Console | None = None) -> FleetResult:
    """The fleet rollout over SSH (see :func:`run_rollout`); with ``--projects``, every listed
    project on every host (``host=/abs/project`` items)."""
    if opts.backup_to:
        raise UsageError("--backup-to cannot be used with --hosts",
                         "each host's backups stay on that host, which has neither your rclone "
                         "configuration nor your SSH keys",
                         "leave out --backup-to (or run the upgrader on the host with it)")
    hosts = parse_hosts(opts.hosts, opts.limit, opts.sudo)
    if opts.projects:
        hosts = host_projects(hosts, opts.projects)
    pw = sudo_password(opts)
    console = console or Console(Redactor([pw or ""]), stream=sys.stderr if opts.json else None)
    prep = prepare(opts, command in ("upgrade", "check"))
    header = [f"source commit {prep.commit[:10]}, zipapp {prep.pyz.name}"] if prep.commit else []
    return run_rollout(command, hosts, lambda h: [_one(h, command, opts, prep, console, pw)], opts,
                       console, "host", header, prep.commit)


def host_projects(hosts: list[str], spec: str) -> list[str]:
    """``--hosts`` x ``--projects``: each host upgrades each listed project (absolute paths on
    the host: a glob cannot be expanded here for another machine)."""
    if any(c in spec for c in "*?["):
        raise UsageError(f"--projects {spec} is a glob, and globs are expanded on this machine",
                         "with --hosts the projects are on the hosts",
                         "list their absolute paths: --projects /srv/a,/srv/b or @FILE")
    if any(split_host(h)[1] for h in hosts):
        raise UsageError("--projects with --hosts entries that name their own project (=/path)",
                         "each host entry would have two projects", "use one or the other")
    paths = []
    for part in spec.split(","):
        part = part.strip()
        if part.startswith("@"):
            paths += read_list(Path(part[1:]).expanduser(), "project list",
                               "pass --projects /abs/a,/abs/b or @FILE")
        elif part:
            paths.append(part)
    paths = [posixpath.normpath(p) for p in paths if p]
    paths = list(dict.fromkeys(paths))  # /srv/a and /srv/a/ are one project
    bad = [p for p in paths if not p.startswith("/")]
    if bad or not paths:
        raise UsageError("--projects with --hosts needs absolute paths on the hosts",
                         f"got {', '.join(bad) or 'none'}", "pass --projects /srv/a,/srv/b")
    return [f"{h}={p}" for h in hosts for p in paths]


def run_rollout(command: str, items: list[str], runner: Callable[[str], list[HostResult]],
                opts: Options, console: Console, noun: str, header: list[str],
                source_commit: str | None, members: Callable[[str], list[str]] | None = None,
                on_interrupt: Callable[[], None] | None = None) -> FleetResult:
    """Canaries, then batches of --parallel items, stopping once the failure budget is exceeded
    or a canary fails; then the summary table and the reports. The same rules whatever an item
    is: a host over SSH (:func:`rollout`) or local projects (:mod:`upgrade_tasks.projects`).

    An item is what one worker runs; ``members(item)`` are the rows it reports (several
    projects chained in one worker: one row each, so counts, ``failed.txt`` and the report
    name projects, never the chain). ``on_interrupt``: Ctrl-C or SIGTERM stops the rollout
    (nothing new starts), is passed on to what runs (``on_interrupt``), whose results are
    waited for; the table and reports are still written, and the exit code is 130."""
    members = members or (lambda item: [item])
    rows = [m for item in items for m in members(item)]
    budget = Budget(len(rows), opts.max_fail, noun)
    batches = plan_batches(items, opts.canary if command == "upgrade" else 0, opts.parallel)
    fr = FleetResult(command, noun=noun)
    console.noun = noun
    console.say(f"{command} on {len(rows)} {noun}(s), {opts.parallel} at a time"
                + (f", {min(opts.canary, len(items))} canary first" if opts.canary and
                   command == "upgrade" else "") + f"; {budget.sentence()}")
    for line in header:
        console.say(line)
    for h in rows:
        console.rows[h] = HostResult(h)
    failed = 0
    t0 = time.monotonic()
    if on_interrupt is not None:
        signals.install_handlers()  # SIGTERM too, and Ctrl-C even when inherited as ignored
    pool: ThreadPoolExecutor | None = None
    futs: list[Future[list[HostResult]]] = []
    try:
        for label, batch in batches:
            console.say(f"-- {label}: {', '.join(batch)}")
            pool = ThreadPoolExecutor(max_workers=min(opts.parallel, len(batch)))
            futs = [pool.submit(runner, h) for h in batch]
            for f in as_completed(futs):
                for r in f.result():
                    console.finished(r)
            pool.shutdown(wait=True)
            failed = sum(1 for r in console.rows.values() if r.result in ("failed", "unreachable"))
            batch_rows = [m for h in batch for m in members(h)]
            if label == "canary" and any(console.rows[h].result != "ok" for h in batch_rows):
                fr.stopped_by = "a canary failed"
                break
            if command == "upgrade" and budget.exceeded(failed) and label != batches[-1][0]:
                fr.stopped_by = f"failure budget exceeded ({failed} > {budget.allowed})"
                break
    except KeyboardInterrupt:
        if on_interrupt is None:
            raise
        with signals.deferred():  # the runs are rolling back: wait for them, once
            console.say(f"interrupted: nothing new starts; waiting for the running {noun}s "
                        "to stop")
            on_interrupt()
            for f in futs:
                try:
                    for r in f.result():
                        console.finished(r)
                except Exception:  # noqa: BLE001 - its row says what it reached
                    pass
        fr.stopped_by = "interrupted"
        failed = sum(1 for r in console.rows.values() if r.result in ("failed", "unreachable"))
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    for r in console.rows.values():
        if r.result in ("pending", "running"):
            r.result, r.message = "skipped", f"not started: {fr.stopped_by}"
    fr.hosts = list(console.rows.values())
    if fr.stopped_by == "interrupted":
        fr.exit_code = EXIT_INTERRUPTED
    elif fr.stopped_by:
        fr.exit_code = EXIT_STOPPED
    elif failed:
        fr.exit_code = EXIT_SOME_FAILED
    elif command == "check" and any(r.exit_code == EXIT_UPGRADE_AVAILABLE for r in fr.hosts):
        fr.exit_code = EXIT_UPGRADE_AVAILABLE
    write_reports(fr, opts, budget, source_commit, time.monotonic() - t0, console.redact)
    console.say(summary_table(fr))
    return fr


def _one(item: str, command: str, opts: Options, prep: Prepared, console: Console,
         pw: str | None) -> HostResult:
    c = None
    host, project = split_host(item)
    if project:
        opts = opts.replace(project=Path(project))
    try:
        c = connect(host, opts)
        r = run_on_host(c, command, opts, prep, console, pw, label=item)
        if opts.accept_new_host_keys:
            try:
                path = Path(c._praxis_known_hosts)
                path.parent.mkdir(parents=True, exist_ok=True)
                c.client.save_host_keys(str(path))
            except OSError:
                pass
        return r
    except UsageError as exc:
        return HostResult(item, "failed", 2, message=exc.render())
    except Exception as exc:  # noqa: BLE001
        return HostResult(item, "unreachable", None, message=describe_ssh_error(exc, host, c, opts))
    finally:
        if c is not None:
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass


def summary_table(fr: FleetResult) -> str:
    n = fr.noun
    # a project's path, or a host's own project (host=/path), is shown whole
    width = max([28] + [len(r.host) for r in fr.hosts if n == "project" or "=" in r.host])
    lines = [f"{n:<{width}} {'result':<11} {'phase':<14} {'old':<10} {'new':<10} "
             f"{'seconds':>7}  backup / message"]
    for r in fr.hosts:
        tail = r.backup_id or ""
        if r.result != "ok" or (r.message and not tail):
            tail = r.message
        lines.append(f"{r.host[:width]:<{width}} {r.result:<11} {r.phase_reached[:14]:<14} "
                     f"{(r.old_commit or '-')[:10]:<10} {(r.new_commit or '-')[:10]:<10} "
                     f"{r.duration_s:>7.2f}  {tail}")
    ok = sum(1 for r in fr.hosts if r.result == "ok")
    lines.append(f"{ok}/{len(fr.hosts)} {n}(s) ok" + (f"; stopped: {fr.stopped_by}"
                                                       if fr.stopped_by else ""))
    for note in fr.notes:
        lines.append(f"note: {note}")
    if fr.report:
        lines.append(f"report: {fr.report}")
    if fr.failed_file:
        lines.append(f"{n}s not done: {fr.failed_file} (rerun them with --{n}s @{fr.failed_file})")
    return "\n".join(lines)


def write_reports(fr: FleetResult, opts: Options, budget: Budget, source_commit: str | None,
                  seconds: float, redact: Redactor) -> None:
    d = Path(opts.report_dir).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    rep: dict[str, Any] = {
        "command": fr.command, "finished_at": now_iso(), "seconds": round(seconds, 2),
        "kind": fr.noun, "notes": fr.notes,
        "project": str(opts.project), "source_commit": source_commit,
        "budget": {"max_fail_pct": budget.pct, "hosts": budget.total,
                   "allowed_failures": budget.allowed, "rule": budget.sentence()},
        "parallel": opts.parallel, "canary": opts.canary, "stopped_by": fr.stopped_by,
        "exit_code": fr.exit_code,
        # "hosts" or "projects": one entry per item, with its result
        f"{fr.noun}s": [{k: v for k, v in asdict(r).items() if k not in ("last_line", "tail")}
                        for r in fr.hosts],
    }
    fr.data = json.loads(redact(json.dumps(rep)))
    fr.report = d / "report.json"
    tmp = fr.report.with_suffix(".tmp")
    tmp.write_text(redact(json.dumps(rep, indent=2, sort_keys=True)) + "\n")
    os.replace(tmp, fr.report)
    # every item not done (failed, unreachable, or not started after a stop): the rerun list
    failed = [r.host for r in fr.hosts if r.result in ("failed", "unreachable", "skipped")]
    fr.failed_file = d / "failed.txt"
    fr.failed_file.write_text("".join(h + "\n" for h in failed))
    if not failed:
        fr.failed_file = None


def single_host(c: Any, command: str, opts: Options) -> HostResult:
    """``fab -H host task``: Fabric hands us the Connection; same work as one fleet host."""
    apply_host_key_policy(c, opts)
    pw = sudo_password(opts)
    console = Console(Redactor([pw or ""]), live=False)
    prep = prepare(opts, command == "upgrade")
    host = f"{c.user}@{c.host}:{c.port}"
    console.rows[host] = HostResult(host)
    return run_on_host(c, command, opts, prep, console, pw, label=host)
