"""cnm_info's pure logic: the question (filters), the selection, and the drift rules between a store and kernel
facts."""

from __future__ import annotations

import copy
import dataclasses
import os

import pytest

from ansible_collections.cnm.network.plugins.module_utils import firewall
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.info import (
    DRIFT_KINDS,
    Device,
    InfoQuery,
    NamespaceFacts,
    endpoint_drift,
    firewall_drift,
    network_drift,
    peer_views,
    port_drift,
    port_flag_drift,
    report,
    sandbox_drift,
    select,
    sysctl_drift,
    unclaimed_devices,
)
from ansible_collections.cnm.network.plugins.module_utils.records import EndpointRecord, NetworkRecord, PortRecord
from ansible_collections.cnm.network.plugins.module_utils.sandbox import SandboxRef

WEB = {
    "driver": "bridge",
    "bridge_name": "br-web",
    "subnet": "172.30.0.0/24",
    "gateway": "172.30.0.1",
    "ip_range": "172.30.0.0/24",
    "ipv6_subnet": "fd00:30::/64",
    "ipv6_gateway": "fd00:30::1",
    "mtu": 1500,
    "masquerade": True,
    "internal": False,
    "icc": True,
    "host_binding_ip": None,
}
OV = dict(
    WEB,
    driver="overlay",
    bridge_name="br-ov",
    subnet="10.200.0.0/16",
    gateway="10.200.0.1",
    ip_range="10.200.1.0/24",
    ipv6_subnet=None,
    ipv6_gateway=None,
    mtu=1450,
    vni=4200,
    local_ip="192.0.2.11",
    port=4789,
    vxlan_name="vx-ov",
    restrict_peers=True,
    peers=[{"vtep": "192.0.2.12", "endpoints": [{"ip": "10.200.2.5", "mac": "02:42:0a:c8:02:05"}]}],
)
LAN = {
    "driver": "macvlan",
    "parent": "eth1",
    "mode": "bridge",
    "subnet": "192.168.1.0/24",
    "gateway": "192.168.1.1",
    "ip_range": "192.168.1.0/25",
    "ipv6_subnet": None,
    "ipv6_gateway": None,
    "mtu": 1500,
    "host_access": True,
    "host_access_ip": "192.168.1.250",
    "shim_name": "mvs-lan",
    "vlan_created": False,
}
WEB, OV, LAN = (NetworkRecord.from_dict(record) for record in (WEB, OV, LAN))
WEB1 = EndpointRecord(
    network="web",
    sandbox="netns:web1",
    ifname="eth0",
    host_ifname="ve-aaa",
    ipv4_address="172.30.0.2",
    ipv6_address="fd00:30::2",
    mac_address="02:42:ac:1e:00:02",
    link="veth",
)
LAN1 = EndpointRecord(
    network="lan",
    sandbox="pid:4242",
    ifname="eth0",
    host_ifname=None,
    ipv4_address="192.168.1.2",
    ipv6_address=None,
    mac_address="02:42:c0:a8:01:02",
    link="macvlan",
)
PORT = PortRecord(
    network="web",
    sandbox="netns:web1",
    container_ip="172.30.0.2",
    host_ip=None,
    host_port=8080,
    container_port=80,
    protocol="tcp",
)


def state(networks=None, endpoints=None, ports=None) -> dict:
    data = {
        "version": 1,
        "networks": dict(networks if networks is not None else {"web": WEB}),
        "endpoints": copy.deepcopy(endpoints if endpoints is not None else {"web|netns:web1": WEB1}),
    }
    if ports:
        data["ports"] = copy.deepcopy(ports)
    return data


