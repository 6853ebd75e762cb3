# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The store's records: one class per shape, the one place each is read from its JSON form and written back.

``from_dict`` checks a record and raises RecordError naming the first field that is wrong (store.py adds the file);
``to_dict`` gives the JSON form, the same as the file has always held. Records are frozen: planning replaces a record
(``dataclasses.replace``), never edits it in place. A network record has its driver's class (NetworkRecord.from_dict
picks it); model.py's network classes write it (to_record) and read it back (from_record). Host sysctls are a plain
map of name to original value.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field, fields
from typing import Callable, ClassVar, Dict, Optional, Tuple

# The fields an endpoint record keeps for its link kind, so that its detach works once its network is gone.
LINK_FIELDS = {"veth": (), "macvlan": ("parent", "shim_name"), "ipvlan": ("parent",)}
LINK_KINDS = tuple(sorted(LINK_FIELDS))  # how endpoints join networks: each network class's ``link`` (model.py)


class RecordError(ValueError):
    """A record without its shape: the text names the field and what is wrong with it."""


def endpoint_key(network: str, sandbox_key: str) -> str:
    return "%s|%s" % (network, sandbox_key)


@dataclass(frozen=True)
class EndpointRecord:
    """One endpoint: the interface a sandbox has on a network, its leases and what the task asked for."""

    network: str
    sandbox: str
    ifname: str
    link: str  # how it joins its network (attach.LINKS): what its detach follows
    host_ifname: Optional[str] = None
    ipv4_address: Optional[str] = None
    ipv6_address: Optional[str] = None
    mac_address: Optional[str] = None
    static_ipv4: bool = False
    static_ipv6: bool = False
    static_mac: bool = False
    default_route: bool = True
    routes: Tuple[dict, ...] = ()  # {"dst": CIDR, "gateway": address or None}
    sysctls: Dict[str, str] = field(default_factory=dict)
    gw_priority: int = 0
    parent: Optional[str] = None  # macvlan and ipvlan links
    shim_name: Optional[str] = None  # macvlan links
    name: Optional[str] = None  # its DNS name on the network
    aliases: Tuple[str, ...] = ()  # its network-scoped aliases (Docker's --network-alias)

    @property
    def key(self) -> str:
        return endpoint_key(self.network, self.sandbox)

    @property
    def addresses(self) -> Tuple[Optional[str], Optional[str]]:
        return self.ipv4_address, self.ipv6_address

    @classmethod
    def from_dict(cls, data: object, where: str = "endpoint") -> EndpointRecord:
        _need({"": data}, "", dict, where)
        for name in ("network", "sandbox", "ifname", "link"):
            _field(data, name, str, where)
        if data["link"] not in LINK_KINDS:
            raise RecordError("%s.link is %r, not one of %s" % (where, data["link"], ", ".join(LINK_KINDS)))
        for name in ("host_ifname", "mac_address", "parent", "shim_name", "name"):
            _field(data, name, str, where, optional=True)
        for name in ("ipv4_address", "ipv6_address"):
            _address(data, name, where, ipaddress.ip_address)
        for name in ("static_ipv4", "static_ipv6", "static_mac", "default_route"):
            _field(data, name, bool, where, optional=True)
        _field(data, "gw_priority", int, where, optional=True)
        _field(data, "sysctls", dict, where, optional=True)
        _field(data, "routes", list, where, optional=True)
        _field(data, "aliases", list, where, optional=True)
        for number, alias in enumerate(data.get("aliases") or []):
            _need({"": alias}, "", str, "%s.aliases[%d]" % (where, number))
        routes = data.get("routes") or []
        for number, route in enumerate(routes):
            _need({"": route}, "", dict, "%s.routes[%d]" % (where, number))
            _need(route, "dst", str, "%s.routes[%d].dst" % (where, number))
            _need(route, "gateway", str, "%s.routes[%d].gateway" % (where, number), optional=True)
        values = {name: data.get(name) for name in _FIELDS if data.get(name) is not None}
        values["routes"] = tuple({"dst": route["dst"], "gateway": route.get("gateway")} for route in routes)
        values["sysctls"] = dict(data.get("sysctls") or {})
        values["aliases"] = tuple(data.get("aliases") or ())
        return cls(**values)

    def to_dict(self) -> dict:
        data = {name: getattr(self, name) for name in _FIELDS[:15]}
        data["routes"] = [dict(route) for route in self.routes]
        data["sysctls"] = dict(self.sysctls)
        for name in LINK_FIELDS.get(self.link, ("parent", "shim_name")):
            data[name] = getattr(self, name)
        if self.name is not None:  # written only when there is one: older stores read back unchanged
            data["name"] = self.name
        if self.aliases:
            data["aliases"] = list(self.aliases)
        return data


