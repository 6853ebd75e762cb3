#!/usr/bin/env python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: attach N sandboxes to one bridge network, detach them, and compare tools.

    python bench/attach.py --sizes 50 200 [--repeat 3] [--json out.json] [--no-profile]

For each N, in throwaway namespaces (a "host" ``cnmb<hex>-host`` and N sandboxes
``cnmb<hex>-s<i>``, created untimed with ``lo`` up), it times:

  cnm module   one cnm_endpoint run with ``endpoints:`` listing the N sandboxes, run inside the
               host with nsenter as Ansible runs it (JSON args file); the time of ``main()``
               only (the module is imported before the clock starts); the bridge network is made
               with cnm_bridge first, untimed. Phases: cold attach, rerun, ``state: absent``.
  cnm process  the same runs, timed as whole processes (nsenter + Python start-up + imports).
  cnm task     the same three tasks run by ansible-playbook over the cnm.network.netns connection
               (pipelining on), each task timed from its start to its result by a callback.
  CNI bridge   the reference bridge plugin with host-local IPAM, N ADDs, N CHECKs (as "rerun"),
               N DELs, one bash script per phase inside the host.
  ip shell     a bash script of ip commands per phase (5 per endpoint to add, 1 to delete).
  kernel floor one pyroute2 session: one RTM_NEWLINK per endpoint (veth with its peer born in the
               sandbox, MAC, master, group, up); delete all with one RTM_DELLINK by link group.
  pyroute2 min the least pyroute2 code doing what cnm does: the veth as above, then in the sandbox
               its address, link up and default route; "rerun" is the reads an idempotence check
               needs (dump links, addresses and routes of the host and of every sandbox);
               delete is one RTM_DELLINK per endpoint.

Then, unless --no-profile, it runs cnm_endpoint again for the largest N under cProfile (add,
rerun, delete) and prints the top 25 functions by cumulative time (full text and .pstats files in
bench/results/). Everything it creates is removed in ``finally`` (also on Ctrl-C): its
namespaces, the module's store directory for the host namespace and its temporary files.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
import tempfile
import time

# The benchmarks' shared helpers (the script's own folder is on sys.path).
from benchlib import (  # noqa: E402
    CLONE_NEWNET,
    CNI_PATH,
    PHASES,
    RESULTS_DIR,
    BenchError,
    ModuleRunner,
    Samples,
    check_common,
    code_meta,
    destroy_lab,
    each_size,
    entered,
    in_ns,
    issue_figures,
    mac_of,
    machine_meta,
    measured,
    now,
    phase_header,
    phase_line,
    process_overhead,
    profile_phases,
    run,
    run_script,
    say,
    sizes_parser,
    store_dir,
    timed,
    worker_main,
    write_json,
    write_script,
)

PREFIX = "cnmb"
NETWORK = "bench"  # the cnm network's name
CNM_SUBNET = (10, 89)
CNI_SUBNET = (10, 88)
IP_SUBNET = (10, 90)
FLOOR_SUBNET = (10, 91)
FLOOR_GROUP = 4242

# The issue's targets, for N = 200 (seconds), and its reference measurements on this machine kind.
TARGETS_200 = {
    "cnm module": {"add": 0.6, "rerun": 0.3, "delete": 0.3},
    "cnm task": {"add": 1.5, "rerun": 1.5, "delete": 1.5},
}
REFERENCE_200 = {
    "CNI bridge": {"add": 2.1, "delete": 5.4},
    "kernel floor": {"add": 0.55, "delete": 0.07},
}
TOOLS = ["cnm module", "cnm process", "cnm task", "CNI bridge", "ip shell", "kernel floor", "pyroute2 min"]

CALLBACK_PLUGIN = '''
from __future__ import annotations

DOCUMENTATION = """
name: cnm_bench_timer
type: aggregate
short_description: times each task from its start to its result (bench/attach.py)
description: Writes the task times as JSON to the file named by CNM_BENCH_TIMINGS.
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "cnm_bench_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tasks = []
        self.current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.current = {"name": task.get_name(), "start": time.perf_counter()}

    def _done(self, result, status):
        if self.current is not None:
            self.current["seconds"] = time.perf_counter() - self.current.pop("start")
            self.current["status"] = status
            self.current["changed"] = bool(result._result.get("changed"))
            if status != "ok":
                self.current["msg"] = str(result._result.get("msg", ""))[:2000]
            self.tasks.append(self.current)
            self.current = None

    def v2_runner_on_ok(self, result):
        self._done(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._done(result, "failed")

    def v2_runner_on_unreachable(self, result):
        self._done(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        with open(os.environ["CNM_BENCH_TIMINGS"], "w") as handle:
            json.dump(self.tasks, handle)
'''


