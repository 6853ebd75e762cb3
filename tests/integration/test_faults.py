"""Crash safety: the module killed (SIGKILL, injected deterministically by CNM_CRASH_AT) at points of a batch.

After every kill the next normal run converges (every endpoint attached with its address, or all of
them gone), the run after it changes nothing, and the final removal leaves the host as it was.

A batch of 12 attaches in 9 changes per endpoint (Docker's sandbox sysctls come before its interface), then one per
sandbox (its default route) and the store write (121); its removal is 12 detaches, one veth deletion, 12 namespace
deletions, the conntrack flush of the endpoints' addresses and the store write (27). The plan repeats per endpoint,
so the default points cover each kind of change, the boundaries and the ends of a batch; CNM_FAULTS_EVERY=1 kills at
every index (148 kills).
"""

from __future__ import annotations

import os
import re

import pytest
from conftest import pings, sh

BATCH = 12
NET = dict(name="web", subnet="172.30.0.0/24")
EVERY = os.environ.get("CNM_FAULTS_EVERY") == "1"


def killed(host, monkeypatch, at: str, module: str, **args) -> None:
    """Run ``module`` with CNM_CRASH_AT=``at``: it must die by SIGKILL there (no JSON, rc -9)."""
    monkeypatch.setenv("CNM_CRASH_AT", at)
    try:
        with pytest.raises(AssertionError, match=re.escape("printed no JSON (rc -9)")):
            host.module(module, **args)
    finally:
        monkeypatch.delenv("CNM_CRASH_AT")


class Batch:
    """The 12 endpoints of one host: attach, detach, and the checks after each."""

    def __init__(self, host) -> None:
        self.host = host
        self.names = [host.sandbox("s%d" % index) for index in range(BATCH)]
        self.endpoints = [dict(netns=name) for name in self.names]
        host.ok("cnm_bridge", **NET)
        self.empty = host.snapshot()  # the bridge alone: what every final removal must give back
        self.empty_links = host.links()

    def attach(self, **extra) -> dict:
        return self.host.module("cnm_endpoint", network="web", endpoints=self.endpoints, **extra)

    def detach(self, **extra) -> dict:
        return self.host.module(
            "cnm_endpoint", network="web", endpoints=self.endpoints, state="absent", delete_netns=True, **extra
        )

    def converge_attach(self) -> None:
        result = self.attach()
        assert not result.get("failed"), result
        addresses = {ep["netns"]: ep["ipv4_address"] for ep in result["endpoints"]}
        assert sorted(addresses.values(), key=lambda a: int(a.rsplit(".", 1)[1])) == [
            "172.30.0.%d" % (index + 2) for index in range(BATCH)
        ]
        stored = {record["sandbox"]: record["ipv4_address"] for record in self.host.store()["endpoints"].values()}
        assert stored == {"netns:" + name: address for name, address in addresses.items()}
        for name in self.names:  # each sandbox holds its address on eth0
            assert "inet %s/24 " % addresses[name] in sh("ip -4 addr show dev eth0", netns=name).stdout
        assert pings(self.names[0], addresses[self.names[-1]])
        again = self.attach()
        assert again["changed"] is False and again["changes"] == [], again

    def converge_detach(self) -> None:
        result = self.detach()
        assert not result.get("failed"), result
        again = self.detach()
        assert again["changed"] is False and again["changes"] == [], again
        assert self.host.namespaces() == [self.host.name] and self.host.links() == self.empty_links
        assert self.host.store()["endpoints"] == {}


# An attach's changes of each endpoint (its namespace, Docker's three sandbox sysctls that precede its interface, the
# veth, up, hairpin, address, lo up), then of each sandbox (its default route).
PER_ENDPOINT, PER_SANDBOX = 9, 1
ATTACH_CHANGES = BATCH * (PER_ENDPOINT + PER_SANDBOX) + 1  # and the store write
DETACH_CHANGES = 2 * BATCH + 3  # detaches, one veth deletion, namespace deletions, the flows' flush, the store write


def attach_points() -> list:
    if EVERY:
        indexes = range(1, ATTACH_CHANGES + 1)
    else:  # the first endpoint's namespace, sysctls, veth, up, address; the last endpoint; the sandboxes; the store
        first_sandbox = BATCH * PER_ENDPOINT + 1
        indexes = [1, 2, 4, 5, 6, 8, first_sandbox - 1, first_sandbox, ATTACH_CHANGES]
    return ["change:%d" % index for index in indexes] + ["netns-named:1"]


def detach_points() -> list:
    indexes = range(1, DETACH_CHANGES + 1) if EVERY else [1, BATCH + 1, BATCH + 2, DETACH_CHANGES - 1, DETACH_CHANGES]
    return ["change:%d" % index for index in indexes] + ["netns-unmounted:1", "netns-unmounted:%d" % BATCH]


def test_killed_at_any_point_of_a_batch_the_next_run_converges(host, monkeypatch):
    batch = Batch(host)
    attached = batch.attach()  # the points assume this shape of plan: fail loudly if it changes rather than test less
    assert len(attached["changes"]) == ATTACH_CHANGES, attached["changes"]
    detached = batch.detach()
    assert len(detached["changes"]) == DETACH_CHANGES, detached["changes"]
    attach, detach = attach_points(), detach_points()
    for cycle in range(max(len(attach), len(detach))):
        killed(host, monkeypatch, attach[cycle % len(attach)], "cnm_endpoint", network="web", endpoints=batch.endpoints)
        batch.converge_attach()
        killed(
            host,
            monkeypatch,
            detach[cycle % len(detach)],
            "cnm_endpoint",
            network="web",
            endpoints=batch.endpoints,
            state="absent",
            delete_netns=True,
        )
        batch.converge_detach()
    assert host.snapshot() == batch.empty


def test_absent_removes_the_name_an_interrupted_create_left(host, monkeypatch):
    """The stub (an empty file, nothing mounted) of a create killed between naming and binding."""
    batch = Batch(host)
    killed(host, monkeypatch, "netns-named:5", "cnm_endpoint", network="web", endpoints=batch.endpoints)
    stub = "/run/netns/" + batch.names[4]
    assert os.path.getsize(stub) == 0 and not os.path.ismount(stub)
    reported = host.ok("cnm_info", netns=batch.names[4])["drift"]
    assert [(item["kind"], item["sandbox"]) for item in reported if item["kind"] == "netns_stub"] == [
        ("netns_stub", "netns:" + batch.names[4])
    ]
    info = host.ok(
        "cnm_endpoint", network="web", netns=batch.names[4], state="absent"
    )  # without delete_netns: a stub is no namespace
    assert info["changed"] and any("left without its namespace" in change for change in info["changes"]), info[
        "changes"
    ]
    assert not os.path.exists(stub)
    assert not [item for item in host.ok("cnm_info", netns=batch.names[4])["drift"] if item["kind"] == "netns_stub"]
    batch.converge_detach()
    assert host.snapshot() == batch.empty
