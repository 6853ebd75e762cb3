# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Published ports (Docker's ``-p``) as frozen PortMapping values, one per host port.

Docker's string forms and the dict form are parsed here once; ranges are expanded, because
each published port becomes its own DNAT rule and owner record.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Tuple, Union

from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError, option_error
from ansible_collections.cnm.network.plugins.module_utils.records import PortRecord

PROTOCOLS = ("tcp", "udp", "sctp")
MAX_RANGE = 1000
DICT_KEYS = ("host_ip", "host_port", "container_port", "protocol")
_PORT_TEXT = re.compile(r"^([0-9]+)(?:-([0-9]+))?$")

HostAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
Slot = Tuple[int, HostAddress]  # (family, host address): 0.0.0.0 and :: stand for every address of the family
ANY = {4: ipaddress.IPv4Address("0.0.0.0"), 6: ipaddress.IPv6Address("::")}


@dataclass(frozen=True)
class PortMapping:
    """One host port forwarded to one container port.

    ``host_ip`` None means every address of both families; 0.0.0.0 and :: (as in Docker) every address of one.
    """

    host_ip: Optional[HostAddress]
    host_port: int
    container_port: int
    protocol: str

    @property
    def family(self) -> Optional[int]:
        """4 or 6 when bound to one family (0.0.0.0 and :: included), None for all addresses."""
        return None if self.host_ip is None else self.host_ip.version

    @property
    def key(self) -> str:
        """The host side as a stable owner id: ``tcp/0.0.0.0:4000``, ``udp/[::1]:53``, ``tcp/*:4000`` for all
        addresses."""
        return "%s/%s:%d" % (self.protocol, _host_text(self.host_ip, "*"), self.host_port)

    def overlaps(self, other: PortMapping) -> bool:
        """True when both would claim one host address and port of one protocol."""
        if (self.protocol, self.host_port) != (other.protocol, other.host_port):
            return False
        if self.host_ip is None or other.host_ip is None:
            return True
        if self.host_ip.version != other.host_ip.version:
            return False
        return self.host_ip == other.host_ip or self.host_ip.is_unspecified or other.host_ip.is_unspecified

    def to_record(self) -> dict:
        return {
            "host_ip": None if self.host_ip is None else str(self.host_ip),
            "host_port": self.host_port,
            "container_port": self.container_port,
            "protocol": self.protocol,
        }


def _host_text(host_ip: Optional[HostAddress], everything: str) -> str:
    if host_ip is None:
        return everything
    return "[%s]" % host_ip if host_ip.version == 6 else str(host_ip)


def docker_form(mapping: PortMapping) -> str:
    """Docker's ``-p`` string for one mapping, e.g. ``127.0.0.1:4000:80/tcp`` or ``[::1]:53:53/udp``."""
    prefix = "" if mapping.host_ip is None else _host_text(mapping.host_ip, "") + ":"
    return "%s%d:%d/%s" % (prefix, mapping.host_port, mapping.container_port, mapping.protocol)


