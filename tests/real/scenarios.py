"""Real-install scenarios for the upgrader, driven through its CLI only.

``prepare`` makes a template project per scenario (the era's installer, a shared cached venv, the
tiny model, a first server start as the IDE would make it, everything committed to the project's
git so the upgrade's changes show in ``git status``); ``run`` copies a template and runs
``python3 -m invoke -r <upgrader> upgrade --source <checkout> --project <copy> --yes`` (or
``--dry-run``, or ``rollback``) with the model variables in its environment, then records the exit
code, the output, the files changed (project git), the index state and a search probe after it.

CLI (from ``tests/``)::

    python3 -m real.scenarios prepare NAME         # NAME in SCENARIOS
    python3 -m real.scenarios run NAME [--dry-run] [--rollback] [--extra "--deps skip"]
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

from . import harness as h
from . import venvs

WORK = Path(os.environ.get("PRAXIS_REAL_WORK", "/tmp/real-work"))
BUNDLE = Path(os.environ.get("PRAXIS_REAL_BUNDLE", "/work/shared/data/praxis-os-history.bundle"))
UPGRADER = Path(os.environ.get("PRAXIS_REAL_UPGRADER", str(Path(__file__).resolve().parents[2])))
HF_HOME = WORK / "hf"

#: name -> (installed commit, fix: mkdir the missing workflows/ so the old server starts,
#: manual .agent-os -> .praxis-os migration, note)
SCENARIOS: dict[str, tuple[str, bool, bool, str]] = {
    "925b10d": ("925b10d", False, False, "untouched install-script install at 925b10d, first start done"),
    "d07d0d6-agent-os": (
        "d07d0d6",
        False,
        False,
        "early-era guide install (.agent-os) as the guide leaves it",
    ),
    "d07d0d6-migrated": (
        "d07d0d6",
        True,
        True,
        "early-era install; workflows/ made so the server starts; first "
        "start done; then `mv .agent-os .praxis-os` and mcp.json/.gitignore "
        "paths fixed (the manual migration upstream 925b10d asks for)",
    ),
    "ced34ea-agent-os": ("ced34ea", False, False, "first commit, .agent-os, as the guide leaves it"),
    "ced34ea-migrated": (
        "ced34ea",
        True,
        True,
        "first commit; workflows/ made; first start done; migrated to .praxis-os by hand",
    ),
}


def source_checkout() -> Path:
    """The upgrade source: a clean clone of the bundle at its HEAD (e8b70c7)."""
    return h.clone_source(BUNDLE, WORK / "src")


def model_env() -> dict[str, str]:
    """HF_HOME with the tiny model + offline flags."""
    return h.tiny_model(HF_HOME)


def migrate_agent_os(project: Path) -> None:
    """The manual migration of upstream 925b10d: rename the install dir and fix the IDE config paths."""
    os.rename(project / ".agent-os", project / ".praxis-os")
    mcp = project / ".cursor" / "mcp.json"
    if mcp.exists():
        mcp.write_text(mcp.read_text().replace(".agent-os", ".praxis-os"))
    gi = project / ".gitignore"
    if gi.exists():
        gi.write_text(gi.read_text().replace(".agent-os", ".praxis-os"))


def prepare(name: str) -> dict[str, Any]:
    """Build the template project ``WORK/tpl/<name>``; return what was done and measured."""
    commit, fix, migrate, note = SCENARIOS[name]
    repo = source_checkout()
    sha = h.resolve_commit(repo, commit)
    req = h.requirements_file(repo, commit, WORK / f"req-{commit}.txt")
    venv_build = venvs.server_venv_build(req)
    menv = model_env()
    tpl = WORK / "tpl" / name
    if tpl.exists():
        shutil.rmtree(tpl)
    h.new_project(tpl)
    rec = h.make_install_detailed(repo, sha, tpl, venv=venv_build.path)
    out: dict[str, Any] = {
        "scenario": name,
        "note": note,
        "install": rec.to_json(),
        "venv": {
            "path": str(venv_build.path),
            "cached": venv_build.cached,
            "seconds": round(venv_build.seconds, 2),
        },
    }
    env = h.server_env(tpl, menv)
    if rec.era.index_command and rec.era.method == "guide":
        # the guide's own build step, verbatim
        b = h.build_index(tpl, env, argv=list(rec.era.index_command))
        out["guide_index_command"] = {
            "argv": b.argv,
            "rc": b.returncode,
            "seconds": b.seconds,
            "tail": b.tail,
        }
    if fix:
        (h.install_dir_of(tpl) / "workflows").mkdir(exist_ok=True)
        out["fixed"] = (
            "mkdir workflows/ (the old server's config validator requires it; the early guide makes none)"
        )
    first = h.probe(tpl, env, stderr_path=WORK / "logs" / f"tpl-{name}-first.stderr")
    out["first_start"] = _probe_summary(first)
    if not first.ok and fix:
        # early servers build a missing index, then crash on result['chunks_indexed'] (the builder
        # returns 'chunks'); the second start finds the index and runs
        second = h.probe(tpl, env, stderr_path=WORK / "logs" / f"tpl-{name}-second.stderr")
        out["second_start"] = _probe_summary(second)
    if migrate:
        migrate_agent_os(tpl)
        out["migrated"] = True
    (tpl / ".praxis-real.json").write_text(json.dumps(out, indent=1, default=str))
    h.git_in(tpl, "add", "-A")
    h.git_in(tpl, "commit", "-qm", f"prAxIs install at {commit}")
    out["index"] = h.index_info(h.install_dir_of(tpl))
    return out


def _probe_summary(p: h.ProbeResult) -> dict[str, Any]:
    return {
        "ok": p.ok,
        "error": p.error,
        "timings": p.timings,
        "tools": p.tools,
        "retrieval": p.retrieval,
        "log_mode": p.log_mode,
        "stop": p.stop,
        "stderr": p.stderr_path,
    }


def run(
    name: str,
    *,
    dry_run: bool = False,
    rollback: bool = False,
    extra: str = "",
    tag: Optional[str] = None,
    probe_after: bool = True,
) -> dict[str, Any]:
    """Copy the template and run the upgrader on the copy; return exit code, output and effects."""
    tpl = WORK / "tpl" / name
    if not tpl.exists():
        raise FileNotFoundError(f"prepare {name} first")
    tag = tag or name + ("-dry" if dry_run else "")
    proj = WORK / "runs" / tag
    if proj.exists():
        shutil.rmtree(proj)
    proj.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(tpl), str(proj)], check=True)
    src = source_checkout()
    env = dict(os.environ)
    env.update(model_env())
    cmd = (
        [
            sys.executable,
            "-m",
            "invoke",
            "-r",
            str(UPGRADER),
            "upgrade",
            "--source",
            str(src),
            "--project",
            str(proj),
            "--yes",
        ]
        + (["--dry-run"] if dry_run else [])
        + shlex.split(extra)
    )
    t = time.monotonic()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = round(time.monotonic() - t, 2)
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / f"upgrade-{tag}.out").write_text(res.stdout + "\n--- stderr ---\n" + res.stderr)
    out: dict[str, Any] = {
        "scenario": name,
        "cmd": " ".join(cmd),
        "rc": res.returncode,
        "seconds": seconds,
        "stdout_tail": res.stdout[-3000:],
        "stderr_tail": res.stderr[-3000:],
    }
    out["git_status"] = h.git_in(proj, "status", "--porcelain", "--untracked-files=all").splitlines()
    try:
        install = h.install_dir_of(proj)
        out["index"] = h.index_info(install)
    except FileNotFoundError as e:
        out["index"] = str(e)
    if probe_after and not dry_run and (proj / ".praxis-os").is_dir():
        p = h.probe(proj, h.server_env(proj, model_env()), stderr_path=logs / f"after-{tag}.stderr")
        out["probe_after"] = _probe_summary(p)
    if rollback:
        t = time.monotonic()
        rb = subprocess.run(
            [sys.executable, "-m", "invoke", "-r", str(UPGRADER), "rollback", "--project", str(proj)],
            env=env,
            capture_output=True,
            text=True,
        )
        out["rollback"] = {
            "rc": rb.returncode,
            "seconds": round(time.monotonic() - t, 2),
            "tail": (rb.stdout + rb.stderr)[-2000:],
            "git_status": h.git_in(proj, "status", "--porcelain", "--untracked-files=all").splitlines(),
        }
    (logs / f"upgrade-{tag}.json").write_text(json.dumps(out, indent=1, default=str))
    return out


def main(argv: Optional[list[str]] = None) -> int:
    """CLI entry point (see the module docstring)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python3 -m real.scenarios")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("name", choices=sorted(SCENARIOS))
    r = sub.add_parser("run")
    r.add_argument("name", choices=sorted(SCENARIOS))
    r.add_argument("--dry-run", action="store_true")
    r.add_argument("--rollback", action="store_true")
    r.add_argument("--extra", default="")
    r.add_argument("--tag")
    r.add_argument("--no-probe", action="store_true")
    ns = ap.parse_args(argv)
    if ns.cmd == "prepare":
        out = prepare(ns.name)
    else:
        out = run(
            ns.name,
            dry_run=ns.dry_run,
            rollback=ns.rollback,
            extra=ns.extra,
            tag=ns.tag,
            probe_after=not ns.no_probe,
        )
    print(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
