# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The firewall room: the collection's own nftables table, rendered whole from the store.

Everything lives in ``inet cnm`` (isolation between networks, internal networks, masquerade, and
the DNAT of published ports with their hairpin, localhost and loopback-guard rules).
Docker's icc=false is not a rule: it is the kernel's own bridge port flag ``isolated`` (set by the
endpoint planner), which needs neither br_netfilter nor nft's bridge meta keys (this kernel lacks
``meta ibrname``). Every rule carries a comment naming its owner and a hash of its content,
so comparing the kernel's rules with the desired ones is comparing two lists of comments. A chain
whose list differs is flushed and refilled; all of it goes to the kernel in one ``nft -j -f``
transaction. Tables of others are never flushed or edited.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ansible_collections.cnm.network.plugins.module_utils import passes
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError

TABLE = "cnm"
COMMENT_PREFIX = "cnm "
NFT_CANDIDATES = ("/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft")


@dataclass(frozen=True)
class Chain:
    family: str
    name: str
    type: str
    hook: str
    prio: int
    policy: str = "accept"

    def spec(self) -> dict:
        return {"family": self.family, "table": TABLE, "name": self.name, "type": self.type, "hook": self.hook, "prio": self.prio, "policy": self.policy}


INET_RAW = Chain("inet", "raw_prerouting", "filter", "prerouting", -300)
INET_PREROUTING = Chain("inet", "prerouting", "nat", "prerouting", -100)
INET_OUTPUT = Chain("inet", "output", "nat", "output", -100)
INET_INPUT = Chain("inet", "input", "filter", "input", 0)
INET_FORWARD = Chain("inet", "forward", "filter", "forward", 0)
INET_POSTROUTING = Chain("inet", "postrouting", "nat", "postrouting", 100)
CHAINS = {"inet": (INET_RAW, INET_PREROUTING, INET_OUTPUT, INET_INPUT, INET_FORWARD, INET_POSTROUTING)}
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


@dataclass(frozen=True)
class Rule:
    chain: Chain
    owner: str  # e.g. "network web isolation"
    expr: str  # the nft JSON expression list, serialised (hashable)

    @property
    def comment(self) -> str:
        digest = hashlib.sha256((self.chain.family + self.chain.name + self.expr).encode()).hexdigest()[:8]
        return "%s%s #%s" % (COMMENT_PREFIX, self.owner, digest)

    def command(self) -> dict:
        return {"add": {"rule": {"family": self.chain.family, "table": TABLE, "chain": self.chain.name,
                                 "expr": json.loads(self.expr), "comment": self.comment}}}


def _rule(chain: Chain, owner: str, *expr) -> Rule:
    return Rule(chain, owner, json.dumps(list(expr), sort_keys=True))


def _match(key: str, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": {"meta": {"key": key}}, "right": right}}


def _saddr(network) -> dict:
    proto = "ip" if network.version == 4 else "ip6"
    prefix = {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}
    return {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "saddr"}}, "right": prefix}}


def _payload(protocol: str, field_name: str, right, op: str = "==") -> dict:
    return {"match": {"op": op, "left": {"payload": {"protocol": protocol, "field": field_name}}, "right": right}}


def _prefix(network) -> dict:
    return {"prefix": {"addr": str(network.network_address), "len": network.prefixlen}}


def _names(names: List[str]):
    return names[0] if len(names) == 1 else {"set": sorted(names)}


def reaches_loopback(entry: dict) -> bool:
    """A published port bound to all addresses or to 127.0.0.0/8 answers on the host's loopback."""
    return not entry["host_ip"] or ipaddress.ip_address(entry["host_ip"]).is_unspecified or ipaddress.ip_address(entry["host_ip"]) in LOOPBACK


