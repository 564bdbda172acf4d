"""``--git-commit``: the upgrade's files as one commit, a rollback as one revert commit, in real
git repositories (no mocks): exactly the changed paths, never ignored ones, refusals up front."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from upgrade_tasks import gitcommit
from upgrade_tasks.errors import EXIT_PREFLIGHT, PreflightError
from upgrade_tasks.gitcommit import (
    GitCommitError,
    RevertCommitError,
    check_ready,
    commit_paths,
    message_for,
    repo_of,
    revert_paths,
    tracks_install,
)

P = ".praxis-os"
SPACED = f"{P}/standards/with space é.md"
FILES = {
    ".gitignore": ".praxis-os/venv\n.praxis-os/.backups/\n",
    f"{P}/standards/a.md": "a v1\n",
    f"{P}/workflows/b.md": "b v1\n",
    f"{P}/mcp_server/server.py": "print('v1')\n",
    SPACED: "spaced v1\n",
    f"{P}/config.json": "{}\n",
    "src/app.py": "app = 1\n",
}


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {args}: {proc.stderr.decode()}")
    return proc.stdout.decode()


def name_status(repo: Path, commit: str) -> set[tuple[str, str]]:
    fields = git(repo, "show", "-z", "--no-renames", "--name-status", "--format=", commit).split("\0")
    fields = [f for f in fields if f.strip("\n")]
    return {(fields[i].strip("\n"), fields[i + 1]) for i in range(0, len(fields), 2)}


def status(repo: Path, *pathspec: str) -> set[str]:
    """``git status --porcelain`` entries (``XY path``), untracked included, ignored not."""
    out = git(repo, "status", "--porcelain", "-z", "--untracked-files=all", "--", *pathspec)
    return {e for e in out.split("\0") if e}


def staged(repo: Path) -> list[str]:
    return [n for n in git(repo, "diff", "--cached", "--name-only", "-z").split("\0") if n]


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def set_identity(repo: Path) -> None:
    git(repo, "config", "user.name", "Test User")
    git(repo, "config", "user.email", "test@example.com")
    git(repo, "config", "commit.gpgsign", "false")


def make_repo(root: Path, files: dict[str, str] = FILES, identity: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q")
    if identity:
        set_identity(root)
    for rel, text in files.items():
        write(root, rel, text)
    git(root, "add", "-A")
    git(root, "-c", "user.name=Setup", "-c", "user.email=setup@example.com", "commit", "-q", "-m", "initial")
    return root


@pytest.fixture(autouse=True)
def hermetic_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No global or system git config, no identity from the environment, no repository above
    ``tmp_path``: what a test sees is what it set up."""
    for key in list(os.environ):
        if key.startswith("GIT_") or key == "EMAIL":
            monkeypatch.delenv(key)
    home = tmp_path / "empty-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "proj").resolve()


def listed(repo: Path, *rels: str) -> list[Path]:
    return [repo / r for r in rels]


#: What the simulated upgrade writes or deletes (plus paths it may touch but leaves alone).
UPGRADE_PATHS = (
    f"{P}/standards/a.md",            # modified
    f"{P}/workflows/b.md",            # deleted
    f"{P}/standards/new.md",          # added
    SPACED,                           # modified, name with a space and non-ASCII
    f"{P}/new dir/ü file.md",         # added, in a new directory
    f"{P}/mcp_server/server.py",      # unchanged
    f"{P}/never.md",                  # never existed
    f"{P}/venv/lib/site.py",          # ignored (venv)
    f"{P}/.backups/20250101/files/a.md",  # ignored (backups)
    ".gitignore",                     # unchanged
)
EXPECTED = {
    ("M", f"{P}/standards/a.md"),
    ("D", f"{P}/workflows/b.md"),
    ("A", f"{P}/standards/new.md"),
    ("M", SPACED),
    ("A", f"{P}/new dir/ü file.md"),
}


