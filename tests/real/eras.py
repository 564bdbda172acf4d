"""Which installer made installs at a given upstream commit, read from THAT commit's own docs/scripts.

Three kinds of installer exist in the upstream history; each is parsed from the commit itself:

* ``installation-guide.md`` at the repository root (first ~9 commits, ``.agent-os``). The history
  bundle leaves that file out (it keeps ``universal/``, ``mcp_server/``, ``scripts/``,
  ``installation/``, ``language-instructions/``, ``LICENSE``, ``README.md``); its README still names
  it. When the checkout has the guide it is parsed; otherwise the rules of upstream's ``ced34ea``
  guide are used (:data:`EARLY_GUIDE_FALLBACK`) and the era says so in ``notes``.
* the LLM-followed guides ``installation/00-START.md`` ... (``02-copy-files.md`` holds the copy
  script, ``01-directories.md`` the directories, ``03-cursorrules.md`` the merge template,
  ``04-gitignore.md`` the gitignore rule, ``0[45]-venv-mcp.md`` the ``.cursor/mcp.json`` and the
  index build command).
* ``scripts/install-agent-os.py`` / ``scripts/install-praxis-os.py`` (from upstream ``5fd6418``):
  copy pairs, ignore patterns, directories, gitignore lines and the ``.rebuild_index`` flag are read
  from its AST. It leaves ``.cursorrules`` and ``.cursor/mcp.json`` to the LLM (its "next steps"),
  so those come from the guide of the same commit.
"""

from __future__ import annotations

import ast
import re
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

# --------------------------------------------------------------------------------------- git


def git(repo: Path, *args: str, check: bool = True) -> str:
    """Run git in ``repo`` and return stdout (text)."""
    res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {repo}: {res.stderr.strip()}")
    return res.stdout


@lru_cache(maxsize=32)
def _upstream_map(repo: str) -> dict[str, str]:
    """``{local sha: upstream sha}`` from the ``Upstream-Commit:`` trailers of ``repo``'s history."""
    out = git(Path(repo), "log", "--all", "--format=%H %(trailers:key=Upstream-Commit,valueonly,separator=)")
    result = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            result[parts[0]] = parts[1]
    return result


def resolve_commit(repo: Path, ref: str) -> str:
    """Full local sha for ``ref``: any git revision, or a prefix of an upstream id from the trailers."""
    res = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "-q", ref + "^{commit}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode == 0:
        return res.stdout.strip()
    hits = [loc for loc, up in _upstream_map(str(repo)).items() if up.startswith(ref.lower())]
    if len(hits) == 1:
        return hits[0]
    raise KeyError(f"{ref!r} names no commit of {repo} (nor an Upstream-Commit trailer), or several")


def upstream_id(repo: Path, commit: str) -> Optional[str]:
    """The upstream commit id recorded in ``commit``'s trailer, or None (e.g. a real upstream clone)."""
    return _upstream_map(str(repo)).get(resolve_commit(repo, commit))


def show(repo: Path, commit: str, path: str) -> Optional[str]:
    """Text of ``path`` at ``commit``, or None when absent."""
    res = subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, check=False
    )
    return res.stdout.decode("utf-8", "replace") if res.returncode == 0 else None


def tree_files(repo: Path, commit: str, path: str = "") -> list[str]:
    """Files (recursively) under ``path`` at ``commit``."""
    args = ["ls-tree", "-r", "--name-only", commit] + ([path] if path else [])
    return [p for p in git(repo, *args).splitlines() if p]


def exists(repo: Path, commit: str, path: str) -> bool:
    """Whether ``path`` (file or directory) exists at ``commit``."""
    return bool(git(repo, "ls-tree", "--name-only", commit, path.rstrip("/"), check=False).strip())


def first_version(repo: Path, path: str) -> Optional[str]:
    """The oldest commit of ``repo`` whose tree has ``path``."""
    out = git(repo, "log", "--reverse", "--format=%H", "--", path).split()
    return out[0] if out else None


# --------------------------------------------------------------------------------------- model


