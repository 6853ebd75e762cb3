# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small rtnetlink client: dumps of links, addresses, routes and neighbours, and every write the core makes.

Reads dominate every run (each sandbox is dumped to decide whether anything must change), and
pyroute2 0.9 spends about 30 times the kernel's own time encoding and decoding messages. These
few message layouts are stable kernel ABI, so they are written here (with xfrm.py and conntrack.py
for the other netlink families), and the managed node needs no netlink library at all.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

NETLINK_ROUTE = 0
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_ECHO = 0x8
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
NLM_F_REPLACE = 0x100
NLM_F_APPEND = 0x800
NDA_DST, NDA_LLADDR = 1, 2
NUD_NOARP, NUD_PERMANENT = 0x40, 0x80
NUD_LEARNED = 0x02 | 0x04 | 0x08 | 0x10  # REACHABLE, STALE, DELAY, PROBE: what a bridge learnt, aging
NTF_SELF, NTF_MASTER, NTF_EXT_LEARNED = 0x02, 0x04, 0x10
NDA_MASTER, NDA_PROTOCOL = 9, 12
RTPROT_ZEBRA = 11
IFLA_VXLAN_ID, IFLA_VXLAN_LOCAL, IFLA_VXLAN_LEARNING, IFLA_VXLAN_PROXY, IFLA_VXLAN_PORT = 1, 4, 7, 11, 15
IFLA_MACVLAN_MODE = 1
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
IFLA_IPVLAN_MODE = 1
IFLA_IPVLAN_FLAGS = 2
IPVLAN_MODES = {"l2": 0, "l3": 1, "l3s": 2}
IPVLAN_FLAGS = {"bridge": 0, "private": 1, "vepa": 2}
IFLA_VLAN_ID = 1
IFF_UP = 0x1
IFA_F_NODAD = 0x02
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255
RTN_UNICAST = 1
NLA_TYPE_MASK = 0x3FFF  # without the nested / byte-order flags
SO_RCVBUFFORCE = 33
# A batch (Netlink.batch): a send stays far below the send buffer (a larger one is refused, EMSGSIZE), and its acks
# must all fit the receive buffer; an ack's share of it is its buffer's true size (about 700 bytes), rounded up.
BATCH_BYTES = 1 << 16
BATCH_MESSAGES = 1024
RECEIVE_BUFFER = 1 << 20
ACK_COST = 1024

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")  # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags
_ATTR = struct.Struct("=HH")
_NDMSG = struct.Struct("=BxxxiHBB")  # ndmsg: family, ifindex, state, flags, type
_U32 = struct.Struct("=I")
_U16 = struct.Struct("=H")

# attribute numbers (linux/if_link.h, if_addr.h, rtnetlink.h)
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINK, IFLA_MASTER, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_GROUP = (
    1,
    3,
    4,
    5,
    10,
    18,
    20,
    27,
)
IFLA_NET_NS_FD = 28
IFLA_PROTINFO = 12
IFLA_BRPORT_MODE = 4  # hairpin
IFLA_BRPORT_LEARNING = 8
IFLA_BRPORT_NEIGH_SUPPRESS = 32
IFLA_BRPORT_ISOLATED = 33
# bridge port flags by name (set_port_flags, port_options) and the kernel's default of each
BRPORT_FLAGS = {
    "isolated": (IFLA_BRPORT_ISOLATED, False),
    "hairpin": (IFLA_BRPORT_MODE, False),
    "neigh_suppress": (IFLA_BRPORT_NEIGH_SUPPRESS, False),
    "learning": (IFLA_BRPORT_LEARNING, True),
}
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_AF_SPEC = 26
IFLA_INET6_CONF = 2  # in IFLA_AF_SPEC's AF_INET6 entry: the interface's ipv6 devconf, an array of s32
DEVCONF_DISABLE_IPV6 = 26  # net.ipv6.conf.IFNAME.disable_ipv6's place in that array
VETH_INFO_PEER = 1
NLA_F_NESTED = 0x8000
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15


def attributes(data: bytes, offset: int = 0) -> Dict[int, bytes]:
    """The rtattrs of a message body from ``offset``: type -> payload (the first of each type)."""
    found: Dict[int, bytes] = {}
    end = len(data)
    while offset + 4 <= end:
        length, kind = _ATTR.unpack_from(data, offset)
        if length < 4:
            break
        found.setdefault(kind & NLA_TYPE_MASK, data[offset + 4 : offset + length])
        offset += (length + 3) & ~3
    return found


def attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    return _ATTR.pack(4 + len(payload), kind) + payload + b"\0" * (-len(payload) % 4)


def _text(raw: Optional[bytes]) -> Optional[str]:
    return raw.split(b"\0", 1)[0].decode() if raw is not None else None


def _u32(raw: Optional[bytes]) -> Optional[int]:
    return _U32.unpack(raw[:4])[0] if raw is not None else None


def _mac(raw: Optional[bytes]) -> Optional[str]:
    return raw.hex(":") if raw else None  # "02:42:0a:00:00:02"; an overlay's dumps hold thousands


def _ip(family: int, raw: Optional[bytes]) -> Optional[str]:
    return socket.inet_ntop(family, raw) if raw else None


class Netlink:
    """A netlink socket of one protocol, bound to the namespace it was opened in (open it inside)."""

    def __init__(self, protocol: int) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
        self.sock.bind((0, 0))
        self.sequence = 0
        self._batch_messages = 0  # how many requests one send of a batch may hold: set on the first batch

    def close(self) -> None:
        self.sock.close()

    def _message(self, kind: int, flags: int, body: bytes) -> bytes:
        """One request with the next sequence number."""
        self.sequence += 1
        return _HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST | flags, self.sequence, 0) + body

    def _request(self, kind: int, flags: int, body: bytes) -> Iterator[Tuple[int, bytes]]:
        self.sock.send(self._message(kind, flags, body))
        while True:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, msg_type, _flags, sequence, _port = _HEADER.unpack_from(data, offset)
                payload = data[offset + _HEADER.size : offset + length]
                offset += (length + 3) & ~3
                if sequence != self.sequence:
                    continue
                if msg_type == NLMSG_DONE:
                    return
                if msg_type == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise OSError(code, self._error_text(kind, code))
                    return
                yield msg_type, payload
                if not flags & (NLM_F_DUMP | NLM_F_ECHO):  # an echo is followed by the acknowledgement
                    return

    @staticmethod
    def _error_text(kind: int, code: int) -> str:
        """The message of a refused request (subclasses may say more about their message kinds)."""
        return os.strerror(code)

    def _ack(self, kind: int, flags: int, body: bytes) -> None:
        for _message in self._request(kind, NLM_F_ACK | flags, body):
            pass

    def batch(self, requests: Sequence[Tuple[int, int, bytes]], keep_going: bool = False) -> List[int]:
        """Send ``requests`` (kind, flags, body), many to a send, each acknowledged on its own: their error codes in
        order (0: done). The kernel handles each message of a send on its own, so the codes say exactly which were
        applied; after a send with a refusal the rest are not sent (the list is shorter) unless ``keep_going``."""
        codes: List[int] = []
        for chunk in split_batch(requests, self._batch_limit(), BATCH_BYTES):
            first = self.sequence + 1
            self.sock.send(b"".join(self._message(kind, NLM_F_ACK | flags, body) for kind, flags, body in chunk))
            codes.extend(self._acks(first, len(chunk)))
            if not keep_going and any(codes[-len(chunk) :]):
                break
        return codes

    def _acks(self, first: int, count: int) -> List[int]:
        """The error codes of the requests numbered ``first`` to ``first + count - 1``, as their acks arrive."""
        codes: Dict[int, int] = {}
        while len(codes) < count:
            try:
                data = self.sock.recv(1 << 16)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # acks were dropped: what was applied is unknown
                    raise OSError(exc.errno, "netlink acknowledgements lost (receive buffer full)") from exc
                raise
            for sequence, code in acks(data):
                if first <= sequence < first + count:
                    codes[sequence] = code
        return [codes[first + n] for n in range(count)]

    def _batch_limit(self) -> int:
        """Requests per send: their acks all queue before the send returns (the kernel handles the messages in the
        sender's call), and an ack that does not fit the receive buffer is dropped, so the buffer bounds a send."""
        if not self._batch_messages:
            try:  # root may go beyond net.core.rmem_max
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
            except OSError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            room = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            self._batch_messages = max(1, min(BATCH_MESSAGES, room // ACK_COST))
        return self._batch_messages


def split_batch(requests: Sequence[Tuple[int, int, bytes]], messages: int, size: int) -> Iterator[list]:
    """``requests`` in consecutive chunks of at most ``messages`` requests and ``size`` bytes (one request at least)."""
    chunk: list = []
    used = 0
    for request in requests:
        length = _HEADER.size + len(request[2])
        if chunk and (len(chunk) == messages or used + length > size):
            yield chunk
            chunk, used = [], 0
        chunk.append(request)
        used += (length + 3) & ~3
    if chunk:
        yield chunk


def acks(data: bytes) -> Iterator[Tuple[int, int]]:
    """The acknowledgements in one datagram: (sequence, error code; 0 when done)."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, msg_type, _flags, sequence, _port = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            break
        if msg_type == NLMSG_ERROR:
            yield sequence, -struct.unpack_from("=i", data, offset + _HEADER.size)[0]
        offset += (length + 3) & ~3


class Rtnl(Netlink):
    """The rtnetlink socket of a namespace: links, addresses, routes, neighbours."""

    def __init__(self) -> None:
        super().__init__(NETLINK_ROUTE)

    def links(self) -> List[dict]:
        """Every link: index, name, kind, mtu, mac, up, master, peer_index, alias, group."""
        result = []
        for msg_type, payload in self._request(RTM_GETLINK, NLM_F_DUMP, _IFINFO.pack(0, 0, 0, 0, 0)):
            if msg_type == RTM_NEWLINK:
                result.append(_link(payload))
        return result

    def link(self, name: str) -> Optional[dict]:
        """One link by name, or None."""
        try:
            for msg_type, payload in self._request(
                RTM_GETLINK, 0, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name.encode() + b"\0")
            ):
                if msg_type == RTM_NEWLINK:
                    return _link(payload)
        except OSError as exc:
            if exc.errno == 19:  # ENODEV
                return None
            raise
        return None

    def addresses(self) -> List[Tuple[int, str, int]]:
        """Every address as (ifindex, address, prefix length)."""
        result = []
        for msg_type, payload in self._request(RTM_GETADDR, NLM_F_DUMP, _IFADDR.pack(0, 0, 0, 0, 0)):
            if msg_type != RTM_NEWADDR:
                continue
            family, prefixlen, _flags, _scope, index = _IFADDR.unpack_from(payload)
            attrs = attributes(payload, _IFADDR.size)
            raw = attrs.get(IFA_LOCAL) if family == socket.AF_INET else None
            address = _ip(family, raw or attrs.get(IFA_ADDRESS))
            if address:
                result.append((index, address, prefixlen))
        return result

    def routes(self) -> List[dict]:
        """Every route of every table and family: family, dst, dst_len, gateway, oif, table, protocol."""
        result = []
        for msg_type, payload in self._request(RTM_GETROUTE, NLM_F_DUMP, _RTMSG.pack(0, 0, 0, 0, 0, 0, 0, 0, 0)):
            if msg_type != RTM_NEWROUTE:
                continue
            family, dst_len, _src, _tos, table, protocol, _scope, _type, _flags = _RTMSG.unpack_from(payload)
            attrs = attributes(payload, _RTMSG.size)
            result.append(
                {
                    "family": family,
                    "dst": _ip(family, attrs.get(RTA_DST)),
                    "dst_len": dst_len,
                    "gateway": _ip(family, attrs.get(RTA_GATEWAY)),
                    "oif": _u32(attrs.get(RTA_OIF)),
                    "table": _u32(attrs.get(RTA_TABLE)) or table,
                    "protocol": protocol,
                }
            )
        return result

    def port_flags(self) -> Dict[int, Dict[str, bool]]:
        """Bridge ports by index: each of BRPORT_FLAGS (isolated, hairpin, neigh_suppress, learning), from one
        AF_BRIDGE link dump."""
        result = {}
        for msg_type, payload in self._request(RTM_GETLINK, NLM_F_DUMP, _IFINFO.pack(socket.AF_BRIDGE, 0, 0, 0, 0)):
            if msg_type != RTM_NEWLINK:
                continue
            protinfo = attributes(payload, _IFINFO.size).get(IFLA_PROTINFO)
            flags = attributes(protinfo) if protinfo else {}
            result[_IFINFO.unpack_from(payload)[2]] = {
                name: bool(flags[kind][0]) if flags.get(kind) else default
                for name, (kind, default) in BRPORT_FLAGS.items()
            }
        return result

    def port_fdb(self, learned: bool = False) -> Dict[int, List[str]]:
        """Static bridge FDB entries by port index (``bridge fdb add MAC dev PORT master static``): the MACs, from
        one AF_BRIDGE neighbour dump. Learned, local (permanent) and extern_learn entries are not listed; with
        ``learned`` only the learned ones are (what the bridge saw come in on the port, aged out after 300 s)."""
        result: Dict[int, List[str]] = {}
        for msg_type, payload in self._request(RTM_GETNEIGH, NLM_F_DUMP, _NDMSG.pack(socket.AF_BRIDGE, 0, 0, 0, 0)):
            if msg_type != RTM_NEWNEIGH:
                continue
            _family, ifindex, state, flags, _type = _NDMSG.unpack_from(payload)
            if flags & NTF_EXT_LEARNED or (not state & NUD_LEARNED if learned else state != NUD_NOARP):
                continue
            attrs = attributes(payload, _NDMSG.size)
            if NDA_MASTER not in attrs or NDA_DST in attrs or NDA_LLADDR not in attrs:  # the bridge's, not a VTEP's
                continue
            result.setdefault(ifindex, []).append(_mac(attrs[NDA_LLADDR]))
        return result

    def neighbours(self, family: int, index: int, noarp: bool = True) -> List[Tuple[str, Optional[str]]]:
        """Permanent entries of one device: (MAC, IP) for the AF_INET table, (MAC, VTEP) for the AF_BRIDGE FDB.
        Entries FRR's zebra owns (EVPN) are not listed, so nothing ever removes them (see is_zebras); without
        ``noarp`` neither are NOARP ones: zebra's flood entries (00:00:00:00:00:00 dst VTEP) are NOARP as well as
        permanent, as ``bridge fdb append`` makes them by hand, so only an EVPN overlay leaves them out."""
        return [
            (mac, address)
            for state, flags, protocol, mac, address in self._remote_entries(family, index)
            if state & NUD_PERMANENT and not is_zebras(flags, protocol) and (noarp or not state & NUD_NOARP)
        ]

    def tunnel_fdb(self, index: int) -> List[Tuple[str, str]]:
        """Every FDB entry of VXLAN device ``index`` towards a VTEP, whoever made it (zebra's too): (MAC, VTEP)."""
        return [
            (mac, address) for _state, _flags, _protocol, mac, address in self._remote_entries(socket.AF_BRIDGE, index)
        ]

    def zebras(self, family: int, index: int) -> List[Tuple[str, Optional[str]]]:
        """The entries of one device that are FRR's zebra's (is_zebras; its flood entries are not told apart, see
        neighbours): a VXLAN device's FDB as (MAC, VTEP) for its own entries and (MAC, None) for the bridge's entry of
        the MAC on the device's port (AF_BRIDGE), a bridge's neighbours as (MAC, IP) (AF_INET)."""
        found = []
        for msg_type, payload in self._request(RTM_GETNEIGH, NLM_F_DUMP, _NDMSG.pack(family, 0, 0, 0, 0)):
            if msg_type != RTM_NEWNEIGH:
                continue
            _family, ifindex, _state, flags, _type = _NDMSG.unpack_from(payload)
            attrs = attributes(payload, _NDMSG.size)
            if ifindex != index or NDA_LLADDR not in attrs or not is_zebras(flags, attrs.get(NDA_PROTOCOL)):
                continue
            raw = attrs.get(NDA_DST)
            address = socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw) if raw else None
            found.append((_mac(attrs[NDA_LLADDR]), address))
        return found

    def _remote_entries(self, family: int, index: int) -> Iterator[tuple]:
        """(state, flags, protocol, MAC, address) of each entry of one device that names an address (a VTEP or an
        IP): a device's own MAC in the FDB does not. An overlay's device holds thousands: the three attributes are
        read in one pass as ``attributes`` reads them (the first of each type), without a dict per entry."""
        unpack_ndmsg, unpack_attr, start = _NDMSG.unpack_from, _ATTR.unpack_from, _NDMSG.size
        for msg_type, payload in self._request(RTM_GETNEIGH, NLM_F_DUMP, _NDMSG.pack(family, 0, 0, 0, 0)):
            if msg_type != RTM_NEWNEIGH:
                continue
            _family, ifindex, state, flags, _type = unpack_ndmsg(payload)
            if ifindex != index:
                continue
            raw = lladdr = protocol = None
            offset, end = start, len(payload)
            while offset + 4 <= end:
                length, kind = unpack_attr(payload, offset)
                if length < 4:
                    break
                kind &= NLA_TYPE_MASK
                if kind == NDA_DST:
                    raw = payload[offset + 4 : offset + length] if raw is None else raw
                elif kind == NDA_LLADDR:
                    lladdr = payload[offset + 4 : offset + length] if lladdr is None else lladdr
                elif kind == NDA_PROTOCOL:
                    protocol = payload[offset + 4 : offset + length] if protocol is None else protocol
                offset += (length + 3) & ~3
            if raw:
                address = socket.inet_ntop(socket.AF_INET6 if len(raw) == 16 else socket.AF_INET, raw)
                yield state, flags, protocol, _mac(lladdr), address

    # ---- writes: each waits for the kernel's acknowledgement and raises OSError on refusal ----

    def set_link(
        self,
        index: int,
        up: Optional[bool] = None,
        mtu: Optional[int] = None,
        mac: Optional[str] = None,
        alias: Optional[str] = None,
        master: Optional[int] = None,
        group: Optional[int] = None,
        name: Optional[str] = None,
    ) -> None:
        """Change a link's state and attributes in one RTM_SETLINK (a new ``name`` is applied before ``up``)."""
        flags = IFF_UP if up else 0
        change = IFF_UP if up is not None else 0
        body = _IFINFO.pack(0, 0, index, flags, change)
        if name is not None:
            body += attr(IFLA_IFNAME, name.encode() + b"\0")
        if mtu is not None:
            body += attr(IFLA_MTU, _U32.pack(mtu))
        if mac is not None:
            body += attr(IFLA_ADDRESS, bytes(int(part, 16) for part in mac.split(":")))
        if alias is not None:
            body += attr(IFLA_IFALIAS, alias.encode())
        if master is not None:
            body += attr(IFLA_MASTER, _U32.pack(master))
        if group is not None:
            body += attr(IFLA_GROUP, _U32.pack(group))
        self._ack(RTM_SETLINK, 0, body)

    def create_bridge(self, name: str, mac: str) -> None:
        """A bridge, up, with a MAC of its own (it would otherwise take its ports' MACs as they come and go)."""
        body = (
            _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP)
            + attr(IFLA_IFNAME, name.encode() + b"\0")
            + attr(IFLA_ADDRESS, bytes(int(part, 16) for part in mac.split(":")))
        )
        body += attr(IFLA_LINKINFO | NLA_F_NESTED, attr(IFLA_INFO_KIND, b"bridge"))
        self._ack(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def create_veth(
        self, name: str, mtu: int, master: int, peer_name: str, peer_netns_fd: int, peer_mac: Optional[str]
    ) -> Optional[dict]:
        """A veth pair, this end up on ``master``; the peer born inside the namespace behind the fd.

        Returns the new link as the kernel echoes it (its index, and the peer's as ``peer_index``), which saves a
        lookup per end; None from a kernel that echoes no RTM_NEWLINK (before 6.1)."""
        peer = (
            _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, peer_name.encode() + b"\0") + attr(IFLA_MTU, _U32.pack(mtu))
        )
        peer += attr(IFLA_NET_NS_FD, _U32.pack(peer_netns_fd))
        if peer_mac:
            peer += attr(IFLA_ADDRESS, bytes(int(part, 16) for part in peer_mac.split(":")))
        info = attr(IFLA_INFO_KIND, b"veth") + attr(IFLA_INFO_DATA | NLA_F_NESTED, attr(VETH_INFO_PEER, peer))
        body = (
            _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP)
            + attr(IFLA_IFNAME, name.encode() + b"\0")
            + attr(IFLA_MTU, _U32.pack(mtu))
        )
        body += attr(IFLA_MASTER, _U32.pack(master)) + attr(IFLA_LINKINFO | NLA_F_NESTED, info)
        created = None
        for msg_type, payload in self._request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK | NLM_F_ECHO, body):
            if msg_type == RTM_NEWLINK:
                created = _link(payload)
        return created

    def set_port_flags(
        self,
        index: int,
        isolated: Optional[bool] = None,
        hairpin: Optional[bool] = None,
        neigh_suppress: Optional[bool] = None,
        learning: Optional[bool] = None,
    ) -> None:
        """Bridge port flags of BRPORT_FLAGS, those given (not None): ``isolated`` is Docker's icc=false (isolated
        ports reach only the bridge and non-isolated ports); ``hairpin`` lets a DNATed packet go back out of the port
        it came in by; ``neigh_suppress`` and ``learning`` off are what an EVPN VXLAN port needs."""
        flags = {"isolated": isolated, "hairpin": hairpin, "neigh_suppress": neigh_suppress, "learning": learning}
        body = b"".join(
            attr(BRPORT_FLAGS[name][0], bytes([int(value)])) for name, value in flags.items() if value is not None
        )
        self._ack(
            RTM_SETLINK, 0, _IFINFO.pack(socket.AF_BRIDGE, 0, index, 0, 0) + attr(IFLA_PROTINFO | NLA_F_NESTED, body)
        )

    def create_vxlan(
        self, name: str, vni: int, local: str, port: int, mtu: int, mac: str, master: int, up: bool = True
    ) -> None:
        """A VXLAN device on a bridge: learning off (the FDB is made exact from the inventory), ARP proxy on (down with
        ``up=False``)."""
        data = (
            attr(IFLA_VXLAN_ID, _U32.pack(vni))
            + attr(IFLA_VXLAN_LOCAL, socket.inet_pton(socket.AF_INET, local))
            + attr(IFLA_VXLAN_LEARNING, b"\0")
            + attr(IFLA_VXLAN_PROXY, b"\1")
            + attr(IFLA_VXLAN_PORT, struct.pack("!H", port))
        )
        info = attr(IFLA_INFO_KIND, b"vxlan") + attr(IFLA_INFO_DATA | NLA_F_NESTED, data)
        body = (
            _IFINFO.pack(0, 0, 0, IFF_UP if up else 0, IFF_UP)
            + attr(IFLA_IFNAME, name.encode() + b"\0")
            + attr(IFLA_MTU, _U32.pack(mtu))
        )
        body += attr(IFLA_ADDRESS, bytes(int(part, 16) for part in mac.split(":"))) + attr(
            IFLA_MASTER, _U32.pack(master)
        )
        body += attr(IFLA_LINKINFO | NLA_F_NESTED, info)
        self._ack(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body)

    def create_lower(
        self,
        kind: str,
        name: str,
        parent: int,
        mode: str,
        mtu: int,
        mac: Optional[str],
        netns_fd: Optional[int] = None,
    ) -> None:
        """A macvlan or ipvlan link on ``parent``; with ``netns_fd`` it is born inside that namespace, so nothing
        ever appears in the host's namespace (older kernels check ``name`` in the asking namespace, though).
        ``mode``: a macvlan's (bridge, private, vepa, passthru), or an ipvlan's mode and flag ("l2 bridge")."""
        if kind == "macvlan":
            data = attr(IFLA_MACVLAN_MODE, _U32.pack(MACVLAN_MODES[mode]))
        else:
            ipvlan_mode, flag = mode.split()
            data = attr(IFLA_IPVLAN_MODE, _U16.pack(IPVLAN_MODES[ipvlan_mode]))
            data += attr(IFLA_IPVLAN_FLAGS, _U16.pack(IPVLAN_FLAGS[flag]))
        info = attr(IFLA_INFO_KIND, kind.encode()) + attr(IFLA_INFO_DATA | NLA_F_NESTED, data)
        body = (
            _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_IFNAME, name.encode() + b"\0") + attr(IFLA_LINK, _U32.pack(parent))
        )
        if mtu:
            body += attr(IFLA_MTU, _U32.pack(mtu))
        if mac:
            body += attr(IFLA_ADDRESS, bytes(int(part, 16) for part in mac.split(":")))
        if netns_fd is not None:
            body += attr(IFLA_NET_NS_FD, _U32.pack(netns_fd))
        self._ack(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body + attr(IFLA_LINKINFO | NLA_F_NESTED, info))

    def create_vlan(self, name: str, parent: int, vid: int) -> None:
        """An 802.1Q sub-interface of ``parent``, up (needs the kernel's 8021q support)."""
        info = attr(IFLA_INFO_KIND, b"vlan") + attr(
            IFLA_INFO_DATA | NLA_F_NESTED, attr(IFLA_VLAN_ID, struct.pack("=H", vid))
        )
        body = (
            _IFINFO.pack(0, 0, 0, IFF_UP, IFF_UP)
            + attr(IFLA_IFNAME, name.encode() + b"\0")
            + attr(IFLA_LINK, _U32.pack(parent))
        )
        self._ack(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body + attr(IFLA_LINKINFO | NLA_F_NESTED, info))

    def neighbour(self, add: bool, family: int, index: int, mac: str, address: str) -> None:
        """Add or delete a permanent entry: a remote endpoint's IP->MAC on the VXLAN device (family AF_INET),
        or an FDB entry MAC->VTEP (family AF_BRIDGE; several all-zero MACs, one per VTEP, are appended)."""
        self._ack(*neighbour_request(add, family, index, mac, address))

    def port_fdb_entry(self, add: bool, index: int, mac: str) -> None:
        """Add or delete a static FDB entry of bridge port ``index`` (see port_fdb_request)."""
        self._ack(*port_fdb_request(add, index, mac))

    def delete_link(self, index: int) -> None:
        self._ack(RTM_DELLINK, 0, _IFINFO.pack(0, 0, index, 0, 0))

    def delete_group(self, group: int) -> None:
        """Delete every link of a link group in one request (one RCU wait for all)."""
        self._ack(RTM_DELLINK, 0, _IFINFO.pack(0, 0, 0, 0, 0) + attr(IFLA_GROUP, _U32.pack(group)))

    def address(self, add: bool, index: int, address: str, prefixlen: int) -> None:
        """Add (without duplicate address detection for IPv6) or delete an address."""
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        raw = socket.inet_pton(family, address)
        flags = IFA_F_NODAD if add and family == socket.AF_INET6 else 0
        body = _IFADDR.pack(family, prefixlen, flags, 0, index) + attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
        self._ack(RTM_NEWADDR if add else RTM_DELADDR, NLM_F_CREATE | NLM_F_EXCL if add else 0, body)

    def route(self, add: bool, dst: str, dst_len: int, gateway: Optional[str], oif: int) -> None:
        """Add or delete a main-table route through ``oif`` (proto static, as iproute2 and pyroute2 add them)."""
        family = socket.AF_INET6 if ":" in dst else socket.AF_INET
        if add:
            scope = RT_SCOPE_UNIVERSE if gateway or family == socket.AF_INET6 else RT_SCOPE_LINK
            header = _RTMSG.pack(family, dst_len, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, scope, RTN_UNICAST, 0)
        else:
            header = _RTMSG.pack(family, dst_len, 0, 0, RT_TABLE_MAIN, 0, RT_SCOPE_NOWHERE, 0, 0)
        body = header + attr(RTA_OIF, _U32.pack(oif))
        if dst_len:
            body += attr(RTA_DST, socket.inet_pton(family, dst))
        if gateway:
            body += attr(RTA_GATEWAY, socket.inet_pton(family, gateway))
        self._ack(RTM_NEWROUTE if add else RTM_DELROUTE, NLM_F_CREATE | NLM_F_EXCL if add else 0, body)


