"""Issue 5: 10 hosts with --parallel 10 take at most twice the wall time of one host.

Real OpenSSH servers on loopback (tests/sshd_fixture.py). Each host is its own sshd, its own
account (``praxisbench1``..``praxisbench10``, made with ``useradd -m``: a fresh account's shell
and dot-files, Debian's python3 on PATH) with its own home, remote dir and project: every run
is a first contact, uploads included. (Logging in as this machine's root would add its ~/.bashrc,
which runs ``pyenv init`` for every remote command: ~0.1 CPU s that no fresh host pays.)
"""

from __future__ import annotations

import os
import pwd
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


USER = "praxisbench{i}"


def _rollout(base: Path, fleet, items: list[str], tag: str, parallel: int) -> float:  # type: ignore[no-untyped-def]
    for h in fleet.hosts:  # first contact: nothing uploaded yet
        shutil.rmtree(Path(pwd.getpwnam(h.user).pw_dir) / ".cache" / "praxis-upgrade",
                      ignore_errors=True)
    c0 = _cpu_seconds()
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "upgrade", "--source",
         str(base / "src"), "--hosts", ",".join(items), "--parallel", str(parallel),
         "--identity", str(fleet.key), "--known-hosts", str(fleet.known_hosts),
         "--report-dir", str(base / f"rep-{tag}")],
        capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise SystemExit(r.stdout[-3000:] + r.stderr[-2000:])
    CPU.setdefault(str(len(items)), []).append(_cpu_seconds() - c0)
    return time.perf_counter() - t0


def _project(base: Path, src, user: str) -> Path:  # type: ignore[no-untyped-def]
    proj = make_project(base, src.path, src.v1, venv=False)
    # the host's own python3 (this machine's root-only pyenv is not reachable by the host user)
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip",
                    str(proj / ".praxis-os" / "venv")], check=True)
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(proj):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)
    os.lchown(proj, pw.pw_uid, pw.pw_gid)
    return proj


def measure(n: int = 10, runs: int = 3) -> tuple[list[float], list[float]]:
    base = Path(tempfile.mkdtemp(prefix="praxis-bench-fleet-"))
    base.chmod(0o755)  # the hosts' users reach their projects under it
    fleet = start_fleet(base / "ssh", n, login_user=USER)
    try:
        src = make_source_repo(base / "src")
        one, many = [], []
        for k in range(runs):
            items = []
            for h in fleet.hosts:
                (base / f"r{k}").mkdir(mode=0o755, exist_ok=True)
                items.append(f"{h.spec}={_project(base / f'r{k}' / h.name, src, h.user)}")
            one.append(_rollout(base, fleet, items[:1], f"{k}-1", 1))
            # a fresh project for host 1 (its first one was just upgraded)
            items[0] = (f"{fleet.hosts[0].spec}="
                        f"{_project(base / f'r{k}' / 'h1b', src, fleet.hosts[0].user)}")
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