# ---------------------------------------------------------------- small helpers
def address(subnet: tuple, i: int) -> str:
    """The i-th endpoint's address in a /16 (the gateway is .0.1, endpoints start at .0.2)."""
    n = i + 2
    return "%d.%d.%d.%d" % (subnet[0], subnet[1], n >> 8, n & 255)


def ports_of(ns: str, bridge: str) -> int:
    """How many interfaces of the namespace are ports of ``bridge`` (read with pyroute2)."""
    from pyroute2 import IPRoute

    with entered(ns):
        ipr = IPRoute()
    try:
        links = ipr.get_links()
        index = next((m["index"] for m in links if m.get_attr("IFLA_IFNAME") == bridge), None)
        return sum(1 for m in links if index is not None and m.get_attr("IFLA_MASTER") == index)
    finally:
        ipr.close()


def sandbox_view(ns: str) -> dict:
    """Interfaces, IPv4 addresses and IPv4 routes of one sandbox, to check a tool's work."""
    from pyroute2 import IPRoute

    with entered(ns):
        ipr = IPRoute()
    try:
        return {
            "links": sorted(m.get_attr("IFLA_IFNAME") for m in ipr.get_links()),
            "addresses": sorted(
                "%s/%d" % (m.get_attr("IFA_ADDRESS"), m["prefixlen"])
                for m in ipr.get_addr(family=socket.AF_INET)
                if m.get_attr("IFA_LABEL") != "lo"
            ),
            "default_via": sorted(
                m.get_attr("RTA_GATEWAY") for m in ipr.get_routes(family=socket.AF_INET, table=254) if m["dst_len"] == 0
            ),
        }
    finally:
        ipr.close()


# ---------------------------------------------------------------- the lab of one size
class Lab:
    """One host namespace and N sandboxes with a unique prefix; ``destroy`` removes all it made."""

    def __init__(self, size: int, workdir: str) -> None:
        self.size = size
        self.prefix = PREFIX + secrets.token_hex(3)
        self.host = self.prefix + "-host"
        self.sandboxes = ["%s-s%d" % (self.prefix, i) for i in range(size)]
        self.tmp = tempfile.mkdtemp(prefix="%s-" % self.prefix, dir=workdir)
        self.store_dir = None

    def create(self) -> None:
        run(["ip", "netns", "add", self.host])
        self.store_dir = store_dir(self.host)  # known before any module runs
        lines = ["link set lo up"] + ["netns add %s" % s for s in self.sandboxes]
        run(["ip", "-n", self.host, "-batch", "-"], input="\n".join(lines[:1]) + "\n")
        run(["ip", "-batch", "-"], input="\n".join(lines[1:]) + "\n")
        script = "".join("ip -n %s link set lo up\n" % s for s in self.sandboxes)
        run(["bash", "-e"], input=script)

    def script(self, name: str, body: str) -> str:
        return write_script(self.tmp, name, body)

    def run_script(self, path: str) -> float:
        return run_script(self.host, path)

    def assert_clean(self, tool: str) -> None:
        """Every sandbox has only lo again (the previous tool removed all it made)."""
        for ns in (self.sandboxes[0], self.sandboxes[-1]):
            links = sandbox_view(ns)["links"]
            if links != ["lo"]:
                raise BenchError("%s left interfaces in %s: %s" % (tool, ns, links))

    def assert_attached(self, tool: str, bridge: str, subnet: tuple) -> None:
        ports = ports_of(self.host, bridge)
        if ports != self.size:
            raise BenchError("%s: bridge %s has %d ports, expected %d" % (tool, bridge, ports, self.size))
        view = sandbox_view(self.sandboxes[-1])
        gateway = "%d.%d.0.1" % subnet
        if (
            "eth0" not in view["links"]
            or not any(a.startswith("%d.%d." % subnet) for a in view["addresses"])
            or view["default_via"] != [gateway]
        ):
            raise BenchError("%s: sandbox %s is not attached as expected: %s" % (tool, self.sandboxes[-1], view))

    def destroy(self) -> None:
        destroy_lab(self.sandboxes + [self.host], [self.store_dir], self.tmp)


