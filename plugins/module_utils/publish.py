# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning published ports (``docker run -p``): store entries the firewall room renders as DNAT.

A published port is one store entry keyed by its host side (``tcp/*:4000``); the rules follow from
the entries on every run (firewall.py), IPv4 DNAT to ``container_ip`` and IPv6 DNAT to ``container_ipv6``.

One binding has one key: as in Docker 27+, ``P:C`` is ``0.0.0.0:P:C`` plus ``[::]:P:C`` when the endpoint has
IPv6, so ``0.0.0.0:P:C`` of an endpoint without IPv6 is stored as ``P:C`` (``canonical_host_ip``), and the two
family halves of one endpoint and container port are merged into one ``P:C`` entry.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Optional, Tuple

from ansible_collections.cnm.network.plugins.module_utils import netns
from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.firewall import conntrack_flow
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.listeners import bound_by, clashing, listeners
from ansible_collections.cnm.network.plugins.module_utils.model import SANDBOX_OPTIONS, parse_sandbox
from ansible_collections.cnm.network.plugins.module_utils.ports import (
    ANY,
    PortMapping,
    canonical_host_ip,
    docker_form,
    entry_mapping,
    entry_slots,
    parse_numbered_ports,
    slots_cover,
    slots_overlap,
)
from ansible_collections.cnm.network.plugins.module_utils.records import EndpointRecord, PortRecord, endpoint_key
from ansible_collections.cnm.network.plugins.module_utils.sandbox import SandboxRef

PUBLISH_SANDBOX_OPTIONS = SANDBOX_OPTIONS + ("container_ip",)  # the endpoint: by its sandbox or by its address


@dataclass(frozen=True)
class PublishSpec:
    network: str
    sandbox: Optional[SandboxRef]
    container_ip: Optional[ipaddress._BaseAddress]  # the endpoint by its IPv4 or IPv6 address
    ports: Tuple[PortMapping, ...]
    state: str = "present"
    where: str = ""
    item_numbers: Tuple[int, ...] = ()  # the ``ports`` item of each mapping (a range is one item of many mappings)

    def opt(self, name: str) -> str:
        return self.where + name

    @classmethod
    def from_params(cls, params: dict, where: str = "") -> PublishSpec:
        if not params.get("network"):
            raise option_error(where + "network", None, "is required (the network of the endpoint)")
        kind, sandbox = parse_sandbox(params, where, PUBLISH_SANDBOX_OPTIONS)
        container_ip = None
        if kind == "container_ip":
            try:
                container_ip = ipaddress.ip_address(str(params["container_ip"]))
            except ValueError as exc:
                raise option_error(where + "container_ip", params["container_ip"], "is not an IP address") from exc
        state = params.get("state") or "present"
        if state == "present" and not params.get("ports"):
            raise option_error(where + "ports", None, "is required with state=present")
        numbered = parse_numbered_ports(params.get("ports") or [], option=where + "ports")
        return cls(
            str(params["network"]),
            sandbox,
            container_ip,
            tuple(mapping for mapping, _number in numbered),
            state,
            where,
            tuple(number for _mapping, number in numbered),
        )


def check_containers(host: Host, specs) -> None:
    """Publishing for a stopped container is refused; in check mode one an earlier task may start is warned about."""
    present = [spec for spec in specs if spec.state == "present"]
    for spec in netns.check_containers(present, host.check_mode):
        host.warnings.append(
            "a running %s container %s does not exist yet; in check mode its ports are reported as they would be "
            "published once an earlier task starts it" % (spec.sandbox.runtime, spec.sandbox.value)
        )


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
            host.predict_after_earlier_task(
                "ports of %s on %s" % (spec.network, spec.sandbox.key if spec.sandbox else spec.container_ip),
                "publish %s" % ", ".join(map(docker_form, spec.ports)),
                "the endpoint on network %s" % spec.network,
            )
            return {"network": spec.network, "ports": [docker_form(mapping) for mapping in spec.ports]}
        network = host.network(spec.network, spec.opt("network"))
        host.reclaim_vanished(network.name)  # leases (and ports) of vanished sandboxes go before their ports conflict
        self._by_port = None
        if network.no_ports:
            raise option_error(spec.opt("network"), network.name, network.no_ports)
        endpoint = _endpoint(host, spec, network)
        owner = endpoint.sandbox
        if network.internal:
            raise option_error(
                spec.opt("network"),
                network.name,
                "is internal: nothing outside can reach it, so it cannot publish ports",
            )
        addresses = endpoint.addresses
        entries = host.state.setdefault("ports", {})
        published, listed = [], set()
        for index, mapping in enumerate(spec.ports):
            where = spec.opt("ports[%d]" % (spec.item_numbers[index] if spec.item_numbers else index))
            mapping = self._binding(where, mapping, network, addresses, owner)
            self._check_host_ip(where, mapping)
            entry = PortRecord(
                network=network.name,
                sandbox=owner,
                container_ip=addresses[0],
                container_ipv6=addresses[1],
                **mapping.to_record(),
            )
            covering, absorbed = self._check_conflicts(where, mapping, entry)
            if covering is not None:  # already published by a wider binding of this endpoint: nothing to change
                published.append(docker_form(entry_mapping(entries[covering])))
                listed.add(covering)
                continue
            if entries.get(mapping.key) != entry:
                if mapping.key not in entries:  # the host addresses it newly takes must be free
                    held = [slot for key in absorbed for slot in entry_slots(entries[key])]
                    self._refuse_bound_port(
                        where,
                        mapping,
                        frozenset(s for s in entry_slots(entry) if not slots_cover(frozenset(held), frozenset({s}))),
                    )
                for key in absorbed:  # the bindings this one replaces: their flows stay valid when it covers them
                    old = entries.pop(key)
                    self._index()[(old.protocol, old.host_port)].discard(key)
                    if old.container_port != mapping.container_port or not slots_cover(
                        entry_slots(entry), entry_slots(old)
                    ):
                        host.pending.flows.add(conntrack_flow(old))
                entries[mapping.key] = entry
                self._index().setdefault((mapping.protocol, mapping.host_port), set()).add(mapping.key)
                if entry.protocol == "udp":  # UDP flows would keep answering from the old mapping
                    host.pending.flows.add(conntrack_flow(entry))
            published.append(docker_form(mapping))
            listed.add(mapping.key)
        if self.exclusive:
            others = [
                key
                for key, entry in entries.items()
                if (entry.network, entry.sandbox) == (network.name, owner) and key not in listed
            ]
            self._remove(others)
        self._warn_shadowed(sorted(listed))
        return {
            "network": network.name,
            "sandbox": owner,
            "container_ip": addresses[0],
            "container_ipv6": addresses[1],
            "ports": published,
        }

    def _binding(self, where: str, mapping: PortMapping, network, addresses: tuple, owner: str) -> PortMapping:
        """The mapping as it is stored: the network's default host address applied, checked against the endpoint's
        families, in its canonical spelling, and merged with the other family's half of this endpoint."""
        ipv4, ipv6 = addresses[0] is not None, addresses[1] is not None
        host_ip = mapping.host_ip
        if host_ip is None and network.host_binding_ip is not None and network.host_binding_ip != ANY[4]:
            # Docker's default binding address: 0.0.0.0 (the default) means both families
            host_ip = network.host_binding_ip
        if host_ip is not None and not (ipv4 if host_ip.version == 4 else ipv6):
            source = "" if mapping.host_ip is not None else " (network %s's host_binding_ip)" % network.name
            other, needs = (6, "ipv6_subnet") if host_ip.version == 4 else (4, "a subnet")
            why = (
                "is IPv%d%s but the endpoint of %s on %s has no IPv%d address: publish on an IPv%d address, "
                "or attach the endpoint to a network with %s"
            )
            raise option_error(
                where + ".host_ip",
                host_ip,
                why % (host_ip.version, source, owner, network.name, host_ip.version, other, needs),
            )
        host_ip = canonical_host_ip(host_ip, ipv4, ipv6)
        if host_ip is not None and host_ip.is_unspecified and ipv4 and ipv6:
            # 0.0.0.0:P:C and [::]:P:C of one endpoint and container port together are P:C.
            other = ANY[6 if host_ip.version == 4 else 4]
            half = PortMapping(other, mapping.host_port, mapping.container_port, mapping.protocol)
            entry = self.host.state.get("ports", {}).get(half.key)
            if entry is not None and (entry.network, entry.sandbox, entry.container_port) == (
                network.name,
                owner,
                mapping.container_port,
            ):
                host_ip = None
        return PortMapping(host_ip, mapping.host_port, mapping.container_port, mapping.protocol)

    def _absent(self, spec: PublishSpec) -> dict:
        """Remove the endpoint's entries (all, or those listed); an endpoint already gone is no error.

        A listed binding removes its entry in its canonical spelling (``P:C`` also removes the ``0.0.0.0`` and ``[::]``
        halves); one half of a ``P:C`` entry of a dual-stack endpoint (``0.0.0.0:P:C``) leaves the other half
        published."""
        entries = self.host.state.get("ports", {})
        if spec.sandbox is not None:
            owner = spec.sandbox.key
            mine = [key for key, entry in entries.items() if (entry.network, entry.sandbox) == (spec.network, owner)]
        else:
            owner = str(spec.container_ip)
            field = "container_ip" if spec.container_ip.version == 4 else "container_ipv6"
            mine = [
                key for key, entry in entries.items() if (entry.network, getattr(entry, field)) == (spec.network, owner)
            ]
        removed, narrowed = [], {}
        for key in mine:
            entry = entries[key]
            if not spec.ports:
                removed.append(key)
                continue
            held = entry_mapping(entry).host_ip
            ipv4, ipv6 = entry.container_ip is not None, entry.container_ipv6 is not None
            for mapping in spec.ports:
                if (mapping.protocol, mapping.host_port) != (entry.protocol, entry.host_port):
                    continue
                wanted = canonical_host_ip(mapping.host_ip, ipv4, ipv6)
                # itself, or a half of P:C
                if held == wanted or (wanted is None and held is not None and held.is_unspecified):
                    removed.append(key)
                    break
                if held is None and wanted is not None and wanted.is_unspecified and ipv4 and ipv6:  # one half of P:C
                    narrowed[key] = ANY[6 if wanted.version == 4 else 4]
                    break
        self._remove(removed)
        for key, address in narrowed.items():
            entry = entries.pop(key)
            self._index().get((entry.protocol, entry.host_port), set()).discard(key)
            self.host.pending.flows.add(conntrack_flow(entry))
            mapping = PortMapping(address, entry.host_port, entry.container_port, entry.protocol)
            entries[mapping.key] = replace(entry, host_ip=str(address))
            self._index().setdefault((mapping.protocol, mapping.host_port), set()).add(mapping.key)
            removed.append(key)
        return {"network": spec.network, "sandbox": owner, "removed": sorted(removed)}

    def _remove(self, keys: list) -> None:
        entries = self.host.state.get("ports", {})
        for key in keys:
            entry = entries[key]
            self._index().get((entry.protocol, entry.host_port), set()).discard(key)
        self.host.drop_ports(keys)  # a removed mapping leaves no flow of its own

    def _check_host_ip(self, where: str, mapping: PortMapping) -> None:
        if mapping.host_ip is None or mapping.host_ip.is_unspecified:
            return
        if self._local is None:
            self._local = _host_addresses(self.host)
        if mapping.host_ip not in self._local:
            raise option_error(
                where + ".host_ip",
                mapping.host_ip,
                "is not an address of this host (%s)" % ", ".join(sorted(map(str, self._local))),
            )

    def _index(self) -> dict:
        if self._by_port is None:
            self._by_port = {}
            for key, entry in self.host.state.get("ports", {}).items():
                self._by_port.setdefault((entry.protocol, entry.host_port), set()).add(key)
        return self._by_port

    def _check_conflicts(self, where: str, mapping: PortMapping, entry: dict) -> tuple:
        """Refuse a binding that claims a host address and port of another endpoint, per family.

        Returns (the key of this endpoint's entry that already covers the binding or None, the keys of this
        endpoint's entries the binding covers and so replaces). With ``exclusive`` a binding of this endpoint that
        overlaps differently is replaced too (the list is all the endpoint has)."""
        entries = self.host.state["ports"]
        slots = entry_slots(entry)
        absorbed = []
        for key in sorted(self._index().get((mapping.protocol, mapping.host_port), ())):
            other = entries[key]
            mine = (other.sandbox, other.network) == (entry.sandbox, entry.network)
            if key == mapping.key and mine:
                continue
            other_slots = entry_slots(other)
            if not slots_overlap(slots, other_slots):
                continue
            if not mine:
                raise option_error(
                    where,
                    docker_form(mapping),
                    "host port already published to %s on network %s (%s)"
                    % (other.sandbox, other.network, docker_form(entry_mapping(other))),
                )
            same_target = other.container_port == mapping.container_port
            if same_target and slots_cover(other_slots, slots) and not self.exclusive:
                return key, []
            if (same_target and slots_cover(slots, other_slots)) or self.exclusive:
                absorbed.append(key)
                continue
            raise option_error(
                where,
                docker_form(mapping),
                "overlaps %s, already published for this endpoint" % docker_form(entry_mapping(other)),
            )
        return None, absorbed

    def _refuse_bound_port(self, where: str, mapping: PortMapping, slots: frozenset) -> None:
        """A host process listening on the port would be shadowed by the DNAT: name it and refuse."""
        if not slots:
            return
        if self._bound is None:
            self._bound = listeners()
        listener = clashing(self._bound, mapping.protocol, mapping.host_port, slots)
        if listener is not None:
            raise option_error(where, docker_form(mapping), bound_by(listener))

    def _warn_shadowed(self, keys: list) -> None:
        """A process that bound an already published port is bypassed by the DNAT: say so (cnm_info reports it as
        drift)."""
        entries = self.host.state.get("ports", {})
        for key in keys:
            entry = entries.get(key)
            if entry is None:
                continue
            if self._bound is None:
                self._bound = listeners()
            listener = clashing(self._bound, entry.protocol, entry.host_port, entry_slots(entry))
            if listener is not None:
                self.host.warnings.append(
                    "published port %s of %s on %s: %s, and the port's DNAT takes its "
                    "connections (the process is shadowed)" % (key, entry.sandbox, entry.network, bound_by(listener))
                )


def _endpoint_known(host: Host, spec: PublishSpec) -> bool:
    if spec.network not in host.state["networks"]:
        return False
    if spec.sandbox is not None:
        return endpoint_key(spec.network, spec.sandbox.key) in host.state["endpoints"]
    return any(
        r.network == spec.network and str(spec.container_ip) in (r.ipv4_address, r.ipv6_address)
        for r in host.state["endpoints"].values()
    )


def _endpoint(host: Host, spec: PublishSpec, network) -> EndpointRecord:
    """The endpoint record behind the spec (by sandbox, or by container address)."""
    if spec.sandbox is not None:
        record = host.state["endpoints"].get(endpoint_key(network.name, spec.sandbox.key))
        if record is None:
            raise option_error(
                spec.opt(spec.sandbox.kind),
                spec.sandbox.value,
                "has no endpoint on network %s (attach it with cnm_endpoint)" % network.name,
            )
        return record
    for record in host.state["endpoints"].values():
        if record.network == network.name and str(spec.container_ip) in (
            record.ipv4_address,
            record.ipv6_address,
        ):
            return record
    raise option_error(
        spec.opt("container_ip"), spec.container_ip, "is not the address of an endpoint on network %s" % network.name
    )


def _host_addresses(host: Host) -> set:
    """The host's own addresses of both families (IPv4 loopback included: 127.0.0.1 is published as Docker does)."""
    addresses = {ipaddress.ip_address("127.0.0.1")}
    for link in host.kernel.host.links().values():
        addresses.update(a.ip for a in host.kernel.host.addresses(link.index))
    return addresses
