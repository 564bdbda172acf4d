"""Ansible inventories as host lists, so a team can reuse the inventory it already has.

``--hosts @FILE`` normally takes a plain host list (:func:`upgrade_tasks.fleet.parse_hosts`).
When FILE is an Ansible inventory instead (:func:`is_inventory`), :func:`load` reads it the way
Ansible does and renders each selected host in the plain list's own format,
``user@address:port=/abs/project`` with only the parts that are set, so the rest of the fleet
code sees one format. The address is ``ansible_host`` (else the inventory name, which may be an
ssh-config alias), then ``ansible_user``, ``ansible_port`` and the variable ``praxis_project``.

What is read, following Ansible:

* INI: ``[group]``, ``[group:children]``, ``[group:vars]``; hosts above the first section are
  ``ungrouped``; host lines take ``key=value`` variables (shell quoting, values read as Python
  literals, as Ansible does); host ranges ``web[01:03]`` and ``host:port``.
* YAML: ``all:`` (or any group at the top) with ``hosts:``, ``children:``, ``vars:``.
* ``group_vars/`` and ``host_vars/`` next to the inventory file, as Ansible reads them:
  ignoring them could connect to the wrong address or as the wrong user. Files encrypted whole
  with Ansible Vault are skipped: they hold secrets, never connection settings we could use.
* Precedence, as Ansible's: ``all`` < parent groups < child groups (groups of the same depth
  ordered by ``ansible_group_priority``, then by name) < the host's own vars; within a group or
  host, ``group_vars/`` and ``host_vars/`` override the inventory file.
* ``limit`` is Ansible's ``--limit``: patterns separated by ``,`` (or ``:``), ``all``, host or
  group names, ``*``/``?`` globs and ``~regex`` on host and group names, ``&`` to intersect,
  ``!`` to exclude, ``@FILE`` for a file of patterns (a retry file). Hosts come out in the order
  of the file, duplicates removed.

Refused, each with the file and line (or YAML path), the problem and what to do:

* anything Ansible itself refuses (malformed lines, unknown groups in ``[x:children]``, cycles);
* what Ansible only warns about, because each would lose hosts or select the wrong ones: a
  limit pattern that names nothing (a mistyped ``!db1`` would upgrade db1), a duplicate YAML key
  (YAML keeps the last ``hosts:``), a YAML group key other than ``hosts``/``children``/``vars``;
* what this tool cannot honour, rather than connect differently from Ansible: passwords (they
  never belong in an inventory we read), keys and ssh arguments from the inventory (it connects
  with Paramiko and one ``--identity``; ``~/.ssh/config`` serves both tools), connections other
  than SSH, ``ansible_become`` without ``--sudo`` or to a user other than root, and Jinja
  templates or Vault values in the variables we use.

Variables are checked on the hosts the limit selects, so ``--limit '!localhost'`` leaves out
an ``ansible_connection=local`` host; the structure is checked whole. Vars that only shape how
Ansible runs its modules (``ansible_python_interpreter``, ``ansible_become_user`` without
``ansible_become`` ...) are ignored: they change nothing about where and as whom we connect.
"""

from __future__ import annotations

import ast
import fnmatch
import ipaddress
import re
import shlex
import string
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import UsageError

__all__ = ["is_inventory", "load"]

YAML_SUFFIXES = (".yml", ".yaml")
#: Ansible's own section regex (group names: no whitespace, ':' or ']'), plus ';' comments.
SECTION_RE = re.compile(r"^\[([^:\]\s]+)(?::(\w+))?\]\s*(?:[#;].*)?$")
GROUPNAME_RE = re.compile(r"^([^:\]\s]+)\s*(?:#.*)?$")
VAR_TOKEN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
RANGE_RE = re.compile(r"\[([A-Za-z0-9]*):([A-Za-z0-9]+)(?::(\d+))?\]")
SUBSCRIPT_RE = re.compile(r"^(.+)\[(?:-?[0-9]+|[0-9]+[:-][0-9]*)\]$")
#: Ansible's ':'-separated limit (kept only for backward compatibility there, too).
COLON_SPLIT_RE = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
#: Characters that would break the plain host-list format (``user@host:port=/project``, ``#``
#: comments, failed.txt) or a Fabric host string.
BAD_ADDRESS_RE = re.compile(r"[\s@=#,/'\"\\]")
BAD_USER_RE = re.compile(r"[\s@=#,:/'\"\\]")
MAX_RANGE_HOSTS = 10_000

HOST_VARS = ("ansible_host", "ansible_ssh_host")
USER_VARS = ("ansible_user", "ansible_ssh_user")
PORT_VARS = ("ansible_port", "ansible_ssh_port")
PROJECT_VAR = "praxis_project"
SSH_CONNECTIONS = {"ssh", "smart", "paramiko", "paramiko_ssh", "ansible.builtin.ssh",
                   "ansible.builtin.paramiko_ssh", "ansible.legacy.ssh"}
KEY_VARS = {"ansible_ssh_private_key_file", "ansible_private_key_file"}
SSH_ARG_VARS = {"ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args",
                "ansible_sftp_extra_args", "ansible_scp_extra_args", "ansible_ssh_executable",
                "ansible_paramiko_proxy_command"}
