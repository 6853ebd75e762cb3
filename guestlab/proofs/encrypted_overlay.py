# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Send VXLAN in clear to an encrypted overlay, as a listed peer would if it skipped IPsec.

Usage: encrypted_overlay.py SRC DST PORT VNI INNER_MAC INNER_IP COUNT

A raw IPv4 socket with the header included: the kernel's XFRM output lookup then sees protocol
255 and no ports, so no policy of the overlay (UDP to PORT) applies and the datagrams leave in
clear, from the peer's own VTEP address. Each carries an ICMP echo request to INNER_IP/INNER_MAC.
"""

import socket
import struct
import sys
import time


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        0x4242,
        0,
        64,
        proto,
        0,
        socket.inet_aton(src),
        socket.inet_aton(dst),
    )
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def main() -> None:
    src, dst, port, vni, inner_mac, inner_ip, count = sys.argv[1:8]
    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4CC, 1) + b"clear vxlan must be dropped"
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    inner = ipv4("10.255.255.254", inner_ip, socket.IPPROTO_ICMP, icmp)
    frame = bytes(int(part, 16) for part in inner_mac.split(":")) + bytes.fromhex("0242deadbeef") + b"\x08\x00" + inner
    vxlan = struct.pack("!II", 0x08000000, int(vni) << 8) + frame
    udp = struct.pack("!HHHH", 54321, int(port), 8 + len(vxlan), 0) + vxlan  # checksum 0: none (IPv4)
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    for _number in range(int(count)):
        sock.sendto(ipv4(src, dst, socket.IPPROTO_UDP, udp), (dst, 0))
        time.sleep(0.05)
    print("sent %s clear VXLAN datagram(s) of VNI %s from %s to %s:%s" % (count, vni, src, dst, port))


if __name__ == "__main__":
    main()
