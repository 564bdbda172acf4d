"""Data-driven scenarios (pyinfra style): state in (a source history, an install at one of its
commits, the user's edits), plan and final tree out. One row per class of file the content
upgrade must get right."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from scenario_lib import build_repo, git, make_install, options, run_upgrade

from upgrade_tasks.errors import UpgradeError
from upgrade_tasks.layout import Install
from upgrade_tasks.preflight import run_preflight
from upgrade_tasks.recovery import manual_rollback

S = "universal/standards/"
T = "standards/universal/"
LINES = b"l1\nl2\nl3\nl4\nl5\nl6\n"


@dataclass
class Scenario:
    id: str
    history: list[dict[str, bytes | None]]
    edits: dict[str, bytes | None] = field(default_factory=dict)  # target paths; None deletes
    installed: int = 0  # the commit the install was made at
    manifest: bool = True  # False: a copy-made install, recognised from history
    policy: str = "merge"
    plan: dict[str, str] = field(default_factory=dict)  # target -> action[:resolution]
    tree: dict[str, bytes | None] = field(default_factory=dict)  # final content; None = absent
    exit: int | None = None  # expected refusal code
    source_at: int | None = None  # check the source out at this commit (downgrades)
    setup: str = ""  # extra setup step


SCENARIOS = [
    Scenario("pristine-updated",
             [{S + "a.md": b"one\n"}, {S + "a.md": b"two\n"}],
             plan={T + "a.md": "update"}, tree={T + "a.md": b"two\n"}),
    Scenario("user-changed-kept",
             [{S + "a.md": b"one\n", S + "b.md": b"b\n"}, {S + "b.md": b"b2\n"}],
             edits={T + "a.md": b"mine\n"},
             plan={T + "a.md": "user-changed", T + "b.md": "update"},
             tree={T + "a.md": b"mine\n", T + "a.md.praxis-new": None}),
    Scenario("clean-merge",
             [{S + "a.md": LINES}, {S + "a.md": LINES.replace(b"l1", b"L1 upstream")}],
             edits={T + "a.md": LINES.replace(b"l6", b"l6 mine")},
             plan={T + "a.md": "conflict:merged"},
             tree={T + "a.md": LINES.replace(b"l1", b"L1 upstream").replace(b"l6", b"l6 mine"),
                   T + "a.md.praxis-new": None, T + "a.md.praxis-merge": None}),
    Scenario("conflicting-merge",
             [{S + "a.md": LINES}, {S + "a.md": LINES.replace(b"l3", b"l3 upstream")}],
             edits={T + "a.md": LINES.replace(b"l3", b"l3 mine")},
             plan={T + "a.md": "conflict:merge-conflict"},
             tree={T + "a.md": LINES.replace(b"l3", b"l3 mine"),
                   T + "a.md.praxis-new": LINES.replace(b"l3", b"l3 upstream")}),
    Scenario("binary-never-merged",
             [{S + "img.bin": b"\0\1\2"}, {S + "img.bin": b"\0\1\3"}],
             edits={T + "img.bin": b"\0\x09\x09"},
             plan={T + "img.bin": "conflict:keep"},
             tree={T + "img.bin": b"\0\x09\x09", T + "img.bin.praxis-new": b"\0\1\3"}),
    Scenario("user-only-file",
             [{S + "a.md": b"one\n"}, {S + "a.md": b"two\n"}],
             edits={T + "mine.md": b"my own\n", "standards/development/py.md": b"dev\n"},
             plan={T + "a.md": "update"},
             tree={T + "mine.md": b"my own\n", "standards/development/py.md": b"dev\n"}),
    Scenario("upstream-removed-pristine",
             [{S + "a.md": b"a\n", S + "gone.md": b"g\n"}, {S + "gone.md": None}],
             plan={T + "gone.md": "remove", "standards/.rebuild_index": "flag"},
             tree={T + "gone.md": None, T + "a.md": b"a\n", "standards/.rebuild_index": b""}),
    Scenario("upstream-removed-user-changed",
             [{S + "a.md": b"a\n", S + "gone.md": b"g\n"}, {S + "gone.md": None}],
             edits={T + "gone.md": b"g, with my notes\n"},
             plan={T + "gone.md": "orphan"},
             tree={T + "gone.md": b"g, with my notes\n"}),
    Scenario("user-deleted-not-resurrected",
             [{S + "a.md": b"a\n", S + "b.md": b"b\n"}, {S + "a.md": b"a2\n"}],
             edits={T + "b.md": None},
             plan={T + "b.md": "user-deleted", T + "a.md": "update"},
             tree={T + "b.md": None}),
    Scenario("directory-rename",
             [{S + "old/x.md": b"x\n", S + "old/y.md": b"y\n"},
              {S + "old/x.md": None, S + "old/y.md": None, S + "new/x.md": b"x\n",
               S + "new/y.md": b"y\n"}],
             edits={T + "old/y.md": b"y, edited\n"},
             plan={T + "old/x.md": "remove", T + "old/y.md": "orphan", T + "new/x.md": "add",
                   T + "new/y.md": "add"},
             tree={T + "old/x.md": None, T + "old/y.md": b"y, edited\n", T + "new/x.md": b"x\n",
                   T + "new/y.md": b"y\n"}),
    # a file becomes a directory upstream: the removal must come before the new children (the
    # content phase copies runs of adds on several threads; a removal is a barrier)
    Scenario("file-becomes-directory",
             [{S + "guide": b"flat\n", S + "a.md": b"a\n", S + "z.md": b"z\n"},
              {S + "guide": None, S + "guide/intro.md": b"i\n", S + "guide/more.md": b"m\n",
               S + "a.md": b"a2\n", S + "z.md": b"z2\n"}],
             plan={T + "guide": "remove", T + "guide/intro.md": "add", T + "guide/more.md": "add",
                   T + "a.md": "update", T + "z.md": "update"},
             tree={T + "guide/intro.md": b"i\n", T + "guide/more.md": b"m\n", T + "a.md": b"a2\n",
                   T + "z.md": b"z2\n"}),
    Scenario("directory-becomes-file",
             [{S + "guide/intro.md": b"i\n", S + "a.md": b"a\n"},
              {S + "guide/intro.md": None, S + "guide": b"flat\n", S + "a.md": b"a2\n"}],
             plan={T + "guide": "add", T + "guide/intro.md": "remove", T + "a.md": "update"},
             tree={T + "guide": b"flat\n", T + "a.md": b"a2\n"}),
    Scenario("user-workflow-survives",
             [{"universal/workflows/wf/phase.md": b"p1\n"},
              {"universal/workflows/wf/phase.md": b"p2\n"}],
             edits={"workflows/my_flow_v1/metadata.json": b"{}\n",
                    "workflows/my_flow_v1/phases/0/phase.md": b"mine\n"},
             plan={"workflows/wf/phase.md": "update"},
             tree={"workflows/wf/phase.md": b"p2\n", "workflows/my_flow_v1/metadata.json": b"{}\n",
                   "workflows/my_flow_v1/phases/0/phase.md": b"mine\n"}),
    Scenario("config-json-change",
             [{S + "a.md": b"a\n", "universal/config.json": b'{"rag": 1}\n'},
              {"universal/config.json": b'{"rag": 2}\n'}],
             edits={"config.json": b'{"rag": 1, "mine": true}\n'},
             plan={"config.json.praxis-new": "add"},
             tree={"config.json": b'{"rag": 1, "mine": true}\n',
                   "config.json.praxis-new": b'{"rag": 2}\n'}),
    Scenario("config-json-defaults-unchanged",
             [{S + "a.md": b"a\n", "universal/config.json": b'{"rag": 1}\n'}, {S + "a.md": b"b\n"}],
             edits={"config.json": b'{"rag": 1, "mine": true}\n'},
             plan={T + "a.md": "update"},
             tree={"config.json.praxis-new": None}),
    Scenario("gitignore-block",
             [{S + "a.md": b"a\n"}, {S + "a.md": b"b\n"}],
             edits={"../.gitignore": b"node_modules/\n.praxis-os/.cache/          # ~1.3GB index\n"},
             plan={"../.gitignore": "update"},
             setup="git-init-project"),
    Scenario("legacy-install-recognised-from-history",
             [{S + "a.md": b"a1\n", S + "b.md": LINES}, {S + "a.md": b"a2\n"},
              {S + "a.md": b"a3\n", S + "b.md": LINES.replace(b"l1", b"l1 up")}],
             installed=1, manifest=False,
             edits={T + "b.md": LINES.replace(b"l6", b"l6 mine"), T + "mine.md": b"mine\n"},
             plan={T + "a.md": "update", T + "b.md": "conflict:merged"},
             tree={T + "a.md": b"a3\n",
                   T + "b.md": LINES.replace(b"l1", b"l1 up").replace(b"l6", b"l6 mine"),
                   T + "mine.md": b"mine\n"}),
    Scenario("legacy-stale-file-from-an-older-version-is-pristine",
             [{S + "a.md": b"a1\n", S + "old.md": b"o\n"}, {S + "old.md": None, S + "a.md": b"a2\n"},
              {S + "a.md": b"a3\n"}],
             installed=1, manifest=False, setup="stale-old-md",
             plan={T + "a.md": "update", T + "old.md": "remove"},
             tree={T + "old.md": None, T + "a.md": b"a3\n"}),
    Scenario("symlinked-area-refused",
             [{"universal/workflows/wf/p.md": b"1\n"}, {"universal/workflows/wf/p.md": b"2\n"}],
             setup="symlink-workflows", exit=3),
    Scenario("source-symlink-entry-refused",
             [{S + "a.md": b"a\n"}, {S + "a.md": b"b\n"}],
             setup="source-symlink", exit=3),
    Scenario("downgrade-refused",
             [{S + "a.md": b"a1\n"}, {S + "a.md": b"a2\n"}],
             installed=1, source_at=0, exit=3),
]


def _prepare(sc: Scenario, tmp: Path) -> tuple[Path, Path]:
    repo = tmp / "src"
    shas = build_repo(repo, sc.history)
    proj = tmp / "proj"
    make_install(proj, repo, shas[sc.installed], with_manifest=sc.manifest)
    root = proj / ".praxis-os"
    for rel, data in sc.edits.items():
        p = root / rel
        if data is None:
            p.unlink()
        else:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    if sc.setup == "git-init-project":
        subprocess.run(["git", "init", "-q", str(proj)], check=True)
    elif sc.setup == "stale-old-md":
        # a copy-made install that never deleted anything: old.md from commit 0 is still there
        (root / T / "old.md").write_bytes(b"o\n")
    elif sc.setup == "symlink-workflows":
        os.replace(root / "workflows", tmp / "wf-elsewhere")
        os.symlink(tmp / "wf-elsewhere", root / "workflows")
    elif sc.setup == "source-symlink":
        os.symlink("/etc/passwd", repo / S / "passwd.md")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "link")
    if sc.source_at is not None:
        git(repo, "checkout", "-q", "--detach", shas[sc.source_at])
    return repo, proj


def _tree(proj: Path, rel: str) -> bytes | None:
    p = proj / ".praxis-os" / rel
    return p.read_bytes() if p.exists() else None


@pytest.mark.parametrize("sc", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario(sc: Scenario, tmp_path: Path) -> None:
    repo, proj = _prepare(sc, tmp_path)
    install = Install(proj)
    if sc.exit is not None:
        with pytest.raises(UpgradeError) as info:
            run_preflight(install, options(repo, install.project, on_conflict=sc.policy))
        assert info.value.exit_code == sc.exit, info.value.render()
        assert info.value.hint  # says what to do next
        return
    plan = run_preflight(install, options(repo, install.project, on_conflict=sc.policy)).plan
    got = {a.target: a.action + (f":{a.resolution}" if a.action == "conflict" else "")
           for a in plan.actions}
    for target, want in sc.plan.items():
        assert got.get(target) == want, (target, got.get(target), want)
    # user-only files are never planned
    for rel in sc.edits:
        if rel.endswith(("mine.md", "py.md")) or "my_flow" in rel:
            assert rel not in got
    run_upgrade(repo, proj, on_conflict=sc.policy)
    for rel, want_data in sc.tree.items():
        assert _tree(proj, rel) == want_data, rel
    if sc.id == "conflicting-merge":
        merge = _tree(proj, T + "a.md.praxis-merge") or b""
        assert b"<<<<<<< yours" in merge and b"l3 mine" in merge and b"l3 upstream" in merge
    if sc.id == "gitignore-block":
        gi = (proj / ".gitignore").read_text()
        assert gi.startswith("node_modules/\n") and "# >>> prAxIs OS upgrader" in gi
        block = gi.split("# >>> prAxIs OS upgrader", 1)[1].splitlines()[1:]
        block = block[: block.index("# <<< prAxIs OS upgrader")]
        assert ".praxis-os/.cache/" in block  # the user's line with a trailing comment is no pattern
        assert block and all("#" not in ln and ln == ln.strip() for ln in block)
        check = subprocess.run(
            ["git", "-C", str(proj), "check-ignore", "--no-index", ".praxis-os/.upgrade-lock",
             ".praxis-os/.backups/x", ".praxis-os/.upgrade-state/x.json",
             ".praxis-os/.cache/state/x.json", ".praxis-os/venv/bin/python", ".praxis-os/venv",
             ".praxis-os/mcp_server/__pycache__/x.pyc"], capture_output=True, text=True)
        assert len(check.stdout.splitlines()) == 7, check.stdout
        again = run_preflight(install, options(repo, install.project, on_conflict=sc.policy)).plan
        assert "../.gitignore" not in {a.target for a in again.actions}  # idempotent
    if sc.id.startswith("legacy-install"):
        assert plan.base_origin == "history"
        assert plan.installed_commit == git(repo, "rev-parse", "HEAD~1")
        assert any("explains 100%" in n for n in plan.notes), plan.notes
        manifest = (proj / ".praxis-os" / ".installed-manifest.json").read_text()
        assert git(repo, "rev-parse", "HEAD") in manifest  # the next upgrade has an exact base
    # a second upgrade to the same commit changes nothing
    before = {p: p.read_bytes() for p in (proj / ".praxis-os").rglob("*") if p.is_file()
              and ".cache" not in p.parts and ".backups" not in p.parts}
    run_upgrade(repo, proj, on_conflict=sc.policy)
    after = {p: p.read_bytes() for p in (proj / ".praxis-os").rglob("*") if p.is_file()
             and ".cache" not in p.parts and ".backups" not in p.parts}
    assert after == before
    if sc.id == "file-becomes-directory":  # and back: the rollback restores the flat file
        manual_rollback(options(repo, proj))
        assert _tree(proj, T + "guide") == b"flat\n" and _tree(proj, T + "a.md") == b"a\n"
        assert _tree(proj, T + "guide/intro.md") is None
    if sc.id == "directory-becomes-file":  # and back: the directory and its file return
        manual_rollback(options(repo, proj))
        assert _tree(proj, T + "guide/intro.md") == b"i\n" and _tree(proj, T + "a.md") == b"a\n"


def test_downgrade_allowed_with_flag(tmp_path: Path) -> None:
    sc = next(s for s in SCENARIOS if s.id == "downgrade-refused")
    repo, proj = _prepare(sc, tmp_path)
    run_upgrade(repo, proj, allow_downgrade=True)
    assert _tree(proj, T + "a.md") == b"a1\n"


def test_options_roundtrip() -> None:
    o = options(Path("/s"), Path("/p"), on_conflict="ask")
    assert o.on_conflict == "ask" and o.yes
