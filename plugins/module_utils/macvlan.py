# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Macvlan networks: endpoints are macvlan links on a parent interface, first-class devices on its LAN.

The host itself takes no part in their traffic (no bridge, no NAT, no firewall), except through the
optional host-access shim: a macvlan of the host's own on the same parent, with routes to the
endpoints, because a macvlan parent never delivers frames between itself and its macvlans.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.ipam import mac_from_name
from ansible_collections.cnm.network.plugins.module_utils.kernel import Route
from ansible_collections.cnm.network.plugins.module_utils.model import SHIM_ALIAS_PREFIX, MacvlanNetwork
from ansible_collections.cnm.network.plugins.module_utils.networks import follow_endpoints, plan_device_delete
from ansible_collections.cnm.network.plugins.module_utils.parent import links_on, plan_on_parent_absent, plan_parent
from ansible_collections.cnm.network.plugins.module_utils.plan import Op
from ansible_collections.cnm.network.plugins.module_utils.records import MacvlanRecord
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST


def plan_macvlan_present(host: Host, network: MacvlanNetwork) -> dict:
    """Check the parent, create the VLAN sub-interface and the host-access shim as asked; endpoints follow changes."""
    record = host.state["networks"].get(network.name)
    attached = host.endpoints_of(network.name)
    fixed = (("mode", record.mode if record else None, network.mode),)
    vlan_created, mtu_found = plan_parent(host, network, record, attached, fixed)
    _check_passthru(host, network)
    _check_host_access(network, attached)
    target = "network %s" % network.name
    mtu = network.mtu if network.mtu is not None else mtu_found
    if record is not None and record.shim_name and record.shim_name != network.shim_name:
        _plan_shim_absent(host, network.name, record.shim_name)
    if network.host_access:
        _plan_shim(host, network, target, mtu)
    new_record = network.to_record(mtu, vlan_created)
    host.state["networks"][network.name] = new_record
    follow_endpoints(host, record, new_record, attached, shim_routes=False)  # _plan_shim made them exact
    return {"network": dict(new_record.to_dict(), name=network.name, endpoints=len(attached))}


def plan_macvlan_absent(host: Host, name: str, force: bool) -> dict:
    """Detach the endpoints (with ``force``), delete the shim and a VLAN sub-interface no other network uses."""

    def delete_shim(record: MacvlanRecord) -> None:
        if record.shim_name:
            _plan_shim_absent(host, name, record.shim_name, forgets=(("network", name),))

    return plan_on_parent_absent(host, name, force, MacvlanNetwork.driver, delete_shim)


def _check_passthru(host: Host, network: MacvlanNetwork) -> None:
    """A passthru network takes its parent exclusively: no other network or macvlan on it, and no passthru beside."""
    parent = host.kernel.host.link(network.parent)
    if parent is None:
        return  # a VLAN sub-interface this run makes carries nothing yet
    others = [
        n
        for n, r in host.state["networks"].items()
        if n != network.name and isinstance(r, MacvlanRecord) and r.parent == network.parent
    ]
    passthru = [n for n in others if host.state["networks"][n].mode == "passthru"]
    if passthru:
        raise option_error("parent", network.parent, "is taken exclusively by passthru network %s" % passthru[0])
    macvlans = links_on(host, parent, "macvlan")
    if network.mode == "passthru":
        if others:
            raise option_error(
                "mode",
                "passthru",
                "takes parent %s exclusively, but network(s) %s use it too"
                % (network.parent, ", ".join(sorted(others))),
            )
        if macvlans:
            raise option_error(
                "mode",
                "passthru",
                "takes parent %s exclusively, but it already carries macvlan(s) %s"
                % (network.parent, ", ".join(sorted(link.name for link in macvlans))),
            )
    else:
        busy = [link.name for link in macvlans if link.mode == "passthru"]
        if busy:
            raise option_error("parent", network.parent, "is taken exclusively by the passthru macvlan %s" % busy[0])


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
        if record.network == network.name and ipaddress.ip_address(record.ipv4_address) not in network.ip_range:
            routes.append(Route(ipaddress.ip_network(record.ipv4_address + "/32"), None, None))
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
                Op(HOST, "delete_link", (name,)),
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
            Op(
                HOST,
                "create_lower",
                ("macvlan", name, network.parent, "bridge", mtu, mac_from_name("shim:" + network.name), alias),
            ),
            Op(HOST, "delete_link", (name,)),
        )
    elif link.mtu != mtu or not link.up:
        add(
            "set shim %s mtu %d up" % (name, mtu),
            Op.call(HOST, "set_link", name, mtu=mtu, up=True),
            Op.call(HOST, "set_link", name, mtu=link.mtu),
        )
    host.plan.sync(
        target, current, desired, HOST, "add_address", [(name, a) for a in current_addresses], [(name, address)]
    )
    host.plan.sync(
        target, current, desired, HOST, "add_route", [(name, r) for r in current_routes], [(name, r) for r in routes]
    )


def _plan_shim_absent(host: Host, network_name: str, name: str, forgets: tuple = ()) -> None:
    link = host.kernel.host.link(name)
    if link is not None and link.alias == SHIM_ALIAS_PREFIX + network_name:
        what = "delete host-access shim %s (its address and routes go with it)" % name
        plan_device_delete(host, "network %s" % network_name, what, link.describe(), name, forgets)


def _check_host_access(network: MacvlanNetwork, attached: dict) -> None:
    for endpoint in attached.values():
        if network.host_access_ip is not None and endpoint.ipv4_address == str(network.host_access_ip):
            raise option_error(
                "host_access_ip", network.host_access_ip, "is the address of endpoint %s" % endpoint.sandbox
            )
