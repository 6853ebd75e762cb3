# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planning endpoints: a sandbox joined to a bridge network, or Docker's host and none modes."""

from __future__ import annotations

import ipaddress
from typing import Optional

from ansible_collections.cnm.network.plugins.module_utils import ipam, netns
from ansible_collections.cnm.network.plugins.module_utils.attach import LINKS
from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.host import Host
from ansible_collections.cnm.network.plugins.module_utils.kernel import Route
from ansible_collections.cnm.network.plugins.module_utils.model import (
    ENDPOINT_ALIAS_PREFIX,
    IPV6_MIN_MTU,
    BridgeNetwork,
    EndpointSpec,
)
from ansible_collections.cnm.network.plugins.module_utils.plan import Op
from ansible_collections.cnm.network.plugins.module_utils.records import EndpointRecord, endpoint_key
from ansible_collections.cnm.network.plugins.module_utils.sandbox import (
    DOCKER_SYSCTLS,
    HOST,
    IPV6_KNOBS,
    SandboxRef,
    choose_gateways,
    gateway_candidates,
    same_value,
    sandbox_sysctls,
)


class EndpointPlanner:
    """Adds the changes of each endpoint to the host's plan, in order, each with its undo."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.kernel = host.kernel
        self.claimed_ifnames: dict = {}  # sandbox key -> interface names taken in this run
        self.touched: dict = {}  # sandbox key -> SandboxRef of every sandbox this run attaches to or detaches from
        self.detached: dict = {}  # sandbox key -> interfaces of endpoints detached in this run
        self.leases: dict = {}  # (network, IP version) -> {address: sandbox key}, kept up to date while planning
        # (network, IP version) -> an address (int) below which the pool has no free address: allocation starts there
        self.floors: dict = {}
        # (network, "mac" or "name") -> {MAC or lowercased DNS name: sandbox key} of its endpoints (see _held)
        self.held: dict = {}
        self.host_sysctls: dict = {}  # path -> whether this kernel has the host sysctl (read once per run)
        self.knobs_read: dict = {}  # sandbox key -> {path: value} of its namespace-wide sysctls, read once per run
        # sandboxes whose net.ipv6.conf.default or .all this run changes through an endpoint's own `sysctls`
        self.ipv6_default_changed: set = set()
        # sandbox key -> (IPv6, sysctl names set by endpoints) of the endpoints the run's list attaches (see expect)
        self.expected: dict = {}
        # sandbox key -> {path: value} of its namespace-wide sysctls once the changes planned so far have run, for a
        # sandbox whose Docker sysctls were planned before its first interface (see _plan_sandbox_first)
        self.early: dict = {}
        self.stored_sandboxes: Optional[set] = None  # sandbox keys with endpoint records before this run
        self.doomed: list = []  # host veths to delete together at the end (see finish)
        self.doomed_keys: list = []  # the endpoints whose records those veths are
        self.doomed_sandboxes: list = []  # named sandboxes to delete after their veths
        self.removed_stubs: set = set()  # keys of named sandboxes whose stub (see netns.is_stub) this run removes
        self.seen: set = set()
        self.bridge_ports: dict = {}  # bridge name -> its ports, counting the ones this run adds (see VethLink)
        # network -> {namespace identity: sandbox key} of its endpoints (one sandbox, one endpoint)
        self.namespaces: dict = {}
        self.evpn_left: set = set()  # overlays switched from EVPN to static: their endpoints' EVPN entries go
        self.readdressed: set = set()  # (sandbox key, ifname) losing its last IPv4 address, and with it its IPv4 routes
        self.shim_routes = (
            True  # macvlan host-access routes of endpoints; False when cnm_macvlan plans the shim's routes itself
        )

    def expect(self, specs: list) -> None:
        """Read the run's whole list before planning it: what each sandbox's attached endpoints will have (IPv6, the
        sysctls they set), so that Docker's sysctls of a sandbox new to cnm are planned before its first interface
        (see _plan_sandbox_first). Without this call (a network re-planning its endpoints) they follow as before."""
        for spec in specs:
            if spec.state != "present" or spec.network not in self.host.state["networks"]:
                continue  # also 'host' and 'none'
            has_ipv6, names = self.expected.get(spec.sandbox.key, (False, frozenset()))
            has_ipv6 = has_ipv6 or self.host.network(spec.network).ipv6_subnet is not None
            self.expected[spec.sandbox.key] = (has_ipv6, names | frozenset(name for name, _value in spec.sysctls))

    def plan(self, spec: EndpointSpec) -> dict:
        key = endpoint_key(spec.network, spec.sandbox.key)
        if key in self.seen:
            raise option_error(
                spec.opt(spec.sandbox.kind), spec.sandbox.value, "is listed twice for network %s" % spec.network
            )
        self.seen.add(key)
        if spec.network == "host":
            return self._host_mode(spec)
        if spec.network == "none":
            return self._none_mode(spec)
        if spec.state == "absent":
            return self._absent(spec)
        if self.host.check_mode and spec.network not in self.host.state["networks"]:
            return self._network_not_yet_created(spec)
        return self._present(spec, self.host.network(spec.network, spec.opt("network")))

    def _network_not_yet_created(self, spec: EndpointSpec) -> dict:
        """Check mode before the network exists: an earlier task of the play would create it."""
        ref = spec.sandbox
        self.host.predict_after_earlier_task(
            "endpoint %s on %s" % (spec.network, ref.key),
            "attach %s to network %s (created by an earlier task)" % (ref.value, spec.network),
            "network %s" % spec.network,
        )
        return {
            "network": spec.network,
            ref.kind: ref.value,
            "sandbox": ref.key,
            "ifname": spec.ifname,
            "ipv4_address": None,
            "ipv6_address": None,
            "mac_address": spec.mac_address,
        }

    # ---- sandboxes ----
    def _sandbox_view(self, spec: EndpointSpec):
        """The sandbox's netlink session, or None when it does not exist yet (it will be created)."""
        ref = spec.sandbox
        if ref.key in self.host.leases.new_sandboxes:
            return None
        if self.kernel.sandbox_exists(ref):
            return self.kernel.sandbox(ref)
        if ref.kind != "netns":
            raise option_error(spec.opt(ref.kind), ref.value, "does not name an existing network namespace")
        if not spec.create_netns:
            raise option_error(spec.opt("netns"), ref.value, "does not exist and create_netns is false")
        note = ""
        if self.kernel.sandbox_is_stub(ref):
            note = " (on the name an interrupted run left without its namespace)"
        plan_create_netns(self.host, ref, note)
        return None

    def _remove_stub(self, ref: SandboxRef) -> None:
        """``absent`` removes the stub an interrupted create or delete left (it names no namespace, so
        nothing else can be detached from it), whatever ``delete_netns`` says."""
        if (
            ref.key not in self.removed_stubs
            and ref.key not in self.host.leases.new_sandboxes
            and self.kernel.sandbox_is_stub(ref)
        ):
            self.removed_stubs.add(ref.key)
            self.host.plan.add(
                "netns %s" % ref.value,
                "remove %s, a namespace name left without its namespace by an interrupted run" % ref.value,
                {"stub": True},
                None,
                Op(HOST, "delete_netns", (ref.value,)),
            )

    def _ensure_lo_up(self, spec: EndpointSpec, view) -> None:
        lo = view.link("lo") if view is not None else None
        if lo is not None and lo.up:
            return
        ref = spec.sandbox
        self.host.plan.add(
            "netns %s" % ref.value,
            "set lo up in %s" % ref.value,
            {"lo": "down"} if lo else None,
            {"lo": "up"},
            Op.call(ref.key, "set_link", "lo", up=True),
        )

    # ---- host and none modes ----
    def _host_mode(self, spec: EndpointSpec) -> dict:
        ref = spec.sandbox
        result = {"network": "host", "netns": ref.value, "sandbox": ref.key}
        bound = self.kernel.is_host_namespace(ref)
        if spec.state == "absent":
            self._remove_stub(ref)
            if bound:
                self.host.plan.add(
                    "netns %s" % ref.value,
                    "unbind %s from the host namespace" % ref.value,
                    {"host_namespace": True},
                    None,
                    Op(HOST, "delete_netns", (ref.value,)),
                    Op(HOST, "bind_netns", (ref.value,)),
                )
            return result
        if self.kernel.sandbox_exists(ref) and not bound:
            raise option_error(spec.opt("netns"), ref.value, "already names another network namespace, not the host's")
        if not bound:
            self.host.plan.add(
                "netns %s" % ref.value,
                "bind %s to the host namespace" % ref.value,
                None,
                {"host_namespace": True},
                Op(HOST, "bind_netns", (ref.value,)),
                Op(HOST, "delete_netns", (ref.value,)),
            )
        return result

    def _none_mode(self, spec: EndpointSpec) -> dict:
        ref = spec.sandbox
        result = {"network": "none", ref.kind: ref.value, "sandbox": ref.key}
        if spec.state == "absent":
            self._maybe_delete_sandbox(spec)
            return result
        view = self._sandbox_view(spec)
        if view is not None:
            others = sorted(name for name in view.links() if name != "lo")
            if others:
                raise option_error(
                    spec.opt(ref.kind),
                    ref.value,
                    "has interfaces %s: network 'none' means only lo; detach them first" % ", ".join(others),
                )
        self._ensure_lo_up(spec, view)
        self.touched.setdefault(ref.key, ref)
        return result

    def _maybe_delete_sandbox(self, spec: EndpointSpec) -> None:
        ref = spec.sandbox
        self._remove_stub(ref)
        if (
            spec.delete_netns
            and ref.kind == "netns"
            and self.kernel.sandbox_exists(ref)
            and not self.kernel.is_host_namespace(ref)
        ):
            if ref not in self.doomed_sandboxes:
                self.doomed_sandboxes.append(ref)

    # ---- bridge networks ----
    def _present(self, spec: EndpointSpec, network) -> dict:
        ref = spec.sandbox
        key = endpoint_key(network.name, ref.key)
        self.host.reclaim_vanished(network.name)
        record = self.host.state["endpoints"].get(key)
        link = LINKS[network.link](self, spec, network, ENDPOINT_ALIAS_PREFIX + key)
        link.check_network()
        view = self._sandbox_view(spec)

        ifname = self._choose_ifname(spec, record, view, link.inner_name(view))
        if spec.ipv4_address and network.subnet is None:
            raise option_error(
                spec.opt("ipv4_address"),
                spec.ipv4_address,
                "needs a network with subnet (%s is IPv6-only)" % network.name,
            )
        ipv4 = self._choose_address(spec, network, record, 4) if network.subnet is not None else None
        ipv6 = self._choose_address(spec, network, record, 6) if network.ipv6_subnet else None
        if spec.ipv6_address and not network.ipv6_subnet:
            raise option_error(
                spec.opt("ipv6_address"),
                spec.ipv6_address,
                "needs a network with ipv6_subnet (%s has none)" % network.name,
            )
        # Without IPv4 (an IPv6-only network) a MAC stable on every rerun, from the endpoint's name.
        mac = spec.mac_address or (
            link.default_mac(ipv4) if ipv4 is not None else ipam.mac_from_name("endpoint:" + key)
        )
        self._check_unique_mac(spec, network, mac)
        self._check_unique_name(spec, network)
        self._check_one_reference(spec, network)

        self._check_sysctls_exist(spec, view)
        sysctls = spec.sysctls + self._interface_ipv6(spec, network)
        inner = view.link(ifname) if view is not None else None
        ours = link.is_ours(inner)
        if inner is not None and not ours:
            raise option_error(
                spec.opt("ifname"), ifname, "already exists in %s and is not this endpoint's interface" % ref.value
            )
        routes = self._routes(spec, network)

        addresses = [ipaddress.ip_interface("%s/%d" % (ipv4, network.subnet.prefixlen))] if ipv4 is not None else []
        if ipv6 is not None:
            addresses.append(ipaddress.ip_interface("%s/%d" % (ipv6, network.ipv6_subnet.prefixlen)))
        desired = dict(
            link.desired(),
            interface=ifname,
            mac=mac,
            mtu=network.mtu,
            addresses=[str(a) for a in addresses],
            routes=[r.describe() for r in routes],
            sysctls=dict(sysctls),
        )
        current = None
        if ours:
            current = dict(
                link.current(inner),
                interface=inner.name,
                mac=inner.mac,
                mtu=inner.mtu,
                addresses=[str(a) for a in view.addresses(inner.index)],
                routes=[r.describe() for r in _own_routes(view.routes(inner.index), spec)],
                sysctls=_read(view, [name for name, _value in sysctls], inner.name),
            )
        entries = link.host_entries(ipv4, mac, record, ours)
        for verb, present, wanted in entries:
            if present or wanted:  # shown only where there are some (EVPN overlays)
                key_name = HOST_ENTRY_KEYS[verb]
                desired[key_name] = [_entry_words(verb, args) for args in wanted]
                if current is not None:
                    current[key_name] = [_entry_words(verb, args) for args in present]
        target = "endpoint %s on %s" % (network.name, ref.key)
        add = self._adder(target, current, desired)

        if not ours:
            self._plan_sandbox_first(ref, view)
            link.plan_create(add, ifname, mac)
            current_addresses, current_routes = [], []
            # Sysctls of the new interface vanish with it on undo; namespace-wide ones need their old value back.
            current_sysctls = {}
            if view is not None:
                current_sysctls = _read(view, [name for name, _value in sysctls if "IFNAME" not in name], ifname)
            current_sysctls.update(self._inherited(ref, view, sysctls))
        else:
            link.plan_repair(add, inner, mac)
            self._repair_inner(add, spec, network, inner, mac)
            current_addresses = view.addresses(inner.index)
            current_routes = _own_routes(view.routes(inner.index), spec)
            current_sysctls = current["sysctls"]
        link.plan_host_side(add, ipv4)
        for verb, present, wanted in entries:
            self.host.plan.sync(target, current, desired, HOST, verb, present, wanted)

        # Sysctls before addresses: an interface born with IPv6 off (the sandbox's default) takes no IPv6 address.
        for name, value in sysctls:
            path = _sysctl_path(name, ifname)
            old = current_sysctls.get(name)
            if path.startswith(("net/ipv6/conf/default/", "net/ipv6/conf/all/")):
                self.ipv6_default_changed.add(ref.key)
            if not same_value(old, value):
                add(
                    "option '%s': set %s=%s in %s" % (spec.opt("sysctls"), path.replace("/", "."), value, ref.value),
                    _write(ref, path, value),
                    _write(ref, path, old),
                )

        present = [(ifname, address) for address in current_addresses]
        wanted = [(ifname, address) for address in addresses]
        self.host.plan.sync(target, current, desired, ref.key, "add_address", present, wanted)
        wanted_routes = [Route(r.dst, r.gateway, None) for r in routes]
        present_routes = [Route(r.dst, r.gateway, None) for r in current_routes]
        old_ipv4 = [address for address in current_addresses if address.version == 4]
        if old_ipv4 and not any(address in addresses for address in old_ipv4):
            # A device that loses its last IPv4 address loses every IPv4 route with it (the kernel's fib_disable_ip):
            # its routes and the sandbox's default route through it are added again after the new address.
            present_routes = [route for route in present_routes if route.dst.version != 4]
            self.readdressed.add((ref.key, ifname))
        present, wanted = [(ifname, r) for r in present_routes], [(ifname, r) for r in wanted_routes]
        self.host.plan.sync(target, current, desired, ref.key, "add_route", present, wanted)
        self._ensure_lo_up(spec, view)
        self.touched.setdefault(ref.key, ref)

        new_record = EndpointRecord(
            network=network.name,
            sandbox=ref.key,
            ifname=ifname,
            host_ifname=link.host_ifname,
            ipv4_address=str(ipv4) if ipv4 else None,
            ipv6_address=str(ipv6) if ipv6 else None,
            mac_address=mac,
            static_ipv4=spec.ipv4_address is not None,
            static_ipv6=spec.ipv6_address is not None,
            static_mac=spec.mac_address is not None,
            default_route=spec.default_route,
            routes=tuple(r.to_record() for r in spec.routes),
            sysctls=dict(spec.sysctls),
            gw_priority=spec.gw_priority,
            link=network.link,
            name=spec.name,
            aliases=spec.aliases,
            **link.record_fields(),  # what its detach needs once the network is gone
        )
        self._release(record)
        self.host.state["endpoints"][key] = new_record
        if ipv4 is not None:
            self._lease_index(network.name, 4)[ipv4] = ref.key
        if ipv6 is not None:
            self._lease_index(network.name, 6)[ipv6] = ref.key
        for kind in HELD_KINDS:
            for value in _held_values(new_record, kind):
                self._held(network.name, kind).setdefault(value, set()).add(ref.key)
        return _result(new_record, ref)

    def _check_unique_mac(self, spec: EndpointSpec, network, mac) -> None:
        """Two endpoints of one network with one MAC would steal each other's frames: refuse it up front."""
        if mac is None or not network.unique_macs:
            return
        holder = self._other_holder(network.name, "mac", mac, spec)
        if holder is not None:
            raise option_error(
                spec.opt("mac_address"), mac, "is already the MAC of endpoint %s on network %s" % (holder, network.name)
            )

    def _held(self, network: str, kind: str) -> dict:
        """{MAC, lowercased name or alias (``kind``): the sandbox keys holding it} of a network's endpoints: built from
        the store once per run, then kept up to date while planning (a replaced or removed record releases its
        values)."""
        index = self.held.get((network, kind))
        if index is None:
            index = self.held[(network, kind)] = {}
            for record in self.host.state["endpoints"].values():
                if record.network == network:
                    for value in _held_values(record, kind):
                        index.setdefault(value, set()).add(record.sandbox)
        return index

    def _other_holder(self, network: str, kind: str, value: str, spec: EndpointSpec) -> Optional[str]:
        """Another endpoint of the network holding ``value`` as its ``kind`` (the first by key), or None."""
        others = sorted(self._held(network, kind).get(value, set()) - {spec.sandbox.key})
        return others[0] if others else None

    def _check_unique_name(self, spec: EndpointSpec, network) -> None:
        """A name answers for one endpoint of a network: no other endpoint's name or alias; an alias may stand for
        several endpoints, as in Docker, but never for another endpoint's name."""
        if spec.name is not None:
            for kind, what in (("name", "DNS name"), ("alias", "alias")):
                holder = self._other_holder(network.name, kind, spec.name.lower(), spec)
                if holder is not None:
                    raise option_error(
                        spec.opt("name"),
                        spec.name,
                        "is already the %s of endpoint %s on network %s (a name defaults to the namespace's or "
                        "container's own): give this endpoint another 'name'" % (what, holder, network.name),
                    )
        for alias in spec.aliases:
            holder = self._other_holder(network.name, "name", alias.lower(), spec)
            if holder is not None:
                raise option_error(
                    spec.opt("aliases"),
                    alias,
                    "is already the DNS name of endpoint %s on network %s: an alias may be shared, a name may not"
                    % (holder, network.name),
                )

    def _check_one_reference(self, spec: EndpointSpec, network) -> None:
        """One namespace named two ways (``netns`` and ``netns_path``, a ``pid`` in it...) gets one endpoint per
        network:
        namespaces are compared by their nsfs identity (device and inode), which no two live namespaces share."""
        ref = spec.sandbox
        if ref.key in self.host.leases.new_sandboxes or not self.kernel.sandbox_exists(ref):
            return
        known = self.namespaces.get(network.name)
        if known is None:
            known = {}
            for record in self.host.state["endpoints"].values():
                if record.network == network.name:
                    other = SandboxRef.from_key(record.sandbox)
                    identity = self.kernel.namespace_identity(other)
                    if identity is not None:
                        known.setdefault(identity, record.sandbox)
            self.namespaces[network.name] = known
        identity = self.kernel.namespace_identity(ref)
        holder = known.setdefault(identity, ref.key) if identity is not None else ref.key
        if holder != ref.key:
            raise option_error(
                spec.opt(ref.kind),
                ref.value,
                "is the network namespace of endpoint %s, already on "
                "network %s: one sandbox "
                "gets one endpoint per network (give it one name)" % (holder, network.name),
            )

    def _lease_index(self, network: str, version: int) -> dict:
        index = self.leases.get((network, version))
        if index is None:
            field = "ipv%d_address" % version
            index = {
                ipaddress.ip_address(getattr(r, field)): r.sandbox
                for r in self.host.state["endpoints"].values()
                if r.network == network and getattr(r, field)
            }
            self.leases[(network, version)] = index
        return index

    def _release(self, record: Optional[EndpointRecord]) -> None:
        """Forget a record's addresses in the lease index (it is replaced or removed)."""
        if record is None:
            return
        for version in (4, 6):
            address = getattr(record, "ipv%d_address" % version)
            index = self.leases.get((record.network, version))
            if address and index is not None and index.get(ipaddress.ip_address(address)) == record.sandbox:
                del index[ipaddress.ip_address(address)]
                floor = self.floors.get((record.network, version))
                if floor is not None and int(ipaddress.ip_address(address)) < floor:
                    self.floors[(record.network, version)] = int(ipaddress.ip_address(address))
        for kind in HELD_KINDS:
            index = self.held.get((record.network, kind))
            for value in _held_values(record, kind) if index is not None else ():
                index.get(value, set()).discard(record.sandbox)

    def finish(self) -> None:
        """Delete the veths of detached endpoints in one request, then settle each touched sandbox's default
        routes and sysctls (call once, after planning them all)."""
        if self.doomed:
            names = list(self.doomed)
            group = _free_link_group(self.kernel.host)
            self.host.plan.add(
                "veths",
                "delete %d veth(s) in one request (link group %d)" % (len(names), group),
                {"veths": names},
                None,
                Op(HOST, "delete_links", (tuple(names), group)),
                forgets=tuple(("endpoint", key) for key in self.doomed_keys),
            )
        records_of: dict = {}  # sandbox key -> its endpoint records: one pass over the store, not one per sandbox
        for record in self.host.state["endpoints"].values():
            if record.sandbox in self.touched:
                records_of.setdefault(record.sandbox, []).append(record)
        doomed = set(self.doomed_sandboxes)
        for key, ref in self.touched.items():
            if ref not in doomed:
                self._plan_sandbox(ref, self.detached.get(key, set()), records_of.get(key, []))
        self.touched, self.detached = {}, {}
        for ref in self.doomed_sandboxes:
            self.host.plan.add(
                "netns %s" % ref.value,
                "delete network namespace %s" % ref.value,
                {"exists": True},
                None,
                Op(HOST, "delete_netns", (ref.value,)),
                forgets=(("sandbox", ref.key),),
            )
        self.doomed, self.doomed_keys, self.doomed_sandboxes = [], [], []

    def _interface_ipv6(self, spec: EndpointSpec, network: BridgeNetwork) -> tuple:
        """IPv6 on the endpoint's interface exactly when its network has IPv6, as Docker does (osl setIPv6).

        Off: no link-local chatter (router solicitations, MLD, DAD), which an overlay would otherwise carry
        to every peer. On explicitly: a sandbox without IPv6 networks has it off by default (see sandbox.py).
        """
        name = "net.ipv6.conf.IFNAME.disable_ipv6"
        if any(key == name for key, _value in spec.sysctls):
            return ()
        if not self._host_has("net/ipv6/conf/default/disable_ipv6"):
            return ()  # a kernel without IPv6
        if network.ipv6_subnet is None and (network.mtu or IPV6_MIN_MTU) < IPV6_MIN_MTU:
            return ()  # the kernel keeps no IPv6 (nor its sysctls) on an interface below 1280 bytes
        return ((name, "0" if network.ipv6_subnet is not None else "1"),)

    # ---- the sandbox as a whole: default routes and sysctls ----
    def _plan_sandbox(self, ref: SandboxRef, gone: set, records: list) -> None:
        """The sandbox's default routes (the best endpoint of each IP version, as Docker chooses) and its sysctls."""
        if ref.key in self.host.leases.new_sandboxes:
            view = None
        elif self.kernel.sandbox_exists(ref):
            view = self.kernel.sandbox(ref)
        else:
            return  # a vanished sandbox (a removed container): nothing to settle
        records = sorted(records, key=lambda r: r.ifname)
        target = "sandbox %s" % ref.key
        before: dict = {}
        after: dict = {}
        changes: list = []
        self._plan_defaults(ref, view, records, gone, before, after, changes)
        if view is None or not self.kernel.is_host_namespace(ref):  # never the host's own namespace
            has_ipv6 = any(record.ipv6_address for record in records)
            overridden = set(name for record in records for name in record.sysctls)
            self._plan_sandbox_sysctls(ref, view, has_ipv6, overridden, records, before, after, changes)
        for what, apply, undo in changes:
            self.host.plan.add(target, what, before, after, apply, undo)

    def _plan_sandbox_first(self, ref: SandboxRef, view) -> None:
        """Docker's sysctls of a sandbox new to cnm, planned before its first interface: the interface is then born
        with the sandbox's IPv6 setting (net.ipv6.conf.default) and needs no write of its own (see _inherited), and
        writing ``all`` already sets ``default`` and ``lo``. Only when the run's list said what the sandbox's
        endpoints will have (expect): finish then finds them settled."""
        if ref.key in self.early or ref.key not in self.expected:
            return
        if self.stored_sandboxes is None:
            self.stored_sandboxes = set(record.sandbox for record in self.host.original["endpoints"].values())
        if ref.key in self.stored_sandboxes or (view is not None and self.kernel.is_host_namespace(ref)):
            return
        has_ipv6, overridden = self.expected[ref.key]
        before: dict = {}
        after: dict = {}
        changes: list = []
        self.early[ref.key] = self._plan_sandbox_sysctls(ref, view, has_ipv6, overridden, [], before, after, changes)
        for what, apply, undo in changes:
            self.host.plan.add("sandbox %s" % ref.key, what, before, after, apply, undo)

    def _plan_defaults(self, ref, view, records: list, gone: set, before: dict, after: dict, changes: list) -> None:
        candidates, explicit = gateway_candidates(records, self.host.state["networks"])
        ours = set(record.ifname for record in records)
        held: dict = {4: [], 6: []}  # version -> [(ifname, Route)] default routes through this sandbox's endpoints
        leaving: dict = {4: [], 6: []}  # the same through endpoints detached in this run (they go with their interface)
        foreign = set(explicit)  # versions whose default route someone else holds (another interface, a `routes` item)
        if view is not None:
            names = {link.index: name for name, link in view.links().items()}
            for route in view.routes():
                name = names.get(route.oif)
                if route.dst.prefixlen != 0:
                    continue
                if name in gone:
                    leaving[route.dst.version].append((name, Route(route.dst, route.gateway, None)))
                elif route.dst.version == 4 and (ref.key, name) in self.readdressed:
                    continue  # flushed with the old address before this change runs (see _present)
                elif name in ours:
                    held[route.dst.version].append((name, Route(route.dst, route.gateway, None)))
                else:
                    foreign.add(route.dst.version)
        chosen = choose_gateways(candidates)
        for version, label in ((4, "ipv4"), (6, "ipv6")):
            wanted = None
            best = chosen[version]
            if best is not None and version not in foreign:
                dst = ipaddress.ip_network("0.0.0.0/0" if version == 4 else "::/0")
                gateway = best.gateways[version]
                wanted = (best.name, Route(dst, ipaddress.ip_address(gateway) if gateway else None, None))
            found = leaving[version] + held[version]
            before["default_%s" % label] = [_describe_default(name, route) for name, route in found] or None
            after["default_%s" % label] = _describe_default(*wanted) if wanted else None
            why = ""
            if wanted is not None:
                why = " (network %s, gw_priority %d)" % (best.network, best.priority)
            for name, route in held[version]:
                if (name, route) != wanted and (name, route) not in explicit_routes(records, name):
                    changes.append(
                        (
                            "remove %s from %s in %s" % (route.describe(), name, ref.value),
                            Op(ref.key, "delete_route", (name, route)),
                            Op(ref.key, "add_route", (name, route)),
                        )
                    )
            if wanted is not None and wanted not in held[version]:
                name, route = wanted
                changes.append(
                    (
                        "add %s through %s in %s%s" % (route.describe(), name, ref.value, why),
                        Op(ref.key, "add_route", (name, route)),
                        Op(ref.key, "delete_route", (name, route)),
                    )
                )

    def _plan_sandbox_sysctls(
        self, ref, view, has_ipv6: bool, overridden: set, records: list, before: dict, after: dict, changes: list
    ) -> dict:
        """Docker's sandbox sysctls (sandbox.py), each unless an endpoint of the sandbox sets it in ``sysctls``;
        returns the values the sandbox has once the changes planned so far have run.

        Nothing is restored when the last endpoint goes: the values belong to the sandbox, which Docker
        never resets either (a container's namespace dies with it)."""
        wanted = sandbox_sysctls(has_ipv6, overridden, self._host_has("net/ipv6/conf/default/disable_ipv6"))
        before_values, after_values = {}, {}
        current = self._sandbox_knobs(ref, view) if view is not None else {}
        now = dict(current, **self.early.get(ref.key, {}))  # after the changes planned before the first interface
        for name, value in wanted:
            path = name.replace(".", "/")
            if not self._host_has(path):
                continue  # not a sysctl of this kernel (Docker checks sysctlExists too)
            old = current.get(path)
            before_values[name] = " ".join(old.split()) if old is not None else None
            after_values[name] = value
            if same_value(now.get(path), value):
                continue
            changes.append(
                (
                    "set %s=%s in %s (Docker's sandbox default)" % (name, value, ref.value),
                    _write(ref, path, value),
                    _write(ref, path, now.get(path)),
                )
            )
            now[path] = value
            if name == "net.ipv6.conf.all.disable_ipv6":  # writing 'all' sets every interface: again the asked-for ones
                for knob in ("net/ipv6/conf/default/disable_ipv6", "net/ipv6/conf/lo/disable_ipv6"):
                    now[knob] = value  # and 'default' (the kernel's addrconf_disable_ipv6): no write of their own
                for record in records:
                    own = record.sysctls.get("net.ipv6.conf.IFNAME.disable_ipv6")
                    if own is not None and not same_value(own, value):
                        own_path = _sysctl_path("net.ipv6.conf.IFNAME.disable_ipv6", record.ifname)
                        what = "option 'sysctls': set %s=%s in %s again" % (own_path.replace("/", "."), own, ref.value)
                        changes.append((what, _write(ref, own_path, own), None))
        before["sysctls"] = before_values
        after["sysctls"] = after_values
        return now

    def _check_sysctls_exist(self, spec: EndpointSpec, view) -> None:
        """Refuse unknown sysctl names up front; an interface's knobs are looked up on the 'default' entry."""
        session = view if view is not None else self.kernel.host  # a new sandbox has the same kernel's knobs
        found = _read(session, [name for name, _value in spec.sysctls], "default")
        for name, _value in spec.sysctls:
            if found[name] is None:
                raise option_error(spec.opt("sysctls"), name, "is not a sysctl of this kernel")

    def _sandbox_knobs(self, ref: SandboxRef, view) -> dict:
        """The sandbox's namespace-wide sysctls that Docker sets (sandbox.py), read once per run."""
        if ref.key not in self.knobs_read:
            names = [name for name, _value in DOCKER_SYSCTLS] + list(IPV6_KNOBS)
            paths = [name.replace(".", "/") for name in names]
            self.knobs_read[ref.key] = view.sysctls(paths)
        return self.knobs_read[ref.key]

    def _inherited(self, ref: SandboxRef, view, sysctls: tuple) -> dict:
        """What a new interface of the sandbox is born with: net.ipv6.conf.default's disable_ipv6, unless this run
        changes that before the interface exists. Its own value then needs no write (one fewer per attach)."""
        name = "net.ipv6.conf.IFNAME.disable_ipv6"
        if ref.key in self.ipv6_default_changed or not any(key == name for key, _value in sysctls):
            return {}
        if ref.key in self.early:
            knobs = self.early[ref.key]  # as the changes planned before the first interface leave them
        else:
            knobs = self._sandbox_knobs(ref, view) if view is not None else {}
        inherited = knobs.get("net/ipv6/conf/default/disable_ipv6")
        return {name: inherited} if inherited is not None else {}

    def _host_has(self, path: str) -> bool:
        """Whether this kernel has the sysctl ``path`` (in the host's namespace): read once per run."""
        if path not in self.host_sysctls:
            self.host_sysctls[path] = self.kernel.host.sysctl(path) is not None
        return self.host_sysctls[path]

    def network_planned(self, name: str) -> bool:
        """An earlier change of this run creates the network (cnm_bridge/cnm_macvlan re-planning its endpoints)."""
        return any(change.target == "network %s" % name for change in self.host.plan.changes)

    def _adder(self, target: str, current: Optional[dict], desired: dict):
        def add(what, apply, undo=None):
            self.host.plan.add(target, what, current, desired, apply, undo)

        return add

    def _repair_inner(self, add, spec: EndpointSpec, network, inner, mac: str) -> None:
        """The sandbox side of an existing endpoint: MAC, MTU, up."""
        ref = spec.sandbox
        ifname = inner.name
        if inner.mac != mac:
            add(
                "set %s mac %s in %s" % (ifname, mac, ref.value),
                Op.call(ref.key, "set_link", ifname, mac=mac),
                Op.call(ref.key, "set_link", ifname, mac=inner.mac),
            )
        if inner.mtu != network.mtu or not inner.up:
            add(
                "set %s mtu %d up in %s" % (ifname, network.mtu, ref.value),
                Op.call(ref.key, "set_link", ifname, mtu=network.mtu, up=True),
                Op.call(ref.key, "set_link", ifname, mtu=inner.mtu),
            )

    def _choose_ifname(self, spec: EndpointSpec, record, view, found: Optional[str]) -> str:
        """The asked-for name, else the recorded one, else the one the kernel shows (``found``), else the lowest free
        ethN."""
        claimed = self.claimed_ifnames.setdefault(spec.sandbox.key, set())
        ifname = spec.ifname or (record.ifname if record is not None else None) or found
        if ifname is None:
            present = set(view.links()) if view is not None else set()
            number = 0
            while "eth%d" % number in present or "eth%d" % number in claimed:
                number += 1
            ifname = "eth%d" % number
        elif ifname in claimed:
            raise option_error(spec.opt("ifname"), ifname, "is used twice in %s in this task" % spec.sandbox.value)
        claimed.add(ifname)
        return ifname

    def _choose_address(self, spec: EndpointSpec, network: BridgeNetwork, record, version: int):
        if version == 4:
            subnet, gateway, pool, wanted, field = (
                network.subnet,
                network.gateway,
                network.ip_range,
                spec.ipv4_address,
                "ipv4_address",
            )
        else:
            subnet, gateway, pool, wanted, field = (
                network.ipv6_subnet,
                network.ipv6_gateway,
                network.ipv6_subnet,
                spec.ipv6_address,
                "ipv6_address",
            )
        own = spec.sandbox.key
        taken_by = self._lease_index(network.name, version)
        if wanted is not None:
            ipam.check_static(wanted, subnet, gateway, taken_by, spec.opt(field), spec.sandbox.key)
            return wanted
        kept = getattr(record, field) if record is not None else None
        if kept and not getattr(record, "static_ipv%d" % version):
            address = ipaddress.ip_address(kept)
            if (
                address in pool
                and address not in ipam.reserved_addresses(subnet, gateway)
                and taken_by.get(address) in (None, own)
            ):
                return address
        # From the floor of this run's allocations, or from the endpoint's own lease when it lies below (it is free to
        # this endpoint): the lowest free address, as a walk from the pool's start would find, without that walk.
        floor = self.floors.get((network.name, version))
        if floor is not None and kept and taken_by.get(ipaddress.ip_address(kept)) == own:
            floor = min(floor, int(ipaddress.ip_address(kept)))
        address = ipam.allocate(
            pool,
            subnet,
            gateway,
            _TakenByOthers(taken_by, own),
            option="ip_range" if version == 4 else "ipv6_subnet",
            start=floor,
        )
        self.floors[(network.name, version)] = int(address) + 1
        return address

    def _routes(self, spec: EndpointSpec, network: BridgeNetwork) -> list:
        """The endpoint's own routes (``routes``); the default route via the gateway is the sandbox's."""
        gateways = {4: network.gateway, 6: network.ipv6_gateway if network.ipv6_subnet is not None else None}
        for number, route in enumerate(spec.routes):
            holds_default = spec.default_route and not network.internal and gateways.get(route.dst.version) is not None
            if route.dst.prefixlen == 0 and holds_default:
                raise option_error(
                    spec.opt("routes[%d].dst" % number),
                    route.dst,
                    "repeats the default route that default_route already adds",
                )
            on_link = network.subnet if route.dst.version == 4 else network.ipv6_subnet
            if route.gateway is not None and (on_link is None or route.gateway not in on_link):
                raise option_error(
                    spec.opt("routes[%d].gateway" % number),
                    route.gateway,
                    "is not on the network %s (%s)" % (network.name, on_link),
                )
        return [Route(r.dst, r.gateway, None) for r in spec.routes]

    def _absent(self, spec: EndpointSpec) -> dict:
        ref = spec.sandbox
        key = endpoint_key(spec.network, ref.key)
        record = self.host.state["endpoints"].get(key)
        result = {"network": spec.network, "sandbox": ref.key, "state": "absent"}
        # Without a record only a veth can be found (by its host end's name and alias) and detached.
        LINKS[record.link if record is not None else "veth"].plan_absent(
            self, spec, record, ENDPOINT_ALIAS_PREFIX + key
        )
        if record is not None:
            self._release(record)
            del self.host.state["endpoints"][key]
            self.host.drop_ports(self.host.ports_of(spec.network, ref.key))  # in the same firewall transaction
            self.host.forget_flows(record)
            if record.ifname:
                self.detached.setdefault(ref.key, set()).add(record.ifname)
            self.touched.setdefault(ref.key, ref)
        self._maybe_delete_sandbox(spec)
        return result