def simulate_upgrade(repo: Path) -> None:
    write(repo, f"{P}/standards/a.md", "a v2\n")
    (repo / f"{P}/workflows/b.md").unlink()
    write(repo, f"{P}/standards/new.md", "new v2\n")
    write(repo, SPACED, "spaced v2\n")
    write(repo, f"{P}/new dir/ü file.md", "ü v2\n")
    write(repo, f"{P}/venv/lib/site.py", "venv\n")
    write(repo, f"{P}/.backups/20250101/files/a.md", "a v1\n")


def unrelated_work(repo: Path) -> None:
    """The user's own uncommitted work, outside what the upgrade touches."""
    write(repo, "src/app.py", "app = 2\n")
    write(repo, "notes.txt", "mine\n")


def restore_on_disk(repo: Path, base: str) -> None:
    """What a rollback does: the files as they were, written directly (git is not asked)."""
    for rel in (f"{P}/standards/a.md", f"{P}/workflows/b.md", SPACED):
        write(repo, rel, git(repo, "show", f"{base}:{rel}"))
    (repo / f"{P}/standards/new.md").unlink()
    shutil.rmtree(repo / f"{P}/new dir")


def hand_command(err: gitcommit.GitCommitError) -> str:
    marker = "commit them yourself with: "
    assert marker in err.hint, err.render()
    return err.hint.split(marker, 1)[1]


MESSAGE = message_for("5759a51aaaa", "347e7f5bbbb", {"added": 2, "updated": 2, "removed": 1},
                      ["a.md: merged, check it"], "upgrade-1")


# ---------------------------------------------------------------------------------------------
# commit_paths


def test_commit_paths_commits_exactly_the_changed_paths(repo: Path) -> None:
    base = head(repo)
    unrelated_work(repo)
    paths = listed(repo, *UPGRADE_PATHS)
    check_ready(repo, paths)
    simulate_upgrade(repo)

    sha = commit_paths(repo, paths, MESSAGE)

    assert sha is not None and sha == head(repo)
    assert git(repo, "rev-parse", f"{sha}^").strip() == base
    assert name_status(repo, sha) == EXPECTED
    assert git(repo, "log", "-1", "--format=%B", sha).rstrip("\n") == MESSAGE.rstrip("\n")
    # the user's work is still uncommitted, nothing is left staged, ignored files stay out of git
    assert status(repo) == {" M src/app.py", "?? notes.txt"}
    assert staged(repo) == []
    assert git(repo, "ls-files", "--", f"{P}/venv", f"{P}/.backups") == ""


def test_commit_paths_returns_none_when_nothing_changed(repo: Path) -> None:
    base = head(repo)
    write(repo, f"{P}/venv/lib/site.py", "only ignored content changed\n")
    assert commit_paths(repo, listed(repo, *UPGRADE_PATHS), MESSAGE) is None
    assert head(repo) == base
    assert staged(repo) == []


def test_commit_paths_never_commits_an_ignored_path_even_a_tracked_one(repo: Path) -> None:
    write(repo, f"{P}/venv/pyvenv.cfg", "home = /usr\n")
    git(repo, "add", "-f", f"{P}/venv/pyvenv.cfg")  # tracked before the ignore rule mattered
    git(repo, "commit", "-q", "-m", "venv cfg")
    write(repo, f"{P}/venv/pyvenv.cfg", "home = /opt\n")
    write(repo, f"{P}/standards/a.md", "a v2\n")

    sha = commit_paths(repo, listed(repo, f"{P}/venv/pyvenv.cfg", f"{P}/standards/a.md"), MESSAGE)

    assert sha is not None
    assert name_status(repo, sha) == {("M", f"{P}/standards/a.md")}
    assert status(repo) == {f" M {P}/venv/pyvenv.cfg"}


