"""Issue 12: reproductions of the defects found by the hostile-state review.

Every test asserts the behaviour the issue (and the lead's decisions on it) asks for, through the
CLI in a subprocess and files on disk only. A test of a defect that still reproduces is marked
``xfail(strict=True)`` with ``issue 12 #N`` in its reason; remove the mark with the fix.

Promises checked (the lead's decisions):

* a state file that fails validation is refused with exit 2, a message naming the file and a
  command that repairs it, and nothing changed anywhere (the project tree and its parent directory
  hashed before and after, the upgrader's bookkeeping left out);
* an OS error in phases 2-4 rolls back (exit 6, the install as before); during the backup it is a
  refusal (exit 3) that says how much space is needed; never exit 1, never a traceback;
* signals, symlinked bookkeeping, special files, credentials in URLs, foreign bytes in
  ``.gitignore``, hidden working-tree edits and bad values all end with a documented code.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import http.server
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Result, digest, invoke, praxis, sessions, upgrade, wait_for
from scenario_lib import git

from upgrade_tasks.sample import EDITED_CONFLICT, make_project
from upgrade_tasks.sample_source import SampleSource

P = ".praxis-os"
#: The upgrader's own bookkeeping under .praxis-os: left out of "nothing changed" checks.
BOOKKEEPING = (".upgrade-state", ".cache/state", ".upgrade-reports", "UPDATE_LOG.txt",
               ".upgrade-lock", ".upgrade-lock.owner.json")


def xfail(n: str, why: str) -> pytest.MarkDecorator:
    """``n``: the defect's number in issue 12, or a name for the one without a number; ``why``:
    what the upgrader did before the fix (kept as documentation; the test now must pass)."""
    return pytest.mark.issue12(n)


# -- helpers ------------------------------------------------------------------------------------
def snap(root: Path, project: Path | None = None) -> dict[str, tuple[str, int]]:
    """Every entry under ``root`` (path -> content hash or kind, mode), never opening anything
    that is not a regular file; the upgrader's bookkeeping in ``project`` is left out."""
    skip = {str(project / P / b) for b in BOOKKEEPING} if project is not None else set()
    out: dict[str, tuple[str, int]] = {}
    for r, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if os.path.join(r, d) not in skip]
        for name in files + dirs:
            full = os.path.join(r, name)
            if full in skip or name.endswith(".flag"):
                continue
            st = os.lstat(full)
            if stat.S_ISREG(st.st_mode):
                with open(full, "rb") as fh:
                    val = hashlib.sha256(fh.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                val = "link:" + os.readlink(full)
            elif stat.S_ISDIR(st.st_mode):
                val = "dir"
            elif stat.S_ISFIFO(st.st_mode):
                val = "fifo"
            elif stat.S_ISSOCK(st.st_mode):
                val = "socket"
            else:
                val = "other"
            out[os.path.relpath(full, root)] = (val, stat.S_IMODE(st.st_mode))
    return out


def clean(r: Result) -> None:
    """No undocumented exit, no traceback without --debug."""
    assert r.code != 1, r.text
    assert "Traceback" not in r.text, r.text
    assert "error[unexpected]" not in r.text, r.text


def repair_command(text: str) -> bool:
    """The message's ``next:`` gives a command (in backticks, or a mv/rm/invoke/git line)."""
    nxt = text[text.find("next:"):] if "next:" in text else ""
    return bool(re.search(r"`[^`]+`|\b(mv|rm|invoke|git|chown)\s+\S", nxt))


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PRAXIS_UPGRADE_", "INVOKE_UPGRADE_"))}
    env.update(extra or {})
    return env


def start_cli(*args: str, env: dict[str, str] | None = None,
              preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), *args], cwd=REPO, env=cli_env(env),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=preexec_fn)


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> Result:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the CLI hung for {timeout}s:\n{out}{err}")
    return Result(proc.returncode, out, err)


def paused_upgrade(src: SampleSource | Path | str, project: Path, point: str, flag: Path,
                   env: dict[str, str] | None = None,
                   preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen[str]:
    """Start ``invoke upgrade`` and return once it is held at ``point``."""
    s = str(src.path if isinstance(src, SampleSource) else src)
    proc = start_cli("upgrade", "--source", s, "--project", str(project), "--yes",
                     env={"PRAXIS_UPGRADE_PAUSE": point, "PRAXIS_UPGRADE_PAUSE_FLAG": str(flag),
                          **(env or {})}, preexec_fn=preexec_fn)
    wait_for(lambda: flag.exists() or proc.poll() is not None)
    if not flag.exists():
        r = finish(proc)
        pytest.fail(f"the run never reached {point}: exit {r.code}\n{r.text}")
    return proc


def killed_at(source: SampleSource | Path, project: Path, point: str) -> None:
    r = upgrade(source, project, env={"PRAXIS_UPGRADE_KILL": point})
    assert r.code == -signal.SIGKILL, r.text


def checkpoint(project: Path) -> Path:
    (path,) = sorted((project / P / ".upgrade-state").glob("upgrade-*.json"))
    return path


def edit_json(path: Path, fn: Callable[[dict[str, Any]], object]) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def backup_dirs(project: Path) -> list[Path]:
    d = project / P / ".backups"
    return sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []


def reports_text(project: Path) -> str:
    d = project / P / ".upgrade-reports"
    return "".join(p.read_text(errors="replace") for p in sorted(d.glob("*"))) if d.is_dir() else ""


def new_release(source: SampleSource, dest: Path, changes: dict[str, bytes]) -> Path:
    """A clone of the sample source with one more commit ("v3") on top of v2."""
    subprocess.run(["git", "clone", "-q", str(source.path), str(dest)], check=True)
    for rel, data in changes.items():
        f = dest / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
    git(dest, "add", "-A")
    git(dest, "commit", "-qm", "v3")
    return dest


def appended(source: SampleSource, rel: str, extra: bytes) -> dict[str, bytes]:
    return {rel: (source.path / rel).read_bytes() + extra}


@contextlib.contextmanager
def tmpfs(mnt: Path, size: str) -> Iterator[Path]:
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, leave: int = 0) -> None:
    """Fill the filesystem at ``mnt`` (as another process would), leaving ``leave`` bytes."""
    filler = mnt / "filler"
    chunk = b"\0" * (64 << 10)
    with open(filler, "ab") as fh:
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    for size in (4096, 512, 1):  # the last partial chunks
        with contextlib.suppress(OSError), open(filler, "ab") as fh:
            while True:
                fh.write(b"\0" * size)
                fh.flush()
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))


# -- #1: paths inside state files are trusted ------------------------------------------------------
#: (CLI args, the file the message must name, extra environment)
Setup = tuple[list[str], str, dict[str, str]]