BECOME_VARS = ("ansible_become", "ansible_sudo", "ansible_su")
TRUE_WORDS = {"yes", "on", "1", "true", "y", "t"}


# -- the model --------------------------------------------------------------------------------------
@dataclass
class _Var:
    """A variable's value and where it was set (``file:line``), for the messages."""

    value: object
    where: str


@dataclass
class _Group:
    name: str
    where: str
    vars: dict[str, _Var] = field(default_factory=dict)
    hosts: list[str] = field(default_factory=list)
    children: dict[str, str] = field(default_factory=dict)  # child -> where it was listed


@dataclass
class _Host:
    name: str
    where: str  # first appearance: the order of the result
    vars: dict[str, _Var] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)  # direct groups


class _Vault:
    """An ``!vault`` value: Ansible Vault ciphertext, which praxis-upgrade cannot decrypt."""

    def __repr__(self) -> str:
        return "!vault"


class _Inventory:
    """Groups and hosts as Ansible builds them: every group descends from ``all``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.groups: dict[str, _Group] = {}
        self.hosts: dict[str, _Host] = {}
        self.parents: dict[str, list[str]] = {}
        self.children_of: dict[str, list[str]] = {}
        self.depth: dict[str, int] = {}
        self.edges: dict[tuple[str, str], int] = {}  # (parent, child) -> order of declaration
        self.group("all", str(path))
        self.group("ungrouped", str(path))

    def group(self, name: str, where: str) -> _Group:
        if name not in self.groups:
            self.groups[name] = _Group(name, where)
        return self.groups[name]

    def add_child(self, parent: str, child: str, where: str) -> None:
        if child == "all":
            raise UsageError(f"{where}: group 'all' is listed as a child of {parent!r}",
                             "'all' is the implicit parent of every group and cannot be a child",
                             f"remove 'all' from the children of {parent!r}")
        self.group(parent, where).children.setdefault(child, where)
        self.edges.setdefault((parent, child), len(self.edges))
        self.group(child, where)

    def add_host(self, name: str, group: str, where: str, variables: dict[str, _Var]) -> None:
        host = self.hosts.setdefault(name, _Host(name, where))
        host.vars.update(variables)
        if group not in host.groups:
            host.groups.append(group)
        g = self.group(group, where)
        if name not in g.hosts:
            g.hosts.append(name)

    def finalize(self) -> None:
        """Ansible's reconciliation: ``ungrouped`` holds the hosts of no other group, groups
        without a parent are children of ``all``; then the depths, refusing a cycle."""
        ungrouped = self.groups["ungrouped"]
        ungrouped.hosts = []
        for h in self.hosts.values():
            if set(h.groups) <= {"all", "ungrouped"}:
                ungrouped.hosts.append(h.name)
                if "ungrouped" not in h.groups:
                    h.groups.append("ungrouped")
            elif "ungrouped" in h.groups:
                h.groups.remove("ungrouped")
        self.parents = {g: [] for g in self.groups}
        for g in self.groups.values():
            for child in g.children:
                self.parents[child].append(g.name)
        for name, ps in self.parents.items():
            if name != "all" and not ps:
                ps.append("all")
        self.children_of = {g: [] for g in self.groups}
        for name, ps in self.parents.items():
            for p in ps:
                self.children_of[p].append(name)
        self.depth = {"all": 0}
        waiting = {g: len(ps) for g, ps in self.parents.items()}
        ready = ["all"]
        while ready:
            top = ready.pop()
            for child in self.children_of[top]:
                self.depth[child] = max(self.depth.get(child, 0), self.depth[top] + 1)
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
        left = [g for g in self.groups if g not in self.depth or waiting[g] > 0]
        if left:
            self._refuse_cycle(set(left))

    def _refuse_cycle(self, left: set[str]) -> None:
        """Every group left over by the topological walk has a parent left over: following
        parents must come back to a group already seen, which closes a cycle. It is reported from
        the edge declared last in the file, the one that closed it."""
        path = [min(left)]
        while True:
            nxt = next(p for p in self.parents[path[-1]] if p in left)
            if nxt in path:
                cycle = list(reversed(path[path.index(nxt):]))  # each group is the next's parent
                break
            path.append(nxt)
        last = max(range(len(cycle)), key=lambda i: self.edges[(cycle[i], cycle[(i + 1) % len(cycle)])])
        cycle = cycle[last + 1:] + cycle[:last + 1]  # the last-declared edge closes the chain
        chain = " -> ".join([*cycle, cycle[0]])
        where = self.groups[cycle[-1]].children[cycle[0]]
        raise UsageError(f"{where}: the children groups form a cycle: {chain}",
                         "a group cannot be its own ancestor (Ansible refuses it too)",
                         f"remove {cycle[0]!r} from the children of {cycle[-1]!r}")

    def groups_of(self, host: str) -> set[str]:
        """The host's groups and all their ancestors, ``all`` included."""
        out: set[str] = set()
        todo = [*self.hosts[host].groups, "all"]
        while todo:
            g = todo.pop()
            if g not in out:
                out.add(g)
                todo.extend(self.parents.get(g, ()))
        return out

    def hosts_of(self, group: str) -> set[str]:
        """The hosts of a group and of all its descendants."""
        if group == "all":
            return set(self.hosts)
        out: set[str] = set()
        seen: set[str] = set()
        todo = [group]
        while todo:
            g = todo.pop()
            if g not in seen:
                seen.add(g)
                out.update(self.groups[g].hosts)
                todo.extend(self.children_of.get(g, ()))
        return out