def host_facts(**changes) -> NamespaceFacts:
    """The host's kernel as the modules leave it for WEB with WEB1 (and OV, LAN devices); ``changes`` replace devices
    (None removes)."""
    devices = {
        "br-web": Device(
            "br-web",
            "bridge",
            1500,
            "02:42:00:00:00:01",
            True,
            "up",
            "cnm:network:web",
            index=3,
            addresses=("172.30.0.1/24", "fd00:30::1/64"),
        ),
        "ve-aaa": Device(
            "ve-aaa",
            "veth",
            1500,
            "aa:00:00:00:00:01",
            True,
            "up",
            "cnm:endpoint:web|netns:web1",
            master="br-web",
            index=7,
            peer_index=2,
        ),
        "br-ov": Device(
            "br-ov",
            "bridge",
            1450,
            "02:42:00:00:00:02",
            True,
            "up",
            "cnm:network:ov",
            index=4,
            addresses=("10.200.0.1/16",),
        ),
        "vx-ov": Device(
            "vx-ov",
            "vxlan",
            1450,
            "02:00:00:00:00:03",
            True,
            "unknown",
            "cnm:overlay:ov",
            master="br-ov",
            index=5,
            vxlan={"vni": 4200, "local": "192.0.2.11", "port": 4789, "learning": False, "proxy": True},
        ),
        "eth1": Device("eth1", "veth", 1500, "aa:00:00:00:00:09", True, "up", index=9),
        "mvs-lan": Device(
            "mvs-lan",
            "macvlan",
            1500,
            "aa:00:00:00:00:0a",
            True,
            "up",
            "cnm:shim:lan",
            index=10,
            peer_index=9,
            addresses=("192.168.1.250/32",),
            mode="bridge",
        ),
    }
    for name, device in changes.items():
        name = name.replace("_", "-")
        if device is None:
            devices.pop(name, None)
        else:
            devices[name] = device
    facts = NamespaceFacts(devices)
    facts.fdb["vx-ov"] = [("00:00:00:00:00:00", "192.0.2.12"), ("02:42:0a:c8:02:05", "192.0.2.12")]
    facts.neighbours["vx-ov"] = [("02:42:0a:c8:02:05", "10.200.2.5")]
    return facts


def sandbox_facts(**changes) -> NamespaceFacts:
    devices = {
        "lo": Device("lo", None, 65536, "00:00:00:00:00:00", True, "unknown", index=1, addresses=("127.0.0.1/8",)),
        "eth0": Device(
            "eth0",
            "veth",
            1500,
            "02:42:ac:1e:00:02",
            True,
            "up",
            index=2,
            peer_index=7,
            addresses=("172.30.0.2/24", "fd00:30::2/64"),
            routes=("default via 172.30.0.1", "default via fd00:30::1"),
        ),
    }
    devices.update({name: device for name, device in changes.items() if device is not None})
    for name in [name for name, device in changes.items() if device is None]:
        devices.pop(name)
    return NamespaceFacts(devices)


def kinds(items) -> list:
    return sorted(item["kind"] for item in items)


def rules_of(data: dict, without=()) -> dict:
    """Our table as the firewall renders it for the store (minus some comments), comment -> chain."""
    found = {
        rule.comment: "%s %s" % (rule.chain.family, rule.chain.name)
        for rule in firewall.render(data["networks"], data.get("ports", {}))
        if not any(rule.comment.startswith(prefix) for prefix in without)
    }
    found.update(
        (element.comment, "inet map %s" % element.map.name)
        for element in firewall.render_elements(data.get("ports", {}))
        if not any(("cnm " + element.owner).startswith(prefix) for prefix in without)
    )
    return found


# ---- the question ----
def test_query_defaults_to_everything():
    query = InfoQuery.from_params({"network": None, "netns": None, "netns_path": None, "pid": None, "gather": None})
    assert (query.networks, query.sandbox, sorted(query.gather), query.filtered) == (
        None,
        None,
        ["endpoints", "networks", "peers", "ports"],
        False,
    )


@pytest.mark.parametrize(
    "params, sandbox",
    [
        ({"netns": "web1"}, SandboxRef("netns", "web1")),
        ({"netns_path": "/proc/42/ns/net"}, SandboxRef("netns_path", "/proc/42/ns/net")),
        ({"pid": 42}, SandboxRef("pid", "42")),
        ({"container": "web1"}, SandboxRef("container", "web1", "docker")),
        ({"container": "web1", "container_runtime": "podman"}, SandboxRef("container", "web1", "podman")),
    ],
)
def test_query_takes_the_sandbox_forms_of_cnm_endpoint(params, sandbox):
    assert InfoQuery.from_params(dict(params, network=["web", "web", "ov"])) == InfoQuery(("ov", "web"), sandbox)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"network": ["bad name!"]}, "option 'network': bad name! is not a valid network name"),
        ({"netns": "a/b"}, "option 'netns': a/b is not a valid namespace name"),
        ({"pid": 0}, "option 'pid': 0 is not a process ID"),
        ({"netns_path": "proc/1/ns/net"}, "option 'netns_path': proc/1/ns/net must be an absolute path"),
        ({"container": "bad name"}, "option 'container': bad name is not a container name or ID"),
        ({"container_runtime": "podman"}, "option 'container_runtime': podman needs 'container'"),
        ({"gather": []}, "option 'gather': [] must list some of networks, endpoints, ports, peers"),
        ({"gather": ["networks", "routes"]}, "option 'gather'"),
    ],
)
def test_bad_questions_fail_naming_the_option(params, message):
    with pytest.raises(CnmError) as error:
        InfoQuery.from_params(params)
    assert str(error.value).startswith(message)


