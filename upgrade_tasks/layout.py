"""Where everything lives: the install's paths and the one source->target mapping table."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

PRAXIS_DIR = ".praxis-os"
#: Where installs lived before the product was renamed (upstream 925b10d). The upgrade moves
#: such an install to .praxis-os (one rename; a rollback renames it back).
LEGACY_DIR = ".agent-os"

#: Source prefix -> target prefix (relative to ``.praxis-os``). One explicit table;
#: every file of every area, ``.yaml`` included. ``mcp_server`` is handled by phase 3
#: (replaced exactly); the others by phase 2 (per-file, user edits preserved).
CONTENT_MAP: tuple[tuple[str, str], ...] = (
    ("universal/standards/", "standards/universal/"),
    ("universal/workflows/", "workflows/"),
    # early installers copied the usage guides; upstream folded them into standards at e106e8e,
    # so the pristine ones go, and the ones you changed stay
    ("universal/usage/", "usage/"),
    ("scripts/", "scripts/"),
)
SERVER_MAP: tuple[str, str] = ("mcp_server/", "mcp_server/")


@dataclass(frozen=True)
class Offered:
    """A file of yours that upstream also ships a version of: yours is never written; when
    upstream's changes, the new one is written beside it for you to review."""

    area: str
    source: str  # path in the source repository
    mine: str  # your file, relative to .praxis-os
    side: str  # where upstream's new version is offered


OFFERED: tuple[Offered, ...] = (
    # upstream's default config, when the source ships one (no commit so far has)
    Offered("config", "universal/config.json", "config.json", "config.json.praxis-new"),
    # the installer merged upstream's rules into the project's own .cursorrules
    Offered("cursorrules", "installation/.cursorrules", "../.cursorrules",
            "../.cursorrules.praxis-new"),
)
#: The project's ``.gitignore``, addressed relative to ``.praxis-os``.
GITIGNORE = "../.gitignore"
#: The file that asks the server to rebuild its search index (it deletes it when done).
REBUILD_FLAG = "standards/.rebuild_index"
#: The only paths outside .praxis-os the upgrader ever writes (an offer beside an earlier one
#: that is still there gets the source commit's short id as a last suffix).
PROJECT_FILES = (GITIGNORE, *(o.side for o in OFFERED if o.side.startswith("../")))
PROJECT_FILE_RE = re.compile("|".join(re.escape(p) + r"(\.[0-9a-f]{7,40})?" if p != GITIGNORE
                                      else re.escape(p) for p in PROJECT_FILES))

#: Path parts never copied from the source server tree (editor junk, caches).
SERVER_EXCLUDE_PARTS = frozenset({".cursor", ".agent-os", ".praxis-os", "__pycache__"})

#: Never written by the upgrader, whatever a manifest says (user-owned).
PROTECTED_PREFIXES: tuple[str, ...] = (
    "specs/",
    "workspace/",
    "standards/development/",
    "config.json",
    "../.cursorrules",
    "venv/",
    ".cache/vector_index/",
)


def map_source_path(src: str) -> tuple[str, str] | None:
    """Map a repo-relative source path to ``(area, target path)``; ``None`` if not installed.

    ``area`` is ``"content"``, ``"server"`` or an :data:`OFFERED` file's area.
    """
    for o in OFFERED:
        if src == o.source:
            return o.area, o.side
    for s_prefix, t_prefix in CONTENT_MAP:
        if src.startswith(s_prefix):
            return "content", t_prefix + src[len(s_prefix) :]
    s_prefix, t_prefix = SERVER_MAP
    if src.startswith(s_prefix):
        parts = PurePosixPath(src).parts
        if any(p in SERVER_EXCLUDE_PARTS for p in parts) or src.endswith((".pyc", ".pyo")):
            return None
        return "server", t_prefix + src[len(s_prefix) :]
    return None


def unmap_target(target: str) -> str | None:
    """Inverse of the mapping table: target path under .praxis-os -> source path."""
    for o in OFFERED:
        if target == o.side:
            return o.source
    for s_prefix, t_prefix in CONTENT_MAP:
        if target.startswith(t_prefix):
            return s_prefix + target[len(t_prefix):]
    if target.startswith(SERVER_MAP[1]):
        return SERVER_MAP[0] + target[len(SERVER_MAP[1]):]
    return None


def area_of_target(target: str) -> str:
    for o in OFFERED:
        if target == o.side:
            return o.area
    if target == GITIGNORE:
        return "gitignore"
    for _s, t_prefix in CONTENT_MAP:
        if target.startswith(t_prefix):
            return t_prefix.rstrip("/")
    if target.startswith(SERVER_MAP[1]):
        return "mcp_server"
    return "other"


