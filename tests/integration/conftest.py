"""Fixtures for tests on the real kernel: every test gets throwaway namespaces with a unique prefix.

A "host" is a network namespace standing in for a managed node; the modules run inside it
(``nsenter --net``, as the lab's connection plugin does) exactly as Ansible runs them, from a
JSON arguments file. Sandboxes are further namespaces named after the host. Everything a test
made is removed afterwards, even when it fails.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_PREFIX = "cnmt%s" % secrets.token_hex(2)  # unique per test run: two runs cannot collide
_counter = itertools.count(1)


def _collections_root() -> str:
    """A directory holding ansible_collections/cnm/network -> this checkout, removed when this process exits.

    Every process that imports this file makes one: pytest-xdist's controller too, which runs no fixture, so the
    session fixture's removal alone left the controller's behind after each run."""
    root = tempfile.mkdtemp(prefix="cnm-collections-")
    atexit.register(shutil.rmtree, root, True)
    os.makedirs(os.path.join(root, "ansible_collections", "cnm"))
    os.symlink(REPO, os.path.join(root, "ansible_collections", "cnm", "network"))
    return root


COLLECTIONS = _collections_root()
sys.path.insert(0, COLLECTIONS)


def _bytecode_outside_the_checkout() -> None:
    """Let the processes the tests start (modules, ansible-playbook) reuse compiled bytecode.

    With PYTHONDONTWRITEBYTECODE set (so no __pycache__ appears in the checkout), every module run
    compiled the collection's module_utils again: about a fifth of its CPU time. Bytecode goes to a
    cache of the test run's own outside the checkout instead (PYTHONPYCACHEPREFIX, in the run's
    collections root: removed with it at the end); Python checks each file against its source's
    mtime and size, so a changed source is always compiled afresh.
    """
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and not os.environ.get("PYTHONPYCACHEPREFIX"):
        del os.environ["PYTHONDONTWRITEBYTECODE"]
        os.environ["PYTHONPYCACHEPREFIX"] = os.path.join(COLLECTIONS, "pycache")


_bytecode_outside_the_checkout()

from ansible_collections.cnm.network.plugins.module_utils import netns as _netns  # noqa: E402


def sh(command: str, netns: str | None = None, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run a shell command, inside a named namespace when given (nsenter keeps the mount namespace)."""
    argv = ["/bin/sh", "-c", command]
    if netns is not None:
        argv = ["nsenter", "--net=/run/netns/%s" % netns, "--"] + argv
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(
            "%r in %s failed (%d): %s%s" % (command, netns or "root", proc.returncode, proc.stdout, proc.stderr)
        )
    return proc


def netns_names() -> list:
    return sorted(line.split()[0] for line in sh("ip netns list").stdout.splitlines() if line.strip())


def own_drift(drift: list, prefix: str) -> list:
    """/run/netns is every lab's: a namespace name of another test (caught between the two steps of its naming or
    removal by a loaded machine) is not the drift of the lab whose names start with ``prefix``. Only what a test
    controls is asserted."""
    return [item for item in drift if item["kind"] != "netns_stub" or item["sandbox"].startswith("netns:%s-" % prefix)]


