# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning overlay networks: a bridge network plus a VXLAN device whose FDB and neighbour table
are made exact from the inventory's peers (no learning, no gossip, no key-value store).

Per remote VTEP one all-zero FDB entry (broadcast and unknown traffic), per remote endpoint one FDB
entry MAC -> VTEP and one neighbour entry IP -> MAC on the VXLAN device, which answers ARP for them
itself (proxy), so ARP never crosses the underlay. Entries of peers no longer listed are removed.

With ``control_plane: evpn`` FRR's zebra programs the remote entries instead: none come from the peers (those the
module wrote before are removed, zebra's are never seen), the VXLAN port suppresses ARP and does not learn, and the
bridge's MAC is derived from the gateway (see attach.VethLink.host_entries for the endpoints' side).

Back from evpn to static only once FRR is stopped (refused while zebra runs here: it would go on programming the VNI
beside the module); what a stopped or killed zebra left then has no owner and is removed.
"""

from __future__ import annotations

import socket
from typing import Callable, Optional, Tuple

from ansible_collections.cnm.network.plugins.module_utils import ipsec
from ansible_collections.cnm.network.plugins.module_utils.bridge import (
    plan_bridge_absent,
    plan_bridge_present,
    plan_device_ipv6,
)
from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.model import (
    FLOOD_MAC,
    OVERLAY_ALIAS_PREFIX,
    OverlayNetwork,
    check_driver,
    parse_address,
)
from ansible_collections.cnm.network.plugins.module_utils.networks import plan_device_delete
from ansible_collections.cnm.network.plugins.module_utils.plan import Op
from ansible_collections.cnm.network.plugins.module_utils.records import OverlayRecord
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST


def underlay_mtu(host: Host, local_ip) -> int:
    """The MTU of the link that holds ``local_ip`` (the VTEP address); refuses an address the host lacks."""
    session = host.kernel.host
    for link in session.links().values():
        if any(address.ip == local_ip for address in session.addresses(link.index)):
            return link.mtu
    raise option_error("local_ip", local_ip, "is not an address of this host")


def refuse_encryption(kernel_features: dict) -> None:
    """Never fall back to cleartext: on a kernel without what IPsec needs, refuse naming what it lacks."""
    missing = [name for name, present in kernel_features.items() if not present]
    if missing:
        raise option_error(
            "encrypted",
            True,
            "needs IPsec ESP in transport mode with AES-GCM, and this kernel lacks: %s; refusing rather than "
            "sending VXLAN in clear" % ", ".join(missing),
        )


def _encryption(host: Host, params: dict, underlay: Optional[int]) -> Tuple[dict, Optional[list]]:
    """Resolve ``encrypted`` (omitted: as the store has it, so an encrypted overlay never turns clear by accident),
    check the keys and the kernel, and give the overlay the MTU that ESP leaves room for."""
    record = host.state["networks"].get(params["name"])
    encrypted = params.get("encrypted")
    if encrypted is None:
        encrypted = isinstance(record, OverlayRecord) and record.encrypted
    asked = params.get("encrypted")
    params = dict(params, encrypted=encrypted)
    if not encrypted:
        return params, None
    if asked is None and not params.get("encryption_key"):
        raise option_error(
            "encryption_key",
            "(not set)",
            "is required: overlay %s is encrypted on this host (encrypted: false turns encryption off)"
            % params["name"],
        )
    keys = ipsec.check_keys(params.get("encryption_key"), params.get("encryption_keys"))
    refuse_encryption(ipsec.kernel_features(host.kernel))
    if underlay is not None:
        limit = ipsec.encrypted_mtu(underlay)
        if params.get("mtu") is None:
            params["mtu"] = limit
        elif params["mtu"] > limit:
            raise option_error(
                "mtu",
                params["mtu"],
                "is larger than an encrypted overlay allows on this underlay (%d - 50 bytes of VXLAN - %d of ESP "
                "and its padding = %d)" % (underlay, underlay - 50 - limit, limit),
            )
    return params, keys


def _check_encrypted_port(host: Host, network: OverlayNetwork) -> None:
    """The IPsec policies select VXLAN by UDP port: an encrypted overlay has its port to itself on this host."""
    for other_name, other in sorted(host.state["networks"].items()):
        if (
            other_name != network.name
            and isinstance(other, OverlayRecord)
            and other.port == network.port
            and (network.encrypted or other.encrypted)
        ):
            raise option_error(
                "port",
                network.port,
                "is also used by overlay %s on this host; an encrypted overlay needs a VXLAN UDP port of its own "
                "(its IPsec policies select the VXLAN traffic by port)" % other_name,
            )


def _plan_ipsec(
    host: Host, network: OverlayNetwork, keys: Optional[list], record: Optional[OverlayRecord]
) -> Optional[dict]:
    """States and policies for every (this host, peer) pair, exact; none when the overlay is (no longer) encrypted.
    ``record``: the overlay's record before this run (None: a new overlay)."""
    was_encrypted = record is not None and record.encrypted
    if not network.encrypted and not was_encrypted:
        return None  # never encrypted: XFRM is not touched (nor needed in the kernel)
    have = ipsec.current(host.kernel.host, sorted({network.port, record.port if record else network.port}))
    want = (
        ipsec.render(network.local_ip, [peer.vtep for peer in network.peers], keys, network.port)
        if network.encrypted
        else {"states": [], "policies": []}
    )
    ipsec.plan(host, "overlay %s ipsec" % network.name, have, (want["states"], want["policies"]))
    if not network.encrypted:
        host.warnings.append(
            "overlay %s is no longer encrypted (encrypted: false): its VXLAN traffic now crosses the underlay in clear"
            % network.name
        )
        return None
    return ipsec.describe(want["states"], want["policies"])