def neighbour_request(add: bool, family: int, index: int, mac: str, address: str) -> Tuple[int, int, bytes]:
    """The (kind, flags, body) of ``Rtnl.neighbour``'s request, for ``Netlink.batch``."""
    flags = NTF_SELF if family == socket.AF_BRIDGE else 0
    body = _NDMSG.pack(family, index, NUD_PERMANENT, flags, 0)
    body += attr(NDA_LLADDR, bytes(int(part, 16) for part in mac.split(":")))
    body += attr(NDA_DST, socket.inet_pton(socket.AF_INET6 if ":" in address else socket.AF_INET, address))
    if add:
        return RTM_NEWNEIGH, NLM_F_CREATE | (NLM_F_APPEND if family == socket.AF_BRIDGE else NLM_F_REPLACE), body
    return RTM_DELNEIGH, 0, body


def port_fdb_request(add: bool, index: int, mac: str) -> Tuple[int, int, bytes]:
    """A static FDB entry of a bridge port (``bridge fdb add MAC dev PORT master static``): what an EVPN speaker
    advertises for a local endpoint before it sends anything."""
    body = _NDMSG.pack(socket.AF_BRIDGE, index, NUD_NOARP, NTF_MASTER, 0)
    body += attr(NDA_LLADDR, bytes(int(part, 16) for part in mac.split(":")))
    if add:
        return RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, body
    return RTM_DELNEIGH, 0, body