# ---------------------------------------------------------------- a. cnm
class Cnm(ModuleRunner):
    """Runs the collection's modules inside the host namespace, as Ansible does, and times them."""

    script = os.path.abspath(__file__)

    def make_network(self) -> None:
        self.module("cnm_bridge", {"name": NETWORK, "subnet": "%d.%d.0.0/16" % CNM_SUBNET})

    def endpoint_args(self, state: str) -> dict:
        return {"network": NETWORK, "state": state, "endpoints": [{"netns": s} for s in self.lab.sandboxes]}

    def phases(self, profile_prefix: str | None = None) -> dict:
        """Cold attach, rerun, absent: one module run each; checks ``changed`` and the kernel."""
        out = {}
        for phase, state, changed in (
            ("add", "present", True),
            ("rerun", "present", False),
            ("delete", "absent", True),
        ):
            profile = "%s-%s" % (profile_prefix, phase) if profile_prefix else None
            run_ = self.module("cnm_endpoint", self.endpoint_args(state), profile)
            if run_["result"].get("changed") != changed:
                raise BenchError(
                    "cnm_endpoint %s: changed=%s, expected %s" % (phase, run_["result"].get("changed"), changed)
                )
            if phase == "add":
                self.lab.assert_attached("cnm", self.bridge_name(), CNM_SUBNET)
            out[phase] = run_
        self.lab.assert_clean("cnm")
        return out

    def bridge_name(self) -> str:
        sys.path.insert(0, self.collections)
        try:
            from ansible_collections.cnm.network.plugins.module_utils.model import default_bridge_name
        finally:
            sys.path.remove(self.collections)
        return default_bridge_name(NETWORK)

    def playbook(self) -> dict:
        """The three phases as three tasks of one ansible-playbook run over the netns connection."""
        lab = self.lab
        pb_dir = os.path.join(lab.tmp, "ansible")
        os.makedirs(os.path.join(pb_dir, "callbacks"), exist_ok=True)
        with open(os.path.join(pb_dir, "callbacks", "cnm_bench_timer.py"), "w") as handle:
            handle.write(CALLBACK_PLUGIN)
        with open(os.path.join(pb_dir, "inventory.json"), "w") as handle:
            json.dump(
                {
                    "all": {
                        "hosts": {
                            "benchhost": {
                                "ansible_connection": "cnm.network.netns",
                                "ansible_netns_name": lab.host,
                                "ansible_python_interpreter": sys.executable,
                            }
                        }
                    }
                },
                handle,
            )
        with open(os.path.join(pb_dir, "endpoints.json"), "w") as handle:
            json.dump({"bench_endpoints": [{"netns": s} for s in lab.sandboxes]}, handle)
        with open(os.path.join(pb_dir, "ansible.cfg"), "w") as handle:
            handle.write(
                "[defaults]\ninventory = inventory.json\ncollections_path = %s\ncallback_plugins = callbacks\n"
                "callbacks_enabled = cnm_bench_timer\nstdout_callback = default\ngathering = explicit\n"
                "retry_files_enabled = False\nlocal_tmp = %s/local-tmp\n[connection]\npipelining = True\n"
                % (self.collections, pb_dir)
            )
        task = (
            "    - name: %s\n      cnm.network.cnm_endpoint:\n        network: "
            + NETWORK
            + "\n        state: %s\n        endpoints: \"{{ bench_endpoints }}\"\n"
        )
        plays = {
            "empty.yml": "- hosts: benchhost\n  gather_facts: false\n  vars_files: [endpoints.json]\n  tasks: []\n",
            "attach.yml": "- hosts: benchhost\n  gather_facts: false\n  vars_files: [endpoints.json]\n  tasks:\n"
            + task % ("add", "present")
            + task % ("rerun", "present")
            + task % ("delete", "absent"),
        }
        for name, text in plays.items():
            with open(os.path.join(pb_dir, name), "w") as handle:
                handle.write(text)
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=os.path.join(pb_dir, "ansible.cfg"),
            CNM_BENCH_TIMINGS=os.path.join(pb_dir, "timings.json"),
        )
        for key in ("PYTHONPATH", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_CALLBACKS_ENABLED", "ANSIBLE_STDOUT_CALLBACK"):
            env.pop(key, None)
        playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
        empty_seconds = timed([playbook, "empty.yml"], env=env, cwd=pb_dir)[0]
        seconds, proc = timed([playbook, "attach.yml"], env=env, cwd=pb_dir, check=False)
        with open(env["CNM_BENCH_TIMINGS"]) as handle:
            tasks = json.load(handle)
        bad = [t for t in tasks if t["status"] != "ok"]
        if proc.returncode != 0 or bad or [t["changed"] for t in tasks] != [True, False, True]:
            raise BenchError("ansible-playbook: rc %d, tasks %s\n%s" % (proc.returncode, tasks, proc.stdout[-3000:]))
        lab.assert_clean("cnm task")
        out = {t["name"]: t["seconds"] for t in tasks}
        out.update(playbook_wall=seconds, empty_playbook_wall=empty_seconds, wall_minus_empty=seconds - empty_seconds)
        return out


# ---------------------------------------------------------------- b. CNI bridge plugin
def bench_cni(lab: Lab) -> dict:
    data_dir = os.path.join(lab.tmp, "cni-ipam")
    out_dir = os.path.join(lab.tmp, "cni-out")
    os.makedirs(out_dir, exist_ok=True)
    config = {
        "cniVersion": "1.0.0",
        "name": "cnibench",
        "type": "bridge",
        "bridge": "cni-bench0",
        "isGateway": True,
        "ipMasq": False,
        "ipam": {
            "type": "host-local",
            "subnet": "%d.%d.0.0/16" % CNI_SUBNET,
            "dataDir": data_dir,
            "routes": [{"dst": "0.0.0.0/0"}],
        },  # the default route that cnm and the ip loop add too
    }
    conf = os.path.join(lab.tmp, "cni.json")
    with open(conf, "w") as handle:
        json.dump(config, handle)
    env = "CNI_PATH=%s CNI_IFNAME=eth0" % CNI_PATH

    def calls(command: str, conf_of) -> str:
        return "".join(
            "CNI_COMMAND=%s CNI_CONTAINERID=%s CNI_NETNS=/run/netns/%s %s %s/bridge < %s > %s/%s-%d.json\n"
            % (command, ns, ns, env, CNI_PATH, conf_of(i), out_dir, command.lower(), i)
            for i, ns in enumerate(lab.sandboxes)
        )

    add = lab.run_script(lab.script("cni-add.sh", calls("ADD", lambda i: conf)))
    lab.assert_attached("CNI bridge", "cni-bench0", CNI_SUBNET)
    # CHECK (the CNI verb for "is it still as ADD left it") needs each ADD's result as prevResult.
    for i in range(lab.size):
        with open(os.path.join(out_dir, "add-%d.json" % i)) as handle:
            previous = json.load(handle)
        with open(os.path.join(lab.tmp, "cni-check-%d.json" % i), "w") as handle:
            json.dump(dict(config, prevResult=previous), handle)
    check = lab.run_script(
        lab.script("cni-check.sh", calls("CHECK", lambda i: os.path.join(lab.tmp, "cni-check-%d.json" % i)))
    )
    delete = lab.run_script(lab.script("cni-del.sh", calls("DEL", lambda i: conf)))
    lab.assert_clean("CNI bridge")
    return {"add": add, "rerun": check, "delete": delete}


# ---------------------------------------------------------------- c. ip commands
def bench_ip(lab: Lab) -> dict:
    bridge, gateway = "ipb-bench0", "%d.%d.0.1" % IP_SUBNET
    if (
        run(in_ns(lab.host) + ["ip", "link", "show", bridge], check=False).returncode != 0
    ):  # made once, kept across rounds
        make = f"ip link add {bridge} type bridge && ip addr add {gateway}/16 dev {bridge} && ip link set {bridge} up"
        run(in_ns(lab.host) + ["bash", "-ec", make])
    body = []
    for i, ns in enumerate(lab.sandboxes):
        ip = address(IP_SUBNET, i)
        body.append("ip link add ipb%d type veth peer name eth0 address %s netns %s\n" % (i, mac_of(ip), ns))
        body.append("ip link set ipb%d master %s up\n" % (i, bridge))
        body.append("ip -n %s addr add %s/16 dev eth0\n" % (ns, ip))
        body.append("ip -n %s link set eth0 up\n" % ns)
        body.append("ip -n %s route add default via %s\n" % (ns, gateway))
    add = lab.run_script(lab.script("ip-add.sh", "".join(body)))
    lab.assert_attached("ip shell", bridge, IP_SUBNET)
    delete = lab.run_script(lab.script("ip-del.sh", "".join("ip link del ipb%d\n" % i for i in range(lab.size))))
    lab.assert_clean("ip shell")
    return {"add": add, "rerun": None, "delete": delete}


# ---------------------------------------------------------------- d. the kernel floor (pyroute2)
def bench_floor(lab: Lab, variant: str) -> dict:
    spec_path = os.path.join(lab.tmp, "floor-%s.json" % variant)
    out_path = os.path.join(lab.tmp, "floor-%s-out.json" % variant)
    with open(spec_path, "w") as handle:
        json.dump({"variant": variant, "sandboxes": lab.sandboxes}, handle)
    run(in_ns(lab.host) + [sys.executable, os.path.abspath(__file__), "_floor", spec_path, out_path])
    with open(out_path) as handle:
        result = json.load(handle)
    lab.assert_clean(variant)
    return result


def floor_worker(spec_path: str, out_path: str) -> None:
    """Runs inside the host namespace: the least netlink work for the same attachments."""
    from pyroute2 import IPRoute

    with open(spec_path) as handle:
        spec = json.load(handle)
    full = spec["variant"] == "pyroute2 min"
    bridge, gateway = "flb-bench0", "%d.%d.0.1" % FLOOR_SUBNET
    ipr = IPRoute()
    ipr.link("add", ifname=bridge, kind="bridge")
    bridge_index = ipr.link_lookup(ifname=bridge)[0]
    ipr.addr("add", index=bridge_index, address=gateway, prefixlen=16)
    ipr.link("set", index=bridge_index, state="up")
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    fds = [os.open("/run/netns/%s" % ns, os.O_RDONLY | os.O_CLOEXEC) for ns in spec["sandboxes"]]
    result = {}

    start = time.perf_counter()
    for i, fd in enumerate(fds):
        ip = address(FLOOR_SUBNET, i)
        ipr.link(
            "add",
            ifname="flb%d" % i,
            kind="veth",
            master=bridge_index,
            group=FLOOR_GROUP,
            state="up",
            peer={"ifname": "eth0", "net_ns_fd": fd, "address": mac_of(ip)},
        )
        if full:
            os.setns(fd, CLONE_NEWNET)
            inner = IPRoute()
            os.setns(home, CLONE_NEWNET)
            index = inner.link("get", ifname="eth0")[0]["index"]
            inner.addr("add", index=index, address=ip, prefixlen=16)
            inner.link("set", index=index, state="up")
            inner.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)
            inner.close()
    result["add"] = time.perf_counter() - start

    if full:  # what a rerun must read at least: the host's links, and each sandbox's links, addresses, routes
        start = time.perf_counter()
        ipr.get_links()
        for fd in fds:
            os.setns(fd, CLONE_NEWNET)
            inner = IPRoute()
            os.setns(home, CLONE_NEWNET)
            inner.get_links()
            inner.get_addr()
            inner.get_routes(family=socket.AF_INET, table=254)
            inner.get_routes(family=socket.AF_INET6, table=254)
            inner.close()
        result["rerun"] = time.perf_counter() - start
    else:
        result["rerun"] = None

    start = time.perf_counter()
    if full:
        indexes = [
            m["index"]
            for m in ipr.get_links()
            if (m.get_attr("IFLA_IFNAME") or "").startswith("flb") and m.get_attr("IFLA_IFNAME") != bridge
        ]
        for index in indexes:
            ipr.link("del", index=index)
    else:
        ipr.link("del", group=FLOOR_GROUP)
    result["delete"] = time.perf_counter() - start
    ipr.link("del", index=bridge_index)
    ipr.close()
    with open(out_path, "w") as handle:
        json.dump(result, handle)


