"""A fleet of real OpenSSH servers on loopback, for tests that drive Fabric against real hosts.

Every "host" is its own ``/usr/sbin/sshd -D`` process listening on 127.0.0.1 and a free port, with its
own host key; one client key pair per fleet is accepted by all of them (see
docs/test-infrastructure.md section 2 for the recipe this follows).

Usage from a test module::

    from sshd_fixture import ssh_fleet  # noqa: F401  (registers the fixture; or re-export it in conftest.py)

    def test_x(ssh_fleet):
        fleet = ssh_fleet(n=3, no_python_host=True)
        h1 = fleet.hosts[0]          # root@127.0.0.1:PORT
        nopy = fleet.hosts[-1]       # praxisnopy@127.0.0.1:PORT, python3 not on PATH

``no_python_host=True`` makes the LAST host log in as the system user ``praxisnopy`` (shell /bin/sh,
created on first use) whose remote commands run with ``PATH`` set (sshd ``SetEnv``) to a directory of
symlinks to a few basic tools only, so ``python3`` is not found (``/bin`` is ``usr/bin`` on merged-usr
Debian, so no system directory can be used). Because sshd reads ``authorized_keys`` with the user's
uid, and pytest's tmp dirs are mode 0700, that directory and the fleet's ``authorized_keys`` then live
in a world-readable ``/tmp/praxis-sshd-*`` directory that ``stop()`` removes.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

SSHD = "/usr/sbin/sshd"
ADDRESS = "127.0.0.1"
NOPY_USER = "praxisnopy"
#: Tools reachable on the no-python host's PATH (anything else, python3 in particular, is "not found").
NOPY_TOOLS = (
    "sh", "cat", "mkdir", "mv", "rm", "ls", "tail", "sleep", "kill", "test", "chmod", "tar", "gzip",
    "id", "uname", "printf", "echo", "nohup", "setsid",
    # harmless extras that shell snippets commonly use
    "env", "head", "cp", "ln", "touch", "grep", "sed", "wc", "date", "readlink", "dirname", "basename",
    "true", "false", "find", "sha256sum",
)
READY_TIMEOUT = 10.0
BIND_RETRIES = 5

_live_fleets: list[SshFleet] = []


@dataclass(frozen=True)
class SshHost:
    name: str
    address: str
    port: int
    user: str
    key: Path
    known_hosts: Path
    host_pubkey: str
    pid: int

    @property
    def spec(self) -> str:
        """``user@address:port``."""
        return f"{self.user}@{self.address}:{self.port}"


@dataclass
class SshFleet:
    hosts: list[SshHost]
    known_hosts: Path
    empty_known_hosts: Path
    key: Path
    ssh_config: Path
    base: Path
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    _public_dir: Optional[Path] = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def host(self, name: str) -> SshHost:
        """The host called ``name`` (``h1`` ...)."""
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def stop(self) -> None:
        """Terminate every sshd (listeners and their per-connection children); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        _stop_procs(list(self._procs.values()))
        if self._public_dir is not None:
            shutil.rmtree(self._public_dir, ignore_errors=True)
        with contextlib.suppress(ValueError):
            _live_fleets.remove(self)

    def kill_connections(self, host: SshHost) -> int:
        """SIGKILL the per-connection sshd processes of ``host``'s listener (not the listener itself).

        Returns the number of connection processes (direct children of the listener) killed; their own
        descendants (privsep child, the user's shell and commands) are killed too, so the TCP connection
        really drops. Simulates a dropped SSH connection.
        """
        children = _children(host.pid)
        victims: list[int] = []
        for child in children:
            victims.extend(_descendants(child))
            victims.append(child)
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(_alive(pid) for pid in victims):
            time.sleep(0.01)
        return len(children)

    def __enter__(self) -> SshFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- /proc helpers


