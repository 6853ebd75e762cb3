#!/usr/bin/env python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: publish one port on each of N endpoints, unpublish them, and compare with CNI portmap.

    python bench/ports.py --sizes 200 [--repeat 3] [--json out.json] [--no-profile]

For each N, in throwaway namespaces with a fresh prefix ``cnmp<hex>`` (created untimed):

  ``-host``     the cnm host: the network ``bench`` (10.89.0.0/16) made with cnm_bridge and the N
                sandboxes ``-s<i>`` attached with ONE cnm_endpoint task (both untimed)
  ``-cnihost``  the CNI host: the N sandboxes ``-c<i>`` attached with the reference bridge plugin
                (host-local IPAM, 10.88.0.0/16), untimed
  ``-client``   another "machine": a veth to each host (192.0.2.2 <-> cnm host 192.0.2.1,
                198.51.100.2 <-> CNI host 198.51.100.1)

and times, in each round (host port 10000+i -> port 80 of endpoint i):

  cnm module   one cnm_port_publish run with ``endpoints:`` listing the N sandboxes, each with
               ``ports: ["<10000+i>:80"]``, run inside the host with nsenter as Ansible runs it
               (JSON args file); the time of ``main()`` only (the module is imported before the clock
               starts), as bench/attach.py measures it. Phases: cold add, rerun (must report
               ``changed: false``), then ``state: absent`` for all N in one run.
  cnm process  the same runs timed as whole processes (nsenter + Python start-up + imports).
  CNI portmap  the portmap plugin as libcni calls it when chained after the bridge plugin in a
               conflist (bridge + host-local + portmap {"snat": true}): N ``CNI_COMMAND=ADD`` calls,
               each with ``runtimeConfig.portMappings`` [{hostPort: 10000+i, containerPort: 80,
               protocol: tcp}] and the bridge ADD's result as ``prevResult``; the bridge part is done
               once, untimed, so only portmap is timed. "rerun" is N CHECK calls, delete N DEL calls
               (both with the ADD's result as prevResult, as libcni passes its cache). One bash script
               per phase inside the CNI host. Portmap 1.1.1 has only the iptables backend: it runs
               ``iptables`` (here iptables-nft) inside the throwaway CNI host.

Untimed checks in every round: the module's ``changed`` and ``published``/``removed`` lists, the count
of DNAT map elements and rules (``nft`` map elements for cnm, the ``CNI-DN-*`` chains of ``iptables-save`` for
portmap), and real
TCP traffic: servers listening on port 80 in 3 sandboxes of each kind (first, middle, last) answer
their name through the host port, from the client namespace and from the host itself on its own
address, before the delete, and nothing answers after it.

Then, unless --no-profile, it runs cnm_port_publish again for the largest N under cProfile (add,
rerun, delete) and prints the top 20 functions by cumulative time (full text and .pstats files in
bench/results/). Everything it creates is removed in ``finally`` (also on Ctrl-C or SIGTERM): the
server processes it started (by pid), its namespaces, the module's store directory for the host
namespace, its temporary files; then it checks that ``ip netns list`` has no namespace of its own
left and that ``ip -br link`` in the root namespace is as it was.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile

# The benchmarks' shared helpers (the script's own folder is on sys.path).
from benchlib import (  # noqa: E402
    CNI_PATH,
    PHASES,
    RESULTS_DIR,
    BenchError,
    ModuleRunner,
    Samples,
    check_common,
    check_tools,
    code_meta,
    destroy_lab,
    each_size,
    in_ns,
    issue_figures,
    load_average,
    loads_at_start,
    loads_line,
    machine_meta,
    measured,
    missing_tools,
    now,
    phase_header,
    phase_line,
    process_overhead,
    profile_phases,
    run,
    run_script,
    say,
    sizes_parser,
    stop_processes,
    store_dir,
    worker_main,
    write_json,
    write_script,
)

PREFIX = "cnmp"  # not attach.py's cnmb: the two benchmarks may run at the same time
NETWORK = "bench"  # the cnm network's name
CNM_SUBNET = "10.89.0.0/16"
CNI_SUBNET = "10.88.0.0/16"
CNI_BRIDGE = "cni-bench0"
HOST_PORT = 10000  # endpoint i is published on host port HOST_PORT + i
CONTAINER_PORT = 80
# The client's veth to each host: (host side name, host address, client side name, client address).
CNM_UPLINK = ("client0", "192.0.2.1", "up-cnm", "192.0.2.2")
CNI_UPLINK = ("client0", "198.51.100.1", "up-cni", "198.51.100.2")

# The issue's targets for N = 200 (seconds, module time) and its reference measurements on this machine kind.
TARGETS_200 = {"cnm module": {"add": 0.3, "delete": 0.3}}
REFERENCE_200 = {"CNI portmap": {"add": 8.1, "delete": 20.0}}
TOOLS = ["cnm module", "cnm process", "CNI portmap"]

# A TCP server that answers every connection with its name (it prints "ready" once listening).
SERVE = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_STREAM)\n"
    "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',int(sys.argv[1])));s.listen(64)\n"
    "print('ready',flush=True)\n"
    "while True:\n"
    "    c,a=s.accept()\n"
    "    try:\n        c.sendall(sys.argv[2].encode())\n    except OSError:\n        pass\n"
    "    c.close()\n"
)
# One process asks several ports of one address; prints a JSON list of answers ('unreachable' when none).
ASK = (
    "import json,socket,sys\n"
    "addr,timeout=sys.argv[1],float(sys.argv[2]);out=[]\n"
    "for port in map(int,sys.argv[3:]):\n"
    "    try:\n"
    "        c=socket.create_connection((addr,port),timeout=timeout);c.settimeout(timeout);"
    "out.append(c.recv(100).decode() or 'closed');c.close()\n"
    "    except OSError:\n"
    "        out.append('unreachable')\n"
    "print(json.dumps(out))\n"
)


