"""Thin, typed wrappers around the ``git`` command line."""

from __future__ import annotations

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