def _stat(pid: int) -> Optional[tuple[str, int]]:
    """(state, ppid) of ``pid`` from /proc/PID/stat, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    rest = raw[raw.rfind(")") + 2:].split()
    return rest[0], int(rest[1])


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[1] == pid and st[0] not in ("Z", "X"):
                out.append(int(entry))
    return out


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = _children(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


def _stop_procs(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM listeners and their connection processes; SIGKILL whatever is left after 3 s."""
    extra: list[int] = []
    for p in procs:
        if p.poll() is None:
            extra.extend(_descendants(p.pid))
    for pid in extra:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 3.0
    for p in procs:
        try:
            p.wait(timeout=max(0.05, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
    while time.monotonic() < deadline and any(_alive(pid) for pid in extra):
        time.sleep(0.01)
    for pid in extra:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@atexit.register
def _stop_leftovers() -> None:
    for fleet in list(_live_fleets):
        fleet.stop()


# --------------------------------------------------------------------------- setup helpers


def _keygen(path: Path, comment: str) -> str:
    """Create an ed25519 key pair at ``path``; return the public key as ``ssh-ed25519 AAAA...``."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL, capture_output=True)
    return " ".join(path.with_name(path.name + ".pub").read_text().split()[:2])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ADDRESS, 0))
        return int(s.getsockname()[1])


def _ensure_user(name: str, shell: str) -> None:
    """Create a system user once (``useradd -m``: a home with /etc/skel's files), usable for
    pubkey logins."""
    lock = Path(tempfile.gettempdir()) / f".{name}-useradd.lock"
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "-m", "-s", shell, name], check=True, capture_output=True)
            pw = pwd.getpwnam(name)
        if pw.pw_shell != shell:
            subprocess.run(["usermod", "-s", shell, name], check=True, capture_output=True)
        # useradd leaves the password "!" (locked); with UsePAM no, sshd then refuses every login,
        # even by public key ("account is locked"). "*" = no valid password, but not locked.
        for line in Path("/etc/shadow").read_text().splitlines():
            parts = line.split(":")
            if parts[0] == name and parts[1].startswith("!"):
                subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True)


def _ensure_nopy_user() -> None:
    """Create the ``praxisnopy`` system user once (shell /bin/sh)."""
    _ensure_user(NOPY_USER, "/bin/sh")


def _make_public_dir(client_pub: str) -> tuple[Path, Path, Path]:
    """World-readable dir with authorized_keys and the no-python bin dir; returns (dir, keys, bin)."""
    pub = Path(tempfile.mkdtemp(prefix="praxis-sshd-"))
    pub.chmod(0o755)
    keys = pub / "authorized_keys"
    keys.write_text(client_pub + "\n")
    keys.chmod(0o644)
    bindir = pub / "bin"
    bindir.mkdir(mode=0o755)
    for tool in NOPY_TOOLS:
        target = shutil.which(tool, path="/usr/bin:/bin:/usr/sbin:/sbin")
        if target is None:
            raise RuntimeError(f"sshd_fixture: tool {tool!r} not found for the no-python host")
        (bindir / tool).symlink_to(target)
    return pub, keys, bindir


def _sshd_config(hostdir: Path, port: int, host_key: Path, authorized_keys: Path,
                 path_env: Optional[str]) -> str:
    lines = [
        f"ListenAddress {ADDRESS}",
        f"Port {port}",
        f"HostKey {host_key}",
        f"PidFile {hostdir / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin prohibit-password",
        "Subsystem sftp internal-sftp",
        "LogLevel VERBOSE",
    ]
    if path_env is not None:
        lines.append(f"SetEnv PATH={path_env}")
    return "\n".join(lines) + "\n"


def _log_text(hostdir: Path) -> str:
    parts = []
    for name in ("sshd.stderr", "sshd.log"):
        with contextlib.suppress(OSError):
            parts.append(f"--- {name}:\n" + (hostdir / name).read_text(errors="replace"))
    return "\n".join(parts)


def _wait_ready(proc: subprocess.Popen[bytes], hostdir: Path, port: int) -> bool:
    """True once sshd listens on ``port``; False if it exited because the port was taken."""
    marker = f"Server listening on {ADDRESS} port {port}."
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if "Address already in use" in _log_text(hostdir):
                return False
            raise RuntimeError(f"sshd for {hostdir.name} exited with {proc.returncode}\n{_log_text(hostdir)}")
        logged = marker in _log_text(hostdir)
        if logged:
            try:
                with socket.create_connection((ADDRESS, port), timeout=0.5):
                    return True
            except OSError:
                pass
        time.sleep(0.01)
    _stop_procs([proc])
    raise RuntimeError(f"sshd for {hostdir.name} not ready on port {port} after {READY_TIMEOUT}s\n"
                       f"{_log_text(hostdir)}")


def _start_sshd(hostdir: Path, host_key: Path, authorized_keys: Path,
                path_env: Optional[str]) -> tuple[subprocess.Popen[bytes], int]:
    cfg = hostdir / "sshd.conf"
    for _ in range(BIND_RETRIES):
        port = _free_port()
        cfg.write_text(_sshd_config(hostdir, port, host_key, authorized_keys, path_env))
        for name in ("sshd.log", "sshd.stderr"):
            (hostdir / name).write_text("")
        with open(hostdir / "sshd.stderr", "ab") as err:
            proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg), "-E", str(hostdir / "sshd.log")],
                                    stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT)
        if _wait_ready(proc, hostdir, port):
            return proc, port
    raise RuntimeError(f"sshd for {hostdir.name}: no free port after {BIND_RETRIES} tries\n"
                       f"{_log_text(hostdir)}")


# --------------------------------------------------------------------------- public API


def start_fleet(base: Path, n: int, *, no_python_host: bool = False,
                login_user: Optional[str] = None) -> SshFleet:
    """Start ``n`` sshd "hosts" ``h1``..``hN`` on 127.0.0.1; files go under ``base``.

    As root every host logs in as root, except (with ``no_python_host``) the last one, which logs in
    as ``praxisnopy`` and cannot find python3. As non-root every host logs in as the current user
    (sshd can only authenticate its own user) and ``no_python_host`` skips the calling test.
    ``login_user`` (root only) makes every host log in as that user instead, created on first use
    with shell /bin/bash and the system's skeleton dot-files, like an account on a fresh host; a
    ``{i}`` in it gives each host its own user (``praxisbench{i}``: praxisbench1, ...), so each
    has its own home, as separate machines do.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    is_root = os.geteuid() == 0
    if no_python_host and not is_root:
        pytest.skip("no_python_host needs root (creates the praxisnopy user)")
    if login_user is not None and not is_root:
        raise RuntimeError("login_user needs root (creates the user)")
    base.mkdir(parents=True, exist_ok=True)
    if is_root and not Path("/run/sshd").is_dir():
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        os.chmod("/run/sshd", 0o755)
    if no_python_host:
        _ensure_nopy_user()
    if login_user is not None:
        for i in range(1, n + 1):
            _ensure_user(login_user.format(i=i), "/bin/bash")
    default_user = "root" if is_root else pwd.getpwuid(os.geteuid()).pw_name

    key = base / "client_ed25519_key"
    client_pub = _keygen(key, "sshd-fixture-client")
    known_hosts = base / "known_hosts"
    empty_known_hosts = base / "empty_known_hosts"
    empty_known_hosts.write_text("")
    ssh_config = base / "ssh_config"

    public_dir: Optional[Path] = None
    nopy_bin: Optional[Path] = None
    if no_python_host or login_user is not None:
        public_dir, authorized_keys, nopy_bin = _make_public_dir(client_pub)
    else:
        authorized_keys = base / "authorized_keys"
        authorized_keys.write_text(client_pub + "\n")
        authorized_keys.chmod(0o600)

    fleet = SshFleet(hosts=[], known_hosts=known_hosts, empty_known_hosts=empty_known_hosts, key=key,
                     ssh_config=ssh_config, base=base, _public_dir=public_dir)
    _live_fleets.append(fleet)
    try:
        for i in range(1, n + 1):
            name = f"h{i}"
            nopy = no_python_host and i == n
            hostdir = base / name
            hostdir.mkdir()
            host_key = hostdir / "host_ed25519_key"
            host_pub = _keygen(host_key, name)
            proc, port = _start_sshd(hostdir, host_key, authorized_keys,
                                     str(nopy_bin) if nopy and nopy_bin else None)
            fleet._procs[name] = proc
            fleet.hosts.append(SshHost(name=name, address=ADDRESS, port=port,
                                       user=NOPY_USER if nopy else (
                                           login_user.format(i=i) if login_user else default_user),
                                       key=key,
                                       known_hosts=known_hosts, host_pubkey=host_pub, pid=proc.pid))
    except BaseException:
        fleet.stop()
        raise

    known_hosts.write_text("".join(f"[{h.address}]:{h.port} {h.host_pubkey}\n" for h in fleet.hosts))
    ssh_config.write_text("".join(
        f"Host {h.name}\n"
        f"    HostName {h.address}\n"
        f"    Port {h.port}\n"
        f"    User {h.user}\n"
        f"    IdentityFile {key}\n"
        f"    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {known_hosts}\n"
        f"    StrictHostKeyChecking yes\n"
        f"    BatchMode yes\n\n"
        for h in fleet.hosts))
    return fleet


@pytest.fixture
def ssh_fleet(tmp_path: Path) -> Iterator[Callable[..., SshFleet]]:
    """Factory: ``ssh_fleet(n=5, no_python_host=False)`` -> a started SshFleet; all stopped at teardown."""
    fleets: list[SshFleet] = []

    def make(n: int = 5, *, no_python_host: bool = False) -> SshFleet:
        fleet = start_fleet(tmp_path / f"sshd-fleet-{len(fleets) + 1}", n, no_python_host=no_python_host)
        fleets.append(fleet)
        return fleet

    try:
        yield make
    finally:
        for fleet in fleets:
            fleet.stop()


# --------------------------------------------------------------------------- self-test


def test_sshd_fixture_selftest(ssh_fleet: Callable[..., SshFleet]) -> None:
    import threading

    import paramiko
    from fabric import Connection

    fleet = ssh_fleet(n=2, no_python_host=True)
    root_host, nopy_host = fleet.hosts

    def connect(host: SshHost, known_hosts: Path) -> Connection:
        c = Connection(host.address, port=host.port, user=host.user,
                       connect_kwargs={"key_filename": str(host.key), "look_for_keys": False,
                                       "allow_agent": False, "timeout": 5})
        c.client.load_host_keys(str(known_hosts))
        c.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        return c

    for host in fleet.hosts:
        assert host.spec == f"{host.user}@127.0.0.1:{host.port}"
        with connect(host, fleet.known_hosts) as c:
            assert c.run("echo ok", in_stream=False, hide=True).stdout == "ok\n"

    # unknown host key -> rejected
    c = connect(root_host, fleet.empty_known_hosts)
    with pytest.raises(paramiko.SSHException):
        c.open()
    c.close()

    # the no-python host: python3 not found, basic tools work
    with connect(nopy_host, fleet.known_hosts) as c:
        r = c.run("command -v python3; echo rc=$?", in_stream=False, hide=True, warn=True)
        assert r.stdout.strip() in ("rc=1", "rc=127"), r.stdout  # dash: 127 when not found
        r = c.run("id -un; d=/tmp/nopy.$$; mkdir $d && echo hi > $d/f && cat $d/f && rm -r $d",
                  in_stream=False, hide=True)
        assert r.stdout.split() == [NOPY_USER, "hi"]
        assert c.run("/usr/bin/env python3 -c 1", in_stream=False, hide=True, warn=True).failed

    # the OpenSSH client accepts the ssh_config / known_hosts (StrictHostKeyChecking yes)
    out = subprocess.run(["ssh", "-F", str(fleet.ssh_config), nopy_host.name, "echo $PATH"],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.strip().endswith("/bin"), out

    # a dropped connection makes a running command fail; the listener keeps accepting
    with connect(root_host, fleet.known_hosts) as c:
        c.open()
        errors: list[BaseException] = []

        def run_sleep() -> None:
            try:
                c.run("sleep 5", in_stream=False, hide=True)
            except BaseException as exc:  # noqa: B036 - any failure is what we want to observe
                errors.append(exc)

        t0 = time.monotonic()
        th = threading.Thread(target=run_sleep)
        th.start()
        time.sleep(0.5)
        assert fleet.kill_connections(root_host) >= 1
        th.join(timeout=10)
        assert not th.is_alive() and errors, "run survived kill_connections"
        assert time.monotonic() - t0 < 4
    with connect(root_host, fleet.known_hosts) as c:
        assert c.run("echo again", in_stream=False, hide=True).stdout == "again\n"

    fleet.stop()
    fleet.stop()
    assert all(not _alive(h.pid) for h in fleet.hosts)
