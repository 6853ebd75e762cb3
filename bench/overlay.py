#!/usr/bin/env python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: throughput across a cnm overlay, beside the underlay and a hand-built VXLAN (issue 4 item 7).

    python bench/overlay.py [--seconds 5] [--repeat 3] [--json out.json] [--udp-rate 200M] [--udp-buffer 4M]
                            [--converge [--converge-sizes 3 10] [--converge-playbook playbooks/overlay.yml]
                             [--converge-serial N]]

In throwaway namespaces with a fresh prefix ``cnmo<hex>`` (nothing in the root namespace):

  ``-ul``         the underlay: a bridge ``ulbr``
  ``-h1``, ``-h2``  two hosts, ``eth0`` (veth, MTU 1500) on the underlay bridge, 192.0.2.11 and .12/24
  ``-hN-c``       host N's sandbox on the cnm overlay ``ov``: cnm_overlay (VNI 4200, 10.200.0.0/16,
                  ip_range 10.200.N.0/24, local_ip, the other host as peer with its endpoint) and one
                  cnm_endpoint, run inside the host as Ansible runs them (nsenter, JSON args file)
  ``-hN-m``       host N's sandbox on a hand-built VXLAN between the same two hosts: ``ip link add vxm
                  type vxlan id 4201 dstport 4789 local <vtep> nolearning proxy``, MTU 1450, on a bridge
                  ``brm`` with a veth into the sandbox (10.201.0.N/24, MAC 02:42:0a:c9:00:0N), a flood FDB
                  entry towards the other VTEP, an FDB entry and a permanent neighbour entry for the
                  other sandbox - what cnm_overlay programs, typed by hand

and measures TCP throughput with iperf3 (server in host 2's side, client in host 1's):

  underlay     host 1 -> host 2 on eth0 (the baseline)
  cnm overlay  sandbox h1-c -> sandbox h2-c across the cnm overlay
  hand-built   sandbox h1-m -> sandbox h2-m across the hand-built VXLAN

