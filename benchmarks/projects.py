"""Issue 15: 20 local projects upgraded with one ``--projects ... --parallel 4`` against 20
sequential ``upgrade`` runs (goal: at least 2x faster on 2 cores, the same results).

``python3 -m benchmarks.projects [--runs N] [--projects K] [--parallel P]``. Each run makes K
fresh copies of one sample project (the sample source's v1, user edits included) per method and
times, wall clock:

* **sequential**: ``python -m upgrade_tasks upgrade --source S --project Pi --yes``, one after the
  other, as a shell loop over the projects would;
* **parallel**: one ``python -m upgrade_tasks upgrade --source S --projects @list --parallel P``.

Also timed: ``check`` of one project against the local source (issue 15.3: "under 0.5 s for a
local source"), the median of ``--check-runs`` whole command runs, interpreter start included.

Same results: after each method every project is at v2 and the projects' trees (the venv
aside, whose scripts name their own path) are identical across the two methods; the benchmark
fails otherwise. Printed: a Markdown table of medians and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from upgrade_tasks.sample import make_project, tree_digest  # noqa: E402
from upgrade_tasks.sample_source import make_source_repo  # noqa: E402

GOAL = 2.0
CHECK_GOAL_S = 0.5


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PRAXIS_UPGRADE_", "INVOKE_UPGRADE_"))}
    env["PYTHONPATH"] = str(REPO)
    return env


def _copies(template: Path, where: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        dest = where / f"app{i:02d}"
        shutil.copytree(template, dest, symlinks=True)
        out.append(dest)
    return out


def _digest(p: Path) -> dict[str, tuple[str, int, float]]:
    d = tree_digest(p / ".praxis-os")
    return {k: v for k, v in d.items() if not k.startswith("venv") and k not in (
        ".installed-manifest.json", "VERSION.json")}


def _check(projects: list[Path], v2: str) -> list[dict[str, tuple[str, int, float]]]:
    out = []
    for p in projects:
        v = json.loads((p / ".praxis-os" / "VERSION.json").read_text())
        if v["installed_commit"] != v2:
            raise SystemExit(f"{p} is not at v2 after the run")
        out.append(_digest(p))
    return out


def one_run(src: Path, template: Path, v2: str, work: Path, n: int,
            parallel: int) -> dict[str, float]:
    seq = _copies(template, work / "seq", n)
    t0 = time.monotonic()
    for p in seq:
        subprocess.run([sys.executable, "-m", "upgrade_tasks", "upgrade", "--source", str(src),
                        "--project", str(p), "--yes"], check=True, capture_output=True, env=_env())
    t_seq = time.monotonic() - t0
    par = _copies(template, work / "par", n)
    listing = work / "projects.txt"
    listing.write_text("".join(f"{p}\n" for p in par))
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "upgrade_tasks", "upgrade", "--source", str(src),
                    "--projects", f"@{listing}", "--parallel", str(parallel), "--yes",
                    "--report-dir", str(work / "rep")], check=True, capture_output=True, env=_env())
    t_par = time.monotonic() - t0
    if _check(seq, v2) != _check(par, v2):
        raise SystemExit("the parallel run's projects differ from the sequential run's")
    shutil.rmtree(work / "seq")
    shutil.rmtree(work / "par")
    return {"sequential": t_seq, "parallel": t_par, "load": os.getloadavg()[0]}


def time_check(src: Path, template: Path, work: Path, runs: int) -> list[float]:
    """Wall seconds of ``check`` (exit 11: the template is behind), each a fresh process."""
    proj = _copies(template, work / "check", 1)[0]
    out = []
    for _ in range(runs):
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "upgrade_tasks", "check", "--source", str(src),
                               "--project", str(proj)], capture_output=True, env=_env())
        out.append(time.monotonic() - t0)
        if proc.returncode != 11:
            raise SystemExit(f"check exited {proc.returncode}, not 11: {proc.stderr!r}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m benchmarks.projects",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--projects", type=int, default=20)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--check-runs", type=int, default=10)
    ns = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="praxis-bench-projects-") as tmp:
        base = Path(tmp)
        src = make_source_repo(base / "praxis-os")
        template = make_project(base / "template", src.path, src.v1)
        checks = time_check(src.path, template, base, ns.check_runs)
        runs = []
        for i in range(ns.runs):
            runs.append(one_run(src.path, template, src.v2, base / f"run{i}", ns.projects, ns.parallel))
            print(f"run {i + 1}/{ns.runs}: sequential {runs[-1]['sequential']:.2f}s, parallel "
                  f"{runs[-1]['parallel']:.2f}s (load {runs[-1]['load']:.2f})", file=sys.stderr,
                  flush=True)
    seq = statistics.median(r["sequential"] for r in runs)
    par = statistics.median(r["parallel"] for r in runs)
    speedup = seq / par
    cores = os.cpu_count() or 1
    print(f"| {ns.projects} projects on {cores} cores | median s | per run s |")
    print("|---|---|---|")
    per_seq = ", ".join(f"{r['sequential']:.2f}" for r in runs)
    per_par = ", ".join(f"{r['parallel']:.2f}" for r in runs)
    print(f"| {ns.projects} sequential `upgrade --project Pi` | {seq:.2f} | {per_seq} |")
    print(f"| one `upgrade --projects @list --parallel {ns.parallel}` | {par:.2f} | {per_par} |")
    verdict = "met" if speedup >= GOAL else "MISSED"
    print(f"| speed-up | {speedup:.2f}x | goal >= {GOAL:.0f}x: **{verdict}** |")
    check_s = statistics.median(checks)
    check_ok = check_s < CHECK_GOAL_S
    print(f"| `check`, local source ({len(checks)} runs) | {check_s:.2f} | max {max(checks):.2f}; "
          f"goal < {CHECK_GOAL_S} s: **{'met' if check_ok else 'MISSED'}** |")
    print(json.dumps({"check_s": checks, "check_median_s": check_s,
                      "projects": ns.projects, "parallel": ns.parallel, "cores": cores, "runs": runs,
                      "sequential_s": seq, "parallel_s": par, "speedup": speedup,
                      "goal_met": speedup >= GOAL and check_ok}))
    return 0 if speedup >= GOAL and check_ok else 1


if __name__ == "__main__":
    sys.exit(main())
