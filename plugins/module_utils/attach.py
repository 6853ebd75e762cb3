# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How an endpoint's interface joins its network: a veth on the network's bridge (bridge and overlay
drivers), or a macvlan or ipvlan link on the network's parent (macvlan and ipvlan drivers).

The endpoint planner (endpoint.py) does what all drivers share (names, addresses, routes, sysctls,
leases); these classes plan only the link itself. All create the sandbox's interface directly
inside the sandbox (IFLA_NET_NS_FD), so nothing ever appears in the host's namespace (a link on a
parent is renamed there on kernels that check the new name in the host namespace: see
kernel.create_lower).
"""

from __future__ import annotations

import ipaddress
from typing import Optional

from ansible_collections.cnm.network.plugins.module_utils import ipam
from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.kernel import Route
from ansible_collections.cnm.network.plugins.module_utils.model import check_port_count, host_veth_name
from ansible_collections.cnm.network.plugins.module_utils.plan import Op
from ansible_collections.cnm.network.plugins.module_utils.records import EndpointRecord, endpoint_key
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST


class VethLink:
    """A veth pair: the host end a port of the bridge (hairpin on, isolated when icc is off), the other end in the
    sandbox."""

    def __init__(self, planner, spec, network, alias: str) -> None:
        self.planner, self.kernel, self.spec, self.network, self.alias = planner, planner.kernel, spec, network, alias
        self.host_ifname = host_veth_name(network.name, spec.sandbox.key)
        self.host_link = self.kernel.host.link(self.host_ifname)

    def check_network(self) -> None:
        network = self.network
        bridge = self.kernel.host.link(network.bridge_name)
        if bridge is None and not self.planner.network_planned(network.name):
            raise option_error(
                self.spec.opt("network"),
                network.name,
                "has no bridge %s on this host: run cnm_bridge for it first" % network.bridge_name,
            )
        if bridge is not None and (bridge.kind != "bridge" or bridge.alias != network.alias):
            raise option_error(
                self.spec.opt("network"),
                network.name,
                "uses bridge %s, but device %s on this host is "
                "a %s %s, not this network's "
                "bridge: rename or remove the foreign device, or give the network another bridge_name"
                % (
                    network.bridge_name,
                    bridge.name,
                    bridge.kind or "device",
                    "with alias %r" % bridge.alias if bridge.alias else "without a cnm alias",
                ),
            )

    def inner_name(self, view) -> Optional[str]:
        """The name of our veth's inner end, found through the kernel when the store lost it."""
        if view is None or self.host_link is None:
            return None
        for link in view.links().values():
            if (
                link.kind == "veth"
                and link.index == self.host_link.peer_index
                and link.peer_index == self.host_link.index
            ):
                return link.name
        return None

    @staticmethod
    def default_mac(ipv4) -> str:
        return ipam.mac_from_ipv4(ipv4)

    def is_ours(self, inner) -> bool:
        host_link = self.host_link
        return bool(
            host_link
            and inner
            and inner.kind == "veth"
            and inner.peer_index == host_link.index
            and host_link.peer_index == inner.index
        )

    def desired(self) -> dict:
        return {
            "host_interface": self.host_ifname,
            "bridge": self.network.bridge_name,
            "port_flags": {"isolated": not self.network.icc, "hairpin": True},
        }

    def current(self, inner) -> dict:
        master = self.kernel.host.by_index(self.host_link.master) if self.host_link.master else None
        flags = self.kernel.host.port_flags(self.host_link.index)
        return {
            "host_interface": self.host_link.name,
            "bridge": master.name if master is not None else None,
            "port_flags": {"isolated": flags[0], "hairpin": flags[1]},
        }

    def plan_create(self, add, ifname: str, mac: str) -> None:
        network, ref, host_ifname = self.network, self.spec.sandbox, self.host_ifname
        if self.host_link is not None:  # a stale host end (its peer is gone or elsewhere): replace it
            add("delete stale veth %s" % host_ifname, Op(HOST, "delete_link", (host_ifname,)))
        bridge = self.kernel.host.link(network.bridge_name)
        if self.host_link is None or bridge is None or self.host_link.master != bridge.index:
            self._claim_port()  # a stale host end already on the bridge is replaced, not added
        peer = {"ifname": ifname, "mac": mac}
        add(
            "create veth %s (host) / %s (in %s)" % (host_ifname, ifname, ref.value),
            Op(HOST, "create_veth_into", (host_ifname, network.mtu, self.alias, network.bridge_name, peer, ref.key)),
            Op(HOST, "delete_link", (host_ifname,)),
        )
        add("set %s up in %s" % (ifname, ref.value), Op.call(ref.key, "set_link", ifname, up=True))
        add(
            "set bridge port %s hairpin%s" % (host_ifname, ", isolated (icc off)" if not network.icc else ""),
            Op(HOST, "set_port_flags", (host_ifname, not network.icc, True)),
        )

    def _claim_port(self) -> None:
        """One more port on the network's bridge: refused before any change when the bridge is full."""
        counts = self.planner.bridge_ports
        name = self.network.bridge_name
        if name not in counts:
            bridge = self.kernel.host.link(name)
            counts[name] = (
                0
                if bridge is None
                else sum(1 for link in self.kernel.host.links().values() if link.master == bridge.index)
            )
        check_port_count(self.spec.opt("network"), self.network.name, name, counts[name], 1)
        counts[name] += 1

    def plan_repair(self, add, inner, mac: str) -> None:
        network, host, host_link, host_ifname = self.network, self.kernel.host, self.host_link, self.host_ifname
        bridge = host.link(network.bridge_name)
        if bridge is None or host_link.master != bridge.index:
            self._claim_port()
            add(
                "attach %s to bridge %s" % (host_ifname, network.bridge_name),
                Op.call(HOST, "set_link", host_ifname, master=network.bridge_name),
            )
        if host_link.mtu != network.mtu or not host_link.up or host_link.alias != self.alias:
            add(
                "set %s mtu %d up" % (host_ifname, network.mtu),
                Op.call(HOST, "set_link", host_ifname, mtu=network.mtu, up=True, alias=self.alias),
                Op.call(HOST, "set_link", host_ifname, mtu=host_link.mtu),
            )
        flags = host.port_flags(host_link.index)
        if flags != (not network.icc, True):  # icc off <=> the port is isolated; hairpin for published ports
            add(
                "set bridge port %s hairpin%s"
                % (host_ifname, ", isolated (icc off)" if not network.icc else ", not isolated"),
                Op(HOST, "set_port_flags", (host_ifname, not network.icc, True)),
                Op(HOST, "set_port_flags", (host_ifname,) + tuple(flags)),
            )

    def plan_host_side(self, add, ipv4) -> None:
        """Nothing: the bridge's subnet route reaches every endpoint."""

    def host_entries(self, ipv4, mac: str, record: Optional[EndpointRecord], ours: bool) -> list:
        """On an EVPN overlay, what zebra advertises for the endpoint at once (type-2 MAC/IP), before it sends
        anything: a static FDB entry of its MAC on its bridge port and a permanent neighbour IP -> MAC on the bridge.
        Returns (verb, present, wanted) for Plan.sync; elsewhere the entries an earlier EVPN mode left go."""
        host, network = self.kernel.host, self.network
        evpn = getattr(network, "evpn", False)
        if not evpn and network.name not in self.planner.evpn_left:
            return []  # never EVPN: nothing to read or write (no dump for a plain bridge network)
        macs = {mac} | ({record.mac_address} if record is not None else set())
        port = []
        if ours and self.host_link is not None:  # a re-created veth takes its entries along
            port = [
                (self.host_ifname, entry)
                for entry in host.port_fdb(self.host_link.index)
                if evpn or entry in macs  # on our own port every static entry is ours
            ]
        addresses = {str(ipv4)} if ipv4 is not None else set()
        if record is not None and record.ipv4_address:
            addresses.add(record.ipv4_address)
        bridge = host.link(network.bridge_name)
        neighbours = []
        if bridge is not None:
            neighbours = [
                (network.bridge_name, entry, address)
                for entry, address in host.neighbours(bridge.index)
                if address in addresses
            ]
        wanted_port = [(self.host_ifname, mac)] if evpn else []
        wanted_neighbours = [(network.bridge_name, mac, str(ipv4))] if evpn and ipv4 is not None else []
        return [("add_port_fdb", port, wanted_port), ("add_neighbour", neighbours, wanted_neighbours)]

    @staticmethod
    def record_fields() -> dict:
        return {}

    @staticmethod
    def plan_absent(planner, spec, record: Optional[EndpointRecord], alias: str) -> None:
        """Its host end goes with the run's other doomed veths in one group delete (EndpointPlanner.finish), which
        takes the sandbox's end along."""
        ref = spec.sandbox
        host_ifname = (record.host_ifname if record is not None else None) or host_veth_name(spec.network, ref.key)
        host_link = planner.kernel.host.link(host_ifname)
        if host_link is None or host_link.alias != alias:
            return
        _plan_bridge_neighbour_absent(planner, spec, record)
        planner.host.plan.add(
            "endpoint %s on %s" % (spec.network, ref.key),
            "detach %s (its veth %s goes with the others)" % (ref.value, host_ifname),
            {"host_interface": host_ifname, "interface": record.ifname if record is not None else None},
            None,
            _in_group_delete,
        )
        planner.doomed.append(host_ifname)
        if record is not None:
            planner.doomed_keys.append(endpoint_key(spec.network, ref.key))


