# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning bridge networks: the bridge device, its gateway addresses and its store entry."""

from __future__ import annotations

from typing import Optional

from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.model import (
    BRIDGE_ALIAS_PREFIX,
    IPV6_MIN_MTU,
    BridgeNetwork,
    check_driver,
)
from ansible_collections.cnm.network.plugins.module_utils.networks import (
    check_overlaps,
    check_subnet_change,
    detach_all,
    follow_endpoints,
    plan_device_delete,
)
from ansible_collections.cnm.network.plugins.module_utils.plan import Op
from ansible_collections.cnm.network.plugins.module_utils.records import BridgeRecord
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST


def plan_bridge_present(host: Host, network: BridgeNetwork, allow_host_route_overlap: bool = False) -> dict:
    """Create or reconcile the bridge; endpoints follow a changed gateway or MTU."""
    check_overlaps(host, network.name, network.subnet, network.ipv6_subnet)
    for other_name, other in host.state["networks"].items():
        if other_name != network.name and isinstance(other, BridgeRecord) and other.bridge_name == network.bridge_name:
            raise option_error("bridge_name", network.bridge_name, "is already used by network %s" % other_name)
    record = host.state["networks"].get(network.name)
    check_driver(network.name, record, network.driver)
    if record is not None and record.bridge_name != network.bridge_name:
        raise option_error(
            "bridge_name",
            network.bridge_name,
            "differs from the bridge %s that network %s already uses; remove the network first"
            % (record.bridge_name, network.name),
        )
    link = host.kernel.host.link(network.bridge_name)
    if link is not None and (link.kind != "bridge" or link.alias != network.alias):
        raise option_error(
            "bridge_name", network.bridge_name, "already exists and does not belong to cnm network %s" % network.name
        )
    if not allow_host_route_overlap:
        check_host_routes(host, network, record)
    attached = host.endpoints_of(network.name)
    if record is not None:
        check_subnet_change(network, attached)

    desired = {
        "bridge": network.bridge_name,
        "mtu": network.mtu,
        "up": True,
        "addresses": [str(a) for a in network.gateway_interfaces],
    }
    current = None
    current_addresses: list = []
    if link is not None:
        current_addresses = host.kernel.host.addresses(link.index)
        current = {
            "bridge": link.name,
            "mtu": link.mtu,
            "up": link.up,
            "addresses": [str(a) for a in current_addresses],
        }
    target = "network %s" % network.name
    name = network.bridge_name

    def add(what, apply, undo=None):
        host.plan.add(target, what, current, desired, apply, undo)

    # An EVPN overlay's bridge MAC is the same on every host (model.OverlayNetwork.bridge_mac): made so when the
    # overlay switches to or from EVPN; a static network's is pinned at creation only, as it always was.
    pin_mac = getattr(network, "evpn", False) or getattr(record, "control_plane", "static") == "evpn"
    set_mac = None  # leaving EVPN: the new MAC comes last (below)
    if pin_mac:
        desired["mac"] = network.bridge_mac
        if current is not None:
            current["mac"] = link.mac
    if link is None:
        add(
            "create bridge %s mtu %d" % (name, network.mtu),
            Op(HOST, "create_bridge", (name, network.mtu, network.alias, network.bridge_mac)),
            Op(HOST, "delete_link", (name,)),
        )
    elif pin_mac and link.mac != network.bridge_mac:
        set_mac = (
            "set bridge %s address %s" % (name, network.bridge_mac),
            Op.call(HOST, "set_link", name, mac=network.bridge_mac),
            Op.call(HOST, "set_link", name, mac=link.mac),
        )
        if getattr(network, "evpn", False):
            add(*set_mac)
            set_mac = None
    elif link.mtu != network.mtu or not link.up:
        add(
            "set bridge %s mtu %d up" % (name, network.mtu),
            Op.call(HOST, "set_link", name, mtu=network.mtu, up=True),
            Op.call(HOST, "set_link", name, mtu=link.mtu),
        )
    present, wanted = [(name, a) for a in current_addresses], [(name, a) for a in network.gateway_interfaces]
    ipv6 = network.ipv6_subnet is not None
    if ipv6:  # before its address: a device with IPv6 off refuses one (EACCES)
        plan_device_ipv6(host, target, name, ipv6, network.mtu)
    host.plan.sync(target, current, desired, HOST, "add_address", present, wanted)
    if not ipv6:
        plan_device_ipv6(host, target, name, ipv6, network.mtu)
    new_record = host.state["networks"][network.name] = network.to_record()
    follow_endpoints(host, record, new_record, attached)
    if set_mac is not None:  # a new MAC flushes the bridge's neighbours: after the endpoints removed their EVPN ones
        add(*set_mac)
    return {"network": dict(new_record.to_dict(), name=network.name, endpoints=len(attached))}


