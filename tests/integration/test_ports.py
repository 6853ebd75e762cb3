"""Published ports (cnm_port_publish) on the real kernel, reached with real TCP and UDP traffic.

The world of conftest's ``world``: the host's uplink is 203.0.113.1 towards a LAN namespace (203.0.113.2)
and the internet behind it. Servers run inside the endpoints' sandboxes.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys

import pytest
from conftest import sh

HOST = "203.0.113.1"
# kind tcp/udp serves IPv4; tcp6/udp6 serve IPv4 and IPv6 (a [::] socket).
SERVE = (
    "import socket,sys\nkind=sys.argv[1];port=int(sys.argv[2]);name=sys.argv[3].encode()\n"
    "six=kind.endswith('6');kind=kind.rstrip('6')\n"
    "s=socket.socket(socket.AF_INET6 if six else socket.AF_INET,socket.SOCK_STREAM if kind=='tcp' else "
    "socket.SOCK_DGRAM)\n"
    "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('::' if six else '0.0.0.0',port))\n"
    "if kind=='tcp':\n    s.listen(8)\n    while True:\n        c,a=s.accept();c.sendall(name);c.close()\n"
    "else:\n    while True:\n        d,a=s.recvfrom(100);s.sendto(name,a)\n"
)
ASK = (
    "import socket,sys\nkind,addr,port=sys.argv[1],sys.argv[2],int(sys.argv[3])\n"
    "try:\n    if kind=='tcp':\n        print(socket.create_connection((addr,port),timeout=2).recv(100).decode())\n"
    "    else:\n        s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2);s.bind(('',int(sys.argv[4]) "
    "if len(sys.argv)>4 else 0))\n"
    "        s.sendto(b'hi',(addr,port));print(s.recvfrom(100)[0].decode())\n"
    "except OSError:\n    print('unreachable')\n"
)


@pytest.fixture
def servers():
    started = []

    def serve(netns: str, kind: str, port: int, name: str) -> None:
        argv = ["nsenter", "--net=/run/netns/%s" % netns, "--", sys.executable, "-c", SERVE, kind, str(port), name]
        started.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    yield serve
    for proc in started:
        proc.kill()
        proc.wait()


def ask(netns: str, kind: str, address: str, port: int, source_port: int = 0) -> str:
    argv = ["nsenter", "--net=/run/netns/%s" % netns, "--", sys.executable, "-c", ASK, kind, address, str(port)]
    if source_port:
        argv.append(str(source_port))
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False).stdout.strip()


def wait_answer(netns: str, kind: str, address: str, port: int, expected: str) -> str:
    answer = ""
    for _attempt in range(20):  # the server may still be starting
        answer = ask(netns, kind, address, port)
        if answer == expected:
            break
    return answer


@pytest.fixture
def web(host, world, servers):
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    host.ok("cnm_endpoint", network="web", endpoints=[dict(netns=host.sandbox("a")), dict(netns=host.sandbox("b"))])
    servers(host.sandbox("a"), "tcp", 80, "web-a")
    servers(host.sandbox("a"), "udp", 53, "dns-a")
    servers(host.sandbox("b"), "udp", 53, "dns-b")
    return host


def test_published_tcp_and_udp_ports_are_reachable_from_everywhere(web, world):
    result = web.ok("cnm_port_publish", network="web", netns=web.sandbox("a"), ports=["4000:80", "5353:53/udp"])
    assert result["published"][0]["ports"] == ["4000:80/tcp", "5353:53/udp"]
    lan = world[0]
    assert wait_answer(lan, "tcp", HOST, 4000, "web-a") == "web-a"  # another host
    assert ask(lan, "udp", HOST, 5353) == "dns-a"
    assert ask(web.name, "tcp", HOST, 4000) == "web-a"  # the host on its own address
    assert ask(web.name, "tcp", "127.0.0.1", 4000) == "web-a"  # the host on loopback
    assert ask(web.sandbox("b"), "tcp", HOST, 4000) == "web-a"  # hairpin from a container of the same network
    assert ask(web.sandbox("a"), "tcp", HOST, 4000) == "web-a"  # and from the container itself
    assert (
        web.module("cnm_port_publish", network="web", netns=web.sandbox("a"), ports=["4000:80", "5353:53/udp"])[
            "changed"
        ]
        is False
    )


def test_a_loopback_bound_port_is_not_reachable_from_the_lan(web, world):
    web.ok("cnm_port_publish", network="web", netns=web.sandbox("a"), ports=["127.0.0.1:4001:80"])
    assert wait_answer(web.name, "tcp", "127.0.0.1", 4001, "web-a") == "web-a"
    assert ask(web.name, "tcp", HOST, 4001) == "unreachable"
    lan = world[0]
    # The LAN host routes 127.0.0.1 to us, the attack Docker's raw-table drop exists for.
    sh("ip route del local 127.0.0.0/8 dev lo table local && ip route add 127.0.0.1/32 via %s" % HOST, netns=lan)
    assert ask(lan, "tcp", "127.0.0.1", 4001) == "unreachable"
    assert web.sh("cat /proc/sys/net/ipv4/conf/br-web/route_localnet").stdout.strip() == "1"
    assert web.sh("cat /proc/sys/net/ipv4/conf/uplink/route_localnet").stdout.strip() == "0"


def test_a_port_bound_to_one_host_address_is_not_reachable_on_another(web, world):
    web.sh("ip addr add 203.0.113.10/24 dev uplink")
    web.ok(
        "cnm_port_publish",
        network="web",
        netns=web.sandbox("a"),
        ports=[dict(host_ip="203.0.113.10", host_port=4002, container_port=80)],
    )
    assert wait_answer(world[0], "tcp", "203.0.113.10", 4002, "web-a") == "web-a"
    assert ask(world[0], "tcp", HOST, 4002) == "unreachable"


def test_a_taken_host_port_is_refused_naming_its_owner(web, servers):
    web.ok("cnm_port_publish", network="web", netns=web.sandbox("a"), ports=["4000:80"])
    taken = web.module("cnm_port_publish", network="web", netns=web.sandbox("b"), ports=["4000:8080"])
    assert taken["failed"] and "netns:%s" % web.sandbox("a") in taken["msg"] and "option 'ports[0]'" in taken["msg"]
    servers(web.name, "tcp", 4005, "host-process")
    wait_answer(web.name, "tcp", "127.0.0.1", 4005, "host-process")
    bound = web.module("cnm_port_publish", network="web", netns=web.sandbox("b"), ports=["4005:80"])
    assert bound["failed"] and "bound by process" in bound["msg"] and "python" in bound["msg"]


def test_check_mode_idempotence_and_absent_leaves_only_what_was_there(web):
    before = web.snapshot()
    args = dict(network="web", netns=web.sandbox("a"), ports=["4000:80", "127.0.0.1:4001:80", "5353:53/udp"])
    predicted = web.module("cnm_port_publish", check=True, **args)
    assert web.snapshot() == before
    real = web.ok("cnm_port_publish", **args)
    assert (predicted["changed"], predicted["changes"], predicted["diff"]) == (
        real["changed"],
        real["changes"],
        real["diff"],
    )
    rules = [
        item["rule"]["comment"]
        for item in json.loads(web.sh("nft -j list ruleset").stdout)["nftables"]
        if "rule" in item
    ]
    assert "tcp . 4000 : 172.30.0.2" in web.sh("nft list map inet cnm ports_any4_addr").stdout and any(
        "loopback guard" in c for c in rules
    )
    assert web.module("cnm_port_publish", **args)["changed"] is False
    removed = web.ok("cnm_port_publish", network="web", netns=web.sandbox("a"), state="absent")
    assert sorted(removed["published"][0]["removed"]) == ["tcp/*:4000", "tcp/127.0.0.1:4001", "udp/*:5353"]
    assert web.snapshot() == before  # no rule, no sysctl (route_localnet restored), nothing in the store


def test_absent_leaves_no_conntrack_entry_of_its_own(web):
    web.ok("cnm_port_publish", network="web", netns=web.sandbox("a"), ports=["4000:80"])
    assert wait_answer(web.name, "tcp", "127.0.0.1", 4000, "web-a") == "web-a"
    assert "dport=4000" in web.sh("conntrack -L -p tcp --orig-port-dst 4000 2>/dev/null").stdout
    web.ok("cnm_port_publish", network="web", netns=web.sandbox("a"), state="absent")
    assert "dport=4000" not in web.sh("conntrack -L -p tcp --orig-port-dst 4000 2>/dev/null").stdout


def test_detaching_the_endpoint_removes_its_ports_in_the_same_run(web, world):
    web.ok("cnm_port_publish", network="web", netns=web.sandbox("a"), ports=["4000:80"])
    web.ok("cnm_endpoint", network="web", netns=web.sandbox("a"), state="absent")
    assert "4000" not in web.ruleset() and "ports" not in web.store()


def test_a_changed_udp_mapping_takes_effect_at_once(web, world):
    web.ok("cnm_port_publish", network="web", netns=web.sandbox("a"), ports=["5353:53/udp"])
    lan = world[0]
    assert ask(lan, "udp", HOST, 5353, source_port=40000) == "dns-a"
    web.ok("cnm_port_publish", network="web", netns=web.sandbox("a"), state="absent")
    web.ok("cnm_port_publish", network="web", netns=web.sandbox("b"), ports=["5353:53/udp"])
    # Same source port, so without the flush the old conntrack entry would still lead to a.
    assert ask(lan, "udp", HOST, 5353, source_port=40000) == "dns-b"


def test_one_port_on_each_of_many_endpoints_in_one_task(host, world):
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    names = ["e%d" % i for i in range(20)]
    host.ok("cnm_endpoint", network="web", endpoints=[dict(netns=host.sandbox(n)) for n in names])
    result = host.ok(
        "cnm_port_publish",
        network="web",
        endpoints=[dict(netns=host.sandbox(n), ports=["%d:80" % (10000 + i)]) for i, n in enumerate(names)],
    )
    assert len(result["published"]) == 20 and result["changed"]
    again = [dict(netns=host.sandbox(n), ports=["%d:80" % (10000 + i)]) for i, n in enumerate(names)]
    assert host.module("cnm_port_publish", network="web", endpoints=again)["changed"] is False


def test_unpublishing_after_the_endpoint_is_gone_is_no_error(web):
    web.ok("cnm_port_publish", network="web", netns=web.sandbox("a"), ports=["4000:80"])
    web.ok("cnm_endpoint", network="web", netns=web.sandbox("a"), state="absent")
    again = web.ok("cnm_port_publish", network="web", netns=web.sandbox("a"), state="absent")
    assert again["changed"] is False and again["published"][0]["removed"] == []


def test_exclusive_leaves_only_the_listed_ports(web, world):
    web.ok("cnm_port_publish", network="web", netns=web.sandbox("a"), ports=["4000:80", "4001:80"])
    web.ok("cnm_port_publish", network="web", netns=web.sandbox("b"), ports=["5353:53/udp"])
    args = dict(network="web", netns=web.sandbox("a"), ports=["4001:80"], exclusive=True)
    predicted = web.module("cnm_port_publish", check=True, **args)
    result = web.ok("cnm_port_publish", **args)
    assert (predicted["changed"], predicted["changes"]) == (True, result["changes"])
    assert wait_answer(world[0], "tcp", HOST, 4001, "web-a") == "web-a"
    assert ask(world[0], "tcp", HOST, 4000) == "unreachable"
    assert ask(world[0], "udp", HOST, 5353) == "dns-b"  # another endpoint's ports stay
    assert web.module("cnm_port_publish", **args)["changed"] is False


# ---- IPv6 published ports, one binding per spelling, and host processes shadowed by a published port ----

HOST6 = "2001:db8:1::1"


@contextlib.contextmanager
def host_listener(host, protocol: str, port: int, address: str = "::", v6only: bool = False):
    """A host process (python) bound to ``address``:``port`` in the host namespace (IPv6 only with ``v6only``);
    yields its pid once the socket is bound."""
    family = "socket.AF_INET6" if ":" in address else "socket.AF_INET"
    kind = "socket.SOCK_STREAM" if protocol == "tcp" else "socket.SOCK_DGRAM"
    code = (
        "import socket,time\ns=socket.socket(%s,%s)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
        "%ss.bind((%r,%d))\n%s"
        "time.sleep(120)\n"
        % (
            family,
            kind,
            "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,1)\n" if v6only else "",
            address,
            port,
            "s.listen(1)\n" if protocol == "tcp" else "",
        )
    )
    proc = subprocess.Popen(["nsenter", "--net=/run/netns/%s" % host.name, "--", sys.executable, "-c", code])
    try:
        tables = "/proc/net/%s /proc/net/%s6" % (protocol, protocol)
        for _attempt in range(200):  # wait on the socket, not on time
            if ":%04X " % port in host.sh("cat %s" % tables).stdout:
                break
        else:
            raise AssertionError("the listener on %s/%d never bound" % (protocol, port))
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def ports_of(host) -> dict:
    return {
        key: (entry["host_ip"], entry["container_ip"], entry.get("container_ipv6"))
        for key, entry in host.store().get("ports", {}).items()
    }


def test_zero_address_and_no_address_are_one_binding_without_ipv6(web):
    a, b = web.sandbox("a"), web.sandbox("b")
    web.ok("cnm_port_publish", network="web", netns=a, ports=["4000:80"])
    again = web.ok("cnm_port_publish", network="web", netns=a, ports=["0.0.0.0:4000:80"])
    assert again["changed"] is False and again["published"][0]["ports"] == ["4000:80/tcp"]
    web.ok("cnm_port_publish", network="web", netns=a, ports=["0.0.0.0:4001:80"])  # the other order
    assert web.module("cnm_port_publish", network="web", netns=a, ports=["4001:80"])["changed"] is False
    assert sorted(web.store()["ports"]) == ["tcp/*:4000", "tcp/*:4001"]  # one entry each, in one spelling
    taken = web.module(
        "cnm_port_publish", network="web", netns=b, ports=["0.0.0.0:4000:80"]
    )  # another endpoint still clashes
    assert taken["failed"] and "option 'ports[0]'" in taken["msg"] and "netns:%s" % a in taken["msg"]
    removed = web.ok("cnm_port_publish", network="web", netns=a, ports=["0.0.0.0:4001:80"], state="absent")
    assert removed["published"][0]["removed"] == ["tcp/*:4001"] and sorted(web.store()["ports"]) == ["tcp/*:4000"]


@pytest.fixture
def web6(host, world, servers):
    """A dual-stack network with endpoint a, an IPv4-only network with endpoint v4, and an IPv6 address on the
    uplink."""
    host.sh("ip -6 addr add %s/64 dev uplink nodad" % HOST6)
    host.ok("cnm_bridge", name="web6", subnet="172.30.6.0/24", ipv6_subnet="fd00:36::/64")
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    host.ok("cnm_endpoint", network="web6", netns=host.sandbox("a"))
    host.ok("cnm_endpoint", network="web", netns=host.sandbox("v4"))
    return host


def test_ipv6_bindings_are_planned_predicted_idempotent_and_removed(web6):
    a = web6.sandbox("a")
    endpoint = web6.store()["endpoints"]
    record = next(r for r in endpoint.values() if r["sandbox"] == "netns:" + a)
    ip4, ip6 = record["ipv4_address"], record["ipv6_address"]
    before = web6.snapshot()
    args = dict(network="web6", netns=a, ports=["4000:80", "[::]:4001:80", "0.0.0.0:4002:80/udp"])
    predicted = web6.module("cnm_port_publish", check=True, **args)
    assert web6.snapshot() == before
    real = web6.ok("cnm_port_publish", **args)
    assert (predicted["changed"], predicted["changes"], predicted["diff"]) == (
        real["changed"],
        real["changes"],
        real["diff"],
    )
    assert (real["published"][0]["container_ip"], real["published"][0]["container_ipv6"]) == (ip4, ip6)
    assert ports_of(web6) == {
        "tcp/*:4000": (None, ip4, ip6),
        "tcp/[::]:4001": ("::", ip4, ip6),
        "udp/0.0.0.0:4002": ("0.0.0.0", ip4, ip6),
    }
    assert web6.module("cnm_port_publish", **args)["changed"] is False
    # P:C covers 0.0.0.0:P:C and [::]:P:C: publishing a half of it changes nothing ...
    assert web6.module("cnm_port_publish", network="web6", netns=a, ports=["0.0.0.0:4000:80"])["changed"] is False
    assert web6.module("cnm_port_publish", network="web6", netns=a, ports=["[::]:4000:80"])["changed"] is False
    # ... and the two halves together are P:C, one entry
    assert web6.ok("cnm_port_publish", network="web6", netns=a, ports=["[::]:4002:80/udp"])["changed"] is True
    assert ports_of(web6)["udp/*:4002"] == (None, ip4, ip6) and "udp/0.0.0.0:4002" not in ports_of(web6)
    assert web6.module("cnm_port_publish", network="web6", netns=a, ports=["4002:80/udp"])["changed"] is False
    # removing one family of P:C leaves the other
    half = web6.ok("cnm_port_publish", network="web6", netns=a, ports=["0.0.0.0:4000:80"], state="absent")
    assert half["published"][0]["removed"] == ["tcp/*:4000"] and ports_of(web6)["tcp/[::]:4000"] == ("::", ip4, ip6)
    web6.ok("cnm_port_publish", network="web6", netns=a, state="absent")
    assert web6.snapshot() == before


def test_ipv6_conflicts_are_per_family(web6):
    a, v4 = web6.sandbox("a"), web6.sandbox("v4")
    web6.ok("cnm_port_publish", network="web", netns=v4, ports=["4010:80"])  # IPv4-only endpoint: 0.0.0.0 only
    both = web6.ok(
        "cnm_port_publish", network="web6", netns=a, ports=["[::]:4010:80"]
    )  # so [::] of the same port is free
    assert both["changed"] is True and sorted(web6.store()["ports"]) == ["tcp/*:4010", "tcp/[::]:4010"]
    clash = web6.module("cnm_port_publish", network="web6", netns=a, ports=["4011:80", "0.0.0.0:4010:81"])
    assert clash["failed"] and "option 'ports[1]'" in clash["msg"] and "netns:%s" % v4 in clash["msg"]
    plain = web6.module(
        "cnm_port_publish", network="web6", netns=a, ports=["4010:81"]
    )  # both families: its IPv4 side is taken
    assert plain["failed"] and "netns:%s" % v4 in plain["msg"]
    # the host's IPv6 addresses are host addresses (check mode: the firewall
    # of this branch may not render IPv6 DNAT yet)
    one = web6.module("cnm_port_publish", check=True, network="web6", netns=a, ports=["[%s]:4013:80" % HOST6])
    assert not one.get("failed") and one["published"][0]["ports"] == ["[%s]:4013:80/tcp" % HOST6], one
    other = web6.module("cnm_port_publish", check=True, network="web6", netns=a, ports=["[2001:db8:1::99]:4013:80"])
    assert (
        other["failed"]
        and "option 'ports[0].host_ip'" in other["msg"]
        and "not an address of this host" in other["msg"]
    )
    no_v6 = web6.module("cnm_port_publish", network="web", netns=v4, ports=["[::]:4012:80"])
    assert no_v6["failed"] and "option 'ports[0].host_ip'" in no_v6["msg"] and "no IPv6 address" in no_v6["msg"]


def test_ipv6_published_ports_answer_over_ipv6(web6, world, servers):
    a = web6.sandbox("a")
    result = web6.ok("cnm_port_publish", network="web6", netns=a, ports=["4000:80", "[::]:4001:80"])
    ip6 = result["published"][0]["container_ipv6"]
    if ip6 not in web6.ruleset():
        pytest.skip("table inet cnm has no IPv6 DNAT on this branch (the firewall helper's change renders it)")
    servers(a, "tcp6", 80, "web6-a")
    sh("ip -6 addr add 2001:db8:1::2/64 dev eth0 nodad", netns=world[0])
    assert wait_answer(world[0], "tcp", HOST6, 4000, "web6-a") == "web6-a"  # 4000:80 binds both families, as Docker 27+
    assert ask(world[0], "tcp", HOST, 4000) == "web6-a"
    assert ask(world[0], "tcp", HOST6, 4001) == "web6-a"
    assert ask(world[0], "tcp", HOST, 4001) == "unreachable"  # [::] is IPv6 only
    web6.ok("cnm_port_publish", network="web6", netns=a, ports=["[%s]:4002:80" % HOST6])
    assert ask(world[0], "tcp", HOST6, 4002) == "web6-a"


def test_a_host_process_on_a_published_port_is_refused_warned_and_drift_in_the_same_words(web):
    a = web.sandbox("a")
    with host_listener(web, "tcp", 4030) as pid:
        refused = web.module("cnm_port_publish", network="web", netns=a, ports=["4030:80"])
        words = "host port is already bound by process %d (python" % pid
        assert refused["failed"] and "option 'ports[0]'" in refused["msg"] and words in refused["msg"]
    web.ok("cnm_port_publish", network="web", netns=a, ports=["4031:80", "4032:80"])
    with host_listener(
        web, "tcp", 4031, "0.0.0.0"
    ) as pid:  # bound after the port was published: the DNAT takes its connections
        words = "host port is already bound by process %d (python" % pid
        again = web.ok("cnm_port_publish", network="web", netns=a, ports=["4031:80", "4032:80"])
        assert again["changed"] is False
        warnings = json.dumps(again.get("warnings"))
        assert "published port tcp/*:4031 of netns:%s on web: %s" % (a, words) in warnings and "4032" not in warnings, (
            warnings
        )
        drift = [d for d in web.ok("cnm_info", gather=["ports"])["drift"] if d["kind"] == "port_shadowed"]
        assert [d["object"] for d in drift] == ["port tcp/*:4031"] and words in drift[0]["message"]
    assert not web.ok("cnm_port_publish", network="web", netns=a, ports=["4031:80"]).get("warnings")


def test_an_ipv6_only_listener_on_any_address_leaves_the_ipv4_port_free(web, world):
    """A [::] socket with IPV6_V6ONLY takes no IPv4 (sock_diag tells it; /proc/net does not): an IPv4 endpoint's port
    is published, as Docker's proxy would bind 0.0.0.0 beside it, and answers."""
    a = web.sandbox("a")
    with host_listener(web, "tcp", 4033, "::", v6only=True):
        result = web.ok("cnm_port_publish", network="web", netns=a, ports=["4033:80"])
        assert result["changed"] and not result.get("warnings")
        assert not [d for d in web.ok("cnm_info", gather=["ports"])["drift"] if d["kind"] == "port_shadowed"]
        assert wait_answer(world[0], "tcp", HOST, 4033, "web-a") == "web-a"


def test_exclusive_replaces_a_binding_of_the_same_port_of_the_endpoint(web, world):
    a = web.sandbox("a")
    web.ok("cnm_port_publish", network="web", netns=a, ports=["4000:80"])
    args = dict(
        network="web", netns=a, ports=["127.0.0.1:4000:80"], exclusive=True
    )  # was refused as overlapping before
    predicted = web.module("cnm_port_publish", check=True, **args)
    result = web.ok("cnm_port_publish", **args)
    assert (predicted["changed"], predicted["changes"]) == (True, result["changes"])
    assert sorted(web.store()["ports"]) == ["tcp/127.0.0.1:4000"]
    assert wait_answer(web.name, "tcp", "127.0.0.1", 4000, "web-a") == "web-a"
    assert ask(world[0], "tcp", HOST, 4000) == "unreachable"
    assert web.module("cnm_port_publish", **args)["changed"] is False
