"""The store: one JSON file per host namespace, written atomically, guarded by a lock."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os

import pytest

from ansible_collections.cnm.network.plugins.module_utils.model import BridgeNetwork
from ansible_collections.cnm.network.plugins.module_utils.records import (
    EndpointRecord,
    NetworkRecord,
    endpoint_key,
    state_from_dict,
    state_to_dict,
)
from ansible_collections.cnm.network.plugins.module_utils.store import (
    FORMAT_VERSION,
    PERSISTENT_ENV,
    PERSISTENT_PATH,
    Store,
    StoreError,
    migrate,
    persistent_path,
)

EMPTY = {"version": FORMAT_VERSION, "networks": {}, "endpoints": {}}
# Bridge network records as the file holds them (every key of BridgeRecord.to_dict).
WEB = BridgeNetwork.from_params({"name": "web", "subnet": "172.30.0.0/24"}).to_record().to_dict()
DB = dict(WEB, bridge_name="br-db", subnet="172.31.0.0/24", gateway=None, ip_range=None, mtu=None)
WEB_RECORD, DB_RECORD = NetworkRecord.from_dict(WEB), NetworkRecord.from_dict(DB)
EP = {
    "network": "web",
    "sandbox": "netns:a",
    "ifname": "eth0",
    "host_ifname": "veth1",
    "ipv4_address": "172.30.0.2",
    "ipv6_address": None,
    "mac_address": "02:42:ac:1e:00:02",
    "link": "veth",
}


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
    store.networks["web"] = WEB_RECORD
    store.endpoints[endpoint_key("web", "netns:a")] = EndpointRecord.from_dict(EP)
    store.save()
    other = Store("cookie-42", root=str(tmp_path))
    other.load()
    assert other.data == store.data
    assert other.endpoints_of("web") == {"web|netns:a": store.endpoints["web|netns:a"]}


def test_save_with_data_replaces_the_store(store):
    store.save({"version": FORMAT_VERSION, "networks": {"db": DB_RECORD}, "endpoints": {}})
    store.load()
    assert store.networks == {"db": DB_RECORD}


def test_save_is_atomic_and_leaves_no_temporary_file(store):
    store.save()
    store.networks["web"] = WEB_RECORD
    store.save()
    assert sorted(os.listdir(store.directory)) == ["lock", "state.json"]
    with open(store.path) as handle:
        assert json.load(handle)["networks"] == {"web": WEB}


def test_a_failed_save_keeps_the_old_file_and_removes_its_temporary_file(store):
    store.networks["db"] = DB_RECORD
    store.save()
    store.networks["web"] = dataclasses.replace(WEB_RECORD, mtu=object())  # not JSON-serialisable: fails half way
    with pytest.raises(TypeError):
        store.save()
    assert sorted(os.listdir(store.directory)) == ["lock", "state.json"]
    with open(store.path) as handle:
        assert json.load(handle)["networks"] == {"db": DB}


def test_an_empty_store_leaves_no_file(store):
    store.networks["web"] = WEB_RECORD
    store.save()
    del store.networks["web"]
    store.save()
    assert not os.path.exists(store.path)
    store.load()
    assert store.data == EMPTY


def _write(store, content) -> None:
    with open(store.path, "w") as handle:
        handle.write(content if isinstance(content, str) else json.dumps(content))


def _good(**changes) -> dict:
    data = {"version": FORMAT_VERSION, "networks": {"web": dict(WEB)}, "endpoints": {"web|netns:a": dict(EP)}}
    data.update(changes)
    return data


def _with(section: str, key: str, **fields) -> dict:
    data = _good()
    record = dict(data[section].get(key, {}))
    for name, value in fields.items():
        if value is _DROP:
            record.pop(name, None)
        else:
            record[name] = value
    data[section][key] = record
    return data


_DROP = object()

# (what is written, what the error must say): every shape the modules would trip over
DAMAGED = [
    ("", "not valid JSON"),
    ('{"version": 1, "netw', "not valid JSON"),
    (b"\xff\xfe{}".decode("latin-1"), "not valid JSON"),
    ([1, 2], "it must hold a JSON object, found a list"),
    ("null", "it must hold a JSON object, found null"),
    ({}, "it has no 'version' (found keys: none)"),
    ({"networks": {"web": WEB}}, "it has no 'version' (found keys: 'networks')"),
    ({"version": "1", "networks": {}, "endpoints": {}}, "'version' must be an integer, found a string"),
    ({"version": True, "networks": {}, "endpoints": {}}, "'version' must be an integer, found true or false"),
    (
        {"version": FORMAT_VERSION + 1, "networks": {}, "endpoints": {}},
        "format version %d, newer than" % (FORMAT_VERSION + 1),
    ),
    (
        {"version": 0, "networks": {}, "endpoints": {}},
        "format version 0, and this cnm.network reads versions 1 to %d" % FORMAT_VERSION,
    ),
    ({"version": FORMAT_VERSION, "endpoints": {}}, "'networks' is missing"),
    ({"version": FORMAT_VERSION, "networks": [], "endpoints": {}}, "'networks' must be an object, found a list"),
    ({"version": FORMAT_VERSION, "networks": {}}, "'endpoints' is missing"),
    ({"version": FORMAT_VERSION, "networks": {}, "endpoints": "x"}, "'endpoints' must be an object, found a string"),
    (_good(ports=[]), "'ports' must be an object, found a list"),
    (_good(sysctls=None), "'sysctls' must be an object, found null"),
    (_good(networks={"web": None}), "'networks'['web'] must be an object, found null"),
    (_good(networks={"web": []}), "'networks'['web'] must be an object, found a list"),
    (_with("networks", "web", driver=_DROP), "'networks'['web'].driver is missing"),
    (
        _with("networks", "web", driver="weave"),
        "'networks'['web'].driver is 'weave', not one of bridge, overlay, macvlan",
    ),
    (_with("networks", "web", bridge_name=7), "'networks'['web'].bridge_name must be a string, found an integer"),
    (_with("networks", "web", mtu="1500"), "'networks'['web'].mtu must be an integer, found a string"),
    (_with("networks", "web", subnet="172.30.0.0/33"), "'networks'['web'].subnet is '172.30.0.0/33', not an address"),
    (_with("networks", "web", gateway=["172.30.0.1"]), "'networks'['web'].gateway must be a string, found a list"),
    (_with("networks", "mv", driver="macvlan"), "'networks'['mv'].parent is missing"),
    (_good(endpoints={"web|netns:a": 3}), "'endpoints'['web|netns:a'] must be an object, found an integer"),
    (_with("endpoints", "web|netns:a", network=_DROP), "'endpoints'['web|netns:a'].network is missing"),
    (
        _with("endpoints", "web|netns:a", sandbox=None),
        "'endpoints'['web|netns:a'].sandbox must be a string, found null",
    ),
    (
        _with("endpoints", "web|netns:a", ifname=1.5),
        "'endpoints'['web|netns:a'].ifname must be a string, found a number",
    ),
    (
        _with("endpoints", "web|netns:a", sandbox="netns:b"),
        "'endpoints'['web|netns:a'] is filed under another key than its network and sandbox: 'web|netns:b'",
    ),
    (
        _with("endpoints", "web|netns:a", ipv4_address="172.30.0.300"),
        "'endpoints'['web|netns:a'].ipv4_address is '172.30.0.300'",
    ),
    (_with("endpoints", "web|netns:a", ipv6_address=6), "'endpoints'['web|netns:a'].ipv6_address must be a string"),
    (
        _with("endpoints", "web|netns:a", host_ifname={}),
        "'endpoints'['web|netns:a'].host_ifname must be a string, found an object",
    ),
    (_good(ports={"tcp/8080": "x"}), "'ports'['tcp/8080'] must be an object, found a string"),
    (
        _good(
            ports={
                "tcp/8080": {
                    "network": "web",
                    "sandbox": "netns:a",
                    "protocol": "tcp",
                    "host_port": "8080",
                    "container_port": 80,
                }
            }
        ),
        "'ports'['tcp/8080'].host_port must be an integer, found a string",
    ),
    (
        _good(ports={"tcp/8080": {"network": "web", "sandbox": "netns:a", "protocol": "tcp", "host_port": 8080}}),
        "'ports'['tcp/8080'].container_port is missing",
    ),
    (_good(sysctls={"net.ipv4.ip_forward": 0}), "'sysctls'['net.ipv4.ip_forward'] must be a string, found an integer"),
]


@pytest.mark.parametrize("content, problem", DAMAGED, ids=[case[1][:60] for case in DAMAGED])
def test_a_damaged_store_is_a_clear_error_naming_the_file_and_the_problem(store, content, problem):
    _write(store, content)
    with open(store.path, "rb") as handle:
        before = handle.read()
    with pytest.raises(StoreError) as caught:
        store.load()
    message = str(caught.value)
    assert message.startswith("the store %s is damaged: " % store.path)
    assert problem in message
    assert caught.value.details["store"] == store.path
    assert store.data == EMPTY  # nothing of it is used
    with open(store.path, "rb") as handle:
        assert handle.read() == before  # and nothing of it is discarded


def test_a_good_store_with_every_section_loads(store):
    data = _good(
        ports={
            "tcp/8080": {
                "network": "web",
                "sandbox": "netns:a",
                "protocol": "tcp",
                "host_port": 8080,
                "container_port": 80,
                "host_ip": None,
            }
        },
        sysctls={"net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": None},
    )
    data["networks"]["mv"] = {
        "driver": "macvlan",
        "parent": "eth1",
        "subnet": "192.0.2.0/24",
        "gateway": "192.0.2.1",
        "mtu": 1500,
    }
    data["networks"]["ov"] = dict(
        WEB,
        driver="overlay",
        bridge_name="br-ov",
        ipv6_subnet="fd00::/64",
        ipv6_gateway="fd00::1",
        vni=42,
        local_ip="192.0.2.11",
        vxlan_name="vx-ov",
    )
    _write(store, data)
    store.load()
    assert store.data == state_from_dict(data)


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink", "socket"])
def test_a_store_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path, store, kind):
    if kind == "fifo":
        os.mkfifo(store.path)  # no writer: a plain open() would block here forever
    elif kind == "directory":
        os.mkdir(store.path)
    elif kind == "symlink":
        target = tmp_path / "elsewhere.json"
        target.write_text(json.dumps(EMPTY))
        os.symlink(str(target), store.path)
    else:
        import socket

        server = socket.socket(socket.AF_UNIX)
        server.bind(store.path)
        server.close()
    with pytest.raises(StoreError) as caught:
        store.load()
    name = {"fifo": "a FIFO", "directory": "a directory", "symlink": "a symbolic link", "socket": "a socket"}[kind]
    assert str(caught.value).startswith("the store %s is damaged: it is %s, not a regular file" % (store.path, name))


def test_a_fifo_in_place_of_the_lock_is_refused_without_blocking(tmp_path):
    fresh = Store("cookie-9", root=str(tmp_path))
    os.makedirs(fresh.directory)
    os.mkfifo(os.path.join(fresh.directory, "lock"))
    with pytest.raises(StoreError, match="lock is a FIFO, not a regular file"):
        fresh.lock()


def test_a_file_in_place_of_the_store_directory_is_a_clear_error(tmp_path):
    fresh = Store("cookie-9", root=str(tmp_path))
    with open(fresh.directory, "w"):
        pass
    with pytest.raises(StoreError, match="the store %s is damaged: its directory cannot be made" % fresh.directory):
        fresh.lock()


# A hand-written store of an older format, carried to the current one through a migrations table.
# These tests give migrate() a table of their own: the mechanism, apart from the real steps (tested below).
OLD_V1 = {
    "version": 1,
    "networks": {"web": {"driver": "bridge", "bridge": "br-web", "subnet": "172.30.0.0/24"}},
    "endpoints": {"web|netns:a": {"network": "web", "sandbox": "netns:a", "ifname": "eth0", "ip": "172.30.0.7"}},
}


def _v1_to_v2(data: dict) -> dict:
    for record in data["networks"].values():
        record["bridge_name"] = record.pop("bridge")
    for record in data["endpoints"].values():
        record["ipv4_address"] = record.pop("ip")
        record["link"] = "veth"
    return data


def _v2_to_v3(data: dict) -> dict:
    data["ports"] = {}
    return data


def test_an_old_store_is_migrated_step_by_step_to_the_current_version(tmp_path):
    path = str(tmp_path / "state.json")
    migrated = migrate(json.loads(json.dumps(OLD_V1)), path, {1: _v1_to_v2, 2: _v2_to_v3}, current=3)
    assert migrated == {
        "version": 3,
        "ports": {},
        "networks": {"web": {"driver": "bridge", "bridge_name": "br-web", "subnet": "172.30.0.0/24"}},
        "endpoints": {
            "web|netns:a": {
                "network": "web",
                "sandbox": "netns:a",
                "ifname": "eth0",
                "ipv4_address": "172.30.0.7",
                "link": "veth",
            }
        },
    }
    assert migrated["endpoints"]["web|netns:a"]["ipv4_address"] == "172.30.0.7"  # the lease survives: no renumbering


def test_loading_an_old_store_migrates_it_and_the_next_save_writes_the_current_version(monkeypatch, store):
    from ansible_collections.cnm.network.plugins.module_utils import store as store_module

    monkeypatch.setattr(store_module, "FORMAT_VERSION", 2)
    monkeypatch.setattr(store_module, "MIGRATIONS", {1: _v1_to_v2})
    _write(store, OLD_V1)
    store.load()
    assert store.data["version"] == 2
    assert store.endpoints["web|netns:a"].ipv4_address == "172.30.0.7"
    with open(store.path) as handle:
        assert json.load(handle) == OLD_V1  # loading alone rewrites nothing
    store.save()
    with open(store.path) as handle:
        assert json.load(handle)["version"] == 2


def test_a_version_older_than_every_migration_is_a_clear_error(tmp_path):
    path = str(tmp_path / "state.json")
    with pytest.raises(StoreError, match="format version 1, and this cnm.network reads versions 2 to 3"):
        migrate(dict(OLD_V1), path, {2: _v2_to_v3}, current=3)


def test_the_current_version_is_not_migrated(tmp_path):
    data = _good()
    assert migrate(data, str(tmp_path / "state.json")) is data


def test_snapshot_is_a_deep_copy(store):
    store.networks["web"] = WEB_RECORD
    snap = store.snapshot()
    snap["networks"]["web"] = dataclasses.replace(WEB_RECORD, mtu=9000)
    assert store.networks["web"].mtu == 1500


def test_endpoints_of_filters_by_network(store):
    store.endpoints["web|netns:a"] = EndpointRecord("web", "netns:a", "eth0", "veth")
    store.endpoints["db|netns:a"] = EndpointRecord("db", "netns:a", "eth0", "veth")
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


# ---- the persistent copy ----


@pytest.fixture
def kept(tmp_path):
    """A store with a persistent copy, as in the host's own namespace."""
    made = Store("cookie-42", root=str(tmp_path / "run"), persistent=str(tmp_path / "var" / "state.json"))
    made.lock()
    yield made
    made.unlock()


