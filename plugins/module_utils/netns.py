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
import stat
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import Iterator, Optional

from ansible_collections.cnm.network.plugins.module_utils import faults
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError, option_error
from ansible_collections.cnm.network.plugins.module_utils.sandbox import SandboxRef

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_SHARED = 1 << 20
MNT_DETACH = 2
SO_NETNS_COOKIE = 71
THREAD_NETNS = "/proc/thread-self/ns/net"

libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, "%s: %s" % (what, os.strerror(code)))


def setns(fd: int) -> None:
    _check(libc.setns(fd, CLONE_NEWNET), "setns")


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
        return os.stat(path).st_dev == _nsfs_device()
    except OSError:
        return False


@cache
def _nsfs_device() -> int:
    """The device of nsfs, which holds every namespace file."""
    return os.stat(THREAD_NETNS).st_dev


def is_stub(path: str) -> bool:
    """True if ``path`` is a namespace name with no namespace: an empty regular file nothing is mounted on.

    Naming a namespace takes two steps (create the file, bind-mount the namespace on it) and so does
    removing the name (unmount, unlink); a crash between them (ours or ``ip netns``'s) leaves such a
    file. A mount point shows the mounted file's device (nsfs), a stub that of /run/netns itself.
    """
    try:
        info = os.lstat(path)
        parent = os.stat(os.path.dirname(path))
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size == 0 and info.st_dev == parent.st_dev


STUB_RECHECK_SECONDS = 0.5


def stubs() -> list:
    """The names in /run/netns that are stubs (see ``is_stub``) and stay so, sorted.

    A name is only a stub for a moment while a namespace is being named or removed (by a module, or by
    ``ip netns``): a name that looks like one is looked at again after STUB_RECHECK_SECONDS, and kept only if it
    is still a stub and the same file (a crash leaves one for good)."""
    try:
        names = os.listdir(NETNS_RUN_DIR)
    except OSError:
        return []
    seen = {name: _inode(named_path(name)) for name in names if is_stub(named_path(name))}
    if not seen:
        return []
    time.sleep(STUB_RECHECK_SECONDS)
    return sorted(
        name for name, inode in seen.items() if is_stub(named_path(name)) and _inode(named_path(name)) == inode
    )


def _inode(path: str) -> Optional[int]:
    try:
        return os.lstat(path).st_ino
    except OSError:
        return None


