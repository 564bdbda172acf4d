"""The planner as data (in the spirit of pyinfra's operation tests): state in, plan out.

Each case is a table row: the files on disk, the base (what was installed), the new
source and the policy go in; the action and resolution of every path come out. No git,
no subprocess: the source is in memory and ``subprocess`` is made to fail if touched.
The end-to-end tests (test_pipeline, test_scenarios) run the same planner through git
and the real CLI.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from upgrade_tasks.gitutil import git_blob_id
from upgrade_tasks.history import History, recognise
from upgrade_tasks.installed import Base, from_history
from upgrade_tasks.layout import Install
from upgrade_tasks.plan import Action, Resolution, classify, plan_upgrade
from upgrade_tasks.source import BlobReader, Relation, Source, SourceFile

S = "standards/universal/"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Blobs:
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    def read(self, blob: str) -> bytes | None:
        return self.blobs.get(blob)

    def close(self) -> None:
        pass


@dataclass
class MemorySource(Source):
    """A source held in memory: target path -> bytes."""

    old: dict[str, bytes] = field(default_factory=dict)  # blob id -> bytes

    def history(self) -> History:
        return History()

    def blob_reader(self) -> BlobReader:
        return _Blobs(self.old)

    def relation(self, installed: str) -> Relation:
        return Relation.SAME if installed == self.commit else Relation.OLDER


def memory_source(tmp: Path, files: dict[str, bytes], old: dict[str, bytes]) -> MemorySource:
    src = MemorySource(root=tmp, commit="b" * 40, branch="main", spec="memory",
                       old={git_blob_id(d): d for d in old.values()})
    for target, data in files.items():
        src.files[target] = SourceFile(src="universal/standards/" + target[len(S):], target=target,
                                       area="content", sha256=sha(data), size=len(data),
                                       mode=0o644, abspath=tmp / "nowhere", blob=git_blob_id(data),
                                       data=data)
    return src


@pytest.fixture(autouse=True)
def no_subprocess(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(*a: Any, **k: Any) -> Any:
        raise AssertionError("the planner table tests must not start a process")

    monkeypatch.setattr(subprocess, "run", refuse)
    monkeypatch.setattr(subprocess, "Popen", refuse)
    yield


# -- the classification table, cell by cell -------------------------------------------------------
A, B, C = "a" * 64, "b" * 64, "c" * 64
CLASSIFY = [
    # local, base, new -> action
    (None, None, A, Action.ADD),
    (None, A, A, Action.USER_DELETED),
    (None, A, B, Action.USER_DELETED),
    (A, None, A, Action.UNCHANGED),
    (A, B, A, Action.UNCHANGED),
    (A, A, B, Action.UPDATE),
    (A, B, B, Action.USER_CHANGED),
    (A, B, C, Action.CONFLICT),
    (A, None, B, Action.CONFLICT),  # no base: both sides may have changed it
    (A, A, None, Action.REMOVE),
    (A, B, None, Action.ORPHAN),
    (A, None, None, Action.ORPHAN),
    (None, A, None, None),  # gone on both sides: nothing to plan
]


@pytest.mark.parametrize(("local", "base", "new", "want"), CLASSIFY)
def test_classify(local: str | None, base: str | None, new: str | None,
                  want: Action | None) -> None:
    assert classify(local, base, new) == want


# -- whole plans ---------------------------------------------------------------------------------------
@dataclass
class Case:
    id: str
    disk: dict[str, bytes]
    base: dict[str, bytes]
    new: dict[str, bytes]
    want: dict[str, tuple[Action, Resolution | None]]
    policy: str = "keep"


CASES = [
    Case("pristine file updated upstream",
         disk={S + "a.md": b"v1"}, base={S + "a.md": b"v1"}, new={S + "a.md": b"v2"},
         want={S + "a.md": (Action.UPDATE, None)}),
    Case("edited by the user only: kept",
         disk={S + "a.md": b"mine"}, base={S + "a.md": b"v1"}, new={S + "a.md": b"v1"},
         want={S + "a.md": (Action.USER_CHANGED, None)}),
    Case("both changed, keep: new version beside it",
         disk={S + "a.md": b"mine"}, base={S + "a.md": b"v1"}, new={S + "a.md": b"v2"},
         want={S + "a.md": (Action.CONFLICT, Resolution.KEEP)}),
    Case("both changed, theirs",
         disk={S + "a.md": b"mine"}, base={S + "a.md": b"v1"}, new={S + "a.md": b"v2"},
         want={S + "a.md": (Action.CONFLICT, Resolution.THEIRS)}, policy="theirs"),
    Case("new upstream file added; a deleted one stays deleted",
         disk={}, base={S + "gone.md": b"v1"}, new={S + "new.md": b"n", S + "gone.md": b"v2"},
         want={S + "new.md": (Action.ADD, None), S + "gone.md": (Action.USER_DELETED, None)}),
    Case("removed upstream: pristine removed, edited orphaned",
         disk={S + "p.md": b"v1", S + "e.md": b"mine"},
         base={S + "p.md": b"v1", S + "e.md": b"v1e"}, new={},
         want={S + "p.md": (Action.REMOVE, None), S + "e.md": (Action.ORPHAN, None)}),
    Case("user files are never planned",
         disk={S + "mine.md": b"x", "specs/a.md": b"y"}, base={}, new={},
         want={}),
    Case("already current: unchanged",
         disk={S + "a.md": b"v2"}, base={S + "a.md": b"v1"}, new={S + "a.md": b"v2"},
         want={S + "a.md": (Action.UNCHANGED, None)}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_plan(case: Case, tmp_path: Path) -> None:
    project = tmp_path / "project"
    install = Install(project)
    install.root.mkdir(parents=True)
    for rel, data in case.disk.items():
        (install.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (install.root / rel).write_bytes(data)
    src = memory_source(tmp_path, case.new, case.base)
    base = Base("manifest", "a" * 40,
                {t: (sha(d), git_blob_id(d)) for t, d in case.base.items()})
    plan = plan_upgrade(install, src, base, case.policy, "auto", reader=src.blob_reader())
    got = {a.target: (a.action, a.resolution) for a in plan.actions if a.target.startswith(S)}
    assert got == case.want
    # nothing outside the system areas is ever planned
    assert not [a for a in plan.actions if a.target.startswith(("specs/", "workspace/"))]


# -- recognising the installed commit of a copy-made install ---------------------------------------
def _history(commits: list[tuple[str, dict[str, bytes | None]]]) -> History:
    """Commits (id, {source path: content or None for deleted}), oldest first."""
    h = History()
    for cid, changes in commits:
        step: dict[str, str | None] = {}
        for path, data in changes.items():
            step[path] = None if data is None else git_blob_id(data)
            if data is not None:
                h.versions.setdefault(path, set()).add(git_blob_id(data))
        h.changes.append((cid, step))
    return h


U = "universal/standards/"
RECOGNISE = [
    ("an untouched install of the middle commit",
     [("c1", {U + "a.md": b"a1", U + "b.md": b"b1"}), ("c2", {U + "a.md": b"a2"}),
      ("c3", {U + "b.md": b"b3"})],
     {S + "a.md": b"a2", S + "b.md": b"b1"}, "c2", [S + "a.md", S + "b.md"], []),
    ("an edited file matches no version",
     [("c1", {U + "a.md": b"a1", U + "b.md": b"b1"}), ("c2", {U + "a.md": b"a2"})],
     {S + "a.md": b"a2", S + "b.md": b"mine"}, "c2", [S + "a.md"], [S + "b.md"]),
]


@pytest.mark.parametrize(("history", "disk", "commit", "pristine", "edited"),
                         [r[1:] for r in RECOGNISE], ids=[r[0] for r in RECOGNISE])
def test_recognise(tmp_path: Path, history: list[tuple[str, dict[str, bytes | None]]],
                   disk: dict[str, bytes], commit: str, pristine: list[str],
                   edited: list[str]) -> None:

    install = Install(tmp_path)
    rec = recognise(install, _history(history), {t: git_blob_id(d) for t, d in disk.items()})
    assert rec.installed_commit == commit
    assert sorted(rec.pristine) == pristine
    assert sorted(rec.edited) == edited


def test_a_tie_chooses_the_earliest_commit_and_nothing_becomes_deleted_by_you(
        tmp_path: Path) -> None:
    """Commits that only add files tie with the one installed: recognising the latest of them
    would turn the added files into "deleted by you" and never install them."""
    hist = _history([("c1", {U + "a.md": b"a1", U + "b.md": b"b1"}),
                     ("c2", {U + "c.md": b"c2"}), ("c3", {U + "d.md": b"d3"})])
    install = Install(tmp_path / "p")
    for rel, data in {S + "a.md": b"a1", S + "b.md": b"b1"}.items():
        (install.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (install.root / rel).write_bytes(data)
    new = {S + "a.md": b"a1", S + "b.md": b"b1", S + "c.md": b"c2", S + "d.md": b"d3"}
    src = memory_source(tmp_path, new, {"old": b""})
    base = from_history(install, hist, src.blob_reader())
    assert base.commit == "c1"
    plan = plan_upgrade(install, src, base, "keep", "auto", reader=src.blob_reader())
    got = {a.target: a.action for a in plan.actions if a.target.startswith(S)}
    assert got[S + "c.md"] == Action.ADD and got[S + "d.md"] == Action.ADD


def test_files_the_installer_never_copied_are_installed_and_said_so(tmp_path: Path) -> None:
    """No manifest: a file of the recognised commit missing on disk is no evidence the user
    deleted it (early installers skipped whole areas): it is installed, with a note."""
    hist = _history([("c1", {U + "a.md": b"a1", U + "b.md": b"b1", U + "w/x.md": b"x1"})])
    install = Install(tmp_path / "p")
    for rel, data in {S + "a.md": b"a1", S + "b.md": b"b1"}.items():
        (install.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (install.root / rel).write_bytes(data)
    src = memory_source(tmp_path, {S + "a.md": b"a1", S + "b.md": b"b1", S + "w/x.md": b"x1"},
                        {"x": b"x1"})
    base = from_history(install, hist, src.blob_reader())
    plan = plan_upgrade(install, src, base, "keep", "auto", reader=src.blob_reader())
    (x,) = [a for a in plan.actions if a.target == S + "w/x.md"]
    assert x.action == Action.ADD and "delete it again" in x.note
    assert any("were not in the install" in n for n in plan.notes)


def test_an_edited_file_is_merged_against_the_version_it_was_edited_from(tmp_path: Path) -> None:
    """w.md changed upstream between two commits that tie (the user edited it, so it explains
    nothing): its base is the candidate closest to the file on disk, not the oldest."""
    w1 = b"".join(b"line %d\n" % i for i in range(40))
    w2 = w1.replace(b"line 3\n", b"line three\n") + b"".join(b"more %d\n" % i for i in range(30))
    hist = _history([("c1", {U + "w.md": w1, U + "x.md": b"x1"}), ("c2", {U + "w.md": w2})])
    install = Install(tmp_path / "p")
    (install.root / S).mkdir(parents=True)
    (install.root / S / "x.md").write_bytes(b"x1")
    (install.root / S / "w.md").write_bytes(w2 + b"my own line\n")
    src = memory_source(tmp_path, {S + "w.md": w2, S + "x.md": b"x1"}, {"1": w1, "2": w2})
    base = from_history(install, hist, src.blob_reader())
    assert base.files[S + "w.md"] == (sha(w2), git_blob_id(w2))
    plan = plan_upgrade(install, src, base, "keep", "auto", reader=src.blob_reader())
    (w,) = [a for a in plan.actions if a.target == S + "w.md"]
    assert w.action == Action.USER_CHANGED  # only the user changed it since w2: nothing lost
