# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired state as small frozen dataclasses, normalised once at the edge from module options.

Everything past this file works with ipaddress objects and lower-case MACs, never raw strings.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import socket
from dataclasses import dataclass, field
from typing import ClassVar, Optional, Tuple

from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.ipam import mac_from_ipv4, mac_from_name
from ansible_collections.cnm.network.plugins.module_utils.records import (
    BridgeRecord,
    EndpointRecord,
    IpvlanRecord,
    MacvlanRecord,
    NetworkRecord,
    OverlayRecord,
    ParentRecord,
    PeerRecord,
)
from ansible_collections.cnm.network.plugins.module_utils.sandbox import (
    CONTAINER_RUNTIMES,
    SandboxRef,
    parse_gw_priority,
)

IFNAMSIZ = 15
IFALIASZ = 255  # the longest interface alias the kernel stores (IFALIASZ 256 with its NUL)
# a Linux bridge numbers its ports 1..1023 (BR_MAX_PORTS 1024, port 0 reserved); more fail with EXFULL
BR_MAX_PORTS = 1023
IPV6_MIN_MTU = 1280
NETNS_NAME_MAX = 255  # a /run/netns file name (NAME_MAX)
SPECIAL_NETWORKS = ("host", "none")
# Names are data, never patterns: only characters that no nft/iptables wildcard, quote or shell reads specially.
_IFNAME = re.compile(r"[A-Za-z0-9_.-]+")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_MAC = re.compile(r"([0-9a-f]{2}:){5}[0-9a-f]{2}")
# A MAC already as parse_mac returns it, and unicast (the first byte even): parse_mac would return it unchanged, unless
# it is all zeros
_UNICAST_MAC = re.compile(r"[0-9a-f][02468ace](?::[0-9a-f]{2}){5}")
_SYSCTL = re.compile(r"net\.[A-Za-z0-9_.-]+")
# Subnets no network may use: Docker refuses these too (loopback, multicast, link-local, "this network"/unspecified).
FORBIDDEN_SUBNETS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "224.0.0.0/4",
        "255.255.255.255/32",
        "::/128",
        "::1/128",
        "fe80::/10",
        "ff00::/8",
    )
)
# Every kernel object the collection makes carries an alias starting with ALIAS_PREFIX, then its role.
ALIAS_PREFIX = "cnm:"
BRIDGE_ALIAS_PREFIX = "cnm:network:"
ENDPOINT_ALIAS_PREFIX = "cnm:endpoint:"
OVERLAY_ALIAS_PREFIX = "cnm:overlay:"
SHIM_ALIAS_PREFIX = "cnm:shim:"
VLAN_ALIAS_PREFIX = "cnm:vlan:"
FLOOD_MAC = "00:00:00:00:00:00"  # an overlay's FDB entry for a peer VTEP that gets broadcasts and unknown unicast