# ---------------------------------------------------------------- driver
def bench_size(size: int, repeat: int, workdir: str, collections: str, profile: bool) -> dict:
    """All tools at one N, ``repeat`` rounds (tools interleaved, so load from elsewhere spreads evenly); medians."""
    lab = Lab(size, workdir)
    samples = Samples()
    keep = samples.keep
    try:
        say("N=%d: creating %s and %d sandboxes %s-s0..s%d (untimed)" % (size, lab.host, size, lab.prefix, size - 1))
        lab.create()
        cnm = Cnm(lab, collections)
        cnm.make_network()
        for round_ in range(1, repeat + 1):
            say("N=%d round %d/%d: cnm_endpoint module runs" % (size, round_, repeat))
            runs = cnm.phases()
            keep("cnm module", {phase: r["main"] for phase, r in runs.items()})
            keep("cnm process", {phase: r["process"] for phase, r in runs.items()})
            keep("cnm module import", {phase: r["import"] for phase, r in runs.items()})
            say("N=%d round %d/%d: ansible-playbook over the netns connection" % (size, round_, repeat))
            task = cnm.playbook()
            keep("cnm task", {phase: task[phase] for phase in ("add", "rerun", "delete")})
            keep("ansible playbook", {k: task[k] for k in ("playbook_wall", "empty_playbook_wall", "wall_minus_empty")})
            say("N=%d round %d/%d: CNI bridge plugin, ip shell loop, pyroute2 floors" % (size, round_, repeat))
            keep("CNI bridge", bench_cni(lab))
            keep("ip shell", bench_ip(lab))
            keep("kernel floor", bench_floor(lab, "kernel floor"))
            keep("pyroute2 min", bench_floor(lab, "pyroute2 min"))
        results: dict = samples.medians()
        results["samples"] = samples
        if profile:
            say("N=%d: cnm_endpoint under cProfile" % size)
            results["profile"] = profile_phases(cnm.phases, os.path.join(RESULTS_DIR, "profile-%d" % size), 25)[1]
    finally:
        lab.destroy()
    return results


