"""``invoke demo``: a sample source with two versions, a customised project at the old
one, an upgrade, its report, and a rollback, all in a temporary directory."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from . import engine
from .layout import PRAXIS_DIR
from .options import CONFIG_DEFAULTS, Options
from .sample import make_project, tree_digest
from .sample_source import make_source_repo


def _opts(source: Path, project: Path) -> Options:
    cfg = dict(CONFIG_DEFAULTS)
    cfg.update(source=str(source), project=str(project), yes=True)
    return Options.from_config(cfg)


def run_demo(keep: bool = False) -> None:
    say = engine.say
    base = Path(tempfile.mkdtemp(prefix="praxis-upgrade-demo-"))
    try:
        say(f"demo directory: {base}")
        src = make_source_repo(base / "praxis-os")
        say(f"sample prAxIs OS source: {src.path} (v1 {src.v1[:10]}, v2 {src.v2[:10]})")
        project = make_project(base / "my-project", src.path, src.v1)
        say(f"sample project installed at v1 with user edits: {project / PRAXIS_DIR}")
        before = tree_digest(project / PRAXIS_DIR)
        opts = _opts(src.path, project)

        say("\n== dry run: invoke upgrade --dry-run ==")
        engine.run_all(Options(**{**opts.__dict__, "dry_run": True}))

        say("\n== upgrade: invoke upgrade --source ... --project ... ==")
        engine.run_all(opts)
        reports = sorted((project / PRAXIS_DIR / ".upgrade-reports").glob("*.md"))
        if reports:
            say("\n== the report ==")
            say(reports[-1].read_text())
        say("== status: invoke status ==")
        say(engine.status_text(opts))

        say("\n== rollback: invoke rollback ==")
        say(engine.manual_rollback(opts))
        after = tree_digest(project / PRAXIS_DIR)
        same = before == after
        say(f"install byte-identical to before the upgrade: {'yes' if same else 'NO'}")
        if not same:
            diff = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            say("differences: " + ", ".join(diff[:20]))
            raise SystemExit(1)
    finally:
        if keep:
            say(f"kept: {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
