"""Off-site copies of verified backups (``--backup-to REMOTE``).

After phase 1 each verified backup (``.praxis-os/.backups/<id>/``: ``MANIFEST.json``,
``files/`` and whatever else is in it) is copied to ``<destination>/<id>/``, before the first
destructive step; ``rollback`` brings it back when the local backup is gone or damaged.

Destinations (:func:`parse_destination`):

* **SFTP**: ``[user@]host[:port]:/abs/path`` or ``sftp://[user@]host[:port]/abs/path``, through
  a Fabric Connection. The caller passes ``connect`` (the controller's
  :func:`upgrade_tasks.fleet.connect`, so ``--known-hosts``, ``--identity``, ``--ssh-config`` and
  ``--accept-new-host-keys`` mean what they mean for hosts); without it :func:`default_connect`
  uses the user's ``~/.ssh/config`` and refuses a host key that is not in known_hosts (the
  file the ssh config names, else ``~/.ssh/known_hosts``), as fleet does.
* **rclone**: ``rclone:NAME:path`` always, or ``NAME:path`` when ``NAME`` is a remote
  ``rclone listremotes`` lists (S3-compatible stores, the clouds, another disk...). rclone
  reads its own configuration (``RCLONE_CONFIG`` included); it is run with an argument list,
  never a shell, never prompted (``--ask-password=false``, no stdin).

Credentials stay in the user's SSH and rclone configuration: a spec carrying one
(``user:password@``, an rclone connection string ``NAME,key=value:``) is refused, and every
message names the destination in its redacted form.

Safety: a copy is written under a temporary name (``.<id>.partial-<random>``), verified against
the backup on arrival (every file, MANIFEST.json included, has the same size and sha256
there: computed on the SFTP host with ``sha256sum``, else ``python3``, else read back over SFTP;
rclone: the remote's own sha256, else read back with ``rclone hashsum --download``) and only
then renamed into place (rclone moves ``MANIFEST.json`` last, so a copy interrupted while it is
moved into place has none and is never listed or fetched). A copy fetched back is written to a
temporary directory beside the local backups, checked like any backup read from disk
(:func:`~upgrade_tasks.backup_store.check_manifest`,
:func:`~upgrade_tasks.backup_store.verify_backup`) and renamed into place only when it passes;
a damaged local copy is moved aside, never deleted.

A remote copy is checked for consistency with its own manifest; that is not a signature (who
can write the destination can write a consistent backup). ``fetch(...,
expect_manifest_sha256=...)`` closes that gap when the caller kept :func:`manifest_sha256` of
the backup it pushed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import re
import secrets
import shlex
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

from . import faults
from .backup_store import MANIFEST, Backup, backup_file, check_manifest, ensure_backups_dir, verify_backup
from .errors import EXIT_PREFLIGHT, BackupError, UpgradeError, UsageError
from .fsutil import NotRegular, fsync, fsync_dir, open_regular, read_regular, sha256_file
from .redact import MASK, redact
from .trust import BACKUP_ID, Bad, ident

Kind = Literal["sftp", "rclone"]
#: A function returning a Fabric Connection for an sftp destination (not yet opened).
Connector = Callable[["Destination"], Any]

RCLONE = "rclone"
#: How the SFTP side hashes a remote copy, in order of preference.
HASH_METHODS = ("sha256sum", "python3", "sftp")
#: Seconds a remote shell may take to answer (an SFTP-only account's never does); hashing
#: may take 30 times that.
SHELL_TIMEOUT = 20
#: MANIFEST.json read from a destination is refused above this size.
MAX_MANIFEST = 64 << 20
_CHUNK = 1 << 20


class OffsiteError(BackupError):
    """An off-site copy is missing, unreachable, incomplete or does not match its manifest
    (exit 7, as a damaged backup)."""

    ref = "offsite-backup"


class OffsitePushError(OffsiteError):
    """The off-site copy could not be made or verified. Raised before the first destructive
    step, so nothing was changed (exit 3)."""

    exit_code = EXIT_PREFLIGHT
    ref = "offsite-copy-failed"


# -- destinations ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Destination:
    """Where off-site copies go. ``spec`` is what the user wrote, safe to display (specs with
    credentials are refused, so it never holds one).

    sftp: ``user`` (None: the ssh config's or the local user), ``host`` (an address or an
    ``~/.ssh/config`` alias), ``port`` (None: the ssh config's or 22), ``path`` (absolute).
    rclone: ``remote`` (the configured remote's name) and ``path`` inside it (``""``: its root).
    """

    kind: Kind
    spec: str
    path: str
    user: str | None = None
    host: str | None = None
    port: int | None = None
    remote: str | None = None

    @property
    def ssh_target(self) -> str:
        """``[user@]host[:port]``: what :func:`upgrade_tasks.fleet.connect` takes."""
        host = f"[{self.host}]" if self.host and ":" in self.host else str(self.host)
        return (f"{self.user}@" if self.user else "") + host + (f":{self.port}" if self.port else "")

    def where(self, name: str = "") -> str:
        """A directory at the destination, for messages (``name`` below the destination path)."""
        if self.kind == "sftp":
            return f"{self.ssh_target}:{posixpath.join(self.path, name) if name else self.path}"
        return _rclone_path(self, name)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAME = r"[A-Za-z0-9._][A-Za-z0-9._-]*"
_HOST = r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_][A-Za-z0-9._-]*"
_SCP = re.compile(rf"(?:(?P<user>{_NAME})@)?(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}))?:(?P<path>/.*)",
                  re.S)
_SFTP_URL = re.compile(rf"sftp://(?:(?P<userinfo>[^@/]*)@)?(?P<host>{_HOST})"
                       rf"(?::(?P<port>[0-9]{{1,5}}))?(?P<path>/.*)?", re.S)
#: ``user:password@`` before any ``/`` (scp-like specs)
_SCP_CREDENTIALS = re.compile(r"^[^@/:]*:[^@/]*@")
#: rclone's rule for remote names: letters, digits, ``_ . + @ -`` and space, not first ``-``/space
_RCLONE_NAME = re.compile(r"(?![- ])[\w.+@ -]+")

FORMS = ("SFTP: [user@]host[:port]:/absolute/path or sftp://[user@]host[:port]/absolute/path "
         "(keys and host aliases from your ~/.ssh/config); rclone: rclone:NAME:path, or NAME:path "
         "for a remote `rclone listremotes` lists (set one up with `rclone config`; a local "
         "directory or another disk: a remote of type local, then rclone:NAME:/absolute/path)")


def display_spec(spec: str) -> str:
    """A refused ``spec`` as it may be shown: URL credentials masked, and, erring on the safe
    side, everything between the first ``:`` and the last ``@`` (``user:password@``) and after
    an rclone connection string's first ``,`` (``NAME,secret=...:``); control characters
    become ``?``."""
    text = redact(spec)
    if "://" not in text:
        i, j = text.find(":"), text.rfind("@")
        if 0 <= i < j:
            text = f"{text[:i + 1]}{MASK}{text[j:]}"
    i, j = text.find(","), text.rfind(":")
    if 0 <= i < j:
        text = f"{text[:i + 1]}{MASK}{text[j:]}"
    return _CONTROL.sub("?", text)


def _refuse(spec: str, why: str, hint: str = "") -> UsageError:
    return UsageError(f"--backup-to {display_spec(spec)!r} is not a destination we accept", why,
                      hint or f"write it as one of: {FORMS}")


def parse_destination(spec: str) -> Destination:
    """Parse ``--backup-to``. Refuses (:class:`~upgrade_tasks.errors.UsageError`, exit 2)
    credentials, control characters, ``..`` components, relative SFTP paths, an rclone
    remote that is not configured, and a ``NAME:/path`` that is both an rclone remote and an
    SSH host."""
    if not spec.strip():
        raise _refuse(spec, "it is empty")
    if _CONTROL.search(spec):
        raise _refuse(spec, "it contains control characters")
    no_credentials = ("credentials never go on the command line (they would show in process "
                      "lists, logs and reports): keep them in your SSH configuration (keys, "
                      "~/.ssh/config) or your rclone configuration (`rclone config`)")
    if redact(spec) != spec or (not spec.startswith("rclone:") and _SCP_CREDENTIALS.match(spec)):
        raise _refuse(spec, "it contains a password", no_credentials + "; an rclone remote whose "
                      "path holds ':' and '@' is written rclone:NAME:path")
    if spec.startswith("rclone:"):
        return _rclone_destination(spec, spec[len("rclone:"):], no_credentials)
    if spec.startswith("sftp://"):
        m = _SFTP_URL.fullmatch(spec)
        if not m:
            raise _refuse(spec, "it is not sftp://[user@]host[:port]/absolute/path")
        user = m.group("userinfo")
        if user is not None and not re.fullmatch(_NAME, user):
            raise _refuse(spec, f"{user!r} is not a user name")
        if not m.group("path"):
            raise _refuse(spec, "it has no path: the path must be absolute (sftp://host/abs/path)")
        return _sftp_destination(spec, user, m.group("host"), m.group("port"), m.group("path"))
    name = spec.split(":", 1)[0] if ":" in spec else ""
    remotes, rclone_problem = rclone_remotes() if name else (set(), "")
    m = _SCP.fullmatch(spec)
    if m and name in remotes:
        url = "sftp://" + (f"{m.group('user')}@" if m.group("user") else "") + m.group("host") + (
            f":{m.group('port')}" if m.group("port") else "") + m.group("path")
        raise _refuse(spec, f"{name!r} is both an rclone remote and an SSH host name",
                      f"say which: rclone:{spec} for the rclone remote, or {url} for SFTP")
    if m:
        return _sftp_destination(spec, m.group("user"), m.group("host"), m.group("port"),
                                 m.group("path"))
    if name and name in remotes:
        return _rclone_destination(spec, spec, no_credentials)
    why = ("it is neither an SFTP destination with an absolute path nor an rclone remote you "
           "have configured")
    if name and rclone_problem:
        why += f" ({rclone_problem})"
    raise _refuse(spec, why)


def _sftp_destination(spec: str, user: str | None, host: str, port: str | None,
                      path: str) -> Destination:
    if port is not None and not 1 <= int(port) <= 65535:
        raise _refuse(spec, f"port {port} is not 1-65535")
    path = _clean_path(spec, path)
    if path.split("/")[1:2] == ["~"]:
        raise _refuse(spec, "'~' is not expanded: the path must be absolute",
                      "write the directory's absolute path (e.g. host:/home/me/backups)")
    return Destination("sftp", redact(spec), path, user=user, host=host.strip("[]"),
                       port=int(port) if port else None)


def _rclone_destination(spec: str, rest: str, no_credentials: str) -> Destination:
    name, sep, path = rest.partition(":")
    if rest.startswith(":") or "," in name or "=" in name:
        raise _refuse(spec, "an rclone connection string or on-the-fly backend may carry "
                      "credentials", no_credentials + "; then write rclone:NAME:path")
    if not sep:
        raise _refuse(spec, "an rclone destination is rclone:NAME:path")
    if not _RCLONE_NAME.fullmatch(name):
        raise _refuse(spec, f"{name!r} is not an rclone remote name")
    remotes, problem = rclone_remotes()
    if name not in remotes:
        raise _refuse(spec, f"rclone has no remote called {name!r}" + (f" ({problem})" if problem
                                                                         else ""),
                      "list your remotes with `rclone listremotes` (RCLONE_CONFIG chooses the "
                      "config file), create one with `rclone config`")
    return Destination("rclone", redact(spec), _clean_path(spec, path), remote=name)


def _clean_path(spec: str, path: str) -> str:
    if ".." in path.split("/"):
        raise _refuse(spec, "its path has a '..' component", "write the directory without '..'")
    return path.rstrip("/") or ("/" if path.startswith("/") else "")


def rclone_remotes() -> tuple[set[str], str]:
    """(the remotes ``rclone listremotes`` lists, why that failed: ``""`` when it did not)."""
    try:
        p = subprocess.run([RCLONE, "listremotes", "--ask-password=false"], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        return set(), "rclone is not installed"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return set(), f"rclone listremotes failed: {exc}"
    if p.returncode != 0:
        return set(), f"rclone listremotes failed: {_clean(p.stderr)}"
    return {ln.strip()[:-1] for ln in p.stdout.splitlines() if ln.strip().endswith(":")}, ""


# -- SSH -------------------------------------------------------------------------------------------
def default_connect(dest: Destination) -> Any:
    """A Fabric Connection to an sftp destination from the user's ``~/.ssh/config`` (host
    aliases, User, Port, IdentityFile), its host key checked against known_hosts (the ssh
    config's ``UserKnownHostsFile``, else ``~/.ssh/known_hosts``): an unknown key is refused,
    as :func:`upgrade_tasks.fleet.apply_host_key_policy` does without ``--accept-new-host-keys``."""
    import paramiko
    from fabric import Config, Connection

    config = Config(overrides={"run": {"in_stream": False}})
    c = Connection(str(dest.host), user=dest.user, port=dest.port, config=config,
                   connect_timeout=10)
    from_cfg = c.ssh_config.get("userknownhostsfile")
    path = Path(str(from_cfg).split()[0] if from_cfg else "~/.ssh/known_hosts").expanduser()
    c.client._host_keys_filename = None
    if path.exists():
        c.client.load_host_keys(str(path))
    c.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    c._praxis_known_hosts = path
    return c


def _ssh_problem(exc: BaseException, dest: Destination, conn: Any) -> tuple[str, str]:
    """(why, next) for an SSH/SFTP failure."""
    import paramiko

    text = str(exc) or type(exc).__name__
    host = str(getattr(conn, "host", None) or dest.host)
    port = getattr(conn, "port", None) or dest.port or 22
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in text:
        kh = getattr(conn, "_praxis_known_hosts", "~/.ssh/known_hosts")
        return (f"the host key of {host} is not in {kh}: refused",
                f"check its fingerprint, then trust it: ssh-keyscan -p {port} {host} >> {kh}")
    if isinstance(exc, paramiko.BadHostKeyException):
        return (f"the host key of {host} does not match known_hosts: refused",
                "find out why the key changed before you trust the new one")
    if isinstance(exc, paramiko.AuthenticationException):
        return (f"authentication failed for {dest.ssh_target}",
                "check the key in your ~/.ssh/config (IdentityFile) or ssh-agent")
    if isinstance(exc, (paramiko.ssh_exception.NoValidConnectionsError, ConnectionRefusedError,
                        TimeoutError)) or type(exc).__name__ in ("gaierror", "timeout"):
        return f"cannot connect to {host}:{port}: {text}", "check the host, the port and the network"
    return text, f"check that {dest.where()} is a directory you can write over SFTP"


def _ssh_errors() -> tuple[type[BaseException], ...]:
    import paramiko

    return (OSError, EOFError, paramiko.SSHException)


class _Backend(Protocol):
    """One kind of destination; ``rel`` names are below the destination path."""

    def prepare(self) -> None: ...

    def exists(self, rel: str) -> bool: ...

    def sizes(self, rel: str) -> tuple[dict[str, int], set[str]]: ...

    def hashes(self, rel: str, files: list[str]) -> tuple[dict[str, str], str]: ...

    def upload(self, local: Path, tree: _Tree, rel: str) -> None: ...

    def install(self, tmp: str, final: str, aside: str | None) -> None: ...

    def remove(self, rel: str) -> None: ...

    def read(self, rel: str) -> bytes: ...

    def download(self, rel: str, local: Path) -> None: ...

    def names(self) -> list[str]: ...

    def ids(self) -> list[str]: ...


@dataclass
class _Tree:
    """A local backup directory: every regular file (size, sha256) and every directory."""

    files: dict[str, tuple[int, str]] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(s for s, _ in self.files.values())


_PY_HASHER = (
    "import hashlib, json, os, stat, sys\n"
    "root = sys.argv[1]\n"
    "out = {}\n"
    "for d, dirs, names in os.walk(root):\n"
    "    for n in names:\n"
    "        p = os.path.join(d, n)\n"
    "        if stat.S_ISREG(os.lstat(p).st_mode):\n"
    "            h = hashlib.sha256()\n"
    "            with open(p, 'rb') as f:\n"
    "                for b in iter(lambda: f.read(1 << 20), b''):\n"
    "                    h.update(b)\n"
    "            out[os.path.relpath(p, root).replace(os.sep, '/')] = h.hexdigest()\n"
    "sys.stdout.write('PRAXIS-SHA256 ' + json.dumps(out) + '\\n')\n"
)
_SHA256SUM_LINE = re.compile(r"(\\?)([0-9a-f]{64}) [ *](.*)")


def sftp_remote_hashes(conn: Any, root: str, files: list[str],
                       methods: tuple[str, ...] = HASH_METHODS) -> tuple[dict[str, str], str]:
    """sha256 of the regular files under the remote directory ``root`` (relative names), and
    how they were computed: ``sha256sum`` on the host, else ``python3`` there, else read back
    over SFTP (``files`` only). A method the host lacks (or whose shell fails) is skipped."""
    from invoke.exceptions import CommandTimedOut

    q = shlex.quote(root)
    kw: dict[str, Any] = {"hide": True, "warn": True, "in_stream": False, "pty": False,
                          "timeout": SHELL_TIMEOUT * 30}
    shell: bool | None = None
    for method in methods:
        if method != "sftp" and shell is None:  # an SFTP-only account has no shell to run them
            try:
                probe = conn.run("echo PRAXIS-SHELL-OK", **{**kw, "timeout": SHELL_TIMEOUT})
                shell = probe.exited == 0 and "PRAXIS-SHELL-OK" in probe.stdout
            except CommandTimedOut:
                shell = False
        if method != "sftp" and not shell:
            continue
        if method == "sftp":
            sftp = conn.sftp()
            out = {}
            for rel in files:
                with sftp.open(posixpath.join(root, rel), "rb") as fh:
                    fh.prefetch()
                    out[rel] = _hash_file(fh)[1]
            return out, "read back over SFTP"
        if method == "sha256sum":
            try:
                r = conn.run("command -v sha256sum >/dev/null 2>&1 || exit 127; cd -- " + q
                             + " && find . -type f -exec sha256sum -- {} +", **kw)
            except CommandTimedOut:
                continue
            if r.exited != 0:
                continue
            out = {}
            for line in r.stdout.splitlines():
                m = _SHA256SUM_LINE.fullmatch(line)
                if m:
                    name = m.group(3)
                    if m.group(1):  # GNU escapes \\, \n and \r in names
                        name = re.sub(r"\\(.)", lambda x: {"n": "\n", "r": "\r"}.get(
                            x.group(1), x.group(1)), name)
                    out[name[2:] if name.startswith("./") else name] = m.group(2)
            return out, "sha256sum on the host"
        if method == "python3":
            try:
                r = conn.run("command -v python3 >/dev/null 2>&1 || exit 127; exec python3 -c "
                             + shlex.quote(_PY_HASHER) + " " + q, **kw)
            except CommandTimedOut:
                continue
            lines = [ln for ln in r.stdout.splitlines() if ln.startswith("PRAXIS-SHA256 ")]
            if r.exited != 0 or not lines:
                continue
            try:
                data = json.loads(lines[-1][len("PRAXIS-SHA256 "):])
            except ValueError:
                continue
            if isinstance(data, dict):
                return {str(k): str(v) for k, v in data.items()}, "python3 on the host"
    raise OffsiteError(f"cannot compute sha256 of {root} on {getattr(conn, 'host', 'the host')}",
                       f"none of {', '.join(methods)} worked there",
                       "install sha256sum (coreutils) or python3 there")


class _Sftp:
    def __init__(self, dest: Destination, conn: Any, sftp: Any) -> None:
        self.dest, self.conn, self.sftp = dest, conn, sftp

    def _p(self, rel: str = "") -> str:
        return posixpath.join(self.dest.path, rel) if rel else self.dest.path

    def _stat(self, path: str) -> Any:
        try:
            return self.sftp.lstat(path)
        except FileNotFoundError:
            return None

    def prepare(self) -> None:
        missing = []
        p = self.dest.path
        while p not in ("/", "") and self._stat(p) is None:
            missing.append(p)
            p = posixpath.dirname(p)
        for d in reversed(missing):
            try:
                self.sftp.mkdir(d, 0o700)
            except OSError:
                if self._stat(d) is None:
                    raise

    def exists(self, rel: str) -> bool:
        return self._stat(self._p(rel)) is not None

    def _walk(self, rel: str) -> Iterator[tuple[str, Any]]:
        """(name relative to ``rel``, attrs) of everything below it, without following links."""
        top = self._p(rel)
        todo = [""]
        while todo:
            sub = todo.pop()
            for a in self.sftp.listdir_attr(posixpath.join(top, sub) if sub else top):
                if a.filename in (".", "..") or "/" in a.filename or "\0" in a.filename:
                    continue
                name = posixpath.join(sub, a.filename) if sub else a.filename
                yield name, a
                if stat.S_ISDIR(a.st_mode or 0):
                    todo.append(name)

    def sizes(self, rel: str) -> tuple[dict[str, int], set[str]]:
        sizes, odd = {}, set()
        for name, a in self._walk(rel):
            mode = a.st_mode or 0
            if stat.S_ISREG(mode):
                sizes[name] = int(a.st_size or 0)
            elif not stat.S_ISDIR(mode):
                odd.add(name)
        return sizes, odd

    def hashes(self, rel: str, files: list[str]) -> tuple[dict[str, str], str]:
        return sftp_remote_hashes(self.conn, self._p(rel), files)

    def upload(self, local: Path, tree: _Tree, rel: str) -> None:
        top = self._p(rel)
        self.sftp.mkdir(top, 0o700)
        for d in tree.dirs:
            self.sftp.mkdir(posixpath.join(top, d), 0o700)
        for name, (size, _sha) in tree.files.items():
            with open_regular(local / name) as fh:
                self.sftp.putfo(fh, posixpath.join(top, name), file_size=size, confirm=True)

    def _rename(self, a: str, b: str) -> None:
        try:
            self.sftp.posix_rename(a, b)
        except OSError:  # a server without posix-rename; b does not exist here
            self.sftp.rename(a, b)

    def install(self, tmp: str, final: str, aside: str | None) -> None:
        if aside:
            self._rename(self._p(final), self._p(aside))
        self._rename(self._p(tmp), self._p(final))

    def remove(self, rel: str) -> None:
        top = self._p(rel)
        st = self._stat(top)
        if st is None:
            return
        if not stat.S_ISDIR(st.st_mode or 0):
            self.sftp.remove(top)
            return
        entries = list(self._walk(rel))
        for name, a in reversed(entries):  # children before their directories
            (self.sftp.rmdir if stat.S_ISDIR(a.st_mode or 0) else self.sftp.remove)(
                posixpath.join(top, name))
        self.sftp.rmdir(top)

    def read(self, rel: str) -> bytes:
        with self.sftp.open(self._p(rel), "rb") as fh:
            data: bytes = fh.read(MAX_MANIFEST + 1)
        return data

    def download(self, rel: str, local: Path) -> None:
        local.mkdir(mode=0o700)
        top = self._p(rel)
        for name, a in self._walk(rel):
            mode = a.st_mode or 0
            if stat.S_ISDIR(mode):
                (local / name).mkdir(mode=0o700)
            elif stat.S_ISREG(mode):
                fd = os.open(local / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                             | getattr(os, "O_NOFOLLOW", 0), 0o600)
                with os.fdopen(fd, "wb") as out:
                    self.sftp.getfo(posixpath.join(top, name), out)
                    out.flush()
                    fsync(out.fileno())
            else:
                raise OffsiteError(f"{self.dest.where(rel)} holds {name}, which is not a regular "
                                   "file or directory", "a backup never holds links or special "
                                   "files: this is not a copy we made", "do not restore from it")

    def names(self) -> list[str]:
        try:
            return [a.filename for a in self.sftp.listdir_attr(self._p())]
        except FileNotFoundError:
            return []

    def ids(self) -> list[str]:
        return [n for n in self.names() if BACKUP_ID.fullmatch(n)
                and self._stat(self._p(f"{n}/{MANIFEST}")) is not None]


# -- rclone ----------------------------------------------------------------------------------------
def _rclone_path(dest: Destination, rel: str = "") -> str:
    p = dest.path
    if rel:
        p = f"{p.rstrip('/')}/{rel}" if p else rel
    return f"{dest.remote}:{p}"


_RCLONE_LOG = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ")


def _clean(stderr: str) -> str:
    """rclone's complaint, for a message: its last lines, without timestamps, URL credentials
    or query strings (a signed URL carries a signature), at most 400 characters."""
    lines = [_RCLONE_LOG.sub("", ln).strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("NOTICE: Config file")]
    text = redact(" / ".join(lines[-3:]))
    text = re.sub(r"(https?://[^\s?]+)\?\S+", rf"\1?{MASK}", text)
    return _CONTROL.sub("?", text)[-400:] or "no message"


class _Rclone:
    NOT_FOUND = 3  # rclone's exit status for "directory not found"

    def __init__(self, dest: Destination, err: type[OffsiteError]) -> None:
        self.dest, self.err = dest, err

    def _p(self, rel: str = "") -> str:
        return _rclone_path(self.dest, rel)

    def run(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        argv = [RCLONE, *args, "--ask-password=false"]
        try:
            p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        except FileNotFoundError:
            raise self.err("rclone is not installed", f"--backup-to {self.dest.spec} needs it",
                           "install rclone (https://rclone.org/install/), or use an SFTP "
                           "destination") from None
        if p.returncode not in ok:
            raise self.err(f"rclone {args[0]} failed on {self.dest.spec} (exit {p.returncode})",
                           _clean(p.stderr), f"check the remote with `rclone lsd {self.dest.remote}:`"
                           " and your rclone config (`rclone config`; RCLONE_CONFIG chooses the "
                           "file): credentials stay there")
        return p

    def prepare(self) -> None:
        pass  # rclone creates directories (and buckets, where allowed) as it copies

    def _lsjson(self, rel: str, *extra: str) -> list[dict[str, Any]] | None:
        p = self.run("lsjson", "-R", "--files-only", "--no-mimetype", "--no-modtime", *extra,
                     self._p(rel), ok=(0, self.NOT_FOUND))
        if p.returncode == self.NOT_FOUND:
            return None
        try:
            items = json.loads(p.stdout)
        except ValueError as exc:
            raise self.err(f"rclone lsjson on {self.dest.spec} gave no listing", str(exc)) from None
        return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []

    def exists(self, rel: str) -> bool:
        return bool(self._lsjson(rel))

    def sizes(self, rel: str) -> tuple[dict[str, int], set[str]]:
        return {str(i["Path"]): int(i["Size"]) for i in self._lsjson(rel) or []}, set()

    def hashes(self, rel: str, files: list[str]) -> tuple[dict[str, str], str]:
        items = self._lsjson(rel, "--hash", "--hash-type", "sha256") or []
        out = {str(i["Path"]): str(i["Hashes"]["sha256"]) for i in items
               if isinstance(i.get("Hashes"), dict) and i["Hashes"].get("sha256")}
        if all(f in out for f in files):
            return out, "the remote's sha256 (rclone lsjson --hash)"
        # a file that cannot be read back (a crypt block that fails to decrypt) gets no hash,
        # which the comparison reports; rclone's complaint goes with the method
        p = self.run("hashsum", "sha256", "--download", self._p(rel), ok=tuple(range(256)))
        for line in p.stdout.splitlines():
            h, sep, name = line.partition("  ")
            if sep and re.fullmatch(r"[0-9a-f]{64}", h):
                out[name] = h
        how = "read back (rclone hashsum sha256 --download)"
        return out, how + (f"; rclone: {_clean(p.stderr)}" if p.returncode else "")

    def upload(self, local: Path, tree: _Tree, rel: str) -> None:
        self.run("copy", str(local.resolve()), self._p(rel))

    def install(self, tmp: str, final: str, aside: str | None) -> None:
        if aside:
            self.run("moveto", self._p(final), self._p(aside))
        # MANIFEST.json last: where a directory cannot be renamed in one step (object stores:
        # copy + delete per file), a copy interrupted here has no manifest, so it is never
        # listed, fetched or mistaken for a complete one
        self.run("move", self._p(tmp), self._p(final), "--exclude", f"/{MANIFEST}",
                 "--delete-empty-src-dirs")
        self.run("moveto", self._p(f"{tmp}/{MANIFEST}"), self._p(f"{final}/{MANIFEST}"))
        self.run("rmdirs", self._p(tmp), ok=(0, self.NOT_FOUND))

    def remove(self, rel: str) -> None:
        self.run("purge", self._p(rel), ok=(0, self.NOT_FOUND))

    def read(self, rel: str) -> bytes:
        argv = [RCLONE, "cat", "--count", str(MAX_MANIFEST + 1), self._p(rel), "--ask-password=false"]
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True)
        if p.returncode != 0:
            raise self.err(f"cannot read {self.dest.where(rel)}",
                           _clean(p.stderr.decode(errors="replace")))
        return p.stdout

    def download(self, rel: str, local: Path) -> None:
        local.mkdir(mode=0o700)
        self.run("copy", self._p(rel), str(local.resolve()))

    def names(self) -> list[str]:
        p = self.run("lsf", "--dirs-only", self._p(), ok=(0, self.NOT_FOUND))
        return [ln.rstrip("/") for ln in p.stdout.splitlines() if ln.strip()]

    def ids(self) -> list[str]:
        p = self.run("lsf", "-R", "--max-depth", "2", "--files-only", "--include", f"/*/{MANIFEST}",
                     self._p(), ok=(0, self.NOT_FOUND))
        out = []
        for ln in p.stdout.splitlines():
            bid, _, rest = ln.strip().partition("/")
            if rest == MANIFEST and BACKUP_ID.fullmatch(bid):
                out.append(bid)
        return out


@contextlib.contextmanager
def _backend(dest: Destination, connect: Connector | None, err: type[OffsiteError],
             doing: str) -> Iterator[_Backend]:
    """The destination's backend for one operation; SSH/SFTP failures become ``err`` (what,
    why, next); the connection is closed at the end."""
    if dest.kind == "rclone":
        yield _Rclone(dest, err)
        return
    conn = None
    try:
        conn = (connect or default_connect)(dest)
        yield _Sftp(dest, conn, conn.sftp())
    except UpgradeError:
        raise
    except _ssh_errors() as exc:
        why, hint = _ssh_problem(exc, dest, conn)
        raise err(f"cannot {doing} {dest.spec}", why, hint) from None
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


# -- the local side --------------------------------------------------------------------------------
def _check_id(backup_id: str, err: type[OffsiteError]) -> str:
    try:
        return ident(backup_id, BACKUP_ID, "backup id")
    except Bad as exc:
        raise err(f"{backup_id!r} is not a backup id", str(exc),
                  "pass the id of a backup (`invoke status` lists them)") from None


def _hash_file(fh: BinaryIO) -> tuple[int, str]:
    h, n = hashlib.sha256(), 0
    for block in iter(lambda: fh.read(_CHUNK), b""):
        h.update(block)
        n += len(block)
    return n, h.hexdigest()


def _local_tree(root: Path, err: type[OffsiteError]) -> _Tree:
    """Every regular file and directory of a local backup; anything else is refused (a backup
    never holds links: following one would copy whatever it points at)."""
    tree = _Tree()
    for d, dirs, names in os.walk(root):
        dirs.sort()
        for n in sorted(dirs) + sorted(names):
            p = Path(d) / n
            rel = p.relative_to(root).as_posix()
            if n in dirs and not p.is_symlink():
                tree.dirs.append(rel)
                continue
            try:
                with open_regular(p) as fh:
                    tree.files[rel] = _hash_file(fh)
            except NotRegular:
                raise err(f"backup {root.name} holds {rel}, which is not a regular file",
                          "a backup never holds links or special files",
                          f"inspect {root}; it was not copied") from None
    return tree


def _read_backup(path: Path, backup_id: str, err: type[OffsiteError], where: str) -> Backup:
    """A backup directory read as :func:`~upgrade_tasks.backup_store.load_backup` reads one
    (its MANIFEST.json parsed and checked), at any path, then re-hashed
    (:func:`~upgrade_tasks.backup_store.verify_backup`)."""
    try:
        manifest = json.loads(read_regular(path / MANIFEST))
        check_manifest(manifest, backup_id)
        b = Backup(path, manifest)
        verify_backup(b)
    except FileNotFoundError:
        raise err(f"backup {backup_id} {where} has no {MANIFEST}", "it is incomplete") from None
    except (OSError, ValueError, Bad) as exc:
        raise err(f"backup {backup_id} {where} fails its check", str(exc)) from None
    except BackupError as exc:
        raise err(exc.what + f" ({where})", exc.why) from None
    return b


def manifest_sha256(backup_dir: Path) -> str:
    """sha256 of a backup's MANIFEST.json: keep it with the session to make
    :func:`fetch` accept only the copy that was pushed."""
    return sha256_file(backup_dir / MANIFEST)


def _compare(expected: dict[str, tuple[int, str]], sizes: dict[str, int], odd: set[str],
             shas: dict[str, str]) -> list[str]:
    problems = []
    for rel, (size, sha) in sorted(expected.items()):
        if rel in odd:
            problems.append(f"{rel}: not a regular file")
        elif rel not in sizes:
            problems.append(f"{rel}: missing")
        elif sizes[rel] != size:
            problems.append(f"{rel}: {sizes[rel]} bytes, expected {size}")
        elif shas.get(rel) != sha:
            problems.append(f"{rel}: sha256 differs" if rel in shas else f"{rel}: no sha256")
    return problems


def _survey(be: _Backend, rel: str, expected: dict[str, tuple[int, str]]) -> tuple[list[str], str]:
    """(what does not match ``expected`` under ``rel``, how the hashes were computed)."""
    sizes, odd = be.sizes(rel)
    shas, method = be.hashes(rel, sorted(set(expected) & set(sizes)))
    return _compare(expected, sizes, odd, shas), method


def _manifest_expectation(b: Backup) -> dict[str, tuple[int, str]]:
    return {backup_file(Path(), rel).as_posix(): (int(e["size"]), str(e["sha256"]))
            for rel, e in b.entries.items() if e["kind"] == "file"}


def _damage(problems: list[str], method: str) -> str:
    return f"{len(problems)} file(s) differ: " + "; ".join(problems[:5]) + f" (sha256: {method})"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    x = n / 1024
    for unit in ("KiB", "MiB"):
        if x < 1024:
            return f"{x:.1f} {unit}"
        x /= 1024
    return f"{x:.1f} GiB"


def _stale(names: list[str], backup_id: str) -> list[str]:
    pat = re.compile(re.escape(f".{backup_id}.") + r"(partial|damaged)-[0-9a-f]{8}")
    return [n for n in names if pat.fullmatch(n)]


# -- the API ---------------------------------------------------------------------------------------
def push(backup_dir: Path, backup_id: str, dest: Destination, connect: Connector | None = None) -> str:
    """Copy the backup directory to ``<dest>/<backup_id>/`` and verify it there; returns one line
    saying what was done. The local backup is verified first (a damaged one is never shipped),
    the copy goes to a temporary name, is verified on arrival (every file, size and sha256,
    MANIFEST.json included) and only then renamed into place. A copy already there that
    verifies is kept; a damaged one is replaced. Raises :class:`OffsitePushError`."""
    err = OffsitePushError
    _check_id(backup_id, err)
    if backup_dir.name != backup_id:
        raise err(f"{backup_dir} is not the directory of backup {backup_id}",
                  "a backup's directory is named by its id")
    b = _read_backup(backup_dir, backup_id, err, f"in {backup_dir}")
    tree = _local_tree(backup_dir, err)
    if _compare(_manifest_expectation(b), {k: v[0] for k, v in tree.files.items()}, set(),
                {k: v[1] for k, v in tree.files.items()}):
        raise err(f"backup {backup_id} changed while it was read", "its files no longer match "
                  "its manifest", "rerun; if it persists inspect " + str(backup_dir))
    what = f"{len(tree.files)} files, {_size(tree.size)}"
    with _backend(dest, connect, err, f"copy backup {backup_id} to") as be:
        be.prepare()
        aside = None
        if be.exists(backup_id):
            problems, method = _survey(be, backup_id, tree.files)
            if not problems:
                return (f"backup {backup_id} ({what}) is already at {dest.where(backup_id)}, "
                        f"verified (sha256: {method})")
            aside = f".{backup_id}.damaged-{secrets.token_hex(4)}"
        for stale in _stale(be.names(), backup_id):  # left by a run killed half-way
            be.remove(stale)
        tmp = f".{backup_id}.partial-{secrets.token_hex(4)}"
        installed = False
        try:
            be.upload(backup_dir, tree, tmp)
            faults.point("offsite:uploaded")
            problems, method = _survey(be, tmp, tree.files)
            if problems:
                raise err(f"the copy of backup {backup_id} at {dest.where(tmp)} does not match the "
                          "backup: it was not kept", _damage(problems, method),
                          "check the destination's disk and rerun; nothing was changed")
            be.install(tmp, backup_id, aside)
            installed = True
            faults.point("offsite:installed")
            sizes, _odd = be.sizes(backup_id)
            missing = [f for f, (n, _sha) in tree.files.items() if sizes.get(f) != n]
            if missing:
                raise err(f"the copy of backup {backup_id} is incomplete after it was moved into "
                          f"place at {dest.where(backup_id)}", f"{len(missing)} file(s) missing "
                          f"or of another size, first: {', '.join(sorted(missing)[:5])}",
                          "rerun: a copy that does not verify is replaced")
        finally:
            if not installed:
                with contextlib.suppress(Exception):
                    be.remove(tmp)
        if aside:
            be.remove(aside)
    return (f"backup {backup_id} ({what}) copied to {dest.where(backup_id)} and verified on "
            f"arrival (sha256: {method})" + ("; it replaced a damaged copy" if aside else ""))


def verify_remote(dest: Destination, backup_id: str, connect: Connector | None = None) -> str:
    """Re-verify the copy at ``<dest>/<backup_id>/`` against its own MANIFEST.json (checked as
    any manifest read back is): every file it lists, size and sha256, computed there. Returns
    one line; raises :class:`OffsiteError` when it is missing or damaged."""
    _check_id(backup_id, OffsiteError)
    with _backend(dest, connect, OffsiteError, f"verify backup {backup_id} at") as be:
        if not be.exists(f"{backup_id}/{MANIFEST}"):
            raise _not_there(dest, backup_id)
        data = be.read(f"{backup_id}/{MANIFEST}")
        try:
            if len(data) > MAX_MANIFEST:
                raise Bad(f"it is larger than {MAX_MANIFEST} bytes")
            manifest = json.loads(data)
            check_manifest(manifest, backup_id)
        except (ValueError, Bad) as exc:
            raise OffsiteError(f"the MANIFEST.json of backup {backup_id} at {dest.where(backup_id)} "
                               "fails its check", str(exc), "do not restore from it") from None
        expected = _manifest_expectation(Backup(Path(backup_id), manifest))
        problems, method = _survey(be, backup_id, expected)
    if problems:
        raise OffsiteError(f"the copy of backup {backup_id} at {dest.where(backup_id)} is damaged",
                           _damage(problems, method), "push it again from a good local backup "
                           "(a copy that does not verify is replaced), or do not restore from it")
    return (f"backup {backup_id} at {dest.where(backup_id)}: {len(expected)} files match its "
            f"manifest (sha256: {method})")


def _not_there(dest: Destination, backup_id: str) -> OffsiteError:
    listing = (f"`rclone lsf {_rclone_path(dest)}`" if dest.kind == "rclone" else
               f"`ssh {dest.ssh_target.rsplit(':', 1)[0] if dest.port else dest.ssh_target}"
               f"{f' -p {dest.port}' if dest.port else ''} ls {shlex.quote(dest.path)}`")
    return OffsiteError(f"backup {backup_id} is not at {dest.spec}",
                        f"{dest.where(backup_id + '/' + MANIFEST)} does not exist (never copied "
                        "there, or the copy is incomplete)",
                        f"list the backups there with {listing}")


def fetch(dest: Destination, backup_id: str, local_backups_dir: Path,
          connect: Connector | None = None, *, expect_manifest_sha256: str | None = None) -> Path:
    """Bring ``<dest>/<backup_id>/`` back to ``local_backups_dir/<backup_id>`` (for rollback,
    when the local backup is missing or damaged) and return that path. The copy is downloaded
    to a temporary directory beside it, checked and re-hashed against its manifest (and, given
    ``expect_manifest_sha256``, its manifest must be the one pushed), and renamed into place only
    then; a refused copy leaves nothing behind. A local backup that verifies is kept as it is
    (nothing is fetched); a damaged one is moved aside to ``<id>.damaged-<UTC time>``, never
    deleted. Raises :class:`OffsiteError`."""
    err = OffsiteError
    _check_id(backup_id, err)
    final = local_backups_dir / backup_id
    if final.is_dir() and not final.is_symlink():
        with contextlib.suppress(OffsiteError):
            _read_backup(final, backup_id, err, "here")
            return final
    ensure_backups_dir(local_backups_dir)
    for old in local_backups_dir.glob(f".{backup_id}.fetch-*"):  # left by a run killed half-way
        shutil.rmtree(old, ignore_errors=True)
    staging_parent = local_backups_dir / f".{backup_id}.fetch-{secrets.token_hex(4)}"
    staging = staging_parent / backup_id
    try:
        staging_parent.mkdir(mode=0o700)
        with _backend(dest, connect, err, f"fetch backup {backup_id} from") as be:
            if not be.exists(f"{backup_id}/{MANIFEST}"):
                raise _not_there(dest, backup_id)
            try:
                be.download(backup_id, staging)
            except OffsiteError as exc:
                raise err(f"the copy of backup {backup_id} at {dest.spec} could not be fetched; it "
                          "was not used", f"{exc.what}: {exc.why}" if exc.why else exc.what,
                          f"nothing was written to {local_backups_dir}; restore from another copy, "
                          "or by hand") from None
        faults.point("offsite:fetched")
        _fsync_tree(staging)
        where = f"fetched from {dest.where(backup_id)}"
        try:
            _read_backup(staging, backup_id, err, where)
            if expect_manifest_sha256 and manifest_sha256(staging) != expect_manifest_sha256:
                raise err(f"backup {backup_id} {where} is not the one that was pushed",
                          "its MANIFEST.json has another sha256 than the one recorded")
        except OffsiteError as exc:
            raise err(f"the copy of backup {backup_id} at {dest.spec} fails its check; it was not "
                      "used", f"{exc.what}: {exc.why}" if exc.why else exc.what,
                      f"nothing was written to {local_backups_dir}; restore from another copy, "
                      "or by hand") from None
        if final.exists() or final.is_symlink():
            stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%SZ")
            os.replace(final, local_backups_dir / f"{backup_id}.damaged-{stamp}")
        os.replace(staging, final)
        fsync_dir(local_backups_dir)
    finally:
        shutil.rmtree(staging_parent, ignore_errors=True)
    return final


def _fsync_tree(root: Path) -> None:
    """Make a fetched copy durable before it is renamed into place."""
    for d, _dirs, names in os.walk(root):
        for n in names:
            p = Path(d) / n
            if p.is_file() and not p.is_symlink():
                fd = os.open(p, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                try:
                    fsync(fd)
                finally:
                    os.close(fd)
        fsync_dir(Path(d))


def remote_listing(dest: Destination, connect: Connector | None = None) -> list[str]:
    """The ids of the complete backups at the destination (a directory named by a backup id,
    holding a MANIFEST.json), sorted; temporary and incomplete copies are left out."""
    with _backend(dest, connect, OffsiteError, "list the backups at") as be:
        return sorted(be.ids())
