"""Off-site copies of backups (``--backup-to``, upgrade_tasks/offsite.py), with real parts: a
backup made by a real upgrade, a real OpenSSH server on loopback, real rclone remotes (local,
alias and crypt: the last has no sha256 of its own, like S3) configured in a temporary
RCLONE_CONFIG. These tests fail, never skip, when sshd or rclone is missing."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import digest, invoke, upgrade, wait_for
from sshd_fixture import SshFleet, ssh_fleet  # noqa: F401 - fixture

from upgrade_tasks import offsite
from upgrade_tasks.backup_store import list_backups, load_backup, verify_backup
from upgrade_tasks.errors import UpgradeError, UsageError, exit_status
from upgrade_tasks.fleet import connect as fleet_connect
from upgrade_tasks.layout import Install
from upgrade_tasks.offsite import Destination, OffsiteError, OffsitePushError, parse_destination
from upgrade_tasks.options import Options
from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import SampleSource

SECRET = "hunter2-Secret"
CRYPT_PASSWORD = "crypt-pw-Secret"


# -- helpers -----------------------------------------------------------------------------------------
@dataclass
class Made:
    """A project upgraded once by the real CLI, and the backup that upgrade made."""

    project: Path
    install: Install
    backup_id: str
    before: dict[str, Any]

    @property
    def dir(self) -> Path:
        return self.install.backups_dir / self.backup_id


@pytest.fixture
def made(tmp_path: Path, source: SampleSource) -> Made:
    project = make_project(tmp_path / "proj", source.path, source.v1)
    before = digest(project)
    r = upgrade(source, project)
    assert r.code == 0, r.text
    install = Install(project)
    ids = list_backups(install)
    assert len(ids) == 1, ids
    return Made(project, install, ids[0], before)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def flip(path: Path) -> None:
    """Damage a file without changing its size (only its sha256 can tell)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def largest_file(root: Path) -> Path:
    files = [p for p in root.rglob("*") if p.is_file()]
    assert files, f"no file under {root}"
    return max(files, key=lambda p: (p.stat().st_size, str(p)))


def push_held_at_arrival(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, made: Made,
                         dest: Destination, connect: offsite.Connector | None,
                         damage: Callable[[], None]) -> list[BaseException]:
    """Run push, hold it once the copy has arrived (before it is verified: the fault point
    ``offsite:uploaded``), ``damage()`` the copy there, let it go on; the errors it raised."""
    flag = tmp_path / "pause.flag"
    monkeypatch.setenv("PRAXIS_UPGRADE_PAUSE", "offsite:uploaded")
    monkeypatch.setenv("PRAXIS_UPGRADE_PAUSE_FLAG", str(flag))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            offsite.push(made.dir, made.backup_id, dest, connect)
        except BaseException as exc:  # noqa: B036 - what push raised is what we check
            errors.append(exc)

    th = threading.Thread(target=run)
    th.start()
    try:
        wait_for(flag.exists, timeout=60)
        damage()
    finally:
        if flag.exists():
            flag.unlink()
        th.join(timeout=120)
        monkeypatch.delenv("PRAXIS_UPGRADE_PAUSE")
    assert not th.is_alive()
    return errors


def message(exc: BaseException) -> str:
    """Everything a user could see of an error: as the CLI prints it, and its fields."""
    text = exit_status(exc)[0] + "\n" + str(exc) + "\n" + repr(exc.args)
    if isinstance(exc, UpgradeError):
        text += "\n" + exc.what + "\n" + exc.why + "\n" + exc.hint
    return text


# -- rclone remotes ---------------------------------------------------------------------------------------
@dataclass
class Rclone:
    config: Path
    disk: Path  # what `rclone:disk:<abs path>` (type local) writes to
    aliased: Path  # the alias remote `offsite:` points here
    sealed: Path  # the crypt remote `sealed:` stores its encrypted files here


