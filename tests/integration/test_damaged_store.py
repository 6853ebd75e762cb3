"""A damaged store on the real kernel: every module fails with an error naming the file and what is wrong,
changes nothing in the kernel, never hangs (a FIFO in place of the store included), and works again once
the file is fixed or removed. Nothing of a damaged store is discarded: the leases in it survive the repair."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

TIMEOUT = 60  # seconds: a module blocked on the store would hit this instead of the suite's 300


def state_file(host) -> str:
    return os.path.join(host.store_path(), "state.json")


def kernel(host) -> dict:
    """The host's and sandboxes' links, addresses, routes, neighbours and the ruleset: everything but the store file."""
    host.store = lambda: None  # the snapshot would read the damaged file (and block on a FIFO)
    try:
        return host.snapshot()
    finally:
        del host.store


@pytest.fixture
def built(host):
    """A bridge network with one endpoint and a published port; the store's content as the modules wrote it."""
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24")
    endpoint = host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"))["endpoint"]
    host.ok("cnm_port_publish", network="web", netns=host.sandbox("a"), ports=["8080:80"])
    with open(state_file(host)) as handle:
        good = json.load(handle)
    return {"endpoint": endpoint, "good": good}


def _shape(good: dict, **changes) -> str:
    return json.dumps(dict(good, **changes))


def _wrong_version(good: dict) -> str:
    return json.dumps(dict(good, version=good["version"] + 1))


def _endpoint_without_sandbox(good: dict) -> str:
    data = json.loads(json.dumps(good))
    for record in data["endpoints"].values():
        del record["sandbox"]
    return json.dumps(data)


# name -> (how the file is damaged, what the error must say)
DAMAGES = {
    "networks-list": (
        lambda good, path: _write(path, _shape(good, networks=[])),
        "'networks' must be an object, found a list",
    ),
    "empty-object": (lambda good, path: _write(path, "{}"), "it has no 'version'"),
    "newer-version": (lambda good, path: _write(path, _wrong_version(good)), "newer than the"),
    "endpoint-shape": (lambda good, path: _write(path, _endpoint_without_sandbox(good)), ".sandbox is missing"),
    "truncated": (lambda good, path: _write(path, json.dumps(good)[:40]), "it is not valid JSON"),
    "fifo": (lambda good, path: (os.unlink(path), os.mkfifo(path)), "it is a FIFO, not a regular file"),
    "directory": (lambda good, path: (os.unlink(path), os.mkdir(path)), "it is a directory, not a regular file"),
}


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _file_state(path: str) -> tuple:
    found = os.lstat(path)
    if stat.S_ISREG(found.st_mode):
        with open(path, "rb") as handle:
            return ("file", handle.read())
    return (stat.S_IFMT(found.st_mode), None)


RUNS = [
    ("cnm_bridge", dict(name="web", subnet="172.30.0.0/24"), False),
    ("cnm_bridge", dict(name="db", subnet="172.31.0.0/24"), False),
    ("cnm_bridge", dict(name="web", state="absent", force=True), True),
    ("cnm_endpoint", dict(network="web", netns="@b"), False),
    ("cnm_endpoint", dict(network="web", netns="@a", state="absent"), False),
    ("cnm_info", dict(), False),
]


def _args(host, args: dict) -> dict:
    return {
        key: host.sandbox(value[1:]) if isinstance(value, str) and value.startswith("@") else value
        for key, value in args.items()
    }


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_store_fails_every_module_clearly_and_changes_nothing(host, built, damage):
    path = state_file(host)
    spoil, problem = DAMAGES[damage]
    spoil(built["good"], path)
    before, file_before = kernel(host), _file_state(path)
    for module, args, check in RUNS:
        result = host.module(module, check=check, _timeout=TIMEOUT, **_args(host, args))
        assert result.get("failed"), (module, result)
        assert result["msg"].startswith("the store %s is damaged: " % path), (module, result["msg"])
        assert problem in result["msg"], (module, result["msg"])
        assert result["store"] == path
        assert "Traceback" not in json.dumps(result)
    assert kernel(host) == before  # no sandbox 'b', no 'db' bridge, endpoint 'a' and its port still there
    assert _file_state(path) == file_before  # the damaged file is left as it was, for the operator to look at
    # Fixed by hand (the good content put back): everything works and nothing was renumbered.
    _remove(path)
    _write(path, json.dumps(built["good"]))
    assert host.ok("cnm_info", _timeout=TIMEOUT)["drift"] == []
    again = host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"), _timeout=TIMEOUT)
    assert again["changed"] is False and again["endpoint"]["ipv4_address"] == built["endpoint"]["ipv4_address"]
    second = host.ok("cnm_endpoint", network="web", netns=host.sandbox("b"), _timeout=TIMEOUT)["endpoint"]
    assert second["ipv4_address"] not in (None, built["endpoint"]["ipv4_address"])


def test_a_fifo_in_place_of_the_lock_fails_clearly_without_hanging(host, built):
    lock = os.path.join(host.store_path(), "lock")
    os.unlink(lock)
    os.mkfifo(lock)
    before = kernel(host)
    for module, args, check in RUNS:
        result = host.module(module, check=check, _timeout=TIMEOUT, **_args(host, args))
        assert result.get("failed"), result
        assert result["msg"].startswith("the store %s is damaged: the lock is a FIFO" % lock), result
    assert kernel(host) == before
    os.unlink(lock)
    assert host.ok("cnm_info", _timeout=TIMEOUT)["drift"] == []


@pytest.mark.parametrize("damage", ["networks-list", "fifo"])
def test_after_a_damaged_store_is_removed_the_modules_work_again(host, built, damage):
    """Removing the store is the documented way out when it cannot be fixed: the next run rebuilds it from the
    kernel's cnm objects (issue 11's recover), so cnm_info reports no drift, endpoints keep their addresses and the
    published port stays; rerunning the play changes nothing."""
    path = state_file(host)
    DAMAGES[damage][0](built["good"], path)
    assert host.module("cnm_info", _timeout=TIMEOUT).get("failed")
    _remove(path)
    info = host.ok("cnm_info", _timeout=TIMEOUT)
    assert [network["name"] for network in info["networks"]] == ["web"] and info["changed"] is False
    assert info["drift"] == [] and "the store was missing: rebuilt from the kernel" in json.dumps(info["warnings"])
    host.ok("cnm_bridge", name="web", subnet="172.30.0.0/24", _timeout=TIMEOUT)
    again = host.ok("cnm_endpoint", network="web", netns=host.sandbox("a"), _timeout=TIMEOUT)
    assert again["changed"] is False and again["endpoint"]["ipv4_address"] == built["endpoint"]["ipv4_address"]
    assert (
        host.ok("cnm_port_publish", network="web", netns=host.sandbox("a"), ports=["8080:80"], _timeout=TIMEOUT)[
            "changed"
        ]
        is False
    )
    assert host.ok("cnm_info", _timeout=TIMEOUT)["drift"] == []