def _short_hash(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _shown(name: str) -> str:
    """A name as an error shows it: quoted with escapes when it holds a newline or other unprintable character."""
    return name if name.isprintable() and name.strip() == name else repr(name)


def check_ifname(option: str, name) -> str:
    """An interface name the kernel takes (1 to 15 bytes, not '.' or '..') made only of letters, digits, '_', '.'
    and '-': no '/', whitespace, newline, nft/iptables wildcard ('*', '+') or quoting character reaches a rule."""
    name = name if isinstance(name, str) else str(name)
    if not name or len(name.encode()) > IFNAMSIZ:
        raise option_error(
            option, _shown(name), "is not a valid interface name (1 to %d characters, counted in bytes)" % IFNAMSIZ
        )
    if name in (".", "..") or not _IFNAME.fullmatch(name):
        raise option_error(
            option,
            _shown(name),
            "is not a valid interface name (only letters, digits, '_', '.' and "
            "'-'; "
            "no wildcard, quote, '/' or whitespace; not '.' or '..')",
        )
    return name


def check_name(option: str, name: str) -> str:
    if not name or not _NAME.fullmatch(name) or len(name) > 64:
        raise option_error(
            option, _shown(name), "is not a valid network name (letters, digits, '_', '.', '-', at most 64)"
        )
    return name


def check_netns_name(option: str, name: str) -> str:
    """A name under /run/netns: the interface charset (no '/', whitespace or newline), not '.' or '..', at most
    NETNS_NAME_MAX bytes (the endpoint's interface alias may ask for less: see check_alias_length)."""
    if not name or name in (".", "..") or not _IFNAME.fullmatch(name):
        raise option_error(
            option,
            _shown(name),
            "is not a valid namespace name (letters, digits, '_', '.', '-'; no '/' or whitespace; not '.' or '..')",
        )
    if len(name.encode()) > NETNS_NAME_MAX:
        raise option_error(
            option,
            "%s... (%d bytes)" % (name[:20], len(name.encode())),
            "is too long for a namespace name (at most %d bytes)" % NETNS_NAME_MAX,
        )
    return name


_DNS_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
DNS_NAME_MAX = 253


def dns_name_problem(name) -> Optional[str]:
    """What keeps ``name`` from being a name the resolver answers for, or None: dot-separated labels of 1 to 63
    letters, digits, '_' and '-' (not first or last), at most 253 characters (RFC 1035; '_' as Docker's names)."""
    if not isinstance(name, str) or not name:
        return "is not a DNS name (a non-empty text)"
    if len(name) > DNS_NAME_MAX:
        return "is too long for a DNS name (at most %d characters)" % DNS_NAME_MAX
    if not all(_DNS_LABEL.fullmatch(label) for label in name.split(".")):
        return (
            "is not a DNS name (labels of 1 to 63 letters, digits, '_' and '-', not starting or ending with '-', "
            "separated by '.')"
        )
    return None


def check_dns_name(option: str, name) -> str:
    problem = dns_name_problem(name)
    if problem is not None:
        raise option_error(option, _shown(name) if isinstance(name, str) else name, problem)
    return name


def default_endpoint_name(sandbox: SandboxRef) -> Optional[str]:
    """A sandbox's own name when it is a DNS name (a named namespace's, a container's); a pid or a path has none."""
    if sandbox.kind in ("netns", "container") and dns_name_problem(sandbox.value) is None:
        return sandbox.value
    return None


def endpoint_names(params: dict, sandbox: SandboxRef, network: str, where: str = "") -> Tuple[Optional[str], tuple]:
    """An endpoint's DNS name and aliases (Docker's container name and ``--network-alias``): ``name``, else the
    sandbox's own name (a named namespace's or a container's, when it is a DNS name); a pid or a path has none. The
    aliases without repeats (names compare without case, as DNS does)."""
    given, aliases = params.get("name"), params.get("aliases") or []
    if network in SPECIAL_NETWORKS:
        for option, value in (("name", given), ("aliases", aliases)):
            if value:
                raise option_error(
                    where + option,
                    value,
                    "cannot be used with network '%s' (names resolve on cnm networks only, as Docker's "
                    "--network-alias on user-defined networks)" % network,
                )
        return None, ()
    name = check_dns_name(where + "name", given) if given is not None else default_endpoint_name(sandbox)
    return name, check_aliases(where + "aliases", aliases)


def check_aliases(option: str, aliases) -> tuple:
    """A list of DNS names (an endpoint's aliases), without repeats (compared without case, as DNS does)."""
    if not isinstance(aliases, (list, tuple)):
        raise option_error(option, aliases, "must be a list of DNS names")
    kept: list = []
    for number, alias in enumerate(aliases):
        check_dns_name("%s[%d]" % (option, number), alias)
        if alias.lower() not in (other.lower() for other in kept):
            kept.append(alias)
    return tuple(kept)


def check_alias_length(option: str, value: str, network: str, sandbox_key: str) -> None:
    """An endpoint's interface carries the alias ``cnm:endpoint:NETWORK|SANDBOX``, which the kernel caps at 255 bytes:
    refuse a sandbox reference too long for it before anything is created (not as EINVAL half-way)."""
    length = len((ENDPOINT_ALIAS_PREFIX + "%s|%s" % (network, sandbox_key)).encode())
    if length > IFALIASZ:
        raise option_error(
            option,
            "%s... (%d bytes)" % (value[:24], len(value.encode())),
            "is too long: the endpoint's interface alias %s%s|%s... would be %d bytes, the kernel keeps "
            "at most %d" % (ENDPOINT_ALIAS_PREFIX, network, sandbox_key[:24], length, IFALIASZ),
        )


def check_subnet_scope(option: str, net) -> None:
    """Refuse loopback, multicast, link-local and unspecified ("this network") subnets, of either family."""
    for bad in FORBIDDEN_SUBNETS:
        if bad.version == net.version and net.overlaps(bad):
            raise option_error(option, net, "overlaps %s (%s addresses), which no network may use" % (bad, _scope(bad)))


def _scope(net) -> str:
    if net.is_loopback:
        return "loopback"
    if net.is_multicast:
        return "multicast"
    if net.is_link_local:
        return "link-local"
    return "unspecified or broadcast"


def check_mtu(option: str, mtu, ipv6: bool) -> int:
    """68 to 65535 bytes; at least 1280 when the network carries IPv6 (the kernel drops IPv6 from a smaller link)."""
    if isinstance(mtu, bool) or not isinstance(mtu, int):
        raise option_error(option, mtu, "is not an integer")
    low = IPV6_MIN_MTU if ipv6 else 68
    if not low <= mtu <= 65535:
        raise option_error(
            option,
            mtu,
            "is out of range (%d to 65535%s)" % (low, " with IPv6: the kernel drops IPv6 below 1280" if ipv6 else ""),
        )
    return mtu


def check_port_count(option: str, value, bridge: str, ports: int, adding: int) -> None:
    """A bridge holds at most BR_MAX_PORTS ports: refuse the attach that would exceed it before any change."""
    if ports + adding > BR_MAX_PORTS:
        raise option_error(
            option,
            value,
            "would be port %d of bridge %s, which holds at most %d ports (the kernel's "
            "BR_MAX_PORTS); "
            "use another network for more endpoints" % (ports + adding, bridge, BR_MAX_PORTS),
        )


def parse_network(option: str, value: str, version: int) -> ipaddress._BaseNetwork:
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError as exc:
        raise option_error(option, value, "is not a valid CIDR (%s)" % exc) from exc
    if "/" not in str(value):
        raise option_error(
            option, value, "is not a CIDR: give a prefix length, e.g. %s/%d" % (value, 24 if version == 4 else 64)
        )
    if net.version != version:
        raise option_error(option, value, "is not an IPv%d CIDR" % version)
    return net


def parse_subnet(option: str, value: str, version: int) -> ipaddress._BaseNetwork:
    """A network's own subnet: a CIDR of the family, not loopback, multicast, link-local or unspecified."""
    net = parse_network(option, value, version)
    check_subnet_scope(option, net)
    return net


def parse_address(option: str, value: str, version: int) -> ipaddress._BaseAddress:
    if version == 4:
        try:  # the fast way (an overlay's peers hold thousands): see ipv4_text
            return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, value))
        except (OSError, TypeError, ValueError):
            pass  # not a text, or not a dotted quad: ipaddress says what is wrong
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError as exc:
        raise option_error(option, value, "is not a valid IP address") from exc
    if address.version != version:
        raise option_error(option, value, "is not an IPv%d address" % version)
    return address


def parse_sources(option: str, items) -> Tuple[ipaddress._BaseNetwork, ...]:
    """``trusted_sources``: CIDRs of either family (no host bits), each named ``option[N]`` in errors; sorted, no
    duplicates."""
    if items is None:
        return ()
    if not isinstance(items, (list, tuple)):
        raise option_error(option, items, "must be a list of CIDRs, e.g. [192.0.2.0/24, 2001:db8:1::/48]")
    sources = []
    for number, item in enumerate(items):
        where = "%s[%d]" % (option, number)
        text = str(item).strip() if isinstance(item, str) else None
        if not text or "/" not in text:
            raise option_error(
                where, item, "is not a CIDR: give an address and a prefix length, e.g. 192.0.2.0/24 or 2001:db8:1::/48"
            )
        try:
            source = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise option_error(where, item, "is not a valid CIDR (%s)" % exc) from exc
        if source.network_address != ipaddress.ip_interface(text).ip:
            raise option_error(where, item, "has host bits set: the network is %s" % source)
        sources.append(source)
    if len(set(sources)) != len(sources):
        raise option_error(option, [str(s) for s in sources], "lists one CIDR twice")
    return tuple(sorted(sources, key=lambda net: (net.version, net)))


def ipv4_text(option: str, value) -> Tuple[str, bytes]:
    """An IPv4 address checked as ``parse_address(option, value, 4)`` checks it (the same errors), as its text and its
    four bytes (which sort as the addresses do). The C library's inet_pton takes exactly the dotted quads ipaddress
    takes (no leading zeros, nothing around them), whose text is then already the canonical one: no object is made
    for the thousands of addresses an overlay's peers hold."""
    try:
        return value, socket.inet_pton(socket.AF_INET, value)
    except (OSError, TypeError, ValueError):
        address = parse_address(option, value, 4)  # raises, naming the option, unless a non-text stands for one
        return str(address), address.packed


