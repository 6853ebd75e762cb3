# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The name resolver: aardvark-dns (Podman's), one process per host namespace, answering at the gateways of the
networks with ``dns: true``.

Its configuration is a directory with one file per network (aardvark-dns's config.md): the first line lists the
gateways it listens on and, after a space, the network's own upstream servers; each other line is one endpoint:
``ID IPV4 IPV6 NAME,ALIAS,...``. aardvark-dns answers a query with the names of every network whose file lists the
asking address's ID, so one ID per sandbox (a hash of its key) lets a sandbox on two networks resolve the names of
both, as Docker's embedded DNS does. A single-label name nobody on the asker's networks holds is NXDOMAIN; longer
ones are forwarded to the network's servers, else to those of the host's resolv.conf.

Its weak spot: a query from an address it does not know (or a name not found) is answered from the names of the
network whose gateway received it, so an endpoint of network A asking network B's gateway would learn B's names.
The firewall (firewall.render_dns_guard) lets only packets from a network's own bridge reach its gateway's port 53.

A run writes the files and makes the process match them in one change (``sync``): started when it is not running
(also when found dead: the next run repairs it), reloaded with SIGHUP when it runs, stopped when no file is left.
After a reload it waits until the process has read every file again (inotify) and then until every gateway is
bound and every dropped one is not, so the run ends with the resolver answering what the store holds. (A new socket
is no sign: aardvark-dns 1.4 to 1.10 close their listeners and bind new ones before reading, 1.11 and later keep
them and swap the names in.)
In the host's own namespace with systemd and the unit cnm-dns.service (installed by the role cnm_prepare) the
process is systemd's service, started and stopped with systemctl; elsewhere (a namespace of the lab, a host
without the unit) the run starts the same binary itself.
Named namespaces get /etc/netns/NAME/resolv.conf (what ``ip netns exec`` mounts over /etc/resolv.conf), naming the
gateways of their networks with a resolver.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import signal
import socket
import struct
import sys
import time
from typing import Dict, List, Optional, Tuple

from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError, option_error
from ansible_collections.cnm.network.plugins.module_utils.netns import libc
from ansible_collections.cnm.network.plugins.module_utils.plan import Op
from ansible_collections.cnm.network.plugins.module_utils.records import BridgeRecord
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST, SandboxRef
from ansible_collections.cnm.network.plugins.module_utils.store import in_init_namespace

# Where distributions put it: Debian and Ubuntu, Fedora and RHEL (libexec), and a hand-built one on PATH; the
# environment variable names another (a newer aardvark-dns than the distribution's, say).
BINARY_VARIABLE = "CNM_NETWORK_AARDVARK_DNS"
BINARIES = ("/usr/lib/podman/aardvark-dns", "/usr/libexec/podman/aardvark-dns", "/usr/local/bin/aardvark-dns")
CONFIG_DIR = "dns"  # in the store's directory: one per host namespace, as the store
# The host's own namespace keeps it at a fixed path, the one of the systemd unit the role cnm_prepare installs
# (cnm-dns.service): there the modules start and stop the resolver through systemd, which also restarts it.
HOST_CONFIG_DIR = "/run/cnm-network/dns"
UNIT = "cnm-dns.service"
UNIT_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
PID_FILE = "aardvark.pid"  # aardvark-dns writes it in its config directory
PORT = 53
# Seconds for the resolver to bind its gateways: about a millisecond here, but more than 5 s when the restore
# started it at boot on the guest lab's emulated Debian.
READY_TIMEOUT = 30.0
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


def record_names(record) -> List[str]:
    """What an endpoint answers to: its name, NAME.NETWORK (as Docker answers ``x1.web``) and its aliases, in lower
    case (aardvark-dns lowers the query); else the ID of its sandbox, so that it stays known to the resolver as an
    asker."""
    return _names(record.name, record.network, record.aliases) or [sandbox_id(record.sandbox)]


def _names(name: Optional[str], network: str, aliases) -> List[str]:
    names: List[str] = []
    for each in ([name, "%s.%s" % (name, network)] if name else []) + list(aliases):
        if each.lower() not in names:
            names.append(each.lower())
    return names


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
                        ",".join(record_names(endpoint)),
                    )
                )
        for peer in getattr(record, "peers", ()):  # an overlay's endpoints on other hosts, as the play shares them
            for address, own, aliases in peer.names:
                names = _names(own, name, aliases)
                lines.append("%s %s  %s" % (sandbox_id("peer:%s" % address), address, ",".join(names)))
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
    if in_init_namespace():
        return HOST_CONFIG_DIR
    return os.path.join(host.store.directory, CONFIG_DIR)