# ---------------------------------------------------------------- the lab of one size
class Lab:
    """The cnm host, the CNI host, a client and 2 x N sandboxes with a unique prefix; ``destroy`` removes all it
    made."""

    def __init__(self, size: int, workdir: str) -> None:
        self.size = size
        self.prefix = PREFIX + secrets.token_hex(3)
        self.host = self.prefix + "-host"
        self.cni_host = self.prefix + "-cnihost"
        self.client = self.prefix + "-client"
        self.sandboxes = ["%s-s%d" % (self.prefix, i) for i in range(size)]
        self.cni_sandboxes = ["%s-c%d" % (self.prefix, i) for i in range(size)]
        self.probed = sorted({0, size // 2, size - 1})  # the endpoints that run a server
        self.tmp = tempfile.mkdtemp(prefix="%s-" % self.prefix, dir=workdir)
        self.store_dir = None
        self.servers: list = []

    def namespaces(self) -> list:
        return [self.host, self.cni_host, self.client] + self.sandboxes + self.cni_sandboxes

    def create(self) -> None:
        run(["ip", "netns", "add", self.host])
        self.store_dir = store_dir(self.host)  # known before any module runs
        run(["ip", "-batch", "-"], input="".join("netns add %s\n" % ns for ns in self.namespaces()[1:]))
        run(["bash", "-e"], input="".join("ip -n %s link set lo up\n" % ns for ns in self.namespaces()))
        for host, (host_side, host_ip, client_side, client_ip) in (
            (self.host, CNM_UPLINK),
            (self.cni_host, CNI_UPLINK),
        ):
            run(
                [
                    "bash",
                    "-ec",
                    f"ip -n {host} link add {host_side} type veth peer name {client_side} netns {self.client}\n"
                    f"ip -n {host} addr add {host_ip}/24 dev {host_side}\nip -n {host} link set {host_side} up\n"
                    f"ip -n {self.client} addr add {client_ip}/24 dev {client_side}\n"
                    f"ip -n {self.client} link set {client_side} up\n",
                ]
            )

    def start_servers(self) -> None:
        """A TCP server on port 80 in the probed sandboxes of both kinds, answering with the sandbox's name."""
        for i in self.probed:
            for ns in (self.sandboxes[i], self.cni_sandboxes[i]):
                proc = subprocess.Popen(
                    in_ns(ns) + [sys.executable, "-c", SERVE, str(CONTAINER_PORT), ns],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    start_new_session=True,
                )
                self.servers.append(proc)
                if proc.stdout.readline().strip() != "ready":
                    raise BenchError("the test server in %s did not start" % ns)

    def stop_servers(self) -> None:
        stop_processes(self.servers)  # only the processes this script started
        self.servers = []

    def script(self, name: str, body: str) -> str:
        return write_script(self.tmp, name, body)

    def run_script(self, ns: str, path: str) -> float:
        return run_script(ns, path)

    def answers(self, source: str, address: str, ports: list, timeout: float = 2.0) -> list:
        proc = run(
            in_ns(source) + [sys.executable, "-c", ASK, address, str(timeout)] + [str(p) for p in ports], timeout=60
        )
        return json.loads(proc.stdout)

    def check_reachable(self, tool: str, host: str, address: str, sandboxes: list, reachable: bool) -> None:
        """Through host port 10000+i, from the client and from the host itself: sandbox i answers (or nobody)."""
        ports = [HOST_PORT + i for i in self.probed]
        expected = [sandboxes[i] for i in self.probed] if reachable else ["unreachable"] * len(ports)
        for source in (self.client, host):
            got = self.answers(source, address, ports, 2.0 if reachable else 1.0)
            if got != expected:
                raise BenchError(
                    "%s: from %s to %s ports %s: answers %s, expected %s"
                    % (tool, source, address, ports, got, expected)
                )

    def destroy(self) -> None:
        destroy_lab(self.namespaces(), [self.store_dir], self.tmp, self.stop_servers)


# ---------------------------------------------------------------- a. cnm
class Cnm(ModuleRunner):
    """Runs the collection's modules inside the cnm host, as Ansible does, and times them."""

    script = os.path.abspath(__file__)

    def set_up(self) -> None:
        """The network and the N endpoints (untimed)."""
        self.module("cnm_bridge", {"name": NETWORK, "subnet": CNM_SUBNET})
        attached = self.module(
            "cnm_endpoint", {"network": NETWORK, "endpoints": [{"netns": s} for s in self.lab.sandboxes]}
        )
        if not attached["result"].get("changed"):
            raise BenchError("cnm_endpoint attached nothing")

    def publish_args(self, state: str) -> dict:
        if state == "absent":  # every port of each endpoint (no ports listed)
            return {"network": NETWORK, "state": "absent", "endpoints": [{"netns": s} for s in self.lab.sandboxes]}
        return {
            "network": NETWORK,
            "endpoints": [
                {"netns": s, "ports": ["%d:%d" % (HOST_PORT + i, CONTAINER_PORT)]}
                for i, s in enumerate(self.lab.sandboxes)
            ],
        }

    def port_elements(self) -> int:
        """How many elements the DNAT maps of our table hold (2 per port: its address map and its port map)."""
        proc = run(in_ns(self.lab.host) + ["nft", "-j", "list", "ruleset"])
        items = json.loads(proc.stdout).get("nftables", [])
        return sum(
            len(item["map"].get("elem", []))
            for item in items
            if "map" in item and item["map"].get("table") == "cnm" and item["map"]["name"].startswith("ports_")
        )

    def phases(self, profile_prefix: str | None = None) -> dict:
        """Cold add, rerun, absent: one module run each; checks ``changed``, the rules and real traffic."""
        lab, size, out = self.lab, self.lab.size, {}
        for phase, state, changed in (
            ("add", "present", True),
            ("rerun", "present", False),
            ("delete", "absent", True),
        ):
            if phase == "delete":  # reachable right before the absent
                lab.check_reachable("cnm", lab.host, CNM_UPLINK[1], lab.sandboxes, True)
            profile = "%s-%s" % (profile_prefix, phase) if profile_prefix else None
            run_ = self.module("cnm_port_publish", self.publish_args(state), profile)
            result = run_["result"]
            if result.get("changed") != changed:
                raise BenchError(
                    "cnm_port_publish %s: changed=%s, expected %s (changes: %s)"
                    % (phase, result.get("changed"), changed, result.get("changes"))
                )
            published = result.get("published") or []
            key = "removed" if state == "absent" else "ports"
            if len(published) != size or any(len(item.get(key) or []) != 1 for item in published):
                raise BenchError(
                    "cnm_port_publish %s: %d endpoints in 'published', not each with one port in %r: %s"
                    % (phase, len(published), key, published[:3])
                )
            elements = self.port_elements()
            if elements != (0 if state == "absent" else 2 * size):
                raise BenchError(
                    "cnm_port_publish %s: %d port map elements in inet cnm, not %d"
                    % (phase, elements, 0 if state == "absent" else 2 * size)
                )
            if phase == "add":
                lab.check_reachable("cnm", lab.host, CNM_UPLINK[1], lab.sandboxes, True)
            out[phase] = run_
        lab.check_reachable("cnm", lab.host, CNM_UPLINK[1], lab.sandboxes, False)
        return out


# ---------------------------------------------------------------- b. CNI portmap
class Portmap:
    """portmap chained after bridge + host-local, called as libcni calls a conflist's plugins."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.dir = os.path.join(lab.tmp, "cni")
        os.makedirs(self.dir, exist_ok=True)
        self.bridge_conf = {
            "cniVersion": "1.0.0",
            "name": "cnibench",
            "type": "bridge",
            "bridge": CNI_BRIDGE,
            "isGateway": True,
            "ipMasq": False,
            "ipam": {
                "type": "host-local",
                "subnet": CNI_SUBNET,
                "dataDir": os.path.join(self.dir, "ipam"),
                "routes": [{"dst": "0.0.0.0/0"}],
            },
        }

    def path(self, name: str, i: int) -> str:
        return os.path.join(self.dir, "%s-%d.json" % (name, i))

    def calls(self, command: str, plugin: str, conf: str, out: str, may_fail: bool = False) -> str:
        """A bash script body: the plugin called once per sandbox, with config file ``conf-i.json``, result in
        ``out-i.json``."""
        return "".join(
            "CNI_COMMAND=%s CNI_CONTAINERID=%s CNI_NETNS=/run/netns/%s CNI_IFNAME=eth0 CNI_PATH=%s %s/%s < %s > %s%s\n"
            % (
                command,
                ns,
                ns,
                CNI_PATH,
                CNI_PATH,
                plugin,
                self.path(conf, i),
                self.path(out, i),
                " || true" if may_fail else "",
            )
            for i, ns in enumerate(self.lab.cni_sandboxes)
        )

    def errors(self, out: str) -> list:
        """The error messages the plugin printed (a CNI error is a JSON object with "code" and "msg")."""
        messages = []
        for i in range(self.lab.size):
            with open(self.path(out, i)) as handle:
                text = handle.read()
            try:
                answer = json.loads(text) if text.strip() else {}
            except ValueError:
                answer = {"code": "?", "msg": text[:200]}
            if isinstance(answer, dict) and "code" in answer:
                messages.append(str(answer.get("msg")))
        return messages

    def portmap_conf(self, i: int, previous: dict) -> dict:
        """What libcni hands portmap in a chain: name and version of the list, the capability's runtimeConfig,
        prevResult."""
        return {
            "cniVersion": "1.0.0",
            "name": "cnibench",
            "type": "portmap",
            "snat": True,
            "capabilities": {"portMappings": True},
            "runtimeConfig": {
                "portMappings": [{"hostPort": HOST_PORT + i, "containerPort": CONTAINER_PORT, "protocol": "tcp"}]
            },
            "prevResult": previous,
        }

    def write_confs(self, name: str, result_of) -> None:
        for i in range(self.lab.size):
            with open(result_of(i)) as handle:
                previous = json.load(handle)
            with open(self.path(name, i), "w") as handle:
                json.dump(self.portmap_conf(i, previous), handle)

    def set_up(self) -> None:
        """The bridge plugin's ADD for every sandbox (untimed), and portmap's ADD configs from its results."""
        lab = self.lab
        for i in range(lab.size):
            with open(self.path("bridge", i), "w") as handle:
                json.dump(self.bridge_conf, handle)
        lab.run_script(
            lab.cni_host, lab.script("bridge-add.sh", self.calls("ADD", "bridge", "bridge", "bridge-result"))
        )
        self.write_confs("portmap-add", lambda i: self.path("bridge-result", i))

    def dnat_chains(self) -> int:
        proc = run(in_ns(self.lab.cni_host) + ["iptables-save", "-t", "nat"])
        return sum(1 for line in proc.stdout.splitlines() if line.startswith(":CNI-DN-"))

    def phases(self) -> dict:
        lab, size = self.lab, self.lab.size
        add = lab.run_script(
            lab.cni_host, lab.script("portmap-add.sh", self.calls("ADD", "portmap", "portmap-add", "portmap-result"))
        )
        if self.dnat_chains() != size:
            raise BenchError("portmap ADD: %d CNI-DN chains, expected %d" % (self.dnat_chains(), size))
        lab.check_reachable("CNI portmap", lab.cni_host, CNI_UPLINK[1], lab.cni_sandboxes, True)
        self.write_confs(
            "portmap-cached", lambda i: self.path("portmap-result", i)
        )  # libcni's cached result as prevResult
        # CHECK is CNI's "is it still as ADD left it": the rerun column when it works. Portmap 1.1.1's CHECK
        # also looks for the IPv6 chain of an IPv4-only container and fails every time
        # (containernetworking/plugins#819): then it is timed and reported apart, not as a rerun.
        check = lab.run_script(
            lab.cni_host,
            lab.script("portmap-check.sh", self.calls("CHECK", "portmap", "portmap-cached", "portmap-check", True)),
        )
        failed = self.errors("portmap-check")
        lab.check_reachable("CNI portmap", lab.cni_host, CNI_UPLINK[1], lab.cni_sandboxes, True)
        delete = lab.run_script(
            lab.cni_host, lab.script("portmap-del.sh", self.calls("DEL", "portmap", "portmap-cached", "portmap-del"))
        )
        if self.dnat_chains() != 0:
            raise BenchError("portmap DEL left %d CNI-DN chains" % self.dnat_chains())
        lab.check_reachable("CNI portmap", lab.cni_host, CNI_UPLINK[1], lab.cni_sandboxes, False)
        out = {"add": add, "rerun": None if failed else check, "delete": delete}
        if failed:
            out.update(failed_check=check, failed_checks=len(failed), check_error=sorted(set(failed))[0])
        return out


def portmap_backend(lab: Lab) -> str:
    version = run(in_ns(lab.cni_host) + ["iptables", "--version"], check=False)
    return "iptables: %s (%s)" % (
        (version.stdout or version.stderr).strip(),
        os.path.realpath(shutil.which("iptables") or "iptables"),
    )


# ---------------------------------------------------------------- driver
def bench_size(size: int, repeat: int, workdir: str, collections: str, profile: bool) -> dict:
    """Both tools at one N, ``repeat`` rounds (interleaved, so load from elsewhere spreads evenly); medians."""
    lab = Lab(size, workdir)
    samples = Samples()
    keep = samples.keep
    try:
        say(
            "N=%d: creating %s-{host,cnihost,client}, sandboxes -s0..s%d and -c0..c%d (untimed)"
            % (size, lab.prefix, size - 1, size - 1)
        )
        lab.create()
        cnm = Cnm(lab, collections)
        portmap = Portmap(lab)
        say(
            "N=%d: cnm_bridge + one cnm_endpoint task for %d endpoints; CNI bridge ADD x %d (untimed)"
            % (size, size, size)
        )
        cnm.set_up()
        portmap.set_up()
        lab.start_servers()
        backend = portmap_backend(lab)
        for round_ in range(1, repeat + 1):
            keep("load average", {"round start": os.getloadavg()[0]})
            say(
                "N=%d round %d/%d: cnm_port_publish add, rerun, absent (load average %s)"
                % (size, round_, repeat, load_average())
            )
            runs = cnm.phases()
            keep("cnm module", {phase: r["main"] for phase, r in runs.items()})
            keep("cnm process", {phase: r["process"] for phase, r in runs.items()})
            keep("cnm module import", {phase: r["import"] for phase, r in runs.items()})
            say("N=%d round %d/%d: CNI portmap ADD, CHECK, DEL x %d" % (size, round_, repeat, size))
            keep("CNI portmap", portmap.phases())
        results: dict = samples.medians()
        results["samples"] = samples
        results["portmap backend"] = backend
        if profile:
            say("N=%d: cnm_port_publish under cProfile" % size)
            prefix = os.path.join(RESULTS_DIR, "ports-profile-%d" % size)
            profiled, files = profile_phases(cnm.phases, prefix, 20, commands=True)
            results["profile"] = {"files": files, "main_seconds": {phase: r["main"] for phase, r in profiled.items()}}
    finally:
        lab.destroy()
    return results


def table(all_results: dict, loads: dict) -> str:
    lines = [phase_header(12, "target / reference at N=200 (add rerun delete), seconds")]
    for size, results in all_results.items():
        for tool, row in measured(results, TOOLS):
            note = ""
            t, r = issue_figures(size, tool, TARGETS_200, REFERENCE_200)
            if t:
                note = "target " + " / ".join(
                    "<=%.1f%s" % (t[p], " ok" if row[p] is not None and row[p] <= t[p] else " MISS") if p in t else "-"
                    for p in PHASES
                )
            elif r:
                note = "issue measured %.1f / - / %.1f" % (r["add"], r["delete"])
            if tool == "CNI portmap":
                note = (note + "; " if note else "") + (
                    "rerun = CHECK" if row.get("failed_check") is None else "rerun: CHECK fails, see below"
                )
            lines.append(phase_line(size, 12, tool, row, note))
            if row.get("failed_check") is not None:
                lines.append(
                    "%5d    CNI portmap CHECK x %d took %.3f s but %d calls failed: %r "
                    "(containernetworking/plugins#819)"
                    % (size, size, row["failed_check"], row["failed_checks"], row["check_error"])
                )
        for cnm_tool in ("cnm module", "cnm process"):
            a, b = results.get(cnm_tool), results.get("CNI portmap")
            if a and b:
                lines.append(
                    "%5d    ratio %s/CNI portmap add %.3fx delete %.3fx"
                    % (size, cnm_tool, a["add"] / b["add"], a["delete"] / b["delete"])
                )
        lines.append("%5d    CNI portmap backend: %s" % (size, results.get("portmap backend")))
        lines += process_overhead(size, results)
        rounds = results.get("samples", {}).get("load average", {}).get("round start")
        if rounds:
            lines.append(
                "%5d    1-minute load average at the start of each round: %s"
                % (size, ", ".join("%.2f" % v for v in rounds))
            )
    lines.append(loads_line(loads))
    return "\n".join(lines)


def preflight() -> list:
    commands = (
        ("nsenter", "util-linux"),
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("iptables", "iptables"),
        ("iptables-save", "iptables"),
    )
    return missing_tools(commands, ("bridge", "host-local", "portmap"))


def main() -> int:
    if worker_main():
        return 0
    parser = sizes_parser(
        "Time publishing one port on each of N endpoints: cnm_port_publish vs the CNI portmap plugin.",
        "endpoints",
        [200],
        "cnm_port_publish",
    )
    options = parser.parse_args()
    check_common(parser, options, 50000, "sizes must be between 1 and 50000 (host ports 10000 + i)")
    check_tools(parser, preflight())
    loads = loads_at_start()
    status, all_results = each_size(PREFIX, "cnm-bench-ports-", options, bench_size)
    loads["end"] = load_average()
    if all_results:
        print(table(all_results, loads))
        for size, results in all_results.items():
            if "profile" in results:
                for phase in PHASES:
                    with open(results["profile"]["files"][phase]) as handle:
                        print(
                            "\ncProfile of cnm_port_publish main(), N=%d, %s (%.3f s under the profiler; top 20 by "
                            "cumulative time; by own time in %s):"
                            % (
                                size,
                                phase,
                                results["profile"]["main_seconds"][phase],
                                results["profile"]["files"][phase],
                            )
                        )
                        print(handle.read().split("---- by own time ----")[0])
        if options.json:
            meta = {
                "code": code_meta(),
                "machine": machine_meta(load_average_at_start=loads["start"], load_average_at_end=loads["end"]),
                "repeat": options.repeat,
                "targets_200": TARGETS_200,
                "reference_200": REFERENCE_200,
                "date": now(),
            }
            write_json(options.json, dict(meta, results={str(k): v for k, v in all_results.items()}))
    return status


if __name__ == "__main__":
    sys.exit(main())