def plan_overlay_present(host: Host, params: dict) -> dict:
    params = host.declared(params, "overlay")  # peers in force too
    params["mtu_set"] = params.get("mtu") is not None
    local_ip = parse_address("local_ip", params["local_ip"], 4) if params.get("local_ip") else None
    mtu = underlay_mtu(host, local_ip) if local_ip is not None else None
    _refuse_encrypted_evpn(host, params)
    params, keys = _encryption(host, params, mtu)
    network = OverlayNetwork.from_overlay_params(params, underlay_mtu=mtu)
    _check_port(host, network)
    _check_encrypted_port(host, network)
    record = host.state["networks"].get(network.name)  # as it was: plan_bridge_present replaces it
    leaving_evpn = not network.evpn and isinstance(record, OverlayRecord) and record.control_plane == "evpn"
    if leaving_evpn:
        _refuse_while_frr_runs(host, network)  # before anything is planned: nothing half-done
        _plan_zebra_neighbours_left(host, network)  # before the bridge's new MAC, which flushes them (bridge.py)
    result = plan_bridge_present(host, network, bool(params.get("allow_host_route_overlap")))
    encryption = _plan_ipsec(host, network, keys, record)  # before the device: its first packet is already in ESP
    session = host.kernel.host
    name = network.vxlan_name
    link = session.link(name)
    wanted = {
        "vni": network.vni,
        "local": str(network.local_ip),
        "port": network.port,
        "learning": False,
        "proxy": True,
    }
    target = "overlay %s" % network.name
    # The entries as sets; their sorted lists (fdb, neighbours) only for a diff to show, once the plan is known
    want_fdb, want_neighbours = _fdb(network), _neighbours(network)
    desired = dict(wanted, device=name, mtu=network.mtu, mac=network.vxlan_mac, fdb=None, neighbours=None)
    current = None
    port_now = session.port_options(link.index) if link is not None and link.master else _PORT_DEFAULTS
    if link is not None:
        dumped = (session.fdb(link.index, noarp=not network.evpn), session.neighbours(link.index))
        current = dict(link.vxlan or {}, device=name, mtu=link.mtu, mac=link.mac, fdb=None, neighbours=None)
    port_wanted = _EVPN_PORT if network.evpn else _STATIC_PORT
    shown = network.evpn or _port_part(port_now) != _STATIC_PORT  # a static overlay's diff stays as it was
    if shown:
        desired["bridge_port"] = port_wanted
        if current is not None:
            current["bridge_port"] = _port_part(port_now)

    def add(what, apply, undo=None):
        host.plan.add(target, what, current, desired, apply, undo)

    if link is not None and (link.kind != "vxlan" or link.alias != OVERLAY_ALIAS_PREFIX + network.name):
        raise option_error("vxlan_name", name, "already exists and does not belong to cnm overlay %s" % network.name)
    fresh = link is None or link.vxlan != wanted or link.mac != network.vxlan_mac
    if link is not None and fresh:
        add("re-create vxlan %s (its settings changed)" % name, Op(HOST, "delete_link", (name,)))
    # Encrypted: the device comes up only after the firewall's drop of clear VXLAN is in place (Pending.after_firewall).
    up_later = network.encrypted and (fresh or not link.up)
    if fresh:
        add(
            "create vxlan %s vni %d local %s port %d on %s%s"
            % (
                name,
                network.vni,
                network.local_ip,
                network.port,
                network.bridge_name,
                " (down until its firewall rules are in place)" if up_later else "",
            ),
            _create(network, up=not up_later),
            Op(HOST, "delete_link", (name,)),
        )
        present_fdb, present_neigh = set(), set()
        port_now = _PORT_DEFAULTS  # a new device is a new port
    else:
        if up_later and link.mtu != network.mtu:
            add("set vxlan %s mtu %d" % (name, network.mtu), Op.call(HOST, "set_link", name, mtu=network.mtu))
        elif link.mtu != network.mtu or not link.up:
            add(
                "set vxlan %s mtu %d up" % (name, network.mtu),
                Op.call(HOST, "set_link", name, mtu=network.mtu, up=True),
            )
        present_fdb, present_neigh = set(dumped[0]), set(dumped[1])
    if up_later:
        host.pending.after_firewall.append(
            (
                target,
                "set vxlan %s up (the drop of clear VXLAN is in place)" % name,
                current,
                desired,
                Op.call(HOST, "set_link", name, up=True),
                Op.call(HOST, "set_link", name, up=False),
            )
        )
    if _port_part(port_now) != port_wanted:
        # EVPN: the bridge answers ARP from zebra's neighbours (neigh_suppress) and learns nothing from the tunnel
        # (zebra's extern_learn entries are the truth)
        add(
            "set bridge port %s %s" % (name, _describe_port(port_wanted)),
            Op.call(HOST, "set_port_flags", name, **port_wanted),
            Op.call(HOST, "set_port_flags", name, **_port_part(port_now)),
        )
    if leaving_evpn:  # before the FDB's sync: zebra's entry of a MAC is removed before the module's is added
        present_fdb -= _plan_zebra_fdb_left(host, target, current, desired, network, None if fresh else link)
    _sync_entries(host, target, current, desired, "add_fdb", name, present_fdb, want_fdb)
    _sync_entries(host, target, current, desired, "add_neighbour", name, present_neigh, want_neighbours)
    if not fresh and isinstance(record, OverlayRecord):
        for mac in _learned_of_gone_endpoints(lambda: session.learned_fdb(link.index), record, network):
            host.plan.add(
                target,
                "flush learned fdb %s dev %s (no longer behind a peer)" % (mac, name),
                current,
                desired,
                Op.call(HOST, "forget_learned_fdb", name, mac),
            )
    plan_device_ipv6(host, target, name, network.ipv6_subnet is not None, network.mtu)
    if any(change.target == target for change in host.plan.changes) or any(
        change[0] == target for change in host.pending.after_firewall
    ):  # the overlay's diff shows its entries, before and after
        desired.update(fdb=sorted(want_fdb), neighbours=sorted(want_neighbours))
        if current is not None:
            current.update(fdb=sorted(dumped[0]), neighbours=sorted(dumped[1]))
    result["network"].update(
        vni=network.vni,
        local_ip=str(network.local_ip),
        port=network.port,
        vxlan_name=name,
        encrypted=network.encrypted,
        control_plane=network.control_plane,
    )
    if encryption is not None:
        result["network"]["ipsec"] = encryption
    return result