def render_ports(networks: Dict[str, dict], ports: Dict[str, dict]) -> List[Rule]:
    """DNAT for every published port, from other hosts (prerouting) and from the host itself (output)."""
    rules: List[Rule] = []
    for key in sorted(ports):
        entry = ports[key]
        owner = "port %s %s" % (entry["network"], key)
        proto = _match("l4proto", entry["protocol"])
        dport = _payload("th", "dport", entry["host_port"])
        dnat = {"dnat": {"family": "ip", "addr": entry["container_ip"], "port": entry["container_port"]}}
        host_ip = ipaddress.ip_address(entry["host_ip"]) if entry["host_ip"] else None
        if host_ip is None or host_ip.is_unspecified:
            where = [_match("nfproto", "ipv4"), {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}}]
        else:
            where = [_payload("ip", "daddr", str(host_ip))]
        if host_ip is None or host_ip not in LOOPBACK:
            rules.append(_rule(INET_PREROUTING, owner, *(where + [proto, dport, dnat])))
        rules.append(_rule(INET_OUTPUT, owner, *(where + [proto, dport, dnat])))
    if ports:
        # Published ports are meant to be reached from anywhere, also from other cnm networks.
        rules.insert(0, _rule(INET_FORWARD, "ports accept published", {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}},
                              {"accept": None}))
    if any(reaches_loopback(entry) for entry in ports.values()):
        # Docker's guard: nobody outside may reach a loopback-bound port by routing 127.0.0.1 through us.
        rules.insert(0, _rule(INET_RAW, "ports loopback guard", _match("iifname", "lo", "!="), _payload("ip", "daddr", _prefix(LOOPBACK)), {"drop": None}))
    for name in sorted({entry["network"] for entry in ports.values()}):
        record = networks.get(name)
        if record is None:
            continue
        bridge = record["bridge_name"]
        ct_dnat = {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}}
        # Hairpin: an endpoint reaching a port published on its own network answers through the host.
        if record.get("subnet"):  # an IPv6-only network has no IPv4 subnet
            rules.append(_rule(INET_POSTROUTING, "network %s hairpin" % name, _match("oifname", bridge),
                               _saddr(ipaddress.ip_network(record["subnet"])), ct_dnat, {"masquerade": None}))
        if any(reaches_loopback(entry) for entry in ports.values() if entry["network"] == name):
            rules.append(_rule(INET_POSTROUTING, "network %s localhost" % name, _match("oifname", bridge), _saddr(LOOPBACK), {"masquerade": None}))
    return rules


def render_vxlan_filter(networks: Dict[str, dict]) -> List[Rule]:
    """restrict_peers: VXLAN of an overlay's VNI is accepted only from its listed peers.

    The match includes the VNI (24 bits at byte 4 of the VXLAN header, after the 8-byte UDP header),
    so other VXLAN devices sharing the UDP port, with their own VNIs and VTEPs, are not affected.
    Encrypted overlays also drop VXLAN of their VNI that did not come out of IPsec (``meta ipsec
    missing``, nft's ``meta secpath``; Docker's ``-m policy --pol none`` drop), from any source: the
    kernel's check of the input policies (one per listed peer) refuses clear VXLAN from peers only,
    and this rule is in place before the device comes up.
    """
    rules = []
    for name in sorted(networks):
        record = networks[name]
        if record.get("driver") != "overlay":
            continue
        vxlan = [_match("l4proto", "udp"), _payload("th", "dport", record["port"]),
                 {"match": {"op": "==", "left": {"payload": {"base": "th", "offset": 96, "len": 24}}, "right": record["vni"]}}]
        if record.get("restrict_peers", True):
            peers = sorted((peer["vtep"] for peer in record.get("peers", ())), key=ipaddress.ip_address)
            expr = list(vxlan)
            if peers:
                expr.append(_payload("ip", "saddr", _names(peers), "!="))
            rules.append(_rule(INET_INPUT, "network %s vxlan peers only" % name, *(expr + [{"drop": None}])))
        if record.get("encrypted"):
            rules.append(_rule(INET_INPUT, "network %s vxlan clear drop" % name, *(vxlan + [_match("ipsec", False), {"drop": None}])))
    return rules


