"""Build (and cache) the real prAxIs OS server's venv with uv, offline-friendly.

The venv is keyed by a hash of the *normalised* requirements (comments, blank lines, order, case
and spacing do not count) plus the torch pin, the Python version and whether bytecode was
compiled, and lives under ``~/.cache/praxis-real/venvs/<hash>``. It is built with
``uv venv --relocatable`` in a temporary directory beside its final path and renamed into place,
so a killed build never leaves a half venv under the final name; an ``flock`` on
``<hash>.lock`` serialises concurrent builders.

torch comes from the machine's local wheel directory (``/opt/wheels``, pip's configured
``find-links``) pinned to its CPU build, in the same resolve as the requirements, so nothing
pulls the multi-GB CUDA build from the index.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

CACHE_ROOT = Path(os.environ.get("PRAXIS_REAL_CACHE", str(Path.home() / ".cache" / "praxis-real")))
WHEEL_DIR = Path(os.environ.get("PRAXIS_REAL_WHEELS", "/opt/wheels"))
TORCH_PIN = os.environ.get("PRAXIS_REAL_TORCH", "torch==2.13.0+cpu")
TOOLS_VENV = CACHE_ROOT / "tools"


@dataclass
class VenvBuild:
    """What one :func:`server_venv` call did: the venv, whether it was cached, and its timings."""

    path: Path
    cached: bool
    seconds: float
    compile_bytecode: bool
    uv_cache: str
    key: str


def normalise_requirements(text: str) -> list[str]:
    """Return the requirement lines of ``text`` without comments/blanks, lower-cased, sorted.

    Spacing inside a line is removed (``lancedb ~= 0.25.0`` == ``lancedb~=0.25.0``).
    """
    out = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        out.append(re.sub(r"\s+", "", line).lower())
    return sorted(set(out))


def venv_key(requirements_txt: Path, *, compile_bytecode: bool) -> str:
    """The cache key: sha256 over normalised requirements, torch pin, Python version, bytecode flag."""
    payload = {
        "requirements": normalise_requirements(requirements_txt.read_text(encoding="utf-8")),
        "torch": TORCH_PIN,
        "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
        "compile_bytecode": compile_bytecode,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def find_uv() -> str:
    """Path of a ``uv`` binary: ``$PRAXIS_REAL_UV``, PATH, or our private tools venv (installed on demand).

    uv is kept in a private venv (not on PATH) on purpose: the upgrader switches to uv when it
    finds one on PATH, and the experiments must not change its behaviour by accident.
    """
    env = os.environ.get("PRAXIS_REAL_UV")
    if env:
        return env
    on_path = shutil.which("uv")
    if on_path:
        return on_path
    uv = TOOLS_VENV / "bin" / "uv"
    if not uv.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS_VENV)], check=True)
        subprocess.run([str(TOOLS_VENV / "bin" / "pip"), "install", "-q", "uv"], check=True)
    return str(uv)


def server_venv_build(
    requirements_txt: Path,
    *,
    compile_bytecode: bool = True,
    uv_cache_dir: Optional[Path] = None,
    python: Optional[str] = None,
    log: Optional[Path] = None,
    cache_root: Optional[Path] = None,
) -> VenvBuild:
    """Build or reuse the server venv for ``requirements_txt``; see :func:`server_venv`.

    ``uv_cache_dir`` (default: uv's own cache) lets a caller measure a cold uv cache; ``cache_root``
    (default ``~/.cache/praxis-real``) a cold venv cache.
    Build details go to ``<venv>.build.json`` beside the venv.
    """
    key = venv_key(requirements_txt, compile_bytecode=compile_bytecode)
    root = (cache_root or CACHE_ROOT) / "venvs"
    root.mkdir(parents=True, exist_ok=True)
    final = root / key
    t0 = time.monotonic()
    with open(root / f"{key}.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (final / "bin" / "python").exists():
            return VenvBuild(
                final, True, time.monotonic() - t0, compile_bytecode, str(uv_cache_dir or "default"), key
            )
        tmp = root / f".{key}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        uv = find_uv()
        env = dict(os.environ)
        if uv_cache_dir is not None:
            env["UV_CACHE_DIR"] = str(uv_cache_dir)
        out = open(log, "a") if log else subprocess.DEVNULL  # noqa: SIM115
        try:
            subprocess.run(
                [uv, "venv", "--relocatable", "--python", python or sys.executable, str(tmp)],
                check=True,
                env=env,
                stdout=out,
                stderr=out,
            )
            cmd = [
                uv,
                "pip",
                "install",
                "--python",
                str(tmp / "bin" / "python"),
                "--find-links",
                str(WHEEL_DIR),
                TORCH_PIN,
                "-r",
                str(requirements_txt),
            ]
            if compile_bytecode:
                cmd.append("--compile-bytecode")
            subprocess.run(cmd, check=True, env=env, stdout=out, stderr=out)
        finally:
            if log:
                out.close()  # type: ignore[union-attr]
        seconds = time.monotonic() - t0
        info = VenvBuild(final, False, seconds, compile_bytecode, str(uv_cache_dir or "default"), key)
        os.rename(tmp, final)
        meta = asdict(info)
        meta["path"] = str(final)
        meta["requirements"] = normalise_requirements(requirements_txt.read_text(encoding="utf-8"))
        (root / f"{key}.build.json").write_text(json.dumps(meta, indent=1))
        return info


def server_venv(requirements_txt: Path, *, compile_bytecode: bool = True) -> Path:
    """Build the real server's venv with uv (torch CPU from the local wheel dir, then the
    requirements), cached under ``~/.cache/praxis-real/venvs/<hash>``; return its path."""
    return server_venv_build(requirements_txt, compile_bytecode=compile_bytecode).path


def main(argv: Optional[list[str]] = None) -> int:
    """CLI: ``python -m tests.real.venvs REQS [--no-compile] [--uv-cache DIR]`` prints the build as JSON."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("requirements", type=Path)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--uv-cache", type=Path)
    ap.add_argument("--log", type=Path)
    a = ap.parse_args(argv)
    b = server_venv_build(
        a.requirements, compile_bytecode=not a.no_compile, uv_cache_dir=a.uv_cache, log=a.log
    )
    d = asdict(b)
    d["path"] = str(b.path)
    print(json.dumps(d))
    return 0


if __name__ == "__main__":
    sys.exit(main())
