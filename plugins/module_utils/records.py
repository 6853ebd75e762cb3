# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The store's records: one class per shape, the one place each is read from its JSON form and written back.

``from_dict`` checks a record and raises RecordError naming the first field that is wrong (store.py adds the file);
``to_dict`` gives the JSON form, the same as the file has always held. Records are frozen: planning replaces a record
(``dataclasses.replace``), never edits it in place. Networks stay the drivers' own dicts (model.py's to_record and
from_record), checked here by ``check_network``; host sysctls are a plain map of name to original value.
"""

from __future__ import annotations

import copy
import ipaddress
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

from ansible_collections.cnm.network.plugins.module_utils.model import LINK_KINDS, NETWORKS

DRIVERS = tuple(NETWORKS)
# The fields an endpoint record keeps for its link kind, so that its detach works once its network is gone.
LINK_FIELDS = {"veth": (), "macvlan": ("parent", "shim_name"), "ipvlan": ("parent",)}


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


def check_network(data: object, where: str = "network") -> dict:
    """A network record (the driver's to_record) when it has the fields its driver reads back, else a RecordError."""
    _need({"": data}, "", dict, where)
    _field(data, "driver", str, where)
    if data["driver"] not in DRIVERS:
        raise RecordError("%s.driver is %r, not one of %s" % (where, data["driver"], ", ".join(DRIVERS)))
    for name in NETWORKS[data["driver"]].record_keys:
        _field(data, name, str, where)
    _field(data, "mtu", int, where, optional=True)
    for name in ("subnet", "ip_range", "ipv6_subnet"):
        _address(data, name, where, ipaddress.ip_network)
    for name in ("gateway", "ipv6_gateway"):
        _address(data, name, where, ipaddress.ip_address)
    return data


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
    state["networks"] = {
        name: check_network(record, "'networks'[%r]" % name) for name, record in data["networks"].items()
    }
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
        if section in ("endpoints", "ports"):
            data[section] = {key: record.to_dict() for key, record in value.items()}
        else:  # networks (few, and their records nest), host sysctls, the version
            data[section] = copy.deepcopy(value)
    return data


def copy_state(state: dict) -> dict:
    """A copy to plan on: sections are new dicts; records are shared (frozen), network dicts copied."""
    copied = {}
    for section, value in state.items():
        if section == "networks":
            value = copy.deepcopy(value)
        elif isinstance(value, dict):
            value = dict(value)
        copied[section] = value
    return copied


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


def _field(record: dict, name: str, kind: type, where: str, optional: bool = False) -> None:
    """``_need`` for the field ``name`` of the record at ``where``, naming it only when it is wrong."""
    value = record.get(name)
    if value.__class__ is not kind and not (optional and value is None):  # exact: a bool is no integer here
        _need(record, name, kind, "%s.%s" % (where, name), optional)


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