def render(networks: Dict[str, dict], ports: Optional[Dict[str, dict]] = None) -> List[Rule]:
    """The rules every cnm network and published port of the store needs, in chain order."""
    rules: List[Rule] = render_ports(networks, ports or {}) + render_vxlan_filter(networks)
    bridges = {name: record["bridge_name"] for name, record in networks.items()}
    for name in sorted(networks):
        record = networks[name]
        bridge = record["bridge_name"]
        others = [other for other_name, other in bridges.items() if other_name != name]
        if others:  # Docker's isolation: no traffic from this network into another cnm network
            rules.append(_rule(INET_FORWARD, "network %s isolation" % name, _match("iifname", bridge), _match("oifname", _names(others)), {"drop": None}))
        if record.get("internal"):  # nothing in or out, only between the network's own endpoints
            rules.append(_rule(INET_FORWARD, "network %s internal out" % name, _match("iifname", bridge), _match("oifname", bridge, "!="), {"drop": None}))
            rules.append(_rule(INET_FORWARD, "network %s internal in" % name, _match("oifname", bridge), _match("iifname", bridge, "!="), {"drop": None}))
        elif record.get("masquerade", True) and record.get("subnet"):  # an IPv6-only network has no IPv4 subnet
            subnet = ipaddress.ip_network(record["subnet"])
            rules.append(_rule(INET_POSTROUTING, "network %s masquerade" % name, _saddr(subnet), _match("oifname", bridge, "!="), {"masquerade": None}))
    return rules


@dataclass
class Ruleset:
    """Our tables as the kernel has them: chains by (family, name) with their spec and rules."""

    chains: Dict[Tuple[str, str], dict]
    rules: Dict[Tuple[str, str], List[dict]]
    families: set = field(default_factory=set)  # families in which our table exists (also when it has no chain)

    def comments(self) -> Dict[str, List[str]]:
        return {"%s %s" % key: [rule.get("comment", "") for rule in self.rules.get(key, [])] for key in sorted(self.chains)}

    @property
    def tables(self) -> set:
        return self.families | {family for family, _name in self.chains}


def parse(listing: dict) -> Ruleset:
    """Our tables out of ``nft -j list ruleset`` (everything else is ignored)."""
    chains: Dict[Tuple[str, str], dict] = {}
    rules: Dict[Tuple[str, str], List[dict]] = {}
    families = set()
    for item in listing.get("nftables", []):
        if "table" in item and item["table"].get("name") == TABLE and item["table"].get("family") in CHAINS:
            families.add(item["table"]["family"])
        elif "chain" in item and item["chain"].get("table") == TABLE and item["chain"].get("family") in CHAINS:
            chain = item["chain"]
            chains[(chain["family"], chain["name"])] = chain
        elif "rule" in item and item["rule"].get("table") == TABLE and item["rule"].get("family") in CHAINS:
            rule = item["rule"]
            rules.setdefault((rule["family"], rule["chain"]), []).append(rule)
    return Ruleset(chains, rules, families)


def _same_chain(current: dict, wanted: Chain) -> bool:
    have = (current.get("type"), current.get("hook"), current.get("prio"), current.get("policy", "accept"))
    return have == (wanted.type, wanted.hook, wanted.prio, wanted.policy)


