"""Issue 6: the upgrade against the manual procedure and the copy floor, on realistic installs.

Install shaped like real prAxIs OS: ~330 system files / ~2.5 MB (standards, workflows, scripts,
server), 1,000 user files, a venv of ~3,000 files; the new source changes about a third of the
system files. Each row is the median of 5 runs on fresh copies (copying is not timed). Times are
of the engine (``python -c 'from upgrade_tasks.remote_main import main'``, what runs on hosts);
the ``invoke`` CLI adds its own start-up, measured separately.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import make_source_repo

REPO = Path(__file__).resolve().parents[1]
ENGINE = "import sys; from upgrade_tasks.remote_main import main; sys.exit(main(sys.argv[1:]))"
RUNS = 5


FILE_WORK: list[float] = []
_PHASE = re.compile(r"^\[(2|3)/5\] \w+ ok \(([0-9.]+)s\)", re.MULTILINE)


def engine(*args: str, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", ENGINE, *args], capture_output=True, text=True,
                       cwd=REPO, env=env)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {r.stdout[-2000:]}{r.stderr[-2000:]}")
    phases = _PHASE.findall(r.stdout)
    if len(phases) == 2:  # the file work of an upgrade: content (2) + server (3)
        FILE_WORK.append(sum(float(x) for _, x in phases))
    return dt


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def build(base: Path, scale_users: int = 1, scale_venv: int = 1, scale_system: int = 1
          ) -> tuple[Path, Path]:
    src = make_source_repo(base / "src", system_files=290 * scale_system, size_scale=2)
    proj = make_project(base / "proj", src.path, src.v1)
    root = proj / ".praxis-os"
    for i in range(1000 * scale_users):
        p = root / "specs" / f"s{i % 50:02d}" / f"note-{i:05d}.md"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"# user note {i}\n" + "text\n" * 40)
    site = root / "venv" / "lib" / "site-packages"
    for i in range(3000 * scale_venv):
        p = site / f"pkg{i % 100:03d}" / f"mod{i:05d}.py"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"X = {i}\n")
    return src.path, proj


def fresh(proj: Path, tag: str) -> Path:
    dest = proj.parent / f"run-{tag}"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(proj, dest, symlinks=True)
    os.sync()  # flush the copy now, so its write-back does not land on the timed run's fsyncs
    return dest


def median_of(fn, runs: int = RUNS) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(fn(i) for i in range(runs))


def measure(label: str, **scale: int) -> dict[str, float]:
    base = Path(tempfile.mkdtemp(prefix="praxis-bench-upgrade-"))
    try:
        src, proj = build(base, **scale)
        row: dict[str, float] = {}
        row["dry-run"] = median_of(lambda i: engine("upgrade", "--source", str(src), "--project",
                                                    str(fresh(proj, f"d{i}")), "--dry-run"))

        def upgrade(i: int) -> float:
            return engine("upgrade", "--source", str(src), "--project", str(fresh(proj, f"u{i}")))

        FILE_WORK.clear()
        row["upgrade"] = median_of(upgrade)
        row["file work"] = statistics.median(FILE_WORK)
        done = fresh(proj, "done")
        engine("upgrade", "--source", str(src), "--project", str(done))
        row["no-op"] = median_of(lambda i: engine("upgrade", "--source", str(src), "--project",
                                                  str(done)))
        row["status"] = median_of(lambda i: engine("status", "--project", str(done)))

        def rollback(i: int) -> float:
            p = fresh(proj, f"r{i}")
            engine("upgrade", "--source", str(src), "--project", str(p))
            return engine("rollback", "--project", str(p))

        row["rollback"] = median_of(rollback)

        def manual(i: int) -> float:  # the reference implementation's documented procedure
            p = fresh(proj, f"m{i}") / ".praxis-os"
            t0 = time.perf_counter()
            subprocess.run(["cp", "-a", str(p), f"{p}.backup.{i}"], check=True)
            for s, t in (("universal/standards", "standards/universal"),
                         ("universal/workflows", "workflows"), ("scripts", "scripts"),
                         ("mcp_server", "mcp_server")):
                subprocess.run(["cp", "-r", f"{src}/{s}/.", str(p / t)], check=True)
            return time.perf_counter() - t0

        row["manual (a)"] = median_of(manual)

        changed = subprocess.run(["git", "-C", str(src), "diff", "--name-only", "HEAD~1", "HEAD"],
                                 capture_output=True, text=True, check=True).stdout.split()

        def floor(i: int) -> float:  # copying only the changed files with cp
            p = fresh(proj, f"f{i}") / ".praxis-os"
            pairs = []
            for c in changed:
                for s, t in (("universal/standards/", "standards/universal/"),
                             ("universal/workflows/", "workflows/"), ("scripts/", "scripts/"),
                             ("mcp_server/", "mcp_server/")):
                    if c.startswith(s) and (src / c).exists():
                        pairs.append((src / c, p / (t + c[len(s):])))
            t0 = time.perf_counter()
            for a, b in pairs:
                b.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(["cp", str(a), str(b)], check=True)
            return time.perf_counter() - t0

        row["floor (b)"] = median_of(floor)
        row["peak MB"] = peak_rss_mb()
        row["system files"] = float(sum(1 for _ in (proj / ".praxis-os").rglob("*")
                                        if _.is_file() and "venv" not in _.parts
                                        and "specs" not in _.parts))
        print(f"  measured: {label}", flush=True)
        return row
    finally:
        shutil.rmtree(base, ignore_errors=True)


def deps_rows() -> dict[str, float]:
    """Upgrade with changed requirements: a new venv built beside the old one, from a local
    wheelhouse (offline), with pip and with uv (when uv is installed)."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_server_phase import _commit_requirements, _wheel

    base = Path(tempfile.mkdtemp(prefix="praxis-bench-deps-"))
    try:
        src = make_source_repo(base / "src0")
        repo = base / "src"
        subprocess.run(["git", "clone", "-q", str(src.path), str(repo)], check=True)
        wheels = base / "wheels"
        wheels.mkdir()
        _wheel(wheels)
        _commit_requirements(repo, "praxis-demo-dep==0.1\n")
        proj = make_project(base / "proj", src.path, src.v1, venv=False)
        subprocess.run([sys.executable, "-m", "venv", "--without-pip",
                        str(proj / ".praxis-os" / "venv")], check=True)
        uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
        no_uv = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                if not (Path(p) / "uv").exists())
        rows: dict[str, float] = {}
        variants = [("pip", no_uv)]
        if Path(uv).exists():
            variants.append(("uv", os.pathsep.join([no_uv, str(Path(uv).parent)])))
        for name, path in variants:
            def run(i: int, path: str = path, name: str = name) -> float:
                return engine("upgrade", "--source", str(repo), "--project",
                              str(fresh(proj, f"{name}{i}")), "--find-links", str(wheels),
                              "--offline", env={**os.environ, "PATH": path})
            rows[name] = median_of(run)
        return rows
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "invoke", "-r", str(REPO), "--list"], capture_output=True)
    cli = time.perf_counter() - t
    rows = {"baseline": measure("baseline"),
            "10x user files": measure("10x user files", scale_users=10),
            "10x venv": measure("10x venv", scale_venv=10),
            "3x system files": measure("3x system files", scale_system=3)}
    cols = ["dry-run", "upgrade", "no-op", "rollback", "status", "file work", "manual (a)",
            "floor (b)", "peak MB"]
    print(f"{'install':<18}" + "".join(f"{c:>12}" for c in cols))
    for name, r in rows.items():
        print(f"{name:<18}" + "".join(f"{r[c]:>12.3f}" for c in cols))
    b = rows["baseline"]
    checks = [
        ("dry-run < 0.5 s", b["dry-run"] < 0.5, f"{b['dry-run']:.3f} s"),
        ("upgrade (unchanged requirements, probe included) < 3 s", b["upgrade"] < 3,
         f"{b['upgrade']:.3f} s"),
        ("rollback < 1 s", b["rollback"] < 1, f"{b['rollback']:.3f} s"),
        ("no-op < 0.5 s", b["no-op"] < 0.5, f"{b['no-op']:.3f} s"),
        (">= 5x faster than the manual procedure (a)", b["manual (a)"] / b["upgrade"] >= 5,
         f"{b['manual (a)'] / b['upgrade']:.1f}x"),
        ("file work (phases 2+3) within 3x of the floor (b)", b["file work"] <= 3 * b["floor (b)"],
         f"{b['file work']:.3f} s vs {b['floor (b)']:.3f} s = {b['file work'] / b['floor (b)']:.2f}x"),
        ("10x user files: upgrade within +20%", rows["10x user files"]["upgrade"] <= 1.2 * b["upgrade"],
         f"{rows['10x user files']['upgrade'] / b['upgrade']:.2f}x"),
        ("10x venv: upgrade within +20%", rows["10x venv"]["upgrade"] <= 1.2 * b["upgrade"],
         f"{rows['10x venv']['upgrade'] / b['upgrade']:.2f}x"),
        ("3x system files: upgrade <= 3x", rows["3x system files"]["upgrade"] <= 3 * b["upgrade"],
         f"{rows['3x system files']['upgrade'] / b['upgrade']:.2f}x"),
        ("peak memory < 100 MB", max(r["peak MB"] for r in rows.values()) < 100,
         f"{max(r['peak MB'] for r in rows.values()):.0f} MB"),
    ]
    deps = deps_rows()
    print("\nupgrade with changed requirements (new venv beside the old one, offline wheelhouse):")
    for name, secs in deps.items():
        print(f"  {name:<4} {secs:.3f} s")
    if "uv" not in deps:
        print("  uv   not installed here (pip install uv to measure it)")
    print(f"\ninvoke CLI start-up (invoke --list): {cli:.3f} s, on top of the engine times above")
    print(f"system files in the baseline install: {int(b['system files'])}; the floor (b) copies "
          "only the changed files and does nothing else (no backup, no checks, no probe)")
    ok = True
    for name, passed, value in checks:
        ok &= passed
        print(f"  {'ok    ' if passed else 'MISSED'} {name}: {value}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