def test_every_save_writes_the_persistent_copy_too(kept):
    kept.networks["web"] = WEB_RECORD
    kept.save()
    with open(kept.path) as run, open(kept.persistent) as var:
        assert json.load(run) == json.load(var) == state_to_dict(kept.data)
    assert os.stat(os.path.dirname(kept.persistent)).st_mode & 0o777 == 0o700


def test_the_copy_is_loaded_when_the_run_file_is_gone(kept):
    kept.networks["web"] = WEB_RECORD
    kept.save()
    os.unlink(kept.path)
    kept.data = None
    kept.load()
    assert kept.networks == {"web": WEB_RECORD} and kept.loaded_from == kept.persistent


def test_the_run_file_wins_over_the_copy(kept):
    kept.save({"version": FORMAT_VERSION, "networks": {"db": DB_RECORD}, "endpoints": {}})
    with open(kept.persistent, "w") as handle:
        json.dump(dict(EMPTY, networks={"web": WEB}), handle)
    kept.load()
    assert list(kept.networks) == ["db"] and kept.loaded_from == kept.path


def test_an_emptied_store_removes_both_files(kept):
    kept.save({"version": FORMAT_VERSION, "networks": {"db": DB_RECORD}, "endpoints": {}})
    kept.save(dict(EMPTY))
    assert not os.path.exists(kept.path) and not os.path.exists(kept.persistent)
    kept.load()
    assert kept.data == EMPTY and kept.loaded_from is None