def transaction(current: Ruleset, rules: List[Rule]) -> List[dict]:
    """The nft JSON commands that turn ``current`` into exactly ``rules`` (empty: nothing to do)."""
    wanted_families = {rule.chain.family for rule in rules}
    commands: List[dict] = []
    for family in sorted(current.tables - wanted_families):
        commands.append({"delete": {"table": {"family": family, "name": TABLE}}})
    for family in sorted(wanted_families):
        if family not in current.tables:
            commands.append({"add": {"table": {"family": family, "name": TABLE}}})
        known = {chain.name for chain in CHAINS[family]}
        for stray_family, stray in sorted(current.chains):  # chains we no longer render (older versions, hand-made)
            if stray_family == family and stray not in known:
                commands.append({"flush": {"chain": {"family": family, "table": TABLE, "name": stray}}})
                commands.append({"delete": {"chain": {"family": family, "table": TABLE, "name": stray}}})
        for chain in CHAINS[family]:
            key = (family, chain.name)
            mine = [rule for rule in rules if rule.chain == chain]
            have = current.chains.get(key)
            if have is not None and not _same_chain(have, chain):
                commands.append({"delete": {"chain": {"family": family, "table": TABLE, "name": chain.name}}})
                have = None
            if have is None:
                commands.append({"add": {"chain": chain.spec()}})
            elif [r.get("comment") for r in current.rules.get(key, [])] == [rule.comment for rule in mine]:
                continue
            else:
                commands.append({"flush": {"chain": {"family": family, "table": TABLE, "name": chain.name}}})
            commands.extend(rule.command() for rule in mine)
    return commands


def restore_commands(before: Ruleset, after_families: set) -> List[dict]:
    """Commands that put ``before`` back (the undo of a transaction)."""
    commands: List[dict] = [{"delete": {"table": {"family": family, "name": TABLE}}} for family in sorted(after_families)]
    for family in sorted(before.tables):
        commands.append({"add": {"table": {"family": family, "name": TABLE}}})
    for (family, name), chain in sorted(before.chains.items()):
        spec = {key: chain[key] for key in ("family", "table", "name", "type", "hook", "prio", "policy") if key in chain}
        commands.append({"add": {"chain": spec}})
        for rule in before.rules.get((family, name), []):
            commands.append({"add": {"rule": {key: rule[key] for key in ("family", "table", "chain", "expr", "comment") if key in rule}}})
    return commands


class Nft:
    """The nft command: one listing and at most one transaction per module run.

    ``run`` is AnsibleModule.run_command (argv, data=stdin) -> (rc, stdout, stderr).
    """

    def __init__(self, run) -> None:
        self.run = run
        self.path = next((path for path in NFT_CANDIDATES if os.access(path, os.X_OK)), None) or shutil.which("nft")

    def require(self, why: str) -> str:
        if self.path is None:
            raise CnmError("%s needs nftables: install the nftables package (the nft command was not found)" % why)
        return self.path

    def listing(self) -> dict:
        """``nft -j list ruleset``: every table of the host, ours and others'."""
        if self.path is None:
            return {}
        code, out, err = self.run([self.path, "-j", "list", "ruleset"])
        if code != 0:
            raise CnmError("nft -j list ruleset failed: %s" % err.strip())
        return json.loads(out or "{}")

    def ruleset(self) -> Ruleset:
        return parse(self.listing())

    def apply(self, commands: List[dict], why: str = "the firewall") -> None:
        code, _out, err = self.run([self.require(why), "-j", "-f", "-"], data=json.dumps({"nftables": commands}))
        if code != 0:
            raise OSError(code, "nft refused the transaction: %s" % err.strip())


def forwarding_needed(networks: Dict[str, dict]) -> bool:
    """Routing out of a network needs IPv4 forwarding on the host; internal networks do not."""
    return any(not record.get("internal") for record in networks.values())


def sysctl_path(name: str) -> str:
    return os.path.join("/proc/sys", name.replace(".", "/"))


def read_sysctl(name: str) -> Optional[str]:
    try:
        with open(sysctl_path(name)) as handle:
            return handle.read().strip()
    except OSError:
        return None


def bridged(networks: Dict[str, dict]) -> Dict[str, dict]:
    """The networks whose traffic the host routes through a bridge (bridge, overlay): the firewall's business.
    Macvlan endpoints talk to their LAN directly, past the host's stack."""
    return {name: record for name, record in networks.items() if record.get("bridge_name")}


def write_sysctl(name: str, value: str) -> None:
    with open(sysctl_path(name), "w") as handle:
        handle.write(value)


