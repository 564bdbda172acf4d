"""One error hierarchy for the whole upgrader.

Every user-facing error says *what* failed, *why*, and *what to do next*, and
carries the process exit code that the Invoke task turns it into (see the
README's exit-code table).
"""

from __future__ import annotations

import traceback

from .wording import for_user

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_PREFLIGHT = 3
EXIT_LOCKED = 4
EXIT_CONFLICT_ABORT = 5
EXIT_ROLLED_BACK = 6
EXIT_ROLLBACK_FAILED = 7
EXIT_CLEANUP_FAILED = 8
EXIT_SOME_FAILED = 9  # remote hosts: some failed, within the failure budget
EXIT_STOPPED = 10  # remote hosts: the budget or a failed canary stopped the rollout
EXIT_UPGRADE_AVAILABLE = 11  # `check`: an upgrade is available (not an error)
EXIT_INTERNAL = 70  # a bug (EX_SOFTWARE): an error the upgrader did not expect
EXIT_INTERRUPTED = 130


class UpgradeError(Exception):
    """Base of every error the upgrader raises on purpose.

    :param what: one line, what failed.
    :param why: the cause, as precisely as known.
    :param hint: the next step for the user.
    """

    exit_code: int = EXIT_USAGE
    ref: str = "upgrade-error"

    def __init__(self, what: str, why: str = "", hint: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.why = why
        self.hint = hint

    def render(self) -> str:
        lines = [f"error[{self.ref}]: {self.what}"]
        if self.why:
            lines.append(f"  why:  {self.why}")
        if self.hint:
            lines.append(f"  next: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.render()


class UsageError(UpgradeError):
    """Bad usage or bad input (exit 2)."""

    exit_code = EXIT_USAGE
    ref = "bad-input"


class PreflightError(UpgradeError):
    """Pre-flight refused; nothing was changed (exit 3)."""

    exit_code = EXIT_PREFLIGHT
    ref = "preflight-refused"


class LockHeldError(UpgradeError):
    """Another upgrade holds the lock (exit 4)."""

    exit_code = EXIT_LOCKED
    ref = "lock-held"


class ConflictAbort(UpgradeError):
    """``--on-conflict abort`` stopped the run before any change (exit 5)."""

    exit_code = EXIT_CONFLICT_ABORT
    ref = "conflicts"


class PhaseError(UpgradeError):
    """A phase failed. The engine rolls back and reports exit 6."""

    exit_code = EXIT_ROLLED_BACK
    ref = "phase-failed"


class CleanupError(UpgradeError):
    """The upgrade was applied and validated, but cleanup failed (exit 8)."""

    exit_code = EXIT_CLEANUP_FAILED
    ref = "cleanup-failed"


class ProbeError(UpgradeError):
    """The MCP server could not be started, spoken to, or listed wrong tools.

    Inside a phase the driver rolls back and reports exit 6 (a :class:`PhaseError`); its other
    callers (the restart after a rollback, the demo) catch it and say what it means there. One
    that escapes is a bug, hence exit 70.
    """

    exit_code = EXIT_INTERNAL
    ref = "server-probe-failed"


class BackupError(UpgradeError):
    """A backup is missing, incomplete or does not match its manifest."""

    exit_code = EXIT_ROLLBACK_FAILED
    ref = "backup-invalid"


class RollbackError(UpgradeError):
    """Rollback failed; the message names the backup to restore by hand (exit 7)."""

    exit_code = EXIT_ROLLBACK_FAILED
    ref = "rollback-failed"


class StateError(UpgradeError):
    """The checkpoint file is unreadable, corrupted or from a newer schema."""

    exit_code = EXIT_USAGE
    ref = "bad-state"


class Interrupted(UpgradeError):
    """The user interrupted the run before anything was changed."""

    exit_code = EXIT_INTERRUPTED
    ref = "interrupted"


class UpgradeAvailable(Exception):
    """``check`` found an upgrade: not an error, but a distinct exit code (11) for scripts."""


def exit_status(exc: BaseException, debug: bool = False) -> tuple[str, int]:
    """The one place where an exception becomes what the user sees and the exit code.

    Used by the Invoke tasks (through the executor), the fabfile and the host engine.
    ``debug`` appends the traceback.
    """
    if isinstance(exc, UpgradeAvailable):
        return "", EXIT_UPGRADE_AVAILABLE
    if isinstance(exc, UpgradeError):
        text, code = exc.render(), exc.exit_code
    elif isinstance(exc, KeyboardInterrupt):
        text, code = "interrupted", EXIT_INTERRUPTED
    else:
        text = (f"error[internal]: {type(exc).__name__}: {exc}\n"
                "  why:  the upgrader met an error it does not handle (a bug)\n"
                "  next: rerun with --debug for the traceback and report it; `invoke status` "
                "shows whether anything is left to resume or roll back")
        code = EXIT_INTERNAL
    if debug and not isinstance(exc, KeyboardInterrupt):
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) + text
    return for_user(text), code
