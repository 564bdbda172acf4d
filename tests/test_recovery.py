"""Recovery corner cases: crashes during rollback and cleanup, rollback targets, edits made
while an upgrade runs, damaged backups, nested symlinks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import REPO, digest, invoke, sessions, upgrade, wait_for

from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import SampleSource

P = ".praxis-os"


def test_kill_during_automatic_rollback_then_upgrade_finishes_the_rollback(
    project: Path, source: SampleSource
) -> None:
    before = digest(project)
    r = upgrade(source, project, env={"PRAXIS_UPGRADE_FAULT": "phase-start:validate",
                                      "PRAXIS_UPGRADE_KILL": "rollback:file#2"})
    assert r.code == -signal.SIGKILL, r.text
    assert [s["status"] for s in sessions(project)] == ["rolling_back"]
    r2 = invoke("upgrade", "--project", str(project), "--yes")
    assert r2.code == 6, r2.text
    assert "rollback has now been completed" in r2.err
    assert digest(project) == before
    assert [s["status"] for s in sessions(project)] == ["rolled_back"]
    assert upgrade(source, project).code == 0


def test_kill_during_cleanup_then_rerun_finishes_it(project: Path, source: SampleSource) -> None:
    r = upgrade(source, project, env={"PRAXIS_UPGRADE_KILL": "cleanup:logged"})
    assert r.code == -signal.SIGKILL
    r2 = invoke("upgrade", "--project", str(project), "--yes")
    assert r2.code == 0, r2.text
    assert "[5/5] cleanup ok" in r2.out
    assert json.loads((project / P / "VERSION.json").read_text())["installed_commit"] == source.v2
    assert len((project / P / "UPDATE_LOG.txt").read_text().splitlines()) == 1
    (s,) = sessions(project)
    assert s["status"] == "completed"
    assert (project / P / ".upgrade-reports" / f"{s['session_id']}.md").exists()


def test_cleanup_failure_is_exit_8(project: Path, source: SampleSource) -> None:
    r = upgrade(source, project, env={"PRAXIS_UPGRADE_FAULT": "phase-start:cleanup"})
    assert r.code == 8, r.text
    assert "applied and validated" in r.err and "rerun `invoke upgrade`" in r.err
    r2 = invoke("upgrade", "--project", str(project), "--yes")
    assert r2.code == 0 and "[5/5] cleanup ok" in r2.out


def test_rollback_skips_upgrades_already_rolled_back(tmp_path: Path, source: SampleSource) -> None:
    proj = make_project(tmp_path / "p", source.path, source.v1)
    v1 = digest(proj)
    assert upgrade(source, proj).code == 0
    v2 = digest(proj)
    # a later upgrade fails and is rolled back automatically
    repo = tmp_path / "src3"
    subprocess.run(["git", "clone", "-q", str(source.path), str(repo)], check=True)
    (repo / "universal" / "standards" / "extra.md").write_text("# extra\n")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit",
                    "-qm", "v3"], check=True)
    assert upgrade(repo, proj, env={"PRAXIS_UPGRADE_FAULT": "phase-start:validate"}).code == 6
    assert digest(proj) == v2
    # `invoke rollback` now undoes the last upgrade that is still in effect: back to v1
    r = invoke("rollback", "--project", str(proj))
    assert r.code == 0, r.text
    assert digest(proj) == v1
    r2 = invoke("rollback", "--project", str(proj))
    assert r2.code == 2 and "nothing to roll back" in r2.err


def test_edit_made_while_the_upgrade_runs_survives_the_rollback(
    project: Path, source: SampleSource, pause_flag: Path
) -> None:
    victim = project / P / "standards/universal/architecture/solid-principles.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRAXIS_")}
    env.update(PRAXIS_UPGRADE_PAUSE="phase-start:content", PRAXIS_UPGRADE_PAUSE_FLAG=str(pause_flag),
               PRAXIS_UPGRADE_FAULT="phase-start:validate")
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "upgrade", "--source", str(source.path),
         "--project", str(project), "--yes"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(pause_flag.exists)
    edited = victim.read_text() + "\nmy edit while it ran\n"
    victim.write_text(edited)
    before = digest(project)
    pause_flag.unlink()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 6, out + err
    assert victim.read_text() == edited
    assert not Path(str(victim) + ".praxis-new").exists()
    assert digest(project) == before


def test_damaged_backup_before_any_change_is_made_again(project: Path,
                                                        source: SampleSource) -> None:
    r = upgrade(source, project, env={"PRAXIS_UPGRADE_KILL": "phase-done:backup"})
    assert r.code == -signal.SIGKILL
    (bdir,) = [p for p in (project / P / ".backups").iterdir() if p.is_dir()]
    victim = next(p for p in (bdir / "files").rglob("*") if p.is_file())
    victim.write_bytes(victim.read_bytes() + b"x")
    r2 = invoke("upgrade", "--project", str(project), "--yes")
    assert r2.code == 0, r2.text
    assert "damaged" in r2.out and "making it again" in r2.out


def test_nested_symlink_is_refused_and_its_target_untouched(tmp_path: Path,
                                                           source: SampleSource) -> None:
    proj = make_project(tmp_path / "p", source.path, source.v1)
    arch = proj / P / "standards/universal/architecture"
    outside = tmp_path / "outside-architecture"
    os.replace(arch, outside)
    os.symlink(outside, arch)
    snap = {p.name: p.read_bytes() for p in outside.iterdir()}
    r = upgrade(source, proj)
    assert r.code == 3, r.text
    assert "symlink" in r.err
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == snap


def test_resume_from_a_git_url_after_the_remote_moved(tmp_path: Path, source: SampleSource) -> None:
    remote = tmp_path / "remote"
    subprocess.run(["git", "clone", "-q", "--bare", str(source.path), str(remote)], check=True)
    proj = make_project(tmp_path / "p", source.path, source.v1)
    r = upgrade(f"file://{remote}", proj, env={"PRAXIS_UPGRADE_KILL": "phase-done:content"})
    assert r.code == -signal.SIGKILL
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(remote), str(work)], check=True)
    (work / "universal" / "standards" / "later.md").write_text("later\n")
    subprocess.run(["git", "-C", str(work), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(work), "-c", "user.name=t", "-c", "user.email=t@t", "commit",
                    "-qm", "later"], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "HEAD"], check=True)
    r2 = invoke("upgrade", "--project", str(proj), "--yes")
    assert r2.code == 0, r2.text
    assert json.loads((proj / P / "VERSION.json").read_text())["installed_commit"] == source.v2