# The order the file has always listed them in (the link kind's own fields last, as LINK_FIELDS says).
_FIELDS = (
    "network",
    "sandbox",
    "ifname",
    "host_ifname",
    "ipv4_address",
    "ipv6_address",
    "mac_address",
    "static_ipv4",
    "static_ipv6",
    "static_mac",
    "default_route",
    "routes",
    "sysctls",
    "gw_priority",
    "link",
    "parent",
    "shim_name",
    "name",
    "aliases",
)


@dataclass(frozen=True)
class PortRecord:
    """One published port: its mapping (ports.PortMapping.to_record), the endpoint it reaches and that endpoint's
    addresses as the firewall DNATs to them."""

    network: str
    sandbox: str
    protocol: str
    host_port: int
    container_port: int
    host_ip: Optional[str] = None
    container_ip: Optional[str] = None
    container_ipv6: Optional[str] = None

    @classmethod
    def from_dict(cls, data: object, where: str = "port") -> PortRecord:
        _need({"": data}, "", dict, where)
        for name in ("network", "sandbox", "protocol"):
            _field(data, name, str, where)
        for name in ("host_port", "container_port"):
            _field(data, name, int, where)
        _address(data, "host_ip", where, ipaddress.ip_address)
        for name in ("container_ip", "container_ipv6"):
            _address(data, name, where, ipaddress.ip_address)
        return cls(**{name: data.get(name) for name in _PORT_FIELDS})

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in _PORT_FIELDS}


_PORT_FIELDS = (
    "host_ip",
    "host_port",
    "container_port",
    "protocol",
    "network",
    "sandbox",
    "container_ip",
    "container_ipv6",
)


# ---- networks ----

# The kinds of field a network record holds besides str, int and bool: a text that parses as an address or network,
# and a list (a tuple in the record) of texts or of peers.
ADDRESS, NETWORK = ipaddress.ip_address, ipaddress.ip_network


def _rule(kind, required: bool = False, nullable: bool = False) -> dict:
    """How from_dict reads a network record's field (its metadata): its ``kind``; ``required``: never missing (its
    default then only stands in for the constructor), else a missing field takes its default, what the driver's
    option defaults to; ``nullable``: may be null (an address always may)."""
    return {"kind": kind, "required": required, "nullable": nullable}


@dataclass(frozen=True)
class PeerRecord:
    """A remote VTEP of an overlay network and the endpoints behind it, as (address, MAC) pairs, and the DNS names
    of those that have some, as (address, name or None, aliases): in the file, ``name`` and ``aliases`` of the
    endpoint's entry, only when set."""

    vtep: str
    endpoints: Tuple[Tuple[str, str], ...] = ()
    names: Tuple[Tuple[str, Optional[str], Tuple[str, ...]], ...] = ()

    @classmethod
    def from_dict(cls, data: object, where: str = "peer") -> PeerRecord:
        _need({"": data}, "", dict, where)
        _field(data, "vtep", str, where)
        _address(data, "vtep", where, ADDRESS)
        _maybe(data, "endpoints", list, where)
        endpoints, names = [], []
        for number, entry in enumerate(data.get("endpoints", ())):
            if entry.__class__ is dict and len(entry) == 2:  # {ip, mac}, ten thousand on an overlay: the fast way
                ip, mac = entry.get("ip"), entry.get("mac")
                if ip.__class__ is str and mac.__class__ is str and _is_ipv4(ip):
                    endpoints.append((ip, mac))
                    continue
            at = "%s.endpoints[%d]" % (where, number)
            _need({"": entry}, "", dict, at)
            _field(entry, "ip", str, at)
            _address(entry, "ip", at, ADDRESS)
            _field(entry, "mac", str, at)
            _field(entry, "name", str, at, optional=True)
            _field(entry, "aliases", list, at, optional=True)
            for alias_number, alias in enumerate(entry.get("aliases") or ()):
                _need({"": alias}, "", str, "%s.aliases[%d]" % (at, alias_number))
            endpoints.append((entry["ip"], entry["mac"]))
            if entry.get("name") is not None or entry.get("aliases"):
                names.append((entry["ip"], entry.get("name"), tuple(entry.get("aliases") or ())))
        return cls(data["vtep"], tuple(endpoints), tuple(names))

    def to_dict(self) -> dict:
        named = {ip: (name, aliases) for ip, name, aliases in self.names}
        endpoints = []
        for ip, mac in self.endpoints:
            entry = {"ip": ip, "mac": mac}
            name, aliases = named.get(ip, (None, ()))
            if name is not None:
                entry["name"] = name
            if aliases:
                entry["aliases"] = list(aliases)
            endpoints.append(entry)
        return {"vtep": self.vtep, "endpoints": endpoints}


