"""Ansible inventories as host lists (upgrade_tasks/inventory.py): tables of inventory text and
the host strings they give, and of bad inventories and what their message must say."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from upgrade_tasks.errors import EXIT_USAGE, UsageError
from upgrade_tasks.fleet import parse_hosts, split_host
from upgrade_tasks.inventory import is_inventory, load


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def refused(path: Path, limit: str = "", sudo: bool = False) -> str:
    with pytest.raises(UsageError) as info:
        load(path, limit, sudo=sudo)
    assert info.value.exit_code == EXIT_USAGE
    assert info.value.why or info.value.hint, "a message says why or what to do"
    return info.value.render()


# -- INI: text -> hosts --------------------------------------------------------------------------
INI = [
    pytest.param("""
        alpha
        [web]
        web1 ansible_host=10.0.0.1 ansible_user=deploy ansible_port=2222
        web2:2200
        """, ["alpha", "deploy@10.0.0.1:2222", "web2:2200"], id="ungrouped-then-group-inline-vars"),
    pytest.param("""
        [web]
        web1
        web2 praxis_project=/srv/own
        [all:vars]
        praxis_project=/srv/app
        """, ["web1=/srv/app", "web2=/srv/own"], id="all-vars-and-host-override"),
    pytest.param("""
        [web]
        web1
        [db]
        db1 praxis_project=/srv/db
        [prod:children]
        web
        db
        [prod:vars]
        praxis_project=/srv/prod
        ansible_user=prod
        [web:vars]
        ansible_user=webadmin
        [all:vars]
        praxis_project=/srv/all
        ansible_user=everyone
        """, ["webadmin@web1=/srv/prod", "prod@db1=/srv/db"], id="child-beats-parent-beats-all"),
    pytest.param("""
        [prod:children]
        web
        [prod:vars]
        ansible_user=p
        [web]
        web1
        """, ["p@web1"], id="children-declared-before-their-group"),
    pytest.param("""
        [top:children]
        mid
        [mid:children]
        leaf
        [leaf]
        h1
        [other]
        h1
        [top:vars]
        ansible_user=top
        [other:vars]
        ansible_user=other
        [leaf:vars]
        ansible_user=leaf
        """, ["leaf@h1"], id="deepest-group-wins-over-a-shallower-one"),
    pytest.param("""
        [a]
        h1
        [b]
        h1
        [a:vars]
        ansible_user=from_a
        [b:vars]
        ansible_user=from_b
        """, ["from_b@h1"], id="same-depth-later-name-wins"),
    pytest.param("""
        [a]
        h1
        [b]
        h1
        [a:vars]
        ansible_user=from_a
        ansible_group_priority=10
        [b:vars]
        ansible_user=from_b
        """, ["from_a@h1"], id="same-depth-group-priority"),
    pytest.param("""
        [web]
        web1 praxis_project="/srv/my app"  ansible_user='ops'   # a comment
        web2 praxis_project=/srv/x#glued-to-the-word-still-a-comment-as-in-ansible
        [db]
        db1
        [db:vars]
        praxis_project = "/srv/quoted" # a comment
        ansible_port = 2201
        """, ["ops@web1=/srv/my app", "web2=/srv/x", "db1:2201=/srv/quoted"], id="quoting-and-comments"),
    pytest.param("""
        ; a comment
        # another
        [web]
        web[01:03].example.com
        db[a:c]
        app[1:5:2]
        """, ["web01.example.com", "web02.example.com", "web03.example.com", "dba", "dbb", "dbc",
              "app1", "app3", "app5"], id="host-ranges"),
    pytest.param("""
        [web]
        web1
        web2 ansible_host=10.0.0.9
        [db]
        web1
        db9 ansible_host=10.0.0.9
        """, ["web1", "10.0.0.9"], id="duplicates-removed-first-kept"),
    pytest.param("""
        [v6]
        [fe80::1]
        2001:db8::5 ansible_user=root
        """, ["fe80::1", "root@2001:db8::5"], id="ipv6-without-port"),
    pytest.param("""
        [all]
        h1 ansible_ssh_host=10.1.1.1 ansible_ssh_user=u ansible_ssh_port=23
        h2 ansible_host=10.1.1.2 ansible_ssh_host=10.1.1.2
        """, ["u@10.1.1.1:23", "10.1.1.2"], id="old-ssh-aliases"),
    pytest.param("""
        [web]
        web1 ansible_connection=ssh ansible_python_interpreter=/usr/bin/python3 ansible_become=false
        web2 ansible_connection=paramiko ansible_become_user=postgres app_password=not-ours
        """, ["web1", "web2"], id="harmless-ansible-vars-ignored"),
    pytest.param("""
        [web]
        web1:2200 ansible_port=2300
        """, ["web1:2300"], id="inline-port-beats-pattern-port"),
    pytest.param("""
        h1
        [ungrouped:vars]
        ansible_user=lonely
        [g]
        h2
        """, ["lonely@h1", "h2"], id="ungrouped-group-vars"),
]


@pytest.mark.parametrize("text, expected", INI)
def test_ini(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert load(write(tmp_path, "hosts", text)) == expected


# -- YAML: text -> hosts -------------------------------------------------------------------------
STANDARD = """
        all:
          hosts:
            mail.example.com:
          children:
            web:
              hosts:
                web1:
                  ansible_host: 10.0.0.1
                  ansible_port: 2222
                web2:
              vars:
                ansible_user: deploy
            db:
              hosts:
                db1:
                  praxis_project: /srv/db
          vars:
            praxis_project: /srv/app
        """

YAML = [
    pytest.param(STANDARD, ["mail.example.com=/srv/app", "deploy@10.0.0.1:2222=/srv/app",
                            "deploy@web2=/srv/app", "db1=/srv/db"], id="standard-nesting"),
    pytest.param("""
        web:
          hosts:
            w1:
        db:
          hosts:
            d1: {ansible_user: dba}
        """, ["w1", "dba@d1"], id="top-level-groups-without-all"),
    pytest.param("""
        all:
          vars: {ansible_user: everyone}
          children:
            prod:
              vars: {ansible_user: prod, praxis_project: /srv/prod}
              children:
                web:
                  vars: {ansible_user: web}
                  hosts:
                    web1:
                    web2: {praxis_project: /srv/own}
                db:
                  hosts:
                    db1:
        """, ["web@web1=/srv/prod", "web@web2=/srv/own", "prod@db1=/srv/prod"],
        id="child-beats-parent-host-beats-all"),
    pytest.param("""
        all:
          children:
            web:
              hosts:
                web1:
            staging:
              children:
                web:
                  vars: {ansible_user: merged}
              hosts:
                web1: {ansible_port: "2201"}
                s1:
        """, ["merged@web1:2201", "s1"], id="group-declared-twice-merges"),
    pytest.param("""
        all:
          hosts:
            web[1:2]:
              ansible_user: u
            "[::1]":
            h3:
              tag: !unsafe "{{ not templated }}"
              secret: !vault |
                $ANSIBLE_VAULT;1.1;AES256
                6162636465
        """, ["u@web1", "u@web2", "::1", "h3"], id="ranges-ipv6-and-ansible-tags"),
    pytest.param("""
        {"all": {"hosts": {"j1": {"ansible_port": 2022}}, "vars": {"praxis_project": "/p"}}}
        """, ["j1:2022=/p"], id="json-flow-style"),
    pytest.param("""
        all:
          children:
            web:
              hosts:
                web1:
            empty:
            alsoempty:
              hosts:
        """, ["web1"], id="empty-groups"),
]


@pytest.mark.parametrize("text, expected", YAML)
def test_yaml(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert load(write(tmp_path, "hosts.yml", text)) == expected


# -- limits ----------------------------------------------------------------------------------------
LIMIT_INI = """
    [web]
    web1
    web2
    [db]
    db1
    db2
    [staging]
    web2
    db2
    [prod:children]
    web
    db
    [empty]
    """

LIMITS = [
    ("", ["web1", "web2", "db1", "db2"]),
    ("all", ["web1", "web2", "db1", "db2"]),
    ("*", ["web1", "web2", "db1", "db2"]),
    ("web", ["web1", "web2"]),
    ("db2,web1", ["web1", "db2"]),  # the file's order, not the limit's
    (" web1 , db1 ", ["web1", "db1"]),
    ("web,db1", ["web1", "web2", "db1"]),
    ("web:db1", ["web1", "web2", "db1"]),
    ("prod:!staging", ["web1", "db1"]),
    ("prod,!staging", ["web1", "db1"]),
    ("prod:&staging", ["web2", "db2"]),
    ("&staging", ["web2", "db2"]),
    ("!web", ["db1", "db2"]),
    ("!web,!db1", ["db2"]),
    ("*1", ["web1", "db1"]),
    ("db*", ["db1", "db2"]),
    ("stag*", ["web2", "db2"]),
    ("web?", ["web1", "web2"]),
    ("~web[12]", ["web1", "web2"]),
    ("~(db|web)2", ["web2", "db2"]),
    ("empty,web1", ["web1"]),
    ("!empty", ["web1", "web2", "db1", "db2"]),
    ("@{tmp}/retry", ["web2", "db1"]),
]


@pytest.mark.parametrize("limit, expected", LIMITS, ids=[f"limit={lim or 'empty'}" for lim, _ in LIMITS])
@pytest.mark.parametrize("fmt", ["ini", "yml"])
def test_limit(tmp_path: Path, fmt: str, limit: str, expected: list[str]) -> None:
    (tmp_path / "retry").write_text("db1\nweb2\n\n")
    if fmt == "ini":
        path = write(tmp_path, "hosts", LIMIT_INI)
    else:
        path = write(tmp_path, "hosts.yml", """
            all:
              children:
                prod:
                  children:
                    web:
                      hosts: {web1: , web2: }
                    db:
                      hosts: {db1: , db2: }
                staging:
                  hosts: {web2: , db2: }
                empty:
            """)
    assert load(path, limit.replace("{tmp}", str(tmp_path))) == expected


# -- group_vars/ and host_vars/ --------------------------------------------------------------------
def test_group_vars_and_host_vars_dirs(tmp_path: Path) -> None:
    inv = write(tmp_path, "inventory/hosts", """
        [web]
        web1 ansible_port=2200
        web2
        [db]
        db1
        [web:vars]
        praxis_project=/srv/inline
        """)
    write(tmp_path, "inventory/group_vars/all.yml", "ansible_user: admin\npraxis_project: /srv/all\n")
    write(tmp_path, "inventory/group_vars/web/main.yml", "praxis_project: /srv/web\n")
    write(tmp_path, "inventory/group_vars/web/vault.yml", "$ANSIBLE_VAULT;1.1;AES256\n3132\n")
    write(tmp_path, "inventory/group_vars/web/notes.txt", "not: read\n")
    write(tmp_path, "inventory/host_vars/web1.yaml", "ansible_port: 2201\n")
    write(tmp_path, "inventory/host_vars/db1", "ansible_host: 10.0.0.7\n")
    assert load(inv) == ["admin@web1:2201=/srv/web", "admin@web2=/srv/web", "admin@10.0.0.7=/srv/all"]


def test_become_is_honoured_with_sudo_only(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts", """
        [web]
        web1
        [web:vars]
        ansible_become=yes
        ansible_become_user=root
        """)
    assert load(path, sudo=True) == ["web1"]
    assert "--sudo" in refused(path)


def test_values_are_checked_only_on_the_selected_hosts(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts", """
        localhost ansible_connection=local
        [web]
        web1
        """)
    assert "--limit '!localhost'" in refused(path)
    assert load(path, "!localhost") == ["web1"]


def test_every_host_string_reads_back_as_a_plain_host_list(tmp_path: Path) -> None:
    hosts = load(write(tmp_path, "hosts.yml", STANDARD))
    listing = tmp_path / "hosts.txt"
    listing.write_text("\n".join(hosts) + "\n")
    assert not is_inventory(listing)
    assert parse_hosts(f"@{listing}") == hosts
    assert [split_host(h) for h in hosts] == [
        ("mail.example.com", "/srv/app"), ("deploy@10.0.0.1:2222", "/srv/app"),
        ("deploy@web2", "/srv/app"), ("db1", "/srv/db")]


# -- is_inventory ----------------------------------------------------------------------------------
IS_INVENTORY = [
    ("hosts.yml", "anything\n", True),
    ("hosts.yaml", "all:\n  hosts:\n", True),
    ("hosts.ini", "web1\n", True),
    ("hosts", "[web]\nweb1\n", True),
    ("hosts", "# fleet\n[web:vars] # the web servers\nx=1\n", True),
    ("hosts", "web1 ansible_host=10.0.0.1\n", True),
    ("hosts.txt", "dev@box1\nbox2:2222\nbox3=/srv/app  # a comment\n", False),
    ("hosts.txt", "[::1]:2222\n[fe80::1]\n", False),
    ("hosts.txt", "box =/srv/app\n", False),
    ("hosts.txt", "box=/srv/my app=1 x=y\n", False),
    ("hosts.txt", "", False),
]


@pytest.mark.parametrize("name, text, expected", IS_INVENTORY,
                         ids=[f"{n}:{t.splitlines()[0] if t else 'empty'}" for n, t, _ in IS_INVENTORY])
def test_is_inventory(tmp_path: Path, name: str, text: str, expected: bool) -> None:
    assert is_inventory(write(tmp_path, name, text)) is expected


def test_is_inventory_of_what_cannot_be_read(tmp_path: Path) -> None:
    assert not is_inventory(tmp_path / "missing")
    assert not is_inventory(tmp_path)


# -- bad inventories: (file name, text, limit, the parts of the message) ----------------------------
BAD = [
    # INI syntax and structure
    ("hosts", "[web]\nweb1 ansible_user\n", "", ["hosts:2", "'ansible_user' is not key=value", "key=value"]),
    ("hosts", "[web]\nweb1 ansible_user='ops\n", "", ["hosts:2", "malformed host line", "quote"]),
    ("hosts", "[web servers]\nweb1\n", "", ["hosts:1", "malformed section header", "no spaces"]),
    ("hosts", "[web:hosts2]\nweb1\n", "", ["hosts:1", "unknown type 'hosts2'", "[web:children]"]),
    ("hosts", "[prod:children]\nweb\ndb\n[web]\nw1\n", "",
     ["hosts:3", "[prod:children] names the unknown group 'db'", "add a [db] section"]),
    ("hosts", "[web]\nw1\n[wbe:vars]\nx=1\n", "", ["hosts:3", "[wbe:vars] is for the unknown group",
                                                   "add a [wbe] section"]),
    ("hosts", "[p:children]\nweb db\n[web]\n", "", ["hosts:2", "malformed line", "one group name"]),
    ("hosts", "[web]\nw1\n[web:vars]\njusttext\n", "", ["hosts:4", "[web:vars]", "name=value"]),
    ("hosts", "[a:children]\nb\n[b:children]\na\n[a]\nh1\n", "",
     ["hosts:4", "the children groups form a cycle: a -> b -> a", "remove 'a' from the children of 'b'"]),
    ("hosts", "[a:children]\na\n[a]\nh1\n", "", ["hosts:2", "cycle: a -> a"]),
    ("hosts", "[a:children]\nall\n[a]\nh1\n", "", ["hosts:2", "'all' is listed as a child"]),
    ("hosts", "all:\n  hosts:\n", "", ["hosts:1", "'all:' ends in ':'", "name it .yml"]),
    ("hosts", "---\nall:\n", "", ["hosts:1", "looks like YAML", "name it .yml"]),
    ("hosts", "[web]\nweb[3:1]\n", "", ["hosts:2", "bad host range", "the start is after the end"]),
    ("hosts", "[web]\nweb[01:3]\n", "", ["hosts:2", "same width"]),
    ("hosts", "[web]\nweb1:\n", "", ["hosts:2", "ends in ':'"]),
    ("hosts", "# nothing here\n[web]\n", "", ["has no hosts"]),
    ("missing", None, "", ["cannot read the inventory", "missing"]),
    # values we use
    ("hosts", "[web]\nweb1 praxis_project=srv/app\n", "",
     ["hosts:2", "praxis_project 'srv/app' of host web1 is not an absolute path", "=/abs/path"]),
    ("hosts", "[web]\nweb1\n[web:vars]\npraxis_project=~/app\n", "",
     ["hosts:4", "not an absolute path"]),
    ("hosts", "[web]\nweb1 ansible_port=ssh\n", "", ["hosts:2", "ansible_port 'ssh'", "not a number"]),
    ("hosts", "[web]\nweb1:ssh\n", "", ["hosts:2", "the port 'ssh'", "not a number"]),
    ("hosts", "[web]\nweb1 ansible_port=70000\n", "", ["hosts:2", "not a number", "1 to 65535"]),
    ("hosts", "[web]\nweb1 ansible_host=10.0.0.1:22\n", "", ["hosts:2", "ansible_port"]),
    ("hosts", "[web]\n[2001:db8::1]:2222\n", "", ["hosts:2", "IPv6", "~/.ssh/config"]),
    ("hosts", "web1 ansible_host='{{ inventory_hostname }}.lan'\n", "", ["hosts:1", "Jinja template"]),
    ("hosts", "web1 ansible_host=a ansible_ssh_host=b\n", "", ["hosts:1", "both ansible_host=a",
                                                               "keep only ansible_host"]),
    ("hosts", "web1=/srv/app\n", "", ["hosts:1", "not a host address", "praxis_project=/abs/project"]),
    ("hosts", "[a]\nh1\n[a:vars]\nansible_group_priority=high\n", "", ["hosts:4", "not a number"]),
    # what we cannot honour
    ("hosts", "[web]\nweb1 ansible_password=hunter2\n", "", ["hosts:2", "ansible_password is set",
                                                             "passwords never belong", "--identity"]),
    ("hosts", "[web]\nweb1\n[all:vars]\nansible_become_password=x\n", "",
     ["hosts:4", "ansible_become_password", "PRAXIS_SUDO_PASSWORD"]),
    ("hosts", "web1 ansible_ssh_pass=x\n", "", ["ansible_ssh_pass is set"]),
    ("hosts", "web1 ansible_ssh_private_key_file=~/.ssh/web\n", "",
     ["hosts:1", "ansible_ssh_private_key_file", "--identity", "IdentityFile"]),
    ("hosts", "web1 ansible_ssh_common_args='-o ProxyJump=bastion'\n", "",
     ["hosts:1", "ansible_ssh_common_args", "~/.ssh/config"]),
    ("hosts", "box ansible_connection=docker\n", "", ["hosts:1", "ansible_connection=docker", "SSH only",
                                                      "--limit '!box'"]),
    ("hosts", "localhost ansible_connection=local\n", "", ["without --hosts"]),
    ("hosts", "web1 ansible_become=true\n", "", ["hosts:1", "ansible_become is true", "--sudo"]),
    # limits
    ("hosts", "[web]\nweb1\n", "wbe", ["limit 'wbe'", "'wbe' is no host or group", "web"]),
    ("hosts", "[web]\nweb1\n", "web:!wbe1", ["'wbe1' is no host or group", "typo"]),
    ("hosts", "[web]\nweb1\n", "db*", ["'db*' matches no host or group"]),
    ("hosts", "[web]\nweb1\n", "web:!web1", ["limit 'web:!web1' matches no host"]),
    ("hosts", "[web]\nweb1\n", "web,!", ["'!' or '&' with no name"]),
    ("hosts", "[web]\nweb1\n", "web[0]", ["subscripts", "not supported"]),
    ("hosts", "[web]\nweb1\n", "~web(", ["bad regular expression"]),
    ("hosts", "[web]\nweb1\n", ",", ["names no host or group"]),
    ("hosts", "[web]\nweb1\n", "@/nonexistent/retry", ["cannot read /nonexistent/retry"]),
    # YAML
    ("hosts.yml", "all:\n  hosts:\n    web1:\n   bad: indent\n", "", ["hosts.yml:", "malformed YAML"]),
    ("hosts.yml", "- web1\n- web2\n", "", ["must be a mapping of groups", "all:"]),
    ("hosts.yml", "plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n", "",
     ["hosts.yml:1", "inventory plugin", "ansible-inventory -i"]),
    ("hosts.yml", "all:\n  hosts:\n    - web1\n    - web2\n", "",
     ["hosts.yml:2 (all.hosts)", "hosts must be a mapping", "no leading '-'"]),
    ("hosts.yml", "all:\n  children:\n    web:\n      web1:\n", "",
     ["hosts.yml:4 (all.children.web.web1)", "unexpected key 'web1'", "hosts:"]),
    ("hosts.yml", "all:\n  hosts:\n    a:\n  hosts:\n    b:\n", "", ["hosts.yml:4", "duplicate key 'hosts'"]),
    ("hosts.yml", "hosts:\n  web1:\n", "", ["hosts.yml:1", "'hosts' at the top level", "all:"]),
    ("hosts.yml", "all:\n  children:\n    web: web1\n", "", ["hosts.yml:3 (all.children.web)",
                                                           "must be a mapping"]),
    ("hosts.yml", "all:\n  hosts:\n    web1:\n      ansible_host: !vault |\n        $ANSIBLE_VAULT;1.1\n",
     "", ["hosts.yml:4 (all.hosts.web1.ansible_host)", "Ansible Vault"]),
    ("hosts.yml", "all:\n  children:\n    a:\n      children:\n        b:\n          children:\n"
                  "            a:\n", "", ["hosts.yml:7 (all.children.a.children.b.children.a)",
                                          "cycle: a -> b -> a"]),
    ("hosts.yml", "all:\n  hosts:\n    web1:\n      ansible_port: [22]\n", "",
     ["hosts.yml:4 (all.hosts.web1.ansible_port)", "is a list"]),
    ("hosts.yml", "all:\n  hosts:\n    web1:\n      praxis_project: relative/dir\n", "",
     ["hosts.yml:4 (all.hosts.web1.praxis_project)", "not an absolute path"]),
    ("hosts.yml", "all:\n  hosts:\n    web1:\n  vars:\n    ansible_password: x\n", "",
     ["hosts.yml:5 (all.vars.ansible_password)", "passwords never belong"]),
    ("hosts.yml", "all:\n  children:\n    all:\n", "", ["'all' is listed as a child"]),
]


@pytest.mark.parametrize("name, text, limit, parts", BAD,
                         ids=[f"{i:02d}-{b[0]}-{b[3][1] if len(b[3]) > 1 else b[3][0]}"[:60]
                              for i, b in enumerate(BAD)])
def test_bad_inventory(tmp_path: Path, name: str, text: str | None, limit: str, parts: list[str]) -> None:
    path = tmp_path / name if text is None else write(tmp_path, name, text)
    message = refused(path, limit)
    for part in parts:
        assert part in message, f"{part!r} not in:\n{message}"
    if text is not None and not message.startswith("error[bad-input]: limit"):
        assert str(path) in message, "the message names the file"


def test_a_bad_group_vars_file_is_named(tmp_path: Path) -> None:
    inv = write(tmp_path, "hosts", "[web]\nweb1\n")
    write(tmp_path, "group_vars/web.yml", "- not\n- a mapping\n")
    message = refused(inv)
    assert "group_vars/web.yml" in message and "must be a mapping" in message