def under_systemd(directory: str) -> bool:
    """The resolver of ``directory`` is systemd's to start and stop: the host's own, with systemd running and the
    unit installed."""
    return (
        directory == HOST_CONFIG_DIR
        and os.path.isdir("/run/systemd/system")
        and any(os.path.exists(os.path.join(where, UNIT)) for where in UNIT_DIRS)
    )


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
                    fields = line.split()
                    address, hex_port = fields[1].split(":")
                    if int(hex_port, 16) == port:
                        raw = bytes.fromhex(address)
                        if sys.byteorder == "little":  # the kernel prints each 32-bit word in host order
                            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                        found.add(socket.inet_ntop(family, raw))
        except FileNotFoundError:
            continue
    return found


def binary() -> Optional[str]:
    chosen = os.environ.get(BINARY_VARIABLE)
    if chosen:
        if not os.access(chosen, os.X_OK):
            raise CnmError("%s names %s, which is not an executable file" % (BINARY_VARIABLE, chosen))
        return chosen
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


def report(state: dict, facts: dict) -> Tuple[dict, List[tuple]]:
    """(The resolver as cnm_info shows it, its drift as (kind, message, network, expected, found)): a resolver that
    should run and does not, files that are not what the store asks for, a gateway it does not listen on. Each is
    repaired by the next run of any module."""
    wanted, files, pid = render(state), facts["files"], facts["pid"]
    view = {
        "running": pid is not None,
        "pid": pid,
        "networks": {
            network: {
                "listen": gateways(record),
                "listening": [a for a in gateways(record) if a in facts["bound"]] if pid is not None else [],
                "names": answered_names(state, network, record),
            }
            for network, record in sorted(resolved(state["networks"]).items())
        },
    }
    found = []
    if wanted and pid is None:
        found.append(("resolver_not_running", "aardvark-dns is not running", None, sorted(wanted), "not running"))
    stale = sorted(name for name in set(wanted) | set(files) if wanted.get(name) != files.get(name))
    if stale:
        found.append(
            (
                "resolver_config",
                "the resolver's files of network(s) %s are not what the store holds" % ", ".join(stale),
                stale[0] if len(stale) == 1 else None,
                {name: wanted.get(name) for name in stale},
                {name: files.get(name) for name in stale},
            )
        )
    if pid is not None:
        for name, network in view["networks"].items():
            missing = [a for a in network["listen"] if a not in network["listening"]]
            if missing:
                found.append(
                    (
                        "resolver_not_listening",
                        "aardvark-dns does not listen on %s port %d" % (", ".join(missing), PORT),
                        name,
                        network["listen"],
                        network["listening"],
                    )
                )
    return view, found