def check_containers(host, specs) -> list:
    """Inspect the task's containers and the stored ones of the same networks at once; attaching needs them running.

    Detaching needs no container: the veth, lease and ports of a removed container are cleaned up from the store.
    In check mode a container that is not running is assumed to be started by an earlier task of the play (as a
    network is): those specs are returned, to be reported with a warning instead of failing.
    """
    present = [spec for spec in specs if spec.state == "present"]
    networks = set(spec.network for spec in present)  # the networks whose stored endpoints this run checks
    stored = [record.sandbox for record in host.state["endpoints"].values() if record.network in networks]
    waiting = netns.check_containers(present, host.check_mode, stored)
    owners: dict = {}
    not_running = set(id(spec) for spec in waiting)
    for spec in present:
        if spec.sandbox.kind != "container" or id(spec) in not_running:
            continue
        same = owners.setdefault(
            (spec.network, netns.CONTAINERS.lookup(spec.sandbox.runtime, spec.sandbox.value).id), spec
        )
        if same is not spec:
            raise option_error(
                spec.opt("container"),
                spec.sandbox.value,
                "names the same container as %s (%s)" % (same.opt("container"), same.sandbox.value),
            )
    return waiting


def container_not_yet_running(host, spec) -> dict:
    """Check mode: the attach of a container an earlier task of the play would start (reported, never executed)."""
    ref = spec.sandbox
    host.predict_after_earlier_task(
        "endpoint %s on %s" % (spec.network, ref.key),
        "attach %s container %s to network %s (once it runs)" % (ref.runtime, ref.value, spec.network),
        "a running %s container %s" % (ref.runtime, ref.value),
    )
    return {
        "network": spec.network,
        "container": ref.value,
        "sandbox": ref.key,
        "ifname": spec.ifname,
        "ipv4_address": None,
        "ipv6_address": None,
        "mac_address": spec.mac_address,
    }


