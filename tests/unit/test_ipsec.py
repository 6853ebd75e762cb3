"""The IPsec of an encrypted overlay: key derivation, XFRM renderings, the netlink encoding, planning and rotation.

Pure logic: a small model of the kernel's XFRM tables (FakeXfrm) stands in for the netlink socket under the host
session's XFRM verbs (kernel.NetnsSession, run by kernel.Kernel.run as the plan's Ops say), so the order
of a run's changes can be checked change by change (a rolling key rotation across three hosts never leaves a
host sending with an SPI its peer cannot receive). The real effect is proven in the guest lab
(guestlab/proofs/encrypted_overlay.yml); this kernel has no ESP.
"""

from __future__ import annotations

import ipaddress
import json
import os

import pytest

from ansible_collections.cnm.network.plugins.module_utils import ipsec, xfrm
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.firewall import INET_INPUT, render
from ansible_collections.cnm.network.plugins.module_utils.kernel import Kernel, NetnsSession
from ansible_collections.cnm.network.plugins.module_utils.overlay import refuse_encryption
from ansible_collections.cnm.network.plugins.module_utils.plan import Op, Plan
from ansible_collections.cnm.network.plugins.module_utils.records import NetworkRecord, OverlayRecord
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST

KEY, NEW_KEY = "a-shared-overlay-key", "the-next-overlay-key"
A, B, C = "192.0.2.11", "192.0.2.12", "192.0.2.13"
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


# ---- derivation and rendering ----


def test_both_ends_compute_the_same_states_for_a_pair():
    one = ipsec.render(A, [B], [KEY])
    two = ipsec.render(B, [A], [KEY])

    def key(state):
        return (state["src"], state["dst"], state["spi"], state["aead"]["key"], state["reqid"])

    assert sorted(map(key, one["states"])) == sorted(map(key, two["states"]))


def test_each_direction_has_its_own_spi_and_key_outside_the_reserved_range():
    states = ipsec.render(A, [B], [KEY])["states"]
    assert len(states) == 2
    out, back = states
    assert (out["src"], out["dst"]) == (A, B) and (back["src"], back["dst"]) == (B, A)
    assert out["spi"] != back["spi"] and out["aead"]["key"] != back["aead"]["key"]
    assert all(256 <= s["spi"] <= 0xFFFFFFFF for s in states)


def test_the_port_is_part_of_the_derivation_so_two_encrypted_overlays_never_share_states():
    assert ipsec.spi(KEY, A, B, 4789) != ipsec.spi(KEY, A, B, 4790)
    assert ipsec.key_material(KEY, A, B, 4789) != ipsec.key_material(KEY, A, B, 4790)
    assert ipsec.render(A, [B], [KEY], port=4790)["states"][0]["reqid"] == 0x636E0000 + 4790


def test_states_are_esp_transport_with_aes_gcm_a_full_icv_and_a_vxlan_selector():
    state = ipsec.render(A, [B], [KEY], port=4789)["states"][0]
    assert (state["proto"], state["mode"]) == ("esp", "transport")
    assert state["aead"]["name"] == "rfc4106(gcm(aes))" and state["aead"]["icv_bits"] == 128
    assert len(state["aead"]["key"]) == 2 + 40  # 0x + 16 bytes of key + 4 of salt, hex
    assert state["selector"] == {"src": A + "/32", "dst": B + "/32", "proto": "udp", "dport": 4789}


def test_policies_cover_only_vxlan_udp_to_the_port_both_ways():
    policies = ipsec.render(A, [B, C], [KEY], port=4789)["policies"]
    expected = [("out", B + "/32"), ("in", A + "/32"), ("out", C + "/32"), ("in", A + "/32")]
    assert [(p["dir"], p["dst"]) for p in policies] == expected
    assert all(
        p["proto"] == "udp"
        and p["dport"] == 4789
        and p["tmpl"]["proto"] == "esp"
        and p["tmpl"]["reqid"] == ipsec.reqid(4789)
        for p in policies
    )
    assert all(
        p["tmpl"]["spi"] is None for p in policies if p["dir"] == "in"
    )  # any of our states may have decrypted it


def test_rotation_keeps_both_keys_states_and_sends_with_the_primary():
    rotating = ipsec.render(A, [B], [NEW_KEY, KEY])
    assert len(rotating["states"]) == 4
    out_policy = [p for p in rotating["policies"] if p["dir"] == "out"][0]
    assert out_policy["tmpl"]["spi"] == ipsec.spi(NEW_KEY, A, B)
    old_only = ipsec.render(A, [B], [KEY])
    assert {s["spi"] for s in old_only["states"]} < {s["spi"] for s in rotating["states"]}


