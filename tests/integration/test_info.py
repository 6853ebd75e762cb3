"""cnm_info on the real kernel: what the modules built is reported exactly, filters narrow it, check mode
changes nothing, and every kind of damage done by hand shows up as drift until the owning module repairs it."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from conftest import RUN_PREFIX, pings
from test_containers import docker, net  # noqa: F401 pylint: disable=unused-import
from test_ports import host_listener

VTEP, PEER, PEER_ENDPOINT = "192.0.2.11", "192.0.2.12", "10.200.2.5"
PEERS = [{"vtep": PEER, "endpoints": [{"ip": PEER_ENDPOINT}]}]
PEER_MAC = "02:42:0a:c8:02:05"


def overlay(host, **extra) -> dict:
    return host.ok(
        "cnm_overlay",
        name="ov",
        vni=4200,
        subnet="10.200.0.0/16",
        ip_range="10.200.1.0/24",
        local_ip=VTEP,
        peers=PEERS,
        **extra,
    )


@pytest.fixture
def built(host):
    """A bridge network with two endpoints and a published port, and an overlay with one endpoint and one peer."""
    web = host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24", ipv6_subnet="fd00:30::/64")["network"]
    web1, web2 = host.ok(
        "cnm_endpoint", network="web", endpoints=[{"netns": host.sandbox("web1")}, {"netns": host.sandbox("web2")}]
    )["endpoints"]
    host.ok("cnm_port_publish", network="web", netns=host.sandbox("web1"), ports=["8080:80"])
    # The overlay's underlay: a veth pair inside the host (nothing outside it), holding the VTEP address.
    host.sh(
        "ip link add ul0 type veth peer name ul1 && ip addr add %s/24 dev ul0 && ip link set ul0 up && ip link set ul1 "
        "up" % VTEP
    )
    ov = overlay(host)["network"]
    c1 = host.ok("cnm_endpoint", network="ov", netns=host.sandbox("c1"))["endpoint"]
    return {"web": web, "ov": ov, "web1": web1, "web2": web2, "c1": c1}


def info(host, **args) -> dict:
    result = host.ok("cnm_info", **args)
    assert result["changed"] is False
    return result


def kinds(result) -> list:
    return sorted((item["kind"], item["object"]) for item in result["drift"])


def kernel_link(host, netns: str, name: str) -> dict:
    return json.loads(
        host.sh("ip -j link show dev %s" % name).stdout
        if netns is None
        else subprocess.run(
            ["ip", "-n", netns, "-j", "link", "show", "dev", name], capture_output=True, text=True, check=True
        ).stdout
    )[0]


def by_sandbox(result: dict) -> dict:
    return {endpoint["sandbox"]: endpoint for endpoint in result["endpoints"]}


def test_info_reports_what_the_modules_built_exactly(host, built):
    result = info(host)
    assert result["drift"] == []
    assert [network["name"] for network in result["networks"]] == ["ov", "web"]
    ov, web = result["networks"]
    for key in (
        "subnet",
        "gateway",
        "ip_range",
        "ipv6_subnet",
        "ipv6_gateway",
        "mtu",
        "bridge_name",
        "masquerade",
        "internal",
        "icc",
    ):
        assert web[key] == built["web"][key], key
    assert web["driver"] == "bridge" and ov["driver"] == "overlay"
    assert (ov["vni"], ov["local_ip"], ov["port"], ov["vxlan_name"], ov["restrict_peers"], ov["mtu"]) == (
        4200,
        VTEP,
        4789,
        "vx-ov",
        True,
        1450,
    )
    veths = sorted(built[name]["host_ifname"] for name in ("web1", "web2"))
    bridge = kernel_link(host, None, "br-web")
    assert web["devices"] == [
        {
            "role": "bridge",
            "name": "br-web",
            "present": True,
            "kind": "bridge",
            "mtu": 1500,
            "mac": bridge["address"],
            "up": True,
            "operstate": "up",
            "alias": "cnm:network:web",
            "master": None,
            "addresses": ["172.30.0.1/24", "fd00:30::1/64"],
            "ports": veths,
        }
    ]
    assert web["endpoints"] == sorted("netns:" + host.sandbox(name) for name in ("web1", "web2"))
    assert [device["role"] for device in ov["devices"]] == ["bridge", "vxlan"]
    vxlan = ov["devices"][1]
    assert (vxlan["name"], vxlan["kind"], vxlan["master"], vxlan["mtu"], vxlan["alias"]) == (
        "vx-ov",
        "vxlan",
        "br-ov",
        1450,
        "cnm:overlay:ov",
    )
    assert vxlan["vxlan"] == {"vni": 4200, "local": VTEP, "port": 4789, "learning": False, "proxy": True}
    assert ov["devices"][0]["ports"] == sorted([built["c1"]["host_ifname"], "vx-ov"])

    endpoints = by_sandbox(result)
    assert sorted(endpoints) == sorted("netns:" + host.sandbox(name) for name in ("web1", "web2", "c1"))
    for name in ("web1", "web2", "c1"):
        made, seen = built[name], endpoints["netns:" + host.sandbox(name)]
        for key in ("network", "ifname", "host_ifname", "ipv4_address", "ipv6_address", "mac_address", "netns"):
            assert seen[key] == made[key], (name, key)
        inner = kernel_link(host, host.sandbox(name), made["ifname"])
        assert seen["sandbox_exists"] is True
        assert (seen["interface"]["mac"], seen["interface"]["mtu"], seen["interface"]["kind"]) == (
            inner["address"],
            inner["mtu"],
            "veth",
        )
        assert seen["host_interface"]["master"] == ("br-ov" if name == "c1" else "br-web")
        assert seen["host_interface"]["alias"] == "cnm:endpoint:%s|netns:%s" % (made["network"], host.sandbox(name))
        assert seen["host_interface"]["hairpin"] is True and seen["host_interface"]["isolated"] is False
    web2 = endpoints["netns:" + host.sandbox("web2")]
    assert web2["interface"]["addresses"] == [
        "%s/24" % built["web2"]["ipv4_address"],
        "%s/64" % built["web2"]["ipv6_address"],
    ]
    assert web2["interface"]["routes"] == ["default via 172.30.0.1", "default via fd00:30::1"]
    # the addresses reported are the ones that answer
    assert pings(host.sandbox("web1"), web2["ipv4_address"]) and pings(host.sandbox("web1"), web2["ipv6_address"])

    assert result["ports"] == [
        {
            "key": "tcp/*:8080",
            "published": "8080:80/tcp",
            "network": "web",
            "sandbox": "netns:" + host.sandbox("web1"),
            "container_ip": built["web1"]["ipv4_address"],
            "container_ipv6": built["web1"]["ipv6_address"],
            "host_ip": None,
            "host_port": 8080,
            "container_port": 80,
            "protocol": "tcp",
            "rules_present": True,
        }
    ]
    assert result["peers"] == [
        {
            "network": "ov",
            "vtep": PEER,
            "recorded": True,
            "endpoints": [{"ip": PEER_ENDPOINT, "mac": PEER_MAC}],
            "flood": True,
            "fdb": [PEER_MAC],
            "neighbours": [{"ip": PEER_ENDPOINT, "mac": PEER_MAC}],
        }
    ]


def test_check_mode_reports_the_same_and_changes_nothing(host, built):
    host.sh("ip link set br-web mtu 1400")  # with drift too
    before = host.snapshot()
    checked = host.ok("cnm_info", check=True)
    assert host.snapshot() == before
    real = info(host)
    assert host.snapshot() == before
    assert checked == real and checked["changed"] is False
    assert kinds(real) == [("network_mtu", "bridge br-web")]


def test_filters_narrow_networks_endpoints_ports_and_peers(host, built):
    web = info(host, network="web")
    assert (
        [n["name"] for n in web["networks"]] == ["web"]
        and len(web["endpoints"]) == 2
        and len(web["ports"]) == 1
        and web["peers"] == []
    )
    ov = info(host, network=["ov"], gather=["peers", "networks"])
    assert sorted(ov) == ["changed", "drift", "networks", "peers", "resolver"]
    assert [n["name"] for n in ov["networks"]] == ["ov"] and [p["vtep"] for p in ov["peers"]] == [PEER]
    ports = info(host, gather=["ports"])
    assert sorted(ports) == ["changed", "drift", "ports"] and [p["key"] for p in ports["ports"]] == ["tcp/*:8080"]
    unknown = host.ok("cnm_info", network=["web", "nosuch"])
    assert [n["name"] for n in unknown["networks"]] == ["web"]
    assert "network nosuch is not a cnm network on this host (known: ov, web)" in json.dumps(unknown["warnings"])


def test_a_sandbox_filter_matches_its_namespace_however_it_is_named(host, built):
    web1 = info(host, netns=host.sandbox("web1"))
    assert [e["sandbox"] for e in web1["endpoints"]] == ["netns:" + host.sandbox("web1")]
    assert (
        [n["name"] for n in web1["networks"]] == ["web"]
        and [p["key"] for p in web1["ports"]] == ["tcp/*:8080"]
        and web1["peers"] == []
    )
    by_path = info(host, netns_path="/run/netns/" + host.sandbox("web2"))
    assert [e["sandbox"] for e in by_path["endpoints"]] == ["netns:" + host.sandbox("web2")] and by_path["ports"] == []
    process = subprocess.Popen(["nsenter", "--net=/run/netns/" + host.sandbox("c1"), "--", "sleep", "60"])
    try:
        while os.readlink("/proc/%d/ns/net" % process.pid) == os.readlink("/proc/self/ns/net"):
            time.sleep(0.05)  # nsenter has not entered yet
        by_pid = info(host, pid=process.pid)
    finally:
        process.kill()
        process.wait()
    assert [e["sandbox"] for e in by_pid["endpoints"]] == ["netns:" + host.sandbox("c1")]
    assert [n["name"] for n in by_pid["networks"]] == ["ov"] and [p["vtep"] for p in by_pid["peers"]] == [PEER]
    nothing = info(host, netns=host.sandbox("nosuch"))
    assert (nothing["networks"], nothing["endpoints"], nothing["ports"], nothing["drift"]) == ([], [], [], [])


@pytest.mark.parametrize(
    "args, option",
    [
        ({"netns": "a/b"}, "netns"),
        ({"network": ["bad name!"]}, "network"),
        ({"gather": ["nope"]}, "gather"),
        ({"pid": 0}, "pid"),
        ({"netns_path": "relative/path"}, "netns_path"),
        ({"netns": "x", "pid": 1}, "netns"),
    ],
)
def test_bad_input_fails_naming_the_option(host, args, option):
    result = host.module("cnm_info", **args)
    assert result.get("failed") and option in result["msg"], result


def test_a_deleted_veth_is_drift_until_cnm_endpoint_repairs_it(host, built):
    veth = built["web2"]["host_ifname"]
    host.sh("ip link del %s" % veth)
    sandbox = "netns:" + host.sandbox("web2")
    assert kinds(info(host)) == [
        ("endpoint_host_interface_missing", "link %s" % veth),
        ("endpoint_interface_missing", "interface eth0 in %s" % sandbox),
    ]
    seen = by_sandbox(info(host, gather=["endpoints"]))[sandbox]
    assert seen["interface"] is None and seen["host_interface"] is None and seen["sandbox_exists"] is True
    host.ok("cnm_endpoint", network="web", netns=host.sandbox("web2"))
    assert info(host)["drift"] == []


def test_changed_mtu_addresses_and_mac_are_drift(host, built):
    host.sh("ip link set br-web mtu 1400 && ip addr del fd00:30::1/64 dev br-web")
    host.in_sandbox("web1", "ip link set eth0 mtu 1400")
    host.in_sandbox("web2", "ip addr add 172.30.0.99/24 dev eth0 && ip link set eth0 address 02:42:ac:1e:00:63")
    result = info(host)
    web1, web2 = "netns:" + host.sandbox("web1"), "netns:" + host.sandbox("web2")
    assert kinds(result) == [
        ("endpoint_addresses", "interface eth0 in %s" % web2),
        ("endpoint_mac", "interface eth0 in %s" % web2),
        ("endpoint_mtu", "interface eth0 in %s" % web1),
        ("network_addresses", "bridge br-web"),
        ("network_mtu", "bridge br-web"),
    ]
    drift = {item["kind"]: item for item in result["drift"]}
    assert (drift["network_mtu"]["expected"], drift["network_mtu"]["found"]) == (1500, 1400)
    assert drift["network_addresses"]["expected"] == ["172.30.0.1/24", "fd00:30::1/64"] and drift["network_addresses"][
        "found"
    ] == ["172.30.0.1/24"]
    assert drift["endpoint_mac"]["found"] == "02:42:ac:1e:00:63" and drift["endpoint_mac"]["sandbox"] == web2
    assert "172.30.0.99/24" in drift["endpoint_addresses"]["found"]
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24", ipv6_subnet="fd00:30::/64")
    host.ok("cnm_endpoint", network="web", endpoints=[{"netns": host.sandbox("web1")}, {"netns": host.sandbox("web2")}])
    assert info(host)["drift"] == []


def test_a_removed_sandbox_is_drift_until_its_lease_is_reclaimed(host, built):
    veth = built["web2"]["host_ifname"]
    subprocess.run(["ip", "netns", "del", host.sandbox("web2")], check=True)
    result = info(host)
    assert kinds(result) == [("endpoint_sandbox_missing", "endpoint web|netns:%s" % host.sandbox("web2"))]
    assert by_sandbox(result)["netns:" + host.sandbox("web2")]["sandbox_exists"] is False
    while veth in host.links():  # the namespace goes asynchronously, and its veth with it
        time.sleep(0.05)
    assert host.ok("cnm_endpoint", network="web", netns=host.sandbox("web1"))["reclaimed"]
    assert info(host)["drift"] == []


def test_a_published_port_without_its_rules_is_drift(host, built):
    host.sh("nft delete element inet cnm ports_any4_port '{ tcp . 8080 }'")
    result = info(host)
    assert kinds(result) == [("port_rules_missing", "port tcp/*:8080")]
    assert result["ports"][0]["rules_present"] is False
    assert result["drift"][0]["expected"] == ["element ports_any4_port tcp . 8080 : 80"]
    host.ok("cnm_port_publish", network="web", netns=host.sandbox("web1"), ports=["8080:80"])
    assert info(host)["drift"] == [] and info(host)["ports"][0]["rules_present"] is True


def test_a_host_process_on_a_published_port_is_drift_naming_the_process(host, built):
    with host_listener(host, "tcp", 8080) as pid:  # a [::] socket: IPv4 and IPv6, both sides of the dual-stack 8080:80
        result = info(host, gather=["ports"])
        assert kinds(result) == [("port_shadowed", "port tcp/*:8080")]
        words = "host port is already bound by process %d (python" % pid
        assert words in result["drift"][0]["message"] and result["drift"][0]["found"].startswith(words)
    assert info(host)["drift"] == []


def test_cnm_objects_no_record_claims_are_drift(host, built):
    host.sh("ip link add cnmx0 type veth peer name cnmx1 && ip link set cnmx0 alias 'cnm:endpoint:web|netns:ghost'")
    host.sh("nft add rule inet cnm forward iifname cnmx0 drop comment '\"cnm network ghost isolation #00000000\"'")
    result = info(host)
    assert kinds(result) == [
        ("unclaimed_device", "link cnmx0"),
        ("unclaimed_rule", "rule 'cnm network ghost isolation #00000000' in inet forward"),
    ]
    drift = {item["kind"]: item for item in result["drift"]}
    device = drift["unclaimed_device"]
    assert (device["network"], device["sandbox"], device["found"]["alias"]) == (
        "web",
        "netns:ghost",
        "cnm:endpoint:web|netns:ghost",
    )
    assert drift["unclaimed_rule"]["network"] == "ghost"
    assert kinds(info(host, network="web")) == [("unclaimed_device", "link cnmx0")]  # rules only without filters
    assert info(host, network="ov")["drift"] == []
    host.ok(
        "cnm_bridge", name="web", subnet="172.30.0.0/24", ipv6_subnet="fd00:30::/64"
    )  # any run makes the table exact
    assert kinds(info(host)) == [("unclaimed_device", "link cnmx0")]


def test_overlay_fdb_and_neighbour_drift(host, built):
    host.sh(
        "bridge fdb del %s dev vx-ov dst %s && bridge fdb append 00:00:00:00:00:00 dev vx-ov dst 192.0.2.77"
        " && ip neigh del %s dev vx-ov" % (PEER_MAC, PEER, PEER_ENDPOINT)
    )
    result = info(host, network="ov")
    assert kinds(result) == [
        ("peer_fdb_missing", "vxlan vx-ov fdb %s dst %s" % (PEER_MAC, PEER)),
        ("peer_fdb_stale", "vxlan vx-ov fdb 00:00:00:00:00:00 dst 192.0.2.77"),
        ("peer_neighbour_missing", "vxlan vx-ov neighbour %s" % PEER_ENDPOINT),
    ]
    assert [(p["vtep"], p["recorded"], p["flood"], p["fdb"], p["neighbours"]) for p in result["peers"]] == [
        (PEER, True, True, [], []),
        ("192.0.2.77", False, True, [], []),
    ]
    overlay(host)
    assert info(host)["drift"] == []
    host.sh("ip link del vx-ov")
    gone = info(host, network="ov")
    assert kinds(gone) == [("network_device_missing", "vxlan vx-ov")]
    assert [(p["vtep"], p["flood"], p["fdb"]) for p in gone["peers"]] == [(PEER, None, None)]
    overlay(host)
    assert info(host)["drift"] == []


def test_a_deleted_bridge_is_drift_for_the_network_and_its_endpoints(host, built):
    host.sh("ip link del br-web")
    result = info(host)
    assert kinds(result) == sorted(
        [
            ("endpoint_not_on_bridge", "link %s" % built["web1"]["host_ifname"]),
            ("endpoint_not_on_bridge", "link %s" % built["web2"]["host_ifname"]),
            ("network_device_missing", "bridge br-web"),
        ]
    )
    assert result["networks"][1]["devices"] == [{"role": "bridge", "name": "br-web", "present": False}]
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24", ipv6_subnet="fd00:30::/64")
    host.ok("cnm_endpoint", network="web", endpoints=[{"netns": host.sandbox("web1")}, {"netns": host.sandbox("web2")}])
    assert info(host)["drift"] == []
    assert pings(host.sandbox("web1"), built["web2"]["ipv4_address"])


@pytest.fixture
def lan(host):
    """The host's interface lan0 (192.168.50.10) is a veth to a LAN namespace (192.168.50.1, its router)."""
    name = host.sandbox("lan")
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(
        ["ip", "link", "add", "lan0", "netns", host.name, "type", "veth", "peer", "name", "eth0", "netns", name],
        check=True,
    )
    host.sh("ip addr add 192.168.50.10/24 dev lan0 && ip link set lan0 up")
    subprocess.run(["ip", "-n", name, "addr", "add", "192.168.50.1/24", "dev", "eth0"], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "eth0", "up"], check=True)
    return name