def plan_overlay_absent(host: Host, name: str, force: bool) -> dict:
    record = host.state["networks"].get(name)
    check_driver(name, record, OverlayNetwork.driver, removing=True)
    result = plan_bridge_absent(host, name, record.bridge_name if record is not None else "br-" + name, force)
    vxlan = record.vxlan_name if record is not None else None
    link = host.kernel.host.link(vxlan) if vxlan else None
    if link is not None and link.kind == "vxlan":
        forgets = (("network", name),)
        plan_device_delete(host, "overlay %s" % name, "delete vxlan %s" % vxlan, {"device": vxlan}, vxlan, forgets)
    if record is not None and record.encrypted:  # after the device: nothing is ever sent in clear
        have = ipsec.current(host.kernel.host, [record.port])
        ipsec.plan(host, "overlay %s ipsec" % name, have, ([], []), forgets=(("network", name),))
    return result


def _learned_of_gone_endpoints(learned: Callable[[], list], record: OverlayRecord, network: OverlayNetwork) -> list:
    """The MACs the bridge learnt on the VXLAN port of endpoints no peer lists any more (a pruned peer's, one
    detached): forgotten at once, not after the bridge's 300 s of ageing, during which their frames go to the
    tunnel (flooded to every VTEP) even when the address is now a local endpoint's (slices move as groups grow).
    ``learned()`` gives the MACs the bridge learnt on the port: a dump of the whole FDB, read only when an endpoint
    went."""
    if record.peers == network.to_record().peers:
        return []  # the same endpoints (an unchanged rerun)
    kept = {mac.lower() for peer in network.peers for _ip, mac in peer.endpoints}
    gone = {mac.lower() for peer in record.peers for _ip, mac in peer.endpoints} - kept
    return sorted(gone & {mac.lower() for mac in learned()}) if gone else []