@dataclass
class CopyOp:
    """One copy the installer performs: ``src`` in the source tree -> ``dest`` under the project.

    ``files``: explicit file names copied into ``dest`` (a directory), else the whole tree with
    ``shutil.copytree(dirs_exist_ok=True, ignore=ignore_patterns(*ignore))``. ``present``: whether
    ``src`` exists at the commit (the guides keep copying ``universal/usage`` after it was removed,
    and their copy then fails for that tree only). ``fallback``: where the file really came from
    when the commit lacks ``src`` (see ``Era.notes``).
    """

    src: str
    dest: str
    files: Optional[list[str]] = None
    ignore: list[str] = field(default_factory=list)
    present: bool = True
    fallback: Optional[str] = None


@dataclass
class CursorrulesRule:
    """How ``.cursorrules`` is installed: ``source`` (path in the source tree), ``mode``
    (``overwrite``: plain copy; ``copy-or-merge``: copy when absent, else the guide's option 1
    auto-merge with ``merge_template`` and a ``.cursorrules.backup``)."""

    source: Optional[str]
    mode: str
    merge_template: Optional[str] = None
    doc: Optional[str] = None


@dataclass
class GitignoreRule:
    """How the project's ``.gitignore`` is changed.

    ``kind``: ``append`` (write ``lines`` as they are), ``script`` (append ``lines`` unless
    ``skip_if`` is a substring of the file), ``standards`` (the guide's step 04: the first
    ```` ```gitignore ```` block of ``standards_file``; non-comment lines not found by substring are
    appended, after ``header`` if ``header_check`` is not in the file; a missing file is created
    with ``create_line``).
    """

    kind: str
    lines: list[str]
    skip_if: Optional[str] = None
    header: Optional[str] = None
    header_check: Optional[str] = None
    create_line: Optional[str] = None
    standards_file: Optional[str] = None
    doc: Optional[str] = None


@dataclass
class Era:
    """What the installer in force at ``commit`` did (see the module docstring)."""

    name: str
    method: str
    commit: str
    upstream: Optional[str]
    install_dir: str
    derived_from: list[str]
    copies: list[CopyOp]
    dirs: list[str]  # project-relative
    cursorrules: Optional[CursorrulesRule]
    ide_config: dict[str, Any]
    gitignore: Optional[GitignoreRule]
    rebuild_flag: bool
    empty_index_dir: bool
    index_command: Optional[list[str]]
    notes: list[str] = field(default_factory=list)

    @property
    def copies_workflows(self) -> bool:
        """Whether ``universal/workflows`` is copied."""
        return any(c.src == "universal/workflows" for c in self.copies)

    @property
    def copies_scripts(self) -> str:
        """``tree`` (all of ``scripts/``), ``build_rag_index.py`` (only that file) or ``none``."""
        for c in self.copies:
            if (c.dest == "scripts" or c.dest.endswith("/scripts")) and c.files:
                return ",".join(c.files)
            if c.src == "scripts":
                return "tree"
        return "none"

    def summary(self) -> dict[str, Any]:
        """A compact dict for reports."""
        return {
            "name": self.name,
            "method": self.method,
            "commit": self.commit[:7],
            "upstream": (self.upstream or "")[:7],
            "install_dir": self.install_dir,
            "copies": [
                f"{c.src}{'{' + ','.join(c.files) + '}' if c.files else ''} -> {c.dest}"
                + ("" if c.present else " (absent at this commit)")
                + (f" [from {c.fallback}]" if c.fallback else "")
                for c in self.copies
            ],
            "ignore": sorted({p for c in self.copies for p in c.ignore}),
            "cursorrules": None
            if not self.cursorrules
            else f"{self.cursorrules.source} ({self.cursorrules.mode})",
            "ide_config": sorted(self.ide_config),
            "gitignore": None if not self.gitignore else self.gitignore.lines,
            "rebuild_flag": self.rebuild_flag,
            "index_command": self.index_command,
            "derived_from": self.derived_from,
            "notes": self.notes,
        }


# ------------------------------------------------------------------------------- doc parsing