def test_a_macvlan_network_with_host_access_is_reported_with_its_shim_parent_and_endpoints(host, lan):
    made = host.ok(
        "cnm_macvlan",
        name="lan",
        parent="lan0",
        subnet="192.168.50.0/24",
        gateway="192.168.50.1",
        ip_range="192.168.50.64/28",
        host_access=True,
        host_access_ip="192.168.50.100",
    )["network"]
    m1, m2 = host.ok(
        "cnm_endpoint", network="lan", endpoints=[{"netns": host.sandbox("m1")}, {"netns": host.sandbox("m2")}]
    )["endpoints"]
    assert pings(host.name, m1["ipv4_address"])  # the host reaches its endpoint through the shim

    result = info(host)
    assert result["drift"] == []
    (network,) = result["networks"]
    assert network["driver"] == "macvlan" and network["endpoints"] == sorted(
        "netns:" + host.sandbox(n) for n in ("m1", "m2")
    )
    for key in ("parent", "mode", "subnet", "gateway", "ip_range", "host_access", "host_access_ip", "shim_name"):
        assert network[key] == made[key], key
    shim, parent = network["devices"]
    assert (shim["role"], shim["name"], shim["present"], shim["kind"], shim["mode"]) == (
        "shim",
        made["shim_name"],
        True,
        "macvlan",
        "bridge",
    )
    assert "192.168.50.100" in [address.split("/")[0] for address in shim["addresses"]]
    assert (parent["role"], parent["name"], parent["kind"], parent["addresses"]) == (
        "parent",
        "lan0",
        "veth",
        ["192.168.50.10/24"],
    )
    assert len(result["endpoints"]) == 2
    for made_endpoint, seen in zip((m1, m2), result["endpoints"], strict=True):
        assert (seen["ipv4_address"], seen["mac_address"], seen["host_ifname"], seen["host_interface"]) == (
            made_endpoint["ipv4_address"],
            made_endpoint["mac_address"],
            None,
            None,
        )
        assert (seen["interface"]["kind"], seen["interface"]["mode"], seen["interface"]["mac"]) == (
            "macvlan",
            "bridge",
            made_endpoint["mac_address"],
        )
        assert seen["interface"]["routes"] == ["default via 192.168.50.1"]
    assert (result["ports"], result["peers"]) == ([], [])

    host.sh("ip link del %s" % made["shim_name"])
    host.in_sandbox("m2", "ip link set eth0 alias other")
    assert kinds(info(host)) == [
        ("endpoint_interface_foreign", "interface eth0 in netns:%s" % host.sandbox("m2")),
        ("network_device_missing", "shim %s" % made["shim_name"]),
    ]
    host.sh("ip link del lan0")  # the endpoints' macvlans go with their parent
    assert kinds(info(host)) == [
        ("endpoint_interface_missing", "interface eth0 in netns:%s" % host.sandbox(n)) for n in ("m1", "m2")
    ] + [("network_device_missing", "parent lan0"), ("network_device_missing", "shim %s" % made["shim_name"])]