def test_a_damaged_copy_is_an_error_naming_the_copy(kept):
    os.makedirs(os.path.dirname(kept.persistent))
    with open(kept.persistent, "w") as handle:
        handle.write("{")
    with pytest.raises(StoreError) as error:
        kept.load()
    assert str(error.value).startswith("the store %s is damaged: it is not valid JSON" % kept.persistent)


def test_the_copy_is_kept_in_the_host_namespace_or_where_the_environment_says(monkeypatch):
    monkeypatch.delenv(PERSISTENT_ENV, raising=False)
    try:  # PID 1's namespace may be closed to us (a sandbox's init): then no copy is kept
        same = os.stat("/proc/thread-self/ns/net")[1:3] == os.stat("/proc/1/ns/net")[1:3]
    except OSError:
        same = False
    assert persistent_path() == (PERSISTENT_PATH if same else None)
    monkeypatch.setenv(PERSISTENT_ENV, "/tmp/elsewhere.json")
    assert persistent_path() == "/tmp/elsewhere.json"


def test_a_version_1_store_loads_with_the_link_kind_of_each_endpoint(store):
    """Version 2 stores each endpoint's link kind; a version 1 store tells a macvlan endpoint by its parent."""
    macvlan = {"driver": "macvlan", "parent": "eth1", "subnet": "192.168.50.0/24", "gateway": "192.168.50.1"}
    veth = {key: value for key, value in EP.items() if key != "link"}
    mv = dict(veth, network="lan", host_ifname=None, parent="eth1", shim_name=None)
    _write(
        store,
        {
            "version": 1,
            "networks": {"web": dict(WEB), "lan": macvlan},
            "endpoints": {"web|netns:a": veth, "lan|netns:a": dict(mv, network="lan")},
        },
    )
    store.load()
    assert store.data["version"] == FORMAT_VERSION
    assert store.endpoints["web|netns:a"].link == "veth"
    assert store.endpoints["lan|netns:a"].link == "macvlan"
    assert store.endpoints["web|netns:a"].ipv4_address == EP["ipv4_address"]  # nothing else changes


def test_an_unknown_link_kind_is_a_clear_error(store):
    _write(store, _with("endpoints", "web|netns:a", link="ipip"))
    with pytest.raises(
        StoreError, match=r"'endpoints'\['web\|netns:a'\].link is 'ipip', not one of ipvlan, macvlan, veth"
    ):
        store.load()