def is_protected(target: str) -> bool:
    """User-owned paths: directories (trailing ``/``) by prefix, files exactly."""
    return any(
        target.startswith(p) or target == p.rstrip("/") if p.endswith("/") else target == p
        for p in PROTECTED_PREFIXES
    )


@dataclass(frozen=True)
class Install:
    """Paths of one prAxIs OS installation inside a project (in ``.praxis-os``, or in the
    ``.agent-os`` of an install made before the rename: :func:`find_install`)."""

    project: Path
    name: str = PRAXIS_DIR

    @property
    def root(self) -> Path:
        return self.project / self.name

    @property
    def legacy(self) -> bool:
        return self.name == LEGACY_DIR

    def renamed(self) -> Install:
        """The same install under ``.praxis-os``."""
        return Install(self.project)

    @property
    def server_dir(self) -> Path:
        return self.root / "mcp_server"

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def venv_python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def state_dir(self) -> Path:
        """The upgrader's checkpoints. Not ``.cache/state/``, where the server keeps its own
        workflow sessions (and logs an error for every file there it cannot read)."""
        return self.root / ".upgrade-state"

    @property
    def legacy_state_dir(self) -> Path:
        """Where releases before 0.2 wrote checkpoints: still read, so they can be resumed."""
        return self.root / ".cache" / "state"

    @property
    def rollback_journal(self) -> Path:
        """Written before ``invoke rollback`` restores anything, removed when it is done: a
        rollback killed half-way is finished by the next command."""
        return self.state_dir / "rollback.json"

    @property
    def reserve_file(self) -> Path:
        """Space held during an upgrade for its rollback (freed when it ends)."""
        return self.state_dir / ".rollback-reserve"

    @property
    def trash_dir(self) -> Path:
        """Trees taken out of the install, being deleted in the background
        (:func:`upgrade_tasks.fsutil.discard_tree`)."""
        return self.state_dir / "trash"

    @property
    def backups_dir(self) -> Path:
        return self.root / ".backups"

    @property
    def reports_dir(self) -> Path:
        return self.root / ".upgrade-reports"

    @property
    def lock_file(self) -> Path:
        return self.root / ".upgrade-lock"

    @property
    def lock_owner_file(self) -> Path:
        return self.root / ".upgrade-lock.owner.json"

    @property
    def installed_manifest(self) -> Path:
        return self.root / ".installed-manifest.json"

    @property
    def version_record(self) -> Path:
        return self.root / "VERSION.json"

    @property
    def update_log(self) -> Path:
        return self.root / "UPDATE_LOG.txt"

    @property
    def server_state_file(self) -> Path:
        return self.root / ".mcp_server_state.json"

    @property
    def staging_server(self) -> Path:
        return self.root / ".mcp_server.staged"

    @property
    def old_server(self) -> Path:
        return self.root / ".mcp_server.old"

    @property
    def requirements(self) -> Path:
        return self.server_dir / "requirements.txt"

    def path(self, rel: str) -> Path:
        return self.root / rel

    def check_no_symlink(self, rel: str, cache: dict[str, bool] | None = None) -> None:
        """Raise :class:`SymlinkInPath` when ``rel`` or a directory between .praxis-os (the
        project, for ``../`` paths) and it is a link: writing would go through it.
        (Plain strings and ``os.path``: this runs for every planned and every written path.)"""
        cache = {} if cache is None else cache
        target = os.path.normpath(os.path.join(str(self.root), rel))
        root = str(self.root if not rel.startswith("../") else self.project)
        prefix = root.rstrip(os.sep) + os.sep
        d = os.path.dirname(target)
        while d != root and d.startswith(prefix):
            if d not in cache:
                cache[d] = os.path.islink(d)
            if cache[d]:
                raise SymlinkInPath(Path(d))
            d = os.path.dirname(d)
        if os.path.islink(target):
            raise SymlinkInPath(Path(target))


def find_install(project: Path) -> Install:
    """The install in ``project``: ``.praxis-os``, else an ``.agent-os`` made before the rename
    (when neither exists, ``.praxis-os``, for the message that says so)."""
    modern = Install(project)
    if not modern.root.exists() and not modern.root.is_symlink() and (project / LEGACY_DIR).is_dir():
        return Install(project, LEGACY_DIR)
    return modern


class SymlinkInPath(Exception):
    """A symlink on a path the upgrade would write (:meth:`Install.check_no_symlink`)."""

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path


#: Paths the upgrader itself owns; excluded from "byte-identical after rollback" checks.
OWN_BOOKKEEPING = (
    ".upgrade-state",
    ".cache/state",
    ".backups",
    ".upgrade-reports",
    ".upgrade-lock",
    ".upgrade-lock.owner.json",
    "UPDATE_LOG.txt",
)
