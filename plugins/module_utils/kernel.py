# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kernel room: netlink (pyroute2) reads and writes of links, addresses, routes and sysctls.

One netlink socket per namespace per module run: the host's, and one for each sandbox touched,
opened by entering the sandbox with setns (never ``IPRoute(netns=...)``, which forks a helper per
namespace and silently creates a missing one). Reads are dumped once and cached; the plan's
actions look objects up by name when they run, because earlier actions create them.
Works with pyroute2 0.7.2 (Debian 12) and 0.9.x.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass
from typing import Dict, List, Optional

from ansible_collections.cnm.network.plugins.module_utils import netns
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError

try:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    HAS_PYROUTE2 = True
except ImportError:  # the module respawns under a Python that has it, or fails naming the package
    IPRoute = None
    NetlinkError = OSError
    HAS_PYROUTE2 = False

IFF_UP = 0x1
IFA_F_NODAD = 0x02
RT_TABLE_MAIN = 254
RTPROT_KERNEL = 2
RT_SCOPE_LINK = 253


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


def _link_from_msg(msg) -> Link:
    info = msg.get_attr("IFLA_LINKINFO")
    kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
    return Link(
        index=msg["index"],
        name=msg.get_attr("IFLA_IFNAME"),
        kind=kind,
        mtu=msg.get_attr("IFLA_MTU"),
        mac=msg.get_attr("IFLA_ADDRESS"),
        up=bool(msg["flags"] & IFF_UP),
        master=msg.get_attr("IFLA_MASTER"),
        peer_index=msg.get_attr("IFLA_LINK"),
        alias=msg.get_attr("IFLA_IFALIAS"),
    )


def _address_from_msg(msg):
    family = msg["family"]
    value = msg.get_attr("IFA_LOCAL") if family == socket.AF_INET else None
    value = value or msg.get_attr("IFA_ADDRESS")
    return ipaddress.ip_interface("%s/%d" % (value, msg["prefixlen"]))


def _route_from_msg(msg) -> Route:
    dst = msg.get_attr("RTA_DST")
    if dst is None:
        dst = "0.0.0.0" if msg["family"] == socket.AF_INET else "::"
    gateway = msg.get_attr("RTA_GATEWAY")
    return Route(
        dst=ipaddress.ip_network("%s/%d" % (dst, msg["dst_len"])),
        gateway=ipaddress.ip_address(gateway) if gateway else None,
        oif=msg.get_attr("RTA_OIF"),
    )


