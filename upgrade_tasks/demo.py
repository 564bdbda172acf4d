"""``invoke demo``: a sample source with two versions, a customised project at the old
one, an upgrade, its report, and a rollback, all in a temporary directory."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from . import options
from .driver import run_upgrade
from .errors import EXIT_INTERNAL, UpgradeError
from .layout import PRAXIS_DIR
from .output import Output
from .recovery import manual_rollback
from .runstate import say as say_line
from .sample import make_project, tree_digest
from .sample_source import make_source_repo
from .status import status_text


class DemoFailed(UpgradeError):
    """The demo's rollback did not give the install back byte for byte (a bug)."""

    exit_code = EXIT_INTERNAL
    ref = "demo-failed"


def run_demo(keep: bool = False, out: Output | None = None) -> dict[str, object]:
    """The demo; its result (for ``--json``). ``out``: how to show it (plain lines by default)."""
    out = out or Output(say_line)
    say = out.line
    base = Path(tempfile.mkdtemp(prefix="praxis-upgrade-demo-"))
    try:
        say(f"demo directory: {base}")
        src = make_source_repo(base / "praxis-os")
        say(f"sample prAxIs OS source: {src.path} (v1 {src.v1[:10]}, v2 {src.v2[:10]})")
        project = make_project(base / "my-project", src.path, src.v1)
        say(f"sample project installed at v1 with user edits: {project / PRAXIS_DIR}")
        before = tree_digest(project / PRAXIS_DIR)
        opts = options.resolve({"source": str(src.path), "project": str(project), "yes": True})

        say("\n== dry run: invoke upgrade --dry-run ==")
        run_upgrade(opts.replace(dry_run=True), out=out)

        say("\n== upgrade: invoke upgrade --source ... --project ... ==")
        run_upgrade(opts, out=out)
        reports = sorted((project / PRAXIS_DIR / ".upgrade-reports").glob("*.md"))
        if reports:
            say("\n== the report ==")
            say(reports[-1].read_text())
        say("== status: invoke status ==")
        say(status_text(opts))

        say("\n== rollback: invoke rollback ==")
        say(manual_rollback(opts))
        after = tree_digest(project / PRAXIS_DIR)
        same = before == after
        say(f"install byte-identical to before the upgrade: {'yes' if same else 'NO'}")
        if not same:
            diff = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            raise DemoFailed("the demo's rollback did not restore the install byte for byte",
                             "differences: " + ", ".join(diff[:20]), "report this as a bug")
        return {"outcome": "completed", "identical_after_rollback": same,
                "directory": str(base) if keep else None}
    finally:
        if keep:
            say(f"kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
