# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning overlay networks: a bridge network plus a VXLAN device whose FDB and neighbour table
are made exact from the inventory's peers (no learning, no gossip, no key-value store).

Per remote VTEP one all-zero FDB entry (broadcast and unknown traffic), per remote endpoint one FDB
entry MAC -> VTEP and one neighbour entry IP -> MAC on the VXLAN device, which answers ARP for them
itself (proxy), so ARP never crosses the underlay. Entries of peers no longer listed are removed.
"""

from __future__ import annotations

import os
import socket

from ansible_collections.cnm.network.plugins.module_utils.bridge import plan_bridge_absent, plan_bridge_present, plan_device_ipv6
from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.model import OverlayNetwork, parse_address

FLOOD_MAC = "00:00:00:00:00:00"


def underlay_mtu(host: Host, local_ip) -> int:
    """The MTU of the link that holds ``local_ip`` (the VTEP address); refuses an address the host lacks."""
    session = host.kernel.host
    for link in session.links().values():
        if any(address.ip == local_ip for address in session.addresses(link.index)):
            return link.mtu
    raise option_error("local_ip", local_ip, "is not an address of this host")


def refuse_encryption(kernel_features: dict) -> None:
    """Never fall back to cleartext: say what the kernel lacks (or that this release does not program IPsec)."""
    missing = [name for name, present in kernel_features.items() if not present]
    if missing:
        raise option_error("encrypted", True, "needs IPsec ESP in transport mode with AES-GCM, and this kernel lacks: %s" % ", ".join(missing))
    raise option_error("encrypted", True, "is not programmed by this release yet (XFRM states and policies per VTEP pair); refusing rather "
                       "than sending VXLAN in clear")


def kernel_features() -> dict:
    try:
        with open("/proc/crypto") as handle:
            crypto = handle.read()
    except OSError:
        crypto = ""
    return {
        "XFRM (/proc/net/xfrm_stat)": os.path.exists("/proc/net/xfrm_stat"),
        "ESP (esp4)": os.path.exists("/sys/module/esp4") or "esp4" in crypto,
        "GCM (gcm(aes))": "gcm(aes)" in crypto,
        "rfc4106(gcm(aes))": "rfc4106(gcm(aes))" in crypto,
    }


def plan_overlay_present(host: Host, params: dict) -> dict:
    local_ip = parse_address("local_ip", params["local_ip"], 4) if params.get("local_ip") else None
    mtu = underlay_mtu(host, local_ip) if local_ip is not None else None
    if params.get("peers") is None:  # unmanaged: keep the peers in force
        params = dict(params, peers=host.state["networks"].get(params["name"], {}).get("peers", []))
    network = OverlayNetwork.from_overlay_params(params, underlay_mtu=mtu)
    if network.encrypted:
        refuse_encryption(kernel_features())
    _check_port(host, network)
    result = plan_bridge_present(host, network)
    session = host.kernel.host
    name = network.vxlan_name
    link = session.link(name)
    wanted = {"vni": network.vni, "local": str(network.local_ip), "port": network.port, "learning": False, "proxy": True}
    target = "overlay %s" % network.name
    desired = dict(wanted, device=name, mtu=network.mtu, mac=network.vxlan_mac, fdb=_fdb(network), neighbours=_neighbours(network))
    current = None
    if link is not None:
        current = dict(link.vxlan or {}, device=name, mtu=link.mtu, mac=link.mac, fdb=sorted(session.rtnl.neighbours(socket.AF_BRIDGE, link.index)),
                       neighbours=sorted(session.rtnl.neighbours(socket.AF_INET, link.index)))

    def add(what, apply, undo=None):
        host.plan.add(target, what, current, desired, apply, undo)

    if link is not None and (link.kind != "vxlan" or link.alias != "cnm:overlay:" + network.name):
        raise option_error("vxlan_name", name, "already exists and does not belong to cnm overlay %s" % network.name)
    fresh = link is None or link.vxlan != wanted or link.mac != network.vxlan_mac
    if link is not None and fresh:
        add("re-create vxlan %s (its settings changed)" % name, lambda: session.delete_link(name))
    if fresh:
        add("create vxlan %s vni %d local %s port %d on %s" % (name, network.vni, network.local_ip, network.port, network.bridge_name),
            lambda: _create(session, network), lambda: session.delete_link(name))
        present_fdb, present_neigh = set(), set()
    else:
        if link.mtu != network.mtu or not link.up:
            add("set vxlan %s mtu %d up" % (name, network.mtu), lambda: session.set_link(name, mtu=network.mtu, up=True))
        present_fdb, present_neigh = set(current["fdb"]), set(current["neighbours"])
    for mac, vtep in sorted(present_fdb - set(desired["fdb"])):
        add("remove fdb %s dst %s" % (mac, vtep), lambda m=mac, v=vtep: session.rtnl.neighbour(False, socket.AF_BRIDGE, session.index(name), m, v))
    for mac, vtep in desired["fdb"]:
        if (mac, vtep) not in present_fdb:
            add("add fdb %s dst %s" % (mac, vtep), lambda m=mac, v=vtep: session.rtnl.neighbour(True, socket.AF_BRIDGE, session.index(name), m, v))
    for mac, address in sorted(present_neigh - set(desired["neighbours"])):
        add("remove neighbour %s lladdr %s" % (address, mac),
            lambda m=mac, a=address: session.rtnl.neighbour(False, socket.AF_INET, session.index(name), m, a))
    for mac, address in desired["neighbours"]:
        if (mac, address) not in present_neigh:
            add("add neighbour %s lladdr %s" % (address, mac),
                lambda m=mac, a=address: session.rtnl.neighbour(True, socket.AF_INET, session.index(name), m, a))
    plan_device_ipv6(host, target, name, network.ipv6_subnet is not None)
    result["network"].update(vni=network.vni, local_ip=str(network.local_ip), port=network.port, vxlan_name=name,
                             peers=network.to_record()["peers"])
    return result


def plan_overlay_absent(host: Host, name: str, force: bool) -> dict:
    record = host.state["networks"].get(name)
    if record is not None and record.get("driver") != "overlay":
        raise option_error("name", name, "is a network of driver %s, not an overlay" % record.get("driver"))
    result = plan_bridge_absent(host, name, (record or {}).get("bridge_name") or "br-" + name, force)
    vxlan = (record or {}).get("vxlan_name")
    link = host.kernel.host.link(vxlan) if vxlan else None
    if link is not None and link.kind == "vxlan":
        host.plan.add("overlay %s" % name, "delete vxlan %s" % vxlan, {"device": vxlan}, None, lambda: host.kernel.host.delete_link(vxlan))
    return result


def _create(session, network: OverlayNetwork) -> None:
    session.rtnl.create_vxlan(network.vxlan_name, network.vni, str(network.local_ip), network.port, network.mtu, network.vxlan_mac,
                              session.index(network.bridge_name))
    session.rtnl.set_link(session.index(network.vxlan_name), alias="cnm:overlay:" + network.name)


def _fdb(network: OverlayNetwork) -> list:
    entries = set()
    for peer in network.peers:
        entries.add((FLOOD_MAC, str(peer.vtep)))
        entries.update((mac, str(peer.vtep)) for _address, mac in peer.endpoints)
    return sorted(entries)


def _neighbours(network: OverlayNetwork) -> list:
    return sorted((mac, str(address)) for peer in network.peers for address, mac in peer.endpoints)


def _check_port(host: Host, network: OverlayNetwork) -> None:
    for link in host.kernel.host.links().values():
        if link.kind == "vxlan" and link.vxlan and link.name != network.vxlan_name and link.vxlan.get("port") == network.port \
                and link.vxlan.get("vni") == network.vni:
            raise option_error("port", network.port, "is in use for VNI %d by another VXLAN device (%s)" % (network.vni, link.name))
