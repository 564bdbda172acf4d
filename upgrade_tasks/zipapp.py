"""Build the self-contained zipapp the controller uploads to each host.

It holds exactly the modules of this package that the host engine
(:func:`upgrade_tasks.remote_main.main`) imports, found by following the package's
own imports from ``remote_main`` (:func:`host_modules`), and the pure-Python
``filelock`` (used on Python >= 3.11; older hosts fall back to ``flock``
directly). Hosts need python3 >= 3.9 and sshd only.
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import py_compile
import tempfile
import zipfile
from pathlib import Path

MAIN = (
    "import sys\n"
    "if sys.version_info < (3, 9):\n"
    "    sys.stderr.write('praxis-upgrade needs python3 >= 3.9 on this host, found %s\\n' "
    "% sys.version.split()[0])\n"
    "    sys.exit(2)\n"
    "from upgrade_tasks.remote_main import main\n"
    "code = main()\n"
    "sys.stdout.flush()\n"
    "sys.stderr.flush()\n"
    "import os\n"
    "os._exit(code)  # every file is closed and every thread done: skip the interpreter's teardown\n"
)
ENTRY = "remote_main"


def _imports_of(path: Path) -> set[str]:
    """Modules of this package that ``path`` imports (``from . import x``, ``from .x import``,
    wherever the import statement stands)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and \
                node.module.startswith("upgrade_tasks."):
            out.add(node.module.split(".")[1])
    return out


def host_modules(package: Path) -> list[str]:
    """The package's modules the host engine needs: ``__init__``, ``remote_main`` and every
    module they import, transitively. Whatever only the controller or the tests use (the
    Invoke tasks, the fleet, the samples) is not reached, so it is not shipped."""
    seen = {"__init__"}
    todo = [ENTRY]
    while todo:
        name = todo.pop()
        if name in seen or not (package / f"{name}.py").is_file():
            continue
        seen.add(name)
        todo.extend(_imports_of(package / f"{name}.py"))
    return sorted(seen)


def _package_files() -> list[tuple[str, Path]]:
    here = Path(__file__).resolve().parent
    out = [(f"upgrade_tasks/{m}.py", here / f"{m}.py") for m in host_modules(here)]
    try:
        import filelock

        fl = Path(filelock.__file__).resolve().parent
        for p in sorted(fl.rglob("*.py")):
            out.append((f"filelock/{p.relative_to(fl).as_posix()}", p))
    except ImportError:  # pragma: no cover
        pass
    return out


def _compile(path: Path) -> bytes | None:
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "x.pyc"
            py_compile.compile(str(path), cfile=str(out), doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            return out.read_bytes()
    except py_compile.PyCompileError:
        return None


def build_zipapp(out_dir: Path) -> Path:
    """Write ``praxis-upgrade-<hash>.pyz`` (content-addressed, so hosts can reuse it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, path in _package_files():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            # a ZipInfo is stored uncompressed unless told: deflated, the archive is ~4x smaller
            # (2.0 MB -> ~0.5 MB to upload to every host; zlib costs the host ~ms on import)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
            pyc = _compile(path)
            if pyc is not None:
                # unchecked-hash pyc: used as is by a host with this Python version (no compile
                # at every start); any other version has a different magic and reads the .py
                info = zipfile.ZipInfo(name + "c", date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, pyc)
        info = zipfile.ZipInfo("__main__.py", date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        zf.writestr(info, MAIN)
    data = buf.getvalue()
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / f"praxis-upgrade-{hashlib.sha256(data).hexdigest()[:12]}.pyz"
    if not dest.exists():
        tmp = dest.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
    return dest
