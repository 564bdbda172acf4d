"""Open a prAxIs OS source, whatever it is: a git checkout, a git URL, or a snapshot zip."""

from __future__ import annotations

from pathlib import Path

from .checkout import is_git_url, open_checkout
from .errors import UsageError
from .snapshot import is_snapshot, open_snapshot
from .source import Source


def open_source(spec: str, commit: str | None = None) -> Source:
    """Validate the source and list the files it installs. Reads only.

    ``commit`` is a resumed session's: a cloned URL is checked out there.
    """
    if not spec:
        raise UsageError(
            "no source given",
            "the upgrade needs a prAxIs OS source repository",
            "pass --source PATH (a git checkout) or --source URL",
        )
    if not is_git_url(spec):
        path = Path(spec).expanduser().absolute()
        if is_snapshot(path):
            return open_snapshot(path, spec)
    return open_checkout(spec, commit)
