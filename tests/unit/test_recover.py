"""recover.rebuild: a store made by the modules, turned into the kernel facts it leaves (links with their aliases,
addresses and routes; the rules and map elements firewall.py renders from it), rebuilds into the same store."""

from __future__ import annotations

import ipaddress
import json

import pytest

from ansible_collections.cnm.network.plugins.module_utils import firewall, ipam
from ansible_collections.cnm.network.plugins.module_utils.model import (
    BridgeNetwork,
    OverlayNetwork,
    default_bridge_name,
    host_veth_name,
)
from ansible_collections.cnm.network.plugins.module_utils.ports import parse_ports
from ansible_collections.cnm.network.plugins.module_utils.records import endpoint_key, state_from_dict, state_to_dict
from ansible_collections.cnm.network.plugins.module_utils.recover import rebuild, summary
from ansible_collections.cnm.network.plugins.module_utils.store import FORMAT_VERSION


def network(**params) -> dict:
    return BridgeNetwork.from_params(params).to_record().to_dict()


def endpoint(
    name: str, sandbox: str, ipv4=None, ipv6=None, ifname="eth0", mac=None, routes=(), default_route=True
) -> dict:
    key = endpoint_key(name, sandbox)
    return {
        "network": name,
        "sandbox": sandbox,
        "ifname": ifname,
        "host_ifname": host_veth_name(name, sandbox),
        "ipv4_address": ipv4,
        "ipv6_address": ipv6,
        "mac_address": mac
        or (ipam.mac_from_ipv4(ipaddress.ip_address(ipv4)) if ipv4 else ipam.mac_from_name("endpoint:" + key)),
        "static_ipv4": False,
        "static_ipv6": False,
        "static_mac": mac is not None,
        "default_route": default_route,
        "routes": list(routes),
        "sysctls": {},
        "gw_priority": 0,
        "link": "veth",
        **({"name": sandbox[len("netns:") :]} if sandbox.startswith("netns:") else {}),  # the namespace's own name
    }


def publish(store: dict, record: dict, *texts) -> None:
    for mapping in parse_ports(list(texts)):
        store.setdefault("ports", {})[mapping.key] = dict(
            mapping.to_record(),
            network=record["network"],
            sandbox=record["sandbox"],
            container_ip=record["ipv4_address"],
            container_ipv6=record["ipv6_address"],
        )