def parse_mac(option: str, value: str) -> str:
    mac = str(value).strip().lower().replace("-", ":")
    if not _MAC.fullmatch(mac):
        raise option_error(option, value, "is not a MAC address (six hex bytes, e.g. 02:42:0a:00:00:02)")
    if int(mac[:2], 16) & 1:
        raise option_error(option, value, "is a multicast MAC address; an endpoint needs a unicast one")
    if mac == "00:00:00:00:00:00":
        raise option_error(option, value, "is the all-zero MAC address, which the kernel refuses")
    return mac


def default_bridge_name(network: str) -> str:
    """``br-NAME`` when it fits in 15 characters, else a stable shortened form with a hash."""
    name = "br-" + network
    if len(name) <= IFNAMSIZ:
        return name
    return "br-%s-%s" % (network[:6], _short_hash(network, 5))


def host_veth_name(network: str, sandbox_key: str) -> str:
    """The host end of an endpoint's veth: stable for a (network, sandbox) pair."""
    return "ve-" + _short_hash(network + "|" + sandbox_key, 11)


def _gateway_in(option: str, gateway, subnet) -> None:
    if gateway not in subnet:
        raise option_error(option, gateway, "is outside subnet %s" % subnet)
    if gateway == subnet.network_address or (
        subnet.version == 4 and subnet.prefixlen < 31 and gateway == subnet.broadcast_address
    ):
        raise option_error(option, gateway, "is the network or broadcast address of subnet %s" % subnet)


def parse_addressing(params: dict, what: str, example: str, ipv6_only: bool = False) -> tuple:
    """``subnet``, ``gateway``, ``ip_range``, ``ipv6_subnet``, ``ipv6_gateway`` of a network, checked and defaulted
    (the gateways to the first address of their subnet, ``ip_range`` to the subnet).

    With ``ipv6_only`` (bridge networks), ``subnet`` may be omitted when ``ipv6_subnet`` is given: an IPv6-only
    network (Docker 28's ``--ipv4=false``), whose IPv4 fields are None."""
    if not params.get("subnet"):
        if not (ipv6_only and params.get("ipv6_subnet")):
            alone = ", or only ipv6_subnet for an IPv6-only network" if ipv6_only else ""
            raise option_error("subnet", None, "is required for %s (%s%s)" % (what, example, alone))
        for name in ("gateway", "ip_range"):
            if params.get(name):
                raise option_error(name, params[name], "needs subnet (without it the network is IPv6-only)")
        return (None, None, None) + _parse_ipv6(params)
    subnet = parse_subnet("subnet", params["subnet"], 4)
    if subnet.prefixlen > 30:
        raise option_error("subnet", subnet, "is too small: %s needs at least a /30" % what)
    gateway = parse_address("gateway", params["gateway"], 4) if params.get("gateway") else subnet.network_address + 1
    _gateway_in("gateway", gateway, subnet)
    ip_range = subnet
    if params.get("ip_range"):
        ip_range = parse_network("ip_range", params["ip_range"], 4)
        if not ip_range.subnet_of(subnet):
            raise option_error("ip_range", ip_range, "is outside subnet %s" % subnet)
    return (subnet, gateway, ip_range) + _parse_ipv6(params)


def _parse_ipv6(params: dict) -> tuple:
    ipv6_subnet = ipv6_gateway = None
    if params.get("ipv6_subnet"):
        ipv6_subnet = parse_subnet("ipv6_subnet", params["ipv6_subnet"], 6)
        if ipv6_subnet.prefixlen > 126:
            raise option_error("ipv6_subnet", ipv6_subnet, "is too small: use at most a /126")
        ipv6_gateway = (
            parse_address("ipv6_gateway", params["ipv6_gateway"], 6)
            if params.get("ipv6_gateway")
            else ipv6_subnet.network_address + 1
        )
        _gateway_in("ipv6_gateway", ipv6_gateway, ipv6_subnet)
    elif params.get("ipv6_gateway"):
        raise option_error("ipv6_gateway", params["ipv6_gateway"], "needs ipv6_subnet")
    return ipv6_subnet, ipv6_gateway