def test_commit_paths_takes_file_names_literally(repo: Path) -> None:
    """``*`` in a name is a character: a glob pathspec would also take the edited a.md."""
    write(repo, f"{P}/standards/a.md", "the user's edit, not listed\n")
    write(repo, f"{P}/standards/*.md", "star\n")

    sha = commit_paths(repo, listed(repo, f"{P}/standards/*.md"), MESSAGE)

    assert sha is not None
    assert name_status(repo, sha) == {("A", f"{P}/standards/*.md")}
    assert status(repo) == {f" M {P}/standards/a.md"}


def test_commit_paths_refuses_when_something_else_is_staged(repo: Path) -> None:
    base = head(repo)
    simulate_upgrade(repo)
    write(repo, "src/app.py", "app = 2\n")
    git(repo, "add", "src/app.py")  # staged after check_ready ran

    with pytest.raises(GitCommitError) as err:
        commit_paths(repo, listed(repo, *UPGRADE_PATHS), MESSAGE)

    assert "src/app.py" in err.value.why and "staged" in err.value.why
    assert err.value.render().startswith("error[git-commit-failed]: the upgrade was applied")
    assert head(repo) == base
    assert staged(repo) == ["src/app.py"]  # the index as it was: ours unstaged again
    assert f" M {P}/standards/a.md" in status(repo)


def test_a_failed_commit_leaves_the_index_alone_and_its_hand_command_is_exact(repo: Path) -> None:
    base = head(repo)
    unrelated_work(repo)
    simulate_upgrade(repo)
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'lint says no' >&2\nexit 1\n")
    hook.chmod(0o755)

    with pytest.raises(GitCommitError) as err:
        commit_paths(repo, listed(repo, *UPGRADE_PATHS), MESSAGE)

    assert "lint says no" in err.value.why
    assert head(repo) == base and staged(repo) == []
    hook.unlink()
    subprocess.run(hand_command(err.value), shell=True, check=True, capture_output=True)
    assert git(repo, "rev-parse", "HEAD^").strip() == base
    assert name_status(repo, "HEAD") == EXPECTED
    assert git(repo, "log", "-1", "--format=%B").rstrip("\n") == MESSAGE.rstrip("\n")
    assert status(repo) == {" M src/app.py", "?? notes.txt"}


def test_many_paths_split_over_several_git_commands_make_one_commit(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gitcommit, "_ARGS_BYTES", 200)  # a few paths per git command line
    rels = [f"{P}/many/file {i:03d}.md" for i in range(60)]
    for rel in rels:
        write(repo, rel, rel)
    (repo / f"{P}/standards/a.md").unlink()
    rels.append(f"{P}/standards/a.md")
    sha = commit_paths(repo, listed(repo, *rels), MESSAGE)
    assert sha is not None
    assert name_status(repo, sha) == {("A", r) for r in rels[:-1]} | {("D", f"{P}/standards/a.md")}


def test_the_hand_command_for_many_paths_reads_them_from_a_file(repo: Path) -> None:
    base = head(repo)
    write(repo, "src/app.py", "app = 2\n")
    git(repo, "add", "src/app.py")  # the user's staged work: the hand command must leave it staged
    rels = [f"{P}/many/file {i:03d} [x]*.md" for i in range(15)]
    for rel in rels:
        write(repo, rel, rel)

    with pytest.raises(GitCommitError) as err:
        commit_paths(repo, listed(repo, *rels), MESSAGE)

    command = hand_command(err.value)
    assert "--pathspec-from-file=" in command and "--literal-pathspecs" in command
    subprocess.run(command, shell=True, check=True, capture_output=True)
    assert git(repo, "rev-parse", "HEAD^").strip() == base
    assert name_status(repo, "HEAD") == {("A", r) for r in rels}
    assert git(repo, "log", "-1", "--format=%B").rstrip("\n") == MESSAGE.rstrip("\n")
    assert staged(repo) == ["src/app.py"]


# ---------------------------------------------------------------------------------------------
# check_ready


