# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small XFRM netlink client (NETLINK_XFRM): dumps, adds, updates and deletes of IPsec states and policies.

In the style of rtnl.py: the message layouts of linux/xfrm.h are stable kernel ABI, packed with
``struct`` (64-bit layout: the 64-bit counters of the lifetime structures are 8-byte aligned).
No subprocess (``ip xfrm``) is needed, and reads cost one dump each.

States and policies travel as the plain dicts ipsec.render() produces:

- state: ``{"src", "dst", "spi", "reqid", "mode": "transport", "proto": "esp",
  "aead": {"name", "key" (hex "0x..."), "icv_bits"}, "selector": {"src", "dst", "proto", "dport"}}``
- policy: ``{"dir": "in"|"out", "src", "dst" (CIDR), "proto", "dport", "priority",
  "tmpl": {"src", "dst", "proto", "mode", "spi", "reqid"}}``
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from typing import List, Optional

from ansible_collections.cnm.network.plugins.module_utils.rtnl import (
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    Netlink,
    attr,
    attributes,
)

NETLINK_XFRM = 6
XFRM_MSG_NEWSA, XFRM_MSG_DELSA, XFRM_MSG_GETSA = 0x10, 0x11, 0x12
XFRM_MSG_NEWPOLICY, XFRM_MSG_DELPOLICY, XFRM_MSG_GETPOLICY = 0x13, 0x14, 0x15
XFRM_MSG_UPDPOLICY = 0x19
XFRMA_TMPL, XFRMA_ALG_AEAD = 5, 18
XFRM_INF = 0xFFFFFFFFFFFFFFFF
XFRM_MODE_TRANSPORT = 0
DIRECTIONS = {"in": 0, "out": 1, "fwd": 2}
PROTOCOLS = {"esp": socket.IPPROTO_ESP, "udp": socket.IPPROTO_UDP}
MODES = {"transport": XFRM_MODE_TRANSPORT, "tunnel": 1}

# xfrm_selector: daddr, saddr (16 each), dport, dport_mask, sport, sport_mask (network order), family, prefixlen_d,
# prefixlen_s, proto, 3 bytes of padding, ifindex, user: 56 bytes
_SELECTOR = struct.Struct("=16s16s2s2s2s2sHBBB3xiI")
_LIFETIME_CFG = struct.Struct("=8Q")  # byte, packet limits (soft, hard), add/use expiry (soft, hard): 64 bytes
_LIFETIME_CUR = struct.Struct("=4Q")  # 32 bytes
# xfrm_usersa_info: selector, xfrm_id (daddr, spi, proto + 3 padding), saddr, lifetime cfg and cur, stats (3 x u32),
# seq, reqid, family, mode, replay_window, flags, 7 bytes of padding: 224 bytes
_USERSA_INFO = struct.Struct("=56s16s4sB3x16s64s32s12sIIHBBB7x")
_USERSA_ID = struct.Struct("=16s4sHB1x")  # daddr, spi, family, proto: 24 bytes
# xfrm_userpolicy_info: selector, lifetime cfg and cur, priority, index, dir, action, flags, share,
# 4 bytes of padding: 168
_USERPOLICY_INFO = struct.Struct("=56s64s32sIIBBBB4x")
_USERPOLICY_ID = struct.Struct("=56sIB3x")  # selector, index, dir: 64 bytes
# xfrm_user_tmpl: xfrm_id (daddr, spi, proto, 3 padding), family, 2 padding, saddr, reqid, mode, share, optional,
# 1 padding, aalgos, ealgos, calgos: 64 bytes
_USER_TMPL = struct.Struct("=16s4sB3xH2x16sIBBBxIII")
_AEAD = struct.Struct("=64sII")  # alg_name, alg_key_len (bits), alg_icv_len (bits), then the key


def _addr(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, text) + b"\0" * 12


def _text(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, raw[:4])