#: Rules of the root ``installation-guide.md`` of upstream ``ced34ea`` (Step 4 "Install Files in
#: Target Project"), used when a checkout lacks the file (the history bundle does).
EARLY_GUIDE_FALLBACK: dict[str, Any] = {
    "dirs": [
        "standards/universal",
        "standards/development",
        "standards/ai-assistant",
        "usage",
        "product",
        "specs",
        "mcp_server",
        ".cache",
    ],
    "copies": [
        ("universal/standards", "standards/universal", None),
        ("universal/usage", "usage", ["creating-specs.md", "operating-model.md", "mcp-usage-guide.md"]),
        ("mcp_server", "mcp_server", None),
        (".agent-os/scripts", "scripts", ["build_rag_index.py"]),
    ],
    "mcp_json": {
        "mcpServers": {
            "agent-os-rag": {
                "command": "${workspaceFolder}/.agent-os/venv/bin/python",
                "args": ["-m", "mcp_server.agent_os_rag"],
                "env": {
                    "PROJECT_ROOT": "${workspaceFolder}",
                    "PYTHONPATH": "${workspaceFolder}/.agent-os",
                    "PYTHONUNBUFFERED": "1",
                },
                "autoApprove": ["search_standards", "get_current_phase", "get_workflow_state"],
            }
        }
    },
    "gitignore": "\n# Agent OS\n.agent-os/.cache/\n.agent-os/venv/\n.agent-os/mcp_server/__pycache__/\n",
    "index_command": [".agent-os/venv/bin/python", ".agent-os/scripts/build_rag_index.py"],
}