def table(all_results: dict) -> str:
    lines = [phase_header(13, "target / reference at N=200 (add rerun delete)")]
    for size, results in all_results.items():
        for tool, row in measured(results, TOOLS):
            note = ""
            t, r = issue_figures(size, tool, TARGETS_200, REFERENCE_200)
            if t:
                marks = [
                    "%s%.1f%s"
                    % (
                        "<=" if tool == "cnm module" else "<",
                        t[p],
                        " ok" if row[p] is not None and row[p] <= t[p] else " MISS",
                    )
                    for p in PHASES
                ]
                note = "target " + " / ".join(marks)
            elif r:
                note = "issue measured %.2f / - / %.2f" % (r["add"], r["delete"])
            lines.append(phase_line(size, 13, tool, row, note))
        ratios = []
        for cnm_tool in ("cnm module", "cnm task"):
            for other in ("CNI bridge", "ip shell"):
                a, b = results.get(cnm_tool), results.get(other)
                if a and b:
                    ratios.append(
                        "%s/%s add %.2fx delete %.2fx"
                        % (cnm_tool, other, a["add"] / b["add"], a["delete"] / b["delete"])
                    )
        for ratio in ratios:
            lines.append("%5d    ratio %s" % (size, ratio))
        extra = results.get("ansible playbook")
        if extra:
            lines.append(
                "%5d    ansible-playbook wall %.3f s (3 tasks), empty playbook %.3f s, difference %.3f s"
                % (size, extra["playbook_wall"], extra["empty_playbook_wall"], extra["wall_minus_empty"])
            )
        lines += process_overhead(size, results)
    return "\n".join(lines)


