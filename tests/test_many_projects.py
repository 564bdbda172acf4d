"""Issue 15.1 and 15.3: many projects at once (``--projects``, ``discover``), ``check`` and the
``schedule`` task, with real git sources, real projects, real processes and the real crontab."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from conftest import REPO, invoke, praxis, upgrade, wait_for
from test_schedule import crontab_l, crontab_set

from upgrade_tasks.errors import EXIT_UPGRADE_AVAILABLE
from upgrade_tasks.fleet import Console, HostResult, Redactor
from upgrade_tasks.jsondoc import SCHEMA_PATH
from upgrade_tasks.sample import make_project, tree_digest
from upgrade_tasks.sample_source import SampleSource

VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
P = ".praxis-os"


def doc(out: str) -> dict[str, object]:
    d = json.loads(out)
    errors = list(VALIDATOR.iter_errors(d))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors[:5]]
    return d  # type: ignore[no-any-return]


def installed(project: Path) -> str | None:
    v = project / P / "VERSION.json"
    return json.loads(v.read_text())["installed_commit"] if v.exists() else None  # type: ignore[no-any-return]


def whole_tree(project: Path) -> dict[str, tuple[str, int, float]]:
    """Everything, bookkeeping and mtimes included: a read-only command changes none of it."""
    return tree_digest(project, exclude=(), mtimes=True)


# -- check --------------------------------------------------------------------------------------
def test_check_says_available_then_up_to_date_and_writes_nothing(project: Path,
                                                                source: SampleSource) -> None:
    before = whole_tree(project)
    r = invoke("check", "--source", str(source.path), "--project", str(project))
    assert r.code == EXIT_UPGRADE_AVAILABLE, r.text
    assert f"installed {source.v1[:10]}, available {source.v2[:10]}" in r.out
    assert "1 upstream commit(s)" in r.out and "files changed" in r.out
    assert r.err == ""  # exit 11 is not an error: nothing on stderr
    assert whole_tree(project) == before
    d = doc(invoke("check", "--source", str(source.path), "--project", str(project), "--json").out)
    assert d["ok"] is True and d["exit_code"] == 11 and d["error"] is None
    assert d["result"]["upgrade_available"] is True and d["result"]["commits_behind"] == 1  # type: ignore[index]
    # the same through a URL: git ls-remote, nothing cloned
    r = invoke("check", "--source", f"file://{source.path}", "--project", str(project))
    assert r.code == 11 and "commits not counted" in r.out, r.text
    assert upgrade(source, project).code == 0
    r = invoke("check", "--source", str(source.path), "--project", str(project))
    assert r.code == 0 and r.out.startswith("up to date"), r.text
    r = invoke("check", "--source", str(source.path), "--ref", source.v1, "--project", str(project))
    assert r.code == 0 and "newer than the source" in r.out, r.text


def test_check_recognises_an_installers_install(project: Path, source: SampleSource) -> None:
    (project / P / ".installed-manifest.json").unlink()  # as the real installers leave it
    r = praxis("check", "--source", str(source.path), "--project", str(project))
    assert r.code == 11, r.text
    assert f"installed {source.v1[:10]}" in r.out
    r = invoke("check", "--project", str(project))
    assert r.code == 2 and "no source given" in r.err


# -- --projects ---------------------------------------------------------------------------------
@pytest.fixture
def fleet_of_projects(tmp_path: Path, source: SampleSource) -> list[Path]:
    return [make_project(tmp_path / "code" / f"app{i}", source.path, source.v1) for i in range(4)]


def report(tmp_path: Path) -> dict[str, object]:
    return json.loads((tmp_path / "rep" / "report.json").read_text())  # type: ignore[no-any-return]


def test_projects_one_failure_touches_no_other_then_failed_txt_reruns(
        tmp_path: Path, source: SampleSource, fleet_of_projects: list[Path]) -> None:
    apps = fleet_of_projects
    os.symlink(apps[0], tmp_path / "code" / "alias0")  # the same project a second time
    broken = apps[2]
    (broken / P / "mcp_server").rename(tmp_path / "elsewhere")  # this one fails: a symlinked
    os.symlink(tmp_path / "elsewhere", broken / P / "mcp_server")  # area is refused
    before_broken = tree_digest(broken / P)
    r = invoke("upgrade", "--source", str(source.path), "--projects", str(tmp_path / "code" / "*"),
               "--parallel", "2", "--max-fail", "50", "--report-dir", str(tmp_path / "rep"),
               timeout=300)
    assert r.code == 9, r.text
    assert "handled once" in r.out and "alias0" in r.out
    assert "3/4 project(s) ok" in r.out
    assert [installed(a) for a in apps] == [source.v2, source.v2, None, source.v2]
    assert tree_digest(broken / P) == before_broken  # refused before any change
    rep = report(tmp_path)
    assert rep["kind"] == "project" and len(rep["projects"]) == 4  # type: ignore[arg-type]
    failed = (tmp_path / "rep" / "failed.txt").read_text().split()
    assert failed == [str(broken)]
    (broken / P / "mcp_server").unlink()
    (tmp_path / "elsewhere").rename(broken / P / "mcp_server")
    r = invoke("upgrade", "--source", str(source.path), "--projects", f"@{tmp_path / 'rep' / 'failed.txt'}",
               "--report-dir", str(tmp_path / "rep"))
    assert r.code == 0 and "1/1 project(s) ok" in r.out, r.text
    assert installed(broken) == source.v2
    # status, check and rollback over all of them, with --json
    r = invoke("check", "--source", str(source.path), "--projects", ",".join(map(str, apps)),
               "--json", "--report-dir", str(tmp_path / "rep"))
    assert r.code == 0, r.text
    assert all(p["result"] == "ok" for p in doc(r.out)["result"]["fleet"]["projects"])  # type: ignore[index]
    r = invoke("rollback", "--projects", ",".join(map(str, apps[:2])), "--report-dir",
               str(tmp_path / "rep"))
    assert r.code == 0, r.text
    assert [installed(a) for a in apps[:2]] == [None, None]
    r = invoke("check", "--source", str(source.path), "--projects", ",".join(map(str, apps)),
               "--report-dir", str(tmp_path / "rep"))
    assert r.code == 11 and "upgrade available" in r.out, r.text


def test_a_project_whose_process_is_killed_touches_no_other_and_resumes(
        tmp_path: Path, source: SampleSource, fleet_of_projects: list[Path]) -> None:
    """Each project runs in a process of its own: SIGKILL one mid-upgrade (a crash, no cleanup)
    and the others finish, the rollout reports it, and its rerun resumes from its checkpoint."""
    apps = fleet_of_projects[:3]
    victim = apps[1]
    flag = tmp_path / "pause.flag"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRAXIS_UPGRADE_", "INVOKE_UPGRADE_"))}
    env.update(PRAXIS_UPGRADE_PAUSE="phase-done:backup", PRAXIS_UPGRADE_PAUSE_FLAG=str(flag))
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "upgrade", "--source", str(source.path),
         "--projects", ",".join(map(str, apps)), "--parallel", "3", "--max-fail", "100",
         "--report-dir", str(tmp_path / "rep")],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        owner = victim / P / ".upgrade-lock.owner.json"
        wait_for(lambda: flag.exists() and owner.exists(), timeout=60)
        os.kill(json.loads(owner.read_text())["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            flag.unlink(missing_ok=True)  # let the others go on (each pauses once)
            time.sleep(0.05)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 9, out
    assert "2/3 project(s) ok" in out and "killed by signal 9" in out, out
    assert [installed(a) for a in apps] == [source.v2, None, source.v2]
    assert (tmp_path / "rep" / "failed.txt").read_text().split() == [str(victim)]
    r = invoke("upgrade", "--source", str(source.path), "--projects",
               f"@{tmp_path / 'rep' / 'failed.txt'}", "--report-dir", str(tmp_path / "rep"))
    assert r.code == 0 and "1/1 project(s) ok" in r.out, r.text
    assert installed(victim) == source.v2
    assert "resum" in r.out, r.out  # from the killed run's checkpoint


def test_sigterm_to_the_rollout_rolls_the_running_projects_back_and_starts_no_more(
        tmp_path: Path, source: SampleSource, fleet_of_projects: list[Path]) -> None:
    apps = fleet_of_projects
    before = [tree_digest(a / P) for a in apps]
    flag = tmp_path / "pause.flag"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRAXIS_UPGRADE_", "INVOKE_UPGRADE_"))}
    env.update(PRAXIS_UPGRADE_PAUSE="phase-done:content", PRAXIS_UPGRADE_PAUSE_FLAG=str(flag))
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "upgrade", "--source", str(source.path),
         "--projects", ",".join(map(str, apps)), "--parallel", "2", "--report-dir",
         str(tmp_path / "rep")],
        cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)  # SIGINT inherited ignored
    try:
        wait_for(lambda: flag.exists() and all((a / P / ".upgrade-lock.owner.json").exists()
                                               for a in apps[:2]), timeout=60)
        children = [json.loads((a / P / ".upgrade-lock.owner.json").read_text())["pid"]
                    for a in apps[:2]]
        time.sleep(0.3)  # both are held at the pause (each has changed its content by then)
        proc.send_signal(signal.SIGTERM)  # the rollout only, as a service manager would
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        flag.unlink(missing_ok=True)
    assert proc.returncode == 130, out
    assert "interrupted: nothing new starts" in out and "stopped: interrupted" in out, out
    for pid in children:  # no process left behind
        assert not os.path.exists(f"/proc/{pid}"), out
    # the two running projects rolled back to exactly what they were; the others never started
    assert [tree_digest(a / P) for a in apps] == before
    assert all(installed(a) is None for a in apps)
    rows = report(tmp_path)["projects"]  # type: ignore[index]
    assert [row["result"] for row in rows] == ["failed", "failed", "skipped", "skipped"]  # type: ignore[index]
    assert (tmp_path / "rep" / "failed.txt").read_text().split() == [str(a) for a in apps]
    r = invoke("upgrade", "--source", str(source.path), "--projects",
               f"@{tmp_path / 'rep' / 'failed.txt'}", "--report-dir", str(tmp_path / "rep"))
    assert r.code == 0 and "4/4 project(s) ok" in r.out, r.text


def test_a_closed_output_pipe_never_fails_an_upgrade(project: Path, source: SampleSource) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "upgrade_tasks", "upgrade", "--source", str(source.path),
         "--project", str(project), "--yes"],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    first = proc.stdout.readline()  # ``| head -1``: the reader takes one line and goes
    proc.stdout.close()
    assert proc.wait(timeout=120) == 0, first
    assert installed(project) == source.v2


def test_a_failed_canary_stops_the_projects(tmp_path: Path, source: SampleSource,
                                            fleet_of_projects: list[Path]) -> None:
    apps = fleet_of_projects
    (apps[0] / P / "mcp_server").rename(tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", apps[0] / P / "mcp_server")
    r = invoke("upgrade", "--source", str(source.path), "--projects", ",".join(map(str, apps)),
               "--canary", "1", "--parallel", "3", "--report-dir", str(tmp_path / "rep"), "--json")
    assert r.code == 10, r.text
    d = doc(r.out)
    rows = d["result"]["fleet"]["projects"]  # type: ignore[index]
    assert [p["result"] for p in rows] == ["failed", "skipped", "skipped", "skipped"]
    assert all(installed(a) is None for a in apps)


def test_projects_sharing_a_venv_run_one_after_the_other(tmp_path: Path, source: SampleSource,
                                                         fleet_of_projects: list[Path]) -> None:
    a, b = fleet_of_projects[:2]
    shared = tmp_path / "shared-venv"
    shutil.move(str(a / P / "venv"), shared)
    shutil.rmtree(b / P / "venv")
    for p in (a, b):
        os.symlink(shared, p / P / "venv")
    c = fleet_of_projects[2]
    (b / P / "mcp_server").rename(tmp_path / "elsewhere")  # b fails: a symlinked area is refused
    os.symlink(tmp_path / "elsewhere", b / P / "mcp_server")
    r = invoke("upgrade", "--source", str(source.path), "--projects", f"{a},{b},{c}", "--parallel",
               "2", "--max-fail", "100", "--report-dir", str(tmp_path / "rep"))
    assert r.code == 9, r.text
    assert "shares one venv with" in r.out and "one after the other" in r.out
    assert "upgrade on 3 project(s)" in r.out and "2/3 project(s) ok" in r.out, r.out
    # one row per project (never the chain "a,b"), so the counts and the rerun list are right
    assert [row["host"] for row in report(tmp_path)["projects"]] == [str(a), str(b), str(c)]  # type: ignore[attr-defined]
    assert (tmp_path / "rep" / "failed.txt").read_text().split() == [str(b)]
    (b / P / "mcp_server").unlink()
    (tmp_path / "elsewhere").rename(b / P / "mcp_server")
    r = invoke("upgrade", "--source", str(source.path), "--projects",
               f"@{tmp_path / 'rep' / 'failed.txt'}", "--report-dir", str(tmp_path / "rep"))
    assert r.code == 0, r.text
    assert installed(a) == installed(b) == installed(c) == source.v2


def test_projects_refusals(tmp_path: Path, source: SampleSource, fleet_of_projects: list[Path]) -> None:
    r = invoke("upgrade", "--source", str(source.path), "--projects", str(tmp_path / "nothing-*"))
    assert r.code == 2 and "names no project" in r.err, r.text
    r = invoke("upgrade", "--source", str(source.path), "--projects", str(fleet_of_projects[0]),
               "--on-conflict", "ask")
    assert r.code == 2 and "cannot be used with --projects" in r.err, r.text
    r = invoke("status", "--projects", f"{fleet_of_projects[0]},{tmp_path / 'gone'}")
    assert r.code == 2 and "do not exist" in r.err, r.text
    r = invoke("status", "--projects", str(fleet_of_projects[0] / P / "config.json"))
    assert r.code == 2 and "which is a file" in r.err, r.text
    # an empty value (``--projects "$UNSET"``) never means "the project in the current directory"
    before = tree_digest(fleet_of_projects[0] / P)
    for flag in ("--projects", "--project"):
        r = invoke("upgrade", "--source", str(source.path), flag, "", "--yes", cwd=fleet_of_projects[0])
        assert r.code == 2 and f"{flag} is given an empty value" in r.err, r.text
    assert tree_digest(fleet_of_projects[0] / P) == before


def test_relative_names_become_absolute_and_a_list_is_read_from_its_own_directory(
        tmp_path: Path, source: SampleSource, fleet_of_projects: list[Path]) -> None:
    code = tmp_path / "code"
    r = invoke("check", "--source", str(source.path), "--projects", "app*", "--report-dir",
               str(tmp_path / "rep"), cwd=code)
    assert r.code == 11, r.text
    assert [row["host"] for row in report(tmp_path)["projects"]] == [  # type: ignore[attr-defined]
        str(p) for p in fleet_of_projects]
    (code / "list.txt").write_text("app0\n# a comment\napp1  # the second\n")
    r = invoke("check", "--source", str(source.path), "--projects", f"@{code / 'list.txt'}",
               "--report-dir", str(tmp_path / "rep"), cwd=Path("/"))
    assert r.code == 11 and "2/2 project(s) ok" in r.out, r.text


# -- discover ----------------------------------------------------------------------------------
def test_discover(tmp_path: Path, source: SampleSource) -> None:
    root = tmp_path / "code"
    a = make_project(root / "a", source.path, source.v1)
    make_project(root / "team" / "b", source.path, source.v1)
    legacy = root / "old"
    make_project(legacy, source.path, source.v1)
    (legacy / P).rename(legacy / ".agent-os")
    make_project(root / "a" / "node_modules" / "pkg", source.path, source.v1)  # never searched
    os.symlink(a, root / "link-to-a")  # links are not followed
    assert upgrade(source, a).code == 0
    r = invoke("discover", str(root), "--source", str(source.path), "--json")
    assert r.code == 0, r.text
    found = {Path(f["project"]).name: f for f in doc(r.out)["result"]["installs"]}  # type: ignore[index]
    assert set(found) == {"a", "b", "old"}
    assert found["a"]["behind"] is False and found["b"]["behind"] is True
    # an install newer than the source is not behind (check says "nothing to do" there too)
    r = invoke("discover", str(root), "--source", str(source.path), "--ref", source.v1, "--json")
    found = {Path(f["project"]).name: f for f in doc(r.out)["result"]["installs"]}  # type: ignore[index]
    assert found["a"]["behind"] is False and found["b"]["behind"] is False
    assert found["old"]["install"] == ".agent-os"
    r = invoke("discover", str(tmp_path / "missing"))
    assert r.code == 2 and "is not a directory" in r.err


# -- schedule ----------------------------------------------------------------------------------
def test_schedule_task_with_the_real_crontab(tmp_path: Path, project: Path, source: SampleSource,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    saved = crontab_l()
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home)}
    crontab_set(None)
    try:
        r = invoke("schedule", "--project", str(project), "--source", str(source.path), "--every",
                   "30 4 * * 1-5", "--job", "check", "--backend", "cron", env=env)
        assert r.code == 0, r.text
        tab = crontab_l() or b""
        assert b"30 4 * * 1-5" in tab and b" check " in tab and str(project).encode() in tab
        r = invoke("schedule", "--show", "--json", env=env)
        d = doc(r.out)
        (entry,) = d["result"]["schedules"]  # type: ignore[index]
        assert entry["what"] == "check" and entry["project"] == str(project.resolve())
        # what cron will run works, and logs: run the installed line as cron would
        line = next(ln for ln in tab.decode().splitlines() if ln.startswith("30 4"))
        cmd = line.split(" ", 5)[5].replace("\\%", "%")
        subprocess.run(["/bin/sh", "-c", cmd], env={"PATH": "/usr/bin:/bin", **env}, check=False,
                       timeout=120)
        log = (project / P / ".upgrade-state" / "schedule.log").read_text()
        assert "upgrade available" in log
        r = invoke("schedule", "--project", str(project), "--remove", env=env)
        assert r.code == 0 and "removed" in r.out
        assert crontab_l() is None
        r = invoke("schedule", "--project", str(project), env=env)
        assert r.code == 2 and "exactly one of" in r.err
    finally:
        crontab_set(saved)


def test_the_live_table_counts_only_finished_rows_and_names_projects() -> None:
    screen = io.StringIO()
    console = Console(Redactor([]), live=True, stream=screen)
    console.noun = "project"
    console.rows = {"/a": HostResult("/a", "running"), "/b": HostResult("/b", "ok")}
    console.finished(console.rows["/b"])
    assert "projects [" in screen.getvalue() and "1/2 done" in screen.getvalue()
    assert "hosts [" not in screen.getvalue()
