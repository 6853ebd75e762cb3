# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The firewall room: the collection's own nftables table, rendered whole from the store.

Everything lives in ``inet cnm`` (isolation between networks, internal networks, the inbound drop of
new connections routed to container addresses with its ``trusted_sources`` exceptions, masquerade of
both families, and the DNAT of published ports with their hairpin, localhost and loopback-guard rules).
Docker's icc=false is not a rule: it is the kernel's own bridge port flag ``isolated`` (set by the
endpoint planner), which needs neither br_netfilter nor nft's bridge meta keys (this kernel lacks
``meta ibrname``). Every rule carries a comment naming its owner and a hash of its content,
so comparing the kernel's rules with the desired ones is comparing two lists of comments. A chain
whose list differs is flushed and refilled; all of it goes to the kernel in one ``nft -j -f``
transaction. Tables of others are never flushed or edited.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ansible_collections.cnm.network.plugins.module_utils import conntrack, passes
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.plan import Op
from ansible_collections.cnm.network.plugins.module_utils.records import (
    BridgeRecord,
    NetworkRecord,
    OverlayRecord,
    PortRecord,
)
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST

TABLE = "cnm"
COMMENT_PREFIX = "cnm "
NFT_CANDIDATES = ("/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft")


@dataclass(frozen=True)
class Chain:
    family: str
    name: str
    type: str
    hook: str
    prio: int
    policy: str = "accept"

    def spec(self) -> dict:
        return {
            "family": self.family,
            "table": TABLE,
            "name": self.name,
            "type": self.type,
            "hook": self.hook,
            "prio": self.prio,
            "policy": self.policy,
        }


INET_RAW = Chain("inet", "raw_prerouting", "filter", "prerouting", -300)
INET_PREROUTING = Chain("inet", "prerouting", "nat", "prerouting", -100)
INET_OUTPUT = Chain("inet", "output", "nat", "output", -100)
INET_INPUT = Chain("inet", "input", "filter", "input", 0)
INET_FORWARD = Chain("inet", "forward", "filter", "forward", 0)
INET_POSTROUTING = Chain("inet", "postrouting", "nat", "postrouting", 100)
CHAINS = {"inet": (INET_RAW, INET_PREROUTING, INET_OUTPUT, INET_INPUT, INET_FORWARD, INET_POSTROUTING)}
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@dataclass(frozen=True)
class Rule:
    chain: Chain
    owner: str  # e.g. "network web isolation"
    expr: str  # the nft JSON expression list, serialised (hashable)

    @property
    def comment(self) -> str:
        digest = hashlib.sha256((self.chain.family + self.chain.name + self.expr).encode()).hexdigest()[:8]
        return "%s%s #%s" % (COMMENT_PREFIX, self.owner, digest)

    def command(self) -> dict:
        return {
            "add": {
                "rule": {
                    "family": self.chain.family,
                    "table": TABLE,
                    "chain": self.chain.name,
                    "expr": json.loads(self.expr),
                    "comment": self.comment,
                }
            }
        }


def _rule(chain: Chain, owner: str, *expr) -> Rule:
    return Rule(chain, owner, json.dumps(list(expr), sort_keys=True))


def _match(key: str, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": {"meta": {"key": key}}, "right": right}}


def _saddr(network) -> dict:
    proto = "ip" if network.version == 4 else "ip6"
    prefix = {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}
    return {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "saddr"}}, "right": prefix}}


