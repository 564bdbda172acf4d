"""Exit codes and messages for bad input and refusals: each says what, why, what next,
and nothing is changed (issue 2's exit-code table)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import digest, invoke, sessions, upgrade

from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import SampleSource

P = ".praxis-os"


def _unchanged(project: Path, before: dict[str, tuple[str, int, float]]) -> None:
    assert digest(project) == before
    assert not (project / P / ".upgrade-lock").exists()
    assert sessions(project) == []


def test_missing_source_is_exit_2(project: Path) -> None:
    before = digest(project)
    r = invoke("upgrade", "--project", str(project), "--yes")
    assert r.code == 2, r.text
    assert "no source given" in r.err and "--source" in r.err
    r = upgrade(project / "nope", project)
    assert r.code == 2 and "does not exist" in r.err and "next:" in r.err
    _unchanged(project, before)


def test_source_not_a_git_repo_is_exit_2(tmp_path: Path, project: Path) -> None:
    plain = tmp_path / "plain"
    (plain / "universal").mkdir(parents=True)
    (plain / "mcp_server").mkdir()
    before = digest(project)
    r = upgrade(plain, project)
    assert r.code == 2, r.text
    assert "not a git repository" in r.err
    _unchanged(project, before)


def test_source_without_praxis_layout_is_exit_2(tmp_path: Path, project: Path) -> None:
    repo = tmp_path / "other"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "README.md").write_text("x")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit",
                    "-qm", "x"], check=True)
    before = digest(project)
    r = upgrade(repo, project)
    assert r.code == 2, r.text
    assert "not a prAxIs OS repository" in r.err and "universal/" in r.err
    _unchanged(project, before)


def test_unreachable_git_url_is_exit_2(project: Path) -> None:
    before = digest(project)
    r = upgrade("file:///nonexistent/praxis-os.git", project)
    assert r.code == 2, r.text
    assert "cannot clone" in r.err
    _unchanged(project, before)


def test_git_url_source_is_cloned(project: Path, source: SampleSource) -> None:
    r = upgrade(f"file://{source.path}", project)
    assert r.code == 0, r.text


def test_dirty_source_is_refused_exit_3(tmp_path: Path, source: SampleSource) -> None:
    dirty = tmp_path / "dirty"
    subprocess.run(["git", "clone", "-q", str(source.path), str(dirty)], check=True)
    (dirty / "universal" / "standards" / "new.md").write_text("untracked\n")
    proj = make_project(tmp_path / "p", source.path, source.v1)
    before = digest(proj)
    r = upgrade(dirty, proj)
    assert r.code == 3, r.text
    assert "uncommitted changes" in r.err and "git stash" in r.err
    _unchanged(proj, before)


def test_target_without_praxis_os_is_exit_2(tmp_path: Path, source: SampleSource) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    r = upgrade(source, empty)
    assert r.code == 2, r.text
    assert "no prAxIs OS installation" in r.err
    assert list(empty.iterdir()) == []


def test_symlinked_area_is_refused_exit_3(tmp_path: Path, source: SampleSource) -> None:
    proj = make_project(tmp_path / "p", source.path, source.v1)
    real = tmp_path / "elsewhere"
    os.replace(proj / P / "mcp_server", real)
    os.symlink(real, proj / P / "mcp_server")
    r = upgrade(source, proj)
    assert r.code == 3, r.text
    assert "is a symlink" in r.err
    assert (proj / P / "mcp_server").is_symlink()


def test_bad_on_conflict_value_is_exit_2(project: Path, source: SampleSource) -> None:
    r = upgrade(source, project, "--on-conflict", "maybe")
    assert r.code == 2, r.text
    assert "not a valid choice" in r.err and "keep" in r.err


def test_conflict_abort_is_exit_5_and_changes_nothing(project: Path, source: SampleSource) -> None:
    before = digest(project)
    r = upgrade(source, project, "--on-conflict", "abort")
    assert r.code == 5, r.text
    assert "nothing was changed" in r.err
    _unchanged(project, before)


def test_lock_held_by_live_process_is_exit_4(project: Path, source: SampleSource) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys,time; from filelock import FileLock; "
         f"l=FileLock({str(project / P / '.upgrade-lock')!r}); l.acquire(); "
         "print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = digest(project)
        r = upgrade(source, project)
        assert r.code == 4, r.text
        assert "another upgrade holds the lock" in r.err
        assert digest(project) == before
    finally:
        holder.kill()
        holder.wait()


def test_rollback_failure_is_exit_7_and_names_the_backup(project: Path,
                                                         source: SampleSource) -> None:
    # phase 2 fails, and the automatic rollback fails too (at its first restore step)
    r = upgrade(source, project, env={"PRAXIS_UPGRADE_FAULT": "content:file#3,rollback:file#1"})
    assert r.code == 7, r.text
    assert "error[rollback-failed]" in r.err and ".backups/" in r.err
    st = invoke("status", "--project", str(project))
    assert "its rollback failed too" in st.out
    # a new upgrade is refused until the rollback is finished
    r2 = upgrade(source, project)
    assert r2.code == 7 and "invoke rollback" in r2.err
    # finishing the rollback by hand works and restores the install
    r3 = invoke("rollback", "--project", str(project))
    assert r3.code == 0, r3.text
    assert [s["status"] for s in sessions(project)] == ["rolled_back"]


def test_tampered_backup_makes_rollback_refuse(project: Path, source: SampleSource) -> None:
    assert upgrade(source, project).code == 0
    (bdir,) = [p for p in (project / P / ".backups").iterdir() if p.is_dir()]
    victim = next(p for p in (bdir / "files").rglob("*.md"))
    victim.write_text("tampered\n")
    before = digest(project)
    r = invoke("rollback", "--project", str(project))
    assert r.code == 7, r.text
    assert "damaged" in r.err and "nothing was restored" in r.err
    assert digest(project) == before


def test_unexpected_errors_have_no_traceback_without_debug(project: Path) -> None:
    r = invoke("status", "--project", str(project / "missing"))
    assert r.code == 2 and "Traceback" not in r.err


def test_invoke_module_is_runnable_from_another_directory(tmp_path: Path, project: Path,
                                                          source: SampleSource) -> None:
    r = invoke("upgrade", "--source", str(source.path), "--yes", cwd=project)
    assert r.code == 0, r.text  # --project defaults to the current directory
    assert (project / P / "VERSION.json").exists()
