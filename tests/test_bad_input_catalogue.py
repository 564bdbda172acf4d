"""The bad-input and hostile-conditions catalogue (issue 6): every case asserts the exit code,
that the message names the cause and the next step, and that nothing was changed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO, digest, invoke, sessions, upgrade, wait_for
from scenario_lib import git
from test_deps_and_restart import _clone as clone

from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import SampleSource

P = ".praxis-os"



@dataclass
class Ctx:
    tmp: Path
    source: SampleSource
    project: Path
    src: str  # --source value


@dataclass
class Case:
    id: str
    setup: Callable[[Ctx], list[str] | None]  # returns the CLI args (default: upgrade)
    code: int
    says: tuple[str, ...]


def _args(ctx: Ctx) -> list[str]:
    return ["upgrade", "--source", ctx.src, "--project", str(ctx.project), "--yes"]


def _missing_source(ctx: Ctx) -> list[str]:
    return ["upgrade", "--project", str(ctx.project), "--yes"]


def _source_gone(ctx: Ctx) -> None:
    ctx.src = str(ctx.tmp / "no-such-dir")


def _not_git(ctx: Ctx) -> None:
    d = ctx.tmp / "plain"
    (d / "universal").mkdir(parents=True)
    (d / "mcp_server").mkdir()
    ctx.src = str(d)


def _dirty(ctx: Ctx) -> None:
    d = clone(ctx.source, ctx.tmp / "dirty")
    (d / "scripts" / "build_rag_index.py").write_text("# edited, not committed\n")
    ctx.src = str(d)


def _no_universal(ctx: Ctx) -> None:
    d = clone(ctx.source, ctx.tmp / "nouniv")
    git(d, "rm", "-rq", "universal")
    git(d, "commit", "-qm", "x")
    ctx.src = str(d)


def _no_server(ctx: Ctx) -> None:
    d = clone(ctx.source, ctx.tmp / "nosrv")
    git(d, "rm", "-rq", "mcp_server")
    git(d, "commit", "-qm", "x")
    ctx.src = str(d)


def _subdir(ctx: Ctx) -> None:
    ctx.src = str(ctx.source.path / "universal")


def _unreachable_url(ctx: Ctx) -> None:
    ctx.src = "file:///nonexistent/praxis-os.git"


def _no_install(ctx: Ctx) -> None:
    os.rename(ctx.project / P, ctx.tmp / "moved-away")


def _project_gone(ctx: Ctx) -> list[str]:
    return ["upgrade", "--source", ctx.src, "--project", str(ctx.tmp / "nope"), "--yes"]


def _not_writable(ctx: Ctx) -> None:
    subprocess.run(["mount", "--bind", str(ctx.project), str(ctx.project)], check=True)
    subprocess.run(["mount", "-o", "remount,ro,bind", str(ctx.project)], check=True)


def _full_fs(ctx: Ctx) -> list[str]:
    mnt = ctx.tmp / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], check=True)
    proj = make_project(mnt / "proj", ctx.source.path, ctx.source.v1)
    (mnt / "filler").write_bytes(b"\0" * (2 << 20))
    ctx.project = proj
    return None  # type: ignore[return-value]


def _corrupt_state(ctx: Ctx) -> None:
    (ctx.project / P / ".cache/state/upgrade-0000.json").write_text("{not json")


def _future_state(ctx: Ctx) -> None:
    (ctx.project / P / ".cache/state/upgrade-0001.json").write_text(json.dumps(
        {"schema_version": 99, "session_id": "upgrade-0001", "workflow_type": "praxis_os_upgrade_v1"}))


def _bad_flag(flag: str, value: str) -> Callable[[Ctx], list[str]]:
    return lambda ctx: _args(ctx) + [flag, value]


def _abort_conflicts(ctx: Ctx) -> list[str]:
    return _args(ctx) + ["--on-conflict", "abort"]


def _ask_without_tty(ctx: Ctx) -> list[str]:
    return _args(ctx) + ["--on-conflict", "ask"]


def _symlink_area(ctx: Ctx) -> None:
    os.replace(ctx.project / P / "scripts", ctx.tmp / "scripts-elsewhere")
    os.symlink(ctx.tmp / "scripts-elsewhere", ctx.project / P / "scripts")


def _source_symlink(ctx: Ctx) -> None:
    d = clone(ctx.source, ctx.tmp / "linky")
    os.symlink("../../../../etc/passwd", d / "universal" / "standards" / "escape.md")
    git(d, "add", "-A")
    git(d, "commit", "-qm", "x")
    ctx.src = str(d)


def _downgrade(ctx: Ctx) -> None:
    d = clone(ctx.source, ctx.tmp / "older")
    git(d, "checkout", "-q", "--detach", ctx.source.v1)
    m = ctx.project / P / ".installed-manifest.json"
    data = json.loads(m.read_text())
    data["source_commit"] = ctx.source.v2
    m.write_text(json.dumps(data))
    ctx.src = str(d)


def _venv_missing(ctx: Ctx) -> None:
    shutil.rmtree(ctx.project / P / "venv")


def _lock_held(ctx: Ctx) -> list[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from filelock import FileLock; "
         f"l=FileLock({str(ctx.project / P / '.upgrade-lock')!r}); l.acquire(); "
         "print('locked', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    ctx.tmp.joinpath("holder.pid").write_text(str(holder.pid))
    return _args(ctx)


def _unknown_backup(ctx: Ctx) -> list[str]:
    assert upgrade(ctx.source, ctx.project).code == 0  # a backup exists, just not that one
    return ["rollback", "--project", str(ctx.project), "--backup", "20000101-000000-abcdef"]


def _nothing_to_rollback(ctx: Ctx) -> list[str]:
    return ["rollback", "--project", str(ctx.project)]


def _status_missing(ctx: Ctx) -> list[str]:
    return ["status", "--project", str(ctx.tmp / "missing")]


def _relative_remote_project(ctx: Ctx) -> list[str]:
    return ["upgrade", "--source", ctx.src, "--hosts", "root@127.0.0.1:1=relative/path"]


def _hosts_file_missing(ctx: Ctx) -> list[str]:
    return ["upgrade", "--source", ctx.src, "--hosts", f"@{ctx.tmp / 'nohosts.txt'}",
            "--project", "/srv/app"]


CASES = [
    Case("missing-source", _missing_source, 2, ("no source given", "--source")),
    Case("source-does-not-exist", _source_gone, 2, ("does not exist", "clone it first")),
    Case("source-not-a-git-repo", _not_git, 2, ("not a git repository",)),
    Case("source-dirty", _dirty, 3, ("uncommitted changes", "git stash")),
    Case("source-without-universal", _no_universal, 2, ("no universal/",)),
    Case("source-without-mcp-server", _no_server, 2, ("no mcp_server/",)),
    Case("source-is-a-subdirectory", _subdir, 2, ("not its root", "pass --source")),
    Case("unreachable-git-url", _unreachable_url, 2, ("cannot clone", "check the URL")),
    Case("target-without-praxis-os", _no_install, 2, ("no prAxIs OS installation", "--project")),
    Case("project-does-not-exist", _project_gone, 2, ("does not exist", "--project")),
    Case("target-not-writable", _not_writable, 3, ("not writable", "run as the owner")),
    Case("target-filesystem-full", _full_fs, 3, ("not enough free space", "free some space")),
    Case("corrupted-state-file", _corrupt_state, 2, ("unreadable", "move it aside")),
    Case("state-file-from-a-future-schema", _future_state, 2, ("newer upgrader", "newer")),
    Case("bad-on-conflict", _bad_flag("--on-conflict", "maybe"), 2, ("not a valid choice",)),
    Case("bad-deps", _bad_flag("--deps", "sometimes"), 2, ("not a valid choice", "--deps auto")),
    Case("bad-post-install", _bad_flag("--post-install", "later"), 2, ("not a valid choice",)),
    Case("conflicts-with-abort", _abort_conflicts, 5, ("changed by you", "nothing was changed")),
    Case("ask-without-a-terminal", _ask_without_tty, 5, ("needs a terminal", "behaves as abort")),
    Case("symlinked-area", _symlink_area, 3, ("is a symlink", "replace it with a real copy")),
    Case("symlink-escape-in-source", _source_symlink, 3, ("is a symlink", "regular file")),
    Case("downgrade", _downgrade, 3, ("older than the installed", "--allow-downgrade")),
    Case("venv-python-missing", _venv_missing, 3, ("venv interpreter", "python3 -m venv")),
    Case("lock-held-by-a-live-process", _lock_held, 4, ("another upgrade holds the lock",
                                                        "wait for it")),
    Case("rollback-unknown-backup", _unknown_backup, 2, ("not found", "--backup ID")),
    Case("rollback-with-nothing-to-undo", _nothing_to_rollback, 2, ("nothing to roll back",)),
    Case("status-of-a-missing-project", _status_missing, 2, ("does not exist",)),
    Case("remote-project-not-absolute", _relative_remote_project, 2, ("not absolute",)),
    Case("hosts-file-missing", _hosts_file_missing, 2, ("cannot read the host list", "@FILE")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, source: SampleSource) -> None:
    proj = make_project(tmp_path / "proj", source.path, source.v1)
    ctx = Ctx(tmp_path, source, proj, str(source.path))
    mounts: list[Path] = []
    try:
        args = case.setup(ctx)
        if case.id == "target-not-writable":
            mounts.append(ctx.project)
        if case.id == "target-filesystem-full":
            mounts.append(tmp_path / "small")
        before = digest(ctx.project) if (ctx.project / P).exists() else {}
        lock_before = (ctx.project / P / ".upgrade-lock").exists()
        r = invoke(*(args or _args(ctx)))
        text = r.text
        assert r.code == case.code, text
        for s in case.says:
            assert s in text, (s, text)
        assert "next:" in text or case.code == 10, text  # every error says what to do next
        assert "Traceback" not in text
        if (ctx.project / P).exists():
            assert digest(ctx.project) == before  # nothing changed
            assert (ctx.project / P / ".upgrade-lock").exists() == lock_before
            if "state" not in case.id:
                assert all(s["status"] != "running" for s in sessions(ctx.project))
    finally:
        pid = tmp_path / "holder.pid"
        if pid.exists():
            os.kill(int(pid.read_text()), signal.SIGKILL)
        for m in reversed(mounts):
            subprocess.run(["umount", "-l", str(m)], check=False)


# -- hostile conditions that the upgrade survives (exit 0, user data intact) ------------------------
def test_unreadable_user_file_is_left_alone(project: Path, source: SampleSource) -> None:
    f = project / P / "specs" / "secret.md"
    f.write_text("mine\n")
    f.chmod(0)
    assert upgrade(source, project).code == 0
    assert (f.stat().st_mode & 0o777) == 0 and f.read_text() == "mine\n"


def test_non_utf8_file_names(tmp_path: Path, source: SampleSource) -> None:
    d = clone(source, tmp_path / "src")
    name = os.fsdecode(b"caf\xe9-latin1.md")
    (d / "universal" / "standards" / name).write_text("latin-1 name\n")
    git(d, "add", "-A")
    git(d, "commit", "-qm", "non-utf8")
    proj = make_project(tmp_path / "p", source.path, source.v1)
    user = proj / P / "workspace" / os.fsdecode(b"notes-\xff.md")
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text("mine\n")
    r = upgrade(d, proj)
    assert r.code == 0, r.text
    assert (proj / P / "standards" / "universal" / name).read_text() == "latin-1 name\n"
    assert user.read_text() == "mine\n"
    assert invoke("rollback", "--project", str(proj)).code == 0
    assert not (proj / P / "standards" / "universal" / name).exists()


def test_very_long_paths(tmp_path: Path, source: SampleSource) -> None:
    d = clone(source, tmp_path / "src")
    deep = d / "universal" / "standards" / ("d" * 60) / ("e" * 60) / ("f" * 60)
    deep.mkdir(parents=True)
    (deep / ("n" * 230 + ".md")).write_text("long\n")
    git(d, "add", "-A")
    git(d, "commit", "-qm", "long")
    proj = make_project(tmp_path / "p", source.path, source.v1)
    r = upgrade(d, proj)
    assert r.code == 0, r.text
    assert invoke("rollback", "--project", str(proj)).code == 0


def test_a_200_mb_file_in_the_source(tmp_path: Path, source: SampleSource) -> None:
    d = clone(source, tmp_path / "src")
    big = d / "universal" / "standards" / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(200):
            fh.write(os.urandom(1 << 20))
    git(d, "add", "-A")
    git(d, "commit", "-qm", "big")
    proj = make_project(tmp_path / "p", source.path, source.v1)
    r = upgrade(d, proj)
    assert r.code == 0, r.text
    assert (proj / P / "standards/universal/big.bin").stat().st_size == 200 << 20


@pytest.mark.parametrize("phase,code", [("preflight", None), ("backup", 130), ("content", 6),
                                        ("server", 6), ("validate", 6), ("cleanup", 8)])
def test_ctrl_c_during_each_phase(project: Path, source: SampleSource, pause_flag: Path,
                                  phase: str, code: int | None) -> None:
    before = digest(project)
    point = "fs:before-replace#1" if phase == "preflight" else f"phase-start:{phase}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRAXIS_")}
    env.update(PRAXIS_UPGRADE_PAUSE=point, PRAXIS_UPGRADE_PAUSE_FLAG=str(pause_flag))
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "upgrade", "--source", str(source.path),
         "--project", str(project), "--yes"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(pause_flag.exists)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    want = 130 if code is None else code
    assert proc.returncode == want, out + err
    assert "next:" in err
    if want in (6, 130):
        assert digest(project) == before  # rolled back, or nothing was changed
    if want == 8:  # the upgrade itself is complete; rerunning finishes the cleanup
        r = invoke("upgrade", "--project", str(project), "--yes")
        assert r.code == 0 and "[5/5] cleanup ok" in r.out
