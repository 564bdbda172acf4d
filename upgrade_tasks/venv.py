"""The install's Python environment: dependencies with an O(1), offline rollback.

``.praxis-os/venv`` becomes a symlink to ``.praxis-os/.venvs/<id>/``. When the
normalised requirements change (or ``--deps force``), a new environment is
built beside the old one *at its final path* (console scripts embed it), the
requirements are installed with its own interpreter (``uv pip --python`` when
``uv`` is on PATH, else ``<venv>/bin/python -m pip``), and the symlink is
switched with one atomic rename. Rollback is the same rename back: no network,
constant time whatever the venv's size.

The IDE's configured interpreter (``.praxis-os/venv/bin/python``) keeps
working: Python finds ``pyvenv.cfg`` through the link. A plain ``venv/``
directory is migrated the first time by renaming it to ``.venvs/`` and
linking it back; rollback undoes that too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import faults
from .errors import PhaseError
from .fsutil import atomic_symlink, discard_tree, fsync_dir, rmtree_durable
from .layout import Install

VENVS = ".venvs"

#: requirement name -> (post-install command after the venv python, what it downloads)
POST_INSTALL: dict[str, tuple[list[str], str]] = {
    "playwright": (["-m", "playwright", "install", "chromium"], "the Chromium browser"),
}
_DOWNLOAD_RE = re.compile(
    r"download|network|connect|resolve|getaddrinfo|ENOTFOUND|timed? ?out|unreachable|proxy",
    re.IGNORECASE)


@dataclass
class VenvState:
    """How ``.praxis-os/venv`` looks now: a ``dir``, a ``symlink`` (with target) or ``absent``."""

    kind: str
    target: str = ""

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "target": self.target}


def venv_state(install: Install) -> VenvState:
    v = install.venv
    if v.is_symlink():
        return VenvState("symlink", os.readlink(v))
    if v.is_dir():
        return VenvState("dir")
    return VenvState("absent")


def base_python(install: Install) -> str:
    """The interpreter the install's venv was made from (its ``pyvenv.cfg``)."""
    cfg = install.venv / "pyvenv.cfg"
    try:
        values = dict(
            (k.strip(), v.strip()) for k, _, v in
            (ln.partition("=") for ln in cfg.read_text().splitlines()) if v
        )
    except OSError:
        return sys.executable
    exe = values.get("executable") or values.get("base-executable")
    if exe and Path(exe).exists():
        return exe
    home = values.get("home")
    if home:
        for name in ("python3", "python"):
            if (Path(home) / name).exists():
                return str(Path(home) / name)
    return sys.executable


def link_venv(install: Install, target: str) -> None:
    """Point ``venv`` at ``target`` (relative to .praxis-os) with one atomic rename."""
    atomic_symlink(install.venv, target)


def migrate_dir(install: Install, moved_to: str) -> None:
    """First time: move a plain ``venv/`` to ``.venvs/<name>`` and link it back. Resumable."""
    dest = install.root / moved_to
    if install.venv.is_dir() and not install.venv.is_symlink():
        dest.parent.mkdir(exist_ok=True)
        os.replace(install.venv, dest)
        fsync_dir(install.root)
        faults.point("venv:between-migration-renames")
    if not install.venv.is_symlink() and dest.is_dir():
        link_venv(install, moved_to)


def normalise_requirements(text: str) -> list[str]:
    """Requirements as a sorted list: comments, blank lines, order and spacing do not count."""
    out = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"\s+", "", line)
        name = re.split(r"[<>=!~;\[@ ]", line, maxsplit=1)[0]
        out.append(name.lower().replace("_", "-") + line[len(name) :])
    return sorted(out)


def requirement_names(text: str) -> set[str]:
    return {re.split(r"[<>=!~;\[@ ]", r, maxsplit=1)[0] for r in normalise_requirements(text)}