def test_a_different_key_gives_different_spis_and_material():
    assert ipsec.spi(KEY, A, B) != ipsec.spi(NEW_KEY, A, B)
    assert ipsec.key_material(KEY, A, B) != ipsec.key_material(NEW_KEY, A, B)


def test_no_key_is_refused():
    with pytest.raises(ValueError):
        ipsec.render(A, [B], [])


def test_keys_are_checked_without_ever_echoing_them():
    with pytest.raises(CnmError) as short:
        ipsec.check_keys("tooshort", None)
    assert "encryption_key" in str(short.value) and "tooshort" not in str(short.value)
    with pytest.raises(CnmError) as other:
        ipsec.check_keys(KEY, ["x" * 15])
    assert "encryption_keys[0]" in str(other.value) and "x" * 15 not in str(other.value)
    assert ipsec.check_keys(KEY, [NEW_KEY, KEY]) == [KEY, NEW_KEY]  # the primary may be listed again


# ---- MTU ----


def esp_packet_size(inner_mtu: int) -> int:
    """The IPv4 ESP transport packet carrying a VXLAN frame of a full inner packet (RFC 4303/4106 layout)."""
    plaintext = 8 + 8 + 14 + inner_mtu  # UDP, VXLAN, inner Ethernet, inner packet
    padded = plaintext + 2 + (-(plaintext + 2) % 4)  # pad length + next header, aligned to 4
    return 20 + 8 + 8 + padded + 16  # IP, ESP header, IV, encrypted part, ICV


@pytest.mark.parametrize("underlay", list(range(1280, 1530)) + [9000, 9001])
def test_the_encrypted_mtu_is_the_largest_whose_esp_packets_fit_the_underlay(underlay):
    mtu = ipsec.encrypted_mtu(underlay)
    assert esp_packet_size(mtu) <= underlay
    assert esp_packet_size(mtu + 1) > underlay or esp_packet_size(mtu + 4) > underlay


def test_the_documented_numbers():
    assert ipsec.encrypted_mtu(1500) == 1416  # 1500 - 50 (VXLAN) - 34 (ESP with a 16-byte ICV)
    assert ipsec.encrypted_mtu(9000) == 8916


# ---- the netlink encoding ----


def test_message_layouts_have_the_kernels_sizes():
    assert xfrm._SELECTOR.size == 56 and xfrm._USERSA_INFO.size == 224 and xfrm._USERSA_ID.size == 24
    assert xfrm._USERPOLICY_INFO.size == 168 and xfrm._USERPOLICY_ID.size == 64 and xfrm._USER_TMPL.size == 64


def test_a_state_survives_encoding_and_decoding():
    state = ipsec.render(A, [B], [KEY])["states"][0]
    body = xfrm.encode_state(state)
    decoded = xfrm.decode_state(body)
    assert decoded == state


def test_a_policy_survives_encoding_and_decoding():
    for policy in ipsec.render(A, [B], [KEY])["policies"]:
        decoded = xfrm.decode_policy(xfrm.encode_policy(policy))
        assert decoded.pop("index") == 0
        assert decoded == policy


def test_the_state_carries_no_lifetime_limits():
    body = xfrm.encode_state(ipsec.render(A, [B], [KEY])["states"][0])
    limits = xfrm._LIFETIME_CFG.unpack_from(body, 56 + 16 + 4 + 4 + 16)
    assert limits[:4] == (xfrm.XFRM_INF,) * 4 and limits[4:] == (0, 0, 0, 0)


# ---- planning against a model of the kernel ----


class FakeXfrm:
    """The kernel's XFRM tables of one host: states by (dst, spi, proto), policies by (dir, selector)."""

    def __init__(self, fail_on=None) -> None:
        self.state_table = {}
        self.policy_table = {}
        self.fail_on = fail_on

    def states(self):
        return [dict(s) for s in self.state_table.values()]

    def policies(self):
        return [json.loads(json.dumps(p)) for p in self.policy_table.values()]

    def add_state(self, state):
        if self.fail_on and self.fail_on(state):
            raise OSError(93, "Protocol not supported")
        identity = (state["dst"], state["spi"], state["proto"])
        if identity in self.state_table:
            raise OSError(17, "File exists")
        self.state_table[identity] = dict(state)

    def delete_state(self, state):
        del self.state_table[(state["dst"], state["spi"], state["proto"])]

    def add_policy(self, policy, update=False):
        identity = (policy["dir"], policy["src"], policy["dst"], policy["proto"], policy["dport"])
        if identity in self.policy_table and not update:
            raise OSError(17, "File exists")
        self.policy_table[identity] = json.loads(json.dumps(policy))

    def delete_policy(self, policy):
        del self.policy_table[(policy["dir"], policy["src"], policy["dst"], policy["proto"], policy["dport"])]


