"""Issue 6: the upgrade against the manual procedure and the copy floor, on realistic installs.

Install shaped like real prAxIs OS: ~330 system files / ~2.5 MB (standards, workflows, scripts,
server), 1,000 user files, and a venv of ~3,000 files and ~500 MB (the size the upgrading docs
give, "~500MB"; the real requirements resolve to several GB) with a working pip; the new source
changes about a third of the system files. Each row is the median of 5 runs on fresh copies
(copying is not timed; the venv is hard-linked into each copy, which nothing here writes to).
Times are of the engine (``python -c 'from upgrade_tasks.remote_main import main'``, what runs on
hosts); the ``invoke`` CLI adds its own start-up, measured separately.

Baseline (a) is the reference implementation's documented procedure, step for step: ``cp -r`` of
the whole ``.praxis-os`` as the backup; ``rsync -av --delete`` of standards/universal, workflows
and mcp_server (done here as remove + ``cp -r``, which is what it leaves and is faster than rsync
on new files) and a copy of scripts; ``pip install -r mcp_server/requirements.txt`` with the
venv's pip; then the restart's health check, done with the same stdio probe our validation uses.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from upgrade_tasks.layout import map_source_path
from upgrade_tasks.mcp_client import probe_stdio
from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import make_source_repo

REPO = Path(__file__).resolve().parents[1]
VENV_DIR = Path(tempfile.mkdtemp(prefix="praxis-bench-venvs-"))
ENGINE = "import sys; from upgrade_tasks.remote_main import main; sys.exit(main(sys.argv[1:]))"
RUNS = 5


FILE_WORK: list[float] = []
_PHASE = re.compile(r"^\[(2|3)/5\] \w+ ok \(([0-9.]+)s\)", re.MULTILINE)


PEAK_KB: list[int] = []


def engine(*args: str, env: dict[str, str] | None = None) -> float:
    """One engine run; its time, and its peak RSS (with its own children: git, the probed
    server) from wait4, so the baselines' processes (pip) never count as ours."""
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", ENGINE, *args], stdout=fo, stderr=fe,
                                cwd=REPO, env=env)
        _pid, status, usage = os.wait4(proc.pid, 0)
        dt = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    PEAK_KB.append(usage.ru_maxrss)
    if proc.returncode != 0:
        raise SystemExit(f"{args[0]} failed: {out[-2000:]}{err[-2000:]}")
    phases = _PHASE.findall(out)
    if len(phases) == 2:  # the file work of an upgrade: content (2) + server (3)
        FILE_WORK.append(sum(float(x) for _, x in phases))
    return dt


def peak_rss_mb() -> float:
    """The largest peak RSS of any engine run so far (MB)."""
    return max(PEAK_KB, default=0) / 1024


VENV_FILES = 3000
VENV_MB = 500
_VENVS: dict[int, Path] = {}


def make_venv(base: Path, scale: int) -> Path:
    """A real venv (python, pip) filled up to ``VENV_FILES * scale`` files and ``VENV_MB * scale``
    MB: site-packages-like modules (median ~8 kB) and a few large extension modules. Built once
    per scale and hard-linked into each install."""
    if scale in _VENVS:
        return _VENVS[scale]
    venv = base / f"venv-x{scale}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    have = sum(1 for p in venv.rglob("*") if p.is_file())
    have_bytes = sum(p.stat().st_size for p in venv.rglob("*") if p.is_file())
    rng = random.Random(scale)
    block = rng.randbytes(1 << 20)
    n_small = VENV_FILES * scale - have
    big_every = 75  # 1 file in 75 is a large compiled extension
    small = [int(min(rng.lognormvariate(9.0, 1.2), 400_000)) for _ in range(n_small)]
    n_big = len(range(0, n_small, big_every))
    big_size = max(0, (VENV_MB * scale * 1_000_000 - have_bytes - sum(small)) // max(1, n_big))
    for i in range(n_small):
        size = big_size if i % big_every == 0 else small[i]
        ext = ".so" if i % big_every == 0 else ".py"
        p = site / f"pkg{i % (30 * scale):03d}" / f"mod{i:05d}{ext}"
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "wb") as fh:
            while size > 0:
                fh.write(block[:min(size, len(block))])
                size -= len(block)
    _VENVS[scale] = venv
    return venv


def build(base: Path, scale_users: int = 1, scale_venv: int = 1, scale_system: int = 1
          ) -> tuple[Path, Path]:
    src = make_source_repo(base / "src", system_files=290 * scale_system, size_scale=2)
    proj = make_project(base / "proj", src.path, src.v1, venv=False)
    root = proj / ".praxis-os"
    for i in range(1000 * scale_users):
        p = root / "specs" / f"s{i % 50:02d}" / f"note-{i:05d}.md"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"# user note {i}\n" + "text\n" * 40)
    subprocess.run(["cp", "-al", str(make_venv(VENV_DIR, scale_venv)), str(root / "venv")],
                   check=True)
    return src.path, proj


def fresh(proj: Path, tag: str) -> Path:
    """A copy of the install to run on; its venv is hard-linked (an upgrade with unchanged
    requirements and the manual procedure only read it)."""
    dest = proj.parent / f"run-{tag}"
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(proj, dest, symlinks=True,
                    ignore=lambda d, names: ["venv"] if Path(d).name == ".praxis-os" else [])
    subprocess.run(["cp", "-al", str(proj / ".praxis-os" / "venv"),
                    str(dest / ".praxis-os" / "venv")], check=True)
    os.sync()  # flush the copy now, so its write-back does not land on the timed run's fsyncs
    return dest


