"""Thin, typed wrappers around the ``git`` command line."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from .errors import UsageError


def git(repo: Path, *args: str, check: bool = True, input_bytes: bytes | None = None) -> str:
    """Run ``git -C repo args...`` and return stdout (text)."""
    env = dict(os.environ)
    env.setdefault("GIT_TERMINAL_PROMPT", "0")
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo), *args],
            input=input_bytes,
            capture_output=True,
            env=env,
            check=False,
        )
    except FileNotFoundError as exc:  # pragma: no cover - git is a hard requirement
        raise UsageError(
            "git is not installed", str(exc), "install git (e.g. apt-get install git)"
        ) from exc
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(
            proc.returncode, ["git", *args], proc.stdout, proc.stderr
        )
    return proc.stdout.decode("utf-8", "surrogateescape")


def git_ok(repo: Path, *args: str) -> bool:
    try:
        git(repo, *args)
    except subprocess.CalledProcessError:
        return False
    return True


def git_blob_id(data: bytes) -> str:
    """The id git gives a blob with this content (sha1 of ``blob <len>\\0<data>``)."""
    h = hashlib.sha1(b"blob %d\0" % len(data), usedforsecurity=False)
    h.update(data)
    return h.hexdigest()


class CatFile:
    """Read blobs from a repository through one ``git cat-file --batch`` process."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self._proc: subprocess.Popen[bytes] | None = None

    def read(self, blob: str) -> bytes | None:
        """The blob's bytes (``None`` when the repository has no such blob)."""
        if self._proc is None:
            self._proc = subprocess.Popen(
                ["git", "-C", str(self.repo), "cat-file", "--batch"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            )
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(blob.encode() + b"\n")
        self._proc.stdin.flush()
        header = self._proc.stdout.readline().split()
        if len(header) < 3 or header[1] != b"blob":
            return None
        size = int(header[2])
        data = self._proc.stdout.read(size)
        self._proc.stdout.read(1)
        return data

    def close(self) -> None:
        if self._proc is not None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            self._proc.wait()
            self._proc = None
