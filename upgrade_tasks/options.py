"""Every option of the upgrader, declared once.

Each field of :class:`Options` is one option: its type, default, help, allowed
values, which tasks take it and whether it travels to remote hosts. Everything
else is derived from these declarations (the way nox's ``_option_set`` derives
its parser, environment variables and ``to_argv`` from one list):

* the Invoke task signatures and their ``--help`` (:func:`signature_for`,
  :func:`help_for`; ``upgrade_tasks.tasks`` builds the tasks from them),
* the ``upgrade`` section of Invoke's config tree (:func:`config_defaults`:
  every key present, so ``INVOKE_UPGRADE_<KEY>`` variables can set it),
* the host engine's argparse (:func:`add_arguments`) and the argv the
  controller sends to hosts (:func:`to_argv`).

Values are parsed and validated once, where they enter (:func:`resolve`: a
flag, ``invoke.yaml``, an ``INVOKE_UPGRADE_*`` variable or the host's argv):
a wrong type or range is a :class:`~upgrade_tasks.errors.UsageError` (exit 2)
naming the option, where the value came from and the allowed values.

This module imports nothing from Invoke: the host engine (a zipapp run by a
bare ``python3``) uses it too.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError
from .redact import redact

# -- which tasks take an option ------------------------------------------------------------
#: The six phase tasks; ``upgrade`` chains them and takes everything they take.
PHASE_TASKS = ("preflight", "backup", "content", "server", "validate", "cleanup")
RUN = (*PHASE_TASKS, "upgrade")
#: Commands that act on one install: locally, or on each host with ``--hosts``.
INSTALL_COMMANDS = (*RUN, "rollback", "status", "check")
#: Commands that also run on remote hosts (--hosts) and over several projects (--projects).
REMOTE = ("upgrade", "rollback", "status", "check")
#: Upgrade and check read a source.
SOURCED = (*RUN, "check")
ALL = (*INSTALL_COMMANDS, "discover", "schedule", "demo")

_TRUE = frozenset({"1", "true", "yes", "on", "y"})
_FALSE = frozenset({"0", "false", "no", "off", "n", ""})


@dataclass(frozen=True)
class Spec:
    """How one option is parsed, shown and passed on (the metadata of an :class:`Options` field)."""

    help: str
    tasks: tuple[str, ...]  # tasks that take it as a flag (empty: config only)
    host: tuple[str, ...] = ()  # host-engine commands it is passed to
    choices: tuple[str, ...] = ()
    low: float | None = None  # allowed range (inclusive)
    high: float | None = None
    metavar: str = ""
    #: kept in the session's checkpoint even though hosts do not take it (a resume uses it)
    record: bool = False


def opt(default: Any, help: str, tasks: Sequence[str] = (), *, host: Sequence[str] = (),
        choices: Sequence[str] = (), low: float | None = None, high: float | None = None,
        metavar: str = "", record: bool = False) -> Any:
    """Declare an option: a dataclass field whose metadata is its :class:`Spec`."""
    spec = Spec(help, tuple(tasks), tuple(host), tuple(choices), low, high, metavar, record)
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not options")
    return field(default=default, metadata={"spec": spec})


@dataclass(frozen=True)
class Options:
    """The options of one command, parsed and validated (see :func:`resolve`)."""

    # -- what to upgrade -------------------------------------------------------------------
    source: str = opt(
        "", "prAxIs OS source: a clean git checkout, or a git URL (cloned to a temp dir).",
        (*SOURCED, "discover", "schedule"), host=("upgrade", "check"), metavar="PATH|URL")
    project: Path = opt(
        Path(), "Project directory holding .praxis-os/ (default: the current directory).",
        (*INSTALL_COMMANDS, "schedule"), host=REMOTE, metavar="DIR")
    projects: str = opt(
        "", "Several projects at once: a glob (~/code/*), a comma-separated list, or @FILE (one "
        "per line; a failed.txt works). Each keeps its own lock, backup and reports; --canary, "
        "--parallel and --max-fail apply as to hosts.", REMOTE, metavar="GLOB|@FILE")
    ref: str = opt("", "Upgrade to this branch, tag or commit of the source (a path or a URL) "
                   "instead of what is checked out (read from a temporary clone: your checkout "
                   "is left as it is); the plan and the reports name it.",
                   (*SOURCED, "discover", "schedule"), host=("check",), metavar="BRANCH|TAG|COMMIT")
    dry_run: bool = opt(False, "Print the plan and exit; writes nothing at all.", RUN,
                        host=("upgrade",))
    yes: bool = opt(False, "Never prompt.", (*RUN, "rollback"))
    # -- how -------------------------------------------------------------------------------------
    on_conflict: str = opt(
        "merge", "A file changed by you and upstream: merge (three-way merge; a conflicting one "
        "keeps yours and writes NAME.praxis-merge + NAME.praxis-new), keep (yours stays, "
        "NAME.praxis-new beside it), theirs (take upstream; yours is in the backup), abort (stop "
        "before any change, exit 5), ask (decide per file on a terminal).", RUN,
        host=("upgrade",), choices=("merge", "keep", "theirs", "abort", "ask"))
    deps: str = opt("auto", "Dependencies: auto (install only if the requirements changed), "
                    "skip, force.", RUN, host=("upgrade",), choices=("auto", "skip", "force"))
    allow_downgrade: bool = opt(False, "Allow a source older than the installed commit.", RUN,
                                host=("upgrade",))
    find_links: str = opt("", "Install dependencies from this wheelhouse directory too "
                          "(pip/uv --find-links).", RUN, host=("upgrade",), metavar="DIR")
    offline: bool = opt(False, "Never reach a package index (with --find-links: install only "
                        "from the wheelhouse).", RUN, host=("upgrade",))
    post_install: str = opt("auto", "Post-install steps detected from requirement names (e.g. "
                            "playwright browsers): auto or skip.", RUN, host=("upgrade",),
                            choices=("auto", "skip"))
    index: str = opt("rebuild", "The server's search index, when the new code needs a new one "
                     "(another table, changed standards, none yet): rebuild (beside the live one, "
                     "then switched; a rollback switches back), defer (leave the rebuild to the "
                     "server's next start), skip.", RUN, host=("upgrade",),
                     choices=("rebuild", "defer", "skip"))
    no_restart: bool = opt(False, "Do not stop or restart the running MCP server.",
                           (*RUN, "rollback"), host=("upgrade", "rollback"))
    git_commit: bool = opt(False, "When the project is a git repository tracking .praxis-os/: commit "
                           "exactly the files this upgrade changed (refused up front if the "
                           "index has staged changes or those files have other edits); a "
                           "rollback then makes a revert commit.", RUN, host=("upgrade",))
    backup_to: str = opt("", "Also copy each verified backup off the machine before anything "
                         "changes: user@host:/abs/path (SFTP, host keys as for --hosts) or an "
                         "rclone remote (name:path); verified on arrival; a rollback fetches it "
                         "back when the local backup is gone or damaged.", RUN, metavar="REMOTE",
                         record=True)
    backup: str = opt("", "Backup id to restore (default: the latest). Newer upgrades are undone "
                      "first.", ("rollback",), host=("rollback",), metavar="ID")
    debug: bool = opt(False, "Show tracebacks for errors.", ALL)
    json: bool = opt(False, "Print one JSON document on stdout (schema: upgrade_tasks/schema/"
                     "output-v1.json); the human-readable lines go to stderr.", ALL)
    # -- config only (invoke.yaml `upgrade:` section or INVOKE_UPGRADE_<KEY>) ------------------
    keep_backups: int = opt(3, "How many backups to keep after a successful upgrade.",
                            host=("upgrade",), low=1)
    probe_timeout: float = opt(120.0, "Seconds the MCP server may take to answer the validation "
                               "probe (the real server needs 10-25 s to import torch; an index "
                               "build is never part of it).", host=("upgrade", "rollback"),
                               low=0.1, high=3600)
    smoke_tools: tuple[str, ...] = opt(("get_server_info", "current_date"),
                                       "Tools called without arguments when validating the server "
                                       "(comma-separated).", host=("upgrade",))
    # -- remote hosts over SSH (the fleet) --------------------------------------------------------
    hosts: str = opt("", "Run on these hosts over SSH: user@host[:port] or ~/.ssh/config aliases, "
                     "comma-separated, or @FILE (one per line, or an Ansible inventory: .ini/.yml "
                     "with groups, ansible_host/user/port and praxis_project).", REMOTE,
                     metavar="HOSTS|@FILE")
    limit: str = opt("", "With an inventory: only these hosts or groups (Ansible's --limit: "
                     "web,db  !db1  web:&prod  ~regex  @retry-file).", REMOTE, metavar="PATTERN")
    parallel: int = opt(1, "How many hosts (or projects) at a time.", REMOTE, low=1, metavar="N")
    canary: int = opt(0, "Upgrade this many hosts (or projects) first; if any canary fails, the "
                      "rollout stops.", ("upgrade",), low=0, metavar="K")
    max_fail: float = opt(0.0, "Failure budget in percent of all hosts (or projects): the rollout "
                          "stops before its next batch once MORE than this share has failed "
                          "(0: any failure stops it).", ("upgrade",), low=0, high=100,
                          metavar="PCT")
    accept_new_host_keys: bool = opt(False, "Trust and record host keys not yet in known_hosts "
                                     "(default: refuse).", REMOTE)
    identity: str = opt("", "SSH private key file.", REMOTE, metavar="FILE")
    known_hosts: str = opt("", "known_hosts file to check host keys against (default "
                           "~/.ssh/known_hosts).", REMOTE, metavar="FILE")
    ssh_config: str = opt("", "ssh_config file for host aliases (default ~/.ssh/config).", REMOTE,
                          metavar="FILE")
    sudo: bool = opt(False, "Run the engine on the hosts with sudo (installs owned by another "
                     "user); the password comes from PRAXIS_SUDO_PASSWORD or a prompt, never a "
                     "command line.", REMOTE)
    remote_dir: str = opt("", "Absolute directory on the hosts for the zipapp, snapshots and run "
                          "logs (default ~/.cache/praxis-upgrade).", REMOTE, metavar="DIR")
    report_dir: str = opt(".praxis-fleet", "Where the fleet report (report.json) and failed.txt "
                          "are written.", REMOTE, metavar="DIR")
    # -- discover and schedule -------------------------------------------------------------------
    directory: str = opt("", "Directory to search for installs (.praxis-os/, .agent-os/), "
                         "recursively.", ("discover",), metavar="DIR")
    every: str = opt("", "When the schedule runs: hourly, daily, weekly, or five cron "
                     "fields ('0 3 * * 1-5').", ("schedule",), metavar="WHEN")
    job: str = opt("check", "What the schedule runs: check (logs whether an upgrade is available) "
                   "or upgrade (--yes --on-conflict keep; never a downgrade).", ("schedule",),
                   choices=("check", "upgrade"))
    show: bool = opt(False, "Show the schedules installed (every project's).",
                     ("schedule",))
    remove: bool = opt(False, "Remove this project's schedule.", ("schedule",))
    backend: str = opt("auto", "Where the schedule lives: cron, a systemd user timer, or auto "
                       "(systemd where it runs with lingering on, else cron).", ("schedule",),
                       choices=("auto", "cron", "systemd"))
    # -- the demo ---------------------------------------------------------------------------------
    keep: bool = opt(False, "Keep the demo directory and print its path.", ("demo",))

    def replace(self, **changes: Any) -> Options:
        return dataclasses.replace(self, **changes)

    def session_record(self) -> dict[str, Any]:
        """What a checkpoint records of the options that shaped its session (the host engine's
        options, so a resume can tell a different source from the same one)."""
        out: dict[str, Any] = {}
        for f in _fields():
            if "upgrade" in _spec(f).host or _spec(f).record:
                value = _jsonable(getattr(self, f.name))
                out[f.name] = redact(value) if isinstance(value, str) else value
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _fields() -> tuple[dataclasses.Field[Any], ...]:
    return dataclasses.fields(Options)


def _spec(f: dataclasses.Field[Any]) -> Spec:
    spec: Spec = f.metadata["spec"]
    return spec


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def options_for(task: str) -> list[dataclasses.Field[Any]]:
    """The options a task takes as flags, in declaration order."""
    return [f for f in _fields() if task in _spec(f).tasks]


# -- derived: Invoke ---------------------------------------------------------------------------
#: Remote-host flags that ``fab -H`` tasks take too (Fabric itself takes the hosts and the key).
FAB_SSH = ("accept_new_host_keys", "known_hosts", "sudo", "remote_dir", "debug")


def fab_options(command: str) -> list[dataclasses.Field[Any]]:
    """The flags of the fabfile's ``command`` task: what travels to the host, plus SSH."""
    return [f for f in _fields() if command in _spec(f).host or f.name in FAB_SSH]


