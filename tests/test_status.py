"""Issue 14.7: ``status`` tells the truth after upgrades, rollbacks, crashes and no-ops, and every
command it suggests works (each one is run here, and must exit 0)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Result, digest, invoke, upgrade

from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import SampleSource


def status(project: Path) -> dict[str, object]:
    r = invoke("status", "--project", str(project), "--json")
    assert r.code == 0, r.text
    doc = json.loads(r.out)
    result = doc["result"]
    assert isinstance(result, dict)
    return result


def text(project: Path) -> str:
    r = invoke("status", "--project", str(project))
    assert r.code == 0, r.text
    return r.out


def follow(project: Path) -> list[Result]:
    """Run every runnable command status suggests, in order; each must succeed."""
    done = []
    for n in status(project)["next"]:  # type: ignore[union-attr]
        assert isinstance(n, dict)
        if not n["runnable"]:
            continue
        r = invoke(*n["args"])
        assert r.code == 0, f"suggested `{n['command']}` failed:\n{r.text}"
        done.append(r)
    return done


def test_never_upgraded(project: Path, source: SampleSource) -> None:
    st = status(project)
    assert st["installed_commit"] == source.v1 and st["installed_from"] == "installed manifest"
    assert st["state"] == "never upgraded" and st["next"] == []
    # as the real installers leave it: no manifest, no version record
    (project / ".praxis-os" / ".installed-manifest.json").unlink()
    st = status(project)
    assert st["installed_commit"] is None and "never upgraded by this tool" in str(st["installed_from"])
    assert "unknown (no VERSION.json" not in text(project)


def test_after_upgrade_then_rollback_then_noop(project: Path, source: SampleSource) -> None:
    (project / ".praxis-os" / ".installed-manifest.json").unlink()  # as the installers leave it
    before = digest(project)
    assert upgrade(source, project).code == 0
    st = status(project)
    assert st["installed_commit"] == source.v2 and st["state"] == "completed"
    assert [n["args"][0] for n in st["next"]] == ["rollback"]  # type: ignore[index,union-attr]
    follow(project)
    assert digest(project) == before
    st = status(project)
    # the first install had no version record: the commit is the one the session recognised
    assert st["installed_commit"] == source.v1, st
    assert "rolled back" in str(st["installed_from"]) and st["state"] == "rolled back"
    assert st["next"] == []  # nothing left to roll back: nothing offered
    out = text(project)
    assert source.v1[:10] in out and "rollback" not in out.split("backups")[1]
    r = invoke("rollback", "--project", str(project))
    assert r.code == 2 and "nothing to roll back" in r.text  # what status did not suggest
    # a no-op upgrade changes neither the state nor the suggestions
    assert upgrade(source, project).code == 0
    assert upgrade(source, project).code == 0
    st = status(project)
    assert st["installed_commit"] == source.v2 and st["state"] == "completed"
    assert len(st["next"]) == 1  # type: ignore[arg-type]


def test_a_crashed_upgrade_is_interrupted_not_running(project: Path, source: SampleSource) -> None:
    before = digest(project)
    r = upgrade(source, project, env={"PRAXIS_UPGRADE_KILL": "content:file#2"})
    assert r.code == -9
    st = status(project)
    assert st["unfinished"] is True and st["lock_held"] is False
    assert str(st["state"]).startswith("interrupted after phase 1 (backup)"), st["state"]
    assert not str(st["state"]).startswith("running")
    assert st["installed_commit"] is None and "did not finish" in str(st["installed_from"])
    assert [n["args"][0] for n in st["next"]] == ["upgrade", "rollback"]  # type: ignore[index,union-attr]
    out = text(project)
    assert "(running)" not in out and "interrupted" in out
    # the second suggestion (undo) works as well as the first (resume): take the undo
    r = invoke("rollback", "--project", str(project))
    assert r.code == 0, r.text
    assert digest(project) == before
    assert status(project)["next"] == []


@pytest.mark.parametrize("fault", ["phase-start:validate"])
def test_after_a_failed_and_rolled_back_upgrade(project: Path, source: SampleSource, fault: str) -> None:
    r = upgrade(source, project, env={"PRAXIS_UPGRADE_FAULT": fault})
    assert r.code == 6, r.text
    st = status(project)
    assert st["state"] == "rolled back" and st["installed_commit"] == source.v1
    assert st["next"] == []
    assert st["session"]["error"]  # type: ignore[index]


def test_a_hostile_version_record_is_reported_not_a_crash(tmp_path: Path, source: SampleSource) -> None:
    proj = make_project(tmp_path / "p", source.path, source.v1)
    (proj / ".praxis-os" / ".installed-manifest.json").unlink()
    (proj / ".praxis-os" / "VERSION.json").write_text('["not", "an", "object"]')
    st = status(proj)
    assert st["installed_commit"] is None and "VERSION.json is unreadable" in str(st["installed_from"])
