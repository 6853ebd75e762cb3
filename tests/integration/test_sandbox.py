"""A sandbox as a whole, on the real kernel: the default route follows Docker's gateway choice, and Docker's sandbox
sysctls."""

from __future__ import annotations

import json

from conftest import pings

WEB = dict(name="web", subnet="172.30.0.0/24")
DB = dict(name="db", subnet="172.31.0.0/24")
HOST_V4, HOST_V6 = (
    "192.0.2.1",
    "2001:db8:ff::1",
)  # host-only addresses: reachable from a sandbox only through its default route


def defaults(host, short: str, version: int = 4) -> list:
    """The sandbox's default routes as (gateway, interface)."""
    routes = json.loads(host.in_sandbox(short, "ip -%d -j route show default" % version).stdout or "[]")
    return sorted((r.get("gateway"), r["dev"]) for r in routes)


def sysctl(host, short: str, name: str) -> str:
    return " ".join(host.in_sandbox(short, "sysctl -n %s" % name).stdout.split())


def host_addresses(host) -> None:
    host.sh("ip addr add %s/32 dev lo && ip -6 addr add %s/128 dev lo nodad" % (HOST_V4, HOST_V6))


def check_then_run(host, module: str, **args) -> dict:
    """Check mode changes nothing and predicts the real run (changes and diff); the real run's result."""
    before = host.snapshot()
    predicted = host.module(module, check=True, **args)
    assert not predicted.get("failed"), predicted
    assert host.snapshot() == before
    real = host.ok(module, **args)
    assert (predicted["changed"], predicted["changes"], predicted["diff"]) == (
        real["changed"],
        real["changes"],
        real["diff"],
    )
    assert host.module(module, **args)["changed"] is False  # a second run changes nothing
    return real


def test_detaching_the_default_route_network_moves_it(host):
    host.ok("cnm_bridge", **WEB)
    host.ok("cnm_bridge", **DB)
    host_addresses(host)
    sandbox = host.sandbox("a")
    # One task, two endpoints: web's priority beats db's name (db sorts first, as Docker breaks ties).
    check_then_run(
        host, "cnm_endpoint", netns=sandbox, endpoints=[dict(network="web", gw_priority=1), dict(network="db")]
    )
    assert defaults(host, "a") == [("172.30.0.1", "eth0")]
    assert "via 172.30.0.1 dev eth0" in host.in_sandbox("a", "ip route get %s" % HOST_V4).stdout and pings(
        sandbox, HOST_V4
    )

    detached = check_then_run(host, "cnm_endpoint", network="web", netns=sandbox, state="absent")
    assert "add default via 172.31.0.1 through eth1 in %s (network db, gw_priority 0)" % sandbox in detached["changes"]
    diff = detached["diff"]
    assert diff["before"]["sandbox netns:%s" % sandbox]["default_ipv4"] == ["default via 172.30.0.1 dev eth0"]
    assert diff["after"]["sandbox netns:%s" % sandbox]["default_ipv4"] == "default via 172.31.0.1 dev eth1"
    assert defaults(host, "a") == [("172.31.0.1", "eth1")]
    assert "via 172.31.0.1 dev eth1" in host.in_sandbox("a", "ip route get %s" % HOST_V4).stdout and pings(
        sandbox, HOST_V4
    )

    # Back on web without a priority: db sorts first, so db keeps the default route (Docker's tie-break).
    host.ok("cnm_endpoint", network="web", netns=sandbox)
    assert defaults(host, "a") == [("172.31.0.1", "eth1")]
    # A higher priority takes it over on a rerun; detaching db leaves web holding it.
    moved = check_then_run(host, "cnm_endpoint", network="web", netns=sandbox, gw_priority=5)
    assert any(c.startswith("remove default via 172.31.0.1 from eth1") for c in moved["changes"])
    assert defaults(host, "a") == [("172.30.0.1", "eth0")]
    host.ok("cnm_endpoint", network="db", netns=sandbox, state="absent")
    assert defaults(host, "a") == [("172.30.0.1", "eth0")] and pings(sandbox, HOST_V4)


