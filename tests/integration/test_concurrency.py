"""Two, then four ``ansible-playbook`` runs started at the same time against ONE lab host (issue 11).

Run ``i`` declares its own network ``own<i>`` and two sandboxes ``r<i>a`` and ``r<i>b`` on it, attaches both to the
network ``shared`` that every run declares (dual-stack, so it holds the sandboxes' default routes), and publishes one
port of each on ``shared`` (5000 + 10 i and 5001 + 10 i, all addresses). The modules serialise on the host's lock;
nothing else coordinates the runs. Afterwards: every run succeeded; no two endpoints (read from the sandboxes' own
interfaces) share an address or a MAC; every endpoint pings every other one on ``shared``; every published port
answers a TCP connect from the lab's LAN machine; ``cnm_info`` reports the whole set and no drift; and a second round
of the same runs, again at the same time, reports changed=0 for all of them.
"""

from __future__ import annotations

import concurrent.futures
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import own_drift, pings, sh
from test_lab import assert_ok, recap_changed, run_playbook
from test_playbooks import lab_of
from test_ports import SERVE, wait_answer

HOST_ADDRESS = "192.0.2.11"  # h1's eth0 on the lab's underlay, where the LAN machine reaches it
SHARED = dict(name="shared", subnet="172.30.0.0/24", ipv6_subnet="fd00:77::/64")


def port_of(run: int, member: str) -> int:
    return 5000 + 10 * run + (member == "b")


def playbook(prefix: str, run: int) -> str:
    own = dict(name="own%d" % run, subnet="10.%d.0.0/24" % (40 + run))
    sandboxes = ["%s-h1-r%d%s" % (prefix, run, member) for member in "ab"]
    tasks = [
        dict(name="Own network", **{"cnm.network.cnm_bridge": own}),
        dict(name="Shared network", **{"cnm.network.cnm_bridge": SHARED}),
        dict(
            name="Endpoints",
            **{
                "cnm.network.cnm_endpoint": dict(
                    endpoints=[
                        dict(network=network, netns=netns) for network in (own["name"], "shared") for netns in sandboxes
                    ]
                )
            },
        ),
        dict(
            name="Ports",
            **{
                "cnm.network.cnm_port_publish": dict(
                    network="shared",
                    endpoints=[
                        dict(netns=netns, ports=["%d:80" % port_of(run, member)])
                        for netns, member in zip(sandboxes, "ab", strict=True)
                    ],
                )
            },
        ),
    ]
    return json.dumps([dict(name="Run %d" % run, hosts="h1", gather_facts=False, tasks=tasks)], indent=1)


def at_once(tmp_path: Path, prefix: str, inventory: Path, env: dict, runs: int) -> list:
    """Start the runs' playbooks together; their results, in run order. Each run was still going when the last one
    started (they overlapped)."""
    books = []
    for run in range(1, runs + 1):
        books.append(tmp_path / ("run%d.yml" % run))
        books[-1].write_text(playbook(prefix, run))

    def timed(book: Path) -> tuple:
        start = time.monotonic()
        result = run_playbook(book, str(inventory), env)
        return start, time.monotonic(), result

    with concurrent.futures.ThreadPoolExecutor(max_workers=runs) as pool:
        done = list(pool.map(timed, books))
    assert max(start for start, _end, _result in done) < min(end for _start, end, _result in done), done
    return [result for _start, _end, result in done]


def info(tmp_path: Path, inventory: Path, env: dict) -> dict:
    """cnm_info of h1, run as a play."""
    out = tmp_path / "info.json"
    book = tmp_path / "info.yml"
    book.write_text(
        json.dumps(
            [
                dict(
                    hosts="h1",
                    gather_facts=False,
                    tasks=[
                        dict(name="Report", register="report", **{"cnm.network.cnm_info": {}}),
                        dict(
                            name="Keep",
                            delegate_to="localhost",
                            **{
                                "ansible.builtin.copy": dict(
                                    content="{{ report | to_json }}", dest=str(out), mode="0600"
                                )
                            },
                        ),
                    ],
                )
            ]
        )
    )
    assert_ok(run_playbook(book, str(inventory), env))
    return json.loads(out.read_text())


def interfaces(netns: str) -> list:
    """(ifname, MAC, [global addresses]) of every interface of a sandbox but lo."""
    links = json.loads(sh("ip -j addr show", netns=netns).stdout)
    found = []
    for link in links:
        if link["ifname"] != "lo":
            addresses = sorted(a["local"] for a in link.get("addr_info", []) if a["scope"] == "global")
            found.append((link["ifname"], link["address"], addresses))
    return found


@pytest.mark.parametrize("runs", [2, 4])
def test_concurrent_playbooks_on_one_host(tmp_path, runs):
    servers = []
    with lab_of(tmp_path, 1) as (prefix, inventory, env):
        try:
            first = at_once(tmp_path, prefix, inventory, env, runs)
            for result in first:
                assert_ok(result)
            changed = sorted(recap_changed(result)["h1"] for result in first)
            assert changed == [3] * (runs - 1) + [4], changed  # whichever run comes first makes shared
            sandboxes = {
                "%s-h1-r%d%s" % (prefix, run, member): (run, member) for run in range(1, runs + 1) for member in "ab"
            }

            # no address and no MAC twice, read from the sandboxes themselves
            found = {netns: interfaces(netns) for netns in sandboxes}
            assert all(len(found[netns]) == 2 for netns in sandboxes), found  # own<i> and shared
            macs = [mac for links in found.values() for _name, mac, _addresses in links]
            addresses = [address for links in found.values() for _n, _m, listed in links for address in listed]
            assert len(macs) == len(set(macs)) == 2 * len(sandboxes), found
            assert len(addresses) == len(set(addresses)) == 3 * len(sandboxes), found  # own: IPv4; shared: IPv4, IPv6

            report = info(tmp_path, inventory, env)
            assert own_drift(report["drift"], prefix) == [], report["drift"]
            names = ["shared"] + ["own%d" % run for run in range(1, runs + 1)]
            assert sorted(net["name"] for net in report["networks"]) == sorted(names)
            assert len(report["ports"]) == len(sandboxes), report["ports"]
            shared = {
                ep["sandbox"].split(":", 1)[1]: ep["ipv4_address"]
                for ep in report["endpoints"]
                if ep["network"] == "shared"
            }
            assert sorted(shared) == sorted(sandboxes) and len(report["endpoints"]) == 2 * len(sandboxes)

            unreachable = [(a, b) for a in shared for b in shared if a != b and not pings(a, shared[b])]
            assert unreachable == []

            lan = prefix + "-lan"
            for netns in sandboxes:
                argv = ["nsenter", "--net=/run/netns/%s" % netns, "--", sys.executable, "-c", SERVE, "tcp", "80", netns]
                servers.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            answers = {
                netns: wait_answer(lan, "tcp", HOST_ADDRESS, port_of(run, member), netns)
                for netns, (run, member) in sandboxes.items()
            }
            assert answers == {netns: netns for netns in sandboxes}

            again = at_once(tmp_path, prefix, inventory, env, runs)
            for result in again:
                assert_ok(result)
            assert [recap_changed(result) for result in again] == [{"h1": 0}] * runs
        finally:
            for server in servers:
                server.kill()
                server.wait()