def _port_range(option: str, value: object) -> Tuple[int, int]:
    """``80``, ``"80"`` or ``"8000-8010"`` as (first, last), checked against 1 to 65535 and MAX_RANGE."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise option_error(option, value, "is not a port number (1 to 65535, or a range such as 8000-8010)")
    text = str(value).strip()
    match = _PORT_TEXT.match(text)
    if not match:
        raise option_error(option, value, "is not a port number (1 to 65535, or a range such as 8000-8010)")
    first = int(match.group(1))
    last = first if match.group(2) is None else int(match.group(2))
    if not (1 <= first <= 65535 and 1 <= last <= 65535):
        raise option_error(option, text, "is out of range (1 to 65535)")
    if first > last:
        raise option_error(option, text, "is a reversed range: write %d-%d" % (last, first))
    if last - first + 1 > MAX_RANGE:
        raise option_error(
            option,
            text,
            "spans %d ports, more than %d: each published port is its own firewall rule, so publish fewer"
            % (last - first + 1, MAX_RANGE),
        )
    return first, last


def _host_address(option: str, value: object) -> Optional[HostAddress]:
    if value is None:
        return None
    text = str(value).strip()
    if text == "":
        return None
    bracketed = text.startswith("[") and text.endswith("]")
    if bracketed:
        text = text[1:-1]
    try:
        address = ipaddress.ip_address(text)
    except ValueError as exc:
        raise option_error(
            option, value, "is not an IP address (e.g. 127.0.0.1 or [2001:db8::1]; omit it for all addresses)"
        ) from exc
    if bracketed and address.version == 4:
        raise option_error(
            option, value, "puts an IPv4 address in brackets, which are for IPv6 only: write %s" % address
        )
    if address.version == 6 and address.scope_id:
        raise option_error(option, value, "has a zone index; give the address without '%%%s'" % address.scope_id)
    if address.version == 6 and address.ipv4_mapped is not None:
        raise option_error(
            option, value, "is an IPv4-mapped IPv6 address: write the IPv4 address %s" % address.ipv4_mapped
        )
    if address.version == 6 and address.is_loopback:
        raise option_error(
            option,
            value,
            "is IPv6 loopback, which cannot be forwarded to a container: the kernel has "
            "no route_localnet for IPv6 "
            "(Docker's userland proxy does it); use 127.0.0.1",
        )
    return address


def _protocol(option: str, value: object) -> str:
    protocol = "tcp" if value is None else str(value).strip().lower()
    if protocol not in PROTOCOLS:
        raise option_error(
            option, value or repr(value), "is not a protocol that can be published (%s)" % ", ".join(PROTOCOLS)
        )
    return protocol


def _ports(count: int) -> str:
    return "1 port" if count == 1 else "%d ports" % count


def _no_host_port(option: str, given: object, suggestion: str) -> CnmError:
    return option_error(
        option,
        None,
        "is required: %s gives only a container port, and Docker's ephemeral host port cannot be declared; write %s"
        % (given, suggestion),
    )


def _split_string(where: str, text: str) -> Tuple[Optional[str], str, str, Optional[str]]:
    """Docker's ``[HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTOCOL]`` as its four raw fields."""
    body, protocol = text, None
    if "/" in text:
        body, protocol = text.rsplit("/", 1)
    if "/" in body:
        raise option_error(
            where,
            text,
            "is not a port mapping: write [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTOCOL], e.g. 127.0.0.1:4000:80/tcp",
        )
    if body.startswith("["):
        address, bracket, rest = body[1:].partition("]")
        if not bracket or not rest.startswith(":") or rest.count(":") != 2:
            raise option_error(
                where,
                text,
                "is not a port mapping: write [IPV6]:HOST_PORT:CONTAINER_PORT[/PROTOCOL], "
                "e.g. [2001:db8::1]:4000:80/tcp",
            )
        host_port, container_port = rest[1:].split(":", 1)
        return "[%s]" % address, host_port, container_port, protocol
    if "[" in body or "]" in body:
        raise option_error(
            where,
            text,
            "has unbalanced brackets: write [IPV6]:HOST_PORT:CONTAINER_PORT[/PROTOCOL], e.g. [2001:db8::1]:4000:80/tcp",
        )
    parts = body.split(":")
    if len(parts) == 1:
        raise _no_host_port(where + ".host_port", repr(text), repr("%s:%s" % (body, text)))
    if len(parts) == 2:
        return None, parts[0], parts[1], protocol
    if len(parts) == 3:
        return parts[0], parts[1], parts[2], protocol
    # An IPv6 address without brackets: "::1:4000:80" could as well be ::1:4000 with only a container port.
    suggestion = "[%s]:%s:%s%s" % (
        ":".join(parts[:-2]),
        parts[-2],
        parts[-1],
        "" if protocol is None else "/" + protocol,
    )
    raise option_error(where, text, "is ambiguous: put an IPv6 host_ip in brackets, e.g. %s" % suggestion)