twice: first before any cnm module has run (the hosts have no nftables table: underlay and
hand-built only), then with the cnm overlay in place (the collection's ``inet cnm`` table is in
both hosts, and with br_netfilter on it sees the hand-built bridge's traffic too). Within each
phase the paths are interleaved, ``--repeat`` rounds of ``--seconds`` each, the order rotated
every round; the table shows medians. Each TCP run is checked to have gone through the intended
VXLAN device (its tx byte counter grew by at least the bytes sent).

Then full-size UDP across the overlay (and across the hand-built VXLAN, for comparison): iperf3
-u with ``-l 1422 --dont-fragment`` (the IP packet is exactly the overlay MTU, 1450) at
``--udp-rate`` with ``--udp-buffer`` socket buffers (``-w``: with iperf3's default a busy receiver
drops at its socket, which says nothing about the path), lost/total as the server counted them, of
those the drops at the receiving socket (its ``Udp.RcvbufErrors``), and fragments made or
reassembled anywhere (none expected); and don't-fragment pings of 1422 bytes (must pass) and 1423
bytes (must fail) across the overlay.

``--converge``: times ``playbooks/overlay.yml`` (a play over group cnm_lab, applying the overlay
role) on labs of 3 and 10 hosts made with ``playbooks/lab_up.yml`` (own lab_prefix, inventory in
a temp dir), cold and rerun (whole ``ansible-playbook`` processes; each task's wall time across the
hosts is recorded by a callback plugin written to the temp dir), and removes each lab with
``playbooks/lab_down.yml``. Skipped with a message while the playbook does not exist. With
``--converge-serial N`` a third run follows the rerun: the same playbook in batches of N hosts
(``-e cnm_overlay_serial=N``; each batch also reconciles the hosts of the earlier batches).

Everything it makes is removed in ``finally`` (also on Ctrl-C or SIGTERM; a second Ctrl-C is
ignored while it cleans up): the iperf3 servers it started (by pid), its namespaces, the
module's store directories of its hosts, its temporary files. Then it checks that no namespace
of its own is left and that ``ip -br link`` of the root namespace is as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time

# The benchmarks' shared helpers (the script's own folder is on sys.path).
from benchlib import (  # noqa: E402
    REPO,
    BenchError,
    check_common,
    check_tools,
    code_meta,
    collections_root,
    destroy_lab,
    guarded,
    in_ns,
    load_average,
    loads_at_start,
    mac_of,
    machine_meta,
    median,
    missing_tools,
    netns_names,
    now,
    remove_namespaces,
    run,
    say,
    stop_processes,
    store_dir,
    write_json,
)

PREFIX = "cnmo"  # not attach.py's cnmb nor ports.py's cnmp: the benchmarks may run at the same time
UNDERLAY_MTU = 1500
OVERLAY_MTU = UNDERLAY_MTU - 50
VTEPS = {1: "192.0.2.11", 2: "192.0.2.12"}
NETWORK = "ov"
VNI = 4200
SUBNET = "10.200.0.0/16"
VXLAN_PORT = 4789
HAND_VNI = 4201  # the hand-built VXLAN shares UDP port 4789 with the overlay (one socket, two VNIs)
HAND_NET = "10.201.0"
IPERF_PORT = 5201
UDP_PAYLOAD = OVERLAY_MTU - 28  # 20 bytes IPv4 + 8 bytes UDP (or ICMP): the IP packet is exactly the overlay MTU
REFERENCE_OVERLAY_UNDERLAY = 0.87  # the earlier measurement on this machine kind
PATHS = ["underlay", "cnm overlay", "hand-built"]
PRISTINE_PATHS = ["underlay", "hand-built"]


# A callback plugin written to the temp dir for --converge: each task's wall time across all hosts (from its
# start to the next task's start or the end of the play), with its results counted.
CALLBACK_PLUGIN = '''
from __future__ import annotations

DOCUMENTATION = """
name: cnm_bench_task_wall
type: aggregate
short_description: wall time of each task across all hosts (bench/overlay.py)
description: Writes the tasks as JSON to the file named by CNM_BENCH_TIMINGS.
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "cnm_bench_task_wall"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tasks = []
        self.current = None

    def _close(self):
        if self.current is not None:
            self.current["seconds"] = time.perf_counter() - self.current.pop("start")
            self.tasks.append(self.current)
            self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self.current = {"name": task.get_name(), "start": time.perf_counter(), "results": 0, "changed": 0}

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _result(self, result):
        if self.current is not None:
            self.current["results"] += 1
            self.current["changed"] += int(bool(result._result.get("changed")))

    def v2_runner_on_ok(self, result):
        self._result(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result)

    def v2_runner_on_skipped(self, result):
        self._result(result)

    def v2_playbook_on_stats(self, stats):
        self._close()
        with open(os.environ["CNM_BENCH_TIMINGS"], "w") as handle:
            json.dump(self.tasks, handle)
'''


# ---------------------------------------------------------------- small helpers (as in bench/ports.py)


def sh(ns: str, script: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(in_ns(ns) + ["bash", "-ec", script], check=check, timeout=60)


def snmp(ns: str) -> dict:
    """The namespace's /proc/net/snmp counters as {"Ip.FragCreates": n, ...} (/proc/net follows the network
    namespace)."""
    lines = run(in_ns(ns) + ["cat", "/proc/net/snmp"]).stdout.splitlines()
    counters = {}
    for header, values in zip(lines[::2], lines[1::2], strict=True):
        group, names = header.split(":", 1)
        for name, value in zip(names.split(), values.split(":", 1)[1].split(), strict=True):
            counters["%s.%s" % (group, name)] = int(value)
    return counters


def tx_bytes(ns: str, dev: str) -> int:
    return json.loads(run(in_ns(ns) + ["ip", "-s", "-j", "link", "show", dev]).stdout)[0]["stats64"]["tx"]["bytes"]


# ---------------------------------------------------------------- the lab
class Lab:
    """The underlay, two hosts, their cnm and hand-built sandboxes; ``destroy`` removes all it made."""

    def __init__(self, workdir: str, collections: str) -> None:
        self.prefix = PREFIX + secrets.token_hex(3)
        self.underlay = self.prefix + "-ul"
        self.hosts = {i: "%s-h%d" % (self.prefix, i) for i in VTEPS}
        self.cnm_sandboxes = {i: "%s-h%d-c" % (self.prefix, i) for i in VTEPS}
        self.hand_sandboxes = {i: "%s-h%d-m" % (self.prefix, i) for i in VTEPS}
        self.tmp = tempfile.mkdtemp(prefix="%s-" % self.prefix, dir=workdir)
        self.env = dict(os.environ, PYTHONPATH=collections)
        self.endpoints: dict = {}
        self.network: dict = {}  # cnm_overlay's "network" result on host 1 (bridge_name, vxlan_name, mtu, ...)
        self.servers: list = []
        self.stores: list = []

    # -------------------------------------------------------- set-up
    def create(self) -> None:
        run(["ip", "netns", "add", self.underlay])
        for ns in self.hosts.values():
            run(["ip", "netns", "add", ns])
            self.stores.append(store_dir(ns))  # known before any module runs
        sh(self.underlay, "ip link set lo up; ip link add ulbr type bridge; ip link set ulbr up")
        for i, ns in self.hosts.items():
            sh(
                self.underlay,
                "ip link add p%d type veth peer name eth0 netns %s; ip link set p%d mtu %d master ulbr up"
                % (i, ns, i, UNDERLAY_MTU),
            )
            sh(
                ns,
                "ip link set lo up; ip link set eth0 mtu %d up; ip addr add %s/24 dev eth0" % (UNDERLAY_MTU, VTEPS[i]),
            )

    def create_hand_built(self) -> None:
        """The reference: the same overlay typed by hand (vxlan learning off + proxy, static FDB and neighbour
        entries)."""
        for i, host in self.hosts.items():
            j = 3 - i
            sandbox = self.hand_sandboxes[i]
            run(["ip", "netns", "add", sandbox])
            sh(
                host,
                "\n".join(
                    [
                        "ip link add brm type bridge",
                        "ip link add vxm type vxlan id %d dstport %d local %s nolearning proxy"
                        % (HAND_VNI, VXLAN_PORT, VTEPS[i]),
                        "ip link set vxm mtu %d master brm up" % OVERLAY_MTU,
                        "ip link add vm type veth peer name eth0 netns %s" % sandbox,
                        "ip link set vm mtu %d master brm up" % OVERLAY_MTU,
                        "ip link set brm up",
                        "bridge fdb append 00:00:00:00:00:00 dev vxm dst %s" % VTEPS[j],
                        "bridge fdb append %s dev vxm dst %s" % (mac_of("%s.%d" % (HAND_NET, j)), VTEPS[j]),
                        "ip neigh add %s.%d lladdr %s dev vxm nud permanent"
                        % (HAND_NET, j, mac_of("%s.%d" % (HAND_NET, j))),
                    ]
                ),
            )
            sh(
                sandbox,
                "ip link set lo up; ip link set eth0 mtu %d address %s up; ip addr add %s.%d/24 dev eth0"
                % (OVERLAY_MTU, mac_of("%s.%d" % (HAND_NET, i)), HAND_NET, i),
            )

    def module(self, host: str, name: str, args: dict) -> dict:
        """Run cnm.network.NAME inside a host as Ansible does (nsenter, JSON args file); its result, or BenchError."""
        path = os.path.join(self.tmp, "args.json")
        with open(path, "w") as handle:
            json.dump({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=False, _ansible_diff=False)}, handle)
        argv = in_ns(host) + [sys.executable, "-m", "ansible_collections.cnm.network.plugins.modules.%s" % name, path]
        proc = run(argv, check=False, env=self.env, cwd=self.tmp, timeout=300)
        try:
            result = json.loads(proc.stdout)
        except ValueError:
            raise BenchError(
                "module %s printed no JSON (rc %d): %s %s"
                % (name, proc.returncode, proc.stdout[-2000:], proc.stderr[-4000:])
            ) from None
        if result.get("failed"):
            raise BenchError("module %s in %s failed: %s" % (name, host, result.get("msg")))
        return result

    def overlay_args(self, i: int, peers: list) -> dict:
        return {
            "name": NETWORK,
            "vni": VNI,
            "subnet": SUBNET,
            "ip_range": "10.200.%d.0/24" % i,
            "local_ip": VTEPS[i],
            "peers": peers,
        }

    def create_cnm(self) -> dict:
        """cnm_overlay on both hosts, one cnm_endpoint each, then cnm_overlay again with the other host's endpoint as
        peer."""
        results = {}
        for i, host in self.hosts.items():
            results["overlay h%d" % i] = self.module(host, "cnm_overlay", self.overlay_args(i, []))
            self.endpoints[i] = self.module(host, "cnm_endpoint", {"network": NETWORK, "netns": self.cnm_sandboxes[i]})[
                "endpoint"
            ]
        for i, host in self.hosts.items():
            j = 3 - i
            peers = [
                {
                    "vtep": VTEPS[j],
                    "endpoints": [{"ip": self.endpoints[j]["ipv4_address"], "mac": self.endpoints[j]["mac_address"]}],
                }
            ]
            results["peers h%d" % i] = self.module(host, "cnm_overlay", self.overlay_args(i, peers))
            if i == 1:
                self.network = results["peers h%d" % i]["network"]
            if self.module(host, "cnm_overlay", self.overlay_args(i, peers)).get("changed"):
                raise BenchError("cnm_overlay on h%d: a second run with the same peers reports changed" % i)
        return results

    def start_servers(self, namespaces: list) -> None:
        for ns in namespaces:
            proc = subprocess.Popen(
                in_ns(ns) + ["iperf3", "-s", "-p", str(IPERF_PORT)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # nsenter execs iperf3: this pid is the server's
            self.servers.append(proc)
            deadline = time.time() + 10
            while not run(in_ns(ns) + ["ss", "-Hltn", "sport = :%d" % IPERF_PORT]).stdout.strip():
                if proc.poll() is not None or time.time() > deadline:
                    raise BenchError("iperf3 -s in %s did not start" % ns)
                time.sleep(0.1)

    def stop_servers(self) -> None:
        stop_processes(self.servers)  # only the processes this script started
        self.servers = []

    # -------------------------------------------------------- paths
    def path(self, name: str) -> dict:
        """Where a path's client and server run, the server's address, and the VXLAN device (host 1) it must go
        through."""
        if name == "underlay":
            return {"client": self.hosts[1], "server": self.hosts[2], "address": VTEPS[2], "device": None}
        if name == "cnm overlay":
            return {
                "client": self.cnm_sandboxes[1],
                "server": self.cnm_sandboxes[2],
                "address": self.endpoints[2]["ipv4_address"],
                "device": self.network["vxlan_name"],
            }
        return {
            "client": self.hand_sandboxes[1],
            "server": self.hand_sandboxes[2],
            "address": "%s.2" % HAND_NET,
            "device": "vxm",
        }

    def pings(self, name: str, size: int | None = None) -> tuple:
        where = self.path(name)
        extra = ["-M", "do", "-s", str(size)] if size is not None else []
        proc = run(
            in_ns(where["client"]) + ["ping", "-c", "1", "-W", "2"] + extra + [where["address"]],
            check=False,
            timeout=30,
        )
        return proc.returncode == 0, (proc.stdout + proc.stderr).strip()

    def iperf(self, name: str, seconds: int, udp_rate: str | None = None, udp_buffer: str | None = None) -> dict:
        """One iperf3 run on a path (TCP, or full-size UDP at ``udp_rate``); checks it went through the path's VXLAN
        device."""
        where = self.path(name)
        argv = in_ns(where["client"]) + [
            "iperf3",
            "-c",
            where["address"],
            "-p",
            str(IPERF_PORT),
            "-t",
            str(seconds),
            "-J",
        ]
        if udp_rate:
            argv += ["-u", "-b", udp_rate, "-l", str(UDP_PAYLOAD), "--dont-fragment"] + (
                ["-w", udp_buffer] if udp_buffer else []
            )
        device = where["device"]
        for attempt in range(5):
            before = tx_bytes(self.hosts[1], device) if device else 0
            proc = run(argv, check=False, timeout=seconds + 60)
            try:
                data = json.loads(proc.stdout)
            except ValueError:
                raise BenchError(
                    "iperf3 on %s printed no JSON (rc %d): %s" % (name, proc.returncode, proc.stderr[-2000:])
                ) from None
            if "busy" in str(data.get("error", "")) and attempt < 4:  # the server still closing the previous test
                time.sleep(1)
                continue
            break
        if data.get("error"):
            raise BenchError("iperf3 on %s: %s" % (name, data["error"]))
        end = data["end"]
        sent = end["sum_sent"]["bytes"]
        if device:
            through = tx_bytes(self.hosts[1], device) - before
            if through < 0.9 * sent:
                raise BenchError(
                    "%s: %d bytes sent but only %d left through %s in %s" % (name, sent, through, device, self.hosts[1])
                )
        out = {
            "gbit_per_s": end["sum_received"]["bits_per_second"] / 1e9,
            "bytes_sent": sent,
            "cpu": end.get("cpu_utilization_percent"),
        }
        if udp_rate:
            out.update(
                packets=end["sum_received"]["packets"],
                lost=end["sum_received"]["lost_packets"],
                lost_percent=end["sum_received"]["lost_percent"],
                datagram_bytes=UDP_PAYLOAD,
            )
        else:
            out["retransmits"] = end["sum_sent"].get("retransmits")
        return out

    def udp(self, name: str, seconds: int, rate: str, buffer: str | None) -> dict:
        """Full-size datagrams (IP packet = overlay MTU, DF set): lost/total, socket buffer drops, fragments
        anywhere."""
        namespaces = [self.path(name)["client"], self.path(name)["server"]] + list(self.hosts.values())
        before = {ns: snmp(ns) for ns in namespaces}
        out = self.iperf(name, seconds, udp_rate=rate, udp_buffer=buffer)
        after = {ns: snmp(ns) for ns in namespaces}

        def delta(ns, key):
            return after[ns].get(key, 0) - before[ns].get(key, 0)

        out["fragments_created"] = sum(delta(ns, "Ip.FragCreates") for ns in namespaces)
        out["reassembly_requests"] = sum(delta(ns, "Ip.ReasmReqds") for ns in namespaces)
        out["receiver_rcvbuf_errors"] = delta(self.path(name)["server"], "Udp.RcvbufErrors")
        out["lost_on_the_way"] = (
            out["lost"] - out["receiver_rcvbuf_errors"]
        )  # the rest were dropped at the receiving socket (CPU)
        out.update(rate=rate, socket_buffer=buffer)
        return out

    # -------------------------------------------------------- what the two VXLANs look like
    def devices(self) -> dict:
        """The link details of cnm's and the hand-built devices on host 1 (vxlan, bridge, host-side veth, sandbox
        eth0)."""

        def link(ns, dev):
            data = json.loads(run(in_ns(ns) + ["ip", "-d", "-j", "link", "show", dev]).stdout)[0]
            info = data.get("linkinfo", {})
            keep = {
                key: data.get(key)
                for key in (
                    "mtu",
                    "qdisc",
                    "txqlen",
                    "gso_max_size",
                    "gso_max_segs",
                    "gro_max_size",
                    "tso_max_size",
                    "num_tx_queues",
                    "num_rx_queues",
                    "promiscuity",
                )
            }
            keep.update(
                {"kind": info.get("info_kind")}, **{"data." + k: v for k, v in (info.get("info_data") or {}).items()}
            )
            keep.update(
                {
                    "slave." + k: v
                    for k, v in (info.get("info_slave_data") or {}).items()
                    if k in ("learning", "flood", "mcast_flood", "neigh_suppress", "proxy_arp", "hairpin", "isolated")
                }
            )
            return keep

        host, vxlan = self.hosts[1], self.network["vxlan_name"]
        pairs = {
            "vxlan": ((host, vxlan), (host, "vxm")),
            "bridge": ((host, self.network["bridge_name"]), (host, "brm")),
            "host-side veth": ((host, self.endpoints[1]["host_ifname"]), (host, "vm")),
            "sandbox eth0": ((self.cnm_sandboxes[1], "eth0"), (self.hand_sandboxes[1], "eth0")),
        }
        ignore = {
            "data.id",
            "data.local",
            "data.bridge_id",
            "data.root_id",
            "data.gc_timer",
            "data.hello_timer",
            "data.tcn_timer",
            "data.topology_change_timer",
        }
        out = {}
        for what, (cnm, hand) in pairs.items():
            a, b = link(*cnm), link(*hand)
            out[what] = {
                key: [a.get(key), b.get(key)]
                for key in sorted(set(a) | set(b))
                if a.get(key) != b.get(key) and key not in ignore
            }
        return out

    def ruleset(self) -> str:
        return run(in_ns(self.hosts[1]) + ["nft", "list", "ruleset"]).stdout

    def destroy(self) -> None:
        namespaces = (
            [self.underlay]
            + list(self.hosts.values())
            + list(self.cnm_sandboxes.values())
            + list(self.hand_sandboxes.values())
        )
        destroy_lab(namespaces, self.stores, self.tmp, self.stop_servers)


# ---------------------------------------------------------------- measuring
def rounds(lab: Lab, paths: list, seconds: int, repeat: int, phase: str, say) -> dict:
    """``repeat`` rounds over the paths, interleaved and rotated; every sample kept."""
    samples: dict = {name: [] for name in paths}
    loads = []
    for round_no in range(repeat):
        loads.append(os.getloadavg()[0])
        order = paths[round_no % len(paths) :] + paths[: round_no % len(paths)]
        say("%s round %d/%d: %s (load average %s)" % (phase, round_no + 1, repeat, ", ".join(order), load_average()))
        for name in order:
            samples[name].append(lab.iperf(name, seconds))
    return {
        "samples": samples,
        "load_at_round_start": loads,
        "median_gbit_per_s": {name: median([s["gbit_per_s"] for s in runs]) for name, runs in samples.items()},
    }


def bench_throughput(options, workdir: str, collections: str, say) -> dict:
    lab = Lab(workdir, collections)
    out: dict = {"prefix": lab.prefix}
    try:
        say(
            "creating %s-{ul,h1,h2} (underlay bridge, eth0 MTU %d) and the hand-built VXLAN with sandboxes -h1-m, -h2-m"
            % (lab.prefix, UNDERLAY_MTU)
        )
        lab.create()
        lab.create_hand_built()
        for name in PRISTINE_PATHS:
            if not lab.pings(name)[0]:
                raise BenchError("no ping on the %s path before cnm ran: %s" % (name, lab.pings(name)[1]))
        lab.start_servers([lab.hosts[2], lab.hand_sandboxes[2]])
        out["nft ruleset before cnm"] = lab.ruleset()
        out["before cnm"] = rounds(lab, PRISTINE_PATHS, options.seconds, options.repeat, "before cnm", say)
        say(
            "cnm_overlay on h1 and h2 (vni %d, %s), cnm_endpoint in -h1-c and -h2-c, cnm_overlay with the peers"
            % (VNI, SUBNET)
        )
        out["modules"] = {key: result.get("changes") for key, result in lab.create_cnm().items()}
        out["endpoints"] = lab.endpoints
        for name in PATHS:
            ok, text = lab.pings(name)
            if not ok:
                raise BenchError("no ping on the %s path: %s" % (name, text))
        out["nft ruleset with cnm"] = lab.ruleset()
        out["device differences (cnm, hand-built)"] = lab.devices()
        lab.start_servers([lab.cnm_sandboxes[2]])
        out["with cnm"] = rounds(lab, PATHS, options.seconds, options.repeat, "with cnm", say)
        say(
            "full-size UDP (%d-byte datagrams, DF) at %s across the overlay and the hand-built VXLAN"
            % (UDP_PAYLOAD, options.udp_rate)
        )
        out["udp"] = {
            name: lab.udp(name, options.seconds, options.udp_rate, options.udp_buffer or None)
            for name in ("cnm overlay", "hand-built")
        }
        out["df ping"] = {}
        for size in (UDP_PAYLOAD, UDP_PAYLOAD + 1):
            ok, text = lab.pings("cnm overlay", size)
            out["df ping"][size] = {"passes": ok, "output": text.splitlines()[-3:]}
    finally:
        lab.destroy()
    return out


RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def bench_converge(playbook: str, sizes: list, workdir: str, say, serial: int = 0) -> dict:
    """The overlay playbook on labs of 3 and 10 hosts (lab_up.yml), cold and rerun (and a rerun in batches of
    ``serial`` hosts);
    each lab removed with lab_down.yml."""
    playbook = os.path.abspath(playbook)
    if not os.path.exists(playbook):
        return {
            "skipped": "%s does not exist yet (another engineer is writing it): converge times not measured"
            % os.path.relpath(playbook, REPO)
        }
    ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    os.makedirs(os.path.join(workdir, "callbacks"))
    with open(os.path.join(workdir, "callbacks", "cnm_bench_task_wall.py"), "w") as handle:
        handle.write(CALLBACK_PLUGIN)
    timings = os.path.join(workdir, "timings.json")
    env = dict(
        os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"
    )  # the checkout's ansible.cfg (collections path, forks) applies
    timed_env = dict(
        env,
        ANSIBLE_CALLBACK_PLUGINS=os.path.join(workdir, "callbacks"),
        ANSIBLE_CALLBACKS_ENABLED="cnm_bench_task_wall",
        CNM_BENCH_TIMINGS=timings,
    )
    out: dict = {}
    for size in sizes:
        lab_prefix = "%s%sl%d" % (PREFIX, secrets.token_hex(3), size)
        inventory = os.path.join(workdir, "%s.yml" % lab_prefix)
        lab_vars = ["-e", "lab_prefix=%s" % lab_prefix, "-e", "lab_inventory=%s" % inventory]
        before = netns_names()
        row: dict = {"lab_prefix": lab_prefix}
        out[size] = row
        try:
            say("converge: lab of %d hosts (%s) with playbooks/lab_up.yml" % (size, lab_prefix))
            run(
                [ansible_playbook, "-i", "localhost,", "playbooks/lab_up.yml", "-e", "lab_size=%d" % size] + lab_vars,
                cwd=REPO,
                env=env,
                timeout=900,
            )
            phases = [("cold", []), ("rerun", [])] + (
                [("serial %d" % serial, ["-e", "cnm_overlay_serial=%d" % serial])] if serial else []
            )
            for phase, extra in phases:
                load_at_start = load_average()
                say("converge: playbooks/overlay.yml on %d hosts, %s (load average %s)" % (size, phase, load_at_start))
                start = time.perf_counter()
                if os.path.exists(timings):
                    os.unlink(timings)
                proc = run(
                    [ansible_playbook, "-i", inventory, playbook] + extra,
                    check=False,
                    cwd=REPO,
                    env=timed_env,
                    timeout=1800,
                )
                seconds = time.perf_counter() - start
                tasks = []
                if os.path.exists(timings):
                    with open(timings) as handle:
                        tasks = json.load(handle)
                recap = RECAP.findall(proc.stdout)
                row[phase] = {
                    "playbook": os.path.relpath(playbook, REPO),
                    "extra_args": extra,
                    "seconds": seconds,
                    "rc": proc.returncode,
                    "load_average_at_start": load_at_start,
                    "hosts": len(recap),
                    "changed": sum(int(r[2]) for r in recap),
                    "failed": sum(int(r[4]) for r in recap),
                    "unreachable": sum(int(r[3]) for r in recap),
                    "tasks": tasks,
                }
                if proc.returncode != 0:
                    row[phase]["tail"] = (proc.stdout + proc.stderr)[-3000:]
                    say("converge: %s run failed (rc %d); its output's tail is in the JSON" % (phase, proc.returncode))
                    break
        finally:
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                run(
                    [ansible_playbook, "-i", "localhost,", "playbooks/lab_down.yml"] + lab_vars,
                    check=False,
                    cwd=REPO,
                    env=env,
                    timeout=900,
                    start_new_session=True,
                )
                left = remove_namespaces(lab_prefix, before)
                if left:
                    say("converge: lab_down.yml left %s; deleted them" % left)
            finally:
                signal.signal(signal.SIGINT, previous)
    return out


# ---------------------------------------------------------------- report
def spread(runs: list) -> float:
    values = [r["gbit_per_s"] for r in runs]
    return (max(values) - min(values)) / median(values) if values and median(values) else 0.0


def table(results: dict, options, loads: dict) -> str:
    lines = []
    with_cnm, before = results["with cnm"], results["before cnm"]
    med, med0 = with_cnm["median_gbit_per_s"], before["median_gbit_per_s"]
    heading = "path (TCP, iperf3, %d x %d s)" % (options.repeat, options.seconds)
    lines.append("%-50s %8s  %-26s %9s %12s" % (heading, "Gbit/s", "runs", "/underlay", "overlay/this"))
    labels = {
        "underlay": "underlay host-to-host (eth0, MTU %d)" % UNDERLAY_MTU,
        "cnm overlay": "cnm overlay sandbox-to-sandbox (MTU %d)" % OVERLAY_MTU,
        "hand-built": "hand-built VXLAN sandbox-to-sandbox (MTU %d)" % OVERLAY_MTU,
    }
    for title, phase, values, names in (
        ("with the cnm overlay in place", with_cnm, med, PATHS),
        ("before any cnm module ran (no nftables table)", before, med0, PRISTINE_PATHS),
    ):
        lines.append("  " + title + ":")
        for name in names:
            runs = phase["samples"][name]
            versus = "-"
            if name == "hand-built" and phase is with_cnm:  # measured interleaved with the overlay
                versus = "%.3f" % (med["cnm overlay"] / med["hand-built"])
            elif name == "hand-built":  # another phase: compared as ratios to each phase's own underlay
                versus = "%.3f*" % ((med["cnm overlay"] / med["underlay"]) / (med0["hand-built"] / med0["underlay"]))
            each = " ".join("%.2f" % r["gbit_per_s"] for r in runs)
            lines.append(
                "    %-48s %8.2f  %-26s %9.3f %12s"
                % (labels[name], values[name], each, values[name] / values["underlay"], versus)
            )
    lines.append("  * (overlay/underlay) / (hand-built/underlay before cnm): the phases ran one after the other")
    overlay_ratio = med["cnm overlay"] / med["underlay"]
    hand_ratio = med["hand-built"] / med["underlay"]
    hand0_ratio = med0["hand-built"] / med0["underlay"]
    noise = max(spread(with_cnm["samples"][name]) for name in PATHS)
    gap = abs(med["cnm overlay"] / med["hand-built"] - 1)
    verdict = "n/a with one run per path" if options.repeat < 2 else ("met" if gap <= noise else "NOT met")
    lines.append("")
    lines.append(
        "overlay/underlay %.3f (issue measured about %.2f); hand-built/underlay %.3f beside cnm, %.3f before cnm"
        % (overlay_ratio, REFERENCE_OVERLAY_UNDERLAY, hand_ratio, hand0_ratio)
    )
    lines.append(
        "overlay/hand-built %.3f (same moment, same hosts); against the hand-built before cnm, each over its own "
        "underlay: %.3f" % (med["cnm overlay"] / med["hand-built"], overlay_ratio / hand0_ratio)
    )
    lines.append(
        "target: overlay = hand-built within noise -> %s (difference %.1f %%; largest spread (max-min)/median of one "
        "path's runs: %.1f %%)" % (verdict, 100 * gap, 100 * noise)
    )
    retrans = {name: [r.get("retransmits") for r in with_cnm["samples"][name]] for name in PATHS}
    lines.append("TCP retransmits per run: %s" % "; ".join("%s %s" % (name, retrans[name]) for name in PATHS))
    for name, udp in results["udp"].items():
        lines.append(
            "UDP %s: %d-byte datagrams (IP packet %d = overlay MTU, DF) at %s, socket buffers %s: %d lost of %d (%.3f "
            "%%) - %d on the way, "
            "%d dropped by the receiving socket; %.3f Gbit/s received; fragments created %d, reassembled %d"
            % (
                name,
                udp["datagram_bytes"],
                udp["datagram_bytes"] + 28,
                udp["rate"],
                udp["socket_buffer"] or "default",
                udp["lost"],
                udp["packets"],
                udp["lost_percent"],
                udp["lost_on_the_way"],
                udp["receiver_rcvbuf_errors"],
                udp["gbit_per_s"],
                udp["fragments_created"],
                udp["reassembly_requests"],
            )
        )
    for size, ping in results["df ping"].items():
        expected = size == UDP_PAYLOAD
        outcome = "passes" if ping["passes"] else "fails"
        as_expected = "expected" if ping["passes"] == expected else "UNEXPECTED"
        detail = "" if ping["passes"] else ": " + " / ".join(ping["output"][:1])
        lines.append("DF ping -s %d across the overlay: %s (%s)%s" % (size, outcome, as_expected, detail))
    diffs = {what: d for what, d in results["device differences (cnm, hand-built)"].items() if d}
    lines.append(
        "device settings that differ (cnm, hand-built): %s" % (json.dumps(diffs, sort_keys=True) if diffs else "none")
    )
    lines.append(
        "nft ruleset lines in host 1: %d before cnm, %d with cnm (both rulesets in the JSON)"
        % (len(results["nft ruleset before cnm"].splitlines()), len(results["nft ruleset with cnm"].splitlines()))
    )
    lines.append(
        "1-minute load average at each round: before cnm %s; with cnm %s"
        % (
            ", ".join("%.2f" % v for v in before["load_at_round_start"]),
            ", ".join("%.2f" % v for v in with_cnm["load_at_round_start"]),
        )
    )
    lines.append(
        "load average (1, 5, 15 min): %s at start, %s at end; %d CPUs (others may run tests on this machine)"
        % (loads["start"], loads["end"], os.cpu_count())
    )
    return "\n".join(lines)


def converge_table(converge: dict) -> str:
    if "skipped" in converge:
        return "converge: skipped: %s" % converge["skipped"]
    playbook = next((row["cold"]["playbook"] for row in converge.values() if "cold" in row), "?")
    header = (
        "hosts",
        "run",
        "seconds",
        "changed",
        "failed",
        "rc",
        "load average at start (playbook: %s; lab from playbooks/lab_up.yml)" % playbook,
    )
    lines = ["", "%6s  %-8s %9s %8s %8s %4s  %s" % header]
    for size, row in converge.items():
        for phase, r in row.items():
            if isinstance(r, dict):
                fields = (
                    size,
                    phase,
                    r["seconds"],
                    r["changed"],
                    r["failed"] + r["unreachable"],
                    r["rc"],
                    r.get("load_average_at_start", "?"),
                )
                lines.append("%6d  %-8s %9.2f %8d %8d %4d  %s" % fields)
                slowest = sorted(r.get("tasks") or [], key=lambda t: -t["seconds"])[:3]
                if slowest:
                    text = "; ".join("%s %.1f s" % (t["name"].split(" : ", 1)[-1], t["seconds"]) for t in slowest)
                    lines.append("%16s slowest tasks (wall across hosts): %s" % ("", text))
    return "\n".join(lines)


def preflight() -> list:
    return missing_tools(
        (
            ("nsenter", "util-linux"),
            ("ip", "iproute2"),
            ("bridge", "iproute2"),
            ("iperf3", "iperf3"),
            ("ss", "iproute2"),
            ("ping", "iputils-ping"),
            ("nft", "nftables"),
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description="TCP throughput across a cnm overlay beside the underlay and a hand-built VXLAN; full-size UDP."
    )
    parser.add_argument("--seconds", type=int, default=5, help="length of each iperf3 run (default: 5)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per path; the table shows medians (default: 3)")
    parser.add_argument("--json", help="also write the results (medians and every sample) as JSON to this file")
    parser.add_argument("--udp-rate", default="200M", help="iperf3 -b for the full-size UDP test (default: 200M)")
    parser.add_argument(
        "--udp-buffer",
        default="4M",
        help="iperf3 -w (socket buffers) for the UDP test, so that a busy receiver does not drop at its socket; "
        "'' for iperf3's default",
    )
    parser.add_argument(
        "--converge",
        action="store_true",
        help="also time playbooks/overlay.yml on labs of 3 and 10 hosts, cold and rerun",
    )
    parser.add_argument(
        "--converge-playbook",
        default=os.path.join(REPO, "playbooks", "overlay.yml"),
        help="the playbook --converge times (default: playbooks/overlay.yml, a play over group cnm_lab)",
    )
    parser.add_argument(
        "--converge-sizes", type=int, nargs="+", default=[3, 10], help="lab sizes for --converge (default: 3 10)"
    )
    parser.add_argument(
        "--converge-serial",
        type=int,
        default=0,
        metavar="N",
        help="with --converge, a third run after the rerun: the playbook in batches of N hosts "
        "(-e cnm_overlay_serial=N)",
    )
    options = parser.parse_args()
    check_common(parser, options)
    if options.seconds < 1:
        parser.error("--seconds and --repeat must be at least 1")
    if any(n < 1 or n > 200 for n in options.converge_sizes):
        parser.error("--converge-sizes must be between 1 and 200 (lab_up.yml's limits)")
    if options.converge_serial < 0:
        parser.error("--converge-serial must be a positive number of hosts")
    check_tools(parser, preflight())
    loads = loads_at_start()
    results: dict = {}

    def work(workdir: str) -> None:
        collections = collections_root(workdir)
        results["throughput"] = bench_throughput(options, workdir, collections, say)
        if options.converge:
            results["converge"] = bench_converge(
                options.converge_playbook, options.converge_sizes, workdir, say, options.converge_serial
            )

    status = guarded(PREFIX, work, "cnm-bench-overlay-", remove_left=remove_namespaces)
    loads["end"] = load_average()
    if "throughput" in results:
        print(table(results["throughput"], options, loads))
    if "converge" in results:
        print(converge_table(results["converge"]))
    if results and options.json:
        meta = {
            "code": code_meta(pyroute2=False),
            "machine": machine_meta(
                iperf3=run(["iperf3", "--version"], check=False).stdout.splitlines()[0],
                load_average_at_start=loads["start"],
                load_average_at_end=loads["end"],
            ),
            "seconds": options.seconds,
            "repeat": options.repeat,
            "udp_rate": options.udp_rate,
            "udp_buffer": options.udp_buffer,
            "reference_overlay_underlay": REFERENCE_OVERLAY_UNDERLAY,
            "date": now(),
        }
        write_json(options.json, dict(meta, results=results), default=str)
    return status


if __name__ == "__main__":
    sys.exit(main())