# the container tests' engine fixtures
def test_a_container_is_found_by_name_or_pid_and_its_stop_is_drift(docker, net):  # noqa: F811
    name, prefix = net
    container = "%s-info1" % RUN_PREFIX
    docker.run(container, "exec sleep 600")
    made = docker.ok("cnm_endpoint", network=name, container=container)["endpoint"]
    assert docker.exec(container, "ping -c 1 -W 2 %s.1" % prefix).returncode == 0
    key = "container:docker/%s" % container

    by_name = docker.ok("cnm_info", container=container)
    assert by_name["drift"] == [] and [n["name"] for n in by_name["networks"]] == [name]
    (seen,) = by_name["endpoints"]
    assert (seen["sandbox"], seen["container"], seen["container_runtime"], seen["ipv4_address"]) == (
        key,
        container,
        "docker",
        made["ipv4_address"],
    )
    assert seen["interface"]["mac"] == made["mac_address"] and seen["host_interface"]["master"] == "br-" + name
    by_pid = docker.ok("cnm_info", pid=docker.pid(container), gather=["endpoints"])
    assert [e["sandbox"] for e in by_pid["endpoints"]] == [key]

    docker.cli("kill", container)
    stopped = docker.ok("cnm_info", network=name)
    assert [(d["kind"], d["object"]) for d in stopped["drift"]] == [
        ("endpoint_sandbox_missing", "endpoint %s|%s" % (name, key))
    ]
    assert stopped["endpoints"][0]["sandbox_exists"] is False