@dataclass
class StateCase:
    id: str
    setup: Callable[[SampleSource, Path, Path], Setup]


def _ckpt_backup_id_in_backup(source: SampleSource, project: Path,
                              tmp: Path) -> Setup:
    """Killed while making its backup; the resume makes the backup again, at .backups/.."""
    killed_at(source, project, "backup:file#5")
    ck = checkpoint(project)
    edit_json(ck, lambda d: d["phase_artifacts"]["1"].__setitem__("backup_id", ".."))
    return ["upgrade", "--project", str(project), "--yes"], ck.name, {}


def _ckpt_backup_id_after_content(source: SampleSource, project: Path,
                                  tmp: Path) -> Setup:
    killed_at(source, project, "phase-done:content")
    ck = checkpoint(project)
    edit_json(ck, lambda d: d["phase_artifacts"]["1"].__setitem__("backup_id", ".."))
    # the resume then fails, as any may: its rollback restores "backup" .praxis-os/.backups/..
    return ["upgrade", "--project", str(project), "--yes"], ck.name, \
        {"PRAXIS_UPGRADE_FAULT": "phase-start:validate"}


def _ckpt_session_id(source: SampleSource, project: Path, tmp: Path) -> Setup:
    killed_at(source, project, "phase-done:content")
    ck = checkpoint(project)
    edit_json(ck, lambda d: d.__setitem__("session_id", "../../../escaped-report"))
    return ["upgrade", "--project", str(project), "--yes"], ck.name, {}


def _backup_manifest_entry(source: SampleSource, project: Path, tmp: Path) -> Setup:
    assert upgrade(source, project).code == 0
    (b,) = backup_dirs(project)
    data = b"planted by a hostile backup manifest\n"
    rel = "../../escaped.txt"  # .praxis-os/../../escaped.txt: beside the project
    copy = b / "files" / "escaped.txt"  # where the backup store looks for it
    copy.write_bytes(data)
    edit_json(b / "MANIFEST.json", lambda d: d["entries"].__setitem__(rel, {
        "kind": "file", "mode": 0o644, "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data)}))
    return ["rollback", "--project", str(project)], "MANIFEST.json", {}


def _installed_manifest_entry(source: SampleSource, project: Path,
                              tmp: Path) -> Setup:
    app = project / "app.py"
    data = b"print('the project's own application')\n"
    app.write_bytes(data)
    edit_json(project / P / ".installed-manifest.json",
              lambda d: d["files"].__setitem__("../app.py", {
                  "sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                  "blob": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}))
    return ["upgrade", "--source", str(source.path), "--project", str(project), "--yes"], \
        ".installed-manifest.json", {}


def _backup_manifest_venv(source: SampleSource, project: Path, tmp: Path) -> Setup:
    """Beyond the list: the backup manifest's venv record is a path too (moved_to)."""
    assert upgrade(source, project).code == 0
    (b,) = backup_dirs(project)
    outside = tmp / "outside-dir"
    outside.mkdir()
    (outside / "precious.txt").write_text("not the upgrader's\n")
    (project / P / ".venvs").mkdir()  # a venv "migrated" by the upgrade, per the record
    os.replace(project / P / "venv", project / P / ".venvs" / "env-x")
    os.symlink(".venvs/env-x", project / P / "venv")
    edit_json(b / "MANIFEST.json", lambda d: d.__setitem__(
        "venv", {"kind": "dir", "moved_to": "../../outside-dir"}))
    return ["rollback", "--project", str(project)], "MANIFEST.json", {}


STATE_CASES = [
    StateCase("checkpoint-backup-id-dotdot-in-backup", _ckpt_backup_id_in_backup),
    StateCase("checkpoint-backup-id-dotdot-after-content", _ckpt_backup_id_after_content),
    StateCase("checkpoint-session-id-escapes", _ckpt_session_id),
    StateCase("backup-manifest-entry-escapes", _backup_manifest_entry),
    StateCase("installed-manifest-entry-escapes", _installed_manifest_entry),
    StateCase("backup-manifest-venv-escapes", _backup_manifest_venv),
]
STATE_WHY = {
    "checkpoint-backup-id-dotdot-in-backup": "backup_id '..': the resume deletes .backups/.. (most "
                                             "of .praxis-os, the venv too), then exits 6",
    "checkpoint-backup-id-dotdot-after-content": "backup_id '..': the resume swaps the server in, "
                                                 "then exits 7",
    "checkpoint-session-id-escapes": "session_id '../../../x': the reports are written beside the "
                                     "project",
    "backup-manifest-entry-escapes": "a '../../x' entry in MANIFEST.json: rollback creates a file "
                                     "beside the project",
    "installed-manifest-entry-escapes": "a '../app.py' installed-manifest entry: the upgrade "
                                        "deletes the project's app.py",
    "backup-manifest-venv-escapes": "venv.moved_to '../../dir' in MANIFEST.json: rollback moves a "
                                    "directory from outside into the install",
}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=xfail("1", STATE_WHY[c.id]))
                                  for c in STATE_CASES])
def test_paths_in_state_files_are_validated(case: StateCase, tmp_path: Path,
                                            source: SampleSource) -> None:
    project = make_project(tmp_path / "proj", source.path, source.v1)
    args, named, env = case.setup(source, project, tmp_path)
    before = snap(tmp_path, project)
    r = invoke(*args, env=env)
    clean(r)
    assert r.code == 2, r.text
    assert named in r.text, r.text
    assert repair_command(r.text), r.text
    assert snap(tmp_path, project) == before


def test_hostile_lock_owner_record_is_only_displayed(tmp_path: Path, source: SampleSource) -> None:
    """#1, the lock owner record: no path is read from it; a hostile one held by a live process
    is displayed, never acted on (does not reproduce: kept as a guard)."""
    project = make_project(tmp_path / "proj", source.path, source.v1)
    owner = project / P / ".upgrade-lock.owner.json"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; from filelock import FileLock; "
         f"l=FileLock({str(project / P / '.upgrade-lock')!r}); l.acquire(); "
         "print('locked', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        owner.write_text(json.dumps({"pid": "../../../etc", "host": ["x"], "started_at": {},
                                     "session": "../../../escaped", "command": 7}))
        before = snap(tmp_path, project)
        r = upgrade(source, project)
        clean(r)
        assert r.code == 4, r.text
        s = invoke("status", "--project", str(project))
        clean(s)
        assert s.code == 0, s.text
        r2 = invoke("rollback", "--project", str(project))
        clean(r2)
        assert r2.code in (2, 4), r2.text
        assert snap(tmp_path, project) == before
    finally:
        holder.kill()
        holder.wait()