def kernel_over(tables: FakeXfrm) -> Kernel:
    """A Kernel whose host session has ``tables`` for its XFRM socket: Kernel.run and the session's XFRM verbs as a
    module run has them, over the model."""
    session = NetnsSession.__new__(NetnsSession)
    session._xfrm = tables
    kernel = Kernel.__new__(Kernel)
    kernel.host, kernel._sandboxes = session, {}
    return kernel


class FakeHost:
    def __init__(self, tables: FakeXfrm) -> None:
        self.plan = Plan(executor=kernel_over(tables).run)
        self.warnings = []


def run(kernel: FakeXfrm, local: str, peers, keys, port=4789, after_each=None, check=False) -> FakeHost:
    """One module run's IPsec part on one host; ``after_each`` is called after every applied change."""
    host = FakeHost(kernel)
    want = ipsec.render(local, peers, keys, port) if keys else {"states": [], "policies": []}
    ipsec.plan(
        host, "overlay ov ipsec", ipsec.current(kernel_over(kernel).host, [port]), (want["states"], want["policies"])
    )
    if not check:
        for change in host.plan.changes:
            host.plan.run(change.apply)
            if after_each:
                after_each()
    return host


def sends_with(kernel: FakeXfrm, local: str, peer: str):
    """The SPI a host's outbound policy towards ``peer`` selects (None: it has no policy: it would not send)."""
    for policy in kernel.policies():
        if policy["dir"] == "out" and policy["dst"] == peer + "/32":
            return policy["tmpl"]["spi"]
    return None


def can_receive(kernel: FakeXfrm, spi: int, local: str) -> bool:
    return any(s["dst"] == local and s["spi"] == spi for s in kernel.states())


def test_a_second_run_plans_nothing_and_check_mode_plans_what_the_run_does():
    kernel = FakeXfrm()
    predicted = run(kernel, A, [B, C], [KEY], check=True).plan.summary()
    assert not kernel.states() and not kernel.policies()
    done = run(kernel, A, [B, C], [KEY]).plan.summary()
    assert predicted == done and len(kernel.states()) == 4 and len(kernel.policies()) == 4
    assert run(kernel, A, [B, C], [KEY]).plan.changes == []


def test_new_states_come_first_old_ones_last():
    kernel = FakeXfrm()
    run(kernel, A, [B], [KEY])
    changes = run(kernel, A, [C], [KEY]).plan.summary()
    kinds = [" ".join(what.split()[:3]) for what in changes]
    assert (
        kinds
        == ["add xfrm state"] * 2 + ["add xfrm policy"] * 2 + ["delete xfrm policy"] * 2 + ["delete xfrm state"] * 2
    )


def test_peers_no_longer_listed_lose_their_states_and_absent_removes_all():
    kernel = FakeXfrm()
    run(kernel, A, [B, C], [KEY])
    run(kernel, A, [B], [KEY])
    assert {s["dst"] for s in kernel.states()} == {A, B} and {s["src"] for s in kernel.states()} == {A, B}
    assert [p["dst"] for p in kernel.policies() if p["dir"] == "out"] == [B + "/32"]
    run(kernel, A, [B], [])
    assert kernel.states() == [] and kernel.policies() == []


def test_objects_of_others_are_left_alone():
    kernel = FakeXfrm()
    foreign = dict(ipsec.render(A, [B], ["someone-elses-key!"], 500)["states"][0], reqid=7)
    kernel.add_state(foreign)
    run(kernel, A, [B], [KEY])
    run(kernel, A, [B], [])
    assert kernel.states() == [foreign]


def test_a_state_changed_out_of_band_is_replaced():
    kernel = FakeXfrm()
    run(kernel, A, [B], [KEY])
    identity = next(iter(kernel.state_table))
    kernel.state_table[identity]["aead"] = dict(kernel.state_table[identity]["aead"], key="0x" + "00" * 20)
    changes = run(kernel, A, [B], [KEY]).plan.summary()
    assert changes[0].startswith("replace xfrm state") and changes[1].startswith("add xfrm state")
    assert run(kernel, A, [B], [KEY]).plan.changes == []


