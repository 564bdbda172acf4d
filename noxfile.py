"""Nox sessions: tests, lint, typecheck, bench. ``nox -l`` lists them."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (real git, real subprocesses, the sample MCP server)."""
    session.install("-e", ".[dev]")
    session.run("pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the package, the tasks and the tests."""
    session.install("ruff")
    session.run("ruff", "check", "upgrade_tasks", "tests", "tasks.py", "fabfile.py", "noxfile.py",
                "benchmarks")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the package and tasks.py."""
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session
def real(session: nox.Session) -> None:
    """Upgrades of installs at real prAxIs OS commits with the real server (args: SOURCE)."""
    session.install("-e", ".[dev]", "uv")
    source = session.posargs[0] if session.posargs else ""
    env = {"PRAXIS_REAL_SOURCE": source} if source else {}
    session.run("pytest", "-q", "-p", "no:cacheprovider", "-m", "real", "--timeout", "1800",
                "tests/real", *session.posargs[1:], env=env)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: median timings of dry-run, upgrade, no-op, rollback, status."""
    session.install("-e", ".[dev]", "uv")
    session.run("python", "-m", "benchmarks.run", *session.posargs)


@nox.session(name="bench-real")
def bench_real(session: nox.Session) -> None:
    """Benchmarks on the real server: cold start, upgrades, index, rollback (args: --source SPEC)."""
    session.install("-e", ".[dev]", "uv")
    session.run("python", "-m", "benchmarks.real", *session.posargs)


@nox.session
def crash(session: nox.Session) -> None:
    """Crash harness: kill runs and cut the power at every durable step; fails on a mixed state.

    An upgrade, a failing upgrade and a rollback are SIGKILLed at each durable step, then the
    power is cut at each durable step of an upgrade; each is resumed and rolled back."""
    session.install("-e", ".[dev]")
    session.run("python", "tests/crash_harness.py", *session.posargs)
    session.run("python", "tests/power_cut.py")