# ---- selection ----
def test_select_by_network_keeps_its_endpoints_and_ports_and_names_unknown_ones():
    data = state(
        {"web": WEB, "ov": OV},
        {"web|netns:web1": WEB1, "ov|netns:c1": dataclasses.replace(WEB1, network="ov", sandbox="netns:c1")},
        {"tcp/*:8080": PORT},
    )
    picked = select(data, InfoQuery(networks=("ov", "nosuch")))
    assert (picked.networks, picked.endpoints, picked.ports, picked.missing) == (
        ("ov",),
        ("ov|netns:c1",),
        (),
        ("nosuch",),
    )
    everything = select(data, InfoQuery())
    assert (everything.networks, everything.endpoints, everything.ports) == (
        ("ov", "web"),
        ("ov|netns:c1", "web|netns:web1"),
        ("tcp/*:8080",),
    )


def test_select_by_sandbox_keeps_the_networks_it_is_on():
    data = state(
        {"web": WEB, "ov": OV},
        {"web|netns:web1": WEB1, "ov|netns:c1": dataclasses.replace(WEB1, network="ov", sandbox="netns:c1")},
        {"tcp/*:8080": PORT},
    )
    picked = select(data, InfoQuery(sandbox=SandboxRef("pid", "1")), matches=lambda key: key == "netns:web1")
    assert (picked.networks, picked.endpoints, picked.ports) == (("web",), ("web|netns:web1",), ("tcp/*:8080",))
    other = select(data, InfoQuery(sandbox=SandboxRef("pid", "1")), matches=lambda key: key == "netns:c1")
    assert (other.networks, other.endpoints, other.ports) == (("ov",), ("ov|netns:c1",), ())


# ---- networks ----
def test_networks_as_the_modules_leave_them_have_no_drift():
    facts = host_facts()
    assert (
        network_drift("web", WEB, facts) == []
        and network_drift("ov", OV, facts) == []
        and network_drift("lan", LAN, facts) == []
    )


@pytest.mark.parametrize(
    "record, changes, expected",
    [
        (WEB, {"br_web": None}, ["network_device_missing"]),
        (WEB, {"br_web": Device("br-web", "veth", 1500, None, True)}, ["network_device_foreign"]),
        (
            WEB,
            {"br_web": Device("br-web", "bridge", 1500, None, True, alias="cnm:network:other")},
            ["network_device_foreign"],
        ),
        (
            WEB,
            {
                "br_web": Device(
                    "br-web",
                    "bridge",
                    1400,
                    None,
                    False,
                    alias="cnm:network:web",
                    addresses=("172.30.0.1/24", "fd00:30::1/64"),
                )
            },
            ["network_device_down", "network_mtu"],
        ),
        (
            WEB,
            {
                "br_web": Device(
                    "br-web",
                    "bridge",
                    1500,
                    None,
                    True,
                    alias="cnm:network:web",
                    addresses=("172.30.0.1/24", "172.30.0.9/24"),
                )
            },
            ["network_addresses"],
        ),
        (
            OV,
            {
                "vx_ov": Device(
                    "vx-ov",
                    "vxlan",
                    1450,
                    None,
                    True,
                    alias="cnm:overlay:ov",
                    vxlan={"vni": 4201, "local": "192.0.2.11", "port": 4789, "learning": False, "proxy": True},
                )
            },
            ["vxlan_settings"],
        ),
        (OV, {"vx_ov": None}, ["network_device_missing"]),
        (LAN, {"mvs_lan": None}, ["network_device_missing"]),
        (
            LAN,
            {
                "mvs_lan": Device(
                    "mvs-lan", "macvlan", 1500, None, True, alias="cnm:shim:lan", addresses=("192.168.1.7/32",)
                )
            },
            ["network_addresses"],
        ),
        (
            LAN,
            {"mvs_lan": Device("mvs-lan", "veth", 1500, None, True, alias="cnm:shim:lan")},
            ["network_device_foreign"],
        ),
        (LAN, {"eth1": None}, ["network_device_missing"]),
        (
            LAN,
            {"eth1": Device("eth1", "veth", 9000, None, False)},
            [],
        ),  # the parent is the user's: only its existence is ours to check
    ],
)
def test_network_drift(record, changes, expected):
    name = {"bridge": "web", "overlay": "ov", "macvlan": "lan"}[record.driver]
    found = network_drift(name, record, host_facts(**changes))
    assert kinds(found) == expected
    assert all(item["network"] == name and item["message"].startswith("network %s: " % name) for item in found)