def same_namespace(path_a: str, path_b: str) -> bool:
    a, b = os.stat(path_a), os.stat(path_b)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _ensure_run_dir() -> None:
    """Make /run/netns a shared mount point, as iproute2 does, so names are seen everywhere."""
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    if libc.mount(b"none", NETNS_RUN_DIR.encode(), None, MS_SHARED | MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:
        _check(-1, "mount --make-rshared %s" % NETNS_RUN_DIR)
    _check(
        libc.mount(NETNS_RUN_DIR.encode(), NETNS_RUN_DIR.encode(), b"none", MS_BIND | MS_REC, None),
        "mount --bind %s" % NETNS_RUN_DIR,
    )
    _check(
        libc.mount(b"none", NETNS_RUN_DIR.encode(), None, MS_SHARED | MS_REC, None),
        "mount --make-rshared %s" % NETNS_RUN_DIR,
    )


def _bind(source: str, name: str) -> None:
    path = named_path(name)
    _ensure_run_dir()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        os.close(fd)
    except FileExistsError:
        if not is_stub(path):
            raise
        # the stub of an interrupted create or delete: finish the job by binding onto it
    faults.point("netns-named")
    try:
        _check(
            libc.mount(source.encode(), path.encode(), b"none", MS_BIND, None), "mount --bind %s %s" % (source, path)
        )
    except OSError:
        os.unlink(path)
        raise


def create_named(name: str) -> None:
    """Create a new, empty network namespace and name it, like ``ip netns add``."""
    home = os.open(THREAD_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(libc.unshare(CLONE_NEWNET), "unshare")
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
    if libc.umount2(path.encode(), MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        _check(-1, "umount %s" % path)
    faults.point("netns-unmounted")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# One line per container found: docker prints the name with a leading '/', podman without.
INSPECT_FORMAT = "{{.Id}} {{.State.Pid}} {{.State.Status}} {{.Name}}"


@dataclass(frozen=True)
class Container:
    """A container as its runtime reports it: ``pid`` is its init process, 0 when it is not running."""

    runtime: str
    name: str
    id: str
    pid: int
    status: str


class Containers:
    """Container names resolved to their init process through the runtime's CLI, cached for one run.

    ``docker container inspect`` (or podman's) runs once for all the names a module asks about
    (``prefetch``); a name asked for later (a stored endpoint's) costs one more call. The command
    runs through the module's ``run_command`` (``attach``); there is no subprocess here.
    """

    def __init__(self) -> None:
        self.module = None
        self._found: dict = {}  # (runtime, name) -> Container, or None for no such container
        self._binaries: dict = {}  # runtime -> path, or None when the command is not installed

    def attach(self, module) -> None:
        self.module = module
        self._found, self._binaries = {}, {}

    def binary(self, runtime: str, option: Optional[str] = None) -> Optional[str]:
        """The runtime's command; None when it is missing, or an error naming ``option`` when one is given."""
        if runtime not in self._binaries:
            if self.module is None:
                raise CnmError("container sandboxes are resolved only inside a module run (no command runner attached)")
            self._binaries[runtime] = self.module.get_bin_path(runtime)
        path = self._binaries[runtime]
        if path is None and option is not None:
            raise option_error(
                option, runtime, "is not installed on this host: the '%s' command was not found in PATH" % runtime
            )
        return path

    def prefetch(self, runtime: str, names, option: Optional[str] = None) -> None:
        """Inspect every name not yet known in one call; with ``option``, a missing runtime is an error naming it."""
        wanted = sorted(set(name for name in names if (runtime, name) not in self._found))
        if not wanted:
            return
        path = self.binary(runtime, option)
        if path is None:  # not installed: none of its containers can be running
            for name in wanted:
                self._found[(runtime, name)] = None
            return
        argv = [path, "container", "inspect", "--format", INSPECT_FORMAT] + wanted
        rc, out, err = self.module.run_command(argv, check_rc=False)
        self._found.update(parse_inspect(runtime, wanted, rc, out, err, option or "container_runtime"))

    def lookup(self, runtime: str, name: str) -> Optional[Container]:
        if (runtime, name) not in self._found:
            self.prefetch(runtime, [name])
        return self._found[(runtime, name)]


def parse_inspect(runtime: str, names: list, rc: int, out: str, err: str, option: str) -> dict:
    """Map each asked-for name to its Container (or None when the runtime says there is no such container).

    The runtime prints one line per container found, in the order asked, and an error per name it
    does not know (``No such container: x`` / ``no such container x``), exiting non-zero; any other
    failure (the daemon unreachable, permissions) is an error naming ``option``.
    """
    records = []
    for line in out.splitlines():
        fields = line.split()
        if not fields:  # docker prints an empty line when none of the names is found
            continue
        if len(fields) != 4 or not fields[1].isdigit():
            raise option_error(option, runtime, "printed an unexpected inspect line %r" % line)
        records.append(Container(runtime, fields[3].lstrip("/"), fields[0], int(fields[1]), fields[2]))
    if rc == 0 and len(records) == len(names):
        return {(runtime, names[index]): records[index] for index in range(len(names))}
    found = {}
    for name in names:
        match = [r for r in records if r.name == name] or [r for r in records if r.id.startswith(name)]
        found[(runtime, name)] = match[0] if match else None
    missing = [name for name in names if found[(runtime, name)] is None]
    if missing and "no such" not in err.lower():
        raise option_error(
            option,
            runtime,
            "could not inspect container(s) %s (rc %d): %s" % (", ".join(missing), rc, err.strip() or out.strip()),
        )
    return found


CONTAINERS = Containers()


# A sandbox's kernel side: where its namespace is and whether it is there (its identity, SandboxRef, is pure and lives
# in sandbox.py; a container's namespace is its init process's, found by the runtime's inspect).
def sandbox_path(ref: SandboxRef) -> str:
    if ref.kind == "netns":
        return named_path(ref.value)
    if ref.kind == "pid":
        return "/proc/%s/ns/net" % ref.value
    if ref.kind == "container":
        container = CONTAINERS.lookup(ref.runtime, ref.value)
        return "/proc/%d/ns/net" % (container.pid if container is not None else 0)
    return ref.value


def sandbox_exists(ref: SandboxRef) -> bool:
    if ref.kind == "container":
        container = CONTAINERS.lookup(ref.runtime, ref.value)
        return container is not None and container.pid > 0 and os.path.exists(sandbox_path(ref))
    if ref.kind == "pid":
        return os.path.exists(sandbox_path(ref))
    return is_namespace_file(sandbox_path(ref))


def sandbox_is_stub(ref: SandboxRef) -> bool:
    """A named namespace whose file is left without its namespace by an interrupted create or delete."""
    return ref.kind == "netns" and is_stub(sandbox_path(ref))


def check_running(ref: SandboxRef, option: str = "container") -> None:
    """A container sandbox must run (a stopped container has no network namespace): a clear error naming
    ``option``."""
    if ref.kind != "container":
        return
    container = CONTAINERS.lookup(ref.runtime, ref.value)
    if container is None:
        raise option_error(option, ref.value, "is not a %s container on this host (no such container)" % ref.runtime)
    if container.pid <= 0:
        raise option_error(
            option,
            ref.value,
            "is not running (%s status: %s): start it first, a stopped container has no network namespace"
            % (ref.runtime, container.status),
        )


def open_sandbox(ref: SandboxRef) -> int:
    """Open the sandbox's namespace file; a clear error if it is missing (never creates it)."""
    check_running(ref)
    try:
        return os.open(sandbox_path(ref), os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise option_error(
            ref.kind, ref.value, "does not name an existing network namespace (%s)" % exc.strerror
        ) from exc


def prefetch_containers(wanted, stored_keys=()) -> None:
    """Resolve the containers of a run with one inspect call per runtime: those named (``wanted``) and those of
    ``stored_keys``.

    ``wanted`` holds (SandboxRef, name of its runtime option) pairs, other kinds of sandbox being
    ignored; a runtime named there that is not installed is an error naming that option. A stored
    endpoint's runtime that is not installed means its container is gone.
    """
    names: dict = {}
    options: dict = {}
    for ref, option in wanted:
        if ref is not None and ref.kind == "container":
            names.setdefault(ref.runtime, []).append(ref.value)
            options.setdefault(ref.runtime, option)
    for key in stored_keys:
        if key.startswith("container:"):
            ref = SandboxRef.from_key(key)
            names.setdefault(ref.runtime, []).append(ref.value)
    for runtime in sorted(names):
        CONTAINERS.prefetch(runtime, names[runtime], options.get(runtime))


def check_containers(specs, check_mode: bool, stored_keys=()) -> list:
    """Resolve the container sandboxes of ``specs`` (desired endpoints: ``sandbox``, ``opt``) and of ``stored_keys``
    with one inspect per runtime, and refuse one that is not running. In check mode a container not running yet is
    assumed to be started by an earlier task of the play: those specs are returned."""
    prefetch_containers([(spec.sandbox, spec.opt("container_runtime")) for spec in specs], stored_keys)
    waiting = []
    for spec in specs:
        if spec.sandbox is None or spec.sandbox.kind != "container":
            continue
        if check_mode and not sandbox_exists(spec.sandbox):
            waiting.append(spec)
            continue
        check_running(spec.sandbox, spec.opt("container"))
    return waiting
