# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Ipvlan networks (Docker's ``-d ipvlan``): endpoints are ipvlan links on a parent interface, with its MAC.

In mode l2 the endpoints are hosts of the parent's LAN behind its gateway; in l3 and l3s the parent routes for them
(the LAN reaches their subnet through a route to this host, which is the LAN router's to hold, as with Docker) and
their default route goes through their interface. The host takes no part in their traffic (no bridge, no NAT, no
firewall) and cannot reach them: an ipvlan parent does not deliver between itself and its ipvlans.
"""

from __future__ import annotations

import os

from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.model import IpvlanNetwork
from ansible_collections.cnm.network.plugins.module_utils.networks import follow_endpoints
from ansible_collections.cnm.network.plugins.module_utils.parent import links_on, plan_on_parent_absent, plan_parent
from ansible_collections.cnm.network.plugins.module_utils.records import IpvlanRecord


def plan_ipvlan_present(host: Host, network: IpvlanNetwork) -> dict:
    """Check the kernel and the parent, create the parent's VLAN sub-interface as asked; endpoints follow changes."""
    if not host.kernel.has_module("ipvlan"):
        raise option_error(
            "name",
            network.name,
            "needs the kernel's ipvlan driver, which this kernel lacks (module ipvlan is not loaded, built in, or "
            "installed under /lib/modules/%s): use a kernel that has it, or a macvlan network" % os.uname().release,
        )
    record = host.state["networks"].get(network.name)
    attached = host.endpoints_of(network.name)
    fixed = (
        ("ipvlan_mode", record.ipvlan_mode if record else None, network.mode),
        ("ipvlan_flag", record.ipvlan_flag if record else None, network.flag),
    )
    vlan_created, mtu_found = plan_parent(host, network, record, attached, fixed)
    _check_one_mode(host, network)
    new_record = network.to_record(network.mtu if network.mtu is not None else mtu_found, vlan_created)
    host.state["networks"][network.name] = new_record
    follow_endpoints(host, record, new_record, attached)
    return {"network": dict(new_record.to_dict(), name=network.name, endpoints=len(attached))}


def plan_ipvlan_absent(host: Host, name: str, force: bool) -> dict:
    """Detach the endpoints (with ``force``) and delete a VLAN sub-interface no other network uses."""
    return plan_on_parent_absent(host, name, force, IpvlanNetwork.driver)


def _check_one_mode(host: Host, network: IpvlanNetwork) -> None:
    """The kernel keeps one ipvlan mode and flag per parent, for all its ipvlans: a network with others would change
    them under the endpoints already there."""
    for name, other in sorted(host.state["networks"].items()):
        if name == network.name or not isinstance(other, IpvlanRecord) or other.parent != network.parent:
            continue
        for option, mine, theirs in (
            ("ipvlan_mode", network.mode, other.ipvlan_mode),
            ("ipvlan_flag", network.flag, other.ipvlan_flag),
        ):
            if theirs != mine:
                raise option_error(
                    option,
                    mine,
                    "differs from %s of ipvlan network %s on parent %s: the kernel keeps one ipvlan mode and flag "
                    "per parent" % (theirs, name, network.parent),
                )
    parent = host.kernel.host.link(network.parent)
    others = [link for link in links_on(host, parent, "ipvlan") if link.mode != network.link_mode] if parent else []
    if others:
        raise option_error(
            "ipvlan_mode",
            network.mode,
            "does not match the ipvlan %s already on parent %s (%s): the kernel keeps one ipvlan mode and flag per "
            "parent" % (others[0].name, network.parent, others[0].mode),
        )
