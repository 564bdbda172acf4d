"""Issue 5: 10 hosts with --parallel 10 take at most twice the wall time of one host.

Real OpenSSH servers on loopback (tests/sshd_fixture.py). Each host is its own sshd, its own
account (``praxisbench1``..``praxisbench10``, made with ``useradd -m``: a fresh account's shell
and dot-files, Debian's python3 on PATH) with its own home, remote dir and project: every run
is a first contact, uploads included. (Logging in as this machine's root would add its ~/.bashrc,
which runs ``pyenv init`` for every remote command: ~0.1 CPU s that no fresh host pays.)

Two ways to give the hosts CPU, both measured and printed:

* **fair share** (the target is judged here): every host's sshd, and so everything its sessions
  run (shell, engine, MCP server, git), is placed in its own cgroup capped at cores / hosts CPU
  (0.2 CPU each for 10 hosts on 2 cores). A host then has the same CPU whether it runs alone or
  with nine others, as each machine of a real fleet has its own CPU; the controller is not
  capped. This is the comparison the target makes: same hosts, one versus ten at once.
* **shared**: no caps; the 10 "hosts" compete for this machine's cores, so the run is bound by
  their total CPU, not by the rollout. The CPU floor printed with it (total busy CPU seconds /
  cores) shows how far below 2x one host this machine can go at all.
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


class CapsUnavailable(Exception):
    pass


class CpuCaps:
    """One cgroup per host capping its CPU (cgroup v1 ``cpu`` or v2 ``cpu.max``), so a loopback
    host gets a fixed share of this machine whatever the other hosts do."""

    PERIOD_US = 100_000

    def __init__(self, name: str) -> None:
        v1 = Path("/sys/fs/cgroup/cpu")
        v2 = Path("/sys/fs/cgroup")
        if (v1 / "cpu.cfs_quota_us").exists():
            self.v1, self.root = True, v1 / name
        elif "cpu" in (v2 / "cgroup.controllers").read_text(errors="replace").split() \
                if (v2 / "cgroup.controllers").exists() else False:
            self.v1, self.root = False, v2 / name
        else:
            raise CapsUnavailable("it needs root and the cgroup cpu controller (v1 at "
                                  "/sys/fs/cgroup/cpu, or v2 with 'cpu' in cgroup.controllers)")
        self.groups: list[Path] = []
        try:
            self.root.mkdir(exist_ok=True)
            if not self.v1:  # a child may use ``cpu`` only when its parent enables it for them
                for d in (v2, self.root):
                    if "cpu" not in (d / "cgroup.subtree_control").read_text().split():
                        (d / "cgroup.subtree_control").write_text("+cpu")
        except OSError as exc:
            self.remove()
            raise CapsUnavailable(f"cannot set up {self.root}: {exc}") from exc

    def cap(self, label: str, pid: int, cpus: float) -> None:
        g = self.root / label
        quota = max(1000, int(cpus * self.PERIOD_US))
        try:
            g.mkdir(exist_ok=True)
            self.groups.append(g)
            if self.v1:
                (g / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
                (g / "cpu.cfs_quota_us").write_text(str(quota))
            else:
                (g / "cpu.max").write_text(f"{quota} {self.PERIOD_US}")
            (g / "cgroup.procs").write_text(str(pid))  # sessions forked later inherit the group
        except OSError as exc:
            raise CapsUnavailable(f"cannot cap {label} in {g}: {exc}") from exc

    def remove(self) -> None:
        """Move what is left back to the top group and remove ours (reported if one stays)."""
        parent = self.root.parent / "cgroup.procs"
        for g in [*self.groups, self.root]:
            if not g.exists():
                continue
            for _ in range(50):
                try:
                    for pid in (g / "cgroup.procs").read_text().split():
                        parent.write_text(pid)
                    g.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                print(f"warning: could not remove the cgroup {g}; remove it by hand (rmdir)",
                      file=sys.stderr)


def _rollout(base: Path, fleet, items: list[str], tag: str, parallel: int,  # type: ignore[no-untyped-def]
             cpu_key: str | None = None) -> float:
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
    CPU.setdefault(cpu_key or str(len(items)), []).append(_cpu_seconds() - c0)
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


def measure(n: int = 10, runs: int = 3, fair_share: bool = False,
            serial_control: bool = False) -> tuple[list[float], list[float], float | None]:
    """Median inputs: ``runs`` one-host and n-host rollouts; with ``serial_control`` one more
    n-host rollout with ``--parallel 1`` (what ``fab -H`` does), which the target must tell apart."""
    base = Path(tempfile.mkdtemp(prefix="praxis-bench-fleet-"))
    base.chmod(0o755)  # the hosts' users reach their projects under it
    fleet = start_fleet(base / "ssh", n, login_user=USER)
    caps = None
    try:
        if fair_share:
            caps = CpuCaps(f"praxis-bench-{os.getpid()}")
            for h in fleet.hosts:
                caps.cap(h.name, h.pid, (os.cpu_count() or 1) / n)
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
        serial = None
        if serial_control:
            (base / "rs").mkdir(mode=0o755)
            items = [f"{h.spec}={_project(base / 'rs' / h.name, src, h.user)}"
                     for h in fleet.hosts]
            serial = _rollout(base, fleet, items, "serial", 1, cpu_key="serial")
        return one, many, serial
    finally:
        fleet.stop()
        if caps is not None:
            caps.remove()
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    cores = os.cpu_count() or 1
    print(f"{'fleet upgrade (wall time)':<44}{'median s':>10}  runs")
    rows = {}
    for mode in ("fair share", "shared"):
        CPU.clear()
        try:
            one, many, serial = measure(fair_share=mode == "fair share",
                                        serial_control=mode == "fair share")
        except CapsUnavailable as exc:
            print(f"-- {mode}: not measured: {exc}")
            rows[mode] = float("inf")
            continue
        m1, mn = statistics.median(one), statistics.median(many)
        rows[mode] = mn / m1
        label = (f"each host capped at {cores / 10:g} CPU" if mode == "fair share"
                 else f"hosts share the {cores} cores")
        print(f"-- {mode}: {label}")
        print(f"{'  1 host':<44}{m1:>10.2f}  {', '.join(f'{x:.2f}' for x in one)}")
        print(f"{'  10 hosts, --parallel 10':<44}{mn:>10.2f}  {', '.join(f'{x:.2f}' for x in many)}")
        c1, cn = statistics.median(CPU["1"]), statistics.median(CPU["10"])
        verdict = ("ok" if rows[mode] <= 2.0 else "MISSED") if mode == "fair share" else \
            "(not the target's setting)"
        print(f"{'  ratio (target <= 2.0)':<44}{rows[mode]:>10.2f}  {verdict}")
        if serial is not None:
            print(f"{'  control: 10 hosts, --parallel 1 (serial)':<44}{serial:>10.2f}  "
                  f"1 run, {serial / m1:.2f}x one host")
        print(f"  CPU seconds used on this machine: 1 host {c1:.2f}, 10 hosts {cn:.2f}"
              + (f"; the 10 hosts cannot take less than {cn / cores:.2f} s wall on {cores} "
                 f"cores ({cn / cores / m1:.2f}x one host)" if mode == "shared" else ""))
    return 0 if rows["fair share"] <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