def _payload(protocol: str, field_name: str, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": {"payload": {"protocol": protocol, "field": field_name}}, "right": right}}


def _prefix(network) -> dict:
    return {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}


def _names(names: List[str]):
    return names[0] if len(names) == 1 else {"set": sorted(names)}


def reaches_loopback(entry: PortRecord) -> bool:
    """A published port bound to all addresses or to 127.0.0.0/8 answers on the host's loopback (IPv4 only)."""
    host_ip = ipaddress.ip_address(entry.host_ip) if entry.host_ip else None
    return bool(entry.container_ip) and (
        host_ip is None or (host_ip.version == 4 and (host_ip.is_unspecified or host_ip in LOOPBACK))
    )


@dataclass(frozen=True)
class PortMap:
    """A named map of table inet cnm: (protocol[, host address], host port) -> container address, or -> container port.

    nft 1.0.6's JSON cannot declare a map with concatenated data (``: ipv4_addr . inet_service``; it makes a set),
    so each kind of binding has two maps with the same keys, read by one ``dnat`` (``to KEY map @addr : KEY map
    @port``).
    """

    name: str
    family: str  # "ip" or "ip6": the address family of the key's host address and of the data
    specific: bool  # keyed by the host address (else: any local address)
    data: str  # "addr" or "port"

    @property
    def key_types(self) -> List[str]:
        address = "ipv4_addr" if self.family == "ip" else "ipv6_addr"
        return ["inet_proto", address, "inet_service"] if self.specific else ["inet_proto", "inet_service"]

    @property
    def data_type(self) -> str:
        if self.data == "port":
            return "inet_service"
        return "ipv4_addr" if self.family == "ip" else "ipv6_addr"

    def spec(self) -> dict:
        return {"family": "inet", "table": TABLE, "name": self.name, "type": self.key_types, "map": self.data_type}


def _port_maps(base: str, family: str, specific: bool) -> Tuple[PortMap, PortMap]:
    return PortMap(base + "_addr", family, specific, "addr"), PortMap(base + "_port", family, specific, "port")


# The bindings, by kind: one host address (v4 except 127/8, v6), a 127/8
# address (from the host itself only), any local address.
PORTS_HOST4 = _port_maps("ports_host4", "ip", True)
PORTS_LOOPBACK4 = _port_maps("ports_loopback4", "ip", True)
PORTS_ANY4 = _port_maps("ports_any4", "ip", False)
PORTS_HOST6 = _port_maps("ports_host6", "ip6", True)
PORTS_ANY6 = _port_maps("ports_any6", "ip6", False)
PORT_MAPS = {
    port_map.name: port_map
    for pair in (PORTS_HOST4, PORTS_LOOPBACK4, PORTS_ANY4, PORTS_HOST6, PORTS_ANY6)
    for port_map in pair
}


@dataclass(frozen=True)
class Element:
    """One element of a PortMap, owned by a published port; ``comment`` is its identity as the kernel's listing gives
    it."""

    map: PortMap
    owner: str  # e.g. "port web tcp/*:80"
    key: tuple
    value: object

    @property
    def comment(self) -> str:
        return element_text(self.map.name, self.key, self.value)

    def elem(self) -> list:
        return [{"concat": list(self.key)}, self.value]


def element_text(map_name: str, key, value) -> str:
    """``element MAP tcp . 192.0.2.1 . 4000 : 172.18.0.2``: the same text for a rendered element and a listed one."""
    parts = (
        key["concat"]
        if isinstance(key, dict) and "concat" in key
        else (list(key) if isinstance(key, (list, tuple)) else [key])
    )
    return "element %s %s : %s" % (map_name, " . ".join(str(part) for part in parts), value)


def _bindings(entry: PortRecord) -> List[Tuple[Tuple[PortMap, PortMap], Optional[str], str]]:
    """(maps, host address or None for any, container address) of each binding an entry renders.

    IPv4 when host_ip is None or IPv4 and the entry has container_ip; IPv6 when host_ip is None or IPv6 and it has
    container_ipv6 (see the contract); ::1 never (the kernel cannot DNAT IPv6 loopback to a container)."""
    host_ip = ipaddress.ip_address(entry.host_ip) if entry.host_ip else None
    found = []
    if entry.container_ip and (host_ip is None or host_ip.version == 4):
        if host_ip is None or host_ip.is_unspecified:
            found.append((PORTS_ANY4, None, entry.container_ip))
        else:
            found.append((PORTS_LOOPBACK4 if host_ip in LOOPBACK else PORTS_HOST4, str(host_ip), entry.container_ip))
    if (
        entry.container_ipv6
        and (host_ip is None or host_ip.version == 6)
        and not (host_ip is not None and host_ip.is_loopback)
    ):
        container_ipv6 = str(ipaddress.ip_address(entry.container_ipv6))
        if host_ip is None or host_ip.is_unspecified:
            found.append((PORTS_ANY6, None, container_ipv6))
        else:
            found.append((PORTS_HOST6, str(host_ip), container_ipv6))
    return found


def render_elements(ports: Dict[str, PortRecord]) -> List[Element]:
    """The map elements of every published port: per binding, one in its ``_addr`` map and one in its ``_port`` map.

    A (protocol, host address, host port) key is rendered once: the first port key in sorted order keeps it."""
    elements: List[Element] = []
    seen = set()
    for key in sorted(ports):
        entry = ports[key]
        owner = "port %s %s" % (entry.network, key)
        for (addr_map, port_map), host_ip, container in _bindings(entry):
            map_key = (entry.protocol,) + ((host_ip,) if host_ip else ()) + (entry.host_port,)
            if (addr_map.name, map_key) in seen:
                continue
            seen.add((addr_map.name, map_key))
            elements.append(Element(addr_map, owner, map_key, container))
            elements.append(Element(port_map, owner, map_key, entry.container_port))
    return elements


def _map_dnat(maps: Tuple[PortMap, PortMap]) -> dict:
    """``dnat ip to KEY map @x_addr : KEY map @x_port`` with KEY = l4proto [. daddr] . dport."""
    addr_map, port_map = maps
    key = [{"meta": {"key": "l4proto"}}]
    if addr_map.specific:
        key.append({"payload": {"protocol": addr_map.family, "field": "daddr"}})
    key.append({"payload": {"protocol": "th", "field": "dport"}})
    return {
        "dnat": {
            "family": addr_map.family,
            "addr": {"map": {"key": {"concat": key}, "data": "@" + addr_map.name}},
            "port": {"map": {"key": {"concat": list(key)}, "data": "@" + port_map.name}},
        }
    }


LOCAL = {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}


def render_ports(networks: Dict[str, BridgeRecord], ports: Dict[str, PortRecord]) -> List[Rule]:
    """DNAT of the published ports, from other hosts (prerouting) and from the host itself (output), at constant cost.

    A few rules, the same for 1 or 1000 ports: per address family, one lookup keyed by (protocol, host address,
    host port) for bindings to one host address, then one ``fib daddr type local`` check and one lookup keyed by
    (protocol, host port) for bindings to every local address. The ports themselves are map elements
    (render_elements). 127.0.0.0/8 bindings answer from the host itself only (output); ::1 is never DNAT'd.
    """
    used = {element.map.name for element in render_elements(ports)}
    rules: List[Rule] = []
    nfproto = {"ip": _match("nfproto", "ipv4"), "ip6": _match("nfproto", "ipv6")}
    kinds = (
        (PORTS_HOST4, "ipv4 host address", True),
        (PORTS_LOOPBACK4, "ipv4 loopback", False),
        (PORTS_ANY4, "ipv4 any address", True),
        (PORTS_HOST6, "ipv6 host address", True),
        (PORTS_ANY6, "ipv6 any address", True),
    )
    for chain in (INET_PREROUTING, INET_OUTPUT):
        for maps, what, from_outside in kinds:
            if maps[0].name not in used or (chain == INET_PREROUTING and not from_outside):
                continue
            expr = [nfproto[maps[0].family]]
            if not maps[0].specific:
                expr.append(LOCAL)
                if maps[0].family == "ip6" and chain == INET_OUTPUT:
                    expr.append(_payload("ip6", "daddr", "::1", "!="))
            rules.append(_rule(chain, "ports dnat %s" % what, *(expr + [_map_dnat(maps)])))
    if any(reaches_loopback(entry) for entry in ports.values()):
        # Docker's guard: nobody outside may reach a loopback-bound port by routing 127.0.0.1 through us.
        rules.insert(
            0,
            _rule(
                INET_RAW,
                "ports loopback guard",
                _match("iifname", "lo", "!="),
                _payload("ip", "daddr", _prefix(LOOPBACK)),
                {"drop": None},
            ),
        )
    ct_dnat = {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}
    for name in sorted({entry.network for entry in ports.values()}):
        record = networks.get(name)
        if record is None:
            continue
        bridge = record.bridge_name
        mine = [entry for entry in ports.values() if entry.network == name]
        # Hairpin: an endpoint reaching a port published on its own network answers through the host.
        if record.subnet and any(entry.container_ip for entry in mine):
            rules.append(
                _rule(
                    INET_POSTROUTING,
                    "network %s hairpin" % name,
                    _match("oifname", bridge),
                    _saddr(ipaddress.ip_network(record.subnet)),
                    ct_dnat,
                    {"masquerade": None},
                )
            )
        if record.ipv6_subnet and any(entry.container_ipv6 for entry in mine):
            rules.append(
                _rule(
                    INET_POSTROUTING,
                    "network %s hairpin ipv6" % name,
                    _match("oifname", bridge),
                    _saddr(ipaddress.ip_network(record.ipv6_subnet)),
                    ct_dnat,
                    {"masquerade": None},
                )
            )
        if any(reaches_loopback(entry) for entry in mine):
            rules.append(
                _rule(
                    INET_POSTROUTING,
                    "network %s localhost" % name,
                    _match("oifname", bridge),
                    _saddr(LOOPBACK),
                    {"masquerade": None},
                )
            )
    return rules


def render_vxlan_filter(networks: Dict[str, BridgeRecord]) -> List[Rule]:
    """restrict_peers: VXLAN of an overlay's VNI is accepted only from its listed peers.

    The match includes the VNI (24 bits at byte 4 of the VXLAN header, after the 8-byte UDP header),
    so other VXLAN devices sharing the UDP port, with their own VNIs and VTEPs, are not affected.
    Encrypted overlays also drop VXLAN of their VNI that did not come out of IPsec (``meta ipsec
    missing``, nft's ``meta secpath``; Docker's ``-m policy --pol none`` drop), from any source: the
    kernel's check of the input policies (one per listed peer) refuses clear VXLAN from peers only,
    and this rule is in place before the device comes up.
    """
    rules = []
    for name in sorted(networks):
        record = networks[name]
        if not isinstance(record, OverlayRecord):  # no VXLAN device
            continue
        vxlan = [
            _match("l4proto", "udp"),
            _payload("th", "dport", record.port),
            {
                "match": {
                    "op": "==",
                    "left": {"payload": {"base": "th", "offset": 96, "len": 24}},
                    "right": record.vni,
                }
            },
        ]
        if record.restrict_peers:
            peers = sorted((peer.vtep for peer in record.peers), key=ipaddress.ip_address)
            expr = list(vxlan)
            if peers:
                expr.append(_payload("ip", "saddr", _names(peers), "!="))
            rules.append(_rule(INET_INPUT, "network %s vxlan peers only" % name, *(expr + [{"drop": None}])))
        if record.encrypted:
            rules.append(
                _rule(
                    INET_INPUT,
                    "network %s vxlan clear drop" % name,
                    *(vxlan + [_match("ipsec", False), {"drop": None}]),
                )
            )
    return rules


def render_dns_guard(networks: Dict[str, BridgeRecord]) -> List[Rule]:
    """A network's resolver (dns.py) is reached only from its own bridge: aardvark-dns answers a query from an
    address it does not know with the names of the network whose gateway received it, so an endpoint of another
    network (or of none) asking this gateway would learn its names. Docker's embedded DNS answers in the asking
    container only."""
    rules = []
    for name in sorted(networks):
        record = networks[name]
        if not record.dns:
            continue
        for protocol, gateway in (("ip", record.gateway), ("ip6", record.ipv6_gateway)):
            if gateway:
                rules.append(
                    _rule(
                        INET_INPUT,
                        "network %s dns guard" % name,
                        _match("iifname", record.bridge_name, "!="),
                        _payload(protocol, "daddr", gateway),
                        _match("l4proto", {"set": ["tcp", "udp"]}),
                        _payload("th", "dport", 53),
                        {"drop": None},
                    )
                )
    return rules


def _ct(key: str, right) -> dict:
    return {"match": {"op": "in", "left": {"ct": {"key": key}}, "right": right}}


def masquerades_ipv6(record: BridgeRecord) -> bool:
    """IPv6 masquerade of a network record: ``ipv6_masquerade``, or ``masquerade`` when that is null (or absent:
    older records)."""
    if record.internal or not record.ipv6_subnet:
        return False
    return record.masquerade if record.ipv6_masquerade is None else record.ipv6_masquerade


def render_forward(networks: Dict[str, BridgeRecord]) -> List[Rule]:
    """The whole forward chain, in this order (the first matching verdict wins):

    1. internal networks: nothing leaves or enters their bridge from another interface, not even a DNAT'd
       flow (a published port of another network reached through the host's address is no way out);
    2. ``ct status dnat accept``: published ports are reachable from the LAN and from other networks;
    3. isolation between networks (Docker's): a trusted source cannot open another cnm network's way in; and
       for ``icc: false``, Docker's ``-i br -o br DROP``: an endpoint routing to a neighbour through the gateway;
    4. replies (``ct state established,related``) into a network;
    5. per network: its ``trusted_sources`` may open connections, everything else into the bridge from
       another interface is dropped (Docker drops new connections to unpublished container addresses).

    Frames between endpoints of one bridge are switched, not forwarded, and never pass here (unless
    br_netfilter is loaded; then the ``iifname == oifname`` traffic of a network is left alone unless ``icc: false``;
    icc is first of all the bridge ports' isolated flag). The host's own connections to its containers take the
    output path.
    """
    rules: List[Rule] = []
    bridges = {name: record.bridge_name for name, record in networks.items()}
    routed = [name for name in sorted(networks) if not networks[name].internal]
    for name in sorted(networks):
        if networks[name].internal:  # nothing in or out, only between the network's own endpoints
            bridge = bridges[name]
            rules.append(
                _rule(
                    INET_FORWARD,
                    "network %s internal out" % name,
                    _match("iifname", bridge),
                    _match("oifname", bridge, "!="),
                    {"drop": None},
                )
            )
            rules.append(
                _rule(
                    INET_FORWARD,
                    "network %s internal in" % name,
                    _match("oifname", bridge),
                    _match("iifname", bridge, "!="),
                    {"drop": None},
                )
            )
    if routed:
        rules.append(_rule(INET_FORWARD, "ports accept published", _ct("status", "dnat"), {"accept": None}))
    for name in sorted(networks):
        bridge = bridges[name]
        others = [other for other_name, other in bridges.items() if other_name != name]
        if others:  # Docker's isolation: no traffic from this network into another cnm network
            rules.append(
                _rule(
                    INET_FORWARD,
                    "network %s isolation" % name,
                    _match("iifname", bridge),
                    _match("oifname", _names(others)),
                    {"drop": None},
                )
            )
        # the isolated port flag stops frames; this stops routing via the gateway
        if not networks[name].icc:
            rules.append(
                _rule(
                    INET_FORWARD,
                    "network %s icc" % name,
                    _match("iifname", bridge),
                    _match("oifname", bridge),
                    {"drop": None},
                )
            )
    if routed:
        rules.append(
            _rule(INET_FORWARD, "forward accept replies", _ct("state", ["established", "related"]), {"accept": None})
        )
    for name in routed:
        bridge = bridges[name]
        for version, proto in ((4, "ip"), (6, "ip6")):
            sources = passes.trusted(networks, name, version)
            if sources:
                right = {"set": [_prefix(ipaddress.ip_network(text)) for text in sources]}
                rules.append(
                    _rule(
                        INET_FORWARD,
                        "network %s trusted %s" % (name, proto),
                        _match("oifname", bridge),
                        _payload(proto, "saddr", right),
                        {"accept": None},
                    )
                )
        rules.append(
            _rule(
                INET_FORWARD,
                "network %s inbound drop" % name,
                _match("oifname", bridge),
                _match("iifname", bridge, "!="),
                {"drop": None},
            )
        )
    return rules


def render_masquerade(networks: Dict[str, BridgeRecord]) -> List[Rule]:
    """Masquerade of what leaves a non-internal network: IPv4 by ``masquerade``, IPv6 by ``ipv6_masquerade`` (null:
    as IPv4)."""
    rules = []
    for name in sorted(networks):
        record = networks[name]
        bridge = record.bridge_name
        # IPv6-only: no subnet
        if not record.internal and record.masquerade and record.subnet:
            subnet = ipaddress.ip_network(record.subnet)
            rules.append(
                _rule(
                    INET_POSTROUTING,
                    "network %s masquerade" % name,
                    _saddr(subnet),
                    _match("oifname", bridge, "!="),
                    {"masquerade": None},
                )
            )
        if masquerades_ipv6(record):
            subnet = ipaddress.ip_network(record.ipv6_subnet)
            rules.append(
                _rule(
                    INET_POSTROUTING,
                    "network %s ipv6 masquerade" % name,
                    _saddr(subnet),
                    _match("oifname", bridge, "!="),
                    {"masquerade": None},
                )
            )
    return rules


def render(networks: Dict[str, BridgeRecord], ports: Optional[Dict[str, dict]] = None) -> List[Rule]:
    """The rules every cnm network and published port of the store needs, in chain order."""
    return (
        render_ports(networks, ports or {})
        + render_vxlan_filter(networks)
        + render_dns_guard(networks)
        + render_forward(networks)
        + render_masquerade(networks)
    )


@dataclass
class Ruleset:
    """Our tables as the kernel has them: chains by (family, name) with their spec and rules."""

    chains: Dict[Tuple[str, str], dict]
    rules: Dict[Tuple[str, str], List[dict]]
    families: set = field(default_factory=set)  # families in which our table exists (also when it has no chain)
    maps: Dict[str, dict] = field(default_factory=dict)  # the maps of table inet cnm by name, as listed (with "elem")

    def comments(self) -> Dict[str, List[str]]:
        found = {
            "%s %s" % key: [rule.get("comment", "") for rule in self.rules.get(key, [])] for key in sorted(self.chains)
        }
        for name in sorted(self.maps):
            found["map inet %s" % name] = sorted(self.elements(name))
        return found

    def elements(self, name: str) -> Dict[str, list]:
        """The elements of one of our maps: element_text -> the listed [key, value]."""
        return {
            element_text(name, item[0], item[1]): item
            for item in self.maps.get(name, {}).get("elem", [])
            if isinstance(item, list) and len(item) == 2
        }

    @property
    def tables(self) -> set:
        return self.families | {family for family, _name in self.chains}


def parse(listing: dict) -> Ruleset:
    """Our tables out of ``nft -j list ruleset`` (everything else is ignored)."""
    chains: Dict[Tuple[str, str], dict] = {}
    rules: Dict[Tuple[str, str], List[dict]] = {}
    maps: Dict[str, dict] = {}
    families = set()
    for item in listing.get("nftables", []):
        if "table" in item and item["table"].get("name") == TABLE and item["table"].get("family") in CHAINS:
            families.add(item["table"]["family"])
        elif "chain" in item and item["chain"].get("table") == TABLE and item["chain"].get("family") in CHAINS:
            chain = item["chain"]
            chains[(chain["family"], chain["name"])] = chain
        elif "rule" in item and item["rule"].get("table") == TABLE and item["rule"].get("family") in CHAINS:
            rule = item["rule"]
            rules.setdefault((rule["family"], rule["chain"]), []).append(rule)
        elif "map" in item and item["map"].get("table") == TABLE and item["map"].get("family") == "inet":
            maps[item["map"]["name"]] = item["map"]
    return Ruleset(chains, rules, families, maps)


def desired(rules: List[Rule], elements: List[Element]) -> Ruleset:
    """The Ruleset a kernel holding exactly ``rules`` and ``elements`` lists (comments and map contents; for --diff)."""
    wanted = Ruleset({}, {})
    for family in {rule.chain.family for rule in rules}:
        for chain in CHAINS[family]:
            wanted.chains[(family, chain.name)] = {}
            wanted.rules[(family, chain.name)] = [{"comment": rule.comment} for rule in rules if rule.chain == chain]
    for element in elements:
        wanted.maps.setdefault(element.map.name, {"elem": []})["elem"].append(element.elem())
    return wanted


def _same_chain(current: dict, wanted: Chain) -> bool:
    have = (current.get("type"), current.get("hook"), current.get("prio"), current.get("policy", "accept"))
    return have == (wanted.type, wanted.hook, wanted.prio, wanted.policy)


def _same_map(current: dict, wanted: PortMap) -> bool:
    kind = current.get("type")
    return (
        (kind if isinstance(kind, list) else [kind]) == wanted.key_types
        and current.get("map") == wanted.data_type
        and not current.get("flags")
    )


def _element_command(verb: str, name: str, elems: list) -> dict:
    return {verb: {"element": {"family": "inet", "table": TABLE, "name": name, "elem": elems}}}


def _map_commands(current: Ruleset, elements: List[Element]) -> Tuple[List[dict], set]:
    """Maps of table inet cnm made to hold exactly ``elements``, element by element (no map is emptied to be refilled).

    A map we no longer render, or one of another type, is deleted; the chains whose rules may use it are flushed
    first (returned, so that they are refilled)."""
    wanted: Dict[str, Dict[str, Element]] = {}
    for element in elements:
        wanted.setdefault(element.map.name, {})[element.comment] = element
    stale = sorted(
        name
        for name, spec in current.maps.items()
        if name not in wanted or name not in PORT_MAPS or not _same_map(spec, PORT_MAPS[name])
    )
    commands: List[dict] = []
    flushed = set()
    if stale:
        for key, rules in sorted(current.rules.items()):
            if (
                key[0] == "inet"
                and key in current.chains
                and any('"data": "@' in json.dumps(rule.get("expr")) for rule in rules)
            ):
                commands.append({"flush": {"chain": {"family": "inet", "table": TABLE, "name": key[1]}}})
                flushed.add(key)
        commands.extend({"delete": {"map": {"family": "inet", "table": TABLE, "name": name}}} for name in stale)
    for name in sorted(wanted):
        mine = wanted[name]
        if name not in current.maps or name in stale:
            commands.append({"add": {"map": PORT_MAPS[name].spec()}})
            commands.append(_element_command("add", name, [mine[text].elem() for text in sorted(mine)]))
            continue
        have = current.elements(name)
        gone = [have[text][0] for text in sorted(set(have) - set(mine))]
        new = [mine[text].elem() for text in sorted(set(mine) - set(have))]
        if gone:
            commands.append(_element_command("delete", name, gone))
        if new:
            commands.append(_element_command("add", name, new))
    return commands, flushed


def transaction(current: Ruleset, rules: List[Rule], elements: Optional[List[Element]] = None) -> List[dict]:
    """The nft JSON commands that turn ``current`` into exactly ``rules`` and map ``elements`` (empty: nothing to
    do)."""
    wanted_families = {rule.chain.family for rule in rules}
    commands: List[dict] = []
    for family in sorted(current.tables - wanted_families):
        commands.append({"delete": {"table": {"family": family, "name": TABLE}}})
    for family in sorted(wanted_families):
        if family not in current.tables:
            commands.append({"add": {"table": {"family": family, "name": TABLE}}})
        known = {chain.name for chain in CHAINS[family]}
        for stray_family, stray in sorted(current.chains):  # chains we no longer render (older versions, hand-made)
            if stray_family == family and stray not in known:
                commands.append({"flush": {"chain": {"family": family, "table": TABLE, "name": stray}}})
                commands.append({"delete": {"chain": {"family": family, "table": TABLE, "name": stray}}})
        flushed: set = set()
        if family == "inet":
            map_commands, flushed = _map_commands(current, elements or [])
            commands.extend(map_commands)
        for chain in CHAINS[family]:
            key = (family, chain.name)
            mine = [rule for rule in rules if rule.chain == chain]
            have = current.chains.get(key)
            if have is not None and not _same_chain(have, chain):
                commands.append({"delete": {"chain": {"family": family, "table": TABLE, "name": chain.name}}})
                have = None
            if have is None:
                commands.append({"add": {"chain": chain.spec()}})
            elif key in flushed:
                pass
            elif [r.get("comment") for r in current.rules.get(key, [])] == [rule.comment for rule in mine]:
                continue
            else:
                commands.append({"flush": {"chain": {"family": family, "table": TABLE, "name": chain.name}}})
            commands.extend(rule.command() for rule in mine)
    return commands


def restore_commands(before: Ruleset, after_families: set) -> List[dict]:
    """Commands that put ``before`` back (the undo of a transaction)."""
    commands: List[dict] = [
        {"delete": {"table": {"family": family, "name": TABLE}}} for family in sorted(after_families)
    ]
    for family in sorted(before.tables):
        commands.append({"add": {"table": {"family": family, "name": TABLE}}})
    for name, spec in sorted(before.maps.items()):  # before the rules that use them
        commands.append(
            {
                "add": {
                    "map": {
                        key: spec[key] for key in ("family", "table", "name", "type", "map", "flags") if key in spec
                    }
                }
            }
        )
        if spec.get("elem"):
            commands.append(_element_command("add", name, spec["elem"]))
    for (family, name), chain in sorted(before.chains.items()):
        spec = {
            key: chain[key] for key in ("family", "table", "name", "type", "hook", "prio", "policy") if key in chain
        }
        commands.append({"add": {"chain": spec}})
        for rule in before.rules.get((family, name), []):
            commands.append(
                {
                    "add": {
                        "rule": {
                            key: rule[key] for key in ("family", "table", "chain", "expr", "comment") if key in rule
                        }
                    }
                }
            )
    return commands


class Nft:
    """The nft command: one listing and at most one transaction per module run.

    ``run`` is AnsibleModule.run_command (argv, data=stdin) -> (rc, stdout, stderr).
    """

    def __init__(self, run) -> None:
        self.run = run
        self.path = next((path for path in NFT_CANDIDATES if os.access(path, os.X_OK)), None) or shutil.which("nft")

    def require(self, why: str) -> str:
        if self.path is None:
            raise CnmError("%s needs nftables: install the nftables package (the nft command was not found)" % why)
        return self.path

    def listing(self) -> dict:
        """``nft -j list ruleset``: every table of the host, ours and others'."""
        if self.path is None:
            return {}
        code, out, err = self.run([self.path, "-j", "list", "ruleset"])
        if code != 0:
            raise CnmError("nft -j list ruleset failed: %s" % err.strip())
        return json.loads(out or "{}")

    def ruleset(self) -> Ruleset:
        return parse(self.listing())

    def apply(self, commands: List[dict], why: str = "the firewall") -> None:
        code, _out, err = self.run([self.require(why), "-j", "-f", "-"], data=json.dumps({"nftables": commands}))
        if code != 0:
            raise OSError(code, "nft refused the transaction: %s" % err.strip())


def forwarding_needed(networks: Dict[str, BridgeRecord]) -> bool:
    """Routing out of a network needs IPv4 forwarding on the host; internal networks do not."""
    return any(not record.internal for record in networks.values())


def ipv6_forwarding_needed(networks: Dict[str, BridgeRecord]) -> bool:
    """Routing IPv6 out of a network: a non-internal network with an IPv6 subnet."""
    return any(not record.internal and record.ipv6_subnet for record in networks.values())


def read_sysctls(session, names) -> Dict[str, Optional[str]]:
    """The host sysctls ``names`` (dotted) as ``session`` (the host's namespace) reads them; None: no such sysctl."""
    return {name: session.sysctl(_path(name)) for name in sorted(names)}


def _path(name: str) -> str:
    """A dotted sysctl name as a path under /proc/sys (what kernel.NetnsSession.sysctl takes)."""
    return name.replace(".", "/")


def bridged(networks: Dict[str, NetworkRecord]) -> Dict[str, BridgeRecord]:
    """The networks whose traffic the host routes through a bridge (bridge, overlay): the firewall's business.
    Macvlan endpoints talk to their LAN directly, past the host's stack."""
    return {name: record for name, record in networks.items() if isinstance(record, BridgeRecord)}


@dataclass
class Pending:
    """What planning leaves for the firewall's step (plan_firewall), which runs once the whole state is planned."""

    flows: set = field(default_factory=set)  # conntrack_flow() of mappings changed or removed: their entries go
    addresses: set = field(default_factory=set)  # addresses of endpoints that left: all their conntrack entries go
    # Plan.add's arguments of changes that must follow the firewall's (a device up only once its drop rule exists)
    after_firewall: list = field(default_factory=list)


def plan_firewall(host) -> None:
    """Add to the host's plan what makes our table, the sysctls it needs and conntrack match the store."""
    networks = bridged(host.state["networks"])
    ports = host.state.get("ports", {})
    rules = render(networks, ports)
    elements = render_elements(ports) if rules else []
    nft = Nft(host.run_command)
    if rules:
        nft.require("the firewall of network(s) %s (masquerade, internal or isolation)" % ", ".join(sorted(networks)))
    listing = nft.listing()
    current = parse(listing)
    commands = transaction(current, rules, elements)
    if commands:
        wanted = desired(rules, elements)
        families_after = {rule.chain.family for rule in rules}
        host.plan.add(
            "firewall",
            "apply %d nft command(s) to the cnm tables" % len(commands),
            current.comments() or None,
            wanted.comments() or None,
            Op(HOST, "nft_apply", (tuple(commands),)),
            Op(HOST, "nft_apply", (tuple(restore_commands(current, families_after)),)),
        )
    _plan_passes(host, listing, networks)
    _plan_sysctls(host, needed_sysctls(networks, ports))
    _plan_conntrack_flush(host)


def _plan_passes(host, listing: dict, networks: Dict[str, BridgeRecord]) -> None:
    """Our accept rules in other owners' forward chains that drop by policy (see passes.py)."""
    before = bridged(host.original["networks"])
    for chain in passes.drop_chains(listing):
        if chain.xtables:
            _plan_xtables_passes(host, listing, chain, networks)
            continue
        commands = passes.native_commands(listing, chain, networks)
        if commands:
            names = [comment for comment, _expr in passes.native_rules(networks, chain.family)]
            host.warnings.append(
                "%s drops forwarded traffic (policy drop): cnm updates its pass rules there for network(s) %s"
                % (
                    chain.describe(),
                    ", ".join(name for name, _bridge in passes.routed(networks)) or "none (removing them)",
                )
            )
            host.plan.add(
                "passes %s" % chain.describe(),
                "update %d pass rule(s) in %s" % (len(commands), chain.describe()),
                None,
                {chain.describe(): names} if names else None,
                Op(HOST, "nft_apply", (tuple(commands),)),
                Op(HOST, "restore_passes", (chain, before)),
            )


def _plan_xtables_passes(host, listing: dict, chain, networks: Dict[str, BridgeRecord]) -> None:
    command = passes.tool(chain.family)
    if command is None:
        if passes.routed(networks):
            host.warnings.append(
                "%s drops forwarded traffic, and %s is not installed to add cnm's pass rules: routed traffic of cnm "
                "networks "
                "is dropped" % (chain.describe(), passes.XTABLES[chain.family])
            )
        return
    target = "DOCKER-USER" if passes.chain_exists(listing, chain.family, chain.table, "DOCKER-USER") else chain.chain
    code, out, err = host.run_command([command, "-w", "-S", target])
    if code != 0:
        raise CnmError("%s -S %s failed: %s" % (command, target, err.strip()))
    present = passes.parse_xtables(out, target)
    wanted = passes.xtables_lines(networks, target, chain.family)
    script = passes.xtables_script(present, wanted, target)
    if script is None:
        return
    undo = passes.xtables_script(wanted, present, target)
    where = "%s %s %s" % (chain.family, chain.table, target)
    host.warnings.append(
        "%s drops forwarded traffic (policy drop): cnm updates its pass rules in %s" % (chain.describe(), where)
    )
    host.plan.add(
        "passes %s" % where,
        "update pass rules in %s (iptables-restore --noflush)" % where,
        {where: sorted(present)} if present else None,
        {where: sorted(wanted)} if wanted else None,
        Op(HOST, "xtables_restore", (command, script)),
        Op(HOST, "xtables_restore", (command, undo)) if undo else None,
    )


def needed_sysctls(networks: Dict[str, BridgeRecord], ports: Dict[str, PortRecord]) -> Dict[str, str]:
    """IPv4 forwarding while a network routes, IPv6 forwarding while one routes IPv6 (``all.forwarding``: the
    host then ignores router advertisements on interfaces whose accept_ra is 1, as with Docker); route_localnet
    on bridges whose ports answer on 127.0.0.1."""
    wanted = {"net.ipv4.ip_forward": "1"} if forwarding_needed(networks) else {}
    if ipv6_forwarding_needed(networks):
        wanted["net.ipv6.conf.all.forwarding"] = "1"
    for entry in ports.values():
        record = networks.get(entry.network)
        if record is not None and reaches_loopback(entry):
            wanted["net.ipv4.conf.%s.route_localnet" % record.bridge_name] = "1"
    return wanted


def _plan_sysctls(host, wanted: Dict[str, str]) -> None:
    """Set what is wanted, recording the value found first; give it back when no longer wanted."""
    recorded = host.state.get("sysctls", {})
    before_run = set(host.original.get("sysctls", {}))
    for name, value in read_sysctls(host.kernel.host, set(wanted) | set(recorded)).items():
        if name in wanted and value is not None and value != wanted[name]:
            original = host.state.setdefault("sysctls", {}).setdefault(name, value)
            host.plan.add(
                "sysctl %s" % name,
                "set %s=%s (recorded: %s)" % (name, wanted[name], original),
                {name: value},
                {name: wanted[name]},
                Op(HOST, "set_recorded_sysctl", (name, wanted[name], original)),
                Op(HOST, "unset_recorded_sysctl", (name, value, name not in before_run)),
            )
        elif name not in wanted and name in recorded:
            original = host.state["sysctls"].pop(name)
            if original is not None and value is not None and original != value:
                host.plan.add(
                    "sysctl %s" % name,
                    "restore %s=%s" % (name, original),
                    {name: value},
                    {name: original},
                    Op(HOST, "restore_sysctl", (name, original)),
                    Op(HOST, "restore_sysctl", (name, value)),
                )
    if "sysctls" in host.state and not host.state["sysctls"]:
        del host.state["sysctls"]


# ---- the firewall's verbs: what its Ops do when the plan runs (Host.run_op), each taking the run's Host first ----


def nft_apply(host, commands: tuple) -> None:
    Nft(host.run_command).apply(list(commands))


def restore_passes(host, chain, networks: Dict[str, BridgeRecord]) -> None:
    """Our pass rules in another owner's chain as ``networks`` had them: rendered against the chain as it is now
    (the rules to delete are known by their handles, which only the listing at that moment holds)."""
    nft = Nft(host.run_command)
    nft.apply(passes.native_commands(nft.listing(), chain, networks))


def xtables_restore(host, command: str, script: str) -> None:
    code, _out, err = host.run_command([command + "-restore", "-w", "--noflush"], data=script)
    if code != 0:
        raise OSError(code, "%s-restore refused the pass rules: %s" % (command, err.strip()))


def set_recorded_sysctl(host, name: str, value: str, original: str) -> None:
    """Write-ahead: the original value is in the store file before the sysctl changes, so a crash between the write
    and the run's store write cannot lose it (the next run would find the new value and record that instead)."""
    store = host.store
    if store.data.get("sysctls", {}).get(name) != original:
        data = store.snapshot()
        data.setdefault("sysctls", {})[name] = original
        store.save(data)
    host.kernel.host.write_sysctl(_path(name), value)


def unset_recorded_sysctl(host, name: str, value: str, new: bool) -> None:
    """Undo of set_recorded_sysctl: the value found goes back; a record this run wrote ahead goes from the store
    file."""
    restore_sysctl(host, name, value)
    store = host.store
    if new and name in store.data.get("sysctls", {}):
        data = store.snapshot()
        del data["sysctls"][name]
        if not data["sysctls"]:
            del data["sysctls"]
        store.save(data)


def restore_sysctl(host, name: str, value: str) -> None:
    """Write back a recorded value; an interface's sysctl (route_localnet) went with its interface: nothing to do."""
    session = host.kernel.host
    if session.sysctl(_path(name)) is not None:
        session.write_sysctl(_path(name), value)


def conntrack_flow(entry: PortRecord) -> tuple:
    """What identifies the conntrack entries of a published port: protocol, host port, container addresses (IPv4,
    IPv6)."""
    ipv6 = entry.container_ipv6
    return (
        entry.protocol,
        entry.host_port,
        entry.container_ip,
        str(ipaddress.ip_address(ipv6)) if ipv6 else None,
    )


def _plan_conntrack_flush(host) -> None:
    """Mappings changed (UDP) or removed: delete their own conntrack entries, so the change takes effect at once;
    endpoints that left: delete every entry of their addresses."""
    if host.pending.flows:
        flows = sorted(host.pending.flows)
        what = "flush the conntrack entries of %d mapping(s)" % len(flows)
        host.plan.add("conntrack", what, None, None, Op(HOST, "flush_flows", (tuple(flows),)))
    if host.pending.addresses:
        addresses = sorted(host.pending.addresses)
        what = "flush the conntrack entries of %d address(es) of endpoints that left" % len(addresses)
        host.plan.add("conntrack", what, None, None, Op(HOST, "flush_addresses", (tuple(addresses),)))


def flush_flows(host, flows: tuple) -> None:
    """The entries of removed or changed mappings: their protocol, host port and container address (the reply's
    source), in each family the mappings have."""
    wanted = set()
    for protocol, port, ipv4, ipv6 in flows:
        wanted.update((protocol, port, str(ipaddress.ip_address(a))) for a in (ipv4, ipv6) if a)
    _flush_where(
        host,
        {ipaddress.ip_address(address).version for _protocol, _port, address in wanted},
        lambda flow: (flow.protocol, flow.orig_dport, flow.reply_src) in wanted,
        "%d published port(s)" % len(flows),
    )


def flush_addresses(host, addresses: tuple) -> None:
    """Every entry an address is the original source of (outbound, masqueraded), the original destination of (from
    the host or a peer) or the reply source of (DNAT)."""
    wanted = {str(ipaddress.ip_address(address)) for address in addresses}
    _flush_where(
        host,
        {ipaddress.ip_address(address).version for address in wanted},
        lambda flow: bool(flow.addresses() & wanted),
        "%d address(es)" % len(addresses),
    )


def _flush_where(host, versions: set, doomed, what: str) -> None:
    """One ctnetlink dump per IP version, then a delete of each doomed entry; a kernel without ctnetlink (no entries
    to flush either, or a conntrack it cannot show) gets a warning instead."""
    try:
        conntrack.flush(versions, doomed)
    except OSError as exc:
        if exc.errno not in (errno.EPROTONOSUPPORT, errno.EOPNOTSUPP, errno.EAFNOSUPPORT):
            raise OSError(exc.errno, "conntrack flush: %s" % exc.strerror) from exc
        host.warnings.append(
            "conntrack entries of %s were not flushed: this kernel has no ctnetlink (nf_conntrack_netlink): %s"
            % (what, exc.strerror)
        )


# The firewall's verbs by name, for Host.run_op.
VERBS = {
    verb.__name__: verb
    for verb in (
        nft_apply,
        restore_passes,
        xtables_restore,
        set_recorded_sysctl,
        unset_recorded_sysctl,
        restore_sysctl,
        flush_flows,
        flush_addresses,
    )
}
