# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host processes listening on published host ports, in one place for the refusal and the drift report.

Without a daemon the host port of a published port cannot be held (Docker's proxy holds it): a process that
binds it is bypassed by the DNAT. Publishing refuses a port already bound; ``cnm_info`` reports one bound
later as drift, and ``cnm_port_publish`` warns - all three with the words of ``bound_by``.

The sockets come from sock_diag (what ``ss -l`` reads): the kernel filters them by state, and it tells an
IPv6-only socket from a dual-stack one, which /proc/net does not.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from typing import FrozenSet, List, NamedTuple, Optional

from ansible_collections.cnm.network.plugins.module_utils.ports import ANY, Slot, slots_overlap
from ansible_collections.cnm.network.plugins.module_utils.rtnl import NLM_F_DUMP, Netlink, attributes

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
TCP_LISTEN = 10
INET_DIAG_SKV6ONLY = 11
PROTOCOLS = (("tcp", socket.IPPROTO_TCP, 1 << TCP_LISTEN), ("udp", socket.IPPROTO_UDP, 0xFFFFFFFF))  # UDP: any state
# inet_diag_req_v2: family, protocol, extensions, pad, states; then inet_diag_sockid (all zero: no filter)
_REQUEST = struct.Struct("=BBBxI48x")
# inet_diag_msg: family, state, timer, retransmits; sockid: sport, dport (big endian), source, destination, ifindex,
# cookie; then expires, rqueue, wqueue, uid, inode
_MESSAGE = struct.Struct("=BBBB2s2s16s16sI8sIIIII")
_BE16 = struct.Struct("!H")


class Listener(NamedTuple):
    protocol: str
    slot: Slot  # the bound address
    port: int
    inode: str
    v6only: bool = False  # an IPv6 socket with IPV6_V6ONLY: a [::] one does not take IPv4


class SockDiag(Netlink):
    """The sock_diag socket of the namespace it was opened in: the kernel filters listeners by state."""

    def __init__(self) -> None:
        super().__init__(NETLINK_SOCK_DIAG)

    def sockets(self, family: int, protocol: int, states: int) -> List[tuple]:
        """(address, port, inode, v6only) of each socket of ``family``/``protocol`` in one of ``states`` (a mask)."""
        body = _REQUEST.pack(family, protocol, 0, states)
        return [
            decode_socket(family, payload) for _type, payload in self._request(SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, body)
        ]


def decode_socket(family: int, payload: bytes) -> tuple:
    """(address, port, inode, v6only) of one inet_diag_msg (the kernel sends SKV6ONLY for every IPv6 socket)."""
    fields = _MESSAGE.unpack_from(payload)
    raw = fields[6][:4] if family == socket.AF_INET else fields[6]
    v6only = attributes(payload, _MESSAGE.size).get(INET_DIAG_SKV6ONLY, b"\0")[:1] == b"\1"
    return ipaddress.ip_address(raw), _BE16.unpack(fields[4])[0], str(fields[14]), v6only


def listeners() -> List[Listener]:
    """The host namespace's listening TCP and bound UDP sockets: one sock_diag dump per protocol and family."""
    found = []
    session = SockDiag()
    try:
        for protocol, number, states in PROTOCOLS:
            for family in (socket.AF_INET, socket.AF_INET6):
                try:
                    sockets = session.sockets(family, number, states)
                except OSError as exc:
                    if exc.errno == errno.ENOENT:  # no diag handler for the protocol, and none could be loaded
                        raise OSError(
                            exc.errno, "sock_diag cannot list %s sockets (modprobe %s_diag)" % (protocol, protocol)
                        ) from exc
                    raise
                for address, port, inode, v6only in sockets:
                    found.append(Listener(protocol, _slot(address), port, inode, v6only))
    finally:
        session.close()
    return found


def _slot(address) -> Slot:
    """(family, address) of a bound address; an IPv4-mapped IPv6 address is the IPv4 one."""
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.version, address


def _socket_slots(listener: Listener) -> FrozenSet[Slot]:
    family, address = listener.slot
    if family == 6 and address.is_unspecified and not listener.v6only:
        return frozenset({(6, address), (4, ANY[4])})  # a dual-stack socket (the default, net.ipv6.bindv6only=0)
    return frozenset({listener.slot})


def clashing(found: List[Listener], protocol: str, port: int, slots: FrozenSet[Slot]) -> Optional[Listener]:
    """The first listener that takes one of the host addresses ``slots`` of ``protocol``/``port``, if any."""
    for listener in found:
        if (listener.protocol, listener.port) == (protocol, port) and slots_overlap(_socket_slots(listener), slots):
            return listener
    return None


def socket_owner(inode: str) -> str:
    """``process PID (comm)`` of the process holding the socket, or the socket's inode when none is found."""
    target = "socket:[%s]" % inode
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir("/proc/%s/fd" % pid):
                if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == target:
                    with open("/proc/%s/comm" % pid) as handle:
                        return "process %s (%s)" % (pid, handle.read().strip())
        except OSError:
            continue
    return "a socket (inode %s)" % inode


def bound_by(listener: Listener) -> str:
    """The one wording of a host port taken by a process, used by the refusal, the warning and the drift."""
    return "host port is already bound by %s on this host" % socket_owner(listener.inode)
