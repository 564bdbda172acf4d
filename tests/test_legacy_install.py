"""Installs made before the product's rename live in ``.agent-os/``: the upgrade moves them to
``.praxis-os/`` (one rename, reversible by rollback) and reports the IDE lines to change."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

from conftest import invoke, upgrade

from upgrade_tasks.sample import make_project, tree_digest
from upgrade_tasks.sample_source import SampleSource

OLD, NEW = ".agent-os", ".praxis-os"


def legacy_project(dest: Path, source: SampleSource) -> Path:
    """A sample install moved to .agent-os, the IDE config pointing there, no manifest (the
    installers of that time wrote none)."""
    project = make_project(dest, source.path, source.v1, with_manifest=False)
    os.rename(project / NEW, project / OLD)
    cfg = project / ".cursor" / "mcp.json"
    cfg.write_text(cfg.read_text().replace(NEW, OLD))
    return project


def digest_of(root: Path) -> dict[str, object]:
    d = dict(tree_digest(root))
    for name in (".installed-manifest.json", "VERSION.json", "venv", ".mcp_server_state.json"):
        d.pop(name, None)
    return {k: v for k, v in d.items() if not k.startswith("venv/")}


def test_an_agent_os_install_is_moved_and_upgraded_and_the_ide_lines_reported(
        tmp_path: Path, source: SampleSource) -> None:
    project = legacy_project(tmp_path / "p", source)
    before = digest_of(project / OLD)
    dry = upgrade(source, project, "--dry-run")
    assert dry.code == 0, dry.text
    assert f"moved: {OLD}/ -> {NEW}/" in dry.out
    assert ".cursor/mcp.json (line" in dry.out and f"names {OLD}/" in dry.out
    assert not (project / NEW).exists()  # a dry run moves nothing
    r = upgrade(source, project)
    assert r.code == 0, r.text
    assert not (project / OLD).exists() and (project / NEW / "mcp_server").is_dir()
    assert "perl -pi -e 's#.agent-os/#.praxis-os/#g' .cursor/mcp.json" in r.out
    assert json.loads((project / NEW / "VERSION.json").read_text())["installed_commit"] == \
        source.v2
    back = invoke("rollback", "--project", str(project))
    assert back.code == 0, back.text
    assert not (project / NEW).exists()
    assert digest_of(project / OLD) == before


def test_a_move_killed_half_way_resumes_or_rolls_back(tmp_path: Path,
                                                      source: SampleSource) -> None:
    project = legacy_project(tmp_path / "p", source)
    before = digest_of(project / OLD)
    killed = upgrade(source, project, env={"PRAXIS_UPGRADE_KILL": "install:moved"})
    assert killed.code == -signal.SIGKILL, killed.text
    assert (project / NEW).is_dir() and not (project / OLD).exists()  # moved, not recorded
    copy = tmp_path / "copy"
    shutil.copytree(project, copy, symlinks=True)
    again = upgrade(source, project)  # resumes in .praxis-os
    assert again.code == 0, again.text
    assert (project / NEW / "standards").is_dir()
    back = invoke("rollback", "--project", str(copy))
    assert back.code == 0, back.text
    assert not (copy / NEW).exists() and digest_of(copy / OLD) == before


def test_a_failed_upgrade_of_an_agent_os_install_is_moved_back(tmp_path: Path,
                                                               source: SampleSource) -> None:
    project = legacy_project(tmp_path / "p", source)
    before = digest_of(project / OLD)
    r = upgrade(source, project, env={"PRAXIS_UPGRADE_FAULT": "phase-start:validate"})
    assert r.code == 6, r.text
    assert not (project / NEW).exists()
    assert digest_of(project / OLD) == before
