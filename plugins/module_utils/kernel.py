# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel room: reads and writes of links, addresses, routes and sysctls over netlink.

One netlink session per namespace per module run: the host's, and one for each sandbox touched,
opened by entering the sandbox with setns (never a library's ``netns=`` option, which forks a helper per
namespace and silently creates a missing one). Reads are dumps taken once, writes single requests, both
through the small rtnetlink client in rtnl.py. The plan's actions look objects up by name when they run,
because earlier actions create them.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ansible_collections.cnm.network.plugins.module_utils import netns
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError, Gone
from ansible_collections.cnm.network.plugins.module_utils.rtnl import BRPORT_FLAGS, Rtnl, neighbour_request
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST, SandboxRef
from ansible_collections.cnm.network.plugins.module_utils.xfrm import Xfrm

RT_TABLE_MAIN = 254
RTPROT_KERNEL = 2
# The session's verbs of permanent neighbour entries: verb -> (add, family), for NetnsSession.neighbour_batch.
NEIGHBOUR_VERBS = {
    "add_fdb": (True, socket.AF_BRIDGE),
    "delete_fdb": (False, socket.AF_BRIDGE),
    "add_neighbour": (True, socket.AF_INET),
    "delete_neighbour": (False, socket.AF_INET),
}


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: Optional[str]
    mtu: int
    mac: Optional[str]
    up: bool
    master: Optional[int]
    peer_index: Optional[int]
    alias: Optional[str]
    group: int = 0
    vxlan: Optional[dict] = None  # vni, local, port, learning, proxy of a VXLAN device
    # a macvlan's mode (bridge, private, vepa, passthru), an ipvlan's mode and flag ("l2 bridge"), or "vlan VID"
    mode: Optional[str] = None
    ipv6_disabled: Optional[bool] = None  # its net.ipv6.conf.NAME.disable_ipv6; None: no IPv6 settings (MTU < 1280)
    operstate: str = "unknown"  # its operational state (up, down, lowerlayerdown...), for cnm_info

    def describe(self) -> dict:
        state = {"kind": self.kind, "mtu": self.mtu, "mac": self.mac, "up": self.up}
        if self.alias:
            state["alias"] = self.alias
        return state


@dataclass(frozen=True)
class Route:
    dst: ipaddress._BaseNetwork
    gateway: Optional[ipaddress._BaseAddress]
    oif: Optional[int]

    def describe(self) -> str:
        dst = "default" if self.dst.prefixlen == 0 else str(self.dst)
        return "%s via %s" % (dst, self.gateway) if self.gateway else dst