def test_a_deleted_default_route_is_drift_until_cnm_endpoint_restores_it(host, built):
    web1 = "netns:" + host.sandbox("web1")
    host.in_sandbox("web1", "ip route del default via 172.30.0.1 && ip -6 route del default via fd00:30::1")
    assert "Network is unreachable" in host.in_sandbox("web1", "ip route get 192.0.2.200", check=False).stderr
    result = info(host)
    assert kinds(result) == [
        ("sandbox_default_route_missing", "sandbox %s ipv4 default route" % web1),
        ("sandbox_default_route_missing", "sandbox %s ipv6 default route" % web1),
    ]
    assert [(d["network"], d["sandbox"], d["expected"], d["found"]) for d in result["drift"]] == [
        ("web", web1, "default via 172.30.0.1 dev eth0", None),
        ("web", web1, "default via fd00:30::1 dev eth0", None),
    ]
    assert info(host, network="ov")["drift"] == []
    host.in_sandbox("web1", "ip route add default via 172.30.0.254 dev eth0")  # a wrong one by hand
    assert [d["found"] for d in info(host, netns=host.sandbox("web1"))["drift"]] == [
        ["default via 172.30.0.254 dev eth0"],
        None,
    ]
    host.ok("cnm_endpoint", network="web", netns=host.sandbox("web1"))
    assert info(host)["drift"] == []
    assert host.in_sandbox("web1", "ip route show default").stdout.split()[:5] == [
        "default",
        "via",
        "172.30.0.1",
        "dev",
        "eth0",
    ]


