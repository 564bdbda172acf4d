"""``--git-commit``: record an upgrade (and a rollback of it) as commits in the project's repository.

When the project lives in a git work tree that tracks ``.praxis-os/``, the upgrade's own changes
become one commit holding exactly the files the upgrade wrote or deleted, and a later rollback
becomes one commit restoring them. The rules:

- :func:`check_ready` runs before the upgrade changes anything and refuses (exit 3) what would
  mix the user's work into our commit: staged changes, uncommitted edits to a path the upgrade
  may write, a merge/rebase/cherry-pick in progress, no committer identity.
- Only the given paths are staged (``git add -A -- PATHS``: additions, modifications and
  deletions), never with ``-f``; a path ``.gitignore`` excludes (venv, caches, backups) is never
  staged, even when it is tracked (``git check-ignore --no-index``). Before committing, the staged
  set is compared with the intended one; anything else staged stops the commit.
- Every pathspec is literal (``--literal-pathspecs``: ``*`` or ``:`` in a file name is just a
  character); file names travel NUL-separated (``-z``); read-only commands pass
  ``--no-optional-locks`` so they never rewrite the index.
- The user's hooks and signing configuration apply to our commits as to theirs.

Paths are absolute paths (files, preferably) inside the repository's work tree.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import EXIT_CLEANUP_FAILED, PreflightError, UpgradeError, UsageError

#: Environment that would point git at another repository or index than ``-C repo`` finds.
_REDIRECTING_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX",
                    "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE",
                    "GIT_LITERAL_PATHSPECS", "GIT_GLOB_PATHSPECS", "GIT_NOGLOB_PATHSPECS",
                    "GIT_ICASE_PATHSPECS")
#: Bytes of paths per git command line (far below any ARG_MAX).
_ARGS_BYTES = 64_000
#: How many names a message lists before "and N more".
_NAMES = 5
#: Attention items a commit message lists before "and N more".
_ATTENTION_ITEMS = 50
#: Paths a "commit them yourself" command lists inline; more go to a pathspec file.
_INLINE_PATHS = 10
#: What a repository can be in the middle of: marker in the git dir -> (operation, how to end it).
_IN_PROGRESS = (
    ("MERGE_HEAD", "merge", "git merge --continue or git merge --abort"),
    ("rebase-merge", "rebase", "git rebase --continue or git rebase --abort"),
    ("rebase-apply/applying", "git am", "git am --continue or git am --abort"),
    ("rebase-apply", "rebase", "git rebase --continue or git rebase --abort"),
    ("CHERRY_PICK_HEAD", "cherry-pick", "git cherry-pick --continue or git cherry-pick --abort"),
    ("REVERT_HEAD", "revert", "git revert --continue or git revert --abort"),
    ("sequencer", "cherry-pick or revert sequence", "git cherry-pick --abort (or git revert --abort)"),
    ("BISECT_LOG", "bisect", "git bisect reset"),
)
_IDENTITY_HINT = ('set an identity: git config --global user.name "Your Name" && '
                  "git config --global user.email you@example.com (without --global: for this "
                  "repository only)")


class GitCommitError(UpgradeError):
    """The upgrade (or rollback) itself succeeded; recording it as a git commit did not.

    The message says why and gives the exact command that makes the commit by hand.
    """

    exit_code = EXIT_CLEANUP_FAILED
    ref = "git-commit-failed"


class RevertCommitError(GitCommitError):
    """A rollback restored the files, but the revert commit was not made."""

    ref = "git-revert-commit-failed"


class _Problem(Exception):
    """Why git cannot do what we need, and (optionally) what fixes it."""

    def __init__(self, why: str, fix: str = "") -> None:
        super().__init__(why)
        self.why = why
        self.fix = fix


class _GitFailed(_Problem):
    def __init__(self, args: Iterable[str], proc: subprocess.CompletedProcess[bytes]) -> None:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = " / ".join(line.strip() for line in err[-3:] if line.strip()) or "no message"
        words = list(args)
        shown = words[:words.index("--") + 2] + ["..."] if "--" in words[:-2] else words
        super().__init__(f"`git {' '.join(shown)}` failed (exit {proc.returncode}): {detail}")
        self.stderr = proc.stderr


# ---------------------------------------------------------------------------------------------
# running git


def _run(repo: Path, *args: str, input_bytes: bytes | None = None, literal: bool = True,
         ) -> subprocess.CompletedProcess[bytes]:
    """``git -C repo [--literal-pathspecs] args...``, never prompting, with the repository ``-C``
    finds (not one an inherited ``GIT_DIR`` names)."""
    env = {k: v for k, v in os.environ.items() if k not in _REDIRECTING_ENV}
    env["GIT_TERMINAL_PROMPT"] = "0"
    cmd = ["git", "-C", str(repo), *(["--literal-pathspecs"] if literal else []), *args]
    try:
        return subprocess.run(cmd, input=input_bytes, capture_output=True, env=env, check=False,
                              stdin=None if input_bytes is not None else subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise UsageError("git is not installed", str(exc),
                         "install git (e.g. apt-get install git), or run without --git-commit") from exc


def _out(repo: Path, *args: str, input_bytes: bytes | None = None, literal: bool = True) -> bytes:
    proc = _run(repo, *args, input_bytes=input_bytes, literal=literal)
    if proc.returncode != 0:
        raise _GitFailed(args, proc)
    return proc.stdout


def _read(repo: Path, *args: str) -> bytes:
    """A read-only command: never takes the index lock, never refreshes the index on disk."""
    return _out(repo, "--no-optional-locks", *args)


def _names(raw: bytes) -> list[str]:
    """NUL-separated file names (``-z`` output) as ``str`` (undecodable bytes kept as in ``os``)."""
    return [os.fsdecode(n) for n in raw.split(b"\0") if n]


def _chunks(rels: list[str]) -> Iterator[list[str]]:
    """``rels`` in command-line-sized pieces."""
    chunk: list[str] = []
    size = 0
    for rel in rels:
        n = len(os.fsencode(rel)) + 1
        if chunk and size + n > _ARGS_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(rel)
        size += n
    if chunk:
        yield chunk


def _per_chunk(repo: Path, rels: list[str], *args: str, read_only: bool = False) -> list[str]:
    """``git args -- CHUNK`` for every chunk of ``rels``; the NUL-separated names they print."""
    out: list[str] = []
    run = _read if read_only else _out
    for chunk in _chunks(rels):
        out += _names(run(repo, *args, "--", *chunk))
    return out


def _quote_names(names: list[str]) -> str:
    shown = ", ".join(repr(n) if not n.isprintable() else n for n in names[:_NAMES])
    more = len(names) - _NAMES
    return shown + (f" and {more} more" if more > 0 else "")


# ---------------------------------------------------------------------------------------------
# paths


def _rel(repo: Path, path: Path) -> str:
    """``path`` relative to the work tree ``repo``, in git's form (``/``-separated)."""
    top = repo.resolve()
    p = Path(os.path.abspath(path))
    # the parent resolved (symlinked temp dirs, a project reached through a link), the name not:
    # the path itself may be absent, or be what we must not follow
    p = p.parent.resolve() / p.name if p.name else p.resolve()
    try:
        rel = p.relative_to(top)
    except ValueError:
        raise _Problem(f"{path} is not inside the repository {top}",
                       "pass paths inside the project's repository") from None
    if not rel.parts:
        raise _Problem(f"{path} is the repository's root; only files of the install can be committed",
                       "pass the files the upgrade changed")
    return rel.as_posix()