class NetnsSession:
    """Netlink sockets bound to one namespace, with cached dumps of what is in it."""

    # The run's sessions by namespace (HOST or a sandbox key), for a verb that reaches into another namespace (a veth
    # whose peer is born in a sandbox): set by Kernel.
    sessions: Optional[Callable[[str], NetnsSession]] = None
    _xfrm: Optional[Xfrm] = None  # this namespace's XFRM socket, opened on first use (see xfrm())

    def __init__(self, label: str, fd: Optional[int] = None) -> None:
        self.label = label
        self.fd = fd  # None for the host, whose namespace this process already runs in
        with self._inside():
            self.rtnl = Rtnl()
        self._links: Optional[Dict[str, Link]] = None
        self._addresses: Optional[Dict[int, list]] = None
        self._routes: Optional[List[Tuple[Route, bool]]] = None  # the main table: (route, whether the kernel's own)
        self._neighbours: Dict[Tuple[int, int, bool], list] = {}  # (family, ifindex, noarp) -> permanent entries
        self._indexes: Dict[str, int] = {}  # name -> ifindex, learnt from the dump and from lookups
        self._by_index: Optional[Dict[int, Link]] = None
        self._port_flags: Optional[Dict[int, Dict[str, bool]]] = None
        self._port_fdb: Optional[Dict[int, List[str]]] = None  # port ifindex -> MACs of its static FDB entries
        self._learned_fdb: Optional[Dict[int, List[str]]] = None  # port ifindex -> MACs the bridge learnt there

    # ---- reads (dumped once per run) ----
    def links(self) -> Dict[str, Link]:
        if self._links is None:
            self._links = {link["name"]: Link(**link) for link in self.rtnl.links()}
            self._indexes.update((name, link.index) for name, link in self._links.items())
        return self._links

    def link(self, name: str) -> Optional[Link]:
        return self.links().get(name)

    def port_flags(self, index: int) -> Tuple[bool, bool]:
        """(isolated, hairpin) of the bridge port ``index`` (all ports dumped once)."""
        options = self.port_options(index)
        return options["isolated"], options["hairpin"]

    def port_options(self, index: int) -> Dict[str, bool]:
        """Every flag of rtnl.BRPORT_FLAGS of the bridge port ``index`` (all ports dumped once; a device that is no
        port yet has the kernel's defaults)."""
        if self._port_flags is None:
            self._port_flags = self.rtnl.port_flags()
        options = self._port_flags.get(index)
        if options is None:  # not a port (yet): the kernel's defaults
            options = {name: default for name, (_kind, default) in BRPORT_FLAGS.items()}
        return dict(options)

    def set_port_flags(
        self,
        name: str,
        isolated: Optional[bool] = None,
        hairpin: Optional[bool] = None,
        neigh_suppress: Optional[bool] = None,
        learning: Optional[bool] = None,
    ) -> None:
        """Set the flags given (not None) of bridge port ``name``."""
        self.rtnl.set_port_flags(
            self.index(name), isolated=isolated, hairpin=hairpin, neigh_suppress=neigh_suppress, learning=learning
        )

    def port_fdb(self, index: int) -> List[str]:
        """The MACs of the static FDB entries of bridge port ``index`` (all ports dumped once per run)."""
        if self._port_fdb is None:
            self._port_fdb = self.rtnl.port_fdb()
        return sorted(self._port_fdb.get(index, []))

    def learned_fdb(self, index: int) -> List[str]:
        """The MACs the bridge learnt on its port ``index`` (dumped once per run)."""
        if self._learned_fdb is None:
            self._learned_fdb = self.rtnl.port_fdb(learned=True)
        return sorted(self._learned_fdb.get(index, []))

    def add_port_fdb(self, name: str, mac: str) -> None:
        self.rtnl.port_fdb_entry(True, self.index(name), mac)

    def delete_port_fdb(self, name: str, mac: str) -> None:
        self.rtnl.port_fdb_entry(False, self.index(name), mac)

    def forget_learned_fdb(self, name: str, mac: str) -> None:
        """Delete what the bridge learnt of ``mac`` on port ``name``; aged out meanwhile is as good."""
        try:
            self.rtnl.port_fdb_entry(False, self.index(name), mac)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise

    def by_index(self, index: int) -> Optional[Link]:
        if self._by_index is None:
            self._by_index = {link.index: link for link in self.links().values()}
        return self._by_index.get(index)

    def addresses(self, index: int) -> list:
        """Addresses of a link, without IPv6 link-local ones (the kernel owns those)."""
        if self._addresses is None:
            self._addresses = {}
            for ifindex, text, prefixlen in self.rtnl.addresses():
                address = ipaddress.ip_interface("%s/%d" % (text, prefixlen))
                if address.version == 6 and address.is_link_local:
                    continue
                self._addresses.setdefault(ifindex, []).append(address)
        return sorted(self._addresses.get(index, []), key=lambda a: (a.version, a))

    def routes(self, oif: Optional[int] = None) -> List[Route]:
        """Routes of the main table (through ``oif`` if given) that someone added, not the kernel's own."""
        return [route for route, own in self._main_table() if not own and (oif is None or route.oif == oif)]

    def main_routes(self) -> List[Route]:
        """Every route of the main table, the kernel's connected routes included (the LAN's): what a new subnet
        must not overlap."""
        return [route for route, _own in self._main_table()]

    def _main_table(self) -> List[Tuple[Route, bool]]:
        if self._routes is None:
            self._routes = []
            if set(self.links()) == {"lo"}:
                return []  # nothing but the kernel's own routes of lo (in the local table) can exist yet
            for raw in self.rtnl.routes():
                if raw["table"] != RT_TABLE_MAIN:
                    continue
                dst = raw["dst"] or ("0.0.0.0" if raw["family"] == socket.AF_INET else "::")
                route = Route(
                    ipaddress.ip_network("%s/%d" % (dst, raw["dst_len"])),
                    ipaddress.ip_address(raw["gateway"]) if raw["gateway"] else None,
                    raw["oif"],
                )
                if route.dst.version == 6 and (route.dst.is_link_local or route.dst.is_multicast):
                    continue
                self._routes.append((route, raw["protocol"] == RTPROT_KERNEL))
        return self._routes

    def fdb(self, index: int, noarp: bool = True) -> List[Tuple[str, str]]:
        """The permanent FDB entries of device ``index``: (MAC, VTEP), dumped once per run; without ``noarp`` not
        the NOARP ones (an EVPN overlay's: zebra's flood entries, see rtnl.Rtnl.neighbours)."""
        return self._permanent(socket.AF_BRIDGE, index, noarp)

    def tunnel_fdb(self, index: int) -> List[Tuple[str, str]]:
        """Every FDB entry of VXLAN device ``index`` towards a VTEP, zebra's too (cnm_info's EVPN report)."""
        return self.rtnl.tunnel_fdb(index)

    def zebras(self, family: int, index: int) -> List[Tuple[str, Optional[str]]]:
        """What FRR's zebra wrote on device ``index`` (rtnl.Rtnl.zebras): a VXLAN device's FDB entries (AF_BRIDGE) or
        a bridge's neighbours (AF_INET). Not cached: read only when an overlay leaves EVPN."""
        return self.rtnl.zebras(family, index)

    def frr_daemons(self) -> List[Tuple[int, str]]:
        """(pid, name) of each FRR zebra or watchfrr running in this namespace: while zebra runs it programs the
        VXLAN devices of every VNI it serves (watchfrr would start a stopped one again)."""
        with self._inside():
            return _frr_daemons(os.stat(netns.THREAD_NETNS))

    def neighbours(self, index: int) -> List[Tuple[str, str]]:
        """The permanent IPv4 neighbours of device ``index``: (MAC, IP), dumped once per run."""
        return self._permanent(socket.AF_INET, index)

    def _permanent(self, family: int, index: int, noarp: bool = True) -> list:
        if (family, index, noarp) not in self._neighbours:
            self._neighbours[(family, index, noarp)] = self.rtnl.neighbours(family, index, noarp)
        return list(self._neighbours[(family, index, noarp)])

    def sysctl(self, path: str) -> Optional[str]:
        """/proc/sys/<path> as this namespace sees it now; None if it does not exist."""
        with self._inside():
            return _read_sysctls([path])[path]

    def sysctls(self, paths: List[str]) -> Dict[str, Optional[str]]:
        """Several sysctls (paths below /proc/sys) of this namespace, for planning: in one visit, and an interface's
        disable_ipv6 from the link dump (as the dump saw it).

        Opening a file of /proc/sys costs more with every namespace of the machine (the kernel's sysctl entries of
        all namespaces share names): 0.03 ms a file beside 50 namespaces, 0.13 ms beside 1000."""
        values: Dict[str, Optional[str]] = {}
        for path in paths:
            parts = path.split("/")
            link = self.link(parts[3]) if len(parts) == 5 and parts[:3] == ["net", "ipv6", "conf"] else None
            if link is not None and parts[4] == "disable_ipv6":
                values[path] = None if link.ipv6_disabled is None else str(int(link.ipv6_disabled))
        missing = [path for path in paths if path not in values]
        if missing:
            with self._inside():
                values.update(_read_sysctls(missing))
        return values

    # ---- writes (called from plan actions) ----
    def index(self, name: str) -> int:
        """The ifindex of ``name``: from the dump or an earlier lookup, else one RTM_GETLINK."""
        index = self._indexes.get(name)
        if index is None:
            link = self.rtnl.link(name)
            if link is None:
                raise Gone("no interface %s in %s" % (name, self.label))
            index = self._indexes[name] = link["index"]
        return index

    def learn_index(self, name: str, index: int) -> None:
        """The ifindex of a link another session created in this namespace."""
        self._indexes[name] = index

    def create_bridge(self, name: str, mtu: int, alias: str, mac: str) -> None:
        # A MAC set at creation stays put; otherwise the bridge takes its ports' MACs as they come and go.
        # The MTU is set after creation, not in RTM_NEWLINK: only a change of MTU marks it as set by the user;
        # an MTU given at creation follows the ports, and falls back to 1500 when the last port leaves.
        self.rtnl.create_bridge(name, mac)
        self.rtnl.set_link(self.index(name), mtu=mtu, alias=alias)

    def create_veth(self, name: str, mtu: int, alias: str, master: str, peer: dict, peer_fd: int) -> Optional[int]:
        """A veth pair whose peer is born inside the sandbox (no move, no rename), on the bridge and up.

        Returns the peer's ifindex when the kernel echoes the new link (6.1 and later), else None."""
        created = self.rtnl.create_veth(name, mtu, self.index(master), peer["ifname"], peer_fd, peer.get("mac"))
        if created is not None:
            self._indexes[name] = created["index"]
        # The kernel ignores an alias in RTM_NEWLINK: it takes a second request.
        self.rtnl.set_link(self.index(name), alias=alias)
        return created["peer_index"] if created is not None else None

    def create_lower(
        self, kind: str, name: str, parent: str, mode: str, mtu: int, mac: Optional[str], alias: str, sandbox=None
    ) -> None:
        """A macvlan or ipvlan (``kind``, see rtnl.create_lower) on ``parent`` (a link of this namespace); with
        ``sandbox`` (its session) born inside it.

        Some kernels (Debian 12's 6.1) look a new link's name up in the namespace that asks, not in the one
        it is born in, and refuse a name taken here (eth0, ...) with EEXIST: the link is then born in
        the sandbox under a temporary name and renamed there before it goes up."""
        where = sandbox if sandbox is not None else self
        born = name
        try:
            self.rtnl.create_lower(
                kind, name, self.index(parent), mode, mtu, mac, sandbox.fd if sandbox is not None else None
            )
        except OSError as exc:
            if sandbox is None or exc.errno != errno.EEXIST or sandbox.rtnl.link(name) is not None:
                raise
            born = "cnm" + hashlib.sha1(alias.encode()).hexdigest()[:12]
            self.rtnl.create_lower(kind, born, self.index(parent), mode, mtu, mac, sandbox.fd)
        try:
            # the kernel ignores an alias in RTM_NEWLINK
            where.rtnl.set_link(where.index(born), alias=alias, up=True, name=name if born != name else None)
        except OSError:
            if born != name:
                where.delete_link(born)
            raise

    def create_vlan(self, name: str, parent: str, vid: int, alias: str) -> None:
        self.rtnl.create_vlan(name, self.index(parent), vid)
        self.rtnl.set_link(self.index(name), alias=alias)

    def set_link(
        self,
        name: str,
        up: Optional[bool] = None,
        mtu: Optional[int] = None,
        mac: Optional[str] = None,
        alias: Optional[str] = None,
        master: Optional[str] = None,
    ) -> None:
        self.rtnl.set_link(
            self.index(name), up=up, mtu=mtu, mac=mac, alias=alias, master=self.index(master) if master else None
        )

    def delete_link(self, name: str) -> None:
        try:
            self.rtnl.delete_link(self.index(name))
        except CnmError:
            pass  # already gone: deleting is done
        except OSError as exc:
            # Gone between the lookup and the delete: a veth whose namespace was deleted by hand goes when the kernel
            # has torn that namespace down, which it does in the background (the soak saw it after planning).
            if exc.errno != errno.ENODEV:
                raise
        self._indexes.pop(name, None)

    def delete_links(self, names: Sequence[str], group: int) -> None:
        """Delete many links in one request: they join link group ``group``, then the group goes.

        The kernel waits for RCU once per RTM_DELLINK (about 20 ms for a veth); one group delete
        pays that once for all of them.
        """
        marked = []
        try:
            for name in names:
                try:
                    self.rtnl.set_link(self.index(name), group=group)
                except (CnmError, OSError):
                    continue  # gone already (its sandbox was deleted): nothing to delete
                marked.append(name)
            if marked:
                self.rtnl.delete_group(group)
        except OSError:
            for name in marked:
                try:
                    self.rtnl.set_link(self.index(name), group=0)
                except (CnmError, OSError):
                    pass
            raise
        for name in names:
            self._indexes.pop(name, None)

    # ---- verbs of plan.Op that take what only the run knows (a sandbox's namespace) by its key ----
    def create_veth_into(self, name: str, mtu: int, alias: str, master: str, peer: dict, sandbox: str) -> None:
        """create_veth with its peer born in the namespace ``sandbox`` (a key), opened when this runs; the peer's
        index, when the kernel tells it, saves that session a lookup."""
        inside = self._session(sandbox)
        peer_index = self.create_veth(name, mtu, alias, master, peer, inside.fd)
        if peer_index is not None:
            inside.learn_index(peer["ifname"], peer_index)

    def create_lower_into(
        self, kind: str, name: str, parent: str, mode: str, mtu: int, mac: Optional[str], alias: str, sandbox: str
    ) -> None:
        """create_lower with the link born in the namespace ``sandbox`` (a key), opened when this runs."""
        self.create_lower(kind, name, parent, mode, mtu, mac, alias, sandbox=self._session(sandbox))

    def create_vxlan(
        self, name: str, vni: int, local: str, port: int, mtu: int, mac: str, master: str, alias: str, up: bool = True
    ) -> None:
        """A VXLAN device on the bridge ``master`` (see rtnl.create_vxlan), down with ``up=False``."""
        self.rtnl.create_vxlan(name, vni, local, port, mtu, mac, self.index(master), up=up)
        self.rtnl.set_link(self.index(name), alias=alias)  # the kernel ignores an alias in RTM_NEWLINK

    def _session(self, where: str) -> NetnsSession:
        if self.sessions is None:
            raise CnmError("%s: no session of %s (a session of kernel.Kernel has them)" % (self.label, where))
        return self.sessions(where)

    # ---- XFRM (an encrypted overlay's states and policies, see ipsec.py): one socket per run, opened on first use ----
    def xfrm(self) -> Xfrm:
        if self._xfrm is None:
            with self._inside():
                self._xfrm = Xfrm()
        return self._xfrm

    def xfrm_states(self) -> list:
        """This namespace's XFRM states, as the XFRM client gives them (dicts)."""
        return self.xfrm().states()

    def xfrm_policies(self) -> list:
        return self.xfrm().policies()

    def add_xfrm_state(self, state: dict) -> None:
        self.xfrm().add_state(state)

    def delete_xfrm_state(self, state: dict) -> None:
        self.xfrm().delete_state(state)

    def add_xfrm_policy(self, policy: dict) -> None:
        self.xfrm().add_policy(policy)

    def update_xfrm_policy(self, policy: dict) -> None:
        """Replace the policy of the same selector and direction at once (XFRM_MSG_UPDPOLICY)."""
        self.xfrm().add_policy(policy, update=True)

    def delete_xfrm_policy(self, policy: dict) -> None:
        self.xfrm().delete_policy(policy)

    def add_address(self, name: str, address) -> None:
        self.rtnl.address(True, self.index(name), str(address.ip), address.network.prefixlen)

    def delete_address(self, name: str, address) -> None:
        try:
            self.rtnl.address(False, self.index(name), str(address.ip), address.network.prefixlen)
        except Gone:
            pass  # the device went, and its addresses with it
        except OSError as exc:
            if exc.errno != errno.EADDRNOTAVAIL:  # already gone
                raise

    def add_route(self, name: str, route: Route) -> None:
        self.rtnl.route(
            True,
            str(route.dst.network_address),
            route.dst.prefixlen,
            str(route.gateway) if route.gateway else None,
            self.index(name),
        )

    def delete_route(self, name: str, route: Route) -> None:
        try:
            index = self.index(name)
        except Gone:
            return  # the device went, and its routes with it
        try:
            gateway = str(route.gateway) if route.gateway else None
            self.rtnl.route(False, str(route.dst.network_address), route.dst.prefixlen, gateway, index)
        except OSError as exc:
            if exc.errno != 3:  # ESRCH: already gone
                raise

    def add_fdb(self, name: str, mac: str, vtep: str) -> None:
        self.rtnl.neighbour(True, socket.AF_BRIDGE, self.index(name), mac, vtep)

    def delete_fdb(self, name: str, mac: str, vtep: str) -> None:
        self.rtnl.neighbour(False, socket.AF_BRIDGE, self.index(name), mac, vtep)

    def add_neighbour(self, name: str, mac: str, address: str) -> None:
        self.rtnl.neighbour(True, socket.AF_INET, self.index(name), mac, address)

    def delete_neighbour(self, name: str, mac: str, address: str) -> None:
        self.rtnl.neighbour(False, socket.AF_INET, self.index(name), mac, address)

    def neighbour_batch(self, verb: str, calls: Sequence[tuple], keep_going: bool) -> List[Optional[Exception]]:
        """Many calls of one of NEIGHBOUR_VERBS (each its arguments) in as few sends as the socket allows: for each
        call run, in order, None (done) or its error; after a refusal the rest are not run (the list is shorter)
        unless ``keep_going``."""
        add, family = NEIGHBOUR_VERBS[verb]
        requests, failure = [], None
        for name, mac, address in calls:
            try:
                index = self.index(name)
            except Gone as exc:  # the calls before it still run
                failure = exc
                break
            requests.append(neighbour_request(add, family, index, mac, address))
        codes = self.rtnl.batch(requests, keep_going)
        results: List[Optional[Exception]] = [
            OSError(code, self.rtnl._error_text(requests[n][0], code)) if code else None for n, code in enumerate(codes)
        ]
        if failure is not None and len(results) == len(requests):
            results.append(failure)
        return results

    def write_sysctl(self, path: str, value: str) -> None:
        with self._inside():
            with open(os.path.join("/proc/sys", path), "w") as handle:
                handle.write(value)

    def _inside(self):
        if self.fd is None:
            return _Nothing()
        return netns.entered(self.fd)

    def close(self) -> None:
        self.rtnl.close()
        if self._xfrm is not None:
            self._xfrm.close()
        if self.fd is not None:
            os.close(self.fd)