def test_the_diff_and_the_changes_never_show_a_key():
    kernel = FakeXfrm()
    host = run(kernel, A, [B, C], [KEY, NEW_KEY], check=True)
    text = json.dumps({"changes": host.plan.summary(), "diff": host.plan.diff()})
    for key in (KEY, NEW_KEY):
        assert key not in text
        for src, dst in ((A, B), (B, A), (A, C), (C, A)):
            assert ipsec.key_material(key, src, dst)[2:] not in text
    assert "esp spi 0x" in text


def test_a_refused_state_undoes_the_run_and_sends_nothing():
    kernel = FakeXfrm(fail_on=lambda state: state["dst"] == C)
    host = FakeHost(kernel)
    want = ipsec.render(A, [B, C], [KEY])
    ipsec.plan(
        host, "overlay ov ipsec", ipsec.current(kernel_over(kernel).host, [4789]), (want["states"], want["policies"])
    )
    with pytest.raises(CnmError, match="add xfrm state .* failed: Protocol not supported"):
        host.plan.execute(check=False)
    assert kernel.states() == [] and kernel.policies() == []


def test_a_rolling_key_rotation_never_leaves_a_sender_without_a_receiving_state():
    """Three hosts, the documented three steps, each step host by host; after every single change every host's
    outbound SPI towards each peer is one the peer can decrypt."""
    vteps = [A, B, C]
    kernels = {v: FakeXfrm() for v in vteps}
    for v in vteps:
        run(kernels[v], v, [p for p in vteps if p != v], [KEY])

    def no_gap():
        for v in vteps:
            for p in vteps:
                if p != v:
                    spi = sends_with(kernels[v], v, p)
                    assert spi is not None and can_receive(kernels[p], spi, p), "%s -> %s would be lost" % (v, p)

    no_gap()
    for keys in ([KEY, NEW_KEY], [NEW_KEY, KEY], [NEW_KEY]):
        for v in vteps:
            run(kernels[v], v, [p for p in vteps if p != v], keys, after_each=no_gap)
    for v in vteps:
        assert {s["spi"] for s in kernels[v].states()} == {
            s["spi"] for s in ipsec.render(v, [p for p in vteps if p != v], [NEW_KEY])["states"]
        }


def test_each_rotation_step_changes_only_what_it_must():
    kernel = FakeXfrm()
    run(kernel, A, [B], [KEY])
    step1 = run(kernel, A, [B], [KEY, NEW_KEY]).plan.summary()
    step2 = run(kernel, A, [B], [NEW_KEY, KEY]).plan.summary()
    step3 = run(kernel, A, [B], [NEW_KEY]).plan.summary()
    assert [w.split(" 1")[0] for w in step1] == ["add xfrm state"] * 2
    assert [w.split(" out")[0] for w in step2] == ["switch xfrm policy"]
    assert [w.split(" 1")[0] for w in step3] == ["delete xfrm state"] * 2


def test_skipping_step_one_is_what_loses_packets():
    """Why the procedure has three steps: switching straight to the new key strands the peers not yet run."""
    kernels = {A: FakeXfrm(), B: FakeXfrm()}
    run(kernels[A], A, [B], [KEY])
    run(kernels[B], B, [A], [KEY])
    run(kernels[A], A, [B], [NEW_KEY, KEY])
    assert not can_receive(kernels[B], sends_with(kernels[A], A, B), B)