def refusal(repo: Path, paths: list[Path]) -> PreflightError:
    with pytest.raises(PreflightError) as err:
        check_ready(repo, paths)
    assert err.value.exit_code == EXIT_PREFLIGHT == 3
    return err.value


def test_check_ready_accepts_untracked_absent_and_ignored_paths_and_unrelated_work(repo: Path) -> None:
    unrelated_work(repo)
    write(repo, f"{P}/standards/new.md", "untracked, the upgrade will overwrite it\n")
    write(repo, f"{P}/venv/lib/site.py", "ignored\n")
    (repo / f"{P}/standards/a.md").touch()  # stat data differs from the index, content does not
    index = (repo / ".git" / "index").read_bytes()

    check_ready(repo, listed(repo, *UPGRADE_PATHS))

    assert (repo / ".git" / "index").read_bytes() == index  # read-only: not even a stat refresh


def test_check_ready_refuses_staged_changes(repo: Path) -> None:
    write(repo, "src/app.py", "app = 2\n")
    git(repo, "add", "src/app.py")
    err = refusal(repo, listed(repo, *UPGRADE_PATHS))
    assert "staged" in err.why and "src/app.py" in err.why
    assert "git stash" in err.hint and "without --git-commit" in err.hint


def test_check_ready_refuses_uncommitted_edits_to_listed_tracked_paths(repo: Path) -> None:
    write(repo, SPACED, "my edit\n")
    (repo / f"{P}/workflows/b.md").unlink()
    err = refusal(repo, listed(repo, *UPGRADE_PATHS))
    assert "2 tracked file(s)" in err.why
    assert SPACED in err.why and f"{P}/workflows/b.md" in err.why
    assert f"{P}/standards/a.md" not in err.why
    assert "git stash" in err.hint and "without --git-commit" in err.hint


def test_check_ready_refuses_without_an_identity(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "anon", identity=False)
    # no name or email anywhere (HOME, XDG and global config are isolated by the fixture) and no
    # guessing one from the host name, which succeeds on hosts with a domain name
    git(repo, "config", "user.useConfigOnly", "true")
    assert subprocess.run(["git", "-C", str(repo), "var", "GIT_COMMITTER_IDENT"],
                          capture_output=True).returncode != 0
    err = refusal(repo, listed(repo, *UPGRADE_PATHS))
    assert "identity" in err.why
    assert "user.name" in err.hint and "user.email" in err.hint


def test_check_ready_refuses_a_merge_in_progress(repo: Path) -> None:
    base_branch = git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip()
    git(repo, "checkout", "-q", "-b", "other")
    write(repo, "src/app.py", "app = 'other'\n")
    git(repo, "commit", "-q", "-am", "other")
    git(repo, "checkout", "-q", base_branch)
    write(repo, "src/app.py", "app = 'mine'\n")
    git(repo, "commit", "-q", "-am", "mine")
    git(repo, "merge", "-q", "other", check=False)  # conflicts: stops mid-merge
    assert (repo / ".git" / "MERGE_HEAD").exists()

    err = refusal(repo, listed(repo, *UPGRADE_PATHS))

    assert "a merge is in progress" in err.why
    assert "git merge --abort" in err.hint


def test_check_ready_refuses_a_path_outside_the_repository(repo: Path, tmp_path: Path) -> None:
    err = refusal(repo, [tmp_path / "elsewhere" / "x.md"])
    assert "not inside the repository" in err.why


# ---------------------------------------------------------------------------------------------
# revert_paths


def upgraded(repo: Path) -> tuple[str, str]:
    """(the commit before, the upgrade's commit), with the user's unrelated work around."""
    base = head(repo)
    unrelated_work(repo)
    simulate_upgrade(repo)
    upgrade = commit_paths(repo, listed(repo, *UPGRADE_PATHS), MESSAGE)
    assert upgrade is not None
    return base, upgrade


