# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A lost store rebuilt from the kernel: the cnm aliases of links, their addresses and our nft table.

When the store file is missing while the kernel still holds cnm networks, endpoints and published ports, a run
that started from an empty store would hand out addresses endpoints hold, drop the published ports from the
firewall (it renders from the store) and take every network for new. ``rebuild`` turns the kernel's facts into a
store of the current format instead; ``read_facts`` collects those facts once (one dump per namespace and object
kind, through the sessions of kernel.py and the ruleset reading of firewall.py).

Recovered, in this order: bridge networks (the bridge's alias, addresses, MTU; masquerade, internal, icc,
trusted_sources and ipv6_masquerade from the rules of ``inet cnm``), their endpoints (the host veth's alias and
the sandbox end: address, MAC, interface name, default route and routes) for sandboxes that still exist, the
published ports (the DNAT maps' elements, matched to the endpoint holding the container address), then overlay
networks (the VXLAN device: VNI, port, local address; peers from its FDB and neighbour entries). What the kernel
does not hold gets the default and is listed in ``NOT_RECOVERABLE``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Dict, List, Optional, Tuple

from ansible_collections.cnm.network.plugins.module_utils import firewall, ipam
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.model import (
    ALIAS_PREFIX,
    BRIDGE_ALIAS_PREFIX,
    ENDPOINT_ALIAS_PREFIX,
    FLOOD_MAC,
    OVERLAY_ALIAS_PREFIX,
    BridgeNetwork,
    OverlayNetwork,
    default_endpoint_name,
)
from ansible_collections.cnm.network.plugins.module_utils.ports import PortMapping
from ansible_collections.cnm.network.plugins.module_utils.records import (
    BridgeRecord,
    EndpointRecord,
    PortRecord,
    endpoint_key,
)
from ansible_collections.cnm.network.plugins.module_utils.sandbox import SandboxRef
from ansible_collections.cnm.network.plugins.module_utils.store import FORMAT_VERSION

# What a rebuilt store cannot know, with the value it gets.
NOT_RECOVERABLE = (
    "ip_range of networks (the whole subnet)",
    "host_binding_ip of networks (none; ports published through it keep their host address)",
    "static addresses of endpoints (dynamic: each keeps its address while it is attached)",
    "sysctls and gw_priority of endpoints (none, 0)",
    "DNS names given by 'name' and aliases of endpoints (the sandbox's own name, none)",
    "the host sysctls' values from before cnm (they stay as they are when the last network goes)",
    "macvlan and ipvlan networks and their endpoints (nothing on the host names their sandboxes)",
)


def _owner(comment: str) -> Optional[str]:
    """``network web masquerade`` out of ``cnm network web masquerade #1a2b3c4d``."""
    if not comment.startswith(firewall.COMMENT_PREFIX) or " #" not in comment:
        return None
    return comment[len(firewall.COMMENT_PREFIX) :].rsplit(" #", 1)[0]


def _prefixes(value) -> List[str]:
    """The networks of a listed set (prefixes, plain addresses) as text."""
    if isinstance(value, dict) and "set" in value:
        value = value["set"]
    if not isinstance(value, list):
        value = [value]
    found = []
    for item in value:
        if isinstance(item, dict) and "prefix" in item:
            found.append(
                str(ipaddress.ip_network("%s/%d" % (item["prefix"]["addr"], item["prefix"]["len"]), strict=False))
            )
        elif isinstance(item, str):
            found.append(str(ipaddress.ip_network(item, strict=False)))
    return found


def _trusted(expr: list) -> List[str]:
    for item in expr or ():
        match = item.get("match") if isinstance(item, dict) else None
        if match and isinstance(match.get("left"), dict) and match["left"].get("payload", {}).get("field") == "saddr":
            return _prefixes(match.get("right"))
    return []


def _network_params(name: str, link: dict, owners: Dict[str, list]) -> dict:
    """The options of a bridge network as its bridge and its rules hold them."""
    params = {"name": name, "bridge_name": link["name"], "mtu": link["mtu"]}
    for text in link.get("addresses", ()):
        interface = ipaddress.ip_interface(text)
        field = "" if interface.version == 4 else "ipv6_"
        if params.get(field + "subnet") is None:
            params[field + "subnet"], params[field + "gateway"] = str(interface.network), str(interface.ip)
    mine = {
        owner[len("network %s " % name) :]: expr
        for owner, expr in owners.items()
        if owner.startswith("network %s " % name)
    }
    params["internal"] = "internal out" in mine
    params["icc"] = "icc" not in mine
    ipv4, ipv6 = "masquerade" in mine, "ipv6 masquerade" in mine
    if params["internal"]:
        params["masquerade"] = True
    elif params.get("subnet"):
        params["masquerade"] = ipv4
        if params.get("ipv6_subnet") and ipv6 != ipv4:
            params["ipv6_masquerade"] = ipv6
    else:
        params["masquerade"] = ipv6
    params["trusted_sources"] = sorted(_trusted(mine.get("trusted ip")) + _trusted(mine.get("trusted ip6")))
    return params


def _overlay_params(name: str, vxlan: dict, owners: Dict[str, list], fdb: list, neighbours: list) -> dict:
    peers: Dict[str, list] = {}
    macs = dict((mac, ip) for mac, ip in neighbours)
    for mac, vtep in fdb:
        entries = peers.setdefault(vtep, [])
        if mac != FLOOD_MAC and mac in macs:
            entries.append({"ip": macs[mac], "mac": mac})
    return {
        "vni": vxlan["vxlan"]["vni"],
        "local_ip": vxlan["vxlan"]["local"],
        "port": vxlan["vxlan"]["port"] or 4789,
        "vxlan_name": vxlan["name"],
        "restrict_peers": "network %s vxlan peers only" % name in owners,
        "control_plane": "evpn" if vxlan.get("neigh_suppress") else "static",
        "peers": [
            {"vtep": vtep, "endpoints": sorted(found, key=lambda e: ipaddress.ip_address(e["ip"]))}
            for vtep, found in sorted(peers.items(), key=lambda item: ipaddress.ip_address(item[0]))
        ],
    }


def _endpoint(network: str, sandbox: str, host_link: dict, inner: dict, record: BridgeRecord) -> EndpointRecord:
    ipv4 = ipv6 = None
    for text in inner.get("addresses", ()):
        address = ipaddress.ip_interface(text).ip
        if address.version == 4 and record.subnet and address in ipaddress.ip_network(record.subnet):
            ipv4 = ipv4 or address
        elif address.version == 6 and record.ipv6_subnet and address in ipaddress.ip_network(record.ipv6_subnet):
            ipv6 = ipv6 or address
    default = (
        ipam.mac_from_ipv4(ipv4)
        if ipv4 is not None
        else ipam.mac_from_name("endpoint:" + endpoint_key(network, sandbox))
    )
    routes, default_route = [], False
    for route in inner.get("routes", ()):
        if ipaddress.ip_network(route["dst"]).prefixlen == 0 and not record.internal:
            default_route = True
        else:
            routes.append({"dst": route["dst"], "gateway": route.get("gateway")})
    return EndpointRecord(
        network=network,
        sandbox=sandbox,
        ifname=inner["name"],
        host_ifname=host_link["name"],
        ipv4_address=str(ipv4) if ipv4 else None,
        ipv6_address=str(ipv6) if ipv6 else None,
        mac_address=inner["mac"],
        static_mac=inner["mac"] != default,
        default_route=default_route or record.internal,  # internal: no default route to see
        routes=tuple(sorted(routes, key=lambda r: (ipaddress.ip_network(r["dst"]).version, r["dst"]))),
        link="veth",  # only veths name their endpoint on the host
        name=default_endpoint_name(SandboxRef.from_key(sandbox)),  # a name given by 'name', and aliases, are lost
    )


def _parts(key) -> tuple:
    """A listed map key (``{"concat": [...]}`` or one value) as a tuple of texts."""
    return tuple(str(part) for part in (key["concat"] if isinstance(key, dict) and "concat" in key else [key]))


def _ports(maps: Dict[str, list], data: dict, lost: list) -> Dict[str, PortRecord]:
    """Store entries of the published ports out of the DNAT maps' elements."""
    holders = {}
    for key, record in data["endpoints"].items():
        for address in record.addresses:
            if address:
                holders[ipaddress.ip_address(address)] = key
    bindings: Dict[tuple, list] = {}
    for name, port_map in firewall.PORT_MAPS.items():
        if port_map.data != "addr":
            continue
        port_name = name[: -len("_addr")] + "_port"
        ports = {
            _parts(item[0]): item[1] for item in maps.get(port_name, ()) if isinstance(item, list) and len(item) == 2
        }
        for item in maps.get(name, ()):
            if not (isinstance(item, list) and len(item) == 2):
                continue
            parts = _parts(item[0])
            holder = holders.get(ipaddress.ip_address(str(item[1])))
            if holder is None or parts not in ports:
                why = "no endpoint holds its address" if holder is None else "%s has no element for it" % port_name
                lost.append("published port %s: %s" % (firewall.element_text(name, item[0], item[1]), why))
                continue
            kind = ("host", parts[1]) if port_map.specific else ("any", port_map.family)
            bindings.setdefault((holder, parts[0], int(parts[-1]), int(ports[parts])), []).append(kind)
    found = {}
    for (holder, protocol, host_port, container_port), kinds in sorted(bindings.items()):
        record = data["endpoints"][holder]
        both = record.ipv4_address and record.ipv6_address
        hosts = [value for kind, value in kinds if kind == "host"]
        families = {value for kind, value in kinds if kind == "any"}
        if families == {"ip", "ip6"} or (families and not both):
            hosts.append(None)
        elif families:
            hosts.append("0.0.0.0" if families == {"ip"} else "::")
        for host_ip in hosts:
            mapping = PortMapping(
                ipaddress.ip_address(host_ip) if host_ip else None, host_port, container_port, protocol
            )
            found[mapping.key] = PortRecord(
                network=record.network,
                sandbox=record.sandbox,
                container_ip=record.ipv4_address,
                container_ipv6=record.ipv6_address,
                **mapping.to_record(),
            )
    return found


def rebuild(facts: dict) -> Tuple[dict, dict]:
    """(store data, report) from the kernel's facts; the report counts what came back and names what did not.

    ``facts``: ``links`` of the host (name, index, kind, mtu, mac, alias, master, peer_index, addresses as
    ``ADDR/LEN``, vxlan; a VXLAN device also neigh_suppress, its bridge port's), ``sandboxes`` by key (their
    ``links``, each with ``routes``; None: the sandbox is gone),
    ``rules`` (comment -> expression of each rule of table inet cnm), ``maps`` (name -> listed elements), and
    ``fdb`` / ``neighbours`` (VXLAN device -> [MAC, address] pairs).
    """
    links = facts.get("links", [])
    by_index = {link["index"]: link for link in links}
    owners = {}
    for comment, expr in facts.get("rules", {}).items():
        owner = _owner(comment)
        if owner is not None:
            owners[owner] = expr
    data = {"version": FORMAT_VERSION, "networks": {}, "endpoints": {}}
    lost: List[str] = []
    for link in sorted(links, key=lambda item: item["name"]):
        alias = link.get("alias") or ""
        if link.get("kind") != "bridge" or not alias.startswith(BRIDGE_ALIAS_PREFIX):
            continue
        name = alias[len(BRIDGE_ALIAS_PREFIX) :]
        params = _network_params(name, link, owners)
        vxlan = next(
            (
                other
                for other in links
                if other.get("kind") == "vxlan"
                and other.get("master") == link["index"]
                and other.get("alias") == OVERLAY_ALIAS_PREFIX + name
            ),
            None,
        )
        try:
            if vxlan is not None:
                params.update(
                    _overlay_params(
                        name,
                        vxlan,
                        owners,
                        facts.get("fdb", {}).get(vxlan["name"], []),
                        facts.get("neighbours", {}).get(vxlan["name"], []),
                    )
                )
                record = OverlayNetwork.from_overlay_params(params).to_record()
                if "network %s vxlan clear drop" % name in owners:
                    record = dataclasses.replace(record, encrypted=True)
            else:
                record = BridgeNetwork.from_params(params).to_record()
        except CnmError as exc:
            lost.append("network %s: %s" % (name, exc))
            continue
        data["networks"][name] = record
    for link in sorted(links, key=lambda item: item["name"]):
        alias = link.get("alias") or ""
        if link.get("kind") != "veth" or not alias.startswith(ENDPOINT_ALIAS_PREFIX) or "|" not in alias:
            continue
        key = alias[len(ENDPOINT_ALIAS_PREFIX) :]
        network, sandbox = key.split("|", 1)
        record = data["networks"].get(network)
        master = by_index.get(link.get("master"))
        if record is None or master is None or master["name"] != record.bridge_name:
            lost.append("endpoint %s on %s: its network is not recovered" % (sandbox, network))
            continue
        inside = facts.get("sandboxes", {}).get(sandbox)
        inner = next(
            (
                other
                for other in (inside or {}).get("links", ())
                if other["index"] == link.get("peer_index") and other.get("kind") == "veth"
            ),
            None,
        )
        if inner is None:
            lost.append("endpoint %s on %s: its sandbox or its end of the veth is gone" % (sandbox, network))
            continue
        data["endpoints"][key] = _endpoint(network, sandbox, link, inner, record)
    ports = _ports(facts.get("maps", {}), data, lost)
    if ports:
        data["ports"] = ports
    _check_firewall(data, facts, lost)
    report = {"networks": len(data["networks"]), "endpoints": len(data["endpoints"]), "ports": len(ports), "lost": lost}
    return data, report


def _check_firewall(data: dict, facts: dict, lost: list) -> None:
    """Name the networks whose rules the rebuilt store would render otherwise than the kernel holds them."""
    networks = firewall.bridged(data["networks"])
    rendered = {rule.comment for rule in firewall.render(networks, data.get("ports", {}))}
    held = set(facts.get("rules", {}))
    for name in sorted(networks):
        prefix = firewall.COMMENT_PREFIX + "network %s " % name
        differ = sorted(comment for comment in rendered ^ held if comment.startswith(prefix))
        if differ:
            lost.append(
                "network %s: the firewall rules it renders differ from the kernel's (%s); the next run "
                "makes them match the rebuilt store" % (name, ", ".join(differ))
            )


def summary(report: dict) -> str:
    lost = list(report["lost"]) + list(NOT_RECOVERABLE)
    return (
        "the store was missing: rebuilt from the kernel: %d networks, %d endpoints, %d ports; not recoverable: %s"
        % (report["networks"], report["endpoints"], report["ports"], "; ".join(lost))
    )


def _link_facts(session, link, routes: bool = False) -> dict:
    facts = {
        "name": link.name,
        "index": link.index,
        "kind": link.kind,
        "mtu": link.mtu,
        "mac": link.mac,
        "alias": link.alias,
        "master": link.master,
        "peer_index": link.peer_index,
        "vxlan": link.vxlan,
        "addresses": [str(address) for address in session.addresses(link.index)],
    }
    if routes:
        facts["routes"] = [
            {"dst": str(route.dst), "gateway": str(route.gateway) if route.gateway else None}
            for route in session.routes(link.index)
        ]
    return facts


def read_facts(host) -> dict:
    """The facts ``rebuild`` needs, each read once: the host's links and addresses, each endpoint sandbox's links,
    addresses and routes, the VXLAN devices' FDB and neighbour tables, and table inet cnm."""
    session = host.kernel.host
    links = [_link_facts(session, link) for link in session.links().values()]
    facts = {"links": links, "sandboxes": {}, "rules": {}, "maps": {}, "fdb": {}, "neighbours": {}}
    for link in links:
        alias = link["alias"] or ""
        if link["kind"] == "veth" and alias.startswith(ENDPOINT_ALIAS_PREFIX) and "|" in alias:
            key = alias.split("|", 1)[1]
            if key in facts["sandboxes"]:
                continue
            facts["sandboxes"][key] = None
            try:
                ref = SandboxRef.from_key(key)
                if host.kernel.sandbox_exists(ref):
                    inside = host.kernel.sandbox(ref)
                    facts["sandboxes"][key] = {
                        "links": [_link_facts(inside, inner, routes=True) for inner in inside.links().values()]
                    }
            except (CnmError, OSError, ValueError):
                pass  # gone meanwhile: its endpoints are not recovered
        elif link["kind"] == "vxlan" and alias.startswith(OVERLAY_ALIAS_PREFIX):
            # only an EVPN overlay's VXLAN port suppresses ARP (overlay.py): the control plane the store lost
            link["neigh_suppress"] = bool(link["master"]) and session.port_options(link["index"])["neigh_suppress"]
            facts["fdb"][link["name"]] = [list(pair) for pair in session.fdb(link["index"])]
            facts["neighbours"][link["name"]] = [list(pair) for pair in session.neighbours(link["index"])]
    nft = firewall.Nft(host.run_command)
    if nft.path is not None:
        ruleset = nft.ruleset()
        facts["rules"] = {
            rule.get("comment", ""): rule.get("expr") for rules in ruleset.rules.values() for rule in rules
        }
        facts["maps"] = {name: listed.get("elem", []) for name, listed in ruleset.maps.items()}
    return facts


def holds_cnm_objects(host) -> bool:
    """Whether the host has a link with a cnm alias (one dump, which the run reuses)."""
    return any((link.alias or "").startswith(ALIAS_PREFIX) for link in host.kernel.host.links().values())


def recover(host) -> Optional[dict]:
    """When the kernel holds cnm objects, make the rebuilt store the state the run starts from (its write is a
    change of the plan) and warn what came back; the report, or None when there was nothing to rebuild."""
    if not holds_cnm_objects(host):
        return None
    data, report = rebuild(read_facts(host))
    if not data["networks"]:
        return None
    host.state = data
    host.warnings.append(summary(report))
    return report
