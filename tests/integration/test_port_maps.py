"""Published ports at constant cost, on the real kernel: a few DNAT rules look the ports up in nft maps.

The world of conftest's ``world`` (host 203.0.113.1, LAN namespace 203.0.113.2), extended with IPv6 on the
uplink for the IPv6 cases. Servers are dual-stack TCP servers in the endpoints' sandboxes; clients are
test_ports' ``ask`` (a plain TCP connect, IPv4 or IPv6).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import sh
from test_ports import HOST, ask, wait_answer

HOST6, LAN6 = "2001:db8:113::1", "2001:db8:113::2"
SERVE6 = (
    "import socket,sys\nport=int(sys.argv[1]);name=sys.argv[2].encode()\n"
    "s=socket.socket(socket.AF_INET6,socket.SOCK_STREAM);s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)\n"
    "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('::',port));s.listen(64)\n"
    "while True:\n    c,a=s.accept();c.sendall(name+b' '+a[0].encode());c.close()\n"
)


@pytest.fixture
def dual_servers():
    """TCP servers on both families that answer their name and the source address they saw."""
    started = []

    def serve(netns: str, port: int, name: str) -> None:
        argv = ["nsenter", "--net=/run/netns/%s" % netns, "--", sys.executable, "-c", SERVE6, str(port), name]
        started.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    yield serve
    for proc in started:
        proc.kill()
        proc.wait()


def make_web(host, dual_servers, **ipv6) -> object:
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24", **ipv6)
    host.ok("cnm_endpoint", network="web", endpoints=[dict(netns=host.sandbox("a")), dict(netns=host.sandbox("b"))])
    dual_servers(host.sandbox("a"), 80, "web-a")
    return host


@pytest.fixture
def web(host, world, dual_servers):
    """An IPv4 network: its ports render the IPv4 maps only."""
    return make_web(host, dual_servers)


def listing(host) -> list:
    return json.loads(host.sh("nft -j list table inet cnm").stdout)["nftables"]


def nat_rules(host) -> list:
    """(chain, handle, comment) of the rules of our DNAT chains: what every new connection walks."""
    return [
        (item["rule"]["chain"], item["rule"]["handle"], item["rule"].get("comment"))
        for item in listing(host)
        if "rule" in item and item["rule"]["chain"] in ("prerouting", "output")
    ]


def map_sizes(host) -> dict:
    return {item["map"]["name"]: len(item["map"].get("elem", [])) for item in listing(host) if "map" in item}


def only(answer: str) -> str:
    return answer.split(" ")[0]


def test_the_dnat_rules_are_the_same_for_one_and_for_three_hundred_ports(web, world):
    args = dict(network="web", netns=web.sandbox("a"))
    web.ok("cnm_port_publish", ports=["10000:80"], **args)
    assert only(wait_answer(world[0], "tcp", HOST, 10000, "web-a")) == "web-a"
    one = nat_rules(web)
    assert [comment.split(" #")[0] for _chain, _handle, comment in one] == ["cnm ports dnat ipv4 any address"] * 2
    many = ["%d:80" % port for port in range(10000, 10300)]
    web.ok("cnm_port_publish", ports=many, **args)
    assert nat_rules(web) == one  # the same rules, not even rewritten (same handles): only map elements were added
    assert map_sizes(web) == {"ports_any4_addr": 300, "ports_any4_port": 300}
    assert only(ask(world[0], "tcp", HOST, 10299)) == "web-a" and only(ask(world[0], "tcp", HOST, 10150)) == "web-a"
    assert ask(world[0], "tcp", HOST, 10300) == "unreachable"
    assert web.module("cnm_port_publish", ports=many, **args)["changed"] is False
    more = many + ["10300:80"]
    predicted = web.module("cnm_port_publish", check=True, ports=more, **args)
    assert map_sizes(web)["ports_any4_addr"] == 300
    real = web.ok("cnm_port_publish", ports=more, **args)
    assert (predicted["changed"], predicted["diff"]) == (True, real["diff"])
    assert "element ports_any4_addr tcp . 10300 : 172.30.0.2" in json.dumps(real["diff"])
    assert nat_rules(web) == one and only(ask(world[0], "tcp", HOST, 10300)) == "web-a"
    web.ok("cnm_port_publish", state="absent", **args)
    assert map_sizes(web) == {} and nat_rules(web) == []
    assert ask(world[0], "tcp", HOST, 10000) == "unreachable"


def test_a_map_element_deleted_by_hand_is_drift_and_the_next_run_puts_it_back(web, world):
    args = dict(network="web", netns=web.sandbox("a"), ports=["4000:80", "4001:80"])
    web.ok("cnm_port_publish", **args)
    assert only(wait_answer(world[0], "tcp", HOST, 4001, "web-a")) == "web-a"
    web.sh("nft delete element inet cnm ports_any4_addr '{ tcp . 4000 }'")
    assert ask(world[0], "tcp", HOST, 4000) == "unreachable" and only(ask(world[0], "tcp", HOST, 4001)) == "web-a"
    drift = web.ok("cnm_info", gather=["ports"])["drift"]
    assert [(item["kind"], item["object"], item["expected"]) for item in drift] == [
        ("port_rules_missing", "port tcp/*:4000", ["element ports_any4_addr tcp . 4000 : 172.30.0.2"])
    ]
    assert web.ok("cnm_port_publish", **args)["changed"] is True
    assert only(ask(world[0], "tcp", HOST, 4000)) == "web-a" and web.ok("cnm_info", gather=["ports"])["drift"] == []


def test_the_old_per_port_rule_shape_is_rewritten_once(web, world):
    args = dict(network="web", netns=web.sandbox("a"), ports=["4000:80"])
    web.ok("cnm_port_publish", **args)
    # What an older cnm.network left in the chain: one DNAT rule per published port.
    web.sh(
        "nft add rule inet cnm prerouting meta nfproto ipv4 fib daddr type local meta l4proto tcp th dport 4000 dnat "
        "ip to 172.30.0.2:80"
        " comment '\"cnm port web tcp/*:4000 #0badc0de\"'"
    )
    assert web.ok("cnm_port_publish", **args)["changed"] is True
    assert "0badc0de" not in web.ruleset()
    assert web.module("cnm_port_publish", **args)["changed"] is False
    assert only(wait_answer(world[0], "tcp", HOST, 4000, "web-a")) == "web-a"


@pytest.fixture
def web6(host, world, dual_servers):
    """A dual-stack network and IPv6 on the uplink (the module turns IPv6 forwarding on)."""
    lan = world[0]
    web = make_web(host, dual_servers, ipv6_subnet="fd00:30::/64")
    web.sh("ip addr add %s/64 dev uplink nodad" % HOST6)
    sh("ip addr add %s/64 dev eth0 nodad" % LAN6, netns=lan)
    return web


def published_v6(host, ports: list) -> dict:
    """Publish ``ports`` of sandbox a; skipped while cnm_port_publish does not record the endpoint's IPv6 address."""
    host.ok("cnm_port_publish", network="web", netns=host.sandbox("a"), ports=["4000:80"])
    if not any(entry.get("container_ipv6") for entry in host.store().get("ports", {}).values()):
        pytest.skip(
            "cnm_port_publish does not record container_ipv6 yet: IPv6 DNAT is covered by tests/unit/test_firewall.py"
        )
    return host.ok("cnm_port_publish", network="web", netns=host.sandbox("a"), ports=ports)


