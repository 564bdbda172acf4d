"""Issue 14.4: output people like to read on a terminal (a real pty here), plain lines anywhere
else, ``NO_COLOR`` honoured; help that shows each flag's values; ``nox -l`` lines that end."""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

from conftest import REPO, invoke, praxis, run_on_pty, upgrade

from upgrade_tasks.sample_source import SampleSource

SGR_COLOUR = re.compile(r"\x1b\[[0-9;]*3[0-9](;[0-9]+)*m|\x1b\[[0-9;]*;3[0-9]m")


def on_a_terminal(args: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """Run ``python -m upgrade_tasks ARGS`` with stdin/stdout/stderr on a pseudo-terminal."""
    e = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PYTHONPATH")
         and not k.startswith("PRAXIS_UPGRADE_")}
    e.update({"TERM": "xterm-256color", "COLUMNS": "120", "PYTHONPATH": str(REPO)}, **(env or {}))
    code, screen = run_on_pty([sys.executable, "-m", "upgrade_tasks", *args], e, timeout)
    assert code == 0, screen
    return screen


def visible(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", text).replace("\r", "")


def test_a_terminal_gets_tables_colour_and_a_line_per_phase(project: Path,
                                                            source: SampleSource) -> None:
    out = on_a_terminal(["upgrade", "--source", str(source.path), "--project", str(project),
                         "--dry-run"])
    assert SGR_COLOUR.search(out), "no colour on a terminal"
    seen = visible(out)
    # the plan: counts per place under real names, a legend, no internal area names
    assert re.search(r"where\s+new\s+updated\s+removed\s+conflicts", seen)
    assert re.search(r"\.gitignore\s+1", seen) and "gitignore/" not in seen
    assert "+ new" in seen and "~ updated" in seen and "! changed by you and upstream" in seen
    assert ".praxis-os/standards/universal/ai-safety/git-safety-rules.md" in seen
    out = on_a_terminal(["upgrade", "--source", str(source.path), "--project", str(project),
                         "--yes"])
    seen = visible(out)
    for n, name in enumerate(("preflight", "backup", "content", "server", "validate", "cleanup")):
        assert f"✓ [{n}/5] {name}" in seen
    assert "upgrade complete" in seen


def test_no_color_and_pipes(project: Path, source: SampleSource) -> None:
    out = on_a_terminal(["upgrade", "--source", str(source.path), "--project", str(project),
                         "--dry-run"], env={"NO_COLOR": "1"})
    assert not SGR_COLOUR.search(out), "NO_COLOR set, colour sent"
    assert "where" in visible(out)  # still the table
    r = upgrade(source, project)  # a pipe: plain lines, no escape codes at all
    assert r.code == 0 and "\x1b[" not in r.out
    assert "[0/5] preflight ok (" in r.out and "[5/5] cleanup ok (" in r.out


def test_help_shows_the_values_of_each_flag() -> None:
    r = praxis("--help", "upgrade")
    assert r.code == 0, r.text
    assert "--on-conflict=merge|keep|theirs|abort|ask" in r.out
    assert "--project=DIR" in r.out and "--ref=BRANCH|TAG|COMMIT" in r.out
    assert "=STRING" not in r.out
    r = invoke("--help", "upgrade")  # invoke's own help: the values are in each flag's text
    assert "merge|keep|theirs|abort|ask" in r.out


def test_nox_lists_whole_sentences() -> None:
    tree = ast.parse((REPO / "noxfile.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            first = (ast.get_docstring(node) or "").splitlines()[0]
            assert first.endswith((".", ")")), f"nox -l cuts {node.name}: {first!r}"