def _rels(repo: Path, paths: list[Path]) -> list[str]:
    seen: dict[str, None] = {}
    for p in paths:
        seen.setdefault(_rel(repo, p), None)
    return list(seen)


def _covered(name: str, rels: set[str]) -> bool:
    """Whether ``name`` is one of ``rels`` or lies under one of them (a directory)."""
    if name in rels:
        return True
    parts = name.split("/")
    return any("/".join(parts[:i]) in rels for i in range(1, len(parts)))


def _ignored(repo: Path, rels: list[str]) -> set[str]:
    """The ``rels`` that ``.gitignore`` (or ``info/exclude``, ``core.excludesFile``) excludes,
    whether or not they are tracked."""
    if not rels:
        return set()
    # check-ignore takes path names, not pathspecs: it rejects ``--literal-pathspecs``, and a
    # leading ``:`` would read as pathspec magic, hence ``./``
    feed = b"".join(os.fsencode("./" + r if r.startswith(":") else r) + b"\0" for r in rels)
    proc = _run(repo, "check-ignore", "--no-index", "--stdin", "-z", "--verbose", "--non-matching",
                input_bytes=feed, literal=False)
    if proc.returncode not in (0, 1):  # 1: nothing ignored
        raise _GitFailed(["check-ignore", "--no-index", "--stdin"], proc)
    fields = proc.stdout.split(b"\0")
    ignored: set[str] = set()
    # one record of four fields (source, line, pattern, path) per input path, in input order
    for i, rel in enumerate(rels):
        pattern = fields[4 * i + 2] if len(fields) > 4 * i + 2 else b""
        if pattern and not pattern.startswith(b"!"):
            ignored.add(rel)
    return ignored


