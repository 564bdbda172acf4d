"""Issue 14.5: ``--json`` on every task: one document on stdout, valid against the published schema
(``upgrade_tasks/schema/output-v1.json``), the human lines on stderr, and the same report as
the run's JSON report file."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import invoke, praxis, upgrade
from sshd_fixture import SshFleet, ssh_fleet  # noqa: F401 - fixture

from upgrade_tasks.jsondoc import SCHEMA, SCHEMA_PATH
from upgrade_tasks.sample import make_project
from upgrade_tasks.sample_source import SampleSource

VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def doc_of(out: str) -> dict[str, Any]:
    """stdout must be exactly one JSON document, valid against the schema."""
    doc = json.loads(out)
    errors = sorted(VALIDATOR.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    assert doc["schema"] == SCHEMA
    return doc


def test_the_schema_is_valid_and_shipped() -> None:
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_PATH.read_text()))
    assert "upgrade_tasks/schema" in str(SCHEMA_PATH)


def test_a_whole_life_in_json(project: Path, source: SampleSource) -> None:
    r = upgrade(source, project, "--dry-run", "--json")
    assert r.code == 0, r.text
    d = doc_of(r.out)
    assert d["ok"] and d["command"] == "upgrade" and d["result"]["outcome"] == "dry-run"
    plan = d["result"]["plan"]
    assert plan["source_commit"] == source.v2 and plan["installed_commit"] == source.v1
    assert {f["action"] for f in plan["files"]} >= {"add", "update", "conflict"}
    assert all(f["path"].startswith((".praxis-os/", ".gitignore")) for f in plan["files"])
    assert "Dry run (nothing written)" in r.err  # the lines went to stderr

    r = upgrade(source, project, "--json")
    assert r.code == 0, r.text
    d = doc_of(r.out)
    res = d["result"]
    assert res["outcome"] == "completed" and res["report"]["status"] == "completed"
    assert [p["status"] for p in res["report"]["phases"]] == ["ok"] * 6
    on_disk = json.loads((project / ".praxis-os" / ".upgrade-reports" /
                          f"{res['report']['session_id']}.json").read_text())
    for key in ("session_id", "phases", "files", "attention", "plan", "source_commit_after"):
        assert on_disk[key] == res["report"][key], key
    # the plan the dry run showed is the plan the run executed
    assert res["report"]["plan"]["files"] == plan["files"]

    r = upgrade(source, project, "--json")
    assert doc_of(r.out)["result"]["outcome"] == "up-to-date"

    r = invoke("status", "--project", str(project), "--json")
    st = doc_of(r.out)["result"]
    assert st["installed_commit"] == source.v2 and st["next"][0]["args"][0] == "rollback"

    r = invoke("rollback", "--project", str(project), "--json")
    assert r.code == 0, r.text
    d = doc_of(r.out)
    assert d["result"]["outcome"] == "rolled-back" and d["result"]["status"]["next"] == []


def test_failures_carry_the_error_and_the_exit_code(project: Path, source: SampleSource) -> None:
    r = upgrade(source, project, "--json", env={"PRAXIS_UPGRADE_FAULT": "phase-start:validate"})
    assert r.code == 6, r.text
    d = doc_of(r.out)
    assert d["ok"] is False and d["exit_code"] == 6
    assert d["error"]["kind"] == "phase-failed" and "rolled back" in d["error"]["what"]
    assert d["result"]["outcome"] == "rolled-back"
    assert d["result"]["report"]["status"] == "rolled_back"

    r = upgrade(source, project, "--json", "--on-conflict", "sometimes")
    assert r.code == 2
    d = doc_of(r.out)
    assert d["error"]["kind"] == "bad-input" and d["result"] == {}
    assert "--on-conflict" in d["error"]["what"] + d["error"]["why"]


def test_json_from_the_installed_command_and_the_demo(tmp_path: Path, source: SampleSource) -> None:
    proj = make_project(tmp_path / "p", source.path, source.v1)
    r = praxis("status", "--project", str(proj), "--json")
    assert r.code == 0, r.text
    assert doc_of(r.out)["result"]["state"] == "never upgraded"
    r = praxis("demo", "--json", timeout=300)
    assert r.code == 0, r.text
    d = doc_of(r.out)
    assert d["result"]["identical_after_rollback"] is True


def test_fleet_json(tmp_path: Path, source: SampleSource,
                    ssh_fleet: Callable[..., SshFleet]) -> None:  # noqa: F811
    fleet = ssh_fleet(n=2)
    items = [f"{h.spec}={make_project(tmp_path / h.name, source.path, source.v1)}"
             for h in fleet.hosts]
    r = invoke("upgrade", "--source", str(source.path), "--hosts", ",".join(items), "--json",
               "--identity", str(fleet.key), "--known-hosts", str(fleet.known_hosts),
               "--remote-dir", str(tmp_path / "remote"), "--report-dir", str(tmp_path / "rep"),
               timeout=300)
    assert r.code == 0, r.text
    d = doc_of(r.out)
    f = d["result"]["fleet"]
    assert [h["result"] for h in f["hosts"]] == ["ok", "ok"]
    assert f == json.loads((tmp_path / "rep" / "report.json").read_text())
    assert "2/2 host(s) ok" in r.err


@pytest.mark.parametrize("task", ["preflight", "backup", "content", "server", "validate", "cleanup",
                                  "upgrade", "rollback", "status", "demo"])
def test_every_task_takes_json(task: str) -> None:
    r = invoke("--help", task)
    assert r.code == 0 and "--json" in r.out, r.text


def test_a_phase_task_stops_and_says_so(project: Path, source: SampleSource) -> None:
    r = invoke("content", "--source", str(source.path), "--project", str(project), "--yes",
               "--json")
    assert r.code == 0, r.text
    d = doc_of(r.out)
    assert d["command"] == "content" and d["result"]["outcome"] == "stopped"
    assert [p["status"] for p in d["result"]["report"]["phases"]][:3] == ["ok"] * 3
    assert sys.executable  # (the session is resumed by the next upgrade)
    assert upgrade(source, project).code == 0
