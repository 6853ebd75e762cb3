"""The declarative role's filters: declared networks/endpoints into module arguments, and the prune plan."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from conftest import load_filter

declare = load_filter("declare")
declared, prune_plan, sandbox_key = declare.declared, declare.prune_plan, declare.sandbox_key

NETWORKS = [
    {"name": "web", "subnet": "172.30.0.0/24", "gateway": None},
    {"name": "lan", "driver": "macvlan", "parent": "eth1", "subnet": "192.168.1.0/24"},
    {"name": "ov", "driver": "overlay", "vni": 42, "subnet": "10.200.0.0/16"},
]
ENDPOINTS = [
    {"network": "web", "netns": "web1", "ports": ["8080:80"]},
    {"network": "web", "container": "db", "container_runtime": "podman"},
    {"network": "lan", "netns": "web1", "ipv4_address": "192.168.1.200"},
]


def test_networks_are_grouped_by_driver_without_driver_and_null_keys():
    result = declared(NETWORKS, ENDPOINTS)
    assert result["bridge"] == [{"name": "web", "subnet": "172.30.0.0/24"}]
    assert result["macvlan"] == [{"name": "lan", "parent": "eth1", "subnet": "192.168.1.0/24"}]
    assert result["overlay"] == [{"name": "ov", "vni": 42, "subnet": "10.200.0.0/16"}]


def test_endpoints_lose_their_ports_which_become_publish_items():
    result = declared(NETWORKS, ENDPOINTS)
    assert result["endpoints"][0] == {"network": "web", "netns": "web1"}
    assert result["ports"] == [{"network": "web", "netns": "web1", "ports": ["8080:80"]}]


@pytest.mark.parametrize(
    "item, key",
    [
        ({"netns": "a"}, "netns:a"),
        ({"pid": 42}, "pid:42"),
        ({"netns_path": "/proc/1/ns/net"}, "netns_path:/proc/1/ns/net"),
        ({"container": "db"}, "container:docker/db"),
        ({"container": "db", "container_runtime": "podman"}, "container:podman/db"),
    ],
)
def test_sandbox_keys_match_the_store(item, key):
    assert sandbox_key(item) == key


@pytest.mark.parametrize(
    "networks, endpoints, words",
    [
        ([{"subnet": "10.0.0.0/24"}], [], "networks[0] has no name"),
        ([{"name": "a", "driver": "ipip"}], [], "driver 'ipip' is not one of bridge, overlay, macvlan, ipvlan"),
        ([{"name": "a"}, {"name": "a"}], [], "listed twice"),
        ([], [{"netns": "a"}], "endpoints[0] has no network"),
        ([], [{"network": "a", "netns": "a", "pid": 1}], "exactly one of"),
        ([], [{"network": "a", "netns": "x"}, {"network": "a", "netns": "x"}], "listed twice on network a"),
        ("web", [], "must be a list"),
    ],
)
def test_bad_declarations_fail_naming_the_item(networks, endpoints, words):
    with pytest.raises(
        AnsibleFilterError, match="cnm.network.declared: .*" + words.replace("[", r"\[").replace("]", r"\]")
    ):
        declared(networks, endpoints)


def test_prune_plan_removes_what_is_not_declared():
    info = {
        "networks": [
            {"name": "web", "driver": "bridge"},
            {"name": "old", "driver": "bridge"},
            {"name": "oldlan", "driver": "macvlan"},
        ],
        "endpoints": [
            {"network": "web", "sandbox": "netns:web1"},
            {"network": "web", "sandbox": "netns:gone"},
            {"network": "web", "sandbox": "pid:77"},
            {"network": "web", "sandbox": "container:podman/db"},
            {"network": "web", "sandbox": "container:docker/cache"},
            {"network": "old", "sandbox": "netns:x"},  # goes with its network
        ],
    }
    plan = prune_plan(info, NETWORKS, ENDPOINTS)
    assert plan["bridge"] == ["old"] and plan["macvlan"] == ["oldlan"] and plan["overlay"] == []
    assert plan["endpoints"] == [
        {"network": "web", "state": "absent", "container_runtime": "docker", "container": "cache"},
        {"network": "web", "state": "absent", "netns": "gone"},
        {"network": "web", "state": "absent", "pid": 77},
    ]


def test_prune_plan_of_an_exact_host_is_empty():
    info = {
        "networks": [{"name": "web", "driver": "bridge"}],
        "endpoints": [{"network": "web", "sandbox": "netns:web1"}],
    }
    assert prune_plan(info, [NETWORKS[0]], [ENDPOINTS[0]]) == {
        "bridge": [],
        "overlay": [],
        "macvlan": [],
        "ipvlan": [],
        "endpoints": [],
        "ports": [],
    }


def test_prune_plan_unpublishes_endpoints_that_list_no_port_any_more():
    info = {
        "networks": [{"name": "web", "driver": "bridge"}],
        "endpoints": [
            {"network": "web", "sandbox": "netns:web1"},
            {"network": "web", "sandbox": "container:podman/db"},
        ],
        "ports": [{"network": "web", "sandbox": "netns:web1"}, {"network": "web", "sandbox": "container:podman/db"}],
    }
    plan = prune_plan(info, [NETWORKS[0]], ENDPOINTS[:2])
    assert plan["ports"] == [{"container": "db", "container_runtime": "podman", "network": "web", "state": "absent"}]


def test_every_filter_has_its_documentation_file():
    import os

    for name in declare.FilterModule().filters():
        with open(os.path.join(os.path.dirname(declare.__file__), name + ".yml")) as docs:
            assert "  name: %s\n" % name in docs.read()