def test_a_network_without_mtu_in_its_record_is_not_checked_for_it():
    shim = Device("mvs-lan", "macvlan", 9000, None, True, alias="cnm:shim:lan", addresses=("192.168.1.250/32",))
    assert network_drift("lan", dataclasses.replace(LAN, mtu=None), host_facts(mvs_lan=shim)) == []


def test_missing_device_names_what_was_expected():
    (item,) = network_drift("web", WEB, host_facts(br_web=None))
    assert item == {
        "kind": "network_device_missing",
        "object": "bridge br-web",
        "network": "web",
        "sandbox": None,
        "expected": {"name": "br-web", "kind": "bridge"},
        "found": None,
        "message": "network web: its bridge br-web does not exist",
    }


# ---- endpoints ----
def test_an_endpoint_as_cnm_endpoint_leaves_it_has_no_drift():
    assert endpoint_drift("web|netns:web1", WEB1, WEB, host_facts(), sandbox_facts()) == []


def test_a_gone_sandbox_is_the_only_drift_reported_for_its_endpoint():
    assert kinds(endpoint_drift("web|netns:web1", WEB1, WEB, host_facts(ve_aaa=None), None)) == [
        "endpoint_sandbox_missing"
    ]


@pytest.mark.parametrize(
    "host_changes, sandbox_changes, expected",
    [
        ({"ve_aaa": None}, {"eth0": None}, ["endpoint_host_interface_missing", "endpoint_interface_missing"]),
        ({"ve_aaa": None}, {}, ["endpoint_host_interface_missing"]),
        (
            {
                "ve_aaa": Device(
                    "ve-aaa",
                    "veth",
                    1500,
                    None,
                    True,
                    "up",
                    "cnm:endpoint:web|netns:web1",
                    master="br-web",
                    index=7,
                    peer_index=99,
                )
            },
            {},
            ["endpoint_not_paired"],
        ),
        (
            {"ve_aaa": Device("ve-aaa", "veth", 1500, None, True, "up", None, master="br-web", index=7, peer_index=2)},
            {},
            ["endpoint_not_paired"],
        ),
        (
            {
                "ve_aaa": Device(
                    "ve-aaa",
                    "veth",
                    1500,
                    None,
                    True,
                    "up",
                    "cnm:endpoint:web|netns:web1",
                    master=None,
                    index=7,
                    peer_index=2,
                )
            },
            {},
            ["endpoint_not_on_bridge"],
        ),
        (
            {
                "ve_aaa": Device(
                    "ve-aaa",
                    "veth",
                    1400,
                    None,
                    False,
                    "down",
                    "cnm:endpoint:web|netns:web1",
                    master="br-web",
                    index=7,
                    peer_index=2,
                )
            },
            {},
            ["endpoint_down", "endpoint_mtu"],
        ),
        (
            {},
            {
                "eth0": Device(
                    "eth0",
                    "veth",
                    1500,
                    "02:42:ac:1e:00:09",
                    True,
                    "up",
                    index=2,
                    peer_index=7,
                    addresses=("172.30.0.2/24",),
                )
            },
            ["endpoint_addresses", "endpoint_mac"],
        ),
    ],
)
def test_endpoint_drift(host_changes, sandbox_changes, expected):
    found = endpoint_drift("web|netns:web1", WEB1, WEB, host_facts(**host_changes), sandbox_facts(**sandbox_changes))
    assert kinds(found) == expected
    assert all((item["network"], item["sandbox"]) == ("web", "netns:web1") for item in found)


def test_an_endpoint_of_a_network_the_store_lost():
    assert kinds(endpoint_drift("web|netns:web1", WEB1, None, host_facts(), sandbox_facts())) == [
        "endpoint_network_missing"
    ]