def _python_blocks(md: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", md, re.S)


def _eval_node(node: ast.AST, names: dict[str, Any]) -> Any:
    """Evaluate a literal-ish expression: constants, containers, names from ``names``,
    ``a / "b"`` path joins (as POSIX strings) and f-strings over ``names``."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return names[node.id]
    if isinstance(node, ast.List):
        return [_eval_node(e, names) for e in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_eval_node(e, names) for e in node.elts)
    if isinstance(node, ast.Dict):
        return {
            _eval_node(k, names): _eval_node(v, names)
            for k, v in zip(node.keys, node.values)
            if k is not None
        }
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        left, right = _eval_node(node.left, names), _eval_node(node.right, names)
        return f"{left}/{right}" if left else str(right)
    if isinstance(node, ast.JoinedStr):
        out = ""
        for v in node.values:
            out += (
                str(_eval_node(v.value, names))
                if isinstance(v, ast.FormattedValue)
                else str(_eval_node(v, names))
            )
        return out
    raise ValueError(f"cannot evaluate {ast.dump(node)[:80]}")


def _call_name(call: ast.Call) -> str:
    f = call.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def parse_copy_script(md: str) -> list[tuple[str, str]]:
    """``(src, dest)`` pairs of the ``copy_with_status(f"{AGENT_OS_SOURCE}/X", ".praxis-os/Y", ...)``
    calls of ``02-copy-files.md``'s complete copy script (src relative to the source tree)."""
    pairs: list[tuple[str, str]] = []
    for block in _python_blocks(md):
        if "copy_with_status(" not in block:
            continue
        try:
            tree = ast.parse(block)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _call_name(node) == "copy_with_status" and len(node.args) >= 2:
                src = _eval_node(node.args[0], {"AGENT_OS_SOURCE": ""}).lstrip("/")
                dest = _eval_node(node.args[1], {})
                pairs.append((src, dest))
    return pairs


def parse_directories(md: str) -> list[str]:
    """The ``directories = [...]`` list of ``01-directories.md``."""
    for block in _python_blocks(md):
        m = re.search(r"^directories = \[.*?^\]", block, re.S | re.M)
        if m:
            return list(_eval_node(ast.parse(m.group(0)).body[0].value, {}))  # type: ignore[attr-defined]
    return []


def parse_mcp_config(md: str) -> Optional[dict[str, Any]]:
    """The ``mcp_config = {...}`` of the venv/MCP step, with ``python_cmd`` = its non-Windows value."""
    for block in _python_blocks(md):
        if "mcp_config = {" not in block:
            continue
        cmds = re.findall(r'python_cmd = "([^"]+)"', block)
        posix = [c for c in cmds if "Scripts" not in c]
        names = {"python_cmd": posix[-1] if posix else (cmds[-1] if cmds else "python")}
        tree = ast.parse(block)
        for node in tree.body:
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "mcp_config":
                return dict(_eval_node(node.value, names))
    return None


def parse_index_command(md: str) -> Optional[list[str]]:
    """The Linux ``build_rag_index.py`` command of the venv/MCP step, as argv (None if absent)."""
    block: str
    for block in re.findall(r"```bash\n(.*?)```", md, re.S):
        if "build_rag_index.py" in block and "\\Scripts\\" not in block:
            return block.replace("\\\n", " ").split()
    return None


def parse_merge_template(md: str) -> Optional[str]:
    """The ``merged_content = f\"\"\"...\"\"\"`` template of ``03-cursorrules.md`` (option 1)."""
    m = re.search(r'merged_content = f"""(.*?)"""', md, re.S)
    return m.group(1) if m else None


def parse_gitignore_step(md: str) -> dict[str, Optional[str]]:
    """From ``04-gitignore.md``: the standards file, header keyword and check, created-file line."""

    def grab(pattern: str) -> Optional[str]:
        m = re.search(pattern, md)
        return m.group(1) if m else None

    return {
        "standards_file": grab(r'standards_file = "([^"]+)"'),
        "header_keyword": grab(r'if "([^"]+)" in stripped'),
        "header_check": grab(r'if "(#[^"]+)" not in current_content'),
        "create_line": grab(r'f\.write\("(# Created for[^"]*?)\\n"\)'),
    }


def first_gitignore_block(md: str) -> Optional[str]:
    """The first ```` ```gitignore ```` block, parsed as step 04 parses it (its own regex)."""
    m = re.search(r"```gitignore\n(.*?)\n```", md, re.S)
    return m.group(1) if m else None


def parse_install_script(src: str) -> dict[str, Any]:
    """From ``scripts/install-*.py``: base dir, copy pairs, ignore patterns, directories, gitignore
    lines and skip test, whether ``main`` calls ``create_rebuild_flag``, whether it runs ``venv``."""
    tree = ast.parse(src)
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    out: dict[str, Any] = {"copies": [], "ignore": [], "dirs": [], "gitignore": [], "skip_if": None}
    base_names = {"target": "", "source": ""}
    copy_fn = funcs["copy_files"]
    srcs: dict[str, str] = {}
    dests: dict[str, str] = {}
    for node in ast.walk(copy_fn):
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "base":
                base_names["base"] = _eval_node(node.value, base_names)
                out["install_dir"] = base_names["base"]
            elif name.startswith("src_"):
                srcs[name[4:]] = _eval_node(node.value, base_names)
            elif name.startswith("dest_"):
                dests[name[5:]] = _eval_node(node.value, base_names)
            elif name == "ignore_patterns" and isinstance(node.value, ast.Call):
                out["ignore"] = [_eval_node(a, {}) for a in node.value.args]
    out["copies"] = [(srcs[k], dests[k]) for k in srcs if k in dests]
    dir_fn = funcs["create_directories"]
    names = {"target": "", "base": out["install_dir"]}
    for node in ast.walk(dir_fn):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "directories":
            out["dirs"] = list(_eval_node(node.value, names))
    gi_fn = funcs["configure_gitignore"]
    for node in ast.walk(gi_fn):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "").endswith("_patterns"):
            out["gitignore"] = list(_eval_node(node.value, {}))
        if (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.Compare)
            and isinstance(node.test.left, ast.Constant)
            and isinstance(node.test.ops[0], ast.In)
        ):
            out["skip_if"] = node.test.left.value
    main_calls = {_call_name(n) for n in ast.walk(funcs["main"]) if isinstance(n, ast.Call)}
    out["rebuild_flag"] = "create_rebuild_flag" in main_calls
    out["venv"] = "create_venv_and_install" in main_calls
    flag = re.search(r'flag_path = target / "([^"]+)" / "([^"]+)" / "([^"]+)"', src)
    out["flag_path"] = "/".join(flag.groups()) if flag else None
    return out