def _tracked(repo: Path, rels: list[str]) -> set[str]:
    """The ``rels`` the index has an entry for (or, for a directory, entries under)."""
    entries = _per_chunk(repo, rels, "ls-files", "-z", read_only=True)
    found: set[str] = set()
    for e in entries:
        parts = e.split("/")
        found.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {r for r in rels if r in found}


def _to_stage(repo: Path, rels: list[str]) -> list[str]:
    """The ``rels`` to hand to ``git add -A``: not ignored, and present on disk or tracked
    (a path that is gone and was never tracked has nothing to record)."""
    top = repo.resolve()
    ignored = _ignored(repo, rels)
    kept = [r for r in rels if r not in ignored]
    absent = [r for r in kept if not os.path.lexists(top / r)]
    tracked = _tracked(repo, absent) if absent else set()
    return [r for r in kept if r not in absent or r in tracked]


# ---------------------------------------------------------------------------------------------
# the repository's state


def _git_dir(repo: Path) -> Path:
    return Path(os.fsdecode(_read(repo, "rev-parse", "--absolute-git-dir").rstrip(b"\n")))


def _has_head(repo: Path) -> bool:
    return _run(repo, "rev-parse", "-q", "--verify", "HEAD^{commit}").returncode == 0


def _in_progress(repo: Path) -> list[_Problem]:
    gd = _git_dir(repo)
    found: list[_Problem] = []
    seen: set[str] = set()
    for marker, what, fix in _IN_PROGRESS:
        if (gd / marker).exists() and what not in seen and not (what == "rebase" and "git am" in seen):
            seen.add(what)
            found.append(_Problem(f"a {what} is in progress ({gd / marker} exists)",
                                  f"finish it first: {fix}"))
    lock = gd / "index.lock"
    if lock.exists():
        found.append(_Problem(f"another git command is using the index ({lock} exists)",
                              f"wait for it to finish; if no git command is running, delete {lock}"))
    return found


