"""Remote hosts over SSH against real OpenSSH servers on loopback (issue 5). Each "host" is
its own sshd with its own host key and its own project directory; these tests fail, never
skip, when sshd is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import REPO, run_on_pty, sessions, wait_for
from sshd_fixture import SshFleet, ssh_fleet  # noqa: F401 - fixture

from upgrade_tasks.fleet import Budget, parse_hosts, plan_batches, split_host
from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import SampleSource

P = ".praxis-os"


def fleet_cmd(fleet: SshFleet, tmp: Path, *args: str, known_hosts: Path | None = None,
              remote_dir: bool = True) -> list[str]:
    return [sys.executable, "-m", "invoke", "-r", str(REPO), *args,
            "--identity", str(fleet.key), "--known-hosts", str(known_hosts or fleet.known_hosts),
            *(["--remote-dir", str(tmp / "remote")] if remote_dir else []),
            "--report-dir", str(tmp / "fleet-report")]


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 180
        ) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PRAXIS_", "INVOKE_UPGRADE"))}
    e.update(env or {})
    return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=e,
                          timeout=timeout)


def projects(fleet: SshFleet, tmp: Path, source: SampleSource) -> list[str]:
    items = []
    for h in fleet.hosts:
        proj = make_project(tmp / h.name / "proj", source.path, source.v1)
        items.append(f"{h.spec}={proj}")
    return items


def installed(item: str) -> str | None:
    _, project = split_host(item)
    try:
        data = json.loads((Path(str(project)) / P / "VERSION.json").read_text())
    except FileNotFoundError:
        return None
    return str(data["installed_commit"])


# -- pure arithmetic ------------------------------------------------------------------------------
def test_budget_arithmetic_and_batches(tmp_path: Path) -> None:
    assert Budget(5, 20).allowed == 1 and not Budget(5, 20).exceeded(1) and Budget(5, 20).exceeded(2)
    assert Budget(4, 25).allowed == 1 and Budget(3, 0).allowed == 0 and Budget(10, 33).allowed == 3
    assert Budget(10, 100).allowed == 10
    assert "more than 20% of 5 hosts" in Budget(5, 20).sentence()
    assert plan_batches(["a", "b", "c", "d", "e"], 1, 2) == [
        ("canary", ["a"]), ("batch 1", ["b", "c"]), ("batch 2", ["d", "e"])]
    assert plan_batches(["a", "b"], 0, 5) == [("batch 1", ["a", "b"])]
    hosts_file = tmp_path / "hosts.txt"
    hosts_file.write_text("# fleet\nroot@h1:2222=/srv/a\n\nh2  # alias\nh2\n")
    assert parse_hosts(f"@{hosts_file},h3") == ["root@h1:2222=/srv/a", "h2", "h3"]
    assert split_host("root@h1:2222=/srv/a") == ("root@h1:2222", "/srv/a")


# -- fab -H (Fabric's convention) -------------------------------------------------------------------
def test_single_host_via_fab(tmp_path: Path, source: SampleSource,
                             ssh_fleet: Callable[..., SshFleet]) -> None:  # noqa: F811
    fleet = ssh_fleet(n=1)
    (h,) = fleet.hosts
    proj = make_project(tmp_path / "proj", source.path, source.v1)
    r = run([sys.executable, "-m", "fabric", "-r", str(REPO), "-H", h.spec, "-i", str(fleet.key),
             "upgrade", "--source", str(source.path), "--project", str(proj),
             "--known-hosts", str(fleet.known_hosts), "--remote-dir", str(tmp_path / "remote")])
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"[{h.spec}] [5/5] cleanup ok" in r.stdout
    assert json.loads((proj / P / "VERSION.json").read_text())["installed_commit"] == source.v2


# -- a fleet of 5 ----------------------------------------------------------------------------------------
def test_fleet_canary_failure_stops_the_rollout(tmp_path: Path, source: SampleSource,
                                                ssh_fleet: Callable[..., SshFleet]) -> None:  # noqa: F811
    fleet = ssh_fleet(n=5)
    items = projects(fleet, tmp_path, source)
    broken = Path(str(split_host(items[0])[1]))
    (broken / P / "mcp_server").rename(tmp_path / "elsewhere")  # the canary fails (no server)
    os.symlink(tmp_path / "elsewhere", broken / P / "mcp_server")
    r = run(fleet_cmd(fleet, tmp_path, "upgrade", "--source", str(source.path), "--hosts",
                      ",".join(items), "--canary", "1", "--parallel", "2", "--max-fail", "20"))
    assert r.returncode == 10, r.stdout + r.stderr
    assert "more than 20% of 5 hosts have failed, i.e. more than 1 host(s)" in r.stdout
    assert "stopped: a canary failed" in r.stdout
    rep = json.loads((tmp_path / "fleet-report" / "report.json").read_text())
    assert [h["result"] for h in rep["hosts"]] == ["failed"] + ["skipped"] * 4
    assert all(installed(i) is None for i in items)


def test_fleet_within_budget_then_rerun_only_the_failed_host(
    tmp_path: Path, source: SampleSource, ssh_fleet: Callable[..., SshFleet]  # noqa: F811
) -> None:
    fleet = ssh_fleet(n=5)
    items = projects(fleet, tmp_path, source)
    bad = Path(str(split_host(items[2])[1]))
    os.rename(bad / P, bad / "praxis-os-moved")  # host 3: no install there
    r = run(fleet_cmd(fleet, tmp_path, "upgrade", "--source", str(source.path), "--hosts",
                      ",".join(items), "--canary", "1", "--parallel", "2", "--max-fail", "20"))
    assert r.returncode == 9, r.stdout + r.stderr
    assert "4/5 host(s) ok" in r.stdout
    rep = json.loads((tmp_path / "fleet-report" / "report.json").read_text())
    assert rep["budget"]["allowed_failures"] == 1 and rep["exit_code"] == 9
    rows = {h["host"]: h for h in rep["hosts"]}
    assert rows[items[2]]["result"] == "failed" and "no prAxIs OS installation" in rows[items[2]][
        "message"]
    assert rows[items[0]]["new_commit"] == source.v2 and rows[items[0]]["old_commit"] == source.v1
    assert rows[items[0]]["backup_id"]
    failed = tmp_path / "fleet-report" / "failed.txt"
    assert failed.read_text().split() == [items[2]]
    os.rename(bad / "praxis-os-moved", bad / P)
    r2 = run(fleet_cmd(fleet, tmp_path, "upgrade", "--source", str(source.path), "--hosts",
                       f"@{failed}"))
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert "1/1 host(s) ok" in r2.stdout
    assert all(installed(i) == source.v2 for i in items)
    st = run(fleet_cmd(fleet, tmp_path, "status", "--hosts", ",".join(items)))
    assert st.returncode == 0, st.stdout + st.stderr
    assert st.stdout.count("last session:") == 5 and "completed" in st.stdout


def test_unknown_host_key_is_refused_unless_accepted(tmp_path: Path, source: SampleSource,
                                                     ssh_fleet: Callable[..., SshFleet]) -> None:  # noqa: F811
    fleet = ssh_fleet(n=1)
    (item,) = projects(fleet, tmp_path, source)
    kh = tmp_path / "known_hosts"
    kh.write_text("")
    r = run(fleet_cmd(fleet, tmp_path, "upgrade", "--source", str(source.path), "--hosts", item,
                      known_hosts=kh))
    assert r.returncode == 9, r.stdout + r.stderr
    assert "not in" in r.stdout and "ssh-keyscan -p" in r.stdout and "refused" in r.stdout
    assert installed(item) is None
    r2 = run(fleet_cmd(fleet, tmp_path, "upgrade", "--source", str(source.path), "--hosts", item,
                       "--accept-new-host-keys", known_hosts=kh))
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert fleet.hosts[0].host_pubkey.split()[1] in kh.read_text()


def test_host_without_python3_is_a_clear_error(tmp_path: Path, source: SampleSource,
                                               ssh_fleet: Callable[..., SshFleet]) -> None:  # noqa: F811
    fleet = ssh_fleet(n=1, no_python_host=True)
    (h,) = fleet.hosts
    # the default remote dir, in the host user's home
    r = run(fleet_cmd(fleet, tmp_path, "upgrade", "--source", str(source.path), "--hosts",
                      f"{h.spec}=/tmp/nowhere", remote_dir=False))
    assert r.returncode == 9, r.stdout + r.stderr
    assert "python3 was not found on the host" in r.stdout and ">= 3.9" in r.stdout
    # a --remote-dir the login user cannot write (pytest's tmp dirs are root's, mode 0700)
    r = run(fleet_cmd(fleet, tmp_path, "upgrade", "--source", str(source.path), "--hosts",
                      f"{h.spec}=/tmp/nowhere"))
    assert r.returncode == 9, r.stdout + r.stderr
    assert f"cannot prepare the remote dir {tmp_path / 'remote'}" in r.stdout
    assert "Permission denied" in r.stdout and "pass --remote-dir" in r.stdout
    assert "connection" not in r.stdout.split("backup / message")[1]


def test_dropped_connection_keeps_the_run_going_and_rerun_reattaches(
    tmp_path: Path, source: SampleSource, ssh_fleet: Callable[..., SshFleet]  # noqa: F811
) -> None:
    fleet = ssh_fleet(n=1)
    (item,) = projects(fleet, tmp_path, source)
    flag = tmp_path / "pause.flag"
    env = {"PRAXIS_UPGRADE_PAUSE": "phase-done:content", "PRAXIS_UPGRADE_PAUSE_FLAG": str(flag)}
    cmd = fleet_cmd(fleet, tmp_path, "upgrade", "--source", str(source.path), "--hosts", item)
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             stdin=subprocess.DEVNULL,
                             env={**{k: v for k, v in os.environ.items()
                                     if not k.startswith("PRAXIS_")}, **env})
    wait_for(flag.exists, timeout=60)
    assert fleet.kill_connections(fleet.hosts[0]) >= 1  # the network drops mid-upgrade
    out1, _ = first.communicate(timeout=60)
    assert first.returncode != 0, out1
    assert "connection to" in out1 and "lost" in out1 and "rerun" in out1, out1
    # the run on the host is still there (paused), holding its lock
    second = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL)
    lines: list[str] = []

    def read() -> None:
        assert second.stdout is not None
        for ln in second.stdout:
            lines.append(ln)

    t = threading.Thread(target=read)
    t.start()
    wait_for(lambda: any("reattaching to the run in progress" in ln for ln in lines), timeout=60)
    flag.unlink()  # let the host's run go on
    second.wait(timeout=120)
    t.join()
    out2 = "".join(lines)
    assert second.returncode == 0, out2
    assert "[5/5] cleanup ok" in out2
    _, project = split_host(item)
    assert [s["status"] for s in sessions(Path(str(project)))] == ["completed"]


def test_planted_secret_never_appears(tmp_path: Path, source: SampleSource,
                                      ssh_fleet: Callable[..., SshFleet]) -> None:  # noqa: F811
    secret = "planted-S3CRET-7f3a9c"
    fleet = ssh_fleet(n=1)
    (item,) = projects(fleet, tmp_path, source)
    flag = tmp_path / "pause.flag"
    env = {"PRAXIS_SUDO_PASSWORD": secret, "PRAXIS_UPGRADE_PAUSE": "phase-done:content",
           "PRAXIS_UPGRADE_PAUSE_FLAG": str(flag)}
    proc = subprocess.Popen(
        fleet_cmd(fleet, tmp_path, "upgrade", "--source", str(source.path), "--hosts", item,
                  "--sudo"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PRAXIS_")}, **env})
    wait_for(flag.exists, timeout=60)
    # while it runs: no process on the machine (controller, sshd, sudo, the engine) shows it
    # in its command line
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            assert secret.encode() not in cmdline, pid
    flag.unlink()
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert secret not in out
    _, project = split_host(item)
    for path in [*(tmp_path / "fleet-report").rglob("*"), *(tmp_path / "remote").rglob("*"),
                 *(Path(str(project)) / P).rglob("*.json"), *(Path(str(project)) / P).rglob("*.md"),
                 *(Path(str(project)) / P).rglob("*.txt")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("command", ["rollback"])
def test_rollback_on_hosts(tmp_path: Path, source: SampleSource,
                           ssh_fleet: Callable[..., SshFleet], command: str) -> None:  # noqa: F811
    fleet = ssh_fleet(n=2)
    items = projects(fleet, tmp_path, source)
    assert run(fleet_cmd(fleet, tmp_path, "upgrade", "--source", str(source.path), "--hosts",
                         ",".join(items), "--parallel", "2")).returncode == 0
    r = run(fleet_cmd(fleet, tmp_path, command, "--hosts", ",".join(items), "--parallel", "2"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("rollback complete") == 2
    for i in items:
        _, project = split_host(i)
        assert [s["status"] for s in sessions(Path(str(project)))] == ["rolled_back"]


def test_live_table_on_a_terminal(tmp_path: Path, source: SampleSource,
                                  ssh_fleet: Callable[..., SshFleet]) -> None:  # noqa: F811
    fleet = ssh_fleet(n=2)
    items = projects(fleet, tmp_path, source)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRAXIS_", "INVOKE_UPGRADE"))}
    code, screen = run_on_pty(
        fleet_cmd(fleet, tmp_path, "upgrade", "--source", str(source.path), "--hosts",
                  ",".join(items), "--parallel", "2", "--yes"), env, stdin_tty=False)
    assert code == 0, screen
    assert "\x1b[" in screen  # redrawn in place
    assert "state" in screen and "last line" in screen  # the live table's header
    assert "[5/5] cleanup ok" in screen and f"[{items[0]}]" not in screen  # no prefixed lines


# -- an Ansible inventory with --limit (issue 14.8) ------------------------------------------------
def test_fleet_from_an_ansible_inventory_with_limit(tmp_path: Path, source: SampleSource,
                                                    ssh_fleet: Callable[..., SshFleet]) -> None:  # noqa: F811
    fleet = ssh_fleet(n=3)
    projs = [make_project(tmp_path / h.name / "proj", source.path, source.v1) for h in fleet.hosts]
    lines = ["[web]"]
    for h, p in zip(fleet.hosts[:2], projs[:2]):
        lines.append(f"{h.name} ansible_host={h.address} ansible_port={h.port} "
                     f"ansible_user={h.user} praxis_project={p}")
    h2 = fleet.hosts[2]
    lines += ["", "[db]", f"{h2.name} ansible_host={h2.address} ansible_port={h2.port}",
              "", "[db:vars]", f"ansible_user={h2.user}", f"praxis_project={projs[2]}"]
    inv = tmp_path / "inventory.ini"
    inv.write_text("\n".join(lines) + "\n")
    r = run(fleet_cmd(fleet, tmp_path, "upgrade", "--source", str(source.path), "--hosts",
                      f"@{inv}", "--limit", "web"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2/2 host(s) ok" in r.stdout
    ver = [installed(f"x={p}") for p in projs]
    assert ver == [source.v2, source.v2, None]
    # the other group, by a pattern that excludes the first
    r = run(fleet_cmd(fleet, tmp_path, "status", "--hosts", f"@{inv}", "--limit", "all:!web"))
    assert r.returncode == 0 and r.stdout.count("last session:") == 0, r.stdout + r.stderr
    # --limit without an inventory, or naming nothing, is refused before any connection
    r = run(fleet_cmd(fleet, tmp_path, "status", "--hosts", fleet.hosts[0].spec, "--limit", "web"))
    assert r.returncode == 2 and "--limit web needs an inventory" in r.stderr, r.stdout + r.stderr
    r = run(fleet_cmd(fleet, tmp_path, "status", "--hosts", f"@{inv}", "--limit", "dbx"))
    assert r.returncode == 2 and "dbx" in r.stderr, r.stdout + r.stderr


# -- --projects on each host, and check over SSH (issue 15) ----------------------------------------
def test_each_host_upgrades_its_listed_projects_and_check_runs_there(
        tmp_path: Path, source: SampleSource, ssh_fleet: Callable[..., SshFleet]) -> None:  # noqa: F811
    fleet = ssh_fleet(n=2)
    projs = [make_project(tmp_path / name, source.path, source.v1) for name in ("one", "two")]
    listing = ",".join(str(p) for p in projs)
    hosts = ",".join(h.spec for h in fleet.hosts)
    r = run(fleet_cmd(fleet, tmp_path, "check", "--source", str(source.path), "--hosts", hosts,
                      "--projects", listing))
    assert r.returncode == 11, r.stdout + r.stderr
    table = [ln for ln in r.stdout.splitlines() if ln.endswith(" ok") or " ok  " in ln]
    assert "4/4 host(s) ok" in r.stdout, r.stdout
    assert len([ln for ln in table if ln.endswith("upgrade available")]) == 4, r.stdout
    # each row names its host and its whole project path
    assert all(any(ln.startswith(f"{h.spec}={p} ") for ln in table) for h in fleet.hosts
               for p in projs), r.stdout
    assert "commits not counted on the host" in r.stdout
    # both "hosts" are this machine: each project is reached twice, and its lock serialises them
    r = run(fleet_cmd(fleet, tmp_path, "upgrade", "--source", str(source.path), "--hosts",
                      fleet.hosts[0].spec, "--projects", listing, "--parallel", "2"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert [installed(f"x={p}") for p in projs] == [source.v2, source.v2]
    r = run(fleet_cmd(fleet, tmp_path, "check", "--source", str(source.path), "--hosts", hosts,
                      "--projects", listing))
    assert r.returncode == 0 and "4/4 host(s) ok" in r.stdout, r.stdout + r.stderr
    r = run(fleet_cmd(fleet, tmp_path, "status", "--hosts", hosts, "--projects", "/srv/*"))
    assert r.returncode == 2 and "is a glob" in r.stderr