def _plan_bridge_neighbour_absent(planner, spec, record: Optional[EndpointRecord]) -> None:
    """An EVPN endpoint's neighbour on the bridge outlives its veth: removed on detach (its FDB entry on the port goes
    with the veth)."""
    network = planner.host.state["networks"].get(spec.network)
    if record is None or not record.ipv4_address or getattr(network, "control_plane", "static") != "evpn":
        return
    host = planner.kernel.host
    bridge = host.link(network.bridge_name)
    if bridge is None:
        return
    entry = (record.mac_address, record.ipv4_address)
    if entry in host.neighbours(bridge.index):
        target = "endpoint %s on %s" % (spec.network, spec.sandbox.key)
        before = {"neighbours": ["%s lladdr %s" % (entry[1], entry[0])]}
        planner.host.plan.op(target, before, None, Op(HOST, "delete_neighbour", (network.bridge_name,) + entry))


class LowerLink:
    """A link on the network's parent (macvlan or ipvlan: ``kind``), born in the sandbox."""

    kind = ""
    host_ifname = None

    def __init__(self, planner, spec, network, alias: str) -> None:
        self.planner, self.kernel, self.spec, self.network, self.alias = planner, planner.kernel, spec, network, alias
        self.parent = self.kernel.host.link(network.parent)

    @property
    def mode(self) -> str:
        """The mode as the kernel reports it on a link (LinkInfo.mode)."""
        return self.network.mode

    def check_network(self) -> None:
        network = self.network
        if self.parent is None and not self.planner.network_planned(network.name):
            raise option_error(
                self.spec.opt("network"),
                network.name,
                "has no parent %s on this host: run cnm_%s for it first" % (network.parent, network.driver),
            )

    def inner_name(self, view) -> Optional[str]:
        if view is None:
            return None
        for link in view.links().values():
            if link.kind == self.kind and link.alias == self.alias:
                return link.name
        return None

    def default_mac(self, ipv4) -> Optional[str]:
        return ipam.mac_from_ipv4(ipv4)

    def is_ours(self, inner) -> bool:
        return bool(inner and inner.kind == self.kind and inner.alias == self.alias)

    def desired(self) -> dict:
        return {"parent": self.network.parent, "mode": self.mode}

    def current(self, inner) -> dict:
        on_parent = self.parent is not None and inner.peer_index == self.parent.index
        return {"parent": self.network.parent if on_parent else "ifindex %s" % inner.peer_index, "mode": inner.mode}

    def own_mac(self, mac: Optional[str]) -> Optional[str]:
        """The MAC to give the link when it is made (None: the kernel's choice)."""
        return mac

    def plan_create(self, add, ifname: str, mac: Optional[str]) -> None:
        network, ref = self.network, self.spec.sandbox
        add(
            "create %s %s (mode %s on %s) in %s" % (self.kind, ifname, self.mode, network.parent, ref.value),
            Op(
                HOST,
                "create_lower_into",
                (self.kind, ifname, network.parent, self.mode, network.mtu, self.own_mac(mac), self.alias, ref.key),
            ),
            Op(ref.key, "delete_link", (ifname,)),
        )

    def plan_repair(self, add, inner, mac: Optional[str]) -> None:
        current = self.current(inner)
        if current != self.desired():
            found = (inner.name, self.spec.sandbox.value, self.kind, current["parent"], current["mode"])
            raise option_error(
                self.spec.opt("network"),
                self.network.name,
                "endpoint interface %s in %s is a %s on %s mode %s, not on %s mode %s: "
                "detach it (state: absent) and attach it again" % (found + (self.network.parent, self.mode)),
            )

    def plan_host_side(self, add, ipv4) -> None:
        """Nothing: the host does not reach the endpoints (see MacvlanLink's shim)."""

    @staticmethod
    def host_entries(ipv4, mac: str, record: Optional[EndpointRecord], ours: bool) -> list:
        """None: a link on a parent is no bridge port."""
        return []

    def record_fields(self) -> dict:
        return {"parent": self.network.parent}

    @classmethod
    def plan_absent(cls, planner, spec, record: EndpointRecord, alias: str) -> None:
        """Delete the link inside its sandbox (if the sandbox still exists)."""
        ref = spec.sandbox
        if not planner.kernel.sandbox_exists(ref):
            return
        for link in list(planner.kernel.sandbox(ref).links().values()):
            if link.kind == cls.kind and link.alias == alias:
                planner.host.plan.add(
                    "endpoint %s on %s" % (spec.network, ref.key),
                    "delete %s %s in %s" % (cls.kind, link.name, ref.value),
                    {"interface": link.name, "parent": record.parent},
                    None,
                    Op(ref.key, "delete_link", (link.name,)),
                    forgets=(("endpoint", endpoint_key(spec.network, ref.key)),),
                )