# ------------------------------------------------------------------------------------ eras


def install_script_path(repo: Path, commit: str) -> Optional[str]:
    """``scripts/install-*.py`` at ``commit``, if any."""
    for p in tree_files(repo, commit, "scripts"):
        if re.fullmatch(r"scripts/install-[a-z-]+\.py", p):
            return p
    return None


def _installation_doc(repo: Path, commit: str, pattern: str) -> Optional[str]:
    for p in tree_files(repo, commit, "installation"):
        if re.fullmatch(pattern, p):
            return p
    return None


def _cursorrules_source(repo: Path, commit: str) -> Optional[str]:
    """The guides copy ``{SOURCE}/.cursorrules``; the bundle keeps only ``installation/.cursorrules``."""
    for cand in (".cursorrules", "installation/.cursorrules"):
        if show(repo, commit, cand) is not None:
            return cand
    return None


def _guide_parts(
    repo: Path, commit: str, install_dir: str, notes: list[str], derived: list[str]
) -> tuple[Optional[CursorrulesRule], dict[str, Any], Optional[GitignoreRule], Optional[list[str]]]:
    """cursorrules rule, IDE config, gitignore rule and index command of the ``installation/`` guide."""
    cr_doc = _installation_doc(repo, commit, r"installation/0\d-cursorrules\.md")
    cursor: Optional[CursorrulesRule] = None
    if cr_doc:
        derived.append(cr_doc)
        src = _cursorrules_source(repo, commit)
        template = parse_merge_template(show(repo, commit, cr_doc) or "")
        cursor = CursorrulesRule(src, "copy-or-merge", template, cr_doc)
        if src == "installation/.cursorrules":
            notes.append(
                "guide copies {SOURCE}/.cursorrules; this checkout has only installation/.cursorrules, "
                "used instead"
            )
        elif src is None:
            notes.append("guide copies {SOURCE}/.cursorrules, absent in this checkout: none installed")
    ide: dict[str, Any] = {}
    venv_doc = _installation_doc(repo, commit, r"installation/0\d-venv-mcp\.md")
    index_cmd = None
    if venv_doc:
        derived.append(venv_doc)
        text = show(repo, commit, venv_doc) or ""
        cfg = parse_mcp_config(text)
        if cfg is not None:
            ide[".cursor/mcp.json"] = cfg
        index_cmd = parse_index_command(text)
    gi: Optional[GitignoreRule] = None
    gi_doc = _installation_doc(repo, commit, r"installation/0\d-gitignore\.md")
    if gi_doc:
        derived.append(gi_doc)
        step = parse_gitignore_step(show(repo, commit, gi_doc) or "")
        sfile = (
            step["standards_file"]
            or f"{install_dir}/standards/universal/installation/gitignore-requirements.md"
        )
        # the standards file is read from the install, i.e. from universal/standards at this commit
        src_path = sfile.replace(f"{install_dir}/standards/universal/", "universal/standards/", 1)
        block = first_gitignore_block(show(repo, commit, src_path) or "") or ""
        header = None
        lines: list[str] = []
        for line in block.split("\n"):
            s = line.strip()
            if s.startswith("#"):
                if step["header_keyword"] and step["header_keyword"] in s:
                    header = s
            elif s:
                lines.append(s)
        gi = GitignoreRule(
            "standards",
            lines,
            header=header,
            header_check=step["header_check"],
            create_line=step["create_line"],
            standards_file=sfile,
            doc=gi_doc,
        )
        if any("#" in ln for ln in lines):
            notes.append("gitignore lines carry trailing '# ...' comments (git has none): they match nothing")
    else:
        notes.append("this guide has no .gitignore step")
    return cursor, ide, gi, index_cmd