def plan_create_netns(host: Host, ref: SandboxRef, note: str = "") -> None:
    """Create named sandbox ``ref``; the run's later planning knows it as new (no session to read, no stale lease)."""
    host.leases.new_sandboxes.add(ref.key)
    host.plan.add(
        "netns %s" % ref.value,
        "create network namespace %s%s" % (ref.value, note),
        None,
        {"exists": True},
        Op(HOST, "create_netns", (ref.value,)),
        Op(HOST, "delete_netns", (ref.value,)),
    )


def _free_link_group(session) -> int:
    """A link group number no link of the host uses (groups are 32-bit; 0 is the default)."""
    used = {link.group for link in session.links().values()}
    group = 0x636E6D00  # "cnm\0"
    while group in used:
        group += 1
    return group


# The diff's key of each kind of host_entries (attach.VethLink) and how an entry reads there.
HOST_ENTRY_KEYS = {"add_port_fdb": "port_fdb", "add_neighbour": "bridge_neighbours"}


def _entry_words(verb: str, args: tuple) -> str:
    if verb == "add_port_fdb":
        return "%s dev %s" % (args[1], args[0])
    return "%s lladdr %s" % (args[2], args[1])


def _own_routes(routes: list, spec: EndpointSpec) -> list:
    """An interface's routes that the endpoint itself manages: all but default routes, unless ``routes`` names one."""
    return [r for r in routes if r.dst.prefixlen != 0 or any(own.dst == r.dst for own in spec.routes)]