class NetnsSession:
    """A netlink socket bound to one namespace, with cached dumps of what is in it."""

    def __init__(self, label: str, ipr, fd: Optional[int] = None) -> None:
        self.label = label
        self.ipr = ipr
        self.fd = fd  # None for the host, whose namespace this process already runs in
        self._links: Optional[Dict[str, Link]] = None
        self._addresses: Optional[Dict[int, list]] = None
        self._routes: Optional[List[Route]] = None

    # ---- reads (dumped once per run) ----
    def links(self) -> Dict[str, Link]:
        if self._links is None:
            self._links = {link.name: link for link in map(_link_from_msg, self.ipr.get_links())}
        return self._links

    def link(self, name: str) -> Optional[Link]:
        return self.links().get(name)

    def addresses(self, index: int) -> list:
        """Addresses of a link, without IPv6 link-local ones (the kernel owns those)."""
        if self._addresses is None:
            self._addresses = {}
            for msg in self.ipr.get_addr():
                address = _address_from_msg(msg)
                if address.version == 6 and address.is_link_local:
                    continue
                self._addresses.setdefault(msg["index"], []).append(address)
        return sorted(self._addresses.get(index, []), key=lambda a: (a.version, a))

    def routes(self, oif: Optional[int] = None) -> List[Route]:
        """Routes of the main table (through ``oif`` if given) that someone added, not the kernel's own."""
        if self._routes is None:
            self._routes = []
            for family in (socket.AF_INET, socket.AF_INET6):
                for msg in self.ipr.get_routes(family=family, table=RT_TABLE_MAIN):
                    if msg["proto"] == RTPROT_KERNEL or msg.get_attr("RTA_TABLE", msg["table"]) != RT_TABLE_MAIN:
                        continue
                    route = _route_from_msg(msg)
                    if route.dst.version == 6 and (route.dst.is_link_local or route.dst.is_multicast):
                        continue
                    self._routes.append(route)
        return [route for route in self._routes if oif is None or route.oif == oif]

    def sysctl(self, path: str) -> Optional[str]:
        """Read /proc/sys/<path> as this namespace sees it; None if it does not exist."""
        with self._inside():
            try:
                with open(os.path.join("/proc/sys", path)) as handle:
                    return handle.read().strip()
            except OSError:
                return None

    # ---- writes (called from plan actions) ----
    def index(self, name: str) -> int:
        """The ifindex of ``name`` now (one RTM_GETLINK, not a dump)."""
        try:
            return self.ipr.link("get", ifname=name)[0]["index"]
        except NetlinkError as exc:
            raise CnmError("no interface %s in %s" % (name, self.label)) from exc

    def create_bridge(self, name: str, mtu: int, alias: str, mac: str) -> None:
        # A MAC set at creation stays put; otherwise the bridge takes its ports' MACs as they come and go.
        self.ipr.link("add", ifname=name, kind="bridge", mtu=mtu, address=mac)
        self.ipr.link("set", index=self.index(name), ifalias=alias, state="up")

    def create_veth(self, name: str, mtu: int, alias: str, master: str, peer: dict, peer_fd: int) -> None:
        """A veth pair whose peer is born inside the sandbox (no move, no rename)."""
        peer_spec = {"ifname": peer["ifname"], "net_ns_fd": peer_fd, "mtu": mtu}
        if peer.get("mac"):
            peer_spec["address"] = peer["mac"]
        self.ipr.link("add", ifname=name, kind="veth", mtu=mtu, peer=peer_spec)
        self.ipr.link("set", index=self.index(name), ifalias=alias, master=self.index(master), state="up")

    def set_link(self, name: str, **attrs) -> None:
        if "master" in attrs and isinstance(attrs["master"], str):
            attrs["master"] = self.index(attrs["master"])
        self.ipr.link("set", index=self.index(name), **attrs)

    def delete_link(self, name: str) -> None:
        try:
            self.ipr.link("del", index=self.index(name))
        except CnmError:
            pass  # already gone: deleting is done

    def add_address(self, name: str, address) -> None:
        kwargs = {"flags": IFA_F_NODAD} if address.version == 6 else {}
        self.ipr.addr("add", index=self.index(name), address=str(address.ip), prefixlen=address.network.prefixlen, **kwargs)

    def delete_address(self, name: str, address) -> None:
        self.ipr.addr("del", index=self.index(name), address=str(address.ip), prefixlen=address.network.prefixlen)

    def add_route(self, name: str, route: Route) -> None:
        self.ipr.route("add", **self._route_args(name, route))

    def delete_route(self, name: str, route: Route) -> None:
        try:
            self.ipr.route("del", **self._route_args(name, route))
        except NetlinkError as exc:
            if exc.code != 3:  # ESRCH: already gone
                raise

    def _route_args(self, name: str, route: Route) -> dict:
        args = {"dst": str(route.dst), "oif": self.index(name), "family": socket.AF_INET if route.dst.version == 4 else socket.AF_INET6}
        if route.gateway is not None:
            args["gateway"] = str(route.gateway)
        return args

    def write_sysctl(self, path: str, value: str) -> None:
        with self._inside():
            with open(os.path.join("/proc/sys", path), "w") as handle:
                handle.write(value)

    def _inside(self):
        if self.fd is None:
            return _Nothing()
        return netns.entered(self.fd)

    def close(self) -> None:
        self.ipr.close()
        if self.fd is not None:
            os.close(self.fd)


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class Kernel:
    """The netlink sessions of one module run: the host's and one per sandbox."""

    def __init__(self) -> None:
        self.host = NetnsSession("the host", IPRoute())
        self._sandboxes: Dict[str, NetnsSession] = {}

    def sandbox(self, ref: netns.SandboxRef) -> NetnsSession:
        """The session inside a sandbox, opened on first use; raises if the sandbox is missing."""
        session = self._sandboxes.get(ref.key)
        if session is None:
            fd = ref.open()
            with netns.entered(fd):
                ipr = IPRoute()
            session = NetnsSession("sandbox %s" % ref.value, ipr, fd)
            self._sandboxes[ref.key] = session
        return session

    def forget_sandbox(self, ref: netns.SandboxRef) -> None:
        session = self._sandboxes.pop(ref.key, None)
        if session is not None:
            session.close()

    def close(self) -> None:
        for session in self._sandboxes.values():
            session.close()
        self._sandboxes.clear()
        self.host.close()