@pytest.fixture
def rclone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rclone:
    assert shutil.which("rclone"), "rclone is not installed (Debian/Ubuntu: apt-get install rclone)"
    obscured = subprocess.run(["rclone", "obscure", CRYPT_PASSWORD], capture_output=True, text=True,
                              check=True).stdout.strip()
    rc = Rclone(tmp_path / "rclone.conf", tmp_path / "disk", tmp_path / "aliased",
                tmp_path / "sealed")
    for d in (rc.disk, rc.aliased, rc.sealed):
        d.mkdir()
    rc.config.write_text(
        "[disk]\ntype = local\n\n"
        f"[offsite]\ntype = alias\nremote = {rc.aliased}\n\n"
        f"[sealed]\ntype = crypt\nremote = {rc.sealed}\npassword = {obscured}\n\n"
        "[backuphost]\ntype = local\n\n")  # also an SSH host name in the table below
    monkeypatch.setenv("RCLONE_CONFIG", str(rc.config))
    return rc


# -- parse_destination -----------------------------------------------------------------------------------
ACCEPTED = [
    ("root@127.0.0.1:2222:/srv/offsite", dict(kind="sftp", user="root", host="127.0.0.1", port=2222,
                                             path="/srv/offsite")),
    ("box:/srv/backups/", dict(kind="sftp", user=None, host="box", port=None, path="/srv/backups")),
    ("sftp://me@[::1]:2200/srv/x", dict(kind="sftp", user="me", host="::1", port=2200, path="/srv/x")),
    ("sftp://box/", dict(kind="sftp", user=None, host="box", port=None, path="/")),
    ("rclone:disk:/mnt/usb/backups", dict(kind="rclone", remote="disk", path="/mnt/usb/backups")),
    ("rclone:offsite:", dict(kind="rclone", remote="offsite", path="")),
    ("offsite:praxis/backups", dict(kind="rclone", remote="offsite", path="praxis/backups")),
    ("rclone:offsite:team@example/x", dict(kind="rclone", remote="offsite", path="team@example/x")),
    ("sealed:b", dict(kind="rclone", remote="sealed", path="b")),
]

GENERIC = ["[user@]host[:port]:/absolute/path", "sftp://[user@]host[:port]/absolute/path",
           "rclone:NAME:path", "rclone listremotes"]
REFUSED = [
    ("box:relative/dir", ["neither an SFTP destination with an absolute path nor an rclone remote",
                          *GENERIC]),
    ("nosuchremote:bucket", ["neither an SFTP destination", *GENERIC]),
    ("/just/a/local/dir", ["neither an SFTP destination", *GENERIC, "a remote of type local"]),
    ("sftp://box", ["the path must be absolute"]),
    ("sftp://box/~/backups", ["'~' is not expanded", "absolute"]),
    ("box:/srv/../etc", ["'..' component"]),
    ("rclone:offsite:a/../../b", ["'..' component"]),
    ("box:/srv/a\x1b[2Jb", ["control characters"]),
    ("box:/srv/a\nb", ["control characters"]),
    ("rclone:nosuch:x", ["rclone has no remote called 'nosuch'", "rclone listremotes", "rclone config"]),
    ("rclone:offsite", ["rclone:NAME:path"]),
    ("backuphost:/srv/x", ["both an rclone remote and an SSH host name", "rclone:backuphost:/srv/x",
                           "sftp://backuphost/srv/x"]),
    ("box:70000:/srv", ["port 70000"]),
    ("", ["it is empty"]),
]