def explicit_routes(records: list, ifname: str) -> list:
    """Default routes an endpoint asked for itself in ``routes`` (never moved by the gateway choice)."""
    result = []
    for record in records:
        if record.ifname == ifname:
            for item in record.routes:
                dst = ipaddress.ip_network(item["dst"])
                if dst.prefixlen == 0:
                    gateway = ipaddress.ip_address(item["gateway"]) if item.get("gateway") else None
                    result.append((ifname, Route(dst, gateway, None)))
    return result


def _describe_default(name: str, route: Route) -> str:
    return "%s dev %s" % (route.describe(), name)


def _sysctl_path(name: str, ifname: str) -> str:
    return name.replace(".", "/").replace("IFNAME", ifname)


def _write(ref: SandboxRef, path: str, value: Optional[str]) -> Optional[Op]:
    """Writing a sysctl of the sandbox, as data; None for a value that did not exist (nothing to put back)."""
    return Op(ref.key, "write_sysctl", (path, value)) if value is not None else None


def _read(session, names: list, ifname: str) -> dict:
    """The values of sysctls named as in ``sysctls`` (IFNAME standing for ``ifname``), in one read."""
    values = session.sysctls([_sysctl_path(name, ifname) for name in names])
    return {name: values[_sysctl_path(name, ifname)] for name in names}


# What endpoints of a network hold that others must not clash with: a MAC (where the driver says so), a name (never
# shared, nor another's alias), aliases (shared among endpoints, never another's name).
HELD_KINDS = ("mac", "name", "alias")


def _held_values(record: EndpointRecord, kind: str) -> list:
    if kind == "mac":
        return [record.mac_address] if record.mac_address else []
    if kind == "name":
        return [record.name.lower()] if record.name else []  # DNS compares names without case
    return [alias.lower() for alias in record.aliases]


def _result(record: EndpointRecord, ref: SandboxRef) -> dict:
    return {
        "network": record.network,
        ref.kind: ref.value,
        "sandbox": ref.key,
        "ifname": record.ifname,
        "host_ifname": record.host_ifname,
        "ipv4_address": record.ipv4_address,
        "ipv6_address": record.ipv6_address,
        "mac_address": record.mac_address,
        "name": record.name,
        "aliases": list(record.aliases),
    }


class _TakenByOthers:
    """The addresses of a lease index held by endpoints other than ``own`` (whose own lease is free to it)."""

    def __init__(self, taken_by: dict, own: str) -> None:
        self.taken_by, self.own = taken_by, own

    def __contains__(self, address) -> bool:
        return self.taken_by.get(address, self.own) != self.own