def plan_firewall(host) -> None:
    """Add to the host's plan what makes our table, the sysctls it needs and conntrack match the store."""
    networks = bridged(host.state["networks"])
    ports = host.state.get("ports", {})
    rules = render(networks, ports)
    nft = Nft(host.run_command)
    if rules:
        nft.require("the firewall of network(s) %s (masquerade, internal or isolation)" % ", ".join(sorted(networks)))
    listing = nft.listing()
    current = parse(listing)
    commands = transaction(current, rules)
    if commands:
        wanted = Ruleset({(rule.chain.family, rule.chain.name): {} for rule in rules}, {})
        for family in {rule.chain.family for rule in rules}:
            for chain in CHAINS[family]:
                wanted.chains[(family, chain.name)] = {}
                wanted.rules[(family, chain.name)] = [{"comment": rule.comment} for rule in rules if rule.chain == chain]
        families_after = {rule.chain.family for rule in rules}
        host.plan.add("firewall", "apply %d nft command(s) to the cnm tables" % len(commands), current.comments() or None, wanted.comments() or None,
                      lambda: nft.apply(commands), lambda: nft.apply(restore_commands(current, families_after)))
    _plan_passes(host, nft, listing, networks)
    _plan_sysctls(host, needed_sysctls(networks, ports))
    _plan_conntrack_flush(host)


def _plan_passes(host, nft: Nft, listing: dict, networks: Dict[str, dict]) -> None:
    """Our accept rules in other owners' forward chains that drop by policy (see passes.py)."""
    before = bridged(host.original["networks"])
    for chain in passes.drop_chains(listing):
        if chain.xtables:
            _plan_xtables_passes(host, listing, chain, networks)
            continue
        commands = passes.native_commands(listing, chain, networks)
        if commands:
            names = [comment for comment, _expr in passes.native_rules(networks)]
            host.warnings.append("%s drops forwarded traffic (policy drop): cnm updates its pass rules there for network(s) %s"
                                 % (chain.describe(), ", ".join(name for name, _bridge in passes.routed(networks)) or "none (removing them)"))
            host.plan.add("passes %s" % chain.describe(), "update %d pass rule(s) in %s" % (len(commands), chain.describe()),
                          None, {chain.describe(): names} if names else None, lambda c=commands: nft.apply(c),
                          lambda c=chain: nft.apply(passes.native_commands(nft.listing(), c, before)))


def _plan_xtables_passes(host, listing: dict, chain, networks: Dict[str, dict]) -> None:
    command = passes.tool(chain.family)
    if command is None:
        if passes.routed(networks):
            host.warnings.append("%s drops forwarded traffic, and %s is not installed to add cnm's pass rules: routed traffic of cnm networks "
                                 "is dropped" % (chain.describe(), passes.XTABLES[chain.family]))
        return
    target = "DOCKER-USER" if passes.chain_exists(listing, chain.family, chain.table, "DOCKER-USER") else chain.chain
    code, out, err = host.run_command([command, "-w", "-S", target])
    if code != 0:
        raise CnmError("%s -S %s failed: %s" % (command, target, err.strip()))
    present = passes.parse_xtables(out, target)
    wanted = passes.xtables_lines(networks, target)
    script = passes.xtables_script(present, wanted, target)
    if script is None:
        return
    undo = passes.xtables_script(wanted, present, target)
    where = "%s %s %s" % (chain.family, chain.table, target)
    host.warnings.append("%s drops forwarded traffic (policy drop): cnm updates its pass rules in %s" % (chain.describe(), where))
    host.plan.add("passes %s" % where, "update pass rules in %s (iptables-restore --noflush)" % where,
                  {where: sorted(present)} if present else None, {where: sorted(wanted)} if wanted else None,
                  lambda: _restore(host, command, script), (lambda: _restore(host, command, undo)) if undo else None)