@pytest.mark.parametrize(("spec", "parts"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_destinations(rclone: Rclone, spec: str, parts: dict[str, Any]) -> None:
    d = parse_destination(spec)
    assert d.spec == spec
    for key, value in parts.items():
        assert getattr(d, key) == value, (key, d)


@pytest.mark.parametrize(("spec", "words"), REFUSED, ids=[repr(r[0]) for r in REFUSED])
def test_refused_destinations(rclone: Rclone, spec: str, words: list[str]) -> None:
    with pytest.raises(UsageError) as ei:
        parse_destination(spec)
    assert ei.value.exit_code == 2
    text, code = exit_status(ei.value)
    assert code == 2 and "--backup-to" in text
    for w in words:
        assert w in text, (w, text)
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text), text


def test_rclone_remotes_come_from_RCLONE_CONFIG(rclone: Rclone, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_destination("offsite:x").kind == "rclone"
    other = tmp_path / "other.conf"
    other.write_text("[elsewhere]\ntype = local\n")
    monkeypatch.setenv("RCLONE_CONFIG", str(other))
    assert offsite.rclone_remotes() == ({"elsewhere"}, "")
    with pytest.raises(UsageError, match="neither an SFTP destination"):
        parse_destination("offsite:x")
    assert parse_destination("elsewhere:x").remote == "elsewhere"


CREDENTIALS = "it contains a password"
CONNECTION_STRING = "an rclone connection string or on-the-fly backend may carry credentials"


@pytest.mark.parametrize(("spec", "why"), [
    (f"user:{SECRET}@box:/srv/x", CREDENTIALS),
    (f"user:{SECRET}@box:2222:/srv/x", CREDENTIALS),
    (f"sftp://user:{SECRET}@box/srv/x", CREDENTIALS),
    (f"sftp://user:{SECRET}@box:22/srv/x", CREDENTIALS),
    (f"https://user:{SECRET}@example.com/x", CREDENTIALS),
    (f"rclone::s3,access_key_id=AKIA,secret_access_key={SECRET}:bucket/x", CONNECTION_STRING),
    (f"rclone:offsite,password={SECRET}:x", CONNECTION_STRING),
    (f"rclone:s3,secret=\"a:{SECRET}\":bucket", CONNECTION_STRING),
    (f"offsite,password={SECRET}:x", "neither an SFTP destination"),
    (f"user:p/{SECRET}@box:/srv/x", "neither an SFTP destination"),
    (f"user:{SECRET}@box:/srv/a\x07b", "control characters"),
])
def test_a_password_in_the_spec_is_refused_and_never_shown(
        rclone: Rclone, spec: str, why: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError) as ei:
        parse_destination(spec)
    text = message(ei.value)
    assert SECRET not in text, text
    assert "****" in text and why in text, text
    if why in (CREDENTIALS, CONNECTION_STRING):
        assert "~/.ssh/config" in text and "`rclone config`" in text, text
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err


# -- SFTP against a real sshd -------------------------------------------------------------------------------
def fleet_connector(fleet: SshFleet) -> offsite.Connector:
    """What the integration passes: the controller's own connect (known_hosts checked)."""
    opts = Options(identity=str(fleet.key), known_hosts=str(fleet.known_hosts))
    return lambda d: fleet_connect(d.ssh_target, opts)


def test_sftp_push_fetch_and_a_real_rollback_from_the_fetched_copy(
        tmp_path: Path, made: Made, ssh_fleet: Callable[..., SshFleet]) -> None:  # noqa: F811
    fleet = ssh_fleet(n=1)
    (h,) = fleet.hosts
    remote_dir = tmp_path / "offsite" / "nested"  # created by push (mode 0700)
    dest = parse_destination(f"{h.spec}:{remote_dir}")
    connect = fleet_connector(fleet)
    pristine = tree_bytes(made.dir)
    assert offsite.remote_listing(dest, connect) == []

    line = offsite.push(made.dir, made.backup_id, dest, connect)
    assert "\n" not in line and made.backup_id in line and h.spec in line, line
    assert "verified on arrival" in line and "sha256sum on the host" in line, line
    assert sorted(os.listdir(remote_dir)) == [made.backup_id]  # no temporary left
    assert tree_bytes(remote_dir / made.backup_id) == pristine  # the same bytes, every file
    assert (remote_dir / made.backup_id).stat().st_mode & 0o077 == 0
    assert remote_dir.stat().st_mode & 0o077 == 0
    assert offsite.remote_listing(dest, connect) == [made.backup_id]
    assert "match its manifest" in offsite.verify_remote(dest, made.backup_id, connect)
    assert "already at" in offsite.push(made.dir, made.backup_id, dest, connect)

    # the local backup is gone: fetch it back, check it as the upgrader does, roll back from it
    pushed = offsite.manifest_sha256(made.dir)  # what the integration keeps with the session
    shutil.rmtree(made.dir)
    with pytest.raises(OffsiteError, match="is not the one that was pushed"):
        offsite.fetch(dest, made.backup_id, made.install.backups_dir, connect,
                      expect_manifest_sha256="0" * 64)
    assert not made.dir.exists()
    got = offsite.fetch(dest, made.backup_id, made.install.backups_dir, connect,
                        expect_manifest_sha256=pushed)
    assert got == made.dir and tree_bytes(got) == pristine
    verify_backup(load_backup(made.install, made.backup_id))
    assert [p.name for p in made.install.backups_dir.iterdir() if p.name.startswith(".")] == [
        ".gitignore"]
    r = invoke("rollback", "--project", str(made.project), "--yes")
    assert r.code == 0, r.text
    assert digest(made.project) == made.before


def test_sftp_damage_is_caught_on_arrival_at_rest_and_on_fetch(
        tmp_path: Path, made: Made, ssh_fleet: Callable[..., SshFleet],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = ssh_fleet(n=1)
    (h,) = fleet.hosts
    remote_dir = tmp_path / "offsite"
    dest = parse_destination(f"sftp://{h.user}@{h.address}:{h.port}{remote_dir}")
    connect = fleet_connector(fleet)
    pristine = tree_bytes(made.dir)

    # damaged on arrival (after the upload, before the rename): refused, nothing left there
    def damage_arrival() -> None:
        (partial,) = remote_dir.glob(f".{made.backup_id}.partial-*")
        flip(largest_file(partial / "files"))

    errors = push_held_at_arrival(monkeypatch, tmp_path, made, dest, connect, damage_arrival)
    assert len(errors) == 1 and isinstance(errors[0], OffsitePushError), errors
    text = message(errors[0])
    assert errors[0].exit_code == 3 and "does not match the backup" in text and "sha256 differs" in text
    assert os.listdir(remote_dir) == []
    assert offsite.remote_listing(dest, connect) == []

    # damaged at rest: a re-verify says which file; the next push replaces the copy
    offsite.push(made.dir, made.backup_id, dest, connect)
    victim = largest_file(remote_dir / made.backup_id / "files")
    flip(victim)
    with pytest.raises(OffsiteError) as ei:
        offsite.verify_remote(dest, made.backup_id, connect)
    rel = victim.relative_to(remote_dir / made.backup_id).as_posix()
    assert f"{rel}: sha256 differs" in message(ei.value)
    line = offsite.push(made.dir, made.backup_id, dest, connect)
    assert "replaced a damaged copy" in line
    assert sorted(os.listdir(remote_dir)) == [made.backup_id]
    assert tree_bytes(remote_dir / made.backup_id) == pristine

    # a damaged copy is never fetched: refused, nothing half-written locally
    flip(victim)
    saved = tmp_path / "saved"
    shutil.copytree(made.dir, saved)
    shutil.rmtree(made.dir)
    listing = sorted(os.listdir(made.install.backups_dir))
    with pytest.raises(OffsiteError) as ei:
        offsite.fetch(dest, made.backup_id, made.install.backups_dir, connect)
    text = message(ei.value)
    assert ei.value.exit_code == 7 and "fails its check; it was not used" in text, text
    assert "damaged" in text and "nothing was written" in text
    assert sorted(os.listdir(made.install.backups_dir)) == listing

    # a damaged local copy is replaced by a good remote one and kept aside, never deleted
    shutil.copytree(saved, made.dir)
    offsite.push(made.dir, made.backup_id, dest, connect)  # repairs the remote copy
    flip(largest_file(made.dir / "files"))
    got = offsite.fetch(dest, made.backup_id, made.install.backups_dir, connect)
    assert tree_bytes(got) == pristine
    (aside,) = made.install.backups_dir.glob(f"{made.backup_id}.damaged-*")
    assert tree_bytes(aside) != pristine and list_backups(made.install) == [made.backup_id]
    # a good local copy is kept as it is
    assert offsite.fetch(dest, made.backup_id, made.install.backups_dir, connect) == made.dir

    # a backup that is not there: said so, with how to list what is
    with pytest.raises(OffsiteError, match="is not at") as ei:
        offsite.fetch(dest, "20200101-000000Z-abcdef", made.install.backups_dir, connect)
    assert f"ls {remote_dir}" in message(ei.value)
    # a damaged local backup is never shipped
    with pytest.raises(OffsitePushError, match="is not the directory of backup"):
        offsite.push(aside, made.backup_id, dest, connect)
    flip(largest_file(made.dir / "files"))
    with pytest.raises(OffsitePushError, match="damaged"):
        offsite.push(made.dir, made.backup_id, dest, connect)


@pytest.fixture
def readable_dir() -> Iterator[Path]:
    """A directory every user can read (pytest's tmp dirs are 0700: the no-python host's user
    could not read them)."""
    d = Path(tempfile.mkdtemp(prefix="praxis-offsite-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_sftp_remote_hashes_every_method_and_the_fallbacks(
        readable_dir: Path, ssh_fleet: Callable[..., SshFleet]) -> None:  # noqa: F811
    fleet = ssh_fleet(n=2, no_python_host=True)
    root_host, nopy_host = fleet.hosts
    files = {"a.txt": b"alpha\n", "sub dir/b c.bin": bytes(range(256)) * 300, "odd\nname": b"x",
             "back\\slash": b"y", "empty": b""}
    for rel, data in files.items():
        p = readable_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        p.chmod(0o644)
        p.parent.chmod(0o755)
    (readable_dir / "link").symlink_to("a.txt")  # not a regular file: never hashed
    expected = {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    names = sorted(files)

    with fleet_connector(fleet)(parse_destination(f"{root_host.spec}:/x")) as c:
        for methods, label in [(("sha256sum",), "sha256sum on the host"),
                               (("python3",), "python3 on the host"),
                               (("sftp",), "read back over SFTP")]:
            got, how = offsite.sftp_remote_hashes(c, str(readable_dir), names, methods)
            assert (got, how) == (expected, label)
    with fleet_connector(fleet)(parse_destination(f"{nopy_host.spec}:/x")) as c:
        assert offsite.sftp_remote_hashes(c, str(readable_dir), names)[1] == "sha256sum on the host"
        got, how = offsite.sftp_remote_hashes(c, str(readable_dir), names, ("python3", "sftp"))
        assert (got, how) == (expected, "read back over SFTP")  # no python3 there
        with pytest.raises(OffsiteError, match="none of python3 worked"):
            offsite.sftp_remote_hashes(c, str(readable_dir), names, ("python3",))


def test_sftp_default_connect_reads_ssh_config_and_refuses_unknown_host_keys(
        tmp_path: Path, made: Made, ssh_fleet: Callable[..., SshFleet],  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = ssh_fleet(n=1)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    config = fleet.ssh_config.read_text()  # Host h1 -> HostName, Port, User, IdentityFile, known_hosts
    (home / ".ssh" / "config").write_text(config)
    dest = parse_destination(f"h1:{tmp_path / 'offsite'}")  # an ~/.ssh/config alias
    assert (dest.host, dest.user, dest.port) == ("h1", None, None)
    assert "verified on arrival" in offsite.push(made.dir, made.backup_id, dest)
    assert offsite.remote_listing(dest) == [made.backup_id]

    (home / ".ssh" / "config").write_text(config.replace(str(fleet.known_hosts),
                                                         str(fleet.empty_known_hosts)))
    dest2 = parse_destination(f"h1:{tmp_path / 'offsite2'}")
    with pytest.raises(OffsitePushError) as ei:
        offsite.push(made.dir, made.backup_id, dest2)
    text = message(ei.value)
    assert "not in" in text and "refused" in text, text
    assert f"ssh-keyscan -p {fleet.hosts[0].port} 127.0.0.1 >> {fleet.empty_known_hosts}" in text, text
    assert not (tmp_path / "offsite2").exists()
    # a good local backup is used as it is, without a connection; a missing one needs the host
    assert offsite.fetch(dest2, made.backup_id, made.install.backups_dir) == made.dir
    shutil.rmtree(made.dir)
    with pytest.raises(OffsiteError, match="refused"):
        offsite.fetch(dest2, made.backup_id, made.install.backups_dir)
    assert not made.dir.exists()


# -- rclone against real remotes ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["local", "alias", "crypt"])
def test_rclone_push_verify_fetch(tmp_path: Path, made: Made, rclone: Rclone, kind: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    spec, store, method = {
        "local": (f"rclone:disk:{rclone.disk}/offsite", rclone.disk / "offsite",
                  "the remote's sha256 (rclone lsjson --hash)"),
        "alias": ("offsite:praxis/backups", rclone.aliased / "praxis" / "backups",
                  "the remote's sha256 (rclone lsjson --hash)"),
        # crypt keeps no sha256 (as S3 keeps none): the copy is read back to be hashed
        "crypt": ("sealed:praxis", rclone.sealed, "read back (rclone hashsum sha256 --download)"),
    }[kind]
    dest = parse_destination(spec)
    pristine = tree_bytes(made.dir)
    seen: list[str] = []

    def stored_files() -> str:
        return subprocess.run(["rclone", "lsf", "-R", offsite._rclone_path(dest)], capture_output=True,
                              text=True).stdout

    # damaged on arrival: refused, nothing left at the destination
    errors = push_held_at_arrival(monkeypatch, tmp_path, made, dest, None,
                                  lambda: flip(largest_file(store)))
    assert len(errors) == 1 and isinstance(errors[0], OffsitePushError), errors
    seen.append(message(errors[0]))
    assert offsite.remote_listing(dest) == [] and stored_files() == ""

    line = offsite.push(made.dir, made.backup_id, dest)
    seen.append(line)
    assert f"verified on arrival (sha256: {method})" in line, line
    if kind != "crypt":  # crypt stores encrypted bytes under encrypted names
        assert sorted(os.listdir(store)) == [made.backup_id]
        assert tree_bytes(store / made.backup_id) == pristine
    assert offsite.remote_listing(dest) == [made.backup_id]
    seen.append(offsite.verify_remote(dest, made.backup_id))
    assert "already at" in offsite.push(made.dir, made.backup_id, dest)

    # damaged at rest: a re-verify refuses it, the next push replaces it
    flip(largest_file(store))
    with pytest.raises(OffsiteError) as ei:
        offsite.verify_remote(dest, made.backup_id)
    seen.append(message(ei.value))
    line = offsite.push(made.dir, made.backup_id, dest)
    assert "replaced a damaged copy" in line, line
    seen.append(offsite.verify_remote(dest, made.backup_id))
    assert offsite.remote_listing(dest) == [made.backup_id]
    assert [ln for ln in stored_files().splitlines() if not ln.startswith(made.backup_id + "/")] == []

    # a damaged copy is never fetched, and nothing is left half-written locally
    flip(largest_file(store))
    saved = tmp_path / "saved"
    shutil.copytree(made.dir, saved)
    shutil.rmtree(made.dir)
    listing = sorted(os.listdir(made.install.backups_dir))
    with pytest.raises(OffsiteError) as ei:
        offsite.fetch(dest, made.backup_id, made.install.backups_dir)
    seen.append(message(ei.value))
    assert "it was not used" in seen[-1] and sorted(os.listdir(made.install.backups_dir)) == listing

    # repaired from the saved copy, then the local backup is lost: fetched back whole
    shutil.copytree(saved, made.dir)
    offsite.push(made.dir, made.backup_id, dest)
    shutil.rmtree(made.install.backups_dir)  # the whole .backups directory
    got = offsite.fetch(dest, made.backup_id, made.install.backups_dir)
    assert got == made.dir and tree_bytes(got) == pristine
    verify_backup(load_backup(made.install, made.backup_id))
    assert (made.install.backups_dir / ".gitignore").read_text().splitlines()[-1] == "*"

    obscured = rclone.config.read_text().split("password = ")[1].split()[0]
    for text in seen:
        assert CRYPT_PASSWORD not in text and obscured not in text, text


def test_rclone_errors_say_what_why_and_next(tmp_path: Path, made: Made, rclone: Rclone) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the destination directory should be\n")
    dest = parse_destination(f"rclone:disk:{blocker}/sub")
    with pytest.raises(OffsitePushError) as ei:
        offsite.push(made.dir, made.backup_id, dest)
    text = message(ei.value)
    assert ei.value.exit_code == 3 and "rclone" in text and "rclone lsd disk:" in text, text
    assert blocker.read_text().startswith("a file")
    shutil.rmtree(made.dir)
    with pytest.raises(OffsiteError, match="is not at") as ei:
        offsite.fetch(parse_destination("offsite:empty"), made.backup_id, made.install.backups_dir)
    assert "rclone lsf offsite:empty" in message(ei.value)
    assert not made.dir.exists()
    assert offsite.remote_listing(parse_destination("offsite:empty")) == []