def main() -> int:
    if worker_main():
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_floor":
        floor_worker(sys.argv[2], sys.argv[3])
        return 0
    parser = sizes_parser(
        "Time attaching N sandboxes: cnm_endpoint vs the CNI bridge plugin vs ip vs the kernel floor.",
        "sandboxes",
        [50, 200],
        "cnm_endpoint",
    )
    options = parser.parse_args()
    check_common(parser, options, 60000)
    status, all_results = each_size(PREFIX, "cnm-bench-", options, bench_size)
    if all_results:
        print(table(all_results))
        for size, results in all_results.items():
            if "profile" in results:
                with open(results["profile"]["add"]) as handle:
                    print(
                        "\ncProfile of cnm_endpoint main(), N=%d, cold attach (top 25 by cumulative time; all phases "
                        "in %s):" % (size, RESULTS_DIR)
                    )
                    print(handle.read().split("---- by own time ----")[0])
        if options.json:
            meta = {
                "code": code_meta(),
                "machine": machine_meta(load_average_at_end=os.getloadavg()),
                "repeat": options.repeat,
                "targets_200": TARGETS_200,
                "reference_200": REFERENCE_200,
                "date": now(),
            }
            write_json(options.json, dict(meta, results={str(k): v for k, v in all_results.items()}))
    return status


if __name__ == "__main__":
    sys.exit(main())
