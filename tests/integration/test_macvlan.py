"""Macvlan networks on the real kernel: the parent is a veth whose other end is a LAN namespace
(its router and one of its hosts at 192.168.50.1). Traffic, modes, host access, idempotence,
check mode, removal and bad inputs."""

from __future__ import annotations

import json
import os

import pytest
from conftest import pings, sh, tcp_connects

LAN_ROUTER = "192.168.50.1"
NET = dict(name="lan", parent="lan0", subnet="192.168.50.0/24", gateway=LAN_ROUTER, ip_range="192.168.50.64/28")
SHIM = dict(NET, host_access=True, host_access_ip="192.168.50.100")


@pytest.fixture
def lan(host):
    """The host's interface lan0 (192.168.50.10) is a veth to the LAN namespace (192.168.50.1, the router)."""
    name = host.sandbox("lan")
    sh("ip netns add %s" % name)
    sh("ip link add lan0 netns %s type veth peer name eth0 netns %s" % (host.name, name))
    host.sh("ip addr add 192.168.50.10/24 dev lan0 && ip link set lan0 up")
    sh("ip link set lo up && ip addr add %s/24 dev eth0 && ip link set eth0 up" % LAN_ROUTER, netns=name)
    return name


def attach(host, *sandboxes, **extra):
    return host.ok(
        "cnm_endpoint",
        network=extra.pop("network", "lan"),
        endpoints=[dict(netns=host.sandbox(s)) for s in sandboxes],
        **extra,
    )


def lan_sees_mac(lan_ns: str, address: str) -> str:
    neigh = json.loads(sh("ip -j neigh show %s" % address, netns=lan_ns).stdout or "[]")
    return neigh[0].get("lladdr") if neigh else None


def test_two_endpoints_reach_each_other_and_the_lan_with_their_own_macs(host, lan):
    host.ok("cnm_macvlan", **NET)
    a, b = attach(host, "a", "b")["endpoints"]
    assert (a["ipv4_address"], b["ipv4_address"]) == ("192.168.50.64", "192.168.50.65")
    assert a["host_ifname"] is None and a["ifname"] == "eth0"
    link = json.loads(host.in_sandbox("a", "ip -d -j link show eth0").stdout)[0]
    assert link["linkinfo"]["info_kind"] == "macvlan" and link["linkinfo"]["info_data"]["mode"] == "bridge"
    assert pings(host.sandbox("a"), "192.168.50.65")
    assert pings(host.sandbox("a"), LAN_ROUTER) and pings(host.sandbox("b"), LAN_ROUTER)
    assert tcp_connects(host.sandbox("b"), host.sandbox("a"), "192.168.50.64")
    assert tcp_connects(lan, host.sandbox("b"), "192.168.50.65")  # a LAN host reaches the endpoint directly
    assert lan_sees_mac(lan, "192.168.50.64") == "02:42:c0:a8:32:40"
    assert lan_sees_mac(lan, "192.168.50.65") == "02:42:c0:a8:32:41"
    routes = json.loads(host.in_sandbox("a", "ip -j route show default").stdout)
    assert routes[0]["gateway"] == LAN_ROUTER  # the LAN's router, not the host
    # Nothing of it in the host: no veth, no bridge, no firewall table
    assert [n for n in host.links() if n.startswith(("ve-", "br-"))] == []
    assert "cnm" not in host.ruleset()


def test_host_reaches_endpoints_only_with_host_access(host, lan):
    host.ok("cnm_macvlan", **NET)
    attach(host, "a")
    assert not pings(host.name, "192.168.50.64")  # Docker's macvlan limitation
    result = host.ok("cnm_macvlan", **SHIM)
    shim = result["network"]["shim_name"]
    assert shim in host.links()
    assert pings(host.name, "192.168.50.64")
    assert pings(host.sandbox("a"), "192.168.50.100")
    assert tcp_connects(host.name, host.sandbox("a"), "192.168.50.64")
    # A static address outside ip_range gets its own route through the shim.
    static = host.ok("cnm_endpoint", network="lan", netns=host.sandbox("b"), ipv4_address="192.168.50.200")
    assert static["changed"]
    assert pings(host.name, "192.168.50.200")
    host.ok("cnm_endpoint", network="lan", netns=host.sandbox("b"), state="absent")
    assert "192.168.50.200" not in host.sh("ip route show dev %s" % shim).stdout
    # Switching host access off removes the shim and its routes.
    off = host.ok("cnm_macvlan", **dict(NET, host_access=False))  # left out, it would be kept
    assert off["changed"] and shim not in host.links()
    assert not pings(host.name, "192.168.50.64")


