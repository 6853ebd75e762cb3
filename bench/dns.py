#!/usr/bin/env python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the resolver of networks with ``dns: true`` (aardvark-dns) beside Docker's embedded DNS (issue 13,
item 7).

    python bench/dns.py [--clients 50] [--names 200] [--seconds 5] [--repeat 3] [--no-docker] [--json FILE]

The modules start the distribution's aardvark-dns, or the one CNM_NETWORK_AARDVARK_DNS names (scripts/setup.sh
fetches Debian 13's into .venv/aardvark-dns-trixie/); its version is printed and kept in the JSON.

Two measurements, on throwaway namespaces under a fresh prefix ``cnmd<hex>``:

  reload   a host namespace ``-host`` with a bridge network (``dns: true``); ONE cnm_endpoint task attaches
           ``--names`` sandboxes, each with a name; then, per round, ONE task gives every endpoint a new alias.
           Reported: the module's ``main()`` time of that task, the resolver's share of it (the change that writes
           the files, sends SIGHUP and waits until it has read them and listens on every gateway: timed by
           wrapping that verb), and whether the first query for the last new alias after the task is answered.
  reloads  the same clients ask for ``--seconds`` while alias tasks run back to back (each a reload): the queries
           lost (refused, or not answered within 1 s) per reload.
  queries  ``--clients`` of those sandboxes each run one client process (Python, a UDP socket, one query at a time
           for a random name of the network, for ``--seconds``); reported: the queries answered per second over all
           clients, and the median and 99th percentile of each query's round trip. A query not answered within
           1 s counts as lost. With Docker (dockerd 20.10 from Debian, started in ``-docker``, a namespace of its
           own, with its files in a temporary directory, as tests/integration/test_containers.py starts it):
           ``--clients`` busybox containers on a user-defined network, the same client run in each container's
           namespace against 127.0.0.11 for the containers' names.

Both resolvers run on the same machine with the same number of client processes; the clients compete with the
resolver for the CPUs (2 here), as containers do. In ``finally`` (also on Ctrl-C) it removes the containers and
stops dockerd, kills what runs in its namespaces (the resolver), deletes them, its store directory, the
/etc/netns files and its temporary files, and checks that no ``cnmd*`` namespace is left and that ``ip -br link``
of the root namespace is unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import time

from benchlib import (  # noqa: E402
    BenchError,
    ModuleRunner,
    collections_root,
    guarded,
    in_ns,
    load_average,
    machine_meta,
    median,
    now,
    remove_namespaces,
    run,
    say,
    store_dir,
    worker_main,
    write_json,
)

SUBNET, GATEWAY = "10.88.0.0/16", "10.88.0.1"
BUSYBOX = "/bin/busybox"
IMAGE = "cnmbench/busybox:1"

# One client: sequential queries over UDP for random names, for SECONDS; prints {"answered", "lost", "rtt"}.
CLIENT = r"""
import json, os, random, socket, struct, sys, time
server, seconds, names = sys.argv[1], float(sys.argv[2]), sys.argv[3].split(",")
def packet(ident, name):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", 1, 1)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(1.0)
rtt, lost, answered, ident = [], 0, 0, random.randrange(65536)
end = time.perf_counter() + seconds
while time.perf_counter() < end:
    ident = (ident + 1) % 65536
    start = time.perf_counter()
    sock.sendto(packet(ident, random.choice(names)), (server, 53))
    try:
        while True:
            reply = sock.recv(512)
            if reply[:2] == struct.pack("!H", ident):
                break
    except (socket.timeout, ConnectionRefusedError):
        lost += 1
        continue
    if struct.unpack("!H", reply[6:8])[0] > 0:
        answered += 1
        rtt.append(time.perf_counter() - start)
    else:
        lost += 1
print(json.dumps({"answered": answered, "lost": lost, "rtt": rtt}))
"""