@dataclass(frozen=True)
class BridgeNetwork:
    name: str
    bridge_name: str
    subnet: Optional[ipaddress.IPv4Network]  # None: an IPv6-only network (so are gateway and ip_range)
    gateway: Optional[ipaddress.IPv4Address]
    ip_range: Optional[ipaddress.IPv4Network]
    ipv6_subnet: Optional[ipaddress.IPv6Network]
    ipv6_gateway: Optional[ipaddress.IPv6Address]
    mtu: int
    masquerade: bool = True
    internal: bool = False
    icc: bool = True
    host_binding_ip: Optional[ipaddress._BaseAddress] = None
    trusted_sources: Tuple[ipaddress._BaseNetwork, ...] = ()
    ipv6_masquerade: Optional[bool] = None  # None: as masquerade
    dns: bool = False  # its endpoints' names are resolved at its gateways (dns.py)
    dns_servers: Tuple[ipaddress._BaseAddress, ...] = ()  # where other names go (empty: the host's resolv.conf)

    # What the rest of the core asks of a driver (see NETWORKS):
    driver: ClassVar[str] = "bridge"
    link: ClassVar[str] = "veth"  # how endpoints join: attach.LINKS
    # The devices a record names, by record key: (role, the kind the device must be, or None: checked for existence
    # only, as the user's own parent interface of a macvlan network).
    devices: ClassVar[Tuple[Tuple[str, str, Optional[str]], ...]] = (("bridge_name", "bridge", "bridge"),)
    no_ports: ClassVar[Optional[str]] = None  # why ports cannot be published to its endpoints (None: they can)
    unique_macs: ClassVar[bool] = True  # two endpoints never share a MAC (see MacvlanNetwork)

    @property
    def alias(self) -> str:
        return BRIDGE_ALIAS_PREFIX + self.name

    @property
    def bridge_mac(self) -> str:
        """The bridge's own MAC, pinned (it would otherwise take its ports' MACs as they come and go)."""
        return mac_from_name("bridge:" + self.name)

    @property
    def gateway_interfaces(self) -> tuple:
        """The addresses the bridge carries: the gateways with their subnets' prefix lengths."""
        addresses = (
            [ipaddress.ip_interface("%s/%d" % (self.gateway, self.subnet.prefixlen))] if self.subnet is not None else []
        )
        if self.ipv6_subnet is not None:
            addresses.append(ipaddress.ip_interface("%s/%d" % (self.ipv6_gateway, self.ipv6_subnet.prefixlen)))
        return tuple(addresses)

    @classmethod
    def from_params(cls, params: dict) -> BridgeNetwork:
        name = check_name("name", params["name"])
        if name in SPECIAL_NETWORKS:
            raise option_error("name", name, "is reserved (Docker's built-in host and none networks)")
        bridge_name = check_ifname("bridge_name", params.get("bridge_name") or default_bridge_name(name))
        subnet, gateway, ip_range, ipv6_subnet, ipv6_gateway = parse_addressing(
            params, "a bridge network", "an IPv4 CIDR such as 172.30.0.0/24", ipv6_only=True
        )
        mtu = check_mtu("mtu", 1500 if params.get("mtu") is None else params["mtu"], ipv6_subnet is not None)
        host_binding_ip = None
        if params.get("host_binding_ip"):
            try:
                host_binding_ip = ipaddress.ip_address(str(params["host_binding_ip"]))
            except ValueError as exc:
                raise option_error("host_binding_ip", params["host_binding_ip"], "is not an IP address") from exc
        internal = bool(params.get("internal"))
        trusted_sources = parse_sources("trusted_sources", params.get("trusted_sources"))
        if trusted_sources and internal:
            raise option_error(
                "trusted_sources",
                [str(s) for s in trusted_sources],
                "cannot be used with internal: true (nothing outside reaches an internal network)",
            )
        ipv6_masquerade = params.get("ipv6_masquerade")
        if ipv6_masquerade is not None:
            if not isinstance(ipv6_masquerade, bool):
                raise option_error(
                    "ipv6_masquerade", ipv6_masquerade, "must be true, false or null (null: as masquerade)"
                )
            if ipv6_subnet is None:
                raise option_error(
                    "ipv6_masquerade", ipv6_masquerade, "needs ipv6_subnet (the network has no IPv6 to masquerade)"
                )
            if internal and ipv6_masquerade:
                raise option_error(
                    "ipv6_masquerade",
                    ipv6_masquerade,
                    "cannot be used with internal: true (nothing leaves an internal network)",
                )
        dns, dns_servers = parse_dns(params)
        return cls(
            name,
            bridge_name,
            subnet,
            gateway,
            ip_range,
            ipv6_subnet,
            ipv6_gateway,
            mtu,
            masquerade=params.get("masquerade", True) is not False,
            internal=internal,
            icc=params.get("icc", True) is not False,
            host_binding_ip=host_binding_ip,
            trusted_sources=trusted_sources,
            ipv6_masquerade=ipv6_masquerade,
            dns=dns,
            dns_servers=dns_servers,
        )

    def bridge_fields(self) -> dict:
        """The fields of its store record that every network on a bridge has (see BridgeRecord)."""
        return dict(
            addressing_fields(self),
            bridge_name=self.bridge_name,
            mtu=self.mtu,
            masquerade=self.masquerade,
            internal=self.internal,
            icc=self.icc,
            host_binding_ip=_text(self.host_binding_ip),
            trusted_sources=tuple(str(source) for source in self.trusted_sources),
            ipv6_masquerade=self.ipv6_masquerade,
            dns=self.dns,
            dns_servers=tuple(str(server) for server in self.dns_servers),
        )

    def to_record(self) -> BridgeRecord:
        return BridgeRecord(**self.bridge_fields())

    @classmethod
    def from_record(cls, name: str, record: NetworkRecord) -> BridgeNetwork:
        return cls.from_params(dict(record.to_dict(), name=name))


def parse_dns(params: dict) -> tuple:
    """``dns`` (a bool) and ``dns_servers`` (IP addresses, at most 3: what a resolver tries, as resolv.conf's MAXNS),
    which only a network with its own resolver forwards to."""
    dns = params.get("dns")
    if dns is not None and not isinstance(dns, bool):
        raise option_error("dns", dns, "must be true or false")
    servers = params.get("dns_servers") or ()
    if isinstance(servers, str) or not isinstance(servers, (list, tuple)):
        raise option_error("dns_servers", servers, "must be a list of IP addresses")
    parsed = []
    for number, server in enumerate(servers):
        try:
            address = ipaddress.ip_address(str(server))
        except ValueError as exc:
            raise option_error("dns_servers[%d]" % number, server, "is not an IP address") from exc
        if address.is_unspecified or address.is_multicast:
            raise option_error("dns_servers[%d]" % number, server, "is not the address of a DNS server")
        if address not in parsed:
            parsed.append(address)
    if parsed and not dns:
        raise option_error("dns_servers", [str(a) for a in parsed], "needs dns: true (only the resolver forwards)")
    if len(parsed) > 3:
        raise option_error("dns_servers", [str(a) for a in parsed], "lists more than 3 servers")
    return bool(dns), tuple(parsed)


def addressing_fields(network) -> dict:
    """The subnets and gateways of a network as its store record holds them (NetworkRecord): texts, or None."""
    names = ("subnet", "gateway", "ip_range", "ipv6_subnet", "ipv6_gateway")
    return {name: _text(getattr(network, name)) for name in names}


def _text(value) -> Optional[str]:
    """An address or network as a record holds it: its text, or None."""
    return str(value) if value else None


@dataclass(frozen=True)
class RouteSpec:
    dst: ipaddress._BaseNetwork
    gateway: Optional[ipaddress._BaseAddress]

    def to_record(self) -> dict:
        return {"dst": str(self.dst), "gateway": str(self.gateway) if self.gateway else None}


def parse_routes(option: str, items) -> Tuple[RouteSpec, ...]:
    routes = []
    for number, item in enumerate(items or ()):
        where = "%s[%d]" % (option, number)
        if isinstance(item, str):
            item = {"dst": item}
        if not isinstance(item, dict) or not item.get("dst"):
            raise option_error(where, item, "must be a dict with 'dst' (a CIDR or 'default') and an optional 'gateway'")
        dst_text = str(item["dst"]).strip()
        gateway = item.get("gateway")
        if dst_text == "default":
            dst_text = "::/0" if gateway and ":" in str(gateway) else "0.0.0.0/0"
        dst = parse_network(where + ".dst", dst_text, 6 if ":" in dst_text else 4)
        gw = parse_address(where + ".gateway", gateway, dst.version) if gateway else None
        routes.append(RouteSpec(dst, gw))
    if len(set(r.dst for r in routes)) != len(routes):
        raise option_error(option, [r.to_record() for r in routes], "lists one destination twice")
    return tuple(routes)


