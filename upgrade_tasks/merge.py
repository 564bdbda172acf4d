"""Three-way merge of text files with ``git merge-file`` (never a hand-written diff3)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path


def is_binary(*datas: bytes) -> bool:
    """Binary files are never merged: a NUL byte in the first 8 kB of any side."""
    return any(b"\0" in d[:8192] for d in datas)


def merge3(mine: bytes, base: bytes, theirs: bytes) -> tuple[bytes, bool]:
    """``(result, clean)``; a conflicting result carries git's conflict markers."""
    with tempfile.TemporaryDirectory(prefix="praxis-merge-") as tmp:
        t = Path(tmp)
        (t / "mine").write_bytes(mine)
        (t / "base").write_bytes(base)
        (t / "theirs").write_bytes(theirs)
        proc = subprocess.run(
            ["git", "merge-file", "-p", "-L", "yours", "-L", "installed", "-L", "upstream",
             str(t / "mine"), str(t / "base"), str(t / "theirs")],
            capture_output=True, check=False,
        )
    if proc.returncode < 0 or proc.returncode > 127:
        raise RuntimeError(f"git merge-file failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout, proc.returncode == 0