class MacvlanLink(LowerLink):
    """A macvlan link on the network's parent; the host reaches it only through the shim."""

    kind = "macvlan"

    def check_network(self) -> None:
        super().check_network()
        network, spec = self.network, self.spec
        if network.mode == "passthru":
            others = sorted(
                r.sandbox
                for r in self.planner.host.state["endpoints"].values()
                if r.network == network.name and r.sandbox != spec.sandbox.key
            )
            if others:
                raise option_error(
                    spec.opt("network"),
                    network.name,
                    "is a passthru network: its parent %s serves one endpoint only, and %s has it"
                    % (network.parent, others[0]),
                )
            if spec.mac_address:
                raise option_error(
                    spec.opt("mac_address"),
                    spec.mac_address,
                    "cannot be set in mode passthru: the endpoint takes the MAC of parent %s" % network.parent,
                )

    def default_mac(self, ipv4) -> Optional[str]:
        if self.network.mode == "passthru":
            return self.parent.mac if self.parent is not None else None
        return ipam.mac_from_ipv4(ipv4)

    def own_mac(self, mac: Optional[str]) -> Optional[str]:
        return None if self.network.mode == "passthru" else mac  # passthru: setting a MAC would change the parent's

    def plan_host_side(self, add, ipv4) -> None:
        """With host access, an endpoint outside ip_range (a static address) needs its own route through the shim."""
        route = self._host_route(ipv4)
        if route is None or not self.planner.shim_routes:
            return
        shim, host = self.network.shim_name, self.kernel.host
        link = host.link(shim)
        if link is None or route not in [Route(r.dst, r.gateway, None) for r in host.routes(link.index)]:
            add_route = Op(HOST, "add_route", (shim, route))
            add("add route %s through host-access shim %s" % (route.describe(), shim), add_route, add_route.inverse())

    def record_fields(self) -> dict:
        return {"parent": self.network.parent, "shim_name": self.network.shim_name}

    def _host_route(self, ipv4) -> Optional[Route]:
        network = self.network
        if not network.host_access or ipv4 in network.ip_range:
            return None
        return Route(ipaddress.ip_network("%s/32" % ipv4), None, None)

    @classmethod
    def plan_absent(cls, planner, spec, record: EndpointRecord, alias: str) -> None:
        """Delete its host route through the shim, then the macvlan inside its sandbox (if the sandbox still exists):
        the deletion, which has no undo, comes last, so a failure before it leaves the endpoint whole."""
        shim = record.shim_name
        if shim and record.ipv4_address:
            host = planner.kernel.host
            link = host.link(shim)
            route = Route(ipaddress.ip_network("%s/32" % record.ipv4_address), None, None)
            if link is not None and route in [Route(r.dst, r.gateway, None) for r in host.routes(link.index)]:
                delete_route = Op(HOST, "delete_route", (shim, route))
                planner.host.plan.add(
                    "endpoint %s on %s" % (spec.network, spec.sandbox.key),
                    "remove route %s through host-access shim %s" % (route.describe(), shim),
                    None,
                    None,
                    delete_route,
                    delete_route.inverse(),
                )
        super().plan_absent(planner, spec, record, alias)


class IpvlanLink(LowerLink):
    """An ipvlan link on the network's parent, with the parent's MAC; the host does not reach it."""

    kind = "ipvlan"

    @property
    def mode(self) -> str:
        return self.network.link_mode

    def check_network(self) -> None:
        super().check_network()
        if self.spec.mac_address:
            raise option_error(
                self.spec.opt("mac_address"),
                self.spec.mac_address,
                "cannot be set on an ipvlan network: every endpoint has the MAC of parent %s" % self.network.parent,
            )

    def default_mac(self, ipv4) -> Optional[str]:
        return self.parent.mac if self.parent is not None else None

    def own_mac(self, mac: Optional[str]) -> Optional[str]:
        return None


def _in_group_delete() -> None:
    """The detach itself happens in the group delete that ``EndpointPlanner.finish`` plans."""


# How endpoints join a network, by the network class's ``link`` (model.LINK_KINDS).
LINKS = {"veth": VethLink, "macvlan": MacvlanLink, "ipvlan": IpvlanLink}
