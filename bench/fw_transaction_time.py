#!/usr/bin/env python
# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the firewall transaction of cnm_port_publish with N published ports (before/after a change).

    python bench/fw_transaction_time.py --sizes 200 1000 [--repeat 3] [--code DIR] [--json out.json]

For each N, in throwaway namespaces with a fresh prefix ``cnmf<hex>`` (created untimed): the host ``-host``
with the network ``bench`` (10.89.0.0/16, cnm_bridge) and one endpoint ``-s0`` (cnm_endpoint), a TCP server
on port 80 of the endpoint. Then, one cnm_port_publish run per phase, inside the host as Ansible runs it
(JSON args file), with ``ports`` = ["10000:80", ... N of them]:

  add      the N ports at once (cold)
  rerun    the same (must report changed: false)
  one more N+1 ports (the N already there)
  remove   ``state: absent`` (every port of the endpoint)

Timed: ``main()`` of the module (imported before the clock starts) and, inside it, the nft part: the
time spent in ``firewall.Nft.apply`` (``nft -j -f``, the one transaction) and in ``Nft.listing``
(``nft -j list ruleset``), measured by wrapping those two methods in the worker process. ``--code``
names the checkout whose plugins are run (default: this one), so that one copy of this script times
another tree (e.g. ``git archive main | tar -x -C /tmp/main``). Untimed checks: ``changed`` of each
run, and real TCP traffic to the last port through the host's loopback (answers after add and one
more, not after remove). Everything it creates is removed in ``finally``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (  # noqa: E402
    REPO,
    BenchError,
    check_common,
    collections_root,
    destroy_lab,
    fmt,
    guarded,
    in_ns,
    load_average,
    median,
    run,
    run_module,
    say,
    sizes_parser,
    store_dir,
    worker_main,
    write_json,
)

PREFIX = "cnmf"
NETWORK, SUBNET = "bench", "10.89.0.0/16"
FIRST_PORT = 10000
PHASES = ("add", "rerun", "one_more", "remove")
SERVER = (
    "import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(('0.0.0.0',80));"
    "s.listen(16)\n"
    "while True:\n    c,a=s.accept();c.sendall(b'ok');c.close()\n"
)
PROBE = (
    "import socket,sys\ntry:\n    "
    "print(socket.create_connection(('127.0.0.1',int(sys.argv[1])),timeout=2).recv(8).decode())\n"
    "except OSError:\n    print('unreachable')\n"
)


def wrap_nft() -> dict:
    """Inside the worker, before the clock starts: wrap the nft calls; the time they take is added up here."""
    from ansible_collections.cnm.network.plugins.module_utils import firewall

    spent = {"nft_apply": 0.0, "nft_list": 0.0, "nft_calls": 0}

    def clocked(method, key):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start
                spent["nft_calls"] += 1

        return wrapper

    firewall.Nft.apply = clocked(firewall.Nft.apply, "nft_apply")
    firewall.Nft.listing = clocked(firewall.Nft.listing, "nft_list")
    return spent


