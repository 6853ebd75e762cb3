"""What reaches a container from outside its network, on the real kernel, IPv4 and IPv6 (issue 10, items 1-3).

Docker's rule, which each test states next to its assertions: from any interface that is not the
network's bridge, only published ports (DNAT'd) and replies reach a container; a machine that routes
the subnet through the host gets no further (``trusted_sources`` opens that way on purpose). An
internal network gets out through nothing, not even another network's published port.

The world is conftest's ``world`` (host uplink 203.0.113.1, LAN 203.0.113.2, internet 198.51.100.2
behind the LAN) plus IPv6 on the same links (host 2001:db8:ff::1, LAN 2001:db8:ff::2, internet
2001:db8:fe::2). Servers in the sandboxes answer every connection with the peer address they saw.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from conftest import INTERNET, LAN, pings, sh

HOST, HOST6, LAN6, INTERNET6 = "203.0.113.1", "2001:db8:ff::1", "2001:db8:ff::2", "2001:db8:fe::2"
SERVE = (
    "import socket,sys\ns=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0);s.bind(('::',int(sys.argv[1])));s.listen(16)\n"
    "while True:\n    c,a=s.accept();c.sendall(a[0].replace('::ffff:','').encode());c.close()\n"
)
# 3 s: room for one SYN retransmission (1 s); a first SYN to a fresh IPv6 neighbour is sometimes lost
ASK = (
    "import socket,sys\ntry:\n    "
    "print(socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=3).recv(100).decode())\n"
    "except OSError:\n    print('unreachable')\n"
)


@pytest.fixture
def servers():
    """serve(netns, port): a server that answers with the peer address, listening once the call returns."""
    started = []

    def serve(netns: str, port: int) -> None:
        argv = ["nsenter", "--net=/run/netns/%s" % netns, "--", sys.executable, "-c", SERVE, str(port)]
        started.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        while not sh("ss -Hltn sport = :%d" % port, netns=netns).stdout.strip():
            assert time.monotonic() < deadline, "server on port %d in %s did not start" % (port, netns)
            time.sleep(0.05)

    yield serve
    for proc in started:
        proc.kill()
        proc.wait()


def seen(netns: str, address: str, port: int) -> str:
    """Connect from netns; the peer address the server saw, or 'unreachable'."""
    argv = ["nsenter", "--net=/run/netns/%s" % netns, "--", sys.executable, "-c", ASK, address, str(port)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False).stdout.strip()


@pytest.fixture
def world6(host, world):
    """The world of conftest with IPv6 on the same links; the LAN routes IPv6 (in its own namespace only)."""
    lan, net = world
    host.sh("ip -6 addr add %s/64 dev uplink nodad && ip -6 route add default via %s" % (HOST6, LAN6))
    sh(
        "ip -6 addr add %s/64 dev eth0 nodad && ip -6 addr add 2001:db8:fe::1/64 dev wan nodad && sysctl -qw "
        "net.ipv6.conf.all.forwarding=1" % LAN6,
        netns=lan,
    )
    sh("ip -6 addr add %s/64 dev eth0 nodad && ip -6 route add default via 2001:db8:fe::1" % INTERNET6, netns=net)
    return lan, net


def attach(host, network: str, *shorts: str) -> list:
    result = host.ok("cnm_endpoint", network=network, endpoints=[dict(netns=host.sandbox(s)) for s in shorts])
    return [(e["ipv4_address"], e.get("ipv6_address")) for e in result["endpoints"]]


def route_on_lan(world, *subnets: str) -> None:
    for subnet in subnets:
        sh("ip route add %s via %s" % (subnet, HOST6 if ":" in subnet else HOST), netns=world[0])


def test_the_lan_reaches_published_ports_and_replies_but_not_container_addresses(host, world, servers):
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    host.ok("cnm_bridge", name="cold", subnet="172.30.1.0/24", icc=False)
    a = attach(host, "web", "a")[0][0]
    c = attach(host, "cold", "c")[0][0]
    route_on_lan(
        world, "172.30.0.0/24", "172.30.1.0/24"
    )  # a router that knows the subnets: the case Docker protects against
    for short in ("a", "c"):
        servers(host.sandbox(short), 80)
        servers(host.sandbox(short), 81)
    servers(world[0], 9000)
    host.ok("cnm_port_publish", network="web", netns=host.sandbox("a"), ports=["4000:80"])
    matrix = {
        "lan->published": seen(world[0], HOST, 4000),  # Docker: reachable, the container sees the client
        "lan->a:80": seen(world[0], a, 80),  # Docker: dropped (the port is published, the address is not a way in)
        "lan->a:81": seen(world[0], a, 81),  # Docker: dropped (unpublished)
        "lan->c:80 (icc off)": seen(world[0], c, 80),  # Docker: dropped
        "internet->a:81": seen(world[1], a, 81),  # Docker: dropped
        "a->lan": seen(host.sandbox("a"), LAN, 9000),  # Docker: out, masqueraded, the replies come back
        "host->a:81": seen(host.name, a, 81),  # Docker: the host itself reaches its containers
        "host->c:81": seen(host.name, c, 81),
    }
    assert matrix == {
        "lan->published": LAN,
        "lan->a:80": "unreachable",
        "lan->a:81": "unreachable",
        "lan->c:80 (icc off)": "unreachable",
        "internet->a:81": "unreachable",
        "a->lan": HOST,
        "host->a:81": "172.30.0.1",
        "host->c:81": "172.30.1.1",
    }
    assert not pings(world[0], a) and pings(host.sandbox("a"), LAN)


def test_trusted_sources_open_a_routed_network_to_them_only(host, world, servers):
    host.ok(
        "cnm_bridge",
        name="web",
        subnet="172.30.0.0/24",
        masquerade=False,
        trusted_sources=["203.0.113.0/24", "10.0.0.0/8"],
    )
    host.ok(
        "cnm_bridge", name="other", subnet="10.62.0.0/24"
    )  # inside a trusted CIDR, but a cnm network: isolation wins
    a = attach(host, "web", "a")[0][0]
    attach(host, "other", "o")
    route_on_lan(world, "172.30.0.0/24")
    servers(host.sandbox("a"), 81)
    assert seen(world[0], a, 81) == LAN  # trusted: a direct connection, no NAT either way (Docker's routed mode)
    assert seen(world[1], a, 81) == "unreachable"  # the internet is not listed
    assert seen(host.sandbox("o"), a, 81) == "unreachable"  # other cnm networks stay isolated
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24", masquerade=False, trusted_sources=["198.51.100.0/24"])
    assert (seen(world[0], a, 81), seen(world[1], a, 81)) == ("unreachable", INTERNET)
    assert (
        host.module(
            "cnm_bridge", name="web", subnet="172.30.0.0/24", masquerade=False, trusted_sources=["198.51.100.0/24"]
        )["changed"]
        is False
    )
    host.ok(
        "cnm_bridge", name="web", subnet="172.30.0.0/24", masquerade=False, trusted_sources=[]
    )  # back to none (left out, they would be kept): nothing routed in
    assert seen(world[1], a, 81) == "unreachable"


def test_an_internal_network_gets_out_through_no_published_port(host, world, servers):
    host.ok("cnm_bridge", name="pub", subnet="10.61.0.0/24")
    host.ok("cnm_bridge", name="peer", subnet="10.63.0.0/24")
    host.ok("cnm_bridge", name="vault", subnet="172.31.9.0/24", internal=True)
    attach(host, "pub", "p")
    attach(host, "peer", "q")
    attach(host, "vault", "v")
    servers(host.sandbox("p"), 80)
    servers(host.name, 2222)  # a service of the host itself
    host.ok("cnm_port_publish", network="pub", netns=host.sandbox("p"), ports=["4000:80"])
    host.in_sandbox("v", "ip route add default via 172.31.9.1")  # even with a route by hand
    matrix = {
        "vault->gateway:published": seen(host.sandbox("v"), "172.31.9.1", 4000),  # Docker: blocked (both proxy modes)
        "vault->uplink:published": seen(host.sandbox("v"), HOST, 4000),  # Docker: blocked
        "vault->host service": seen(host.sandbox("v"), "172.31.9.1", 2222),  # Docker: the host answers its own services
        "peer->gateway:published": seen(host.sandbox("q"), "10.63.0.1", 4000),  # Docker: reachable from other networks
        "lan->published": seen(world[0], HOST, 4000),
    }
    assert matrix == {
        "vault->gateway:published": "unreachable",
        "vault->uplink:published": "unreachable",
        "vault->host service": "172.31.9.2",
        "peer->gateway:published": "10.61.0.1",
        "lan->published": LAN,
    }  # peer's masquerade (Docker's too)
    assert not pings(host.sandbox("v"), LAN)


def test_ipv6_goes_out_masqueraded_or_routed_and_comes_in_only_when_trusted(host, world6, servers):
    assert host.sh("cat /proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == "0"
    web = dict(name="web", subnet="172.30.0.0/24", ipv6_subnet="2001:db8:30::/64")
    host.ok("cnm_bridge", **web)
    assert host.sh("cat /proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == "1"
    ((a4, a6),) = attach(host, "web", "a")
    servers(world6[0], 9000)
    servers(world6[1], 9000)
    servers(host.sandbox("a"), 81)
    assert seen(host.sandbox("a"), LAN6, 9000) == HOST6  # masquerade covers IPv6 too (Docker 27+ with ip6tables: NAT66)
    assert seen(host.sandbox("a"), INTERNET6, 9000) == HOST6
    host.ok("cnm_bridge", ipv6_masquerade=False, **web)  # a routed IPv6 subnet behind IPv4 NAT
    route_on_lan(world6, "2001:db8:30::/64")
    assert seen(host.sandbox("a"), LAN6, 9000) == a6  # the LAN sees the container's own address
    assert seen(host.sandbox("a"), LAN, 9000) == HOST  # IPv4 still masqueraded
    assert seen(world6[0], a6, 81) == "unreachable"  # Docker: new connections from outside dropped, IPv6 as IPv4
    assert not pings(world6[0], a6, "-6")
    host.ok("cnm_bridge", ipv6_masquerade=False, trusted_sources=["2001:db8:ff::/64"], **web)
    assert seen(world6[0], a6, 81) == LAN6
    assert seen(world6[1], a6, 81) == "unreachable"
    host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"), state="absent")
    host.ok("cnm_bridge", name="web", state="absent")
    assert (
        host.sh("cat /proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() == "0"
    )  # restored with the last IPv6 network
    assert "table inet cnm" not in host.ruleset()


def test_icc_isolation_and_internal_hold_for_ipv6(host, world6):
    host.ok("cnm_bridge", name="cold", subnet="10.61.0.0/24", ipv6_subnet="2001:db8:61::/64", icc=False)
    host.ok("cnm_bridge", name="warm", subnet="10.62.0.0/24", ipv6_subnet="2001:db8:62::/64")
    host.ok("cnm_bridge", name="vault", subnet="10.63.0.0/24", ipv6_subnet="2001:db8:63::/64", internal=True)
    a6, b6 = (v6 for _v4, v6 in attach(host, "cold", "a", "b"))
    w6, x6 = (v6 for _v4, v6 in attach(host, "warm", "w", "x"))
    v6 = attach(host, "vault", "v")[0][1]
    route_on_lan(world6, "2001:db8:63::/64")
    host.in_sandbox("v", "ip -6 route add default via 2001:db8:63::1")
    matrix = {
        "icc off a->b": pings(host.sandbox("a"), b6, "-6"),  # Docker: blocked
        "icc off a->gateway": pings(host.sandbox("a"), "2001:db8:61::1", "-6"),  # Docker: allowed
        "same network w->x": pings(host.sandbox("w"), x6, "-6"),  # Docker: allowed
        "cold->warm": pings(host.sandbox("a"), w6, "-6"),  # Docker: isolated
        "warm->cold": pings(host.sandbox("w"), a6, "-6"),
        "warm->lan": pings(host.sandbox("w"), LAN6, "-6"),  # Docker: out
        "vault->lan": pings(host.sandbox("v"), LAN6, "-6"),  # Docker: internal, nothing out
        "lan->vault": pings(world6[0], v6, "-6"),  # nothing in
        "vault->warm": pings(host.sandbox("v"), w6, "-6"),
    }
    assert matrix == {
        "icc off a->b": False,
        "icc off a->gateway": True,
        "same network w->x": True,
        "cold->warm": False,
        "warm->cold": False,
        "warm->lan": True,
        "vault->lan": False,
        "lan->vault": False,
        "vault->warm": False,
    }
    # icc: false also holds when an endpoint routes to its neighbour through the gateway (Docker: -i br -o br DROP)
    host.in_sandbox("a", "ip -6 route add %s/128 via 2001:db8:61::1" % b6)
    assert not pings(host.sandbox("a"), b6, "-6")
    assert pings(host.sandbox("w"), x6, "-6")


def test_check_mode_predicts_the_trusted_and_ipv6_rules_and_changes_nothing(host):
    web = dict(name="web", subnet="172.30.0.0/24", ipv6_subnet="2001:db8:30::/64", masquerade=False)
    host.ok("cnm_bridge", **web)
    before = host.snapshot()
    asked = dict(web, trusted_sources=["192.0.2.0/24", "2001:db8:1::/48"], ipv6_masquerade=True)
    predicted = host.module("cnm_bridge", check=True, **asked)
    assert host.snapshot() == before
    after = predicted["diff"]["after"]["firewall"]
    assert [c.split(" #")[0] for c in after["inet forward"] if "trusted" in c] == [
        "cnm network web trusted ip",
        "cnm network web trusted ip6",
    ]
    assert [c.split(" #")[0] for c in after["inet postrouting"]] == ["cnm network web ipv6 masquerade"]
    real = host.ok("cnm_bridge", **asked)
    assert (real["changed"], real["changes"], real["diff"]) == (
        predicted["changed"],
        predicted["changes"],
        predicted["diff"],
    )
    assert (
        real["network"]["trusted_sources"] == ["192.0.2.0/24", "2001:db8:1::/48"]
        and real["network"]["ipv6_masquerade"] is True
    )
    assert host.module("cnm_bridge", **asked)["changed"] is False


def test_trusted_sources_pass_a_docker_like_forward_drop_and_the_passes_go_with_them(host, world6, servers):
    host.sh(
        "iptables -w -N DOCKER-USER && iptables -w -A DOCKER-USER -j RETURN && iptables -w -P FORWARD DROP && iptables "
        "-w -A FORWARD -j DOCKER-USER"
        " && ip6tables -w -P FORWARD DROP"
    )
    docker_rules = (host.sh("iptables -w -S").stdout, host.sh("ip6tables -w -S").stdout)
    web = dict(name="web", subnet="172.30.0.0/24", ipv6_subnet="2001:db8:30::/64", masquerade=False)
    host.ok("cnm_bridge", trusted_sources=["203.0.113.0/24", "2001:db8:ff::/64"], **web)
    ((a4, a6),) = attach(host, "web", "a")
    route_on_lan(world6, "172.30.0.0/24", "2001:db8:30::/64")
    servers(host.sandbox("a"), 81)
    assert (seen(world6[0], a4, 81), seen(world6[0], a6, 81)) == (
        LAN,
        LAN6,
    )  # through DOCKER-USER and ip6tables' FORWARD
    assert (seen(world6[1], a4, 81), seen(world6[1], a6, 81)) == (
        "unreachable",
        "unreachable",
    )  # our own drop still holds
    assert "cnm network web pass trusted 203.0.113.0/24" in host.sh("iptables -w -S DOCKER-USER").stdout
    assert "cnm network web pass trusted 2001:db8:ff::/64" in host.sh("ip6tables -w -S FORWARD").stdout
    host.ok("cnm_bridge", trusted_sources=[], **web)  # no trusted sources any more: their passes go, the others stay
    assert "trusted" not in host.sh("iptables -w -S DOCKER-USER").stdout + host.sh("ip6tables -w -S FORWARD").stdout
    assert seen(world6[0], a4, 81) == "unreachable"
    host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"), state="absent")
    host.ok("cnm_bridge", name="web", state="absent")
    assert (host.sh("iptables -w -S").stdout, host.sh("ip6tables -w -S").stdout) == docker_rules
