"""Crash injection: SIGKILL an upgrade at every durable step, then resume it or roll it back.

``nox -s crash`` (or ``python tests/crash_harness.py [--sample N]``). An uninterrupted run with
``PRAXIS_UPGRADE_TRACE`` lists every durable step (each checkpoint write, each file written,
replaced or removed, each rename of phase 3); the harness adds random points inside the copy
loops. For each point, a fresh copy of the install is upgraded with ``PRAXIS_UPGRADE_KILL`` set
there; the killed tree is copied; on the first copy the upgrade is run again, on the second
``rollback``. Every run must end in exactly one of two states: the fully upgraded tree
(byte-equal to an uninterrupted upgrade) or the original tree (byte-equal to before), user
files always identical. Prints the table; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from conftest import TIMESTAMPED, manifest_files  # noqa: E402

from upgrade_tasks.layout import OWN_BOOKKEEPING  # noqa: E402
from upgrade_tasks.sample import make_project, tree_digest  # noqa: E402
from upgrade_tasks.sample_source import make_source_repo  # noqa: E402

ENGINE = "import sys; from upgrade_tasks.remote_main import main; sys.exit(main(sys.argv[1:]))"
LOOPS = ("backup:file", "content:file", "server:stage-file")  # the copy loops


def engine(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    e = {k: v for k, v in os.environ.items() if not k.startswith("PRAXIS_UPGRADE_")}
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", ENGINE, *args], capture_output=True, text=True,
                          env=e, cwd=HERE.parent, timeout=120)


def digest(project: Path) -> dict[str, object]:
    d = tree_digest(project / ".praxis-os", exclude=OWN_BOOKKEEPING + ("venv", ".venvs"))
    for v in TIMESTAMPED:
        d.pop(v, None)
    d.pop(".mcp_server_state.json", None)
    return dict(d)


@dataclass
class Outcome:
    point: str
    killed: bool
    resumed_ok: bool
    rolled_back_ok: bool
    detail: str = ""


@dataclass
class Harness:
    base: Path
    src: Path = field(init=False)
    template: Path = field(init=False)
    before: dict[str, object] = field(init=False)
    after: dict[str, object] = field(init=False)
    after_manifest: object = field(init=False)

    def setup(self) -> list[str]:
        s = make_source_repo(self.base / "src")
        self.src = s.path
        self.template = make_project(self.base / "template", s.path, s.v1)
        self.before = digest(self.template)
        ref = self.copy(self.template, "reference")
        trace = self.base / "trace.txt"
        r = engine("upgrade", "--source", str(self.src), "--project", str(ref),
                   env={"PRAXIS_UPGRADE_TRACE": str(trace)})
        if r.returncode != 0:
            raise SystemExit(f"the reference upgrade failed:\n{r.stdout}\n{r.stderr}")
        self.after = digest(ref)
        self.after_manifest = manifest_files(ref)
        return trace.read_text().split()

    def copy(self, project: Path, name: str) -> Path:
        dest = self.base / name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(project, dest, symlinks=True)
        return dest

    def trial(self, point: str, n: int) -> Outcome:
        a = self.copy(self.template, f"t{n}-a")
        r = engine("upgrade", "--source", str(self.src), "--project", str(a),
                   env={"PRAXIS_UPGRADE_KILL": point})
        killed = r.returncode == -9
        if not killed and r.returncode != 0:
            return Outcome(point, False, False, False, f"kill run exited {r.returncode}")
        b = self.copy(a, f"t{n}-b")
        res = engine("upgrade", "--source", str(self.src), "--project", str(a))  # the same command
        resumed = res.returncode == 0 and digest(a) == self.after and \
            manifest_files(a) == self.after_manifest
        rb = engine("rollback", "--project", str(b))
        if rb.returncode == 2 and "nothing to roll back" in rb.stderr:
            rolled = digest(b) == self.before  # killed before anything was changed
        else:
            rolled = rb.returncode == 0 and digest(b) == self.before
        detail = ""
        if not resumed:
            detail += f"resume exit {res.returncode}: {res.stderr.strip()[-300:]} "
        if not rolled:
            detail += f"rollback exit {rb.returncode}: {rb.stderr.strip()[-300:]}"
        shutil.rmtree(a, ignore_errors=True)
        shutil.rmtree(b, ignore_errors=True)
        return Outcome(point, killed, resumed, rolled, detail)


def choose_points(trace: list[str], sample: int | None, randoms: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    durable = [p for p in trace if not p.startswith(LOOPS)]  # every write, rename, checkpoint
    loop_points = [p for p in trace if p.startswith(LOOPS)]
    if sample is not None:
        picked = rng.sample(durable, min(sample // 2, len(durable)))
        picked += rng.sample(loop_points, min(sample - len(picked), len(loop_points)))
        return picked
    extra = rng.sample(loop_points, min(randoms, len(loop_points)))
    out: list[str] = []
    for p in durable + extra:
        if p not in out:
            out.append(p)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=int, default=None, help="only N points (for quick runs)")
    ap.add_argument("--random", type=int, default=50, help="random points inside copy loops")
    ap.add_argument("--seed", type=int, default=20261124)
    args = ap.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="praxis-crash-"))
    t0 = time.monotonic()
    try:
        h = Harness(base)
        trace = h.setup()
        points = choose_points(trace, args.sample, args.random, args.seed)
        outcomes = [h.trial(p, i) for i, p in enumerate(points)]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    failures = [o for o in outcomes if not (o.resumed_ok and o.rolled_back_ok)]
    loops = sum(1 for p in trace if p.startswith(LOOPS))
    print(f"points in one upgrade: {len(trace)} ({len(trace) - loops} durable steps, {loops} "
          f"inside copy loops); points tried: {len(outcomes)} "
          f"({sum(o.killed for o in outcomes)} killed there)")
    print(f"{'points tried':<16}{'resumed-ok':>12}{'rolled-back-ok':>16}{'failures':>10}")
    print(f"{len(outcomes):<16}{sum(o.resumed_ok for o in outcomes):>12}"
          f"{sum(o.rolled_back_ok for o in outcomes):>16}{len(failures):>10}")
    for o in failures:
        print(f"FAILED at {o.point}: {o.detail}")
    print(f"({time.monotonic() - t0:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