def test_a_macvlan_endpoint_has_no_host_end_and_its_interface_carries_the_alias():
    inside = NamespaceFacts(
        {
            "eth0": Device(
                "eth0",
                "macvlan",
                1500,
                "02:42:c0:a8:01:02",
                True,
                "up",
                "cnm:endpoint:lan|pid:4242",
                index=2,
                addresses=("192.168.1.2/24",),
            )
        }
    )
    assert endpoint_drift("lan|pid:4242", LAN1, LAN, host_facts(), inside) == []
    assert kinds(endpoint_drift("lan|pid:4242", LAN1, LAN, host_facts(), NamespaceFacts({}))) == [
        "endpoint_interface_missing"
    ]
    strange = NamespaceFacts(
        {"eth0": Device("eth0", "veth", 1500, "02:42:c0:a8:01:02", True, "up", index=2, addresses=("192.168.1.2/24",))}
    )
    assert kinds(endpoint_drift("lan|pid:4242", LAN1, LAN, host_facts(), strange)) == ["endpoint_interface_foreign"]


# ---- ports and the firewall ----
def test_a_port_with_its_rules_and_endpoint_has_no_drift():
    data = state(ports={"tcp/*:8080": PORT})
    wanted = {"tcp/*:8080": [c for c in rules_of(data) if c.startswith("element ")]}
    assert len(wanted["tcp/*:8080"]) == 2  # the container address and the container port, by (protocol, host port)
    assert port_drift("tcp/*:8080", PORT, data, rules_of(data), wanted) == []
    assert firewall_drift(data, select(data, InfoQuery()), InfoQuery(), rules_of(data)) == []


def test_a_port_without_its_rules_or_its_endpoint():
    data = state(endpoints={}, ports={"tcp/*:8080": PORT})
    wanted = {"tcp/*:8080": [c for c in rules_of(data) if c.startswith("element ")]}
    found = port_drift("tcp/*:8080", PORT, data, rules_of(data, without=("cnm port web",)), wanted)
    assert kinds(found) == ["port_endpoint_missing", "port_rules_missing"]
    assert sorted(found[1]["expected"]) == sorted(wanted["tcp/*:8080"])
    assert kinds(port_drift("tcp/*:8080", PORT, data, None, {})) == [
        "port_endpoint_missing"
    ]  # rules not read: not judged


def test_a_host_process_on_a_published_port_is_drift_in_the_words_of_the_refusal():
    data = state(ports={"tcp/*:8080": PORT})
    words = "host port is already bound by process 4242 (nginx) on this host"
    found = port_drift("tcp/*:8080", PORT, data, None, {}, {"tcp/*:8080": words})
    assert kinds(found) == ["port_shadowed"] and found[0]["found"] == words and words in found[0]["message"]
    assert (found[0]["object"], found[0]["network"], found[0]["sandbox"]) == ("port tcp/*:8080", "web", "netns:web1")
    assert port_drift("tcp/*:8080", PORT, data, None, {}, {"tcp/*:9090": words}) == []


def test_a_port_forwarded_to_another_ipv6_address_than_its_endpoints_is_drift():
    data = state(ports={"tcp/*:8080": PORT})
    assert port_drift("tcp/*:8080", dataclasses.replace(PORT, container_ipv6="fd00:30::2"), data, None, {}) == []
    assert (
        port_drift("tcp/*:8080", PORT, data, None, {}) == []
    )  # an entry written before IPv6 lacks the key: not judged
    found = port_drift("tcp/*:8080", dataclasses.replace(PORT, container_ipv6="fd00:30::9"), data, None, {})
    assert kinds(found) == ["port_endpoint_missing"]
    assert (found[0]["expected"], found[0]["found"]) == (["172.30.0.2", "fd00:30::9"], ["172.30.0.2", "fd00:30::2"])


def test_missing_network_rules_and_rules_no_record_renders():
    data = state(ports={"tcp/*:8080": PORT})
    rules = rules_of(data, without=("cnm network web masquerade", "cnm ports dnat"))
    rules["cnm network gone masquerade #12345678"] = "inet postrouting"
    found = firewall_drift(data, select(data, InfoQuery()), InfoQuery(), rules)
    assert kinds(found) == ["firewall_rules_missing", "network_rules_missing", "unclaimed_rule"]
    assert [item["network"] for item in found] == ["web", None, "gone"]
    filtered = firewall_drift(data, select(data, InfoQuery(networks=("web",))), InfoQuery(networks=("web",)), rules)
    assert kinds(filtered) == [
        "firewall_rules_missing",
        "network_rules_missing",
    ]  # a stray rule is reported without filters only
    assert firewall_drift(data, select(data, InfoQuery()), InfoQuery(), None) == []


