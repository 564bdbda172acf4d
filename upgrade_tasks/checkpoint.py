"""The on-disk checkpoint of an upgrade session.

One JSON file per session at ``.praxis-os/.cache/state/<session>.json``, written
atomically after every phase and before every risky sub-step of phase 3. It
holds the spec's fields (``session_id``, ``workflow_type``, ``current_phase``,
``completed_phases``, ``phase_artifacts`` keyed by phase number as a string,
``metadata``) plus ``schema_version``, a ``status``, the plan and the step log.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import faults
from .errors import StateError
from .fsutil import atomic_write_json

SCHEMA_VERSION = 1
WORKFLOW_TYPE = "praxis_os_upgrade_v1"

RUNNING = "running"
COMPLETED = "completed"
ROLLED_BACK = "rolled_back"
ROLLBACK_FAILED = "rollback_failed"
ROLLING_BACK = "rolling_back"
ABORTED = "aborted"
FINISHED = (COMPLETED, ROLLED_BACK, ABORTED)

PHASES = ("preflight", "backup", "content", "server", "validate", "cleanup")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Session:
    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    # -- construction -------------------------------------------------------
    @classmethod
    def new(cls, state_dir: Path, options: dict[str, Any]) -> Session:
        sid = "upgrade-" + str(uuid.uuid4())
        ts = now_iso()
        data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "session_id": sid,
            "workflow_type": WORKFLOW_TYPE,
            "target_file": ".praxis-os",
            "status": RUNNING,
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
        return cls(path, raw)

    # -- accessors -----------------------------------------------------------
    @property
    def id(self) -> str:
        return str(self.data["session_id"])

    @property
    def status(self) -> str:
        return str(self.data.get("status", RUNNING))

    @property
    def completed(self) -> list[int]:
        return [int(x) for x in self.data.get("completed_phases", [])]

    def artifacts(self, phase: int) -> dict[str, Any]:
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

    # -- mutation (each persists) -------------------------------------------
    def save(self) -> None:
        self.data["metadata"]["updated_at"] = now_iso()
        atomic_write_json(self.path, self.data)

    def step(self, name: str) -> None:
        """Record a sub-step as done, durably, before the next risky action."""
        steps = self.data.setdefault("steps", [])
        if name not in steps:
            steps.append(name)
        self.save()
        faults.point(f"step:{name}")

    def complete_phase(self, phase: int, duration: float, summary: str) -> None:
        done = self.data.setdefault("completed_phases", [])
        if phase not in done:
            done.append(phase)
        self.data["current_phase"] = min(phase + 1, len(PHASES) - 1)
        self.data.setdefault("phase_results", {})[str(phase)] = {
            "name": PHASES[phase],
            "status": "ok",
            "duration_s": round(duration, 3),
            "summary": summary,
        }
        self.save()
        faults.point(f"phase-done:{PHASES[phase]}")

    def fail_phase(self, phase: int, duration: float, message: str) -> None:
        self.data.setdefault("phase_results", {})[str(phase)] = {
            "name": PHASES[phase],
            "status": "failed",
            "duration_s": round(duration, 3),
            "summary": message,
        }
        self.save()

    def set_status(self, status: str, **extra: Any) -> None:
        self.data["status"] = status
        self.data["metadata"].update(extra)
        self.save()


def list_sessions(state_dir: Path) -> list[Session]:
    """All upgrade sessions, oldest first. Unreadable files raise StateError."""
    if not state_dir.is_dir():
        return []
    out = []
    for p in state_dir.glob("upgrade-*.json"):
        s = Session.load(p)
        if s.data.get("workflow_type") != WORKFLOW_TYPE:
            continue
        out.append(s)
    out.sort(key=lambda s: str(s.data.get("metadata", {}).get("started_at", "")))
    return out


def unfinished_session(state_dir: Path) -> Session | None:
    running = [s for s in list_sessions(state_dir)
               if s.status in (RUNNING, ROLLING_BACK, ROLLBACK_FAILED)]
    return running[-1] if running else None
