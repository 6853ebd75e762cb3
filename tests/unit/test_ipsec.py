"""Renderings of the IPsec an encrypted overlay would program (pure; the module refuses encryption for now)."""

from __future__ import annotations

import pytest

from ansible_collections.cnm.network.plugins.module_utils import ipsec

KEY, NEW_KEY = "a-shared-overlay-key", "the-next-key"


def test_both_ends_compute_the_same_states_for_a_pair():
    one = ipsec.render("192.0.2.11", ["192.0.2.12"], [KEY])
    two = ipsec.render("192.0.2.12", ["192.0.2.11"], [KEY])

    def key(state):
        return (state["src"], state["dst"], state["spi"], state["aead"]["key"])
    assert sorted(map(key, one["states"])) == sorted(map(key, two["states"]))


def test_each_direction_has_its_own_spi_and_key_outside_the_reserved_range():
    states = ipsec.render("192.0.2.11", ["192.0.2.12"], [KEY])["states"]
    assert len(states) == 2
    out, back = states
    assert (out["src"], out["dst"]) == ("192.0.2.11", "192.0.2.12") and (back["src"], back["dst"]) == ("192.0.2.12", "192.0.2.11")
    assert out["spi"] != back["spi"] and out["aead"]["key"] != back["aead"]["key"]
    assert all(256 <= s["spi"] <= 0xFFFFFFFF for s in states)


def test_states_are_esp_transport_with_aes_gcm_and_a_full_icv():
    state = ipsec.render("192.0.2.11", ["192.0.2.12"], [KEY])["states"][0]
    assert (state["proto"], state["mode"]) == ("esp", "transport")
    assert state["aead"]["name"] == "rfc4106(gcm(aes))" and state["aead"]["icv_bits"] == 128
    assert len(state["aead"]["key"]) == 2 + 40  # 0x + 16 bytes of key + 4 of salt, hex


def test_policies_cover_only_vxlan_udp_to_the_port_both_ways():
    policies = ipsec.render("192.0.2.11", ["192.0.2.12", "192.0.2.13"], [KEY], port=4789)["policies"]
    expected = [("out", "192.0.2.12/32"), ("in", "192.0.2.11/32"), ("out", "192.0.2.13/32"), ("in", "192.0.2.11/32")]
    assert [(p["dir"], p["dst"]) for p in policies] == expected
    assert all(p["proto"] == "udp" and p["dport"] == 4789 and p["tmpl"]["proto"] == "esp" for p in policies)


def test_rotation_keeps_both_keys_states_and_sends_with_the_primary():
    rotating = ipsec.render("192.0.2.11", ["192.0.2.12"], [NEW_KEY, KEY])
    assert len(rotating["states"]) == 4
    out_policy = [p for p in rotating["policies"] if p["dir"] == "out"][0]
    assert out_policy["tmpl"]["spi"] == ipsec.spi(NEW_KEY, "192.0.2.11", "192.0.2.12")
    old_only = ipsec.render("192.0.2.11", ["192.0.2.12"], [KEY])
    assert {s["spi"] for s in old_only["states"]} < {s["spi"] for s in rotating["states"]}


def test_a_different_key_gives_different_spis_and_material():
    assert ipsec.spi(KEY, "192.0.2.11", "192.0.2.12") != ipsec.spi(NEW_KEY, "192.0.2.11", "192.0.2.12")
    assert ipsec.key_material(KEY, "192.0.2.11", "192.0.2.12") != ipsec.key_material(NEW_KEY, "192.0.2.11", "192.0.2.12")


def test_no_key_is_refused():
    with pytest.raises(ValueError):
        ipsec.render("192.0.2.11", ["192.0.2.12"], [])
