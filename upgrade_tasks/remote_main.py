"""The engine's command line on a remote host: ``python3 praxis-upgrade.pyz COMMAND ...``.

Needs only python3 >= 3.9 (no invoke, no git, no network). The controller uploads
the zipapp and a source snapshot, then runs ``run-detached upgrade ...`` so the
upgrade keeps going to a consistent end if the SSH connection drops, and follows
its log with ``tail``; rerunning finds a live run with ``attach-info`` and
reattaches. Exit codes are the same as the Invoke tasks'.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

from . import __version__, options
from .check import check
from .driver import run_upgrade
from .errors import EXIT_UPGRADE_AVAILABLE, UpgradeError, exit_status
from .options import Options
from .recovery import manual_rollback
from .server_process import pid_alive
from .status import status_json, status_text

#: The engine's commands (each takes the options declared for it in options.py).
COMMANDS = ("upgrade", "rollback", "status", "check")


def _run_engine(cmd: str, opts: Options, as_json: bool) -> int:
    try:
        if cmd == "upgrade":
            run_upgrade(opts)
        elif cmd == "rollback":
            print(manual_rollback(opts), flush=True)
        elif cmd == "check":
            res = check(opts)
            print(res.text(), flush=True)
            return EXIT_UPGRADE_AVAILABLE if res.upgrade_available else 0
        elif as_json:
            print(json.dumps(status_json(opts), sort_keys=True), flush=True)
        else:
            print(status_text(opts), flush=True)
    except BaseException as exc:  # noqa: B036 - every ending becomes an exit code here
        text, code = exit_status(exc, opts.debug)
        print(text, file=sys.stderr, flush=True)
        return code
    return 0


def _runs(run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def run_detached(run_dir: Path, args: list[str]) -> str:
    """Start ``args`` in a new session, detached from this SSH connection; return the run id.

    Forks (the modules are already loaded: no second interpreter start); the child becomes a
    session leader, logs to ``<id>.log`` and writes its exit code to ``<id>.rc``.
    """
    rid = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    d = _runs(run_dir)
    sys.stdout.flush()
    sys.stderr.flush()
    r, w = os.pipe()
    first = os.fork()
    if first == 0:  # double fork: the run is re-parented to init, outside the SSH session
        os.close(r)
        os.setsid()
        pid = os.fork()
        if pid != 0:
            os.write(w, str(pid).encode())
            os._exit(0)
        os.close(w)
        code = 1
        try:
            fd = os.open(d / f"{rid}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            code = main(args)
        finally:
            try:
                sys.stdout.flush()
                tmp = d / f"{rid}.rc.tmp"
                tmp.write_text(str(code))
                os.replace(tmp, d / f"{rid}.rc")
            finally:
                os._exit(code)
    os.close(w)
    pid = int(os.read(r, 32).decode() or "0")
    os.close(r)
    os.waitpid(first, 0)
    project = args[args.index("--project") + 1] if "--project" in args else ""
    info = {"id": rid, "pid": pid, "project": project, "command": args[0],
            "started": time.time()}
    tmp = d / f"{rid}.json.tmp"
    tmp.write_text(json.dumps(info))
    os.replace(tmp, d / f"{rid}.json")
    return rid


def attach_info(run_dir: Path, project: str) -> str:
    """The id of a live run for ``project`` (empty when none)."""
    if not run_dir.is_dir():
        return ""
    for info_path in sorted(run_dir.glob("*.json"), reverse=True):
        try:
            info = json.loads(info_path.read_text())
        except (OSError, ValueError):
            continue
        rid = str(info.get("id"))
        if info.get("project") == project and not (run_dir / f"{rid}.rc").exists() and \
                pid_alive(int(info.get("pid", 0))):
            return rid
    return ""


def tail(run_dir: Path, rid: str, timeout: float = 24 * 3600) -> int:
    """Print the run's log as it grows; return its exit code when it has finished."""
    log = run_dir / f"{rid}.log"
    rc_file = run_dir / f"{rid}.rc"
    info = json.loads((run_dir / f"{rid}.json").read_text())
    pos = 0
    deadline = time.monotonic() + timeout
    while True:
        done = rc_file.exists()
        try:
            with open(log, "rb") as fh:
                fh.seek(pos)
                chunk = fh.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
            pos += len(chunk)
        if done:
            return int(rc_file.read_text().strip() or "1")
        if not pid_alive(int(info["pid"])):
            time.sleep(0.2)
            if not rc_file.exists():
                print("the run on this host ended without an exit code (killed?); rerun to "
                      "resume or roll back", flush=True)
                return 1
        if time.monotonic() > deadline:
            return 1
        time.sleep(0.05)


def go(run_dir: Path, project: str, detach: bool, args: list[str]) -> int:
    """The controller's one command per host: attach to a live run or start one (detached
    from this connection), follow it, then print the status as JSON. The source is the
    uploaded snapshot zip, read in place (``--source`` in ``args``)."""
    if detach:
        rid = attach_info(run_dir, project)
        if rid:
            print(f"reattaching to the run in progress ({rid})", flush=True)
        else:
            rid = run_detached(run_dir, args)
        code = tail(run_dir, rid)
    else:
        code = main(args)
    if args and args[0] in ("upgrade", "rollback"):
        try:
            opts = options.resolve({"project": project}, {}, {})
            print("PRAXIS-STATUS " + json.dumps(status_json(opts), sort_keys=True), flush=True)
        except UpgradeError:
            pass
    return code


def main(argv: list[str] | None = None) -> int:
    """The host engine's command line: the three engine commands (with the flags derived from
    options.py) and the controller's helpers (run-detached, attach-info, tail, go, version)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="praxis-upgrade.pyz")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in COMMANDS:
        p = sub.add_parser(name)
        options.add_arguments(p, name)
        if name == "status":
            p.add_argument("--json", action="store_true")
    p = sub.add_parser("run-detached")
    p.add_argument("run_dir")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("attach-info")
    p.add_argument("run_dir")
    p.add_argument("--project", required=True)
    p = sub.add_parser("tail")
    p.add_argument("run_dir")
    p.add_argument("run_id")
    p = sub.add_parser("go")
    p.add_argument("run_dir")
    p.add_argument("--project", required=True)
    p.add_argument("--detach", action="store_true")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = sub.add_parser("version")
    ns = ap.parse_args(argv)
    if ns.cmd in COMMANDS:
        try:
            opts = options.from_namespace(ns).replace(yes=True, debug=bool(ns.debug))
        except UpgradeError as exc:
            text, code = exit_status(exc)
            print(text, file=sys.stderr)
            return code
        return _run_engine(ns.cmd, opts, bool(getattr(ns, "json", False)))
    if ns.cmd == "run-detached":
        args = [a for a in ns.args if a != "--"]
        print(run_detached(Path(ns.run_dir), args), flush=True)
        return 0
    if ns.cmd == "attach-info":
        print(attach_info(Path(ns.run_dir), ns.project), flush=True)
        return 0
    if ns.cmd == "tail":
        return tail(Path(ns.run_dir), ns.run_id)
    if ns.cmd == "go":
        return go(Path(ns.run_dir), ns.project, ns.detach, [a for a in ns.args if a != "--"])
    if ns.cmd == "version":
        print(json.dumps({"version": __version__, "python": list(sys.version_info[:3])}))
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