def done_with(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def median_of(fn, runs: int = RUNS) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(fn(i) for i in range(runs))


def venv_fingerprint(venv: Path) -> tuple[int, int, int]:
    """(files, bytes, newest mtime): the hard-linked venv must come out of the runs untouched."""
    n = size = newest = 0
    for p in venv.rglob("*"):
        st = p.lstat()
        if p.is_file():
            n, size, newest = n + 1, size + st.st_size, max(newest, st.st_mtime_ns)
    return n, size, newest


def manual_procedure(src: Path, root: Path, tag: str) -> float:
    """Baseline (a), the documented manual procedure (see the module's docstring)."""
    t0 = time.perf_counter()
    subprocess.run(["cp", "-r", str(root), f"{root}.backup.{tag}"], check=True)
    for s, t, delete in (("universal/standards", "standards/universal", True),
                         ("universal/workflows", "workflows", True),
                         ("mcp_server", "mcp_server", True), ("scripts", "scripts", False)):
        if delete:
            shutil.rmtree(root / t, ignore_errors=True)
        (root / t).mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-r", f"{src}/{s}/.", str(root / t)], check=True)
    subprocess.run([str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "-q",
                    "--disable-pip-version-check", "-r",
                    str(root / "mcp_server" / "requirements.txt")], check=True)
    probe_stdio(root / "venv" / "bin" / "python", root.parent, timeout=30)
    return time.perf_counter() - t0


def measure(label: str, baselines: bool = False, **scale: int) -> dict[str, float]:
    """One row; the baselines (a) and (b) only for the baseline install (nothing checks them on
    the scaled ones, and they cost most of the run)."""
    base = Path(tempfile.mkdtemp(prefix="praxis-bench-upgrade-"))
    try:
        src, proj = build(base, **scale)
        venv_before = venv_fingerprint(proj / ".praxis-os" / "venv")
        row: dict[str, float] = {}

        def timed(tag: str, *args: str) -> float:
            p = fresh(proj, tag)
            try:
                return engine(*args[:1], "--project", str(p), *args[1:])
            finally:
                done_with(p)

        row["dry-run"] = median_of(lambda i: timed(f"d{i}", "upgrade", "--source", str(src),
                                                   "--dry-run"))
        FILE_WORK.clear()
        row["upgrade"] = median_of(lambda i: timed(f"u{i}", "upgrade", "--source", str(src)))
        row["file work"] = statistics.median(FILE_WORK)
        done = fresh(proj, "done")
        engine("upgrade", "--source", str(src), "--project", str(done))
        row["no-op"] = median_of(lambda i: engine("upgrade", "--source", str(src), "--project",
                                                  str(done)))
        row["status"] = median_of(lambda i: engine("status", "--project", str(done)))
        done_with(done)

        def rollback(i: int) -> float:
            p = fresh(proj, f"r{i}")
            try:
                engine("upgrade", "--source", str(src), "--project", str(p))
                return engine("rollback", "--project", str(p))
            finally:
                done_with(p)

        row["rollback"] = median_of(rollback)
        if baselines:
            def manual(i: int) -> float:
                p = fresh(proj, f"m{i}")
                try:
                    return manual_procedure(src, p / ".praxis-os", str(i))
                finally:
                    done_with(p)

            row["manual (a)"] = median_of(manual)
            changed = subprocess.run(["git", "-C", str(src), "diff", "--name-only", "HEAD~1",
                                      "HEAD"], capture_output=True, text=True,
                                     check=True).stdout.split()

            def floor(i: int) -> float:  # copying only the changed files with cp
                p = fresh(proj, f"f{i}") / ".praxis-os"
                pairs = []
                for c in changed:
                    mapped = map_source_path(c)
                    if mapped and mapped[0] != "config" and (src / c).exists():
                        pairs.append((src / c, p / mapped[1]))
                try:
                    t0 = time.perf_counter()
                    for a, b in pairs:
                        b.parent.mkdir(parents=True, exist_ok=True)
                        subprocess.run(["cp", str(a), str(b)], check=True)
                    return time.perf_counter() - t0
                finally:
                    done_with(p.parent)

            row["floor (b)"] = median_of(floor)
        row["peak MB"] = peak_rss_mb()
        row["system files"] = float(sum(1 for _ in (proj / ".praxis-os").rglob("*")
                                        if _.is_file() and "venv" not in _.parts
                                        and "specs" not in _.parts))
        if venv_fingerprint(proj / ".praxis-os" / "venv") != venv_before:
            raise SystemExit("the shared venv was written to during the runs; the numbers are void")
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
        proj = make_project(base / "proj", src.path, src.v1)
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
    rows = {"baseline": measure("baseline", baselines=True),
            "10x user files": measure("10x user files", scale_users=10),
            "10x venv": measure("10x venv", scale_venv=10),
            "3x system files": measure("3x system files", scale_system=3)}
    cols = ["dry-run", "upgrade", "no-op", "rollback", "status", "file work", "manual (a)",
            "floor (b)", "peak MB"]
    print(f"{'install':<18}" + "".join(f"{c:>12}" for c in cols))
    for name, r in rows.items():
        print(f"{name:<18}" + "".join(f"{r[c]:>12.3f}" if c in r else f"{'-':>12}" for c in cols))
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
    try:
        sys.exit(main())
    finally:
        shutil.rmtree(VENV_DIR, ignore_errors=True)
