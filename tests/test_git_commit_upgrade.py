"""Issue 15.2: ``--git-commit`` end to end: an upgrade of a project under git commits exactly
its files with a message naming the commits, the counts and the attention items; refusals
come before any change (exit 3); a rollback restores the files and makes a revert commit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import digest, invoke, upgrade

from upgrade_tasks.gitignore import PATTERNS
from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import SampleSource

P = ".praxis-os"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def repo(tmp_path: Path, source: SampleSource) -> Path:
    """A user's project under git, the install committed, as it would be after an install."""
    proj = make_project(tmp_path / "app", source.path, source.v1)
    (proj / "src.py").write_text("print('the user code')\n")
    # the upgrader's own patterns (as after an earlier upgrade), and the user's
    (proj / ".gitignore").write_text("".join(f"{p}\n" for p in PATTERNS) + "__pycache__/\n")
    git(proj, "init", "-q")
    git(proj, "config", "user.name", "Dev")
    git(proj, "config", "user.email", "dev@example.invalid")
    git(proj, "add", "-A")
    git(proj, "commit", "-qm", "install prAxIs OS")
    return proj


def test_upgrade_commits_exactly_its_files_and_rollback_reverts(repo: Path, source: SampleSource) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "src.py").write_text("print('work in progress')\n")  # the user's own edit, elsewhere
    r = upgrade(source, repo, "--git-commit")
    assert r.code == 0, r.text
    assert "git commit " in r.out
    head = git(repo, "rev-parse", "HEAD").strip()
    assert git(repo, "rev-parse", "HEAD~1").strip() == base
    changed = set(git(repo, "show", "--name-only", "--format=", "HEAD").split())
    assert "src.py" not in changed  # the user's edit stays theirs, uncommitted
    assert f"{P}/VERSION.json" in changed and f"{P}/scripts/build_rag_index.py" in changed
    assert not any(c.startswith((f"{P}/venv", f"{P}/.backups", f"{P}/.upgrade-state")) for c in changed)
    # the index rebuild request is this machine's, not the repository's (ignored, not committed)
    assert (repo / P / "standards" / ".rebuild_index").exists()
    assert f"{P}/standards/.rebuild_index" not in changed
    msg = git(repo, "log", "-1", "--format=%B")
    assert msg.startswith(f"praxis-os: upgrade {source.v1[:7]} -> {source.v2[:7]}")
    assert "Needs attention:" in msg and "Session: upgrade-" in msg
    # nothing of the upgrade is left uncommitted; the user's edit is
    assert git(repo, "status", "--porcelain").split("\n")[0].strip() == "M src.py"
    assert git(repo, "status", "--porcelain").strip() == "M src.py"
    r = invoke("rollback", "--project", str(repo))
    assert r.code == 0, r.text
    assert "git: revert commit" in r.out and f"(of {head[:10]})" in r.out
    assert git(repo, "rev-parse", "HEAD~1").strip() == head
    # the tree as before, but for UPDATE_LOG.txt: a log, which keeps the upgrade's and the
    # rollback's lines (both committed)
    assert git(repo, "diff", "--stat", base, "HEAD", "--", P, f":!{P}/UPDATE_LOG.txt").strip() == ""
    log = git(repo, "show", f"HEAD:{P}/UPDATE_LOG.txt")
    assert "upgraded" in log and "rolled back" in log
    assert "This reverts commit " + head in git(repo, "log", "-1", "--format=%B")
    assert git(repo, "status", "--porcelain").strip() == "M src.py"


def test_refused_before_any_change(repo: Path, tmp_path: Path, source: SampleSource) -> None:
    before = digest(repo)
    (repo / "notes.txt").write_text("x\n")
    git(repo, "add", "notes.txt")  # something staged
    r = upgrade(source, repo, "--git-commit")
    assert r.code == 3 and "staged" in r.err, r.text
    git(repo, "reset", "-q", "notes.txt")
    edited = repo / P / "scripts" / "build_rag_index.py"
    edited.write_text(edited.read_text() + "# my local tweak\n")  # an edit the upgrade touches
    r = upgrade(source, repo, "--git-commit")
    assert r.code == 3 and "build_rag_index.py" in r.err, r.text
    git(repo, "checkout", "-q", "--", str(edited))
    assert digest(repo) == before  # nothing was changed by the refusals
    plain = make_project(tmp_path / "nogit", source.path, source.v1)
    r = upgrade(source, plain, "--git-commit")
    assert r.code == 3 and "not in a git repository" in r.err, r.text
    # the config key does the same as the flag
    r = upgrade(source, plain, env={"INVOKE_UPGRADE_GIT_COMMIT": "true"})
    assert r.code == 3 and "not in a git repository" in r.err, r.text


def test_a_resumed_upgrade_still_commits(repo: Path, source: SampleSource) -> None:
    r = upgrade(source, repo, "--git-commit", env={"PRAXIS_UPGRADE_KILL": "phase-start:cleanup"})
    assert r.code == -9
    r = invoke("upgrade", "--project", str(repo), "--yes")  # no --git-commit: the session's choice
    assert r.code == 0, r.text
    assert git(repo, "log", "-1", "--format=%s").startswith("praxis-os: upgrade")
    assert git(repo, "status", "--porcelain").strip() == ""
