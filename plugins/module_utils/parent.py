# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Networks whose endpoints are links on a host interface, their parent (macvlan and ipvlan drivers): the checks
of the parent, its 802.1Q sub-interface (IFACE.VID) made with the first network on it and removed with the last,
and what may not change while endpoints are attached."""

from __future__ import annotations

import os

from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.model import (
    ALIAS_PREFIX,
    BRIDGE_ALIAS_PREFIX,
    VLAN_ALIAS_PREFIX,
    check_driver,
)
from ansible_collections.cnm.network.plugins.module_utils.networks import (
    check_overlaps,
    check_subnet_change,
    detach_all,
    plan_device_delete,
)
from ansible_collections.cnm.network.plugins.module_utils.plan import Op
from ansible_collections.cnm.network.plugins.module_utils.records import NetworkRecord, ParentRecord
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST

# The kinds of link a parent carries for endpoints. One parent takes links of one kind only: the kernel refuses
# the other (EBUSY), as both hook the parent's receive path.
LOWER_KINDS = ("macvlan", "ipvlan")


def plan_parent(host: Host, network, record, attached: dict, fixed: tuple) -> tuple:
    """Check the network against the store and its parent, and plan the parent's VLAN sub-interface when it is
    missing: (whether cnm made that sub-interface, the MTU of the parent or of its base).

    ``fixed``: (option, the value in the record, the new value) of settings that may not change while endpoints
    are attached."""
    check_overlaps(host, network.name, network.subnet, network.ipv6_subnet)
    check_driver(network.name, record, network.driver)
    if record is not None and attached:
        for option, old, new in (("parent", record.parent, network.parent),) + fixed:
            if old != new:
                raise option_error(
                    option,
                    new,
                    "differs from %s, which network %s already uses with %d endpoint(s) attached: detach them first"
                    % (old, network.name, len(attached)),
                )
        check_subnet_change(network, attached)
    session = host.kernel.host
    vlan_created = bool(record and record.vlan_created and record.parent == network.parent)
    parent = session.link(network.parent)
    if parent is None:
        vlan_created = _plan_vlan(host, network, "network %s" % network.name)
        mtu_found = session.link(network.vlan[0]).mtu
    else:
        _check_parent(host, network, parent)
        mtu_found = parent.mtu
    if network.mtu is not None and network.mtu > mtu_found:
        raise option_error(
            "mtu",
            network.mtu,
            "is larger than the MTU of parent %s (%d): a %s cannot exceed its parent"
            % (network.parent, mtu_found, network.driver),
        )
    return vlan_created, mtu_found


def plan_on_parent_absent(host: Host, name: str, force: bool, driver: str, also=None) -> dict:
    """Detach the endpoints (with ``force``), plan ``also(record)`` (the driver's own devices), forget the network,
    and delete its parent's VLAN sub-interface when cnm made it and no other network uses it."""
    record = host.state["networks"].get(name)
    result = {"network": {"name": name, "state": "absent", "detached": 0}}
    if record is None:
        return result
    check_driver(name, record, driver, removing=True)
    attached = detach_all(host, name, force)
    if also is not None:
        also(record)
    del host.state["networks"][name]
    parent = record.parent
    still_used = any(_on_parent(other, parent) for other in host.state["networks"].values())
    link = host.kernel.host.link(parent)
    if record.vlan_created and not still_used and link is not None and link.alias == VLAN_ALIAS_PREFIX + parent:
        before = {"vlan": parent, "mode": link.mode}
        forgets = (("network", name),)
        plan_device_delete(host, "network %s" % name, "delete VLAN sub-interface %s" % parent, before, parent, forgets)
    result["network"]["detached"] = len(attached)
    return result


def _on_parent(record: NetworkRecord, parent: str) -> bool:
    """Whether a network record is of a network on the interface ``parent`` (macvlan, ipvlan)."""
    return isinstance(record, ParentRecord) and record.parent == parent


def links_on(host: Host, parent, kind: str) -> list:
    """The links of ``kind`` the host has on ``parent``."""
    return [link for link in host.kernel.host.links().values() if link.kind == kind and link.peer_index == parent.index]


def _check_parent(host: Host, network, parent) -> None:
    """The parent must be a plain interface of the host: not a bridge, no bridge port, not a cnm device, and not
    carrying links of the other kind."""
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
            "is a bridge%s: a %s parent must be a plain interface (use cnm_bridge networks for bridges)"
            % (owner, network.driver),
        )
    if parent.master:
        master = host.kernel.host.by_index(parent.master)
        raise option_error(
            "parent",
            network.parent,
            "is a port of %s: its frames belong to that device, not to %s endpoints"
            % (master.name if master else "another device", network.driver),
        )
    alias = parent.alias or ""
    if alias.startswith(ALIAS_PREFIX) and not alias.startswith(VLAN_ALIAS_PREFIX):
        raise option_error("parent", network.parent, "is a device of cnm itself (%s), not a LAN interface" % alias)
    if parent.kind in LOWER_KINDS:
        raise option_error("parent", network.parent, "is a %s itself: give its parent" % parent.kind)
    other_kind = next(kind for kind in LOWER_KINDS if kind != network.link)
    others = sorted(
        name
        for name, other in host.state["networks"].items()
        if _on_parent(other, network.parent) and other.driver != network.driver
    )
    busy = others or sorted(link.name for link in links_on(host, parent, other_kind))
    if busy:
        raise option_error(
            "parent",
            network.parent,
            "already carries %s (%s): a parent takes macvlan or ipvlan links, not both"
            % ("network(s) of another driver" if others else "%s link(s)" % other_kind, ", ".join(busy)),
        )


def _plan_vlan(host: Host, network, target: str) -> bool:
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
            "needs an 802.1Q sub-interface, but this kernel has no 802.1Q support (module 8021q is not loaded, built "
            "in, or installed under /lib/modules/%s): use a kernel that has it" % os.uname().release,
        )
    name = network.parent
    host.plan.add(
        target,
        "create VLAN sub-interface %s (id %d on %s)" % (name, vid, base_name),
        None,
        {"vlan": name, "id": vid, "parent": base_name},
        Op(HOST, "create_vlan", (name, base_name, vid, VLAN_ALIAS_PREFIX + name)),
        Op(HOST, "delete_link", (name,)),
    )
    return True


def vlan_supported(host: Host) -> bool:
    """802.1Q in this kernel: loaded, built in, or a module the kernel loads itself when the first VLAN link is
    created (rtnetlink asks for "rtnl-link-vlan"), so planning runs no modprobe and check mode sees the same."""
    return host.kernel.has_module("8021q")