# -- #2: an OS error in phases 2-4 rolls back; during the backup it is a refusal --------------------
@pytest.mark.parametrize("phase", [
    pytest.param("content", marks=xfail("2", "ENOSPC in the content phase: exit 1, no rollback")),
    pytest.param("server", marks=xfail("2", "ENOSPC in the server phase: exit 1, no rollback")),
    pytest.param("validate", marks=xfail("2", "ENOSPC in the validate phase: exit 1, no rollback")),
])
def test_disk_full_during_a_phase_rolls_back(tmp_path: Path, source: SampleSource, pause_flag: Path,
                                             phase: str) -> None:
    """The disk fills up (another process) while phase 2, 3 or 4 runs; three pages stay free,
    fewer than the phase needs. The upgrade must roll back (exit 6), the install as before (the
    tool has to make room for its own rollback: its staging, a reserve, ...)."""
    with tmpfs(tmp_path / "small", "16m") as mnt:
        project = make_project(mnt / "proj", source.path, source.v1)
        before = digest(project)
        proc = paused_upgrade(source, project, f"phase-start:{phase}", pause_flag)
        fill(mnt, leave=3 * 4096)
        pause_flag.unlink()
        r = finish(proc)
        (mnt / "filler").unlink()
        clean(r)
        assert r.code == 6, r.text
        assert digest(project) == before
        assert not (project / P / ".mcp_server.staged").exists()
        assert all(s["status"] == "rolled_back" for s in sessions(project)), sessions(project)


@xfail("2", "ENOSPC during the backup: not a refusal that says how much space is needed")
def test_disk_full_during_the_backup_is_a_refusal_with_the_space_needed(
        tmp_path: Path, source: SampleSource, pause_flag: Path) -> None:
    with tmpfs(tmp_path / "small", "16m") as mnt:
        project = make_project(mnt / "proj", source.path, source.v1)
        before = digest(project)
        proc = paused_upgrade(source, project, "phase-start:backup", pause_flag)
        fill(mnt)
        pause_flag.unlink()
        r = finish(proc)
        (mnt / "filler").unlink()
        clean(r)
        assert r.code == 3, r.text
        assert re.search(r"\d[\d.,]*\s*(bytes|[kKMG]i?B)\b.*need|need.*\d[\d.,]*\s*(bytes|[kKMG]i?B)\b",
                         r.err), r.err
        assert digest(project) == before


@pytest.mark.parametrize(("point", "code"), [
    ("content:file#3:EIO", 6),           # a write of phase 2
    ("server:stage-file#2:EIO", 6),      # the staging of the new server
    ("step:server:swapped:EIO", 6),      # right after the swap
    ("phase-start:validate:EIO", 6),     # validation
    ("backup:file#2:EIO", 3),            # the backup: a refusal, nothing changed
    ("cleanup:logged:EIO", 8),           # after the upgrade was applied: finish it later
])
def test_an_io_error_anywhere_ends_consistent(project: Path, source: SampleSource, point: str,
                                              code: int) -> None:
    """EIO (the disk itself failing) at points of every phase: the documented code, a message
    that says what to do, and the install as before (or, in cleanup, upgraded and finished by
    the next run)."""
    before = digest(project)
    r = upgrade(source, project, env={"PRAXIS_UPGRADE_FAULT": point})
    clean(r)
    assert r.code == code, r.text
    assert "Input/output error" in r.text and "next:" in r.err, r.text
    if code == 8:
        again = upgrade(source, project)
        assert again.code == 0, again.text
    else:
        assert digest(project) == before


def test_an_io_error_during_the_rollback_is_exit_7_and_a_rerun_finishes_it(
        project: Path, source: SampleSource) -> None:
    before = digest(project)
    r = upgrade(source, project, env={"PRAXIS_UPGRADE_FAULT":
                                      "phase-start:validate,rollback:file#2:EIO"})
    clean(r)
    assert r.code == 7, r.text
    assert "invoke rollback" in r.err and "Input/output error" in r.err, r.err
    st = invoke("status", "--project", str(project))
    assert st.code == 0 and "its rollback failed too" in st.out, st.text
    again = invoke("rollback", "--project", str(project))
    assert again.code == 0, again.text
    assert digest(project) == before


