"""The roles on an inventory whose group is not the lab's (cnm_lab): the overlay across a play's hosts (group
``fabric``) with no group variable, and the early failures - a member without its VTEP address, --limit without a
group, list items of cnm_networks and cnm_overlay with an unknown key, a value of the wrong type or (cnm_networks) a
key of another driver.

One lab of two hosts for the whole file. The failures come from the roles' argument validation or their first
asserts, before any task reaches a host: each failure test checks that the lab hosts are as they were.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import pings
from test_lab import REPO, ansible_env, assert_ok, lab_namespaces, recap_changed, run_playbook
from test_playbooks import endpoint_address, fdb_vteps

PLAYBOOKS = REPO / "playbooks"
OVERLAY_PLAY = """- name: An overlay across the fabric, no group named
  hosts: fabric
  gather_facts: false
  vars:
    cnm_overlay_prepare: false
    cnm_overlay_endpoints:
      - netns: "{{ cnm_lab_prefix }}-{{ inventory_hostname }}-ep1"
  roles:
    - role: cnm.network.cnm_overlay
"""
NETWORKS_PLAY = """- name: Declared networks on the fabric
  hosts: fabric
  gather_facts: false
  roles:
    - role: cnm.network.cnm_networks
"""


class Fabric:
    """A lab of two hosts whose inventory has them in the group ``fabric`` (no group cnm_lab)."""

    def __init__(self, tmp: Path) -> None:
        self.prefix = "cnmro" + secrets.token_hex(2)
        self.tmp = tmp
        self.env = ansible_env(tmp)
        self.lab_inventory = tmp / "lab.yml"
        self.inventory = tmp / "fabric.yml"

    def lab(self, playbook: str, *extra: str) -> subprocess.CompletedProcess:
        return run_playbook(
            PLAYBOOKS / playbook,
            "localhost,",
            self.env,
            "-e",
            "lab_prefix=" + self.prefix,
            "-e",
            "lab_inventory=" + str(self.lab_inventory),
            *extra,
        )

    def write_inventory(self, name: str, drop_vtep_of: str | None = None) -> Path:
        """The lab's inventory with its group renamed ``fabric``; optionally a host without cnm_underlay_ip."""
        groups = yaml.safe_load(self.lab_inventory.read_text())
        fabric = groups.pop("cnm_lab")
        assert not groups
        if drop_vtep_of:
            del fabric["hosts"][drop_vtep_of]["cnm_underlay_ip"]
        path = self.tmp / name
        path.write_text(yaml.safe_dump({"fabric": fabric}))
        return path

    def play(self, text: str, inventory: Path, *extra: str) -> subprocess.CompletedProcess:
        playbook = self.tmp / ("play-%s.yml" % secrets.token_hex(3))
        playbook.write_text(text)
        return run_playbook(playbook, str(inventory), self.env, *extra)

    def state(self) -> dict:
        """What a run could have touched: the lab's namespaces and the links of its hosts."""
        state = {"netns": lab_namespaces(self.prefix)}
        for host in ("h1", "h2"):
            state[host] = subprocess.run(
                ["ip", "-n", "%s-%s" % (self.prefix, host), "-br", "link"], capture_output=True, text=True, check=True
            ).stdout
        return state


@pytest.fixture(scope="module")
def fabric(tmp_path_factory):
    made = Fabric(tmp_path_factory.mktemp("fabric"))
    try:
        assert_ok(made.lab("lab_up.yml", "-e", "lab_size=2"))
        made.write_inventory("fabric.yml")
        yield made
    finally:
        made.lab("lab_down.yml")
        for name in lab_namespaces(made.prefix):  # what lab_down left, had it failed
            subprocess.run(["ip", "netns", "del", name], check=False)


def test_overlay_role_on_a_group_that_is_not_the_lab(fabric):
    run = fabric.play(OVERLAY_PLAY, fabric.inventory)
    assert_ok(run)  # includes the role's own check: each host's endpoint pinged the other's
    output = " ".join(run.stdout.split())  # the callback folds long lines
    assert "%s-h1-ep1 -> %s: reachable" % (fabric.prefix, endpoint_address("%s-h2-ep1" % fabric.prefix)) in output
    assert "%s-h2-ep1 -> %s: reachable" % (fabric.prefix, endpoint_address("%s-h1-ep1" % fabric.prefix)) in output
    assert fdb_vteps(fabric.prefix, "h1") == ["192.0.2.12"] and fdb_vteps(fabric.prefix, "h2") == ["192.0.2.11"]
    assert pings("%s-h2-ep1" % fabric.prefix, endpoint_address("%s-h1-ep1" % fabric.prefix))