@dataclass(frozen=True)
class NetworkRecord:
    """A network as the store holds it: written by its driver's class in model.py (to_record), read back by it
    (from_record). This base holds what every driver records; each driver's class adds its own fields, and
    ``from_dict`` gives the class of the record's driver. The file lists the field that names the network's device
    first (``named_by``), then the others in the order they are declared here."""

    subnet: Optional[str] = field(default=None, metadata=_rule(NETWORK))
    gateway: Optional[str] = field(default=None, metadata=_rule(ADDRESS))
    ip_range: Optional[str] = field(default=None, metadata=_rule(NETWORK))
    ipv6_subnet: Optional[str] = field(default=None, metadata=_rule(NETWORK))
    ipv6_gateway: Optional[str] = field(default=None, metadata=_rule(ADDRESS))
    mtu: Optional[int] = field(default=None, metadata=_rule(int, nullable=True))

    driver: ClassVar[str] = ""
    named_by: ClassVar[str] = ""

    @classmethod
    def from_dict(cls, data: object, where: str = "network") -> NetworkRecord:
        """The record of the driver ``data`` names (a subclass of ``cls``), checked: a RecordError names the first
        field that is wrong."""
        _need({"": data}, "", dict, where)
        _field(data, "driver", str, where)
        record_class = NETWORK_RECORDS.get(data["driver"])
        if record_class is None or not issubclass(record_class, cls):
            drivers = [driver for driver, other in NETWORK_RECORDS.items() if issubclass(other, cls)]
            raise RecordError("%s.driver is %r, not one of %s" % (where, data["driver"], ", ".join(drivers)))
        values = {}
        for item in record_class.file_fields():
            name, kind, rule = item.name, item.metadata["kind"], item.metadata
            if name not in data and not rule["required"]:
                continue  # an older record: the default
            if kind in (ADDRESS, NETWORK):
                _field(data, name, str, where, optional=not rule["required"])
                _address(data, name, where, kind)
            elif isinstance(kind, tuple):  # a list of kind[0]
                _field(data, name, list, where)
                at = "%s.%s[%%d]" % (where, name)
                values[name] = tuple(_item(kind[0], entry, at % number) for number, entry in enumerate(data[name]))
                continue
            else:
                _field(data, name, kind, where, optional=rule["nullable"])
            values[name] = data[name]
        return record_class(**values)

    @classmethod
    def file_fields(cls) -> list:
        """The fields in the order the file lists them: the one that names the device first."""
        return sorted(fields(cls), key=lambda item: item.name != cls.named_by)

    def to_dict(self) -> dict:
        data = {"driver": self.driver}
        for item in self.file_fields():
            value = getattr(self, item.name)
            if isinstance(value, tuple):  # trusted_sources (texts), peers (PeerRecord)
                value = [entry if isinstance(entry, str) else entry.to_dict() for entry in value]
            data[item.name] = value
        return data

    def declared(self) -> dict:
        """The network as a module's options declare it (what a run that leaves an option out keeps: omitted.py)."""
        data = self.to_dict()
        del data["driver"]
        return data


def _item(kind, entry: object, where: str):
    """An entry of a list field: a text, or what ``kind.from_dict`` reads."""
    if kind is str:
        _need({"": entry}, "", str, where)
        return entry
    return kind.from_dict(entry, where)


