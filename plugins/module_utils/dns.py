# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The name resolver: aardvark-dns (Podman's), one process per host namespace, answering at the gateways of the
networks with ``dns: true``.

Its configuration is a directory with one file per network (aardvark-dns's config.md): the first line lists the
gateways it listens on and, after a space, the network's own upstream servers; each other line is one endpoint:
``ID IPV4 IPV6 NAME,ALIAS,...``. aardvark-dns answers a query with the names of every network whose file lists the
asking address's ID, so one ID per sandbox (a hash of its key) lets a sandbox on two networks resolve the names of
both, as Docker's embedded DNS does; it forwards what it does not hold to the network's servers, else to the host's
resolv.conf. A name nobody on the asker's networks holds is NXDOMAIN.

Its weak spot: a query from an address it does not know (or a name not found) is answered from the names of the
network whose gateway received it, so an endpoint of network A asking network B's gateway would learn B's names.
The firewall (firewall.render_dns_guard) lets only packets from a network's own bridge reach its gateway's port 53.

A run writes the files and makes the process match them in one change (``sync``): started when it is not running
(also when found dead: the next run repairs it), reloaded with SIGHUP when it runs, stopped when no file is left.
It then waits until every gateway is bound, so the run ends with the resolver answering what the store holds.
Named namespaces get /etc/netns/NAME/resolv.conf (what ``ip netns exec`` mounts over /etc/resolv.conf), naming the
gateways of their networks with a resolver.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import time
from typing import Dict, List, Optional, Tuple

from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError, option_error
from ansible_collections.cnm.network.plugins.module_utils.plan import Op
from ansible_collections.cnm.network.plugins.module_utils.records import BridgeRecord
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST, SandboxRef

# Where distributions put it: Debian and Ubuntu, Fedora and RHEL (libexec), and a hand-built one on PATH.
BINARIES = ("/usr/lib/podman/aardvark-dns", "/usr/libexec/podman/aardvark-dns", "/usr/local/bin/aardvark-dns")
CONFIG_DIR = "dns"  # in the store's directory: one per host namespace, as the store
PID_FILE = "aardvark.pid"  # aardvark-dns writes it in its config directory
PORT = 53
READY_TIMEOUT = 5.0  # seconds for the resolver to bind its gateways (it binds in about a millisecond)
NETNS_ETC = "/etc/netns"
RESOLV_MARK = "# cnm.network: the resolver of network(s) "  # the first line of the resolv.conf files cnm writes


def sandbox_id(sandbox_key: str) -> str:
    """The ID of a sandbox in aardvark-dns's files: the same on every network, so its networks' names all answer."""
    return hashlib.sha256(sandbox_key.encode()).hexdigest()[:16]


def resolved(networks: dict) -> Dict[str, BridgeRecord]:
    """The networks whose names the resolver answers: those with ``dns`` (bridge and overlay networks)."""
    return {name: record for name, record in networks.items() if isinstance(record, BridgeRecord) and record.dns}


def gateways(record: BridgeRecord) -> List[str]:
    return [address for address in (record.gateway, record.ipv6_gateway) if address]


def endpoint_names(record) -> List[str]:
    """What an endpoint answers to: its name and aliases (lower case: aardvark-dns lowers the query), else the ID of
    its sandbox, so that it stays known to the resolver as an asker."""
    names: List[str] = []
    for name in ([record.name] if record.name else []) + list(record.aliases):
        if name.lower() not in names:
            names.append(name.lower())
    return names or [sandbox_id(record.sandbox)]


def render(state: dict) -> Dict[str, str]:
    """The configuration files the store asks for: network name -> the file's text."""
    files = {}
    endpoints = sorted(state["endpoints"].values(), key=lambda record: record.key)
    for name, record in sorted(resolved(state["networks"]).items()):
        lines = [",".join(gateways(record)) + (" " + ",".join(record.dns_servers) if record.dns_servers else "")]
        for endpoint in endpoints:
            if endpoint.network == name and (endpoint.ipv4_address or endpoint.ipv6_address):
                lines.append(
                    "%s %s %s %s"
                    % (
                        sandbox_id(endpoint.sandbox),
                        endpoint.ipv4_address or "",
                        endpoint.ipv6_address or "",
                        ",".join(endpoint_names(endpoint)),
                    )
                )
        files[name] = "\n".join(lines) + "\n"
    return files


def render_resolv_confs(state: dict) -> Dict[str, str]:
    """The resolv.conf of each named namespace with an endpoint on a network with a resolver: namespace -> text.

    It lists the gateways its endpoints can reach (an IPv6 gateway only for an endpoint with an IPv6 address), in the
    order of the networks' names; a resolver tries three at most (MAXNS)."""
    records = resolved(state["networks"])
    servers: Dict[str, Tuple[list, list]] = {}
    for key in sorted(state["endpoints"]):
        endpoint = state["endpoints"][key]
        ref = SandboxRef.from_key(endpoint.sandbox)
        network = records.get(endpoint.network)
        if ref.kind != "netns" or network is None:
            continue
        names, addresses = servers.setdefault(ref.value, ([], []))
        names.append(endpoint.network)
        if endpoint.ipv4_address and network.gateway:
            addresses.append(network.gateway)
        if endpoint.ipv6_address and network.ipv6_gateway:
            addresses.append(network.ipv6_gateway)
    return {
        netns: RESOLV_MARK + ", ".join(names) + "\n" + "".join("nameserver %s\n" % a for a in addresses[:3])
        for netns, (names, addresses) in servers.items()
    }


# ---- what is there ----


def config_dir(host) -> str:
    return os.path.join(host.store.directory, CONFIG_DIR)


def read_files(directory: str) -> Dict[str, str]:
    """The configuration files found: network name -> text (none when the directory is missing)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return {}
    files = {}
    for name in sorted(names):
        if name != PID_FILE:
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                files[name] = handle.read()
    return files


def running_pid(directory: str) -> Optional[int]:
    """The pid of the aardvark-dns serving ``directory``, or None when none runs (no pid file, or a pid that is no
    longer that process: a killed resolver leaves its pid file behind)."""
    try:
        with open(os.path.join(directory, PID_FILE), encoding="ascii") as handle:
            pid = int(handle.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = handle.read().split(b"\0")
    except (OSError, ValueError):
        return None
    if os.path.basename(argv[0]) != b"aardvark-dns" or directory.encode() not in argv:
        return None
    return pid


def bound_addresses(port: int = PORT) -> set:
    """The addresses UDP sockets of this namespace are bound to at ``port`` (from /proc/net/udp and udp6)."""
    found = set()
    tables = (("/proc/thread-self/net/udp", socket.AF_INET), ("/proc/thread-self/net/udp6", socket.AF_INET6))
    for path, family in tables:
        try:
            with open(path, encoding="ascii") as handle:
                next(handle)  # the header
                for line in handle:
                    local = line.split()[1]
                    address, hex_port = local.split(":")
                    if int(hex_port, 16) == port:
                        raw = bytes.fromhex(address)
                        # the kernel prints each 32-bit word in host order (little endian here)
                        raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                        found.add(socket.inet_ntop(family, raw))
        except FileNotFoundError:
            continue
    return found


def binary() -> Optional[str]:
    for path in BINARIES:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("aardvark-dns")


def read_resolv_conf(netns: str) -> Optional[str]:
    try:
        with open(os.path.join(NETNS_ETC, netns, "resolv.conf"), encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


# ---- what cnm_info reports (pure, over what read_facts found) ----


def read_facts(host) -> dict:
    """What the resolver of this host namespace is: its files, its pid (None: not running), the addresses bound on
    port 53."""
    directory = config_dir(host)
    return {"files": read_files(directory), "pid": running_pid(directory), "bound": bound_addresses()}


def report(state: dict, facts: dict) -> Tuple[dict, List[dict]]:
    """(The resolver as cnm_info shows it, its drift): a resolver that should run and does not, files that are not
    what the store asks for, a gateway it does not listen on. Each is repaired by the next run of any module."""
    wanted, files, pid = render(state), facts["files"], facts["pid"]
    view = {
        "running": pid is not None,
        "pid": pid,
        "networks": {
            network: {
                "listen": gateways(record),
                "listening": [a for a in gateways(record) if a in facts["bound"]] if pid is not None else [],
                "names": sorted(
                    {answered for e in state["endpoints"].values() if e.network == network for answered in _answered(e)}
                ),
            }
            for network, record in sorted(resolved(state["networks"]).items())
        },
    }
    found = []
    if wanted and pid is None:
        found.append(_drift("resolver_not_running", "aardvark-dns is not running", sorted(wanted), "not running", None))
    stale = sorted(name for name in set(wanted) | set(files) if wanted.get(name) != files.get(name))
    if stale:
        found.append(
            _drift(
                "resolver_config",
                "the resolver's files of network(s) %s are not what the store holds" % ", ".join(stale),
                {name: wanted.get(name) for name in stale},
                {name: files.get(name) for name in stale},
                stale[0] if len(stale) == 1 else None,
            )
        )
    if pid is not None:
        for name, network in view["networks"].items():
            missing = [a for a in network["listen"] if a not in network["listening"]]
            if missing:
                found.append(
                    _drift(
                        "resolver_not_listening",
                        "aardvark-dns does not listen on %s port %d" % (", ".join(missing), PORT),
                        network["listen"],
                        network["listening"],
                        name,
                    )
                )
    return view, found


def _answered(endpoint) -> List[str]:
    """The names an endpoint is known by (not the ID that stands in for none)."""
    return endpoint_names(endpoint) if endpoint.name or endpoint.aliases else []


def _drift(kind: str, message: str, expected, found, network: Optional[str]) -> dict:
    return {
        "kind": kind,
        "object": "resolver",
        "network": network,
        "sandbox": None,
        "expected": expected,
        "found": found,
        "message": message,
    }


# ---- the plan ----


def plan_resolver(host) -> None:
    """Add to the host's plan what makes the resolver's files, its process and the named namespaces' resolv.conf
    match the store (after the firewall's change: the guard rules are in place before it answers)."""
    directory = config_dir(host)
    wanted, present = render(host.state), read_files(directory)
    pid = running_pid(directory)
    if wanted and pid is None and binary() is None:
        raise option_error(
            "dns",
            True,
            "needs aardvark-dns, the resolver (package aardvark-dns; the role cnm.network.cnm_prepare installs it) "
            "for network(s) %s" % ", ".join(sorted(wanted)),
        )
    if wanted != present or (pid is None) != (not wanted):
        how = "start aardvark-dns" if pid is None else "reload aardvark-dns"
        if not wanted:
            how = "stop aardvark-dns" if pid is not None else "remove its files"
        changed = sorted(name for name in set(wanted) | set(present) if wanted.get(name) != present.get(name))
        what = "%s for network(s) %s" % (how, ", ".join(changed or sorted(wanted)))
        if pid is None and wanted and wanted == present:
            what += " (it was not running)"
        host.plan.add(
            "resolver",
            "resolver: " + what,
            _view(present, pid is not None) if present or pid is not None else None,
            _view(wanted, bool(wanted)) if wanted else None,
            Op(HOST, "sync_resolver", (directory, _pairs(wanted))),
            Op(HOST, "sync_resolver", (directory, _pairs(present))),
        )
    _plan_resolv_confs(host)


def _plan_resolv_confs(host) -> None:
    wanted = render_resolv_confs(host.state)
    before = render_resolv_confs(host.original)
    for netns in sorted(set(wanted) | set(before)):
        text = wanted.get(netns)
        found = read_resolv_conf(netns)
        if found == text:
            continue
        if found is not None and not found.startswith(RESOLV_MARK):
            if text is not None:
                networks = text.split("\n")[0][len(RESOLV_MARK) :]
                host.warnings.append(
                    "%s/%s/resolv.conf was not written by cnm.network: it is left as it is, so the namespace does "
                    "not use the resolver of network(s) %s" % (NETNS_ETC, netns, networks)
                )
            continue
        host.plan.add(
            "resolv.conf %s" % netns,
            "%s %s/%s/resolv.conf" % ("write" if text is not None else "remove", NETNS_ETC, netns),
            {"resolv.conf": found.splitlines()} if found is not None else None,
            {"resolv.conf": text.splitlines()} if text is not None else None,
            Op(HOST, "write_resolv_conf", (netns, text)),
            Op(HOST, "write_resolv_conf", (netns, found)),
        )


def _pairs(files: Dict[str, str]) -> tuple:
    return tuple(sorted(files.items()))


def _view(files: Dict[str, str], running: bool) -> dict:
    """The resolver in --diff: whether it runs, and each network's records (the lines after the gateways)."""
    return {
        "running": running,
        "networks": {
            name: {"listen": text.split("\n")[0], "records": text.rstrip("\n").split("\n")[1:]}
            for name, text in files.items()
        },
    }


# ---- verbs (run by Host.run_op) ----


def sync_resolver(host, directory: str, files: tuple) -> None:
    """Make the directory hold exactly ``files`` ((network, text) pairs) and the process match: started, reloaded or
    stopped; return once every listed gateway is bound (or raise)."""
    wanted = dict(files)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    staging = os.path.dirname(directory)  # written beside, renamed in: aardvark-dns reads every file of its directory
    for name in read_files(directory):
        if name not in wanted:
            os.unlink(os.path.join(directory, name))
    for name, text in wanted.items():
        temporary = os.path.join(staging, ".dns-%s.tmp" % name)
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, os.path.join(directory, name))
    pid = running_pid(directory)
    if not wanted:
        if pid is not None:
            _stop(pid)
        shutil.rmtree(directory, ignore_errors=True)
        return
    if pid is None:
        _start(host, directory)
    else:
        os.kill(pid, signal.SIGHUP)
    listen = {address for text in wanted.values() for address in text.split("\n")[0].split(" ")[0].split(",")}
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        missing = listen - bound_addresses()
        if not missing:
            return
        if time.monotonic() > deadline or running_pid(directory) is None:
            raise CnmError(
                "aardvark-dns is not listening on %s port %d (%s)"
                % (", ".join(sorted(missing)), PORT, "it exited" if running_pid(directory) is None else "timed out")
            )
        time.sleep(0.005)


def _start(host, directory: str) -> None:
    path = binary()
    if path is None:
        raise CnmError("aardvark-dns is not installed (package aardvark-dns)")
    try:
        os.unlink(os.path.join(directory, PID_FILE))  # a dead resolver's
    except FileNotFoundError:
        pass
    # It forks and returns once its child wrote the pid file; the child then binds the gateways.
    rc, out, err = host.run_command([path, "--config", directory, "-p", str(PORT), "run"])
    if rc != 0:
        raise CnmError("aardvark-dns failed to start (rc %d): %s" % (rc, (err or out).strip()))


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + READY_TIMEOUT
    while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    if os.path.exists("/proc/%d" % pid):
        os.kill(pid, signal.SIGKILL)


def write_resolv_conf(_host, netns: str, text: Optional[str]) -> None:
    """Write (or with None remove) /etc/netns/NETNS/resolv.conf; the directory goes when it is left empty."""
    directory = os.path.join(NETNS_ETC, netns)
    path = os.path.join(directory, "resolv.conf")
    if text is None:
        try:
            os.unlink(path)
            os.rmdir(directory)
        except FileNotFoundError:
            pass
        except OSError:
            pass  # the directory holds other files of the namespace's
        return
    os.makedirs(directory, mode=0o755, exist_ok=True)
    temporary = path + ".cnm-tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


VERBS = {verb.__name__: verb for verb in (sync_resolver, write_resolv_conf)}
