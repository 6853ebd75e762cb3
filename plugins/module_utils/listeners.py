# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host processes listening on published host ports, in one place for the refusal and the drift report.

Without a daemon the host port of a published port cannot be held (Docker's proxy holds it): a process that
binds it is bypassed by the DNAT. Publishing refuses a port already bound; ``cnm_info`` reports one bound
later as drift, and ``cnm_port_publish`` warns - all three with the words of ``bound_by``.
"""

from __future__ import annotations

import ipaddress
import os
from typing import FrozenSet, List, NamedTuple, Optional

from ansible_collections.cnm.network.plugins.module_utils.ports import ANY, Slot, slots_overlap

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp


class Listener(NamedTuple):
    protocol: str
    slot: Slot  # the bound address; a [::] socket takes IPv4 too unless IPV6_V6ONLY, which /proc does not show
    port: int
    inode: str


def listeners() -> List[Listener]:
    """The host namespace's listening TCP and bound UDP sockets, from /proc/self/net (one read per table)."""
    found = []
    for protocol, tables in (("tcp", ("tcp", "tcp6")), ("udp", ("udp", "udp6"))):
        for table in tables:
            try:
                with open("/proc/self/net/%s" % table) as handle:
                    lines = handle.read().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                fields = line.split()
                if protocol == "tcp" and fields[3] != _LISTEN:
                    continue
                address, port = fields[1].rsplit(":", 1)
                found.append(Listener(protocol, _slot(address), int(port, 16), fields[9]))
    return found


def _slot(hex_address: str) -> Slot:
    """A /proc/net address (host byte order per 32-bit word) as (family, address); v4-mapped IPv6 is IPv4."""
    words = bytes.fromhex(hex_address)
    raw = b"".join(bytes(reversed(words[i : i + 4])) for i in range(0, len(words), 4))
    address = ipaddress.ip_address(raw)
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.version, address


def _socket_slots(listener: Listener) -> FrozenSet[Slot]:
    family, address = listener.slot
    if family == 6 and address.is_unspecified:
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