@dataclass(frozen=True)
class BridgeRecord(NetworkRecord):
    """A bridge network (model.BridgeNetwork)."""

    bridge_name: str = field(default="", metadata=_rule(str, required=True))
    masquerade: bool = field(default=True, metadata=_rule(bool))
    internal: bool = field(default=False, metadata=_rule(bool))
    icc: bool = field(default=True, metadata=_rule(bool))
    host_binding_ip: Optional[str] = field(default=None, metadata=_rule(ADDRESS))
    trusted_sources: Tuple[str, ...] = field(default=(), metadata=_rule((str,)))
    ipv6_masquerade: Optional[bool] = field(default=None, metadata=_rule(bool, nullable=True))  # None: as masquerade
    # in the file only when set: its endpoints' names are resolved at its gateways (dns.py)
    dns: bool = field(default=False, metadata=_rule(bool))
    dns_servers: Tuple[str, ...] = field(default=(), metadata=_rule((str,)))

    driver: ClassVar[str] = "bridge"
    named_by: ClassVar[str] = "bridge_name"

    def to_dict(self) -> dict:
        data = NetworkRecord.to_dict(self)
        if not self.dns:  # older stores, and networks without a resolver, read back unchanged
            del data["dns"]
        if not self.dns_servers:
            del data["dns_servers"]
        return data


@dataclass(frozen=True)
class OverlayRecord(BridgeRecord):
    """An overlay network (model.OverlayNetwork): a bridge network with a VXLAN device towards its peers."""

    vni: int = field(default=0, metadata=_rule(int, required=True))
    local_ip: str = field(default="", metadata=_rule(ADDRESS, required=True))
    port: int = field(default=4789, metadata=_rule(int))
    vxlan_name: str = field(default="", metadata=_rule(str, required=True))
    restrict_peers: bool = field(default=True, metadata=_rule(bool))
    peers: Tuple[PeerRecord, ...] = field(default=(), metadata=_rule((PeerRecord,)))
    # in the file only when true: the firewall drops clear VXLAN of this VNI
    encrypted: bool = field(default=False, metadata=_rule(bool))
    # in the file only when evpn (FRR programs the remote entries): a store written before it reads as static
    control_plane: str = field(default="static", metadata=_rule(str))
    # in the file only when true: the MTU was asked for (False: the underlay's less the overhead, followed)
    mtu_set: bool = field(default=False, metadata=_rule(bool))

    driver: ClassVar[str] = "overlay"

    def to_dict(self) -> dict:
        data = BridgeRecord.to_dict(self)
        for name, usual in (("encrypted", False), ("control_plane", "static"), ("mtu_set", False)):
            if data[name] == usual:
                del data[name]
        return data

    def declared(self) -> dict:
        data = BridgeRecord.declared(self)
        data["mtu"] = self.mtu if data.pop("mtu_set", False) else None
        return data


@dataclass(frozen=True)
class ParentRecord(NetworkRecord):
    """What a network on a parent interface records (model.ParentNetwork): macvlan and ipvlan add their own."""

    parent: str = field(default="", metadata=_rule(str, required=True))
    mtu_set: bool = field(default=True, metadata=_rule(bool))  # whether the MTU was asked for (False: the parent's)
    vlan_created: bool = field(default=False, metadata=_rule(bool))  # whether this network made its parent (a VLAN)

    named_by: ClassVar[str] = "parent"
    internal: ClassVar[bool] = False  # its endpoints are plain hosts of the LAN
    icc: ClassVar[bool] = True

    def declared(self) -> dict:
        """An MTU left out follows the parent's (which may differ now, after a reboot say)."""
        data = NetworkRecord.declared(self)
        data["mtu"] = self.mtu if data.pop("mtu_set") else None
        return data


@dataclass(frozen=True)
class MacvlanRecord(ParentRecord):
    """A macvlan network (model.MacvlanNetwork)."""

    mode: str = field(default="bridge", metadata=_rule(str))
    host_access: bool = field(default=False, metadata=_rule(bool))
    host_access_ip: Optional[str] = field(default=None, metadata=_rule(ADDRESS))
    shim_name: Optional[str] = field(default=None, metadata=_rule(str, nullable=True))

    driver: ClassVar[str] = "macvlan"