def test_forwarding_turned_off_is_drift_until_a_module_run(host, built):
    host.sh("sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0")
    result = info(host)
    assert kinds(result) == [
        ("host_sysctl", "sysctl net.ipv4.ip_forward"),
        ("host_sysctl", "sysctl net.ipv6.conf.all.forwarding"),
    ]
    assert [(d["network"], d["expected"], d["found"]) for d in result["drift"]] == [(None, "1", "0"), ("web", "1", "0")]
    assert kinds(info(host, network="ov")) == [("host_sysctl", "sysctl net.ipv4.ip_forward")]  # ov has no IPv6
    assert info(host, gather=["endpoints"])["drift"] == []
    assert host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24", ipv6_subnet="fd00:30::/64")["changed"] is True
    assert info(host)["drift"] == []
    assert host.sh("sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding").stdout.split() == ["1", "1"]


def test_a_bridge_port_flag_changed_by_hand_is_drift_until_cnm_endpoint_repairs_it(host, built):
    web1, web2 = built["web1"]["host_ifname"], built["web2"]["host_ifname"]
    assert pings(host.sandbox("web2"), built["web1"]["ipv4_address"])
    host.sh("bridge link set dev %s isolated on && bridge link set dev %s isolated on hairpin off" % (web1, web2))
    assert not pings(
        host.sandbox("web2"), built["web1"]["ipv4_address"]
    )  # two isolated ports do not talk: icc broken by hand
    result = info(host)
    assert kinds(result) == [("endpoint_port_flags", "link %s" % name) for name in sorted((web1, web2))]
    flags = {d["object"]: (d["expected"], d["found"]) for d in result["drift"]}
    assert flags["link %s" % web1] == ({"isolated": False, "hairpin": True}, {"isolated": True, "hairpin": True})
    assert flags["link %s" % web2] == ({"isolated": False, "hairpin": True}, {"isolated": True, "hairpin": False})
    host.ok("cnm_endpoint", network="web", endpoints=[{"netns": host.sandbox("web1")}, {"netns": host.sandbox("web2")}])
    assert info(host)["drift"] == []
    assert pings(host.sandbox("web2"), built["web1"]["ipv4_address"])
    isolated = host.ok("cnm_bridge", name="iso", subnet="172.31.0.0/24", icc=False)["network"]
    made = host.ok("cnm_endpoint", network="iso", netns=host.sandbox("i1"))["endpoint"]
    host.sh("bridge link set dev %s isolated off" % made["host_ifname"])
    (item,) = info(host, network="iso")["drift"]
    assert (item["kind"], item["network"], item["expected"]) == (
        "endpoint_port_flags",
        isolated["name"],
        {"isolated": True, "hairpin": True},
    )
    host.ok("cnm_endpoint", network="iso", netns=host.sandbox("i1"))
    assert info(host)["drift"] == []


