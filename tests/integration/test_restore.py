"""A reboot of a lab host, on the real kernel: everything the modules made is gone (the host's namespace, its
sandboxes, /run), the persistent copy of the store is left; ``cnm-network-restore`` brings back the networks of
every driver, the named namespaces and their endpoints with the same addresses, MACs and names, and the published
ports, with real traffic to prove it; the modules rerun afterwards report no change, and so does a second restore.

A lab host is not the namespace of PID 1, so the test gives the modules ``CNM_PERSISTENT_STORE`` (what a real
host gets under /var/lib). The guest lab's reboot proof does the same on a rebooted Debian machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import jinja2
import pytest
from conftest import COLLECTIONS, REPO, pings, sh
from test_ports import servers, wait_answer  # noqa: F401 pylint: disable=unused-import

WEB = dict(name="web", subnet="172.31.7.0/24", ipv6_subnet="fd00:31:7::/64", mtu=1400)
LAN = dict(name="lan", parent="mvparent", subnet="192.168.57.0/24", ip_range="192.168.57.64/28", gateway="192.168.57.1")
OVERLAY = dict(name="ov", vni=4257, subnet="10.57.0.0/24", local_ip="192.0.2.57", peers=["192.0.2.58"])


def _hardware(host) -> None:
    """What a real host has before any module runs and again after a reboot: its NICs and their addresses."""
    host.sh(
        "ip link add ul0 address 02:57:00:00:00:01 type veth peer name ul0p address 02:57:00:00:00:02"
        " && ip addr add 192.0.2.57/24 dev ul0 && ip link set ul0 up && ip link set ul0p up"
    )
    host.sh(
        "ip link add mvparent address 02:57:00:00:00:03 type veth peer name mvpeer address 02:57:00:00:00:04"
        " && ip link set mvparent up && ip link set mvpeer up"
    )


def _comparable(snapshot: dict, host) -> dict:
    """The snapshot without what a reboot changes by nature: the random MACs of the host ends of veths (Docker's
    are random too; the sandbox ends keep theirs)."""
    links = snapshot[host.name]["links"]
    snapshot[host.name]["links"] = [
        link[:4] + ((None,) if link[1] == "veth" and link[0].startswith("ve-") else (link[4],)) + link[5:]
        for link in links
    ]
    return snapshot


TASKS = [
    ("cnm_bridge", WEB),
    ("cnm_macvlan", LAN),
    ("cnm_overlay", OVERLAY),
    ("cnm_endpoint", "endpoints"),  # filled in by _tasks: it names the host's sandboxes
    ("cnm_port_publish", "ports"),
]


def _tasks(host) -> list:
    endpoints = dict(
        endpoints=[
            dict(network="web", netns=host.sandbox("a")),
            dict(network="web", netns=host.sandbox("b"), ipv4_address="172.31.7.50", mac_address="02:aa:bb:cc:dd:ee"),
            dict(network="lan", netns=host.sandbox("a")),
            dict(network="ov", netns=host.sandbox("b")),
        ]
    )
    ports = dict(network="web", netns=host.sandbox("a"), ports=["8080:80", "5353:53/udp", "127.0.0.1:8081:81"])
    return [
        (module, endpoints if args == "endpoints" else ports if args == "ports" else args) for module, args in TASKS
    ]


def _restore(host, rc: int = 0) -> dict:
    """Run cnm-network-restore as the cnm_prepare role renders it (here with this Python and checkout) in the host."""
    with open(os.path.join(REPO, "roles/cnm_prepare/templates/cnm-network-restore.j2")) as handle:
        text = jinja2.Template(handle.read()).render(
            cnm_prepare_restore_python=host.python, cnm_prepare_restore_lib=COLLECTIONS
        )
    program = os.path.join(COLLECTIONS, "cnm-network-restore-" + host.prefix)
    with open(program, "w") as handle:
        handle.write(text)
    os.chmod(program, 0o755)
    proc = subprocess.run(
        ["nsenter", "--net=/run/netns/%s" % host.name, "--", program],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == rc, (proc.stdout, proc.stderr)
    return json.loads(proc.stdout)


def _reboot(host, hardware: bool = True) -> None:
    """All the kernel state of the host and its sandboxes goes, and /run with it; the persistent copy stays."""
    store = host.store_path()
    for name in host.namespaces():
        sh("ip netns del %s" % name)
    shutil.rmtree(store)
    sh("ip netns add %s && ip -n %s link set lo up" % (host.name, host.name))
    if hardware:
        _hardware(host)


@pytest.fixture
def persistent(host, tmp_path, monkeypatch):
    path = str(tmp_path / "state.json")
    monkeypatch.setenv("CNM_PERSISTENT_STORE", path)
    return path


def test_a_reboot_is_restored_with_no_play_run(host, persistent, servers):  # noqa: F811 - the fixture
    _hardware(host)
    results = [host.ok(module, **args) for module, args in _tasks(host)]
    addresses = {
        (e["network"], e["sandbox"]): (e["ipv4_address"], e["mac_address"], e["ifname"])
        for e in results[3]["endpoints"]
    }
    with open(persistent) as handle:
        assert json.load(handle) == host.store()  # the copy is written with the store
    before = _comparable(host.snapshot(), host)

    _reboot(host)
    assert host.namespaces() == [host.name] and host.store() == {}
    report = _restore(host)
    assert report["changed"] and report["skipped"] == report["failed"] == [], report

    after = _comparable(host.snapshot(), host)
    for key in before:
        assert after[key] == before[key], key
    a, b = host.sandbox("a"), host.sandbox("b")
    assert pings(a, "172.31.7.50") and pings(b, addresses[("web", "netns:" + a)][0])
    assert pings(a, "fd00:31:7::1", "-6")
    servers(a, "tcp", 80, "web-a")  # processes do not survive a reboot: the sandbox's services start again
    servers(a, "udp", 53, "dns-a")
    servers(a, "tcp", 81, "local-a")
    assert wait_answer(b, "tcp", "172.31.7.1", 8080, "web-a") == "web-a"
    assert wait_answer(b, "udp", "172.31.7.1", 5353, "dns-a") == "dns-a"
    assert wait_answer(host.name, "tcp", "127.0.0.1", 8081, "local-a") == "local-a"

    for module, args in _tasks(host):
        assert host.ok(module, **args)["changed"] is False, module
    again = _restore(host)
    assert again["changed"] is False and again["changes"] == [], again


def test_a_network_that_cannot_come_back_keeps_no_other_down(host, persistent, servers):  # noqa: F811
    """After this reboot the macvlan's parent NIC is missing: the macvlan network and its endpoint are reported
    failed and skipped (exit 1), the bridge and overlay networks and their endpoints and ports come back."""
    _hardware(host)
    for module, args in _tasks(host):
        host.ok(module, **args)
    _reboot(host, hardware=False)
    host.sh(
        "ip link add ul0 address 02:57:00:00:00:01 type veth peer name ul0p address 02:57:00:00:00:02"
        " && ip addr add 192.0.2.57/24 dev ul0 && ip link set ul0 up && ip link set ul0p up"
    )
    report = _restore(host, rc=1)
    assert [line.split(":")[0] for line in report["failed"]] == ["network lan"], report
    assert "parent" in report["failed"][0] and "mvparent" in report["failed"][0], report
    assert report["skipped"] == ["endpoint netns:%s on lan: its network is not restored" % host.sandbox("a")], report
    a, b = host.sandbox("a"), host.sandbox("b")
    assert pings(a, "172.31.7.50")
    servers(a, "tcp", 80, "web-a")
    assert wait_answer(b, "tcp", "172.31.7.1", 8080, "web-a") == "web-a"
    assert "lan" in host.store()["networks"]  # still declared: the next run with its parent back restores it


def test_nothing_declared_restores_nothing(host, persistent):
    report = _restore(host)
    assert report == {"changed": False, "changes": [], "failed": [], "skipped": [], "warnings": []}
    assert not os.path.exists(persistent)


def test_removing_everything_removes_the_copy(host, persistent):
    host.ok("cnm_bridge", **WEB)
    assert os.path.exists(persistent)
    host.ok("cnm_bridge", name="web", state="absent")
    assert not os.path.exists(persistent)


def test_a_lost_run_file_is_taken_from_the_copy(host, persistent):
    """The /run file deleted (not a reboot): the next run loads the copy and renumbers nothing."""
    host.ok("cnm_bridge", **WEB)
    first = host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"))["endpoint"]
    os.unlink(os.path.join(host.store_path(), "state.json"))
    second = host.ok("cnm_endpoint", network="web", netns=host.sandbox("b"))["endpoint"]
    assert second["ipv4_address"] != first["ipv4_address"]
    assert host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"))["changed"] is False
