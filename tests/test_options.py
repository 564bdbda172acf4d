"""The option model: every option declared once, everything else derived and checked."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
from pathlib import Path

import pytest
from conftest import invoke

from upgrade_tasks import options
from upgrade_tasks.errors import UsageError
from upgrade_tasks.options import Options
from upgrade_tasks.tasks import ns

REPO = Path(__file__).resolve().parents[1]


def test_every_task_flag_is_declared_and_documented() -> None:
    for name in ns.task_names:
        task = ns[name]
        args = {a.name for a in task.get_arguments()}
        declared = {f.name for f in options.options_for(name)}
        assert args == declared, name
        for f in options.options_for(name):
            assert options.describe(f), f.name


def test_options_are_not_listed_again_anywhere() -> None:
    """No function outside options.py takes a list of options as parameters, and no dict
    literal declares a list of options with their values (the ten copies issue 11 found;
    a report that records the options a run used is not a declaration)."""
    names = {f.name for f in dataclasses.fields(Options)}
    sources = [p for p in (REPO / "upgrade_tasks").glob("*.py") if p.name != "options.py"]
    sources += [REPO / "tasks.py", REPO / "fabfile.py"]
    for p in sources:
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                params = {a.arg for a in node.args.args + node.args.kwonlyargs}
                assert len(params & names) < 4, (p.name, node.name, sorted(params & names))
            if isinstance(node, ast.Dict):
                keys = {k.value for k, v in zip(node.keys, node.values)
                        if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)}
                assert len(keys & names) < 4, (p.name, node.lineno, sorted(keys & names))


@pytest.mark.parametrize(("given", "says"), [
    ({"parallel": "abc"}, ["--parallel 'abc' is not a whole number", "at least 1"]),
    ({"parallel": "0"}, ["--parallel '0' is out of range", "at least 1"]),
    ({"canary": "-3"}, ["--canary '-3' is out of range", "at least 0"]),
    ({"max_fail": "abc"}, ["--max-fail 'abc' is not a number", "between 0 and 100"]),
    ({"max_fail": "150"}, ["--max-fail '150' is out of range", "between 0 and 100"]),
    ({"max_fail": "nan"}, ["--max-fail 'nan' is not a number"]),
    ({"on_conflict": "yolo"}, ["--on-conflict 'yolo' is not a valid choice",
                               "merge, keep, theirs, abort, ask"]),
    ({"deps": "x"}, ["--deps 'x' is not a valid choice", "auto, skip, force"]),
])
def test_bad_flag_values_are_refused_with_the_allowed_values(given: dict[str, str],
                                                            says: list[str]) -> None:
    with pytest.raises(UsageError) as e:
        options.resolve(given, {}, {})
    for s in says:
        assert s in e.value.render()


def test_config_values_name_their_origin() -> None:
    with pytest.raises(UsageError) as e:
        options.resolve({}, {"probe_timeout": "-1"}, {"INVOKE_UPGRADE_PROBE_TIMEOUT": "-1"})
    assert "INVOKE_UPGRADE_PROBE_TIMEOUT '-1' is out of range" in e.value.render()
    with pytest.raises(UsageError) as e:
        options.resolve({}, {"keep_backups": 0}, {})
    assert "upgrade.keep_backups (invoke.yaml) 0 is out of range" in e.value.render()


def test_precedence_flag_over_config_over_default() -> None:
    o = options.resolve({}, {}, {})
    assert o.parallel == 1 and o.on_conflict == "merge" and o.smoke_tools == (
        "get_server_info", "current_date")
    o = options.resolve({}, {"parallel": "4", "smoke_tools": "a, b"}, {})
    assert o.parallel == 4 and o.smoke_tools == ("a", "b")
    o = options.resolve({"parallel": "2"}, {"parallel": 4}, {})
    assert o.parallel == 2


def test_the_host_engine_parses_what_the_controller_sends() -> None:
    o = options.resolve({"source": "/x/s.zip", "project": "/p", "on_conflict": "keep",
                         "deps": "skip", "no_restart": True, "offline": True,
                         "find_links": "/w", "dry_run": True},
                        {"probe_timeout": 5, "keep_backups": 2, "smoke_tools": "t1,t2"}, {})
    argv = options.to_argv(o, "upgrade")
    parser = argparse.ArgumentParser()
    options.add_arguments(parser, "upgrade")
    back = options.from_namespace(parser.parse_args(argv[1:]))
    for f in dataclasses.fields(Options):
        if "upgrade" in f.metadata["spec"].host:
            assert getattr(back, f.name) == getattr(o, f.name), f.name


def test_task_signatures_are_derived() -> None:
    sig = options.signature_for("rollback")
    assert list(sig.parameters)[0] == "c"
    assert sig.parameters["backup"].default is None
    assert sig.parameters["yes"].default is False
    assert "canary" not in sig.parameters
    assert inspect.signature(ns["upgrade"].body).parameters.keys() == options.signature_for(
        "upgrade").parameters.keys()


@pytest.mark.parametrize(("args", "env", "says"), [
    (["status", "--parallel", "0"], {}, "--parallel '0' is out of range"),
    (["upgrade", "--max-fail=abc", "--hosts", "h"], {}, "--max-fail 'abc' is not a number"),
    (["status"], {"INVOKE_UPGRADE_PARALLEL": "abc"}, "INVOKE_UPGRADE_PARALLEL 'abc'"),
])
def test_bad_values_exit_2_through_the_cli(tmp_path: Path, args: list[str], env: dict[str, str],
                                          says: str) -> None:
    r = invoke(*args, "--project", str(tmp_path), env=env)
    assert r.code == 2, r.text
    assert says in r.err and "Traceback" not in r.text
