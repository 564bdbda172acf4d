"""Issue 15.4: ``--backup-to`` end to end: each verified backup is copied off the machine before
anything changes (a real rclone remote, a real sshd), and ``rollback`` restores from the copy
when the local backup is gone or damaged."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

from conftest import digest, invoke, sessions, upgrade
from sshd_fixture import SshFleet, ssh_fleet  # noqa: F401 - fixture

from upgrade_tasks.sample_source import SampleSource

P = ".praxis-os"


def rclone_env(tmp_path: Path) -> dict[str, str]:
    assert shutil.which("rclone"), "rclone is not installed (Debian/Ubuntu: apt-get install rclone)"
    conf = tmp_path / "rclone.conf"
    store = tmp_path / "bucket"
    store.mkdir()
    conf.write_text(f"[store]\ntype = alias\nremote = {store}\n")
    return {"RCLONE_CONFIG": str(conf)}


def only_backup(project: Path) -> str:
    (s,) = sessions(project)
    return str(s["phase_artifacts"]["1"]["backup_id"])


def test_rclone_copy_then_rollback_from_it(tmp_path: Path, project: Path, source: SampleSource) -> None:
    env = rclone_env(tmp_path)
    before = digest(project)
    r = upgrade(source, project, "--backup-to", "store:praxis/app", env=env)
    assert r.code == 0, r.text
    bid = only_backup(project)
    remote = tmp_path / "bucket" / "praxis" / "app" / bid
    local = project / P / ".backups" / bid
    assert json.loads((remote / "MANIFEST.json").read_text()) == json.loads(
        (local / "MANIFEST.json").read_text())
    assert "[1/5] backup ok" in r.out and "store:" in r.out
    shutil.rmtree(local)  # the machine loses its backup
    r = invoke("rollback", "--project", str(project), env=env)
    assert r.code == 0, r.text
    assert f"fetched backup {bid} back" in r.out
    assert digest(project) == before


def test_a_damaged_local_backup_is_replaced_by_the_copy(tmp_path: Path, project: Path,
                                                        source: SampleSource) -> None:
    env = rclone_env(tmp_path)
    before = digest(project)
    assert upgrade(source, project, "--backup-to", "rclone:store:b", env=env).code == 0
    bid = only_backup(project)
    victim = next(p for p in (project / P / ".backups" / bid / "files").rglob("*") if p.is_file())
    victim.write_bytes(b"bit rot\n")
    r = invoke("rollback", "--project", str(project), env=env)
    assert r.code == 0, r.text
    assert "fetched backup" in r.out
    assert digest(project) == before
    assert list((project / P / ".backups").glob(f"{bid}.damaged-*"))  # kept aside, not deleted


def test_sftp_destination_through_a_real_sshd(tmp_path: Path, project: Path, source: SampleSource,
                                              ssh_fleet: Callable[..., SshFleet]) -> None:  # noqa: F811
    fleet = ssh_fleet(n=1)
    (h,) = fleet.hosts
    dest = tmp_path / "offsite"
    r = upgrade(source, project, "--backup-to", f"{h.spec}:{dest}", "--identity", str(fleet.key),
                "--known-hosts", str(fleet.known_hosts))
    assert r.code == 0, r.text
    bid = only_backup(project)
    assert (dest / bid / "MANIFEST.json").is_file()


def test_a_destination_that_fails_stops_the_upgrade_before_any_change(
        tmp_path: Path, project: Path, source: SampleSource) -> None:
    env = rclone_env(tmp_path)
    before = digest(project)
    r = upgrade(source, project, "--backup-to", "nosuchremote:x", env=env)
    assert r.code == 2 and "nosuchremote" in r.err, r.text
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = upgrade(source, project, "--backup-to", f"root@127.0.0.1:{port}:/tmp/x")
    assert r.code == 3, r.text
    assert "nothing was changed" in r.err
    assert digest(project) == before
    r = upgrade(source, project, "--backup-to", "store:x", "--hosts", "h1", env=env)
    assert r.code == 2 and "cannot be used with --hosts" in r.err
