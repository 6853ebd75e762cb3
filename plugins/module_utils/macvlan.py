# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Macvlan networks: endpoints are macvlan links on a parent interface, first-class devices on its LAN.

The host itself takes no part in their traffic (no bridge, no NAT, no firewall), except through the
optional host-access shim: a macvlan of the host's own on the same parent, with routes to the
endpoints, because a macvlan parent never delivers frames between itself and its macvlans.
"""

from __future__ import annotations

import ipaddress
import os

from ansible_collections.cnm.network.plugins.module_utils.bridge import (
    check_overlaps,
    detach_all,
    endpoint_facing,
    spec_from_record,
)
from ansible_collections.cnm.network.plugins.module_utils.endpoint import EndpointPlanner
from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.ipam import mac_from_name
from ansible_collections.cnm.network.plugins.module_utils.kernel import Route
from ansible_collections.cnm.network.plugins.module_utils.model import (
    ALIAS_PREFIX,
    BRIDGE_ALIAS_PREFIX,
    SHIM_ALIAS_PREFIX,
    VLAN_ALIAS_PREFIX,
    MacvlanNetwork,
    check_driver,
)


def plan_macvlan_present(host: Host, network: MacvlanNetwork) -> dict:
    """Check the parent, create the VLAN sub-interface and the host-access shim as asked; endpoints follow changes."""
    check_overlaps(host, network.name, network.subnet, network.ipv6_subnet)
    record = host.state["networks"].get(network.name)
    check_driver(network.name, record, network.driver)
    attached = host.endpoints_of(network.name)
    if record is not None and attached:
        for option, old, new in (("parent", record["parent"], network.parent), ("mode", record["mode"], network.mode)):
            if old != new:
                raise option_error(
                    option,
                    new,
                    "differs from %s, which network %s already uses with %d endpoint(s) attached: detach them first"
                    % (old, network.name, len(attached)),
                )
        _check_subnet_change(network, attached)
    session = host.kernel.host
    target = "network %s" % network.name
    vlan_created = bool(record and record.get("vlan_created") and record["parent"] == network.parent)
    parent = session.link(network.parent)
    if parent is None:
        vlan_created = _plan_vlan(host, network, target)
        base = session.link(network.vlan[0])
        mtu_found = base.mtu
    else:
        _check_parent(host, network, parent)
        mtu_found = parent.mtu
    if network.mtu is not None and network.mtu > mtu_found:
        raise option_error(
            "mtu",
            network.mtu,
            "is larger than the MTU of parent %s (%d): a macvlan cannot exceed its parent"
            % (network.parent, mtu_found),
        )
    mtu = network.mtu if network.mtu is not None else mtu_found
    if record is not None and record.get("shim_name") and record["shim_name"] != network.shim_name:
        _plan_shim_absent(host, network.name, record["shim_name"])
    if network.host_access:
        _plan_shim(host, network, target, mtu)
    new_record = network.to_record(mtu, vlan_created)
    host.state["networks"][network.name] = new_record
    if record is not None and attached and endpoint_facing(record) != endpoint_facing(new_record):
        planner = EndpointPlanner(host)
        planner.shim_routes = False  # _plan_shim made them exact
        for endpoint in attached.values():
            planner.plan(spec_from_record(endpoint))
        planner.finish()
    return {"network": dict(new_record, name=network.name, endpoints=len(attached))}


def plan_macvlan_absent(host: Host, name: str, force: bool) -> dict:
    """Detach the endpoints (with ``force``), delete the shim and a VLAN sub-interface no other network uses."""
    record = host.state["networks"].get(name)
    result = {"network": {"name": name, "state": "absent", "detached": 0}}
    if record is None:
        return result
    check_driver(name, record, MacvlanNetwork.driver, removing=True)
    attached = detach_all(host, name, force)
    if record.get("shim_name"):
        _plan_shim_absent(host, name, record["shim_name"], forgets=(("network", name),))
    del host.state["networks"][name]
    parent = record["parent"]
    still_used = any(other.get("parent") == parent for other in host.state["networks"].values())
    link = host.kernel.host.link(parent)
    if record.get("vlan_created") and not still_used and link is not None and link.alias == VLAN_ALIAS_PREFIX + parent:
        host.plan.add(
            "network %s" % name,
            "delete VLAN sub-interface %s" % parent,
            {"vlan": parent, "mode": link.mode},
            None,
            lambda: host.kernel.host.delete_link(parent),
            forgets=(("network", name),),
        )
    result["network"]["detached"] = len(attached)
    return result


def _check_parent(host: Host, network: MacvlanNetwork, parent) -> None:
    """The parent must be a plain interface of the host: not a bridge, no bridge port, not a cnm device."""
    if parent.name == "lo":
        raise option_error("parent", network.parent, "is the loopback interface")
    if parent.kind == "bridge":
        owner = (
            " (cnm network %s)" % parent.alias[len(BRIDGE_ALIAS_PREFIX) :]
            if (parent.alias or "").startswith(BRIDGE_ALIAS_PREFIX)
            else ""
        )
        raise option_error(
            "parent",
            network.parent,
            "is a bridge%s: a macvlan parent must be a plain interface (use cnm_bridge networks for bridges)" % owner,
        )
    if parent.master:
        master = host.kernel.host.by_index(parent.master)
        raise option_error(
            "parent",
            network.parent,
            "is a port of %s: its frames belong to that device, not to macvlan endpoints"
            % (master.name if master else "another device"),
        )
    alias = parent.alias or ""
    if alias.startswith(ALIAS_PREFIX) and not alias.startswith(VLAN_ALIAS_PREFIX):
        raise option_error("parent", network.parent, "is a device of cnm itself (%s), not a LAN interface" % alias)
    if parent.kind == "macvlan":
        raise option_error("parent", network.parent, "is a macvlan itself: give its parent")
    others = [
        n
        for n, r in host.state["networks"].items()
        if n != network.name and r.get("driver") == network.driver and r["parent"] == network.parent
    ]
    passthru = [n for n in others if host.state["networks"][n]["mode"] == "passthru"]
    if passthru:
        raise option_error("parent", network.parent, "is taken exclusively by passthru network %s" % passthru[0])
    if network.mode == "passthru":
        if others:
            raise option_error(
                "mode",
                "passthru",
                "takes parent %s exclusively, but network(s) %s use it too"
                % (network.parent, ", ".join(sorted(others))),
            )
        busy = sorted(
            link.name
            for link in host.kernel.host.links().values()
            if link.kind == "macvlan" and link.peer_index == parent.index
        )
        if busy:
            raise option_error(
                "mode",
                "passthru",
                "takes parent %s exclusively, but it already carries macvlan(s) %s" % (network.parent, ", ".join(busy)),
            )
    else:
        busy = [
            link.name
            for link in host.kernel.host.links().values()
            if link.kind == "macvlan" and link.peer_index == parent.index and link.mode == "passthru"
        ]
        if busy:
            raise option_error("parent", network.parent, "is taken exclusively by the passthru macvlan %s" % busy[0])


def _plan_vlan(host: Host, network: MacvlanNetwork, target: str) -> bool:
    """Create the IFACE.VID parent; refuse clearly when the base is missing or the kernel lacks 802.1Q."""
    if network.vlan is None:
        raise option_error("parent", network.parent, "does not exist on this host")
    base_name, vid = network.vlan
    base = host.kernel.host.link(base_name)
    if base is None:
        raise option_error("parent", network.parent, "is a VLAN of %s, which does not exist on this host" % base_name)
    if not vlan_supported(host):
        raise option_error(
            "parent",
            network.parent,
            "needs an 802.1Q sub-interface, but this kernel has no 802.1Q support (module 8021q): "
            "load it (modprobe 8021q) or use a kernel that has it",
        )
    name = network.parent
    host.plan.add(
        target,
        "create VLAN sub-interface %s (id %d on %s)" % (name, vid, base_name),
        None,
        {"vlan": name, "id": vid, "parent": base_name},
        lambda: host.kernel.host.create_vlan(name, base_name, vid, VLAN_ALIAS_PREFIX + name),
        lambda: host.kernel.host.delete_link(name),
    )
    return True


def _plan_shim(host: Host, network: MacvlanNetwork, target: str, mtu: int) -> None:
    """The host's own macvlan on the parent, with host_access_ip/32 and a route to ip_range through it."""
    session = host.kernel.host
    name = network.shim_name
    alias = SHIM_ALIAS_PREFIX + network.name
    link = session.link(name)
    if link is not None and link.alias != alias:
        raise option_error(
            "shim_name", name, "already exists and is not the host-access shim of network %s" % network.name
        )
    address = ipaddress.ip_interface("%s/32" % network.host_access_ip)
    # ip_range, and each endpoint with a static address outside it (cnm_endpoint adds those as they come)
    routes = [Route(network.ip_range, None, None)]
    for record in host.state["endpoints"].values():
        if record["network"] == network.name and ipaddress.ip_address(record["ipv4_address"]) not in network.ip_range:
            routes.append(Route(ipaddress.ip_network(record["ipv4_address"] + "/32"), None, None))
    desired = {
        "shim": name,
        "parent": network.parent,
        "mtu": mtu,
        "addresses": [str(address)],
        "routes": [r.describe() for r in routes],
    }
    current = None
    current_addresses, current_routes = [], []
    if link is not None:
        parent = session.link(network.parent)
        if parent is None or link.peer_index != parent.index or link.mode != "bridge":
            host.plan.add(
                target,
                "delete shim %s (its parent or mode changed)" % name,
                link.describe(),
                None,
                lambda: session.delete_link(name),
            )
            link = None
        else:
            current_addresses = session.addresses(link.index)
            current_routes = [Route(r.dst, r.gateway, None) for r in session.routes(link.index)]
            current = {
                "shim": name,
                "parent": network.parent,
                "mtu": link.mtu,
                "addresses": [str(a) for a in current_addresses],
                "routes": [r.describe() for r in current_routes],
            }

    def add(what, apply, undo=None):
        host.plan.add(target, what, current, desired, apply, undo)

    if link is None:
        add(
            "create host-access shim %s on %s (macvlan bridge) mtu %d" % (name, network.parent, mtu),
            lambda: session.create_macvlan(
                name, network.parent, "bridge", mtu, mac_from_name("shim:" + network.name), alias
            ),
            lambda: session.delete_link(name),
        )
    elif link.mtu != mtu or not link.up:
        add(
            "set shim %s mtu %d up" % (name, mtu),
            lambda: session.set_link(name, mtu=mtu, up=True),
            lambda m=link.mtu: session.set_link(name, mtu=m),
        )
    for old in current_addresses:
        if old != address:
            add(
                "remove address %s from %s" % (old, name),
                lambda a=old: session.delete_address(name, a),
                lambda a=old: session.add_address(name, a),
            )
    if address not in current_addresses:
        add(
            "add address %s to %s" % (address, name),
            lambda: session.add_address(name, address),
            lambda: session.delete_address(name, address),
        )
    for old in current_routes:
        if old not in routes:
            add(
                "remove route %s from %s" % (old.describe(), name),
                lambda r=old: session.delete_route(name, r),
                lambda r=old: session.add_route(name, r),
            )
    for route in routes:
        if route not in current_routes:
            add(
                "add route %s through %s" % (route.describe(), name),
                lambda r=route: session.add_route(name, r),
                lambda r=route: session.delete_route(name, r),
            )


