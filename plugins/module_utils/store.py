# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The store: what the kernel cannot hold (driver, ip_range, leases), one file per host namespace.

It lives under /run, so it dies with the kernel state at reboot. Lab hosts share one filesystem,
so the file is keyed by the namespace's cookie (never its inode, which the kernel reuses at once).
A lock per namespace serialises concurrent module runs. The store is a hint checked against the
kernel, never the truth.

The host's own namespace also keeps a persistent copy under /var/lib, written with every store
write: it is what ``cnm-network-restore`` (restore.py) brings back at boot, and what a run loads
when the /run file is gone. Other namespaces (lab hosts, containers) die with the boot: no copy.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import json
import os
import stat
import tempfile
from typing import Callable, Dict, Optional

from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError
from ansible_collections.cnm.network.plugins.module_utils.records import (
    EndpointRecord,
    NetworkRecord,
    RecordError,
    copy_state,
    state_from_dict,
    state_to_dict,
    type_name,
)

STORE_ROOT = "/run/cnm-network"
PERSISTENT_PATH = "/var/lib/cnm-network/state.json"
PERSISTENT_ENV = "CNM_PERSISTENT_STORE"  # another path for the persistent copy, in any namespace (tests, labs)
FORMAT_VERSION = 2


def _v1_to_v2(data: dict) -> dict:
    """Version 2: an endpoint record names its link kind (attach.LINKS), which its detach follows once its network
    is gone; version 1 told a macvlan endpoint only by the parent it records."""
    for record in data.get("endpoints", {}).values():
        if isinstance(record, dict):
            record["link"] = "macvlan" if record.get("parent") else "veth"
    return data


# Older formats and the step that turns each into the next: {N: function(store of version N) -> store of version N+1}.
# Loading runs the steps in order up to FORMAT_VERSION; a format change bumps FORMAT_VERSION and adds its step
# here, so a store written by an older release is carried forward, never dropped.
MIGRATIONS: Dict[int, Callable[[dict], dict]] = {1: _v1_to_v2}

_FIX = (
    "fix it by hand, or move it away: the next run then rebuilds the store from the kernel's cnm objects "
    "(networks, endpoints, published ports), and warns what it could not recover"
)


def _empty() -> dict:
    return {"version": FORMAT_VERSION, "networks": {}, "endpoints": {}}


class StoreError(CnmError):
    """The store file cannot be used as it is: names the file and what is wrong with it."""

    def __init__(self, path: str, problem: str, advice: str = _FIX) -> None:
        super().__init__("the store %s is damaged: %s; %s" % (path, problem, advice), store=path, problem=problem)
        self.problem = problem


def persistent_path() -> Optional[str]:
    """Where this thread's namespace keeps its store across reboots: ``CNM_PERSISTENT_STORE`` when set, else
    PERSISTENT_PATH in the namespace of PID 1 (the host's own), else nowhere."""
    override = os.environ.get(PERSISTENT_ENV)
    if override:
        return override
    return PERSISTENT_PATH if in_init_namespace() else None


def in_init_namespace() -> bool:
    """Whether this thread is in the network namespace of PID 1: the host's own, where system services run."""
    try:
        own, init = os.stat("/proc/thread-self/ns/net"), os.stat("/proc/1/ns/net")
    except OSError:
        return False
    return (own.st_dev, own.st_ino) == (init.st_dev, init.st_ino)