class Lab:
    def __init__(self, size: int, workdir: str, collections: str) -> None:
        self.size = size
        self.prefix = PREFIX + secrets.token_hex(3)
        self.host, self.sandbox = self.prefix + "-host", self.prefix + "-s0"
        self.tmp = tempfile.mkdtemp(prefix=self.prefix + "-", dir=workdir)
        self.env = dict(os.environ, PYTHONPATH=collections)
        self.store_dir = None
        self.server = None

    def create(self) -> None:
        run(["ip", "netns", "add", self.host])
        self.store_dir = store_dir(self.host)
        run(["ip", "netns", "add", self.sandbox])
        run(["bash", "-ec", "ip -n %s link set lo up; ip -n %s link set lo up" % (self.host, self.sandbox)])
        self.module("cnm_bridge", {"name": NETWORK, "subnet": SUBNET})
        self.module("cnm_endpoint", {"network": NETWORK, "netns": self.sandbox})
        self.server = subprocess.Popen(
            in_ns(self.sandbox) + [sys.executable, "-c", SERVER], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def module(self, name: str, args: dict) -> dict:
        return run_module(os.path.abspath(__file__), self.host, name, args, self.tmp, self.env)

    def answers(self, port: int) -> bool:
        for _attempt in range(20):  # the server may still be starting
            if run(in_ns(self.host) + [sys.executable, "-c", PROBE, str(port)]).stdout.strip() == "ok":
                return True
        return False

    def phases(self) -> dict:
        ports = ["%d:80" % (FIRST_PORT + i) for i in range(self.size)]
        base = {"network": NETWORK, "netns": self.sandbox}
        out = {}
        last, extra = FIRST_PORT + self.size - 1, FIRST_PORT + self.size
        for phase, args, changed in (
            ("add", dict(base, ports=ports), True),
            ("rerun", dict(base, ports=ports), False),
            ("one_more", dict(base, ports=ports + ["%d:80" % extra]), True),
            ("remove", dict(base, state="absent"), True),
        ):
            timing = self.module("cnm_port_publish", args)
            if timing["result"].get("changed") is not changed:
                raise BenchError(
                    "%s with N=%d reported changed=%s" % (phase, self.size, timing["result"].get("changed"))
                )
            out[phase] = {key: timing[key] for key in ("main", "process", "nft_apply", "nft_list", "nft_calls")}
            if phase in ("add", "one_more") and not self.answers(extra if phase == "one_more" else last):
                raise BenchError("after %s, N=%d: the last published port does not answer" % (phase, self.size))
        if run(in_ns(self.host) + [sys.executable, "-c", PROBE, str(last)]).stdout.strip() != "unreachable":
            raise BenchError("after remove, N=%d: a removed port still answers" % self.size)
        return out

    def stop_server(self) -> None:
        if self.server is not None:
            self.server.kill()
            self.server.wait()

    def destroy(self) -> None:
        destroy_lab([self.sandbox, self.host], [self.store_dir], self.tmp, self.stop_server)


def table(results: dict, code: str) -> str:
    lines = [
        "firewall transaction of cnm_port_publish, code: %s (medians in seconds)" % code,
        "%6s %-9s %8s %8s %9s %8s %6s" % ("N", "phase", "main", "process", "nft -j -f", "nft list", "calls"),
    ]
    for size, samples in results.items():
        for phase in PHASES:
            rows = [sample[phase] for sample in samples]
            times = [fmt(median([r[name] for r in rows])) for name in ("main", "process", "nft_apply", "nft_list")]
            lines.append("%6d %-9s %8s %8s %9s %8s %6d" % ((size, phase) + tuple(times) + (rows[0]["nft_calls"],)))
    return "\n".join(lines)


def main() -> int:
    if worker_main(wrap_nft):
        return 0
    parser = sizes_parser(
        "Time cnm_port_publish's firewall transaction with N published ports.", "published ports", [200, 1000]
    )
    parser.add_argument("--code", default=REPO, help="the checkout whose plugins run (default: this one)")
    parser.add_argument("--json", help="also write every sample as JSON to this file")
    options = parser.parse_args()
    check_common(parser, options, 50000, "sizes must be between 1 and 50000, --repeat at least 1")
    code = os.path.abspath(options.code)
    if not os.path.isfile(os.path.join(code, "plugins", "module_utils", "firewall.py")):
        parser.error("--code %s is not a checkout of the collection" % code)
    results: dict = {}
    load_start = load_average()

    def work(workdir: str) -> None:
        root = collections_root(workdir, code)
        for size in options.sizes:
            for round_number in range(options.repeat):
                lab = Lab(size, workdir, root)
                try:
                    lab.create()
                    results.setdefault(size, []).append(lab.phases())
                finally:
                    lab.destroy()
                say("N=%d round %d done" % (size, round_number + 1))

    status = guarded(PREFIX, work, "cnm-bench-fw-", note_others=False, links=False)
    if results:
        print(table(results, code))
        print("load average: start %s, end %s" % (load_start, load_average()))
        if options.json:
            write_json(
                options.json,
                {
                    "code": code,
                    "load": [load_start, load_average()],
                    "results": {str(k): v for k, v in results.items()},
                },
            )
    return status


if __name__ == "__main__":
    sys.exit(main())