def test_ipv4_and_ipv6_defaults_are_chosen_separately(host):
    host.ok("cnm_bridge", name="alpha", subnet="172.32.0.0/24")
    host.ok("cnm_bridge", name="beta", subnet="172.33.0.0/24", ipv6_subnet="fd00:33::/64")
    host_addresses(host)
    sandbox = host.sandbox("a")
    check_then_run(host, "cnm_endpoint", netns=sandbox, endpoints=[dict(network="alpha"), dict(network="beta")])
    # Same priority: the dual-stack endpoint (beta) wins over the name order (alpha), for both versions.
    assert defaults(host, "a", 4) == [("172.33.0.1", "eth1")]
    assert defaults(host, "a", 6) == [("fd00:33::1", "eth1")]
    # alpha with a higher priority takes IPv4 only: it has no IPv6 gateway, so beta keeps IPv6.
    check_then_run(host, "cnm_endpoint", netns=sandbox, network="alpha", gw_priority=3)
    assert defaults(host, "a", 4) == [("172.32.0.1", "eth0")]
    assert defaults(host, "a", 6) == [("fd00:33::1", "eth1")]
    assert "via 172.32.0.1 dev eth0" in host.in_sandbox("a", "ip route get %s" % HOST_V4).stdout and pings(
        sandbox, HOST_V4
    )
    assert "via fd00:33::1 dev eth1" in host.in_sandbox("a", "ip -6 route get %s" % HOST_V6).stdout and pings(
        sandbox, HOST_V6
    )
    # Detaching beta leaves no IPv6 gateway: no IPv6 default, and the sandbox turns IPv6 off (no IPv6 network left).
    detached = check_then_run(host, "cnm_endpoint", netns=sandbox, network="beta", state="absent")
    assert defaults(host, "a", 6) == [] and defaults(host, "a", 4) == [("172.32.0.1", "eth0")]
    # Writing 'all' turns 'default' and lo off too (the kernel's addrconf_disable_ipv6): no write of their own.
    assert "set net.ipv6.conf.all.disable_ipv6=1 in %s (Docker's sandbox default)" % sandbox in detached["changes"]
    assert not any("conf.lo." in change or "conf.default." in change for change in detached["changes"])
    assert sysctl(host, "a", "net.ipv6.conf.lo.disable_ipv6") == "1"
    assert sysctl(host, "a", "net.ipv6.conf.default.disable_ipv6") == "1"
    assert pings(sandbox, HOST_V4)


def test_default_route_false_and_internal_never_hold_it(host):
    host.ok("cnm_bridge", **WEB)
    host.ok("cnm_bridge", name="db", subnet="172.31.0.0/24", internal=True)
    sandbox = host.sandbox("a")
    host.ok(
        "cnm_endpoint",
        netns=sandbox,
        endpoints=[dict(network="web", default_route=False), dict(network="db", gw_priority=9)],
    )
    assert defaults(host, "a") == []
    assert host.module("cnm_endpoint", netns=sandbox, network="web")["changed"] is False  # left out: kept false
    assert defaults(host, "a") == []
    host.ok("cnm_endpoint", netns=sandbox, network="web", default_route=True)  # web is the only candidate
    assert defaults(host, "a") == [("172.30.0.1", "eth0")]