def plan_device_ipv6(host: Host, target: str, device: str, enabled: bool, mtu: int = 1500) -> None:
    """IPv6 on a network device only when the network has an IPv6 subnet (no link-local chatter otherwise).

    Below 1280 bytes of MTU the kernel removes IPv6 from the device altogether (and its disable_ipv6 sysctl with
    it): an IPv4-only network there has nothing to switch off."""
    session = host.kernel.host
    if session.sysctl("net/ipv6/conf/default/disable_ipv6") is None:
        return  # a kernel without IPv6
    if not enabled and mtu < IPV6_MIN_MTU:
        return
    wanted = "0" if enabled else "1"
    path = "net/ipv6/conf/%s/disable_ipv6" % device
    current = session.sysctl(path)  # None while the device does not exist yet
    if current != wanted:
        host.plan.add(
            target,
            "set %s=%s" % (path.replace("/", "."), wanted),
            {"disable_ipv6": current},
            {"disable_ipv6": wanted},
            Op(HOST, "write_sysctl", (path, wanted)),
            Op(HOST, "write_sysctl", (path, current)) if current is not None else None,
        )


def plan_bridge_absent(host: Host, name: str, bridge_name: str, force: bool) -> dict:
    """Remove the network; attached endpoints block it unless ``force`` detaches them."""
    record = host.state["networks"].get(name)
    if record is not None:
        bridge_name = record.bridge_name
    attached = detach_all(host, name, force) if record is not None else {}
    link = host.kernel.host.link(bridge_name)
    if link is not None and link.kind == "bridge" and link.alias == BRIDGE_ALIAS_PREFIX + name:
        before = {"bridge": bridge_name, "mtu": link.mtu}
        forgets = (("network", name),)
        plan_device_delete(host, "network %s" % name, "delete bridge %s" % bridge_name, before, bridge_name, forgets)
    host.state["networks"].pop(name, None)
    return {"network": {"name": name, "state": "absent", "detached": len(attached)}}


def check_host_routes(host: Host, network: BridgeNetwork, record: Optional[BridgeRecord] = None) -> None:
    """Refuse a subnet that overlaps a route of the host's main table (not a default route, not the network's own
    bridge route): the bridge's connected route would take that traffic away from the host's LAN or router, as
    Docker avoids when it picks a pool (it checks the host's routes). ``allow_host_route_overlap`` says it is meant.
    Checked when a subnet is new to the network only, as Docker checks at creation: a route the host gets later (a
    VPN) never makes a rerun of an existing network fail."""
    session = host.kernel.host
    own = session.link(network.bridge_name)
    for option, mine, known in (
        ("subnet", network.subnet, record.subnet if record is not None else None),
        ("ipv6_subnet", network.ipv6_subnet, record.ipv6_subnet if record is not None else None),
    ):
        if mine is None or known == str(mine):
            continue
        for route in session.main_routes():
            if route.dst.prefixlen == 0 or route.dst.version != mine.version:
                continue
            if own is not None and route.oif == own.index:
                continue
            if route.dst.is_link_local or route.dst.is_multicast:
                continue  # the kernel's fe80::/64 and ff00::/8 on every IPv6 device (such subnets are refused anyway)
            if mine.overlaps(route.dst):
                device = session.by_index(route.oif) if route.oif else None
                how = (" dev %s" % device.name if device is not None else "") + (
                    " via %s" % route.gateway if route.gateway else ""
                )
                raise option_error(
                    option,
                    mine,
                    "overlaps the host's route to %s%s: the network would take that traffic from the host; choose "
                    "another subnet, or set allow_host_route_overlap: true if this is intended" % (route.dst, how),
                )