# ---- overlay peers ----
def test_peers_as_cnm_overlay_leaves_them():
    views, found = peer_views("ov", OV, host_facts())
    assert found == []
    assert views == [
        {
            "network": "ov",
            "vtep": "192.0.2.12",
            "recorded": True,
            "endpoints": [{"ip": "10.200.2.5", "mac": "02:42:0a:c8:02:05"}],
            "flood": True,
            "fdb": ["02:42:0a:c8:02:05"],
            "neighbours": [{"ip": "10.200.2.5", "mac": "02:42:0a:c8:02:05"}],
        }
    ]


def test_peer_entries_missing_and_stale():
    facts = host_facts()
    facts.fdb["vx-ov"] = [("02:42:0a:c8:02:05", "192.0.2.12"), ("00:00:00:00:00:00", "192.0.2.77")]
    facts.neighbours["vx-ov"] = [("02:42:0a:c8:63:63", "10.200.99.99")]
    views, found = peer_views("ov", OV, facts)
    assert kinds(found) == ["peer_fdb_missing", "peer_fdb_stale", "peer_neighbour_missing", "peer_neighbour_stale"]
    assert [(d["object"], d["message"]) for d in found] == [
        ("vxlan vx-ov fdb 00:00:00:00:00:00 dst 192.0.2.12",
         "network ov: the FDB of vx-ov lacks 00:00:00:00:00:00 dst 192.0.2.12"),
        ("vxlan vx-ov fdb 00:00:00:00:00:00 dst 192.0.2.77",
         "network ov: the FDB of vx-ov holds 00:00:00:00:00:00 dst 192.0.2.77, which no peer lists"),
        ("vxlan vx-ov neighbour 10.200.2.5",
         "network ov: vx-ov has no neighbour entry 10.200.2.5 lladdr 02:42:0a:c8:02:05"),
        ("vxlan vx-ov neighbour 10.200.99.99",
         "network ov: vx-ov holds neighbour entry 10.200.99.99 lladdr 02:42:0a:c8:63:63, which no peer lists"),
    ]  # fmt: skip
    assert found[0]["expected"] == {"mac": "00:00:00:00:00:00", "vtep": "192.0.2.12"}
    assert found[3]["found"] == {"ip": "10.200.99.99", "mac": "02:42:0a:c8:63:63"}
    assert [(v["vtep"], v["recorded"], v["flood"]) for v in views] == [
        ("192.0.2.12", True, False),
        ("192.0.2.77", False, True),
    ]


def test_peers_of_a_missing_vxlan_device_say_nothing_of_the_tables():
    facts = host_facts(vx_ov=None)
    facts.fdb.clear()
    views, found = peer_views("ov", OV, facts)
    assert found == [] and [(v["vtep"], v["flood"], v["fdb"], v["neighbours"]) for v in views] == [
        ("192.0.2.12", None, None, None)
    ]


# ---- unclaimed objects ----
def test_devices_with_a_cnm_alias_that_no_record_claims():
    data = state({"web": WEB, "lan": LAN}, {"web|netns:web1": WEB1})
    facts = host_facts(
        ve_old=Device("ve-old", "veth", 1500, None, True, alias="cnm:endpoint:web|netns:old"),
        br_gone=Device("br-gone", "bridge", 1500, None, True, alias="cnm:network:gone"),
        eth5=Device("eth5", "veth", 1500, None, True, alias="uplink"),
    )
    found = unclaimed_devices(data, facts, InfoQuery(), None)
    # br-ov and vx-ov of the fixture's host are not in this store either
    assert [(item["object"], item["network"], item["sandbox"]) for item in found] == [
        ("link br-gone", "gone", None),
        ("link br-ov", "ov", None),
        ("link ve-old", "web", "netns:old"),
        ("link vx-ov", "ov", None),
    ]
    assert [item["object"] for item in unclaimed_devices(data, facts, InfoQuery(networks=("web",)), None)] == [
        "link ve-old"
    ]
    assert [
        item["object"]
        for item in unclaimed_devices(
            data, facts, InfoQuery(sandbox=SandboxRef("netns", "old")), lambda key: key == "netns:old"
        )
    ] == ["link ve-old"]