def percentile(values: list, fraction: float):
    values = sorted(values)
    return values[min(len(values) - 1, int(fraction * len(values)))] if values else None


def query_load(targets: list, server: str, names: list, seconds: float, meanwhile=None) -> dict:
    """Start one client per target (an nsenter prefix), run ``meanwhile()`` if given, wait for all clients; the
    totals and round-trip percentiles."""
    procs = [
        subprocess.Popen(
            target + [sys.executable, "-c", CLIENT, server, str(seconds), ",".join(names)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for target in targets
    ]
    if meanwhile is not None:
        meanwhile()
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=seconds + 60)
        if proc.returncode != 0:
            raise BenchError("a DNS client failed: %s" % err[-500:])
        results.append(json.loads(out))
    rtt = [value for result in results for value in result["rtt"]]
    answered = sum(result["answered"] for result in results)
    return {
        "qps": answered / seconds,
        "lost": sum(result["lost"] for result in results),
        "median_ms": 1000 * percentile(rtt, 0.5) if rtt else None,
        "p99_ms": 1000 * percentile(rtt, 0.99) if rtt else None,
    }


def answered_at_once(ns: str, name: str) -> bool:
    """Whether the first query for ``name`` from ``ns`` is answered (the task waited for the resolver's reload)."""
    out = run(
        in_ns(ns)
        + [
            sys.executable,
            "-c",
            CLIENT.replace("while time.perf_counter() < end:", "for _ in (1,):"),
            GATEWAY,
            "1",
            name,
        ]
    ).stdout
    return json.loads(out)["answered"] == 1


def timed_sync() -> dict:
    """The worker's wrap: time the resolver's change (dns.sync_resolver) while main() runs."""
    from ansible_collections.cnm.network.plugins.module_utils import dns

    timings: dict = {"sync": 0.0}
    verb = dns.VERBS["sync_resolver"]

    def sync(*args):
        start = time.perf_counter()
        try:
            verb(*args)
        finally:
            timings["sync"] += time.perf_counter() - start

    dns.VERBS["sync_resolver"] = sync
    return timings


class Lab:
    def __init__(self, prefix: str, tmp: str) -> None:
        self.prefix, self.tmp = prefix, tmp
        self.host = prefix + "-host"
        run(["ip", "netns", "add", self.host])
        run(in_ns(self.host) + ["ip", "link", "set", "lo", "up"])
        self.store = store_dir(self.host)

    def sandbox(self, number: int) -> str:
        return "%s-s%d" % (self.prefix, number)

    def destroy(self) -> None:
        for ns in [n for n in os.listdir("/run/netns") if n.startswith(self.prefix + "-")]:
            run(["sh", "-c", "ip netns pids %s | xargs -r kill -9" % ns], check=False)
            run(["ip", "netns", "del", ns], check=False, start_new_session=True)
            shutil.rmtree("/etc/netns/%s" % ns, ignore_errors=True)
        try:
            os.rmdir("/etc/netns")
        except OSError:
            pass
        shutil.rmtree(self.store, ignore_errors=True)


def bench_cnm(lab: Lab, runner: ModuleRunner, options) -> dict:
    runner.module("cnm_bridge", {"name": "bench", "subnet": SUBNET, "dns": True})
    names = ["n%d" % number for number in range(options.names)]
    endpoints = [{"netns": lab.sandbox(n), "name": names[n]} for n in range(options.names)]
    attach = runner.module("cnm_endpoint", {"network": "bench", "endpoints": endpoints})
    say(
        "attached %d named endpoints: module %.3f s (resolver %.3f s)" % (options.names, attach["main"], attach["sync"])
    )
    rounds = []
    for round_number in range(options.repeat):
        aliases = [dict(item, aliases=["r%d-%s" % (round_number, item["name"])]) for item in endpoints]
        realias = runner.module("cnm_endpoint", {"network": "bench", "endpoints": aliases})
        answered = answered_at_once(lab.sandbox(0), aliases[-1]["aliases"][0])
        rounds.append({"main": realias["main"], "sync": realias["sync"], "answered": answered})
        say(
            "round %d: %d new aliases: module %.3f s, resolver %.3f s, the last alias answered at the first query "
            "after the task: %s" % (round_number + 1, options.names, realias["main"], realias["sync"], answered)
        )
    clients = [in_ns(lab.sandbox(n)) for n in range(options.clients)]
    queries = []
    for round_number in range(options.repeat):
        load = query_load(clients, GATEWAY, names, options.seconds)
        queries.append(load)
        say(
            "cnm round %d: %.0f queries/s, median %.3f ms, p99 %.3f ms, %d lost"
            % (round_number + 1, load["qps"], load["median_ms"], load["p99_ms"], load["lost"])
        )
    # Reloads while the clients ask: aardvark-dns 1.4 closes its listeners and binds new ones on SIGHUP (1.11 and
    # later keep them).
    reloads: list = []

    def realias_while_asked() -> None:
        end = time.perf_counter() + options.seconds - 1
        while time.perf_counter() < end:
            tag = "x%d" % len(reloads)
            items = [dict(item, aliases=["%s-%s" % (tag, item["name"])]) for item in endpoints]
            runner.module("cnm_endpoint", {"network": "bench", "endpoints": items})
            reloads.append(tag)

    under_reloads = query_load(clients, GATEWAY, names, options.seconds, meanwhile=realias_while_asked)
    say(
        "during %d reloads: %.0f queries/s, %d lost (%.1f per reload)"
        % (len(reloads), under_reloads["qps"], under_reloads["lost"], under_reloads["lost"] / max(1, len(reloads)))
    )
    return {
        "attach": {"main": attach["main"], "sync": attach["sync"]},
        "realias": rounds,
        "queries": queries,
        "reloads": dict(under_reloads, count=len(reloads)),
    }


def busybox_tarball(path: str) -> None:
    applets = run([BUSYBOX, "--list"]).stdout.split()
    with tarfile.open(path, "w") as tar:
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                info = tarfile.TarInfo("bin/" + applet)
                info.type, info.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(info)


def bench_docker(prefix: str, tmp: str, options) -> dict:
    ns = prefix + "-docker"
    run(["ip", "netns", "add", ns])
    run(in_ns(ns) + ["ip", "link", "set", "lo", "up"])
    root = os.path.join(tmp, "docker")
    os.makedirs(root)
    env = dict(os.environ, DOCKER_HOST="unix://%s/docker.sock" % root)
    made_here = [path for path in ("/run/docker", "/run/containerd") if not os.path.exists(path)]
    daemon = subprocess.Popen(
        in_ns(ns)
        + [
            "dockerd",
            "--data-root",
            root + "/data",
            "--exec-root",
            root + "/exec",
            "--pidfile",
            root + "/docker.pid",
            "-H",
            env["DOCKER_HOST"],
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--containerd-namespace",
            prefix,
            "--containerd-plugins-namespace",
            prefix + "-plugins",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def docker(*args: str, check: bool = True) -> str:
        return run(in_ns(ns) + ["docker"] + list(args), env=env, check=check).stdout.strip()

    try:
        deadline = time.time() + 60
        while run(in_ns(ns) + ["docker", "version"], env=env, check=False).returncode != 0:
            if daemon.poll() is not None or time.time() > deadline:
                raise BenchError("dockerd did not start")
            time.sleep(0.2)
        busybox_tarball(os.path.join(tmp, "rootfs.tar"))
        docker("import", "-c", "ENV PATH=/bin", os.path.join(tmp, "rootfs.tar"), IMAGE)
        docker("network", "create", "--subnet", SUBNET, "bench")
        names = ["n%d" % number for number in range(options.clients)]
        for name in names:
            docker("run", "-d", "--network", "bench", "--name", name, IMAGE, "sleep", "1d")
        pids = [docker("inspect", "-f", "{{.State.Pid}}", name) for name in names]
        targets = [["nsenter", "--net=/proc/%s/ns/net" % pid, "--"] for pid in pids]
        queries = []
        for round_number in range(options.repeat):
            load = query_load(targets, "127.0.0.11", names, options.seconds)
            queries.append(load)
            say(
                "docker round %d: %.0f queries/s, median %.3f ms, p99 %.3f ms, %d lost"
                % (round_number + 1, load["qps"], load["median_ms"], load["p99_ms"], load["lost"])
            )
        return {"queries": queries, "version": docker("version", "-f", "{{.Server.Version}}")}
    finally:
        if daemon.poll() is None:
            docker("rm", "-f", *["n%d" % n for n in range(options.clients)], check=False)
            docker("network", "rm", "bench", check=False)
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()
        run(["sh", "-c", "ip netns pids %s | xargs -r kill -9" % ns], check=False)
        for path in made_here:
            shutil.rmtree(path, ignore_errors=True)


def summary(queries: list) -> dict:
    return {key: median([q[key] for q in queries]) for key in ("qps", "median_ms", "p99_ms", "lost")}


def main() -> int:
    if worker_main(wrap=timed_sync):
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--names", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--json")
    options = parser.parse_args()
    if options.clients > options.names:
        parser.error("--clients must not exceed --names (the clients are named endpoints)")
    prefix = "cnmd" + secrets.token_hex(2)
    results: dict = {"when": now(), "machine": machine_meta(), "options": vars(options), "load": [load_average()]}
    labs: list = []
    # The binary dns.binary() picks: the variable's, else Debian's (the path this benchmark is run with).
    resolver = os.environ.get("CNM_NETWORK_AARDVARK_DNS") or "/usr/lib/podman/aardvark-dns"
    results["resolver"] = run([resolver, "--version"]).stdout.strip()

    def work(tmp: str) -> None:
        lab = Lab(prefix, tmp)
        labs.append(lab)
        runner = ModuleRunner(lab, collections_root(tmp))
        runner.script = os.path.abspath(__file__)
        results["cnm"] = bench_cnm(lab, runner, options)
        if not options.no_docker and shutil.which("dockerd"):
            results["docker"] = bench_docker(prefix, tmp, options)
        results["load"].append(load_average())
        cnm = summary(results["cnm"]["queries"])
        print("%-28s %10s %10s %10s %6s" % ("resolver", "queries/s", "median ms", "p99 ms", "lost"))
        rows = [("cnm (%s)" % results["resolver"], cnm)]
        if "docker" in results:
            rows.append(
                ("docker %s (127.0.0.11)" % results["docker"]["version"], summary(results["docker"]["queries"]))
            )
        for label, row in rows:
            print("%-28s %10.0f %10.3f %10.3f %6d" % (label, row["qps"], row["median_ms"], row["p99_ms"], row["lost"]))
        reloads = results["cnm"]["reloads"]
        print(
            "%d reloads while %d clients asked for %.0f s: %d queries lost (%.1f per reload), %.0f queries/s"
            % (
                reloads["count"],
                options.clients,
                options.seconds,
                reloads["lost"],
                reloads["lost"] / max(1, reloads["count"]),
                reloads["qps"],
            )
        )
        realias = results["cnm"]["realias"]
        print(
            "%d new aliases in one task: module %.3f s, resolver %.3f s (medians); the last alias answered at the "
            "first query after the task in %d of %d rounds"
            % (
                options.names,
                median([r["main"] for r in realias]),
                median([r["sync"] for r in realias]),
                sum(r["answered"] for r in realias),
                len(realias),
            )
        )
        if options.json:
            write_json(options.json, results)

    def cleanup() -> None:
        for lab in labs:
            lab.destroy()

    return guarded(prefix, work, "cnm-bench-dns-", cleanup=cleanup, remove_left=remove_namespaces)


if __name__ == "__main__":
    sys.exit(main())