def _restore(host, command: str, script: str) -> None:
    code, _out, err = host.run_command([command + "-restore", "-w", "--noflush"], data=script)
    if code != 0:
        raise OSError(code, "%s-restore refused the pass rules: %s" % (command, err.strip()))


def needed_sysctls(networks: Dict[str, dict], ports: Dict[str, dict]) -> Dict[str, str]:
    """IPv4 forwarding while a network routes; route_localnet on bridges whose ports answer on 127.0.0.1."""
    wanted = {"net.ipv4.ip_forward": "1"} if forwarding_needed(networks) else {}
    for entry in ports.values():
        record = networks.get(entry["network"])
        if record is not None and reaches_loopback(entry):
            wanted["net.ipv4.conf.%s.route_localnet" % record["bridge_name"]] = "1"
    return wanted


def _plan_sysctls(host, wanted: Dict[str, str]) -> None:
    """Set what is wanted, recording the value found first; give it back when no longer wanted."""
    recorded = host.state.get("sysctls", {})
    for name in sorted(set(wanted) | set(recorded)):
        value = read_sysctl(name)
        if name in wanted and value is not None and value != wanted[name]:
            host.state.setdefault("sysctls", {}).setdefault(name, value)
            host.plan.add("sysctl %s" % name, "set %s=%s (recorded: %s)" % (name, wanted[name], value), {name: value}, {name: wanted[name]},
                          lambda n=name, v=wanted[name]: write_sysctl(n, v), lambda n=name, v=value: write_sysctl(n, v))
        elif name not in wanted and name in recorded:
            original = host.state["sysctls"].pop(name)
            if original is not None and value is not None and original != value:
                host.plan.add("sysctl %s" % name, "restore %s=%s" % (name, original), {name: value}, {name: original},
                              lambda n=name, v=original: write_sysctl(n, v), lambda n=name, v=value: write_sysctl(n, v))
    if "sysctls" in host.state and not host.state["sysctls"]:
        del host.state["sysctls"]


def conntrack_flow(entry: dict) -> tuple:
    """What identifies the conntrack entries of a published port: protocol, host port, container address."""
    return (entry["protocol"], entry["host_port"], entry["container_ip"])


def _plan_conntrack_flush(host) -> None:
    """Mappings changed (UDP) or removed: delete their own conntrack entries, so the change takes effect at once."""
    if host.conntrack_flush:
        flows = sorted(host.conntrack_flush)
        host.plan.add("conntrack", "flush the conntrack entries of %d mapping(s)" % len(flows), None, None, lambda: _flush(host, flows))


def _flush(host, flows: list) -> None:
    """One listing, then a delete only for the mappings that have entries (usually none)."""
    path = next((p for p in ("/usr/sbin/conntrack", "/sbin/conntrack") if os.access(p, os.X_OK)), None) or shutil.which("conntrack")
    if path is None:
        host.warnings.append("conntrack entries of %d published port(s) were not flushed: install the conntrack package" % len(flows))
        return
    code, out, err = host.run_command([path, "-L"])
    if code != 0:
        raise OSError(code, "conntrack -L failed: %s" % err.strip())
    present = set(_listed_flows(out))
    for protocol, port, container_ip in flows:
        if (protocol, port, container_ip) not in present:
            continue
        code, _out, err = host.run_command([path, "-D", "-p", protocol, "--orig-port-dst", str(port), "--reply-src", container_ip])
        if code not in (0, 1):  # 1: nothing left to delete
            raise OSError(code, "conntrack -D failed: %s" % err.strip())


def _listed_flows(listing: str):
    """(protocol, original destination port, reply source) of each ``conntrack -L`` line."""
    for line in listing.splitlines():
        fields = line.split()
        ports = [f.split("=", 1)[1] for f in fields if f.startswith("dport=")]
        sources = [f.split("=", 1)[1] for f in fields if f.startswith("src=")]
        if fields and ports and len(sources) > 1 and ports[0].isdigit():
            yield (fields[0], int(ports[0]), sources[1])
