"""Classification speed: 1,000 system files in a source with 100 commits of history.

Measures the planner's read-only work (history, recognition or manifest, classification,
merges) for an install *without* a manifest (recognised from history) and with one.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from upgrade_tasks import options
from upgrade_tasks.layout import Install
from upgrade_tasks.preflight import run_preflight
from upgrade_tasks.sample import install_at

ENV = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
       "GIT_COMMITTER_EMAIL": "b@b", "GIT_CONFIG_GLOBAL": "/dev/null"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          env=ENV, text=True).stdout.strip()


def build(base: Path, files: int, commits: int) -> tuple[Path, list[str]]:
    from upgrade_tasks.sample_source import v1_files

    repo = base / "src"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for k, v in v1_files().items():
        if k.startswith("mcp_server/"):
            (repo / k).parent.mkdir(parents=True, exist_ok=True)
            (repo / k).write_bytes(v)
    paths = [f"universal/standards/t{i % 20:02d}/doc-{i:04d}.md" for i in range(files)]
    shas = []
    for c in range(commits):
        touched = paths if c == 0 else paths[(c * 10) % files:(c * 10) % files + 10]
        for p in touched:
            f = repo / p
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(f"# {p}\n\nrevision {c}\n" + "text line\n" * 60)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"c{c}")
        shas.append(git(repo, "rev-parse", "HEAD"))
    return repo, shas


def measure(files: int = 1000, commits: int = 100, runs: int = 5) -> list[dict[str, object]]:
    base = Path(tempfile.mkdtemp(prefix="praxis-bench-classify-"))
    try:
        repo, shas = build(base, files, commits)
        rows = []
        for label, manifest in (("no manifest (history)", False), ("installed manifest", True)):
            proj = base / f"p-{manifest}"
            install_at(proj, repo, shas[commits // 2], with_manifest=manifest)
            # a few user edits so merges are part of the work
            for i in (600, 700, 800, 900, 990):
                f = proj / ".praxis-os" / f"standards/universal/t{i % 20:02d}/doc-{i:04d}.md"
                f.write_text(f.read_text() + "user note\n")
            times = []
            plan = None
            opts = options.resolve({"source": str(repo), "project": str(proj), "no_restart": True})
            for _ in range(runs):
                t0 = time.perf_counter()
                plan = run_preflight(Install(proj), opts).plan
                times.append(time.perf_counter() - t0)
            assert plan is not None
            rows.append({"case": label, "files": files, "commits": commits,
                         "median_s": statistics.median(times), "min_s": min(times),
                         "actions": plan.counts()})
        return rows
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    rows = measure()
    print(f"{'classification':<26}{'files':>7}{'commits':>9}{'median s':>10}{'min s':>8}  target < 1 s")
    ok = True
    for r in rows:
        med = float(str(r["median_s"]))
        ok &= med < 1.0
        print(f"{r['case']:<26}{r['files']:>7}{r['commits']:>9}{med:>10.3f}"
              f"{float(str(r['min_s'])):>8.3f}  {'ok' if med < 1.0 else 'MISSED'}  {r['actions']}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