def is_zebras(flags: int, protocol: Optional[bytes]) -> bool:
    """Whether a neighbour or FDB entry is surely FRR zebra's: it marks remote EVPN MACs and neighbours extern_learn
    and its neighbours proto zebra (its flood entries only NOARP: see Rtnl.neighbours); the entries this collection
    writes are plain permanent ones."""
    return bool(flags & NTF_EXT_LEARNED or (protocol and protocol[0] == RTPROT_ZEBRA))


def _link(payload: bytes) -> dict:
    _family, _type, index, flags, _change = _IFINFO.unpack_from(payload)
    attrs = attributes(payload, _IFINFO.size)
    info = attributes(attrs[IFLA_LINKINFO]) if IFLA_LINKINFO in attrs else {}
    vxlan = None
    if _text(info.get(IFLA_INFO_KIND)) == "vxlan" and IFLA_INFO_DATA in info:
        data = attributes(info[IFLA_INFO_DATA])
        vxlan = {
            "vni": _u32(data.get(IFLA_VXLAN_ID)),
            "local": _ip(socket.AF_INET, data.get(IFLA_VXLAN_LOCAL)),
            "port": struct.unpack("!H", data[IFLA_VXLAN_PORT])[0] if IFLA_VXLAN_PORT in data else None,
            "learning": bool(data.get(IFLA_VXLAN_LEARNING, b"\1")[0]),
            "proxy": bool(data.get(IFLA_VXLAN_PROXY, b"\0")[0]),
        }
    mode = None
    kind = _text(info.get(IFLA_INFO_KIND))
    if kind in ("macvlan", "vlan", "ipvlan") and IFLA_INFO_DATA in info:
        data = attributes(info[IFLA_INFO_DATA])
        if IFLA_MACVLAN_MODE in data and kind == "macvlan":
            mode = {number: name for name, number in MACVLAN_MODES.items()}.get(_u32(data[IFLA_MACVLAN_MODE]))
        elif kind == "ipvlan":
            mode = "%s %s" % (
                _name_of(IPVLAN_MODES, data.get(IFLA_IPVLAN_MODE)),
                _name_of(IPVLAN_FLAGS, data.get(IFLA_IPVLAN_FLAGS)),
            )
        elif IFLA_VLAN_ID in data:
            mode = "vlan %d" % struct.unpack_from("=H", data[IFLA_VLAN_ID])[0]
    return {
        "index": index,
        "name": _text(attrs.get(IFLA_IFNAME)),
        "kind": _text(info.get(IFLA_INFO_KIND)),
        "mtu": _u32(attrs.get(IFLA_MTU)),
        "mac": _mac(attrs.get(IFLA_ADDRESS)),
        "up": bool(flags & 1),
        "master": _u32(attrs.get(IFLA_MASTER)),
        "peer_index": _u32(attrs.get(IFLA_LINK)),
        "alias": _text(attrs.get(IFLA_IFALIAS)) or None,
        "group": _u32(attrs.get(IFLA_GROUP)) or 0,
        "vxlan": vxlan,
        "mode": mode,
        "ipv6_disabled": _ipv6_disabled(attrs.get(IFLA_AF_SPEC)),
        "operstate": _operstate(attrs.get(IFLA_OPERSTATE)),
    }