def installer_era(repo: Path, commit: str, method: str = "auto") -> Era:
    """The installer in force at ``commit`` of ``repo`` and what it did, read from that commit.

    ``method``: ``guide`` (the LLM-followed docs), ``script`` (``scripts/install-*.py``, only where
    the commit ships one), or ``auto`` (the script where it exists, else the guide).
    """
    sha = resolve_commit(repo, commit)
    up = upstream_id(repo, sha)
    notes: list[str] = []
    derived: list[str] = []
    script = install_script_path(repo, sha)
    copy_doc = _installation_doc(repo, sha, r"installation/02-copy-files\.md")
    if method == "auto":
        method = "script" if script else "guide"
    if method == "script" and not script:
        raise ValueError(f"{sha[:7]} ships no scripts/install-*.py")

    if method == "script":
        assert script is not None
        parsed = parse_install_script(show(repo, sha, script) or "")
        derived.append(script)
        idir = parsed["install_dir"]
        copies = [
            CopyOp(
                s,
                d[len(idir) + 1 :] if d.startswith(idir + "/") else d,
                ignore=list(parsed["ignore"]),
                present=exists(repo, sha, s),
            )
            for s, d in parsed["copies"]
        ]
        if not any(p in parsed["ignore"] for p in (".agent-os",)) and any(
            f.startswith("mcp_server/.agent-os/") for f in tree_files(repo, sha, "mcp_server")
        ):
            notes.append("ignore list lacks '.agent-os': mcp_server/.agent-os/... is copied into the install")
        guide_notes: list[str] = []
        cursor, ide, _unused_gi, index_cmd = _guide_parts(repo, sha, idir, guide_notes, derived)
        notes += [n for n in guide_notes if "gitignore" not in n]
        gi = GitignoreRule(
            "script", [ln for ln in parsed["gitignore"]], skip_if=parsed["skip_if"], doc=script
        )
        notes.append("script leaves .cursorrules and .cursor/mcp.json to the LLM: taken from the guide")
        notes.append(
            "script creates an empty .cache/vector_index (the server's start-up build is then skipped) "
            "and touches standards/.rebuild_index (the watcher builds the index on the first start)"
        )
        return Era(
            "install-script",
            "script",
            sha,
            up,
            idir,
            derived,
            copies,
            list(parsed["dirs"]),
            cursor,
            ide,
            gi,
            bool(parsed["rebuild_flag"]),
            ".cache/vector_index" in " ".join(parsed["dirs"]),
            index_cmd,
            notes,
        )

    if copy_doc:
        text = show(repo, sha, copy_doc) or ""
        derived.append(copy_doc)
        pairs = parse_copy_script(text)
        idir = pairs[0][1].split("/", 1)[0] if pairs else ".praxis-os"
        copies = [CopyOp(s, d.split("/", 1)[1], present=exists(repo, sha, s)) for s, d in pairs]
        for c in copies:
            if not c.present:
                notes.append(
                    f"guide copies {c.src}, absent at this commit: copytree raises, the script "
                    "reports a failed copy and exits 1 after the other copies"
                )
        dir_doc = _installation_doc(repo, sha, r"installation/01-directories\.md")
        dirs = parse_directories(show(repo, sha, dir_doc) or "") if dir_doc else []
        if dir_doc:
            derived.append(dir_doc)
        cursor, ide, guide_gi, index_cmd = _guide_parts(repo, sha, idir, notes, derived)
        return Era(
            "installation-guides",
            "guide",
            sha,
            up,
            idir,
            derived,
            copies,
            dirs,
            cursor,
            ide,
            guide_gi,
            False,
            False,
            index_cmd,
            notes,
        )

    # the root installation-guide.md era
    readme = show(repo, sha, "README.md") or ""
    guide = show(repo, sha, "installation-guide.md")
    if guide is None and "installation-guide.md" not in readme:
        raise ValueError(
            f"{sha[:7]}: no installer found (no installation/, no install script, "
            "README names no installation-guide.md)"
        )
    rules = dict(EARLY_GUIDE_FALLBACK)
    if guide is not None:
        derived.append("installation-guide.md")
        rules = _parse_early_guide(guide, rules)
    else:
        derived.append("README.md (names installation-guide.md; the file is not in this checkout)")
        notes.append("installation-guide.md missing from this checkout: rules of upstream ced34ea's guide")
    copies = []
    for src, dest, files in rules["copies"]:
        present = exists(repo, sha, src if not files else f"{src}/{files[0]}")
        op = CopyOp(src, dest, list(files) if files else None, present=present)
        if not present and src == ".agent-os/scripts":
            first = first_version(repo, "scripts/build_rag_index.py")
            op.fallback = f"scripts/build_rag_index.py@{first[:7]}" if first else None
            notes.append(
                "guide copies .agent-os/scripts/build_rag_index.py (the source's own dogfood install), "
                f"not in this checkout: its first scripts/ version ({op.fallback}) stands in"
            )
        copies.append(op)
    cursor = CursorrulesRule(
        _cursorrules_source(repo, sha) if show(repo, sha, ".cursorrules") is not None else None,
        "overwrite",
        None,
        "installation-guide.md",
    )
    if cursor.source is None:
        notes.append("guide copies {SOURCE}/.cursorrules, absent in this checkout: none installed")
    ide = {".cursor/mcp.json": rules["mcp_json"]}
    notes.append(
        "mcp.json runs '-m mcp_server.agent_os_rag', a module this mcp_server lacks: the IDE cannot start it"
    )
    gi = GitignoreRule("append", rules["gitignore"].split("\n"), doc="installation-guide.md")
    dirs = [f".agent-os/{d}" for d in rules["dirs"]] + [".cursor"]
    return Era(
        "installation-guide",
        "guide",
        sha,
        up,
        ".agent-os",
        derived,
        copies,
        dirs,
        cursor,
        ide,
        gi,
        False,
        False,
        list(rules["index_command"]),
        notes,
    )