def test_revert_paths_commits_the_restore(repo: Path) -> None:
    base, upgrade = upgraded(repo)
    restore_on_disk(repo, base)

    sha = revert_paths(repo, upgrade, listed(repo, *UPGRADE_PATHS),
                       "Revert praxis-os upgrade 5759a51..347e7f5")

    assert sha is not None and sha == head(repo)
    assert git(repo, "rev-parse", f"{sha}^").strip() == upgrade
    # the unrelated edit stayed out of both commits, so the whole tree is the one from before
    assert git(repo, "rev-parse", f"{sha}^{{tree}}") == git(repo, "rev-parse", f"{base}^{{tree}}")
    assert name_status(repo, sha) == {({"M": "M", "D": "A", "A": "D"}[s], p) for s, p in EXPECTED}
    body = git(repo, "log", "-1", "--format=%B", sha)
    assert body.startswith("Revert praxis-os upgrade 5759a51..347e7f5\n")
    assert f"This reverts commit {upgrade}." in body
    assert status(repo) == {" M src/app.py", "?? notes.txt"}
    # nothing left to record: no second commit
    assert revert_paths(repo, upgrade, listed(repo, *UPGRADE_PATHS), "Revert again") is None
    assert head(repo) == sha


def test_revert_paths_refuses_when_something_else_is_staged(repo: Path) -> None:
    base, upgrade = upgraded(repo)
    restore_on_disk(repo, base)
    git(repo, "add", "src/app.py")

    with pytest.raises(RevertCommitError) as err:
        revert_paths(repo, upgrade, listed(repo, *UPGRADE_PATHS), "Revert praxis-os upgrade")

    text = err.value.render()
    assert text.startswith("error[git-revert-commit-failed]: the rollback restored the files but the "
                           "revert commit was not made")
    assert "src/app.py" in err.value.why
    assert head(repo) == upgrade
    assert staged(repo) == ["src/app.py"]
    # the command it gives commits the restore alone, even with src/app.py still staged
    subprocess.run(hand_command(err.value), shell=True, check=True, capture_output=True)
    assert git(repo, "rev-parse", "HEAD^").strip() == upgrade
    assert name_status(repo, "HEAD") == {({"M": "M", "D": "A", "A": "D"}[s], p) for s, p in EXPECTED}
    assert staged(repo) == ["src/app.py"]


def test_revert_paths_after_history_was_rewritten(repo: Path) -> None:
    base, upgrade = upgraded(repo)
    git(repo, "commit", "-q", "--amend", "-m", "upgrade, reworded")  # the upgrade commit is gone
    restore_on_disk(repo, base)

    sha = revert_paths(repo, upgrade, listed(repo, *UPGRADE_PATHS), "Revert praxis-os upgrade")

    assert sha is not None
    assert git(repo, "rev-parse", f"{sha}^{{tree}}") == git(repo, "rev-parse", f"{base}^{{tree}}")
    assert "no longer an ancestor of HEAD" in git(repo, "log", "-1", "--format=%B", sha)


def test_revert_paths_says_why_without_an_identity(repo: Path) -> None:
    base, upgrade = upgraded(repo)
    restore_on_disk(repo, base)
    git(repo, "config", "--unset", "user.name")
    git(repo, "config", "--unset", "user.email")
    git(repo, "config", "user.useConfigOnly", "true")

    with pytest.raises(RevertCommitError) as err:
        revert_paths(repo, upgrade, listed(repo, *UPGRADE_PATHS), "Revert praxis-os upgrade")

    assert "identity" in err.value.why and "user.email" in err.value.hint
    assert "commit them yourself with: git -C" in err.value.hint
    assert head(repo) == upgrade and staged(repo) == []


def test_revert_paths_says_why_when_the_repository_is_gone(repo: Path) -> None:
    base, upgrade = upgraded(repo)
    restore_on_disk(repo, base)
    shutil.rmtree(repo / ".git")

    with pytest.raises(RevertCommitError) as err:
        revert_paths(repo, upgrade, listed(repo, *UPGRADE_PATHS), "Revert praxis-os upgrade")

    assert "no longer a git repository" in err.value.why
    assert "restore the repository" in err.value.hint