def test_the_changes_are_ops_added_switched_and_removed_in_order_with_ops_as_undo():
    """From plain dicts as facts: a new key and a peer gone, and one state changed out of band. New states and the
    replaced one first, then the switched policy, then the peer's policies, then its states; every apply and undo is
    an Op of the host's XFRM verbs."""
    have = ipsec.render(A, [B, C], [KEY])
    changed = dict(have["states"][0], aead=dict(have["states"][0]["aead"], key="0x" + "00" * 20))  # A -> B, KEY
    want = ipsec.render(A, [B], [NEW_KEY, KEY])
    host = FakeHost(FakeXfrm())
    ipsec.plan(
        host, "overlay ov ipsec", ([changed] + have["states"][1:], have["policies"]), (want["states"], want["policies"])
    )
    new_ab, new_ba, old_ab = want["states"][0], want["states"][1], want["states"][2]
    out_b = next(p for p in want["policies"] if p["dir"] == "out")
    old_out_b = next(p for p in have["policies"] if p["dir"] == "out" and p["dst"] == B + "/32")
    gone_policies = [p for p in have["policies"] if C + "/32" in (p["src"], p["dst"])]
    gone_states = [s for s in have["states"] if C in (s["src"], s["dst"])]
    assert len(gone_policies) == 2 and len(gone_states) == 2

    def change(words, verb, obj, undo_verb, undo_obj=None):
        return (words, Op(HOST, verb, (obj,)), Op(HOST, undo_verb, (obj if undo_obj is None else undo_obj,)))

    def added(state):
        return change("add xfrm state %s" % ipsec.describe_state(state), "add_xfrm_state", state, "delete_xfrm_state")

    replaced = "replace xfrm state %s (its settings changed)" % ipsec.describe_state(old_ab)
    switched = "switch xfrm policy %s" % ipsec.describe_policy(out_b)
    expected = [
        added(new_ab),
        added(new_ba),
        change(replaced, "delete_xfrm_state", changed, "add_xfrm_state"),
        added(old_ab),
        change(switched, "update_xfrm_policy", out_b, "update_xfrm_policy", old_out_b),
    ]
    expected += [
        change("delete xfrm policy %s" % ipsec.describe_policy(p), "delete_xfrm_policy", p, "add_xfrm_policy")
        for p in gone_policies
    ]
    expected += [
        change("delete xfrm state %s" % ipsec.describe_state(s), "delete_xfrm_state", s, "add_xfrm_state")
        for s in gone_states
    ]
    assert [(c.what, c.apply, c.undo) for c in host.plan.changes] == expected
    assert all(c.target == "overlay ov ipsec" and c.forgets == () for c in host.plan.changes)


def test_removing_every_object_forgets_the_network_with_each_change():
    have = ipsec.render(A, [B], [KEY])
    host = FakeHost(FakeXfrm())
    ipsec.plan(host, "overlay ov ipsec", (have["states"], have["policies"]), ([], []), forgets=(("network", "ov"),))
    assert [c.apply.verb for c in host.plan.changes] == ["delete_xfrm_policy"] * 2 + ["delete_xfrm_state"] * 2
    assert all(c.forgets == (("network", "ov"),) for c in host.plan.changes)


def test_an_xfrm_op_renders_and_prints_without_its_key():
    state = ipsec.XfrmState(ipsec.render(A, [B], [KEY])["states"][0])
    op = Op(HOST, "add_xfrm_state", (state,))
    assert op.what == "add xfrm state %s -> %s esp spi 0x%08x" % (A, B, state["spi"])
    assert op.inverse().what == "delete xfrm state %s -> %s esp spi 0x%08x" % (A, B, state["spi"])
    assert state["aead"]["key"][2:] not in repr(op) and "XfrmState(192.0.2.11 -> 192.0.2.12 esp spi 0x" in repr(op)
    policy = ipsec.XfrmPolicy(ipsec.render(A, [B], [KEY])["policies"][0])
    assert Op(
        HOST, "delete_xfrm_policy", (policy,)
    ).what == "delete xfrm policy out %s/32 -> %s/32 udp dport 4789 esp spi 0x%08x" % (
        A,
        B,
        policy["tmpl"]["spi"],
    )
    assert Op(HOST, "add_xfrm_policy", (policy,)).inverse() == Op(HOST, "delete_xfrm_policy", (policy,))


# ---- kernel features and the firewall ----


def test_refusal_names_every_missing_feature_and_never_falls_back():
    with pytest.raises(CnmError) as refused:
        refuse_encryption({"XFRM": True, "ESP (esp4)": False, "AES-GCM (rfc4106(gcm(aes)))": False})
    message = str(refused.value)
    assert (
        message.startswith("option 'encrypted'")
        and "ESP (esp4), AES-GCM (rfc4106(gcm(aes)))" in message
        and "XFRM," not in message
    )
    refuse_encryption({"XFRM": True, "ESP (esp4)": True, "AES-GCM (rfc4106(gcm(aes)))": True})  # all there: no refusal


class ToldKernel:
    """What kernel.Kernel tells of its modules, ciphers and XFRM, as given."""

    def __init__(self, modules=(), ciphers=(), xfrm=True) -> None:
        self.modules, self.ciphers, self.xfrm = set(modules), set(ciphers), xfrm

    def has_module(self, name):
        return name in self.modules

    def has_cipher(self, name):
        return name in self.ciphers

    def has_xfrm(self):
        return self.xfrm


