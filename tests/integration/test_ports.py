"""Published ports (cnm_port_publish) on the real kernel, reached with real TCP and UDP traffic.

The world of conftest's ``world``: the host's uplink is 203.0.113.1 towards a LAN namespace (203.0.113.2)
and the internet behind it. Servers run inside the endpoints' sandboxes.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import sh

HOST = "203.0.113.1"
SERVE = ("import socket,sys\nkind=sys.argv[1];port=int(sys.argv[2]);name=sys.argv[3].encode()\n"
         "s=socket.socket(socket.AF_INET,socket.SOCK_STREAM if kind=='tcp' else socket.SOCK_DGRAM)\n"
         "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',port))\n"
         "if kind=='tcp':\n    s.listen(8)\n    while True:\n        c,a=s.accept();c.sendall(name);c.close()\n"
         "else:\n    while True:\n        d,a=s.recvfrom(100);s.sendto(name,a)\n")
ASK = ("import socket,sys\nkind,addr,port=sys.argv[1],sys.argv[2],int(sys.argv[3])\n"
       "try:\n    if kind=='tcp':\n        print(socket.create_connection((addr,port),timeout=2).recv(100).decode())\n"
       "    else:\n        s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2);s.bind(('',int(sys.argv[4]) if len(sys.argv)>4 else 0))\n"
       "        s.sendto(b'hi',(addr,port));print(s.recvfrom(100)[0].decode())\n"
       "except OSError:\n    print('unreachable')\n")


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
    assert web.module("cnm_port_publish", network="web", netns=web.sandbox("a"), ports=["4000:80", "5353:53/udp"])["changed"] is False


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
    web.ok("cnm_port_publish", network="web", netns=web.sandbox("a"), ports=[dict(host_ip="203.0.113.10", host_port=4002, container_port=80)])
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
    assert (predicted["changed"], predicted["changes"], predicted["diff"]) == (real["changed"], real["changes"], real["diff"])
    rules = [item["rule"]["comment"] for item in json.loads(web.sh("nft -j list ruleset").stdout)["nftables"] if "rule" in item]
    assert "tcp . 4000 : 172.30.0.2" in web.sh("nft list map inet cnm ports_any4_addr").stdout and any("loopback guard" in c for c in rules)
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
    result = host.ok("cnm_port_publish", network="web", endpoints=[dict(netns=host.sandbox(n), ports=["%d:80" % (10000 + i)]) for i, n in enumerate(names)])
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