def test_docker_sandbox_sysctls_and_overrides(host):
    host.ok("cnm_bridge", **WEB)
    host.ok("cnm_bridge", name="v6", subnet="172.34.0.0/24", ipv6_subnet="fd00:34::/64")
    sandbox = host.sandbox("a")
    attached = check_then_run(host, "cnm_endpoint", network="web", netns=sandbox)
    after = attached["diff"]["after"]["sandbox netns:%s" % sandbox]["sysctls"]
    assert after == {
        "net.ipv4.ip_unprivileged_port_start": "0",
        "net.ipv4.ping_group_range": "0 2147483647",
        "net.ipv6.conf.all.disable_ipv6": "1",
        "net.ipv6.conf.default.disable_ipv6": "1",
        "net.ipv6.conf.lo.disable_ipv6": "1",
    }
    for name, value in after.items():
        assert sysctl(host, "a", name) == value, name
    assert sysctl(host, "a", "net.ipv6.conf.eth0.disable_ipv6") == "1"
    assert "inet6" not in host.in_sandbox("a", "ip -6 addr show dev lo").stdout
    # An unprivileged user can bind port 80 and ping (Docker's reasons for these two).
    bound = host.in_sandbox(
        "a",
        "setpriv --reuid 65534 --regid 65534 --clear-groups /usr/bin/python3 -c "
        "\"import socket; s=socket.socket(); s.bind(('127.0.0.1', 80)); print('bound')\"",
        check=False,
    )
    assert bound.stdout.strip() == "bound", bound.stderr

    # Each default gives way to the endpoint's own sysctls.
    own = {"net.ipv4.ip_unprivileged_port_start": 1024, "net.ipv6.conf.lo.disable_ipv6": 0}
    check_then_run(host, "cnm_endpoint", network="web", netns=sandbox, sysctls=own)
    assert sysctl(host, "a", "net.ipv4.ip_unprivileged_port_start") == "1024"
    assert (
        sysctl(host, "a", "net.ipv6.conf.lo.disable_ipv6") == "0"
        and sysctl(host, "a", "net.ipv6.conf.all.disable_ipv6") == "1"
    )
    assert sysctl(host, "a", "net.ipv4.ping_group_range") == "0 2147483647"
    kept = host.module("cnm_endpoint", network="web", netns=sandbox)  # left out: the endpoint keeps its sysctls
    assert kept["changed"] is False and sysctl(host, "a", "net.ipv4.ip_unprivileged_port_start") == "1024"
    host.ok("cnm_endpoint", network="web", netns=sandbox, sysctls={})  # the override gone: the default is back
    assert sysctl(host, "a", "net.ipv4.ip_unprivileged_port_start") == "0"

    # An IPv6 network joins: lo gets IPv6 (::1) again and the new interface has IPv6, although 'default' is off.
    joined = check_then_run(host, "cnm_endpoint", network="v6", netns=sandbox)
    assert "set net.ipv6.conf.lo.disable_ipv6=0 in %s (Docker's sandbox default)" % sandbox in joined["changes"]
    assert "::1/128" in host.in_sandbox("a", "ip -6 addr show dev lo").stdout
    assert (
        sysctl(host, "a", "net.ipv6.conf.eth1.disable_ipv6") == "0"
        and sysctl(host, "a", "net.ipv6.conf.eth0.disable_ipv6") == "1"
    )
    assert pings(sandbox, "fd00:34::1")

    # Detaching the last endpoints restores nothing: the values belong to the sandbox.
    host.ok(
        "cnm_endpoint",
        netns=sandbox,
        endpoints=[dict(network="web", state="absent"), dict(network="v6", state="absent")],
    )
    assert sysctl(host, "a", "net.ipv4.ip_unprivileged_port_start") == "0"
    assert sysctl(host, "a", "net.ipv4.ping_group_range") == "0 2147483647"


def test_an_interface_joining_a_sandbox_with_ipv6_off_is_born_with_it_off(host):
    host.ok("cnm_bridge", **WEB)
    host.ok("cnm_bridge", name="db", subnet="172.31.0.0/24")
    sandbox = host.sandbox("a")
    # A sandbox new to cnm gets Docker's sysctls before its first interface: writing 'all' turns 'default' and lo
    # off too, and eth0 is born with IPv6 off.
    first = check_then_run(host, "cnm_endpoint", network="web", netns=sandbox)
    writes = [change for change in first["changes"] if "disable_ipv6" in change or "create veth" in change]
    assert [change.split(" ")[:2] for change in writes] == [
        ["set", "net.ipv6.conf.all.disable_ipv6=1"],
        ["create", "veth"],
    ]
    assert sysctl(host, "a", "net.ipv6.conf.default.disable_ipv6") == "1"
    assert sysctl(host, "a", "net.ipv6.conf.lo.disable_ipv6") == "1"
    assert sysctl(host, "a", "net.ipv6.conf.eth0.disable_ipv6") == "1"
    assert "inet6" not in host.in_sandbox("a", "ip -6 addr show dev eth0").stdout
    # The sandbox's 'default' is off now: eth1 inherits it when it is born, so nothing needs writing.
    joined = check_then_run(host, "cnm_endpoint", network="db", netns=sandbox)
    assert not any("disable_ipv6" in change for change in joined["changes"]), joined["changes"]
    assert sysctl(host, "a", "net.ipv6.conf.eth1.disable_ipv6") == "1"
    assert "inet6" not in host.in_sandbox("a", "ip -6 addr show dev eth1").stdout
    # An endpoint that turns 'default' back on: its own interface is born before that write, the next one after it
    # (with IPv6 on), so the next one needs its own write again.
    host.ok("cnm_endpoint", network="db", netns=sandbox, state="absent")
    host.ok("cnm_bridge", name="cache", subnet="172.35.0.0/24")
    both = check_then_run(
        host,
        "cnm_endpoint",
        netns=sandbox,
        endpoints=[dict(network="cache", sysctls={"net.ipv6.conf.default.disable_ipv6": 0}), dict(network="db")],
    )
    assert "option 'endpoints[0].sysctls': set net.ipv6.conf.default.disable_ipv6=0 in %s" % sandbox in both["changes"]
    assert [change for change in both["changes"] if ".eth" in change and "disable_ipv6" in change] == [
        "option 'endpoints[1].sysctls': set net.ipv6.conf.eth2.disable_ipv6=1 in %s" % sandbox
    ]
    assert sysctl(host, "a", "net.ipv6.conf.eth1.disable_ipv6") == "1"  # cache's
    assert sysctl(host, "a", "net.ipv6.conf.eth2.disable_ipv6") == "1"  # db's
    assert pings(sandbox, "172.31.0.1") and pings(sandbox, "172.35.0.1")


