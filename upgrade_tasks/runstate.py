"""The state of one run: what this process knows about the upgrade it drives.

One :class:`Run` is made per command (by the Invoke executor, the host engine, the
demo or a test) and passed explicitly to the driver and the phases; nothing about a
run lives at module level. The checkpoint on disk is the truth that survives the
process; a Run is the process's handle on it (the session, the lock it holds, the
opened source and the plan).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .checkpoint import Session
from .layout import Install, find_install
from .lock import UpgradeLock
from .options import Options
from .output import Output
from .plan import Plan
from .redact import redact
from .source import Source
from .wording import for_user


def say(msg: str) -> None:
    """The default printer: a line on stdout, flushed (hosts stream it to the controller);
    credentials in URLs are masked and commands named as the user typed them
    (:mod:`upgrade_tasks.wording`)."""
    print(for_user(msg), flush=True)


@dataclass
class Run:
    """One command's run: its options and the session it started or resumed."""

    opts: Options
    install: Install
    #: the line printer; ``out.line`` when an :class:`Output` is given
    say: Callable[[str], None] = say
    #: how the run talks to its user (plain lines by default; a terminal's view, or --json,
    #: chosen at the edge)
    out: Output | None = None
    session: Session | None = None
    source: Source | None = None
    plan: Plan | None = None
    lock: UpgradeLock | None = None
    resumed: bool = False
    noop: bool = False
    notes: list[str] = field(default_factory=list)
    #: the command's result as data (the ``--json`` document's ``result``)
    result: dict[str, Any] = field(default_factory=dict)
    #: how to reach an SFTP ``--backup-to`` destination: the edge passes the fleet's connector
    #: (same host-key rules and ``--identity``); None: offsite's own default
    connect: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        if self.out is None:
            self.out = Output(self.say)
        else:
            self.say = self.out.line

    @property
    def ui(self) -> Output:
        assert self.out is not None
        return self.out

    @classmethod
    def of(cls, opts: Options, printer: Callable[[str], None] = say,
           out: Output | None = None) -> Run:
        return cls(opts, find_install(opts.project), printer, out)

    def need(self) -> tuple[Session, Source, Plan]:
        """Session, source and plan of a started run (phases 1-5 run only after phase 0)."""
        assert self.session is not None and self.source is not None and self.plan is not None
        return self.session, self.source, self.plan

    def started_with(self, name: str) -> Any:
        """Option ``name`` as given now, else as the session was started with it (the
        ``record=True`` options: a resumed run need not repeat ``--git-commit`` or
        ``--backup-to``)."""
        return getattr(self.opts, name) or self.need()[0].metadata.get("options", {}).get(name)

    def relocate(self, new: Install, *sessions: Session | None) -> None:
        """The install's directory was renamed (``.agent-os`` <-> ``.praxis-os``): follow it.
        The lock's file and the checkpoints moved with it (the lock itself is held on an open
        file, which a rename does not touch)."""
        old = self.install
        if new == old:
            return
        self.install = new
        for s in {id(x): x for x in (self.session, *sessions) if x is not None}.values():
            try:
                s.path = new.root / s.path.relative_to(old.root)
            except ValueError:
                pass
        if self.lock is not None:
            self.lock.lock_file, self.lock.owner_file = new.lock_file, new.lock_owner_file

    def take_lock(self, session_id: str) -> None:
        if self.lock is None:
            lock = UpgradeLock(self.install.lock_file, self.install.lock_owner_file)
            lock.acquire(session_id, redact(" ".join(sys.argv[:6])))
            self.lock = lock

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
