"""The on-disk checkpoint of an upgrade session.

One JSON file per session at ``.praxis-os/.upgrade-state/<session>.json``, written
atomically after every phase and before every risky sub-step of phase 3. It
holds the spec's fields (``session_id``, ``workflow_type``, ``current_phase``,
``completed_phases``, ``phase_artifacts`` keyed by phase number as a string,
``metadata``) plus ``schema_version``, a ``status``, the plan and the step log.

Only this module edits the file's dict: the rest of the upgrader uses the typed
methods of :class:`Session` (mark a phase done or undone, record a step, set the
status) and each phase's artifacts bag.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

from . import faults
from .enums import StrEnum
from .errors import StateError
from .fsutil import atomic_write_json
from .layout import Install
from .plan import check_plan_json
from .trust import (
    BACKUP_ID,
    COMMIT,
    SESSION_ID,
    VENV_NAME,
    Bad,
    ident,
    opt,
    rel_path,
    required,
    typed,
)

SCHEMA_VERSION = 1
WORKFLOW_TYPE = "praxis_os_upgrade_v1"

#: The phases, in order (the driver's table names its functions; this is what is recorded).
PHASES = ("preflight", "backup", "content", "server", "validate", "cleanup")
LAST = len(PHASES) - 1


class Status(StrEnum):
    """The life of a session: running, then completed; or rolling back and rolled back (or rollback
    failed); or aborted before any change."""

    RUNNING = "running"
    COMPLETED = "completed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    ABORTED = "aborted"


#: A session in one of these states is over: nothing to resume or finish.
FINISHED = (Status.COMPLETED, Status.ROLLED_BACK, Status.ABORTED)
#: A session in one of these states is the install's unfinished business.
UNFINISHED = (Status.RUNNING, Status.ROLLING_BACK, Status.ROLLBACK_FAILED)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Session:
    """One upgrade session's checkpoint: the file on disk and its parsed content. Every change is saved
    atomically at once (temp file, fsync, rename); a SIGKILL leaves the previous or the new
    version."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    # -- construction -------------------------------------------------------
    @classmethod
    def new(cls, state_dir: Path, options: dict[str, Any]) -> Session:
        """A new session (not saved yet): a random id, status running, no phase done."""
        sid = "upgrade-" + str(uuid.uuid4())
        ts = now_iso()
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "session_id": sid,
            "workflow_type": WORKFLOW_TYPE,
            "target_file": ".praxis-os",
            "status": Status.RUNNING,
            "current_phase": 0,
            "completed_phases": [],
            "phase_artifacts": {},
            "phase_results": {},
            "steps": [],
            "metadata": {"started_at": ts, "updated_at": ts, "options": options,
                         "started_monotonic": time.time()},
        }
        return cls(state_dir / f"{sid}.json", data)

    @classmethod
    def load(cls, path: Path) -> Session:
        """Read and check a checkpoint; unreadable or newer-schema files raise StateError with the way out."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StateError(
                f"checkpoint {path} is unreadable",
                str(exc),
                f"if no upgrade is running, move it aside (mv {path} {path}.broken) and run "
                "`invoke rollback` to restore the latest backup, or `invoke upgrade` to start over",
            ) from exc
        if not isinstance(raw, dict) or "session_id" not in raw:
            raise StateError(
                f"checkpoint {path} is not an upgrade session",
                "the JSON lacks session_id",
                f"move it aside (mv {path} {path}.broken) and rerun",
            )
        version = raw.get("schema_version", 0)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise StateError(
                f"checkpoint {path} was written by a newer upgrader (schema {version})",
                f"this upgrader understands schema {SCHEMA_VERSION}",
                "use the newer upgrader to resume or roll back this session",
            )
        try:
            check_session_json(raw, path.name)
        except Bad as exc:
            raise StateError(
                f"checkpoint {path} fails its check and was not used", str(exc),
                f"if no upgrade is running, move it aside (mv {path} {path}.broken), then run "
                "`invoke rollback` (it restores the latest backup without the checkpoint) or "
                "`invoke upgrade` to start over",
            ) from None
        return cls(path, raw)

    def reload(self) -> Session:
        return Session.load(self.path)

    # -- reading -----------------------------------------------------------------
    @property
    def id(self) -> str:
        return str(self.data["session_id"])

    @property
    def status(self) -> Status:
        return Status(self.data.get("status", Status.RUNNING))

    @property
    def completed(self) -> list[int]:
        return [int(x) for x in self.data.get("completed_phases", [])]

    def next_phase(self) -> int:
        """The first phase not completed yet (the last one when all are)."""
        return next((i for i in range(len(PHASES)) if i not in self.completed), LAST)

    def phase_result(self, phase: int) -> Mapping[str, Any]:
        return MappingProxyType(self.data.get("phase_results", {}).get(str(phase), {}))

    @property
    def metadata(self) -> Mapping[str, Any]:
        return MappingProxyType(self.data["metadata"])

    @property
    def error(self) -> str:
        return str(self.data["metadata"].get("error") or "")

    @property
    def plan(self) -> dict[str, Any] | None:
        plan = self.data.get("plan")
        return plan if isinstance(plan, dict) else None

    def artifacts(self, phase: int) -> dict[str, Any]:
        """The phase's artifacts bag (what it found and did; read by later phases and reports).
        Changes are saved with the next :meth:`save` or mark."""
        arts: dict[str, Any] = self.data.setdefault("phase_artifacts", {}).setdefault(
            str(phase), {}
        )
        return arts

    def has_step(self, step: str) -> bool:
        return step in self.data.get("steps", [])

    @property
    def backup_id(self) -> str | None:
        b = self.artifacts(1).get("backup_id")
        return str(b) if b else None

    # -- changes (each persists) -------------------------------------------
    def save(self) -> None:
        self.data["metadata"]["updated_at"] = now_iso()
        atomic_write_json(self.path, self.data)

    def set_plan(self, plan: dict[str, Any]) -> None:
        self.data["plan"] = plan

    def step(self, name: str) -> None:
        """Record a sub-step as done, durably, before the next risky action."""
        steps = self.data.setdefault("steps", [])
        if name not in steps:
            steps.append(name)
        self.save()
        faults.point(f"step:{name}")

    def forget_steps(self, prefix: str) -> None:
        """Drop recorded sub-steps (``prefix``: e.g. ``server:``) so they run again."""
        self.data["steps"] = [x for x in self.data.get("steps", []) if not x.startswith(prefix)]
        self.save()

    def begin_phase(self, phase: int) -> None:
        self.data["current_phase"] = phase

    def mark_done(self, phase: int, duration: float, summary: str) -> None:
        """Record a phase as done with its duration and summary, durably; the last phase completes the
        session."""
        done = self.data.setdefault("completed_phases", [])
        if phase not in done:
            done.append(phase)
        if phase == LAST:
            self.data["status"] = Status.COMPLETED
        self.data["current_phase"] = min(phase + 1, LAST)
        self._result(phase, "ok", duration, summary)
        self.save()
        faults.point(f"phase-done:{PHASES[phase]}")

    def mark_undone(self, phase: int) -> None:
        """A recheck found the phase's result gone: it runs again."""
        self.data["completed_phases"] = [p for p in self.completed if p != phase]
        self.save()

    def mark_failed(self, phase: int, duration: float, message: str) -> None:
        self._result(phase, "failed", duration, message)
        self.save()

    def _result(self, phase: int, status: str, duration: float, summary: str) -> None:
        self.data.setdefault("phase_results", {})[str(phase)] = {
            "name": PHASES[phase],
            "status": status,
            "duration_s": round(duration, 3),
            "summary": summary,
        }

    def set_status(self, status: Status, **extra: Any) -> None:
        self.data["status"] = status
        self.data["metadata"].update(extra)
        self.save()

    def note(self, **extra: Any) -> None:
        """Add to the session's metadata (e.g. ``finished_at``) without changing its status."""
        self.data["metadata"].update(extra)
        self.save()