def test_a_new_sandbox_listed_with_an_ipv4_and_a_dual_stack_network_gets_docker_sysctls_for_ipv6(host):
    host.ok("cnm_bridge", **WEB)
    host.ok("cnm_bridge", name="v6", subnet="172.34.0.0/24", ipv6_subnet="fd00:34::/64")
    sandbox = host.sandbox("a")
    # The list tells the planner before the first interface that the sandbox will have IPv6: 'all' and 'default'
    # stay on (Docker turns them off only in a sandbox without IPv6), lo keeps ::1, and only web's interface is off.
    both = check_then_run(host, "cnm_endpoint", netns=sandbox, endpoints=[dict(network="web"), dict(network="v6")])
    assert not any("conf.all." in change or "conf.default." in change for change in both["changes"]), both["changes"]
    assert [sysctl(host, "a", "net.ipv6.conf.%s.disable_ipv6" % name) for name in ("all", "default", "lo")] == [
        "0",
        "0",
        "0",
    ]
    assert sysctl(host, "a", "net.ipv6.conf.eth0.disable_ipv6") == "1"
    assert sysctl(host, "a", "net.ipv6.conf.eth1.disable_ipv6") == "0"
    assert pings(sandbox, "fd00:34::1") and pings(sandbox, "172.30.0.1")


def test_network_none_sandbox_gets_the_sysctls_but_the_host_namespace_never(host):
    host.ok("cnm_endpoint", network="none", netns=host.sandbox("n"))
    assert sysctl(host, "n", "net.ipv4.ip_unprivileged_port_start") == "0"
    host.ok("cnm_bridge", **WEB)
    before = host.sh("sysctl -n net.ipv4.ip_unprivileged_port_start net.ipv6.conf.all.disable_ipv6").stdout
    # An endpoint in the host's own namespace (netns_path of the host): no sandbox sysctls there.
    result = host.ok("cnm_endpoint", network="web", netns_path="/run/netns/%s" % host.name, ifname="inner0")
    assert not any("sandbox default" in change for change in result["changes"])
    assert host.sh("sysctl -n net.ipv4.ip_unprivileged_port_start net.ipv6.conf.all.disable_ipv6").stdout == before
    host.ok("cnm_endpoint", network="web", netns_path="/run/netns/%s" % host.name, state="absent")


def test_bad_gw_priority_names_the_option(host):
    host.ok("cnm_bridge", **WEB)
    before = host.snapshot()
    for value, words in (("high", "gw_priority"), (2**63, "out of range"), (True, "not an integer")):
        failed = host.module("cnm_endpoint", network="web", netns=host.sandbox("a"), gw_priority=value)
        assert failed["failed"] and "gw_priority" in failed["msg"] and words in failed["msg"], failed
        failed = host.module(
            "cnm_endpoint", netns=host.sandbox("a"), endpoints=[dict(network="web", gw_priority=value)]
        )
        assert failed["failed"] and "gw_priority" in failed["msg"], failed
    failed = host.module("cnm_endpoint", network="none", netns=host.sandbox("a"), gw_priority=4)
    assert failed["failed"] and "option 'gw_priority'" in failed["msg"]
    assert host.snapshot() == before


