# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Send ICMP echoes at a fixed rate until a file appears, then wait a bounded time for the replies.

Usage: echo_loop.py TARGET STOP_FILE [INTERVAL] [MAX_SECONDS] [GRACE]

Counts only its own echoes: one identifier, and a marker with a 32-bit sequence number in each
payload, so no other ICMP on the host (another loop, a neighbour's ping) is counted. ping(8) with
-c waits only about two round trips for the last reply of a round, so a reply late by a scheduler
hiccup of the emulated guest was counted lost; here every echo gets GRACE seconds (default 5)
after the last one is sent. Prints "transmitted N answered M", the unanswered sequence numbers
(at most 20) and "window START END" (this host's clock when the first and the last echo left).
"""

import os
import select
import socket
import struct
import sys
import time

MARKER = b"cnm-eo-echo-loop"


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo(ident: int, seq: int) -> bytes:
    payload = MARKER + struct.pack("!I", seq)
    packet = struct.pack("!BBHHH", 8, 0, 0, ident, seq & 0xFFFF) + payload
    return packet[:2] + struct.pack("!H", checksum(packet)) + packet[4:]


def own_reply(data: bytes, ident: int):
    """The 32-bit sequence number of one of our echo replies in an IPv4 datagram, else None."""
    icmp = data[(data[0] & 0x0F) * 4 :]
    if len(icmp) < 8 + len(MARKER) + 4 or icmp[0] != 0 or struct.unpack("!H", icmp[4:6])[0] != ident:
        return None
    if icmp[8 : 8 + len(MARKER)] != MARKER:
        return None
    return struct.unpack("!I", icmp[8 + len(MARKER) : 12 + len(MARKER)])[0]


def main() -> None:
    target, stop_file = sys.argv[1:3]
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.05
    max_seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 1200.0
    grace = float(sys.argv[5]) if len(sys.argv) > 5 else 5.0
    ident = os.getpid() & 0xFFFF
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sent = 0
    answered = set()
    start = time.time()
    last_sent = start
    next_send = time.monotonic()
    deadline = next_send + max_seconds
    while True:
        now = time.monotonic()
        if now >= next_send:
            if os.path.exists(stop_file) or now >= deadline:
                break
            sock.sendto(echo(ident, sent), (target, 0))
            last_sent = time.time()
            sent += 1
            next_send += interval
            if next_send < now:  # the guest stalled: keep the rate, do not burst to catch up
                next_send = now + interval
        readable = select.select([sock], [], [], max(0.0, next_send - time.monotonic()))[0]
        if readable:
            seq = own_reply(sock.recv(65535), ident)
            if seq is not None and seq < sent:
                answered.add(seq)
    wait_until = time.monotonic() + grace
    while len(answered) < sent and time.monotonic() < wait_until:
        readable = select.select([sock], [], [], max(0.0, wait_until - time.monotonic()))[0]
        if readable:
            seq = own_reply(sock.recv(65535), ident)
            if seq is not None and seq < sent:
                answered.add(seq)
    missing = sorted(set(range(sent)) - answered)
    print("transmitted %d answered %d" % (sent, len(answered)))
    print("unanswered %s" % (" ".join(str(seq) for seq in missing[:20]) or "none"))
    print("window %.6f %.6f" % (start, last_sent))


if __name__ == "__main__":
    main()