# -- public API -------------------------------------------------------------------------------------
def is_inventory(path: Path) -> bool:
    """An Ansible inventory rather than a plain host list.

    ``.yml``/``.yaml`` and ``.ini`` files are inventories. Another file is one if a line is an
    INI section header (``[web]``, ``[web:vars]``: a plain list never has one; a bracketed IPv6
    address has a ':' and does not match) or a host line carries ``key=value`` variables (a plain
    list's ``host=/project`` has no space before its ``=``, and a space in its project leaves
    the ``=`` in the first word). Unreadable files are not: the plain host list reader reports them.
    """
    if path.suffix.lower() in (*YAML_SUFFIXES, ".ini"):
        return True
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    for raw in text.lstrip("\ufeff").splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if SECTION_RE.match(line):
            return True
        try:
            tokens = shlex.split(line, comments=True)
        except ValueError:
            continue
        if tokens and "=" not in tokens[0] and any(VAR_TOKEN_RE.match(t) for t in tokens[1:]):
            return True
    return False


def load(path: Path, limit: str = "", *, sudo: bool = False) -> list[str]:
    """The hosts of the inventory at ``path`` that ``limit`` selects, in the order of the file,
    duplicates removed, each as ``user@address:port=/abs/project`` (only the parts that are set).

    ``sudo`` says the run uses ``--sudo``: only then is ``ansible_become`` honoured (as root).
    Every bad input raises :class:`UsageError` naming the file and line (or YAML path).
    """
    try:
        text = path.read_text(encoding="utf-8").lstrip("\ufeff")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the inventory {path}", str(exc),
                         "check the path given to --hosts @FILE (an Ansible INI or YAML inventory)"
                         ) from exc
    try:
        inv = _parse_yaml(path, text) if path.suffix.lower() in YAML_SUFFIXES else _parse_ini(path, text)
        _read_vars_dirs(inv)
        inv.finalize()
    except RecursionError as exc:
        raise UsageError(f"{path}: the inventory nests groups too deeply", "Python's recursion limit",
                         "flatten the group hierarchy") from exc
    if not inv.hosts:
        raise UsageError(f"{path}: the inventory has no hosts", "no group lists a host",
                         "add hosts to the inventory, or pass --hosts h1,h2")
    out: list[str] = []
    for name in _select(inv, limit):
        item = _render(inv, name, sudo)
        if item not in out:
            out.append(item)
    return out