def _operstate(raw: Optional[bytes]) -> str:
    """The link's operational state (``up``, ``down``, ``lowerlayerdown``...)."""
    return OPERSTATE_NAMES[raw[0]] if raw and raw[0] < len(OPERSTATE_NAMES) else "unknown"


def _ipv6_disabled(af_spec: Optional[bytes]) -> Optional[bool]:
    """The link's net.ipv6.conf.IFNAME.disable_ipv6 as the link dump carries it (a /proc/sys read costs more with
    every namespace of the machine); None where the link has no IPv6 settings (nor that sysctl)."""
    if af_spec is None:
        return None
    inet6 = attributes(af_spec).get(socket.AF_INET6)
    conf = attributes(inet6).get(IFLA_INET6_CONF) if inet6 is not None else None
    if conf is None or len(conf) < 4 * (DEVCONF_DISABLE_IPV6 + 1):
        return None
    return bool(struct.unpack_from("=i", conf, 4 * DEVCONF_DISABLE_IPV6)[0])


# ---- read-only, for reports (cnm_info): what the link dump above leaves out ----
IFLA_OPERSTATE = 16
OPERSTATE_NAMES = (
    "unknown",
    "notpresent",
    "down",
    "lowerlayerdown",
    "testing",
    "dormant",
    "up",
)  # RFC 2863, as iproute2 prints them


def _name_of(names: dict, value: Optional[bytes]) -> str:
    """The name of a u16 setting (an ipvlan's mode or flag; the kernel omits neither, 0 when absent)."""
    number = _U16.unpack_from(value)[0] if value else 0
    return next((name for name, known in names.items() if known == number), str(number))