def facts_of(store: dict, fdb=None, neighbours=None) -> dict:
    """What the kernel holds after the modules made ``store``: links, sandboxes, our rules and map elements."""
    links, sandboxes, index = [], {}, iter(range(2, 10000))
    bridges = {}
    for name, record in sorted(store["networks"].items()):
        addresses = []
        if record.get("subnet"):
            addresses.append("%s/%d" % (record["gateway"], ipaddress.ip_network(record["subnet"]).prefixlen))
        if record.get("ipv6_subnet"):
            addresses.append("%s/%d" % (record["ipv6_gateway"], ipaddress.ip_network(record["ipv6_subnet"]).prefixlen))
        bridges[name] = next(index)
        links.append(
            {
                "name": record["bridge_name"],
                "index": bridges[name],
                "kind": "bridge",
                "mtu": record["mtu"],
                "mac": "02:00:00:00:00:01",
                "alias": "cnm:network:" + name,
                "master": None,
                "peer_index": None,
                "addresses": addresses,
                "vxlan": None,
            }
        )
        if record["driver"] == "overlay":
            links.append(
                {
                    "name": record["vxlan_name"],
                    "index": next(index),
                    "kind": "vxlan",
                    "mtu": record["mtu"],
                    "mac": "02:00:00:00:00:02",
                    "alias": "cnm:overlay:" + name,
                    "master": bridges[name],
                    "peer_index": None,
                    "addresses": [],
                    "vxlan": {"vni": record["vni"], "local": record["local_ip"], "port": record["port"]},
                }
            )
    for key, record in sorted(store["endpoints"].items()):
        net = store["networks"][record["network"]]
        inner_index = next(index)
        host_index = next(index)
        links.append(
            {
                "name": record["host_ifname"],
                "index": host_index,
                "kind": "veth",
                "mtu": net["mtu"],
                "mac": "02:00:00:00:00:03",
                "alias": "cnm:endpoint:" + key,
                "master": bridges[record["network"]],
                "peer_index": inner_index,
                "addresses": [],
                "vxlan": None,
            }
        )
        addresses = []
        if record["ipv4_address"]:
            addresses.append("%s/%d" % (record["ipv4_address"], ipaddress.ip_network(net["subnet"]).prefixlen))
        if record["ipv6_address"]:
            addresses.append("%s/%d" % (record["ipv6_address"], ipaddress.ip_network(net["ipv6_subnet"]).prefixlen))
        routes = [dict(route) for route in record["routes"]]
        if record["default_route"] and not net["internal"]:
            routes += [{"dst": "0.0.0.0/0", "gateway": net["gateway"]}] if net.get("subnet") else []
            routes += [{"dst": "::/0", "gateway": net["ipv6_gateway"]}] if net.get("ipv6_subnet") else []
        inner = {
            "name": record["ifname"],
            "index": inner_index,
            "kind": "veth",
            "mtu": net["mtu"],
            "mac": record["mac_address"],
            "alias": None,
            "master": None,
            "peer_index": host_index,
            "addresses": addresses,
            "vxlan": None,
            "routes": routes,
        }
        sandboxes.setdefault(
            record["sandbox"],
            {
                "links": [
                    {
                        "name": "lo",
                        "index": 1,
                        "kind": None,
                        "mtu": 65536,
                        "mac": None,
                        "alias": None,
                        "master": None,
                        "peer_index": None,
                        "addresses": ["127.0.0.1/8"],
                        "vxlan": None,
                        "routes": [],
                    }
                ]
            },
        )["links"].append(inner)
    loaded = state_from_dict(store)  # the records as a run loads them from the file
    networks, ports = firewall.bridged(loaded["networks"]), loaded.get("ports", {})
    rules = {rule.comment: json.loads(rule.expr) for rule in firewall.render(networks, ports)}
    maps = {}
    for element in firewall.render_elements(ports):
        maps.setdefault(element.map.name, []).append(element.elem())
    return {
        "links": links,
        "sandboxes": sandboxes,
        "rules": rules,
        "maps": maps,
        "fdb": fdb or {},
        "neighbours": neighbours or {},
    }


def dual_stack_store() -> dict:
    store = {
        "version": FORMAT_VERSION,
        "networks": {"web": network(name="web", subnet="172.30.0.0/24", ipv6_subnet="fd00:30::/64")},
        "endpoints": {},
    }
    for number, short in enumerate(("a", "b", "c"), start=2):
        record = endpoint("web", "netns:lab-" + short, "172.30.0.%d" % number, "fd00:30::%d" % number)
        store["endpoints"][endpoint_key("web", record["sandbox"])] = record
    endpoints = store["endpoints"]
    publish(store, endpoints["web|netns:lab-a"], "8080:80")
    publish(store, endpoints["web|netns:lab-b"], "5353:53/udp", "0.0.0.0:8443:443")
    publish(store, endpoints["web|netns:lab-c"], "127.0.0.1:9000:90", "[fd00:99::1]:9001:91")
    return store


def test_a_dual_stack_network_with_endpoints_and_every_kind_of_port_comes_back_whole():
    store = dual_stack_store()
    data, report = rebuild(facts_of(store))
    assert state_to_dict(data) == store
    assert (report["networks"], report["endpoints"], report["ports"], report["lost"]) == (1, 3, 5, [])


@pytest.mark.parametrize(
    "options",
    [
        dict(internal=True),
        dict(icc=False),
        dict(masquerade=False),
        dict(masquerade=False, ipv6_masquerade=True),
        dict(ipv6_masquerade=False),
        dict(trusted_sources=["10.1.0.0/16", "192.0.2.7/32", "fd00:1::/48"]),
        dict(mtu=1400, bridge_name="br-custom"),
    ],
)
def test_the_firewall_options_of_a_network_come_back_from_its_rules(options):
    record = network(name="net1", subnet="10.20.0.0/16", gateway="10.20.0.254", ipv6_subnet="fd00:20::/64", **options)
    store = {"version": FORMAT_VERSION, "networks": {"net1": record}, "endpoints": {}}
    data, report = rebuild(facts_of(store))
    assert state_to_dict(data) == store, report
    assert report["lost"] == []