def test_private_mode_endpoints_cannot_reach_each_other(host, lan):
    host.ok("cnm_macvlan", mode="private", **NET)
    attach(host, "a", "b")
    assert not pings(host.sandbox("a"), "192.168.50.65")
    assert pings(host.sandbox("a"), LAN_ROUTER) and pings(host.sandbox("b"), LAN_ROUTER)


def test_vepa_mode_sends_everything_to_the_lan(host, lan):
    """In vepa mode frames between endpoints go out to the LAN; the lab's LAN end is no hairpinning switch."""
    host.ok("cnm_macvlan", mode="vepa", **NET)
    attach(host, "a", "b")
    assert pings(host.sandbox("a"), LAN_ROUTER)
    assert not pings(host.sandbox("a"), "192.168.50.65")


def test_passthru_gives_the_parent_to_one_endpoint(host, lan):
    host.ok("cnm_macvlan", mode="passthru", **NET)
    parent_mac = json.loads(host.sh("ip -j link show lan0").stdout)[0]["address"]
    a = host.ok("cnm_endpoint", network="lan", netns=host.sandbox("a"))["endpoint"]
    assert a["mac_address"] == parent_mac
    assert pings(host.sandbox("a"), LAN_ROUTER)
    second = host.module("cnm_endpoint", network="lan", netns=host.sandbox("b"))
    assert second["failed"] and "passthru" in second["msg"] and "one endpoint" in second["msg"]
    again = host.ok("cnm_endpoint", network="lan", netns=host.sandbox("a"))
    assert again["changed"] is False


def test_second_run_reports_no_change(host, lan):
    for _attempt in range(2):
        network = host.module("cnm_macvlan", ipv6_subnet="fd00:50::/64", **SHIM)
        endpoints = attach(host, "a", "b", routes=[dict(dst="10.99.0.0/16", gateway="192.168.50.254")])
        static = host.module("cnm_endpoint", network="lan", netns=host.sandbox("c"), ipv4_address="192.168.50.201")
    assert network["changed"] is False and network["changes"] == [], network["changes"]
    assert endpoints["changed"] is False and endpoints["changes"] == []
    assert static["changed"] is False


def test_check_mode_changes_nothing_and_predicts_the_real_run(host, lan):
    steps = [
        ("cnm_macvlan", dict(NET)),
        (
            "cnm_endpoint",
            dict(
                network="lan",
                endpoints=[dict(netns=host.sandbox("a")), dict(netns=host.sandbox("b"), ipv4_address="192.168.50.150")],
            ),
        ),
        ("cnm_macvlan", dict(SHIM, mtu=1400)),  # endpoints follow the MTU; the shim appears with a route to b
        (
            "cnm_endpoint",
            dict(network="lan", netns=host.sandbox("c"), ipv4_address="192.168.50.151"),
        ),  # a host route through the shim
        ("cnm_endpoint", dict(network="lan", netns=host.sandbox("a"), state="absent")),
        ("cnm_macvlan", dict(name="lan", state="absent", force=True)),
    ]
    for module, args in steps:
        before = host.snapshot()
        predicted = host.module(module, check=True, **args)
        assert host.snapshot() == before, "check mode changed something in %s %s" % (module, args)
        real = host.module(module, **args)
        assert not real.get("failed"), real
        assert (predicted["changed"], predicted["changes"]) == (real["changed"], real["changes"])
        assert predicted["diff"] == real["diff"]
        assert real["changed"]
    assert pings(host.sandbox("b"), LAN_ROUTER) is False  # its macvlan went with the network


