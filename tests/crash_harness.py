"""Crash injection: SIGKILL an upgrade at every durable step, then resume it or roll it back.

``nox -s crash`` (or ``python tests/crash_harness.py [--sample N]``). An uninterrupted run with
``PRAXIS_UPGRADE_TRACE`` lists every durable step (each checkpoint write, each file written,
replaced or removed, each rename of phase 3); the harness adds random points inside the copy
loops. Three scenarios, each with its own trace:

* ``upgrade``: a plain upgrade killed at each point;
* ``failure``: an upgrade whose validation fails (an injected fault) killed at each point of
  the failure handling and the automatic rollback that follow;
* ``rollback``: ``invoke rollback`` of a completed upgrade killed at each of its points.

For each point, a fresh copy of the install is run with ``PRAXIS_UPGRADE_KILL`` set there; the
killed tree is copied; on the first copy the same ``upgrade`` command is run again, on the
second ``rollback``. Every run must end in exactly one of two states: the fully upgraded tree
(byte-equal to an uninterrupted upgrade) or the original tree (byte-equal to before), user
files always identical; ``rollback`` always gives the original back. Prints the table; exits 1
on any failure.
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
    scenario: str
    point: str
    killed: bool
    resumed_ok: bool
    rolled_back_ok: bool
    detail: str = ""


FAULT = {"PRAXIS_UPGRADE_FAULT": "phase-start:validate"}


@dataclass
class Harness:
    base: Path
    src: Path = field(init=False)
    template: Path = field(init=False)
    before: dict[str, object] = field(init=False)
    after: dict[str, object] = field(init=False)
    after_manifest: object = field(init=False)

    upgraded: Path = field(init=False)

    def setup(self) -> dict[str, list[str]]:
        """The reference runs; for each scenario, the points its run passes (in order)."""
        s = make_source_repo(self.base / "src")
        self.src = s.path
        self.template = make_project(self.base / "template", s.path, s.v1)
        self.before = digest(self.template)
        ref = self.copy(self.template, "reference")
        traces: dict[str, list[str]] = {}
        r, traces["upgrade"] = self.traced("upgrade", ref)
        if r.returncode != 0:
            raise SystemExit(f"the reference upgrade failed:\n{r.stdout}\n{r.stderr}")
        self.after = digest(ref)
        self.after_manifest = manifest_files(ref)
        self.upgraded = self.copy(ref, "upgraded")  # the start of the rollback scenario
        failing = self.copy(self.template, "failing")
        r, trace = self.traced("upgrade", failing, FAULT)
        if r.returncode != 6:
            raise SystemExit(f"the failing reference upgrade did not roll back:\n{r.stderr}")
        traces["failure"] = trace[trace.index("phase-start:validate#1") + 1:]
        r, traces["rollback"] = self.traced("rollback", self.copy(self.upgraded, "rolled"))
        if r.returncode != 0:
            raise SystemExit(f"the reference rollback failed:\n{r.stderr}")
        return traces

    def traced(self, command: str, project: Path, env: dict[str, str] | None = None
               ) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        trace = self.base / f"trace-{project.name}.txt"
        args = ["--source", str(self.src)] if command == "upgrade" else []
        r = engine(command, *args, "--project", str(project),
                   env={"PRAXIS_UPGRADE_TRACE": str(trace), **(env or {})})
        return r, trace.read_text().split()

    def copy(self, project: Path, name: str) -> Path:
        dest = self.base / name
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(project, dest, symlinks=True)
        return dest

    def trial(self, scenario: str, point: str, n: int) -> Outcome:
        start = self.upgraded if scenario == "rollback" else self.template
        a = self.copy(start, f"t{n}-a")
        if scenario == "rollback":
            r = engine("rollback", "--project", str(a), env={"PRAXIS_UPGRADE_KILL": point})
        else:
            r = engine("upgrade", "--source", str(self.src), "--project", str(a),
                       env={"PRAXIS_UPGRADE_KILL": point,
                            **(FAULT if scenario == "failure" else {})})
        killed = r.returncode == -9
        if not killed and r.returncode not in (0, 6):
            return Outcome(scenario, point, False, False, False,
                           f"kill run exited {r.returncode}: {r.stderr.strip()[-300:]}")
        b = self.copy(a, f"t{n}-b")
        # the same command again: an upgrade resumes (or finishes a rollback it meets and
        # stops, exit 6); a rollback finishes
        if scenario == "rollback":
            res = engine("rollback", "--project", str(a))
            resumed = res.returncode == 0 and digest(a) == self.before
        else:
            res = engine("upgrade", "--source", str(self.src), "--project", str(a))
            upgraded = res.returncode == 0 and digest(a) == self.after and \
                manifest_files(a) == self.after_manifest
            undone = res.returncode == 6 and digest(a) == self.before
            resumed = upgraded or undone
        rolled, detail = finish_pair(a, b, self.before, res, resumed)
        return Outcome(scenario, point, killed, resumed, rolled, detail)


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


def finish_pair(a: Path, b: Path, before: dict[str, object], res: subprocess.CompletedProcess[str],
                resumed: bool) -> tuple[bool, str]:
    """The second half of every cut: ``rollback`` of the copy ``b`` must end at the tree before
    the upgrade (or find nothing to undo, when the cut came before any change). Returns whether
    it did and what went wrong with the rerun (``res``) or the rollback; both copies removed."""
    rb = engine("rollback", "--project", str(b))
    rolled = digest(b) == before and (
        rb.returncode == 0 or (rb.returncode == 2 and "nothing to roll back" in rb.stderr))
    detail = ""
    if not resumed:
        detail += f"rerun exit {res.returncode}: {res.stderr.strip()[-300:]} "
    if not rolled:
        detail += f"rollback exit {rb.returncode}: {rb.stderr.strip()[-300:]}"
    shutil.rmtree(a, ignore_errors=True)
    shutil.rmtree(b, ignore_errors=True)
    return rolled, detail


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sample", type=int, default=None, help="only N points per scenario")
    ap.add_argument("--random", type=int, default=50, help="random points inside copy loops")
    ap.add_argument("--seed", type=int, default=20261124)
    args = ap.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="praxis-crash-"))
    t0 = time.monotonic()
    outcomes: list[Outcome] = []
    try:
        h = Harness(base)
        traces = h.setup()
        n = 0
        for scenario, trace in traces.items():
            randoms = args.random if scenario == "upgrade" else 0
            for p in choose_points(trace, args.sample, randoms, args.seed):
                outcomes.append(h.trial(scenario, p, n))
                n += 1
    finally:
        shutil.rmtree(base, ignore_errors=True)
    failures = [o for o in outcomes if not (o.resumed_ok and o.rolled_back_ok)]
    print(f"{'scenario':<10}{'points':>8}{'durable':>9}{'tried':>7}{'killed':>8}{'resumed-ok':>12}"
          f"{'rolled-back-ok':>16}{'failures':>10}")
    for scenario, trace in traces.items():
        mine = [o for o in outcomes if o.scenario == scenario]
        durable = sum(1 for p in trace if not p.startswith(LOOPS))
        print(f"{scenario:<10}{len(trace):>8}{durable:>9}{len(mine):>7}"
              f"{sum(o.killed for o in mine):>8}{sum(o.resumed_ok for o in mine):>12}"
              f"{sum(o.rolled_back_ok for o in mine):>16}"
              f"{sum(1 for o in mine if o in failures):>10}")
    for o in failures:
        print(f"FAILED ({o.scenario}) at {o.point}: {o.detail}")
    missed = [f"{o.scenario}:{o.point}" for o in outcomes if not o.killed]
    if missed:
        print(f"not reached in the kill run (the run completed; nothing to check there): "
              f"{', '.join(missed)}")
    print(f"total failures: {len(failures)} ({time.monotonic() - t0:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