def _parse_early_guide(text: str, rules: dict[str, Any]) -> dict[str, Any]:
    """Update ``rules`` from a real ``installation-guide.md``: its ``copy(...)``/``copy_recursively``
    calls, ``create_directory`` calls, the mcp.json block and the ``append_to_gitignore`` text."""
    out = dict(rules)
    dirs = re.findall(r'create_directory\("\.agent-os/([^"]+?)/?"\)', text)
    if dirs:
        out["dirs"] = dirs
    copies: list[tuple[str, str, Optional[list[str]]]] = []
    for src, dest in re.findall(
        r'copy_recursively\("agent-os-enhanced/([^"]+)", "\.agent-os/([^"]+)"\)', text
    ):
        copies.append((src, dest, None))
    singles: dict[tuple[str, str], list[str]] = {}
    for src, dest in re.findall(r'\bcopy\("agent-os-enhanced/([^"]+)", "\.agent-os/([^"]+?)/?"\)', text):
        d, f = src.rsplit("/", 1)
        singles.setdefault((d, dest), []).append(f)
    copies += [(d, dest, files) for (d, dest), files in singles.items()]
    if copies:
        out["copies"] = copies
    m = re.search(r'append_to_gitignore\("""(.*?)"""\)', text, re.S)
    if m:
        out["gitignore"] = m.group(1)
    m = re.search(r"### Create \.cursor/mcp\.json\s+```json\n(.*?)```", text, re.S)
    if m:
        import json

        out["mcp_json"] = json.loads(m.group(1))
    return out


def eras_table(repo: Path, method: str = "auto") -> list[dict[str, Any]]:
    """One row per run of consecutive commits (oldest first) with the same installer behaviour."""
    shas = git(repo, "rev-list", "--reverse", "--first-parent", "HEAD").split()
    rows: list[dict[str, Any]] = []
    for i, sha in enumerate(shas, 1):
        era = installer_era(repo, sha, method)
        s = era.summary()
        sig = {k: v for k, v in s.items() if k not in ("commit", "upstream")}
        if rows and rows[-1]["sig"] == sig:
            rows[-1]["last"] = (i, sha[:7], (era.upstream or "")[:7])
        else:
            rows.append(
                {
                    "first": (i, sha[:7], (era.upstream or "")[:7]),
                    "last": (i, sha[:7], (era.upstream or "")[:7]),
                    "sig": sig,
                }
            )
    return rows
