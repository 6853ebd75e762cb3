# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reachability matrix: who reaches what, IPv4 and IPv6, read as Docker's specification.

One lab for the whole module, built with the modules: a host namespace whose uplink leads to a LAN
namespace that routes every container subnet through the host, and five networks -

====== ============================================ ==========================================
a      dual stack, a1 serves :80 (published six ways) a2 is a client of the same network
       and :81 (never published)
b      dual stack                                   b1: a client from another network
int    dual stack, ``internal: true``               i1 serves :80 and added default routes
                                                    (a container with NET_ADMIN can), i2 client
noicc  dual stack, ``icc: false``                   n1 serves :80, n2 client
routed dual stack, ``masquerade: false``,           r1 serves :80
       ``trusted_sources`` = the LAN client
====== ============================================ ==========================================

Every server answers a connection with the source address it sees, so a cell asserts both that the
connection got through and who the server thinks called (DNAT keeps the client, masquerade
replaces it). Servers also run on the host (:9000, the host's own service) and in the LAN (:9000,
the outside world). All probes of the matrix run once, in parallel, when the lab is up (each
connection times out after a bound); a cell that should connect and did not is tried once more
alone with a longer bound, so load cannot fail a cell, and a cell that should not connect cannot
pass by chance. Each cell is one test, with the Docker behaviour it states.

Docker behaviour cited is Docker 28 (the rules of moby's
``daemon/libnetwork/drivers/bridge/internal/iptabler/testdata`` golden files, the same for 28.x and
29.x; default ``userland-proxy: true``, ``gateway_mode_ipv4/6=nat``, ``ip6tables: true``).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from conftest import RUN_PREFIX, LabHost, _counter, sh

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

H4, H6 = "203.0.113.1", "2001:db8:1::1"  # the host's uplink
L4, L6 = "203.0.113.2", "2001:db8:1::2"  # the LAN client and server
NETWORKS = {  # name: (IPv4 prefix, IPv6 prefix, extra cnm_bridge options)
    "a": ("172.31.1", "2001:db8:a:", {}),
    "b": ("172.31.2", "2001:db8:b:", {}),
    "int": ("172.31.3", "2001:db8:c:", {"internal": True}),
    "noicc": ("172.31.4", "2001:db8:d:", {"icc": False}),
    "routed": ("172.31.5", "2001:db8:e:", {"masquerade": False, "trusted_sources": [L4 + "/32", L6 + "/128"]}),
}
ENDPOINTS = {
    "a1": ("a", 2),
    "a2": ("a", 3),
    "b1": ("b", 2),
    "i1": ("int", 2),
    "i2": ("int", 3),
    "n1": ("noicc", 2),
    "n2": ("noicc", 3),
    "r1": ("routed", 2),
}
SERVERS = {"a1": (80, 81), "i1": (80,), "n1": (80,), "r1": (80,), "host": (9000,), "lan": (9000,)}
PORTS = {  # the binding forms of a1's port 80: host port -> Docker's -p
    4001: "4001:80",
    4002: "0.0.0.0:4002:80",
    4003: "[::]:4003:80",
    4004: "%s:4004:80" % H4,
    4005: "[%s]:4005:80" % H6,
    4006: "127.0.0.1:4006:80",
}
CONNECT_TIMEOUT, RETRY_TIMEOUT = 3.0, 10.0


def v4(name: str) -> str:
    network, index = ENDPOINTS[name]
    return "%s.%d" % (NETWORKS[network][0], index)


def v6(name: str) -> str:
    network, index = ENDPOINTS[name]
    return "%s:%d" % (NETWORKS[network][1], index)


def gw4(network: str) -> str:
    return NETWORKS[network][0] + ".1"


def gw6(network: str) -> str:
    return NETWORKS[network][1] + ":1"


# A dual-stack TCP server on every port given: it answers each connection with the peer's address.
SERVE = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
for port in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", int(port)))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        c, peer = key.fileobj.accept()
        address = peer[0][7:] if peer[0].startswith("::ffff:") else peer[0]
        try:
            c.sendall(address.encode())
        except OSError:
            pass
        c.close()