# ---------------------------------------------------------------------------------------------
# repo_of, tracks_install


def test_not_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = tmp_path / "plain"
    write(plain, f"{P}/standards/a.md", "a\n")
    assert repo_of(plain) is None
    assert not (plain / ".git").exists()  # read-only
    assert repo_of(tmp_path / "missing") is None
    repo = make_repo(tmp_path / "proj")
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # git is not installed
    assert repo_of(repo) is None


def test_a_repository_that_does_not_track_the_install(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "ignoring", {".gitignore": ".praxis-os/\n", "README": "hi\n"})
    write(repo, f"{P}/standards/a.md", "a\n")
    assert repo_of(repo) == repo.resolve()
    assert tracks_install(repo, repo / P) is False

    untracked = make_repo(tmp_path / "untracked", {"README": "hi\n"})
    write(untracked, f"{P}/standards/a.md", "a\n")
    assert tracks_install(untracked, untracked / P) is False


def test_repo_tracking_the_install(repo: Path) -> None:
    assert repo_of(repo) == repo
    assert tracks_install(repo, repo / P) is True
    assert tracks_install(repo, repo / "src" / "nothing-here") is False


def test_a_project_in_a_subdirectory_of_the_repository(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "mono", {f"apps/my app/{rel}": text for rel, text in FILES.items()})
    project = root / "apps" / "my app"
    link = tmp_path / "link-to-mono"
    link.symlink_to(root)

    assert repo_of(project) == root.resolve()
    assert repo_of(link / "apps" / "my app") == root.resolve()
    assert tracks_install(root, project / P) is True
    assert tracks_install(root, root / P) is False

    write(project, f"{P}/standards/a.md", "a v2\n")
    # paths as the integrator may hold them: through a symlinked project directory
    sha = commit_paths(root.resolve(), [link / "apps" / "my app" / P / "standards" / "a.md"], MESSAGE)
    assert sha is not None
    assert name_status(root, sha) == {("M", f"apps/my app/{P}/standards/a.md")}


# ---------------------------------------------------------------------------------------------
# message_for


def test_message_for() -> None:
    msg = message_for("5759a51e0c2f4d2b8a9e1f3c4d5e6f7a8b9c0d1e", "347e7f5aa0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5",
                      {"added": 3, "updated": 4, "removed": 2, "conflicts": 2},
                      [".praxis-os/standards/x.md: merged with conflict markers", "config.json.praxis-new"],
                      "upgrade-20250101-120000-ab12")
    assert msg == (
        "praxis-os: upgrade 5759a51 -> 347e7f5\n"
        "\n"
        "3 added, 4 updated, 2 removed, 2 conflicts\n"
        "\n"
        "Needs attention:\n"
        "- .praxis-os/standards/x.md: merged with conflict markers\n"
        "- config.json.praxis-new\n"
        "\n"
        "Session: upgrade-20250101-120000-ab12\n"
    )


def test_message_for_unknown_old_no_attention_and_long_items() -> None:
    msg = message_for(None, "347e7f5aa0b1", {"added": 0, "updated": 1, "conflicts": 1}, [], "s1")
    assert msg == "praxis-os: upgrade unknown -> 347e7f5\n\n1 updated, 1 conflict\n\nSession: s1\n"
    assert "Needs attention" not in msg

    long_item = "the file " + "word " * 40 + "needs\na look"
    msg = message_for("a" * 40, "b" * 40, {}, [long_item] + [f"item {i}" for i in range(60)], "s2")
    lines = msg.splitlines()
    assert lines[2] == "no files changed"
    assert all(len(line) <= 72 for line in lines)
    assert lines[5].startswith("- the file word") and lines[6].startswith("  word")
    assert "- and 11 more (see the upgrade's report)" in lines
    assert lines[-1] == "Session: s2"