def test_ipv6_published_ports_from_the_lan_the_host_and_a_hairpin(web6, world):
    lan = world[0]
    published_v6(web6, ["4000:80", "[::]:4001:80", "0.0.0.0:4002:80", "[%s]:4003:80" % HOST6])
    assert only(wait_answer(lan, "tcp", HOST6, 4000, "web-a")) == "web-a"  # a plain binding: both families (Docker 27+)
    assert only(ask(lan, "tcp", HOST, 4000)) == "web-a"
    assert (
        only(ask(lan, "tcp", HOST6, 4001)) == "web-a" and ask(lan, "tcp", HOST, 4001) == "unreachable"
    )  # [::] is IPv6 only
    assert (
        ask(lan, "tcp", HOST6, 4002) == "unreachable" and only(ask(lan, "tcp", HOST, 4002)) == "web-a"
    )  # 0.0.0.0 is IPv4 only
    assert only(ask(lan, "tcp", HOST6, 4003)) == "web-a"
    assert ask(lan, "tcp", HOST, 4003) == "unreachable"
    assert ask(lan, "tcp", HOST6, 4004) == "unreachable"
    assert ask(web6.name, "tcp", HOST6, 4000).split(" ") == ["web-a", HOST6]  # from the host itself, its own source
    assert (
        ask(web6.name, "tcp", "::1", 4000) == "unreachable"
    )  # IPv6 loopback is not forwarded (Docker's proxy does it)
    hairpin = ask(web6.sandbox("b"), "tcp", HOST6, 4000).split(" ")
    assert hairpin == ["web-a", "fd00:30::1"]  # the hairpin is masqueraded to the gateway, so the answer comes back
    assert sorted(name for name, size in map_sizes(web6).items() if size) == [
        "ports_any4_addr",
        "ports_any4_port",
        "ports_any6_addr",
        "ports_any6_port",
        "ports_host6_addr",
        "ports_host6_port",
    ]
    assert (
        web6.module(
            "cnm_port_publish",
            network="web",
            netns=web6.sandbox("a"),
            ports=["4000:80", "[::]:4001:80", "0.0.0.0:4002:80", "[%s]:4003:80" % HOST6],
        )["changed"]
        is False
    )


def test_unpublishing_an_ipv6_port_flushes_its_ipv6_conntrack_entries(web6, world):
    published_v6(web6, ["4000:80"])
    assert only(wait_answer(world[0], "tcp", HOST6, 4000, "web-a")) == "web-a"
    assert "dport=4000" in web6.sh("conntrack -L -f ipv6 -p tcp --orig-port-dst 4000 2>/dev/null").stdout
    web6.ok("cnm_port_publish", network="web", netns=web6.sandbox("a"), state="absent")
    assert "dport=4000" not in web6.sh("conntrack -L -f ipv6 -p tcp --orig-port-dst 4000 2>/dev/null").stdout
    assert map_sizes(web6) == {}