def test_read_only_directory_during_the_content_phase_rolls_back(
        tmp_path: Path, source: SampleSource, pause_flag: Path) -> None:
    """EROFS in phase 2 (a directory it writes becomes a read-only mount): exit 6, as before.
    Does not reproduce: kept as a guard."""
    project = make_project(tmp_path / "proj", source.path, source.v1)
    before = digest(project)
    ro = project / P / "workflows" / "praxis_os_upgrade_v1"
    proc = paused_upgrade(source, project, "phase-start:content", pause_flag)
    subprocess.run(["mount", "--bind", str(ro), str(ro)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
        pause_flag.unlink()
        r = finish(proc)
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
    clean(r)
    assert r.code == 6, r.text
    assert digest(project) == before


# -- #3: a resume re-verifies its backup before any further destructive step -----------------------
def _delete_backup(b: Path) -> None:
    shutil.rmtree(b)


def _damage_backup(b: Path) -> None:
    victim = next(p for p in sorted((b / "files").rglob("*")) if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"damaged")


@pytest.mark.parametrize("damage", [
    pytest.param(_delete_backup, id="deleted",
                 marks=xfail("3", "a resume without its backup finishes with exit 0")),
    pytest.param(_damage_backup, id="damaged",
                 marks=xfail("3", "a resume with a damaged backup finishes with exit 0")),
])
def test_resume_without_an_intact_backup_stops(project: Path, source: SampleSource,
                                               damage: Callable[[Path], None]) -> None:
    killed_at(source, project, "phase-done:content")
    (b,) = backup_dirs(project)
    damage(b)
    before = digest(project)
    r = invoke("upgrade", "--project", str(project), "--yes")
    clean(r)
    assert r.code == 7, r.text
    assert b.name in r.text and repair_command(r.text), r.text
    assert digest(project) == before  # no further destructive step


# -- #4: backups are ordered by a recorded sequence, never by the clock ----------------------------
@xfail("4", "rollback picks the backup with the greatest local-time id, not the newest upgrade")
def test_rollback_undoes_the_newest_upgrade_when_the_clock_went_back(tmp_path: Path,
                                                                    source: SampleSource) -> None:
    v3 = new_release(source, tmp_path / "v3",
                     appended(source, "universal/standards/architecture/solid-principles.md",
                              b"\n## v3 addition\n"))
    project = make_project(tmp_path / "proj", source.path, source.v1)
    at_v1 = digest(project)
    # local time: UTC+14 for the first upgrade, UTC-12 for the second (TZ changed, or the
    # clock was set back a day): the second backup's id sorts before the first one's
    assert upgrade(source, project, env={"TZ": "UTC-14"}).code == 0
    at_v2 = digest(project)
    r = upgrade(v3, project, env={"TZ": "UTC+12"})
    assert r.code == 0, r.text
    assert digest(project) != at_v2
    r1 = invoke("rollback", "--project", str(project))
    clean(r1)
    assert r1.code == 0, r1.text
    assert digest(project) == at_v2  # the newest upgrade (v2 -> v3) was undone, only it
    r2 = invoke("rollback", "--project", str(project))
    assert r2.code == 0, r2.text
    assert digest(project) == at_v1


# -- #5: user files in mcp_server/ are saved aside and reported -----------------------------------
def _kept(project: Path, rel: str) -> bytes | None:
    for b in backup_dirs(project):
        f = b / "kept" / rel
        if f.is_file():
            return f.read_bytes()
    return None


@pytest.mark.parametrize("when,rel", [
    pytest.param("before", "mcp_server/my_plugin.py", id="added-before-the-upgrade",
                 marks=xfail("5", "a user file in mcp_server/ is removed without trace")),
    pytest.param("before", "mcp_server/core.py", id="edited-before-the-upgrade",
                 marks=xfail("5", "a user edit in mcp_server/ is not saved to kept/")),
    pytest.param("during", "mcp_server/my_plugin.py", id="added-after-the-backup",
                 marks=xfail("5", "a file added after the backup goes with .mcp_server.old")),
    pytest.param("during", "mcp_server/core.py", id="edited-after-the-backup",
                 marks=xfail("5", "an edit made after the backup goes with .mcp_server.old")),
])
def test_user_files_in_the_server_tree_are_saved_aside(project: Path, source: SampleSource,
                                                       pause_flag: Path, when: str,
                                                       rel: str) -> None:
    f = project / P / rel
    data = (f.read_bytes() if f.exists() else b"") + b"\n# the user's own code\n"
    if when == "before":
        f.write_bytes(data)
        r = upgrade(source, project)
    else:
        proc = paused_upgrade(source, project, "phase-start:server", pause_flag)
        f.write_bytes(data)
        pause_flag.unlink()
        r = finish(proc)
    clean(r)
    assert r.code == 0, r.text
    assert _kept(project, rel) == data
    assert rel in r.text or rel in reports_text(project), r.text


# -- #6: files written for the user to act on are the user's once written ---------------------------
@pytest.mark.parametrize("suffix", [
    pytest.param(".praxis-merge", marks=xfail("6", "the next upgrade overwrites a .praxis-merge "
                                                   "file the user is resolving")),
    pytest.param(".praxis-new", marks=xfail("6", "the next upgrade overwrites a .praxis-new file "
                                                 "the user edited")),
])
def test_next_upgrade_keeps_the_users_conflict_files(tmp_path: Path, source: SampleSource,
                                                      suffix: str) -> None:
    src_rel = "universal/standards/ai-safety/git-safety-rules.md"
    v3 = new_release(source, tmp_path / "v3", appended(source, src_rel, b"\n## v3: one more rule\n"))
    project = make_project(tmp_path / "proj", source.path, source.v1)
    assert upgrade(source, project).code == 0
    work = project / P / (EDITED_CONFLICT + suffix)
    assert work.exists()
    mine = work.read_bytes().replace(b"<<<<<<<", b"(resolving) ") + b"\nmy resolution so far\n"
    work.write_bytes(mine)
    r = upgrade(v3, project)
    clean(r)
    assert r.code == 0, r.text
    assert work.read_bytes() == mine


# -- #7: any command on an install with an unfinished rollback finishes it first --------------------
@pytest.mark.parametrize("how,kill", [
    pytest.param("automatic", "rollback:between-renames", id="automatic-between-renames"),
    pytest.param("by-hand", "rollback:between-renames", id="by-hand-between-renames",
                 marks=xfail("7", "an upgrade over a half-finished rollback by hand starts anew")),
    pytest.param("by-hand", "rollback:file#2", id="by-hand-mid-files",
                 marks=xfail("7", "an upgrade over a half-finished rollback by hand starts anew")),
])
def test_upgrade_finishes_an_interrupted_rollback_first(project: Path, source: SampleSource,
                                                        how: str, kill: str) -> None:
    before = digest(project)
    if how == "automatic":
        r0 = upgrade(source, project, env={"PRAXIS_UPGRADE_FAULT": "phase-start:validate",
                                           "PRAXIS_UPGRADE_KILL": kill})
    else:
        assert upgrade(source, project).code == 0
        r0 = invoke("rollback", "--project", str(project), env={"PRAXIS_UPGRADE_KILL": kill})
    assert r0.code == -signal.SIGKILL, r0.text
    r = upgrade(source, project)
    clean(r)
    assert r.code != 0, r.text
    assert "rollback" in r.text and re.search(r"finish|complet", r.text), r.text
    assert digest(project) == before  # the rollback was finished; no new upgrade over it
    assert not list((project / P).glob(".mcp_server.*")), list((project / P).glob(".mcp_server.*"))


# -- #8: Ctrl-C between a phase failing and its rollback starting -----------------------------------
def _nth_hit_after(trace: Path, after: str, name: str) -> str:
    lines = trace.read_text().split()
    i = lines.index(after)
    return next(x for x in lines[i + 1:] if x.startswith(name + "#"))


@xfail("8", "Ctrl-C after a phase failed and before its rollback began exits 130, not rolled back")
def test_ctrl_c_between_failure_and_rollback_still_rolls_back(tmp_path: Path, source: SampleSource,
                                                              pause_flag: Path) -> None:
    # find the first durable write after the failure (the failed phase recorded in the checkpoint)
    probe = make_project(tmp_path / "probe", source.path, source.v1)
    trace = tmp_path / "trace.txt"
    r0 = upgrade(source, probe, env={"PRAXIS_UPGRADE_FAULT": "phase-start:validate",
                                     "PRAXIS_UPGRADE_TRACE": str(trace)})
    assert r0.code == 6, r0.text
    point = _nth_hit_after(trace, "phase-start:validate#1", "fs:before-replace")
    project = make_project(tmp_path / "proj", source.path, source.v1)
    before = digest(project)
    proc = paused_upgrade(source, project, point, pause_flag,
                          env={"PRAXIS_UPGRADE_FAULT": "phase-start:validate"})
    proc.send_signal(signal.SIGINT)
    r = finish(proc)
    clean(r)
    assert r.code == 6, r.text
    assert digest(project) == before
    assert [s["status"] for s in sessions(project)] == ["rolled_back"]


# -- #9: the recovery the error message gives for a truncated checkpoint recovers ------------------
@xfail("9", "mv checkpoint aside + `invoke rollback` leaves the upgraded files in place")
def test_documented_recovery_from_a_truncated_checkpoint(project: Path, source: SampleSource) -> None:
    before = digest(project)
    killed_at(source, project, "step:server:swapped")
    ck = checkpoint(project)
    raw = ck.read_bytes()
    ck.write_bytes(raw[: len(raw) // 2])  # torn by something other than the upgrader
    r = invoke("upgrade", "--project", str(project), "--yes")
    clean(r)
    assert r.code == 2, r.text
    assert ck.name in r.text
    # do exactly what the message says, from the project directory
    mv = re.search(r"\bmv (\S+) (\S+)", r.text)
    if mv is not None:
        os.rename(mv.group(1), mv.group(2).rstrip("),.;"))
    cmd = re.search(r"`(invoke rollback[^`]*)`", r.text)
    assert cmd is not None, r.text
    r2 = invoke(*shlex.split(cmd.group(1))[1:], cwd=project)
    clean(r2)
    assert r2.code == 0, r2.text
    assert digest(project) == before


# -- a normal user (#10, and EACCES for #2) ----------------------------------------------------------
USER = "praxishostile"


@dataclass
class AsUser:
    """Runs the CLI as a normal user, with the system python3 and a world-readable copy of the
    task runner's packages (the test interpreter lives under /root, which the user cannot read)."""

    name: str
    home: Path
    work: Path  # world-traversable; owned by root
    pkgs: Path

    def chown(self, path: Path) -> None:
        subprocess.run(["chown", "-R", f"{self.name}:{self.name}", str(path)], check=True)

    def project(self, source: SampleSource) -> tuple[Path, Path]:
        """(a project at v1 and a clone of the source), both owned by the user."""
        proj = make_project(self.work / "proj", source.path, source.v1, venv=False)
        subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(proj / P / "venv")],
                       check=True)
        src = self.work / "src"
        subprocess.run(["git", "clone", "-q", str(source.path), str(src)], check=True)
        self.chown(proj)
        self.chown(src)
        return proj, src

    def argv(self, *args: str) -> list[str]:
        return ["runuser", "-u", self.name, "--", "env", "-i", f"HOME={self.home}",
                "PATH=/usr/local/bin:/usr/bin:/bin", f"PYTHONPATH={self.pkgs}",
                "PYTHONDONTWRITEBYTECODE=1", "/usr/bin/python3", "-m", "invoke", "-r", str(REPO),
                *args]

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        argv = self.argv(*args)
        argv[argv.index("/usr/bin/python3"):argv.index("/usr/bin/python3")] = extra
        p = subprocess.run(argv, cwd=self.work, stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=timeout)
        return Result(p.returncode, p.stdout, p.stderr)

    def start(self, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
        extra = [f"{k}={v}" for k, v in env.items()]
        argv = self.argv(*args)
        argv[argv.index("/usr/bin/python3"):argv.index("/usr/bin/python3")] = extra
        return subprocess.Popen(argv, cwd=self.work, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def as_user() -> Iterator[AsUser]:
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", USER], check=True, capture_output=True)
        pw = pwd.getpwnam(USER)
    work = Path(tempfile.mkdtemp(prefix="praxis-hostile-", dir="/tmp"))
    work.chmod(0o755)
    pkgs = work / "pkgs"
    import filelock
    import invoke as invoke_pkg
    import markdown_it
    import mdurl
    import pygments
    import rich
    import yaml
    for mod in (invoke_pkg, filelock, rich, markdown_it, mdurl, pygments, yaml):
        shutil.copytree(Path(str(mod.__file__)).parent, pkgs / mod.__name__,
                        ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(["chmod", "-R", "a+rX", str(pkgs)], check=True)
    try:
        yield AsUser(USER, Path(pw.pw_dir), work, pkgs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_cli_runs_as_a_normal_user(as_user: AsUser, source: SampleSource) -> None:
    """The harness for #10 works: a normal user upgrades and rolls back their own install."""
    proj, src = as_user.project(source)
    before = digest(proj)
    r = as_user.run("upgrade", "--source", str(src), "--project", str(proj), "--yes")
    assert r.code == 0, r.text
    r2 = as_user.run("rollback", "--project", str(proj))
    assert r2.code == 0, r2.text
    assert digest(proj) == before


# -- #10: what the running user cannot replace is found in pre-flight ------------------------------
@xfail("10", "a root-owned __pycache__ in mcp_server/ fails phase 3 and every rollback (exit 7)")
def test_root_owned_pycache_is_refused_in_preflight(as_user: AsUser, source: SampleSource) -> None:
    proj, src = as_user.project(source)
    cache = proj / P / "mcp_server" / "__pycache__"  # left by a server once run with sudo
    cache.mkdir()
    (cache / "core.cpython-311.pyc").write_bytes(b"\x00" * 64)
    os.chown(cache, 0, 0)
    cache.chmod(0o755)
    before = snap(as_user.work, proj)
    r = as_user.run("upgrade", "--source", str(src), "--project", str(proj), "--yes")
    clean(r)
    assert r.code == 3, r.text
    assert "__pycache__" in r.text and repair_command(r.text), r.text
    assert snap(as_user.work, proj) == before


@pytest.mark.parametrize("phase,victim", [
    pytest.param("content", "standards/universal/architecture", id="content"),  # a guard
    pytest.param("server", ".", id="server",
                 marks=xfail("2", "EACCES in the server phase: exit 1 after its rollback")),
])
def test_permission_denied_during_a_phase_rolls_back(as_user: AsUser, source: SampleSource,
                                                     phase: str, victim: str) -> None:
    """#2, EACCES: a directory the phase writes stops being writable while it runs (the
    user cannot bypass permissions as root does): exit 6, the install as before."""
    proj, src = as_user.project(source)
    before = digest(proj)
    flags = as_user.work / "flags"  # the run, as the user, creates the pause flag
    flags.mkdir()
    as_user.chown(flags)
    flag = flags / "pause.flag"
    proc = as_user.start("upgrade", "--source", str(src), "--project", str(proj), "--yes",
                         env={"PRAXIS_UPGRADE_PAUSE": f"phase-start:{phase}",
                              "PRAXIS_UPGRADE_PAUSE_FLAG": str(flag)})
    wait_for(lambda: flag.exists() or proc.poll() is not None)
    assert flag.exists(), finish(proc).text
    d = proj / P / victim
    d.chmod(0o555)
    try:
        flag.unlink()
        r = finish(proc)
    finally:
        d.chmod(0o755)
    clean(r)
    assert r.code == 6, r.text
    assert digest(proj) == before


# -- #11: never open what is not a regular file ---------------------------------------------------
def _unix_socket(path: Path) -> None:
    subprocess.run([sys.executable, "-c", "import os, socket; os.chdir(os.environ['D']); "
                    "socket.socket(socket.AF_UNIX).bind(os.environ['N'])"],
                   env={**os.environ, "D": str(path.parent), "N": path.name}, check=True)


@xfail("11", "a FIFO in mcp_server/ hangs the upgrade while it holds the lock")
def test_fifo_in_an_area_the_upgrade_writes_is_refused(tmp_path: Path, source: SampleSource) -> None:
    project = make_project(tmp_path / "proj", source.path, source.v1)
    os.mkfifo(project / P / "mcp_server" / "ipc.py")
    before = snap(tmp_path, project)
    try:
        r = invoke("upgrade", "--source", str(source.path), "--project", str(project), "--yes",
                   timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("the upgrade hung on a FIFO in mcp_server/")
    clean(r)
    assert r.code == 3, r.text
    assert "ipc.py" in r.text and repair_command(r.text), r.text
    assert snap(tmp_path, project) == before


@pytest.mark.parametrize("kind", [
    pytest.param("socket", marks=xfail("11", "a socket in a user workflow of a legacy install "
                                             "exits 1")),
    pytest.param("fifo", marks=xfail("11", "a FIFO in a user workflow of a legacy install is "
                                           "opened")),
])
def test_special_file_in_a_user_area_is_skipped_and_reported(tmp_path: Path, source: SampleSource,
                                                             kind: str) -> None:
    project = make_project(tmp_path / "proj", source.path, source.v1, with_manifest=False)
    special = project / P / "workflows" / "my_release_v1" / "agent.sock"
    if kind == "socket":
        _unix_socket(special)
    else:
        os.mkfifo(special)
    try:
        r = invoke("upgrade", "--source", str(source.path), "--project", str(project), "--yes",
                   timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the upgrade hung on a {kind} in a user workflow")
    clean(r)
    assert r.code == 0, r.text
    mode = os.lstat(special).st_mode
    assert stat.S_ISSOCK(mode) if kind == "socket" else stat.S_ISFIFO(mode)
    assert "agent.sock" in r.text or "agent.sock" in reports_text(project), r.text


# -- #12: bookkeeping is never written through a symlink -------------------------------------------
@pytest.mark.parametrize("name,target_kind", [
    pytest.param("UPDATE_LOG.txt", "file", marks=xfail("12", "a line is appended to the file "
                                                             "UPDATE_LOG.txt links to")),
    pytest.param(".upgrade-reports", "dir", marks=xfail("12", "reports are written into the "
                                                              "directory .upgrade-reports links to")),
    pytest.param(".upgrade-lock.owner.json", "file"),  # does not reproduce: kept as a guard
])
def test_bookkeeping_is_not_written_through_symlinks(tmp_path: Path, source: SampleSource,
                                                     name: str, target_kind: str) -> None:
    project = make_project(tmp_path / "proj", source.path, source.v1)
    target = project / ("NOTES.md" if target_kind == "file" else "notes")
    if target_kind == "file":
        target.write_text("# my notes\n")
    else:
        target.mkdir()
        (target / "todo.md").write_text("mine\n")
    os.symlink(os.path.relpath(target, project / P), project / P / name)
    outside = snap(target) if target_kind == "dir" else {"": (target.read_text(), 0)}
    r = upgrade(source, project)
    clean(r)
    assert (snap(target) if target_kind == "dir" else {"": (target.read_text(), 0)}) == outside
    assert r.code in (0, 3), r.text


# -- #13: credentials in a source URL appear nowhere -----------------------------------------------
SECRET = "S3cr3tPassw0rd"


@contextlib.contextmanager
def dumb_http_git(source: SampleSource, tmp: Path) -> Iterator[str]:
    """The source as a bare repository over git's "dumb" HTTP protocol (a static file server,
    which never asks for the credentials the URL carries). Yields the base URL."""
    root = tmp / "www"
    root.mkdir()
    subprocess.run(["git", "clone", "-q", "--bare", str(source.path), str(root / "x.git")],
                   check=True)
    git(root / "x.git", "update-server-info")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _files_holding(root: Path, needle: bytes) -> list[str]:
    hits = []
    for r, _dirs, files in os.walk(root):
        for name in files:
            p = os.path.join(r, name)
            if stat.S_ISREG(os.lstat(p).st_mode):
                with open(p, "rb") as fh:
                    if needle in fh.read():
                        hits.append(os.path.relpath(p, root))
    return hits


@xfail("13", "the password of a source URL is stored in the checkpoint and the lock owner record")
def test_source_url_credentials_are_redacted_everywhere(tmp_path: Path, source: SampleSource,
                                                        pause_flag: Path) -> None:
    project = make_project(tmp_path / "proj", source.path, source.v1)
    with dumb_http_git(source, tmp_path) as base:
        url = base.replace("http://", f"http://u:{SECRET}@") + "/x.git"
        proc = paused_upgrade(url, project, "phase-start:validate", pause_flag,
                              env={"PRAXIS_UPGRADE_FAULT": "phase-start:validate"})
        # while it runs: the lock owner record and what `invoke status` shows other users
        owner = (project / P / ".upgrade-lock.owner.json").read_text()
        st = invoke("status", "--project", str(project))
        ckpts = "".join(p.read_text() for p in (project / P / ".upgrade-state").glob("*.json"))
        pause_flag.unlink()
        r = finish(proc)
        assert r.code == 6, r.text  # failed on purpose after the server phase, rolled back
        r2 = upgrade(url, project)  # and once more, to completion
        assert r2.code == 0, r2.text
        st2 = invoke("status", "--project", str(project))
    for name, text in [("owner record", owner), ("status while running", st.text),
                       ("checkpoint while running", ckpts), ("output", r.text),
                       ("output of the second run", r2.text), ("status", st2.text)]:
        assert SECRET not in text, (name, text)
    assert _files_holding(tmp_path, SECRET.encode()) == []


@xfail("13", "git's clone error echoes the password of the source URL")
def test_source_url_credentials_are_redacted_from_a_clone_error(project: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://u:{SECRET}@127.0.0.1:{port}/x.git"
    r = invoke("upgrade", "--source", url, "--project", str(project), "--yes")
    clean(r)
    assert r.code == 2, r.text
    assert "127.0.0.1" in r.text  # the URL is named, without its password
    assert SECRET not in r.text, r.text
    assert _files_holding(project, SECRET.encode()) == []


# -- #14: user bytes in .gitignore outside the managed block are kept -----------------------------
@xfail("14", "a Latin-1 line becomes U+FFFD and CRLF becomes LF in the whole .gitignore")
def test_gitignore_bytes_outside_the_block_are_kept(project: Path, source: SampleSource) -> None:
    gi = project / ".gitignore"
    original = b"node_modules/\r\n# caf\xe9 notes (Latin-1)\r\ncaf\xe9/\r\n.praxis-os/venv/"
    gi.write_bytes(original)  # CRLF, a Latin-1 line, no final newline
    r = upgrade(source, project)
    clean(r)
    assert r.code == 0, r.text
    new = gi.read_bytes()
    start = new.index(b"# >>> prAxIs OS upgrader")
    end_marker = b"# <<< prAxIs OS upgrader"
    end = new.index(end_marker) + len(end_marker)
    end += len(re.match(rb"\r?\n?", new[end:]).group(0))  # type: ignore[union-attr]
    outside = new[:start] + new[end:]
    assert b"\xef\xbf\xbd" not in new
    assert outside.rstrip(b"\r\n") == original
    assert new.count(b"\n") == new.count(b"\r\n"), new  # the file's line endings, everywhere


# -- #15: what is installed is the commit's objects, not the working tree ---------------------------
@pytest.mark.parametrize("flag", ["--assume-unchanged", "--skip-worktree"])
@pytest.mark.parametrize("rel", ["scripts/build_rag_index.py", "mcp_server/version.py"])
@xfail("15", "an edit hidden from git status is installed while HEAD is recorded")
def test_hidden_working_tree_edits_are_not_installed(tmp_path: Path, source: SampleSource,
                                                     flag: str, rel: str) -> None:
    src = tmp_path / "src"
    subprocess.run(["git", "clone", "-q", str(source.path), str(src)], check=True)
    git(src, "update-index", flag, rel)
    (src / rel).write_bytes((src / rel).read_bytes() + b"\n# not in any commit\n")
    assert git(src, "status", "--porcelain") == ""  # the clean-source check cannot see it
    committed = subprocess.run(["git", "-C", str(src), "show", f"HEAD:{rel}"], check=True,
                               capture_output=True).stdout
    project = make_project(tmp_path / "proj", source.path, source.v1)
    r = upgrade(src, project)
    clean(r)
    assert r.code == 0, r.text
    assert (project / P / rel).read_bytes() == committed


# -- #16: the rollback after a failure right after the server swap reports truly --------------------
@xfail("16", "upstream's new server files are reported as later edits saved aside; kept/ stops "
             "the backup from ever being pruned")
def test_rollback_right_after_the_swap_reports_truly(project: Path, source: SampleSource) -> None:
    before = digest(project)
    # the point just after the swap, as PRAXIS_UPGRADE_TRACE lists it
    r = upgrade(source, project, env={"PRAXIS_UPGRADE_FAULT": "step:server:swapped"})
    assert r.code == 6, r.text
    assert digest(project) == before
    (b,) = backup_dirs(project)
    assert "saved aside" not in r.text, r.text
    assert "saved aside" not in reports_text(project)
    assert not (b / "kept").exists(), sorted(str(p) for p in (b / "kept").rglob("*"))
    # the backup stays prunable: with keep_backups 1 the next successful upgrade prunes it
    r2 = upgrade(source, project, env={"INVOKE_UPGRADE_KEEP_BACKUPS": "1"})
    assert r2.code == 0, r2.text
    assert not b.exists(), "the rolled-back session's backup was never pruned"


# -- #17: bad values and bad state end with a clear message and a documented code ------------------
ALLOWED = re.compile(r"integer|number|whole|>=|<=|at least|at most|between|positive|non-negative|"
                     r"0\s*(-|to|\.\.)\s*100|valid choices|one of", re.IGNORECASE)


@dataclass
class ValueCase:
    id: str
    args: Callable[[Path, Path], list[str]]  # (tmp, project) -> extra CLI args
    env: dict[str, str]
    names: str  # the option the message must name
    fleet: bool = False


def _fleet_args(tmp: Path, project: Path) -> list[str]:
    # a fleet run to a host nobody listens on: the values must be refused before any connection
    return ["--hosts", "root@127.0.0.1:1", "--report-dir", str(tmp / "fleet")]


VALUE_CASES = [
    ValueCase("env-parallel-abc", lambda t, p: [], {"INVOKE_UPGRADE_PARALLEL": "abc"}, "parallel"),
    ValueCase("env-probe-timeout-negative", lambda t, p: [], {"INVOKE_UPGRADE_PROBE_TIMEOUT": "-1"},
              "probe_timeout"),
    ValueCase("max-fail-abc", lambda t, p: [*_fleet_args(t, p), "--max-fail=abc"], {}, "--max-fail"),
    ValueCase("max-fail-150", lambda t, p: [*_fleet_args(t, p), "--max-fail", "150"], {},
              "--max-fail"),
    ValueCase("canary-negative", lambda t, p: [*_fleet_args(t, p), "--canary", "-3"], {}, "--canary"),
    ValueCase("parallel-0", lambda t, p: [*_fleet_args(t, p), "--parallel", "0"], {}, "--parallel"),
]
VALUE_WHY = {
    "env-parallel-abc": "INVOKE_UPGRADE_PARALLEL=abc is a traceback",
    "env-probe-timeout-negative": "a negative probe_timeout is accepted; the upgrade runs, then "
                                  "rolls back",
    "max-fail-abc": "--max-fail=abc is a traceback",
    "max-fail-150": "--max-fail 150 is accepted",
    "canary-negative": "--canary -3 is silently changed to 0",
    "parallel-0": "--parallel 0 is silently changed to 1",
}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=xfail("17", VALUE_WHY[c.id]))
                                  for c in VALUE_CASES])
def test_bad_values_are_refused(case: ValueCase, tmp_path: Path, project: Path,
                                source: SampleSource) -> None:
    before = snap(tmp_path, project)
    r = invoke("upgrade", "--source", str(source.path), "--project", str(project), "--yes",
               *case.args(tmp_path, project), env=case.env, cwd=tmp_path)
    clean(r)
    assert r.code == 2, r.text
    assert case.names.lower() in r.text.lower().replace("-", "_") or case.names in r.text, r.text
    assert ALLOWED.search(r.text), r.text
    assert snap(tmp_path, project) == before


@xfail("17", "a mistyped flag exits 1 with no suggestion")
def test_mistyped_flag_exits_2_with_a_suggestion(tmp_path: Path, project: Path,
                                                 source: SampleSource) -> None:
    """Through ``praxis-upgrade`` (Invoke's own ``invoke`` parses before any task code runs, and
    exits 1 on its own terms: the README says so)."""
    before = snap(tmp_path, project)
    r = praxis("upgrade", "--source", str(source.path), "--project", str(project), "--yes",
               "--dry-rn", cwd=tmp_path)
    clean(r)
    assert r.code == 2, r.text
    assert "did you mean --dry-run?" in r.text, r.text
    assert snap(tmp_path, project) == before


@pytest.mark.parametrize("kind", [
    pytest.param("directory", marks=xfail("17", "a lock file that is a directory")),
    pytest.param("symlink", marks=xfail("17", "a lock file that is a symlink")),
])
def test_odd_lock_file_is_refused(tmp_path: Path, project: Path, source: SampleSource,
                                  kind: str) -> None:
    lock = project / P / ".upgrade-lock"
    target = tmp_path / "elsewhere.lock"
    if kind == "directory":
        lock.mkdir()
    else:
        target.write_text("someone else's file\n")
        os.symlink(target, lock)
    before = snap(tmp_path, project)
    r = upgrade(source, project)
    clean(r)
    assert r.code == 2, r.text
    assert ".upgrade-lock" in r.text and repair_command(r.text), r.text
    assert snap(tmp_path, project) == before
    assert os.path.islink(lock) if kind == "symlink" else lock.is_dir()


@xfail("17", "an interpreter the user cannot execute is found only when the server is probed")
def test_venv_interpreter_not_executable_is_refused(tmp_path: Path, project: Path,
                                                    source: SampleSource) -> None:
    py = project / P / "venv" / "bin" / "python"
    py.unlink()
    py.write_text("#!/bin/sh\nexit 0\n")
    py.chmod(0o644)  # nobody may execute it, root included
    before = snap(tmp_path, project)
    r = upgrade(source, project)
    clean(r)
    # the README documents a missing venv interpreter as a pre-flight refusal (3); the lead's
    # list puts this case with the bad values (2): either is a documented refusal
    assert r.code in (2, 3), r.text
    assert "venv/bin/python" in r.text and repair_command(r.text), r.text
    assert snap(tmp_path, project) == before


CHECKPOINT_DAMAGE: dict[str, Callable[[dict[str, Any]], object]] = {
    "no-metadata": lambda d: d.pop("metadata"),
    "artifacts-not-an-object": lambda d: d.__setitem__("phase_artifacts", []),
    "completed-phases-not-a-list": lambda d: d.__setitem__("completed_phases", "0,1,2"),
    "no-source-commit": lambda d: d["phase_artifacts"]["0"].pop("source_commit"),
    "status-not-a-string": lambda d: d.__setitem__("status", {"running": True}),
}
COMMANDS = ("status", "rollback", "upgrade")
#: What each command does today with each damaged checkpoint (the xfail reasons). The issue
#: reports the crashes and the "at None"; the exit-0 rows fail only the lead's rule that a
#: checkpoint failing validation is refused (exit 2), whichever command reads it.
CHECKPOINT_TODAY: dict[tuple[str, str], str] = {
    ("no-metadata", "status"): "KeyError, exit 1",
    ("no-metadata", "rollback"): "KeyError, exit 1",
    ("no-metadata", "upgrade"): "the resume runs phase 3, then KeyError, exit 1",
    ("artifacts-not-an-object", "status"): "accepted and shown, exit 0",
    ("artifacts-not-an-object", "rollback"): "AttributeError, exit 1",
    ("artifacts-not-an-object", "upgrade"): "AttributeError, exit 1",
    ("completed-phases-not-a-list", "status"): "accepted and shown, exit 0",
    ("completed-phases-not-a-list", "rollback"): "accepted, rolled back, exit 0",
    ("completed-phases-not-a-list", "upgrade"): "ValueError, exit 1",
    ("no-source-commit", "status"): "accepted and shown, exit 0",
    ("no-source-commit", "rollback"): "accepted, rolled back, exit 0",
    ("no-source-commit", "upgrade"): "'the source moved ... at None', exit 3",
    ("status-not-a-string", "status"): "accepted and shown, exit 0",
    ("status-not-a-string", "rollback"): "accepted, rolled back, exit 0",
    ("status-not-a-string", "upgrade"): "taken for no session: 'no source given', file not named",
}


def _checkpoint_params() -> list[object]:
    return [pytest.param(damage, cmd, id=f"{damage}-{cmd}", marks=xfail(
        "17", f"checkpoint with {damage.replace('-', ' ')}, `{cmd}`: "
              f"{CHECKPOINT_TODAY[damage, cmd]}"))
        for damage in CHECKPOINT_DAMAGE for cmd in COMMANDS]


@pytest.mark.parametrize("damage,cmd", _checkpoint_params())
def test_checkpoint_with_missing_fields_or_wrong_types(tmp_path: Path, project: Path,
                                                       source: SampleSource, damage: str,
                                                       cmd: str) -> None:
    killed_at(source, project, "phase-done:content")
    ck = checkpoint(project)
    edit_json(ck, CHECKPOINT_DAMAGE[damage])
    before = snap(tmp_path, project)
    args = {"status": ["status", "--project", str(project)],
            "rollback": ["rollback", "--project", str(project)],
            "upgrade": ["upgrade", "--project", str(project), "--yes"]}[cmd]
    r = invoke(*args)
    clean(r)
    assert r.code == 2, r.text
    assert ck.name in r.text and repair_command(r.text), r.text
    assert snap(tmp_path, project) == before


# -- SIGINT inherited as ignored ----------------------------------------------------------------
def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job or nohup starts it


@pytest.mark.parametrize("phase", [
    pytest.param("content", marks=xfail("SIGINT-ignored", "SIGINT inherited as ignored: Ctrl-C is ignored")),
    pytest.param("server", marks=xfail("SIGINT-ignored", "SIGINT inherited as ignored: Ctrl-C is ignored")),
])
def test_ctrl_c_interrupts_when_sigint_was_inherited_ignored(project: Path, source: SampleSource,
                                                             pause_flag: Path, phase: str) -> None:
    before = digest(project)
    proc = paused_upgrade(source, project, f"phase-start:{phase}", pause_flag,
                          preexec_fn=_ignore_sigint)
    proc.send_signal(signal.SIGINT)
    with contextlib.suppress(AssertionError):  # a run that ignores it stays paused
        wait_for(lambda: proc.poll() is not None or not pause_flag.exists(), timeout=3)
    with contextlib.suppress(FileNotFoundError):
        pause_flag.unlink()  # if the signal was ignored, let the run go on
    r = finish(proc)
    clean(r)
    assert r.code == 6, r.text
    assert digest(project) == before