def _item_fields(where: str, item: object) -> Tuple[object, object, object, object]:
    """The raw host_ip, host_port, container_port and protocol of one item."""
    if isinstance(item, bool) or not isinstance(item, (str, int, dict)):
        raise option_error(
            where, item, "must be a string such as '127.0.0.1:4000:80/tcp' or a dict with host_port and container_port"
        )
    if isinstance(item, int):
        # YAML 1.1 (PyYAML, so Ansible) reads an unquoted 22:22 as the base-60 number 1342.
        if item > 65535:
            raise option_error(
                where,
                item,
                "is a number, not a port mapping: YAML reads an unquoted %d:%d as the base-60 number %d; quote it"
                % (item // 60, item % 60, item),
            )
        if item < 1:
            raise option_error(
                where,
                item,
                "is not a port mapping: write [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTOCOL], e.g. "
                "127.0.0.1:4000:80/tcp",
            )
        raise _no_host_port(
            where + ".host_port",
            item,
            "'%d:%d' (and quote such strings: YAML reads an unquoted 22:22 as the base-60 number 1342)" % (item, item),
        )
    if isinstance(item, dict):
        unknown = sorted(str(k) for k in item if k not in DICT_KEYS)
        if unknown:
            raise option_error(
                where, item, "has unknown keys %s (known: %s)" % (", ".join(unknown), ", ".join(DICT_KEYS))
            )
        if item.get("container_port") in (None, ""):
            raise option_error(
                where + ".container_port", None, "is required (a port such as 80 or a range such as 80-90)"
            )
        if item.get("host_port") in (None, ""):
            raise _no_host_port(
                where + ".host_port", "the item", "host_port as well, e.g. host_port: %s" % item["container_port"]
            )
        return item.get("host_ip"), item["host_port"], item["container_port"], item.get("protocol")
    text = item.strip()
    if not text:
        raise option_error(
            where,
            repr(item),
            "is not a port mapping: write [HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTOCOL], e.g. 127.0.0.1:4000:80/tcp",
        )
    host_ip, host_port, container_port, protocol = _split_string(where, text)
    if container_port == "":
        raise option_error(where + ".container_port", None, "is required: %r ends without a container port" % text)
    if host_port == "":
        suggestion = (
            "%s:%s:%s" % (host_ip, container_port, container_port)
            if host_ip
            else "%s:%s" % (container_port, container_port)
        )
        raise _no_host_port(
            where + ".host_port", repr(text), repr(suggestion + ("/" + protocol if protocol is not None else ""))
        )
    return host_ip, host_port, container_port, protocol


def parse_port(item: object, option: str) -> List[PortMapping]:
    """One item of ``ports`` (a Docker ``-p`` string or a dict) as one mapping per host port."""
    host_ip, host_port, container_port, protocol = _item_fields(option, item)
    protocol = _protocol(option + ".protocol", protocol)
    address = _host_address(option + ".host_ip", host_ip)
    host_first, host_last = _port_range(option + ".host_port", host_port)
    container_first, container_last = _port_range(option + ".container_port", container_port)
    host_count, container_count = host_last - host_first + 1, container_last - container_first + 1
    if host_count != container_count:
        why = (
            " (Docker would pick one free port of the host range, which cannot be declared)"
            if container_count == 1
            else ""
        )
        raise option_error(
            option + ".container_port",
            container_port,
            "is %s but host_port %s is %s: the ranges must be the same length%s"
            % (_ports(container_count), host_port, _ports(host_count), why),
        )
    return [
        PortMapping(address, host_first + offset, container_first + offset, protocol) for offset in range(host_count)
    ]


def parse_ports(items, option: str = "ports") -> Tuple[PortMapping, ...]:
    """Every item of ``ports`` expanded, refusing two items that would claim one host address and port."""
    return tuple(mapping for mapping, _number in parse_numbered_ports(items, option))


def parse_numbered_ports(items, option: str = "ports") -> Tuple[Tuple[PortMapping, int], ...]:
    """Like parse_ports, each mapping with the number of the item it came from (a range is one item)."""
    if items is None:
        return ()
    if not isinstance(items, (list, tuple)):
        raise option_error(option, items, "must be a list of port mappings")
    mappings: List[Tuple[PortMapping, int]] = []
    claimed: Dict[Tuple[str, int], List[Tuple[PortMapping, int]]] = {}
    for number, item in enumerate(items):
        where = "%s[%d]" % (option, number)
        for mapping in parse_port(item, where):
            slot = claimed.setdefault((mapping.protocol, mapping.host_port), [])
            for earlier, earlier_number in slot:
                if mapping.overlaps(earlier):
                    raise option_error(
                        where,
                        docker_form(mapping),
                        "overlaps %s[%d] (%s): a host address and port can be published once per protocol"
                        " (no host_ip means all addresses, 0.0.0.0 and :: all of one family)"
                        % (option, earlier_number, docker_form(earlier)),
                    )
            slot.append((mapping, number))
            mappings.append((mapping, number))
    return tuple(mappings)


def binding_slots(host_ip: Optional[HostAddress], ipv4: bool, ipv6: bool) -> FrozenSet[Slot]:
    """The host addresses a binding takes, per family, for an endpoint with (or without) each family.

    As Docker 27+ does (``sortAndNormPBs`` in libnetwork's bridge driver): no host address means 0.0.0.0 when the
    endpoint has IPv4 and [::] when it has IPv6; an explicit address takes only its own family.
    """
    if host_ip is None:
        return frozenset(slot for slot, has in (((4, ANY[4]), ipv4), ((6, ANY[6]), ipv6)) if has)
    return frozenset({(host_ip.version, host_ip)})


def slots_overlap(first: FrozenSet[Slot], second: FrozenSet[Slot]) -> bool:
    """Whether two bindings claim one host address of one family (an unspecified address claims them all)."""
    return any(
        a[0] == b[0] and (a[1] == b[1] or a[1].is_unspecified or b[1].is_unspecified) for a in first for b in second
    )


def slots_cover(outer: FrozenSet[Slot], inner: FrozenSet[Slot]) -> bool:
    """Whether every address ``inner`` claims is claimed by ``outer`` too."""
    return all(any(a[0] == b[0] and (a[1] == b[1] or a[1].is_unspecified) for a in outer) for b in inner)


def canonical_host_ip(host_ip: Optional[HostAddress], ipv4: bool, ipv6: bool) -> Optional[HostAddress]:
    """One spelling per binding of an endpoint, so that equal bindings get one store key.

    ``0.0.0.0:P:C`` of an endpoint without IPv6 is ``P:C`` (None); ``P:C`` of an IPv6-only endpoint is ``[::]:P:C``
    (its IPv4 side does not exist, and None stays the key of bindings that hold IPv4).
    """
    if (
        host_ip is not None
        and host_ip.is_unspecified
        and binding_slots(host_ip, ipv4, ipv6) == binding_slots(None, ipv4, ipv6)
    ):
        host_ip = None
    if host_ip is None and not ipv4 and ipv6:
        return ANY[6]
    return host_ip


def entry_mapping(entry: PortRecord) -> PortMapping:
    """The PortMapping of a store entry of a published port."""
    host_ip = ipaddress.ip_address(entry.host_ip) if entry.host_ip else None
    return PortMapping(host_ip, entry.host_port, entry.container_port, entry.protocol)


def entry_slots(entry: PortRecord) -> FrozenSet[Slot]:
    """The host addresses a store entry takes (entries written before IPv6 lack ``container_ipv6``)."""
    return binding_slots(entry_mapping(entry).host_ip, entry.container_ip is not None, entry.container_ipv6 is not None)