def parse_sysctls(option: str, items) -> Tuple[Tuple[str, str], ...]:
    """Sysctls inside the sandbox: ``net.*`` names; ``IFNAME`` stands for the endpoint's interface."""
    result = []
    for key, value in sorted((items or {}).items()):
        if not _SYSCTL.fullmatch(str(key)):
            raise option_error(option, key, "is not a network sysctl (net.*, e.g. net.ipv4.conf.IFNAME.rp_filter)")
        if isinstance(value, bool):
            value = int(value)
        result.append((str(key), str(value)))
    return tuple(result)


SANDBOX_OPTIONS = ("netns", "netns_path", "pid", "container")  # the ways to name a sandbox; exactly one is given
_CONTAINER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # Docker's and Podman's rule for names (IDs are hex)


def container_ref(params: dict, where: str = "") -> SandboxRef:
    """``container`` (a name or ID) and ``container_runtime`` (default docker): the sandbox
    ``container:RUNTIME/NAME``."""
    name = str(params["container"])
    if not _CONTAINER.fullmatch(name) or len(name) > 128:
        raise option_error(
            where + "container", name, "is not a container name or ID (letters, digits, '_', '.', '-'; at most 128)"
        )
    runtime = params.get("container_runtime") or "docker"
    if runtime not in CONTAINER_RUNTIMES:
        raise option_error(
            where + "container_runtime",
            runtime,
            "is not a supported container runtime (%s)" % ", ".join(CONTAINER_RUNTIMES),
        )
    return SandboxRef("container", name, runtime)


def parse_sandbox(
    params: dict, where: str = "", kinds: Tuple[str, ...] = SANDBOX_OPTIONS
) -> Tuple[str, Optional[SandboxRef]]:
    """The sandbox an item names: exactly one of ``kinds`` (SANDBOX_OPTIONS, for cnm_port_publish also
    ``container_ip``), checked. Returns the option given and its SandboxRef (None for a kind that is no sandbox)."""
    given = [kind for kind in kinds if params.get(kind) not in (None, "")]
    if len(given) != 1:
        listed = "%s and %s" % (", ".join(kinds[:-1]), kinds[-1])
        raise option_error(where + "netns", given or None, "exactly one of %s must be given" % listed)
    kind = given[0]
    value = str(params[kind])
    if kind not in SANDBOX_OPTIONS:
        return kind, None
    if kind == "container":
        return kind, container_ref(params, where)
    if kind == "netns":
        check_netns_name(where + "netns", value)
    if kind == "pid" and (not value.isdigit() or int(value) < 1):
        raise option_error(where + "pid", value, "is not a process ID")
    if kind == "netns_path" and not value.startswith("/"):
        raise option_error(where + "netns_path", value, "must be an absolute path")
    if kind == "netns_path" and not value.isprintable():
        raise option_error(where + "netns_path", repr(value), "must be printable (no newline or control character)")
    return kind, SandboxRef(kind, value)


