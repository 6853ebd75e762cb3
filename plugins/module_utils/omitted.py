# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options a run leaves out keep the existing network's value, as docker_network compares only the options it is
given; the documented defaults apply when a network is created. The existing value is the store's record, read back
as the options that made it (NetworkRecord.declared).

The address plan is kept by subnet: ``subnet`` or ``ipv6_subnet`` left out keeps the network's (an empty text
removes it), and a ``gateway``, ``ip_range`` or ``ipv6_gateway`` left out keeps its value while its subnet stays the
same (a new subnet gets the defaults: its first address, the whole subnet).

An endpoint keeps likewise what it was attached with (EndpointSpec.from_record) when a run leaves it out."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from typing import Optional

from ansible_collections.cnm.network.plugins.module_utils.model import EndpointSpec
from ansible_collections.cnm.network.plugins.module_utils.records import EndpointRecord, NetworkRecord

_BRIDGE = dict(
    bridge_name=None,  # derived from the name
    mtu=1500,
    masquerade=True,
    ipv6_masquerade=None,  # as masquerade
    trusted_sources=None,
    internal=False,
    icc=True,
    dns=False,
    dns_servers=None,
    host_binding_ip=None,
)
_PARENT = dict(parent=None, mtu=None)  # mtu None: the parent's (kept as such: it follows the parent)

# The options each driver keeps when left out, with what a new network gets (None: derived or unset).
CREATE_DEFAULTS = {
    "bridge": _BRIDGE,
    # mtu None: the underlay's less VXLAN's (and ESP's) overhead, unless one was asked for (OverlayRecord.mtu_set);
    # ``encrypted`` is resolved with its keys in overlay.py
    "overlay": dict(
        _BRIDGE,
        mtu=None,
        vni=None,
        local_ip=None,
        port=4789,
        vxlan_name=None,
        restrict_peers=True,
        control_plane="static",
        peers=None,
    ),
    "macvlan": dict(_PARENT, mode="bridge", host_access=False, host_access_ip=None, shim_name=None),
    "ipvlan": dict(_PARENT, ipvlan_mode="l2", ipvlan_flag="bridge"),
}

# A kept value that only means something with another option: dropped when that option turns it off, so turning
# off ``dns`` (say) does not fail on the servers the run did not mention.
_KEPT_WHILE = {
    "dns_servers": lambda options: options.get("dns"),
    "trusted_sources": lambda options: not options.get("internal"),
    "ipv6_masquerade": lambda options: options.get("ipv6_subnet") and not options.get("internal"),
    "host_access_ip": lambda options: options.get("host_access"),
    "shim_name": lambda options: options.get("host_access"),
}

_ADDRESS_PLAN = (("subnet", ("gateway", "ip_range")), ("ipv6_subnet", ("ipv6_gateway",)))


def keep_omitted(params: dict, record: Optional[NetworkRecord], driver: str) -> dict:
    """The module's ``params`` with every option it left out (None) taken from ``record`` (the network of ``driver``
    as the store has it; None or another driver's: a new network) or else from CREATE_DEFAULTS."""
    declared = record.declared() if record is not None and record.driver == driver else {}
    options = dict(params)
    kept = set()
    for option, default in CREATE_DEFAULTS[driver].items():
        if options.get(option) is None:
            kept.add(option)
            options[option] = declared.get(option, default)
    for subnet, dependents in _ADDRESS_PLAN:
        if subnet not in options:
            continue  # a driver without it (an overlay has no IPv6 subnet)
        if options[subnet] is None:
            options[subnet] = declared.get(subnet)
        if not _same_network(options[subnet], declared.get(subnet)):
            continue
        for option in dependents:
            if options.get(option) is None:
                options[option] = declared.get(option)
    for option, needed in _KEPT_WHILE.items():
        if option in kept and options.get(option) is not None and not needed(options):
            options[option] = None
    return options


# What an attached endpoint keeps when a run leaves it out (an empty list or dict clears routes, sysctls, aliases).
ENDPOINT_KEPT = (
    "ifname",
    "ipv4_address",
    "ipv6_address",
    "mac_address",
    "default_route",
    "gw_priority",
    "routes",
    "sysctls",
    "name",
    "aliases",
)


def keep_omitted_endpoint(spec: EndpointSpec, options: dict, record: Optional[EndpointRecord]) -> EndpointSpec:
    """``spec`` (from ``options``, the item's options) with what it left out taken from ``record``, the endpoint as
    it is attached (None: a new endpoint, which gets the defaults)."""
    if record is None or spec.state != "present":
        return spec
    existing = EndpointSpec.from_record(record)
    return replace(spec, **{name: getattr(existing, name) for name in ENDPOINT_KEPT if options.get(name) is None})


def _same_network(given, existing) -> bool:
    if not given or not existing:
        return False
    try:
        return ipaddress.ip_network(str(given), strict=False) == ipaddress.ip_network(existing)
    except ValueError:
        return False  # the planner names what is wrong with it
