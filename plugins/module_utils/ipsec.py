# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The IPsec of an encrypted overlay: derivation, rendering and planning of its XFRM states and policies.

Docker's design: ESP in transport mode between every pair of VTEPs for the VXLAN UDP traffic,
AES-GCM (``rfc4106(gcm(aes))``: a 128-bit key and a 32-bit salt, here with the full 128-bit ICV),
one SPI and key per direction derived from the shared key, the two addresses and the VXLAN port,
so both ends compute the same states without talking (the inventory is the control plane).

Ownership: every state and policy we program carries the reqid ``0x636e0000 + port`` ("cn" and
the VXLAN port), as Docker labels its own with a mark; an encrypted overlay has its UDP port to
itself on a host, so the reqid names the network. Objects of others are never touched.

Rotation: the states of every listed key are installed, and the outbound policies point (by SPI)
at the primary key's. A run adds the missing states first, then switches the policies in place
(XFRM_MSG_UPDPOLICY), then removes the states and policies no longer wanted, so a host never sends
with a key whose states its peers lack, provided each step of the procedure (add the new key as an
accepted one, make it the primary, drop the old one) has reached every host before the next starts.
The in-place update is the make-before-break: a second policy of the same selector at a higher priority
cannot be added first (the kernel's policy identity leaves the priority out: EEXIST).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Dict, List, Optional, Sequence, Tuple

from ansible_collections.cnm.network.plugins.module_utils.errors import option_error
from ansible_collections.cnm.network.plugins.module_utils.plan import Op
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST

AEAD = "rfc4106(gcm(aes))"
ICV_BITS = 128
REQID_BASE = 0x636E0000  # "cn" << 16; + the VXLAN port
MIN_KEY_LENGTH = 16
# Bytes an IPv4 VXLAN packet grows by in ESP transport mode with rfc4106(gcm(aes)) and a 16-byte ICV:
# ESP header (SPI 4 + sequence 4) 8, IV 8, pad length 1 + next header 1, ICV 16 = 34, plus 0-3 bytes of padding
# that align the encrypted part to 4 bytes.
ESP_OVERHEAD = 34
VXLAN_OVERHEAD = 50


def reqid(port: int) -> int:
    return REQID_BASE + int(port)


def spi(key: str, src, dst, port: int = 4789) -> int:
    """The SPI of one direction under one key: the same on both VTEPs, never in the reserved 0-255."""
    digest = hmac.new(key.encode(), ("spi|%s|%s|%d" % (src, dst, port)).encode(), hashlib.sha256).digest()
    return 0x100 + int.from_bytes(digest[:4], "big") % (0xFFFFFFFF - 0x100)


def key_material(key: str, src, dst, port: int = 4789) -> str:
    """20 bytes (16 of AES key, 4 of salt) for one direction, as hex (``ip xfrm state ... aead NAME 0x... 128``)."""
    return (
        "0x" + hmac.new(key.encode(), ("key|%s|%s|%d" % (src, dst, port)).encode(), hashlib.sha256).digest()[:20].hex()
    )


def encrypted_mtu(underlay_mtu: int) -> int:
    """The largest overlay MTU whose VXLAN packets fit the underlay once in ESP (1416 on a 1500-byte underlay).

    The kernel's own bound (esp4_get_mtu, transport mode): the IP packet before ESP may be at most
    ((MTU - 16 (ESP header + IV) - 16 (ICV) - 20 (IP header)) & ~3) + 20 - 2; VXLAN takes 50 of it.
    """
    return ((underlay_mtu - 16 - ICV_BITS // 8 - 20) & ~3) + 20 - 2 - VXLAN_OVERHEAD


def render(local_ip, peers: Sequence, keys: Sequence[str], port: int = 4789) -> dict:
    """States (one per direction, peer and key) and policies (out and in per peer) for VXLAN over ESP.

    ``keys[0]`` is the primary key: the outbound policies use its SPIs; the others stay installed
    so that packets sent under them are still accepted during a rotation.
    """
    if not keys:
        raise ValueError("at least one key is needed")
    local = ipaddress.ip_address(str(local_ip))
    states: List[dict] = []
    policies: List[dict] = []
    label = reqid(port)
    for peer in sorted(ipaddress.ip_address(str(p)) for p in peers):
        for key in keys:
            for src, dst in ((local, peer), (peer, local)):
                states.append(
                    {
                        "src": str(src),
                        "dst": str(dst),
                        "proto": "esp",
                        "mode": "transport",
                        "spi": spi(key, src, dst, port),
                        "reqid": label,
                        "aead": {"name": AEAD, "key": key_material(key, src, dst, port), "icv_bits": ICV_BITS},
                        "selector": {"src": "%s/32" % src, "dst": "%s/32" % dst, "proto": "udp", "dport": port},
                    }
                )
        for direction, src, dst in (("out", local, peer), ("in", peer, local)):
            policy = {
                "dir": direction,
                "src": "%s/32" % src,
                "dst": "%s/32" % dst,
                "proto": "udp",
                "dport": port,
                "priority": 0,
                "tmpl": {
                    "src": str(src),
                    "dst": str(dst),
                    "proto": "esp",
                    "mode": "transport",
                    "spi": None,
                    "reqid": label,
                },
            }
            if direction == "out":
                policy["tmpl"]["spi"] = spi(keys[0], src, dst, port)
            policies.append(policy)
    _check_spis(states)
    return {"states": states, "policies": policies}


def _check_spis(states: List[dict]) -> None:
    """Two states with the same (destination, SPI) cannot coexist (a 2^-32 chance per pair: refuse rather than
    misroute)."""
    seen: Dict[Tuple[str, int], dict] = {}
    for state in states:
        other = seen.setdefault((state["dst"], state["spi"]), state)
        if other is not state:
            raise option_error(
                "encryption_key",
                "(not shown)",
                "gives two IPsec states the same SPI 0x%08x towards %s: choose another key"
                % (state["spi"], state["dst"]),
            )


def describe_state(state: dict) -> str:
    """A state without its key: what the diff and the changes show."""
    return "%s -> %s esp spi 0x%08x" % (state["src"], state["dst"], state["spi"])


def describe_policy(policy: dict) -> str:
    tmpl = policy.get("tmpl") or {}
    text = "%s %s -> %s %s dport %s" % (
        policy["dir"],
        policy["src"],
        policy["dst"],
        policy["proto"],
        policy.get("dport"),
    )
    if tmpl.get("spi"):
        text += " esp spi 0x%08x" % tmpl["spi"]
    return text


def describe(states: List[dict], policies: List[dict]) -> Optional[dict]:
    if not states and not policies:
        return None
    return {
        "xfrm states": sorted(describe_state(s) for s in states),
        "xfrm policies": sorted(describe_policy(p) for p in policies),
    }


def _state_identity(state: dict) -> tuple:
    return (state["dst"], state["spi"], state["proto"])


def _state_content(state: dict) -> tuple:
    aead = state.get("aead") or {}
    selector = state.get("selector") or {}
    return (
        state["src"],
        state["reqid"],
        state["mode"],
        aead.get("name"),
        aead.get("key"),
        aead.get("icv_bits"),
        selector.get("src"),
        selector.get("dst"),
        selector.get("proto"),
        selector.get("dport"),
    )


def _policy_identity(policy: dict) -> tuple:
    return (policy["dir"], policy["src"], policy["dst"], policy["proto"], policy.get("dport"))


def _policy_content(policy: dict) -> tuple:
    tmpl = policy.get("tmpl") or {}
    return (
        policy.get("priority", 0),
        tmpl.get("src"),
        tmpl.get("dst"),
        tmpl.get("proto"),
        tmpl.get("mode"),
        tmpl.get("spi"),
        tmpl.get("reqid"),
    )


def current(session, ports: Sequence[int]) -> Tuple[List[dict], List[dict]]:
    """Our states and policies in the kernel (a kernel.NetnsSession): those labelled with the reqid of one of
    ``ports``."""
    labels = {reqid(port) for port in ports}
    states = [s for s in session.xfrm_states() if s["reqid"] in labels]
    policies = [p for p in session.xfrm_policies() if p.get("tmpl") and p["tmpl"]["reqid"] in labels]
    return states, policies


class XfrmState(dict):
    """A state as the XFRM client takes it (a plain dict) that renders, in an Op's words or printed, without its
    key."""

    def describe(self) -> str:
        return describe_state(self)

    def __repr__(self) -> str:
        return "XfrmState(%s)" % describe_state(self)


class XfrmPolicy(dict):
    """A policy as the XFRM client takes it (a plain dict) that renders itself in an Op's words."""

    def describe(self) -> str:
        return describe_policy(self)

    def __repr__(self) -> str:
        return "XfrmPolicy(%s)" % describe_policy(self)


def _replace_state(old: XfrmState, new: XfrmState) -> list:
    """A state whose settings changed goes and comes back (a state cannot be updated in place)."""
    delete = Op(HOST, "delete_xfrm_state", (old,))
    return [
        ("replace xfrm state %s (its settings changed)" % describe_state(new), delete, delete.inverse()),
        Op(HOST, "add_xfrm_state", (new,)),
    ]


def _switch_policy(old: XfrmPolicy, new: XfrmPolicy) -> list:
    """A policy whose template changed (a new primary key) is switched in place: no moment without a policy."""
    update = "update_xfrm_policy"
    return [("switch xfrm policy %s" % describe_policy(new), Op(HOST, update, (new,)), Op(HOST, update, (old,)))]


# The kinds of XFRM object, in the order they are added (and, reversed, removed): kind -> (its identity, its content,
# the object as an Op's argument, the changes that bring an object from old to new: Ops, or (words, apply, undo)).
XFRM_KINDS = {
    "state": (_state_identity, _state_content, XfrmState, _replace_state),
    "policy": (_policy_identity, _policy_content, XfrmPolicy, _switch_policy),
}


def plan(
    host,
    target: str,
    have: Tuple[List[dict], List[dict]],
    want: Tuple[List[dict], List[dict]],
    forgets: tuple = (),
) -> None:
    """Changes that turn our XFRM objects ``have`` into exactly ``want``, in the order that loses no packet.

    New states first (a peer may already send with them), then policies added or switched in place,
    then policies and states no longer wanted. Each change is data: Ops of the host's session (its XFRM verbs), the
    undo too. ``forgets``: the store records whose removal these changes are part of (see Plan.forgotten).
    """
    tables = {}  # kind -> (the objects there, the objects wanted), each by identity
    for index, (kind, (key_of, _content, wrap, _changed)) in enumerate(XFRM_KINDS.items()):
        tables[kind] = ({key_of(o): wrap(o) for o in have[index]}, {key_of(o): wrap(o) for o in want[index]})
    changes: list = []
    for kind, (_identity, content, _wrap, changed) in XFRM_KINDS.items():  # new states, then policies added/switched
        present, wanted = tables[kind]
        for key, new in wanted.items():
            old = present.get(key)
            if old is None:
                changes.append(Op(HOST, "add_xfrm_" + kind, (new,)))
            elif content(old) != content(new):
                changes.extend(changed(old, new))
    for kind in reversed(XFRM_KINDS):  # then what is no longer wanted: policies before the states they use
        present, wanted = tables[kind]
        changes.extend(Op(HOST, "delete_xfrm_" + kind, (old,)) for key, old in present.items() if key not in wanted)
    before, after = describe(*have), describe(*want)
    for change in changes:
        what, apply, undo = (change.what, change, change.inverse()) if isinstance(change, Op) else change
        host.plan.add(target, what, before, after, apply, undo, forgets)


def check_keys(primary: Optional[str], others: Optional[Sequence[str]]) -> List[str]:
    """The keys in force, primary first, each checked (never echoed); duplicates are dropped."""
    if not primary:
        raise option_error("encryption_key", "(not set)", "is required with encrypted: true")
    if len(primary) < MIN_KEY_LENGTH:
        raise option_error(
            "encryption_key",
            "(not shown)",
            "is too short: at least %d characters (e.g. openssl rand -hex 16)" % MIN_KEY_LENGTH,
        )
    keys = [primary]
    for index, key in enumerate(others or ()):
        if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
            raise option_error(
                "encryption_keys[%d]" % index, "(not shown)", "is too short: at least %d characters" % MIN_KEY_LENGTH
            )
        if key not in keys:
            keys.append(key)
    return keys


# ---- what the kernel offers ----


def kernel_features(kernel) -> dict:
    """The kernel features an encrypted overlay needs -> present (loaded, built in, or loadable), as ``kernel``
    (kernel.Kernel) tells them."""
    return {
        "XFRM": kernel.has_xfrm(),
        "ESP (esp4)": kernel.has_module("esp4"),
        "AES-GCM (rfc4106(gcm(aes)))": kernel.has_cipher("gcm(aes)") or kernel.has_module("gcm"),
    }
