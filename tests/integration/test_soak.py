"""The soak: an operator's day on one lab host, over and over, and nothing may leak (issue 11).

One cycle, in a handful of module runs (the ``endpoints:`` batch options):

1. ``cnm_bridge`` makes a dual-stack network ``soa`` and an IPv4 network ``sob``;
2. one ``cnm_endpoint`` attaches six sandboxes (named namespaces) to ``soa`` and three of them also to ``sob``;
3. one ``cnm_port_publish`` publishes ports of two endpoints: on all addresses, on 127.0.0.1 and UDP;
4. real traffic: one ping between two sandboxes, one TCP connect from the host to 127.0.0.1 through a published port
   of the sandbox deleted by hand (odd cycles) or of the one left for the force removal (even cycles); the census
   sees its conntrack entry and the ports' rules and elements, so it can see them leak;
5. one sandbox (with published ports) is deleted by hand (``ip netns del``) and the batch is run again: its lease,
   ports (nft elements, conntrack entries) and veth must go in that run;
6. the rest are detached (``state: absent``, ``delete_netns``) but one, ``sob`` is removed, and ``soa`` is removed
   with ``force`` while that endpoint (with published ports on all addresses, 127.0.0.1 and UDP) is still attached;
   its namespace is then deleted by hand.

After every cycle the host is counted against what it held before the first cycle: links and addresses in the host's
namespace, namespaces (``ip netns list`` and the files in /run/netns), rules and set/map elements of the ``inet cnm``
table and its chains, conntrack entries of the lab's addresses, the files of the host's store and its records, and
the forwarding sysctls. Each cycle prints its time and these leak counts; any leak fails the test at once.

The number of cycles is CNM_SOAK_CYCLES (default 10, about 30 s on 2 idle cores). The long soak::

    CNM_SOAK_CYCLES=1000 nice -n 10 .venv/bin/python -m pytest tests/integration/test_soak.py -q -s
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from conftest import pings, sh
from test_ports import SERVE, wait_answer

CYCLES = int(os.environ.get("CNM_SOAK_CYCLES", "10"))
SANDBOXES = 6  # s0 .. s5 on soa; s3 .. s5 also on sob
DUAL = dict(name="soa", subnet="172.30.0.0/24", ipv6_subnet="fd00:30::/64")
PLAIN = dict(name="sob", subnet="172.31.0.0/24")
LAB_ADDRESSES = ("172.30.", "172.31.", "fd00:30:")  # what the lab's conntrack entries mention
# Conntrack entries of the lab's addresses that the kernel expires by itself and the collection leaves (see census):
# the ping's ICMP entry (30 s) and the bridges' own IGMP/MLD reports to multicast groups (600 s).
EXPIRING = ("icmp ", "icmpv6 ", "unknown ")
EXPIRING_BOUND = 40  # ICMP entries live 30 s and a cycle takes more than 2 s: more means they pile up
PORTS = {
    0: ["4000:80", "127.0.0.1:4001:80", "5353:53/udp"],  # s0 is deleted by hand: the rerun reclaims these
    2: ["4100:80", "127.0.0.1:4101:80", "5454:53/udp"],
}  # s2 stays attached when soa is force-removed
RECLAIMED = ["tcp/*:4000", "tcp/127.0.0.1:4001", "udp/*:5353"]


def census(host) -> dict:
    """What a leak would show in: named sets of objects (compared whole) of the host and the machine."""
    links = json.loads(host.sh("ip -j link show").stdout)
    addresses = json.loads(host.sh("ip -j addr show").stdout)
    table = host.sh("nft -j list table inet cnm", check=False)
    items = json.loads(table.stdout)["nftables"] if table.returncode == 0 else []
    rules, elements, chains = set(), set(), set()
    for item in items:
        if "rule" in item:
            rule = item["rule"]
            rules.add(json.dumps([rule["chain"], rule["expr"], rule.get("comment")], sort_keys=True))
        elif "chain" in item:
            chains.add(item["chain"]["name"])
        for kind in ("set", "map"):
            if kind in item:
                name = item[kind]["name"]
                elements.update("%s %s" % (name, json.dumps(e, sort_keys=True)) for e in item[kind].get("elem", []))
    conntrack, expiring = set(), set()
    for family in ("ipv4", "ipv6"):
        listing = host.sh("conntrack -L -f %s 2>/dev/null" % family, check=False).stdout
        for line in listing.splitlines():
            if any(" src=%s" % a in line or " dst=%s" % a in line for a in LAB_ADDRESSES):
                (expiring if line.startswith(EXPIRING) else conntrack).add(line)
    store_dir = host.store_path()
    store_files = {
        os.path.relpath(os.path.join(d, f), store_dir) for d, _dirs, files in os.walk(store_dir) for f in files
    }
    store = host.store()
    records = {"%s/%s" % (section, key) for section, value in store.items() if isinstance(value, dict) for key in value}
    prefix = host.prefix + "-"
    return {
        "links": {link["ifname"] for link in links},
        "addresses": {
            "%s %s/%s" % (a["ifname"], i["local"], i["prefixlen"]) for a in addresses for i in a.get("addr_info", [])
        },
        "netns": {name for name in sh("ip netns list").stdout.split() if name.startswith(prefix)},
        "netns_files": {name for name in os.listdir("/run/netns") if name.startswith(prefix)},
        "nft_rules": rules,
        "nft_elements": elements,
        "nft_chains": chains,
        "conntrack": conntrack,
        "conntrack_expiring": expiring,
        "store_files": store_files,
        "store_records": records,
        "sysctls": {host.sh("sysctl net.ipv4.ip_forward net.ipv6.conf.all.forwarding").stdout},
    }


def leaks(before: dict, after: dict) -> dict:
    """Per kind, how many objects differ from before (made and not removed, or removed and not made again)."""
    return {kind: len(after[kind] ^ before[kind]) for kind in before}


def leaked(counted: dict) -> dict:
    """The counts that are leaks: any difference, but for expiring conntrack entries only more than can be alive."""
    return {kind: n for kind, n in counted.items() if n and (kind != "conntrack_expiring" or n > EXPIRING_BOUND)}


class Server:
    """A TCP server on port 80 of a sandbox answering its name, stopped before the sandbox goes."""

    def __init__(self, netns: str, name: str) -> None:
        argv = ["nsenter", "--net=/run/netns/%s" % netns, "--", sys.executable, "-c", SERVE, "tcp", "80", name]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def cycle(host, number: int) -> None:
    names = [host.sandbox("s%d" % index) for index in range(SANDBOXES)]
    attach = [dict(network="soa", netns=name) for name in names]
    attach += [dict(network="sob", netns=name) for name in names[3:]]
    assert host.ok("cnm_bridge", **DUAL)["changed"] and host.ok("cnm_bridge", **PLAIN)["changed"]
    attached = host.ok("cnm_endpoint", endpoints=attach)["endpoints"]
    on_soa = {ep["netns"]: ep for ep in attached if ep["network"] == "soa"}
    assert len({ep["ipv4_address"] for ep in attached}) == len(attach) and all(on_soa[n]["ipv6_address"] for n in names)
    publish = [dict(netns=names[index], ports=ports) for index, ports in PORTS.items()]
    host.ok("cnm_port_publish", network="soa", endpoints=publish)

    assert pings(names[1], on_soa[names[2]]["ipv4_address"])
    index = 0 if number % 2 else 2  # whose conntrack entry must go: by the reclaim (odd cycles) or the force removal
    server = Server(names[index], "soak-s%d" % index)
    try:
        assert wait_answer(host.name, "tcp", "127.0.0.1", 4001 + 50 * index, "soak-s%d" % index) == "soak-s%d" % index
    finally:
        server.stop()
    seen = census(host)  # the census sees what a leak would leave: the ports' rules, elements and conntrack entries
    assert seen["conntrack"] and seen["nft_elements"] and seen["nft_rules"], seen

    sh("ip netns del %s" % names[0])  # by hand, without a detach
    rerun = host.ok("cnm_endpoint", endpoints=attach[1:])
    assert [(r["sandbox"], r["ports"]) for r in rerun["reclaimed"]] == [("netns:" + names[0], RECLAIMED)], rerun
    assert on_soa[names[0]]["host_ifname"] not in host.links()
    assert "netns:" + names[0] not in {record["sandbox"] for record in host.store()["endpoints"].values()}
    table = host.sh("nft list table inet cnm").stdout
    assert not [port for port in ("4000", "4001", "5353") if port in table], table

    keep = attach[2]  # s2 on soa, with its ports: the force removal detaches it
    host.ok("cnm_endpoint", state="absent", delete_netns=True, endpoints=[ep for ep in attach[1:] if ep is not keep])
    assert host.ok("cnm_bridge", name="sob", state="absent")["changed"]
    removed = host.ok("cnm_bridge", name="soa", state="absent", force=True)
    assert removed["network"]["detached"] == 1, removed
    sh("ip netns del %s" % names[2])


def test_soak(host, capsys):
    host.ok("cnm_info")  # the store's lock file, made by the first module run on a host and kept, is in the baseline
    before = census(host)
    times = []
    for number in range(1, CYCLES + 1):
        start = time.monotonic()
        cycle(host, number)
        times.append(time.monotonic() - start)
        after = census(host)
        counted = leaks(before, after)
        with capsys.disabled():
            counts = " ".join("%s=%d" % kv for kv in counted.items())
            print("soak cycle %d/%d: %.2f s; leaks: %s" % (number, CYCLES, times[-1], counts), flush=True)
        found = {kind: sorted(after[kind] ^ before[kind]) for kind in leaked(counted)}
        assert not found, "cycle %d leaked: %s" % (number, found)
    with capsys.disabled():
        print(
            "soak: %d cycles, per cycle median %.2f s, min %.2f s, max %.2f s, first %.2f s, last %.2f s; no leak"
            % (CYCLES, statistics.median(times), min(times), max(times), times[0], times[-1])
        )