def signature_for(task: str | list[dataclasses.Field[Any]]) -> inspect.Signature:
    """The task function's signature: ``c`` then one keyword per flag. Flags default to
    ``False``; value options to ``None`` (Invoke then passes the raw string, which
    :func:`resolve` parses and validates, and ``None`` tells "not given" from any value)."""
    params = [inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for f in options_for(task) if isinstance(task, str) else task:
        default = False if f.default is False else None
        params.append(inspect.Parameter(f.name, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        default=default))
    return inspect.Signature(params)


def describe(f: dataclasses.Field[Any]) -> str:
    """The help text: allowed values, default, then the option's own help."""
    spec = _spec(f)
    head = ""
    if spec.choices:
        head = "|".join(spec.choices) + f" (default {f.default}). "
    elif f.default not in (False, "", (), Path()):
        shown = ",".join(f.default) if isinstance(f.default, tuple) else f.default
        head = f"(default {shown}) "
    return head + spec.help


def help_for(task: str | list[dataclasses.Field[Any]]) -> dict[str, str]:
    return {f.name: describe(f) for f in (options_for(task) if isinstance(task, str) else task)}


def metavar(f: dataclasses.Field[Any]) -> str:
    spec = _spec(f)
    if spec.choices:
        return "|".join(spec.choices)
    if spec.metavar:
        return spec.metavar
    return {int: "INT", float: "NUMBER"}.get(type(f.default), "STRING")


def config_defaults() -> dict[str, None]:
    """The ``upgrade`` config section: every option, ``None`` meaning "not set". (``None``
    rather than the default: Invoke casts an ``INVOKE_UPGRADE_*`` variable to the type of the
    value it overrides, and a bad number would then be a traceback inside Invoke; with ``None``
    the raw string reaches :func:`resolve`, which says what is wrong.)"""
    return {f.name: None for f in _fields()}


def config_keys() -> frozenset[str]:
    return frozenset(f.name for f in _fields())


# -- parsing and validation ---------------------------------------------------------------------
def _origin(name: str, where: str) -> str:
    if where == "flag":
        return flag(name)
    if where == "env":
        return f"INVOKE_UPGRADE_{name.upper()}"
    return f"upgrade.{name} (invoke.yaml)"


def _parse(f: dataclasses.Field[Any], raw: Any, where: str) -> Any:
    spec, name, default = _spec(f), f.name, f.default
    label = _origin(name, where)

    def bad(what: str, allowed: str, example: str) -> UsageError:
        return UsageError(f"{label} {raw!r} {what}", f"allowed: {allowed}",
                          f"pass e.g. {flag(name)} {example}" if where == "flag" else
                          f"set it to e.g. {example}, or remove it")

    if isinstance(default, bool):
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise bad("is not a yes/no value", "1, 0, true, false, yes, no", "1")
    if isinstance(default, tuple):
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        return tuple(s.strip() for s in (str(x) for x in items) if s.strip())
    if where == "flag" and isinstance(default, (str, Path)) and not str(raw).strip():
        # ``--projects "$UNSET"`` must not quietly become the default (the current directory)
        raise UsageError(f"{flag(name)} is given an empty value",
                         "an empty value would silently mean the default"
                         + (" (the current directory)" if isinstance(default, Path) else ""),
                         f"give {flag(name)} a value, or leave the flag out")
    if isinstance(default, Path):
        text = str(raw) or os.getcwd()
        return Path(text).expanduser().absolute()
    if isinstance(default, (int, float)):
        kind = type(default)
        try:
            if isinstance(raw, bool):
                raise ValueError(raw)
            value = kind(str(raw).strip()) if isinstance(raw, str) else kind(raw)
        except (TypeError, ValueError):
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            word = "a whole number" if kind is int else "a number"
            raise bad(f"is not {word}", _range_text(spec), str(default))
        if (spec.low is not None and value < spec.low) or (spec.high is not None
                                                           and value > spec.high):
            raise bad("is out of range", _range_text(spec), str(default))
        return value
    text = str(raw).strip()
    if spec.choices and text not in spec.choices:
        raise bad("is not a valid choice", ", ".join(spec.choices), spec.choices[0])
    return text


def _range_text(spec: Spec) -> str:
    if spec.low is not None and spec.high is not None:
        return f"a number between {spec.low:g} and {spec.high:g}"
    if spec.low is not None:
        return f"at least {spec.low:g}"
    return "any number"


def _given(value: Any) -> bool:
    return value is not None and value is not False


def resolve(given: Mapping[str, Any], config: Mapping[str, Any] | None = None,
            env: Mapping[str, str] | None = None) -> Options:
    """Build the options of one command: a value given on the command line wins, then the
    config tree (``INVOKE_UPGRADE_*`` variables, then ``invoke.yaml``), then the declared
    default. Every value is parsed and checked here, once."""
    env = os.environ if env is None else env
    config = config or {}
    values: dict[str, Any] = {}
    for f in _fields():
        if _given(given.get(f.name)):
            values[f.name] = _parse(f, given[f.name], "flag")
            continue
        raw = _config_value(config, f.name)
        if raw is not None:
            where = "env" if f"INVOKE_UPGRADE_{f.name.upper()}" in env else "config"
            values[f.name] = _parse(f, raw, where)
        elif isinstance(f.default, Path):
            values[f.name] = _parse(f, "", "config")
    unknown = sorted(set(given) - config_keys())
    if unknown:
        raise UsageError(f"unknown option {flag(unknown[0])}", "it is not declared in options.py",
                         "this is a bug in the task definitions; report it")
    return Options(**values)


def _config_value(config: Mapping[str, Any], key: str) -> Any:
    try:
        return config[key]
    except (KeyError, TypeError):
        return None


# -- derived: the host engine ------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The host engine's flags for ``command`` (every option passed to hosts for it)."""
    for f in _fields():
        if command not in _spec(f).host:
            continue
        if f.default is False:
            parser.add_argument(flag(f.name), dest=f.name, action="store_true")
        else:
            parser.add_argument(flag(f.name), dest=f.name, default=None, metavar=metavar(f))
    parser.add_argument("--debug", action="store_true")


def from_namespace(ns: argparse.Namespace) -> Options:
    return resolve({k: v for k, v in vars(ns).items() if k in config_keys()}, {}, {})


def to_argv(opts: Options, command: str, **override: Any) -> list[str]:
    """The host engine's argv for ``command``: every option passed to hosts whose value is not
    the default (``override`` replaces values first, e.g. the uploaded snapshot as source)."""
    argv = [command]
    for f in _fields():
        if command not in _spec(f).host:
            continue
        value = override.get(f.name, getattr(opts, f.name))
        if value == f.default:
            continue
        if f.default is False:
            if value:
                argv.append(flag(f.name))
            continue
        argv += [flag(f.name), ",".join(value) if isinstance(value, tuple) else str(value)]
    return argv

