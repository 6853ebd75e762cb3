# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers the benchmarks share: commands inside namespaces, entering a namespace, the module runner."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

SO_NETNS_COOKIE = 71
CLONE_NEWNET = 0x40000000
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BenchError(Exception):
    pass


def run(argv: list, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise BenchError("%s failed (rc %d): %s%s" % (" ".join(argv)[:300], proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return proc


def in_ns(ns: str) -> list:
    return ["nsenter", "--net=/run/netns/%s" % ns, "--"]


def timed(argv: list, **kwargs) -> tuple:
    start = time.perf_counter()
    proc = run(argv, **kwargs)
    return time.perf_counter() - start, proc


def netns_names() -> list:
    return sorted(line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines() if line.strip())


class entered:
    """This thread inside a named namespace for the block (os.setns; back home afterwards)."""

    def __init__(self, ns: str) -> None:
        self.ns = ns

    def __enter__(self):
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        fd = os.open("/run/netns/%s" % self.ns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.setns(fd, CLONE_NEWNET)
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc):
        os.setns(self.home, CLONE_NEWNET)
        os.close(self.home)
        return False


def netns_cookie(ns: str) -> str:
    with entered(ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            return "cookie-%d" % int.from_bytes(sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8), "little")
        finally:
            sock.close()


def module_worker(name: str, args_path: str, timing_path: str, profile: str | None) -> None:
    """Runs inside the host namespace: import the module (untimed), then time its main() alone.

    The module reads its JSON args file from sys.argv[1] and ends with sys.exit, as under Ansible.
    """
    import importlib

    sys.argv = [name, args_path]
    start = time.perf_counter()
    module = importlib.import_module("ansible_collections.cnm.network.plugins.modules.%s" % name)
    imported = time.perf_counter()
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    try:
        module.main()
    except SystemExit:
        pass
    finally:
        done = time.perf_counter()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile + ".pstats")
        with open(timing_path, "w") as handle:
            json.dump({"import": imported - start, "main": done - imported}, handle)


def run_module(script: str, ns: str, name: str, args: dict, workdir: str, env: dict, profile: str | None = None, check: bool = True) -> dict:
    """One module run inside namespace ``ns`` as Ansible runs it (nsenter, JSON args file), through ``script _module``.

    ``script`` is the benchmark's own file: its ``_module`` sub-command calls ``module_worker``. Returns the module's
    result, the time of its ``main()`` and of its import, and the whole process's wall time. A failed module raises
    BenchError unless ``check`` is false (then the result says ``failed``).
    """
    args_path = os.path.join(workdir, "args.json")
    timing_path = os.path.join(workdir, "timing.json")
    with open(args_path, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=False, _ansible_diff=False)}, handle)
    argv = in_ns(ns) + [sys.executable, script, "_module", name, args_path, timing_path]
    if profile:
        argv.append(profile)
    seconds, proc = timed(argv, env=env, cwd=workdir, check=False)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise BenchError("module %s printed no JSON (rc %d): %s %s" % (name, proc.returncode, proc.stdout[-2000:], proc.stderr[-6000:])) from None
    if check and result.get("failed"):
        raise BenchError("module %s failed: %s" % (name, result.get("msg")))
    with open(timing_path) as handle:
        timing = json.load(handle)
    return {"result": result, "main": timing["main"], "import": timing["import"], "process": seconds}


def median(values: list):
    """The median of the numbers in ``values`` (None ignored); None when there are none."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def collections_root(workdir: str, repo: str = REPO) -> str:
    """A directory holding ansible_collections/cnm/network -> this checkout, or another one (as tests/integration/conftest.py)."""
    root = os.path.join(workdir, "collections")
    os.makedirs(os.path.join(root, "ansible_collections", "cnm"))
    os.symlink(repo, os.path.join(root, "ansible_collections", "cnm", "network"))
    return root


def fmt(value) -> str:
    return "-" if value is None else "%.3f" % value


def load_average() -> str:
    return "%.2f %.2f %.2f" % os.getloadavg()