def test_mtu_follows_the_network(host, lan):
    host.ok("cnm_macvlan", mtu=1400, **NET)
    attach(host, "a")
    assert json.loads(host.in_sandbox("a", "ip -j link show eth0").stdout)[0]["mtu"] == 1400
    assert pings(host.sandbox("a"), LAN_ROUTER, "-M do -s 1372")
    assert not pings(host.sandbox("a"), LAN_ROUTER, "-M do -s 1373")


def test_absent_leaves_nothing(host, lan):
    before = host.snapshot()
    host.ok("cnm_macvlan", **SHIM)
    attach(host, "a", "b")
    host.ok("cnm_endpoint", network="lan", netns=host.sandbox("c"), ipv4_address="192.168.50.160")
    host.ok("cnm_macvlan", name="lan", state="absent", force=True)
    after = host.snapshot()
    for name in ("a", "b", "c"):
        sandbox = host.sandbox(name)
        assert [link[0] for link in after.pop(sandbox)["links"]] == ["lo"]
        after["netns"].remove(sandbox)  # the sandboxes themselves are the test's
    assert after == before
    assert host.ok("cnm_macvlan", name="lan", state="absent")["changed"] is False


def test_vanished_sandbox_lease_is_reclaimed(host, lan):
    host.ok("cnm_macvlan", **NET)
    attach(host, "a")
    sh("ip netns del %s" % host.sandbox("a"))
    result = attach(host, "b")
    assert result["endpoints"][0]["ipv4_address"] == "192.168.50.64"
    assert result["reclaimed"][0]["sandbox"] == "netns:%s" % host.sandbox("a")


def test_one_sandbox_on_a_bridge_and_a_macvlan_network(host, lan):
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    host.ok("cnm_macvlan", **NET)
    host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"))
    eth1 = host.ok("cnm_endpoint", network="lan", netns=host.sandbox("a"))["endpoint"]
    assert eth1["ifname"] == "eth1"
    assert pings(host.sandbox("a"), LAN_ROUTER) and pings(host.sandbox("a"), "172.30.0.1")
    # The firewall knows only the bridge network.
    assert "lan0" not in host.ruleset()


# ---- bad inputs: a clear error naming the option, and nothing changed ----


def _refused(host, module, option, words, **args):
    before = host.snapshot()
    result = host.module(module, **args)
    assert result.get("failed"), result
    assert option in result["msg"] and all(w in result["msg"] for w in words), result["msg"]
    assert host.snapshot() == before