def _create(network: OverlayNetwork, up: bool) -> Op:
    return Op.call(
        HOST,
        "create_vxlan",
        network.vxlan_name,
        network.vni,
        str(network.local_ip),
        network.port,
        network.mtu,
        network.vxlan_mac,
        network.bridge_name,
        OVERLAY_ALIAS_PREFIX + network.name,
        up=up,
    )


_STATIC_PORT = {"neigh_suppress": False, "learning": True}  # the kernel's defaults
_EVPN_PORT = {"neigh_suppress": True, "learning": False}
_PORT_DEFAULTS = dict(_STATIC_PORT, isolated=False, hairpin=False)


def _port_part(options: dict) -> dict:
    return {key: options[key] for key in _STATIC_PORT}


def _describe_port(options: dict) -> str:
    return "neigh_suppress %s learning %s" % tuple("on" if options[key] else "off" for key in _STATIC_PORT)


def _refuse_encrypted_evpn(host: Host, params: dict) -> None:
    """IPsec between the VTEPs is planned from the inventory's peers; with EVPN FRR knows them: not supported yet."""
    if params.get("control_plane") != "evpn":
        return
    encrypted = params.get("encrypted")
    record = host.state["networks"].get(params["name"])
    if encrypted is None:  # omitted: as the store has it
        encrypted = isinstance(record, OverlayRecord) and record.encrypted
    if encrypted:
        raise option_error(
            "control_plane",
            "evpn",
            "cannot be combined with encrypted: true (an encrypted overlay with an EVPN control plane is not "
            "supported yet); use control_plane: static, or encrypted: false",
        )


def _refuse_while_frr_runs(host: Host, network: OverlayNetwork) -> None:
    """evpn -> static: refused while FRR runs in this namespace. Its zebra serves every VNI of the host
    (advertise-all-vni) and would go on programming this one's remote entries beside the module's, which in turn never
    touches zebra's; whether it still holds entries at this moment (bgpd may be down) says nothing of the next."""
    daemons = host.kernel.host.frr_daemons()
    if daemons:
        raise option_error(
            "control_plane",
            "static",
            "cannot take overlay %s off EVPN while FRR runs in this network namespace (%s): zebra would go on "
            "programming VNI %d's remote entries beside the module's. Stop FRR for this overlay first (the role "
            "cnm.network.cnm_overlay does so when cnm_overlay_control_plane becomes static), then run again; nothing "
            "was changed" % (network.name, ", ".join("%s pid %d" % (name, pid) for pid, name in daemons), network.vni),
        )