"""

# Runs probes in parallel inside one namespace: [[id, "tcp"|"ping", address, port], ...] and a timeout;
# prints {id: what the server answered (the address it saw), or "!" and why not}.
PROBE = r"""
import json, socket, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
probes, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
def tcp(address, port):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((address, port))
        data = b""
        while True:
            chunk = s.recv(100)
            if not chunk:
                break
            data += chunk
        return data.decode() or "!closed"
    except socket.timeout:
        return "!timeout"
    except OSError as exc:
        return "!" + (exc.strerror or type(exc).__name__)
    finally:
        s.close()
def ping(address, _port):
    argv = ["ping", "-n", "-c", "1", "-W", str(max(1, int(timeout))), address]
    ok = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    return "reply" if ok else "!no reply"
def run(probe):
    ident, kind, address, port = probe
    return ident, (tcp if kind == "tcp" else ping)(address, port)
with ThreadPoolExecutor(max_workers=max(1, len(probes))) as pool:
    print(json.dumps(dict(pool.map(run, probes))))
"""

REPLY = "reply"  # what a ping cell expects when it should pass


@dataclass(frozen=True)
class Cell:
    source: str  # a sandbox short name, "host" or "lan"
    kind: str  # "tcp" or "ping"
    address: str
    port: int
    expect: str | None  # the source address the server must see (or REPLY); None: must not get through
    docker: str  # what Docker does, and why
    differs: bool = False  # a documented difference from Docker: the cell asserts cnm's behaviour

    @property
    def ident(self) -> str:
        target = "[%s]" % self.address if ":" in self.address else self.address
        where = "%s:%d" % (target, self.port) if self.kind == "tcp" else "ping " + target
        return "%s->%s" % (self.source, where)


def tcp(source, address, port, expect, docker, differs=False) -> Cell:
    return Cell(source, "tcp", address, port, expect, docker, differs)


def ping(source, address, expect, docker) -> Cell:
    return Cell(source, "ping", address, 0, expect, docker)


RAW_DROP = "Docker: DROP - a raw-table rule drops every packet to a container address not coming in on its bridge"
ONLY_PUBLISHED = RAW_DROP + "; only published ports are reachable from outside"
DNAT_KEEPS = "the DNAT keeps the client's address"
ISOLATED = "Docker: DROP - networks are isolated from each other (raw drop of the container address)"
INTERNAL_OUT = "Docker: DROP - DOCKER-INTERNAL drops everything leaving an internal network's subnet"
NO_INPUT = "Docker: ACCEPT - Docker adds no INPUT rule; the host's own services are the host firewall's business"

CELLS = [
    # ---- from the LAN (a machine that routes every container subnet through the host) ----
    tcp("lan", v4("a1"), 80, None, ONLY_PUBLISHED + " (even a published container port, directly)"),
    tcp("lan", v4("a1"), 81, None, ONLY_PUBLISHED),
    tcp("lan", v6("a1"), 80, None, ONLY_PUBLISHED + " (ip6tables, IPv6 the same)"),
    tcp("lan", v6("a1"), 81, None, ONLY_PUBLISHED + " (ip6tables)"),
    ping("lan", v4("a1"), None, RAW_DROP + " (any protocol)"),
    ping("lan", v6("a1"), None, RAW_DROP + " (any protocol, ip6tables)"),
    tcp("lan", H4, 4001, L4, "Docker: ACCEPT - 4001:80 binds 0.0.0.0; " + DNAT_KEEPS),
    tcp("lan", H6, 4001, L6, "Docker 27+: ACCEPT - a plain 4001:80 also binds [::] (IPv6 DNAT); " + DNAT_KEEPS),
    tcp("lan", H4, 4002, L4, "Docker: ACCEPT - 0.0.0.0:4002:80; " + DNAT_KEEPS),
    tcp("lan", H6, 4002, None, "Docker: not reached - 0.0.0.0:4002:80 is IPv4 only"),
    tcp("lan", H6, 4003, L6, "Docker 27+: ACCEPT - [::]:4003:80; " + DNAT_KEEPS),
    tcp("lan", H4, 4003, None, "Docker 27+: not reached - [::]:4003:80 is IPv6 only (its listener sets IPV6_V6ONLY)"),
    tcp("lan", H4, 4004, L4, "Docker: ACCEPT - bound to this host address; " + DNAT_KEEPS),
    tcp("lan", gw4("a"), 4004, None, "Docker: not reached - bound to another host address (no DNAT here)"),
    tcp("lan", H6, 4005, L6, "Docker 27+: ACCEPT - bound to this IPv6 host address; " + DNAT_KEEPS),
    tcp("lan", gw6("a"), 4005, None, "Docker 27+: not reached - bound to another host address"),
    tcp("lan", H4, 4006, None, "Docker: not reached - 127.0.0.1:4006:80 is for the host only"),
    tcp("lan", v4("n1"), 80, None, ONLY_PUBLISHED + " (icc: false changes nothing)"),
    tcp("lan", v6("n1"), 80, None, ONLY_PUBLISHED + " (icc: false, IPv6)"),
    tcp("lan", v4("i1"), 80, None, "Docker: DROP - DOCKER-INTERNAL drops everything into an internal network"),
    tcp("lan", v6("i1"), 80, None, "Docker: DROP - DOCKER-INTERNAL (ip6tables)"),
    tcp("lan", v4("r1"), 80, L4, "Docker 27+ gateway_mode_ipv4=routed: ACCEPT, no NAT (cnm: for trusted_sources only)"),
    tcp("lan", v6("r1"), 80, L6, "Docker 27+ gateway_mode_ipv6=routed: ACCEPT, no NAT (cnm: for trusted_sources only)"),
    tcp("lan", H4, 9000, L4, NO_INPUT),
    tcp("lan", H6, 9000, L6, NO_INPUT + " (IPv6)"),
    tcp("lan", gw4("a"), 9000, L4, NO_INPUT + " (also on a bridge's address; the raw drop is per container)"),
    # ---- from the host itself ----
    tcp("host", v4("a1"), 80, gw4("a"), "Docker: ACCEPT - the host reaches every container port directly"),
    tcp("host", v4("a1"), 81, gw4("a"), "Docker: ACCEPT - the host reaches unpublished ports too (OUTPUT)"),
    tcp("host", v6("a1"), 81, gw6("a"), "Docker: ACCEPT - the host reaches unpublished ports too (IPv6)"),
    tcp("host", v4("n1"), 80, gw4("noicc"), "Docker: ACCEPT - icc: false concerns containers, not the host"),
    tcp("host", v4("i1"), 80, gw4("int"), "Docker 25.0.4+: ACCEPT - the host reaches internal networks"),
    tcp("host", v6("i1"), 80, gw6("int"), "Docker 25.0.4+: ACCEPT - the host reaches internal networks (IPv6)"),
    tcp("host", H4, 4001, H4, "Docker: ACCEPT - OUTPUT DNAT of a local address, source kept"),
    tcp("host", H6, 4001, H6, "Docker 27+: ACCEPT - OUTPUT DNAT of a local IPv6 address, source kept"),
    tcp("host", H4, 4002, H4, "Docker: ACCEPT - 0.0.0.0:4002:80 from the host"),
    tcp("host", H6, 4003, H6, "Docker 27+: ACCEPT - [::]:4003:80 from the host"),
    tcp("host", H4, 4004, H4, "Docker: ACCEPT - <host v4>:4004:80 from the host"),
    tcp("host", H6, 4005, H6, "Docker 27+: ACCEPT - [<host v6>]:4005:80 from the host"),
    tcp(
        "host",
        "127.0.0.1",
        4006,
        gw4("a"),
        "Docker: ACCEPT - 127.0.0.1:4006:80 (docker-proxy connects from the gateway; cnm: route_localnet + masquerade)",
    ),
    tcp("host", "127.0.0.1", 4001, gw4("a"), "Docker: ACCEPT - a plain binding answers on 127.0.0.1 too"),
    tcp(
        "host",
        "::1",
        4001,
        None,
        "Docker 28: ACCEPT through docker-proxy on [::]; cnm: not reached - the kernel cannot DNAT ::1 "
        "(no route_localnet for IPv6), a documented difference",
        differs=True,
    ),
    # ---- from another network's container ----
    tcp("b1", v4("a1"), 80, None, ISOLATED),
    tcp("b1", v6("a1"), 80, None, ISOLATED + " (IPv6)"),
    ping("b1", v4("a1"), None, ISOLATED + " (any protocol)"),
    tcp(
        "b1",
        H4,
        4001,
        gw4("a"),
        "Docker: ACCEPT - published ports are reachable from other networks; "
        "b's masquerade gives a1 a's gateway as source",
    ),
    tcp("b1", H6, 4001, gw6("a"), "Docker 27+: ACCEPT - the same over IPv6 (NAT66 masquerade)"),
    tcp("b1", H4, 9000, v4("b1"), NO_INPUT + " (containers reach the host's addresses)"),
    tcp("b1", H6, 9000, v6("b1"), NO_INPUT + " (containers reach the host's addresses, IPv6)"),
    tcp("b1", L4, 9000, H4, "Docker: ACCEPT - masqueraded to the host's address"),
    tcp("b1", L6, 9000, H6, "Docker 27+: ACCEPT - NAT66 masquerade to the host's address"),
    # ---- from an internal network's container (with default routes it added itself) ----
    tcp("i1", v4("a1"), 80, None, INTERNAL_OUT),
    tcp("i1", v6("a1"), 80, None, INTERNAL_OUT + " (ip6tables)"),
    tcp(
        "i1",
        gw4("int"),
        4001,
        None,
        INTERNAL_OUT + ": a published port on its own gateway is DNAT'd to "
        "another network, then dropped (in both proxy modes)",
    ),
    tcp("i1", gw6("int"), 4001, None, INTERNAL_OUT + ": the same over IPv6"),
    tcp("i1", H4, 4001, None, INTERNAL_OUT + ": a published port on a host address is DNAT'd, then dropped"),
    tcp("i1", H6, 4001, None, INTERNAL_OUT + ": the same over IPv6"),
    tcp("i1", L4, 9000, None, INTERNAL_OUT + ": no path to the outside"),
    tcp("i1", L6, 9000, None, INTERNAL_OUT + ": no path to the outside (IPv6)"),
    tcp(
        "i1",
        gw4("int"),
        9000,
        v4("i1"),
        "Docker 25.0.4+: ACCEPT - the internal network's bridge address is the host's (moby c761353)",
    ),
    tcp("i1", gw6("int"), 9000, v6("i1"), "Docker 25.0.4+: ACCEPT - the same over IPv6"),
    tcp(
        "i1",
        H4,
        9000,
        v4("i1"),
        "Docker: ACCEPT - the host's other addresses too: DOCKER-INTERNAL is in FORWARD, "
        "the host's INPUT is not filtered (the container needs a route of its own, as here)",
    ),
    tcp("i1", H6, 9000, v6("i1"), "Docker: ACCEPT - the same over IPv6"),
    tcp("i2", v4("i1"), 80, v4("i2"), "Docker: ACCEPT - an internal network's containers talk to each other"),
    tcp("i2", v6("i1"), 80, v6("i2"), "Docker: ACCEPT - the same over IPv6"),
    # ---- from a container of the same network ----
    tcp("a2", v4("a1"), 81, v4("a2"), "Docker: ACCEPT - icc: true, every port between containers of a network"),
    tcp("a2", v6("a1"), 81, v6("a2"), "Docker: ACCEPT - icc: true (IPv6)"),
    tcp("a2", H4, 4001, gw4("a"), "Docker: ACCEPT - docker-proxy (or the hairpin masquerade) answers from the gateway"),
    tcp("a2", H6, 4001, gw6("a"), "Docker 27+: ACCEPT - the same over IPv6"),
    tcp("n2", v4("n1"), 80, None, "Docker: DROP - icc: false"),
    tcp("n2", v6("n1"), 80, None, "Docker: DROP - icc: false (IPv6)"),
    ping("n2", v4("n1"), None, "Docker: DROP - icc: false (any protocol)"),
    # ---- hairpin: a container to its own published port ----
    tcp("a1", H4, 4001, gw4("a"), "Docker: ACCEPT - hairpin: the container sees its gateway (proxy or masquerade)"),
    tcp("a1", H6, 4001, gw6("a"), "Docker 27+: ACCEPT - hairpin over IPv6"),
    tcp("a1", gw4("a"), 4002, gw4("a"), "Docker: ACCEPT - hairpin through its own gateway address"),
    # ---- out to the LAN ----
    tcp("a1", L4, 9000, H4, "Docker: ACCEPT - masqueraded to the host's address"),
    tcp("a1", L6, 9000, H6, "Docker 27+: ACCEPT - NAT66 masquerade (ip6tables), IPv6 forwarding on"),
    ping("a1", L6, REPLY, "Docker 27+: ACCEPT - IPv6 forwarded to the outside"),
    tcp("r1", L4, 9000, v4("r1"), "Docker: ACCEPT - masquerade off, the LAN sees the container's address"),
    tcp("r1", L6, 9000, v6("r1"), "Docker: ACCEPT - IPv6 masquerade follows masquerade: off"),
]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


class Lab:
    """The host, its LAN and its sandboxes; ``ns(short)`` names a namespace of the lab."""

    def __init__(self) -> None:
        self.host = LabHost("%s-%d" % (RUN_PREFIX, next(_counter)))
        self.servers: list = []
        self.results: dict = {}

    def ns(self, short: str) -> str:
        return self.host.name if short == "host" else self.host.sandbox(short)

    def build_world(self) -> None:
        """host --uplink-- lan: dual stack; the LAN routes every container subnet through the host."""
        host, lan = self.host, self.ns("lan")
        sh("ip netns add %s" % lan)
        sh("ip link add uplink netns %s type veth peer name eth0 netns %s" % (host.name, lan))
        host.sh(
            "ip addr add %s/24 dev uplink && ip -6 addr add %s/64 dev uplink nodad && ip link set uplink up"
            " && ip route add default via %s && ip -6 route add default via %s" % (H4, H6, L4, L6)
        )
        sh(
            "ip link set lo up && ip addr add %s/24 dev eth0 && ip -6 addr add %s/64 dev eth0 nodad && ip link set "
            "eth0 up"
            " && ip route add 172.31.0.0/16 via %s && ip -6 route add 2001:db8::/32 via %s" % (L4, L6, H4, H6),
            netns=lan,
        )

    def serve(self, short: str, *ports: int) -> None:
        argv = ["nsenter", "--net=/run/netns/%s" % self.ns(short), "--", sys.executable, "-c", SERVE] + [
            str(p) for p in ports
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.servers.append(proc)
        ready = select.select([proc.stdout], [], [], 20)[0]
        line = proc.stdout.readline() if ready else ""
        assert line.strip() == "ready", "server in %s did not start: %s" % (
            short,
            proc.stderr.read() if proc.poll() is not None else "",
        )

    def probe(self, source: str, probes: list, timeout: float) -> dict:
        argv = [
            "nsenter",
            "--net=/run/netns/%s" % self.ns(source),
            "--",
            sys.executable,
            "-c",
            PROBE,
            json.dumps(probes),
            str(timeout),
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout * 3 + 30, check=False)
        assert proc.returncode == 0, "probes from %s failed: %s" % (source, proc.stderr)
        return json.loads(proc.stdout)

    def run(self, cells: list, timeout: float) -> dict:
        """Every cell at once (one prober per source namespace); cell ident -> answer."""
        by_source: dict = {}
        for cell in cells:
            by_source.setdefault(cell.source, []).append([cell.ident, cell.kind, cell.address, cell.port])
        results: dict = {}
        with ThreadPoolExecutor(max_workers=len(by_source) or 1) as pool:
            for answers in pool.map(lambda item: self.probe(item[0], item[1], timeout), by_source.items()):
                results.update(answers)
        return results

    def wait_addresses(self, deadline: float = 20, names=("host", "lan") + tuple(ENDPOINTS)) -> None:
        """No IPv6 address of the lab is still tentative (DAD), so every source address can be used."""
        end = time.monotonic() + deadline
        while True:
            pending = [n for n in names if sh("ip -6 addr show tentative", netns=self.ns(n)).stdout.strip()]
            if not pending:
                return
            assert time.monotonic() < end, "IPv6 addresses still tentative in %s" % pending
            time.sleep(0.1)

    def destroy(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
            for stream in (proc.stdout, proc.stderr):
                stream.close()
        self.host.destroy()


def build_networks(host: LabHost, names=tuple(NETWORKS)) -> None:
    for name in names:
        v4_prefix, v6_prefix, extra = NETWORKS[name]
        host.ok("cnm_bridge", name=name, subnet=v4_prefix + ".0/24", ipv6_subnet=v6_prefix + ":/64", **extra)


def attach(host: LabHost, names) -> None:
    host.ok(
        "cnm_endpoint",
        endpoints=[
            dict(network=ENDPOINTS[n][0], netns=host.sandbox(n), ipv4_address=v4(n), ipv6_address=v6(n)) for n in names
        ],
    )


@pytest.fixture(scope="module")
def lab():
    lab = Lab()
    try:
        lab.build_world()
        build_networks(lab.host)
        attach(lab.host, ENDPOINTS)
        lab.host.ok("cnm_port_publish", network="a", netns=lab.host.sandbox("a1"), ports=list(PORTS.values()))
        # The internal network's container routes everything to its gateway, so that only the firewall stops it.
        sh(
            "ip route add default via %s && ip -6 route add default via %s" % (gw4("int"), gw6("int")),
            netns=lab.ns("i1"),
        )
        for short, ports in SERVERS.items():
            lab.serve(short, *ports)
        lab.wait_addresses()
        results = lab.run(CELLS, CONNECT_TIMEOUT)
        missed = [cell for cell in CELLS if cell.expect is not None and results[cell.ident] != cell.expect]
        if missed:  # once more with a longer bound: load must not fail a cell
            results.update(lab.run(missed, RETRY_TIMEOUT))
        lab.results = results
        yield lab
    finally:
        lab.destroy()


@pytest.mark.parametrize("cell", CELLS, ids=[cell.ident for cell in CELLS])
def test_matrix(lab, cell):
    got = lab.results[cell.ident]
    if cell.expect is None:
        assert got.startswith("!"), "%s got through (answer %r); expected not: %s" % (cell.ident, got, cell.docker)
    else:
        assert got == cell.expect, "%s: got %r, expected %r: %s" % (cell.ident, got, cell.expect, cell.docker)
    if cell.differs:  # the README's "Differences from Docker" must list it
        assert "documented difference" in cell.docker


def test_every_cell_states_docker_behaviour():
    idents = [cell.ident for cell in CELLS]
    assert len(idents) == len(set(idents))
    assert all(cell.docker.startswith("Docker") for cell in CELLS)
    for family in (4, 6):  # every source is tried over both families
        sources = {cell.source for cell in CELLS if (":" in cell.address) == (family == 6)}
        assert sources >= {"lan", "host", "b1", "i1", "a2", "a1"}, family


# ---- removal: nothing is left (rules, map elements, sysctls, conntrack of removed mappings) ----

SYSCTLS = (
    "net.ipv4.ip_forward",
    "net.ipv6.conf.all.forwarding",
    "net.ipv6.conf.default.forwarding",
    "net.ipv6.conf.uplink.forwarding",
    "net.ipv4.conf.all.route_localnet",
    "net.ipv4.conf.uplink.route_localnet",
)
THROUGH = [tcp("lan", H4, 4001, L4, ""), tcp("lan", H6, 4001, L6, ""), tcp("host", "127.0.0.1", 4006, gw4("a"), "")]


def snapshot(host: LabHost) -> dict:
    """The host's snapshot without neighbour caches (the test's own traffic fills them)."""
    state = host.snapshot()
    for value in state.values():
        if isinstance(value, dict):
            value.pop("neighbours", None)
    return state


def sysctls(host: LabHost) -> dict:
    return {name: host.sh("sysctl -n %s" % name).stdout.strip() for name in SYSCTLS}


def flows(host: LabHost, port: int) -> list:
    """The host's conntrack entries (both families) whose original destination port is ``port``."""
    listing = host.sh(
        "conntrack -L -f ipv4 -p tcp --orig-port-dst %d 2>/dev/null; conntrack -L -f ipv6 -p tcp --orig-port-dst %d "
        "2>/dev/null" % (port, port),
        check=False,
    ).stdout
    return [line for line in listing.splitlines() if "dport=%d" % port in line]


