"""The main job (playbooks/demo.yml) and the overlay (playbooks/overlay.yml) on a real lab through ansible-playbook
and the netns connection.

Covers what only a real playbook run shows: check mode on a fresh host, idempotence of the whole
scenario, removal, and the modules under an interpreter with nothing but the standard library; the
overlay role across three hosts, under --limit, in serial batches and with a host pruned from the group.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import wait_for
from test_lab import REPO, ansible_env, assert_ok, lab_namespaces, recap_changed, run_playbook

PLAYBOOKS = REPO / "playbooks"


@contextlib.contextmanager
def lab_of(tmp_path: Path, size: int):
    """A lab of ``size`` namespace hosts made by the lab playbooks; removed even when the test fails."""
    prefix = "tp" + secrets.token_hex(3)
    inventory = tmp_path / "lab.yml"
    env = ansible_env(tmp_path)
    try:
        assert_ok(
            run_playbook(
                PLAYBOOKS / "lab_up.yml",
                "localhost,",
                env,
                "-e",
                "lab_prefix=" + prefix,
                "-e",
                "lab_size=%d" % size,
                "-e",
                "lab_inventory=" + str(inventory),
            )
        )
        yield prefix, inventory, env
    finally:
        run_playbook(
            PLAYBOOKS / "lab_down.yml",
            "localhost,",
            env,
            "-e",
            "lab_prefix=" + prefix,
            "-e",
            "lab_inventory=" + str(inventory),
        )
        for name in lab_namespaces(prefix):  # what lab_down left, had it failed: processes (resolvers) first
            subprocess.run("ip netns pids %s | xargs -r kill -9" % name, shell=True, check=False)
            subprocess.run(["ip", "netns", "del", name], check=False)
            shutil.rmtree("/etc/netns/%s" % name, ignore_errors=True)


@pytest.fixture
def lab(tmp_path: Path):
    with lab_of(tmp_path, 1) as (prefix, inventory, env):
        yield prefix, str(inventory), env


def test_demo_playbook_checks_converges_and_is_idempotent(lab):
    prefix, inventory, env = lab
    check = run_playbook(PLAYBOOKS / "demo.yml", inventory, env, "--check", "--diff")
    assert_ok(check)
    assert recap_changed(check) == {"h1": 7}
    assert lab_namespaces(prefix) == sorted(
        [prefix + "-h1", prefix + "-lan", prefix + "-ul"]
    )  # check mode made nothing

    first = run_playbook(PLAYBOOKS / "demo.yml", inventory, env)
    assert_ok(first)
    assert recap_changed(first) == {"h1": 7}
    output = " ".join(first.stdout.split())  # the callback folds long lines
    assert (
        "-> 172.30.0.3: reachable (expected reachable)" in output
        and "-> 172.30.0.2: unreachable (expected unreachable)" in output
    )
    assert "(published web1:80): HTTP 200" in output
    assert "reached from the LAN machine and from the host through mvs-" in output  # macvlan with host access
    assert "drift: 0" in output  # cnm_info
    again = run_playbook(PLAYBOOKS / "demo.yml", inventory, env)
    assert_ok(again)
    assert recap_changed(again) == {"h1": 0}

    removed = run_playbook(PLAYBOOKS / "demo.yml", inventory, env, "-e", "demo_state=absent")
    assert_ok(removed)
    assert lab_namespaces(prefix) == sorted([prefix + "-h1", prefix + "-lan", prefix + "-ul"])
    links = subprocess.run(
        ["ip", "-n", prefix + "-h1", "-br", "link"], capture_output=True, text=True, check=True
    ).stdout
    assert sorted(line.split()[0].split("@")[0] for line in links.splitlines()) == ["eth0", "lo"]


def test_modules_run_under_a_python_with_nothing_but_the_standard_library(lab, tmp_path: Path):
    """No netlink library on the managed node: a bare interpreter (system site-packages hidden) runs the modules."""
    prefix, inventory, env = lab
    bare = tmp_path / "bare"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(bare)], check=True)
    playbook = tmp_path / "bare.yml"
    playbook.write_text(
        "- hosts: cnm_lab\n  gather_facts: false\n  tasks:\n"
        "    - cnm.network.cnm_bridge: {name: rs, subnet: 10.77.0.0/24}\n"
        "    - cnm.network.cnm_endpoint: {network: rs, netns: %s-h1-rs1, delete_netns: true}\n"
        "    - cnm.network.cnm_endpoint: {network: rs, netns: %s-h1-rs1, delete_netns: true, state: absent}\n"
        "    - cnm.network.cnm_bridge: {name: rs, state: absent}\n" % (prefix, prefix)
    )
    interpreter = "ansible_python_interpreter=" + str(bare / "bin" / "python")
    first = run_playbook(playbook, inventory, env, "-e", interpreter)
    assert_ok(first)
    assert recap_changed(first) == {"h1": 4}


@pytest.fixture
def lab3(tmp_path: Path):
    with lab_of(tmp_path, 3) as made:
        yield made


def fdb_vteps(prefix: str, host: str) -> list:
    out = subprocess.run(
        ["ip", "netns", "exec", "%s-%s" % (prefix, host), "bridge", "fdb", "show", "dev", "vx-ov0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({line.split(" dst ")[1].split()[0] for line in out.splitlines() if " dst " in line})


def test_overlay_role_across_three_hosts_with_limit_and_pruning(lab3, tmp_path: Path):
    prefix, inventory, env = lab3
    check = run_playbook(PLAYBOOKS / "overlay.yml", str(inventory), env, "--check")
    assert_ok(check)
    first = run_playbook(PLAYBOOKS / "overlay.yml", str(inventory), env)
    assert_ok(first)  # includes the role's own check
    # The bounded check: each host's app1 pinged the lowest endpoint of each other host (3 hosts: the next 3 of
    # the ring are both others), and nothing else.
    lowest = {host: min_address(prefix, host) for host in ("h1", "h2", "h3")}
    assert checked_pairs(first.stdout, prefix) == {
        (source, lowest[target]) for source in lowest for target in lowest if target != source
    }
    # Names across the hosts (cnm_overlay_dns): h1's endpoint resolves h3's by its namespace's name, through
    # h1's resolver and the resolv.conf ip netns exec mounts; NAME.NETWORK too.
    for name in ("%s-h3-app2" % prefix, "%s-h3-app2.ov0" % prefix):
        found = subprocess.run(
            ["ip", "netns", "exec", "%s-h1-app1" % prefix, "getent", "ahostsv4", name],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert found[0] == endpoint_address("%s-h3-app2" % prefix), found
    again = run_playbook(PLAYBOOKS / "overlay.yml", str(inventory), env)
    assert_ok(again)
    assert recap_changed(again) == {"h1": 0, "h2": 0, "h3": 0}
    # Nothing changed: the peers are in force already and no host needs the check, so neither runs.
    assert checked_pairs(again.stdout, prefix) == set()
    peers_task = again.stdout.split("TASK [cnm.network.cnm_overlay : Make the peers exact", 1)[1].split("TASK [", 1)[0]
    assert sorted(re.findall(r"^skipping: \[(h\d)\]", peers_task, re.M)) == ["h1", "h2", "h3"], peers_task
    # As a health check of the overlay in place (cnm_overlay_check_unchanged), with the whole matrix
    full = run_playbook(
        PLAYBOOKS / "overlay.yml",
        str(inventory),
        env,
        "-e",
        "cnm_overlay_check_full=true",
        "-e",
        "cnm_overlay_check_unchanged=true",
    )
    assert_ok(full)  # every local endpoint (2 per host) pinged every remote one (4 per host)
    assert full.stdout.count(": reachable'") == 3 * 2 * 4
    # The check fails when a host is not reached: h3's lowest endpoint drops pings (a rule of the test's own in
    # that sandbox, which no module repairs); h1 and h2 report it, and the play fails.
    sandbox = [ns for ns in ("%s-h3-app1" % prefix, "%s-h3-app2" % prefix) if endpoint_address(ns) == lowest["h3"]][0]
    drop = (
        "table inet cnmtest {\nchain input {\ntype filter hook input priority 0;\nicmp type echo-request drop\n}\n}\n"
    )
    subprocess.run(["ip", "netns", "exec", sandbox, "nft", "-f", "-"], input=drop, text=True, check=True)
    try:
        blocked = run_playbook(PLAYBOOKS / "overlay.yml", str(inventory), env, "-e", "cnm_overlay_check_unchanged=true")
    finally:
        subprocess.run(["ip", "netns", "exec", sandbox, "nft", "delete table inet cnmtest"], check=True)
    assert blocked.returncode != 0
    for source in ("h1", "h2"):
        assert "%s-%s-app1 -> %s: UNREACHABLE" % (prefix, source, lowest["h3"]) in blocked.stdout
    limited = run_playbook(PLAYBOOKS / "overlay.yml", str(inventory), env, "--limit", "h1,h2")
    assert_ok(limited)
    assert recap_changed(limited) == {"h1": 0, "h2": 0}  # h3, outside the limit, keeps its entries
    assert fdb_vteps(prefix, "h1") == ["192.0.2.12", "192.0.2.13"]
    # h3 leaves the group (an inventory without it): a run over the others prunes it
    two = tmp_path / "two.yml"
    two.write_text(inventory.read_text().split("    h3:\n", maxsplit=1)[0])
    prune = run_playbook(PLAYBOOKS / "overlay.yml", str(two), env)
    assert_ok(prune)
    assert fdb_vteps(prefix, "h1") == ["192.0.2.12"] and fdb_vteps(prefix, "h2") == ["192.0.2.11"]


def min_address(prefix: str, host: str) -> str:
    """The lowest address of a lab host's two overlay endpoints (the one the bounded check pings)."""
    found = [endpoint_address("%s-%s-app%d" % (prefix, host, n)) for n in (1, 2)]
    return min(found, key=ipaddress.ip_address)