def _selector(src: str, dst: str, proto: str, dport: Optional[int]) -> bytes:
    source, target = ipaddress.ip_network(src), ipaddress.ip_network(dst)
    port, mask = (struct.pack("!H", dport), b"\xff\xff") if dport else (b"\0\0", b"\0\0")
    return _SELECTOR.pack(
        _addr(str(target.network_address)),
        _addr(str(source.network_address)),
        port,
        mask,
        b"\0\0",
        b"\0\0",
        socket.AF_INET,
        target.prefixlen,
        source.prefixlen,
        PROTOCOLS[proto],
        0,
        0,
    )


def _read_selector(raw: bytes) -> dict:
    daddr, saddr, dport, dmask, _sport, _smask, _family, plen_d, plen_s, proto, _ifindex, _user = _SELECTOR.unpack(raw)
    names = {number: name for name, number in PROTOCOLS.items()}
    return {
        "src": "%s/%d" % (_text(saddr), plen_s),
        "dst": "%s/%d" % (_text(daddr), plen_d),
        "proto": names.get(proto, proto),
        "dport": struct.unpack("!H", dport)[0] if dmask != b"\0\0" else None,
    }


_NO_LIMITS = _LIFETIME_CFG.pack(XFRM_INF, XFRM_INF, XFRM_INF, XFRM_INF, 0, 0, 0, 0)


def encode_state(state: dict) -> bytes:
    """XFRM_MSG_NEWSA's body: xfrm_usersa_info and the AEAD algorithm with its key."""
    sel = state["selector"]
    info = _USERSA_INFO.pack(
        _selector(sel["src"], sel["dst"], sel["proto"], sel.get("dport")),
        _addr(state["dst"]),
        struct.pack("!I", state["spi"]),
        PROTOCOLS[state["proto"]],
        _addr(state["src"]),
        _NO_LIMITS,
        b"\0" * _LIFETIME_CUR.size,
        b"\0" * 12,
        0,
        state["reqid"],
        socket.AF_INET,
        MODES[state["mode"]],
        0,
        0,
    )
    key = bytes.fromhex(state["aead"]["key"][2:])
    aead = _AEAD.pack(state["aead"]["name"].encode(), len(key) * 8, state["aead"]["icv_bits"]) + key
    return info + attr(XFRMA_ALG_AEAD, aead)