def test_networks_role_takes_every_key_it_passes_on(fabric):
    """Items with most keys of each driver pass the validation and reach the modules (check mode: nothing made)."""
    declared = {
        "cnm_networks": [
            {
                "name": "web",
                "driver": "bridge",
                "subnet": "10.77.0.0/24",
                "gateway": "10.77.0.1",
                "ip_range": "10.77.0.128/25",
                "ipv6_subnet": "fd00:77::/64",
                "ipv6_gateway": "fd00:77::1",
                "bridge_name": "br-ro-web",
                "mtu": 1400,
                "masquerade": True,
                "ipv6_masquerade": False,
                "trusted_sources": ["198.51.100.0/24"],
                "internal": False,
                "icc": True,
                "host_binding_ip": "192.0.2.11",
                "dns": True,
                "dns_servers": ["192.0.2.2"],
            },
            {
                "name": "ovx",
                "driver": "overlay",
                "vni": 4300,
                "subnet": "10.78.0.0/16",
                "gateway": "10.78.0.1",
                "ip_range": "10.78.1.0/24",
                "local_ip": "{{ cnm_underlay_ip }}",
                "peers": ["192.0.2.250"],
                "port": 4790,
                "mtu": 1400,
                "restrict_peers": True,
                "bridge_name": "br-ro-ovx",
                "vxlan_name": "vx-ro-ovx",
                "masquerade": False,
                "trusted_sources": [],
                "internal": False,
                "dns": False,
            },
            {
                "name": "lan",
                "driver": "macvlan",
                "parent": "eth0",
                "mode": "bridge",
                "subnet": "192.0.2.0/24",
                "gateway": "192.0.2.2",
                "ip_range": "192.0.2.128/28",
                "mtu": 1400,
                "host_access": True,
                "host_access_ip": "192.0.2.201",
                "shim_name": "mvs-ro-lan",
            },
        ],
        "cnm_endpoints": [
            {
                "network": "web",
                "netns": "{{ cnm_lab_prefix }}-{{ inventory_hostname }}-web1",
                "state": "present",
                "create_netns": True,
                "delete_netns": False,
                "ifname": "eth1",
                "ipv4_address": "10.77.0.200",
                "mac_address": "02:42:0a:4d:00:c8",
                "default_route": True,
                "gw_priority": 10,
                "name": "web1",
                "aliases": ["front"],
                "routes": [{"dst": "203.0.113.0/24", "gateway": "10.77.0.1"}],
                "sysctls": {"net.ipv4.conf.IFNAME.rp_filter": "2"},
                "ports": ["8080:80"],
            },
        ],
    }
    before = fabric.state()
    run = fabric.play(NETWORKS_PLAY, fabric.inventory, "--check", "-e", json.dumps(declared), "--limit", "h1")
    assert_ok(run)
    assert recap_changed(run) == {"h1": 5}  # three networks, the endpoint, its port
    assert fabric.state() == before


def fails_untouched(fabric, run: subprocess.CompletedProcess, before: dict, *expected: str) -> str:
    """The run failed, saying each of ``expected``, and changed nothing on the lab's hosts."""
    output = " ".join((run.stdout + run.stderr).split())  # the callback folds long lines
    assert run.returncode != 0, output
    for text in expected:
        assert text in output, output
    assert set(recap_changed(run).values()) <= {0}
    assert fabric.state() == before
    return output


def test_a_member_without_its_vtep_address_fails_naming_the_variable_and_the_host(fabric):
    inventory = fabric.write_inventory("no-vtep.yml", drop_vtep_of="h2")
    before = fabric.state()
    run = fabric.play(OVERLAY_PLAY, inventory)
    output = fails_untouched(
        fabric, run, before, "missing host variable cnm_underlay_ip", "on host h2;", "for example cnm_underlay_ip:"
    )
    # both hosts stop there (h1 cannot peer with h2 either), before the role's first change
    assert output.count("Check that this host is a member and that every member has its VTEP address") >= 1
    assert "fatal: [h1]" in output and "fatal: [h2]" in output
    assert "TASK [cnm.network.cnm_overlay : Create or reconcile" not in output


def test_overlay_under_limit_without_a_group_fails(fabric):
    before = fabric.state()
    run = fabric.play(OVERLAY_PLAY, fabric.inventory, "--limit", "h1")
    fails_untouched(fabric, run, before, "the play runs under --limit h1: set cnm_overlay_group")


@pytest.mark.parametrize(
    ("play", "variables", "expected"),
    [
        pytest.param(
            NETWORKS_PLAY,
            {"cnm_networks": [{"name": "web", "subnet": "10.77.0.0/24", "mtuu": 1400}]},
            ["Validation of arguments failed", "cnm_networks.mtuu."],
            id="networks-unknown-key",
        ),
        pytest.param(
            NETWORKS_PLAY,
            {"cnm_networks": [{"name": "web", "subnet": "10.77.0.0/24", "mtu": "large"}]},
            # "of type str" (2.17+) or "of type <class 'str'>" (2.16)
            ["Validation of arguments failed", "argument 'mtu' is of type", "found in 'cnm_networks'"],
            id="networks-wrong-type",
        ),
        pytest.param(
            NETWORKS_PLAY,
            {"cnm_networks": [{"name": "web", "subnet": "10.77.0.0/24", "driver": "vlan"}]},
            ["Validation of arguments failed", "value of driver must be one of"],
            id="networks-wrong-choice",
        ),
        pytest.param(
            NETWORKS_PLAY,
            {"cnm_networks": [{"name": "web", "subnet": "10.77.0.0/24", "parent": "eth0"}]},
            ["network web (bridge): parent not an option of that driver"],
            id="networks-key-of-another-driver",
        ),
        pytest.param(
            NETWORKS_PLAY,
            {"cnm_endpoints": [{"network": "web", "netns": "x", "ports": ["8080:80"], "port": "80"}]},
            ["Validation of arguments failed", "cnm_endpoints.port."],
            id="endpoints-unknown-key",
        ),
        pytest.param(
            OVERLAY_PLAY,
            {"cnm_overlay_endpoints": [{"netns": "x", "gw_priority": "high"}]},
            [
                "Validation of arguments failed",
                "argument 'gw_priority' is of type",
                "found in 'cnm_overlay_endpoints'",
            ],
            id="overlay-endpoints-wrong-type",
        ),
    ],
)
def test_list_items_are_validated_naming_the_key(fabric, play, variables, expected):
    before = fabric.state()
    run = fabric.play(play, fabric.inventory, "-e", json.dumps(variables))
    fails_untouched(fabric, run, before, *expected)