def _plan_shim_absent(host: Host, network_name: str, name: str, forgets: tuple = ()) -> None:
    link = host.kernel.host.link(name)
    if link is not None and link.alias == SHIM_ALIAS_PREFIX + network_name:
        host.plan.add(
            "network %s" % network_name,
            "delete host-access shim %s (its address and routes go with it)" % name,
            link.describe(),
            None,
            lambda: host.kernel.host.delete_link(name),
            forgets=forgets,
        )


def _check_subnet_change(network: MacvlanNetwork, attached: dict) -> None:
    for endpoint in attached.values():
        address = ipaddress.ip_address(endpoint["ipv4_address"])
        if address not in network.subnet or address == network.gateway:
            raise option_error(
                "subnet",
                network.subnet,
                "leaves endpoint %s (%s) outside; detach it first" % (endpoint["sandbox"], address),
            )
        if network.host_access_ip is not None and address == network.host_access_ip:
            raise option_error(
                "host_access_ip", network.host_access_ip, "is the address of endpoint %s" % endpoint["sandbox"]
            )


def vlan_supported(host: Host) -> bool:
    """802.1Q in this kernel: loaded (its /proc/net/vlan exists per namespace), or loadable with modprobe."""
    if os.path.isdir("/proc/net/vlan"):
        return True
    tool = "modinfo" if host.check_mode else "modprobe"
    path = host.module.get_bin_path(tool) if host.module is not None else None
    if path is None:
        return False
    rc, _out, _err = host.run_command([path, "-n", "8021q"] if host.check_mode else [path, "-q", "8021q"])
    return rc == 0 and (host.check_mode or os.path.isdir("/proc/net/vlan"))