def _identity(repo: Path) -> _Problem | None:
    for var in ("GIT_COMMITTER_IDENT", "GIT_AUTHOR_IDENT"):
        proc = _run(repo, "var", var)
        if proc.returncode != 0:
            err = [ln.strip() for ln in proc.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
            detail = err[-1] if err else f"git var {var} failed"
            return _Problem(f"git has no {'committer' if 'COMMITTER' in var else 'author'} identity "
                            f"({detail})", _IDENTITY_HINT)
    return None


def _staged(repo: Path) -> list[str]:
    """Every path whose index entry differs from HEAD (all of the index before the first commit)."""
    return _names(_read(repo, "diff", "--cached", "--name-only", "-z", "--no-renames", "--no-ext-diff",
                        "--no-color"))


# ---------------------------------------------------------------------------------------------
# the API


def repo_of(project: Path) -> Path | None:
    """The root of the git work tree holding ``project``; ``None`` when it is in none, or git is
    missing. Read-only.

    :raises PreflightError: git refuses the repository (``safe.directory``: it belongs to another
        user), so whether it tracks the install cannot be known.
    """
    if shutil.which("git") is None or not project.is_dir():
        return None
    proc = _run(project, "--no-optional-locks", "rev-parse", "--show-toplevel")
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace")
        if "dubious ownership" in err or "safe.directory" in err:
            raise PreflightError(
                f"git refuses to work in the repository holding {project}",
                "it belongs to another user (git's safe.directory check): "
                + " / ".join(ln.strip() for ln in err.strip().splitlines()[:2]),
                "run as the repository's owner, or trust it: git config --global --add safe.directory "
                + shlex.quote(str(project)) + " (or run without --git-commit)")
        return None
    top = os.fsdecode(proc.stdout.rstrip(b"\n"))
    return Path(top) if top else None  # empty: inside a .git directory, not a work tree


def tracks_install(repo: Path, install_root: Path) -> bool:
    """Whether the repository tracks any file under ``install_root`` (the ``.praxis-os`` folder).

    A submodule at ``install_root`` does not count: the superproject cannot commit its files.
    """
    try:
        rel = _rel(repo, install_root)
        raw = _read(repo, "ls-files", "-z", "--stage", "--", rel)
    except _Problem:
        return False
    return any(not entry.startswith(b"160000 ") for entry in raw.split(b"\0") if entry)


def check_ready(repo: Path, paths: list[Path]) -> None:
    """Refuse, before the upgrade changes anything, what would make its commit impure or impossible.

    ``paths``: every absolute path the upgrade may write or delete (present or not, tracked or not).
    Changes nothing, not even the index's cached stat data.

    :raises PreflightError: (exit 3) naming every problem found: an operation in progress, staged
        changes, uncommitted edits to tracked ``paths``, no identity.
    """
    problems: list[_Problem] = []
    try:
        rels: list[str] = []
        for p in paths:
            try:
                rels.append(_rel(repo, p))
            except _Problem as exc:
                problems.append(exc)
        rels = list(dict.fromkeys(rels))
        problems += _in_progress(repo)
        staged = _staged(repo)
        if staged:
            problems.append(_Problem(
                f"the index already has staged changes ({_quote_names(staged)}), which would go into "
                "the upgrade's commit",
                "commit what is staged, or unstage it (git reset -q -- PATHS, or git stash)"))
        ignored = _ignored(repo, rels)
        watched = [r for r in rels if r not in ignored]
        edited = _per_chunk(repo, watched, "diff", "--name-only", "-z", "--no-renames", "--no-ext-diff",
                            "--no-color", read_only=True)
        if edited:
            problems.append(_Problem(
                f"{len(edited)} tracked file(s) the upgrade may change have uncommitted edits "
                f"({_quote_names(edited)}), which would go into the upgrade's commit",
                "commit those edits first, or set them aside with git stash (git stash pop after the "
                "upgrade)"))
        ident = _identity(repo)
        if ident is not None:
            problems.append(ident)
    except _GitFailed as exc:
        raise PreflightError(f"--git-commit: cannot inspect the git repository {repo}", exc.why,
                             "fix the repository (git status shows its state), or run without --git-commit"
                             ) from None
    if problems:
        fixes = list(dict.fromkeys(p.fix for p in problems if p.fix))
        raise PreflightError(
            f"--git-commit: the repository {repo} is not ready for the upgrade's commit "
            "(nothing was changed)",
            "; ".join(p.why for p in problems),
            "; ".join([*fixes, "or run without --git-commit"]))


def commit_paths(repo: Path, paths: list[Path], message: str) -> str | None:
    """Commit exactly what changed among ``paths`` (absolute; written, created or deleted by the
    upgrade), with ``message``. Ignored paths are skipped, as are paths that are gone and were
    never tracked.

    :returns: the new commit's sha, or ``None`` when none of ``paths`` changed (no commit made).
    :raises GitCommitError: anything else is staged, or git failed (hook, signing, identity): the
        message gives the exact command that makes the commit by hand; the index is left as found.
    """
    try:
        rels = _to_stage(repo, _rels(repo, paths))
    except _Problem as exc:
        raise GitCommitError("the upgrade was applied but its git commit was not made", exc.why,
                             exc.fix or "commit the upgrade's files yourself (git status lists them)"
                             ) from None
    try:
        return _stage_and_commit(repo, rels, message)
    except _Problem as exc:
        raise GitCommitError("the upgrade was applied but its git commit was not made", exc.why,
                             _by_hand(repo, rels, message, exc.fix)) from None


def revert_paths(repo: Path, upgrade_commit: str, paths: list[Path], message: str) -> str | None:
    """After a rollback restored ``paths`` on disk, commit that restore with ``message``.

    ``upgrade_commit`` is the commit :func:`commit_paths` made; unless ``message`` names it
    already, a ``This reverts commit <sha>.`` line is added (saying so when history was rewritten
    and it is no longer an ancestor of HEAD; the restore is committed all the same).

    :returns: the revert commit's sha, or ``None`` when ``paths`` already match HEAD.
    :raises RevertCommitError: "the rollback restored the files but the revert commit was not
        made": why (something else staged, the repository or the identity gone, git failed) and
        the exact command to commit them by hand.
    """
    what = "the rollback restored the files but the revert commit was not made"
    if upgrade_commit and upgrade_commit not in message:
        message = message.rstrip("\n") + "\n\n" + _reverts_line(repo, upgrade_commit)
    rels: list[str] = []  # what the hand-made commit takes: none until git can tell which
    try:
        if not repo.is_dir() or _run(repo, "rev-parse", "--show-toplevel").returncode != 0:
            raise _Problem(f"{repo} is no longer a git repository",
                           "restore the repository (its .git directory), then commit the restored files")
        rels = _to_stage(repo, _rels(repo, paths))
        problems = _in_progress(repo)
        staged = _staged(repo)
        if staged:
            problems.append(_Problem(f"the index has other staged changes ({_quote_names(staged)}), "
                                     "which must not go into the revert commit"))
        ident = _identity(repo)
        if ident is not None:
            problems.append(ident)
        if problems:
            raise _Problem("; ".join(p.why for p in problems),
                           "; ".join(dict.fromkeys(p.fix for p in problems if p.fix)))
        return _stage_and_commit(repo, rels, message)
    except _Problem as exc:
        raise RevertCommitError(what, exc.why, _by_hand(repo, rels, message, exc.fix)) from None


def message_for(old: str | None, new: str, counts: dict[str, int], attention: list[str],
                session: str) -> str:
    """The upgrade commit's message.

    ``counts`` in the caller's order, zeros left out (``1 conflicts`` reads ``1 conflict``);
    attention items one per ``- `` line, wrapped at 72 columns, at most 50 listed::

        praxis-os: upgrade 5759a51 -> 347e7f5

        3 added, 4 updated, 2 removed, 2 conflicts

        Needs attention:
        - .praxis-os/standards/x.md: merged with conflict markers

        Session: upgrade-20250101-120000-ab12
    """
    lines = [f"praxis-os: upgrade {_short(old)} -> {_short(new)}", ""]
    parts = [f"{n} {_one(key) if n == 1 else key}" for key, n in counts.items() if n]
    lines += [", ".join(parts) if parts else "no files changed", ""]
    items = [" ".join(a.split()) for a in attention if a.strip()]
    if items:
        lines.append("Needs attention:")
        for item in items[:_ATTENTION_ITEMS]:
            lines += textwrap.wrap(item, 72, initial_indent="- ", subsequent_indent="  ",
                                   break_long_words=False, break_on_hyphens=False)
        if len(items) > _ATTENTION_ITEMS:
            lines.append(f"- and {len(items) - _ATTENTION_ITEMS} more (see the upgrade's report)")
        lines.append("")
    lines.append(f"Session: {' '.join(session.split())}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# committing


def _stage_and_commit(repo: Path, rels: list[str], message: str) -> str | None:
    """Stage ``rels`` (already filtered by :func:`_to_stage`), check that exactly they are staged,
    commit. On failure the index is put back as it was."""
    if not rels:
        return None
    had_head = _has_head(repo)
    wanted = set(rels)
    try:
        for chunk in _chunks(rels):
            _out(repo, "add", "-A", "--", *chunk)
        staged = _staged(repo)
        others = [s for s in staged if not _covered(s, wanted)]
        if others:
            raise _Problem(f"other changes are staged ({_quote_names(others)}) and would go into the commit",
                           "commit or unstage them first (git stash, or git reset -q -- PATHS)")
        if not staged:
            return None
        proc = _run(repo, "commit", "-q", "--cleanup=whitespace", "-F", "-",
                    input_bytes=message.encode("utf-8"))
        if proc.returncode != 0:
            raise _GitFailed(["commit", "-F", "-"], proc)
    except _Problem:
        _unstage(repo, rels, had_head)
        raise
    return _out(repo, "rev-parse", "--verify", "HEAD^{commit}").decode().strip()


def _unstage(repo: Path, rels: list[str], had_head: bool) -> None:
    """Put the index entries of ``rels`` back to HEAD's (best effort: we are already failing)."""
    for chunk in _chunks(rels):
        if had_head:
            _run(repo, "reset", "-q", "--", *chunk)
        else:
            _run(repo, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", *chunk)


def _reverts_line(repo: Path, upgrade_commit: str) -> str:
    if _has_head(repo) and _run(repo, "merge-base", "--is-ancestor", upgrade_commit, "HEAD").returncode != 0:
        return (f"This reverts the changes of commit {upgrade_commit}\n(no longer an ancestor of "
                "HEAD: history was rewritten since).")
    return f"This reverts commit {upgrade_commit}."


def _by_hand(repo: Path, rels: list[str], message: str, fix: str) -> str:
    """``fix`` (if any), then the exact commands that make the commit by hand."""
    cmd = _commands(repo, rels, message)
    if not cmd:
        return fix or "nothing is left to commit"
    return (f"{fix}; then " if fix else "") + "commit them yourself with: " + cmd


def _commands(repo: Path, rels: list[str], message: str) -> str:
    """``git add -A ... && git commit ... -- PATHS``: commits ``rels`` only, even with other changes
    staged. The message (and a long path list) go to files in the git directory when it is there."""
    if not rels:
        return ""
    git = "git -C " + shlex.quote(str(repo))
    if any(any(c in r for c in "*?[\\") or r.startswith(":") for r in rels):
        git += " --literal-pathspecs"
    msg = "-m " + shlex.quote(message.splitlines()[0] if message.strip() else "praxis-os")
    spec = "-- " + " ".join(shlex.quote(r) for r in rels)
    try:
        gd = _git_dir(repo)
        (gd / "PRAXIS_UPGRADE_COMMIT_MSG").write_text(message, encoding="utf-8")
        msg = "-F " + shlex.quote(str(gd / "PRAXIS_UPGRADE_COMMIT_MSG"))
        if len(rels) > _INLINE_PATHS:
            (gd / "PRAXIS_UPGRADE_PATHS").write_bytes(b"".join(os.fsencode(r) + b"\0" for r in rels))
            spec = f"--pathspec-from-file={shlex.quote(str(gd / 'PRAXIS_UPGRADE_PATHS'))} --pathspec-file-nul"
    except (_Problem, OSError):
        pass  # the repository is gone or read-only: the command inline, as far as it goes
    return f"{git} add -A {spec} && {git} commit {msg} {spec}"


def _short(commit: str | None) -> str:
    if not commit:
        return "unknown"
    return commit[:7] if re.fullmatch(r"[0-9a-fA-F]{8,64}", commit) else commit


def _one(key: str) -> str:
    """``conflicts`` -> ``conflict`` (for a count of one)."""
    return key[:-1] if key.endswith("s") and not key.endswith("ss") else key


def commit_of_session(repo: Path, session: str) -> str | None:
    """HEAD, when it is the commit of upgrade session ``session`` (its message's ``Session:``
    line): the commit an attempt made before it was killed, found again by the rerun."""
    try:
        message = _read(repo, "log", "-1", "--format=%H%n%B", "HEAD").decode(errors="replace")
    except _Problem:
        return None
    sha, _nl, body = message.partition("\n")
    return sha.strip() if f"Session: {session}" in body.splitlines() else None
