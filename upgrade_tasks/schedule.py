"""Scheduled checks and upgrades: a per-user cron entry or systemd user timer that runs ``check``,
or ``upgrade --yes`` with a safe policy, for one project.

What a scheduled run does is fixed here, not chosen per schedule, because nobody is watching it:

- ``upgrade --yes --on-conflict keep``: never a prompt; a file both you and upstream changed keeps
  yours and gets upstream's beside it (``NAME.praxis-new``), so a run never leaves conflict
  markers in a file the IDE reads. Never ``--allow-downgrade``: a source that moved back (a force
  push, a checkout of an old tag) is refused with exit 3, not installed.
- Output (stdout and stderr, after a ``date -u`` line that tells the runs apart) is appended to
  ``<project>/.praxis-os/.upgrade-state/schedule.log``; the directory is made at install time
  because the shell opens the log before the upgrader runs.
- The upgrader is started by absolute interpreter path (:func:`default_program`), so cron's
  minimal ``PATH`` (``/usr/bin:/bin``) does not matter.

Both backends store a complete description of the schedule in what they install (a delimited
block in the crontab, a JSON comment in the units), so :func:`show` and :func:`remove` need no
other state. Cron is driven through the real ``crontab`` program only (``crontab -l``, then
``crontab -`` with the new text): every line of the user's crontab that is not ours is given back
byte for byte.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from . import procs
from .checkout import is_git_url
from .errors import UsageError
from .fsutil import atomic_write_bytes
from .layout import LEGACY_DIR, PRAXIS_DIR, Install
from .redact import redact

WHAT = ("check", "upgrade")
BACKENDS = ("auto", "cron", "systemd")
#: The shorthands, as five cron fields (so both backends and ``show`` speak one language).
#: ``weekly`` is cron's (Sunday 00:00), not systemd's ``weekly`` (Monday 00:00).
SHORTHANDS = {"hourly": "0 * * * *", "daily": "0 0 * * *", "weekly": "0 0 * * 0"}
LOG_NAME = "schedule.log"
CRON_BEGIN = "# praxis-upgrade begin"
CRON_END = "# praxis-upgrade end"
UNIT_PREFIX = "praxis-upgrade-"
_UNIT_META = "# praxis-upgrade-job "
_WHEN_HINT = ("give five cron fields, minute hour day-of-month month day-of-week (e.g. '30 2 * * 1-5'), "
              "or hourly, daily, weekly")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_SYSTEMD_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
#: (name, lowest, highest, names): a name's value is its index plus ``lowest``.
_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),  # 0 and 7 are both Sunday
)
LINGER_NOTE = ("systemd runs a user's timers only while that user is logged in, unless lingering is "
               "on: `loginctl enable-linger` (or install cron and use --backend cron)")


@dataclass(frozen=True)
class Job:
    """One project's schedule. Validated on construction (:class:`UsageError`); ``project``
    becomes absolute and resolved, a local ``source`` too (cron starts jobs in ``$HOME``)."""

    project: Path
    source: str
    what: str
    when: str
    ref: str = ""

    def __post_init__(self) -> None:
        if self.what not in WHAT:
            raise UsageError(f"cannot schedule {self.what!r}", "a schedule runs `check` or `upgrade`",
                             "choose check (report only) or upgrade")
        if not self.source.strip():
            raise UsageError("the source is empty", "a scheduled run needs the prAxIs OS source to "
                             "compare with and upgrade from", "pass --source PATH (a git checkout) or "
                             "--source URL")
        _check_text("project", str(self.project))
        _check_text("source", self.source)
        _check_text("ref", self.ref)
        if self.ref.startswith("-"):
            raise UsageError(f"bad ref {self.ref!r}", "it would be read as a flag", "give a branch, tag "
                             "or commit")
        parse_cron(self.when)
        object.__setattr__(self, "project", project_path(self.project))
        if not is_git_url(self.source):
            object.__setattr__(self, "source", str(Path(self.source).expanduser().resolve()))
        elif redact(self.source) != self.source:
            raise UsageError(
                "the source URL carries credentials", "a schedule keeps its command line in your crontab "
                "or a unit file, and every run shows it in the process list",
                "use an SSH URL with a key, a git credential helper, or a local checkout as --source")


@dataclass(frozen=True)
class Installed:
    """A schedule as found in (or just written to) a backend."""

    backend: str  # "cron" or "systemd"
    project: Path
    what: str  # "check", "upgrade", or "?" when the entry was edited beyond recognition
    when: str  # cron: the five fields in the crontab; systemd: the expression it was made from
    command: str  # the shell command line that runs
    source: str = ""
    ref: str = ""
    where: str = ""  # "crontab", or the timer's path
    on_calendar: tuple[str, ...] = ()  # systemd only
    note: str = ""  # install only: what the user should know, one per line (no cron daemon, no
    # lingering, someone else's install)


# --- the schedule's expression ------------------------------------------------------------------


@dataclass(frozen=True)
class CronTimes:
    """A parsed cron expression: the fields as written, and the values each one matches."""

    fields: tuple[str, str, str, str, str]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0-6, Sunday 0 (a 7 is folded into 0)

    @property
    def text(self) -> str:
        return " ".join(self.fields)

    @property
    def day_or_weekday(self) -> bool:
        """Cron's rule: when neither day field starts with ``*``, a day matching *either* runs
        the job (``0 0 1 * 1``: the 1st of the month and every Monday); otherwise both must."""
        return not self.fields[2].startswith("*") and not self.fields[4].startswith("*")


def parse_cron(when: str) -> CronTimes:
    """Parse ``when``: five cron fields (numbers, ``*``, ``a-b``, ``/step`` after ``*`` or a range,
    lists, month and weekday names), or a shorthand (``hourly``, ``daily``, ``weekly``, with or
    without ``@``). Anything else is a :class:`UsageError` naming the field and why."""
    text = " ".join(when.split())
    key = text.lower().removeprefix("@")
    if key in SHORTHANDS:
        text = SHORTHANDS[key]
    elif text.startswith("@"):
        raise UsageError(f"bad schedule {when!r}", f"{text} is not one of the shorthands this tool "
                         "knows (hourly, daily, weekly)", _WHEN_HINT)
    parts = text.split(" ")
    if len(parts) != 5 or not text:
        raise UsageError(f"bad schedule {when!r}", f"a cron expression has 5 fields, this has "
                         f"{len(parts) if text else 0}", _WHEN_HINT)
    sets = [_parse_field(when, p, *spec) for p, spec in zip(parts, _FIELDS)]
    weekdays = frozenset(0 if d == 7 else d for d in sets[4])
    return CronTimes((parts[0], parts[1], parts[2], parts[3], parts[4]), sets[0], sets[1], sets[2],
                     sets[3], weekdays)


def _parse_field(when: str, text: str, name: str, lo: int, hi: int,
                 names: tuple[str, ...]) -> frozenset[int]:
    def bad(why: str) -> UsageError:
        return UsageError(f"bad schedule {when!r}", f"{name} {text!r}: {why}", _WHEN_HINT)

    def number(s: str) -> int:
        if s.lower() in names:
            return names.index(s.lower()) + lo
        if not re.fullmatch(r"[0-9]+", s):
            allowed = f" or a name ({', '.join(names)})" if names else ""
            raise bad(f"{s!r} is not a number{allowed}")
        if not lo <= int(s) <= hi:
            raise bad(f"{s} is out of range {lo}-{hi}")
        return int(s)

    out: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        if not base:
            raise bad("an empty item")
        step = 1
        if slash:
            if not re.fullmatch(r"[0-9]+", step_text) or int(step_text) == 0:
                raise bad(f"the step {step_text!r} is not a whole number from 1")
            step = int(step_text)
        if base == "*":
            first, last = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = number(a), number(b)
            if first > last:
                raise bad(f"the range {base} runs backwards")
        elif slash:  # cron implementations disagree on "5/10" (an error, or 5-max/10)
            raise bad(f"a step needs a range or *: write {base}-{hi}/{step_text}")
        else:
            first = last = number(base)
        out.update(range(first, last + 1, step))
    return frozenset(out)


def on_calendar(when: str) -> list[str]:
    """systemd ``OnCalendar=`` values that fire exactly when cron would run ``when`` (local time;
    the two differ only around DST changes). Every field is written as an explicit list, which
    any systemd reads alike; cron's either-day rule (:attr:`CronTimes.day_or_weekday`) becomes two
    values, since a timer fires on the union of its ``OnCalendar=`` lines."""
    c = parse_cron(when)

    def values(got: frozenset[int], lo: int, hi: int) -> str:
        return "*" if got == frozenset(range(lo, hi + 1)) else ",".join(f"{v:02d}" for v in sorted(got))

    clock = f"{values(c.hours, 0, 23)}:{values(c.minutes, 0, 59)}:00"
    months, days = values(c.months, 1, 12), values(c.days, 1, 31)
    weekdays = "" if c.weekdays == frozenset(range(7)) else ",".join(
        _SYSTEMD_DAYS[d] for d in sorted(c.weekdays)) + " "
    if c.day_or_weekday:
        return [f"*-{months}-{days} {clock}", f"{weekdays}*-{months}-* {clock}"]
    return [f"{weekdays}*-{months}-{days} {clock}"]


# --- the command line ---------------------------------------------------------------------------


def project_path(project: Path | str) -> Path:
    """The one spelling of a project used in markers and unit names: absolute, links resolved."""
    return Path(project).expanduser().resolve()


def log_path(project: Path) -> Path:
    return Install(project).state_dir / LOG_NAME


def default_program() -> list[str]:
    """How a scheduled run starts the upgrader: this interpreter, by absolute path, with
    ``-m upgrade_tasks``.

    Why not the ``praxis-upgrade`` script: cron's ``PATH`` is ``/usr/bin:/bin``, and pipx and
    ``uv tool`` put the script in ``~/.local/bin``. ``sys.executable`` is the interpreter of the
    environment the package is installed in (a pipx or uv tool venv, a virtualenv, an editable
    checkout's), so it imports the same package from anywhere; it is not resolved, because a venv's
    python is a link whose location selects the venv. One case needs more: a checkout run without
    being installed (``python -m upgrade_tasks`` from the checkout) imports the package from the
    current directory, which is ``$HOME`` for a scheduled run; so this asks the interpreter, from
    ``$HOME`` and with cron's environment, which package it imports, and when that is not this
    one the program sets ``PYTHONPATH`` to this checkout through ``/usr/bin/env``.
    """
    here = Path(__file__).resolve().parent
    base = [sys.executable, "-m", "upgrade_tasks"]
    home = Path.home()
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import upgrade_tasks; print(upgrade_tasks.__file__)"],
            cwd=home if home.is_dir() else "/", env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
        found = Path(probe.stdout.strip()).resolve().parent if probe.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        found = None
    if found == here:
        return base
    return ["/usr/bin/env", f"PYTHONPATH={here.parent}", *base]


def command(job: Job, program: Sequence[str] | None = None) -> str:
    """The shell command line (``/bin/sh``) the schedule runs. Every value is quoted; no ``cd`` is
    needed (every path is absolute). ``program`` starts the upgrader (:func:`default_program`)."""
    prog = list(program) if program is not None else default_program()
    args = [*prog, job.what]
    if job.what == "upgrade":
        args += ["--yes", "--project", str(job.project), "--source", job.source, "--on-conflict", "keep"]
    else:
        args += ["--project", str(job.project), "--source", job.source]
    if job.ref:
        args += ["--ref", job.ref]
    return f"{{ date -u; {shlex.join(args)}; }} >> {shlex.quote(str(log_path(job.project)))} 2>&1"


def _check_text(name: str, value: str) -> None:
    """Refuse what a crontab line or a unit file cannot carry faithfully."""
    why = ""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        why = "it contains a control character (a newline would end the crontab line)"
    elif "\\" in value:
        why = "it contains a backslash, which cron implementations unescape differently in a command"
    else:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            why = "it is not valid UTF-8 (unit files are UTF-8)"
    if why:
        raise UsageError(f"the {name} {value!r} cannot be put in a schedule", why,
                         f"use a {name} without it (rename or link the directory)")


def _parse_command(cmd: str) -> tuple[str, str, str]:
    """(what, source, ref) read back from a command line of ours; "?" and "" where unreadable."""
    try:
        lex = shlex.shlex(cmd, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        toks = list(lex)
    except ValueError:
        return "?", "", ""

    def opt(flag: str) -> str:
        return toks[toks.index(flag) + 1] if flag in toks[:-1] else ""

    what = next((t for t in toks if t in WHAT), "?")
    return what, opt("--source"), opt("--ref")


# --- running programs ---------------------------------------------------------------------------


def _run(argv: Sequence[str], data: bytes | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run a helper program with the C locale (its messages are matched), bytes in and out."""
    try:
        return subprocess.run(list(argv), input=data, capture_output=True, timeout=timeout,
                              stdin=None if data is not None else subprocess.DEVNULL,
                              env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"could not run `{shlex.join(argv)}`", str(exc),
                         "check that the program works when run by hand") from None


def _said(proc: subprocess.CompletedProcess[bytes]) -> str:
    text = (proc.stderr or proc.stdout).decode(errors="replace").strip()
    return f"exit {proc.returncode}" + (f": {text}" if text else "")


@contextmanager
def _changing() -> Iterator[None]:
    """One ``schedule`` change at a time per user: each one reads, edits and writes the whole
    crontab, so two at once (a provisioning script in parallel) would lose one of them."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = cache / "praxis-upgrade" / "schedule.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path), timeout=60):
            yield
    except Timeout:
        raise UsageError("another `praxis-upgrade schedule` is changing the schedules",
                         f"{path} has been locked for 60 s",
                         "wait for it to finish, then run again") from None


# --- cron ---------------------------------------------------------------------------------------


def _crontab() -> str:
    exe = shutil.which("crontab")
    if exe is None:
        raise UsageError("no `crontab` program", "the cron backend edits your crontab with it",
                         "install cron (Debian/Ubuntu: `apt-get install cron`; Fedora/RHEL: `dnf install "
                         "cronie`), or use --backend systemd")
    return exe


def read_crontab() -> bytes:
    """The user's crontab, exactly as ``crontab -l`` gives it; no crontab at all is empty."""
    proc = _run([_crontab(), "-l"])
    if proc.returncode == 0:
        return proc.stdout
    if b"no crontab for" in proc.stderr:
        return b""
    raise UsageError("could not read your crontab", f"`crontab -l`: {_said(proc)}",
                     "check that you may use cron (/etc/cron.allow, /etc/cron.deny)")


def _write_crontab(text: bytes) -> None:
    # an empty result removes the crontab: a user who had none before has none again
    proc = _run([_crontab(), "-"], data=text) if text else _run([_crontab(), "-r"])
    if proc.returncode != 0 and (text or b"no crontab for" not in proc.stderr):
        raise UsageError("could not write your crontab", f"`crontab -`: {_said(proc)}",
                         "nothing was changed; check the message above and `crontab -l`")


def _lines(text: bytes) -> list[bytes]:
    """``text`` split after each ``\\n`` only (cron's notion of a line); joined back, the same bytes."""
    parts = text.split(b"\n")
    return [p + b"\n" for p in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def _marker(kind: str, project: Path) -> bytes:
    return os.fsencode(f"{kind} {project}")


def cron_block(job: Job, command_line: str) -> bytes:
    """Our lines in the crontab: a begin and an end marker naming the project, the entry between.
    ``%`` is escaped: in a crontab command an unescaped one ends the command (the rest is stdin)."""
    entry = f"{parse_cron(job.when).text} {command_line.replace('%', chr(92) + '%')}"
    return b"".join(s + b"\n" for s in (_marker(CRON_BEGIN, job.project), os.fsencode(entry),
                                        _marker(CRON_END, job.project)))


def edit_crontab(text: bytes, project: Path, block: bytes | None) -> tuple[bytes, bool]:
    """``text`` without any block of ours for ``project``, and with ``block`` (when given) where
    the first one was, else at the end. Every other byte is kept; the only byte ever added is a
    newline after a last line that has none, before an appended block. Also returns whether a
    block of ours was found."""
    begin, end = _marker(CRON_BEGIN, project), _marker(CRON_END, project)
    lines = _lines(text)
    out: list[bytes] = []
    found = False
    i = 0
    while i < len(lines):
        if lines[i].removesuffix(b"\n") != begin:
            out.append(lines[i])
            i += 1
            continue
        j = next((k for k in range(i + 1, len(lines)) if lines[k].removesuffix(b"\n") == end), None)
        if j is None:
            raise UsageError(f"your crontab has a praxis-upgrade entry for {project} without its end line",
                             f"`{os.fsdecode(begin)}` is not followed by `{os.fsdecode(end)}`, so "
                             "where our lines stop is not known",
                             "fix it with `crontab -e` (remove the entry, or add the end line), then run "
                             "again")
        if block is not None and not found:
            out.append(block)
        found = True
        i = j + 1
    if block is not None and not found:
        if out and not out[-1].endswith(b"\n"):
            out.append(b"\n")
        out.append(block)
    return b"".join(out), found


def cron_entries(text: bytes) -> list[Installed]:
    """Our entries in a crontab's text."""
    begin_re = re.compile(re.escape(os.fsencode(CRON_BEGIN)) + rb" (.+)")
    job_re = re.compile(rb"\s*(@\S+|(?:\S+\s+){4}\S+)\s+(.*)")
    lines = [line.removesuffix(b"\n") for line in _lines(text)]
    out: list[Installed] = []
    for i, line in enumerate(lines):
        m = begin_re.fullmatch(line)
        if not m:
            continue
        project = Path(os.fsdecode(m.group(1)))
        end = _marker(CRON_END, project)
        body = []
        for nxt in lines[i + 1:]:
            if nxt == end:
                break
            body.append(nxt)
        else:
            out.append(Installed("cron", project, "?", "", "", where="crontab",
                                 note="no end line: fix the entry with `crontab -e`"))
            continue
        for entry in body:
            jm = job_re.fullmatch(entry)
            if entry.lstrip().startswith(b"#") or not jm:
                continue
            cmd = os.fsdecode(jm.group(2)).replace("\\%", "%")
            what, source, ref = _parse_command(cmd)
            out.append(Installed("cron", project, what, " ".join(os.fsdecode(jm.group(1)).split()), cmd,
                                 source, ref, where="crontab"))
    return out


def _cron_install(job: Job, command_line: str) -> None:
    text, _found = edit_crontab(read_crontab(), job.project, cron_block(job, command_line))
    _write_crontab(text)


def _cron_remove(project: Path) -> bool:
    old = read_crontab()
    new, found = edit_crontab(old, project, None)
    if found:
        _write_crontab(new)
    return found


def _cron_daemon_note() -> str:
    """On Linux, a crontab without a running cron daemon is never run: say so (not an error: the
    daemon may be started later). Elsewhere (macOS: launchd starts cron on demand) say nothing."""
    if not sys.platform.startswith("linux"):
        return ""
    daemons = {"cron", "crond", "cronie", "fcron", "dcron"}
    try:
        running = bool(daemons & procs.names())
    except OSError:
        return ""
    return "" if running else ("no cron daemon is running on this machine: the entry runs once one is "
                               "(Debian/Ubuntu: `systemctl enable --now cron`)")


# --- systemd ------------------------------------------------------------------------------------


def unit_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "systemd" / "user"


def unit_name(project: Path) -> str:
    """``praxis-upgrade-<12 hex digits of sha256(project)>``: a unit name cannot hold a path."""
    return UNIT_PREFIX + hashlib.sha256(os.fsencode(str(project))).hexdigest()[:12]


def _exec_quote(arg: str) -> str:
    """One argument of ``ExecStart=``: ``%`` is a specifier, ``$`` a variable, ``\\`` and ``"``
    are quoting. systemd runs no shell; the argument goes to ``/bin/sh -c`` as written here."""
    return '"' + (arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")) + '"'


def _exec_unquote(value: str) -> str | None:
    m = re.fullmatch(r'/bin/sh -c "((?:[^"\\]|\\.)*)"', value)
    if not m:
        return None
    return re.sub(r"\\(.)|%%|\$\$", lambda g: g.group(1) or g.group(0)[0], m.group(1))


def render_units(job: Job, program: Sequence[str], ok_codes: Sequence[int] = ()) -> tuple[str, str]:
    """The service and the timer for ``job`` (pure: no file, no systemd). ``ok_codes``: exit codes
    that are not failures (``check``'s "an upgrade is available"), so the unit is not marked
    failed every time an upgrade is waiting."""
    name = unit_name(job.project)
    meta = _UNIT_META + json.dumps({"project": str(job.project), "what": job.what, "when": job.when,
                                    "source": job.source, "ref": job.ref}, sort_keys=True)
    service = [
        meta,
        "# Written by `praxis-upgrade schedule`, which also removes it.",
        "[Unit]",
        f"Description=praxis-upgrade {job.what} ({name})",
        "",
        "[Service]",
        "Type=oneshot",
        f"ExecStart=/bin/sh -c {_exec_quote(command(job, program))}",
        "# An upgrade restarts this install's HTTP server if it stopped one; the server must outlive",
        "# this run (systemd kills what a finished oneshot service left running otherwise).",
        "KillMode=process",
    ]
    if ok_codes:
        service.append("SuccessExitStatus=" + " ".join(str(c) for c in ok_codes))
    timer = [
        meta,
        "# Written by `praxis-upgrade schedule`, which also removes it.",
        "[Unit]",
        f"Description=praxis-upgrade {job.what} schedule ({name})",
        "",
        "[Timer]",
        *(f"OnCalendar={v}" for v in on_calendar(job.when)),
        "# A run missed while the machine was off or asleep happens when it is back.",
        "Persistent=true",
        "",
        "[Install]",
        "WantedBy=timers.target",
    ]
    return "\n".join(service) + "\n", "\n".join(timer) + "\n"


def systemd_entry(service_text: str, timer_text: str, where: str) -> Installed | None:
    """The schedule a pair of our unit files describes (None: not ours)."""
    meta_line = next((s for s in service_text.splitlines() if s.startswith(_UNIT_META)), None)
    if meta_line is None:
        return None
    try:
        meta = json.loads(meta_line[len(_UNIT_META):])
        project = Path(str(meta["project"]))
    except (ValueError, KeyError, TypeError):
        return None
    exec_start = next((s[len("ExecStart="):] for s in service_text.splitlines()
                       if s.startswith("ExecStart=")), "")
    cmd = _exec_unquote(exec_start) or exec_start
    what, source, ref = _parse_command(cmd)
    calendar = tuple(s[len("OnCalendar="):] for s in timer_text.splitlines() if s.startswith("OnCalendar="))
    return Installed("systemd", project, what, str(meta.get("when", "")), cmd, source, ref, where, calendar)


def _systemctl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return _run(["systemctl", "--user", *args])


def systemd_answers() -> bool:
    """A systemd user instance of this user answers (``is-system-running``: running or degraded;
    it exits non-zero for degraded, so the word decides)."""
    if shutil.which("systemctl") is None:
        return False
    try:
        proc = _systemctl("is-system-running")
    except UsageError:
        return False
    return proc.stdout.strip() in (b"running", b"degraded")


def lingering() -> bool:
    """Lingering is on for this user (logind's own record of ``loginctl enable-linger``)."""
    try:
        return (Path("/var/lib/systemd/linger") / getpass.getuser()).exists()
    except (OSError, KeyError):
        return False


def choose_backend(systemd_up: bool, linger: bool, have_crontab: bool) -> tuple[str, str]:
    """``auto``: (backend, note). systemd only when its user instance answers *and* lingering is
    on: without lingering a user's timers run only while the user is logged in, so on a server
    reached by ssh the schedule would silently stop at logout; cron runs regardless. systemd
    without lingering only when there is no cron, with a note."""
    if systemd_up and linger:
        return "systemd", ""
    if have_crontab:
        return "cron", ""
    if systemd_up:
        return "systemd", LINGER_NOTE
    raise UsageError("no scheduler to install into", "there is no `crontab` program, and no systemd user "
                     "instance answers (`systemctl --user is-system-running`)",
                     "install cron (Debian/Ubuntu: `apt-get install cron`; Fedora/RHEL: `dnf install "
                     "cronie`), or run this in a login session with systemd")


def _systemd_install(job: Job, program: Sequence[str], ok_codes: Sequence[int]) -> Path:
    service, timer = render_units(job, program, ok_codes)
    name = unit_name(job.project)
    d = unit_dir()
    atomic_write_bytes(d / f"{name}.service", service.encode(), mode=0o644)
    atomic_write_bytes(d / f"{name}.timer", timer.encode(), mode=0o644)
    # restart, not just `enable --now`: an active timer keeps its old OnCalendar until restarted
    for args in (("daemon-reload",), ("enable", f"{name}.timer"), ("restart", f"{name}.timer")):
        proc = _systemctl(*args)
        if proc.returncode != 0:
            raise UsageError(f"`systemctl --user {' '.join(args)}` failed", _said(proc),
                             f"the units are in {d}; see `systemctl --user status {name}.timer`, or use "
                             "--backend cron")
    return d / f"{name}.timer"


def _systemd_remove(project: Path) -> bool:
    name, d = unit_name(project), unit_dir()
    files = [d / f"{name}.timer", d / f"{name}.service"]
    if not any(f.exists() or f.is_symlink() for f in files):
        return False
    up = systemd_answers()
    if up:
        proc = _systemctl("disable", "--now", f"{name}.timer")
        if proc.returncode != 0:
            raise UsageError(f"could not stop the timer {name}.timer", _said(proc),
                             f"see `systemctl --user status {name}.timer`")
    # without a user instance nothing is running; with the files gone none will start
    for f in files:
        f.unlink(missing_ok=True)
    if up:
        _systemctl("daemon-reload")
    return True


def _systemd_entries() -> list[Installed]:
    out = []
    for service in sorted(unit_dir().glob(f"{UNIT_PREFIX}*.service")):
        timer = service.with_suffix(".timer")
        try:
            timer_text = timer.read_text(errors="replace") if timer.exists() else ""
            entry = systemd_entry(service.read_text(errors="replace"), timer_text, str(timer))
        except OSError:
            continue
        if entry is not None:
            out.append(entry)
    return out


# --- the API ------------------------------------------------------------------------------------


def _check_project(project: Path) -> None:
    if not project.is_dir():
        raise UsageError(f"no project at {project}", "the directory does not exist",
                         "pass --project DIR, the directory that holds .praxis-os/")
    if (project / PRAXIS_DIR).is_dir():
        return
    if (project / LEGACY_DIR).is_dir():
        raise UsageError(f"{project} has its install in {LEGACY_DIR}/, not {PRAXIS_DIR}/",
                         f"a scheduled run logs to {PRAXIS_DIR}/.upgrade-state/, and the first upgrade "
                         f"moves {LEGACY_DIR}/ there",
                         "upgrade it once by hand (`praxis-upgrade upgrade --project "
                         f"{shlex.quote(str(project))} --source ...`), then schedule it")
    raise UsageError(f"no {PRAXIS_DIR} in {project}", "a schedule upgrades a prAxIs OS install, and this "
                     "project has none", f"pass --project with the directory that holds {PRAXIS_DIR}/")


def _check_source(source: str) -> None:
    if not is_git_url(source) and not Path(source).exists():
        raise UsageError(f"the source {source} does not exist", "a scheduled run reads it every time",
                         "pass --source with a prAxIs OS checkout, or a git URL")


def _ensure_log_dir(project: Path) -> None:
    """Make ``.upgrade-state`` (the shell opens the log in it before the upgrader runs). Made by
    root in someone else's project, it is given to the install's owner: the owner's own upgrades
    write there."""
    inst = Install(project)
    d = inst.state_dir
    if d.is_symlink():
        raise UsageError(f"{d} is a symbolic link", "the upgrader never writes its bookkeeping through a "
                         "link, and neither does a schedule", f"remove the link (`rm {shlex.quote(str(d))}`)")
    if d.is_dir():
        return
    d.mkdir()
    st = inst.root.stat()
    if os.name == "posix" and os.geteuid() == 0 and st.st_uid != 0:
        os.chown(d, st.st_uid, st.st_gid)


def _owner_note(project: Path) -> str:
    """A schedule runs as the user who installs it: for someone else's install (``sudo
    praxis-upgrade schedule ...``) every file a run writes would be that user's, and the owner's
    own upgrades would then be refused on them (exit 3)."""
    if os.name != "posix":
        return ""
    uid, me = (project / PRAXIS_DIR).stat().st_uid, os.geteuid()
    if uid == me:
        return ""
    return (f"{project / PRAXIS_DIR} belongs to uid {uid}, and this schedule runs as uid {me}: the files "
            f"its runs write will be owned by uid {me}; schedule it as the install's owner")


def install(job: Job, backend: str = "auto", program: Sequence[str] | None = None,
            ok_codes: Sequence[int] = ()) -> Installed:
    """Install ``job`` (replacing any schedule of ours for its project, in either backend).

    ``backend``: ``cron``, ``systemd`` or ``auto`` (:func:`choose_backend`). ``program``: how to
    start the upgrader (default :func:`default_program`). ``ok_codes``: for systemd, exit codes
    that are not failures (pass ``check``'s "upgrade available" code).
    """
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}", "", f"choose one of {', '.join(BACKENDS)}")
    _check_project(job.project)
    _check_source(job.source)
    note = ""
    if backend == "auto":
        chosen, note = choose_backend(systemd_answers(), lingering(), shutil.which("crontab") is not None)
    elif backend == "systemd":
        if not systemd_answers():
            raise UsageError("no systemd user instance answers", "`systemctl --user is-system-running` "
                             "did not say running or degraded", "use --backend cron, or run this in a "
                             "login session of this user")
        chosen, note = "systemd", "" if lingering() else LINGER_NOTE
    else:
        _crontab()
        chosen = "cron"
    prog = list(program) if program is not None else default_program()
    line = command(job, prog)
    _ensure_log_dir(job.project)
    calendar: tuple[str, ...] = ()
    with _changing():
        if chosen == "cron":
            _cron_install(job, line)
            _systemd_remove(job.project)
            where = "crontab"
            note = note or _cron_daemon_note()
        else:
            where, calendar = str(_systemd_install(job, prog, ok_codes)), tuple(on_calendar(job.when))
            if shutil.which("crontab"):
                _cron_remove(job.project)
    when = parse_cron(job.when).text if chosen == "cron" else job.when
    note = "\n".join(n for n in (note, _owner_note(job.project)) if n)
    return Installed(chosen, job.project, job.what, when, line, job.source, job.ref, where, calendar, note)


def show(project: Path | None = None) -> list[Installed]:
    """The schedules of ours, in the crontab (when there is a ``crontab`` program) and in the
    systemd user unit directory; all projects, or ``project``'s."""
    found = cron_entries(read_crontab()) if shutil.which("crontab") else []
    found += _systemd_entries()
    if project is not None:
        p = project_path(project)
        found = [e for e in found if e.project == p]
    return found


def remove(project: Path, backend: str = "auto") -> bool:
    """Remove the schedules of ours for ``project`` (``auto``: from every backend where present;
    the project itself may be gone). Whether something was removed. The log stays."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}", "", f"choose one of {', '.join(BACKENDS)}")
    p = project_path(project)
    removed = False
    with _changing():
        if backend == "cron" or (backend == "auto" and shutil.which("crontab")):
            removed = _cron_remove(p)
        if backend in ("auto", "systemd"):
            removed = _systemd_remove(p) or removed
    return removed
