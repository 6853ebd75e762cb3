# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers the benchmarks share: commands inside namespaces, entering a namespace, the module runner, the lab's
clean-up, the driver's leak checks, medians, profiles and the JSON metadata."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SO_NETNS_COOKIE = 71
CLONE_NEWNET = 0x40000000
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO, "bench", "results")
STORE_ROOT = "/run/cnm-network"
CNI_PATH = "/usr/lib/cni"


class BenchError(Exception):
    pass


def run(argv: list, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise BenchError(
            "%s failed (rc %d): %s%s"
            % (" ".join(argv)[:300], proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
        )
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


def module_worker(name: str, args_path: str, timing_path: str, profile: str | None, wrap=None) -> None:
    """Runs inside the host namespace: import the module (untimed), then time its main() alone.

    The module reads its JSON args file from sys.argv[1] and ends with sys.exit, as under Ansible. ``wrap``, when
    given, is called after the import and before the clock starts; the dict it returns is written with the timings
    (it may fill it while main() runs).
    """
    import importlib

    sys.argv = [name, args_path]
    start = time.perf_counter()
    module = importlib.import_module("ansible_collections.cnm.network.plugins.modules.%s" % name)
    extra = wrap() if wrap is not None else {}
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
            json.dump(dict(extra, **{"import": imported - start, "main": done - imported}), handle)


def worker_main(wrap=None) -> bool:
    """A benchmark's ``_module`` sub-command (``script _module NAME ARGS TIMING [PROFILE]``): True when it was one."""
    if len(sys.argv) > 1 and sys.argv[1] == "_module":
        module_worker(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None, wrap)
        return True
    return False


def run_module(
    script: str, ns: str, name: str, args: dict, workdir: str, env: dict, profile: str | None = None, check: bool = True
) -> dict:
    """One module run inside namespace ``ns`` as Ansible runs it (nsenter, JSON args file), through ``script _module``.

    ``script`` is the benchmark's own file: its ``_module`` sub-command calls ``module_worker``. Returns the module's
    result, the time of its ``main()`` and of its import (and what the worker's ``wrap`` added), and the whole
    process's wall time. A failed module raises BenchError unless ``check`` is false (then the result says ``failed``).
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
        raise BenchError(
            "module %s printed no JSON (rc %d): %s %s"
            % (name, proc.returncode, proc.stdout[-2000:], proc.stderr[-6000:])
        ) from None
    if check and result.get("failed"):
        raise BenchError("module %s failed: %s" % (name, result.get("msg")))
    with open(timing_path) as handle:
        timing = json.load(handle)
    return dict(timing, result=result, process=seconds)


def median(values: list):
    """The median of the numbers in ``values`` (None ignored); None when there are none; of texts, the middle one."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    middle = len(values) // 2
    if len(values) % 2 or not isinstance(values[middle], (int, float)):  # texts (an error message): the middle one
        return values[middle]
    return (values[middle - 1] + values[middle]) / 2


def collections_root(workdir: str, repo: str = REPO) -> str:
    """A directory holding ansible_collections/cnm/network -> this checkout, or another one (as
    tests/integration/conftest.py)."""
    root = os.path.join(workdir, "collections")
    os.makedirs(os.path.join(root, "ansible_collections", "cnm"))
    os.symlink(repo, os.path.join(root, "ansible_collections", "cnm", "network"))
    return root


def fmt(value) -> str:
    return "-" if value is None else "%.3f" % value


PHASES = ("add", "rerun", "delete")


def phase_header(width: int, note: str) -> str:
    """The head of a table of seconds per phase: N, tool (``width`` wide), add, rerun, delete, ``note``."""
    return "%5s  %-*s %8s %8s %8s   %s" % ("N", width, "tool", "add", "rerun", "delete", note)


def phase_line(size: int, width: int, tool: str, row: dict, note: str) -> str:
    """One tool's medians at one N, under ``phase_header``."""
    return "%5d  %-*s %8s %8s %8s   %s" % (size, width, tool, *(fmt(row[p]) for p in PHASES), note)


def measured(results: dict, tools) -> list:
    """(tool, medians) for each of ``tools`` that ``results`` has, in that order."""
    return [(tool, results[tool]) for tool in tools if results.get(tool) is not None]


def issue_figures(size: int, tool: str, targets: dict, references: dict) -> tuple:
    """The issue's target and its reference measurement for ``tool``: they are given for N = 200 only."""
    if size != 200:
        return None, None
    return targets.get(tool), references.get(tool)


def process_overhead(size: int, results: dict) -> list:
    """The line of what a whole module process costs beyond main() (medians), when both were measured."""
    process, module = results.get("cnm process"), results.get("cnm module")
    if not (process and module):
        return []
    return [
        "%5d    cnm process minus main(): %s s (nsenter, Python start-up, imports, exit; medians)"
        % (size, " / ".join("%.3f" % (process[p] - module[p]) for p in PHASES))
    ]


def load_average() -> str:
    return "%.2f %.2f %.2f" % os.getloadavg()


def say(text: str) -> None:
    """A progress line on stderr (the table goes to stdout)."""
    print("bench: " + text, file=sys.stderr, flush=True)


def sizes_parser(description: str, what: str, default_sizes: list, module: str | None = None):
    """The command line of a benchmark over sizes N: --sizes (numbers of ``what``) and --repeat; for one that
    profiles ``module`` (attach.py, ports.py), also --json and --no-profile."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=default_sizes,
        help="numbers of %s (default: %s)" % (what, " ".join(str(n) for n in default_sizes)),
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds per N; the table shows medians (default: 3)")
    if module:
        parser.add_argument("--json", help="also write the results (medians and every sample) as JSON to this file")
        parser.add_argument(
            "--no-profile", action="store_true", help="skip the cProfile run of %s at the largest N" % module
        )
    return parser


def each_size(prefix: str, workdir_prefix: str, options, bench_size) -> tuple:
    """``bench_size(size, repeat, workdir, collections, profile)`` for each of ``options.sizes`` (profiled: the largest,
    unless --no-profile), guarded; the exit status and {size: results}."""
    all_results: dict = {}

    def work(workdir: str) -> None:
        collections = collections_root(workdir)
        largest = max(options.sizes)
        for size in options.sizes:
            profile = not options.no_profile and size == largest
            all_results[size] = bench_size(size, options.repeat, workdir, collections, profile)

    return guarded(prefix, work, workdir_prefix), all_results


def loads_line(loads: dict) -> str:
    return "load average (1, 5, 15 min): %s at start, %s at end; %d CPUs" % (
        loads["start"],
        loads["end"],
        os.cpu_count(),
    )


def check_common(parser, options, max_size: int | None = None, sizes_error: str = "") -> None:
    """The checks every benchmark makes of its command line: root; --sizes in 1..max_size; --repeat >= 1."""
    if os.geteuid() != 0:
        parser.error("needs root (network namespaces)")
    if max_size is not None and any(n < 1 or n > max_size for n in options.sizes):
        parser.error(sizes_error or "sizes must be between 1 and %d" % max_size)
    if options.repeat < 1:
        parser.error("--repeat must be at least 1")


def missing_tools(commands: tuple, cni_plugins: tuple = ()) -> list:
    """What the benchmark needs and does not find: CNI plugins in CNI_PATH, commands (with their Debian package)."""
    missing = ["%s/%s" % (CNI_PATH, p) for p in cni_plugins if not os.access("%s/%s" % (CNI_PATH, p), os.X_OK)]
    return missing + ["%s (apt-get install %s)" % (cmd, pkg) for cmd, pkg in commands if shutil.which(cmd) is None]


def store_dir(ns: str) -> str:
    """The cnm store directory of a namespace (keyed by its cookie, as the modules key it)."""
    return os.path.join(STORE_ROOT, netns_cookie(ns))


def remove_namespaces(prefix: str, before: list) -> list:
    """Delete every namespace named ``prefix...`` that was not there before, and the cnm store of each.

    Returns their names."""
    ours = own_namespaces(prefix, before)
    for ns in ours:
        try:
            store = store_dir(ns)
        except OSError:
            store = None
        if store and os.path.isdir(store):
            shutil.rmtree(store, ignore_errors=True)
        run(["ip", "netns", "del", ns], check=False, start_new_session=True)
    return ours


def mac_of(address: str) -> str:
    """Docker's endpoint MAC: 02:42 + the IPv4 bytes."""
    return "02:42:" + ":".join("%02x" % int(part) for part in address.split("."))


def stop_processes(procs: list) -> None:
    """Kill the processes this script started (by their pid), wait for them, close their stdout pipes."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def check_tools(parser, missing: list) -> None:
    """Stop with an error naming what the benchmark needs and does not find (``missing_tools``)."""
    if missing:
        parser.error("missing: %s" % ", ".join(missing))


def loads_at_start() -> dict:
    """{"start": the load averages now}, said on stderr; the driver adds "end"."""
    loads = {"start": load_average()}
    say("load average at start: %s (%d CPUs)" % (loads["start"], os.cpu_count()))
    return loads


class ModuleRunner:
    """Runs the collection's modules inside ``lab.host``, as Ansible does, and times them; ``script`` is the
    benchmark's own file (its ``_module`` sub-command is ``worker_main``)."""

    script = ""

    def __init__(self, lab, collections: str) -> None:
        self.lab = lab
        self.collections = collections
        self.env = dict(os.environ, PYTHONPATH=collections)

    def module(self, name: str, args: dict, profile: str | None = None) -> dict:
        return run_module(self.script, self.lab.host, name, args, self.lab.tmp, self.env, profile)


def write_script(directory: str, name: str, body: str) -> str:
    """A bash script ``directory/name`` that stops at the first error; returns its path."""
    path = os.path.join(directory, name)
    with open(path, "w") as handle:
        handle.write("set -e\n" + body)
    return path


def run_script(ns: str, path: str) -> float:
    """Wall time of one bash script run inside a namespace (nsenter + bash start-up included, ~3 ms)."""
    return timed(in_ns(ns) + ["bash", path])[0]


def destroy_lab(namespaces: list, stores: list, tmp: str, stop=None) -> None:
    """Remove a lab: ``stop()`` (its processes), its namespaces, its cnm store directories, its temporary files.

    Ctrl-C must not stop the clean-up half way; its commands run in their own session so that a second Ctrl-C at
    the terminal does not reach them either.
    """
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        if stop is not None:
            stop()
        for ns in namespaces:
            if os.path.exists("/run/netns/%s" % ns):
                run(["ip", "netns", "del", ns], check=False, start_new_session=True)
        for store in stores:
            if store and os.path.isdir(store):
                shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def own_namespaces(prefix: str, before: list) -> list:
    """The namespaces named ``prefix...`` that were not there before."""
    return [n for n in netns_names() if n.startswith(prefix) and n not in before]


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def guarded(
    prefix: str, work, workdir_prefix: str, cleanup=None, remove_left=None, note_others: bool = True, links: bool = True
) -> int:
    """Run ``work(workdir)`` in a fresh temporary directory and check that it left nothing behind; the exit status.

    SIGTERM acts as Ctrl-C. An interrupt returns 130 and a BenchError 1 (both said on stderr). Then, with Ctrl-C
    ignored: ``cleanup()``, the directory removed, up to 10 s for the benchmark's namespaces (``prefix...``) to go;
    any left is an error (``remove_left(prefix, before)`` deletes them and returns their names); with ``links``,
    a changed ``ip -br link`` of the root namespace is an error too; with ``note_others``, namespaces that others
    created or removed meanwhile are noted.
    """
    signal.signal(signal.SIGTERM, _raise_interrupt)
    netns_before = netns_names()
    links_before = run(["ip", "-br", "link"]).stdout if links else None
    workdir = tempfile.mkdtemp(prefix=workdir_prefix)
    status = 0
    try:
        work(workdir)
    except KeyboardInterrupt:
        say("interrupted: cleaning up")
        status = 130
    except BenchError as exc:
        say("error: %s" % exc)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the clean-up
        if cleanup is not None:
            cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
        deadline = time.time() + 10
        while time.time() < deadline and own_namespaces(prefix, netns_before):
            time.sleep(0.2)
        if remove_left is not None:
            ours = remove_left(prefix, netns_before)
            if ours:
                say("LEFT BEHIND (now deleted): namespaces %s" % ours)
        else:
            ours = own_namespaces(prefix, netns_before)
            if ours:
                say("LEFT BEHIND: namespaces %s" % ours)
        if ours:
            status = status or 1
        if links and run(["ip", "-br", "link"]).stdout != links_before:
            say("WARNING: the root namespace's links changed during the run (`ip -br link`)")
            status = status or 1
        others = sorted(set(netns_names()) ^ set(netns_before))
        if note_others and others:
            say("note: namespaces that others created or removed meanwhile: %s" % others)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return status


def profile_report(path: str, limit: int, commands: bool = False) -> str:
    """A cProfile dump as text: netlink calls counted (and, with ``commands``, the commands the module ran), the top
    ``limit`` functions by cumulative time, then ``---- by own time ----`` and the top by own time."""
    import io
    import pstats

    text = io.StringIO()
    stats = pstats.Stats(path + ".pstats", stream=text)
    calls = {
        key[2]: row[1]
        for key, row in stats.stats.items()
        if key[2].startswith("<method '") and "_socket.socket" in key[2]
    }
    line = "netlink requests (socket.send calls): %d; socket.recv* calls: %d" % (
        sum(n for name, n in calls.items() if "'send" in name),
        sum(n for name, n in calls.items() if "'recv" in name),
    )
    if commands:
        ran = [
            (row[1], row[3])
            for key, row in stats.stats.items()
            if key[2] == "run_command" and key[0].endswith("basic.py")
        ]
        line += "; commands run (nft, conntrack): %d taking %.3f s" % (sum(n for n, _s in ran), sum(s for _n, s in ran))
    text.write(line + "\n")
    stats.strip_dirs().sort_stats("cumulative").print_stats(limit)
    text.write("\n---- by own time ----\n")
    stats.sort_stats("tottime").print_stats(limit)
    return text.getvalue()


def profile_phases(run_phases, prefix: str, limit: int, commands: bool = False) -> tuple:
    """Run ``run_phases(profile_prefix)`` under cProfile; write each phase's report to ``prefix-PHASE.txt``.

    Returns what ``run_phases`` returned and {phase: report file}."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    runs = run_phases(prefix)
    files = {}
    for phase in PHASES:
        with open("%s-%s.txt" % (prefix, phase), "w") as handle:
            handle.write(profile_report("%s-%s" % (prefix, phase), limit, commands))
        files[phase] = "%s-%s.txt" % (prefix, phase)
    return runs, files


def code_meta(repo: str = REPO, pyroute2: bool = True, branch: bool = False) -> dict:
    """The JSON's ``code``: the commit measured, uncommitted changes in its plugins/, ansible-core's version (and
    pyroute2's)."""
    from ansible.release import __version__ as ansible_version

    git = ["git", "-C", repo]
    meta = {"commit": run(git + ["rev-parse", "HEAD"], check=False).stdout.strip()}
    if branch:
        meta["branch"] = run(git + ["rev-parse", "--abbrev-ref", "HEAD"], check=False).stdout.strip()
    uncommitted = run(git + ["status", "--porcelain", "--", "plugins"], check=False).stdout.splitlines()
    meta.update(uncommitted_in_plugins=uncommitted, ansible_core=ansible_version)
    if pyroute2:
        from pyroute2 import __version__ as pyroute2_version

        meta["pyroute2"] = pyroute2_version
    return meta


def machine_meta(**extra) -> dict:
    """The JSON's ``machine``: kernel, CPUs, Python, then ``extra`` (load averages, tool versions)."""
    return dict({"kernel": platform.release(), "cpus": os.cpu_count(), "python": sys.version.split()[0]}, **extra)


def write_json(path: str, data: dict, **kwargs) -> None:
    with open(path, "w") as handle:
        json.dump(data, handle, indent=1, **kwargs)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class Samples(dict):
    """tool -> key -> [one value per round]; ``medians()`` is tool -> key -> median."""

    def keep(self, tool: str, row: dict) -> None:
        for key, value in row.items():
            self.setdefault(tool, {}).setdefault(key, []).append(value)

    def medians(self) -> dict:
        return {tool: {key: median(values) for key, values in row.items()} for tool, row in self.items()}
