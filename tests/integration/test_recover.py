"""A lost store on the real kernel: the next run rebuilds it from the kernel's cnm objects (issue 11, item 4), so a
deleted store renumbers nothing, keeps the published ports answering and the play's rerun changes nothing."""

from __future__ import annotations

import json
import os

from conftest import pings

# hosts and servers are fixtures: imported to be used as arguments
from test_overlay import build, hosts, overlay, peers_of  # noqa: F401  # pylint: disable=unused-import
from test_ports import HOST, ask, servers, wait_answer  # noqa: F401  # pylint: disable=unused-import

WARNING = "the store was missing: rebuilt from the kernel: 1 networks, 3 endpoints, 3 ports; not recoverable: "


def warned(result: dict) -> bool:
    """Whether the module warned that it rebuilt the store (warnings are texts or, in newer Ansible, objects)."""
    return WARNING in json.dumps(result.get("warnings", []))


def tasks(host) -> list:
    """The play: a dual-stack network, 3 endpoints with dynamic addresses, TCP on all addresses, UDP, 127.0.0.1."""
    a, b, c = host.sandbox("a"), host.sandbox("b"), host.sandbox("c")
    return [
        ("cnm_bridge", dict(name="web", subnet="172.30.0.0/24", ipv6_subnet="fd00:30::/64")),
        ("cnm_endpoint", dict(network="web", endpoints=[dict(netns=a), dict(netns=b), dict(netns=c)])),
        ("cnm_port_publish", dict(network="web", netns=a, ports=["4000:80"])),
        ("cnm_port_publish", dict(network="web", netns=b, ports=["5353:53/udp"])),
        ("cnm_port_publish", dict(network="web", netns=c, ports=["127.0.0.1:4100:80"])),
    ]


def answers(host, world) -> dict:
    lan = world[0]
    return {
        "tcp from the lan": wait_answer(lan, "tcp", HOST, 4000, "web-a"),
        "udp from the lan": wait_answer(lan, "udp", HOST, 5353, "dns-b"),
        "tcp on the host's loopback": wait_answer(host.name, "tcp", "127.0.0.1", 4100, "web-c"),
        "loopback binding from the lan": ask(lan, "tcp", HOST, 4100),
    }


EXPECTED = {
    "tcp from the lan": "web-a",
    "udp from the lan": "dns-b",
    "tcp on the host's loopback": "web-c",
    "loopback binding from the lan": "unreachable",
}


def without_sysctls(store: dict) -> dict:
    """The store but for the host sysctls' values from before cnm, which the kernel cannot tell."""
    return {key: value for key, value in store.items() if key != "sysctls"}


def test_a_lost_store_is_rebuilt_from_the_kernel_and_renumbers_nothing(host, world, servers):  # noqa: F811
    for module, args in tasks(host):
        host.ok(module, **args)
    servers(host.sandbox("a"), "tcp", 80, "web-a")
    servers(host.sandbox("b"), "udp", 53, "dns-b")
    servers(host.sandbox("c"), "tcp", 80, "web-c")
    assert answers(host, world) == EXPECTED
    store = host.store()
    held = {
        record["sandbox"]: (record["ipv4_address"], record["ipv6_address"]) for record in store["endpoints"].values()
    }
    assert len(held) == 3 and all(None not in pair for pair in held.values())

    path = os.path.join(host.store_path(), "state.json")
    os.unlink(path)
    before = host.snapshot()
    d = host.sandbox("d")
    # check mode predicts the rebuild (the store write, with its diff) and changes nothing
    predicted = host.module("cnm_endpoint", check=True, network="web", netns=d)
    assert not predicted.get("failed"), predicted
    assert warned(predicted), predicted.get("warnings")
    assert "write the store" in json.dumps(predicted["changes"])
    assert predicted["diff"]["before"]["store"] == {"networks": {}, "endpoints": {}}  # the missing file
    assert "web|netns:%s" % host.sandbox("a") in predicted["diff"]["after"]["store"]["endpoints"]
    assert host.snapshot() == before
    # cnm_info reports from the rebuilt store: no drift, and it writes nothing
    info = host.ok("cnm_info")
    assert [network["name"] for network in info["networks"]] == ["web"] and info["drift"] == [], info["drift"]
    assert warned(info)
    assert not os.path.exists(path)

    fourth = host.ok("cnm_endpoint", network="web", netns=d)
    assert warned(fourth)
    assert (predicted["changed"], predicted["changes"], predicted["diff"]) == (
        fourth["changed"],
        fourth["changes"],
        fourth["diff"],
    )
    new = fourth["endpoint"]
    assert new["ipv4_address"] not in [pair[0] for pair in held.values()], (new, held)
    assert new["ipv6_address"] not in [pair[1] for pair in held.values()], (new, held)
    rebuilt = host.store()
    del rebuilt["endpoints"]["web|netns:%s" % d]
    assert without_sysctls(rebuilt) == without_sysctls(store)
    assert answers(host, world) == EXPECTED
    assert ask(host.sandbox("d"), "tcp", HOST, 4000) == "web-a"  # the new endpoint reaches a published port
    assert host.ok("cnm_info")["drift"] == []
    for module, args in tasks(host):
        again = host.ok(module, **args)
        assert again["changed"] is False, (module, again["changes"])
        assert not warned(again)


def test_a_lost_store_without_cnm_objects_in_the_kernel_stays_empty(host):
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    host.ok("cnm_bridge", name="web", state="absent")
    result = host.ok("cnm_info")
    assert result["networks"] == [] and not result.get("warnings")
    assert not os.path.exists(os.path.join(host.store_path(), "state.json"))


def test_a_lost_store_of_an_overlay_host_comes_back_with_its_peers(hosts):  # noqa: F811
    """ip_range is not in the kernel: the rebuilt record has the whole subnet until the overlay task runs again,
    which then writes the store (its only change) and nothing else."""
    made, _rogue = hosts
    endpoints = build(made)
    host = made[1]
    store = host.store()
    os.unlink(os.path.join(host.store_path(), "state.json"))
    info = host.ok("cnm_info")
    assert warned_overlay(info) and info["drift"] == [], info["drift"]
    rerun = overlay(host, 1, peers_of(1, endpoints))
    assert rerun["changes"] == ["write the store"], rerun["changes"]
    assert rerun["diff"]["after"]["store"]["networks"]["ov"]["ip_range"] == "10.200.1.0/24"
    assert without_sysctls(host.store()) == without_sysctls(store)
    assert overlay(host, 1, peers_of(1, endpoints))["changed"] is False
    again = host.ok("cnm_endpoint", network="ov", netns=host.sandbox("c"))
    assert again["changed"] is False and again["endpoint"]["ipv4_address"] == endpoints[1]["ipv4_address"]
    for j in (2, 3):
        assert pings(host.sandbox("c"), endpoints[j]["ipv4_address"]), j
    fresh = host.ok("cnm_endpoint", network="ov", netns=host.sandbox("d"))["endpoint"]
    assert fresh["ipv4_address"].startswith("10.200.1.") and fresh["ipv4_address"] != endpoints[1]["ipv4_address"]


def warned_overlay(result: dict) -> bool:
    return "the store was missing: rebuilt from the kernel: 1 networks, 1 endpoints, 0 ports" in json.dumps(
        result.get("warnings", [])
    )