FRR_DAEMONS = ("zebra", "watchfrr")


def _frr_daemons(namespace: os.stat_result) -> List[Tuple[int, str]]:
    """The processes of FRR_DAEMONS whose network namespace is ``namespace`` (the stat of its nsfs file)."""
    found = []
    for pid in sorted(int(entry) for entry in os.listdir("/proc") if entry.isdigit()):
        try:
            with open("/proc/%d/comm" % pid) as handle:
                name = handle.read().strip()
            if name in FRR_DAEMONS:
                theirs = os.stat("/proc/%d/ns/net" % pid)
                if (theirs.st_dev, theirs.st_ino) == (namespace.st_dev, namespace.st_ino):
                    found.append((pid, name))
        except OSError:  # gone meanwhile
            continue
    return found


def _read_sysctls(paths: List[str]) -> Dict[str, Optional[str]]:
    """Read sysctl files in this thread's namespace; None for those that do not exist."""
    values: Dict[str, Optional[str]] = {}
    net = os.open("/proc/sys/net", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for path in paths:
            if path.startswith("net/"):
                where, name = net, path[len("net/") :]
            else:
                where, name = None, os.path.join("/proc/sys", path)
            try:
                fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=where)
            except OSError:
                values[path] = None
                continue
            try:
                values[path] = os.read(fd, 4096).decode().strip()
            finally:
                os.close(fd)
    finally:
        os.close(net)
    return values


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Kernel:
    """The machine as one module run sees it: the netlink sessions (the host's and one per sandbox), the namespace
    files that name sandboxes and the kernel's modules. Planning reads the machine only through this object."""

    # Verbs of the machine's named namespaces (files under /run/netns), run by the Kernel itself, not by a session.
    NAMESPACE_VERBS = frozenset(("create_netns", "delete_netns", "bind_netns"))

    def __init__(self) -> None:
        _raise_open_file_limit()
        self.host = NetnsSession("the host")
        self.host.sessions = self.session
        self._sandboxes: Dict[str, NetnsSession] = {}
        self._modules: Optional[set] = None
        self._ciphers: Optional[set] = None
        self._exists: Dict[str, bool] = {}  # sandbox key -> whether it exists: looked up once per run

    def sandbox(self, ref: SandboxRef) -> NetnsSession:
        """The session inside a sandbox, opened on first use; raises if the sandbox is missing."""
        session = self._sandboxes.get(ref.key)
        if session is None:
            session = NetnsSession("sandbox %s" % ref.value, netns.open_sandbox(ref))
            session.sessions = self.session
            self._sandboxes[ref.key] = session
        return session

    def session(self, where: str) -> NetnsSession:
        """The session of namespace ``where``: HOST or a sandbox key (a plan.Op's ``where``)."""
        return self.host if where == HOST else self.sandbox(SandboxRef.from_key(where))

    def run_batch(self, ops: list, keep_going: bool) -> List[Optional[Exception]]:
        """Execute Ops of one verb of NEIGHBOUR_VERBS in one namespace (plan.BATCHED) as one batch (see
        NetnsSession.neighbour_batch): an overlay programs thousands of FDB and neighbour entries."""
        return self.session(ops[0].where).neighbour_batch(ops[0].verb, [op.args for op in ops], keep_going)

    def run(self, op) -> None:
        """Execute a plan.Op: its verb on the session of its namespace, looked up now (a sandbox is opened on first
        use, so an Op may name one that an earlier change creates); a namespace verb on the Kernel."""
        runner = self if op.verb in self.NAMESPACE_VERBS else self.session(op.where)
        getattr(runner, op.verb)(*op.args, **dict(op.kwargs))

    # ---- sandboxes: their namespace files ----
    def sandbox_exists(self, ref: SandboxRef) -> bool:
        """Whether the sandbox exists; the run's namespace verbs keep the answer true as they create and delete."""
        exists = self._exists.get(ref.key)
        if exists is None:
            exists = self._exists[ref.key] = netns.sandbox_exists(ref)
        return exists

    def sandbox_is_stub(self, ref: SandboxRef) -> bool:
        """A name under /run/netns that an interrupted create or delete left without its namespace."""
        return netns.sandbox_is_stub(ref)

    def is_host_namespace(self, ref: SandboxRef) -> bool:
        """Whether an existing sandbox is this run's own (host) namespace under another name."""
        return self.sandbox_exists(ref) and netns.same_namespace(netns.sandbox_path(ref), netns.THREAD_NETNS)

    def namespace_identity(self, ref: SandboxRef) -> Optional[tuple]:
        """(device, inode) of a sandbox's namespace file, or None when it does not exist (a vanished sandbox): no
        two live namespaces share it, so it tells one namespace named two ways."""
        try:
            if ref.kind == "container" and not netns.sandbox_exists(ref):
                return None
            found = os.stat(netns.sandbox_path(ref))
        except OSError:
            return None
        return found.st_dev, found.st_ino

    def create_netns(self, name: str) -> None:
        self._exists.pop(SandboxRef("netns", name).key, None)
        netns.create_named(name)

    def delete_netns(self, name: str) -> None:
        self.forget_sandbox(SandboxRef("netns", name))  # its session holds the namespace open
        self._exists.pop(SandboxRef("netns", name).key, None)
        netns.delete_named(name)

    def bind_netns(self, name: str) -> None:
        """Name this run's own namespace ``name`` (a sandbox in the host's network)."""
        self._exists.pop(SandboxRef("netns", name).key, None)
        netns.bind_current(name)

    # ---- the kernel's modules ----
    def has_module(self, name: str) -> bool:
        """Whether this kernel has module ``name``: loaded, built in, or installed where the kernel loads it from on
        first use (a link kind, a cipher). Read from files once per run, so check mode can ask too."""
        if os.path.isdir(os.path.join("/sys/module", name)):
            return True
        if self._modules is None:
            self._modules = available_modules()
        return name in self._modules

    def has_xfrm(self) -> bool:
        """Whether this kernel has IPsec's XFRM (its statistics file is there)."""
        return os.path.exists("/proc/net/xfrm_stat")

    def has_cipher(self, name: str) -> bool:
        """Whether the kernel's crypto API holds ``name`` now (/proc/crypto, read once per run)."""
        if self._ciphers is None:
            try:
                with open("/proc/crypto") as handle:
                    self._ciphers = {
                        line.split(":", 1)[1].strip() for line in handle if line.split(":", 1)[0].strip() == "name"
                    }
            except OSError:
                self._ciphers = set()
        return name in self._ciphers

    def forget_sandbox(self, ref: SandboxRef) -> None:
        session = self._sandboxes.pop(ref.key, None)
        if session is not None:
            session.close()

    def close(self) -> None:
        for session in self._sandboxes.values():
            session.close()
        self._sandboxes.clear()
        self.host.close()


def _raise_open_file_limit() -> None:
    """A session per sandbox holds a few descriptors; 1024 would stop a batch near 250 sandboxes."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    except (ImportError, ValueError, OSError):
        pass


def available_modules() -> set:
    """Kernel modules built in or loadable, by name (the kernel loads a link kind or a cipher on first use)."""
    names = set()
    base = os.path.join("/lib/modules", os.uname().release)
    for listing in ("modules.builtin", "modules.dep"):
        try:
            with open(os.path.join(base, listing)) as handle:
                for line in handle:
                    path = line.split(":", 1)[0].strip()  # kernel/drivers/net/ipvlan/ipvlan.ko, maybe compressed
                    if path:
                        names.add(os.path.basename(path).split(".ko", 1)[0].replace("-", "_"))
        except OSError:
            continue
    return names