# ---- the whole report ----
def test_the_report_holds_what_is_gathered_and_every_drift_kind_is_documented():
    data = state({"web": WEB, "ov": OV, "lan": LAN}, {"web|netns:web1": WEB1}, {"tcp/*:8080": PORT})
    facts = host_facts()
    facts.rules = rules_of(
        state({"web": WEB, "ov": OV}, ports={"tcp/*:8080": PORT})
    )  # a macvlan network has no rules of its own
    result = report(data, InfoQuery(), select(data, InfoQuery()), facts, {"netns:web1": sandbox_facts()})
    assert sorted(result) == ["drift", "endpoints", "networks", "peers", "ports"] and result["drift"] == []
    assert [n["name"] for n in result["networks"]] == ["lan", "ov", "web"] and result["networks"][2]["endpoints"] == [
        "netns:web1"
    ]
    assert [(d["role"], d["name"], d["present"]) for d in result["networks"][0]["devices"]] == [
        ("shim", "mvs-lan", True),
        ("parent", "eth1", True),
    ]
    assert (
        result["endpoints"][0]["netns"] == "web1" and result["endpoints"][0]["interface"]["mac"] == "02:42:ac:1e:00:02"
    )
    assert result["ports"][0]["published"] == "8080:80/tcp" and result["ports"][0]["rules_present"] is True
    only_ports = report(data, InfoQuery(gather=frozenset(["ports"])), select(data, InfoQuery()), facts, {})
    assert sorted(only_ports) == ["drift", "ports"]
    broken = host_facts(br_web=None)
    broken.rules = {}
    result = report(data, InfoQuery(), select(data, InfoQuery()), broken, {"netns:web1": None})
    assert set(kinds(result["drift"])) <= set(DRIFT_KINDS)
    assert kinds(result["drift"]) == [
        "endpoint_sandbox_missing",
        "firewall_rules_missing",
        "network_device_missing",
        "network_rules_missing",
        "network_rules_missing",
        "port_endpoint_missing",
        "port_rules_missing",
    ]


def test_every_drift_kind_is_documented_in_the_module():
    path = os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        "plugins",
        "modules",
        "cnm_info.py",
    )
    with open(path) as handle:
        text = handle.read()
    assert [kind for kind in DRIFT_KINDS if "C(%s)" % kind not in text] == []


# ---- sandbox default routes, bridge port flags, host sysctls ----
def _routes(**by_name) -> NamespaceFacts:
    facts = sandbox_facts()
    for name, routes in by_name.items():
        facts.devices[name] = dataclasses.replace(
            facts.devices.get(name) or Device(name, "veth", 1500, None, True, index=20), routes=routes
        )
    return facts


def test_a_sandbox_without_the_default_route_docker_would_give_it():
    data = state()
    selection = select(data, InfoQuery())
    assert sandbox_drift("netns:web1", data, selection, sandbox_facts()) == []
    found = sandbox_drift("netns:web1", data, selection, _routes(eth0=("default via 172.30.0.1",)))
    assert [(d["kind"], d["object"], d["expected"], d["found"]) for d in found] == [
        (
            "sandbox_default_route_missing",
            "sandbox netns:web1 ipv6 default route",
            "default via fd00:30::1 dev eth0",
            None,
        )
    ]
    moved = sandbox_drift(
        "netns:web1", data, selection, _routes(eth0=("default via 172.30.0.9", "default via fd00:30::1"))
    )
    assert [(d["object"], d["found"]) for d in moved] == [
        ("sandbox netns:web1 ipv4 default route", ["default via 172.30.0.9 dev eth0"])
    ]
    assert sandbox_drift("netns:web1", data, selection, None) == []  # a gone sandbox is endpoint_sandbox_missing


def test_a_default_route_held_elsewhere_or_asked_for_is_not_drift():
    data = state()
    selection = select(data, InfoQuery())
    # another interface of the sandbox (not an endpoint) holds it: cnm_endpoint leaves it so
    assert (
        sandbox_drift("netns:web1", data, selection, _routes(eth0=(), eth9=("default via 192.0.2.1", "default"))) == []
    )
    web1 = data["endpoints"]["web|netns:web1"]
    data["endpoints"]["web|netns:web1"] = dataclasses.replace(
        web1, routes=({"dst": "0.0.0.0/0", "gateway": "172.30.0.7"},)
    )
    assert kinds(sandbox_drift("netns:web1", data, selection, _routes(eth0=("default via fd00:30::1",)))) == []
    data["endpoints"]["web|netns:web1"] = dataclasses.replace(web1, routes=(), default_route=False)
    assert sandbox_drift("netns:web1", data, selection, _routes(eth0=())) == []
    internal = state({"web": dataclasses.replace(WEB, internal=True)})
    assert sandbox_drift("netns:web1", internal, select(internal, InfoQuery()), _routes(eth0=())) == []


