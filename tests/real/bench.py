"""Measurements behind FINDINGS.md, each a CLI sub-command printing JSON (run from ``tests/``).

    python3 -m real.bench venv                 # uv venv build: cold/warm uv cache, +-bytecode, cached
    python3 -m real.bench startup [-n 3]       # spawn -> initialize -> tools/list, compiled vs not
    python3 -m real.bench index [-n 3]         # with/without index, empty dir, rebuild flag, CLI build
    python3 -m real.bench dual                 # dual transport: state file, port, which signal stops it
    python3 -m real.bench buildcli COMMIT      # the guide's verbatim index command vs the script's flags

Every run installs from the history bundle into ``/tmp/real-bench/...`` with the harness, so the
numbers can be reproduced; nothing outside ``/tmp/real-*`` and ``~/.cache/praxis-real`` is written.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

from . import harness as h
from . import venvs

WORK = Path(os.environ.get("PRAXIS_REAL_BENCH", "/tmp/real-bench"))
BUNDLE = Path(os.environ.get("PRAXIS_REAL_BUNDLE", "/work/shared/data/praxis-os-history.bundle"))


def _repo() -> Path:
    return h.clone_source(BUNDLE, WORK / "src")


def _req(repo: Path, commit: str) -> Path:
    return h.requirements_file(repo, commit, WORK / f"req-{h.resolve_commit(repo, commit)[:7]}.txt")


def _model() -> dict[str, str]:
    return h.tiny_model(WORK / "hf")


def _fresh_install(name: str, commit: str, venv: Path) -> Path:
    proj = WORK / "p" / name
    if proj.exists():
        shutil.rmtree(proj)
    h.new_project(proj, git=False)
    h.make_install(_repo(), commit, proj, venv=venv)
    return proj


def _swap_venv(install: Path, venv: Path) -> None:
    """Point ``install/venv`` at another shared venv (replacing the small pth venv or a link)."""
    v = install / "venv"
    if v.is_symlink() or v.is_file():
        v.unlink()
    elif v.is_dir():
        shutil.rmtree(v)
    h.attach_venv(install, venv)


def _med(xs: list[float]) -> Optional[float]:
    return round(statistics.median(xs), 2) if xs else None


def bench_venv() -> dict[str, Any]:
    """Four builds in a throw-away venv cache: cold uv cache without/with bytecode, warm uv cache
    without/with bytecode; then the cached lookup (median of 5)."""
    req = _req(_repo(), "HEAD")
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="real-bench-venv-", dir="/tmp") as tmp:
        t = Path(tmp)
        for label, compile_bc, uvc, root in (
            ("cold uv cache, no bytecode", False, t / "uv1", t / "r1"),
            ("cold uv cache, --compile-bytecode", True, t / "uv2", t / "r2"),
            ("warm uv cache, no bytecode", False, t / "uv2", t / "r3"),
            ("warm uv cache, --compile-bytecode", True, t / "uv2", t / "r4"),
        ):
            b = venvs.server_venv_build(req, compile_bytecode=compile_bc, uv_cache_dir=uvc, cache_root=root)
            out[label] = round(b.seconds, 2)
        cached = []
        for _ in range(5):
            t0 = time.monotonic()
            venvs.server_venv_build(req, compile_bytecode=True, uv_cache_dir=t / "uv2", cache_root=t / "r4")
            cached.append(time.monotonic() - t0)
        out["cached lookup (median of 5)"] = round(statistics.median(cached), 4)
        du = subprocess.run(
            ["du", "-sm", str(t / "r4" / "venvs")], capture_output=True, text=True
        ).stdout.split()
        out["venv MB"] = int(du[0]) if du else None
        out["files"] = sum(len(fs) for _, _, fs in os.walk(t / "r4" / "venvs"))
    return out


def _starts(proj: Path, env: dict[str, str], n: int, tag: str) -> dict[str, Any]:
    inits, lists, errs = [], [], []
    retr = []
    for i in range(n):
        p = h.probe(proj, env, stderr_path=WORK / "logs" / f"{tag}-{i}.stderr")
        if p.ok:
            inits.append(p.timings["initialize"])
            lists.append(p.timings["tools/list"])
            retr.append(p.retrieval)
        else:
            errs.append(p.error)
    return {
        "n": n,
        "initialize": [round(x, 2) for x in inits],
        "tools/list": [round(x, 2) for x in lists],
        "median tools/list": _med(lists),
        "retrieval": retr,
        "errors": errs,
    }


def bench_startup(n: int) -> dict[str, Any]:
    """spawn -> tools/list at HEAD with an index, for a venv with and without precompiled bytecode,
    with bytecode writes off (this machine's PYTHONDONTWRITEBYTECODE=1, and the upgrader's probe)
    and on (a fresh uncompiled venv: the first start writes __pycache__, later ones reuse it)."""
    repo = _repo()
    req = _req(repo, "HEAD")
    comp = venvs.server_venv_build(req, compile_bytecode=True).path
    out: dict[str, Any] = {}
    proj = _fresh_install("startup", "HEAD", comp)
    env = h.server_env(proj, _model(), bytecode="nowrite")
    b = h.build_index(proj, env, log=WORK / "logs" / "startup-index.log")
    out["index build (CLI)"] = b.seconds
    out["compiled venv, no bytecode writes"] = _starts(proj, env, n, "startup-comp")
    with tempfile.TemporaryDirectory(prefix="real-bench-nc-", dir="/tmp") as tmp:
        nc = venvs.server_venv_build(req, compile_bytecode=False, cache_root=Path(tmp)).path
        _swap_venv(proj / ".praxis-os", nc)
        out["uncompiled venv, no bytecode writes"] = _starts(proj, env, n, "startup-nc")
        envw = h.server_env(proj, _model(), bytecode="write")
        out["uncompiled venv, bytecode writes on (1st start compiles)"] = _starts(
            proj, envw, n, "startup-ncw"
        )
    _swap_venv(proj / ".praxis-os", comp)
    return out


def bench_index(n: int) -> dict[str, Any]:
    """Start-up with the index missing / empty / present / present + .rebuild_index, and the CLI build."""
    repo = _repo()
    comp = venvs.server_venv_build(_req(repo, "HEAD")).path
    proj = _fresh_install("index", "HEAD", comp)
    inst = proj / ".praxis-os"
    env = h.server_env(proj, _model())
    idx = inst / ".cache" / "vector_index"
    (inst / "standards" / ".rebuild_index").unlink()
    out: dict[str, Any] = {}
    builds = []
    for i in range(n):
        shutil.rmtree(idx, ignore_errors=True)
        b = h.build_index(proj, env, log=WORK / "logs" / f"index-cli-{i}.log")
        builds.append(b.seconds)
        out.setdefault("cli argv", b.argv)
        out.setdefault("cli rc", b.returncode)
    out["CLI build seconds"] = builds
    out["index info after CLI build"] = {
        k: v
        for k, v in h.index_info(inst).items()
        if k in ("lance_tables", "tables", "metadata", "rebuild_reasons")
    }
    out["present"] = _starts(proj, env, n, "index-present")
    fresh = idx.with_name("vector_index.keep")
    shutil.rmtree(fresh, ignore_errors=True)
    shutil.copytree(idx, fresh)
    (inst / "standards" / ".rebuild_index").touch()
    out["present + .rebuild_index"] = _starts(proj, env, 1, "index-flag")
    out["present + .rebuild_index"]["flag left"] = (inst / "standards" / ".rebuild_index").exists()
    shutil.rmtree(idx)
    idx.mkdir()
    out["empty dir"] = _starts(proj, env, n, "index-empty")
    shutil.rmtree(idx)
    out["missing dir (server builds before answering)"] = _starts(proj, env, 2, "index-missing")
    shutil.rmtree(idx)
    shutil.copytree(fresh, idx)
    # an index of the agent_os_standards era under the HEAD server
    os.rename(idx / "praxis_os_standards.lance", idx / "agent_os_standards.lance")
    out["old table name (agent_os_standards)"] = _starts(proj, env, 1, "index-oldname")
    out["old table name (agent_os_standards)"]["rebuild_reasons"] = h.index_info(inst)["rebuild_reasons"]
    os.rename(idx / "agent_os_standards.lance", idx / "praxis_os_standards.lance")
    # a standard changed after the build
    f = next((inst / "standards" / "universal").rglob("*.md"))
    f.write_text(f.read_text() + "\nedited\n")
    out["standard edited after build"] = {"rebuild_reasons": h.index_info(inst)["rebuild_reasons"]}
    # killed half-way
    shutil.rmtree(idx)
    logp = WORK / "logs" / "index-killed.log"
    with open(logp, "wb") as fh:
        proc = subprocess.Popen(
            [
                str(inst / "venv" / "bin" / "python"),
                str(inst / "scripts" / "build_rag_index.py"),
                "--index-path",
                str(idx),
                "--standards-path",
                str(inst / "standards"),
            ],
            cwd=proj,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
        time.sleep(12)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    out["CLI build SIGKILLed after 12 s"] = {
        "entries": sorted(p.name for p in idx.iterdir()) if idx.exists() else None,
        "rebuild_reasons": h.index_info(inst)["rebuild_reasons"],
    }
    shutil.rmtree(idx, ignore_errors=True)
    shutil.copytree(fresh, idx)
    return out


def bench_dual() -> dict[str, Any]:
    """A dual server: state file contents, HTTP port answering, and which signal stops it."""
    repo = _repo()
    comp = venvs.server_venv_build(_req(repo, "HEAD")).path
    proj = _fresh_install("dual", "HEAD", comp)
    inst = proj / ".praxis-os"
    env = h.server_env(proj, _model())
    (inst / "standards" / ".rebuild_index").unlink()
    h.build_index(proj, env, log=WORK / "logs" / "dual-index.log")
    out: dict[str, Any] = {}
    for how in ("sigint", "sigterm", "eof"):
        s = h.start_server(proj, "dual", env, stderr_path=WORK / "logs" / f"dual-{how}.stderr")
        s.initialize()
        s.list_tools()
        state = json.loads((inst / ".mcp_server_state.json").read_text())
        http_ok = None
        if state.get("url"):
            try:
                req = urllib.request.Request(
                    state["url"],
                    data=json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": 1,
                            "method": "initialize",
                            "params": {
                                "protocolVersion": "2025-06-18",
                                "capabilities": {},
                                "clientInfo": {"name": "bench", "version": "1"},
                            },
                        }
                    ).encode(),
                    headers={
                        "Content-Type": "application/json",
                        "Accept": "application/json, text/event-stream",
                    },
                )
                with urllib.request.urlopen(req, timeout=10) as r:
                    http_ok = r.status
            except Exception as e:  # noqa: BLE001 - reported, not raised
                http_ok = f"{type(e).__name__}: {e}"
        stop = s.stop(how=how, timeout=3.0)
        out[how] = {
            "state": {k: state.get(k) for k in ("transport", "port", "url", "pid")},
            "http initialize": http_ok,
            "stop": stop,
            "state file left": (inst / ".mcp_server_state.json").exists(),
        }
        (inst / ".mcp_server_state.json").unlink(missing_ok=True)
    return out


def bench_buildcli(commit: str) -> dict[str, Any]:
    """At ``commit``: the flags the installed build_rag_index.py declares, and the guide's verbatim
    command (rc, time) vs the harness's accepted-flags command."""
    repo = _repo()
    sha = h.resolve_commit(repo, commit)
    comp = venvs.server_venv_build(_req(repo, sha)).path
    proj = _fresh_install(f"buildcli-{sha[:7]}", sha, comp)
    inst = h.install_dir_of(proj)
    flag = inst / "standards" / ".rebuild_index"
    flag.unlink(missing_ok=True)
    env = h.server_env(proj, _model())
    era = h.installer_era(repo, sha)
    out: dict[str, Any] = {"commit": sha[:7], "upstream": (era.upstream or "")[:7]}
    script = inst / "scripts" / "build_rag_index.py"
    out["flags"] = h.script_flags(script) if script.exists() else None
    if era.index_command:
        b = h.build_index(
            proj, env, argv=list(era.index_command), log=WORK / "logs" / f"buildcli-{sha[:7]}-doc.log"
        )
        out["guide command"] = {
            "argv": " ".join(b.argv),
            "rc": b.returncode,
            "seconds": b.seconds,
            "tail": b.tail[-300:],
        }
    shutil.rmtree(inst / ".cache" / "vector_index", ignore_errors=True)
    b = h.build_index(proj, env, log=WORK / "logs" / f"buildcli-{sha[:7]}.log")
    out["harness command"] = {
        "argv": " ".join(b.argv),
        "rc": b.returncode,
        "seconds": b.seconds,
        "dropped": b.dropped_flags,
    }
    out["index"] = {k: v for k, v in h.index_info(inst).items() if k in ("lance_tables", "metadata")}
    return out


def main(argv: Optional[list[str]] = None) -> int:
    """CLI entry point (see the module docstring)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python3 -m real.bench")
    ap.add_argument("what", choices=["venv", "startup", "index", "dual", "buildcli"])
    ap.add_argument("commit", nargs="?", default="HEAD")
    ap.add_argument("-n", type=int, default=3)
    ns = ap.parse_args(argv)
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    fn: dict[str, Callable[[], dict[str, Any]]] = {
        "venv": bench_venv,
        "startup": lambda: bench_startup(ns.n),
        "index": lambda: bench_index(ns.n),
        "dual": bench_dual,
        "buildcli": lambda: bench_buildcli(ns.commit),
    }
    load_before = os.getloadavg()
    t0 = time.monotonic()
    result = fn[ns.what]()
    result["_meta"] = {
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.monotonic() - t0, 1),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