def answered_names(state: dict, network: str, record: BridgeRecord) -> List[str]:
    """The names the resolver answers on a network: its endpoints' here and, on an overlay, those on other hosts."""
    names = set()
    for endpoint in state["endpoints"].values():
        if endpoint.network == network:
            names.update(_names(endpoint.name, network, endpoint.aliases))
    for peer in getattr(record, "peers", ()):
        for _address, own, aliases in peer.names:
            names.update(_names(own, network, aliases))
    return sorted(names)


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
    stopped; return once it answers from them (or raise)."""
    wanted = dict(files)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    found = read_files(directory)
    dropped = listened(found) - listened(wanted)
    staging = os.path.dirname(directory)  # written beside, renamed in: aardvark-dns reads every file of its directory
    for name in found:
        if name not in wanted:
            os.unlink(os.path.join(directory, name))
    for name, text in wanted.items():
        temporary = os.path.join(staging, ".dns-%s.tmp" % name)
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, os.path.join(directory, name))
    pid, systemd = running_pid(directory), under_systemd(directory)
    if not wanted:
        if systemd:
            _systemctl(host, "stop")
        elif pid is not None:
            _stop(pid)
        shutil.rmtree(directory, ignore_errors=True)
        return
    with ReadWatch(directory) as watch:
        if pid is not None:
            os.kill(pid, signal.SIGHUP)
            unread = set(wanted)
        else:
            unread = set()  # a start reads its files before it binds
            if systemd:
                _systemctl(host, "start")
            else:
                _start(host, directory)
        _wait_ready(directory, watch, unread, listened(wanted), dropped)


def listened(files: Dict[str, str]) -> set:
    """The gateways the files have the resolver listen on (each file's first line, before the space)."""
    return {address for text in files.values() for address in text.split("\n")[0].split(" ")[0].split(",")}


def _wait_ready(directory: str, watch, unread: set, listen: set, dropped: set) -> None:
    """Wait until the resolver has read the ``unread`` files, binds every ``listen`` address and none of
    ``dropped``."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        unread -= watch.read()
        bound = bound_addresses()
        missing, stale = listen - bound, dropped & bound
        if not unread and not missing and not stale:
            return
        exited = running_pid(directory) is None
        if exited or time.monotonic() > deadline:
            raise CnmError(_not_ready(exited, unread, missing, stale))
        time.sleep(0.002)


def _not_ready(exited: bool, unread: set, missing: set, stale: set) -> str:
    def listed(addresses: set) -> str:
        return ", ".join(sorted(addresses))

    if exited:
        return (
            "aardvark-dns exited without listening on %s port %d: is another DNS server bound to port %d on "
            "all addresses?" % (listed(missing), PORT, PORT)
        )
    if unread:
        return "aardvark-dns did not read %s within %d s of its reload" % (listed(unread), READY_TIMEOUT)
    if missing:
        return "aardvark-dns is not listening on %s port %d after %d s" % (listed(missing), PORT, READY_TIMEOUT)
    return "aardvark-dns still listens on %s port %d %d s after its reload" % (listed(stale), PORT, READY_TIMEOUT)


class ReadWatch:
    """The names of the files of a directory that were read (opened without writing and closed) since the watch
    began, from inotify: the sign that aardvark-dns has read its files after a SIGHUP."""

    IN_CLOSE_NOWRITE = 0x10
    FLAGS = os.O_NONBLOCK | os.O_CLOEXEC  # inotify_init1 takes them as IN_NONBLOCK and IN_CLOEXEC
    EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name

    def __init__(self, directory: str):
        self.fd = libc.inotify_init1(self.FLAGS)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, directory.encode(), self.IN_CLOSE_NOWRITE) < 0:
            code = ctypes.get_errno()
            if self.fd >= 0:
                os.close(self.fd)
            raise OSError(code, "inotify on %s: %s" % (directory, os.strerror(code)))
        self.names: set = set()

    def __enter__(self) -> ReadWatch:
        return self

    def __exit__(self, *_exc) -> None:
        os.close(self.fd)

    def read(self) -> set:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return self.names
            offset = 0
            while offset < len(data):
                length = self.EVENT.unpack_from(data, offset)[3]
                start = offset + self.EVENT.size
                self.names.add(data[start : start + length].rstrip(b"\0").decode("utf-8", "replace"))
                offset = start + length


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


def _systemctl(host, verb: str) -> None:
    rc, out, err = host.run_command(["systemctl", verb, UNIT])
    if rc != 0:
        raise CnmError("systemctl %s %s failed (rc %d): %s" % (verb, UNIT, rc, (err or out).strip()))


def _stop(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + READY_TIMEOUT
    while os.path.exists("/proc/%d" % pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    if os.path.exists("/proc/%d" % pid):
        os.kill(pid, signal.SIGKILL)


def write_resolv_conf(_host, netns: str, text: Optional[str]) -> None:
    """Write (or with None remove) /etc/netns/NETNS/resolv.conf; its directory, and /etc/netns, go when left empty
    (an empty /etc/netns means nothing to ip netns)."""
    directory = os.path.join(NETNS_ETC, netns)
    path = os.path.join(directory, "resolv.conf")
    if text is None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        for empty in (directory, NETNS_ETC):
            try:
                os.rmdir(empty)
            except OSError:
                return  # not empty (other files of the namespace's, other namespaces'), or gone
        return
    temporary = path + ".cnm-tmp"
    for attempt in range(3):  # another namespace's run may remove an empty /etc/netns between our steps
        try:
            os.makedirs(directory, mode=0o755, exist_ok=True)
            with open(temporary, "w", encoding="utf-8") as handle:
                handle.write(text)
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    os.replace(temporary, path)


VERBS = {verb.__name__: verb for verb in (sync_resolver, write_resolv_conf)}
