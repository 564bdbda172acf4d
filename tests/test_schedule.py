"""``upgrade_tasks.schedule``: cron entries through the real ``crontab`` program (root's crontab,
saved and restored around every test), the installed command line run the way cron runs it, and
the systemd units checked as text, with ``systemd-analyze`` (no running systemd needed).

A missing ``crontab`` or ``systemd-analyze`` fails these tests, never skips them (CI installs
``cron`` and ``systemd``)."""

from __future__ import annotations

import ast
import datetime as dt
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from upgrade_tasks import schedule
from upgrade_tasks.errors import UsageError
from upgrade_tasks.schedule import Job

REPO = Path(__file__).resolve().parents[1]
#: Stands in for the upgrader: prints the arguments it was given.
FAKE = [sys.executable, "-c", "import sys; print(sys.argv[1:])"]
#: A directory name with everything a shell, cron (``%``) or systemd (``%``, ``$``, ``"``) treats
#: specially, except what a schedule refuses (control characters, backslashes).
HOSTILE = "it's 100% $HOME \"x\" ;&|*"
C = {**os.environ, "LC_ALL": "C"}
#: By absolute path: one test takes PATH away, and the fixture restores the crontab after it.
CRONTAB = shutil.which("crontab") or "crontab"


def crontab_l() -> bytes | None:
    proc = subprocess.run([CRONTAB, "-l"], capture_output=True, env=C)
    if proc.returncode == 0:
        return proc.stdout
    assert b"no crontab for" in proc.stderr, proc.stderr
    return None


def crontab_set(text: bytes | None) -> None:
    if text is None:
        proc = subprocess.run([CRONTAB, "-r"], capture_output=True, env=C)
        assert proc.returncode == 0 or b"no crontab for" in proc.stderr, proc.stderr
    else:
        subprocess.run([CRONTAB, "-"], input=text, check=True, capture_output=True, env=C)


