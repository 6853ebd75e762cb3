#!/usr/bin/env python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: new-connection rate and throughput through a published port and to a container address,
with 1 and with 1000 published ports, IPv4 and IPv6, cnm beside the CNI portmap plugin (issue 10, item 9).

    python bench/conn_rate.py [--quick] [--seconds S] [--repeat R] [--ports N] [--json FILE] [--code CHECKOUT]

Throwaway namespaces under a fresh prefix ``cnmr<hex>``: a ``-client`` (another machine on the LAN) and four
hosts, each with one sandbox and its own veth to the client (192.0.2.<64(i-1)+1>/26 and 2001:db8:<i>::1/64 on the
host, .2 and ::2 on the client, which routes the host's container subnets 10.<100+i>.0.0/16 and 2001:db8:<100+i>::/64
through it):

  ``-h1``, ``-hn``  cnm hosts: network ``bench`` made with cnm_bridge (``trusted_sources`` = the client's link when
                  this version has the option, so that the client may route to container addresses), one endpoint
                  (cnm_endpoint) in ``-h1s`` / ``-hns``, and 1 (``-h1``) or N (``-hn``) ports published with ONE
                  cnm_port_publish run (plain ``P:80`` bindings, Docker's default form: both families where the
                  version publishes IPv6)
  ``-c1``, ``-cn``  CNI hosts: the reference bridge plugin (host-local with an IPv4 and an IPv6 range, isGateway,
                  no masquerade) for ``-c1s`` / ``-cns``, then ONE portmap {"snat": true} ADD with 1 or N
                  ``portMappings``, as libcni calls a conflist's third plugin (the bridge ADD's result as prevResult)