def _plan_zebra_neighbours_left(host: Host, network: OverlayNetwork) -> None:
    """evpn -> static with FRR stopped: zebra's neighbours on the bridge (proto zebra) that a killed zebra left (a
    clean stop withdraws everything) have no owner any more; static mode would keep them for ever."""
    session = host.kernel.host
    bridge = session.link(network.bridge_name)
    neighbours = sorted(session.zebras(socket.AF_INET, bridge.index), key=lambda e: e[::-1]) if bridge else []
    words = ["neighbour %s lladdr %s dev %s" % (address, mac, bridge.name) for mac, address in neighbours]
    for position, (mac, address) in enumerate(neighbours):
        host.plan.add(
            "overlay %s" % network.name,
            "remove %s (zebra's, no owner without FRR)" % words[position],
            {"zebra_neighbours": words},
            {"zebra_neighbours": []},
            Op.call(HOST, "delete_neighbour", bridge.name, mac, address),
        )


def _plan_zebra_fdb_left(
    host: Host, target: str, current: Optional[dict], desired: dict, network: OverlayNetwork, link
) -> set:
    """evpn -> static with FRR stopped: zebra's FDB entries on the VXLAN device that a killed zebra left (a clean stop
    withdraws everything) have no owner any more, and static mode would keep them for ever (it never touches zebra's
    entries): remote MACs (the device's own entries and the bridge's on its port, extern_learn) and the flood entries
    (NOARP; the module writes none on an EVPN overlay). Removed; the flood entries the peers need are then written as
    the module's. Gives those flood entries. ``link``: the VXLAN device, None when it is re-created (its entries go
    with it)."""
    if link is None:
        return set()
    session, name = host.kernel.host, network.vxlan_name
    flood = set(session.fdb(link.index)) - set(session.fdb(link.index, noarp=False))
    drops = []  # (words, verb, its arguments)
    for mac, vtep in session.zebras(socket.AF_BRIDGE, link.index):
        if vtep is None:  # the bridge's entry (forget_learned_fdb: aged out meanwhile is as good)
            drops.append(("fdb %s dev %s master" % (mac, name), "forget_learned_fdb", (name, mac)))
        else:
            drops.append(("fdb %s dst %s extern_learn" % (mac, vtep), "delete_fdb", (name, mac, vtep)))
    drops.extend(("fdb %s dst %s noarp" % (mac, vtep), "delete_fdb", (name, mac, vtep)) for mac, vtep in flood)
    if not drops:
        return flood
    drops.sort(key=lambda drop: (drop[1] != "forget_learned_fdb", drop[1], drop[2]))
    if current is not None:
        current["zebra_fdb"] = sorted(words for words, _verb, _args in drops)
    desired["zebra_fdb"] = []
    for words, verb, args in drops:
        what = "remove %s (zebra's, no owner without FRR)" % words
        host.plan.add(target, what, current, desired, Op.call(HOST, verb, *args))
    return flood


def _fdb(network: OverlayNetwork) -> set:
    """Static mode: the entries the peers need; EVPN: none (zebra programs the remote ones, extern_learn)."""
    entries: set = set()
    if network.evpn:
        return entries
    for peer in network.peers:
        vtep = str(peer.vtep)
        entries.add((FLOOD_MAC, vtep))
        entries.update((mac, vtep) for _address, mac in peer.endpoints)
    return entries


def _neighbours(network: OverlayNetwork) -> set:
    if network.evpn:
        return set()
    return {(mac, address) for peer in network.peers for address, mac in peer.endpoints}


def _sync_entries(
    host: Host, target: str, current: Optional[dict], desired: dict, verb: str, name: str, present: set, wanted: set
) -> None:
    """Plan.sync of device ``name``'s entries, (MAC, address) pairs, from ``present`` to ``wanted``: the removals,
    then the additions, each in order. An overlay may hold ten thousand: only those that differ become arguments (an
    unchanged rerun makes none)."""
    if present == wanted:
        return
    gone = [(name,) + entry for entry in sorted(present - wanted)]
    new = [(name,) + entry for entry in sorted(wanted - present)]
    host.plan.sync(target, current, desired, HOST, verb, gone, new)


def _check_port(host: Host, network: OverlayNetwork) -> None:
    for link in host.kernel.host.links().values():
        if (
            link.kind == "vxlan"
            and link.vxlan
            and link.name != network.vxlan_name
            and link.vxlan.get("port") == network.port
            and link.vxlan.get("vni") == network.vni
        ):
            raise option_error(
                "port", network.port, "is in use for VNI %d by another VXLAN device (%s)" % (network.vni, link.name)
            )