def test_the_best_ranked_endpoint_holds_the_default_route():
    db = dataclasses.replace(
        WEB, bridge_name="br-db", subnet="172.31.0.0/24", gateway="172.31.0.1", ipv6_subnet=None, ipv6_gateway=None
    )
    eth1 = dataclasses.replace(
        WEB1, network="db", ifname="eth1", ipv4_address="172.31.0.2", ipv6_address=None, gw_priority=5
    )
    data = state({"web": WEB, "db": db}, {"web|netns:web1": WEB1, "db|netns:web1": eth1})
    facts = _routes(eth0=("default via fd00:30::1",), eth1=("default via 172.31.0.1",))
    assert sandbox_drift("netns:web1", data, select(data, InfoQuery()), facts) == []
    swapped = _routes(eth0=("default via 172.30.0.1", "default via fd00:30::1"), eth1=())
    (item,) = sandbox_drift("netns:web1", data, select(data, InfoQuery()), swapped)
    assert (item["network"], item["expected"]) == ("db", "default via 172.31.0.1 dev eth1") and "gw_priority 5" in item[
        "message"
    ]
    assert (
        sandbox_drift("netns:web1", data, select(data, InfoQuery(networks=("web",))), swapped) == []
    )  # the holder is not selected


def test_bridge_port_flags_as_the_network_wants_them():
    data = state()
    port = host_facts().devices["ve-aaa"]
    for flags, icc, expected in (
        ((False, True), True, []),
        ((True, True), False, []),
        ((True, True), True, ["endpoint_port_flags"]),
        ((False, False), True, ["endpoint_port_flags"]),
        ((False, True), False, ["endpoint_port_flags"]),
    ):
        facts = host_facts(ve_aaa=dataclasses.replace(port, port_flags=flags))
        found = port_flag_drift("web|netns:web1", WEB1, dataclasses.replace(WEB, icc=icc), facts)
        assert kinds(found) == expected, (flags, icc)
    (item,) = port_flag_drift(
        "web|netns:web1",
        WEB1,
        dataclasses.replace(WEB, icc=False),
        host_facts(ve_aaa=dataclasses.replace(port, port_flags=(False, True))),
    )
    assert (item["object"], item["expected"], item["found"]) == (
        "link ve-aaa",
        {"isolated": True, "hairpin": True},
        {"isolated": False, "hairpin": True},
    )
    assert port_flag_drift("web|netns:web1", WEB1, WEB, host_facts()) == []  # flags not read
    assert (
        port_flag_drift(
            "web|netns:web1",
            WEB1,
            WEB,
            host_facts(ve_aaa=dataclasses.replace(port, master=None, port_flags=(False, False))),
        )
        == []
    )
    assert (
        report(
            data,
            InfoQuery(),
            select(data, InfoQuery()),
            host_facts(ve_aaa=dataclasses.replace(port, port_flags=(True, False))),
            {"netns:web1": sandbox_facts()},
        )["drift"][0]["kind"]
        == "endpoint_port_flags"
    )


def test_forwarding_sysctls_the_networks_need():
    data = state({"web": WEB, "lan": LAN, "db": dataclasses.replace(WEB, bridge_name="br-db", internal=True)}, {})
    selection = select(data, InfoQuery())
    on = {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
    assert sysctl_drift(data, selection, on) == [] and sysctl_drift(data, selection, None) == []
    found = sysctl_drift(data, selection, {"net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "0"})
    assert [(d["kind"], d["object"], d["network"], d["expected"], d["found"]) for d in found] == [
        ("host_sysctl", "sysctl net.ipv4.ip_forward", "web", "1", "0"),
        ("host_sysctl", "sysctl net.ipv6.conf.all.forwarding", "web", "1", "0"),
    ]
    assert (
        sysctl_drift(data, select(data, InfoQuery(networks=("db", "lan"))), {"net.ipv4.ip_forward": "0"}) == []
    )  # internal, macvlan
    assert (
        sysctl_drift(data, selection, {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": None}) == []
    )  # a kernel without IPv6
    loopback = state(ports={"tcp/127.0.0.1:8080": dataclasses.replace(PORT, host_ip="127.0.0.1")})
    (item,) = sysctl_drift(
        loopback, select(loopback, InfoQuery()), dict(on, **{"net.ipv4.conf.br-web.route_localnet": "0"})
    )
    assert (item["object"], item["network"]) == ("sysctl net.ipv4.conf.br-web.route_localnet", "web")