Published ports: host port 10999 -> port 80 of the sandbox is the measured one (the 1-port hosts publish only it);
the N-port hosts publish 10000..10000+N-2 -> 80 as well. The measured port comes last in both rulesets (cnm sorts
its rules by key, ``tcp/*:10999`` is the last; portmap's list has it last). Set-up is untimed; portmap's ADD of 1000
mappings takes 1.5 minutes here (iptables-nft, one command per rule), which is why the 1- and N-port cases are
separate hosts built once rather than one host republished every round.

Per round, every cell - host x family (IPv4, IPv6) x path - in an order rotated every round, so that load
from elsewhere spreads over all cells:

  rate        new TCP connections per second from the client: ``--clients`` processes (default 2), each a
              tight loop of socket() / connect() / close() with SO_LINGER 0 (the close sends a RST: no
              TIME_WAIT, ephemeral ports are reused at once), for ``--seconds``; the server in the sandbox
              accepts and closes (``--clients`` processes sharing the port with SO_REUSEPORT). Both are a
              small C program compiled with ``cc`` at start (``--client c``, the default when cc exists) or
              the same loops in Python (``--client python``: 2-3x slower per connection, so the client's own
              cost hides part of the path's).
  throughput  ``iperf3 -c ... -t S`` (one stream), the receiver's bits per second; an iperf3 server on port
              80 of the sandbox (it replaces the rate server for that phase).

  path ``published``: to the host's address on the client's link, port 10999 (DNAT to the sandbox);
  path ``direct``: to the sandbox's own address, routed by the host (no NAT).

A cell that does not work with this version of the code (for example IPv6 published ports before they
existed) is probed once at set-up - a TCP connection with a 1-second timeout, retried while IPv6
addresses finish duplicate address detection - and reported "not supported by this version".

Goal (issue 10, item 9): for cnm, the 1000-port rate within 10 % of the 1-port rate on both paths. The
1- and N-port cells of a (family, path, tool) run back to back in each round; the verdict uses the median
of those paired ratios (N over 1 in the same round), which cancels the load's drift between rounds far
better than the ratio of the medians (also shown). The table also gives each cell's spread
((max - min) / median), and the load average during each round.

Everything lives in the throwaway namespaces: cnm's nftables table and sysctls are the cnm hosts', portmap's
iptables(-nft) rules the CNI hosts'. When this version does not turn IPv6 forwarding on in a cnm host (the
code before issue 10), the script turns it on there itself (reported), so that the direct IPv6 path exists.
In ``finally`` (also on Ctrl-C / SIGTERM) it kills the processes it started (by pid), deletes its namespaces,
the module's store directories of the cnm hosts and its temporary files, then checks that no ``cnmr*``
namespace of its own is left and that ``ip -br link`` of the root namespace is unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

# The benchmarks' shared helpers (the script's own folder is on sys.path).
from benchlib import (  # noqa: E402
    CNI_PATH,
    REPO,
    BenchError,
    check_tools,
    code_meta,
    collections_root,
    destroy_lab,
    guarded,
    in_ns,
    load_average,
    loads_at_start,
    loads_line,
    machine_meta,
    median,
    missing_tools,
    now,
    run,
    run_module,
    say,
    stop_processes,
    store_dir,
    worker_main,
)

PREFIX = "cnmr"  # not attach.py's cnmb, ports.py's cnmp nor overlay.py's cnmo: they may run at the same time
NETWORK = "bench"
MEASURED_PORT = 10999  # "the" published port; the others are 10000..10998 (sorted before it)
FIRST_FILLER = 10000
CONTAINER_PORT = 80
FAMILIES = ("IPv4", "IPv6")
PATHS = ("published", "direct")
TOOLS = ("cnm", "CNI portmap")
GOAL = 0.90  # the 1000-port rate at least 90 % of the 1-port rate
# What the issue measured (idle machine, its own client): cnm 1 -> 1000 ports ~32k/s -> 9-10k/s, also on the direct
# path; portmap's direct path ~34k/s.
REFERENCE = (
    "issue 10 measured (idle): cnm ~32k/s with 1 port, ~9-10k/s with 1000 (published and direct); "
    "CNI portmap direct ~34k/s"
)
# One host per (tool, number of published ports); each has its own link to the client and its own container subnets:
# (tool, small: 1 port or not, name suffix, index of its client link and subnets).
HOSTS = (
    ("cnm", True, "h1", 1),
    ("cnm", False, "hn", 2),
    ("CNI portmap", True, "c1", 3),
    ("CNI portmap", False, "cn", 4),
)


# The rate server: accepts and closes, forever; several processes share the port (SO_REUSEPORT). Dual stack.
SERVE = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET6,socket.SOCK_STREAM)\n"
    "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEPORT,1)\n"
    "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0)\n"
    "s.bind(('::',int(sys.argv[1])));s.listen(4096)\n"
    "print('ready',flush=True)\n"
    "while True:\n"
    "    try:\n        s.accept()[0].close()\n    except OSError:\n        pass\n"
)
# The rate client: from time START for SECONDS, connect and close (RST) as fast as it can; prints a JSON count.
CONNECT = (
    "import json,socket,struct,sys,time\n"
    "addr,port,start,seconds=sys.argv[1],int(sys.argv[2]),float(sys.argv[3]),float(sys.argv[4])\n"
    "fam=socket.AF_INET6 if ':' in addr else socket.AF_INET;dst=(addr,port);sock=socket.socket\n"
    "linger=struct.pack('ii',1,0);SOL,LIN=socket.SOL_SOCKET,socket.SO_LINGER\n"
    "n=errors=0\n"
    "while time.time()<start:\n    time.sleep(0.001)\n"
    "t0=time.perf_counter();end=t0+seconds\n"
    "while True:\n"
    "    for _ in range(64):\n"
    "        s=sock(fam,socket.SOCK_STREAM);s.setsockopt(SOL,LIN,linger);s.settimeout(1.0)\n"
    "        try:\n            s.connect(dst);n+=1\n        except OSError:\n            errors+=1\n"
    "        s.close()\n"
    "    if time.perf_counter()>=end:\n        break\n"
    "print(json.dumps({'connections':n,'errors':errors,'seconds':time.perf_counter()-t0}))\n"
)
# The same two in C (the default when a C compiler is there): the client's own cost per connection is then
# a few microseconds, so the rate shows the path's cost rather than the interpreter's (measured on loopback under
# load 6: Python 6.4k/s per process, C 17k/s).
RATE_C = r"""
/* conn_rate.py's rate tool: "serve PORT" accepts and closes forever (dual stack, SO_REUSEPORT);
   "connect ADDR PORT START SECONDS" connects and closes (SO_LINGER 0: a RST, no TIME_WAIT) from START
   (epoch seconds) for SECONDS and prints {"connections": n, "errors": e, "seconds": s}. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    int one = 1, zero = 0;
    if (argc == 3 && strcmp(argv[1], "serve") == 0) {
        struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[2])),
                                  .sin6_addr = IN6ADDR_ANY_INIT};
        int s = socket(AF_INET6, SOCK_STREAM, 0);
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(s, (struct sockaddr *)&sa, sizeof sa) || listen(s, 4096)) { perror("serve"); return 1; }
        printf("ready\n");
        fflush(stdout);
        for (;;) { int c = accept(s, NULL, NULL); if (c >= 0) close(c); }
    }
    if (argc != 6 || strcmp(argv[1], "connect") != 0) {
        fprintf(stderr, "usage: serve PORT | connect ADDR PORT START SECONDS\n");
        return 2;
    }
    struct sockaddr_storage ss = {0};
    socklen_t len;
    int family;
    if (strchr(argv[2], ':')) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = family = AF_INET6; a->sin6_port = htons(atoi(argv[3])); len = sizeof *a;
        if (inet_pton(AF_INET6, argv[2], &a->sin6_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = family = AF_INET; a->sin_port = htons(atoi(argv[3])); len = sizeof *a;
        if (inet_pton(AF_INET, argv[2], &a->sin_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
    }
    double start = atof(argv[4]), seconds = atof(argv[5]);
    struct linger lg = {1, 0};
    struct timeval tv = {1, 0};
    long n = 0, errors = 0;
    while (now(CLOCK_REALTIME) < start) usleep(500);
    double t0 = now(CLOCK_MONOTONIC), end = t0 + seconds, t;
    do {
        for (int i = 0; i < 64; i++) {
            int s = socket(family, SOCK_STREAM, 0);
            setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
            if (connect(s, (struct sockaddr *)&ss, len) == 0) n++; else errors++;
            close(s);
        }
    } while ((t = now(CLOCK_MONOTONIC)) < end);
    printf("{\"connections\": %ld, \"errors\": %ld, \"seconds\": %.6f}\n", n, errors, t - t0);
    return 0;
}
"""
# One connection with a timeout: prints 'ok' or the error (the set-up probe of a cell).
PROBE = (
    "import socket,sys\n"
    "try:\n    "
    "socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=float(sys.argv[3])).close();print('ok')\n"
    "except OSError as e:\n    print(type(e).__name__+': '+str(e))\n"
)


class Host:
    """One host namespace with one sandbox: cnm or CNI, with 1 or N published ports to that sandbox."""

    def __init__(self, lab, tool: str, small: bool, suffix: str, index: int) -> None:
        self.lab, self.tool, self.small, self.index = lab, tool, small, index
        self.ns = "%s-%s" % (lab.prefix, suffix)
        self.sandbox = "%s-%ss" % (lab.prefix, suffix)
        # The client's link to this host: 192.0.2.<64 i>/26 and 2001:db8:<i>::/64; containers 10.<100+i>.0.0/16,
        # 2001:db8:<100+i>::/64.
        self.uplink = ("192.0.2.%d" % (64 * (index - 1) + 1), "2001:db8:%d::1" % index)
        self.client_ip = ("192.0.2.%d" % (64 * (index - 1) + 2), "2001:db8:%d::2" % index)
        self.client_subnets = ["192.0.2.%d/26" % (64 * (index - 1)), "2001:db8:%d::/64" % index]
        self.subnets = ("10.%d.0.0/16" % (100 + index), "2001:db8:%d::/64" % (100 + index))
        self.addresses: dict = {}  # family -> the sandbox's address
        self.count = 0
        self.store_dir = None
        self.cni_result = None  # the bridge plugin's ADD result (portmap's prevResult)

    def label(self) -> str:
        return "%s %d" % (self.tool, self.count)

    def create(self) -> None:
        lab = self.lab
        run(["ip", "netns", "add", self.ns])
        if self.tool == "cnm":
            self.store_dir = store_dir(self.ns)  # known before any module runs
        run(["ip", "netns", "add", self.sandbox])
        up = "up%d" % self.index
        lab.sh(
            self.ns,
            f"ip link set lo up\nip link add client0 type veth peer name {up} netns {lab.client}\n"
            f"ip addr add {self.uplink[0]}/26 dev client0\nip addr add {self.uplink[1]}/64 dev client0 nodad\n"
            f"ip link set client0 up\n",
        )
        lab.sh(self.sandbox, "ip link set lo up\n")
        lab.sh(
            lab.client,
            f"ip addr add {self.client_ip[0]}/26 dev {up}\nip addr add {self.client_ip[1]}/64 dev {up} nodad\n"
            f"ip link set {up} up\n"
            f"ip route add {self.subnets[0]} via {self.uplink[0]}\n"
            f"ip -6 route add {self.subnets[1]} via {self.uplink[1]}\n",
        )

    def module(self, name: str, args: dict, check: bool = True) -> dict:
        return run_module(os.path.abspath(__file__), self.ns, name, args, self.lab.tmp, self.lab.env, check=check)[
            "result"
        ]

    def set_up(self) -> None:
        if self.tool == "cnm":
            self.set_up_cnm()
        else:
            self.set_up_cni()
        for item in json.loads(run(["ip", "-n", self.sandbox, "-j", "addr", "show", "dev", "eth0"]).stdout):
            for addr in item.get("addr_info", []):
                family = {"inet": "IPv4", "inet6": "IPv6"}[addr["family"]]
                if addr.get("scope") == "global" and family not in self.addresses:
                    self.addresses[family] = addr["local"]

    def set_up_cnm(self) -> None:
        lab = self.lab
        network = {"name": NETWORK, "subnet": self.subnets[0], "ipv6_subnet": self.subnets[1]}
        made = self.module("cnm_bridge", dict(network, trusted_sources=self.client_subnets), check=False)
        if made.get("failed"):
            if "trusted_sources" not in str(made.get("msg")):
                raise BenchError("cnm_bridge failed: %s" % made.get("msg"))
            lab.note("cnm_bridge has no trusted_sources in this version (containers are open to routed traffic)")
            self.module("cnm_bridge", network)
        else:
            lab.note("cnm_bridge trusted_sources = the client's link (the client may route to container addresses)")
        self.module("cnm_endpoint", {"network": NETWORK, "netns": self.sandbox})
        if lab.sh(self.ns, "cat /proc/sys/net/ipv6/conf/all/forwarding").stdout.strip() != "1":
            lab.sh(self.ns, "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding")
            lab.note("this version left IPv6 forwarding off in the cnm host: the script turned it on there")

    def cni(self, plugin: str, command: str, conf: dict) -> dict:
        env = dict(
            os.environ,
            CNI_COMMAND=command,
            CNI_CONTAINERID=self.sandbox,
            CNI_NETNS="/run/netns/%s" % self.sandbox,
            CNI_IFNAME="eth0",
            CNI_PATH=CNI_PATH,
        )
        proc = subprocess.run(
            in_ns(self.ns) + [os.path.join(CNI_PATH, plugin)],
            input=json.dumps(conf),
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BenchError("CNI %s %s failed: %s %s" % (plugin, command, proc.stdout[-2000:], proc.stderr[-2000:]))
        return json.loads(proc.stdout) if proc.stdout.strip() else {}

    def set_up_cni(self) -> None:
        ipam = {
            "type": "host-local",
            "dataDir": os.path.join(self.lab.tmp, "ipam-%d" % self.index),
            "ranges": [[{"subnet": self.subnets[0]}], [{"subnet": self.subnets[1]}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}],
        }
        conf = {
            "cniVersion": "1.0.0",
            "name": "cnirate",
            "type": "bridge",
            "bridge": "cni-rate0",
            "isGateway": True,
            "ipMasq": False,
            "ipam": ipam,
        }
        self.cni_result = self.cni("bridge", "ADD", conf)

    def publish(self, count: int) -> dict:
        """Publish ``count`` ports of the sandbox (the fillers first, the measured port last); returns what it took."""
        ports = list(range(FIRST_FILLER, FIRST_FILLER + count - 1)) + [MEASURED_PORT]
        start = time.perf_counter()
        if self.tool == "cnm":
            self.module(
                "cnm_port_publish",
                {
                    "network": NETWORK,
                    "netns": self.sandbox,
                    "exclusive": True,
                    "ports": ["%d:%d" % (p, CONTAINER_PORT) for p in ports],
                },
            )
            size = "%d lines of nft ruleset" % len(self.lab.sh(self.ns, "nft list ruleset").stdout.splitlines())
        else:
            mappings = [{"hostPort": p, "containerPort": CONTAINER_PORT, "protocol": "tcp"} for p in ports]
            self.cni(
                "portmap",
                "ADD",
                {
                    "cniVersion": "1.0.0",
                    "name": "cnirate",
                    "type": "portmap",
                    "snat": True,
                    "capabilities": {"portMappings": True},
                    "runtimeConfig": {"portMappings": mappings},
                    "prevResult": self.cni_result,
                },
            )
            saved = self.lab.sh(self.ns, "iptables-save -t nat; ip6tables-save -t nat").stdout
            size = "%d DNAT rules (IPv4 + IPv6)" % sum(line.count(" -j DNAT") for line in saved.splitlines())
        self.count = count
        return {"host": self.label(), "seconds": time.perf_counter() - start, "size": size}

    def target(self, family: str, path: str) -> tuple:
        if path == "direct":
            return self.addresses[family], CONTAINER_PORT
        return self.uplink[FAMILIES.index(family)], MEASURED_PORT


class Lab:
    """The client and the four hosts with their sandboxes; ``destroy`` removes everything it made."""

    def __init__(self, workdir: str, collections: str, say) -> None:
        self.prefix = PREFIX + secrets.token_hex(3)
        self.client = self.prefix + "-client"
        self.hosts = [Host(self, *spec) for spec in HOSTS]
        self.tmp = tempfile.mkdtemp(prefix="%s-" % self.prefix, dir=workdir)
        self.env = dict(
            os.environ, PYTHONPATH=collections, PYTHONDONTWRITEBYTECODE="1"
        )  # --code may be someone else's checkout
        self.say = say
        self.servers: list = []  # Popen of the servers running now (every sandbox)
        self.notes: list = []
        self.unsupported: dict = {}  # (host label, family, path) -> why the cell cannot be measured with this version
        self.rate_tool = None  # the compiled C tool, or None for the Python loops

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def namespaces(self) -> list:
        return [self.client] + [ns for host in self.hosts for ns in (host.ns, host.sandbox)]

    def sh(self, ns: str, script: str) -> subprocess.CompletedProcess:
        return run(in_ns(ns) + ["bash", "-ec", script])

    def create(self) -> None:
        run(["ip", "netns", "add", self.client])
        self.sh(self.client, "ip link set lo up\n")
        for host in self.hosts:
            host.create()

    def build_rate_tool(self, language: str) -> None:
        if language == "c":
            source = os.path.join(self.tmp, "rate.c")
            with open(source, "w") as handle:
                handle.write(RATE_C)
            self.rate_tool = os.path.join(self.tmp, "rate")
            run([shutil.which("cc") or "cc", "-O2", "-o", self.rate_tool, source])

    def serve_argv(self) -> list:
        return (
            [self.rate_tool, "serve", str(CONTAINER_PORT)]
            if self.rate_tool
            else [sys.executable, "-c", SERVE, str(CONTAINER_PORT)]
        )

    def connect_argv(self, addr: str, port: int, start: float, seconds: float) -> list:
        tail = [addr, str(port), "%.3f" % start, str(seconds)]
        return [self.rate_tool, "connect"] + tail if self.rate_tool else [sys.executable, "-c", CONNECT] + tail

    # ------------------------------------------------------------ servers
    def start_servers(self, kind: str, processes: int) -> None:
        """``rate``: the accept-and-close server (``processes`` of them); ``throughput``: one iperf3 server; every
        sandbox, port 80."""
        self.stop_servers()
        for host in self.hosts:
            ns = host.sandbox
            if kind == "rate":
                for _number in range(processes):
                    proc = subprocess.Popen(
                        in_ns(ns) + self.serve_argv(),
                        stdout=subprocess.PIPE,
                        stderr=subprocess.DEVNULL,
                        text=True,
                        start_new_session=True,
                    )
                    self.servers.append(proc)
                    if proc.stdout.readline().strip() != "ready":
                        raise BenchError("the rate server in %s did not start" % ns)
                continue
            log = os.path.join(self.tmp, "iperf3-%s.log" % ns)
            with open(log, "w") as handle:  # iperf3 reports every test on stdout: a file never fills up as a pipe would
                proc = subprocess.Popen(
                    in_ns(ns) + ["iperf3", "-s", "-p", str(CONTAINER_PORT), "--forceflush"],
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.servers.append(proc)
            deadline = time.time() + 10
            while True:
                with open(log) as handle:
                    if "Server listening" in handle.read():
                        break
                if proc.poll() is not None or time.time() > deadline:
                    raise BenchError("the iperf3 server in %s did not start" % ns)
                time.sleep(0.02)

    def stop_servers(self) -> None:
        stop_processes(self.servers)  # only the processes this script started
        self.servers = []

    # ------------------------------------------------------------ cells
    def probe(self, host: Host, family: str, path: str, patience: float = 8.0) -> str:
        """'ok' once a connection succeeds; else the last error after ``patience`` seconds (IPv6 DAD may still run)."""
        addr, port = host.target(family, path)
        deadline = time.time() + patience
        while True:
            answer = run(in_ns(self.client) + [sys.executable, "-c", PROBE, addr, str(port), "1"]).stdout.strip()
            if answer == "ok" or time.time() > deadline:
                return answer

    def probe_all(self) -> None:
        """With the rate servers running: every cell answers, or is marked as not supported by this version."""
        for host in self.hosts:
            for family in FAMILIES:
                for path in PATHS:
                    key = (host.label(), family, path)
                    if family not in host.addresses:
                        self.unsupported[key] = "the sandbox has no %s address" % family
                        continue
                    answer = self.probe(host, family, path)
                    if answer != "ok":
                        addr, port = host.target(family, path)
                        shown = "[%s]" % addr if ":" in addr else addr
                        self.unsupported[key] = "not supported by this version (%s:%d: %s)" % (
                            shown,
                            port,
                            answer.split(": ", 1)[0],
                        )

    def rate(self, host: Host, family: str, path: str, seconds: float, clients: int) -> dict:
        addr, port = host.target(family, path)
        start = time.time() + 0.3  # all client processes start together
        argv = in_ns(self.client) + self.connect_argv(addr, port, start, seconds)
        procs = [
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _number in range(clients)
        ]
        outs = []
        for proc in procs:
            out, err = proc.communicate(timeout=seconds + 30)
            if proc.returncode != 0:
                raise BenchError("rate client to %s:%d failed: %s" % (addr, port, err[-1000:]))
            outs.append(json.loads(out))
        connections = sum(o["connections"] for o in outs)
        errors = sum(o["errors"] for o in outs)
        if connections == 0:
            raise BenchError("no connection to %s:%d succeeded (%d errors)" % (addr, port, errors))
        return {
            "per_second": sum(o["connections"] / o["seconds"] for o in outs),
            "connections": connections,
            "errors": errors,
            "load": os.getloadavg()[0],
        }

    def throughput(self, host: Host, family: str, path: str, seconds: float) -> dict:
        addr, port = host.target(family, path)
        proc = run(
            in_ns(self.client) + ["iperf3", "-c", addr, "-p", str(port), "-t", str(seconds), "-J"],
            check=False,
            timeout=seconds + 60,
        )
        try:
            report = json.loads(proc.stdout)
            bits = report["end"]["sum_received"]["bits_per_second"]
        except (ValueError, KeyError):
            raise BenchError(
                "iperf3 to %s:%d failed: %s %s" % (addr, port, proc.stdout[-1500:], proc.stderr[-500:])
            ) from None
        return {
            "gbit_per_s": bits / 1e9,
            "retransmits": report["end"].get("sum_sent", {}).get("retransmits"),
            "load": os.getloadavg()[0],
        }

    def destroy(self) -> None:
        destroy_lab(self.namespaces(), [host.store_dir for host in self.hosts], self.tmp, self.stop_servers)


def cells(lab: Lab) -> list:
    """Every (host, family, path) that works with this version."""
    return [
        (host, family, path)
        for family in FAMILIES
        for path in PATHS
        for host in lab.hosts
        if (host.label(), family, path) not in lab.unsupported
    ]


def measure(lab: Lab, options, say) -> dict:
    """The rounds: the rate cells, then the throughput cells, of every host; the order rotated every round."""
    samples: dict = {}  # "rate"/"throughput" -> "tool|count|family|path" -> [sample per round]
    for round_ in range(options.repeat):
        todo = cells(lab)
        shift = (round_ * 5) % len(todo) if todo else 0
        todo = todo[shift:] + todo[:shift]  # rotated: every cell meets the load of every moment
        say(
            "round %d/%d: %d cells x (rate, throughput) of %s s; load average %s"
            % (round_ + 1, options.repeat, len(todo), options.seconds, load_average())
        )
        for kind in ("rate", "throughput"):
            lab.start_servers(kind, options.clients)
            for host, family, path in todo:
                if kind == "rate":
                    sample = lab.rate(host, family, path, options.seconds, options.clients)
                else:
                    sample = lab.throughput(host, family, path, options.seconds)
                sample["round"] = round_ + 1
                samples.setdefault(kind, {}).setdefault(
                    "|".join((host.tool, str(host.count), family, path)), []
                ).append(sample)
            lab.stop_servers()
    return samples


def spread(values: list) -> float | None:
    m = median(values)
    return (max(values) - min(values)) / m if values and m else None


def summarize(samples: dict, options) -> dict:
    out: dict = {}
    for kind, key_name in (("rate", "per_second"), ("throughput", "gbit_per_s")):
        for key, runs in samples.get(kind, {}).items():
            values = [r[key_name] for r in runs]
            out.setdefault(kind, {})[key] = {
                "median": median(values),
                "runs": values,
                "spread": spread(values),
                "errors": sum(r.get("errors", 0) for r in runs),
                "loads": [r["load"] for r in runs],
            }
    ratios: dict = {}
    for kind in ("rate", "throughput"):
        for tool in TOOLS:
            for family in FAMILIES:
                for path in PATHS:
                    one = out.get(kind, {}).get("|".join((tool, "1", family, path)))
                    many = out.get(kind, {}).get("|".join((tool, str(options.ports), family, path)))
                    if not one or not many:
                        continue
                    paired = [b / a for a, b in zip(one["runs"], many["runs"], strict=False) if a]
                    ratio = {
                        "of_medians": many["median"] / one["median"],
                        "paired": paired,
                        "paired_median": median(paired),
                    }
                    ratios.setdefault(kind, {})["|".join((tool, family, path))] = ratio
    loads: dict = {}
    for kind_samples in samples.values():
        for runs in kind_samples.values():
            for r in runs:
                loads.setdefault(r["round"], []).append(r["load"])
    return {"cells": out, "ratios": ratios, "round_loads": {r: [min(v), max(v)] for r, v in sorted(loads.items())}}


def why_text(whys: list) -> str:
    """One line for the reasons of a row's cells: 'not supported by this version (detail; detail)' or as they are."""
    head = "not supported by this version ("
    if all(w.startswith(head) for w in whys):
        return head + "; ".join(w[len(head) : -1] for w in whys) + ")"
    return " / ".join(sorted(set(whys)))


def table(lab: Lab, summary: dict, options, loads: dict) -> str:
    n = options.ports
    header = "%-5s %-10s %-12s %10s %10s %7s %7s   %-29s %s" % (
        "",
        "path",
        "tool",
        "1 port",
        "%d ports" % n,
        "ratio",
        "of med.",
        "paired ratios (per round)",
        "spread 1 / %d" % n,
    )
    lines = [
        "new TCP connections per second (median of %d runs of %s s, %d %s client processes; spread = (max-min)/median):"
        % (options.repeat, options.seconds, options.clients, options.client),
        header,
    ]
    verdicts = []
    for kind in ("rate", "throughput"):
        if kind == "throughput":
            lines += [
                "",
                "TCP throughput, Gbit/s (iperf3, one stream, median of %d runs of %s s):"
                % (options.repeat, options.seconds),
                header,
            ]
        for family in FAMILIES:
            for path in PATHS:
                for tool in TOOLS:
                    whys = [lab.unsupported.get(("%s %d" % (tool, count), family, path)) for count in (1, n)]
                    if any(whys):
                        lines.append("%-5s %-10s %-12s   %s" % (family, path, tool, why_text([w for w in whys if w])))
                        continue
                    cell = summary["cells"].get(kind, {})
                    one, many = (
                        cell.get("|".join((tool, "1", family, path))),
                        cell.get("|".join((tool, str(n), family, path))),
                    )
                    ratio = summary["ratios"].get(kind, {}).get("|".join((tool, family, path)))
                    if not one or not many or not ratio:
                        continue
                    form = "%10.0f" if kind == "rate" else "%10.2f"
                    errors = one["errors"] + many["errors"]
                    lines.append(
                        ("%-5s %-10s %-12s " + form + " " + form + " %7.3f %7.3f   %-29s %.0f %% / %.0f %%%s")
                        % (
                            family,
                            path,
                            tool,
                            one["median"],
                            many["median"],
                            ratio["paired_median"],
                            ratio["of_medians"],
                            " ".join("%.2f" % r for r in ratio["paired"]),
                            100 * (one["spread"] or 0),
                            100 * (many["spread"] or 0),
                            "  (%d failed connects)" % errors if errors else "",
                        )
                    )
                    if kind == "rate" and tool == "cnm":
                        verdicts.append(
                            "%s %s %.3f %s"
                            % (family, path, ratio["paired_median"], "ok" if ratio["paired_median"] >= GOAL else "MISS")
                        )
    lines.append("")
    lines.append("reference: %s" % REFERENCE)
    lines.append(
        "ratio = median of the paired ratios (%d-port run / 1-port run of the same round, measured back to back); "
        "of med. = ratio of the medians" % n
    )
    lines.append(
        "goal (cnm, %d-port rate >= %.0f %% of the 1-port rate, by the paired ratio): %s"
        % (n, 100 * GOAL, "; ".join(verdicts) or "nothing measured")
    )
    if summary["round_loads"]:
        lines.append(
            "1-minute load average during each round (min-max): %s"
            % ", ".join("%.1f-%.1f" % tuple(v) for v in summary["round_loads"].values())
        )
    for note in lab.notes:
        lines.append("note: %s" % note)
    lines.append(loads_line(loads))
    return "\n".join(lines)


def preflight() -> list:
    commands = (
        ("nsenter", "util-linux"),
        ("ip", "iproute2"),
        ("nft", "nftables"),
        ("iptables-save", "iptables"),
        ("iperf3", "iperf3"),
    )
    return missing_tools(commands, ("bridge", "host-local", "portmap"))


def main() -> int:
    if worker_main():
        return 0
    parser = argparse.ArgumentParser(
        description="New-connection rate and throughput with 1 and N published ports: cnm vs CNI portmap."
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each rate and iperf3 run (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the table shows medians (default 3)")
    parser.add_argument("--ports", type=int, default=1000, help="the larger number of published ports (default 1000)")
    parser.add_argument(
        "--clients", type=int, default=2, help="client processes of the rate test, and server processes (default 2)"
    )
    parser.add_argument(
        "--client",
        choices=("c", "python"),
        default="c" if shutil.which("cc") else "python",
        help="the rate tool: a small C program compiled with cc at start (default when cc exists), or Python loops",
    )
    parser.add_argument(
        "--code",
        default=REPO,
        help="the checkout whose modules are measured (default: this one), e.g. a worktree of a branch",
    )
    parser.add_argument("--quick", action="store_true", help="one round of 1-second runs")
    parser.add_argument("--json", help="also write the results (medians and every sample) as JSON to this file")
    options = parser.parse_args()
    if not os.path.isfile(os.path.join(options.code, "plugins", "modules", "cnm_port_publish.py")):
        parser.error("--code %s is not a checkout of the collection" % options.code)
    if options.quick:
        options.seconds, options.repeat = 1.0, 1
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces)")
    if not 2 <= options.ports <= 1000 or options.repeat < 1 or options.seconds <= 0 or options.clients < 1:
        parser.error("--ports 2..1000, --repeat >= 1, --seconds > 0, --clients >= 1")
    check_tools(parser, preflight())
    loads = loads_at_start()
    state: dict = {"measured": None, "lab": None}

    def work(workdir: str) -> None:
        lab = state["lab"] = Lab(workdir, collections_root(workdir, os.path.abspath(options.code)), say)
        say("creating %s-{client,h1,h1s,hn,hns,c1,c1s,cn,cns}; cnm_bridge + cnm_endpoint; CNI bridge ADD" % lab.prefix)
        lab.create()
        lab.build_rate_tool(options.client)
        published = []
        for host in lab.hosts:
            host.set_up()
            count = 1 if host.small else options.ports
            say("%s: publishing %d port(s) on %s" % (host.ns, count, host.tool))
            published.append(host.publish(count))
            say("%s: %.2f s, %s" % (host.label(), published[-1]["seconds"], published[-1]["size"]))
        lab.start_servers("rate", options.clients)
        lab.probe_all()
        lab.stop_servers()
        for cell, why in sorted(lab.unsupported.items()):
            say("%s: %s" % (" ".join(cell), why))
        state["measured"] = {"samples": measure(lab, options, say), "published": published}

    def cleanup() -> None:
        if state["lab"] is not None:
            state["lab"].destroy()

    status = guarded(PREFIX, work, "cnm-bench-rate-", cleanup=cleanup, note_others=False)
    measured, lab = state["measured"], state["lab"]
    loads["end"] = load_average()
    if measured:
        summary = summarize(measured["samples"], options)
        print(table(lab, summary, options, loads))
        if options.json:
            code = os.path.abspath(options.code)
            meta = {
                "code": dict({"path": code}, **code_meta(code, pyroute2=False, branch=True)),
                "machine": machine_meta(load_average_at_start=loads["start"], load_average_at_end=loads["end"]),
                "options": vars(options),
                "notes": lab.notes,
                "date": now(),
                "unsupported": {" ".join(k): v for k, v in lab.unsupported.items()},
            }
            json_dir = os.path.dirname(os.path.abspath(options.json))
            os.makedirs(json_dir, exist_ok=True)
            with open(options.json, "w") as handle:
                json.dump(
                    dict(meta, summary=summary, published=measured["published"], samples=measured["samples"]),
                    handle,
                    indent=1,
                )
    return status


if __name__ == "__main__":
    sys.exit(main())
