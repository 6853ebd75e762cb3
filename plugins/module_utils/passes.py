# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Passes through other owners' forward chains whose policy is DROP (Docker's iptables FORWARD).

A drop in any base chain at the forward hook is final, whatever our own table accepts, so routed
traffic of cnm networks dies in, say, the ``FORWARD`` chain Docker sets to ``policy drop``. The
only way through is a rule in that owner's chain. We add exactly three accept rules per routed
network there, each commented ``cnm network NAME pass ...``, never touch the owner's own rules, and
remove ours when the network goes:

* iptables-nft tables (``ip filter`` / ``ip6 filter`` with ``FORWARD``) get them through
  ``iptables-restore --noflush``, in Docker's ``DOCKER-USER`` chain when it exists, so that the
  table stays readable by iptables (nft-native rules would make Docker's own iptables calls fail);
* other nft tables get native rules inserted at the top of the dropping chain, in the same
  transaction as our own table.
Our isolation rules still apply: an accept here does not override a drop in ``inet cnm``.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from ansible_collections.cnm.network.plugins.module_utils.records import BridgeRecord

COMMENT = "cnm network %s pass %s"
XTABLES = {"ip": "iptables", "ip6": "ip6tables"}


@dataclass(frozen=True)
class DropChain:
    family: str
    table: str
    chain: str

    @property
    def xtables(self) -> bool:
        return self.family in XTABLES and self.table == "filter" and self.chain == "FORWARD"

    def describe(self) -> str:
        return "%s %s %s" % (self.family, self.table, self.chain)


def routed(networks: Dict[str, BridgeRecord]) -> List[Tuple[str, str]]:
    """(network, bridge) of every network whose traffic is routed (not internal)."""
    return [(name, networks[name].bridge_name) for name in sorted(networks) if not networks[name].internal]


def drop_chains(listing: dict) -> List[DropChain]:
    """Forward base chains of other owners whose policy is drop."""
    found = []
    for item in listing.get("nftables", []):
        chain = item.get("chain")
        if chain and chain.get("hook") == "forward" and chain.get("policy") == "drop" and chain.get("table") != "cnm":
            found.append(DropChain(chain["family"], chain["table"], chain["name"]))
    return found


def chain_exists(listing: dict, family: str, table: str, name: str) -> bool:
    return any(
        item.get("chain", {}).get("name") == name
        and item["chain"].get("table") == table
        and item["chain"].get("family") == family
        for item in listing.get("nftables", [])
    )


# ---- native nft chains ----


def _meta(key: str, value: str) -> dict:
    return {"match": {"op": "==", "left": {"meta": {"key": key}}, "right": value}}


def trusted(networks: Dict[str, BridgeRecord], name: str, version: int) -> List[str]:
    """The network's ``trusted_sources`` of one IP version."""
    sources = [ipaddress.ip_network(text) for text in networks[name].trusted_sources]
    return sorted(str(source) for source in sources if source.version == version)


def native_rules(networks: Dict[str, BridgeRecord], family: str = "inet") -> List[Tuple[str, list]]:
    """(comment, expression) of the pass rules, in the order they should stand at the top of the chain
    (a chain of family ip or ip6 gets the trusted sources of its own IP version only)."""
    rules = []
    for name, bridge in routed(networks):
        rules.append((COMMENT % (name, "out"), [_meta("iifname", bridge), {"accept": None}]))
        back = {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}
        rules.append((COMMENT % (name, "back"), [_meta("oifname", bridge), back, {"accept": None}]))
        published = {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}
        rules.append((COMMENT % (name, "published"), [_meta("oifname", bridge), published, {"accept": None}]))
        for version, proto in ((4, "ip"), (6, "ip6")):
            sources = trusted(networks, name, version)
            if sources and family in ("inet", proto):
                prefixes = {
                    "set": [
                        {
                            "prefix": {
                                "addr": str(ipaddress.ip_network(text).network_address),
                                "len": ipaddress.ip_network(text).prefixlen,
                            }
                        }
                        for text in sources
                    ]
                }
                saddr = {
                    "match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "saddr"}}, "right": prefixes}
                }
                rules.append(
                    (COMMENT % (name, "trusted " + proto), [_meta("oifname", bridge), saddr, {"accept": None}])
                )
    return rules


def native_commands(listing: dict, chain: DropChain, networks: Dict[str, BridgeRecord]) -> List[dict]:
    """nft commands that make our pass rules in a native chain exactly ``native_rules``."""
    present = {}
    for item in listing.get("nftables", []):
        rule = item.get("rule")
        if rule and (rule.get("family"), rule.get("table"), rule.get("chain")) == (
            chain.family,
            chain.table,
            chain.chain,
        ):
            comment = rule.get("comment", "")
            if comment.startswith("cnm network "):
                present[comment] = rule.get("handle")
    wanted = native_rules(networks, chain.family)
    commands = []
    where = {"family": chain.family, "table": chain.table, "chain": chain.chain}
    for comment, handle in sorted(present.items()):
        if comment not in dict(wanted):
            commands.append({"delete": {"rule": dict(where, handle=handle)}})
    for comment, expr in reversed(wanted):  # each insert goes to the top: insert the last first
        if comment not in present:
            commands.append({"insert": {"rule": dict(where, expr=expr, comment=comment)}})
    return commands


# ---- iptables-nft chains ----


def xtables_lines(networks: Dict[str, BridgeRecord], chain: str, family: str = "ip") -> Dict[str, str]:
    """comment -> the iptables rule (without -A/-I/-D CHAIN) of every pass rule; one per trusted source of the
    table's IP version (``-s A,B`` would become several rules under one comment)."""
    lines = {}
    for name, bridge in routed(networks):
        lines[COMMENT % (name, "out")] = '-i %s -m comment --comment "%s" -j ACCEPT' % (bridge, COMMENT % (name, "out"))
        lines[COMMENT % (name, "back")] = (
            '-o %s -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "%s" -j ACCEPT'
            % (bridge, COMMENT % (name, "back"))
        )
        lines[COMMENT % (name, "published")] = (
            '-o %s -m conntrack --ctstate DNAT -m comment --comment "%s" -j ACCEPT'
            % (bridge, COMMENT % (name, "published"))
        )
        for source in trusted(networks, name, 4 if family == "ip" else 6):
            comment = COMMENT % (name, "trusted " + source)
            lines[comment] = '-s %s -o %s -m comment --comment "%s" -j ACCEPT' % (source, bridge, comment)
    return lines


def parse_xtables(saved: str, chain: str) -> Dict[str, str]:
    """comment -> rule spec of our pass rules in ``iptables -S CHAIN`` output."""
    present = {}
    prefix = "-A %s " % chain
    for line in saved.splitlines():
        if line.startswith(prefix) and '--comment "cnm network ' in line:
            comment = line.split('--comment "', 1)[1].split('"', 1)[0]
            present[comment] = line[len(prefix) :]
    return present


def xtables_script(present: Dict[str, str], wanted: Dict[str, str], chain: str) -> Optional[str]:
    """An iptables-restore --noflush script turning ``present`` into ``wanted`` (None: nothing to do)."""
    lines = ["-D %s %s" % (chain, spec) for comment, spec in sorted(present.items()) if comment not in wanted]
    lines += [
        "-I %s 1 %s" % (chain, spec) for comment, spec in reversed(list(wanted.items())) if comment not in present
    ]
    if not lines:
        return None
    return "*filter\n%s\nCOMMIT\n" % "\n".join(lines)


def tool(family: str) -> Optional[str]:
    name = XTABLES[family]
    for directory in ("/usr/sbin", "/sbin"):
        if os.access(os.path.join(directory, name + "-restore"), os.X_OK):
            return os.path.join(directory, name)
    found = shutil.which(name)
    return found