class LabHost:
    """A throwaway namespace that plays a managed host, and the sandboxes named after it."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.name = prefix + "-host"
        self.python = os.environ.get("CNM_TEST_PYTHON", sys.executable)
        sh("ip netns add %s && ip -n %s link set lo up" % (self.name, self.name))

    def sandbox(self, short: str) -> str:
        """The global name of this host's sandbox ``short``."""
        return "%s-%s" % (self.prefix, short)

    def module(
        self,
        _module: str,
        check: bool = False,
        diff: bool = True,
        python: str | None = None,
        _timeout: float = 300,
        **args,
    ) -> dict:
        """Run cnm.network.NAME inside the host as Ansible would, and return its JSON result (``_timeout`` seconds at
        most)."""
        payload = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
        try:
            argv = [
                "nsenter",
                "--net=/run/netns/%s" % self.name,
                "--",
                python or self.python,
                "-m",
                "ansible_collections.cnm.network.plugins.modules.%s" % _module,
                handle.name,
            ]
            env = dict(os.environ, PYTHONPATH=COLLECTIONS)
            proc = subprocess.run(
                argv, capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(), timeout=_timeout, check=False
            )
        finally:
            os.unlink(handle.name)
        try:
            result = json.loads(proc.stdout)
        except ValueError as exc:
            raise AssertionError(
                "module %s printed no JSON (rc %d): %s %s" % (_module, proc.returncode, proc.stdout, proc.stderr)
            ) from exc
        if _module == "cnm_info" and "drift" in result:
            result["drift"] = own_drift(result["drift"], self.prefix)
        return result

    def ok(self, _module: str, **args) -> dict:
        result = self.module(_module, **args)
        assert not result.get("failed"), result
        return result

    def sh(self, command: str, **kwargs) -> subprocess.CompletedProcess:
        return sh(command, netns=self.name, **kwargs)

    def in_sandbox(self, short: str, command: str, **kwargs) -> subprocess.CompletedProcess:
        return sh(command, netns=self.sandbox(short), **kwargs)

    def namespaces(self) -> list:
        return [name for name in netns_names() if name.startswith(self.prefix + "-")]

    def store_path(self) -> str:
        fd = os.open("/run/netns/%s" % self.name, os.O_RDONLY)
        try:
            with _netns.entered(fd):
                cookie = _netns.current_cookie()
        finally:
            os.close(fd)
        return os.path.join("/run/cnm-network", cookie)

    def store(self) -> dict:
        try:
            with open(os.path.join(self.store_path(), "state.json")) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return {}

    def snapshot(self) -> dict:
        """Links, addresses, routes and neighbours of the host and its sandboxes, and the store.

        Only what a module sets is kept: the kernel's own asynchronous changes (carrier, DAD of
        link-local addresses, neighbour reachability) would make equal states look different.
        """
        state = {
            "netns": self.namespaces(),
            "store": self.store(),
            "ruleset": self.ruleset(),
            "ip_forward": self.sh("cat /proc/sys/net/ipv4/ip_forward").stdout,
        }
        for name in self.namespaces():
            links = json.loads(sh("ip -d -j link show", netns=name).stdout)
            addrs = json.loads(sh("ip -j addr show", netns=name).stdout)
            routes = json.loads(sh("ip -j route show table all; echo; ", netns=name).stdout or "[]")
            routes += json.loads(sh("ip -6 -j route show table all", netns=name).stdout or "[]")
            neigh = json.loads(sh("ip -j neigh show", netns=name).stdout or "[]")
            state[name] = {
                "links": sorted(
                    (
                        link["ifname"],
                        link.get("linkinfo", {}).get("info_kind"),
                        link["mtu"],
                        link.get("master"),
                        link.get("address"),
                        "UP" in link["flags"],
                        link.get("ifalias"),
                    )
                    for link in links
                ),
                "addresses": sorted(
                    (a["ifname"], i["local"], i["prefixlen"])
                    for a in addrs
                    for i in a.get("addr_info", [])
                    if not i["local"].startswith("fe80:")
                ),
                "routes": sorted(
                    json.dumps(_without_carrier(r), sort_keys=True)
                    for r in routes
                    if not r.get("dst", "").startswith(("fe80:", "ff00:"))
                ),
                "neighbours": sorted(
                    (n["dst"], n.get("dev"), n.get("lladdr"))
                    for n in neigh
                    if not n["dst"].startswith("fe80:") and _set_by_hand(n)
                ),
            }
        return state

    def ruleset(self) -> str:
        """The host's whole nftables ruleset (ours and anybody else's)."""
        return self.sh("nft list ruleset").stdout

    def links(self, short: str | None = None) -> list:
        """Interface names in the host (or in one of its sandboxes)."""
        output = sh("ip -j link show", netns=self.sandbox(short) if short else self.name).stdout
        return sorted(link["ifname"] for link in json.loads(output))

    def destroy(self) -> None:
        store = self.store_path() if os.path.exists("/run/netns/%s" % self.name) else None
        sandboxes = [n for n in self.namespaces() if n != self.name]
        for name in sandboxes + [self.name]:
            # a resolver (aardvark-dns) started by a module lives on in a deleted namespace: stop it first
            _kill_all(sh("ip netns pids %s" % name, check=False).stdout.split())
            sh("ip netns del %s" % name, check=False)
            shutil.rmtree("/etc/netns/%s" % name, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rmdir("/etc/netns")  # when nothing is left in it
        if store:
            shutil.rmtree(store, ignore_errors=True)


def _kill_all(pids: list) -> None:
    """SIGKILL the processes and wait (5 s at most) until each has exited: a zombie, or gone."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), 9)
    deadline = time.monotonic() + 5
    for pid in pids:
        while time.monotonic() < deadline:
            try:
                with open("/proc/%s/stat" % pid) as handle:
                    if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                        break
            except FileNotFoundError:
                break
            time.sleep(0.01)


@contextlib.contextmanager
def _lab_host():
    lab = LabHost("%s-%d" % (RUN_PREFIX, next(_counter)))
    try:
        yield lab
    finally:
        lab.destroy()


def _set_by_hand(neighbour: dict) -> bool:
    """A neighbour entry someone set (permanent, noarp), not one the kernel resolves on its own as traffic comes: an
    incomplete entry for a VTEP that does not answer appears whenever the VXLAN device floods a frame to it."""
    states = set(neighbour.get("state") or ())
    return not states or bool(states & {"PERMANENT", "NOARP"})


def _without_carrier(route: dict) -> dict:
    """A route without the kernel's ``linkdown`` flag: it follows the device's carrier, which a bridge loses some
    time after its last port leaves (a run saw the same state with and without it)."""
    flags = [flag for flag in route.get("flags", []) if flag != "linkdown"]
    return dict(route, flags=flags) if "flags" in route else route


@pytest.fixture
def host():
    with _lab_host() as lab:
        yield lab


@pytest.fixture(scope="module")
def shared_host():
    """One host for a whole test file, for tests that each leave it as they found it and check that they did
    (bad inputs compare snapshots): the lab they need is built once instead of once per test."""
    with _lab_host() as lab:
        yield lab


@pytest.fixture(scope="session", autouse=True)
def _no_leftovers():
    """The run leaves no namespace of its own behind (checked once all tests are done)."""
    links_before = sh("ip -br link").stdout
    yield
    deadline = time.time() + 5
    while time.time() < deadline and [n for n in netns_names() if n.startswith(RUN_PREFIX)]:
        time.sleep(0.2)
    leftovers = [n for n in netns_names() if n.startswith(RUN_PREFIX)]
    for name in leftovers:
        sh("ip netns del %s" % name, check=False)
    shutil.rmtree(COLLECTIONS, ignore_errors=True)
    assert not leftovers, "namespaces left behind: %s" % leftovers

    def orphans():
        return [
            line
            for line in sh("ps -eo pid=,args=").stdout.splitlines()
            if "aardvark-dns --config /run/cnm-network/" in line and not os.path.isdir(line.split()[3])
        ]

    # The check sees the whole machine: the other xdist worker may be tearing down a lab whose resolvers' files
    # are gone a moment before the resolvers are stopped. A resolver truly left behind stays for good.
    deadline = time.time() + 60
    while time.time() < deadline and orphans():
        time.sleep(0.5)
    assert not orphans(), "resolvers left running after their namespace: %s" % orphans()
    assert sh("ip -br link").stdout == links_before, "the root namespace's links changed"


LAN, INTERNET = "203.0.113.2", "198.51.100.2"


@pytest.fixture
def world(host):
    """host --uplink-- lan --wan-- internet; the host's default route points at the LAN router."""
    lan, net = host.sandbox("lan"), host.sandbox("internet")
    sh("ip netns add %s && ip netns add %s" % (lan, net))
    sh("ip link add uplink netns %s type veth peer name eth0 netns %s" % (host.name, lan))
    sh("ip link add wan netns %s type veth peer name eth0 netns %s" % (lan, net))
    host.sh("ip addr add 203.0.113.1/24 dev uplink && ip link set uplink up && ip route add default via %s" % LAN)
    sh(
        "ip addr add %s/24 dev eth0 && ip link set eth0 up && ip link set lo up && ip addr add 198.51.100.1/24 dev wan "
        "&& ip link set wan up"
        " && sysctl -qw net.ipv4.ip_forward=1" % LAN,
        netns=lan,
    )
    sh(
        "ip addr add %s/24 dev eth0 && ip link set eth0 up && ip link set lo up && ip route add default via "
        "198.51.100.1" % INTERNET,
        netns=net,
    )
    return lan, net


def tcp_connects(client_ns: str, server_ns: str, address: str, port: int = 8080, via: tuple | None = None) -> bool:
    """Start a one-shot TCP server in ``server_ns`` and connect to it from ``client_ns`` (at ``via``, an (address,
    port) such as a published port, instead of the server's own)."""
    server = subprocess.Popen(
        [
            "nsenter",
            "--net=/run/netns/%s" % server_ns,
            "--",
            sys.executable,
            "-c",
            "import socket;s=socket.socket(socket.AF_INET6 if ':' in %r else socket.AF_INET);"
            "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind((%r,%d));s.listen(1);s.settimeout(10);"
            "c,_=s.accept();c.sendall(b'cnm-ok');c.close()" % (address, address, port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = (
            "import socket,time\nfor i in range(50):\n"
            "    try:\n        c=socket.create_connection((%r,%d),timeout=2);print(c.recv(16).decode());break\n"
            "    except ConnectionRefusedError:\n        time.sleep(0.1)\n" % (via or (address, port))
        )
        proc = sh("%s -c %s" % (sys.executable, _quote(client)), netns=client_ns, check=False)
        return proc.stdout.strip() == "cnm-ok"
    finally:
        server.kill()
        server.wait()


@contextlib.contextmanager
def ingress_counters(netns: str, **counters):
    """Count the test's own packets: NAME=(DEVICE, MATCH) counts what enters DEVICE of NETNS and MATCH (nft syntax)
    selects, in a netdev table of the test's own; yields a function returning {NAME: packets}; the table goes on exit.

    An interface's statistics count the kernel's own traffic too (neighbour probes, IPv6 solicitations): a run
    saw one move by 1 while the test's packets were all dropped. Match what only the test sends (its addresses,
    ports, MACs).
    """
    table = "cnmtest_%s" % secrets.token_hex(3)
    commands = ["add table netdev %s" % table]
    for name, (device, match) in counters.items():
        hook = "{ type filter hook ingress device %s priority -500 ; }" % json.dumps(device)
        commands.append("add chain netdev %s count_%s %s" % (table, name, hook))  # a prefix: no nft keyword
        commands.append("add rule netdev %s count_%s %s counter" % (table, name, match))
    sh("nft -f - <<'EOF'\n%s\nEOF" % "\n".join(commands), netns=netns)

    def read() -> dict:
        listing = json.loads(sh("nft -j list table netdev %s" % table, netns=netns).stdout)["nftables"]
        return {
            item["rule"]["chain"][len("count_") :]: next(
                e["counter"]["packets"] for e in item["rule"]["expr"] if "counter" in e
            )
            for item in listing
            if "rule" in item
        }

    try:
        yield read
    finally:
        sh("nft delete table netdev %s" % table, netns=netns)


def pings(netns: str, address: str, extra: str = "") -> bool:
    return sh("ping -c 1 -W 2 %s %s" % (extra, address), netns=netns, check=False).returncode == 0


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def wait_for(condition, what: str, bound: float = 30.0):
    """Poll ``condition`` until it returns a true value (returned), for ``bound`` seconds at most; fail naming
    ``what``. For what the kernel or a daemon does on its own after a run (never a bare sleep)."""
    deadline = time.monotonic() + bound
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("not within %.0f s: %s" % (bound, what))
        time.sleep(0.1)


def wire_underlay(underlay: str, addressed: list) -> None:
    """Namespace ``underlay`` with a bridge ``ulbr``, and each (port number, LabHost, address) of ``addressed`` on it:
    a veth ``pN`` on the bridge, ``eth0`` with the address /24 in the host. Deleting ``underlay`` undoes it."""
    sh("ip netns add %s && ip -n %s link add ulbr type bridge && ip -n %s link set ulbr up" % ((underlay,) * 3))
    for number, host, address in addressed:
        sh("ip link add p%d netns %s type veth peer name eth0 netns %s" % (number, underlay, host.name))
        sh("ip -n %s link set p%d master ulbr up" % (underlay, number))
        host.sh("ip addr add %s/24 dev eth0 && ip link set eth0 up" % address)
