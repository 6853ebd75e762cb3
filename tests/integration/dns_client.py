"""A DNS client for the tests: one query over UDP, the answer as JSON (run inside a sandbox with nsenter).

    python3 dns_client.py SERVER NAME [A|AAAA|PTR [TIMEOUT [udp|tcp]]]
      ->  {"rcode": 0, "answers": ["10.0.0.2"], "owners": ["web."]}, {"timeout": true} (none within TIMEOUT
          seconds, default 2), {"refused": true} (an ICMP port unreachable, or a TCP reset), {"closed": true} (TCP:
          closed before the whole answer) or {"error": "Network is unreachable"}

It speaks the wire format itself (RFC 1035), so the test depends on nothing but the resolver under test.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import struct
import sys

TYPES = {"A": 1, "PTR": 12, "AAAA": 28}


def encode_name(name: str) -> bytes:
    labels = [label for label in name.rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label.encode() for label in labels) + b"\0"


def read_name(message: bytes, offset: int) -> tuple:
    """(the name at ``offset``, the offset after it), following compression pointers."""
    labels, end = [], None
    while True:
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | message[offset + 1]
            continue
        if length == 0:
            return ".".join(labels) + ".", end if end is not None else offset + 1
        labels.append(message[offset + 1 : offset + 1 + length].decode())
        offset += 1 + length


def query(server: str, name: str, kind: str = "A", timeout: float = 2.0, transport: str = "udp") -> dict:
    if kind == "PTR" and not name.endswith(".arpa"):
        name = ipaddress.ip_address(name).reverse_pointer
    ident = int.from_bytes(os.urandom(2), "big")
    packet = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", TYPES[kind], 1)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    if transport == "tcp":
        try:
            message = exchange_tcp(family, server, packet, timeout)
        except TimeoutError:
            return {"timeout": True}
        except ConnectionRefusedError:
            return {"refused": True}
        except EOFError:
            return {"closed": True}
        return parse(message)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(packet, (server, 53))
        except OSError as exc:  # a sandbox with no route to the server
            return {"error": exc.strerror}
        while True:
            try:
                message = sock.recv(4096)
            except TimeoutError:
                return {"timeout": True}
            except ConnectionRefusedError:  # an ICMP port unreachable: nothing listens there
                return {"refused": True}
            if message[:2] == packet[:2]:
                break
    return parse(message)


def exchange_tcp(family: int, server: str, packet: bytes, timeout: float) -> bytes:
    """One query over TCP: each message is preceded by its length (RFC 1035 4.2.2)."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect((server, 53))
        sock.sendall(struct.pack("!H", len(packet)) + packet)
        data = b""
        while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
            chunk = sock.recv(4096)
            if not chunk:
                raise EOFError("closed before the whole answer")
            data += chunk
        return data[2 : 2 + struct.unpack("!H", data[:2])[0]]


def parse(message: bytes) -> dict:
    _ident, flags, questions, count = struct.unpack("!HHHH", message[:8])
    offset = 12
    for _question in range(questions):
        offset = read_name(message, offset)[1] + 4
    answers, owners = [], []
    for _answer in range(count):
        owner, offset = read_name(message, offset)
        rtype, _class, _ttl, length = struct.unpack("!HHIH", message[offset : offset + 10])
        offset += 10
        data = message[offset : offset + length]
        if rtype == 1:
            answers.append(socket.inet_ntop(socket.AF_INET, data))
        elif rtype == 28:
            answers.append(socket.inet_ntop(socket.AF_INET6, data))
        elif rtype == 12:
            answers.append(read_name(message, offset)[0])
        owners.append(owner)
        offset += length
    return {"rcode": flags & 0xF, "answers": sorted(answers), "owners": owners}


if __name__ == "__main__":
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0
    transport = sys.argv[5] if len(sys.argv) > 5 else "udp"
    print(json.dumps(query(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "A", timeout, transport)))