def check_container_runtime(params: dict, sandbox_options=SANDBOX_OPTIONS) -> None:
    """``container_runtime`` goes with ``container`` only: at the top level (the default of the items), or in an
    item."""
    items = params.get("endpoints") or []
    runtime = params.get("container_runtime")
    if runtime and not params.get("container") and not any(item.get("container") for item in items):
        raise option_error(
            "container_runtime", runtime, "needs 'container' (the container whose network namespace is the sandbox)"
        )
    for number, item in enumerate(items):
        own = [kind for kind in sandbox_options if item.get(kind) not in (None, "")]
        is_container = "container" in own or (not own and params.get("container"))
        if item.get("container_runtime") and not is_container:
            raise option_error(
                "endpoints[%d].container_runtime" % number,
                item["container_runtime"],
                "needs 'container' (the item's sandbox is %s)" % (own[0] if own else "not a container"),
            )


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint as asked for: ``where`` prefixes option names in errors (``endpoints[3].``)."""

    network: str
    sandbox: SandboxRef
    state: str = "present"
    create_netns: bool = True
    delete_netns: bool = False
    ifname: Optional[str] = None
    ipv4_address: Optional[ipaddress.IPv4Address] = None
    ipv6_address: Optional[ipaddress.IPv6Address] = None
    mac_address: Optional[str] = None
    default_route: bool = True
    routes: Tuple[RouteSpec, ...] = ()
    sysctls: Tuple[Tuple[str, str], ...] = ()
    gw_priority: int = 0
    name: Optional[str] = None  # its DNS name on the network (endpoint_names)
    aliases: Tuple[str, ...] = ()
    where: str = field(default="", compare=False)

    def opt(self, name: str) -> str:
        return self.where + name

    @classmethod
    def from_params(cls, params: dict, where: str = "") -> EndpointSpec:
        def opt(name):
            return where + name

        if not params.get("network"):
            raise option_error(opt("network"), None, "is required (a network name, 'host' or 'none')")
        network = str(params["network"])
        if network not in SPECIAL_NETWORKS:
            check_name(opt("network"), network)
        kind, sandbox = parse_sandbox(params, where)
        value = sandbox.value
        check_alias_length(opt(kind), value, network, sandbox.key)
        if network == "host" and kind != "netns":
            raise option_error(
                opt(kind), value, "network 'host' names the host's namespace: give 'netns' (a name to bind to it)"
            )
        ifname = check_ifname(opt("ifname"), params["ifname"]) if params.get("ifname") else None
        if ifname == "lo":
            raise option_error(opt("ifname"), ifname, "is the loopback interface")
        ipv4 = parse_address(opt("ipv4_address"), params["ipv4_address"], 4) if params.get("ipv4_address") else None
        ipv6 = parse_address(opt("ipv6_address"), params["ipv6_address"], 6) if params.get("ipv6_address") else None
        mac = parse_mac(opt("mac_address"), params["mac_address"]) if params.get("mac_address") else None
        dns_name, aliases = endpoint_names(params, sandbox, network, where)
        if network in SPECIAL_NETWORKS:
            for name in ("ifname", "ipv4_address", "ipv6_address", "mac_address", "routes", "sysctls", "gw_priority"):
                if params.get(name):
                    raise option_error(
                        opt(name),
                        params[name],
                        "cannot be used with network '%s' (it has no interface of its own)" % network,
                    )
        return cls(
            network=network,
            sandbox=sandbox,
            state=params.get("state") or "present",
            create_netns=params.get("create_netns", True) is not False,
            delete_netns=bool(params.get("delete_netns")),
            ifname=ifname,
            ipv4_address=ipv4,
            ipv6_address=ipv6,
            mac_address=mac,
            default_route=params.get("default_route", True) is not False,
            routes=parse_routes(opt("routes"), params.get("routes")),
            sysctls=parse_sysctls(opt("sysctls"), params.get("sysctls")),
            gw_priority=parse_gw_priority(opt("gw_priority"), params.get("gw_priority")),
            name=dns_name,
            aliases=aliases,
            where=where,
        )

    @classmethod
    def from_record(cls, record: EndpointRecord) -> EndpointSpec:
        """The endpoint as it was asked for, rebuilt from its store record (to re-plan it)."""
        return cls(
            network=record.network,
            sandbox=SandboxRef.from_key(record.sandbox),
            ifname=record.ifname,
            ipv4_address=ipaddress.ip_address(record.ipv4_address) if record.static_ipv4 else None,
            ipv6_address=ipaddress.ip_address(record.ipv6_address) if record.static_ipv6 else None,
            mac_address=record.mac_address if record.static_mac else None,
            default_route=record.default_route,
            routes=parse_routes("routes", record.routes),
            sysctls=tuple(sorted(record.sysctls.items())),
            gw_priority=record.gw_priority,
            create_netns=False,
            name=record.name,
            aliases=record.aliases,
        )


def batch_items(params: dict, option_names, sandbox_options) -> list:
    """The items of a module's batch option (``endpoints``) as (options, where) pairs.

    The top-level options are the defaults of every item; an item that names its own sandbox
    replaces the top-level sandbox entirely (so ``netns`` above and ``pid`` in an item do not clash).
    Without a batch, the top-level options are the one item.
    """
    defaults = {name: params[name] for name in option_names}
    if params.get("endpoints") is None:
        return [(defaults, "")]
    items = []
    for number, item in enumerate(params["endpoints"]):
        merged = {name: item[name] if item.get(name) is not None else defaults[name] for name in option_names}
        if any(item.get(kind) is not None for kind in sandbox_options):
            for kind in sandbox_options:
                merged[kind] = item.get(kind)
        items.append((merged, "endpoints[%d]." % number))
    return items


@dataclass(frozen=True)
class OverlayPeer:
    """A remote VTEP and the endpoints behind it (address and MAC), and the DNS names of those that have some:
    (address, name or None, aliases), which the network's resolver answers too (dns.py). The endpoints' addresses
    are canonical IPv4 texts (ipv4_text), in the order of the addresses."""

    vtep: ipaddress.IPv4Address
    endpoints: Tuple[Tuple[str, str], ...] = ()
    names: Tuple[Tuple[str, Optional[str], Tuple[str, ...]], ...] = ()


def parse_peers(option: str, items, local_ip) -> Tuple[OverlayPeer, ...]:
    """``peers``: a VTEP address, or ``{vtep, endpoints: [{ip, mac, name, aliases}]}`` (mac derived from ip when
    omitted; name and aliases, DNS names, optional).

    An overlay may list ten thousand endpoints and every run reads them all: each is checked without an object made
    for it, and its option's name is only spelt out for an error."""
    peers = []
    for number, item in enumerate(items or ()):
        where = "%s[%d]" % (option, number)
        if not isinstance(item, dict):
            item = {"vtep": item}
        vtep = parse_address(where + ".vtep", item.get("vtep"), 4)
        if vtep == local_ip:
            raise option_error(where + ".vtep", vtep, "is local_ip itself: a host is not its own peer")
        endpoints, names = [], []
        for index, endpoint in enumerate(item.get("endpoints") or ()):
            if not isinstance(endpoint, dict):
                endpoint = {"ip": endpoint}
            address, mac = endpoint.get("ip"), endpoint.get("mac")
            try:  # ipv4_text's fast way, inline
                packed = socket.inet_pton(socket.AF_INET, address)
            except (OSError, TypeError, ValueError):
                address, packed = ipv4_text("%s.endpoints[%d].ip" % (where, index), address)
            if not mac:
                mac = "02:42:%02x:%02x:%02x:%02x" % tuple(packed)  # ipam.mac_from_ipv4
            elif mac.__class__ is not str or not _UNICAST_MAC.fullmatch(mac) or mac == FLOOD_MAC:
                mac = parse_mac("%s.endpoints[%d].mac" % (where, index), mac)
            endpoints.append((packed, address, mac))
            name, aliases = endpoint.get("name"), endpoint.get("aliases")
            if name is not None or aliases:
                at = "%s.endpoints[%d]." % (where, index)
                name = check_dns_name(at + "name", name) if name is not None else None
                aliases = check_aliases(at + "aliases", aliases or [])
                if name is not None or aliases:
                    names.append((packed, address, name, aliases))
        endpoints.sort()
        names.sort(key=lambda entry: entry[0])
        peers.append(
            OverlayPeer(
                vtep,
                tuple([(address, mac) for _packed, address, mac in endpoints]),
                tuple([entry[1:] for entry in names]),
            )
        )
    vteps = [peer.vtep for peer in peers]
    if len(set(vteps)) != len(vteps):
        raise option_error(option, sorted(map(str, vteps)), "lists one VTEP twice")
    return tuple(sorted(peers, key=lambda peer: peer.vtep))


