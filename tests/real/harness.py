"""Test/benchmark harness against the REAL upstream prAxIs OS (history bundle, real server, offline).

Public API (see FINDINGS.md for what was measured with it)::

    clone_source(spec, dest) -> Path                   # checkout from a path, the bundle, or a URL
    installer_era(repo, commit, method="auto") -> Era  # what the installer at that commit did
    make_install(repo, commit, project, *, venv, relative_pythonpath=False, method="auto",
                 venv_mode="pth") -> Path              # (make_install_detailed -> InstallRecord)
    attach_venv(install, venv, *, mode="pth") -> Path  # back <install>/venv by a shared venv
    server_venv(requirements_txt) -> Path              # uv-built, cached by requirements hash
    tiny_model(hf_home) -> dict[str, str]              # tiny deterministic all-MiniLM-L6-v2 stand-in
    server_env(project, model_env, *, relative_pythonpath=False, bytecode="inherit") -> dict
    start_server(project, transport="stdio", env=None, ...) -> StdioSession  # "stdio" | "dual"
    probe(project, env, *, transport, calls, ...) -> ProbeResult  # initialize .. tools/call, timed
    build_index(project, env, *, argv=None, force=False, threads=None) -> IndexBuild
    retrieval_method(call_result) -> str               # "vector" | "grep_fallback" | "error" | ...
    search_mode_from_log(stderr) -> dict[str, Any]     # the same, from the server's log lines
    index_info(install, python=None, model_dim=None) -> dict  # tables, schema, rebuild_reasons

Import it with ``sys.path.insert(0, "<repo>/tests")`` then ``from real import harness``; the CLI
(``python -m real.harness ...`` from ``tests/``) exposes era/install/probe/index commands.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Optional

from .eras import CopyOp, Era, installer_era, resolve_commit, upstream_id
from .mcp_stdio import ProbeError, StdioSession, spawn
from .tinymodel import tiny_model
from .venvs import server_venv

__all__ = [
    "Era",
    "IndexBuild",
    "InstallRecord",
    "ProbeError",
    "ProbeResult",
    "StdioSession",
    "attach_venv",
    "build_index",
    "checkout",
    "clone_source",
    "expected_columns",
    "export_tree",
    "index_info",
    "install_dir_of",
    "installer_era",
    "make_install",
    "make_install_detailed",
    "new_project",
    "probe",
    "resolve_commit",
    "retrieval_method",
    "script_flags",
    "search_mode_from_log",
    "server_argv",
    "server_env",
    "server_venv",
    "start_server",
    "tiny_model",
    "upstream_id",
]

# ---------------------------------------------------------------------------------- sources


def clone_source(spec: str | Path, dest: Path) -> Path:
    """A git checkout at ``dest`` of ``spec``: a checkout (path), a bundle file, or a URL.

    An existing ``dest`` that is already a checkout is returned as it is (its HEAD untouched).
    """
    dest = Path(dest)
    if (dest / ".git").exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", str(spec), str(dest)], check=True)
    return dest


def checkout(repo: Path, commit: str) -> str:
    """Detach ``repo``'s work tree at ``commit`` (an upstream id works too); return the full sha."""
    sha = resolve_commit(repo, commit)
    subprocess.run(["git", "-C", str(repo), "checkout", "-q", "--detach", sha], check=True)
    return sha


def export_tree(repo: Path, commit: str, dest: Path) -> Path:
    """Write the tree of ``commit`` to ``dest`` (``git archive``; file modes kept, mtimes = commit time)."""
    dest.mkdir(parents=True, exist_ok=True)
    data = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", commit], check=True, capture_output=True
    ).stdout
    with tempfile.TemporaryFile() as fh:
        fh.write(data)
        fh.seek(0)
        with tarfile.open(fileobj=fh) as tar:
            if sys.version_info >= (3, 12):
                tar.extractall(dest, filter="tar")
            else:
                tar.extractall(dest)  # noqa: S202 - our own git archive
    return dest


# --------------------------------------------------------------------------------- installs


@dataclass
class InstallRecord:
    """What :func:`make_install_detailed` did."""

    project: Path
    install: Path
    era: Era
    files: int
    venv: Optional[str]
    steps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "project": str(self.project),
            "install": str(self.install),
            "era": self.era.summary(),
            "files": self.files,
            "venv": self.venv,
            "steps": self.steps,
            "notes": self.notes,
        }


