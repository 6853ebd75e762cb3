"""The store: one JSON file per host namespace, written atomically, guarded by a lock."""

from __future__ import annotations

import fcntl
import json
import os

import pytest

from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.store import FORMAT_VERSION, Store, endpoint_key

EMPTY = {"version": FORMAT_VERSION, "networks": {}, "endpoints": {}}


@pytest.fixture
def store(tmp_path):
    made = Store("cookie-42", root=str(tmp_path))
    made.lock()
    yield made
    made.unlock()


def test_store_lives_in_a_directory_named_after_the_namespace_key(tmp_path, store):
    assert store.directory == str(tmp_path / "cookie-42")
    assert store.path == str(tmp_path / "cookie-42" / "state.json")


def test_lock_creates_the_directory_private_to_root(tmp_path):
    fresh = Store("cookie-7", root=str(tmp_path / "deeper"))
    fresh.lock()
    try:
        assert os.stat(fresh.directory).st_mode & 0o777 == 0o700
    finally:
        fresh.unlock()


def test_loading_a_missing_file_gives_an_empty_store(store):
    store.load()
    assert store.data == EMPTY
    assert store.networks == {} and store.endpoints == {}


def test_saved_data_loads_back(tmp_path, store):
    store.networks["web"] = {"subnet": "172.30.0.0/24"}
    store.endpoints[endpoint_key("web", "netns:a")] = {"network": "web", "sandbox": "netns:a", "ipv4_address": "172.30.0.2"}
    store.save()
    other = Store("cookie-42", root=str(tmp_path))
    other.load()
    assert other.data == store.data
    assert other.endpoints_of("web") == {"web|netns:a": store.endpoints["web|netns:a"]}


def test_save_with_data_replaces_the_store(store):
    store.save({"version": FORMAT_VERSION, "networks": {"db": {}}, "endpoints": {}})
    store.load()
    assert store.networks == {"db": {}}


def test_save_is_atomic_and_leaves_no_temporary_file(store):
    store.save()
    store.networks["web"] = {}
    store.save()
    assert sorted(os.listdir(store.directory)) == ["lock", "state.json"]
    with open(store.path) as handle:
        assert json.load(handle)["networks"] == {"web": {}}


def test_a_failed_save_keeps_the_old_file_and_removes_its_temporary_file(store):
    store.networks["db"] = {"subnet": "172.31.0.0/24"}
    store.save()
    store.networks["web"] = {"bad": object()}  # not JSON-serialisable: the write fails half way
    with pytest.raises(TypeError):
        store.save()
    assert sorted(os.listdir(store.directory)) == ["lock", "state.json"]
    with open(store.path) as handle:
        assert json.load(handle)["networks"] == {"db": {"subnet": "172.31.0.0/24"}}


def test_an_empty_store_leaves_no_file(store):
    store.networks["web"] = {"subnet": "172.30.0.0/24"}
    store.save()
    del store.networks["web"]
    store.save()
    assert not os.path.exists(store.path)
    store.load()
    assert store.data == EMPTY


def test_a_file_of_another_format_version_is_reset(store):
    with open(store.path, "w") as handle:
        json.dump({"version": FORMAT_VERSION + 1, "networks": {"web": {}}, "endpoints": {}}, handle)
    store.load()
    assert store.data == EMPTY


def test_a_file_without_a_version_is_reset(store):
    with open(store.path, "w") as handle:
        json.dump({"networks": {"web": {}}}, handle)
    store.load()
    assert store.data == EMPTY


@pytest.mark.parametrize("content", ["", '{"version": 1, "netw', "[1, 2]"])
def test_a_corrupt_file_gives_a_clear_error_or_an_empty_store(store, content):
    with open(store.path, "w") as handle:
        handle.write(content)
    try:
        store.load()
    except CnmError as exc:
        assert store.path in str(exc)
    else:
        assert store.data == EMPTY


def test_snapshot_is_a_deep_copy(store):
    store.networks["web"] = {"mtu": 1500}
    snap = store.snapshot()
    snap["networks"]["web"]["mtu"] = 9000
    assert store.networks["web"]["mtu"] == 1500


def test_endpoints_of_filters_by_network(store):
    store.endpoints["web|netns:a"] = {"network": "web"}
    store.endpoints["db|netns:a"] = {"network": "db"}
    assert list(store.endpoints_of("db")) == ["db|netns:a"]


def test_endpoint_key_joins_network_and_sandbox():
    assert endpoint_key("web", "pid:42") == "web|pid:42"


def test_lock_is_exclusive_until_unlocked(tmp_path, store):
    lock_file = os.path.join(store.directory, "lock")
    probe = os.open(lock_file, os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        store.unlock()
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free now
        fcntl.flock(probe, fcntl.LOCK_UN)
    finally:
        os.close(probe)
    store.lock()  # the fixture unlocks again


def test_unlock_without_lock_is_harmless(tmp_path):
    Store("cookie-1", root=str(tmp_path)).unlock()


def test_the_lock_is_held_per_namespace_key(tmp_path, store):
    second = Store("cookie-42", root=str(tmp_path))
    os.makedirs(second.directory, exist_ok=True)
    fd = os.open(os.path.join(second.directory, "lock"), os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    other_namespace = Store("cookie-43", root=str(tmp_path))
    other_namespace.lock()  # a different namespace has its own lock: no wait
    other_namespace.unlock()