@dataclass(frozen=True)
class OverlayNetwork(BridgeNetwork):
    """A bridge network whose bridge also holds a VXLAN device towards the peers' VTEPs."""

    vni: int = 0
    local_ip: Optional[ipaddress.IPv4Address] = None
    port: int = 4789
    peers: Tuple[OverlayPeer, ...] = ()
    restrict_peers: bool = True
    encrypted: bool = False
    vxlan_name: str = ""
    control_plane: str = "static"
    mtu_set: bool = False  # the MTU was asked for (False: the underlay's less the overhead, followed)

    driver: ClassVar[str] = "overlay"
    devices: ClassVar[Tuple[Tuple[str, str, Optional[str]], ...]] = (
        ("bridge_name", "bridge", "bridge"),
        ("vxlan_name", "vxlan", "vxlan"),
    )

    @classmethod
    def from_overlay_params(cls, params: dict, underlay_mtu: Optional[int] = None) -> OverlayNetwork:
        vni = params.get("vni")
        if vni is None:
            raise option_error("vni", None, "is required to create an overlay (1 to 16777215, the same on every host)")
        if not 1 <= int(vni) <= 16777215:
            raise option_error("vni", vni, "is out of range (1 to 16777215)")
        local_ip = parse_address("local_ip", params.get("local_ip"), 4) if params.get("local_ip") else None
        if local_ip is None:
            raise option_error("local_ip", None, "is required: this host's VTEP address on the underlay")
        port = 4789 if params.get("port") is None else params["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise option_error("port", port, "is out of range (1 to 65535)")
        mtu = params.get("mtu")
        if mtu is None:
            mtu = (underlay_mtu or 1500) - 50
        elif underlay_mtu is not None and mtu > underlay_mtu - 50:
            raise option_error(
                "mtu",
                mtu,
                "is larger than the underlay allows (%d - 50 bytes of VXLAN = %d)" % (underlay_mtu, underlay_mtu - 50),
            )
        base = BridgeNetwork.from_params(dict(params, mtu=mtu))
        name = base.name
        vxlan_name = check_ifname("vxlan_name", params.get("vxlan_name") or "vx-" + default_bridge_name(name)[3:])
        inherited = (
            "name",
            "bridge_name",
            "subnet",
            "gateway",
            "ip_range",
            "ipv6_subnet",
            "ipv6_gateway",
            "mtu",
            "masquerade",
            "internal",
            "icc",
            "host_binding_ip",
            "trusted_sources",
            "ipv6_masquerade",
            "dns",
            "dns_servers",
        )
        fields = {key: getattr(base, key) for key in inherited}
        return cls(
            **fields,
            vni=int(vni),
            local_ip=local_ip,
            port=int(port),
            peers=parse_peers("peers", params.get("peers"), local_ip),
            restrict_peers=params.get("restrict_peers", True) is not False,
            encrypted=bool(params.get("encrypted")),
            vxlan_name=vxlan_name,
            control_plane=check_choice("control_plane", params.get("control_plane"), CONTROL_PLANES),
            mtu_set=bool(params.get("mtu_set")),
        )

    @property
    def evpn(self) -> bool:
        """FRR (zebra, bgpd with advertise-all-vni) programs the remote entries, not the inventory's peers."""
        return self.control_plane == "evpn"

    @property
    def bridge_mac(self) -> str:
        """With EVPN the distributed gateway's MAC is the same on every host (Docker's 02:42 + the gateway's IPv4
        bytes: no endpoint has the gateway's address), so a moved or remote-learnt gateway entry never disagrees."""
        if self.evpn and self.gateway is not None:
            return mac_from_ipv4(self.gateway)
        return BridgeNetwork.bridge_mac.fget(self)

    @property
    def vxlan_mac(self) -> str:
        """Pinned: a re-created device keeps its MAC, so the peers' FDB entries stay right."""
        digest = hashlib.sha256(("vxlan:%s:%d" % (self.name, self.vni)).encode()).digest()
        return "02:%02x:%02x:%02x:%02x:%02x" % tuple(digest[:5])

    def to_record(self) -> OverlayRecord:
        return OverlayRecord(
            **self.bridge_fields(),
            vni=self.vni,
            local_ip=str(self.local_ip),
            port=self.port,
            vxlan_name=self.vxlan_name,
            restrict_peers=self.restrict_peers,
            peers=tuple(PeerRecord(str(peer.vtep), peer.endpoints, peer.names) for peer in self.peers),
            encrypted=self.encrypted,
            control_plane=self.control_plane,
            mtu_set=self.mtu_set,
        )

    @classmethod
    def from_record(cls, name: str, record: NetworkRecord) -> OverlayNetwork:
        return cls.from_overlay_params(dict(record.to_dict(), name=name, mtu_set=record.mtu_set))


MACVLAN_MODES = ("bridge", "private", "vepa", "passthru")
CONTROL_PLANES = ("static", "evpn")  # an overlay's: the inventory's peers, or BGP EVPN (FRR)
_VLAN_PARENT = re.compile(r"(?P<base>.+)\.(?P<vid>[0-9]{1,4})")


def check_choice(option: str, value: Optional[str], choices: Tuple[str, ...]) -> str:
    """``value``, or the first of ``choices`` (the default) when it is not given."""
    if not value:
        return choices[0]
    if value not in choices:
        raise option_error(option, value, "is not one of %s" % ", ".join(choices))
    return value


def parse_on_parent(params: dict, what: str) -> tuple:
    """What networks on a parent interface (macvlan, ipvlan) share: (name, parent, the five addressing values of
    parse_addressing, mtu or None for the parent's)."""
    name = check_name("name", params["name"])
    if name in SPECIAL_NETWORKS:
        raise option_error("name", name, "is reserved (Docker's built-in host and none networks)")
    if not params.get("parent"):
        raise option_error(
            "parent", None, "is required: the host interface whose LAN the endpoints join (or IFACE.VID for a VLAN)"
        )
    parent = check_ifname("parent", params["parent"])
    vlan = vlan_parent(parent)
    if vlan is not None and not 1 <= vlan[1] <= 4094:
        raise option_error("parent", parent, "has VLAN id %d, outside 1 to 4094" % vlan[1])
    addressing = parse_addressing(params, what, "the LAN's IPv4 CIDR, such as 192.168.1.0/24")
    mtu = params.get("mtu")
    if mtu is not None:
        check_mtu("mtu", mtu, addressing[3] is not None)
    return name, parent, addressing, mtu


def default_shim_name(network: str) -> str:
    return "mvs-" + _short_hash("shim:" + network, 11)


def vlan_parent(parent: str) -> Optional[tuple]:
    """(base interface, VLAN id) when ``parent`` has the form IFACE.VID, else None."""
    match = _VLAN_PARENT.fullmatch(parent)
    if match is None:
        return None
    return match.group("base"), int(match.group("vid"))


@dataclass(frozen=True)
class ParentNetwork:
    """What networks on a parent interface (macvlan, ipvlan) share; see parse_on_parent."""

    name: str
    parent: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    ip_range: ipaddress.IPv4Network
    ipv6_subnet: Optional[ipaddress.IPv6Network]
    ipv6_gateway: Optional[ipaddress.IPv6Address]
    mtu: Optional[int]  # None: the parent's MTU
    # What the endpoint planner asks of every network: their endpoints are plain LAN hosts.
    internal: bool = False
    icc: bool = True

    devices: ClassVar[Tuple[Tuple[str, str, Optional[str]], ...]] = (("parent", "parent", None),)

    @property
    def no_ports(self) -> str:
        return (
            "is a %s network: its endpoints are on the LAN with their own addresses, so reach them there; ports "
            "cannot be published from the host to them (Docker ignores -p on %s too)" % (self.driver, self.driver)
        )

    @property
    def vlan(self) -> Optional[tuple]:
        return vlan_parent(self.parent)

    def parent_fields(self, mtu: int, vlan_created: bool) -> dict:
        """The fields of its store record that every network on a parent has (see ParentRecord)."""
        return dict(
            addressing_fields(self),
            parent=self.parent,
            mtu=mtu,
            mtu_set=self.mtu is not None,
            vlan_created=vlan_created,
        )

    @classmethod
    def from_record(cls, name: str, record: ParentRecord):
        return cls.from_params(dict(record.to_dict(), name=name))


@dataclass(frozen=True)
class MacvlanNetwork(ParentNetwork):
    mode: str = "bridge"
    host_access: bool = False
    host_access_ip: Optional[ipaddress.IPv4Address] = None
    shim_name: Optional[str] = None

    driver: ClassVar[str] = "macvlan"
    link: ClassVar[str] = "macvlan"
    devices: ClassVar[Tuple[Tuple[str, str, Optional[str]], ...]] = (
        ("shim_name", "shim", "macvlan"),
        ("parent", "parent", None),
    )

    @property
    def unique_macs(self) -> bool:
        """A passthru endpoint takes its parent's MAC: there is one of them, and no MAC of its own to check."""
        return self.mode != "passthru"

    @classmethod
    def from_params(cls, params: dict) -> MacvlanNetwork:
        name, parent, addressing, mtu = parse_on_parent(params, "a macvlan network")
        subnet, gateway, ip_range, ipv6_subnet, ipv6_gateway = addressing
        mode = check_choice("mode", params.get("mode"), MACVLAN_MODES)
        host_access = bool(params.get("host_access"))
        host_access_ip = shim_name = None
        if host_access:
            if mode != "bridge":
                raise option_error(
                    "host_access",
                    True,
                    "needs mode bridge: in mode %s the parent does not switch frames between the host's shim "
                    "and the endpoints" % mode,
                )
            if not params.get("host_access_ip"):
                raise option_error(
                    "host_access_ip",
                    None,
                    "is required with host_access: the host's own address on the network, outside ip_range",
                )
            host_access_ip = parse_address("host_access_ip", params["host_access_ip"], 4)
            if host_access_ip not in subnet or host_access_ip in (
                subnet.network_address,
                subnet.broadcast_address,
                gateway,
            ):
                raise option_error(
                    "host_access_ip",
                    host_access_ip,
                    "must be a host address of subnet %s other than the gateway %s" % (subnet, gateway),
                )
            if host_access_ip in ip_range:
                raise option_error(
                    "host_access_ip",
                    host_access_ip,
                    "is inside ip_range %s, where endpoints get their addresses: "
                    "set ip_range to a part of the subnet that excludes it" % ip_range,
                )
            shim_name = check_ifname("shim_name", params.get("shim_name") or default_shim_name(name))
        elif params.get("host_access_ip"):
            raise option_error("host_access_ip", params["host_access_ip"], "needs host_access: true")
        return cls(
            name,
            parent,
            *addressing,
            mtu,
            mode=mode,
            host_access=host_access,
            host_access_ip=host_access_ip,
            shim_name=shim_name,
        )

    def to_record(self, mtu: int, vlan_created: bool) -> MacvlanRecord:
        return MacvlanRecord(
            **self.parent_fields(mtu, vlan_created),
            mode=self.mode,
            host_access=self.host_access,
            host_access_ip=_text(self.host_access_ip),
            shim_name=self.shim_name,
        )


IPVLAN_MODES = ("l2", "l3", "l3s")
IPVLAN_FLAGS = ("bridge", "private", "vepa")


@dataclass(frozen=True)
class IpvlanNetwork(ParentNetwork):
    """Docker's ``-d ipvlan``: endpoints are ipvlan links on the parent, sharing its MAC. In mode l2 they are hosts
    of the LAN behind its gateway; in l3 and l3s the parent routes for them, and their default route goes through
    their interface, with no gateway (Docker's ``default dev eth0``)."""

    mode: str = "l2"
    flag: str = "bridge"

    driver: ClassVar[str] = "ipvlan"
    link: ClassVar[str] = "ipvlan"
    unique_macs: ClassVar[bool] = False  # every ipvlan link has its parent's MAC

    @classmethod
    def from_params(cls, params: dict) -> IpvlanNetwork:
        name, parent, addressing, mtu = parse_on_parent(params, "an ipvlan network")
        mode = check_choice("ipvlan_mode", params.get("ipvlan_mode"), IPVLAN_MODES)
        flag = check_choice("ipvlan_flag", params.get("ipvlan_flag"), IPVLAN_FLAGS)
        return cls(name, parent, *addressing, mtu, mode=mode, flag=flag)

    @property
    def link_mode(self) -> str:
        """The mode and flag as the kernel reports them on a link (kernel.LinkInfo.mode)."""
        return "%s %s" % (self.mode, self.flag)

    @property
    def default_on_link(self) -> bool:
        """l3 and l3s: the endpoints' default route goes through their interface, not through a gateway."""
        return self.mode != "l2"

    def to_record(self, mtu: int, vlan_created: bool) -> IpvlanRecord:
        return IpvlanRecord(
            **self.parent_fields(mtu, vlan_created),
            ipvlan_mode=self.mode,
            ipvlan_flag=self.flag,
            default_on_link=self.default_on_link,
        )


# The network drivers, by the name a store record gives: every place that depends on the driver asks its class.
NETWORKS = {cls.driver: cls for cls in (BridgeNetwork, OverlayNetwork, MacvlanNetwork, IpvlanNetwork)}
LINK_KINDS = tuple(sorted({cls.link for cls in NETWORKS.values()}))  # how endpoints join networks: attach.LINKS


def network_from_record(name: str, record: NetworkRecord):
    """The network a store record describes, as its driver's class."""
    return NETWORKS[record.driver].from_record(name, record)


def check_driver(name: str, record: Optional[NetworkRecord], driver: str, removing: bool = False) -> None:
    """A network name belongs to one driver: another driver's module refuses it, naming both."""
    if record is not None and record.driver != driver:
        advice = "" if removing else "; remove it first"
        raise option_error("name", name, "is a network of driver %s, not %s%s" % (record.driver, driver, advice))


def network_devices(record: NetworkRecord) -> list:
    """(role, device name, kind) of the devices a network record names (see BridgeNetwork.devices)."""
    devices = NETWORKS[record.driver].devices
    return [(role, getattr(record, field), kind) for field, role, kind in devices if getattr(record, field)]