def test_ipv6_only_network_gives_no_ipv4(host):
    """Docker 28's --ipv4=false: a bridge with only ipv6_subnet; endpoints get IPv6 only, the default route too."""
    created = check_then_run(host, "cnm_bridge", name="six", ipv6_subnet="fd00:36::/64")
    assert created["network"]["subnet"] is None and created["network"]["gateway"] is None
    bridge = host.store()["networks"]["six"]["bridge_name"]
    assert host.sh("ip -4 -o addr show dev %s" % bridge).stdout == ""
    assert "fd00:36::1/64" in host.sh("ip -6 -o addr show dev %s" % bridge).stdout
    host_addresses(host)
    result = check_then_run(
        host, "cnm_endpoint", network="six", endpoints=[dict(netns=host.sandbox("a")), dict(netns=host.sandbox("b"))]
    )
    a, b = result["endpoints"]
    assert (a["ipv4_address"], a["ipv6_address"], b["ipv6_address"]) == (None, "fd00:36::2", "fd00:36::3")
    assert a["mac_address"] != b["mac_address"] and a["mac_address"].startswith("02:42:")
    assert host.in_sandbox("a", "ip -4 -o addr show dev eth0").stdout == ""
    assert defaults(host, "a", 4) == [] and defaults(host, "a", 6) == [("fd00:36::1", "eth0")]
    assert (
        sysctl(host, "a", "net.ipv6.conf.lo.disable_ipv6") == "0"
        and sysctl(host, "a", "net.ipv6.conf.eth0.disable_ipv6") == "0"
    )
    assert pings(host.sandbox("a"), "fd00:36::3") and pings(host.sandbox("a"), HOST_V6)
    assert host.ok("cnm_info")["drift"] == []  # cnm_info sees the IPv6-only bridge and endpoints as they should be
    refused = host.module("cnm_endpoint", network="six", netns=host.sandbox("c"), ipv4_address="172.30.0.9")
    assert refused["failed"] and "option 'ipv4_address'" in refused["msg"] and "IPv6-only" in refused["msg"]
    for bad, option in ((dict(gateway="172.30.0.1"), "gateway"), (dict(ip_range="172.30.0.0/28"), "ip_range")):
        failed = host.module("cnm_bridge", name="six2", ipv6_subnet="fd00:37::/64", **bad)
        assert failed["failed"] and "option '%s'" % option in failed["msg"] and "needs subnet" in failed["msg"], failed
    neither = host.module("cnm_bridge", name="none6")
    assert neither["failed"] and "subnet" in neither["msg"]
    host.ok("cnm_bridge", name="six", state="absent", force=True)
    assert "six" not in host.store().get("networks", {})


def test_a_new_address_keeps_the_default_route_and_the_endpoints_routes(host):
    """The kernel drops every IPv4 route of an interface that loses its last IPv4 address: a rerun with another
    ipv4_address adds the sandbox's default route and the endpoint's routes again, in the same run."""
    host.ok("cnm_bridge", **WEB)
    host_addresses(host)
    routes = [dict(dst="198.51.100.0/24", gateway="172.30.0.1")]
    host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"), ipv4_address="172.30.0.10", routes=routes)
    moved = check_then_run(
        host, "cnm_endpoint", network="web", netns=host.sandbox("a"), ipv4_address="172.30.0.20", routes=routes
    )
    assert moved["changed"] and moved["endpoint"]["ipv4_address"] == "172.30.0.20"
    assert defaults(host, "a") == [("172.30.0.1", "eth0")]
    listed = json.loads(host.in_sandbox("a", "ip -4 -j route show 198.51.100.0/24").stdout)
    assert [(r["dst"], r.get("gateway")) for r in listed] == [("198.51.100.0/24", "172.30.0.1")]
    assert pings(host.sandbox("a"), HOST_V4)  # a host-only address: reachable through the default route alone
    again = host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"), ipv4_address="172.30.0.20", routes=routes)
    assert again["changed"] is False
