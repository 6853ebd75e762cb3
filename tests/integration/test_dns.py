"""The resolver on the real kernel: aardvark-dns started, reloaded and stopped by the modules in the host namespace,
asked with real DNS packets from the sandboxes. Every test runs with Debian 12's aardvark-dns (1.4) and Debian 13's
(1.14, fetched by scripts/setup.sh): they reload differently, and only the newer answers PTR and TCP.

Names and aliases resolve from the endpoints of the same network (A and AAAA), NXDOMAIN from another network's
endpoint and nothing reaches a gateway from another network; other names go to an upstream resolver (dnsmasq in
the LAN namespace); rename, detach and network removal change the answers in the same run; a killed resolver is
started again by the next run; check mode predicts exactly; absent leaves no file, process or rule behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import LAN, REPO, sh
from test_restore import _reboot, _restore

RESOLVERS = {  # the binaries every test runs with, through dns.BINARY_VARIABLE
    "debian12": "/usr/lib/podman/aardvark-dns",
    "debian13": os.path.join(REPO, ".venv", "aardvark-dns-trixie", "aardvark-dns"),
}
PID_FILE = "aardvark.pid"  # in the resolver's directory (PID_FILE)
MARK = "# cnm.network: the resolver of network(s) "  # MARK
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dns_client.py")
WEB = dict(name="web", subnet="172.30.0.0/24", ipv6_subnet="fd00:30::/64", dns=True)
DB = dict(name="db", subnet="172.31.0.0/24", dns=True)


@pytest.fixture(autouse=True, params=sorted(RESOLVERS))
def resolver(request, monkeypatch) -> tuple:
    """The aardvark-dns the modules run (set in their environment); its version, as a tuple."""
    path = RESOLVERS[request.param]
    assert os.access(path, os.X_OK), "%s is missing: run scripts/setup.sh" % path
    monkeypatch.setenv("CNM_NETWORK_AARDVARK_DNS", path)
    return tuple(int(part) for part in sh("%s --version" % path).stdout.split()[1].split("."))


@pytest.fixture
def upstream(host, world) -> str:
    """dnsmasq in the LAN namespace, the upstream server of the networks that name it in dns_servers: it answers
    upstream.test, and NXDOMAIN for a single-label name (domain-needed). aardvark-dns 1.11 and later forward a
    single-label name they do not hold, as Docker does; 1.4 answers NXDOMAIN itself."""
    lan, _internet = world
    server = subprocess.Popen(
        [
            "nsenter",
            "--net=/run/netns/%s" % lan,
            "--",
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--domain-needed",
            "--bind-interfaces",
            "--listen-address=%s" % LAN,
            "--address=/upstream.test/198.51.100.7",
            "--pid-file=",
            "--user=root",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        expect(lan, LAN, "ready.upstream.test", wait=10, answers=["198.51.100.7"])  # it binds after it started
        yield LAN
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


def ask(netns: str, server: str, name: str, kind: str = "A", timeout: float = 5, transport: str = "udp") -> dict:
    """One query from ``netns``; no answer within ``timeout`` seconds (glibc's own default) is {"timeout": True}."""
    out = sh("%s %s %s %s %s %s %s" % (sys.executable, CLIENT, server, name, kind, timeout, transport), netns=netns)
    return json.loads(out.stdout)


def expect(netns: str, server: str, name: str, kind: str = "A", wait: float = 0, transport="udp", **wanted) -> dict:
    """Ask and check that the answer has ``wanted`` (keys of ask's result). The runs wait until the resolver has
    reloaded, so the first answer must be right; ``wait`` asks again for that many seconds (a server of the test's
    own that is still starting)."""
    deadline = time.monotonic() + wait
    while True:
        result = ask(netns, server, name, kind, transport=transport)
        if all(result.get(key) == value for key, value in wanted.items()):
            return result
        assert time.monotonic() < deadline, "%s %s asked from %s: %s, not %s" % (name, kind, netns, result, wanted)


def resolver_pid(host) -> int | None:
    with open(os.path.join(host.store_path(), "dns", PID_FILE)) as handle:
        pid = int(handle.read())
    return pid if os.path.exists("/proc/%d" % pid) else None


def processes_in(netns: str) -> list:
    return sh("ip netns pids %s" % netns).stdout.split()


def test_names_resolve_on_their_network_only(host, upstream, resolver):
    host.ok("cnm_bridge", **dict(WEB, dns_servers=[upstream]))
    host.ok("cnm_bridge", **dict(DB, dns_servers=[upstream]))
    a, b, c = host.sandbox("a"), host.sandbox("b"), host.sandbox("c")
    host.ok("cnm_endpoint", network="web", endpoints=[dict(netns=a, name="front"), dict(netns=b, aliases=["api"])])
    host.ok("cnm_endpoint", network="db", netns=c, name="store")
    addresses = {e["netns"]: e for e in host.ok("cnm_info")["endpoints"]}

    expect(a, "172.30.0.1", "api", answers=[addresses[b]["ipv4_address"]])
    expect(a, "172.30.0.1", b, answers=[addresses[b]["ipv4_address"]])  # its default name: the namespace's
    expect(b, "172.30.0.1", "FRONT", answers=[addresses[a]["ipv4_address"]])  # names have no case
    expect(b, "172.30.0.1", "front.web", answers=[addresses[a]["ipv4_address"]])  # NAME.NETWORK, as Docker
    expect(b, "fd00:30::1", "front", "AAAA", answers=[addresses[a]["ipv6_address"]])
    expect(b, "172.30.0.1", "front", "AAAA", answers=[addresses[a]["ipv6_address"]])
    expect(c, "172.31.0.1", "store", answers=[addresses[c]["ipv4_address"]])
    if resolver >= (1, 11):  # PTR answers with the names and TCP: 1.11 and 1.12
        expect(a, "172.30.0.1", addresses[b]["ipv4_address"], "PTR", answers=sorted(["%s." % b, "%s.web." % b, "api."]))
        found = sh("ip netns exec %s getent hosts %s" % (a, addresses[b]["ipv6_address"])).stdout.split()
        assert found[:2] == [addresses[b]["ipv6_address"], b]
        expect(b, "172.30.0.1", "front", transport="tcp", answers=[addresses[a]["ipv4_address"]])
    # Another network's names are not answered: NXDOMAIN at its own gateway (or from upstream), and the other
    # gateway is not reached.
    expect(c, "172.31.0.1", "front", rcode=3, answers=[])
    expect(a, "172.30.0.1", "store", rcode=3)
    assert ask(c, "172.30.0.1", "front", timeout=2) == {"timeout": True}

    # ip netns exec mounts the namespace's resolv.conf: glibc's own lookup finds the name.
    with open("/etc/netns/%s/resolv.conf" % a) as handle:
        assert handle.read() == "%sweb\nnameserver 172.30.0.1\nnameserver fd00:30::1\n" % MARK
    found = sh("ip netns exec %s getent ahostsv4 api" % a).stdout.split()
    assert found[0] == addresses[b]["ipv4_address"]

    # Rename and detach change the answers in the same run.
    rename = dict(network="web", netns=a, name="edge")
    predicted = host.module("cnm_endpoint", check=True, **rename)
    renamed = host.ok("cnm_endpoint", **rename)
    assert (
        predicted["changes"]
        == renamed["changes"]
        == ["resolver: reload aardvark-dns for network(s) web", "write the store"]
    )
    assert predicted["diff"] == renamed["diff"]
    names = [
        [record.split(" ")[3] for record in renamed["diff"][side]["resolver"]["networks"]["web"]["records"]]
        for side in ("before", "after")
    ]
    assert names == [["front,front.web", "%s,%s.web,api" % (b, b)], ["edge,edge.web", "%s,%s.web,api" % (b, b)]]
    # The run waited for the reload (new listening sockets): the answers have changed when the task ends.
    expect(b, "172.30.0.1", "edge", answers=[addresses[a]["ipv4_address"]])
    expect(b, "172.30.0.1", "front", rcode=3)
    host.ok("cnm_endpoint", network="web", netns=b, state="absent")
    expect(a, "172.30.0.1", "api", rcode=3)
    assert not os.path.exists("/etc/netns/%s" % b)

    # A sandbox on both networks resolves the names of both; a name on both answers with its address on each.
    host.ok("cnm_endpoint", network="db", netns=a, name="edge")
    expect(a, "172.30.0.1", "store", answers=[addresses[c]["ipv4_address"]])
    on_db = [e["ipv4_address"] for e in host.ok("cnm_info")["endpoints"] if (e["netns"], e["network"]) == (a, "db")]
    expect(c, "172.31.0.1", "edge", answers=on_db)
    expect(a, "172.30.0.1", "edge", answers=sorted([addresses[a]["ipv4_address"]] + on_db))

    # A sandbox on no network (only lo) reaches no resolver.
    host.ok("cnm_endpoint", network="none", netns=host.sandbox("d"))
    assert ask(host.sandbox("d"), "172.30.0.1", "edge") == {"error": "Network is unreachable"}

    # Network removal: its names go in the same run, the other network's stay.
    host.ok("cnm_bridge", name="db", state="absent", force=True)
    expect(a, "172.30.0.1", "store", rcode=3)
    expect(a, "172.30.0.1", "edge", answers=[addresses[a]["ipv4_address"]])
    assert sorted(resolver_files(host)) == ["aardvark.pid", "web"]
    with open("/etc/netns/%s/resolv.conf" % a) as handle:
        assert handle.read() == "%sweb\nnameserver 172.30.0.1\nnameserver fd00:30::1\n" % MARK


def test_other_names_go_upstream(host, upstream):
    host.ok("cnm_bridge", **dict(WEB, dns_servers=[upstream]))
    a = host.sandbox("a")
    host.ok("cnm_endpoint", network="web", netns=a, name="front")
    expect(a, "172.30.0.1", "www.upstream.test", answers=["198.51.100.7"])
    expect(a, "172.30.0.1", "front", rcode=0)  # the network's own names are still its resolver's


def test_killed_resolver_is_started_again_and_absent_leaves_nothing(host):
    before = host.snapshot()
    args = dict(WEB)
    predicted = host.module("cnm_bridge", check=True, **args)
    assert host.snapshot() == before and not processes_in(host.name)
    made = host.ok("cnm_bridge", **args)
    assert predicted["changes"] == made["changes"]
    assert predicted["diff"] == made["diff"]
    assert made["changes"][-2] == "resolver: start aardvark-dns for network(s) web"
    assert host.module("cnm_bridge", **args)["changed"] is False

    pid = resolver_pid(host)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while resolver_pid(host) is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    info = host.ok("cnm_info")
    assert info["resolver"]["running"] is False
    assert [d["kind"] for d in info["drift"]] == ["resolver_not_running"]
    rerun = host.ok("cnm_bridge", **args)
    assert rerun["changes"] == ["resolver: start aardvark-dns for network(s) web (it was not running)"]
    info = host.ok("cnm_info")
    assert info["drift"] == []
    assert info["resolver"]["networks"] == {
        "web": {"listen": ["172.30.0.1", "fd00:30::1"], "listening": ["172.30.0.1", "fd00:30::1"], "names": []}
    }
    a = host.sandbox("a")
    host.ok("cnm_endpoint", network="web", netns=a, name="front")
    expect(a, "172.30.0.1", "front", rcode=0)

    host.ok("cnm_endpoint", network="web", netns=a, state="absent", delete_netns=True)
    gone = host.ok("cnm_bridge", name="web", state="absent")
    assert "resolver: stop aardvark-dns for network(s) web" in gone["changes"]
    assert not processes_in(host.name)
    assert not os.path.exists(os.path.join(host.store_path(), "dns"))
    assert "dns guard" not in host.ruleset()
    assert not os.path.exists("/etc/netns/%s" % a)
    assert not os.path.exists("/etc/netns") or os.listdir("/etc/netns")  # an empty /etc/netns goes too


def test_bad_dns_inputs_change_nothing(host):
    host.ok("cnm_bridge", **WEB)
    host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"), name="front", aliases=["www"])
    before = host.snapshot()
    files = resolver_files(host)
    b = dict(network="web", netns=host.sandbox("b"))
    endpoint_cases = [
        (dict(b, name="x" * 64), "option 'name': %s is not a DNS name" % ("x" * 64)),
        (dict(b, name="bad!name"), "option 'name': bad!name is not a DNS name"),
        (dict(b, name="a..b"), "option 'name': a..b is not a DNS name"),
        (
            dict(b, name="FRONT"),
            "option 'name': FRONT is already the DNS name of endpoint netns:%s" % host.sandbox("a"),
        ),
        (dict(b, name="www"), "option 'name': www is already the alias of endpoint netns:%s" % host.sandbox("a")),
        (dict(b, aliases=["ok", "front"]), "option 'aliases': front is already the DNS name of endpoint"),
        (dict(b, aliases=["-lead"]), "option 'aliases[0]': -lead is not a DNS name"),
    ]
    for args, message in endpoint_cases:
        result = host.module("cnm_endpoint", **args)
        assert result.get("failed") and result["msg"].startswith(message), (args, result)
        assert host.snapshot() == before and resolver_files(host) == files
    cases = [
        (dict(WEB, dns_servers=["192.0.2.300"]), "option 'dns_servers[0]': 192.0.2.300 is not an IP address"),
        (dict(WEB, dns_servers=["0.0.0.0"]), "option 'dns_servers[0]': 0.0.0.0 is not the address of a DNS server"),
        (dict(WEB, dns=False, dns_servers=["192.0.2.53"]), "option 'dns_servers': ['192.0.2.53'] needs dns: true"),
        (
            dict(WEB, dns_servers=["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]),
            "option 'dns_servers': ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4'] lists more than 3",
        ),
    ]
    for args, message in cases:
        result = host.module("cnm_bridge", **args)
        assert result.get("failed") and result["msg"].startswith(message), (args, result)
        assert host.snapshot() == before and resolver_files(host) == files


def resolver_files(host) -> dict:
    directory = os.path.join(host.store_path(), "dns")
    return {name: open(os.path.join(directory, name)).read() for name in sorted(os.listdir(directory))}


def test_after_a_reboot_the_restore_starts_the_resolver_last(host, tmp_path, monkeypatch):
    monkeypatch.setenv("CNM_PERSISTENT_STORE", str(tmp_path / "state.json"))
    host.ok("cnm_bridge", **WEB)
    a, b = host.sandbox("a"), host.sandbox("b")
    host.ok("cnm_endpoint", network="web", endpoints=[dict(netns=a, name="front"), dict(netns=b)])
    sh("ip netns pids %s | xargs -r kill -9" % host.name)  # processes do not survive a reboot
    _reboot(host, hardware=False)

    report = _restore(host)
    assert report["failed"] == [] and report["changes"][-1] == "resolver: start aardvark-dns for network(s) web"
    expect(b, "172.30.0.1", "front", rcode=0)
    assert host.ok("cnm_info")["drift"] == []