def check_session_json(raw: dict[str, Any], filename: str) -> None:
    """Check a checkpoint read back from disk (raises :class:`~upgrade_tasks.trust.Bad`): the
    fields the upgrader uses have their types, and every id and path in it is confined (the
    session id names report files, the backup id a directory it may delete, the venv names
    directories it may replace, the plan every path phase 2 writes)."""
    sid = ident(raw["session_id"], SESSION_ID, "session_id")
    if filename != f"{sid}.json":
        raise Bad(f"session_id: {sid!r} does not match the file name {filename!r}")
    status = raw.get("status", Status.RUNNING)
    if not isinstance(status, str) or status not in {s.value for s in Status}:
        raise Bad(f"status: {raw.get('status')!r} is not a session status")
    for p in typed(raw.get("completed_phases", []), list, "completed_phases"):
        if isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= LAST:
            raise Bad(f"completed_phases: {p!r} is not a phase number")
    typed(raw.get("current_phase", 0), int, "current_phase")
    for step in typed(raw.get("steps", []), list, "steps"):
        typed(step, str, "steps[]")
    meta = typed(required(raw, "metadata", ""), dict, "metadata")
    typed(meta.get("options", {}), dict, "metadata.options")
    typed(raw.get("phase_results", {}), dict, "phase_results")
    arts = typed(raw.get("phase_artifacts", {}), dict, "phase_artifacts")
    for key, value in arts.items():
        if key not in {str(i) for i in range(len(PHASES))}:
            raise Bad(f"phase_artifacts: {key!r} is not a phase number")
        typed(value, dict, f"phase_artifacts.{key}")
    pre, bak, srv = arts.get("0", {}), arts.get("1", {}), arts.get("3", {})
    if 0 in raw.get("completed_phases", []):
        ident(required(pre, "source_commit", "phase_artifacts.0."), COMMIT,
              "phase_artifacts.0.source_commit")
        if "plan" not in raw:
            raise Bad("plan: missing (phase 0 is recorded as done)")
    opt(pre.get("source_spec"), typed, str, "phase_artifacts.0.source_spec")
    opt(bak.get("backup_id"), ident, BACKUP_ID, "phase_artifacts.1.backup_id")
    venv = bak.get("venv_before")
    if venv is not None:
        typed(venv, dict, "phase_artifacts.1.venv_before")
        if venv.get("moved_to"):
            rel_path(venv["moved_to"], "phase_artifacts.1.venv_before.moved_to", under=".venvs")
    opt(srv.get("new_venv_name"), ident, VENV_NAME, "phase_artifacts.3.new_venv_name")
    for rel in typed(srv.get("server_tree", {}), dict, "phase_artifacts.3.server_tree"):
        rel_path(rel, "phase_artifacts.3.server_tree", under="mcp_server")
    if "plan" in raw:
        check_plan_json(raw["plan"])


def list_sessions(install: Install) -> list[Session]:
    """All upgrade sessions, oldest first (those written by older releases under
    ``.cache/state/`` too). Unreadable files raise StateError."""
    out = []
    paths = [p for d in (install.legacy_state_dir, install.state_dir) if d.is_dir()
             for p in d.glob("upgrade-*.json")]
    for p in paths:
        s = Session.load(p)
        if s.data.get("workflow_type") != WORKFLOW_TYPE:
            continue
        out.append(s)
    out.sort(key=lambda s: str(s.data.get("metadata", {}).get("started_at", "")))
    return out


def unfinished_session(install: Install) -> Session | None:
    running = [s for s in list_sessions(install) if s.status in UNFINISHED]
    return running[-1] if running else None