@dataclass(frozen=True)
class IpvlanRecord(ParentRecord):
    """An ipvlan network (model.IpvlanNetwork)."""

    ipvlan_mode: str = field(default="l2", metadata=_rule(str))
    ipvlan_flag: str = field(default="bridge", metadata=_rule(str))
    default_on_link: bool = field(default=False, metadata=_rule(bool))

    driver: ClassVar[str] = "ipvlan"


# The record class of each driver (model.NETWORKS has the same drivers in the same order).
NETWORK_RECORDS = {cls.driver: cls for cls in (BridgeRecord, OverlayRecord, MacvlanRecord, IpvlanRecord)}
DRIVERS = tuple(NETWORK_RECORDS)


# ---- the whole store ----


def state_from_dict(data: dict) -> dict:
    """The store as read (a JSON object of the current version) with its records typed; a RecordError names the first
    thing wrong."""
    for section in ("networks", "endpoints"):
        _need(data, section, dict, repr(section))
    for section in ("ports", "sysctls"):
        if section in data:
            _need(data, section, dict, repr(section))
    state = {"version": data.get("version")}
    networks = data["networks"].items()
    state["networks"] = {name: NetworkRecord.from_dict(record, "'networks'[%r]" % name) for name, record in networks}
    state["endpoints"] = {}
    for key, record in data["endpoints"].items():
        where = "'endpoints'[%r]" % key
        endpoint = state["endpoints"][key] = EndpointRecord.from_dict(record, where)
        if key != endpoint.key:
            raise RecordError("%s is filed under another key than its network and sandbox: %r" % (where, endpoint.key))
    if "ports" in data:
        ports = data["ports"].items()
        state["ports"] = {key: PortRecord.from_dict(entry, "'ports'[%r]" % key) for key, entry in ports}
    if "sysctls" in data:
        for name in data["sysctls"]:
            _need(data["sysctls"], name, str, "'sysctls'[%r]" % name, optional=True)
        state["sysctls"] = dict(data["sysctls"])
    return state


def state_to_dict(state: dict) -> dict:
    """The JSON form of a store (records as the file holds them): what is written and what a diff shows."""
    data = {}
    for section, value in state.items():
        if section in ("networks", "endpoints", "ports"):
            data[section] = {key: record.to_dict() for key, record in value.items()}
        elif isinstance(value, dict):  # host sysctls
            data[section] = dict(value)
        else:  # the version
            data[section] = value
    return data


def copy_state(state: dict) -> dict:
    """A copy to plan on: sections are new dicts; records are shared (frozen)."""
    return {section: dict(value) if isinstance(value, dict) else value for section, value in state.items()}


# ---- checks ----


def _need(record: dict, name: str, kind: type, where: str, optional: bool = False) -> None:
    if name not in record:
        if optional:
            return
        raise RecordError("%s is missing" % where)
    value = record[name]
    if value is None and optional:
        return
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RecordError("%s must be %s, found %s" % (where, TYPE_NAMES[kind], type_name(value)))


def _maybe(record: dict, name: str, kind: type, where: str) -> None:
    """A field that older records may lack (it then takes its default), but that is never null."""
    if name in record:
        _field(record, name, kind, where)


def _field(record: dict, name: str, kind: type, where: str, optional: bool = False) -> None:
    """``_need`` for the field ``name`` of the record at ``where``, naming it only when it is wrong."""
    value = record.get(name)
    if value.__class__ is not kind and not (optional and value is None):  # exact: a bool is no integer here
        _need(record, name, kind, "%s.%s" % (where, name), optional)


def _is_ipv4(text: str) -> bool:
    """Whether ``text`` is an IPv4 address as ipaddress reads one (the C library's inet_pton takes the same dotted
    quads, faster: see model.ipv4_text)."""
    try:
        socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        return False
    return True


def _address(record: dict, name: str, where: str, parse: Callable) -> None:
    _field(record, name, str, where, optional=True)
    where = "%s.%s" % (where, name)
    if record.get(name) is not None:
        try:
            parse(record[name])
        except ValueError as exc:
            raise RecordError("%s is %r, not an address (%s)" % (where, record[name], exc)) from exc


TYPE_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


def type_name(value: object) -> str:
    return TYPE_NAMES.get(type(value), type(value).__name__)
