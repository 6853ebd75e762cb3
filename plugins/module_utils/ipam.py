# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Address allocation and MAC derivation: pure functions over ipaddress objects."""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Container, Optional, Union

from ansible_collections.cnm.network.plugins.module_utils.errors import option_error

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def reserved_addresses(subnet: IPNetwork, gateway: Optional[IPAddress]) -> set:
    """Addresses never handed to an endpoint: network, broadcast (IPv4) and the gateway."""
    reserved = {subnet.network_address}
    if subnet.version == 4 and subnet.prefixlen < 31:
        reserved.add(subnet.broadcast_address)
    if gateway is not None:
        reserved.add(gateway)
    return reserved


def allocate(
    pool: IPNetwork,
    subnet: IPNetwork,
    gateway: Optional[IPAddress],
    taken: Container,
    option: str = "ip_range",
    start: Optional[int] = None,
) -> IPAddress:
    """Return the lowest address of ``pool`` that is neither reserved nor ``in taken`` (a set, a dict...).

    ``start``: an address (as an int) below which every address of the pool is known to be unavailable, so that a
    run allocating many addresses does not walk the pool from its start for each (see EndpointPlanner)."""
    reserved = reserved_addresses(subnet, gateway)
    kind = ipaddress.IPv4Address if pool.version == 4 else ipaddress.IPv6Address
    first = int(pool.network_address) if start is None else max(start, int(pool.network_address))
    for candidate in range(first, int(pool.broadcast_address) + 1):
        address = kind(candidate)
        if address not in reserved and address not in taken and address in subnet:
            return address
    in_use = [a for a in pool if a in reserved or a in taken] if pool.num_addresses <= 65536 else None
    raise option_error(
        option, pool, "has no free address left (%s in use)" % (len(in_use) if in_use is not None else "all")
    )


def check_static(
    address: IPAddress, subnet: IPNetwork, gateway: Optional[IPAddress], taken_by: dict, option: str, owner: str
) -> None:
    """Refuse a static address outside the subnet, reserved, or leased to another endpoint."""
    if address.version != subnet.version:
        raise option_error(option, address, "is not an IPv%d address (subnet %s)" % (subnet.version, subnet))
    if address not in subnet:
        raise option_error(option, address, "is outside subnet %s" % subnet)
    if address in reserved_addresses(subnet, gateway):
        raise option_error(option, address, "is reserved in subnet %s (network, broadcast or gateway address)" % subnet)
    holder = taken_by.get(address)
    if holder is not None and holder != owner:
        raise option_error(option, address, "is already taken by endpoint %s" % holder)


def mac_from_ipv4(address: ipaddress.IPv4Address) -> str:
    """Docker's endpoint MAC: 02:42 followed by the four bytes of the IPv4 address."""
    return "02:42:" + ":".join("%02x" % b for b in address.packed)


def mac_from_name(name: str) -> str:
    """A stable locally administered unicast MAC for endpoints without IPv4."""
    digest = hashlib.sha256(name.encode()).digest()
    return "02:42:" + ":".join("%02x" % b for b in digest[:4])