@dataclass
class DepsResult:
    installer: str = ""
    venv: str = ""  # new target under .venvs/
    post_install: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _run_streamed(cmd: list[str], note: Callable[[str], None],
                  env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """Run ``cmd``, each output line to ``note`` (the progress display); the last 40 lines."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.rstrip()])[-40:]
        note(line.rstrip())
    return proc.wait(), tail


def uv_path() -> str | None:
    """uv, when it is on PATH (it installs dependencies instead of pip)."""
    return shutil.which("uv")


def explain_install_failure(installer: str, rc: int, tail: list[str]) -> PhaseError:
    """pip's and uv's failures as one line of cause and a hint."""
    text = "\n".join(tail)
    m = re.search(r"No matching distribution found for (\S+)", text) or re.search(
        r"Because (\S+) was not found", text) or re.search(
        r"No solution found when resolving dependencies", text)
    if m:
        what = m.group(1) if m.groups() else "a requirement"
        cause = f"{what} could not be resolved"
        hint = ("check the requirement's name and version; offline, pass --find-links DIR with a "
                "wheelhouse (and --offline)")
    elif _DOWNLOAD_RE.search(text):
        cause = "the package index could not be reached"
        hint = "check the network or proxy, or install offline: --find-links DIR --offline"
    elif "No module named pip" in text:
        cause = "the venv has no pip"
        hint = "install uv (pip install uv) or recreate the venv with pip"
    else:
        cause = next((ln for ln in reversed(tail) if "rror" in ln), tail[-1] if tail else "")
        hint = "see the output above; fix the requirement, then rerun `invoke upgrade`"
    return PhaseError(f"dependency install failed ({installer} exited {rc})", cause.strip(),
                      hint + " (the upgrade was rolled back)")


#: pip configuration keys -> the uv flag that means the same
_PIP_TO_UV = {"index-url": "--index-url", "extra-index-url": "--extra-index-url",
              "find-links": "--find-links", "constraint": "--constraint", "no-index": "--no-index"}


def uv_args_from_pip_config(python: str) -> list[str]:
    """The user's pip configuration (files and ``PIP_*`` variables, as ``pip config list``
    shows it) as uv flags, so both installers resolve the same way."""
    try:
        out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True,
                             text=True, timeout=30, env={**os.environ,
                                                         "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    except (OSError, subprocess.TimeoutExpired):
        return []
    args: list[str] = []
    for line in out.stdout.splitlines():
        key, sep, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        flag = _PIP_TO_UV.get(name)
        if not sep or flag is None:
            continue
        value = value.strip().strip("'\"")
        if flag == "--no-index":
            if value.lower() in ("1", "true", "yes", "on"):
                args.append(flag)
            continue
        for item in value.split():
            if (flag, item) not in zip(args[::2], args[1::2]):
                args += [flag, item]
    return args


def build_venv(install: Install, name: str, requirements: Path, *, find_links: str = "",
               offline: bool = False, note: Callable[[str], None] = lambda _l: None) -> DepsResult:
    """Create ``.venvs/<name>`` from the old venv's interpreter and install the requirements."""
    res = DepsResult(venv=f"{VENVS}/{name}")
    dest = install.root / VENVS / name
    if dest.exists():
        shutil.rmtree(dest)  # a half-built one from a killed run
    dest.parent.mkdir(exist_ok=True)
    uv = uv_path()
    base = base_python(install)
    mk = [base, "-m", "venv"] + (["--without-pip"] if uv else []) + [str(dest)]
    proc = subprocess.run(mk, capture_output=True, text=True)
    if proc.returncode != 0:
        raise PhaseError(f"could not create a new venv with {base}",
                         (proc.stderr or proc.stdout).strip()[-300:],
                         "check the interpreter named in .praxis-os/venv/pyvenv.cfg")
    py = dest / "bin" / "python"
    if uv:
        res.installer = "uv"
        # --compile-bytecode: pip compiles at install, uv does not; without it every start of
        # the real server (the validation probe included) compiles ~14,000 modules in memory,
        # ~19 s instead of ~9 s here. The pip configuration the user has (indexes, find-links,
        # constraints) is passed on: uv does not read pip's files, and without them it pulled
        # a 6 GB CUDA torch where pip took the local CPU wheel.
        cmd = [uv, "pip", "install", "--python", str(py), "--compile-bytecode",
               *uv_args_from_pip_config(base), "-r", str(requirements)]
        if find_links:
            cmd += ["--find-links", find_links]
        if offline:
            cmd += ["--offline", "--no-index"]
    else:
        res.installer = "pip"
        cmd = [str(py), "-m", "pip", "install", "--disable-pip-version-check", "-r",
               str(requirements)]
        if find_links:
            cmd += ["--find-links", find_links]
        if offline:
            cmd += ["--no-index"]
    rc, tail = _run_streamed(cmd, note)
    if rc != 0:
        raise explain_install_failure(res.installer, rc, tail)
    faults.point("venv:built")
    return res


def run_post_install(install: Install, venv_rel: str, requirements: Path,
                     res: DepsResult, note: Callable[[str], None] = lambda _l: None) -> None:
    """Post-install steps detected from requirement names (not comments)."""
    names = requirement_names(requirements.read_text(errors="replace"))
    py = install.root / venv_rel / "bin" / "python"
    for name, (args, what) in POST_INSTALL.items():
        if name not in names:
            continue
        cmd = [str(py), *args]
        shown = " ".join([str(install.venv / "bin" / "python"), *args])
        rc, tail = _run_streamed(cmd, note)
        if rc == 0:
            res.post_install.append({"command": shown, "status": "ok"})
            continue
        text = "\n".join(tail)
        if _DOWNLOAD_RE.search(text):
            res.post_install.append({"command": shown, "status": "warning"})
            res.warnings.append(f"post-install step could not download {what}; run it later: "
                                f"{shown}")
            continue
        raise PhaseError(f"post-install step failed: {shown} (exit {rc})",
                         next((ln for ln in reversed(tail) if ln.strip()), ""),
                         "fix it, or pass --post-install skip and run it by hand later")


def drop_unswitched(install: Install, name: str | None) -> None:
    """Remove the environment ``name`` a failed session was building, unless ``venv`` points
    at it (it frees space, and the rollback never needs it)."""
    if not name:
        return
    st = venv_state(install)
    if st.kind == "symlink" and st.target == f"{VENVS}/{name}":
        return
    rmtree_durable(install.root / VENVS / str(name))


def prune_venvs(install: Install, keep: set[str]) -> list[str]:
    """Delete environments under .venvs/ that neither the link nor a kept backup needs."""
    d = install.root / VENVS
    if not d.is_dir():
        return []
    st = venv_state(install)
    if st.kind == "symlink":
        keep = keep | {st.target}
    out = []
    for p in d.iterdir():
        rel = f"{VENVS}/{p.name}"
        if rel not in keep and p.is_dir():
            discard_tree(p, install.trash_dir)  # the command does not wait for ~48,000 unlinks
            out.append(rel)
    try:
        d.rmdir()  # only when empty: leaves no residue after a rollback
    except OSError:
        pass
    return out
