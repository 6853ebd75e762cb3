"""The firewall room: the cnm tables rendered from the store, compared with the kernel's by comments, changed in one
transaction.

No kernel and no nft binary: ``nft -j list ruleset`` listings are built here, and a small model of nft's
semantics (FakeNft) applies transactions to them so that convergence and undo can be checked end to end.
Golden renderings live in tests/unit/golden/; ``CNM_UPDATE_GOLDEN=1`` rewrites them (review the diff).
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import re
from dataclasses import replace

import pytest

from ansible_collections.cnm.network.plugins.module_utils.firewall import (
    CHAINS,
    INET_FORWARD,
    INET_INPUT,
    INET_OUTPUT,
    INET_POSTROUTING,
    INET_PREROUTING,
    INET_RAW,
    PORT_MAPS,
    Ruleset,
    conntrack_flow,
    desired,
    forwarding_needed,
    masquerades_ipv6,
    needed_sysctls,
    parse,
    reaches_loopback,
    render,
    render_elements,
    render_ports,
    restore_commands,
    transaction,
)
from ansible_collections.cnm.network.plugins.module_utils.records import BridgeRecord, NetworkRecord, PortRecord

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
UPDATE_GOLDEN = os.environ.get("CNM_UPDATE_GOLDEN") == "1"
COMMENT = re.compile(
    r"^cnm network (?P<network>[A-Za-z0-9_.-]+) "
    r"(?P<what>isolation|internal out|internal in|masquerade|ipv6 masquerade|inbound drop"
    r"|trusted ip|trusted ip6|icc) #[0-9a-f]{8}$"
)
SHARED = (
    "ports accept published",
    "forward accept replies",
)  # the forward chain's table-wide accepts, owned by no network


def network(bridge: str, subnet: str, **options) -> BridgeRecord:
    """A network record as the store holds it (read from the keys of BridgeNetwork.to_record)."""
    record = {
        "driver": "bridge",
        "bridge_name": bridge,
        "subnet": subnet,
        "gateway": str(ipaddress.ip_network(subnet).network_address + 1),
        "ip_range": subnet,
        "ipv6_subnet": None,
        "ipv6_gateway": None,
        "mtu": 1500,
        "masquerade": True,
        "internal": False,
        "icc": True,
        "host_binding_ip": None,
    }
    record.update(options)
    return NetworkRecord.from_dict(record)


WEB = network("br-web", "172.30.0.0/24")
DB = network("br-db", "172.30.1.0/24")
VAULT = network("br-vault", "172.30.2.0/24", internal=True, icc=False)
LAN = network("br-lan", "172.30.3.0/24", masquerade=False)

CONFIGURATIONS = {
    "one_network": {"web": WEB},
    "two_networks": {"web": WEB, "db": DB},
    "internal_without_icc": {"web": WEB, "vault": VAULT},
    "masquerade_off": {"web": WEB, "lan": LAN},
    "no_networks": {},
}

EMPTY = Ruleset({}, {})


def chain_key(command: dict) -> tuple:
    """(verb, object kind, family, table) of one nft JSON command."""
    verb, body = next(iter(command.items()))
    kind, spec = next(iter(body.items()))
    return verb, kind, spec["family"], spec.get("table", spec.get("name"))


def rules_of(rules, chain) -> list:
    return [rule.command() for rule in rules if rule.chain == chain]


def chain_item(chain, handle: int, **changes) -> dict:
    item = {
        "family": chain.family,
        "table": "cnm",
        "name": chain.name,
        "handle": handle,
        "type": chain.type,
        "hook": chain.hook,
        "prio": chain.prio,
        "policy": chain.policy,
    }
    item.update(changes)
    return {"chain": item}


def listing_of(rules, chain_changes=None, drop_comments=(), foreign=False) -> dict:
    """What ``nft -j list ruleset`` prints for a kernel that holds ``rules`` (and, with foreign, firewalld's and
    Docker's tables).

    ``chain_changes`` maps a Chain to spec fields that differ in the kernel; rules whose comment is in
    ``drop_comments`` are missing.
    """
    chain_changes = chain_changes or {}
    items = [{"metainfo": {"version": "1.0.9", "release_name": "Old Doc Yak #3", "json_schema_version": 1}}]
    handle = 1
    if foreign:
        items += [
            {"table": {"family": "inet", "name": "firewalld", "handle": 90}},
            {
                "chain": {
                    "family": "inet",
                    "table": "firewalld",
                    "name": "filter_FORWARD",
                    "handle": 91,
                    "type": "filter",
                    "hook": "forward",
                    "prio": 10,
                    "policy": "accept",
                }
            },
            {
                "rule": {
                    "family": "inet",
                    "table": "firewalld",
                    "chain": "filter_FORWARD",
                    "handle": 92,
                    "expr": [{"reject": None}],
                    "comment": "cnm network web isolation #00000000",
                }
            },
            {"table": {"family": "ip", "name": "filter", "handle": 93}},
            {
                "chain": {
                    "family": "ip",
                    "table": "filter",
                    "name": "FORWARD",
                    "handle": 94,
                    "type": "filter",
                    "hook": "forward",
                    "prio": 0,
                    "policy": "drop",
                }
            },
            {
                "rule": {
                    "family": "ip",
                    "table": "filter",
                    "chain": "FORWARD",
                    "handle": 95,
                    "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "DOCKER-USER"}}],
                }
            },
        ]
    for family in sorted({rule.chain.family for rule in rules}):
        items.append({"table": {"family": family, "name": "cnm", "handle": handle}})
        for chain in CHAINS[family]:
            handle += 1
            items.append(chain_item(chain, handle, **chain_changes.get(chain, {})))
        for chain in CHAINS[family]:
            for rule in rules:
                if rule.chain == chain and rule.comment not in drop_comments:
                    handle += 1
                    items.append(
                        {
                            "rule": {
                                "family": family,
                                "table": "cnm",
                                "chain": chain.name,
                                "handle": handle,
                                "expr": json.loads(rule.expr),
                                "comment": rule.comment,
                            }
                        }
                    )
    return {"nftables": items}


class NftError(Exception):
    pass


class FakeNft:
    """nft's semantics for the commands the firewall room sends, over a ``nft -j list ruleset`` listing.

    One transaction is atomic: any error leaves the ruleset as it was. ``add`` of an existing table is a no-op,
    of an existing chain with another hook or priority an error; ``delete`` of something missing is an error;
    deleting a chain deletes its rules (the kernel's recursive NFT_MSG_DELCHAIN). Maps: a rule may only use an
    existing map, a map in use cannot be deleted, ``add element`` of a key held with other data and ``delete element``
    of a missing key are errors.
    """

    def __init__(self, listing: dict) -> None:
        self.tables: dict = {}
        self.handle = 1000
        for item in listing["nftables"]:
            if "table" in item:
                self.tables[(item["table"]["family"], item["table"]["name"])] = {"chains": {}, "rules": {}, "maps": {}}
            elif "map" in item:
                spec = item["map"]
                self.tables[(spec["family"], spec["table"])]["maps"][spec["name"]] = copy.deepcopy(spec)
            elif "chain" in item:
                chain = item["chain"]
                self.tables[(chain["family"], chain["table"])]["chains"][chain["name"]] = dict(chain)
                self.tables[(chain["family"], chain["table"])]["rules"][chain["name"]] = []
            elif "rule" in item:
                rule = item["rule"]
                self.tables[(rule["family"], rule["table"])]["rules"][rule["chain"]].append(dict(rule))

    def apply(self, commands: list) -> None:
        saved = copy.deepcopy(self.tables)
        try:
            for command in commands:
                self._one(command)
        except NftError:
            self.tables = saved
            raise

    def _table(self, family: str, name: str) -> dict:
        if (family, name) not in self.tables:
            raise NftError("No such file or directory: table %s %s" % (family, name))
        return self.tables[(family, name)]

    def _chain(self, spec: dict) -> str:
        table = self._table(spec["family"], spec["table"])
        name = spec.get("name", spec.get("chain"))
        if name not in table["chains"]:
            raise NftError("No such file or directory: chain %s %s %s" % (spec["family"], spec["table"], name))
        return name

    def _one(self, command: dict) -> None:
        verb, body = next(iter(command.items()))
        kind, spec = next(iter(body.items()))
        self.handle += 1
        if (verb, kind) == ("add", "table"):
            self.tables.setdefault((spec["family"], spec["name"]), {"chains": {}, "rules": {}, "maps": {}})
        elif kind in ("map", "element"):
            self._map_command(verb, kind, spec)
        elif (verb, kind) == ("delete", "table"):
            self._table(spec["family"], spec["name"])
            del self.tables[(spec["family"], spec["name"])]
        elif (verb, kind) == ("add", "chain"):
            table = self._table(spec["family"], spec["table"])
            have = table["chains"].get(spec["name"])
            if have is not None:
                if any(have.get(key) != spec.get(key) for key in ("type", "hook", "prio")):
                    raise NftError(
                        "Operation not supported: chain %s exists with another hook or priority" % spec["name"]
                    )
                return
            table["chains"][spec["name"]] = dict(spec, handle=self.handle)
            table["rules"][spec["name"]] = []
        elif (verb, kind) == ("delete", "chain"):
            name = self._chain(spec)
            table = self.tables[(spec["family"], spec["table"])]
            del table["chains"][name]
            del table["rules"][name]
        elif (verb, kind) == ("flush", "chain"):
            self.tables[(spec["family"], spec["table"])]["rules"][self._chain(spec)] = []
        elif (verb, kind) == ("add", "rule"):
            name = self._chain(spec)
            for used in re.findall(r'"data": "@([^"]+)"', json.dumps(spec["expr"])):
                if used not in self.tables[(spec["family"], spec["table"])]["maps"]:
                    raise NftError("No such file or directory: map %s" % used)
            self.tables[(spec["family"], spec["table"])]["rules"][name].append(dict(spec, handle=self.handle))
        else:
            raise NftError("the fake does not know %s %s" % (verb, kind))

    def _map_command(self, verb: str, kind: str, spec: dict) -> None:
        table = self._table(spec["family"], spec["table"])
        if (verb, kind) == ("add", "map"):
            table["maps"].setdefault(spec["name"], dict(copy.deepcopy(spec), handle=self.handle))
            return
        if spec["name"] not in table["maps"]:
            raise NftError("No such file or directory: map %s" % spec["name"])
        if (verb, kind) == ("delete", "map"):
            if '"@%s"' % spec["name"] in json.dumps(table["rules"]):
                raise NftError("Device or resource busy: map %s is in use" % spec["name"])
            del table["maps"][spec["name"]]
            return
        held = table["maps"][spec["name"]].setdefault("elem", [])
        keys = [json.dumps(item[0], sort_keys=True) for item in held]
        for elem in spec["elem"]:
            key = json.dumps(elem[0] if verb == "add" else elem, sort_keys=True)
            if verb == "add" and key in keys:
                if held[keys.index(key)] != elem:
                    raise NftError("File exists: element %s" % key)
            elif verb == "add":
                held.append(copy.deepcopy(elem))
                keys.append(key)
            elif verb == "delete" and key in keys:
                del held[keys.index(key)]
                keys.remove(key)
            else:
                raise NftError("the fake does not know %s element %s (or it is missing)" % (verb, key))
        if not held:
            del table["maps"][spec["name"]]["elem"]

    def listing(self) -> dict:
        items = [{"metainfo": {"json_schema_version": 1}}]
        for (family, name), table in self.tables.items():
            items.append({"table": {"family": family, "name": name}})
            items += [
                {"map": copy.deepcopy(spec)} for spec in table["maps"].values()
            ]  # a listing is a copy, as nft's JSON is
            items += [{"chain": chain} for chain in table["chains"].values()]
            for chain_name in table["chains"]:
                items += [{"rule": rule} for rule in table["rules"][chain_name]]
        return {"nftables": items}

    def without_handles(self) -> dict:
        return {
            key: {
                "chains": {name: _no_handle(chain) for name, chain in table["chains"].items()},
                "rules": {name: [_no_handle(rule) for rule in rules] for name, rules in table["rules"].items()},
                "maps": {
                    name: dict(_no_handle(spec), elem=sorted(spec.get("elem", []), key=json.dumps))
                    for name, spec in table["maps"].items()
                },
            }
            for key, table in self.tables.items()
        }


def _no_handle(item: dict) -> dict:
    return {key: value for key, value in item.items() if key != "handle"}


def desired_comments(rules) -> dict:
    """Ruleset.comments() of a kernel holding exactly ``rules``: every chain of each family in use, in chain order."""
    families = {rule.chain.family for rule in rules}
    return {
        "%s %s" % (chain.family, chain.name): [rule.comment for rule in rules if rule.chain == chain]
        for family in sorted(families)
        for chain in CHAINS[family]
    }


# Golden renderings


def golden_document(networks: dict) -> dict:
    rules = render(networks)
    return {
        "networks": {name: record.to_dict() for name, record in networks.items()},
        "comments": [rule.comment for rule in rules],
        "commands": [rule.command() for rule in rules],
    }


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_rendering_matches_the_reviewed_golden_file(name):
    assert_golden("firewall_%s.json" % name, golden_document(CONFIGURATIONS[name]))


def assert_golden(file_name: str, document: dict) -> None:
    """Compare with the reviewed file (CNM_UPDATE_GOLDEN=1 rewrites it first)."""
    path = os.path.join(GOLDEN, file_name)
    if UPDATE_GOLDEN:
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
    if not os.path.exists(path):
        pytest.fail("%s is missing: run with CNM_UPDATE_GOLDEN=1, review the file and commit it" % path)
    with open(path) as handle:
        assert json.load(handle) == json.loads(json.dumps(document))


def test_one_network_is_masqueraded_out_of_any_interface_but_its_bridge():
    (rule,) = [rule for rule in render({"web": WEB}) if rule.chain == INET_POSTROUTING]
    assert rule.chain == INET_POSTROUTING
    assert json.loads(rule.expr) == [
        {
            "match": {
                "op": "==",
                "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": {"prefix": {"addr": "172.30.0.0", "len": 24}},
            }
        },
        {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "br-web"}},
        {"masquerade": None},
    ]


def test_networks_are_isolated_from_each_other_in_both_directions():
    rules = [
        rule
        for rule in render({"web": WEB, "db": DB, "api": network("br-api", "172.30.4.0/24")})
        if rule.owner.endswith(" isolation")
    ]
    assert [json.loads(rule.expr) for rule in rules] == [
        [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "br-api"}},
            {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": {"set": ["br-db", "br-web"]}}},
            {"drop": None},
        ],
        [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "br-db"}},
            {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": {"set": ["br-api", "br-web"]}}},
            {"drop": None},
        ],
        [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "br-web"}},
            {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": {"set": ["br-api", "br-db"]}}},
            {"drop": None},
        ],
    ]


def test_icc_off_adds_only_the_routed_drop_the_port_flag_cannot_see():
    """Frames between endpoints are stopped by the bridge ports' isolated flag; an endpoint routing to its neighbour
    through the gateway is forwarded bridge to bridge, which Docker drops with ``-i br -o br DROP``."""
    with_icc = render({"api": network("br-api", "10.10.0.0/16")})
    without = render({"api": network("br-api", "10.10.0.0/16", icc=False)})
    extra = [rule for rule in without if rule not in with_icc]
    assert [(rule.chain, rule.owner) for rule in extra] == [(INET_FORWARD, "network api icc")]
    assert json.loads(extra[0].expr) == [
        {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "br-api"}},
        {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "br-api"}},
        {"drop": None},
    ]
    assert [rule for rule in without if rule != extra[0]] == with_icc


def test_an_internal_network_is_not_masqueraded_and_drops_traffic_in_and_out():  # and opens no inbound accept
    rules = render({"vault": network("br-vault", "172.30.2.0/24", internal=True)})
    assert [(rule.chain, rule.owner) for rule in rules] == [
        (INET_FORWARD, "network vault internal out"),
        (INET_FORWARD, "network vault internal in"),
    ]
    assert [json.loads(rule.expr)[:2] for rule in rules] == [
        [
            {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "br-vault"}},
            {"match": {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "br-vault"}},
        ],
        [
            {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "br-vault"}},
            {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "br-vault"}},
        ],
    ]


def test_a_lone_network_without_masquerade_needs_only_its_inbound_rules():
    assert [rule.owner for rule in render({"lan": LAN})] == [
        "ports accept published",
        "forward accept replies",
        "network lan inbound drop",
    ]


def test_the_chains_of_inet_cnm_are_raw_dnat_filter_and_srcnat_base_chains():
    assert CHAINS == {"inet": (INET_RAW, INET_PREROUTING, INET_OUTPUT, INET_INPUT, INET_FORWARD, INET_POSTROUTING)}
    expected = [
        ("filter", "prerouting", -300),
        ("nat", "prerouting", -100),
        ("nat", "output", -100),
        ("filter", "input", 0),
        ("filter", "forward", 0),
        ("nat", "postrouting", 100),
    ]
    assert [(c.type, c.hook, c.prio) for c in CHAINS["inet"]] == expected
    assert INET_FORWARD.spec() == {
        "family": "inet",
        "table": "cnm",
        "name": "forward",
        "type": "filter",
        "hook": "forward",
        "prio": 0,
        "policy": "accept",
    }
    assert INET_POSTROUTING.spec() == {
        "family": "inet",
        "table": "cnm",
        "name": "postrouting",
        "type": "nat",
        "hook": "postrouting",
        "prio": 100,
        "policy": "accept",
    }


# Properties of the rendering

# sha256 of the chain and the expression: pinned, because a new digest for the same rule makes every host flush and
# refill the chain once
GOLDEN_WEB_MASQUERADE_DIGEST = "3e576a68"
MANY = {"web": WEB, "db": DB, "vault": VAULT, "lan": LAN, "api": network("br-api", "10.10.0.0/16", icc=False)}


@pytest.mark.parametrize("networks", [MANY] + [CONFIGURATIONS[name] for name in sorted(CONFIGURATIONS)])
def test_every_comment_starts_with_cnm_and_names_the_network_whose_bridge_it_matches(networks):
    for rule in render(networks):
        assert rule.comment.startswith("cnm ")
        if rule.owner in SHARED:
            continue
        found = COMMENT.match(rule.comment)
        assert found, rule.comment
        owner = networks[found.group("network")]
        first_interface = next(
            item["match"] for item in json.loads(rule.expr) if "meta" in item.get("match", {}).get("left", {})
        )
        assert first_interface["right"] == owner.bridge_name


def test_comments_are_unique():
    comments = [rule.comment for rule in render(MANY)]
    assert len(comments) == 18  # 16 and the icc rules of vault and api
    assert len(set(comments)) == len(comments)


def test_comment_is_stable_across_runs():
    (rule,) = [rule for rule in render({"web": WEB}) if rule.chain == INET_POSTROUTING]
    assert rule.comment == "cnm network web masquerade #%s" % GOLDEN_WEB_MASQUERADE_DIGEST
    assert [rule.comment for rule in render(dict(MANY))] == [rule.comment for rule in render(dict(MANY))]


def test_comment_changes_with_the_subnet_and_only_for_that_rule():
    before = {rule.owner: rule.comment for rule in render({"web": WEB, "db": DB})}
    after = {rule.owner: rule.comment for rule in render({"web": network("br-web", "172.30.8.0/24"), "db": DB})}
    assert [owner for owner in before if before[owner] != after[owner]] == ["network web masquerade"]


def test_comment_of_a_network_changes_when_another_network_bridge_is_renamed():
    before = {rule.owner: rule.comment for rule in render({"web": WEB, "db": DB})}
    after = {rule.owner: rule.comment for rule in render({"web": WEB, "db": network("br-db2", "172.30.1.0/24")})}
    assert sorted(owner for owner in before if before[owner] != after[owner]) == [
        "network db inbound drop",
        "network db isolation",
        "network db masquerade",
        "network web isolation",
    ]


def test_rule_order_is_by_network_name_whatever_the_store_order():
    forwards = render({"web": WEB, "db": DB, "api": network("br-api", "172.30.4.0/24")})
    backwards = render({"api": network("br-api", "172.30.4.0/24"), "db": DB, "web": WEB})
    assert forwards == backwards
    for what in ("isolation", "inbound drop", "masquerade"):
        names = [COMMENT.match(rule.comment).group("network") for rule in forwards if rule.owner.endswith(" " + what)]
        assert names == ["api", "db", "web"]


# transaction(current, rules)


def test_from_nothing_the_table_its_chains_and_all_rules_are_added():
    rules = render(CONFIGURATIONS["internal_without_icc"])
    assert transaction(EMPTY, rules) == [
        {"add": {"table": {"family": "inet", "name": "cnm"}}},
        {"add": {"chain": INET_RAW.spec()}},
        {"add": {"chain": INET_PREROUTING.spec()}},
        {"add": {"chain": INET_OUTPUT.spec()}},
        {"add": {"chain": INET_INPUT.spec()}},
        {"add": {"chain": INET_FORWARD.spec()}},
        *rules_of(rules, INET_FORWARD),
        {"add": {"chain": INET_POSTROUTING.spec()}},
        *rules_of(rules, INET_POSTROUTING),
    ]
    assert len(rules_of(rules, INET_FORWARD)) == 8 and len(rules_of(rules, INET_POSTROUTING)) == 1


def test_every_chain_of_the_table_is_added_even_one_without_rules():
    rules = render({"web": WEB})
    assert transaction(EMPTY, rules) == [
        {"add": {"table": {"family": "inet", "name": "cnm"}}},
        {"add": {"chain": INET_RAW.spec()}},
        {"add": {"chain": INET_PREROUTING.spec()}},
        {"add": {"chain": INET_OUTPUT.spec()}},
        {"add": {"chain": INET_INPUT.spec()}},
        {"add": {"chain": INET_FORWARD.spec()}},
        *rules_of(rules, INET_FORWARD),
        {"add": {"chain": INET_POSTROUTING.spec()}},
        *rules_of(rules, INET_POSTROUTING),
    ]


def test_nothing_to_render_and_nothing_in_the_kernel_is_no_transaction():
    assert transaction(EMPTY, []) == []
    assert transaction(parse(listing_of([], foreign=True)), []) == []


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_a_kernel_that_already_holds_the_rules_needs_no_command(name):
    rules = render(CONFIGURATIONS[name])
    assert transaction(parse(listing_of(rules)), rules) == []
    assert transaction(parse(listing_of(rules, foreign=True)), rules) == []


def test_a_rule_deleted_out_of_band_flushes_and_refills_only_its_chain():
    rules = render({"web": WEB, "db": DB})
    (lost,) = [rule for rule in rules if rule.owner == "network web isolation"]
    current = parse(listing_of(rules, drop_comments={lost.comment}))
    assert transaction(current, rules) == [
        {"flush": {"chain": {"family": "inet", "table": "cnm", "name": "forward"}}},
        *rules_of(rules, INET_FORWARD),
    ]


def test_a_rule_added_by_hand_to_our_chain_is_flushed_away():
    rules = render({"web": WEB})
    listing = listing_of(rules)
    listing["nftables"].append(
        {"rule": {"family": "inet", "table": "cnm", "chain": "forward", "handle": 77, "expr": [{"accept": None}]}}
    )
    assert transaction(parse(listing), rules) == [
        {"flush": {"chain": {"family": "inet", "table": "cnm", "name": "forward"}}},
        *rules_of(rules, INET_FORWARD),
    ]


def test_rules_in_another_order_are_rewritten_in_the_rendered_order():
    rules = render({"web": WEB, "db": DB})
    listing = listing_of(rules)
    forward = [
        index for index, item in enumerate(listing["nftables"]) if item.get("rule", {}).get("chain") == "forward"
    ]
    listing["nftables"][forward[0]], listing["nftables"][forward[1]] = (
        listing["nftables"][forward[1]],
        listing["nftables"][forward[0]],
    )
    assert transaction(parse(listing), rules) == [
        {"flush": {"chain": {"family": "inet", "table": "cnm", "name": "forward"}}},
        *rules_of(rules, INET_FORWARD),
    ]


@pytest.mark.parametrize(
    "changes",
    [{"prio": 0}, {"hook": "output"}, {"type": "filter"}, {"policy": "drop"}],
    ids=["prio", "hook", "type", "policy"],
)
def test_a_chain_with_another_hook_priority_type_or_policy_is_deleted_and_added_again(changes):
    rules = render({"web": WEB, "db": DB})
    current = parse(listing_of(rules, chain_changes={INET_POSTROUTING: changes}))
    assert transaction(current, rules) == [
        {"delete": {"chain": {"family": "inet", "table": "cnm", "name": "postrouting"}}},
        {"add": {"chain": INET_POSTROUTING.spec()}},
        *rules_of(rules, INET_POSTROUTING),
    ]


def test_with_nothing_to_render_our_table_is_deleted():
    current = parse(listing_of(render(CONFIGURATIONS["internal_without_icc"]), foreign=True))
    assert transaction(current, []) == [{"delete": {"table": {"family": "inet", "name": "cnm"}}}]


def test_when_the_internal_network_goes_only_the_forward_chain_is_rewritten():
    current = parse(listing_of(render(CONFIGURATIONS["internal_without_icc"])))
    rules = render({"web": WEB})
    assert transaction(current, rules) == [
        {"flush": {"chain": {"family": "inet", "table": "cnm", "name": "forward"}}},
        *rules_of(rules, INET_FORWARD),
    ]


def test_parse_keeps_only_our_tables():
    rules = render(CONFIGURATIONS["internal_without_icc"])
    assert parse(listing_of([], foreign=True)) == EMPTY
    mixed = parse(listing_of(rules, foreign=True))
    assert mixed == parse(listing_of(rules))
    assert sorted(mixed.chains) == sorted(("inet", chain.name) for chain in CHAINS["inet"])
    assert mixed.tables == {"inet"}
    assert mixed.comments() == desired_comments(rules)


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_foreign_tables_never_appear_in_commands(name):
    other = render(CONFIGURATIONS["internal_without_icc"])
    for current in (parse(listing_of([], foreign=True)), parse(listing_of(other, foreign=True))):
        commands = transaction(current, render(CONFIGURATIONS[name])) + restore_commands(current, {"inet"})
        assert {(family, table) for _verb, _kind, family, table in map(chain_key, commands)} <= {("inet", "cnm")}


@pytest.mark.parametrize("start", sorted(CONFIGURATIONS))
@pytest.mark.parametrize("goal", sorted(CONFIGURATIONS))
def test_applying_the_transaction_converges_and_leaves_foreign_tables_alone(start, goal):
    kernel = FakeNft(listing_of(render(CONFIGURATIONS[start]), foreign=True))
    foreign_before = {key: table for key, table in kernel.without_handles().items() if key[1] != "cnm"}
    rules = render(CONFIGURATIONS[goal])
    kernel.apply(transaction(parse(kernel.listing()), rules))
    assert parse(kernel.listing()).comments() == desired_comments(rules)
    assert transaction(parse(kernel.listing()), rules) == []
    assert {key: table for key, table in kernel.without_handles().items() if key[1] != "cnm"} == foreign_before


def test_a_rendered_rule_carries_the_expression_and_the_comment_to_the_kernel():
    rules = render({"web": WEB, "vault": VAULT})
    kernel = FakeNft({"nftables": []})
    kernel.apply(transaction(EMPTY, rules))
    listed = [item["rule"] for item in kernel.listing()["nftables"] if "rule" in item]
    assert sorted((rule["comment"], json.dumps(rule["expr"], sort_keys=True)) for rule in listed) == sorted(
        (rule.comment, rule.expr) for rule in rules
    )


def test_a_stray_chain_in_our_table_is_deleted():
    rules = render({"web": WEB})
    listing = listing_of(rules)
    listing["nftables"] += [
        {
            "chain": {
                "family": "inet",
                "table": "cnm",
                "name": "prerouting",
                "handle": 50,
                "type": "nat",
                "hook": "prerouting",
                "prio": -100,
                "policy": "accept",
            }
        },
        {
            "rule": {
                "family": "inet",
                "table": "cnm",
                "chain": "prerouting",
                "handle": 51,
                "comment": "cnm port tcp/*:8080 #0badc0de",
                "expr": [
                    {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
                    {"dnat": {"family": "ip", "addr": "172.30.0.9", "port": 80}},
                ],
            }
        },
    ]
    kernel = FakeNft(listing)
    kernel.apply(transaction(parse(kernel.listing()), rules))
    assert parse(kernel.listing()).comments() == desired_comments(rules)


def test_an_empty_table_of_ours_is_deleted_when_nothing_is_rendered():
    listing = {"nftables": [{"table": {"family": "inet", "name": "cnm", "handle": 3}}]}
    assert transaction(parse(listing), []) == [{"delete": {"table": {"family": "inet", "name": "cnm"}}}]


# restore_commands(before, families_after)


def test_restore_deletes_our_tables_and_recreates_exactly_the_chains_and_rules_found_before():
    listing = listing_of(render(CONFIGURATIONS["internal_without_icc"]), foreign=True)
    before = parse(listing)
    ours = [item for item in listing["nftables"] if item.get("chain", item.get("rule", {})).get("table") == "cnm"]
    chains = sorted(
        (item["chain"] for item in ours if "chain" in item), key=lambda chain: (chain["family"], chain["name"])
    )
    expected = [
        {"delete": {"table": {"family": "inet", "name": "cnm"}}},
        {"add": {"table": {"family": "inet", "name": "cnm"}}},
    ]
    for chain in chains:
        expected.append({"add": {"chain": _no_handle(chain)}})
        expected += [
            {"add": {"rule": _no_handle(item["rule"])}}
            for item in ours
            if "rule" in item and (item["rule"]["family"], item["rule"]["chain"]) == (chain["family"], chain["name"])
        ]
    commands = restore_commands(before, {"inet"})
    assert commands == expected
    assert len([command for command in commands if "rule" in command.get("add", {})]) == 9
    added = [command["add"]["rule"] for command in commands if "rule" in command.get("add", {})]
    assert all(
        rule["comment"].startswith(("cnm network ", "cnm ports accept published", "cnm forward accept replies"))
        for rule in added
    )
    assert "handle" not in json.dumps(commands)


def test_restore_after_the_first_run_only_deletes_what_it_made():
    assert restore_commands(EMPTY, {"inet"}) == [{"delete": {"table": {"family": "inet", "name": "cnm"}}}]


@pytest.mark.parametrize(
    ("start", "goal"),
    [(start, goal) for start in sorted(CONFIGURATIONS) for goal in sorted(CONFIGURATIONS) if start != goal],
)
def test_restore_undoes_an_applied_transaction(start, goal):
    kernel = FakeNft(listing_of(render(CONFIGURATIONS[start]), foreign=True))
    original = kernel.without_handles()
    before = parse(kernel.listing())
    rules = render(CONFIGURATIONS[goal])
    commands = transaction(before, rules)
    assert commands
    kernel.apply(commands)
    kernel.apply(restore_commands(before, {rule.chain.family for rule in rules}))
    assert kernel.without_handles() == original


# The forward chain: internal drops, published ports, isolation, replies, trusted sources, inbound drops

DUAL = network(
    "br-dual",
    "172.30.5.0/24",
    ipv6_subnet="fd00:35::/64",
    ipv6_gateway="fd00:35::1",
    trusted_sources=["10.0.0.0/8", "192.0.2.0/24", "2001:db8:1::/48"],
)


def owners(rules, chain=INET_FORWARD) -> list:
    return [rule.owner for rule in rules if rule.chain == chain]


def test_the_forward_chain_order_puts_internal_drops_first_and_inbound_drops_last():
    assert owners(render({"dual": DUAL, "vault": VAULT, "web": WEB})) == [
        "network vault internal out",
        "network vault internal in",  # not even a DNAT'd flow leaves an internal network
        "ports accept published",  # published ports: from the LAN and from other (non-internal) networks
        "network dual isolation",
        "network vault isolation",
        "network vault icc",  # before any accept of a trusted source
        "network web isolation",
        "forward accept replies",
        "network dual trusted ip",
        "network dual trusted ip6",
        "network dual inbound drop",
        "network web inbound drop",
    ]


def test_the_inbound_rules_match_the_bridge_and_both_families():
    rules = {rule.owner: json.loads(rule.expr) for rule in render({"dual": DUAL})}
    assert rules["ports accept published"] == [
        {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}},
        {"accept": None},
    ]
    assert rules["forward accept replies"] == [
        {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}},
        {"accept": None},
    ]
    assert rules["network dual trusted ip"] == [
        {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "br-dual"}},
        {
            "match": {
                "op": "==",
                "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": {
                    "set": [{"prefix": {"addr": "10.0.0.0", "len": 8}}, {"prefix": {"addr": "192.0.2.0", "len": 24}}]
                },
            }
        },
        {"accept": None},
    ]
    assert rules["network dual trusted ip6"][1]["match"]["left"] == {"payload": {"protocol": "ip6", "field": "saddr"}}
    assert rules["network dual inbound drop"] == [  # no nfproto: IPv4 and IPv6 alike
        {"match": {"op": "==", "left": {"meta": {"key": "oifname"}}, "right": "br-dual"}},
        {"match": {"op": "!=", "left": {"meta": {"key": "iifname"}}, "right": "br-dual"}},
        {"drop": None},
    ]


def test_an_overlay_is_closed_inbound_like_a_bridge():
    overlay = network(
        "br-ov",
        "10.200.0.0/24",
        driver="overlay",
        vni=42,
        local_ip="192.0.2.11",
        vxlan_name="vx-ov",
        port=4789,
        restrict_peers=False,
        peers=[],
        trusted_sources=["192.0.2.0/24"],
    )
    assert owners(render({"ov": overlay})) == [
        "ports accept published",
        "forward accept replies",
        "network ov trusted ip",
        "network ov inbound drop",
    ]


def test_only_internal_networks_open_no_inbound_accept():
    assert owners(render({"vault": VAULT})) == [
        "network vault internal out",
        "network vault internal in",
        "network vault icc",
    ]


NEW_KEYS = ("trusted_sources", "ipv6_masquerade")


def test_an_older_record_without_the_new_keys_renders_as_before_plus_the_inbound_drop():
    written = DUAL.to_dict()
    old = NetworkRecord.from_dict({key: value for key, value in written.items() if key not in NEW_KEYS})
    assert "network dual trusted ip" not in owners(render({"dual": old}))
    assert owners(render({"dual": old}), INET_POSTROUTING) == [
        "network dual masquerade",
        "network dual ipv6 masquerade",
    ]


@pytest.mark.parametrize(
    ("masquerade", "ipv6_masquerade", "expected"),
    [
        (True, None, ["network dual masquerade", "network dual ipv6 masquerade"]),
        (False, None, []),
        (True, False, ["network dual masquerade"]),
        (False, True, ["network dual ipv6 masquerade"]),
    ],
)
def test_ipv6_masquerade_follows_masquerade_unless_chosen(masquerade, ipv6_masquerade, expected):
    record = replace(DUAL, masquerade=masquerade, ipv6_masquerade=ipv6_masquerade)
    assert owners(render({"dual": record}), INET_POSTROUTING) == expected
    assert masquerades_ipv6(record) is ("network dual ipv6 masquerade" in expected)


def test_the_ipv6_masquerade_rule_matches_the_ipv6_subnet():
    (rule,) = [rule for rule in render({"dual": DUAL}) if rule.owner == "network dual ipv6 masquerade"]
    assert json.loads(rule.expr)[0] == {
        "match": {
            "op": "==",
            "left": {"payload": {"protocol": "ip6", "field": "saddr"}},
            "right": {"prefix": {"addr": "fd00:35::", "len": 64}},
        }
    }


def test_no_ipv6_masquerade_without_ipv6_or_on_an_internal_network():
    assert masquerades_ipv6(WEB) is False
    assert masquerades_ipv6(replace(DUAL, internal=True, trusted_sources=())) is False


def test_ipv6_forwarding_is_needed_by_a_routed_network_with_ipv6_only():
    assert needed_sysctls({"dual": DUAL}, {}) == {"net.ipv4.ip_forward": "1", "net.ipv6.conf.all.forwarding": "1"}
    assert needed_sysctls({"web": WEB}, {}) == {"net.ipv4.ip_forward": "1"}
    assert needed_sysctls({"dual": replace(DUAL, internal=True, trusted_sources=())}, {}) == {}


# forwarding_needed


def test_forwarding_is_needed_as_soon_as_one_network_routes_out():
    assert forwarding_needed({"web": WEB}) is True
    assert forwarding_needed({"vault": VAULT, "lan": LAN}) is True


def test_forwarding_is_not_needed_for_internal_networks_only_or_none():
    assert forwarding_needed({"vault": VAULT, "hidden": network("br-hidden", "172.30.9.0/24", internal=True)}) is False
    assert forwarding_needed({}) is False


# Published ports


def port(
    network_name: str,
    host_ip,
    host_port: int,
    container_ip: str,
    container_port: int,
    protocol: str = "tcp",
    sandbox: str = "netns:a",
) -> tuple:
    """A store entry of a published port, keyed as publish.py keys it."""
    entry = PortRecord(
        network=network_name,
        sandbox=sandbox,
        container_ip=container_ip,
        host_ip=host_ip,
        host_port=host_port,
        container_port=container_port,
        protocol=protocol,
    )
    key = "%s/%s:%d" % (protocol, host_ip or "*", host_port)
    return key, entry


def written(ports: dict) -> dict:
    """Port entries as the golden files show them (written before container_ipv6, which these lack)."""
    return {key: {k: v for k, v in entry.to_dict().items() if k != "container_ipv6"} for key, entry in ports.items()}


PORT_CONFIGURATIONS = {
    "ports_all_addresses_and_udp": (
        {"web": WEB},
        dict([port("web", None, 4000, "172.30.0.2", 80), port("web", None, 5353, "172.30.0.2", 53, "udp")]),
    ),
    "ports_loopback_and_one_address": (
        {"web": WEB, "db": DB},
        dict(
            [
                port("web", "127.0.0.1", 4001, "172.30.0.2", 80),
                port("db", "192.0.2.11", 8443, "172.30.1.2", 443, sandbox="netns:b"),
            ]
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(PORT_CONFIGURATIONS))
def test_port_rendering_matches_the_reviewed_golden_file(name):
    networks, ports = PORT_CONFIGURATIONS[name]
    rules = render(networks, ports)
    document = {
        "networks": {name: record.to_dict() for name, record in networks.items()},
        "ports": written(ports),
        "comments": [rule.comment for rule in rules],
        "commands": [rule.command() for rule in rules],
        "elements": [[element.owner, element.comment] for element in render_elements(ports)],
    }
    assert_golden("firewall_%s.json" % name, document)


def test_a_loopback_binding_is_dnated_only_for_the_host_itself_and_guarded():
    networks, ports = PORT_CONFIGURATIONS["ports_loopback_and_one_address"]
    comments = [(rule.chain.name, rule.comment.split(" #")[0]) for rule in render(networks, ports)]
    assert ("raw_prerouting", "cnm ports loopback guard") in comments
    assert ("output", "cnm ports dnat ipv4 loopback") in comments and (
        "prerouting",
        "cnm ports dnat ipv4 loopback",
    ) not in comments
    assert ("prerouting", "cnm ports dnat ipv4 host address") in comments and (
        "output",
        "cnm ports dnat ipv4 host address",
    ) in comments
    assert ("postrouting", "cnm network web localhost") in comments and (
        "postrouting",
        "cnm network db localhost",
    ) not in comments
    assert [(e.owner, e.comment) for e in render_elements(ports)] == [
        ("port web tcp/127.0.0.1:4001", "element ports_loopback4_addr tcp . 127.0.0.1 . 4001 : 172.30.0.2"),
        ("port web tcp/127.0.0.1:4001", "element ports_loopback4_port tcp . 127.0.0.1 . 4001 : 80"),
        ("port db tcp/192.0.2.11:8443", "element ports_host4_addr tcp . 192.0.2.11 . 8443 : 172.30.1.2"),
        ("port db tcp/192.0.2.11:8443", "element ports_host4_port tcp . 192.0.2.11 . 8443 : 443"),
    ]


def many_ports(count: int, first: int = 10000, **extra) -> dict:
    return dict(
        port("web", None, first + number, "172.30.0.%d" % (2 + number % 200), 80, **extra) for number in range(count)
    )


def test_the_rules_a_connection_walks_are_the_same_for_one_and_a_thousand_ports():
    one, thousand = render({"web": WEB}, many_ports(1)), render({"web": WEB}, many_ports(1000))
    assert [rule.comment for rule in one] == [rule.comment for rule in thousand]
    assert [rule.comment.split(" #")[0] for rule in thousand if rule.chain in (INET_PREROUTING, INET_OUTPUT)] == [
        "cnm ports dnat ipv4 any address",
        "cnm ports dnat ipv4 any address",
    ]
    assert len(render_elements(many_ports(1000))) == 2000
    (rule,) = [rule for rule in thousand if rule.chain == INET_PREROUTING]
    local = {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}
    assert json.dumps(json.loads(rule.expr)).count('"fib"') == 1 and local in json.loads(rule.expr)


def test_render_ports_emits_no_forward_rule():
    networks, ports = PORT_CONFIGURATIONS["ports_all_addresses_and_udp"]
    assert not [rule for rule in render_ports(networks, ports) if rule.chain == INET_FORWARD]


WEB6 = network("br-web", "172.30.0.0/24", ipv6_subnet="fd00:30::/64", ipv6_gateway="fd00:30::1")
V6 = "fd00:30::2"


@pytest.mark.parametrize(
    ("host_ip", "maps"),
    [
        (None, ["ports_any4", "ports_any6"]),
        ("0.0.0.0", ["ports_any4"]),
        ("::", ["ports_any6"]),
        ("2001:db8::1", ["ports_host6"]),
        ("192.0.2.1", ["ports_host4"]),
        ("127.0.0.1", ["ports_loopback4"]),
        ("::1", []),
    ],
)
def test_each_binding_form_lands_in_the_maps_of_its_families(host_ip, maps):
    key, entry = port("web", host_ip, 4000, "172.30.0.2", 80)
    entry = replace(entry, container_ipv6=V6)
    elements = render_elements({key: entry})
    assert sorted({element.map.name.rsplit("_", 1)[0] for element in elements}) == maps
    for element in elements:
        assert (
            element.value in ("172.30.0.2", V6, 80) and element.key[-1] == 4000 and element.owner == "port web " + key
        )


@pytest.mark.parametrize(
    ("host_ip", "container_ip", "loopback"),
    [
        (None, "172.30.0.2", True),
        ("0.0.0.0", "172.30.0.2", True),
        ("127.0.0.2", "172.30.0.2", True),
        ("192.0.2.1", "172.30.0.2", False),
        ("::", "172.30.0.2", False),
        ("2001:db8::1", "172.30.0.2", False),
        (None, None, False),
    ],
)
def test_only_ipv4_bindings_with_an_ipv4_container_answer_on_loopback(host_ip, container_ip, loopback):
    key, entry = port("web", host_ip, 4000, container_ip, 80)
    entry = replace(entry, container_ipv6=V6)
    assert reaches_loopback(entry) is loopback
    assert ("net.ipv4.conf.br-web.route_localnet" in needed_sysctls({"web": WEB6}, {key: entry})) is loopback
    assert any(rule.owner == "ports loopback guard" for rule in render({"web": WEB6}, {key: entry})) is loopback


def test_an_ipv6_only_endpoint_renders_no_ipv4_and_an_old_entry_no_ipv6():
    key, entry = port("web", None, 4000, None, 80)
    entry = replace(entry, container_ipv6="fd00:30:0:0::2")
    assert [element.comment for element in render_elements({key: entry})] == [
        "element ports_any6_addr tcp . 4000 : fd00:30::2",
        "element ports_any6_port tcp . 4000 : 80",
    ]
    old_key, old = port("web", None, 4000, "172.30.0.2", 80)  # no container_ipv6 key at all
    assert [element.map.name for element in render_elements({old_key: old})] == ["ports_any4_addr", "ports_any4_port"]
    port_rules = [
        rule
        for rule in render({"web": WEB6}, {old_key: old})
        if rule.owner.startswith(("ports", "network web hairpin"))
    ]
    assert not any("ipv6" in rule.owner for rule in port_rules)


def test_ipv6_ports_get_dnat_maps_and_hairpin_but_never_loopback():
    key, entry = port("web", None, 4000, "172.30.0.2", 80)
    entry = replace(entry, container_ipv6=V6)
    rules = render({"web": WEB6}, {key: entry})
    owners = [(rule.chain.name, rule.owner) for rule in rules]
    assert ("prerouting", "ports dnat ipv6 any address") in owners and (
        "output",
        "ports dnat ipv6 any address",
    ) in owners
    assert ("postrouting", "network web hairpin ipv6") in owners and ("postrouting", "network web hairpin") in owners
    (output6,) = [
        json.loads(rule.expr)
        for rule in rules
        if (rule.chain.name, rule.owner) == ("output", "ports dnat ipv6 any address")
    ]
    assert {
        "match": {"op": "!=", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": "::1"}
    } in output6
    assert output6[-1]["dnat"]["family"] == "ip6" and output6[-1]["dnat"]["addr"]["map"]["data"] == "@ports_any6_addr"
    (hairpin6,) = [json.loads(rule.expr) for rule in rules if rule.owner == "network web hairpin ipv6"]
    subnet6 = {"prefix": {"addr": "fd00:30::", "len": 64}}
    assert {
        "match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "saddr"}}, "right": subnet6}
    } in hairpin6
    assert not any(rule.chain == INET_RAW and "ip6" in rule.expr for rule in rules)


def ported(ports: dict):
    return render({"web": WEB6}, ports), render_elements(ports)


def converge(kernel: FakeNft, ports: dict) -> list:
    rules, elements = ported(ports)
    commands = transaction(parse(kernel.listing()), rules, elements)
    kernel.apply(commands)
    assert parse(kernel.listing()).comments() == desired(rules, elements).comments() or not rules
    assert transaction(parse(kernel.listing()), rules, elements) == []
    return commands


def test_ports_are_added_changed_and_removed_element_by_element():
    kernel = FakeNft({"nftables": []})
    ports = many_ports(200)
    converge(kernel, ports)
    key, entry = port("web", None, 20000, "172.30.0.9", 80)
    commands = converge(kernel, dict(ports, **{key: entry}))
    assert commands == [
        {
            "add": {
                "element": {
                    "family": "inet",
                    "table": "cnm",
                    "name": "ports_any4_addr",
                    "elem": [[{"concat": ["tcp", 20000]}, "172.30.0.9"]],
                }
            }
        },
        {
            "add": {
                "element": {
                    "family": "inet",
                    "table": "cnm",
                    "name": "ports_any4_port",
                    "elem": [[{"concat": ["tcp", 20000]}, 80]],
                }
            }
        },
    ]
    moved = dict(ports, **{key: replace(entry, container_ip="172.30.0.10")})
    assert [next(iter(command)) for command in converge(kernel, moved)] == ["delete", "add"]  # the _addr map only
    commands = converge(kernel, ports)
    assert [(verb, body["element"]["name"]) for command in commands for verb, body in command.items()] == [
        ("delete", "ports_any4_addr"),
        ("delete", "ports_any4_port"),
    ]
    assert commands[0]["delete"]["element"]["elem"] == [{"concat": ["tcp", 20000]}]


def test_a_new_family_of_bindings_adds_its_maps_and_rules_and_the_last_port_takes_them_away():
    kernel = FakeNft(listing_of(render({"web": WEB6}), foreign=True))
    converge(kernel, many_ports(3))
    key, entry = port("web", "::", 4000, None, 80)
    entry = replace(entry, container_ipv6=V6)
    commands = converge(kernel, dict(many_ports(3), **{key: entry}))
    assert {"add": {"map": PORT_MAPS["ports_any6_addr"].spec()}} in commands
    converge(kernel, {})
    assert parse(kernel.listing()).maps == {} and parse(kernel.listing()).comments() == desired_comments(
        render({"web": WEB6})
    )


def test_upgrade_from_per_port_rules_rewrites_the_nat_chains_once():
    key, entry = port("web", None, 4000, "172.30.0.2", 80)
    old_rule = {
        "rule": {
            "family": "inet",
            "table": "cnm",
            "chain": "prerouting",
            "handle": 99,
            "comment": "cnm port web tcp/*:4000 #0badc0de",
            "expr": [{"dnat": {"family": "ip", "addr": "172.30.0.2", "port": 80}}],
        }
    }
    listing = listing_of(render({"web": WEB6}))
    listing["nftables"].append(old_rule)
    kernel = FakeNft(listing)
    commands = converge(kernel, {key: entry})
    assert {"flush": {"chain": {"family": "inet", "table": "cnm", "name": "prerouting"}}} in commands


def test_a_map_of_another_type_is_replaced_after_the_rules_using_it_are_flushed():
    kernel = FakeNft({"nftables": []})
    converge(kernel, many_ports(2))
    listing = kernel.listing()
    for item in listing["nftables"]:
        if item.get("map", {}).get("name") == "ports_any4_port":
            item["map"]["map"] = "mark"
    kernel = FakeNft(listing)
    commands = converge(kernel, many_ports(2))
    verbs = [(verb, kind) for command in commands for verb, body in command.items() for kind in body]
    assert (
        verbs.index(("flush", "chain"))
        < verbs.index(("delete", "map"))
        < verbs.index(("add", "map"))
        < verbs.index(("add", "rule"))
    )


def test_restore_puts_the_maps_and_their_elements_back():
    kernel = FakeNft(listing_of(render({"web": WEB6}), foreign=True))
    converge(kernel, many_ports(5))
    original = kernel.without_handles()
    before = parse(kernel.listing())
    rules, elements = ported(many_ports(7, first=30000))
    kernel.apply(transaction(before, rules, elements))
    kernel.apply(restore_commands(before, {"inet"}))
    assert kernel.without_handles() == original


def test_the_diff_shows_map_elements():
    rules, elements = ported(many_ports(1))
    comments = desired(rules, elements).comments()
    assert comments["map inet ports_any4_addr"] == ["element ports_any4_addr tcp . 10000 : 172.30.0.2"]
    kernel = FakeNft({"nftables": []})
    converge(kernel, many_ports(1))
    assert parse(kernel.listing()).comments()["map inet ports_any4_port"] == [
        "element ports_any4_port tcp . 10000 : 80"
    ]


def test_conntrack_flow_names_both_container_addresses():
    _key, entry = port("web", None, 4000, "172.30.0.2", 80, "udp")
    assert conntrack_flow(entry) == ("udp", 4000, "172.30.0.2", None)
    assert conntrack_flow(replace(entry, container_ip=None, container_ipv6="fd00:30:0::2")) == (
        "udp",
        4000,
        None,
        "fd00:30::2",
    )


def test_sysctls_follow_the_ports_that_answer_on_loopback():
    networks, ports = PORT_CONFIGURATIONS["ports_loopback_and_one_address"]
    assert needed_sysctls(networks, ports) == {"net.ipv4.ip_forward": "1", "net.ipv4.conf.br-web.route_localnet": "1"}
    assert needed_sysctls({"vault": VAULT}, {}) == {}


def test_restrict_peers_matches_the_overlays_own_vni_only():
    overlay = network(
        "br-ov",
        "10.200.0.0/16",
        driver="overlay",
        vni=4200,
        local_ip="192.0.2.11",
        vxlan_name="vx-ov",
        port=4789,
        restrict_peers=True,
        peers=[{"vtep": "192.0.2.13", "endpoints": []}, {"vtep": "192.0.2.12", "endpoints": []}],
    )
    rules = [rule for rule in render({"ov": overlay}) if rule.chain.name == "input"]
    assert [rule.comment.split(" #")[0] for rule in rules] == ["cnm network ov vxlan peers only"]
    expr = json.loads(rules[0].expr)
    assert {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 96, "len": 24}}, "right": 4200}} in expr
    assert {
        "match": {
            "op": "!=",
            "left": {"payload": {"protocol": "ip", "field": "saddr"}},
            "right": {"set": ["192.0.2.12", "192.0.2.13"]},
        }
    } in expr
    assert not [rule for rule in render({"ov": replace(overlay, restrict_peers=False)}) if rule.chain.name == "input"]