def decode_state(payload: bytes) -> dict:
    sel, daddr, spi, proto, saddr, _lft, _cur, _stats, _seq, reqid, _family, mode, _window, _flags = (
        _USERSA_INFO.unpack_from(payload)
    )
    attrs = attributes(payload, _USERSA_INFO.size)
    state = {
        "src": _text(saddr),
        "dst": _text(daddr),
        "spi": struct.unpack("!I", spi)[0],
        "reqid": reqid,
        "proto": {v: k for k, v in PROTOCOLS.items()}.get(proto, proto),
        "mode": {v: k for k, v in MODES.items()}.get(mode, mode),
        "selector": _read_selector(sel),
        "aead": None,
    }
    raw = attrs.get(XFRMA_ALG_AEAD)
    if raw is not None:
        name, key_bits, icv_bits = _AEAD.unpack_from(raw)
        key = raw[_AEAD.size : _AEAD.size + key_bits // 8]
        state["aead"] = {"name": name.split(b"\0", 1)[0].decode(), "key": "0x" + key.hex(), "icv_bits": icv_bits}
    return state


def encode_policy(policy: dict) -> bytes:
    """XFRM_MSG_NEWPOLICY / UPDPOLICY's body: xfrm_userpolicy_info and one template."""
    info = _USERPOLICY_INFO.pack(
        _selector(policy["src"], policy["dst"], policy["proto"], policy.get("dport")),
        _NO_LIMITS,
        b"\0" * _LIFETIME_CUR.size,
        policy.get("priority", 0),
        0,
        DIRECTIONS[policy["dir"]],
        0,
        0,
        0,
    )
    tmpl = policy["tmpl"]
    raw = _USER_TMPL.pack(
        _addr(tmpl["dst"]),
        struct.pack("!I", tmpl.get("spi") or 0),
        PROTOCOLS[tmpl["proto"]],
        socket.AF_INET,
        _addr(tmpl["src"]),
        tmpl.get("reqid", 0),
        MODES[tmpl["mode"]],
        0,
        0,
        0xFFFFFFFF,
        0xFFFFFFFF,
        0xFFFFFFFF,
    )
    return info + attr(XFRMA_TMPL, raw)


def decode_policy(payload: bytes) -> dict:
    sel, _lft, _cur, priority, index, direction, _action, _flags, _share = _USERPOLICY_INFO.unpack_from(payload)
    selector = _read_selector(sel)
    policy = {
        "dir": {v: k for k, v in DIRECTIONS.items()}.get(direction, direction),
        "src": selector["src"],
        "dst": selector["dst"],
        "proto": selector["proto"],
        "dport": selector["dport"],
        "priority": priority,
        "index": index,
        "tmpl": None,
    }
    raw = attributes(payload, _USERPOLICY_INFO.size).get(XFRMA_TMPL)
    if raw is not None and len(raw) >= _USER_TMPL.size:
        daddr, spi, proto, _family, saddr, reqid, mode, _share, _optional, _a, _e, _c = _USER_TMPL.unpack_from(raw)
        policy["tmpl"] = {
            "src": _text(saddr),
            "dst": _text(daddr),
            "proto": {v: k for k, v in PROTOCOLS.items()}.get(proto, proto),
            "mode": {v: k for k, v in MODES.items()}.get(mode, mode),
            "spi": struct.unpack("!I", spi)[0] or None,
            "reqid": reqid,
        }
    return policy


class Xfrm(Netlink):
    """A NETLINK_XFRM socket of the namespace it was opened in."""

    def __init__(self) -> None:
        super().__init__(NETLINK_XFRM)

    @staticmethod
    def _error_text(kind: int, code: int) -> str:
        return _explain(kind, code)

    def states(self) -> List[dict]:
        return [
            decode_state(p)
            for t, p in self._request(XFRM_MSG_GETSA, NLM_F_DUMP, _USERSA_ID.pack(b"\0" * 16, b"\0" * 4, 0, 0))
            if t == XFRM_MSG_NEWSA
        ]

    def policies(self) -> List[dict]:
        return [
            decode_policy(p)
            for t, p in self._request(XFRM_MSG_GETPOLICY, NLM_F_DUMP, _USERPOLICY_ID.pack(b"\0" * 56, 0, 0))
            if t == XFRM_MSG_NEWPOLICY
        ]

    def add_state(self, state: dict) -> None:
        self._ack(XFRM_MSG_NEWSA, NLM_F_CREATE | NLM_F_EXCL, encode_state(state))

    def delete_state(self, state: dict) -> None:
        self._ack(
            XFRM_MSG_DELSA,
            0,
            _USERSA_ID.pack(
                _addr(state["dst"]), struct.pack("!I", state["spi"]), socket.AF_INET, PROTOCOLS[state["proto"]]
            ),
        )

    def add_policy(self, policy: dict, update: bool = False) -> None:
        """A new policy, or (``update``) one that replaces the policy of the same selector and direction at once."""
        if update:
            self._ack(XFRM_MSG_UPDPOLICY, 0, encode_policy(policy))
        else:
            self._ack(XFRM_MSG_NEWPOLICY, NLM_F_CREATE | NLM_F_EXCL, encode_policy(policy))

    def delete_policy(self, policy: dict) -> None:
        selector = _selector(policy["src"], policy["dst"], policy["proto"], policy.get("dport"))
        self._ack(XFRM_MSG_DELPOLICY, 0, _USERPOLICY_ID.pack(selector, 0, DIRECTIONS[policy["dir"]]))


def _explain(kind: int, code: int) -> str:
    text = os.strerror(code)
    if kind == XFRM_MSG_NEWSA and code in (2, 38, 93, 97):  # ENOENT, ENOSYS, EPROTONOSUPPORT, EAFNOSUPPORT
        text += " (the kernel lacks ESP or the AEAD algorithm rfc4106(gcm(aes)))"
    return text
