"""Open a prAxIs OS source, whatever it is: a git checkout, a git URL, or a snapshot zip."""

from __future__ import annotations

from pathlib import Path

from .checkout import is_git_url, open_checkout
from .errors import UsageError
from .snapshot import is_snapshot, open_snapshot
from .source import Source


def open_source(spec: str, commit: str | None = None, ref: str = "") -> Source:
    """Validate the source and list the files it installs. Reads only.

    ``ref`` (``--ref``): that branch, tag or commit of a checkout or URL, read from a temporary
    clone. ``commit`` is a resumed session's: a cloned URL (or a ``--ref`` run's clone) is
    checked out there.
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
            if ref:
                raise UsageError(f"--ref {ref} cannot select a commit of a snapshot",
                                 "a snapshot holds exactly one commit",
                                 "leave out --ref, or pass the git checkout or URL instead")
            return open_snapshot(path, spec)
    return open_checkout(spec, commit, ref)