class Store:
    """Networks and endpoints of one host namespace; ``save`` writes atomically (and the persistent copy, if any)."""

    def __init__(self, namespace_key: str, root: str = STORE_ROOT, persistent: Optional[str] = None) -> None:
        self.directory = os.path.join(root, namespace_key)
        self.path = os.path.join(self.directory, "state.json")
        self.persistent = persistent
        self.loaded_from: Optional[str] = None  # the file the data came from: path, persistent, or None (no file)
        self._lock_fd: Optional[int] = None
        self.data = _empty()

    def lock(self) -> None:
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            problem = "its directory cannot be made (%s)" % exc.strerror
            raise StoreError(self.directory, problem, "move away what holds its place") from exc
        lock_path = os.path.join(self.directory, "lock")
        try:  # never follow a link, never wait on a FIFO: only a regular file is used as the lock
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        except OSError as exc:
            raise StoreError(lock_path, "the lock file cannot be opened (%s)" % exc.strerror, "move it away") from exc
        kind = _kind(os.fstat(fd).st_mode)
        if kind != "a regular file":
            os.close(fd)
            raise StoreError(lock_path, "the lock is %s, not a regular file" % kind, "move it away")
        self._lock_fd = fd
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def load(self) -> None:
        """Read, migrate and check the file (the persistent copy when the /run file is gone: after a reboot, or
        deleted); no file is an empty store, anything unusable a StoreError naming the file read."""
        for path in (self.path, self.persistent):
            raw = _read(path) if path else None
            if raw is not None:
                break
        else:
            self.data, self.loaded_from = _empty(), None
            return
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
            raise StoreError(path, "it is not valid JSON (%s)" % exc) from exc
        self.data, self.loaded_from = check(migrate(data, path), path), path

    def snapshot(self) -> dict:
        """A copy to plan on (records are frozen: they are shared, never edited)."""
        return copy_state(self.data)

    def save(self, data: Optional[dict] = None) -> None:
        """Write the /run file and the persistent copy (the copy first: what a reboot restores is never older)."""
        if data is not None:
            self.data = data
        empty = not any(value for key, value in self.data.items() if key != "version")
        for path in (self.persistent, self.path):
            if not path:
                continue
            if empty:  # nothing left to remember: no file either (the directory and its lock stay)
                if os.path.lexists(path):
                    os.unlink(path)
            else:
                _write(path, state_to_dict(self.data))

    # ---- views ----
    @property
    def networks(self) -> Dict[str, NetworkRecord]:
        return self.data["networks"]

    @property
    def endpoints(self) -> Dict[str, EndpointRecord]:
        return self.data["endpoints"]

    def endpoints_of(self, network: str) -> Dict[str, EndpointRecord]:
        return {key: record for key, record in self.endpoints.items() if record.network == network}


def _read(path: str) -> Optional[bytes]:
    """The file's bytes, None when there is none; refuses anything but a regular file without blocking on it."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(found.st_mode):  # a FIFO would block the open (and every module run) forever
        raise StoreError(path, "it is %s, not a regular file" % _kind(found.st_mode))
    try:  # O_NONBLOCK and O_NOFOLLOW: if it was swapped since lstat, still nothing can hang here
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            problem = "it is a symbolic link, not a regular file"
        else:
            problem = "it cannot be read (%s)" % exc.strerror
        raise StoreError(path, problem) from exc
    try:
        kind = _kind(os.fstat(fd).st_mode)
        if kind != "a regular file":
            raise StoreError(path, "it is %s, not a regular file" % kind)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except OSError as exc:
        raise StoreError(path, "it cannot be read (%s)" % exc.strerror) from exc
    finally:
        os.close(fd)


def _write(path: str, data: dict) -> None:
    """Atomic and durable: a temporary file beside it, fsynced, renamed over it."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=directory, prefix=".state.")
    try:
        with os.fdopen(handle, "w") as out:
            # dumps, not dump: only dumps without indent uses the C encoder (a large overlay's store is 4x faster)
            out.write(json.dumps(data, sort_keys=True))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ---- format: versions and shape ----


def migrate(
    data: object,
    path: str,
    migrations: Optional[Dict[int, Callable[[dict], dict]]] = None,
    current: Optional[int] = None,
) -> dict:
    """The store carried forward to the current format version, one step of ``migrations`` at a time."""
    migrations = MIGRATIONS if migrations is None else migrations
    current = FORMAT_VERSION if current is None else current
    if not isinstance(data, dict):
        raise StoreError(path, "it must hold a JSON object, found %s" % type_name(data))
    if "version" not in data:
        raise StoreError(path, "it has no 'version' (found keys: %s)" % (", ".join(sorted(map(repr, data))) or "none"))
    version = data["version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise StoreError(path, "'version' must be an integer, found %s" % type_name(version))
    if version > current:
        raise StoreError(
            path,
            "it has format version %d, newer than the %d this release reads" % (version, current),
            "a newer release of the collection wrote it: run that release (or a newer one) here",
        )
    oldest = min(list(migrations) + [current])
    if version < oldest:
        readable = "version %d" % current if oldest == current else "versions %d to %d" % (oldest, current)
        raise StoreError(path, "it has format version %d, and this cnm.network reads %s" % (version, readable))
    while version < current:
        data = migrations[version](copy.deepcopy(data))
        version += 1
        data["version"] = version
    return data


def check(data: dict, path: str) -> dict:
    """The store with its records typed (records.py) when it has the shape the modules rely on, else a StoreError
    naming the first thing wrong."""
    try:
        return state_from_dict(data)
    except RecordError as exc:
        raise StoreError(path, str(exc)) from exc


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a file"
