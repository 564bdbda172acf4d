"""End to end: the real CLI on real git sources and real installs (issue 2)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import (
    REPO,
    digest,
    invoke,
    manifest_files,
    sessions,
    upgrade,
    wait_for,
)
from scenario_lib import git

from upgrade_tasks.layout import map_source_path
from upgrade_tasks.sample import (
    EDITED_CONFLICT,
    EDITED_LOCAL,
    EDITED_MERGE,
    USER_FILES,
    make_project,
)
from upgrade_tasks.sample_source import SampleSource, v2_files

P = ".praxis-os"


def expected_v2(rel_source: str) -> bytes:
    return v2_files()[rel_source]


def _v2_target(src_rel: str) -> str | None:
    mapped = map_source_path(src_rel)
    return mapped[1] if mapped and mapped[0] != "config" else None


def test_happy_path_upgrades_and_keeps_user_work(project: Path, source: SampleSource) -> None:
    root = project / P
    user_before = {rel: (root / rel).read_bytes() for rel in USER_FILES}
    conflict_before = (root / EDITED_CONFLICT).read_bytes()
    local_before = (root / EDITED_LOCAL).read_bytes()
    assert (root / "mcp_server" / "legacy_helpers.py").exists()

    r = upgrade(source, project)
    assert r.code == 0, r.text
    for n in range(6):
        assert f"[{n}/5]" in r.out
    # user files are untouched
    for rel, data in user_before.items():
        assert (root / rel).read_bytes() == data, rel
    v2 = {_v2_target(k): v for k, v in v2_files().items() if _v2_target(k)}
    # both sides changed the same lines: yours kept, markers and upstream's beside it
    assert (root / EDITED_CONFLICT).read_bytes() == conflict_before
    assert (root / (EDITED_CONFLICT + ".praxis-new")).read_bytes() == v2[EDITED_CONFLICT]
    markers = (root / (EDITED_CONFLICT + ".praxis-merge")).read_text()
    assert "<<<<<<< yours" in markers and ">>>>>>> upstream" in markers
    assert "Always pair." in markers and "git reflog" in markers
    # both sides changed different lines: merged cleanly, in place
    merged = (root / EDITED_MERGE).read_text()
    assert "(we use pytest)" in merged and "test trophy" in merged and "<<<<" not in merged
    assert not (root / (EDITED_MERGE + ".praxis-new")).exists()
    # only the user changed it: kept, nothing beside it
    assert (root / EDITED_LOCAL).read_bytes() == local_before
    assert not (root / (EDITED_LOCAL + ".praxis-new")).exists()
    # every pristine file now equals v2; removed ones are gone
    for tgt, data in v2.items():
        if tgt not in (EDITED_CONFLICT, EDITED_LOCAL, EDITED_MERGE):
            assert (root / tgt).read_bytes() == data, tgt
    assert not (root / "standards/universal/architecture/race-conditions.md").exists()
    assert (root / "standards/universal/concurrency/race-conditions.md").exists()
    # the server tree is exactly the source's: the stale module is gone
    assert not (root / "mcp_server" / "legacy_helpers.py").exists()
    srv = {p.relative_to(root).as_posix() for p in (root / "mcp_server").rglob("*") if p.is_file()}
    assert srv == {k for k in v2_files() if k.startswith("mcp_server/")}
    # bookkeeping: installed manifest, version record, one log line, reports, lock released
    assert json.loads((root / ".installed-manifest.json").read_text())["source_commit"] == source.v2
    assert json.loads((root / "VERSION.json").read_text())["installed_commit"] == source.v2
    log = (root / "UPDATE_LOG.txt").read_text().splitlines()
    assert len(log) == 1 and "upgraded" in log[0]
    (s,) = sessions(project)
    assert s["status"] == "completed" and s["completed_phases"] == [0, 1, 2, 3, 4, 5]
    rep = json.loads((root / ".upgrade-reports" / f"{s['session_id']}.json").read_text())
    assert rep["source_commit_after"] == source.v2 and rep["source_commit_before"] == source.v1
    assert rep["backup_id"] and [p["status"] for p in rep["phases"]] == ["ok"] * 6
    assert {c["path"]: c["resolution"] for c in rep["conflicts"]} == {
        EDITED_CONFLICT: "merge-conflict", EDITED_MERGE: "merged"}
    assert "pos_browser" in rep["validation"]["new_tools"]
    md = (root / ".upgrade-reports" / f"{s['session_id']}.md").read_text()
    assert f"{EDITED_CONFLICT}.praxis-merge" in md and "Needs your attention" in md
    assert not (root / ".upgrade-lock.owner.json").exists()
    assert (root / ".backups" / ".gitignore").read_text().strip().endswith("*")


def test_keep_policy_writes_new_versions_beside(project: Path, source: SampleSource) -> None:
    root = project / P
    before = {rel: (root / rel).read_bytes() for rel in (EDITED_CONFLICT, EDITED_MERGE)}
    r = upgrade(source, project, "--on-conflict", "keep")
    assert r.code == 0, r.text
    for rel, data in before.items():
        assert (root / rel).read_bytes() == data
        assert (root / (rel + ".praxis-new")).exists()
        assert not (root / (rel + ".praxis-merge")).exists()
        assert f"diff -u .praxis-os/{rel} .praxis-os/{rel}.praxis-new" in r.out


def test_second_upgrade_to_same_commit_changes_nothing(project: Path, source: SampleSource) -> None:
    assert upgrade(source, project).code == 0
    before = digest(project)
    r = upgrade(source, project)
    assert r.code == 0, r.text
    assert r.out.count("already up to date") == 1
    assert digest(project) == before


def test_dry_run_writes_nothing(project: Path, source: SampleSource) -> None:
    from upgrade_tasks.sample import tree_digest

    before = tree_digest(project, exclude=(), mtimes=True)
    r = upgrade(source, project, "--dry-run")
    assert r.code == 0, r.text
    assert "Dry run (nothing written)" in r.out
    assert EDITED_CONFLICT in r.out and "the merge has conflicts" in r.out
    assert "the two merge cleanly" in r.out
    assert "mcp_server/" in r.out and "replaced exactly" in r.out
    assert tree_digest(project, exclude=(), mtimes=True) == before


def test_dry_run_plan_is_what_the_real_run_does(project: Path, source: SampleSource) -> None:
    dry = upgrade(source, project, "--dry-run", "--json")
    sign = {"add": "+", "flag": "+", "update": "~", "remove": "-"}
    plan_lines = {f"{sign[f['action']]} {f['target']}"
                  for f in json.loads(dry.out)["result"]["plan"]["files"] if f["action"] in sign}
    assert upgrade(source, project).code == 0
    (s,) = sessions(project)
    arts = s["phase_artifacts"]["2"]
    done = {f"+ {p}" for p in arts["added"]} | {f"~ {p}" for p in arts["updated"]} | {
        f"- {p}" for p in arts["removed"]}
    assert plan_lines == done


@pytest.mark.parametrize(
    "point",
    [
        "phase-done:preflight",
        "phase-done:backup",
        "backup:file#3",
        "content:file#2",
        "fs:before-replace#4",
        "phase-done:content",
        "server:stage-file#2",
        "step:server:staged",
        "step:server:stopped",
        "server:between-renames",
        "step:server:swapped",
        "phase-done:server",
        "phase-done:validate",
    ],
)
def test_sigkill_then_rerun_resumes_to_the_same_result(
    tmp_path: Path, source: SampleSource, point: str
) -> None:
    ref = make_project(tmp_path / "ref", source.path, source.v1)
    assert upgrade(source, ref).code == 0
    proj = make_project(tmp_path / "proj", source.path, source.v1)
    v1 = digest(proj, portable=True)
    r = upgrade(source, proj, env={"PRAXIS_UPGRADE_KILL": point})
    assert r.code == -signal.SIGKILL, r.text
    # a copy of the killed install, rolled back instead of resumed, is back at v1
    other = tmp_path / "copy"
    shutil.copytree(proj, other, symlinks=True)
    rb = invoke("rollback", "--project", str(other))
    assert rb.code == 0, rb.text
    assert digest(other, portable=True) == v1
    st = invoke("status", "--project", str(proj))
    assert st.code == 0 and "unfinished session" in st.out and "invoke upgrade" in st.out
    r2 = invoke("upgrade", "--project", str(proj), "--yes")  # no --source: the session knows it
    assert r2.code == 0, r2.text
    assert "resuming upgrade session" in r2.out
    assert digest(proj, portable=True) == digest(ref, portable=True)
    assert manifest_files(proj) == manifest_files(ref)
    assert [s["status"] for s in sessions(proj)] == ["completed"]


@pytest.mark.parametrize(
    "env",
    [
        {"PRAXIS_UPGRADE_FAULT": "content:file#3"},
        {"PRAXIS_UPGRADE_FAULT": "phase-start:content"},
        {"PRAXIS_UPGRADE_FAULT": "server:between-renames"},
        {"PRAXIS_UPGRADE_FAULT": "step:server:swapped"},
        {"PRAXIS_UPGRADE_FAULT": "phase-start:validate"},
    ],
    ids=["content-mid", "content-start", "server-mid-swap", "server-after-swap", "validate"],
)
def test_failure_in_phases_2_to_4_rolls_back_byte_identical(
    project: Path, source: SampleSource, env: dict[str, str]
) -> None:
    before = digest(project)
    manifest_before = (project / P / ".installed-manifest.json").read_bytes()
    r = upgrade(source, project, env=env)
    assert r.code == 6, r.text
    assert "rolled back" in r.err and "error[phase-failed]" in r.err
    assert digest(project) == before
    assert (project / P / ".installed-manifest.json").read_bytes() == manifest_before
    assert not (project / P / "VERSION.json").exists()
    (s,) = sessions(project)
    assert s["status"] == "rolled_back"
    assert "rolled back" in (project / P / "UPDATE_LOG.txt").read_text()
    # and a later upgrade still works
    assert upgrade(source, project).code == 0


@pytest.mark.parametrize("fault", ["crash", "lose_tool", "traceback", "import_error"])
def test_broken_new_server_is_rolled_back(
    tmp_path: Path, source_factory, fault: str  # type: ignore[no-untyped-def]
) -> None:
    src = source_factory(fault)
    proj = make_project(tmp_path / "proj", src.path, src.v1)
    before = digest(proj)
    r = upgrade(src, proj)
    assert r.code == 6, r.text
    assert "phase 4 (validate)" in r.err
    assert digest(proj) == before
    assert "restored server: answers with 4 tools" in r.out


def test_ctrl_c_during_server_phase_rolls_back(project: Path, source: SampleSource,
                                               pause_flag: Path) -> None:
    before = digest(project)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRAXIS_")}
    env.update(PRAXIS_UPGRADE_PAUSE="step:server:swapped", PRAXIS_UPGRADE_PAUSE_FLAG=str(pause_flag))
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "upgrade", "--source", str(source.path),
         "--project", str(project), "--yes"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for(pause_flag.exists)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 6, out + err
    assert "interrupted" in out + err
    assert digest(project) == before


def test_two_concurrent_upgrades_exactly_one_proceeds(project: Path, source: SampleSource,
                                                      pause_flag: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRAXIS_")}
    env.update(PRAXIS_UPGRADE_PAUSE="phase-done:backup", PRAXIS_UPGRADE_PAUSE_FLAG=str(pause_flag))
    first = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "upgrade", "--source", str(source.path),
         "--project", str(project), "--yes"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    wait_for(pause_flag.exists)
    second = upgrade(source, project)
    pause_flag.unlink()
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err
    assert second.code == 4, second.text
    assert "another upgrade holds the lock" in second.err
    assert f"pid {first.pid}" in second.err or "held by pid" in second.err


def test_lock_left_by_a_dead_process_does_not_block(project: Path, source: SampleSource) -> None:
    code = (
        "import json,os,sys; from filelock import FileLock; "
        f"l=FileLock({str(project / P / '.upgrade-lock')!r}); l.acquire(); "
        f"open({str(project / P / '.upgrade-lock.owner.json')!r},'w').write("
        "json.dumps({'pid': os.getpid(), 'host': 'x', 'session': 's'})); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    r = upgrade(source, project)
    assert r.code == 0, r.text


def test_options_reach_pre_tasks_and_resume_continues(project: Path, source: SampleSource) -> None:
    r = invoke("content", "--source", str(source.path), "--project", str(project), "--yes",
               "--on-conflict", "theirs")
    assert r.code == 0, r.text
    assert "[0/5] preflight ok" in r.out and "[2/5] content ok" in r.out
    assert "[3/5]" not in r.out
    (s,) = sessions(project)
    assert s["completed_phases"] == [0, 1, 2]
    assert s["metadata"]["options"]["on_conflict"] == "theirs"
    assert s["phase_artifacts"]["0"]["source_path"] == str(source.path)
    # theirs reached the content pre-chain: the user's edit was replaced
    assert not (project / P / (EDITED_CONFLICT + ".praxis-new")).exists()
    st = invoke("status", "--project", str(project))
    assert "2 content" in st.out and "ok" in st.out
    r2 = invoke("validate", "--project", str(project), "--yes")
    assert r2.code == 0, r2.text
    assert "[4/5] validate ok" in r2.out and "[5/5]" not in r2.out
    r3 = invoke("upgrade", "--project", str(project), "--yes")
    assert r3.code == 0 and "[5/5] cleanup ok" in r3.out


def test_defaults_from_env_and_invoke_yaml(project: Path, source: SampleSource) -> None:
    before = digest(project)
    r = upgrade(source, project, env={"INVOKE_UPGRADE_ON_CONFLICT": "abort"})
    assert r.code == 5, r.text
    assert EDITED_CONFLICT in r.err and "nothing was changed" in r.err
    assert digest(project) == before
    assert not (project / P / ".upgrade-lock").exists()


def test_manual_rollback_after_success_restores_everything(project: Path,
                                                           source: SampleSource) -> None:
    before = digest(project)
    assert upgrade(source, project).code == 0
    r = invoke("rollback", "--project", str(project))
    assert r.code == 0, r.text
    assert "rollback complete" in r.out
    assert digest(project) == before
    assert [s["status"] for s in sessions(project)] == ["rolled_back"]


def test_rollback_of_older_backup_undoes_newer_upgrades_first(tmp_path: Path,
                                                              source: SampleSource) -> None:
    """v1 -> v2 -> v3, then ``rollback --backup <v2's backup>``: the v3 upgrade is undone
    first (its backup holds v2), then v2's (which holds v1). v3 adds a standard v2 never had
    and changes the server, so restoring v2's backup alone would leave v3's file behind."""
    repo = tmp_path / "src"
    git(tmp_path, "clone", "-q", str(source.path), str(repo))
    added = repo / "universal" / "standards" / "testing" / "mutation-testing.md"
    added.write_text("# Mutation testing\n\nKill the mutants.\n")
    (repo / "mcp_server" / "version.py").write_text('__version__ = "3.0.0"\n')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "v3")
    proj = make_project(tmp_path / "p", source.path, source.v1)
    v1 = digest(proj)
    assert upgrade(source, proj).code == 0  # -> v2
    first = sorted(p.name for p in (proj / P / ".backups").iterdir() if p.is_dir())
    assert upgrade(repo, proj).code == 0  # -> v3
    assert (proj / P / "standards/universal/testing/mutation-testing.md").exists()
    second = sorted(p.name for p in (proj / P / ".backups").iterdir() if p.is_dir())
    assert len(first) == 1 and len(second) == 2
    newer = (set(second) - set(first)).pop()
    r = invoke("rollback", "--project", str(proj), "--backup", first[0])
    assert r.code == 0, r.text
    assert r.out.index(newer) < r.out.index(first[0])  # newest first
    assert digest(proj) == v1
    assert [s["status"] for s in sessions(proj)] == ["rolled_back", "rolled_back"]


def test_backups_are_pruned_to_the_last_three(tmp_path: Path, source: SampleSource) -> None:
    proj = make_project(tmp_path / "p", source.path, source.v1)
    for _ in range(4):
        assert upgrade(source, proj).code == 0
        assert invoke("rollback", "--project", str(proj)).code == 0
    backups = [p for p in (proj / P / ".backups").iterdir() if p.is_dir()]
    assert len(backups) == 3


def test_list_and_help_document_every_task_and_flag() -> None:
    r = invoke("--list")
    for name, module in [("preflight", "preflight.py"), ("backup", "backup.py"),
                         ("content", "content.py"), ("server", "server.py"),
                         ("validate", "validate.py"), ("cleanup", "cleanup.py"),
                         ("rollback", "recovery.py")]:
        assert name in r.out and module in r.out
    for name in ("upgrade", "status", "demo"):
        assert name in r.out
    h = invoke("--help", "upgrade")
    for flag in ("--source", "--project", "--dry-run", "--yes", "--on-conflict", "--deps",
                 "--no-restart", "--debug"):
        assert flag in h.out, flag


def test_ide_launch_configs_are_reported_not_rewritten(project: Path, source: SampleSource) -> None:
    cursor = project / ".cursor" / "mcp.json"
    before = cursor.read_bytes()
    dry = upgrade(source, project, "--dry-run")
    assert "without --transport" in dry.out and "get_current_phase" in dry.out
    r = upgrade(source, project)
    assert r.code == 0, r.text
    assert cursor.read_bytes() == before
    (s,) = sessions(project)
    md = (project / P / ".upgrade-reports" / f"{s['session_id']}.md").read_text()
    assert "get_current_phase" in md and "--transport" in md


def test_legacy_install_without_manifest(tmp_path: Path, source: SampleSource) -> None:
    proj = make_project(tmp_path / "p", source.path, source.v1, with_manifest=False)
    root = proj / P
    stale = root / "standards/universal/architecture/race-conditions.md"
    assert stale.exists()
    dry = upgrade(source, proj, "--dry-run")
    assert "recognised from history" in dry.out and "explains 100%" in dry.out
    r = upgrade(source, proj)
    assert r.code == 0, r.text
    # pristine files recognised from history were updated or removed; edits kept or merged
    assert not stale.exists()
    assert "(we use pytest)" in (root / EDITED_MERGE).read_text()
    assert (root / (EDITED_CONFLICT + ".praxis-merge")).exists()
    m = json.loads((root / ".installed-manifest.json").read_text())
    assert m["source_commit"] == source.v2
    (s,) = sessions(proj)
    assert s["phase_artifacts"]["0"]["base_origin"] == "history"
    assert s["phase_artifacts"]["0"]["installed_commit"] == source.v1


def test_ask_without_a_terminal_behaves_as_abort(project: Path, source: SampleSource) -> None:
    before = digest(project)
    r = upgrade(source, project, "--on-conflict", "ask")
    assert r.code == 5, r.text
    assert "needs a terminal" in r.err and "behaves as abort" in r.err
    assert digest(project) == before


def test_ask_on_a_terminal_records_each_decision(project: Path, source: SampleSource) -> None:
    import pty

    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRAXIS_", "INVOKE_UPGRADE"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "upgrade", "--source", str(source.path),
         "--project", str(project), "--on-conflict", "ask"],
        stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    os.close(slave)
    # conflicts come sorted: the git-safety rules (keep mine), the test pyramid (merge); proceed
    # the answers come 3 s late: time at the prompts is the user's, not pre-flight's
    time.sleep(3)
    os.write(master, b"k\nm\ny\n")
    out, err = proc.communicate(timeout=60)
    os.close(master)
    assert proc.returncode == 0, out + err
    assert "conflict 1 of 2: " + EDITED_CONFLICT in out and "[k]eep mine" in out
    # the whole plan first, then the questions about it
    assert out.index("Plan: ") < out.index("conflict 1 of 2")
    root = project / P
    assert not (root / (EDITED_CONFLICT + ".praxis-new")).exists()  # kept mine, nothing beside
    assert "(we use pytest)" in (root / EDITED_MERGE).read_text()
    (s,) = sessions(project)
    rep = json.loads((root / ".upgrade-reports" / f"{s['session_id']}.json").read_text())
    assert [d["decision"] for d in rep["decisions"]] == ["keep mine", "merge"]
    assert rep["phases"][0]["duration_s"] < 2.5, rep["phases"][0]


def test_rollback_restores_directory_modes(project: Path, source: SampleSource) -> None:
    """Installs made by copying a git archive have 0775 directories: a rollback that rebuilds
    mcp_server/ or recreates a directory the upgrade emptied gives them their modes back."""
    root = project / P
    for d in (root / "mcp_server", root / "mcp_server" / "server", root / "standards" / "universal",
              *[p for p in (root / "standards" / "universal").iterdir() if p.is_dir()]):
        d.chmod(0o775)
    before = digest(project)
    assert upgrade(source, project).code == 0
    r = invoke("rollback", "--project", str(project))
    assert r.code == 0, r.text
    assert digest(project) == before
