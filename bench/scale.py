#!/usr/bin/env python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the overlay playbook on labs of many namespace hosts, control plane static vs evpn (issue 14 item 6).

    python bench/scale.py [--sizes 3 10 30 50] [--modes static evpn evpn-rr] [--reflectors 2] [--json out.json]
                          [--prefix zs2]

For each size N and each mode, on a lab of N hosts made by ``playbooks/lab_up.yml`` (lab_prefix ``--prefix``,
inventory in a temp dir; one lab at a time, removed by ``playbooks/lab_down.yml`` after each, also on failure):

  cold      ``ansible-playbook playbooks/overlay.yml`` (two endpoints per host, the role's ring check) on the fresh
            lab, timed as a whole process; each task's wall time across the hosts by bench/overlay.py's callback
  rerun     the same again: must report changed=0 on every host
  new       one more endpoint (namespace ``<prefix>-hN-new``, a fixed address in host N's slice) on the last host,
            and the time until the first endpoint of every other host pings it:
              static   the play that has to run everywhere (overlay.yml with the new endpoint in host N's list)
              evpn     ``cnm.network.cnm_endpoint`` run once inside host N as Ansible runs it (nsenter, JSON args
                       file); no task runs on the other hosts, FRR carries the endpoint to them
            The pingers (one ``ping -i 0.05`` per other host, from its ``-app1`` sandbox, whose ARP retransmit
            time is set to 100 ms so that a failed early resolution is retried at once) start with the change.
  memory    per host: RSS and PSS of the processes inside its namespace (zebra, bgpd, aardvark-dns), the kernel's
            FDB and neighbour entries, the size of its cnm store (tmpfs)

Modes: ``static`` (cnm_overlay_control_plane=static), ``evpn`` (full iBGP mesh: each host peers with every other),
``evpn-rr`` (the first ``--reflectors`` hosts are route reflectors, an inventory group ``scale_rr`` written beside the
lab inventory; every other host peers with them only). The 1-minute load average is taken at the start and the end
of every timed figure: the machine is shared, the figures move with it.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

# The benchmarks' shared helpers (the script's own folder is on sys.path).
from benchlib import (  # noqa: E402
    REPO,
    BenchError,
    check_tools,
    code_meta,
    guarded,
    in_ns,
    load_average,
    loads_at_start,
    machine_meta,
    median,
    missing_tools,
    netns_names,
    now,
    remove_namespaces,
    run,
    run_module,
    say,
    store_dir,
    worker_main,
    write_json,
)
from overlay import CALLBACK_PLUGIN, RECAP  # noqa: E402  (the task-wall callback and the recap's pattern)

SNAPSHOT_PARTS = ("galaxy.yml", "meta", "plugins", "roles", "playbooks")
NETWORK = "ov0"  # the role's default cnm_overlay_name
MODES = ("static", "evpn", "evpn-rr")
RR_GROUP = "scale_rr"
PING_DEADLINE = 900  # seconds: longer than any play here
NEW_OFFSET = 100  # the new endpoint: app1's address + this (every host's slice has at least 256 addresses)
GOALS = {"cold_50": 60.0, "rerun_over_cold": 0.5, "evpn_new": 1.0}


def run_group(argv: list, check: bool = True, timeout: float = 3600, **kwargs) -> subprocess.CompletedProcess:
    """``run`` for ansible-playbook: in a session of its own, and on an interrupt or timeout its whole process group
    is killed (its forked workers too, not only the process that started them)."""
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    if check and proc.returncode != 0:
        raise BenchError(
            "%s failed (rc %d): %s%s" % (" ".join(argv)[:300], proc.returncode, stdout[-2000:], stderr[-2000:])
        )
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


def load1() -> float:
    return os.getloadavg()[0]


def snapshot(workdir: str, live: bool) -> tuple:
    """The collection the runs use: a copy of the checkout's collection files taken now (others may edit the
    checkout while the benchmark runs), or with ``live`` the checkout itself. (collections root, collection dir,
    sha256 over the copied files)."""
    root = os.path.join(workdir, "collections")
    target = os.path.join(root, "ansible_collections", "cnm", "network")
    if live:
        os.makedirs(os.path.dirname(target))
        os.symlink(REPO, target)
        return root, target, None
    digest = hashlib.sha256()
    for part in SNAPSHOT_PARTS:
        source = os.path.join(REPO, part)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(target, part), ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            os.makedirs(target, exist_ok=True)
            shutil.copy2(source, os.path.join(target, part))
    for folder, dirs, files in os.walk(target):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, target).encode() + b"\0")
            with open(path, "rb") as handle:
                digest.update(handle.read())
    return root, target, digest.hexdigest()


class Runner:
    """ansible-playbook with the checkout's ansible.cfg (forks 10) on the snapshot's collection and playbooks, with
    the task callback."""

    def __init__(self, workdir: str, live: bool) -> None:
        self.collections, self.collection, self.sha256 = snapshot(workdir, live)
        self.playbook = os.path.join(self.collection, "playbooks", "overlay.yml")
        self.workdir_module = os.path.join(workdir, "module")
        os.makedirs(self.workdir_module)
        self.module_env = dict(os.environ, PYTHONPATH=self.collections)
        self.ansible_playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
        callbacks = os.path.join(workdir, "callbacks")
        os.makedirs(callbacks, exist_ok=True)
        with open(os.path.join(callbacks, "cnm_bench_task_wall.py"), "w") as handle:
            handle.write(CALLBACK_PLUGIN)
        self.timings = os.path.join(workdir, "timings.json")
        self.env = dict(
            os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_COLLECTIONS_PATH=self.collections
        )
        self.timed_env = dict(
            self.env,
            ANSIBLE_CALLBACK_PLUGINS=callbacks,
            ANSIBLE_CALLBACKS_ENABLED="cnm_bench_task_wall",
            CNM_BENCH_TIMINGS=self.timings,
        )

    def lab(self, playbook: str, lab_vars: list, check: bool = True) -> subprocess.CompletedProcess:
        return run_group(
            [self.ansible_playbook, "-i", "localhost,", os.path.join(self.collection, "playbooks", playbook)]
            + lab_vars,
            check=check,
            cwd=REPO,
            env=self.env,
            timeout=1800,
        )

    def play(self, inventories: list, extra: list) -> dict:
        """One timed run of the overlay playbook: seconds, rc, the recap's sums, the load, the tasks."""
        if os.path.exists(self.timings):
            os.unlink(self.timings)
        argv = [self.ansible_playbook]
        for inventory in inventories:
            argv += ["-i", inventory]
        load_start = load1()
        start = time.perf_counter()
        proc = run_group(argv + [self.playbook] + extra, check=False, cwd=REPO, env=self.timed_env)
        seconds = time.perf_counter() - start
        tasks = []
        if os.path.exists(self.timings):
            with open(self.timings) as handle:
                tasks = json.load(handle)
        recap = RECAP.findall(proc.stdout)
        row = {
            "seconds": seconds,
            "rc": proc.returncode,
            "hosts": len(recap),
            "changed": sum(int(r[2]) for r in recap),
            "failed": sum(int(r[4]) for r in recap) + sum(int(r[3]) for r in recap),
            "load1_start": load_start,
            "load1_end": load1(),
            "tasks": tasks,
        }
        if proc.returncode != 0:
            first = proc.stdout.find("fatal: [")  # the first failure says why; the tail is only the recap
            row["tail"] = (proc.stdout[first : first + 3000] if first >= 0 else "") + (proc.stdout + proc.stderr)[
                -3000:
            ]
        return row


# ---------------------------------------------------------------- reachability of a new endpoint
def endpoint_ip(ns: str) -> str:
    """The IPv4 address of the first global address in a sandbox."""
    for link in json.loads(run(in_ns(ns) + ["ip", "-j", "-4", "address", "show", "scope", "global"]).stdout):
        for info in link.get("addr_info", []):
            return info["local"]
    raise BenchError("no IPv4 address in %s" % ns)


def start_pingers(sandboxes: list, target: str) -> list:
    """One pinger per sandbox towards ``target`` until its first answer; each prints the time it got it.

    A ping run ends at its first error (a failed ARP resolution while the address is unknown), hence a loop of
    single pings, each waiting up to 1 s; the sandbox's ARP retransmit time is 100 ms so that resolution is retried
    at once rather than every second (a throwaway lab sandbox)."""
    procs = []
    for ns in sandboxes:
        script = (
            "sysctl -qw net.ipv4.neigh.eth0.retrans_time_ms=100; "
            "until ping -n -q -c 1 -W 1 %s >/dev/null 2>&1; do sleep 0.02; done; date +%%s.%%N" % target
        )
        procs.append(
            subprocess.Popen(
                in_ns(ns) + ["timeout", str(PING_DEADLINE), "bash", "-c", script],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
        )
    return procs


def collect_pingers(procs: list, timeout: float) -> list:
    """The epoch time of each pinger's first answer (None when it had none by ``timeout``)."""
    deadline = time.time() + timeout
    times = []
    for proc in procs:
        try:
            out = proc.communicate(timeout=max(1.0, deadline - time.time()))[0]
            times.append(float(out.strip()) if proc.returncode == 0 and out.strip() else None)
        except subprocess.TimeoutExpired:
            times.append(None)
    stop_pingers(procs)
    return times


def stop_pingers(procs: list) -> None:
    for proc in procs:  # only the processes this script started (each in a session of its own)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def reach_row(times: list, start: float, end: float) -> dict:
    reached = [t for t in times if t is not None]
    row = {
        "pingers": len(times),
        "reached": len(reached),
        "change_seconds": end - start,
    }
    if reached:
        row.update(
            all_after_change_start=max(reached) - start,
            all_after_change_end=max(reached) - end,
            median_after_change_end=median([t - end for t in reached]),
            first_after_change_start=min(reached) - start,
        )
    return row


# ---------------------------------------------------------------- memory and state per host
def processes(ns: str) -> dict:
    """{command: {"rss_kib": n, "pss_kib": n, "count": n}} of the processes inside a namespace."""
    out: dict = {}
    for pid in run(["ip", "netns", "pids", ns], check=False).stdout.split():
        try:
            with open("/proc/%s/comm" % pid) as handle:
                comm = handle.read().strip()
            with open("/proc/%s/smaps_rollup" % pid) as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line and not line[0].isdigit())
        except OSError:
            continue
        row = out.setdefault(comm, {"rss_kib": 0, "pss_kib": 0, "count": 0})
        row["rss_kib"] += int(fields["Rss"].split()[0])
        row["pss_kib"] += int(fields["Pss"].split()[0])
        row["count"] += 1
    return out


def kernel_entries(ns: str) -> dict:
    fdb = json.loads(run(in_ns(ns) + ["bridge", "-j", "fdb", "show"]).stdout or "[]")
    neigh = json.loads(run(in_ns(ns) + ["ip", "-j", "neigh", "show"]).stdout or "[]")
    return {"fdb_remote": sum(1 for e in fdb if e.get("dst")), "fdb": len(fdb), "neigh": len(neigh)}


def store_kib(ns: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(store_dir(ns)):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total // 1024


def memory(hosts: list, reflectors: list) -> dict:
    """Per host: its processes, kernel entries and store; summed up as mean and max, reflectors apart."""
    per_host = {}
    for name, ns in hosts:
        per_host[name] = {"processes": processes(ns), "kernel": kernel_entries(ns), "store_kib": store_kib(ns)}

    def summary(names: list) -> dict:
        if not names:
            return {}
        rows = [per_host[n] for n in names]
        comms = sorted({c for r in rows for c in r["processes"]})
        out: dict = {"hosts": len(names)}
        for comm in comms:
            for key in ("rss_kib", "pss_kib"):
                values = [r["processes"].get(comm, {}).get(key, 0) for r in rows]
                out["%s_%s_mean" % (comm, key)] = sum(values) / len(values)
                out["%s_%s_max" % (comm, key)] = max(values)
        frr = [sum(r["processes"].get(c, {}).get("rss_kib", 0) for c in ("zebra", "bgpd")) for r in rows]
        frr_pss = [sum(r["processes"].get(c, {}).get("pss_kib", 0) for c in ("zebra", "bgpd")) for r in rows]
        out.update(frr_rss_kib_mean=sum(frr) / len(frr), frr_pss_kib_mean=sum(frr_pss) / len(frr_pss))
        for key in ("fdb_remote", "fdb", "neigh"):
            values = [r["kernel"][key] for r in rows]
            out["%s_mean" % key] = sum(values) / len(values)
        out["store_kib_mean"] = sum(r["store_kib"] for r in rows) / len(rows)
        return out

    others = [n for n, _ns in hosts if n not in reflectors]
    return {"per_host": per_host, "hosts": summary(others), "reflectors": summary(list(reflectors))}


# ---------------------------------------------------------------- one lab
def bench_one(runner: Runner, workdir: str, prefix: str, size: int, mode: str, reflectors: int, row: dict) -> dict:
    """One lab: its figures in ``row`` (filled as they are taken, so a failure keeps those it got)."""
    inventory = os.path.join(workdir, "%s.yml" % prefix)
    lab_vars = ["-e", "lab_prefix=%s" % prefix, "-e", "lab_inventory=%s" % inventory]
    inventories = [inventory]
    extra = ["-e", "cnm_overlay_control_plane=%s" % ("static" if mode == "static" else "evpn")]
    rr_hosts: list = []
    if mode == "evpn-rr":
        rr_hosts = ["h%d" % i for i in range(1, min(reflectors, size) + 1)]
        rr_inventory = os.path.join(workdir, "%s-rr.yml" % prefix)
        with open(rr_inventory, "w") as handle:
            handle.write("%s:\n  hosts:\n%s" % (RR_GROUP, "".join("    %s:\n" % h for h in rr_hosts)))
        inventories.append(rr_inventory)
        extra += ["-e", "cnm_overlay_evpn_route_reflectors=%s" % RR_GROUP]
    row.update(size=size, mode=mode, lab_prefix=prefix, route_reflectors=rr_hosts)
    before = netns_names()
    if any(ns.startswith(prefix + "-") for ns in before):
        raise BenchError("namespaces of prefix %s exist already: remove that lab first" % prefix)
    try:
        say("%d hosts, %s: lab_up.yml (%s)" % (size, mode, prefix))
        start = time.perf_counter()
        runner.lab("lab_up.yml", lab_vars + ["-e", "lab_size=%d" % size])
        row["lab_up_seconds"] = time.perf_counter() - start
        for phase in ("cold", "rerun"):
            say("%d hosts, %s: %s run of overlay.yml (load %.2f)" % (size, mode, phase, load1()))
            row[phase] = runner.play(inventories, extra)
            say(
                "%d hosts, %s: %s %.1f s, changed %d, rc %d"
                % (size, mode, phase, row[phase]["seconds"], row[phase]["changed"], row[phase]["rc"])
            )
            if row[phase]["rc"] != 0:
                raise BenchError("%s run failed: %s" % (phase, row[phase]["tail"][:3000]))
        if row["rerun"]["changed"] != 0:
            say("WARNING: the unchanged rerun reported changed=%d" % row["rerun"]["changed"])
        row["new_endpoint"] = new_endpoint(runner, prefix, size, mode, inventories, extra)
        hosts = [("h%d" % i, "%s-h%d" % (prefix, i)) for i in range(1, size + 1)]
        row["memory"] = memory(hosts, rr_hosts)
        row["memory"]["load1"] = load1()
    finally:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            say("%d hosts, %s: lab_down.yml" % (size, mode))
            runner.lab("lab_down.yml", lab_vars, check=False)
            left = remove_namespaces(prefix + "-", before)
            if left:
                say("lab_down.yml left %s; deleted them" % left)
        finally:
            signal.signal(signal.SIGINT, previous)
    return row


def new_endpoint(runner: Runner, prefix: str, size: int, mode: str, inventories: list, extra: list) -> dict:
    host = "h%d" % size
    host_ns = "%s-%s" % (prefix, host)
    sandbox = "%s-new" % host_ns
    address = str(ipaddress.ip_address(endpoint_ip("%s-app1" % host_ns)) + NEW_OFFSET)
    probes = ["%s-h%d-app1" % (prefix, i) for i in range(1, size)]
    say(
        "%d hosts, %s: new endpoint %s in %s, %d pingers (load %.2f)"
        % (size, mode, address, sandbox, len(probes), load1())
    )
    row: dict = {"host": host, "address": address, "load1_start": load1()}
    pingers: list = []
    try:
        if mode == "static":
            endpoints = (
                "{{ [{'netns': cnm_lab_prefix ~ '-' ~ inventory_hostname ~ '-app1'},"
                " {'netns': cnm_lab_prefix ~ '-' ~ inventory_hostname ~ '-app2'}]"
                " + ([{'netns': '%s', 'ipv4_address': '%s'}] if inventory_hostname == '%s' else []) }}"
                % (sandbox, address, host)
            )
            start = time.time()
            play = runner.play(inventories, extra + ["-e", json.dumps({"cnm_overlay_endpoints": endpoints})])
            end = time.time()
            row["play"] = {k: v for k, v in play.items() if k != "tasks"}
            row["play"]["slowest_tasks"] = slowest(play["tasks"])
            if play["rc"] != 0:
                raise BenchError("the play with the new endpoint failed: %s" % play["tail"][-1500:])
            pingers = start_pingers(probes, address)  # the play has run everywhere: the entries are in place
        else:
            pingers = start_pingers(probes, address)  # running before the attach: they see it as soon as it works
            process_start = time.time()
            result = run_module(
                os.path.abspath(__file__),
                host_ns,
                "cnm_endpoint",
                {"network": NETWORK, "netns": sandbox, "ipv4_address": address},
                runner.workdir_module,
                runner.module_env,
            )
            process_end = time.time()
            # The attach is the module's main() (its process adds nsenter, Python's start-up and imports, exit).
            start, end = result["main_start"], result["main_start"] + result["main"]
            row["module"] = {
                "main": result["main"],
                "process": result["process"],
                "changed": result["result"]["changed"],
                "process_start_to_main_start": start - process_start,
                "main_end_to_process_end": process_end - end,
            }
        times = collect_pingers(pingers, 60)
    finally:
        stop_pingers(pingers)
    row.update(reach_row(times, start, end))
    row["load1_end"] = load1()
    return row


def slowest(tasks: list, count: int = 3) -> list:
    return [
        {"name": t["name"].split(" : ", 1)[-1], "seconds": t["seconds"]}
        for t in sorted(tasks, key=lambda t: -t["seconds"])[:count]
    ]


# ---------------------------------------------------------------- report
def fmt(value, digits: int = 2) -> str:
    return "-" if value is None else "%.*f" % (digits, value)


def table(results: list) -> str:
    head = "%5s %-8s %8s %5s %8s %5s %6s %9s %9s %6s %9s %8s %8s %7s  %s" % (
        "hosts",
        "mode",
        "cold s",
        "load",
        "rerun s",
        "load",
        "ratio",
        "cold/host",
        "new all s",
        "load",
        "new after",
        "FRR RSS",
        "FRR PSS",
        "entries",
        "slowest cold tasks",
    )
    lines = [head]
    for r in results:
        cold, rerun, new, mem = r.get("cold", {}), r.get("rerun", {}), r.get("new_endpoint", {}), r.get("memory", {})
        hosts = mem.get("hosts", {})
        frr_rss = hosts.get("frr_rss_kib_mean")
        frr_pss = hosts.get("frr_pss_kib_mean")
        lines.append(
            "%5d %-8s %8s %5s %8s %5s %6s %9s %9s %6s %9s %8s %8s %7s  %s"
            % (
                r["size"],
                r["mode"],
                fmt(cold.get("seconds"), 1),
                fmt(cold.get("load1_start")),
                fmt(rerun.get("seconds"), 1) + ("" if rerun.get("changed", 0) == 0 else "!"),
                fmt(rerun.get("load1_start")),
                fmt(rerun["seconds"] / cold["seconds"] if cold and rerun else None),
                fmt(cold["seconds"] / r["size"] if cold else None),
                fmt(new.get("all_after_change_start")),
                fmt(new.get("load1_start")),
                fmt(new.get("all_after_change_end")),
                "%d MiB" % round(frr_rss / 1024) if frr_rss else "-",
                "%d MiB" % round(frr_pss / 1024) if frr_pss else "-",
                "%d" % (hosts.get("fdb_mean", 0) + hosts.get("neigh_mean", 0)) if hosts else "-",
                "; ".join("%s %.1f" % (t["name"][:40], t["seconds"]) for t in slowest(cold.get("tasks", []))),
            )
        )
        if r.get("route_reflectors"):
            rr = mem.get("reflectors", {})
            lines.append(
                "%14s route reflectors %s: FRR RSS %s MiB, PSS %s MiB each"
                % (
                    "",
                    ",".join(r["route_reflectors"]),
                    fmt(rr.get("frr_rss_kib_mean", 0) / 1024, 1),
                    fmt(rr.get("frr_pss_kib_mean", 0) / 1024, 1),
                )
            )
        if r.get("error"):
            lines.append("%14s ERROR: %s" % ("", r["error"][:300]))
    lines.append(
        "cold/rerun: whole ansible-playbook runs; load: 1-min load average at the start of that figure; new all s: "
        "from the change's start until every other host pinged the new endpoint (static: the play everywhere; evpn: "
        "one cnm_endpoint run on the last host); new after: the same from the change's end; FRR: zebra+bgpd per "
        "(non-reflector) host, mean; entries: FDB + neighbour entries per host, mean"
    )
    return "\n".join(lines)


def goals(results: list) -> list:
    lines = []
    for r in results:
        cold, rerun = r.get("cold"), r.get("rerun")
        if cold and rerun:
            lines.append(
                "%d hosts %s: rerun/cold %.2f (goal <= %.1f) %s"
                % (
                    r["size"],
                    r["mode"],
                    rerun["seconds"] / cold["seconds"],
                    GOALS["rerun_over_cold"],
                    "met" if rerun["seconds"] <= GOALS["rerun_over_cold"] * cold["seconds"] else "NOT met",
                )
            )
        if cold and r["size"] == 50:
            lines.append(
                "50 hosts %s: cold %.1f s (goal <= %.0f s) %s"
                % (
                    r["mode"],
                    cold["seconds"],
                    GOALS["cold_50"],
                    "met" if cold["seconds"] <= GOALS["cold_50"] else "NOT met",
                )
            )
        new = r.get("new_endpoint", {})
        if r["mode"] != "static" and "all_after_change_start" in new:
            lines.append(
                "%d hosts %s: new endpoint reachable everywhere %.2f s after the attach started (goal <= %.0f s) %s"
                % (
                    r["size"],
                    r["mode"],
                    new["all_after_change_start"],
                    GOALS["evpn_new"],
                    "met" if new["all_after_change_start"] <= GOALS["evpn_new"] else "NOT met",
                )
            )
    return lines


def main() -> int:
    if worker_main(wrap=lambda: {"main_start": time.time()}):  # the clock of main() as an epoch time too
        return 0
    parser = argparse.ArgumentParser(description="The overlay playbook on labs of N namespace hosts, static vs evpn.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 10, 30, 50], help="lab sizes (default: 3 10 30 50)")
    parser.add_argument(
        "--modes", nargs="+", choices=MODES, default=["static", "evpn"], help="control planes (default: static evpn)"
    )
    parser.add_argument("--reflectors", type=int, default=2, help="route reflectors of mode evpn-rr (default: 2)")
    parser.add_argument("--prefix", default="zs2", help="the labs' lab_prefix (one lab at a time; default: zs2)")
    parser.add_argument("--json", help="also write the results as JSON to this file")
    parser.add_argument(
        "--live",
        action="store_true",
        help="run the checkout itself rather than a copy of its collection taken at start",
    )
    options = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces)")
    if any(n < 2 or n > 200 for n in options.sizes):
        parser.error("sizes must be between 2 and 200 (lab_up.yml's limit; one host to attach, others to ping)")
    if not re.match(r"^[a-z][a-z0-9]{0,4}$", options.prefix):
        parser.error("--prefix: up to 5 lower-case letters and digits (namespace and interface names stay short)")
    if options.reflectors < 1:
        parser.error("--reflectors must be at least 1")
    check_tools(
        parser,
        missing_tools((("nsenter", "util-linux"), ("ip", "iproute2"), ("bridge", "iproute2"), ("ping", "iputils-ping")))
        + (
            []
            if os.access("/usr/lib/frr/bgpd", os.X_OK) or options.modes == ["static"]
            else ["FRR (apt-get install frr)"]
        ),
    )
    loads = loads_at_start()
    results: list = []
    snapshot_sha256: list = []

    def work(workdir: str) -> None:
        runner = Runner(workdir, options.live)
        snapshot_sha256.append(runner.sha256)
        for size in options.sizes:
            for mode in options.modes:
                row: dict = {"size": size, "mode": mode}
                results.append(row)
                try:
                    bench_one(runner, workdir, options.prefix, size, mode, options.reflectors, row)
                except BenchError as exc:
                    say("%d hosts, %s: %s" % (size, mode, str(exc)[:3000]))
                    row["error"] = str(exc)
                if options.json:  # what is measured so far survives an interruption
                    write(options.json, results, loads, options, snapshot_sha256)

    status = guarded(options.prefix + "-", work, "cnm-bench-scale-", remove_left=remove_namespaces)
    loads["end"] = load_average()
    print(table(results))
    print("\n".join(goals(results)))
    print(
        "load average (1, 5, 15 min): %s at start, %s at end; %d CPUs" % (loads["start"], loads["end"], os.cpu_count())
    )
    if options.json:
        write(options.json, results, loads, options, snapshot_sha256)
    if any("error" in r for r in results):
        status = status or 1
    return status


def write(path: str, results: list, loads: dict, options, snapshot_sha256: list) -> None:
    frr = (
        run(["/usr/lib/frr/zebra", "--version"], check=False).stdout.splitlines()[:1]
        if os.path.exists("/usr/lib/frr/zebra")
        else []
    )
    meta = {
        "code": code_meta(pyroute2=False),
        "machine": machine_meta(
            frr=frr[0] if frr else None,
            load_average_at_start=loads["start"],
            load_average_at_end=loads.get("end", load_average()),
        ),
        "sizes": options.sizes,
        "modes": options.modes,
        "reflectors": options.reflectors,
        "goals": GOALS,
        "collection_snapshot_sha256": snapshot_sha256[0] if snapshot_sha256 else None,
        "date": now(),
    }
    write_json(path, dict(meta, results=results), default=str)


if __name__ == "__main__":
    sys.exit(main())