def test_an_ipv6_only_network_and_an_ipv4_only_one_beside_it():
    store = {
        "version": FORMAT_VERSION,
        "endpoints": {},
        "networks": {
            "six": network(name="six", ipv6_subnet="fd00:66::/64", masquerade=False),
            "four": network(name="four", subnet="10.44.0.0/24"),
        },
    }
    for name, ipv4, ipv6 in (("six", None, "fd00:66::5"), ("four", "10.44.0.9", None)):
        record = endpoint(name, "netns:x", ipv4, ipv6, ifname="eth1" if name == "six" else "eth0")
        store["endpoints"][endpoint_key(name, "netns:x")] = record
        publish(store, record, "7000:70")
    data, report = rebuild(facts_of(store))
    assert state_to_dict(data) == store and report["lost"] == []


def test_routes_a_pinned_mac_and_no_default_route_are_read_from_the_sandbox():
    store = {"version": FORMAT_VERSION, "networks": {"n": network(name="n", subnet="10.5.0.0/24")}, "endpoints": {}}
    record = endpoint(
        "n",
        "pid:4242",
        "10.5.0.3",
        mac="02:aa:bb:cc:dd:ee",
        default_route=False,
        routes=[{"dst": "192.168.50.0/24", "gateway": "10.5.0.1"}],
    )
    store["endpoints"][endpoint_key("n", "pid:4242")] = record
    data, _report = rebuild(facts_of(store))
    assert state_to_dict(data) == store


def test_an_overlay_network_comes_back_with_its_peers():
    params = dict(
        name="ov",
        subnet="10.99.0.0/24",
        vni=4242,
        local_ip="192.0.2.1",
        peers=[{"vtep": "192.0.2.2", "endpoints": [{"ip": "10.99.0.20", "mac": "02:42:0a:63:00:14"}]}, "192.0.2.3"],
    )
    record = OverlayNetwork.from_overlay_params(params, underlay_mtu=1500).to_record().to_dict()
    store = {"version": FORMAT_VERSION, "networks": {"ov": record}, "endpoints": {}}
    vx = record["vxlan_name"]
    fdb = {
        vx: [["00:00:00:00:00:00", "192.0.2.2"], ["00:00:00:00:00:00", "192.0.2.3"], ["02:42:0a:63:00:14", "192.0.2.2"]]
    }
    data, report = rebuild(facts_of(store, fdb, {vx: [["02:42:0a:63:00:14", "10.99.0.20"]]}))
    assert state_to_dict(data) == store, report


def test_what_cannot_come_back_is_named():
    store = dual_stack_store()
    facts = facts_of(store)
    facts["sandboxes"]["netns:lab-b"] = None  # its namespace is gone
    data, report = rebuild(facts)
    assert sorted(data["endpoints"]) == ["web|netns:lab-a", "web|netns:lab-c"]
    assert {entry.sandbox for entry in data["ports"].values()} == {"netns:lab-a", "netns:lab-c"}
    assert any("endpoint netns:lab-b on web" in text for text in report["lost"])
    assert any("published port element ports_any4_addr udp . 5353 : 172.30.0.3" in text for text in report["lost"])
    text = summary(report)
    assert text.startswith(
        "the store was missing: rebuilt from the kernel: 1 networks, 2 endpoints, 3 ports; not recoverable: "
    )
    assert "ip_range" in text


def test_a_bridge_without_the_cnm_alias_and_an_unknown_rule_are_ignored():
    store = dual_stack_store()
    facts = facts_of(store)
    facts["links"].append(
        {
            "name": default_bridge_name("other"),
            "index": 999,
            "kind": "bridge",
            "mtu": 1500,
            "mac": None,
            "alias": "someone",
            "master": None,
            "peer_index": None,
            "addresses": ["10.0.0.1/24"],
            "vxlan": None,
        }
    )
    facts["rules"]["not ours"] = []
    data, _report = rebuild(facts)
    assert state_to_dict(data) == store
