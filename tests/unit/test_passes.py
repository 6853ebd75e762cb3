"""Pass rules in other owners' dropping forward chains: detection, iptables scripts, nft commands (no kernel)."""

from __future__ import annotations

import dataclasses

from ansible_collections.cnm.network.plugins.module_utils import passes
from ansible_collections.cnm.network.plugins.module_utils.records import BridgeRecord

WEB = BridgeRecord(bridge_name="br-web", subnet="172.30.0.0/24")
VAULT = BridgeRecord(bridge_name="br-vault", subnet="172.31.0.0/24", internal=True)
DOCKER = {
    "nftables": [
        {"table": {"family": "ip", "name": "filter"}},
        {"chain": {"family": "ip", "table": "filter", "name": "DOCKER-USER"}},
        {
            "chain": {
                "family": "ip",
                "table": "filter",
                "name": "FORWARD",
                "type": "filter",
                "hook": "forward",
                "prio": 0,
                "policy": "drop",
            }
        },
        {
            "chain": {
                "family": "inet",
                "table": "cnm",
                "name": "forward",
                "type": "filter",
                "hook": "forward",
                "prio": 0,
                "policy": "drop",
            }
        },
        {
            "chain": {
                "family": "inet",
                "table": "strict",
                "name": "filter_forward",
                "type": "filter",
                "hook": "forward",
                "prio": 5,
                "policy": "drop",
            }
        },
        {
            "chain": {
                "family": "inet",
                "table": "open",
                "name": "forward",
                "type": "filter",
                "hook": "forward",
                "prio": 5,
                "policy": "accept",
            }
        },
    ]
}


def test_only_other_owners_forward_chains_with_a_drop_policy_are_found():
    found = passes.drop_chains(DOCKER)
    assert found == [passes.DropChain("ip", "filter", "FORWARD"), passes.DropChain("inet", "strict", "filter_forward")]
    assert [chain.xtables for chain in found] == [True, False]
    assert passes.chain_exists(DOCKER, "ip", "filter", "DOCKER-USER") and not passes.chain_exists(
        DOCKER, "ip6", "filter", "DOCKER-USER"
    )


def test_internal_networks_get_no_pass():
    assert passes.routed({"web": WEB, "vault": VAULT}) == [("web", "br-web")]
    assert passes.native_rules({"vault": VAULT}) == []


def test_the_iptables_script_inserts_what_is_missing_and_deletes_what_is_stale():
    wanted = passes.xtables_lines({"web": WEB}, "DOCKER-USER")
    assert list(wanted) == ["cnm network web pass out", "cnm network web pass back", "cnm network web pass published"]
    saved = (
        '-N DOCKER-USER\n-A DOCKER-USER -i br-old -m comment --comment "cnm network old pass out" -j ACCEPT\n'
        '-A DOCKER-USER -i br-web -m comment --comment "cnm network web pass out" -j ACCEPT\n-A DOCKER-USER -j RETURN\n'
    )
    present = passes.parse_xtables(saved, "DOCKER-USER")
    assert sorted(present) == ["cnm network old pass out", "cnm network web pass out"]
    script = passes.xtables_script(present, wanted, "DOCKER-USER")
    lines = script.splitlines()
    assert lines[0] == "*filter" and lines[-1] == "COMMIT"
    assert lines[1] == '-D DOCKER-USER -i br-old -m comment --comment "cnm network old pass out" -j ACCEPT'
    assert (
        lines[2].startswith("-I DOCKER-USER 1 -o br-web -m conntrack --ctstate DNAT") and "pass published" in lines[2]
    )
    assert len(lines) == 5  # out is already there: only back and published are inserted


def test_nothing_to_do_gives_no_script_and_the_inverse_undoes():
    wanted = passes.xtables_lines({"web": WEB}, "FORWARD")
    assert passes.xtables_script(wanted, wanted, "FORWARD") is None
    undo = passes.xtables_script(wanted, {}, "FORWARD")
    assert undo.count("-D FORWARD ") == 3


def test_native_commands_insert_the_rules_in_order_and_delete_stale_ones_by_handle():
    listing = {
        "nftables": DOCKER["nftables"]
        + [
            {
                "rule": {
                    "family": "inet",
                    "table": "strict",
                    "chain": "filter_forward",
                    "handle": 7,
                    "comment": "cnm network old pass out",
                    "expr": [],
                }
            },
            {
                "rule": {
                    "family": "inet",
                    "table": "strict",
                    "chain": "filter_forward",
                    "handle": 8,
                    "comment": "their own rule",
                    "expr": [],
                }
            },
        ]
    }
    chain = passes.DropChain("inet", "strict", "filter_forward")
    commands = passes.native_commands(listing, chain, {"web": WEB})
    assert commands[0] == {
        "delete": {"rule": {"family": "inet", "table": "strict", "chain": "filter_forward", "handle": 7}}
    }
    inserted = [command["insert"]["rule"]["comment"] for command in commands[1:]]
    # each insert goes to the top, so the last rule is inserted first and "out" ends up first
    assert inserted == ["cnm network web pass published", "cnm network web pass back", "cnm network web pass out"]
    assert all("handle" not in command.get("insert", {}).get("rule", {}) for command in commands[1:])


TRUSTED = dataclasses.replace(WEB, trusted_sources=("192.0.2.0/24", "10.0.0.0/8", "2001:db8:1::/48"))


def test_trusted_sources_get_a_pass_of_their_own_ip_version():
    v4 = passes.xtables_lines({"web": TRUSTED}, "DOCKER-USER", "ip")
    v6 = passes.xtables_lines({"web": TRUSTED}, "DOCKER-USER", "ip6")
    assert [c for c in v4 if "trusted" in c] == [
        "cnm network web pass trusted 10.0.0.0/8",
        "cnm network web pass trusted 192.0.2.0/24",
    ]
    assert (
        v4["cnm network web pass trusted 10.0.0.0/8"]
        == '-s 10.0.0.0/8 -o br-web -m comment --comment "cnm network web pass trusted 10.0.0.0/8" -j ACCEPT'
    )
    assert [c for c in v6 if "trusted" in c] == ["cnm network web pass trusted 2001:db8:1::/48"]
    assert [
        c for c in passes.xtables_lines({"web": WEB}, "FORWARD", "ip6") if "trusted" in c
    ] == []  # older records: none


def test_native_trusted_passes_follow_the_chain_family():
    inet = [comment for comment, _expr in passes.native_rules({"web": TRUSTED}, "inet")]
    assert inet[3:] == ["cnm network web pass trusted ip", "cnm network web pass trusted ip6"]
    assert [c for c, _e in passes.native_rules({"web": TRUSTED}, "ip") if "trusted" in c] == [
        "cnm network web pass trusted ip"
    ]
    assert [c for c, _e in passes.native_rules({"web": TRUSTED}, "ip6") if "trusted" in c] == [
        "cnm network web pass trusted ip6"
    ]
    (expr,) = [e for c, e in passes.native_rules({"web": TRUSTED}, "ip") if "trusted" in c]
    assert expr[1]["match"]["right"] == {
        "set": [{"prefix": {"addr": "10.0.0.0", "len": 8}}, {"prefix": {"addr": "192.0.2.0", "len": 24}}]
    }
