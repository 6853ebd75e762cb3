# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The README's examples, run from the collection as a user gets it, on a two-host lab.

The collection is built into a tarball from the checkout's files (git-tracked plus untracked files git does not
ignore) and installed offline into an empty directory by the ansible-galaxy next to the ansible-playbook under
test ($ANSIBLE_PLAYBOOK, else .venv's); every example then runs with that directory as the only collections path,
an empty ansible.cfg and a working directory outside the checkout, and ``-vvv`` shows each module file it used.

The examples are read from README.md itself (its ```yaml blocks, by the heading they are under), so a README
example that stops working fails here. Changes made to them, none of which touch what they show:

- a task list becomes the tasks of a play on the lab's group ``cnm_lab``; facts are not gathered; the runs are
  limited to the lab's first host, but the overlay's, which joins both;
- every ``netns:`` value V becomes ``<lab host's namespace>-V``: named namespaces are global on the machine, so
  ``app`` would be the same namespace for both lab hosts (and for any other test run at the same time); the lab
  host's name carries the lab's unique prefix, which the lab's removal sweeps.

Each test removes what its example made (endpoints with their namespaces, networks) and checks that nothing is left.
Run by scripts/test.sh's integration stage (.venv's ansible-core) and its compat stage (the oldest one supported).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import pings, sh, tcp_connects
from test_lab import REPO, ansible_playbook, assert_ok, lab_namespaces, recap_changed
from test_playbooks import lab_of

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

README = (REPO / "README.md").read_text()
HOSTS = ("h1", "h2")


def readme_yaml_blocks() -> dict:
    """Every ```yaml block of README.md, raw, by the text of the heading it is under (fences of other languages are
    skipped whole: their ``#`` lines are no headings)."""
    blocks: dict = {}
    heading, language, body = None, None, []
    for line in README.splitlines():
        fence = line.strip().startswith("```")
        if language is not None:
            if fence:
                if language == "yaml":
                    blocks.setdefault(heading, []).append("\n".join(body))
                language = None
            else:
                body.append(line)
        elif fence:
            language, body = line.strip()[3:].strip(), []
        elif re.match(r"#{1,6} ", line):
            heading = line.lstrip("#").strip()
    return blocks


BLOCKS = readme_yaml_blocks()


def example(heading: str) -> str:
    assert heading in BLOCKS, "README.md has no ```yaml block under the heading %r" % heading
    return BLOCKS[heading][0]


def with_lab_namespaces(data):
    """``data`` with each ``netns:`` value V as "<the lab host's namespace>-V" (see the module's docstring)."""
    if isinstance(data, dict):
        return {
            key: "{{ ansible_netns_name }}-" + value
            if key == "netns" and isinstance(value, str)
            else with_lab_namespaces(value)
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [with_lab_namespaces(item) for item in data]
    return data


def as_plays(text: str, hosts: str = "cnm_lab") -> list:
    """The plays of an example: itself when it is a playbook, else a play running its tasks on ``hosts``."""
    data = with_lab_namespaces(yaml.safe_load(text))
    assert isinstance(data, list) and data, text
    if all(isinstance(item, dict) and "hosts" in item for item in data):
        return data
    return [{"name": "README example", "hosts": hosts, "gather_facts": False, "tasks": data}]


def play(tasks: list, name: str = "Test step") -> dict:
    return {"name": name, "hosts": "cnm_lab", "gather_facts": False, "tasks": tasks}


def task_statuses(result: subprocess.CompletedProcess) -> list:
    """Per task of the run, in order: {host: ok|changed|failed|...} from the default callback's lines."""
    tasks: list = []
    for line in result.stdout.splitlines():
        if line.startswith("TASK ["):
            tasks.append({})
        status = re.match(r"(ok|changed|failed|fatal|skipping): \[([^\]]+)\]", line)
        if status and tasks:
            tasks[-1][status.group(2)] = status.group(1)
    return tasks


# Whatever an example made: endpoints (with their namespaces; their published ports go with them) and networks.
CLEANUP = [
    play(
        [
            {"name": "Read what exists", "cnm.network.cnm_info": {}, "register": "cnm_readme_info"},
            {
                "name": "Detach every endpoint and delete its namespace",
                "cnm.network.cnm_endpoint": {
                    "network": "{{ item.network }}",
                    "netns": "{{ item.netns }}",
                    "state": "absent",
                    "delete_netns": True,
                },
                "loop": "{{ cnm_readme_info.endpoints }}",
            },
        ]
        + [
            {
                "name": "Remove every %s network" % driver,
                "cnm.network.cnm_%s" % driver: {"name": "{{ item.name }}", "state": "absent", "force": True},
                "loop": "{{ cnm_readme_info.networks | selectattr('driver', 'eq', '%s') }}" % driver,
            }
            for driver in ("bridge", "overlay")
        ],
        "Remove what the README example made",
    )
]


def _copy_checkout():
    """tests/unit/test_packaging.py's copy of the checkout as a clone plus work in progress has it."""
    spec = importlib.util.spec_from_file_location(
        "cnm_unit_test_packaging", REPO / "tests" / "unit" / "test_packaging.py"
    )
    packaging = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(packaging)
    return packaging.copy_checkout


class Installed:
    """The collection built from the checkout and installed into an empty directory, and a lab to run on."""

    def __init__(self, work: Path, inventory: Path, prefix: str) -> None:
        self.work, self.inventory, self.prefix = work, inventory, prefix
        self.collections = work / "installed"
        config = work / "ansible.cfg"
        config.write_text("")  # not the checkout's, which points at .venv/collections (the checkout itself)
        self.env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
        self.env.update(
            ANSIBLE_CONFIG=str(config),
            ANSIBLE_COLLECTIONS_PATH=str(self.collections),
            ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="false",
            ANSIBLE_GATHERING="explicit",
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_STDOUT_CALLBACK="default",
        )
        self.runs = 0
        self.hosts = HOSTS  # what the next runs are limited to

    def tool(self, name: str) -> str:
        return str(Path(ansible_playbook()).parent / name)

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            argv, cwd=self.work, env=self.env, capture_output=True, text=True, timeout=600, check=False
        )

    def install(self) -> None:
        src, dist = self.work / "src", self.work / "dist"
        _copy_checkout()(src)
        assert_ok(self.run(self.tool("ansible-galaxy"), "collection", "build", "--output-path", str(dist), str(src)))
        (tarball,) = dist.glob("cnm-network-*.tar.gz")
        self.collections.mkdir()
        assert_ok(
            self.run(
                self.tool("ansible-galaxy"),
                "collection",
                "install",
                "--offline",
                "-p",
                str(self.collections),
                str(tarball),
            )
        )

    def playbook(self, plays: list, *extra: str) -> subprocess.CompletedProcess:
        """Run ``plays`` on the lab with -vvv and check that every module came from the installed copy."""
        self.runs += 1
        path = self.work / ("play%d.yml" % self.runs)
        path.write_text(yaml.safe_dump(plays, sort_keys=False))
        result = self.run(
            self.tool("ansible-playbook"),
            "-vvv",
            "-i",
            str(self.inventory),
            "--limit",
            ",".join(self.hosts),
            str(path),
            *extra,
        )
        used = re.findall(r"^Using module file (\S+)", result.stdout, re.M)
        ours = [name for name in used if "/cnm/network/" in name or name.startswith(str(REPO) + "/")]
        assert ours, result.stdout[-3000:]
        outside = [name for name in ours if not name.startswith(str(self.collections) + "/")]
        assert outside == [], "modules not from the installed collection: %s" % outside
        return result

    def sandbox(self, host: str, short: str) -> str:
        return "%s-%s-%s" % (self.prefix, host, short)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("readme")
    with lab_of(work, 2) as (prefix, inventory, _env):
        ready = Installed(work, inventory, prefix)
        ready.install()
        yield ready


@pytest.fixture
def clean(installed):
    """The lab limited to its first host (a test may widen it); afterwards what the test's example made is removed
    and nothing of it is left: no namespace, no link in the lab hosts but their own, no process (resolver)."""
    installed.hosts = HOSTS[:1]
    yield installed
    assert_ok(installed.playbook(CLEANUP))
    assert lab_namespaces(installed.prefix) == sorted("%s-%s" % (installed.prefix, n) for n in HOSTS + ("lan", "ul"))
    for host in HOSTS:
        netns = "%s-%s" % (installed.prefix, host)
        links = json.loads(sh("ip -j link show", netns=netns).stdout)
        assert sorted(link["ifname"] for link in links) == ["eth0", "lo"], links
        assert sh("ip netns pids %s" % netns).stdout.split() == []


def address_of(netns: str) -> dict:
    """{IPv4/IPv6 address: its link} in a namespace (global addresses only)."""
    links = json.loads(sh("ip -j addr show", netns=netns).stdout)
    return {
        info["local"]: link for link in links for info in link.get("addr_info", []) if info.get("scope") == "global"
    }


def test_the_installed_collection_is_the_only_one(installed):
    listed = installed.run(installed.tool("ansible-galaxy"), "collection", "list", "cnm.network", "--format", "json")
    assert_ok(listed)
    found = json.loads(listed.stdout)
    assert list(found) == [str(installed.collections / "ansible_collections")]
    root = installed.collections / "ansible_collections" / "cnm" / "network"
    assert not root.is_symlink() and (root / "MANIFEST.json").is_file()


def test_options_left_out_keep_what_exists(clean):
    plays = as_plays(example("Options left out keep what exists"))
    first = clean.playbook(plays)
    assert_ok(first)
    statuses = task_statuses(first)
    assert statuses[-1] == {host: "ok" for host in clean.hosts}, first.stdout  # "changes nothing"
    again = clean.playbook(plays)
    assert_ok(again)
    assert recap_changed(again) == {host: 0 for host in clean.hosts}, again.stdout
    for host in clean.hosts:
        addresses = address_of("%s-%s" % (clean.prefix, host))
        assert addresses["172.30.0.1"]["mtu"] == 9000  # kept by the runs that leave mtu out
        assert addresses["fd00:30::1"]["ifname"] == addresses["172.30.0.1"]["ifname"]  # IPv6 added to the same


def test_module_defaults_reach_every_module(clean):
    network = play([{"name": "The network web", "cnm.network.cnm_bridge": {"name": "web", "subnet": "172.30.0.0/24"}}])
    result = clean.playbook([network] + as_plays(example("One place for common options: `module_defaults`")))
    assert_ok(result)
    for number, host in enumerate(clean.hosts, start=11):
        app1 = clean.sandbox(host, "app1")
        (address,) = address_of(app1)
        assert address.startswith("172.30.0.")  # attached to web, the network only module_defaults names
        # "8080:80": a connection from the LAN to the host's port 8080 reaches port 80 of app1
        assert tcp_connects("%s-lan" % clean.prefix, app1, address, 80, via=("192.0.2.%d" % number, 8080))


def test_overlay_example_joins_the_hosts(clean):
    """The README's task twice, as its text describes: the hosts' VTEPs first, then again once each host's endpoint
    is in the hostvars the filters read (``cnm_overlay_endpoints``), so the peers carry the endpoints behind them."""
    clean.hosts = HOSTS
    overlay = as_plays(example("Overlay networks: `cnm_overlay`"))
    attach = play(
        [
            {
                "name": "An endpoint on the overlay",
                "cnm.network.cnm_endpoint": {"network": "ov0", "netns": "{{ ansible_netns_name }}-ov"},
                "register": "cnm_readme_endpoint",
            },
            {
                "name": "Share it through the play",
                "ansible.builtin.set_fact": {"cnm_overlay_endpoints": "{{ [cnm_readme_endpoint.endpoint] }}"},
            },
        ]
    )
    result = clean.playbook(overlay + [attach] + copy.deepcopy(overlay))
    assert_ok(result)
    (h1_address,) = address_of(clean.sandbox("h1", "ov"))
    (h2_address,) = address_of(clean.sandbox("h2", "ov"))
    assert h1_address != h2_address and h1_address.startswith("10.200.")
    assert pings(clean.sandbox("h1", "ov"), h2_address)
    assert pings(clean.sandbox("h2", "ov"), h1_address)


def test_names_example_answers_from_another_endpoint(clean):
    text = example("Names: `dns: true`")
    # The README's own claim, from its comment: "ip netns exec OTHER getent hosts api -> 172.30.0.2 api".
    name, address = re.search(r"getent hosts (\S+)\s+->\s+(\S+)\s+\1\b", text).groups()
    other = play(
        [
            {
                "name": "Another endpoint of web",
                "cnm.network.cnm_endpoint": {"network": "web", "netns": "{{ ansible_netns_name }}-other"},
            }
        ]
    )
    result = clean.playbook(as_plays(text) + [other])
    assert_ok(result)
    for host in clean.hosts:
        found = sh("ip netns exec %s getent hosts %s" % (clean.sandbox(host, "other"), name)).stdout.split()
        assert found[:2] == [address, name], found
