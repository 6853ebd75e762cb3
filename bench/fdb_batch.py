#!/usr/bin/env python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: an overlay's FDB and neighbour entries for N remote endpoints, cnm_overlay vs iproute2's batch mode
(issue 14 item 4).

    python bench/fdb_batch.py [--sizes 10000] [--repeat 3] [--vteps 100] [--profile]

In throwaway namespaces with a fresh prefix ``cnmf<hex>`` (nothing in the root namespace), each round:

  ``-host``  a host with ``eth0`` (a veth, 192.0.2.1/24): cnm_overlay ``ov`` (VNI 4300) with ``--vteps`` peers
             192.0.2.10... sharing N endpoints (10.210.1.0 onwards, Docker's MACs), run as Ansible runs it
             (nsenter, JSON args file); the time is the module's ``main()``:
               add     the overlay and every peer at once (one FDB entry per VTEP, one FDB and one neighbour
                       entry per endpoint)
               rerun   the same arguments again (nothing changes)
               delete  ``peers: []`` (every entry removed, the overlay stays)
  ``-ref``   the same VXLAN device made with ``ip link``, then the same entries with ``bridge -batch`` (fdb append)
             followed by ``ip -batch`` (neigh replace); rerun: nothing (iproute2 has no idea of a rerun); delete:
             ``bridge -batch`` fdb del then ``ip -batch`` neigh del. The time is both processes' wall time.

Prints every round and a table of medians, and checks the module's entries against ``bridge fdb`` and ``ip neigh``
after each phase. ``--profile`` also writes cProfile reports of the module's phases to bench/results/.
Everything is removed in ``finally`` (namespaces, the module's store, temp files); then it checks that no namespace of
its own is left and that ``ip -br link`` of the root namespace is as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys

# The benchmarks' shared helpers (the script's own folder is on sys.path).
from benchlib import (  # noqa: E402
    PHASES,
    BenchError,
    check_common,
    collections_root,
    destroy_lab,
    fmt,
    guarded,
    in_ns,
    mac_of,
    median,
    profile_report,
    run,
    run_module,
    say,
    store_dir,
    timed,
    worker_main,
)

PREFIX = "cnmf"  # not another benchmark's prefix: they may run at the same time
NETWORK, VNI, SUBNET, LOCAL = "ov", 4300, "10.210.0.0/16", "192.0.2.1"
VXLAN, BRIDGE = "vx-ov", "br-ov"
FLOOD = "00:00:00:00:00:00"


def endpoints(size: int, vteps: int) -> dict:
    """VTEP -> its endpoints' (IP, MAC): ``size`` endpoints dealt round-robin over ``vteps`` VTEPs."""
    peers: dict = {"192.0.2.%d" % (10 + i): [] for i in range(vteps)}
    addresses = list(peers)
    for n in range(size):
        ip = "10.210.%d.%d" % (1 + n // 250, 1 + n % 250)
        peers[addresses[n % vteps]].append((ip, mac_of(ip)))
    return peers


def module_args(peers: dict) -> dict:
    listed = [
        {"vtep": vtep, "endpoints": [{"ip": ip, "mac": mac} for ip, mac in items]} for vtep, items in peers.items()
    ]
    return {
        "name": NETWORK,
        "vni": VNI,
        "subnet": SUBNET,
        "ip_range": "10.210.0.0/24",
        "local_ip": LOCAL,
        "peers": listed,
        "restrict_peers": False,
    }


def entries(ns: str) -> tuple:
    """(the VXLAN device's remote FDB entries as (MAC, VTEP), its permanent neighbours as (IP, MAC)), as sets."""
    fdb = json.loads(run(in_ns(ns) + ["bridge", "-j", "fdb", "show", "dev", VXLAN]).stdout or "[]")
    neigh = json.loads(run(in_ns(ns) + ["ip", "-j", "neigh", "show", "dev", VXLAN]).stdout or "[]")
    return (
        {(e["mac"], e["dst"]) for e in fdb if "dst" in e},
        {(e["dst"], e["lladdr"]) for e in neigh if "PERMANENT" in e.get("state", [])},
    )


def expected(peers: dict) -> tuple:
    fdb = {(FLOOD, vtep) for vtep in peers} | {(mac, vtep) for vtep, items in peers.items() for _ip, mac in items}
    return fdb, {item for items in peers.values() for item in items}


def make_host(ns: str) -> None:
    run(["ip", "netns", "add", ns])
    script = "ip link set lo up; ip link add eth0 type veth peer name eth0p; ip link set eth0p up; "
    script += "ip addr add %s/24 dev eth0; ip link set eth0 up" % LOCAL
    run(in_ns(ns) + ["bash", "-ec", script])


def cnm_round(ns: str, peers: dict, workdir: str, env: dict, profile: str | None) -> dict:
    """The module's three phases in host ``ns``: {phase: main() seconds}, each checked against the kernel."""
    script = os.path.abspath(__file__)
    times = {}
    for phase, args, want in (
        ("add", module_args(peers), expected(peers)),
        ("rerun", module_args(peers), expected(peers)),
        ("delete", module_args({}), (set(), set())),
    ):
        prof = "%s-%s" % (profile, phase) if profile else None
        result = run_module(script, ns, "cnm_overlay", args, workdir, env, prof)
        if result["result"]["changed"] != (phase != "rerun"):
            raise BenchError("%s: changed=%s" % (phase, result["result"]["changed"]))
        if entries(ns) != want:
            raise BenchError("%s: the kernel's entries are not the module's" % phase)
        times[phase] = result["main"]
    return times


def reference_round(ns: str, peers: dict, workdir: str) -> dict:
    """iproute2's batch mode in a fresh namespace: {phase: seconds} (rerun: None)."""
    run(
        in_ns(ns)
        + [
            "bash",
            "-ec",
            "ip link add br-ov type bridge; ip link set br-ov up; ip link add vx-ov type vxlan id %d local %s "
            "dstport 4789 nolearning proxy; ip link set vx-ov master br-ov up" % (VNI, LOCAL),
        ]
    )
    fdb_add, neigh_add = os.path.join(workdir, "fdb-add"), os.path.join(workdir, "neigh-add")
    fdb_del, neigh_del = os.path.join(workdir, "fdb-del"), os.path.join(workdir, "neigh-del")
    want_fdb, want_neigh = expected(peers)
    with open(fdb_add, "w") as add, open(fdb_del, "w") as delete:
        for mac, vtep in sorted(want_fdb):
            add.write("fdb append %s dev %s dst %s self permanent\n" % (mac, VXLAN, vtep))
            delete.write("fdb del %s dev %s dst %s self\n" % (mac, VXLAN, vtep))
    with open(neigh_add, "w") as add, open(neigh_del, "w") as delete:
        for ip, mac in sorted(want_neigh):
            add.write("neigh replace %s lladdr %s dev %s nud permanent\n" % (ip, mac, VXLAN))
            delete.write("neigh del %s dev %s\n" % (ip, VXLAN))
    times: dict = {"rerun": None}
    for phase, files, want in (
        ("add", (fdb_add, neigh_add), (want_fdb, want_neigh)),
        ("delete", (fdb_del, neigh_del), (set(), set())),
    ):
        times[phase] = timed(in_ns(ns) + ["bridge", "-batch", files[0]])[0]
        times[phase] += timed(in_ns(ns) + ["ip", "-batch", files[1]])[0]
        if entries(ns) != want:
            raise BenchError("iproute2 %s: the kernel's entries are not the ones asked for" % phase)
    return times


def bench_size(size: int, options, workdir: str, env: dict, lab: list) -> dict:
    peers = endpoints(size, options.vteps)
    samples: dict = {"cnm module": [], "iproute2 -batch": []}
    for round_ in range(options.repeat):
        tag = secrets.token_hex(2)
        host, ref = "%s%s-host" % (PREFIX, tag), "%s%s-ref" % (PREFIX, tag)
        lab.extend([host, ref])
        make_host(host)
        lab.append(store_dir(host))
        profile = None
        if options.profile and round_ == 0:
            os.makedirs(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"), exist_ok=True)
            profile = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "fdb_batch-%d" % size)
        cnm = cnm_round(host, peers, workdir, env, profile)
        run(["ip", "netns", "add", ref])
        reference = reference_round(ref, peers, workdir)
        for name, times in (("cnm module", cnm), ("iproute2 -batch", reference)):
            samples[name].append(times)
            say(
                "N=%d round %d %-16s %s"
                % (size, round_ + 1, name, " ".join("%s %s" % (p, fmt(times[p])) for p in PHASES))
            )
        if profile:
            for phase in PHASES:
                with open("%s-%s.txt" % (profile, phase), "w") as handle:
                    handle.write(profile_report("%s-%s" % (profile, phase), 40))
            say("profiles: %s-{%s}.txt" % (profile, ",".join(PHASES)))
        destroy_lab([host, ref], [lab[-1]], os.path.join(workdir, "none"))
    return {name: {p: median([t[p] for t in runs]) for p in PHASES} for name, runs in samples.items()}


def main() -> int:
    if worker_main():
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000], help="remote endpoints (default: 10000)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per N; the table shows medians (default: 3)")
    parser.add_argument("--vteps", type=int, default=100, help="remote VTEPs the endpoints are behind (default: 100)")
    parser.add_argument("--profile", action="store_true", help="cProfile the module's phases in the first round")
    options = parser.parse_args()
    check_common(parser, options, max_size=60000)
    if not 1 <= options.vteps <= 200:
        parser.error("--vteps must be between 1 and 200")
    lab: list = []
    results: dict = {}

    def work(workdir: str) -> None:
        env = dict(os.environ, PYTHONPATH=collections_root(workdir))
        for size in options.sizes:
            results[size] = bench_size(size, options, workdir, env, lab)

    def cleanup() -> None:
        namespaces = [item for item in lab if not item.startswith("/")]
        destroy_lab(namespaces, [item for item in lab if item.startswith("/")], os.path.join("/tmp", "none"))

    status = guarded(PREFIX, work, "cnm-fdb-batch-", cleanup)
    if results:
        print("%6s  %-16s %8s %8s %8s   %s" % ("N", "tool", "add", "rerun", "delete", "(seconds, medians)"))
        for size, rows in results.items():
            for name, row in rows.items():
                print("%6d  %-16s %8s %8s %8s" % (size, name, *(fmt(row[p]) for p in PHASES)))
            ratio = [rows["cnm module"][p] / rows["iproute2 -batch"][p] for p in ("add", "delete")]
            print("%6d  cnm / iproute2: add %.1fx, delete %.1fx" % (size, *ratio))
    return status


if __name__ == "__main__":
    sys.exit(main())
