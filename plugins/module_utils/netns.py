# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Network namespaces: entering, creating, binding and deleting them without ``ip netns``.

Everything here works on the calling thread only (setns and unshare act per thread), so a
netlink socket opened while inside a namespace stays bound to it after we return.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from ansible_collections.cnm.network.plugins.module_utils.errors import option_error

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2
SO_NETNS_COOKIE = 71
THREAD_NETNS = "/proc/thread-self/ns/net"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, "%s: %s" % (what, os.strerror(code)))


def setns(fd: int) -> None:
    _check(_libc.setns(fd, CLONE_NEWNET), "setns")


@contextmanager
def entered(fd: int) -> Iterator[None]:
    """Run the block with this thread inside the namespace behind ``fd``."""
    home = os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(fd)
        try:
            yield
        finally:
            setns(home)
    finally:
        os.close(home)


def current_cookie() -> str:
    """This thread's namespace identity: its cookie (never reused within a boot).

    Kernels before 5.14 lack SO_NETNS_COOKIE; there the nsfs inode stands in (it can be
    reused after the namespace dies, which the store tolerates as it is only a hint).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8)
        return "cookie-%d" % int.from_bytes(raw, "little")
    except OSError:
        return "inode-%d" % os.stat(THREAD_NETNS).st_ino
    finally:
        sock.close()


def named_path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def is_namespace_file(path: str) -> bool:
    """True if ``path`` is a network namespace (an nsfs file), not an empty mount point."""
    try:
        return os.stat(path).st_dev == os.stat(THREAD_NETNS).st_dev
    except OSError:
        return False


def same_namespace(path_a: str, path_b: str) -> bool:
    a, b = os.stat(path_a), os.stat(path_b)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _ensure_run_dir() -> None:
    """Make /run/netns a shared mount point, as iproute2 does, so names are seen everywhere."""
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    if _libc.mount(b"none", NETNS_RUN_DIR.encode(), None, MS_SHARED | MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:
        _check(-1, "mount --make-rshared %s" % NETNS_RUN_DIR)
    _check(_libc.mount(NETNS_RUN_DIR.encode(), NETNS_RUN_DIR.encode(), b"none", MS_BIND | MS_REC, None), "mount --bind %s" % NETNS_RUN_DIR)
    _check(_libc.mount(b"none", NETNS_RUN_DIR.encode(), None, MS_SHARED | MS_REC, None), "mount --make-rshared %s" % NETNS_RUN_DIR)


def _bind(source: str, name: str) -> None:
    path = named_path(name)
    _ensure_run_dir()
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    try:
        _check(_libc.mount(source.encode(), path.encode(), b"none", MS_BIND, None), "mount --bind %s %s" % (source, path))
    except OSError:
        os.unlink(path)
        raise


def create_named(name: str) -> None:
    """Create a new, empty network namespace and name it, like ``ip netns add``."""
    home = os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare")
        try:
            _bind(THREAD_NETNS, name)
        finally:
            setns(home)
    finally:
        os.close(home)


def bind_current(name: str) -> None:
    """Give this thread's (the host's) namespace the name ``name``: Docker's host mode."""
    _bind(THREAD_NETNS, name)


def delete_named(name: str) -> None:
    """Remove a namespace name, like ``ip netns delete``; the namespace dies with its last user."""
    path = named_path(name)
    if _libc.umount2(path.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        _check(-1, "umount %s" % path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@dataclass(frozen=True)
class SandboxRef:
    """Where a sandbox lives: a named namespace, a namespace file path, or a process."""

    kind: str  # "netns", "netns_path" or "pid"
    value: str

    @property
    def key(self) -> str:
        return "%s:%s" % (self.kind, self.value)

    @property
    def path(self) -> str:
        if self.kind == "netns":
            return named_path(self.value)
        if self.kind == "pid":
            return "/proc/%s/ns/net" % self.value
        return self.value

    def exists(self) -> bool:
        if self.kind == "pid":
            return os.path.exists(self.path)
        return is_namespace_file(self.path)

    def open(self) -> int:
        """Open the namespace file; a clear error if it is missing (never creates it)."""
        try:
            return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise option_error(self.kind, self.value, "does not name an existing network namespace (%s)" % exc.strerror) from exc

    @classmethod
    def from_key(cls, key: str) -> SandboxRef:
        kind, value = key.split(":", 1)
        return cls(kind, value)
