# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The info room: what exists (networks, endpoints, published ports, overlay peers), read from the
store and the kernel, and where the two disagree (drift). Read-only: nothing is planned or changed.

The kernel is read as facts first - one netlink session per namespace (the host's, and each
endpoint's sandbox), each dumped once, and one ``nft -j list ruleset`` - then the report is built
from the store and those facts by pure functions, which the unit tests drive with made-up facts.
Drivers are handled generically: a network record reports what it holds, and the devices it names
(``bridge_name``, ``vxlan_name``, ``shim_name``, ``parent``) are checked where they exist.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, List, Optional, Tuple

from ansible_collections.cnm.network.plugins.module_utils import dns, evpn, firewall, listeners, netns
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError, option_error
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.kernel import Kernel
from ansible_collections.cnm.network.plugins.module_utils.model import (
    ALIAS_PREFIX,
    BRIDGE_ALIAS_PREFIX,
    ENDPOINT_ALIAS_PREFIX,
    FLOOD_MAC,
    SANDBOX_OPTIONS,
    check_name,
    network_devices,
    parse_sandbox,
)
from ansible_collections.cnm.network.plugins.module_utils.ports import docker_form, entry_mapping, entry_slots
from ansible_collections.cnm.network.plugins.module_utils.records import (
    BridgeRecord,
    EndpointRecord,
    NetworkRecord,
    OverlayRecord,
    PortRecord,
    endpoint_key,
)
from ansible_collections.cnm.network.plugins.module_utils.sandbox import SandboxRef, choose_gateways, gateway_candidates

GATHER = ("networks", "endpoints", "ports", "peers")

# Drift kinds (documented in cnm_info's notes).
DRIFT_KINDS = (
    "network_device_missing",
    "network_device_foreign",
    "network_device_down",
    "network_mtu",
    "network_addresses",
    "vxlan_settings",
    "network_rules_missing",
    "endpoint_network_missing",
    "endpoint_sandbox_missing",
    "endpoint_interface_missing",
    "endpoint_host_interface_missing",
    "endpoint_interface_foreign",
    "endpoint_not_paired",
    "endpoint_not_on_bridge",
    "endpoint_down",
    "endpoint_mtu",
    "endpoint_mac",
    "endpoint_addresses",
    "port_endpoint_missing",
    "port_rules_missing",
    "port_shadowed",
    "firewall_rules_missing",
    "peer_fdb_missing",
    "peer_fdb_stale",
    "peer_neighbour_missing",
    "peer_neighbour_stale",
    "unclaimed_device",
    "unclaimed_rule",
    "sandbox_default_route_missing",
    "endpoint_port_flags",
    "host_sysctl",
    "netns_stub",
    "resolver_not_running",
    "resolver_config",
    "resolver_not_listening",
    "evpn_frr_unreachable",
    "evpn_session_down",
    "evpn_vni_unknown",
    "evpn_vtep_missing",
    "evpn_vtep_stale",
    "evpn_mac_missing",
    "evpn_mac_stale",
)


# ---- the question ----
@dataclass(frozen=True)
class InfoQuery:
    """What to report: ``networks`` None means all; ``sandbox`` None means every sandbox."""

    networks: Optional[Tuple[str, ...]] = None
    sandbox: Optional[SandboxRef] = None
    gather: FrozenSet[str] = frozenset(GATHER)
    frr_vty_socket: Optional[str] = None  # where vtysh finds FRR's daemons (None: FRR's default)

    @classmethod
    def from_params(cls, params: dict) -> InfoQuery:
        networks = None
        if params.get("network"):
            networks = tuple(sorted(set(check_name("network", str(name)) for name in params["network"])))
        sandbox = None
        given = {kind: params[kind] for kind in SANDBOX_OPTIONS if params.get(kind) not in (None, "")}
        if params.get("container_runtime") and "container" not in given:
            raise option_error(
                "container_runtime",
                params["container_runtime"],
                "needs 'container' (the container whose endpoints to report)",
            )
        if given:
            sandbox = parse_sandbox(dict(given, container_runtime=params.get("container_runtime")))[1]
        gather = params.get("gather")
        if gather is None:
            gather = GATHER
        unknown = sorted(set(gather) - set(GATHER))
        if unknown or not gather:
            raise option_error("gather", list(gather), "must list some of %s" % ", ".join(GATHER))
        return cls(networks, sandbox, frozenset(gather), params.get("frr_vty_socket") or None)

    @property
    def filtered(self) -> bool:
        return self.networks is not None or self.sandbox is not None


# ---- kernel facts (plain data: the unit tests make their own) ----
@dataclass(frozen=True)
class Device:
    """A link as the report shows it; ``master`` is the name of the bridge it is a port of."""

    name: str
    kind: Optional[str]
    mtu: int
    mac: Optional[str]
    up: bool
    operstate: str = "unknown"
    alias: Optional[str] = None
    master: Optional[str] = None
    index: int = 0
    peer_index: Optional[int] = None
    addresses: Tuple[str, ...] = ()
    routes: Tuple[str, ...] = ()
    mode: Optional[str] = None  # a macvlan's mode, "vlan VID" of an 802.1Q link
    vxlan: Optional[dict] = None
    port_flags: Optional[Tuple[bool, bool]] = None  # (isolated, hairpin) of a bridge port

    def describe(self) -> dict:
        state = {
            "name": self.name,
            "kind": self.kind,
            "mtu": self.mtu,
            "mac": self.mac,
            "up": self.up,
            "operstate": self.operstate,
            "alias": self.alias,
            "master": self.master,
            "addresses": list(self.addresses),
        }
        if self.routes:
            state["routes"] = list(self.routes)
        if self.mode is not None:
            state["mode"] = self.mode
        if self.vxlan is not None:
            state["vxlan"] = dict(self.vxlan)
        if self.port_flags is not None:
            state["isolated"], state["hairpin"] = self.port_flags
        return state


@dataclass
class NamespaceFacts:
    """The links of one namespace by name; for the host also the VXLAN tables and our nft rules."""

    devices: Dict[str, Device] = field(default_factory=dict)
    fdb: Dict[str, List[Tuple[str, str]]] = field(default_factory=dict)  # VXLAN device -> (MAC, VTEP)
    neighbours: Dict[str, List[Tuple[str, str]]] = field(default_factory=dict)  # VXLAN device -> (MAC, IP)
    # comment -> "family chain" of each rule in table cnm (and element text -> "inet map M"
    rules: Optional[Dict[str, str]] = None
    # of each element of its maps: published ports are map elements); None: not read
    # published port key -> "host port is already bound by process ..."
    shadowed: Dict[str, str] = field(default_factory=dict)
    # the host sysctls the store's networks need -> their value; None: not read
    sysctls: Optional[Dict[str, Optional[str]]] = None
    # EVPN overlays: every entry of their VXLAN device towards a VTEP (zebra's), and what FRR says; None: not read
    tunnel_fdb: Dict[str, List[Tuple[str, str]]] = field(default_factory=dict)
    frr: Optional[evpn.FrrFacts] = None


def read_namespace(session, routes: bool = False, port_flags: bool = False) -> NamespaceFacts:
    """Every link of one namespace with its addresses (and routes, bridge port flags), from a few dumps."""
    links = session.links()
    names = {link.index: name for name, link in links.items()}
    devices = {}
    for name, link in links.items():
        devices[name] = Device(
            name=name,
            kind=link.kind,
            mtu=link.mtu,
            mac=link.mac,
            up=link.up,
            operstate=link.operstate,
            alias=link.alias,
            master=names.get(link.master) if link.master else None,
            index=link.index,
            peer_index=link.peer_index,
            addresses=tuple(str(address) for address in session.addresses(link.index)),
            routes=tuple(route.describe() for route in session.routes(link.index)) if routes and name != "lo" else (),
            mode=link.mode,
            vxlan=link.vxlan,
            port_flags=session.port_flags(link.index) if port_flags and link.master else None,
        )
    return NamespaceFacts(devices)


def read_host(host: Host, state: dict, query: InfoQuery, warnings: list) -> NamespaceFacts:
    session = host.kernel.host
    facts = read_namespace(session, port_flags="endpoints" in query.gather)
    if "peers" in query.gather:
        evpn_overlays = False
        for record in state["networks"].values():
            device = facts.devices.get(record.vxlan_name) if isinstance(record, OverlayRecord) else None
            evpn_overlays = evpn_overlays or (isinstance(record, OverlayRecord) and record.control_plane == "evpn")
            if device is not None and device.kind == "vxlan":
                facts.fdb[device.name] = session.fdb(device.index, noarp=record.control_plane != "evpn")
                facts.neighbours[device.name] = session.neighbours(device.index)
                if record.control_plane == "evpn":
                    facts.tunnel_fdb[device.name] = session.tunnel_fdb(device.index)
        if evpn_overlays:  # one vtysh run for all of them
            facts.frr = evpn.read(host.run_command, query.frr_vty_socket)
    if "ports" in query.gather and state.get("ports"):
        facts.shadowed = shadowed_ports(state["ports"])
    if "networks" in query.gather:
        facts.sysctls = read_needed_sysctls(session, state)
    if query.gather & {"networks", "ports"}:
        nft = firewall.Nft(host.run_command)
        if nft.path is not None:
            ruleset = firewall.parse(nft.listing())
            facts.rules = {
                rule.get("comment", ""): "%s %s" % chain for chain, rules in ruleset.rules.items() for rule in rules
            }
            facts.rules.update((text, "inet map %s" % name) for name in ruleset.maps for text in ruleset.elements(name))
        elif rendered_rules(state):
            warnings.append(
                "the nft command was not found: the firewall rules of cnm networks and published ports were not checked"
            )
    return facts


def shadowed_ports(entries: Dict[str, dict]) -> Dict[str, str]:
    """The published ports a host process listens on (the DNAT takes its connections), with the process named."""
    found = listeners.listeners()
    shadowed = {}
    for key, entry in entries.items():
        listener = listeners.clashing(found, entry.protocol, entry.host_port, entry_slots(entry))
        if listener is not None:
            shadowed[key] = listeners.bound_by(listener)
    return shadowed


def read_sandboxes(host: Host, keys) -> Dict[str, Optional[NamespaceFacts]]:
    """Facts of each sandbox (one session each); None for a sandbox that no longer exists."""
    found: Dict[str, Optional[NamespaceFacts]] = {}
    for key in sorted(set(keys)):
        ref = SandboxRef.from_key(key)
        facts = None
        if host.kernel.sandbox_exists(ref):
            try:
                facts = read_namespace(host.kernel.sandbox(ref), routes=True)
            except (CnmError, OSError):  # it vanished between the check and the open
                facts = None
        found[key] = facts
    return found


def sandbox_matcher(machine: Kernel, ref: SandboxRef) -> Callable[[str], bool]:
    """Whether a record's sandbox key is the sandbox ``ref``: the same key, or the same namespace however named."""
    identities: Dict[str, Optional[tuple]] = {}

    def identity(key: str) -> Optional[tuple]:
        if key not in identities:
            identities[key] = machine.namespace_identity(SandboxRef.from_key(key))
        return identities[key]

    wanted = identity(ref.key)

    def matches(key: str) -> bool:
        return key == ref.key or (wanted is not None and identity(key) == wanted)

    return matches


# ---- what is selected ----
@dataclass(frozen=True)
class Selection:
    networks: Tuple[str, ...]
    endpoints: Tuple[str, ...]  # store keys
    ports: Tuple[str, ...]  # store keys
    missing: Tuple[str, ...] = ()  # network names asked for that the store does not hold


def select(state: dict, query: InfoQuery, matches: Optional[Callable[[str], bool]] = None) -> Selection:
    """The networks, endpoints and ports the filters keep. With a sandbox, only the networks it is on."""
    networks = set(state["networks"])
    missing: Tuple[str, ...] = ()
    if query.networks is not None:
        missing = tuple(name for name in query.networks if name not in networks)
        networks &= set(query.networks)
    endpoints = sorted(
        key
        for key, record in state["endpoints"].items()
        if (query.networks is None or record.network in query.networks) and (matches is None or matches(record.sandbox))
    )
    if matches is not None:
        networks &= {state["endpoints"][key].network for key in endpoints}
    ports = sorted(
        key
        for key, entry in state.get("ports", {}).items()
        if entry.network in networks or (query.networks is None and matches is None)
    )
    if matches is not None:
        ports = [key for key in ports if matches(state["ports"][key].sandbox)]
    return Selection(tuple(sorted(networks)), tuple(endpoints), tuple(ports), missing)


# ---- the report (pure) ----
def drift(
    kind: str,
    obj: str,
    message: str,
    network: Optional[str] = None,
    sandbox: Optional[str] = None,
    expected=None,
    found=None,
) -> dict:
    return {
        "kind": kind,
        "object": obj,
        "network": network,
        "sandbox": sandbox,
        "expected": expected,
        "found": found,
        "message": message,
    }


def _interfaces(*pairs) -> List[str]:
    """``ADDRESS/PREFIX`` texts of (address, network) pairs whose address is set, normalised."""
    return sorted(
        (
            str(ipaddress.ip_interface("%s/%d" % (address, ipaddress.ip_network(network).prefixlen)))
            for address, network in pairs
            if address and network
        ),
        key=_address_order,
    )


def _address_order(text: str) -> tuple:
    interface = ipaddress.ip_interface(text)
    return (interface.version, interface)


def network_view(name: str, record: NetworkRecord, facts: NamespaceFacts, state: dict) -> dict:
    """The record as stored (every key, whatever the driver), its devices' kernel state and its endpoints."""
    view = {"name": name}
    view.update(record.to_dict())
    if isinstance(record, OverlayRecord):
        view["control_plane"] = record.control_plane  # the file has it only when evpn
    devices = []
    for role, device_name, _kind in network_devices(record):
        device = facts.devices.get(device_name)
        entry = dict(device.describe(), present=True) if device is not None else {"name": device_name, "present": False}
        entry["role"] = role
        if device is not None and role == "bridge":
            entry["ports"] = sorted(other.name for other in facts.devices.values() if other.master == device_name)
        devices.append(entry)
    view["devices"] = devices
    view["endpoints"] = sorted(record_.sandbox for record_ in state["endpoints"].values() if record_.network == name)
    return view


def network_drift(name: str, record: NetworkRecord, facts: NamespaceFacts) -> List[dict]:
    found = []
    for role, device_name, kind in network_devices(record):
        device = facts.devices.get(device_name)
        what = "%s %s" % (role, device_name)
        if device is None:
            found.append(
                drift(
                    "network_device_missing",
                    what,
                    "network %s: its %s %s does not exist" % (name, role, device_name),
                    name,
                    expected={"name": device_name, "kind": kind},
                )
            )
            continue
        alias_ok = True
        if role == "bridge":
            alias_ok = device.alias == BRIDGE_ALIAS_PREFIX + name
        elif role != "parent":  # cnm's own devices name their network at the end of their alias
            alias_ok = (
                bool(device.alias) and device.alias.startswith(ALIAS_PREFIX) and device.alias.endswith(":" + name)
            )
        if (kind is not None and device.kind != kind) or not alias_ok:
            found.append(
                drift(
                    "network_device_foreign",
                    what,
                    "network %s: %s exists but is not its %s (kind %s, alias %s)"
                    % (name, device_name, role, device.kind, device.alias),
                    name,
                    expected={"kind": kind, "alias": BRIDGE_ALIAS_PREFIX + name if role == "bridge" else None},
                    found={"kind": device.kind, "alias": device.alias},
                )
            )
            continue
        if role == "parent":
            continue
        if not device.up:
            found.append(
                drift(
                    "network_device_down",
                    what,
                    "network %s: %s is down" % (name, device_name),
                    name,
                    expected=True,
                    found=False,
                )
            )
        if record.mtu is not None and device.mtu != record.mtu:
            found.append(
                drift(
                    "network_mtu",
                    what,
                    "network %s: %s has MTU %d, the store says %d" % (name, device_name, device.mtu, record.mtu),
                    name,
                    expected=record.mtu,
                    found=device.mtu,
                )
            )
        if role == "bridge":
            wanted = _interfaces((record.gateway, record.subnet), (record.ipv6_gateway, record.ipv6_subnet))
            if sorted(device.addresses, key=_address_order) != wanted:
                found.append(
                    drift(
                        "network_addresses",
                        what,
                        "network %s: %s carries %s, the store says %s"
                        % (name, device_name, ", ".join(device.addresses) or "no address", ", ".join(wanted)),
                        name,
                        expected=wanted,
                        found=list(device.addresses),
                    )
                )
        elif role == "shim" and record.host_access_ip:
            ips = [str(ipaddress.ip_interface(address).ip) for address in device.addresses]
            if record.host_access_ip not in ips:
                found.append(
                    drift(
                        "network_addresses",
                        what,
                        "network %s: the shim %s lacks host_access_ip %s" % (name, device_name, record.host_access_ip),
                        name,
                        expected=[record.host_access_ip],
                        found=list(device.addresses),
                    )
                )
        elif role == "vxlan":
            wanted_vxlan = {
                "vni": record.vni,
                "local": record.local_ip,
                "port": record.port,
                "learning": False,
                "proxy": True,
            }
            have = {key: (device.vxlan or {}).get(key) for key in wanted_vxlan}
            if have != wanted_vxlan:
                found.append(
                    drift(
                        "vxlan_settings",
                        what,
                        "network %s: %s has %s, the store says %s"
                        % (name, device_name, _settings(have), _settings(wanted_vxlan)),
                        name,
                        expected=wanted_vxlan,
                        found=have,
                    )
                )
    return found


def _settings(values: dict) -> str:
    return " ".join("%s %s" % (key, values[key]) for key in sorted(values))


def endpoint_view(
    key: str, record: EndpointRecord, host_facts: NamespaceFacts, sandbox_facts: Optional[NamespaceFacts]
) -> dict:
    """The record as stored, the sandbox as ``KIND: VALUE``, and the kernel state of both ends."""
    ref = SandboxRef.from_key(record.sandbox)
    view = record.to_dict()
    view["name"], view["aliases"] = record.name, list(record.aliases)  # the file leaves them out when unset
    view[ref.kind] = ref.value
    if ref.kind == "container":
        view["container_runtime"] = ref.runtime
    view["sandbox_exists"] = sandbox_facts is not None
    inner = sandbox_facts.devices.get(record.ifname or "") if sandbox_facts is not None else None
    view["interface"] = inner.describe() if inner is not None else None
    outer = host_facts.devices.get(record.host_ifname) if record.host_ifname else None
    view["host_interface"] = outer.describe() if outer is not None else None
    return view


def endpoint_drift(
    key: str,
    record: EndpointRecord,
    network: Optional[NetworkRecord],
    host_facts: NamespaceFacts,
    sandbox_facts: Optional[NamespaceFacts],
) -> List[dict]:
    """Where the endpoint's interfaces differ from its record; ``sandbox_facts`` None: the sandbox is gone."""
    name, sandbox = record.network, record.sandbox
    what = "endpoint %s" % key
    found = []

    def add(kind, obj, message, expected=None, found_=None):
        found.append(
            drift(kind, obj, "endpoint %s on %s: %s" % (sandbox, name, message), name, sandbox, expected, found_)
        )

    if network is None:
        add("endpoint_network_missing", what, "the store has no network %s" % name)
    if sandbox_facts is None:
        add(
            "endpoint_sandbox_missing",
            what,
            "its sandbox no longer exists (its lease is reclaimed by the next cnm_endpoint run on %s)" % name,
        )
        return found
    ifname = record.ifname
    inner = sandbox_facts.devices.get(ifname or "") if sandbox_facts is not None else None
    if inner is None:
        add(
            "endpoint_interface_missing",
            "interface %s in %s" % (ifname, sandbox),
            "interface %s is missing in the sandbox" % ifname,
        )
    elif not record.host_ifname and inner.alias != ENDPOINT_ALIAS_PREFIX + key:
        # Without a host end (macvlan), the interface in the sandbox carries the endpoint's alias itself.
        add(
            "endpoint_interface_foreign",
            "interface %s in %s" % (ifname, sandbox),
            "%s in the sandbox is not its interface (kind %s, alias %s)" % (ifname, inner.kind, inner.alias),
            {"alias": ENDPOINT_ALIAS_PREFIX + key},
            {"alias": inner.alias, "kind": inner.kind},
        )
    outer = None
    if record.host_ifname:
        host_ifname = record.host_ifname
        outer = host_facts.devices.get(host_ifname)
        if outer is None:
            add(
                "endpoint_host_interface_missing",
                "link %s" % host_ifname,
                "the host end %s of its veth is missing" % host_ifname,
            )
        elif outer.alias != ENDPOINT_ALIAS_PREFIX + key or (inner is not None and not _paired(inner, outer)):
            add(
                "endpoint_not_paired",
                "link %s" % host_ifname,
                "%s in the sandbox and %s on the host are not the two ends of its veth" % (ifname, host_ifname),
                {"alias": ENDPOINT_ALIAS_PREFIX + key},
                {"alias": outer.alias, "kind": inner.kind if inner is not None else None},
            )
        elif isinstance(network, BridgeRecord) and outer.master != network.bridge_name:
            add(
                "endpoint_not_on_bridge",
                "link %s" % host_ifname,
                "%s is not a port of bridge %s" % (host_ifname, network.bridge_name),
                network.bridge_name,
                outer.master,
            )
    mtu = network.mtu if network is not None else None
    for device, where in ((outer, "on the host"), (inner, "in the sandbox")):
        if device is None:
            continue
        obj = "link %s" % device.name if device is outer else "interface %s in %s" % (device.name, sandbox)
        if not device.up:
            add("endpoint_down", obj, "%s %s is down" % (device.name, where), True, False)
        if mtu is not None and device.mtu != mtu:
            add(
                "endpoint_mtu",
                obj,
                "%s %s has MTU %d, the network's is %d" % (device.name, where, device.mtu, mtu),
                mtu,
                device.mtu,
            )
    if inner is not None:
        obj = "interface %s in %s" % (inner.name, sandbox)
        if record.mac_address and inner.mac != record.mac_address:
            add(
                "endpoint_mac",
                obj,
                "%s has MAC %s, the store says %s" % (inner.name, inner.mac, record.mac_address),
                record.mac_address,
                inner.mac,
            )
        if network is not None:
            wanted = _interfaces(
                (record.ipv4_address, network.subnet),
                (record.ipv6_address, network.ipv6_subnet),
            )
            if sorted(inner.addresses, key=_address_order) != wanted:
                add(
                    "endpoint_addresses",
                    obj,
                    "%s carries %s, the store says %s"
                    % (inner.name, ", ".join(inner.addresses) or "no address", ", ".join(wanted)),
                    wanted,
                    list(inner.addresses),
                )
    return found


def _paired(inner: Device, outer: Device) -> bool:
    return inner.kind == "veth" and inner.peer_index == outer.index and outer.peer_index == inner.index


def port_view(key: str, entry: PortRecord, rules: Optional[Dict[str, str]], wanted: Dict[str, List[str]]) -> dict:
    view = dict(entry.to_dict(), key=key, published=docker_form(entry_mapping(entry)))
    view["rules_present"] = None if rules is None else all(comment in rules for comment in wanted.get(key, ()))
    return view


def port_drift(
    key: str,
    entry: PortRecord,
    state: dict,
    rules: Optional[Dict[str, str]],
    wanted: Dict[str, List[str]],
    shadowed: Optional[Dict[str, str]] = None,
    sandbox_exists: bool = True,
) -> List[dict]:
    network, sandbox = entry.network, entry.sandbox
    found = []
    record = state["endpoints"].get(endpoint_key(network, sandbox))
    if record is not None and not sandbox_exists:
        held = " and ".join(str(a) for a in (entry.container_ip, entry.container_ipv6) if a is not None)
        found.append(
            drift(
                "port_endpoint_missing",
                "port %s" % key,
                "port %s of %s on %s: its sandbox no longer exists, so address %s is held by no endpoint "
                "of the port's (the next cnm_endpoint, cnm_port_publish or network run on %s removes the "
                "port with the lease)" % (key, sandbox, network, held, network),
                network,
                sandbox,
                sandbox,
                None,
            )
        )
    ipv6 = entry.container_ipv6  # None: published for IPv4 only (and entries written before IPv6)
    if (
        record is None
        or record.ipv4_address != entry.container_ip
        or (ipv6 is not None and record.ipv6_address != ipv6)
    ):
        expected = entry.container_ip if ipv6 is None else [entry.container_ip, ipv6]
        had = (
            None
            if record is None
            else record.ipv4_address
            if ipv6 is None
            else [record.ipv4_address, record.ipv6_address]
        )
        found.append(
            drift(
                "port_endpoint_missing",
                "port %s" % key,
                "port %s of %s on %s: the store has no endpoint with address %s there"
                % (
                    key,
                    sandbox,
                    network,
                    " and ".join(str(a) for a in (entry.container_ip, ipv6) if a is not None),
                ),
                network,
                sandbox,
                expected,
                had,
            )
        )
    if shadowed and key in shadowed:
        found.append(
            drift(
                "port_shadowed",
                "port %s" % key,
                "port %s of %s on %s: %s; the port's DNAT takes its "
                "connections, so the process "
                "never sees them (Docker's proxy would hold the port)" % (key, sandbox, network, shadowed[key]),
                network,
                sandbox,
                None,
                shadowed[key],
            )
        )
    if rules is not None:
        what = "port %s of %s on %s" % (key, sandbox, network)
        found += rules_missing("port", key, what, "nft map element(s)", wanted.get(key, ()), rules, network, sandbox)
    return found


def rules_missing(owner: str, name: str, what: str, noun: str, wanted, rules: Dict[str, str], network, sandbox=None):
    """The drift ``OWNER_rules_missing`` when some of the rule comments ``wanted`` are missing from our table."""
    missing = [comment for comment in wanted if comment not in rules]
    if not missing:
        return []
    message = "%s: %d of its %d %s are missing from table inet cnm" % (what, len(missing), len(wanted), noun)
    return [drift("%s_rules_missing" % owner, "%s %s" % (owner, name), message, network, sandbox, missing)]


def rendered_rules(state: dict) -> list:
    """The rules every module run makes the table hold (as plan_firewall renders them): those of the bridged
    networks (a macvlan network's traffic passes the host's stack by, so it has none) and of the published ports."""
    return firewall.render(firewall.bridged(state["networks"]), state.get("ports", {}))


def rules_by_owner(state: dict) -> Tuple[Dict[str, List[str]], Dict[str, List[str]], List[str]]:
    """The comments of the rules the store renders: by port key (the texts of its map elements), by network, and the
    table-wide
    ones (among them the few DNAT rules that look the published ports up in the maps)."""
    ports: Dict[str, List[str]] = {}
    networks: Dict[str, List[str]] = {}
    shared: List[str] = []
    port_keys = set(state.get("ports", {}))
    rendered = rendered_rules(state)
    for rule in rendered + (firewall.render_elements(state.get("ports", {})) if rendered else []):
        words = rule.owner.split(" ")
        if words[0] == "port" and len(words) > 2 and words[2] in port_keys:
            ports.setdefault(words[2], []).append(rule.comment)
        elif words[0] == "network" and len(words) > 1:
            networks.setdefault(words[1], []).append(rule.comment)
        else:
            shared.append(rule.comment)
    return ports, networks, shared


def firewall_drift(state: dict, selection: Selection, query: InfoQuery, rules: Optional[Dict[str, str]]) -> List[dict]:
    """Rules of selected networks missing from our table, table-wide ones missing, and rules the store does not
    render."""
    if rules is None:
        return []
    by_port, by_network, shared = rules_by_owner(state)
    found = []
    if "networks" in query.gather:
        for name in selection.networks:
            wanted = by_network.get(name, ())
            found += rules_missing("network", name, "network %s" % name, "nft rule(s)", wanted, rules, name)
    if "ports" in query.gather and selection.ports:
        missing = [comment for comment in shared if comment not in rules]
        if missing:
            found.append(
                drift(
                    "firewall_rules_missing",
                    "table inet cnm",
                    "%d rule(s) that every published port needs are missing from table inet cnm" % len(missing),
                    expected=missing,
                )
            )
    if not query.filtered and "networks" in query.gather:
        rendered = {
            comment for comments in list(by_port.values()) + list(by_network.values()) for comment in comments
        } | set(shared)
        for comment in sorted(set(rules) - rendered):
            found.append(
                drift(
                    "unclaimed_rule",
                    "rule %r in %s" % (comment, rules[comment]),
                    "table inet cnm holds a rule or map element that no network or port of the store "
                    "renders (the next cnm module run removes it)",
                    _alias_network(comment[len(firewall.COMMENT_PREFIX) :])
                    if comment.startswith(firewall.COMMENT_PREFIX)
                    else None,
                    found=comment,
                )
            )
    return found


def _alias_network(text: str) -> Optional[str]:
    """The network named by an owner text: ``network web ...``, ``port web tcp/*:80``, ``cnm:endpoint:web|netns:x``."""
    words = text.replace(":", " ").split(" ")
    if len(words) > 1 and words[0] in ("network", "port", "overlay", "shim", "endpoint"):
        return words[1].split("|")[0] or None
    return None


def peer_views(name: str, record: OverlayRecord, facts: NamespaceFacts) -> Tuple[List[dict], List[dict]]:
    """The remote VTEPs of an overlay as the store lists them and as the FDB and neighbour tables hold them, and their
    drift."""
    device_name = record.vxlan_name
    device = facts.devices.get(device_name)
    have_tables = device is not None and device.kind == "vxlan" and device_name in facts.fdb
    wanted_fdb, wanted_neigh, recorded = set(), set(), {}
    for peer in record.peers:
        recorded[peer.vtep] = [{"ip": ip, "mac": mac} for ip, mac in peer.endpoints]
        if record.control_plane == "evpn":
            continue  # zebra's entries (not dumped) are the remote ones: none of the module's should be there
        wanted_fdb.add((FLOOD_MAC, peer.vtep))
        for ip, mac in peer.endpoints:
            wanted_fdb.add((mac, peer.vtep))
            wanted_neigh.add((mac, ip))
    fdb = set(facts.fdb.get(device_name, ())) if have_tables else set()
    neigh = set(facts.neighbours.get(device_name, ())) if have_tables else set()
    views = []
    for vtep in sorted(set(recorded) | {dst for _mac, dst in fdb}, key=ipaddress.ip_address):
        macs = sorted(mac for mac, dst in fdb if dst == vtep and mac != FLOOD_MAC)
        views.append(
            {
                "network": name,
                "vtep": vtep,
                "recorded": vtep in recorded,
                "endpoints": recorded.get(vtep, []),
                "flood": (FLOOD_MAC, vtep) in fdb if have_tables else None,
                "fdb": macs if have_tables else None,
                "neighbours": sorted(
                    ({"ip": ip, "mac": mac} for mac, ip in neigh if mac in macs),
                    key=lambda n: ipaddress.ip_address(n["ip"]),
                )
                if have_tables
                else None,
            }
        )
    found = []
    # The two tables of a VXLAN device, each entry missing or stale: (kind, wanted, present, entry fields, object,
    # the words of a missing entry, those of a stale one).
    tables = (
        ("peer_fdb", wanted_fdb, fdb, ("mac", "vtep"), "fdb {mac} dst {vtep}",
         "the FDB of {dev} lacks {mac} dst {vtep}", "the FDB of {dev} holds {mac} dst {vtep}"),
        ("peer_neighbour", wanted_neigh, neigh, ("mac", "ip"), "neighbour {ip}",
         "{dev} has no neighbour entry {ip} lladdr {mac}", "{dev} holds neighbour entry {ip} lladdr {mac}"),
    )  # fmt: skip
    for kind, wanted, present, fields, what, lacks, holds in tables if have_tables else ():
        for state, entries, words, key in (
            ("missing", wanted - present, lacks, "expected"),
            ("stale", present - wanted, holds + ", which no peer lists", "found"),
        ):
            for entry in sorted(entries):
                values = {fields[0]: entry[0], fields[1]: entry[1]}
                found.append(
                    drift(
                        "%s_%s" % (kind, state),
                        "vxlan %s %s" % (device_name, what.format(**values)),
                        "network %s: %s" % (name, words.format(dev=device_name, **values)),
                        name,
                        **{key: values},
                    )
                )
    return views, found


def unclaimed_devices(
    state: dict, facts: NamespaceFacts, query: InfoQuery, matches: Optional[Callable[[str], bool]]
) -> List[dict]:
    """Host links carrying a cnm alias whose name no record of the store claims (left by a lost store, or made by
    hand)."""
    claimed = {
        device_name for record in state["networks"].values() for _role, device_name, _kind in network_devices(record)
    }
    claimed |= {record.host_ifname for record in state["endpoints"].values() if record.host_ifname}
    found = []
    for device in sorted(facts.devices.values(), key=lambda d: d.name):
        if not (device.alias or "").startswith(ALIAS_PREFIX) or device.name in claimed:
            continue
        owner = device.alias[len(ALIAS_PREFIX) :]
        network = _alias_network(owner)
        sandbox = owner.split("|", 1)[1] if owner.startswith("endpoint:") and "|" in owner else None
        if query.networks is not None and network not in query.networks:
            continue
        if matches is not None and (sandbox is None or not matches(sandbox)):
            continue
        found.append(
            drift(
                "unclaimed_device",
                "link %s" % device.name,
                "%s (%s, alias %s) belongs to no network or endpoint of the store"
                % (device.name, device.kind, device.alias),
                network,
                sandbox,
                found=device.describe(),
            )
        )
    return found


def evpn_views(state: dict, selection: Selection, facts: NamespaceFacts) -> Tuple[Optional[dict], List[dict]]:
    """FRR's state and each selected EVPN overlay as FRR and the kernel hold it (evpn.py), and their drift; None
    when no EVPN overlay is selected."""
    overlays = [
        (name, state["networks"][name])
        for name in selection.networks
        if isinstance(state["networks"][name], OverlayRecord) and state["networks"][name].control_plane == "evpn"
    ]
    if not overlays or facts.frr is None:
        return None, []
    found = [drift(kind, obj, message) for kind, obj, message in evpn.frr_drift(facts.frr)]
    networks = []
    for name, record in overlays:
        device = facts.devices.get(record.vxlan_name)
        entries = facts.tunnel_fdb.get(record.vxlan_name) if device is not None and device.kind == "vxlan" else None
        view, disagreements = evpn.overlay_view(name, record.vni, record.vxlan_name, entries, facts.frr)
        networks.append(view)
        found += [drift(kind, obj, message, name, None, want, have) for kind, obj, message, want, have in disagreements]
    return dict(evpn.frr_view(facts.frr), networks=networks), found


def report(
    state: dict,
    query: InfoQuery,
    selection: Selection,
    host_facts: NamespaceFacts,
    sandboxes: Dict[str, Optional[NamespaceFacts]],
    matches: Optional[Callable[[str], bool]] = None,
    alive: Optional[Dict[str, bool]] = None,
) -> dict:
    """The result of cnm_info from the store and the kernel facts: the gathered lists and the drift between them.
    ``alive``: whether each port's sandbox exists, for those not in ``sandboxes``."""
    result: dict = {}
    found: List[dict] = []
    if "networks" in query.gather:
        result["networks"] = [
            network_view(name, state["networks"][name], host_facts, state) for name in selection.networks
        ]
        for name in selection.networks:
            found += network_drift(name, state["networks"][name], host_facts)
        found += sysctl_drift(state, selection, host_facts.sysctls)
    if "endpoints" in query.gather:
        result["endpoints"] = []
        for key in selection.endpoints:
            record = state["endpoints"][key]
            result["endpoints"].append(endpoint_view(key, record, host_facts, sandboxes.get(record.sandbox)))
            found += endpoint_drift(
                key, record, state["networks"].get(record.network), host_facts, sandboxes.get(record.sandbox)
            )
            found += port_flag_drift(key, record, state["networks"].get(record.network), host_facts)
        for sandbox in sorted({state["endpoints"][key].sandbox for key in selection.endpoints}):
            found += sandbox_drift(sandbox, state, selection, sandboxes.get(sandbox))
    if "ports" in query.gather:
        wanted = rules_by_owner(state)[0] if host_facts.rules is not None else {}
        result["ports"] = [port_view(key, state["ports"][key], host_facts.rules, wanted) for key in selection.ports]
        for key in selection.ports:
            owner = state["ports"][key].sandbox
            exists = sandboxes[owner] is not None if owner in sandboxes else (alive or {}).get(owner, True)
            found += port_drift(key, state["ports"][key], state, host_facts.rules, wanted, host_facts.shadowed, exists)
    found += firewall_drift(state, selection, query, host_facts.rules)
    if "peers" in query.gather:
        result["peers"] = []
        for name in selection.networks:
            if isinstance(state["networks"][name], OverlayRecord):
                views, peer_drift = peer_views(name, state["networks"][name], host_facts)
                result["peers"] += views
                found += peer_drift
        evpn_report, evpn_drift = evpn_views(state, selection, host_facts)
        if evpn_report is not None:
            result["evpn"] = evpn_report
            found += evpn_drift
    found += unclaimed_devices(state, host_facts, query, matches)
    result["drift"] = found
    return result


def read_needed_sysctls(session, state: dict) -> Dict[str, Optional[str]]:
    """The value of each host sysctl the store's networks and ports need (as plan_firewall sets them); None: no such
    sysctl."""
    return firewall.read_sysctls(
        session, firewall.needed_sysctls(firewall.bridged(state["networks"]), state.get("ports", {}))
    )


def sysctl_drift(state: dict, selection: Selection, values: Optional[Dict[str, Optional[str]]]) -> List[dict]:
    """Host sysctls the selected networks need (forwarding, route_localnet for loopback ports) that have another
    value."""
    if values is None:
        return []
    needers: Dict[Tuple[str, str], List[str]] = {}
    for name in selection.networks:
        ports = {key: entry for key, entry in state.get("ports", {}).items() if entry.network == name}
        for sysctl, value in firewall.needed_sysctls(firewall.bridged({name: state["networks"][name]}), ports).items():
            needers.setdefault((sysctl, value), []).append(name)
    found = []
    for (sysctl, value), names in sorted(needers.items()):
        have = values.get(sysctl)
        if have is None or have == value:
            continue  # not a sysctl of this kernel (no IPv6, a bridge that is gone: reported as such)
        found.append(
            drift(
                "host_sysctl",
                "sysctl %s" % sysctl,
                "%s is %s; network(s) %s need %s (the next cnm module "
                "run sets it again)" % (sysctl, have, ", ".join(names), value),
                names[0] if len(names) == 1 else None,
                expected=value,
                found=have,
            )
        )
    return found


def port_flag_drift(
    key: str, record: EndpointRecord, network: Optional[NetworkRecord], host_facts: NamespaceFacts
) -> List[dict]:
    """The bridge port flags of an endpoint's host end: hairpin on, isolated exactly when the network has icc off."""
    outer = host_facts.devices.get(record.host_ifname or "")
    if network is None or outer is None or outer.port_flags is None or outer.alias != ENDPOINT_ALIAS_PREFIX + key:
        return []
    if not isinstance(network, BridgeRecord) or outer.master != network.bridge_name:
        return []  # endpoint_not_on_bridge says it
    wanted = (not network.icc, True)
    if outer.port_flags == wanted:
        return []
    return [
        drift(
            "endpoint_port_flags",
            "link %s" % outer.name,
            "endpoint %s on %s: bridge port %s has %s; the "
            "network wants %s (hairpin always, "
            "isolated when icc is off)"
            % (record.sandbox, record.network, outer.name, _flags(outer.port_flags), _flags(wanted)),
            record.network,
            record.sandbox,
            _flag_dict(wanted),
            _flag_dict(outer.port_flags),
        )
    ]


def _flag_dict(flags: Tuple[bool, bool]) -> dict:
    return {"isolated": flags[0], "hairpin": flags[1]}


def _flags(flags: Tuple[bool, bool]) -> str:
    return "isolated %s, hairpin %s" % tuple("on" if flag else "off" for flag in flags)


def sandbox_drift(sandbox: str, state: dict, selection: Selection, facts: Optional[NamespaceFacts]) -> List[dict]:
    """Each IP version's default route of a sandbox where Docker's choice puts it (sandbox.py: the best ranked endpoint,
    through its network's gateway), unless an endpoint's ``routes`` or an interface no endpoint owns holds it (as
    cnm_endpoint leaves them). Reported when the chosen endpoint is selected and its interface exists."""
    if facts is None:
        return []
    records = sorted(
        (record for record in state["endpoints"].values() if record.sandbox == sandbox),
        key=lambda record: record.ifname,
    )
    candidates, explicit = gateway_candidates(records, state["networks"])
    ours = {record.ifname for record in records}
    found = []
    for version, best in sorted(choose_gateways(candidates).items()):
        if (
            best is None
            or version in explicit
            or best.name not in facts.devices
            or endpoint_key(best.network, sandbox) not in selection.endpoints
        ):
            continue
        held = [
            (device.name, route)
            for device in sorted(facts.devices.values(), key=lambda d: d.name)
            for route in device.routes
            if _default_version(route) in (version, None)
        ]
        if any(name not in ours for name, _route in held):
            continue
        gateway = best.gateways[version]
        wanted = "default via %s" % gateway if gateway else "default"
        if (best.name, wanted) in held:
            continue
        found.append(
            drift(
                "sandbox_default_route_missing",
                "sandbox %s ipv%d default route" % (sandbox, version),
                "sandbox %s: its IPv%d default route %s dev %s (network %s, gw_priority %d) is missing%s"
                % (
                    sandbox,
                    version,
                    wanted,
                    best.name,
                    best.network,
                    best.priority,
                    "; it has %s" % ", ".join("%s dev %s" % (route, name) for name, route in held) if held else "",
                ),
                best.network,
                sandbox,
                "%s dev %s" % (wanted, best.name),
                ["%s dev %s" % (route, name) for name, route in held] or None,
            )
        )
    return found


def _default_version(route: str) -> Optional[int]:
    """The IP version of a default route as Device.routes describes it (None: a default route without gateway), 0:
    not one."""
    words = route.split()
    if not words or words[0] != "default":
        return 0
    return ipaddress.ip_address(words[2]).version if len(words) > 2 and words[1] == "via" else None


# ---- the module's body ----
def namespace_stub_drift(names: List[str], matches: Optional[Callable[[str], bool]] = None) -> List[dict]:
    """Names in /run/netns with no namespace (netns.is_stub): a crash between naming and binding, or unmounting and
    unlinking."""
    return [
        drift(
            "netns_stub",
            "netns %s" % name,
            "/run/netns/%s is an empty file with no namespace mounted on it "
            "(left by an interrupted "
            "create or delete): an attach to it binds a new namespace, cnm_endpoint state=absent removes it" % name,
            sandbox="netns:%s" % name,
            expected="namespace",
            found="stub",
        )
        for name in names
        if matches is None or matches("netns:%s" % name)
    ]


def gather(host: Host, query: InfoQuery) -> dict:
    """Read the store (as the lock holds it) and the kernel, and report."""
    state = host.state  # the store as read (or, when it was lost, as rebuilt from the kernel): info plans nothing
    # Container sandboxes: one inspect per runtime for all of them, not one per endpoint.
    stored = [record.sandbox for record in state["endpoints"].values()] + [
        entry.sandbox for entry in state.get("ports", {}).values()
    ]
    netns.prefetch_containers([(query.sandbox, "container_runtime")], stored)
    matches = sandbox_matcher(host.kernel, query.sandbox) if query.sandbox is not None else None
    selection = select(state, query, matches)
    for name in selection.missing:
        host.warnings.append(
            "network %s is not a cnm network on this host (known: %s)"
            % (name, ", ".join(sorted(state["networks"])) or "none")
        )
    host_facts = read_host(host, state, query, host.warnings)
    sandboxes: Dict[str, Optional[NamespaceFacts]] = {}
    if "endpoints" in query.gather:
        sandboxes = read_sandboxes(host, (state["endpoints"][key].sandbox for key in selection.endpoints))
    alive = {
        owner: host.kernel.sandbox_exists(SandboxRef.from_key(owner))
        for owner in set(state["ports"][key].sandbox for key in selection.ports) - set(sandboxes)
    }
    result = report(state, query, selection, host_facts, sandboxes, matches, alive)
    # stubs belong to no network: only a question about all of them
    if query.networks is None and "endpoints" in query.gather:
        result.setdefault("drift", []).extend(namespace_stub_drift(netns.stubs(), matches))
    if "networks" in query.gather:  # the resolver serves the host's networks
        result["resolver"], resolver_drift = dns.report(state, dns.read_facts(host))
        for kind, message, network, expected, found in resolver_drift:
            if not query.filtered or network in selection.networks:
                result["drift"].append(drift(kind, "resolver", message, network, None, expected, found))
    return result


def run_info_module(module) -> None:
    """cnm_info: never a change, in check mode or not."""
    try:
        query = InfoQuery.from_params(module.params)
        with Host.open(module) as host:
            result = gather(host, query)
            warnings = host.warnings
    except CnmError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=False, **result)
