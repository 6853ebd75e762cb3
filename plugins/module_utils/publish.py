# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning published ports (``docker run -p``): store entries the firewall room renders as DNAT.

A published port is one store entry keyed by its host side (``tcp/*:4000``); the rules follow from
the entries on every run (firewall.py). Only IPv4 container addresses are published in this release.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import Optional, Tuple

from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.firewall import conntrack_flow
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.netns import SandboxRef
from ansible_collections.cnm.network.plugins.module_utils.ports import PortMapping, docker_form, parse_ports
from ansible_collections.cnm.network.plugins.module_utils.store import endpoint_key

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


@dataclass(frozen=True)
class PublishSpec:
    network: str
    sandbox: Optional[SandboxRef]
    container_ip: Optional[ipaddress.IPv4Address]
    ports: Tuple[PortMapping, ...]
    state: str = "present"
    where: str = ""

    def opt(self, name: str) -> str:
        return self.where + name

    @classmethod
    def from_params(cls, params: dict, where: str = "") -> PublishSpec:
        if not params.get("network"):
            raise option_error(where + "network", None, "is required (the network of the endpoint)")
        given = [kind for kind in ("netns", "netns_path", "pid", "container_ip") if params.get(kind) not in (None, "")]
        if len(given) != 1:
            raise option_error(where + "netns", given or None, "exactly one of netns, netns_path, pid and container_ip must be given")
        sandbox = container_ip = None
        if given[0] == "container_ip":
            try:
                container_ip = ipaddress.ip_address(str(params["container_ip"]))
            except ValueError as exc:
                raise option_error(where + "container_ip", params["container_ip"], "is not an IP address") from exc
            if container_ip.version != 4:
                raise option_error(where + "container_ip", container_ip, "is IPv6: this release publishes ports of IPv4 addresses")
        else:
            sandbox = SandboxRef(given[0], str(params[given[0]]))
        state = params.get("state") or "present"
        if state == "present" and not params.get("ports"):
            raise option_error(where + "ports", None, "is required with state=present")
        ports = parse_ports(params.get("ports") or [], option=where + "ports")
        return cls(str(params["network"]), sandbox, container_ip, ports, state, where)


class PublishPlanner:
    """Plans the published ports of one module run; host facts (addresses, bound sockets) are read once."""

    def __init__(self, host: Host, exclusive: bool = False) -> None:
        self.host = host
        self.exclusive = exclusive  # the listed ports are all an endpoint has: its others are removed
        self._local: Optional[set] = None
        self._bound: Optional[list] = None
        self._by_port: Optional[dict] = None  # (protocol, host port) -> store keys, for the conflict check

    def plan(self, spec: PublishSpec) -> dict:
        """Add or remove the store entries of one endpoint's published ports."""
        host = self.host
        if spec.state == "absent":
            return self._absent(spec)
        if host.check_mode and not _endpoint_known(host, spec):
            host.predict_after_earlier_task("ports of %s on %s" % (spec.network, spec.sandbox.key if spec.sandbox else spec.container_ip),
                                            "publish %s" % ", ".join(map(docker_form, spec.ports)), "the endpoint on network %s" % spec.network)
            return {"network": spec.network, "ports": [docker_form(mapping) for mapping in spec.ports]}
        network = host.network(spec.network, spec.opt("network"))
        if network.driver == "macvlan":
            raise option_error(spec.opt("network"), network.name, "is a macvlan network: its endpoints are on the LAN with their own addresses, "
                               "so reach them there; ports cannot be published from the host to them (Docker ignores -p on macvlan too)")
        endpoint = _endpoint(host, spec, network)
        owner = endpoint["sandbox"]
        if network.internal:
            raise option_error(spec.opt("network"), network.name, "is internal: nothing outside can reach it, so it cannot publish ports")
        entries = host.state.setdefault("ports", {})
        published, listed = [], set()
        for number, mapping in enumerate(spec.ports):
            where = spec.opt("ports[%d]" % number)
            if mapping.host_ip is None and network.host_binding_ip is not None:
                mapping = PortMapping(network.host_binding_ip, mapping.host_port, mapping.container_port, mapping.protocol)
            self._check_host_ip(where, mapping)
            self._check_conflicts(where, mapping, owner, network.name)
            entry = dict(mapping.to_record(), network=network.name, sandbox=owner, container_ip=endpoint["ipv4_address"])
            if entries.get(mapping.key) != entry:
                if mapping.key not in entries:
                    self._refuse_bound_port(where, mapping)
                entries[mapping.key] = entry
                self._index().setdefault((mapping.protocol, mapping.host_port), set()).add(mapping.key)
                if entry["protocol"] == "udp":  # UDP flows would keep answering from the old mapping
                    host.conntrack_flush.add(conntrack_flow(entry))
            published.append(docker_form(mapping))
            listed.add(mapping.key)
        if self.exclusive:
            others = [key for key, entry in entries.items() if (entry["network"], entry["sandbox"]) == (network.name, owner) and key not in listed]
            self._remove(others)
        return {"network": network.name, "sandbox": owner, "container_ip": endpoint["ipv4_address"], "ports": published}

    def _absent(self, spec: PublishSpec) -> dict:
        """Remove the endpoint's entries (all, or those listed); an endpoint already gone is no error."""
        entries = self.host.state.get("ports", {})
        if spec.sandbox is not None:
            owner = spec.sandbox.key
            mine = [key for key, entry in entries.items() if (entry["network"], entry["sandbox"]) == (spec.network, owner)]
        else:
            owner = str(spec.container_ip)
            mine = [key for key, entry in entries.items() if (entry["network"], entry["container_ip"]) == (spec.network, owner)]
        removed = [key for key in mine if not spec.ports or any(key == mapping.key for mapping in spec.ports)]
        self._remove(removed)
        return {"network": spec.network, "sandbox": owner, "removed": sorted(removed)}

    def _remove(self, keys: list) -> None:
        entries = self.host.state.get("ports", {})
        for key in keys:
            entry = entries.pop(key)
            self._index().get((entry["protocol"], entry["host_port"]), set()).discard(key)
            self.host.conntrack_flush.add(conntrack_flow(entry))  # a removed mapping leaves no flow of its own
        if "ports" in self.host.state and not entries:
            del self.host.state["ports"]

    def _check_host_ip(self, where: str, mapping: PortMapping) -> None:
        if mapping.host_ip is None or (mapping.host_ip.version == 4 and mapping.host_ip.is_unspecified):
            return
        if mapping.host_ip.version == 6:
            raise option_error(where + ".host_ip", mapping.host_ip, "is IPv6: this release publishes on IPv4 host addresses")
        if self._local is None:
            self._local = _host_addresses(self.host)
        if mapping.host_ip not in self._local:
            raise option_error(where + ".host_ip", mapping.host_ip, "is not an address of this host (%s)" % ", ".join(sorted(map(str, self._local))))

    def _index(self) -> dict:
        if self._by_port is None:
            self._by_port = {}
            for key, entry in self.host.state.get("ports", {}).items():
                self._by_port.setdefault((entry["protocol"], entry["host_port"]), set()).add(key)
        return self._by_port

    def _check_conflicts(self, where: str, mapping: PortMapping, owner: str, network: str) -> None:
        entries = self.host.state["ports"]
        for key in sorted(self._index().get((mapping.protocol, mapping.host_port), ())):
            entry = entries[key]
            other = PortMapping(ipaddress.ip_address(entry["host_ip"]) if entry["host_ip"] else None, entry["host_port"], entry["container_port"],
                                entry["protocol"])
            if not other.overlaps(mapping):
                continue
            if (entry["sandbox"], entry["network"]) != (owner, network):
                raise option_error(where, docker_form(mapping), "host port already published to %s on network %s (%s)"
                                   % (entry["sandbox"], entry["network"], docker_form(other)))
            if key != mapping.key:
                raise option_error(where, docker_form(mapping), "overlaps %s, already published for this endpoint" % docker_form(other))

    def _refuse_bound_port(self, where: str, mapping: PortMapping) -> None:
        """A host process listening on the port would be shadowed by the DNAT: name it and refuse."""
        if self._bound is None:
            self._bound = _bound_sockets()
        for protocol, hex_address, port, inode in self._bound:
            if (protocol, port) == (mapping.protocol, mapping.host_port) and _clashes(hex_address, mapping):
                raise option_error(where, docker_form(mapping), "host port is already bound by %s on this host" % _socket_owner(inode))


def _endpoint_known(host: Host, spec: PublishSpec) -> bool:
    if spec.network not in host.state["networks"]:
        return False
    if spec.sandbox is not None:
        return endpoint_key(spec.network, spec.sandbox.key) in host.state["endpoints"]
    return any(r["network"] == spec.network and r.get("ipv4_address") == str(spec.container_ip) for r in host.state["endpoints"].values())


def _endpoint(host: Host, spec: PublishSpec, network) -> dict:
    """The endpoint record behind the spec (by sandbox, or by container address)."""
    if spec.sandbox is not None:
        record = host.state["endpoints"].get(endpoint_key(network.name, spec.sandbox.key))
        if record is None:
            raise option_error(spec.opt(spec.sandbox.kind), spec.sandbox.value, "has no endpoint on network %s (attach it with cnm_endpoint)" % network.name)
        return record
    for record in host.state["endpoints"].values():
        if record["network"] == network.name and record.get("ipv4_address") == str(spec.container_ip):
            return record
    raise option_error(spec.opt("container_ip"), spec.container_ip, "is not the address of an endpoint on network %s" % network.name)


def _host_addresses(host: Host) -> set:
    addresses = {ipaddress.ip_address("127.0.0.1")}
    for link in host.kernel.host.links().values():
        addresses.update(a.ip for a in host.kernel.host.addresses(link.index) if a.version == 4)
    return addresses


def _bound_sockets() -> list:
    """(protocol, hex address, port, inode) of the host's listening TCP and bound UDP sockets, read once."""
    found = []
    for protocol, tables in (("tcp", ("tcp", "tcp6")), ("udp", ("udp", "udp6"))):
        for table in tables:
            try:
                with open("/proc/self/net/%s" % table) as handle:
                    lines = handle.read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if protocol == "tcp" and fields[3] != _LISTEN:
                    continue
                address, port = fields[1].rsplit(":", 1)
                found.append((protocol, address, int(port, 16), fields[9]))
    return found


def _clashes(hex_address: str, mapping: PortMapping) -> bool:
    """Whether a socket bound to this /proc/net address takes the mapping's host address."""
    if mapping.host_ip is None or mapping.host_ip.is_unspecified or set(hex_address) == {"0"}:
        return True
    if len(hex_address) != 8:  # an IPv6 socket on a specific address: not an IPv4 mapping's address
        return False
    return ipaddress.IPv4Address(bytes(reversed(bytes.fromhex(hex_address)))) == mapping.host_ip


def _socket_owner(inode: str) -> str:
    target = "socket:[%s]" % inode
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir("/proc/%s/fd" % pid):
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == target:
                    with open("/proc/%s/comm" % pid) as handle:
                        return "process %s (%s)" % (pid, handle.read().strip())
        except OSError:
            continue
    return "a socket (inode %s)" % inode
