# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The IPsec an encrypted overlay needs, rendered (not yet programmed: cnm_overlay refuses ``encrypted``).

Docker's design: ESP in transport mode between every pair of VTEPs for the VXLAN UDP traffic,
AES-GCM (``rfc4106(gcm(aes))``: a 128-bit key and a 32-bit salt, a 128-bit ICV), one SPI and key per
direction derived from the shared key and the two addresses, so both ends compute the same states
without talking. Rotation keeps the states of every listed key and points the outbound policy at
the primary one: add the new key, switch the primary, remove the old key.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import List, Sequence

AEAD = "rfc4106(gcm(aes))"
ICV_BITS = 128


def spi(key: str, src, dst) -> int:
    """The SPI of one direction under one key: the same on both VTEPs, never in the reserved 0-255."""
    digest = hmac.new(key.encode(), ("spi|%s|%s" % (src, dst)).encode(), hashlib.sha256).digest()
    return 0x100 + int.from_bytes(digest[:4], "big") % (0xFFFFFFFF - 0x100)


def key_material(key: str, src, dst) -> str:
    """20 bytes (16 of AES key, 4 of salt) for one direction, as hex for ``ip xfrm state ... aead``."""
    return "0x" + hmac.new(key.encode(), ("key|%s|%s" % (src, dst)).encode(), hashlib.sha256).digest()[:20].hex()


def render(local_ip, peers: Sequence, keys: Sequence[str], port: int = 4789) -> dict:
    """States (one per direction, peer and key) and policies (out and in per peer) for VXLAN over ESP.

    ``keys[0]`` is the primary key: the outbound policies use its SPIs; the others stay installed
    so that packets in flight under them are still accepted during a rotation.
    """
    if not keys:
        raise ValueError("at least one key is needed")
    local = ipaddress.ip_address(str(local_ip))
    states: List[dict] = []
    policies: List[dict] = []
    for peer in sorted(ipaddress.ip_address(str(p)) for p in peers):
        for key in keys:
            for src, dst in ((local, peer), (peer, local)):
                states.append({"src": str(src), "dst": str(dst), "proto": "esp", "mode": "transport", "spi": spi(key, src, dst),
                               "aead": {"name": AEAD, "key": key_material(key, src, dst), "icv_bits": ICV_BITS},
                               "selector": {"src": "%s/32" % src, "dst": "%s/32" % dst, "proto": "udp"}})
        for direction, src, dst in (("out", local, peer), ("in", peer, local)):
            policy = {"dir": direction, "src": "%s/32" % src, "dst": "%s/32" % dst, "proto": "udp", "dport": port,
                      "tmpl": {"src": str(src), "dst": str(dst), "proto": "esp", "mode": "transport"}}
            if direction == "out":
                policy["tmpl"]["spi"] = spi(keys[0], src, dst)
            policies.append(policy)
    return {"states": states, "policies": policies}
