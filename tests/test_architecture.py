"""The package's shape: data flows one way (tasks -> driver -> phases -> core), no import
cycles, no import hidden inside a function, and the host engine ships only what it runs."""

from __future__ import annotations

import ast
import zipfile
from pathlib import Path

import pytest

from upgrade_tasks.zipapp import build_zipapp, host_modules

PKG = Path(__file__).resolve().parents[1] / "upgrade_tasks"

#: Each module's layer; a module may import its own layer or lower ones only.
EDGE = {"cli", "tasks", "program", "remote_main", "demo", "schedule_task", "fleet", "zipapp",
        "snapshot_pack", "ui", "jsondoc", "projects", "__main__"}
DRIVER = {"driver", "recovery", "status", "check"}
PHASES = {"preflight", "backup", "content", "server", "validate", "cleanup"}
RANK = {**{m: 3 for m in EDGE}, **{m: 2 for m in DRIVER}, **{m: 1 for m in PHASES}}


def _imports() -> dict[str, list[tuple[str, bool]]]:
    """module -> [(imported package module, at module level?)]"""
    out: dict[str, list[tuple[str, bool]]] = {}
    for p in PKG.glob("*.py"):
        tree = ast.parse(p.read_text())
        top = {id(n) for n in tree.body}
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                mods = [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
                found += [(m, id(node) in top) for m in mods if (PKG / f"{m}.py").exists()]
        out[p.stem] = found
    return out


def test_no_import_inside_a_function() -> None:
    lazy = [(m, dep) for m, deps in _imports().items() for dep, top in deps if not top]
    assert lazy == []


def test_layers_point_down_and_there_is_no_cycle() -> None:
    graph = {m: {d for d, _top in deps if d != "__init__"} for m, deps in _imports().items()}
    for m, deps in graph.items():
        for d in deps:
            assert RANK.get(d, 0) <= RANK.get(m, 0), f"{m} (layer {RANK.get(m, 0)}) imports {d}"
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            assert state.get(d) != 1, "import cycle: " + " -> ".join([*path, m, d])
            if d not in state:
                visit(d, [*path, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])


def test_phases_do_not_import_each_other() -> None:
    for m, deps in _imports().items():
        if m in PHASES:
            assert not {d for d, _ in deps} & (PHASES - {m}), m


@pytest.mark.parametrize("module", ["cli", "tasks", "fleet", "demo", "sample", "sample_source",
                                    "zipapp", "snapshot_pack"])
def test_the_zipapp_leaves_out_what_hosts_never_run(module: str) -> None:
    assert module not in host_modules(PKG)


def test_the_zipapp_holds_exactly_the_host_modules(tmp_path: Path) -> None:
    with zipfile.ZipFile(build_zipapp(tmp_path)) as zf:
        shipped = {n.split("/")[1][:-3] for n in zf.namelist()
                   if n.startswith("upgrade_tasks/") and n.endswith(".py")}
    assert shipped == set(host_modules(PKG))
    assert "remote_main" in shipped and "driver" in shipped
