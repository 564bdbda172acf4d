"""Issue 5: 10 hosts with --parallel 10 take at most twice the wall time of one host.

Real OpenSSH servers on loopback (tests/sshd_fixture.py), each host with its own project.
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from sshd_fixture import start_fleet  # noqa: E402

from upgrade_tasks.sample import make_project  # noqa: E402
from upgrade_tasks.sample_source import make_source_repo  # noqa: E402


def _cpu_seconds() -> float:
    """Machine-wide busy CPU time (all processes: controller, sshd, every host's engine)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


CPU: dict[str, list[float]] = {}


def _rollout(base: Path, fleet, items: list[str], tag: str, parallel: int) -> float:  # type: ignore[no-untyped-def]
    c0 = _cpu_seconds()
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "upgrade", "--source",
         str(base / "src"), "--hosts", ",".join(items), "--parallel", str(parallel),
         "--identity", str(fleet.key), "--known-hosts", str(fleet.known_hosts),
         "--remote-dir", str(base / "remote"), "--report-dir", str(base / f"rep-{tag}")],
        capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise SystemExit(r.stdout[-3000:] + r.stderr[-2000:])
    CPU.setdefault(str(len(items)), []).append(_cpu_seconds() - c0)
    return time.perf_counter() - t0


def measure(n: int = 10, runs: int = 3) -> tuple[list[float], list[float]]:
    base = Path(tempfile.mkdtemp(prefix="praxis-bench-fleet-"))
    fleet = start_fleet(base / "ssh", n)
    try:
        src = make_source_repo(base / "src")
        one, many = [], []
        for k in range(runs):
            items = []
            for h in fleet.hosts:
                proj = make_project(base / f"r{k}" / h.name, src.path, src.v1)
                items.append(f"{h.spec}={proj}")
            one.append(_rollout(base, fleet, items[:1], f"{k}-1", 1))
            # fresh projects for the 10-host run (host 1's was just upgraded)
            items[0] = f"{fleet.hosts[0].spec}=" + str(make_project(base / f"r{k}" / "h1b", src.path,
                                                                     src.v1))
            many.append(_rollout(base, fleet, items, f"{k}-{n}", n))
        return one, many
    finally:
        fleet.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    one, many = measure()
    m1, mn = statistics.median(one), statistics.median(many)
    ratio = mn / m1
    print(f"{'fleet upgrade (wall time)':<34}{'median s':>10}  runs")
    print(f"{'1 host':<34}{m1:>10.2f}  {', '.join(f'{x:.2f}' for x in one)}")
    print(f"{'10 hosts, --parallel 10':<34}{mn:>10.2f}  {', '.join(f'{x:.2f}' for x in many)}")
    print(f"{'ratio (target <= 2.0)':<34}{ratio:>10.2f}  {'ok' if ratio <= 2.0 else 'MISSED'}")
    cores = os.cpu_count() or 1
    c1, cn = statistics.median(CPU["1"]), statistics.median(CPU["10"])
    print(f"CPU seconds used on this machine: 1 host {c1:.2f}, 10 hosts {cn:.2f}; all 10 loopback "
          f"'hosts' share its {cores} cores, so 10 hosts cannot take less than "
          f"{cn / cores:.2f} s wall here ({cn / cores / m1:.2f}x one host)")
    return 0 if ratio <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