def test_a_non_default_mtu_survives_the_last_endpoint_leaving(host):
    args = {"name": "jumbo", "subnet": "172.29.0.0/24", "mtu": 9000}
    assert host.ok("cnm_bridge", **args)["changed"] is True
    for _round in range(2):
        host.ok("cnm_endpoint", network="jumbo", netns=host.sandbox("j1"))
        assert kernel_link(host, None, "br-jumbo")["mtu"] == 9000
        host.ok("cnm_endpoint", network="jumbo", netns=host.sandbox("j1"), state="absent")
        assert kernel_link(host, None, "br-jumbo")["mtu"] == 9000
        assert info(host)["drift"] == []
        assert host.ok("cnm_bridge", **args)["changed"] is False
    host.sh("ip link set br-jumbo mtu 1500")  # lost by hand: drift, and the rerun sets it again
    assert [(d["kind"], d["expected"], d["found"]) for d in info(host)["drift"]] == [("network_mtu", 9000, 1500)]
    assert host.ok("cnm_bridge", **args)["changed"] is True
    assert info(host)["drift"] == [] and host.ok("cnm_bridge", **args)["changed"] is False


def test_the_diff_of_a_new_network_shows_its_bridge(host):
    checked = host.module("cnm_bridge", check=True, name="fresh", subnet="172.28.0.0/24", mtu=1400)
    made = host.ok("cnm_bridge", name="fresh", subnet="172.28.0.0/24", mtu=1400)
    for result in (checked, made):
        after = result["diff"]["after"]["network fresh"]
        assert (after["bridge"], after["mtu"], after["addresses"], after["disable_ipv6"]) == (
            "br-fresh",
            1400,
            ["172.28.0.1/24"],
            "1",
        ), result["diff"]
        assert "network fresh" not in result["diff"]["before"]