# -- INI --------------------------------------------------------------------------------------------
def _parse_ini(path: Path, text: str) -> _Inventory:
    """Ansible's INI format in one pass; ``[x:children]`` may name groups declared further down,
    so children and ``[x:vars]`` sections are checked against the declared groups at the end."""
    inv = _Inventory(path)
    group, state = "ungrouped", "hosts"
    declared = {"all", "ungrouped"}
    vars_sections: dict[str, str] = {}
    child_refs: list[tuple[str, str, str]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        where = f"{path}:{n}"
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        m = SECTION_RE.match(line)
        if m:
            group, state = m.group(1), m.group(2) or "hosts"
            if state not in ("hosts", "children", "vars"):
                raise UsageError(f"{where}: section [{group}:{state}] has an unknown type {state!r}",
                                 "a section is [group], [group:children] or [group:vars]",
                                 f"write [{group}], [{group}:children] or [{group}:vars]")
            inv.group(group, where)
            if state == "vars":
                vars_sections.setdefault(group, where)
            else:
                declared.add(group)
            continue
        if line.startswith("[") and not _is_ipv6(line[1:].partition("]")[0]):
            raise UsageError(f"{where}: malformed section header {line!r}",
                             "a section header is [name], [name:children] or [name:vars], with no "
                             "spaces in the name",
                             "fix the header (group names have no spaces, ':' or ']')")
        if state == "hosts":
            _ini_host_line(inv, group, line, where)
        elif state == "vars":
            key, eq, value = line.partition("=")
            key = key.strip()
            if not eq or not key or re.search(r"\s", key):
                raise UsageError(f"{where}: malformed line {line!r} in [{group}:vars]",
                                 "a [group:vars] line is key=value",
                                 "write name=value, one variable per line")
            inv.groups[group].vars[key] = _Var(_ini_value(_strip_comment(value.strip())), where)
        else:
            cm = GROUPNAME_RE.match(line)
            if not cm:
                raise UsageError(f"{where}: malformed line {line!r} in [{group}:children]",
                                 "a [group:children] line is one group name",
                                 "write one group name per line (hosts go in a [group] section)")
            child_refs.append((group, cm.group(1), where))
    for parent, child, where in child_refs:
        if child not in declared:
            raise UsageError(f"{where}: [{parent}:children] names the unknown group {child!r}",
                             f"no [{child}] or [{child}:children] section declares it",
                             f"add a [{child}] section (it may be empty) or fix the name")
        inv.add_child(parent, child, where)
    for g, where in vars_sections.items():
        if g not in declared:
            raise UsageError(f"{where}: [{g}:vars] is for the unknown group {g!r}",
                             f"no [{g}] or [{g}:children] section declares it",
                             f"add a [{g}] section or fix the name")
    return inv


def _ini_host_line(inv: _Inventory, group: str, line: str, where: str) -> None:
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise UsageError(f"{where}: malformed host line {line!r}", str(exc),
                         "close the quote, or quote the whole value: key=\"a value\"") from exc
    if not tokens:
        return
    if tokens[0] == "---":
        raise UsageError(f"{where}: {tokens[0]!r} is not a host",
                         "the file is read as INI, and this line looks like YAML",
                         f"if {inv.path.name} is a YAML inventory, name it .yml or .yaml")
    names, port = _host_pattern(tokens[0], where)
    variables = {} if port is None else {"ansible_port": _Var(port, where)}
    for token in tokens[1:]:
        key, eq, value = token.partition("=")
        if not eq or not key:
            raise UsageError(f"{where}: malformed host line: {token!r} is not key=value",
                             "after the host name, a host line holds key=value variables only",
                             "write host key=value ..., quoting values with spaces: key=\"a b\"")
        variables[key] = _Var(_ini_value(value), where)
    for name in names:
        inv.add_host(name, group, where, dict(variables))


def _ini_value(text: str) -> object:
    """Ansible reads INI values as Python literals (``2222`` is a number, ``'a b'`` a string),
    keeping the text when it is not one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _strip_comment(text: str) -> str:
    """``value # comment`` -> ``value``; a '#' inside quotes, or glued to a word, is kept."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip()
    return text


# -- YAML -------------------------------------------------------------------------------------------
class _Map(dict[object, object]):
    """A YAML mapping that remembers the line of each key, for the messages."""

    lines: dict[object, int]


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` plus line numbers, duplicate keys refused (YAML keeps the last one
    silently: a second ``hosts:`` would drop the first one's hosts), and Ansible's tags."""


def _construct_map(loader: yaml.SafeLoader, node: yaml.Node) -> _Map:
    assert isinstance(node, yaml.MappingNode)
    seen: set[object] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a name, not a list or mapping",
                key_node.start_mark) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (YAML would keep only the last one)",
                key_node.start_mark)
        seen.add(key)
    loader.flatten_mapping(node)
    out = _Map()
    out.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        out[key] = loader.construct_object(value_node, deep=True)
        out.lines[key] = key_node.start_mark.line + 1
    return out


def _construct_vault(loader: yaml.SafeLoader, node: yaml.Node) -> _Vault:
    return _Vault()


def _construct_unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    """``!unsafe`` only tells Ansible not to template the value: the value itself."""
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return _construct_map(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("!vault", _construct_vault)
_Loader.add_constructor("!unsafe", _construct_unsafe)


def _yaml_load(path: Path, text: str) -> object:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise UsageError(f"{where}: malformed YAML: {problem}", "the file is not valid YAML",
                         "fix the line (indent with spaces; quote values with ':' or '#')"
                         ) from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: malformed YAML", str(exc), "fix the file") from exc


def _at(path: Path, where: list[str], mapping: object, key: object) -> str:
    """``file:line (all.children.web)``: the line of ``key`` in ``mapping`` and its YAML path."""
    line = mapping.lines.get(key) if isinstance(mapping, _Map) else None
    return f"{path}:{line} ({'.'.join(where)})" if line else f"{path} ({'.'.join(where)})"


def _parse_yaml(path: Path, text: str) -> _Inventory:
    data = _yaml_load(path, text)
    inv = _Inventory(path)
    if data is None:
        return inv
    if not isinstance(data, dict):
        raise UsageError(f"{path}: the top level of a YAML inventory must be a mapping of groups",
                         f"found a {type(data).__name__}",
                         "start the file with `all:` and put hosts under `hosts:`")
    if "plugin" in data:
        raise UsageError(f"{_at(path, ['plugin'], data, 'plugin')}: an inventory plugin "
                         f"configuration (plugin: {data['plugin']}), not a static inventory",
                         "praxis-upgrade reads static inventories only; it runs no inventory plugin",
                         f"write a static one: ansible-inventory -i {path} --list --yaml > hosts.yml")
    for name, body in data.items():
        gname = str(name)
        where = _at(path, [gname], data, name)
        if gname in ("hosts", "children", "vars"):
            raise UsageError(f"{where}: {gname!r} at the top level of a YAML inventory",
                             "the top level names groups; hosts:, children: and vars: go inside one",
                             f"indent it under `all:` (all:\\n  {gname}: ...)")
        _yaml_group(inv, gname, body, None if gname == "all" else "all", [gname], where)
    return inv


def _yaml_group(inv: _Inventory, name: str, body: object, parent: str | None, ypath: list[str],
                where: str) -> None:
    inv.group(name, where)
    if parent is not None:
        inv.add_child(parent, name, where)
    if body is None:
        return
    if not isinstance(body, dict):
        raise UsageError(f"{where}: group {name!r} must be a mapping of hosts:, children:, vars:",
                         f"found a {type(body).__name__}: {body!r}"[:200],
                         f"write {name}:\\n  hosts:\\n    host1:\\n    host2:")
    for key, value in body.items():
        kpath = [*ypath, str(key)]
        kwhere = _at(inv.path, kpath, body, key)
        if key == "vars":
            for var, v in _yaml_mapping(value, kwhere, "vars", "name: value").items():
                inv.groups[name].vars[str(var)] = _Var(v, _at(inv.path, [*kpath, str(var)], value, var))
        elif key == "hosts":
            for pattern, hvars in _yaml_mapping(value, kwhere, "hosts", "host1:").items():
                hwhere = _at(inv.path, [*kpath, str(pattern)], value, pattern)
                names, port = _host_pattern(str(pattern), hwhere)
                variables = {} if port is None else {"ansible_port": _Var(port, hwhere)}
                for var, v in _yaml_mapping(hvars, hwhere, "host variables", "name: value").items():
                    variables[str(var)] = _Var(v, _at(inv.path, [*kpath, str(pattern), str(var)],
                                                      hvars, var))
                for host in names:
                    inv.add_host(host, name, hwhere, dict(variables))
        elif key == "children":
            for child, cbody in _yaml_mapping(value, kwhere, "children", "child_group:").items():
                cpath = [*kpath, str(child)]
                _yaml_group(inv, str(child), cbody, name, cpath, _at(inv.path, cpath, value, child))
        else:
            raise UsageError(f"{kwhere}: group {name!r} has the unexpected key {key!r}",
                             "a group holds only hosts:, children: and vars: (Ansible skips other "
                             "keys, and the hosts under them)",
                             f"put hosts under {name}: hosts:, groups under children:")


def _yaml_mapping(value: object, where: str, what: str, example: str) -> dict[object, object]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{where}: {what} must be a mapping, not a {type(value).__name__}",
                         "Ansible's YAML inventory nests mappings; a list or a string is refused",
                         f"write one `{example}` per line, indented, with no leading '-'")
    return value


# -- group_vars/ and host_vars/ ---------------------------------------------------------------------
def _read_vars_dirs(inv: _Inventory) -> None:
    base = inv.path.parent
    for kind, items in (("group_vars", inv.groups), ("host_vars", inv.hosts)):
        d = base / kind
        if not d.is_dir():
            continue
        for name, item in items.items():
            for f in _vars_files(d, name):
                item.vars.update(_vars_file(f))


def _vars_files(d: Path, name: str) -> list[Path]:
    """Ansible's lookup: ``NAME``, ``NAME.yml``, ``NAME.yaml`` or ``NAME.json``, the first that
    exists; a directory gives its files (recursively, sorted, hidden and ``~`` files skipped)."""
    if "/" in name or "\\" in name or name.startswith("."):
        return []
    for ext in ("", ".yml", ".yaml", ".json"):
        p = d / f"{name}{ext}"
        if p.is_dir():
            return _dir_files(p)
        if p.is_file():
            return [p]
    return []


def _dir_files(d: Path) -> list[Path]:
    out: list[Path] = []
    for p in sorted(d.iterdir()):
        if p.name.startswith(".") or p.name.endswith("~"):
            continue
        if p.is_dir() and not p.suffix:
            out += _dir_files(p)
        elif p.is_file() and p.suffix in ("", ".yml", ".yaml", ".json"):
            out.append(p)
    return out


def _vars_file(f: Path) -> dict[str, _Var]:
    try:
        text = f.read_text(encoding="utf-8").lstrip("\ufeff")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the variables file {f}", str(exc),
                         "fix its permissions or encoding (Ansible reads it too)") from exc
    if text.startswith("$ANSIBLE_VAULT;"):
        return {}  # secrets, by convention; see the module docstring
    data = _yaml_load(f, text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{f}: a variables file must be a mapping of names to values",
                         f"found a {type(data).__name__}", "write one `name: value` per line")
    return {str(k): _Var(v, _at(f, [str(k)], data, k)) for k, v in data.items()}


# -- host patterns ----------------------------------------------------------------------------------
def _host_pattern(token: str, where: str) -> tuple[list[str], str | None]:
    """``name``, ``name:port``, ``web[01:03].example.com``, ``[::1]:22`` or ``fe80::1`` -> the
    host names and the port written with them (Ansible's ``_expand_hostpattern``)."""
    token = token.strip()
    if not token:
        raise UsageError(f"{where}: empty host name", "a host line starts with a host name",
                         "write the host name first")
    if token.startswith("["):
        inner, _, rest = token[1:].partition("]")
        if _is_ipv6(inner):
            if rest and not rest.startswith(":"):
                raise UsageError(f"{where}: malformed host {token!r}",
                                 "after a bracketed IPv6 address only :PORT may follow",
                                 "write [ADDRESS]:PORT")
            return [inner], (_pattern_port(rest[1:], token, where) if rest else None)
    outside = re.sub(r"\[[^\]]*\]", "", token)
    if outside.count(":") > 1:
        if _is_ipv6(token):
            return [token], None
        raise UsageError(f"{where}: malformed host {token!r}", "more than one ':' in a host name",
                         "write host:port, or an IPv6 address in brackets: [ADDRESS]:PORT")
    name, port = token, None
    if ":" in outside:
        cut = token.rindex(":")
        name, port = token[:cut], _pattern_port(token[cut + 1:], token, where)
    return _expand(name, where), port


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _pattern_port(text: str, token: str, where: str) -> str:
    if not text:
        raise UsageError(f"{where}: host {token!r} ends in ':'", "':' introduces a port",
                         "write host:PORT, or remove the ':' (if the file is a YAML inventory, name it "
                         ".yml or .yaml)")
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"{where}: the port {text!r} of host {token!r} is not a number",
                         "a port is a number from 1 to 65535", "write host:2222")
    return text


def _expand(name: str, where: str) -> list[str]:
    """Ansible's host ranges: ``db[01:10:2]`` (zero-padded when the start is), ``x[a:f]``."""
    m = RANGE_RE.search(name)
    if not m:
        if "[" in name or "]" in name:
            raise UsageError(f"{where}: malformed host range in {name!r}",
                             "a range is [START:END] or [START:END:STEP]",
                             "write e.g. web[01:09].example.com or db[a:f]")
        return [name]
    head, tail = name[:m.start()], name[m.end():]
    beg, end, step = m.group(1) or "0", m.group(2), int(m.group(3) or 1)
    bad = ""
    seq: list[str] = []
    if step < 1:
        bad = "the step must be at least 1"
    elif beg.isdigit() and end.isdigit():
        width = len(beg) if beg.startswith("0") and len(beg) > 1 else 0
        if width and len(end) != width:
            bad = "a zero-padded start needs an end of the same width"
        elif int(beg) > int(end):
            bad = "the start is after the end"
        elif (int(end) - int(beg)) // step >= MAX_RANGE_HOSTS:
            bad = f"more than {MAX_RANGE_HOSTS} hosts"
        else:
            seq = [str(i).zfill(width) for i in range(int(beg), int(end) + 1, step)]
    elif len(beg) == 1 == len(end) and beg.isalpha() and end.isalpha():
        i, j = string.ascii_letters.index(beg), string.ascii_letters.index(end)
        if i > j:
            bad = "the start is after the end"
        seq = list(string.ascii_letters[i:j + 1:step])
    else:
        bad = "a range is between two numbers or two letters"
    if bad:
        raise UsageError(f"{where}: bad host range {m.group(0)!r} in {name!r}", bad,
                         "write e.g. web[01:09].example.com, db[a:f] or app[1:9:2]")
    out: list[str] = []
    for s in seq:
        out += _expand(f"{head}{s}{tail}", where)
        if len(out) > MAX_RANGE_HOSTS:
            raise UsageError(f"{where}: host range {name!r} gives more than {MAX_RANGE_HOSTS} hosts",
                             "that is far beyond any fleet", "split or narrow the range")
    return out


# -- --limit ----------------------------------------------------------------------------------------
def _select(inv: _Inventory, limit: str) -> list[str]:
    """Ansible's order of application: the plain patterns (union), then ``&`` (intersection),
    then ``!`` (exclusion); with only ``&``/``!`` patterns, ``all`` comes first. The result keeps
    the order of the file, whatever the order of the patterns."""
    limit = limit.strip()
    if not limit:
        return list(inv.hosts)
    patterns = _limit_patterns(inv, limit)
    regular = [p for p in patterns if p[0] not in "!&"] or ["all"]
    chosen: set[str] = set()
    for p in regular:
        chosen |= _matches(inv, p, limit)
    for p in patterns:
        if p[0] == "&":
            chosen &= _matches(inv, p[1:], limit)
    for p in patterns:
        if p[0] == "!":
            chosen -= _matches(inv, p[1:], limit)
    if not chosen:
        raise UsageError(f"limit {limit!r} matches no host of {inv.path}",
                         "its exclusions and intersections leave nothing",
                         "check the limit: `!` excludes, `&` intersects")
    return [h for h in inv.hosts if h in chosen]


def _limit_patterns(inv: _Inventory, limit: str) -> list[str]:
    if "," in limit:
        parts = limit.split(",")
    elif limit in inv.hosts or limit.lstrip("!&") in inv.hosts or _is_ipv6(limit.lstrip("!&")):
        parts = [limit]  # a host name with ':' (IPv6), not a ':'-separated list
    else:
        parts = COLON_SPLIT_RE.findall(limit)
    out: list[str] = []
    for part in (p.strip() for p in parts):
        if part.startswith("@"):
            f = Path(part[1:]).expanduser()
            try:
                out += [ln.strip() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"limit {limit!r}: cannot read {f}", str(exc),
                                 "give a file with one host or group per line") from exc
        elif part:
            out.append(part)
    if not out:
        raise UsageError(f"limit {limit!r} names no host or group", "it holds only separators",
                         "give host or group names, separated by ','")
    return out


def _matches(inv: _Inventory, pattern: str, limit: str) -> set[str]:
    """The hosts one pattern names: a host, a group (its hosts and its descendants'), a glob or
    ``~regex`` on host and group names. A pattern that names nothing is refused."""
    def known() -> str:
        groups = sorted(g for g in inv.groups if g not in ("all", "ungrouped"))
        return (f"groups: {', '.join(groups) or '(none)'}; hosts: {', '.join(list(inv.hosts)[:10])}"
                f"{' ...' if len(inv.hosts) > 10 else ''}")

    if not pattern:
        raise UsageError(f"limit {limit!r}: '!' or '&' with no name after it", "",
                         "write !name or &name")
    if SUBSCRIPT_RE.match(pattern) and pattern not in inv.hosts and not pattern.startswith("~"):
        raise UsageError(f"limit {limit!r}: subscripts such as {pattern!r} are not supported",
                         "praxis-upgrade takes names, globs and ~regex", "name the hosts, or use a glob")
    if pattern == "all":
        return set(inv.hosts)
    if pattern.startswith("~") or any(c in pattern for c in "*?["):
        if pattern.startswith("~"):
            try:
                rx = re.compile(pattern[1:])
            except re.error as exc:
                raise UsageError(f"limit {limit!r}: bad regular expression {pattern[1:]!r}",
                                 str(exc), "fix the expression after '~'") from exc
        else:
            rx = re.compile(fnmatch.translate(pattern))  # what fnmatchcase does, compiled once
        hit = rx.match
        groups = [g for g in inv.groups if hit(g)]
        hosts = {h for h in inv.hosts if hit(h)}
        if not groups and not hosts:
            raise UsageError(f"limit {limit!r}: {pattern!r} matches no host or group of {inv.path}",
                             "Ansible would only warn, but a pattern that matches nothing is "
                             "usually a typo", f"check the pattern ({known()})")
        for g in groups:
            hosts |= inv.hosts_of(g)
        return hosts
    if pattern in inv.hosts:
        return {pattern}
    if pattern in inv.groups:
        return inv.hosts_of(pattern)
    raise UsageError(f"limit {limit!r}: {pattern!r} is no host or group of {inv.path}",
                     "Ansible would only warn, but a name that matches nothing is usually a typo "
                     "(a mistyped !name would leave the host in)", f"check the name ({known()})")


# -- a host's variables and its host-list entry -----------------------------------------------------
def _priority(g: _Group) -> int:
    var = g.vars.get("ansible_group_priority")
    if var is None or var.value is None:
        return 1
    v = var.value
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    raise UsageError(f"{var.where}: ansible_group_priority {v!r} of group {g.name!r} is not a number",
                     "it orders groups of the same depth", "write a whole number, e.g. 10")


def _resolved_vars(inv: _Inventory, host: str) -> dict[str, _Var]:
    """Ansible's precedence: groups by (depth, priority, name), later ones winning; host last."""
    out: dict[str, _Var] = {}
    for g in sorted(inv.groups_of(host), key=lambda g: (inv.depth[g], _priority(inv.groups[g]), g)):
        out.update(inv.groups[g].vars)
    out.update(inv.hosts[host].vars)
    return out


def _truthy(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return value is True or (isinstance(value, int) and value == 1)


def _refuse_unhonoured(host: str, v: dict[str, _Var], sudo: bool) -> None:
    """Refuse what this tool cannot honour, rather than connect differently from Ansible."""
    leave_out = f"or leave the host out with --limit '!{host}'"
    for key, var in v.items():
        if not key.startswith("ansible_") or var.value is None:
            continue
        if "pass" in key:
            raise UsageError(f"{var.where}: {key} is set (host {host})",
                             "passwords never belong in an inventory praxis-upgrade reads: it would "
                             "not use them, and will not carry them",
                             "remove it: hosts are reached with SSH keys (--identity) and the sudo "
                             "password comes from PRAXIS_SUDO_PASSWORD or the prompt of --sudo")
        if key in KEY_VARS:
            raise UsageError(f"{var.where}: {key} is set (host {host})",
                             "praxis-upgrade uses one key for every host (--identity) and cannot "
                             "honour a key from the inventory",
                             f"remove it and pass --identity KEY, or set IdentityFile for the host in "
                             f"~/.ssh/config (read by Ansible and, with --ssh-config, by praxis-upgrade); "
                             f"{leave_out}")
        if key in SSH_ARG_VARS:
            raise UsageError(f"{var.where}: {key} is set (host {host})",
                             "praxis-upgrade connects with Paramiko, not the ssh command, so ssh "
                             "arguments would be ignored",
                             f"move the options (ProxyJump, Port ...) to ~/.ssh/config, which both "
                             f"Ansible and praxis-upgrade (--ssh-config) read, and remove {key}; "
                             f"{leave_out}")
    conn = v.get("ansible_connection")
    if conn is not None and conn.value is not None:
        value = _text(conn, host, "ansible_connection")
        if value not in SSH_CONNECTIONS:
            local = " (this machine is upgraded without --hosts)" if value == "local" else ""
            raise UsageError(f"{conn.where}: ansible_connection={value} (host {host})",
                             f"praxis-upgrade reaches hosts over SSH only{local}",
                             f"leave the host out with --limit '!{host}'")
    for key in BECOME_VARS:
        become = v.get(key)
        if become is None or not _truthy(become.value):
            continue
        if not sudo:
            raise UsageError(f"{become.where}: {key} is true (host {host}) but the run has no --sudo",
                             "Ansible would run as root there; without --sudo the engine runs as the "
                             "SSH user", f"pass --sudo, {leave_out}")
        for other, allowed in (("ansible_become_user", "root"), ("ansible_become_method", "sudo")):
            o = v.get(other)
            if o is not None and o.value is not None and _text(o, host, other) != allowed:
                raise UsageError(f"{o.where}: {other}={o.value} (host {host})",
                                 f"--sudo runs the engine with sudo as root; {other} must be {allowed}",
                                 f"remove {other}, {leave_out}")


def _pick(host: str, v: dict[str, _Var], names: tuple[str, str]) -> _Var | None:
    """One of a variable and its older alias (``ansible_ssh_host``...); both, differing, is refused
    rather than guessing which one Ansible's connection plugin would take."""
    a, b = (var if var is not None and var.value is not None else None
            for var in (v.get(n) for n in names))
    if a and b and a.value != b.value:
        raise UsageError(f"{b.where}: both {names[0]}={a.value} ({a.where}) and {names[1]}={b.value} "
                         f"are set (host {host})", f"{names[1]} is an older name of {names[0]}",
                         f"keep only {names[0]}")
    return a or b


def _text(var: _Var, host: str, key: str) -> str:
    value = var.value
    if isinstance(value, _Vault):
        raise UsageError(f"{var.where}: {key} of host {host} is encrypted with Ansible Vault",
                         "praxis-upgrade does not decrypt Vault values", f"write {key} in clear text")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise UsageError(f"{var.where}: {key} of host {host} is a {type(value).__name__}: {value!r}",
                         "it must be a string", f"write {key} as text")
    if "{{" in value or "{%" in value:
        raise UsageError(f"{var.where}: {key} of host {host} is a Jinja template: {value}",
                         "praxis-upgrade does not evaluate templates", f"write the value of {key} itself")
    return value.strip()


def _render(inv: _Inventory, host: str, sudo: bool) -> str:
    """``user@address:port=/project`` for one host, after refusing what it cannot honour."""
    v = _resolved_vars(inv, host)
    _refuse_unhonoured(host, v, sudo)
    avar, uvar, pvar = (_pick(host, v, names) for names in (HOST_VARS, USER_VARS, PORT_VARS))
    where = avar.where if avar else inv.hosts[host].where
    address = _text(avar, host, "ansible_host") if avar else host
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    what = "ansible_host" if avar else "the host name"
    if not address or BAD_ADDRESS_RE.search(address):
        hint = (f"give the project with {PROJECT_VAR}=/abs/project" if "=" in address and not avar
                else "write a host name, an IP address or an ssh-config alias")
        raise UsageError(f"{where}: {what} {address!r} of host {host} is not a host address",
                         "an address has no spaces, '@', '=', '#', ',', '/' or quotes", hint)
    colons = address.count(":")
    if colons == 1 or (colons > 1 and not _is_ipv6(address)):
        raise UsageError(f"{where}: {what} {address!r} of host {host} is not a host address",
                         "a port is given with ansible_port, not in the address",
                         "write the address alone and the port in ansible_port")
    out = address
    if uvar:
        user = _text(uvar, host, "ansible_user")
        if not user or BAD_USER_RE.search(user):
            raise UsageError(f"{uvar.where}: ansible_user {user!r} of host {host} is not a user name",
                             "a user name has no spaces, '@', ':', '=', '#', ',', '/' or quotes",
                             "write the login name alone")
        out = f"{user}@{out}"
    if pvar:
        port = _text(pvar, host, "ansible_port")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"{pvar.where}: ansible_port {pvar.value!r} of host {host} is not a number",
                             "a port is a number from 1 to 65535", "write e.g. ansible_port=2222")
        if colons:
            raise UsageError(f"{where}: the IPv6 address {address} of host {host} has a port",
                             "the host list format cannot tell an IPv6 address's last group from "
                             "a port", "name the host in ~/.ssh/config (HostName and Port) and use "
                             "that alias as the inventory name")
        out = f"{out}:{int(port)}"
    project = v.get(PROJECT_VAR)
    if project is not None and project.value is not None:
        path = _text(project, host, PROJECT_VAR)
        if not path.startswith("/") or "#" in path or "\n" in path:
            raise UsageError(f"{project.where}: {PROJECT_VAR} {path!r} of host {host} is not an "
                             "absolute path", "remote paths must be absolute (and have no '#')",
                             f"write {PROJECT_VAR}=/abs/path/to/project")
        out = f"{out}={path}"
    return out