def new_project(path: Path, *, git: bool = True, files: Optional[dict[str, str]] = None) -> Path:
    """An empty-ish user project (``README.md``, optional files), ``git init``-ed and committed."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "README.md").write_text("# demo project\n")
    for rel, text in (files or {}).items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    if git:
        subprocess.run(["git", "init", "-q", str(path)], check=True)
        git_in(path, "add", "-A")
        git_in(path, "commit", "-qm", "init")
    return path


def git_in(project: Path, *args: str) -> str:
    """``git -C project ARGS`` with a fixed identity (commits work on a machine without one)."""
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    return subprocess.run(["git", "-C", str(project), *args], check=True, capture_output=True,
                          text=True, env=env).stdout


def requirements_file(repo: Path, commit: str, dest: Path) -> Path:
    """``mcp_server/requirements.txt`` of upstream ``commit``, written to ``dest``."""
    sha = resolve_commit(repo, commit)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(git_in(repo, "show", f"{sha}:mcp_server/requirements.txt"))
    return dest


def _count_files(root: Path) -> int:
    """Files under ``root``, the venv excluded."""
    return sum(len(fs) for d, _, fs in os.walk(root) if Path(d).relative_to(root).parts[:1] != ("venv",))


def _apply_copy(tree: Path, repo: Path, install: Path, op: CopyOp, record: InstallRecord) -> None:
    dest = install / op.dest
    if op.files is not None:
        dest.mkdir(parents=True, exist_ok=True)
        for name in op.files:
            src = tree / op.src / name
            if src.exists():
                shutil.copy(src, dest)  # the guide's copy(src, dir): content + mode, fresh mtime
            elif op.fallback:
                path, _, rev = op.fallback.partition("@")
                text = subprocess.run(
                    ["git", "-C", str(repo), "show", f"{rev}:{path}"], check=True, capture_output=True
                ).stdout
                (dest / name).write_bytes(text)
                record.notes.append(f"{op.src}/{name} absent: wrote {op.fallback} instead")
            else:
                record.notes.append(f"{op.src}/{name} absent: not copied")
        record.steps.append(f"copy {op.src}/{{{','.join(op.files)}}} -> {op.dest}/")
        return
    src = tree / op.src
    if not src.exists():
        record.steps.append(f"copytree {op.src} -> {op.dest}: FAILED (source absent at this commit)")
        return
    ignore = shutil.ignore_patterns(*op.ignore) if op.ignore else None
    shutil.copytree(src, dest, dirs_exist_ok=True, ignore=ignore)
    record.steps.append(f"copytree {op.src} -> {op.dest}" + (f" ignore={op.ignore}" if op.ignore else ""))


def _install_cursorrules(tree: Path, project: Path, era: Era, record: InstallRecord) -> None:
    rule = era.cursorrules
    if rule is None or rule.source is None:
        return
    ours = (tree / rule.source).read_text(encoding="utf-8")
    target = project / ".cursorrules"
    if rule.mode == "overwrite" or not target.exists():
        shutil.copy(tree / rule.source, target)
        record.steps.append(f".cursorrules copied from {rule.source}")
        return
    existing = target.read_text(encoding="utf-8")
    template = rule.merge_template or "{agent_os_rules}\n\n{existing_rules}\n"
    today = date.today().strftime("%Y-%m-%d")
    merged = template.replace("{datetime.now().strftime('%Y-%m-%d')}", today)
    merged = re.sub(r"\{(agent_os_rules|praxis_os_rules)\}", lambda _m: ours, merged)
    merged = merged.replace("{existing_rules}", existing)
    shutil.copy(target, project / ".cursorrules.backup")
    target.write_text(merged, encoding="utf-8")
    record.steps.append(f".cursorrules auto-merged (option 1 of {rule.doc}): ours on top, backup written")


def _apply_gitignore(project: Path, era: Era, record: InstallRecord) -> None:
    rule = era.gitignore
    if rule is None:
        return
    path = project / ".gitignore"
    if rule.kind == "append":
        with open(path, "a") as fh:
            fh.write("\n".join(rule.lines))
        record.steps.append(".gitignore: guide's block appended")
        return
    current = path.read_text() if path.exists() else ""
    if rule.kind == "script":
        if rule.skip_if and rule.skip_if in current:
            record.steps.append(".gitignore: script found it configured, unchanged")
            return
        with open(path, "a") as fh:
            for line in rule.lines:
                fh.write(line + "\n")
        record.steps.append(".gitignore: script's lines appended")
        return
    if not path.exists():
        path.write_text((rule.create_line or "# Created for prAxIs OS installation") + "\n")
        current = ""
    missing = [p for p in rule.lines if p not in current]
    if not missing:
        record.steps.append(".gitignore: all entries present")
        return
    with open(path, "a") as fh:
        if not current.endswith("\n\n"):
            if not current.endswith("\n"):
                fh.write("\n")
            fh.write("\n")
        if rule.header and rule.header_check and rule.header_check not in current:
            fh.write(rule.header + "\n")
        for entry in missing:
            fh.write(entry + "\n")
    record.steps.append(
        f".gitignore: {len(missing)} entries appended (step 04 parse of {rule.standards_file})"
    )


def attach_venv(install: Path, venv: Path, *, mode: str = "pth") -> Path:
    """Give ``install`` a ``venv`` backed by the shared (cached) ``venv``; return ``install/venv``.

    ``pth`` (default): a real, tiny venv directory (``python -m venv --without-pip`` with the cached
    venv's base interpreter) whose site-packages holds ``_praxis_real_shared.pth`` running
    ``site.addsitedir(<cached site-packages>)``: the server finds every package (nested ``.pth``
    files included) while ``venv/`` stays a plain directory, as in a real install (a symlinked
    venv changes what git and the upgrader see: ``.praxis-os/venv/`` no longer matches it in
    ``.gitignore``, and ``git check-ignore`` of a path below it fails with "beyond a symbolic link").
    ``symlink``: ``install/venv`` -> the cached venv; ``sys.prefix`` is then ``install/venv`` (its
    ``pyvenv.cfg`` is found through the link) and the packages are the cached ones.
    """
    link = install / "venv"
    if link.is_symlink() or link.exists():
        raise FileExistsError(f"{link} exists")
    venv = venv.resolve()
    if mode == "symlink":
        os.symlink(venv, link)
        return link
    if mode != "pth":
        raise ValueError(f"venv mode {mode!r}: use 'pth' or 'symlink'")
    cfg = dict(
        line.split(" = ", 1) for line in (venv / "pyvenv.cfg").read_text().splitlines() if " = " in line
    )
    major_minor = ".".join(cfg.get("version_info", cfg.get("version", "3")).split(".")[:2])
    base = Path(cfg["home"]) / f"python{major_minor}"
    if not base.exists():
        base = Path(cfg["home"]) / "python3"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(link)], check=True)
    shared = next(venv.glob("lib/python*/site-packages"))
    own = next(link.glob("lib/python*/site-packages"))
    (own / "_praxis_real_shared.pth").write_text(f"import site; site.addsitedir({str(shared)!r})\n")
    return link


def make_install_detailed(
    repo: Path,
    commit: str,
    project: Path,
    *,
    venv: Optional[Path] = None,
    relative_pythonpath: bool = False,
    method: str = "auto",
    venv_mode: str = "pth",
) -> InstallRecord:
    """Install ``commit`` of ``repo`` into ``project`` as its installer did; see :func:`make_install`."""
    era = installer_era(repo, commit, method)
    project = Path(project)
    project.mkdir(parents=True, exist_ok=True)
    install = project / era.install_dir
    record = InstallRecord(project, install, era, 0, None, notes=list(era.notes))
    with tempfile.TemporaryDirectory(prefix="real-src-") as tmp:
        tree = export_tree(repo, era.commit, Path(tmp) / "src")
        for d in era.dirs:
            (project / d).mkdir(parents=True, exist_ok=True)
        record.steps.append(f"mkdir {len(era.dirs)} dirs")
        for op in era.copies:
            _apply_copy(tree, repo, install, op, record)
        _install_cursorrules(tree, project, era, record)
    if venv is not None:
        record.venv = str(Path(venv).resolve())
        attach_venv(install, Path(venv), mode=venv_mode)
        record.steps.append(f"venv: {venv_mode} -> {record.venv}")
    _apply_gitignore(project, era, record)
    for rel, cfg in era.ide_config.items():
        cfg = json.loads(json.dumps(cfg))
        if relative_pythonpath:
            for server in cfg.get("mcpServers", {}).values():
                if "PYTHONPATH" in server.get("env", {}):
                    server["env"]["PYTHONPATH"] = era.install_dir
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        with open(project / rel, "w") as fh:
            json.dump(cfg, fh, indent=2)
        record.steps.append(f"{rel} written")
    if era.rebuild_flag:
        (install / "standards").mkdir(parents=True, exist_ok=True)
        (install / "standards" / ".rebuild_index").touch()
        record.steps.append("standards/.rebuild_index touched")
    record.files = _count_files(install)
    return record


def make_install(
    repo: Path,
    commit: str,
    project: Path,
    *,
    venv: Optional[Path] = None,
    relative_pythonpath: bool = False,
    method: str = "auto",
    venv_mode: str = "pth",
) -> Path:
    """Install upstream ``commit`` of ``repo`` into ``project`` exactly as that commit's installer did.

    Copies as the installer copied (its ignore list included, so ``mcp_server/.agent-os/...`` lands
    in script installs from 925b10d on, and the guides copy ``mcp_server/.cursor`` too), creates its
    directories (the script's empty ``.cache/vector_index``), merges ``.cursorrules`` (guide option 1),
    writes ``.cursor/mcp.json`` and the ``.gitignore`` lines, and touches ``standards/.rebuild_index``
    where the install script did. ``venv``: a prebuilt shared venv (:func:`server_venv`) that
    ``<install>/venv`` is backed by, see :func:`attach_venv` (``venv_mode``: ``pth``, a tiny real venv
    whose ``.pth`` adds the shared site-packages; ``symlink``, ``<install>/venv`` -> the shared venv).
    ``relative_pythonpath``: the IDE config says ``PYTHONPATH=<install dir name>`` (as users
    write it) instead of ``${workspaceFolder}/<install dir name>``. Returns the install directory.
    """
    return make_install_detailed(
        repo,
        commit,
        project,
        venv=venv,
        relative_pythonpath=relative_pythonpath,
        method=method,
        venv_mode=venv_mode,
    ).install


def install_dir_of(project: Path) -> Path:
    """``project/.praxis-os`` or, failing that, ``project/.agent-os``."""
    for name in (".praxis-os", ".agent-os"):
        if (project / name).is_dir():
            return project / name
    raise FileNotFoundError(f"no .praxis-os or .agent-os in {project}")


# ----------------------------------------------------------------------------------- server


def server_env(
    project: Path,
    model_env: dict[str, str],
    *,
    relative_pythonpath: bool = False,
    base: Optional[dict[str, str]] = None,
    bytecode: str = "inherit",
) -> dict[str, str]:
    """The environment the IDE config gives the server: ``PROJECT_ROOT``, ``PYTHONPATH`` (the install
    dir, absolute or relative), ``PYTHONUNBUFFERED=1``, plus the model variables.

    ``bytecode``: ``inherit`` keeps ``PYTHONDONTWRITEBYTECODE`` as it is (this machine sets it to 1
    globally), ``write`` removes it (an IDE usually has none), ``nowrite`` sets it (as the upgrader's
    validation probe does). Without precompiled bytecode in the venv, ``nowrite`` makes every start
    compile torch & co. again."""
    install = install_dir_of(project)
    env = dict(base if base is not None else os.environ)
    if bytecode == "write":
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    elif bytecode == "nowrite":
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(model_env)
    env["PROJECT_ROOT"] = str(project)
    env["PYTHONPATH"] = install.name if relative_pythonpath else str(install)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def server_argv(
    project: Path, transport: str = "stdio", *, python: Optional[Path] = None, log_level: Optional[str] = None
) -> list[str]:
    """``<install>/venv/bin/python -m mcp_server [--transport T]``; the flag only where the installed
    ``__main__`` parses it (required from upstream 395aab3; older servers take no arguments)."""
    install = install_dir_of(project)
    py = python or install / "venv" / "bin" / "python"
    argv = [str(py), "-m", "mcp_server"]
    main = (install / "mcp_server" / "__main__.py").read_text(encoding="utf-8")
    if '"--transport"' in main:
        argv += ["--transport", transport]
        if log_level:
            argv += ["--log-level", log_level]
    return argv


def start_server(
    project: Path,
    transport: str = "stdio",
    env: Optional[dict[str, str]] = None,
    *,
    stderr_path: Optional[Path] = None,
    python: Optional[Path] = None,
    log_level: Optional[str] = None,
) -> StdioSession:
    """Start the install's server as the IDE does (cwd = project); stdio is the MCP channel, stderr
    goes to ``stderr_path`` (default ``/tmp/real-logs/server-<pid>.log``). ``dual`` also serves HTTP
    on 127.0.0.1 (port 4242 or the next free one) and writes the state file."""
    argv = server_argv(project, transport, python=python, log_level=log_level)
    path = stderr_path or Path(tempfile.mkdtemp(prefix="real-logs-")) / "server.stderr"
    return spawn(argv, cwd=project, env=env if env is not None else dict(os.environ), stderr_path=path)


@dataclass
class ProbeResult:
    """The outcome of :func:`probe`: timings (s since spawn), tools, calls, search mode, stop."""

    ok: bool
    error: Optional[str]
    timings: dict[str, float]
    tools: list[str]
    calls: dict[str, Any]
    retrieval: Optional[str]
    log_mode: dict[str, Any]
    state_file_seen: Optional[dict[str, Any]]
    state_file_after: bool
    stop: dict[str, Any]
    stderr_path: str

    def to_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def probe(
    project: Path,
    env: dict[str, str],
    *,
    transport: str = "stdio",
    calls: Optional[list[tuple[str, dict[str, Any]]]] = None,
    init_timeout: float = 900.0,
    stop_how: str = "eof",
    stderr_path: Optional[Path] = None,
) -> ProbeResult:
    """Start the server, ``initialize`` + ``notifications/initialized`` + ``tools/list``, then each
    ``tools/call`` in ``calls`` (default: ``search_standards`` for "race conditions"), each answer
    read before the next request; then stop it (``eof`` = close stdin). Timings are seconds since
    spawn. ``retrieval`` is the ``retrieval_method`` of the first ``search_standards`` answer."""
    if calls is None:
        calls = [("search_standards", {"query": "how to avoid race conditions", "n_results": 3})]
    install = install_dir_of(project)
    state = install / ".mcp_server_state.json"
    s = start_server(project, transport, env, stderr_path=stderr_path)
    timings: dict[str, float] = {}
    tools: list[str] = []
    results: dict[str, Any] = {}
    retrieval = None
    error = None
    seen = None
    try:
        s.initialize(timeout=init_timeout)
        timings["initialize"] = s.events[-2].at
        if state.exists():
            try:
                seen = json.loads(state.read_text())
            except ValueError:
                seen = {"unreadable": True}
        tools = s.list_tools()
        timings["tools/list"] = s.events[-1].at
        for name, args in calls:
            t = s.elapsed()
            res = s.call_tool(name, args)
            timings[f"call {name}"] = s.events[-1].at
            timings[f"call {name} (own)"] = round(s.events[-1].at - t, 3)
            results[name] = res
            if name == "search_standards" and retrieval is None:
                retrieval = retrieval_method(res)
    except ProbeError as e:
        error = str(e)
    stop = s.stop(how=stop_how)
    return ProbeResult(
        error is None,
        error,
        {k: round(v, 3) for k, v in timings.items()},
        tools,
        results,
        retrieval,
        search_mode_from_log(s.stderr_text()),
        seen,
        state.exists(),
        stop,
        str(s.stderr_path),
    )


# ----------------------------------------------------------------------- search mode markers


def _payload(call_result: Any) -> Any:
    """The tool's returned object from a ``tools/call`` result (structuredContent or text JSON)."""
    if not isinstance(call_result, dict):
        return call_result
    sc = call_result.get("structuredContent")
    if isinstance(sc, dict):
        return sc.get("result", sc) if set(sc) == {"result"} else sc
    for item in call_result.get("content", []):
        if item.get("type") == "text":
            try:
                return json.loads(item["text"])
            except (ValueError, KeyError):
                return item.get("text")
    return None


def retrieval_method(call_result: Any) -> str:
    """Where a ``search_standards`` answer came from: its ``retrieval_method`` field, set by
    ``RAGEngine`` to ``"vector"`` (LanceDB search) or ``"grep_fallback"`` (no table / vector search
    failed); the same at ced34ea, 925b10d and HEAD. ``"error"`` when the tool answered
    ``{"error": ...}``, ``"unknown"`` when there is no such field."""
    data = _payload(call_result)
    if isinstance(data, dict):
        if "retrieval_method" in data:
            return str(data["retrieval_method"])
        if "error" in data:
            return "error"
    return "unknown"


_LOG_MARKERS = {
    "table_loaded": re.compile(r"LanceDB table loaded: (\d+) chunks"),
    "table_failed": re.compile(r"Failed to initialize LanceDB: (.*)"),
    "grep_announced": re.compile(r"Vector search unavailable, grep fallback will be used"),
    "vector_search": re.compile(r"Vector search completed: (\d+) chunks"),
    "grep_search": re.compile(r"Grep search completed: (\d+) chunks|Using grep fallback for query"),
    "index_found": re.compile(r"RAG index found at (.*)"),
    "index_building": re.compile(r"RAG index not found, building"),
    "rebuild_flag": re.compile(r"\.rebuild_index flag detected"),
    "flag_removed": re.compile(r"\.rebuild_index flag removed"),
    "index_reloaded": re.compile(r"Index reloaded: (\d+) chunks"),
}


def search_mode_from_log(stderr: str) -> dict[str, Any]:
    """What the server's log says about its search mode: at start-up ``LanceDB table loaded: N
    chunks`` (vector) or ``Failed to initialize LanceDB: <why>`` + ``Vector search unavailable, grep
    fallback will be used``; per query ``Vector search completed`` or ``Grep search completed`` /
    ``Using grep fallback for query``. ``mode`` is the last one seen (a reload after a rebuild
    switches grep to vector)."""
    found: dict[str, Any] = {}
    mode = None
    for line in stderr.splitlines():
        for key, rx in _LOG_MARKERS.items():
            m = rx.search(line)
            if m:
                found.setdefault(key, m.group(1) if m.groups() and m.group(1) else True)
                if key in ("table_loaded", "vector_search", "index_reloaded"):
                    mode = "vector"
                elif key in ("grep_announced", "grep_search"):
                    mode = "grep_fallback"
    found["mode"] = mode
    return found


# ------------------------------------------------------------------------------------ index


def script_flags(script: Path) -> list[str]:
    """The ``--flags`` a ``build_rag_index.py`` declares with ``add_argument``."""
    return re.findall(r'add_argument\(\s*"(--[a-z-]+)"', script.read_text(encoding="utf-8"))


@dataclass
class IndexBuild:
    """One run of the install's ``scripts/build_rag_index.py``."""

    argv: list[str]
    returncode: int
    seconds: float
    dropped_flags: list[str]
    log: str
    tail: str


def build_index(
    project: Path,
    env: dict[str, str],
    *,
    argv: Optional[list[str]] = None,
    force: bool = False,
    log: Optional[Path] = None,
    threads: Optional[int] = None,
) -> IndexBuild:
    """Run the install's own ``scripts/build_rag_index.py`` from the project root with the install's
    venv, as the guides' step "Build RAG Index" does: ``--index-path <inst>/.cache/vector_index
    --standards-path <inst>/standards`` plus ``--usage-path``/``--workflows-path`` where the installed
    script accepts them (the guides pass them even after the script dropped them, upstream e106e8e,
    which makes argparse exit 2: pass ``argv`` to replay a command verbatim). Returns the time.
    ``threads``: set ``OMP_NUM_THREADS`` (the tiny model embeds 2,501 chunks one call each; with
    torch's default threads on a loaded 2-core machine the build took 4-5x longer than with 1)."""
    install = install_dir_of(project)
    script = install / "scripts" / "build_rag_index.py"
    rel = install.name
    dropped: list[str] = []
    if argv is None:
        accepted = script_flags(script) if script.exists() else []
        argv = [
            f"{rel}/venv/bin/python",
            f"{rel}/scripts/build_rag_index.py",
            "--index-path",
            f"{rel}/.cache/vector_index",
            "--standards-path",
            f"{rel}/standards",
        ]
        for flag, sub in (("--usage-path", "usage"), ("--workflows-path", "workflows")):
            if flag in accepted and (install / sub).is_dir():
                argv += [flag, f"{rel}/{sub}"]
            elif (install / sub).is_dir():
                dropped.append(flag)
        if force:
            argv.append("--force")
    logp = log or Path(tempfile.mkdtemp(prefix="real-logs-")) / "build_index.log"
    if threads is not None:
        env = dict(env, OMP_NUM_THREADS=str(threads))
    t = time.monotonic()
    with open(logp, "wb") as fh:
        rc = subprocess.run(argv, cwd=str(project), env=env, stdout=fh, stderr=subprocess.STDOUT).returncode
    seconds = time.monotonic() - t
    text = logp.read_text(errors="replace")
    return IndexBuild(argv, rc, round(seconds, 3), dropped, str(logp), "\n".join(text.splitlines()[-5:]))


_INDEX_PROBE = r"""
import json, sys, lancedb
db = lancedb.connect(sys.argv[1])
out = {}
for name in db.table_names():
    try:
        t = db.open_table(name)
        sch = t.schema
        vec = sch.field("vector").type if "vector" in sch.names else None
        out[name] = {"rows": t.count_rows(), "columns": sch.names,
                     "vector_dim": getattr(vec, "list_size", None)}
    except Exception as e:
        out[name] = {"error": str(e)}
print(json.dumps(out))
"""


def expected_table(install: Path) -> Optional[str]:
    """The table the installed server opens (``open_table("...")`` in ``mcp_server/rag_engine.py``)."""
    src = install / "mcp_server" / "rag_engine.py"
    if not src.exists():
        return None
    m = re.search(r'open_table\(\s*"([^"]+)"', src.read_text(encoding="utf-8"))
    return m.group(1) if m else None


def expected_columns(install: Path) -> list[str]:
    """The columns the installed ``scripts/build_rag_index.py`` writes (the keys of its ``record``)."""
    src = install / "scripts" / "build_rag_index.py"
    if not src.exists():
        return []
    m = re.search(r"record = \{(.*?)\n\s*\}", src.read_text(encoding="utf-8"), re.S)
    return re.findall(r'^\s*"(\w+)":', m.group(1), re.M) if m else []


def index_info(
    install: Path, python: Optional[Path] = None, model_dim: Optional[int] = None
) -> dict[str, Any]:
    """The index of ``install`` and why the installed server would not use it (``rebuild_reasons``):
    missing directory; empty directory (the server skips its build and uses grep); the table the
    server opens is absent (renamed upstream: agent_os_standards -> praxis_os_standards at dc10c02);
    no ``metadata.json``; standards added/removed/changed since ``metadata.json`` (the builder's own
    mtime test); the ``.rebuild_index`` flag; a table whose columns differ from the ``record`` the
    installed builder writes (schema change), or whose vector size differs from ``model_dim``."""
    idx = install / ".cache" / "vector_index"
    info: dict[str, Any] = {
        "path": str(idx),
        "exists": idx.is_dir(),
        "expected_table": expected_table(install),
    }
    reasons: list[str] = []
    if not idx.is_dir():
        reasons.append("index directory missing: the server builds the whole index before answering")
        info["rebuild_reasons"] = reasons
        return info
    entries = sorted(p.name for p in idx.iterdir())
    info["entries"] = entries
    if not entries:
        reasons.append("index directory empty: the server skips its build and answers with grep")
    info["lance_tables"] = [e[:-6] for e in entries if e.endswith(".lance")]
    py = python or install / "venv" / "bin" / "python"
    if py.exists() and info["lance_tables"]:
        res = subprocess.run(
            [str(py), "-c", _INDEX_PROBE, str(idx)], capture_output=True, text=True, check=False
        )
        if res.returncode == 0:
            info["tables"] = json.loads(res.stdout.strip().splitlines()[-1])
        else:
            info["tables_error"] = res.stderr.strip().splitlines()[-1:] or ["?"]
    want_cols = expected_columns(install)
    table = info.get("tables", {}).get(info["expected_table"] or "", {})
    if table and want_cols and "columns" in table and table["columns"] != want_cols:
        reasons.append(
            f"schema differs from the builder's record: have {table['columns']}, builder writes {want_cols}"
        )
    if table and model_dim and table.get("vector_dim") not in (None, model_dim):
        reasons.append(f"vector size {table.get('vector_dim')} != the model's {model_dim}")
    if info["expected_table"] and info["expected_table"] not in info["lance_tables"]:
        reasons.append(
            f"table {info['expected_table']!r} absent (have {info['lance_tables']}): "
            "the server logs the failure and silently uses grep"
        )
    meta_path = idx / "metadata.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        info["metadata"] = {
            k: meta.get(k)
            for k in ("build_time", "source_files", "total_chunks", "embedding_model", "build_type")
        }
        mt = meta.get("files_mtimes", {})
        base = install / "standards"
        current = {str(p.relative_to(base.parent)): p.stat().st_mtime for p in base.rglob("*.md")}
        extra_roots = [install / "usage", install / "workflows"]
        known_prefixes = {k.split("/", 1)[0] for k in mt}
        for root in extra_roots:
            if root.name in known_prefixes and root.is_dir():
                current.update({str(p.relative_to(install)): p.stat().st_mtime for p in root.rglob("*.md")})
        added = sorted(set(current) - set(mt))
        removed = sorted(set(mt) - set(current))
        changed = sorted(k for k in set(current) & set(mt) if current[k] != mt[k])
        info["standards_delta"] = {
            "added": len(added),
            "removed": len(removed),
            "changed": len(changed),
            "examples": (added + removed + changed)[:5],
        }
        if added or removed or changed:
            reasons.append(
                f"standards changed since the build ({len(added)} added, {len(removed)} removed, "
                f"{len(changed)} mtime-changed)"
            )
    elif entries:
        reasons.append("no metadata.json: the builder treats every file as changed")
    if (install / "standards" / ".rebuild_index").exists():
        reasons.append(".rebuild_index present: the watcher rebuilds synchronously at the next start")
    info["rebuild_reasons"] = reasons
    return info


# -------------------------------------------------------------------------------------- CLI


def _main(argv: Optional[list[str]] = None) -> int:
    """CLI: ``era REPO COMMIT``, ``install REPO COMMIT PROJECT [--venv V]``, ``probe PROJECT HF_HOME``,
    ``index PROJECT HF_HOME``, ``info INSTALL``; prints JSON."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m real.harness", description=_main.__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("era")
    a.add_argument("repo", type=Path)
    a.add_argument("commit")
    a.add_argument("--method", default="auto")
    b = sub.add_parser("install")
    b.add_argument("repo", type=Path)
    b.add_argument("commit")
    b.add_argument("project", type=Path)
    b.add_argument("--venv", type=Path)
    b.add_argument("--method", default="auto")
    b.add_argument("--relative-pythonpath", action="store_true")
    b.add_argument("--venv-mode", default="pth", choices=["pth", "symlink"])
    c = sub.add_parser("probe")
    c.add_argument("project", type=Path)
    c.add_argument("hf_home", type=Path)
    c.add_argument("--transport", default="stdio")
    d = sub.add_parser("index")
    d.add_argument("project", type=Path)
    d.add_argument("hf_home", type=Path)
    e = sub.add_parser("info")
    e.add_argument("install", type=Path)
    ns = ap.parse_args(argv)
    out: Any
    if ns.cmd == "era":
        out = installer_era(ns.repo, ns.commit, ns.method).summary()
    elif ns.cmd == "install":
        out = make_install_detailed(
            ns.repo,
            ns.commit,
            ns.project,
            venv=ns.venv,
            method=ns.method,
            relative_pythonpath=ns.relative_pythonpath,
            venv_mode=ns.venv_mode,
        ).to_json()
    elif ns.cmd == "probe":
        env = server_env(ns.project, tiny_model(ns.hf_home))
        out = probe(ns.project, env, transport=ns.transport).to_json()
    elif ns.cmd == "index":
        out = asdict(build_index(ns.project, server_env(ns.project, tiny_model(ns.hf_home))))
    else:
        out = index_info(ns.install)
    print(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
