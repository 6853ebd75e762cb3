# Copyright (c) 2026, cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the inventory arithmetic of a multi-host overlay: VTEP addresses, per-host ip_range slices, peer lists,
MACs.

The documentation of each filter is in plugins/filter/<filter name>.yml.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any, Dict, List, Optional, Tuple

from ansible.errors import AnsibleFilterError

from ansible_collections.cnm.network.plugins.module_utils.ipam import IPAddress, IPNetwork, mac_from_ipv4

# With the default prefix a slice keeps at least this many addresses unless the group needs smaller slices.
MIN_SLICE_ADDRESSES = 16
DEFAULT_SLICE_BITS = 4
MAC_PATTERN = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$")


def _fail(filter_name: str, message: str) -> AnsibleFilterError:
    return AnsibleFilterError("cnm.network.%s: %s" % (filter_name, message))


def _as_list(value: Any) -> Optional[list]:
    """A list from a list, tuple or other iterable (Jinja's map and select give generators), None for strings and
    dicts."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        return None
    return list(value)


def _parse_ipv4(filter_name: str, value: Any, what: str) -> ipaddress.IPv4Address:
    """An IPv4 address from a string (a prefix length such as /24 is accepted and dropped) or an ipaddress object."""
    if isinstance(value, ipaddress.IPv4Address):
        return value
    if isinstance(value, ipaddress.IPv4Interface):
        return value.ip
    if not isinstance(value, str) or not value.strip():
        raise _fail(filter_name, "%s %r is not an IPv4 address" % (what, value))
    text = value.strip()
    try:
        address = ipaddress.ip_interface(text).ip if "/" in text else ipaddress.ip_address(text)
    except ValueError:
        raise _fail(filter_name, "%s %r is not an IPv4 address" % (what, value)) from None
    if address.version != 4:
        raise _fail(filter_name, "%s %s is an IPv6 address; an IPv4 address is needed" % (what, text))
    return address


def _parse_endpoint_ip(filter_name: str, value: Any, what: str) -> IPAddress:
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    if not isinstance(value, str) or not value.strip():
        raise _fail(filter_name, "%s %r is not an IP address" % (what, value))
    text = value.strip()
    try:
        return ipaddress.ip_interface(text).ip if "/" in text else ipaddress.ip_address(text)
    except ValueError:
        raise _fail(filter_name, "%s %r is not an IP address" % (what, value)) from None


# --- mac_from_ip -----------------------------------------------------------------------------------


def mac_from_ip(address: Any) -> str:
    """Docker's endpoint MAC: 02:42 followed by the four bytes of the IPv4 address."""
    return mac_from_ipv4(_parse_ipv4("mac_from_ip", address, "address"))


# --- overlay_slice / overlay_slices ------------------------------------------------------------------


