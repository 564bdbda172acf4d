"""Property: over random histories and random user edits, no user byte is ever lost, every
pristine file ends equal to the new source, and a second upgrade changes nothing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scenario_lib import build_repo, make_install, run_upgrade

from upgrade_tasks.backup_store import backup_file

SRC_PATHS = ["universal/standards/a.md", "universal/standards/b.md", "universal/standards/d/c.md",
             "universal/workflows/w/phase.md", "scripts/s.sh"]
TARGET = {
    "universal/standards/a.md": "standards/universal/a.md",
    "universal/standards/b.md": "standards/universal/b.md",
    "universal/standards/d/c.md": "standards/universal/d/c.md",
    "universal/workflows/w/phase.md": "workflows/w/phase.md",
    "scripts/s.sh": "scripts/s.sh",
}
LINE = st.sampled_from([b"alpha\n", b"beta\n", b"gamma\n", b"delta\n", b"eps\n", b"zeta\n"])
CONTENT = st.lists(LINE, min_size=1, max_size=6).map(b"".join)
CHANGE = st.one_of(st.none(), st.just("keep"), CONTENT)  # None deletes


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, object]:
    first = {p: draw(CONTENT) for p in SRC_PATHS if draw(st.booleans()) or p.endswith("a.md")}
    commits: list[dict[str, bytes | None]] = [dict(first)]
    for _ in range(draw(st.integers(1, 3))):
        c: dict[str, bytes | None] = {}
        for p in SRC_PATHS:
            ch = draw(CHANGE)
            if ch != "keep":
                c[p] = ch  # type: ignore[assignment]
        commits.append(c)
    installed = draw(st.integers(0, len(commits) - 2))
    edits = {t: draw(st.one_of(st.just("keep"), st.none(), CONTENT)) for t in TARGET.values()}
    user_only = draw(st.booleans())
    return {"commits": commits, "installed": installed, "edits": edits, "user_only": user_only,
            "manifest": draw(st.booleans()),
            "policy": draw(st.sampled_from(["merge", "keep", "theirs"]))}


def _tree_at(commits: list[dict[str, bytes | None]], upto: int) -> dict[str, bytes]:
    tree: dict[str, bytes] = {}
    for c in commits[: upto + 1]:
        for p, d in c.items():
            if d is None:
                tree.pop(p, None)
            else:
                tree[p] = d
    return tree


@settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "20")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_no_user_byte_is_lost(world: dict[str, object]) -> None:
    commits = world["commits"]
    assert isinstance(commits, list)
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        shas = build_repo(t / "src", commits)
        proj = make_install(t / "p", t / "src", shas[int(str(world["installed"]))],
                            with_manifest=bool(world["manifest"]))
        root = proj / ".praxis-os"
        user_changed: dict[str, bytes] = {}
        pristine: set[str] = set()
        edits = world["edits"]
        assert isinstance(edits, dict)
        for target, edit in edits.items():
            p = root / target
            if not p.exists():
                continue
            if edit is None:
                p.unlink()
            elif edit == "keep":
                pristine.add(target)
            elif edit != p.read_bytes():
                p.write_bytes(edit)
                user_changed[target] = edit
            else:
                pristine.add(target)
        if world["user_only"]:
            (root / "standards/universal").mkdir(parents=True, exist_ok=True)
            (root / "standards/universal/mine.md").write_bytes(b"only mine\n")
            (root / "workflows/my_flow/phase.md").parent.mkdir(parents=True, exist_ok=True)
            (root / "workflows/my_flow/phase.md").write_bytes(b"my workflow\n")

        run_upgrade(t / "src", proj, on_conflict=str(world["policy"]))

        new = _tree_at(commits, len(commits) - 1)
        backups = [d for d in (root / ".backups").iterdir() if d.is_dir()]
        for target, data in user_changed.items():
            live = (root / target).read_bytes() if (root / target).exists() else None
            saved = [backup_file(b, target) for b in backups]
            assert live == data or any(s.exists() and s.read_bytes() == data for s in saved), target
        for src, target in TARGET.items():
            if target in pristine:
                live = (root / target).read_bytes() if (root / target).exists() else None
                assert live == new.get(src), target
        if world["user_only"]:
            assert (root / "standards/universal/mine.md").read_bytes() == b"only mine\n"
            assert (root / "workflows/my_flow/phase.md").read_bytes() == b"my workflow\n"

        def snapshot() -> dict[str, bytes]:
            return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
                    if p.is_file() and not p.relative_to(root).as_posix().startswith(
                        (".cache", ".backups", ".upgrade-reports", "UPDATE_LOG", "venv"))}

        before = snapshot()
        run_upgrade(t / "src", proj, on_conflict=str(world["policy"]))
        assert snapshot() == before