@pytest.fixture(autouse=True)
def crontab_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Root's real crontab is saved, emptied for the test and put back byte for byte; HOME is a
    temporary directory (the lock file, the systemd unit directory)."""
    assert shutil.which("crontab"), "these tests need the crontab program: apt-get install cron"
    saved = crontab_l()
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    crontab_set(None)
    try:
        yield
    finally:
        crontab_set(saved)
        assert crontab_l() == saved


def make_project(where: Path) -> Path:
    (where / ".praxis-os").mkdir(parents=True)
    return where


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "proj")


@pytest.fixture
def source(tmp_path: Path) -> str:
    (tmp_path / "praxis-os").mkdir()
    return str(tmp_path / "praxis-os")


def blocks(text: bytes) -> list[bytes]:
    return re.findall(rb"^# praxis-upgrade begin .*$", text, re.M)


# --- cron, through the real crontab -----------------------------------------------------------


def test_install_writes_exactly_one_delimited_entry(project: Path, source: str) -> None:
    job = Job(project, source, "upgrade", "hourly", ref="v2.1")
    got = schedule.install(job, "cron", program=FAKE)
    line = schedule.command(job, FAKE)
    assert crontab_l() == (f"# praxis-upgrade begin {project}\n0 * * * * {line}\n"
                           f"# praxis-upgrade end {project}\n").encode()
    log = project / ".praxis-os" / ".upgrade-state" / "schedule.log"
    assert line == ("{ date -u; " + shlex.join([*FAKE, "upgrade", "--yes", "--project", str(project),
                                                "--source", source, "--on-conflict", "keep",
                                                "--ref", "v2.1"]) + f"; }} >> {log} 2>&1")
    assert "--allow-downgrade" not in line
    assert log.parent.is_dir() and not log.exists()  # the directory now, the log at the first run
    assert (got.backend, got.project, got.what, got.when, got.command, got.source, got.ref) == (
        "cron", project, "upgrade", "0 * * * *", line, source, "v2.1")


def test_check_runs_check_without_yes(project: Path, source: str) -> None:
    line = schedule.command(Job(project, source, "check", "daily"), FAKE)
    assert shlex.join([*FAKE, "check", "--project", str(project), "--source", source]) + ";" in line
    assert "--yes" not in line and "--ref" not in line


def test_installing_again_replaces_the_entry(project: Path, source: str) -> None:
    schedule.install(Job(project, source, "check", "daily"), "cron", program=FAKE)
    schedule.install(Job(project, source, "upgrade", "*/30 1-5 * * mon-fri"), "cron", program=FAKE)
    text = crontab_l()
    assert text is not None and len(blocks(text)) == 1
    [entry] = schedule.show()
    assert (entry.what, entry.when) == ("upgrade", "*/30 1-5 * * mon-fri")
    assert b" check " not in text


def test_two_projects_two_entries_and_remove_takes_only_its_own(tmp_path: Path, source: str) -> None:
    a, b = make_project(tmp_path / "a"), make_project(tmp_path / "b")
    schedule.install(Job(a, source, "check", "daily"), "cron", program=FAKE)
    schedule.install(Job(b, source, "upgrade", "weekly"), "cron", program=FAKE)
    assert [(e.project, e.what, e.when) for e in schedule.show()] == [
        (a, "check", "0 0 * * *"), (b, "upgrade", "0 0 * * 0")]
    only_b = crontab_l()
    assert schedule.remove(a) is True
    assert [e.project for e in schedule.show()] == [b]
    assert schedule.remove(a) is False
    text = crontab_l()
    assert text is not None and only_b is not None
    assert text == only_b[only_b.index(b"# praxis-upgrade begin " + bytes(b)):]
    assert schedule.remove(b) is True
    assert crontab_l() is None  # no crontab before, none after


def test_the_users_lines_are_kept_byte_for_byte(tmp_path: Path, source: str) -> None:
    theirs = (b"# my jobs\n\nMAILTO=\"\"\n  \n17 3 * * * /usr/bin/backup --to /srv # 50\\% off\n"
              b"\t# caf\xe9, not UTF-8\n@reboot echo up\n# the last line has no newline")
    crontab_set(theirs)
    assert crontab_l() == theirs
    a, b = make_project(tmp_path / "a"), make_project(tmp_path / "b")
    schedule.install(Job(a, source, "check", "daily"), "cron", program=FAKE)
    schedule.install(Job(b, source, "check", "daily"), "cron", program=FAKE)
    block_a = schedule.cron_block(Job(a, source, "check", "daily"), schedule.command(
        Job(a, source, "check", "daily"), FAKE))
    block_b = schedule.cron_block(Job(b, source, "check", "daily"), schedule.command(
        Job(b, source, "check", "daily"), FAKE))
    assert crontab_l() == theirs + b"\n" + block_a + block_b  # the only byte added: that newline
    # replaced in place, not moved to the end
    a2 = Job(a, source, "upgrade", "5 4 * * *")
    schedule.install(a2, "cron", program=FAKE)
    assert crontab_l() == theirs + b"\n" + schedule.cron_block(a2, schedule.command(a2, FAKE)) + block_b
    assert schedule.remove(a) and schedule.remove(b)
    assert crontab_l() == theirs + b"\n"


def test_show_reads_back_what_was_installed(tmp_path: Path, source: str) -> None:
    p = make_project(tmp_path / HOSTILE)
    link = tmp_path / "link"
    link.symlink_to(p)
    job = Job(link, source, "upgrade", "0 6 1 * *", ref="release/1%")
    assert job.project == p  # links resolved: one spelling per project
    schedule.install(job, "cron", program=FAKE)
    [entry] = schedule.show()
    assert entry == schedule.Installed("cron", p, "upgrade", "0 6 1 * *", schedule.command(job, FAKE),
                                       source, "release/1%", "crontab")
    assert schedule.show(link) == [entry] and schedule.show(tmp_path) == []


def test_an_entry_without_its_end_line_is_refused_and_nothing_changes(project: Path, source: str) -> None:
    broken = f"# praxis-upgrade begin {project}\n0 0 * * * something\n# mine\n".encode()
    crontab_set(broken)
    with pytest.raises(UsageError) as exc:
        schedule.install(Job(project, source, "check", "daily"), "cron", program=FAKE)
    assert "without its end line" in exc.value.what and "crontab -e" in exc.value.hint
    with pytest.raises(UsageError):
        schedule.remove(project)
    assert crontab_l() == broken


def test_parallel_installs_lose_nothing(tmp_path: Path, source: str) -> None:
    """Each install reads, edits and writes the whole crontab: the lock keeps them apart."""
    projects = [make_project(tmp_path / f"p{i}") for i in range(6)]
    code = ("import sys; from pathlib import Path; from upgrade_tasks import schedule; "
            "schedule.install(schedule.Job(Path(sys.argv[1]), sys.argv[2], 'check', 'daily'), 'cron', "
            "program=['true'])")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(p), source], env=env) for p in projects]
    assert [p.wait(timeout=120) for p in procs] == [0] * 6
    assert sorted(e.project for e in schedule.show()) == projects


# --- the command line, run as cron runs it -----------------------------------------------------


def cron_command(line: bytes) -> str:
    """What cron hands to the shell for a crontab line (crontab(5)): the text after the five time
    fields, ``\\%`` made ``%``, and an unescaped ``%`` ending the command (none expected)."""
    rest = line.split(None, 5)[5].decode()
    out, i = "", 0
    while i < len(rest):
        if rest.startswith("\\%", i):
            out, i = out + "%", i + 2
            continue
        assert rest[i] != "%", f"an unescaped % would cut the command: {rest}"
        out, i = out + rest[i], i + 1
    return out


@pytest.mark.parametrize("shell", ["/bin/sh", "bash"])
def test_the_installed_line_runs_with_crons_environment(tmp_path: Path, source: str, shell: str) -> None:
    p = make_project(tmp_path / HOSTILE)
    job = Job(p, source, "upgrade", "hourly", ref="v%1 $x")
    schedule.install(job, "cron", program=FAKE)
    text = crontab_l()
    assert text is not None
    line = next(s for s in text.splitlines() if not s.startswith(b"#"))
    cmd = cron_command(line)
    assert cmd == schedule.command(job, FAKE)
    home = tmp_path / "home"
    for _ in range(2):
        subprocess.run(["env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", "LOGNAME=root", shell, "-c", cmd],
                       cwd=home, check=True, timeout=60)
    log = (p / ".praxis-os" / ".upgrade-state" / "schedule.log").read_text().splitlines()
    assert len(log) == 4  # appended, twice: the date, then the program's output
    assert dt.datetime.strptime(log[0], "%a %b %d %H:%M:%S %Z %Y")
    assert ast.literal_eval(log[1]) == ["upgrade", "--yes", "--project", str(p), "--source", source,
                                        "--on-conflict", "keep", "--ref", "v%1 $x"]
    assert dt.datetime.strptime(log[2], "%a %b %d %H:%M:%S %Z %Y") and log[3] == log[1]


def test_the_default_program_starts_this_upgrader_from_crons_environment(tmp_path: Path) -> None:
    """``sys.executable -m upgrade_tasks`` with no PATH to speak of, from $HOME as cron starts it;
    it must import this checkout's package, whatever is installed elsewhere."""
    prog = schedule.default_program()
    assert prog[-2:] == ["-m", "upgrade_tasks"]
    home = tmp_path / "home"
    cron_env = ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}"]
    which = shlex.join([*prog[:-2], "-c", "import upgrade_tasks; print(upgrade_tasks.__file__)"])
    out = subprocess.run([*cron_env, "/bin/sh", "-c", which], cwd=home, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert Path(out.strip()).resolve() == REPO / "upgrade_tasks" / "__init__.py"
    ran = subprocess.run([*cron_env, "/bin/sh", "-c", shlex.join(prog) + " --list"], cwd=home,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and "upgrade" in ran.stdout and "rollback" in ran.stdout, ran


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("when", "words"), [
    ("61 * * * *", "minute '61': 61 is out of range 0-59"),
    ("0 24 * * *", "hour '24': 24 is out of range 0-23"),
    ("0 0 0 * *", "day of month '0': 0 is out of range 1-31"),
    ("0 0 * 13 *", "month '13': 13 is out of range 1-12"),
    ("0 0 * * 8", "day of week '8': 8 is out of range 0-7"),
    ("0 0 * * funday", "'funday' is not a number or a name (sun, mon"),
    ("* * * *", "a cron expression has 5 fields, this has 4"),
    ("* * * * * *", "this has 6"),
    ("", "this has 0"),
    ("*/0 * * * *", "the step '0' is not a whole number from 1"),
    ("5/10 * * * *", "a step needs a range or *: write 5-59/10"),
    ("0 0 20-10 * *", "the range 20-10 runs backwards"),
    ("1,,2 * * * *", "an empty item"),
    ("@reboot", "not one of the shorthands this tool knows (hourly, daily, weekly)"),
    ("monthly", "a cron expression has 5 fields"),
])
def test_bad_expressions_are_refused_with_the_reason(project: Path, source: str, when: str,
                                                     words: str) -> None:
    with pytest.raises(UsageError) as exc:
        Job(project, source, "check", when)
    assert exc.value.what == f"bad schedule {when!r}"
    assert words in exc.value.why
    assert "five cron fields" in exc.value.hint and "hourly, daily, weekly" in exc.value.hint
    assert crontab_l() is None


@pytest.mark.parametrize(("when", "minutes", "hours", "days", "months", "weekdays"), [
    ("daily", {0}, {0}, range(1, 32), range(1, 13), range(7)),
    ("@weekly", {0}, {0}, range(1, 32), range(1, 13), {0}),
    ("*/20 9-17/4 1,15 JAN-mar 5-7", {0, 20, 40}, {9, 13, 17}, {1, 15}, {1, 2, 3}, {5, 6, 0}),
    ("0  0   *  * */3", {0}, {0}, range(1, 32), range(1, 13), {0, 3, 6}),
])
def test_expressions_parse_to_the_times_cron_means(when: str, minutes: set[int], hours: set[int],
                                                   days: range | set[int], months: range | set[int],
                                                   weekdays: range | set[int]) -> None:
    c = schedule.parse_cron(when)
    assert (c.minutes, c.hours, c.days, c.months, c.weekdays) == tuple(
        frozenset(x) for x in (minutes, hours, days, months, weekdays))


def test_projects_and_sources_that_cannot_be_scheduled(tmp_path: Path, project: Path, source: str) -> None:
    def refused(*args: str | Path, backend: str = "cron", **kw: str) -> UsageError:
        with pytest.raises(UsageError) as exc:
            schedule.install(Job(Path(args[0]), str(args[1]), str(args[2]), str(args[3]), **kw), backend,
                             program=FAKE)
        return exc.value

    e = refused(tmp_path / "nowhere", source, "check", "daily")
    assert e.what == f"no project at {tmp_path / 'nowhere'}" and "--project" in e.hint
    (tmp_path / "empty").mkdir()
    e = refused(tmp_path / "empty", source, "check", "daily")
    assert e.what == f"no .praxis-os in {tmp_path / 'empty'}"
    (tmp_path / "old" / ".agent-os").mkdir(parents=True)
    e = refused(tmp_path / "old", source, "check", "daily")
    assert ".agent-os/, not .praxis-os/" in e.what and "upgrade it once by hand" in e.hint
    e = refused(project, "  ", "check", "daily")
    assert e.what == "the source is empty"
    e = refused(project, tmp_path / "gone", "check", "daily")
    assert e.what == f"the source {tmp_path / 'gone'} does not exist"
    e = refused(project, "https://user:s3cret@example.com/praxis-os.git", "check", "daily")
    assert e.what == "the source URL carries credentials" and "s3cret" not in e.render()
    e = refused(project, source, "rollback", "daily")
    assert "a schedule runs `check` or `upgrade`" in e.why
    e = refused(project, source, "check", "daily", ref="--force")
    assert "read as a flag" in e.why
    e = refused(project, source, "check", "daily", backend="launchd")
    assert e.what == "unknown backend 'launchd'"
    for bad, why in (("a\nb", "control character"), ("a\\b", "backslash")):
        (tmp_path / bad / ".praxis-os").mkdir(parents=True)
        e = refused(tmp_path / bad, source, "check", "daily")
        assert why in e.why
    assert crontab_l() is None
    assert not (project / ".praxis-os" / ".upgrade-state").exists()


def test_a_symlinked_state_directory_is_refused(project: Path, source: str, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (project / ".praxis-os" / ".upgrade-state").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UsageError) as exc:
        schedule.install(Job(project, source, "check", "daily"), "cron", program=FAKE)
    assert "is a symbolic link" in exc.value.what
    assert crontab_l() is None


def test_someone_elses_install_gets_its_state_directory_and_a_note(project: Path, source: str) -> None:
    """Root scheduling a user's install: the log directory it makes is the owner's (the owner's
    own upgrades write there), and the result says the runs will be root's."""
    os.chown(project / ".praxis-os", 65534, 65534)
    got = schedule.install(Job(project, source, "check", "daily"), "cron", program=FAKE)
    st = (project / ".praxis-os" / ".upgrade-state").stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    assert "belongs to uid 65534, and this schedule runs as uid 0" in got.note


def test_systemd_without_a_user_instance_is_refused(project: Path, source: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """No systemd user instance (as on this machine): asked for, it is refused; ``auto`` takes cron."""
    monkeypatch.setattr(schedule, "systemd_answers", lambda: False)
    with pytest.raises(UsageError) as exc:
        schedule.install(Job(project, source, "check", "daily"), "systemd", program=FAKE)
    assert exc.value.what == "no systemd user instance answers" and "--backend cron" in exc.value.hint
    assert schedule.install(Job(project, source, "check", "daily"), "auto", program=FAKE).backend == "cron"


@pytest.mark.parametrize(("up", "linger", "crontab", "expected"), [
    (True, True, True, ("systemd", "")),
    (True, True, False, ("systemd", "")),
    (True, False, True, ("cron", "")),  # timers would stop at logout: cron runs regardless
    (False, False, True, ("cron", "")),
    (True, False, False, ("systemd", schedule.LINGER_NOTE)),
])
def test_auto_chooses_what_will_run(up: bool, linger: bool, crontab: bool, expected: tuple[str, str]) -> None:
    assert schedule.choose_backend(up, linger, crontab) == expected


def test_auto_without_any_scheduler_names_the_package() -> None:
    with pytest.raises(UsageError) as exc:
        schedule.choose_backend(False, False, False)
    assert "apt-get install cron" in exc.value.hint


def test_no_crontab_program_names_the_package(project: Path, source: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(UsageError) as exc:
        schedule.install(Job(project, source, "check", "daily"), "cron", program=FAKE)
    assert exc.value.what == "no `crontab` program" and "apt-get install cron" in exc.value.hint


# --- systemd units, as text ---------------------------------------------------------------------


def test_the_units_run_the_same_command_line(tmp_path: Path, source: str) -> None:
    p = make_project(tmp_path / HOSTILE)
    job = Job(p, source, "check", "*/15 9-17 * * 1-5", ref="v$1%")
    service, timer = schedule.render_units(job, FAKE, ok_codes=[11])
    [exec_start] = [s for s in service.splitlines() if s.startswith("ExecStart=")]
    cmd = schedule.command(job, FAKE)
    escaped = cmd.replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    assert exec_start == f'ExecStart=/bin/sh -c "{escaped}"'
    assert "KillMode=process" in service.splitlines() and "Type=oneshot" in service.splitlines()
    assert "SuccessExitStatus=11" in service.splitlines()
    assert [s for s in timer.splitlines() if s.startswith("OnCalendar=")] == [
        "OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 09,10,11,12,13,14,15,16,17:00,15,30,45:00"]
    assert "Persistent=true" in timer and "WantedBy=timers.target" in timer
    got = schedule.systemd_entry(service, timer, "t")
    assert got == schedule.Installed("systemd", p, "check", job.when, cmd, source, "v$1%", "t",
                                     tuple(schedule.on_calendar(job.when)))
    assert schedule.unit_name(p) != schedule.unit_name(tmp_path)
    assert re.fullmatch(r"praxis-upgrade-[0-9a-f]{12}", schedule.unit_name(p))


@pytest.mark.parametrize(("when", "calendar"), [
    ("hourly", ["*-*-* *:00:00"]),
    ("daily", ["*-*-* 00:00:00"]),
    ("weekly", ["Sun *-*-* 00:00:00"]),  # cron's Sunday, not systemd's "weekly" (Monday)
    ("30 2 * * *", ["*-*-* 02:30:00"]),
    ("0 0 1 * 1", ["*-*-01 00:00:00", "Mon *-*-* 00:00:00"]),  # cron: the 1st *or* a Monday
    ("0 0 */2 * 1", ["Mon *-*-01,03,05,07,09,11,13,15,17,19,21,23,25,27,29,31 00:00:00"]),  # and
    ("0 12 1,15 jan-mar *", ["*-01,02,03-01,15 12:00:00"]),
])
def test_on_calendar(when: str, calendar: list[str]) -> None:
    assert schedule.on_calendar(when) == calendar


def _systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert shutil.which("systemd-analyze"), "these tests need systemd-analyze: apt-get install systemd"
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=60,
                          env={**C, "TZ": "UTC"})


def _cron_times(c: schedule.CronTimes, after: dt.datetime, n: int) -> list[dt.datetime]:
    """The next ``n`` times cron runs ``c``, computed the way cron decides: with neither day field
    starting with ``*``, a day matching either runs the job, otherwise both must (crontab(5))."""
    out: list[dt.datetime] = []
    day = after.date()
    either = not c.fields[2].startswith("*") and not c.fields[4].startswith("*")
    while len(out) < n:
        dom, dow = day.day in c.days, (day.isoweekday() % 7) in c.weekdays
        if day.month in c.months and ((dom or dow) if either else (dom and dow)):
            out += [t for h in sorted(c.hours) for m in sorted(c.minutes)
                    if (t := dt.datetime(day.year, day.month, day.day, h, m)) > after]
        day += dt.timedelta(days=1)
    return out[:n]


@pytest.mark.parametrize("when", ["hourly", "daily", "weekly", "*/15 9-17 * * 1-5", "0 0 1 * 1",
                                  "30 4 1-7 * 6", "0 0 */10 * 0", "45 23 * feb,dec sun,7",
                                  "0 6 13 * fri", "5 4 * * *", "0 0 31 * *"])
def test_systemd_fires_when_cron_would(when: str) -> None:
    """systemd's own calendar parser (no systemd running) against cron's rules, 40 runs ahead."""
    base = dt.datetime(2026, 1, 1, 0, 0)
    proc = _systemd_analyze("calendar", "--iterations=40", "--base-time=2026-01-01 00:00:00 UTC",
                            *schedule.on_calendar(when))
    assert proc.returncode == 0, proc.stderr
    fired = sorted({dt.datetime.strptime(t, "%Y-%m-%d %H:%M:%S") for t in re.findall(
        r"(?:Next elapse|Iter\. #\d+): \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", proc.stdout)})
    assert fired[:40] == _cron_times(schedule.parse_cron(when), base, 40)


def test_systemd_accepts_the_units(tmp_path: Path, source: str) -> None:
    """``systemd-analyze verify`` loads the units as the manager would (an unknown ``%`` specifier,
    unbalanced quoting or a bad calendar fails it)."""
    p = make_project(tmp_path / (HOSTILE + " %z"))  # %z: no such specifier, so it must be escaped
    job = Job(p, source, "upgrade", "0 0 1 * 1")
    service, timer = schedule.render_units(job, FAKE, ok_codes=[11])
    name = schedule.unit_name(p)
    (tmp_path / f"{name}.service").write_text(service)
    (tmp_path / f"{name}.timer").write_text(timer)
    proc = _systemd_analyze("verify", "--man=no", str(tmp_path / f"{name}.timer"),
                            str(tmp_path / f"{name}.service"))
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stderr


def test_show_and_remove_find_systemd_units_without_systemd(project: Path, source: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Units written by an earlier install (on a machine whose systemd was up) are listed, and
    removed with their files when the user instance does not answer; installing with cron
    removes them too, so a project never has two schedules."""
    monkeypatch.setattr(schedule, "systemd_answers", lambda: False)
    job = Job(project, source, "check", "daily")
    d = schedule.unit_dir()
    assert d == Path(os.environ["HOME"]) / ".config" / "systemd" / "user"

    def write_units() -> None:
        d.mkdir(parents=True, exist_ok=True)
        service, timer = schedule.render_units(job, FAKE)
        (d / f"{schedule.unit_name(project)}.service").write_text(service)
        (d / f"{schedule.unit_name(project)}.timer").write_text(timer)

    write_units()
    (d / "unrelated.service").write_text("[Service]\nExecStart=/bin/true\n")
    [entry] = schedule.show(project)
    assert (entry.backend, entry.what, entry.when, entry.command) == (
        "systemd", "check", "daily", schedule.command(job, FAKE))
    assert entry.on_calendar == ("*-*-* 00:00:00",)
    assert schedule.remove(project, "cron") is False
    assert schedule.remove(project) is True
    assert sorted(f.name for f in d.iterdir()) == ["unrelated.service"]
    write_units()
    schedule.install(job, "cron", program=FAKE)
    assert [e.backend for e in schedule.show(project)] == ["cron"]
    assert sorted(f.name for f in d.iterdir()) == ["unrelated.service"]