def _parse_subnet(filter_name: str, subnet: Any) -> IPNetwork:
    if isinstance(subnet, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return subnet
    if not isinstance(subnet, str):
        raise _fail(filter_name, "subnet %r is not a network in CIDR notation (such as 10.200.0.0/16)" % (subnet,))
    try:
        return ipaddress.ip_network(subnet.strip())
    except ValueError as exc:
        raise _fail(filter_name, "subnet %r is not a network in CIDR notation: %s" % (subnet, exc)) from None


def _parse_count(filter_name: str, option: str, value: Any) -> int:
    """An integer option; prefix may also be written "/28" or "28"."""
    if isinstance(value, bool):
        raise _fail(filter_name, "%s %r is not an integer" % (option, value))
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        if option == "prefix" and text.startswith("/"):
            text = text[1:]
        if text.isdigit():
            return int(text)
    raise _fail(filter_name, "%s %r is not an integer" % (option, value))


def _slice_prefix(filter_name: str, subnet: IPNetwork, prefix: Any, host_count: int) -> int:
    if prefix is not None:
        prefix_len = _parse_count(filter_name, "prefix", prefix)
        if not subnet.prefixlen < prefix_len <= subnet.max_prefixlen:
            raise _fail(
                filter_name,
                "prefix /%d must be longer than the subnet's /%d and at most /%d"
                % (prefix_len, subnet.prefixlen, subnet.max_prefixlen),
            )
        return prefix_len
    # The fewest slices that hold slice 0 and every host, but at least 16 slices (while a slice keeps at least 16
    # addresses): a group of up to 15 hosts always gets subnet prefix + 4, and each doubling of a larger group
    # one more bit. Only a subnet with fewer addresses than the group needs slices is refused.
    needed_bits = host_count.bit_length()  # 2 ** bits >= host_count + 1
    room = subnet.max_prefixlen - subnet.prefixlen
    preferred_bits = min(DEFAULT_SLICE_BITS, room - (MIN_SLICE_ADDRESSES.bit_length() - 1))
    bits = max(needed_bits, preferred_bits, 1)
    if bits > room:
        raise _fail(
            filter_name,
            "subnet %s cannot hold %d host(s): it has %d addresses, and every host needs a slice besides slice 0 "
            "(the network and gateway addresses); use a larger subnet" % (subnet, host_count, subnet.num_addresses),
        )
    return subnet.prefixlen + bits


def _host_hash(name: str) -> bytes:
    return hashlib.sha256(name.encode("utf-8")).digest()


def _home_slot(digest: bytes, slots: int) -> int:
    """The slot a host asks for first: 1..slots (slice 0 is never handed out)."""
    return 1 + int.from_bytes(digest, "big") % slots


def _parse_hosts(filter_name: str, host: Any, hosts: Any) -> Tuple[List[str], Dict[str, int]]:
    """Split the group into hosts placed by hash and hosts pinned to an explicit slice index."""
    if hosts is None:
        hosts = [host]
    hashed: List[str] = []
    pinned: Dict[str, int] = {}
    names = _as_list(hosts)
    if isinstance(hosts, Mapping):
        owners: Dict[int, str] = {}
        for name, index in hosts.items():
            if not isinstance(name, str) or not name:
                raise _fail(filter_name, "hosts: host name %r is not a non-empty string" % (name,))
            if index is None:
                hashed.append(name)
                continue
            if isinstance(index, bool) or not isinstance(index, int):
                raise _fail(
                    filter_name,
                    "hosts: index %r of host %s is not an integer (or null to place the host by hash)" % (index, name),
                )
            if index in owners:
                raise _fail(
                    filter_name, "hosts: hosts %s and %s both ask for slice index %d" % (owners[index], name, index)
                )
            owners[index] = name
            pinned[name] = index
    elif names is not None:
        for name in names:
            if not isinstance(name, str) or not name:
                raise _fail(filter_name, "hosts: host name %r is not a non-empty string" % (name,))
        hashed = sorted(set(names))
    else:
        raise _fail(
            filter_name,
            "hosts must be a list of host names or a dict of host name -> slice index, not %s" % type(hosts).__name__,
        )
    return hashed, pinned


def _assign_slots(
    filter_name: str, hashed: List[str], pinned: Dict[str, int], slots: int, layout: str
) -> Dict[str, int]:
    """Slice index of every host: pinned ones as given, the others by hash with collisions resolved round by round.

    Round r: every unplaced host asks for (home slot + r), wrapping within 1..slots; in the order of the hosts'
    hash values the first to ask gets the slot, the others try the next slot in round r + 1. A slot taken
    stays taken, so a host that got its home slot in round 0 only loses it to a newcomer with the same
    home slot and a lower hash, and removing a host never moves it.
    """
    assigned = dict(pinned)
    taken = {index: name for name, index in pinned.items()}
    free = slots - sum(1 for index in taken if index <= slots)
    if len(hashed) > free:
        raise _fail(
            filter_name,
            "%d hosts need a slice but only %d of the %d slots are free (%s); pass a longer prefix, more slots, or a "
            "larger subnet" % (len(hashed), free, slots, layout),
        )
    pending = sorted((_host_hash(name), name) for name in hashed)
    homes = {name: _home_slot(digest, slots) for digest, name in pending}
    round_number = 0
    while pending:
        losers = []
        for digest, name in pending:
            slot = 1 + (homes[name] - 1 + round_number) % slots
            if slot in taken:
                losers.append((digest, name))
            else:
                taken[slot] = name
                assigned[name] = slot
        pending = losers
        round_number += 1
    return assigned


def _layout(
    subnet: Any, hosts: Any, prefix: Any, slots: Any, host: Optional[str], filter_name: str
) -> Tuple[IPNetwork, int, Dict[str, int]]:
    """The subnet, the slices' prefix length and every host's slice index."""
    network = _parse_subnet(filter_name, subnet)
    hashed, pinned = _parse_hosts(filter_name, host, hosts)
    prefix_len = _slice_prefix(filter_name, network, prefix, len(hashed) + len(pinned))
    slice_count = 1 << (prefix_len - network.prefixlen)  # at least 2: the prefix is longer than the subnet's
    for name, index in sorted(pinned.items()):
        if not 1 <= index < slice_count:
            raise _fail(
                filter_name,
                "hosts: index %d of host %s is outside 1..%d (slice 0 holds the network and gateway addresses)"
                % (index, name, slice_count - 1),
            )
    if slots is None:
        slot_count = slice_count - 1
    else:
        slot_count = _parse_count(filter_name, "slots", slots)
        if not 1 <= slot_count < slice_count:
            raise _fail(
                filter_name,
                "slots %d must be within 1..%d (the slices of /%d in %s, less the first)"
                % (slot_count, slice_count - 1, prefix_len, network),
            )
    if host is not None and host not in hashed and host not in pinned:
        raise _fail(filter_name, "host %s is not in hosts" % host)
    layout = "slices of /%d in %s" % (prefix_len, network)
    assigned = _assign_slots(filter_name, hashed, pinned, slot_count, layout)
    return network, prefix_len, assigned


def _slice_cidr(network: IPNetwork, prefix_len: int, index: int) -> str:
    size = 1 << (network.max_prefixlen - prefix_len)
    first = int(network.network_address) + index * size
    return str(ipaddress.ip_network((first, prefix_len)))


def overlay_slice(subnet: Any, host: Any, hosts: Any = None, prefix: Any = None, slots: Any = None) -> str:
    """This host's ip_range slice of the overlay subnet, stable as other hosts join or leave."""
    if not isinstance(host, str) or not host:
        raise _fail("overlay_slice", "host %r is not a host name" % (host,))
    network, prefix_len, assigned = _layout(subnet, hosts, prefix, slots, host, "overlay_slice")
    return _slice_cidr(network, prefix_len, assigned[host])


def overlay_slices(subnet: Any, hosts: Any, prefix: Any = None, slots: Any = None) -> Dict[str, str]:
    """Every host's ip_range slice of the overlay subnet, by host name."""
    if hosts is None:
        raise _fail("overlay_slices", "hosts is required (a list of host names or a dict of host name -> slice index)")
    network, prefix_len, assigned = _layout(subnet, hosts, prefix, slots, None, "overlay_slices")
    return {name: _slice_cidr(network, prefix_len, assigned[name]) for name in sorted(assigned)}


# --- vtep_address / overlay_peers --------------------------------------------------------------------


def _vtep(filter_name: str, name: str, host_vars: Mapping, var: str) -> ipaddress.IPv4Address:
    value = host_vars.get(var)
    if value is None or value == "":
        raise _fail(
            filter_name,
            "host %s has no %s (its VTEP address on the underlay); set it in the inventory, for example %s: 192.0.2.11"
            % (name, var, var),
        )
    address = _parse_ipv4(filter_name, value, "host %s: %s" % (name, var))
    if (
        address.is_unspecified
        or address.is_multicast
        or address.is_loopback
        or address == ipaddress.IPv4Address("255.255.255.255")
    ):
        raise _fail(
            filter_name,
            "host %s: %s %s cannot be a VTEP address (unspecified, loopback, multicast or broadcast)"
            % (name, var, address),
        )
    return address


def _host_name(host_vars: Any) -> str:
    name = host_vars.get("inventory_hostname") if isinstance(host_vars, Mapping) else None
    return name if isinstance(name, str) and name else "(unnamed host)"


def vtep_address(host_vars: Any, var: str = "cnm_underlay_ip") -> str:
    """The host's VTEP address: the IPv4 address in its variable ``var``."""
    if not isinstance(host_vars, Mapping):
        raise _fail(
            "vtep_address",
            "input must be one host's variables (such as hostvars[inventory_hostname]), not %s"
            % type(host_vars).__name__,
        )
    return str(_vtep("vtep_address", _host_name(host_vars), host_vars, var))


def _normalise_mac(filter_name: str, what: str, value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if not MAC_PATTERN.match(text):
        raise _fail(filter_name, "%s %r is not a MAC address such as 02:42:0a:c8:02:0a" % (what, value))
    mac = text.replace("-", ":")
    if int(mac[:2], 16) & 1:
        raise _fail(filter_name, "%s %s is a multicast MAC address" % (what, mac))
    return mac


def _endpoints(filter_name: str, name: str, host_vars: Mapping, var: str) -> List[Dict[str, Any]]:
    """A host's endpoints as {ip, mac} (with name and aliases when given); items may be addresses or dicts
    (cnm_endpoint's results included)."""
    value = host_vars.get(var)
    if value is None or value == "":
        return []
    items = _as_list(value)
    if items is None:
        raise _fail(filter_name, "host %s: %s must be a list of endpoints, not %s" % (name, var, type(value).__name__))
    endpoints = []
    for position, item in enumerate(items, start=1):
        what = "host %s: %s item %d" % (name, var, position)
        mac = None
        if isinstance(item, Mapping):
            if item.get("state") == "absent":  # a detached endpoint in cnm_endpoint's results
                continue
            ip_value = item.get("ip", item.get("ipv4_address"))
            mac_value = item.get("mac", item.get("mac_address"))
            if ip_value is None or ip_value == "":
                raise _fail(filter_name, "%s has no ip (or ipv4_address)" % what)
            if mac_value is not None and mac_value != "":
                mac = _normalise_mac(filter_name, what + " mac", mac_value)
        else:
            ip_value = item
        address = _parse_endpoint_ip(filter_name, ip_value, what + " ip")
        if mac is None:
            if address.version != 4:
                raise _fail(
                    filter_name,
                    "%s: %s is an IPv6 address; give its mac, which is derived from IPv4 addresses only"
                    % (what, address),
                )
            mac = mac_from_ipv4(address)
        entry = {"ip": address, "mac": mac}
        if isinstance(item, Mapping):  # DNS names travel with the endpoint (cnm_endpoint's results have them)
            if item.get("name"):
                entry["name"] = str(item["name"])
            if item.get("aliases"):
                entry["aliases"] = [str(alias) for alias in item["aliases"]]
        endpoints.append(entry)
    return endpoints


def _group(filter_name: str, hosts_vars: Any, only: Any) -> List[Tuple[str, Mapping]]:
    """(name, variables) of every host of the group, from a dict name -> hostvars or a list of hostvars."""
    if only is not None:
        wanted = _as_list(only)
        if wanted is None:
            raise _fail(filter_name, "hosts must be a list of host names, not %s" % type(only).__name__)
        only = wanted
    listed = _as_list(hosts_vars)
    if isinstance(hosts_vars, Mapping):
        # Look the wanted hosts up rather than walk the input: it may be hostvars, the whole inventory.
        names = list(hosts_vars) if only is None else list(only)
        missing = [str(name) for name in names if name not in hosts_vars]
        if missing:
            raise _fail(filter_name, "hosts %s are not in the input" % ", ".join(missing))
        entries = [(str(name), hosts_vars[name]) for name in names]
        for name, host_vars in entries:
            if not isinstance(host_vars, Mapping):
                raise _fail(
                    filter_name, "the variables of host %s are not a dict (%s)" % (name, type(host_vars).__name__)
                )
    elif listed is not None:
        entries = []
        for position, host_vars in enumerate(listed, start=1):
            if not isinstance(host_vars, Mapping) or not host_vars.get("inventory_hostname"):
                raise _fail(
                    filter_name, "item %d of the input is not a host's variables with inventory_hostname" % position
                )
            entries.append((str(host_vars["inventory_hostname"]), host_vars))
        if only is not None:
            present = {name for name, host_vars in entries}
            missing = [str(name) for name in only if name not in present]
            if missing:
                raise _fail(filter_name, "hosts %s are not in the input" % ", ".join(missing))
            entries = [(name, host_vars) for name, host_vars in entries if name in only]
    else:
        raise _fail(
            filter_name,
            "input must be a dict of host name -> hostvars or a list of hostvars, not %s" % type(hosts_vars).__name__,
        )
    group: List[Tuple[str, Mapping]] = []
    seen = set()
    for name, host_vars in entries:
        if name in seen:
            raise _fail(filter_name, "host %s appears more than once in the input" % name)
        seen.add(name)
        group.append((name, host_vars))
    return group


def overlay_peers(
    hosts_vars: Any,
    self_host: Any,
    vtep_var: str = "cnm_underlay_ip",
    endpoints_var: str = "cnm_overlay_endpoints",
    hosts: Any = None,
) -> List[Dict[str, Any]]:
    """cnm_overlay's peers for one host: every other host's VTEP with its endpoints, sorted by VTEP."""
    filter_name = "overlay_peers"
    group = _group(filter_name, hosts_vars, hosts)
    if not isinstance(self_host, str) or self_host not in dict(group):
        raise _fail(filter_name, "host %r is not among the hosts given" % (self_host,))
    vteps: Dict[ipaddress.IPv4Address, str] = {}
    endpoint_ips: Dict[Any, str] = {}
    endpoint_macs: Dict[str, str] = {}
    peers = []
    for name, host_vars in group:
        vtep = _vtep(filter_name, name, host_vars, vtep_var)
        if vtep in vteps:
            other = vteps[vtep]
            if self_host in (name, other):
                peer = other if name == self_host else name
                raise _fail(
                    filter_name,
                    "host %s has the VTEP address %s of host %s itself (%s)" % (peer, vtep, self_host, vtep_var),
                )
            raise _fail(
                filter_name, "hosts %s and %s have the same VTEP address %s (%s)" % (other, name, vtep, vtep_var)
            )
        vteps[vtep] = name
        endpoints = _endpoints(filter_name, name, host_vars, endpoints_var)
        for endpoint in endpoints:
            for key, seen in (("ip", endpoint_ips), ("mac", endpoint_macs)):
                value = endpoint[key]
                if value in seen:
                    where = (
                        "twice on host %s" % name if seen[value] == name else "on hosts %s and %s" % (seen[value], name)
                    )
                    raise _fail(filter_name, "endpoint %s %s is listed %s (%s)" % (key, value, where, endpoints_var))
                seen[value] = name
        if name != self_host:
            endpoints.sort(key=lambda endpoint: (endpoint["ip"].version, int(endpoint["ip"])))
            peers.append((vtep, [dict(endpoint, ip=str(endpoint["ip"])) for endpoint in endpoints]))
    peers.sort(key=lambda peer: int(peer[0]))
    return [{"vtep": str(vtep), "endpoints": endpoints} for vtep, endpoints in peers]


# --- overlay_check_pairs -------------------------------------------------------------------------------------


def overlay_check_pairs(local_endpoints: Any, peers: Any, local_vtep: Any, hosts: Any = 3, full: bool = False) -> list:
    """The pings of the role's connectivity check, as {netns, ip}: from this host's first endpoint to one endpoint on
    each of the next ``hosts`` hosts of a ring of the hosts with endpoints, ordered by VTEP address (every host is
    reached from ``hosts`` others, and the whole check costs O(hosts) pings and neighbour entries); with ``full``,
    from every local endpoint to every remote one."""
    name = "overlay_check_pairs"
    count = _parse_count(name, "hosts", hosts)
    if count < 1:
        raise _fail(name, "hosts must be 1 or more, not %d" % count)
    local = [item for item in _as_list(local_endpoints) or [] if isinstance(item, Mapping) and item.get("netns")]
    here = _parse_ipv4(name, local_vtep, "local_vtep")
    remote = {}
    for peer in _as_list(peers) or []:
        if not isinstance(peer, Mapping):
            raise _fail(name, "each peer must be a dict with vtep and endpoints, not %r" % (peer,))
        endpoints = [item for item in peer.get("endpoints") or [] if isinstance(item, Mapping)]
        addresses = sorted(
            (_parse_endpoint_ip(name, item.get("ip"), "a peer's endpoint ip") for item in endpoints),
            key=lambda address: (address.version, address),
        )
        if addresses:
            remote[_parse_ipv4(name, peer.get("vtep"), "a peer's vtep")] = addresses
    if not local:
        return []
    if full:
        return [
            {"netns": item["netns"], "ip": str(address)}
            for item in local
            for vtep in sorted(remote)
            for address in remote[vtep]
        ]
    ring = sorted(set(remote) | {here})
    position = ring.index(here)
    targets = [ring[(position + step) % len(ring)] for step in range(1, min(count, len(ring) - 1) + 1)]
    return [{"netns": local[0]["netns"], "ip": str(remote[vtep][0])} for vtep in targets]


class FilterModule:
    """cnm.network's overlay filters."""

    def filters(self) -> Dict[str, Any]:
        return {
            "mac_from_ip": mac_from_ip,
            "overlay_slice": overlay_slice,
            "overlay_slices": overlay_slices,
            "overlay_peers": overlay_peers,
            "overlay_check_pairs": overlay_check_pairs,
            "vtep_address": vtep_address,
        }