@pytest.mark.parametrize(
    "kernel, lacking",
    [
        (ToldKernel({"esp4", "gcm"}), []),
        (ToldKernel({"esp4"}, {"gcm(aes)"}), []),  # GCM built in: the crypto API lists it, no module
        (ToldKernel({"gcm"}), ["ESP (esp4)"]),
        (ToldKernel({"esp4"}, {"rfc4106(gcm(aes))-generic"}), ["AES-GCM (rfc4106(gcm(aes)))"]),
        (ToldKernel(xfrm=False), ["XFRM", "ESP (esp4)", "AES-GCM (rfc4106(gcm(aes)))"]),
    ],
)
def test_kernel_features_are_what_the_kernel_tells_of_modules_ciphers_and_xfrm(kernel, lacking):
    features = ipsec.kernel_features(kernel)
    assert [name for name, present in features.items() if not present] == lacking


def test_this_kernels_features_are_a_dict_of_booleans():
    kernel = Kernel.__new__(Kernel)  # no sessions: only the module and cipher lists, read from files
    kernel._modules = kernel._ciphers = None
    features = ipsec.kernel_features(kernel)
    assert set(features) == {"XFRM", "ESP (esp4)", "AES-GCM (rfc4106(gcm(aes)))"} and all(
        isinstance(v, bool) for v in features.values()
    )


def overlay_record(**options) -> OverlayRecord:
    record = {
        "driver": "overlay",
        "bridge_name": "br-sec",
        "subnet": "10.201.0.0/16",
        "gateway": "10.201.0.1",
        "ip_range": "10.201.1.0/24",
        "ipv6_subnet": None,
        "ipv6_gateway": None,
        "mtu": 1416,
        "masquerade": True,
        "internal": False,
        "icc": True,
        "host_binding_ip": None,
        "vni": 4300,
        "local_ip": A,
        "port": 4790,
        "vxlan_name": "vx-sec",
        "restrict_peers": True,
        "peers": [{"vtep": B, "endpoints": []}, {"vtep": C, "endpoints": []}],
        "encrypted": True,
    }
    record.update(options)
    return NetworkRecord.from_dict(record)


def test_an_encrypted_overlay_drops_clear_vxlan_of_its_vni_from_anyone():
    rules = [rule for rule in render({"sec": overlay_record()}) if rule.chain == INET_INPUT]
    assert [rule.comment.split(" #")[0] for rule in rules] == [
        "cnm network sec vxlan peers only",
        "cnm network sec vxlan clear drop",
    ]
    expr = json.loads(rules[1].expr)
    assert {"match": {"op": "==", "left": {"meta": {"key": "ipsec"}}, "right": False}} in expr
    assert {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 96, "len": 24}}, "right": 4300}} in expr
    assert {"match": {"op": "==", "left": {"payload": {"protocol": "th", "field": "dport"}}, "right": 4790}} in expr
    assert not any("saddr" in json.dumps(e) for e in expr)  # not only from peers: from anyone
    no_peers_rule = [r for r in render({"sec": overlay_record(restrict_peers=False)}) if r.chain == INET_INPUT]
    assert [r.comment.split(" #")[0] for r in no_peers_rule] == ["cnm network sec vxlan clear drop"]
    assert not [
        r for r in render({"sec": overlay_record(encrypted=False, restrict_peers=False)}) if r.chain == INET_INPUT
    ]


def test_the_encrypted_rendering_matches_the_reviewed_golden_file():
    networks = {"sec": overlay_record()}
    rules = render(networks)
    document = {
        "networks": {"sec": networks["sec"].to_dict()},
        "comments": [rule.comment for rule in rules],
        "commands": [rule.command() for rule in rules],
    }
    path = os.path.join(GOLDEN, "firewall_encrypted_overlay.json")
    if os.environ.get("CNM_UPDATE_GOLDEN") == "1":
        with open(path, "w") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
    with open(path) as handle:
        assert json.load(handle) == json.loads(json.dumps(document))


def test_spi_collisions_are_refused():
    states = ipsec.render(A, [B], [KEY])["states"]
    clash = dict(states[1], dst=states[0]["dst"], spi=states[0]["spi"])
    with pytest.raises(CnmError, match="same SPI"):
        ipsec._check_spis([states[0], clash])
    assert ipaddress.ip_address(states[0]["dst"])