def test_bad_inputs(host, lan):
    host.sh(
        "ip link add brx type bridge && ip link add portx type veth peer name porty && ip link set portx master brx"
    )
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    _refused(host, "cnm_macvlan", "parent", ["does not exist"], **{**NET, "parent": "nope0"})
    _refused(host, "cnm_macvlan", "parent", ["is a port of brx"], **{**NET, "parent": "portx"})
    _refused(host, "cnm_macvlan", "parent", ["is a bridge"], **{**NET, "parent": "brx"})
    _refused(host, "cnm_macvlan", "parent", ["cnm network web"], **{**NET, "parent": "br-web"})
    _refused(host, "cnm_macvlan", "parent", ["802.1Q", "8021q"], **{**NET, "parent": "lan0.10"})
    _refused(host, "cnm_macvlan", "parent", ["4095"], **{**NET, "parent": "lan0.4095"})
    _refused(host, "cnm_macvlan", "host_access_ip", ["inside ip_range"], **{**SHIM, "host_access_ip": "192.168.50.65"})
    _refused(host, "cnm_macvlan", "host_access_ip", ["missing"], **{**NET, "host_access": True})
    _refused(host, "cnm_macvlan", "host_access", ["mode bridge"], **{**SHIM, "mode": "private"})
    _refused(host, "cnm_macvlan", "mtu", ["larger than the MTU of parent"], **{**NET, "mtu": 9000})
    _refused(host, "cnm_macvlan", "ip_range", ["outside subnet"], **{**NET, "ip_range": "10.0.0.0/28"})
    _refused(host, "cnm_macvlan", "gateway", ["outside subnet"], **{**NET, "gateway": "10.0.0.1"})
    _refused(host, "cnm_macvlan", "mode", ["bridge, private"], **{**NET, "mode": "source"})
    _refused(
        host,
        "cnm_macvlan",
        "subnet",
        ["overlaps network web"],
        **{**NET, "subnet": "172.30.0.0/16", "gateway": None, "ip_range": None},
    )
    host.ok("cnm_macvlan", **NET)
    attach(host, "a")
    _refused(
        host, "cnm_macvlan", "subnet", ["overlaps network lan"], **{**NET, "name": "lan2"}
    )  # same subnet on one parent
    _refused(host, "cnm_macvlan", "mode", ["detach them first"], **{**NET, "mode": "private"})
    _refused(host, "cnm_macvlan", "state", ["1 endpoint(s) attached"], name="lan", state="absent")
    solo = {**NET, "name": "solo", "mode": "passthru", "subnet": "10.9.0.0/24", "gateway": None, "ip_range": None}
    _refused(host, "cnm_macvlan", "mode", ["exclusively", "lan"], **solo)
    _refused(
        host,
        "cnm_port_publish",
        "network",
        ["macvlan", "LAN"],
        network="lan",
        netns=host.sandbox("a"),
        ports=["8080:80"],
    )
    _refused(
        host,
        "cnm_endpoint",
        "ipv4_address",
        ["192.168.50.1"],
        network="lan",
        netns=host.sandbox("b"),
        ipv4_address=LAN_ROUTER,
    )


def test_passthru_refuses_a_busy_parent(host, lan):
    host.sh("ip link add link lan0 name other0 type macvlan mode bridge")
    _refused(host, "cnm_macvlan", "mode", ["exclusively", "other0"], **{**NET, "mode": "passthru"})
    host.sh("ip link del other0")
    host.ok("cnm_macvlan", mode="passthru", **NET)
    _refused(
        host,
        "cnm_endpoint",
        "mac_address",
        ["passthru"],
        network="lan",
        netns=host.sandbox("a"),
        mac_address="02:00:00:00:00:01",
    )


@pytest.mark.skipif(
    os.path.isdir("/sys/module/ipvlan") or os.path.isdir("/lib/modules/%s" % os.uname().release),
    reason="this kernel may have ipvlan: the guest lab's ipvlan proof covers a kernel that has it",
)
def test_ipvlan_is_refused_where_the_kernel_has_none(host, lan):
    """This machine's kernel has no ipvlan (DESIGN.md): cnm_ipvlan says so before changing anything, in check mode
    too; the guest lab's proof (guestlab/proofs/ipvlan.yml) runs it on Debian's kernel."""
    for check_mode in (True, False):
        before = host.snapshot()
        result = host.module("cnm_ipvlan", check=check_mode, name="ipl", parent="lan0", subnet=NET["subnet"])
        assert result.get("failed") and "option 'name'" in result["msg"], result
        assert "this kernel lacks" in result["msg"] and os.uname().release in result["msg"], result["msg"]
        assert host.snapshot() == before


def test_options_left_out_keep_the_networks_values(host, lan):
    host.ok("cnm_macvlan", **dict(NET, mode="private", mtu=1400))
    attach(host, "a")

    predicted = host.module("cnm_macvlan", check=True, name="lan")
    rerun = host.module("cnm_macvlan", name="lan")  # parent, subnet, gateway, ip_range, mode, mtu: as they are
    assert (predicted["changed"], rerun["changed"], rerun["changes"]) == (False, False, []), rerun["changes"]
    assert (rerun["network"]["mode"], rerun["network"]["mtu"]) == ("private", 1400)
    inner = json.loads(host.in_sandbox("a", "ip -j -d link show eth0").stdout)[0]
    assert inner["mtu"] == 1400 and inner["linkinfo"]["info_data"]["mode"] == "private"