def checked_pairs(stdout: str, prefix: str) -> set:
    """(source host, target address) of the check lines the role printed (``PREFIX-hN-appM -> IP: reachable``)."""
    pairs = set()
    for source, target in re.findall(r"'%s-(h\d)-app\d -> ([0-9.]+): reachable'" % prefix, stdout):
        pairs.add((source, target))
    return pairs


def endpoint_address(netns: str) -> str:
    out = subprocess.run(
        ["ip", "-n", netns, "-4", "-j", "addr", "show", "dev", "eth0"], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)[0]["addr_info"][0]["local"]


def test_overlay_role_in_serial_batches(lab3):
    """serial: 1 - every batch also brings the hosts of the earlier batches up to date (through delegation)."""
    prefix, inventory, env = lab3
    hosts = ["h1", "h2", "h3"]
    first = run_playbook(PLAYBOOKS / "overlay.yml", str(inventory), env, "-e", "cnm_overlay_serial=1")
    assert_ok(first)  # the role's own check in each batch: its endpoints reach those of the earlier batches, both ways
    output = " ".join(first.stdout.split())
    assert output.count("TASK [cnm.network.cnm_overlay : Make the peers exact") == 3  # three batches
    assert "changed: [h2 -> h1] => (item=h1)" in output and "changed: [h3 -> h2] => (item=h2)" in output
    assert "UNREACHABLE" not in output

    # every host has exactly the others: a flood entry per remote VTEP, an FDB and a neighbour entry per remote endpoint
    vteps = {"h1": "192.0.2.11", "h2": "192.0.2.12", "h3": "192.0.2.13"}
    endpoints = {
        host: {app: endpoint_address("%s-%s-%s" % (prefix, host, app)) for app in ("app1", "app2")} for host in hosts
    }
    for host in hosts:
        others = [other for other in hosts if other != host]
        assert fdb_vteps(prefix, host) == sorted(vteps[other] for other in others)
        neigh = json.loads(
            subprocess.run(
                ["ip", "-n", "%s-%s" % (prefix, host), "-j", "neigh", "show", "dev", "vx-ov0"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert sorted(entry["dst"] for entry in neigh) == sorted(
            endpoints[other][app] for other in others for app in ("app1", "app2")
        )

    # full connectivity afterwards: every endpoint pings every endpoint of the other hosts
    failed = []
    for host in hosts:
        for app in ("app1", "app2"):
            for other in hosts:
                for address in endpoints[other].values() if other != host else ():
                    ping = subprocess.run(
                        [
                            "ip",
                            "netns",
                            "exec",
                            "%s-%s-%s" % (prefix, host, app),
                            "ping",
                            "-c",
                            "1",
                            "-W",
                            "2",
                            address,
                        ],
                        capture_output=True,
                        check=False,
                    )
                    if ping.returncode != 0:
                        failed.append("%s %s -> %s" % (host, app, address))
    assert failed == []

    # a rerun in batches changes nothing, and neither does one without serial
    again = run_playbook(PLAYBOOKS / "overlay.yml", str(inventory), env, "-e", "cnm_overlay_serial=1")
    assert_ok(again)
    assert recap_changed(again) == {"h1": 0, "h2": 0, "h3": 0}
    whole = run_playbook(PLAYBOOKS / "overlay.yml", str(inventory), env)
    assert_ok(whole)
    assert recap_changed(whole) == {"h1": 0, "h2": 0, "h3": 0}


# --- control plane evpn ------------------------------------------------------------------------------------------


def sh_in(netns: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ip", "netns", "exec", netns, "sh", "-c", command], capture_output=True, text=True, check=check
    )


def zebra_fdb(prefix: str, host: str) -> set:
    """The remote entries zebra programmed on a lab host's vx-ov0: (MAC, VTEP) learned over EVPN (extern_learn)."""
    entries = json.loads(sh_in("%s-%s" % (prefix, host), "bridge -j fdb show dev vx-ov0").stdout or "[]")
    return {(entry["mac"], entry["dst"]) for entry in entries if "dst" in entry and "extern_learn" in entry["flags"]}


def flood_vteps(prefix: str, host: str) -> set:
    entries = json.loads(sh_in("%s-%s" % (prefix, host), "bridge -j fdb show dev vx-ov0").stdout or "[]")
    return {entry["dst"] for entry in entries if entry["mac"] == "00:00:00:00:00:00" and "dst" in entry}


def pings(source: str, address: str) -> bool:
    return sh_in(source, "ping -c 1 -W 1 %s" % address, check=False).returncode == 0


def frr_pid(prefix: str, host: str, daemon: str) -> int:
    return int(Path("/run/cnm-network/frr/%s-%s/%s.pid" % (prefix, host, daemon)).read_text())


def test_overlay_role_with_the_evpn_control_plane(lab3, tmp_path: Path):
    """FRR in each lab host learns the endpoints over BGP EVPN: one attached on h3 alone is reached from h1 with no
    task run on h1, its removal is withdrawn, and killed daemons are repaired by a rerun without stale entries."""
    prefix, inventory, env = lab3
    evpn = ("-e", "cnm_overlay_control_plane=evpn")
    check = run_playbook(PLAYBOOKS / "overlay.yml", str(inventory), env, "--check", *evpn)
    assert_ok(check)
    first = run_playbook(PLAYBOOKS / "overlay.yml", str(inventory), env, *evpn)
    assert_ok(first)  # the role waited for the BGP sessions, then its own check crossed the hosts
    assert "UNREACHABLE" not in first.stdout
    again = run_playbook(PLAYBOOKS / "overlay.yml", str(inventory), env, *evpn)
    assert_ok(again)
    assert recap_changed(again) == {"h1": 0, "h2": 0, "h3": 0}
    vteps = {"h1": "192.0.2.11", "h2": "192.0.2.12", "h3": "192.0.2.13"}
    assert flood_vteps(prefix, "h1") == {vteps["h2"], vteps["h3"]}  # type-3 routes, written by zebra

    # An endpoint attached on h3 by one module run there: h1 reaches it, no task runs on h1.
    late = "%s-h3-late" % prefix
    attach = tmp_path / "attach.yml"
    attach.write_text(
        "- hosts: h3\n  gather_facts: false\n  tasks:\n"
        "    - cnm.network.cnm_endpoint:\n        network: ov0\n        netns: %s\n        state: '{{ state }}'\n"
        % late
    )
    assert_ok(run_playbook(attach, str(inventory), env, "-e", "state=present"))
    address = endpoint_address(late)
    mac = json.loads(sh_in(late, "ip -j link show dev eth0").stdout)[0]["address"]
    wait_for(lambda: (mac, vteps["h3"]) in zebra_fdb(prefix, "h1"), "h1 learns %s over EVPN" % mac)
    wait_for(lambda: pings("%s-h1-app1" % prefix, address), "h1-app1 reaches %s" % address)
    assert_ok(run_playbook(attach, str(inventory), env, "-e", "state=absent"))
    wait_for(lambda: (mac, vteps["h3"]) not in zebra_fdb(prefix, "h1"), "h1 withdraws %s" % mac)

    # bgpd killed on h2: h1 and h3 withdraw h2's routes; a rerun starts it again and everything is back.
    before = zebra_fdb(prefix, "h1")
    assert {vtep for _mac, vtep in before} == {vteps["h2"], vteps["h3"]}
    os.kill(frr_pid(prefix, "h2", "bgpd"), signal.SIGKILL)
    wait_for(lambda: vteps["h2"] not in {vtep for _mac, vtep in zebra_fdb(prefix, "h1")}, "h1 withdraws h2")
    assert_ok(run_playbook(PLAYBOOKS / "overlay.yml", str(inventory), env, *evpn))
    wait_for(lambda: zebra_fdb(prefix, "h1") == before, "h1 learns h2 again")

    # zebra killed on h2 leaves its entries in the kernel; a rerun removes them before zebra starts again, so what
    # h2 holds afterwards is exactly what the others advertise (an entry of a peer gone meanwhile would stay a ghost).
    held = zebra_fdb(prefix, "h2")
    os.kill(frr_pid(prefix, "h2", "zebra"), signal.SIGKILL)
    assert zebra_fdb(prefix, "h2") == held
    sh_in("%s-h2" % prefix, "bridge fdb add 02:42:0a:c8:ff:ff dev vx-ov0 dst 192.0.2.99 self extern_learn")
    assert ("02:42:0a:c8:ff:ff", "192.0.2.99") in zebra_fdb(prefix, "h2")  # a ghost of a host no longer there
    rerun = run_playbook(PLAYBOOKS / "overlay.yml", str(inventory), env, *evpn)
    assert_ok(rerun)
    wait_for(lambda: zebra_fdb(prefix, "h2") == held, "h2 holds the others' entries again, and no ghost")