@pytest.fixture
def world6():
    """A lab of its own with only the world (host, uplink, LAN) built."""
    lab = Lab()
    try:
        lab.build_world()
        yield lab
    finally:
        lab.destroy()


def publish_and_use(lab: Lab) -> None:
    build_networks(lab.host, ["a"])
    attach(lab.host, ["a1"])
    lab.host.ok("cnm_port_publish", network="a", netns=lab.host.sandbox("a1"), ports=list(PORTS.values()))
    lab.serve("a1", 80)
    lab.wait_addresses(names=("host", "lan", "a1"))
    answers = lab.run(THROUGH, RETRY_TIMEOUT)
    assert answers == {cell.ident: cell.expect for cell in THROUGH}
    assert flows(lab.host, 4001) and flows(lab.host, 4006)
    assert lab.host.sh("sysctl -n net.ipv4.conf.br-a.route_localnet").stdout.strip() == "1"


@pytest.mark.parametrize(
    "owner_forwarding", ["0", "1"], ids=["ipv6-forwarding-off-before", "ipv6-forwarding-on-before"]
)
def test_unpublish_detach_and_remove_leave_nothing(world6, owner_forwarding):
    host = world6.host
    host.sh("sysctl -qw net.ipv6.conf.all.forwarding=%s" % owner_forwarding)
    before, before_sysctls = snapshot(host), sysctls(host)
    build_networks(host, ["a"])
    attach(host, ["a1"])
    without_ports = host.ruleset()
    publish_and_use(world6)  # the network and the endpoint again (no change), then the ports
    assert sysctls(host)["net.ipv6.conf.all.forwarding"] == "1"

    host.ok("cnm_port_publish", network="a", netns=host.sandbox("a1"), state="absent")
    assert host.ruleset() == without_ports  # no rule and no map element of a port is left
    assert flows(host, 4001) == [] and flows(host, 4006) == []  # the removed mappings' conntrack entries went
    assert host.sh("sysctl -n net.ipv4.conf.br-a.route_localnet").stdout.strip() == "0"

    host.ok("cnm_endpoint", network="a", netns=host.sandbox("a1"), state="absent", delete_netns=True)
    host.ok("cnm_bridge", name="a", state="absent")
    assert snapshot(host) == before  # links, addresses, routes, the whole ruleset, the store
    assert sysctls(host) == before_sysctls  # forwarding of both families as the owner had it


def test_removing_the_network_takes_its_ports_and_their_flows(world6):
    host = world6.host
    before, before_sysctls = snapshot(host), sysctls(host)
    publish_and_use(world6)
    removed = host.ok("cnm_bridge", name="a", state="absent", force=True)
    assert removed["changed"]
    assert flows(host, 4001) == [] and flows(host, 4006) == []
    assert host.store().get("ports", {}) == {}
    host.sh("ip netns del %s" % host.sandbox("a1"), check=False)  # force detaches; the sandbox itself stays
    assert snapshot(host) == before
    assert sysctls(host) == before_sysctls
