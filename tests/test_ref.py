"""Issue 14.6: ``--ref BRANCH|TAG|COMMIT`` upgrades to a chosen revision of a source (a path or a
URL) without checking it out by hand: read from a temporary clone, the user's checkout left as
it is; the plan, the report and the version record name the ref; a resume reopens it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import invoke, upgrade

from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import SampleSource, make_source_repo


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def src(tmp_path: Path) -> SampleSource:
    """A source of its own (its checkout is moved around by these tests)."""
    s = make_source_repo(tmp_path / "praxis-os")
    git(s.path, "branch", "release", s.v2)
    git(s.path, "tag", "v2.0", s.v2)
    git(s.path, "checkout", "-q", "--detach", s.v1)  # the user's checkout is at the old commit
    return s


def installed(project: Path) -> dict[str, str]:
    return json.loads((project / ".praxis-os" / "VERSION.json").read_text())  # type: ignore[no-any-return]


def test_a_branch_of_a_checkout_that_stays_as_it_is(tmp_path: Path, src: SampleSource) -> None:
    proj = make_project(tmp_path / "p", src.path, src.v1)
    (src.path / "my-notes.txt").write_text("untracked, in the user's checkout\n")
    # without --ref: the checkout is at v1 and dirty
    assert upgrade(src, proj).code == 3
    r = upgrade(src, proj, "--ref", "release", "--json")
    assert r.code == 0, r.text
    doc = json.loads(r.out)
    assert doc["result"]["report"]["plan"]["source_ref"] == "release"
    assert doc["result"]["report"]["source_ref"] == "release"
    assert doc["result"]["report"]["source"] == str(src.path)
    v = installed(proj)
    assert v["installed_commit"] == src.v2 and v["source"].endswith("@ release")
    # the user's checkout: same commit, same untracked file, nothing else
    assert git(src.path, "rev-parse", "HEAD") == src.v1
    assert git(src.path, "status", "--porcelain") == "?? my-notes.txt"


@pytest.mark.parametrize("ref", ["v2.0", "{v2}", "{v2_short}"])
def test_tags_and_commits_of_a_url(tmp_path: Path, src: SampleSource, ref: str) -> None:
    proj = make_project(tmp_path / "p", src.path, src.v1)
    ref = ref.format(v2=src.v2, v2_short=src.v2[:8])
    r = upgrade(f"file://{src.path}", proj, "--ref", ref, "--dry-run")
    assert r.code == 0, r.text
    assert f"(--ref {ref})" in r.out and src.v2[:10] in r.out
    r = upgrade(f"file://{src.path}", proj, "--ref", ref)
    assert r.code == 0, r.text
    assert installed(proj)["installed_commit"] == src.v2


def test_bad_refs_are_refused_before_anything(tmp_path: Path, src: SampleSource) -> None:
    proj = make_project(tmp_path / "p", src.path, src.v1)
    for ref, words in (("nosuch", "is not a branch, tag or commit of"),
                       ("-c core.pager=x", "starts with '-'"),
                       ("ma in", "spaces")):
        r = upgrade(src, proj, "--ref", ref)
        assert r.code == 2 and words in r.err, r.text
    assert not (proj / ".praxis-os" / ".upgrade-state").exists() or not list(
        (proj / ".praxis-os" / ".upgrade-state").glob("upgrade-*.json"))


def test_an_interrupted_ref_upgrade_resumes_at_the_same_commit(tmp_path: Path,
                                                               src: SampleSource) -> None:
    proj = make_project(tmp_path / "p", src.path, src.v1)
    r = upgrade(src, proj, "--ref", "release", env={"PRAXIS_UPGRADE_KILL": "content:file#2"})
    assert r.code == -9
    git(src.path, "branch", "-f", "release", src.v1)  # the branch moves meanwhile
    r = invoke("upgrade", "--project", str(proj), "--yes")
    assert r.code == 0, r.text
    assert "resuming upgrade session" in r.out
    assert installed(proj)["installed_commit"] == src.v2
