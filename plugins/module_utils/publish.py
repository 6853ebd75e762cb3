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


def plan_publish(host: Host, spec: PublishSpec) -> dict:
    """Add or remove the store entries of one endpoint's published ports."""
    network = host.network(spec.network, spec.opt("network"))
    endpoint = _endpoint(host, spec, network)
    owner = endpoint["sandbox"]
    entries = host.state.setdefault("ports", {})
    if spec.state == "absent":
        removed = [key for key, entry in entries.items() if entry["network"] == network.name and entry["sandbox"] == owner
                   and (not spec.ports or any(key == mapping.key for mapping in spec.ports))]
        for key in removed:
            entry = entries.pop(key)
            host.conntrack_flush.add((entry["protocol"], entry["host_port"]))  # a removed mapping leaves no flow of its own
        if not entries:
            del host.state["ports"]
        return {"network": network.name, "sandbox": owner, "removed": sorted(removed)}
    if network.internal:
        raise option_error(spec.opt("network"), network.name, "is internal: nothing outside can reach it, so it cannot publish ports")
    local = _host_addresses(host)
    published = []
    for number, mapping in enumerate(spec.ports):
        where = spec.opt("ports[%d]" % number)
        if mapping.host_ip is None and network.host_binding_ip is not None:
            mapping = PortMapping(network.host_binding_ip, mapping.host_port, mapping.container_port, mapping.protocol)
        if mapping.host_ip is not None and mapping.host_ip.version == 6 and not mapping.host_ip.is_unspecified:
            raise option_error(where + ".host_ip", mapping.host_ip, "is IPv6: this release publishes on IPv4 host addresses")
        if mapping.host_ip is not None and mapping.host_ip.version == 4 and not mapping.host_ip.is_unspecified and mapping.host_ip not in local:
            raise option_error(where + ".host_ip", mapping.host_ip, "is not an address of this host (%s)" % ", ".join(sorted(map(str, local))))
        for key, entry in entries.items():
            other = PortMapping(ipaddress.ip_address(entry["host_ip"]) if entry["host_ip"] else None, entry["host_port"], entry["container_port"],
                                entry["protocol"])
            if other.overlaps(mapping) and (entry["sandbox"], entry["network"]) != (owner, network.name):
                raise option_error(where, docker_form(mapping), "host port already published to %s on network %s (%s)"
                                   % (entry["sandbox"], entry["network"], docker_form(other)))
            if other.overlaps(mapping) and key != mapping.key:
                raise option_error(where, docker_form(mapping), "overlaps %s, already published for this endpoint" % docker_form(other))
        entry = dict(mapping.to_record(), network=network.name, sandbox=owner, container_ip=endpoint["ipv4_address"])
        if entries.get(mapping.key) != entry:
            if mapping.key not in entries:
                _refuse_bound_port(where, mapping)
            entries[mapping.key] = entry
            if entry["protocol"] == "udp":  # UDP flows would keep answering from the old mapping
                host.conntrack_flush.add(("udp", entry["host_port"]))
        published.append(docker_form(mapping))
    return {"network": network.name, "sandbox": owner, "container_ip": endpoint["ipv4_address"], "ports": published}


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


def _refuse_bound_port(where: str, mapping: PortMapping) -> None:
    """A host process listening on the port would be shadowed by the DNAT: name it and refuse."""
    inode = _bound_socket(mapping)
    if inode is None:
        return
    raise option_error(where, docker_form(mapping), "host port is already bound by %s on this host" % _socket_owner(inode))


def _bound_socket(mapping: PortMapping) -> Optional[str]:
    tables = {"tcp": ("tcp", "tcp6"), "udp": ("udp", "udp6"), "sctp": ()}[mapping.protocol]
    for table in tables:
        try:
            with open("/proc/self/net/%s" % table) as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port = fields[1].rsplit(":", 1)
            if int(port, 16) != mapping.host_port or (mapping.protocol == "tcp" and fields[3] != _LISTEN):
                continue
            if _clashes(address, mapping):
                return fields[9]
    return None


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
