"""The facts layer: a managed host's kernel as literal data, so that the planners of every driver run without root.

A module run reads the kernel through its netlink sessions (kernel.NetnsSession: ``links``, ``link``, ``by_index``,
``addresses``, ``routes``, ``port_flags``, ``sysctl``, ``index``) and adds changes to ``host.plan``; nothing is written
before ``Host.execute`` runs the plan, which a check-mode run never does. Here those reads answer from facts:

- ``FactsSession``: the read side of kernel.NetnsSession over literal data (links as kernel.Link values, addresses,
  routes, bridge port flags, FDB and neighbour entries, sysctls). Every other public method of NetnsSession raises
  ``PlanningWrite``: a planner that writes while planning fails its test. Its ``rtnl`` is a ``FactsRtnl``.
- ``FactsRtnl``: the raw dumps that planners read past the session, through ``session.rtnl``: ``routes()`` (every route
  of the main table, the kernel's connected routes included: bridge.check_host_routes) and ``neighbours(family,
  index)`` (the FDB and neighbour entries of a VXLAN device: overlay.plan_overlay_present, recover.read_facts). Its
  writes raise too.
- ``FactsKernel``: kernel.Kernel's interface (``host``, ``sandbox(ref)``, ``session(where)``, ``run``,
  ``forget_sandbox``, ``close``) handing out the FactsSession of each sandbox key; ``run`` (an Op executed) raises.
- ``Machine``: one host's facts for one module run: the host's session, its sandboxes' sessions by key, the nft ruleset
  (``nft -j list ruleset``) and the kernel modules it has.
- ``Runner``: runs a module file's ``main()`` (plugins/modules/cnm_*.py: its argument spec, its ``build`` and
  host.run_module) in check mode over a Machine, with the store in a file under pytest's ``tmp_path`` (store.Store
  works there without root: a directory, a lock file and an atomic write), and returns a ``Run``: the module's result
  and the Host it planned with (``host.plan``, ``host.state``).

Seams: where planning looks at the machine past the sessions, ``Runner`` patches with pytest's monkeypatch (undone after
each test) to answer from the Machine. A production change that routed these reads through the sessions (or gave
Host.open its store and kernel) would remove the seam:

- ``netns.sandbox_exists``, ``netns.sandbox_is_stub``: /run/netns and /proc (an nsfs file, a stub name) -> whether the
  Machine has a session for the sandbox's key, or lists the key in ``stubs``;
- ``netns.sandbox_path``, ``netns.same_namespace``: os.stat of namespace files (is a sandbox the host's own namespace?)
  -> a symbolic path ``facts:KEY``, the host being netns.THREAD_NETNS; no facts sandbox is the host's namespace;
- ``endpoint._namespace_identity``: os.stat of a sandbox's namespace file, read by the endpoint planner itself (one
  sandbox named two ways gets one endpoint per network) -> the sandbox's key, None for a missing sandbox;
- ``netns.current_cookie``, ``host.Store``, ``host.persistent_path``, ``kernel.Kernel``: what Host.open opens
  (SO_NETNS_COOKIE, /run/cnm-network, /var/lib/cnm-network, netlink sockets) -> ``facts``, a Store rooted at
  ``tmp_path``, no persistent copy, the Machine's FactsKernel; Host.open itself runs as it is (lock, load, recover);
- ``ipvlan.has_module``: /sys/module and /lib/modules -> ``"ipvlan" in Machine.modules``;
- ``parent.vlan_supported``: /proc/net/vlan, modinfo -> ``"8021q" in Machine.modules``;
- ``firewall.NFT_CANDIDATES``, ``firewall.shutil``: where the nft command is (os.access, PATH) -> /facts/sbin/nft;
- ``AnsibleModule.run_command``: ``nft -j list ruleset`` answers ``Machine.ruleset``; any other command raises
  PlanningWrite (a firewall transaction, modprobe, a container runtime); ``AnsibleModule.get_bin_path`` finds nothing;
- ``AnsibleModule.exit_json``, ``AnsibleModule.fail_json``: raise ``ModuleExit`` carrying the result;
  ``AnsibleModule.warn``: kept in ``Runner.warnings`` (not Ansible's process-wide list);
- ``netns.CONTAINERS``: a fresh resolver per test (Host.open attaches the run's module to it).
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from conftest import load_plugin

from ansible_collections.cnm.network.plugins.module_utils import (
    endpoint,
    firewall,
    ipvlan,
    kernel,
    netns,
    parent,
)
from ansible_collections.cnm.network.plugins.module_utils import host as host_module
from ansible_collections.cnm.network.plugins.module_utils.errors import Gone, option_error
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST, SandboxRef
from ansible_collections.cnm.network.plugins.module_utils.store import Store

NFT = "/facts/sbin/nft"
EMPTY_RULESET = {
    "nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}]
}
RTPROT_STATIC = 4  # a route someone added (iproute2's default protocol is boot, 3; the collection's is static)

# The reads of kernel.NetnsSession a planner may make; ``sysctls`` is a batched read a later NetnsSession may have.
READS = ("links", "link", "by_index", "addresses", "routes", "port_flags", "sysctl", "sysctls", "index", "close")


class PlanningWrite(AssertionError):
    """A planner wrote to the kernel (or ran a command that changes the host) while planning."""


def _forbidden(name: str):
    def method(self, *args, **kwargs):
        raise PlanningWrite(
            "%s: %s%r while planning (a write, or a read of kernel.NetnsSession the facts layer does not answer: add "
            "it to facts.READS)" % (self.label, name, args + tuple(sorted(kwargs.items())))
        )

    method.__name__ = name
    return method


class FactsSession:
    """The read side of one namespace's kernel.NetnsSession, answered from literal facts.

    ``links``: kernel.Link values; ``addresses``: {ifname: ["172.30.0.1/24", ...]}; ``routes``: {ifname: [(dst,
    gateway or None), ...]} (routes someone added, as NetnsSession.routes shows them: not the kernel's connected
    ones); ``port_flags``: {ifname: (isolated, hairpin)}; ``fdb``: {ifname: [(mac, vtep), ...]}; ``neighbours``:
    {ifname: [(mac, address), ...]}; ``sysctls``: {path below /proc/sys: value}, a missing path being a sysctl this
    kernel lacks (or a device that does not exist)."""

    fd = None  # no namespace file behind it (the real session's fd is used only when a change runs)

    def __init__(
        self,
        label: str,
        links: Iterable[kernel.Link] = (),
        addresses: dict[str, Iterable[str]] | None = None,
        routes: dict[str, Iterable[tuple[str, str | None]]] | None = None,
        port_flags: dict[str, tuple[bool, bool]] | None = None,
        fdb: dict[str, Iterable[tuple[str, str]]] | None = None,
        neighbours: dict[str, Iterable[tuple[str, str]]] | None = None,
        sysctls: dict[str, str] | None = None,
    ) -> None:
        self.label = label
        self._links = {link.name: link for link in links}
        self._by_index = {link.index: link for link in self._links.values()}
        for facts in (addresses, routes, port_flags, fdb, neighbours):
            unknown = sorted(set(facts or ()) - set(self._links))
            if unknown:
                raise ValueError("%s: facts of interfaces it lacks: %s" % (label, ", ".join(unknown)))
        self._addresses = {
            name: [ipaddress.ip_interface(a) for a in found] for name, found in (addresses or {}).items()
        }
        self._routes = [
            kernel.Route(
                ipaddress.ip_network(dst), ipaddress.ip_address(gateway) if gateway else None, self._links[name].index
            )
            for name, found in (routes or {}).items()
            for dst, gateway in found
        ]
        self._port_flags = dict(port_flags or {})
        self._fdb = {name: list(found) for name, found in (fdb or {}).items()}
        self._neighbours = {name: list(found) for name, found in (neighbours or {}).items()}
        self._sysctls = dict(sysctls or {})
        self.rtnl = FactsRtnl(self)

    # ---- the reads of kernel.NetnsSession ----
    def links(self) -> dict[str, kernel.Link]:
        return dict(self._links)

    def link(self, name: str) -> kernel.Link | None:
        return self._links.get(name)

    def by_index(self, index: int) -> kernel.Link | None:
        return self._by_index.get(index)

    def addresses(self, index: int) -> list:
        link = self._by_index.get(index)
        found = self._addresses.get(link.name, []) if link is not None else []
        return sorted(found, key=lambda address: (address.version, address))

    def routes(self, oif: int | None = None) -> list:
        return [route for route in self._routes if oif is None or route.oif == oif]

    def port_flags(self, index: int) -> tuple[bool, bool]:
        link = self._by_index.get(index)
        return self._port_flags.get(link.name, (False, False)) if link is not None else (False, False)

    def sysctl(self, path: str) -> str | None:
        return self._sysctls.get(path)

    def sysctls(self, paths) -> dict[str, str | None]:
        return {path: self._sysctls.get(path) for path in paths}

    def index(self, name: str) -> int:
        link = self._links.get(name)
        if link is None:
            raise Gone("no interface %s in %s" % (name, self.label))
        return link.index

    def close(self) -> None:
        """Nothing to close."""

    # ---- what FactsRtnl dumps ----
    def fdb_of(self, index: int) -> list:
        link = self._by_index.get(index)
        return list(self._fdb.get(link.name, [])) if link is not None else []

    def neighbours_of(self, index: int) -> list:
        link = self._by_index.get(index)
        return list(self._neighbours.get(link.name, [])) if link is not None else []


for _name, _value in vars(kernel.NetnsSession).items():
    if callable(_value) and not _name.startswith("_") and _name not in READS:
        setattr(FactsSession, _name, _forbidden(_name))


class FactsRtnl:
    """The raw dumps of rtnl.Rtnl that planners read through ``session.rtnl``; every other request raises."""

    label = "rtnl"

    def __init__(self, session: FactsSession) -> None:
        self.session = session
        self.label = "%s (rtnl)" % session.label

    def routes(self) -> list:
        """Every route of the main table as rtnl dumps it: the kernel's connected route of each address (not of lo's,
        which live in the local table) and the routes someone added."""
        found = []
        for link in self.session.links().values():
            if link.name == "lo":
                continue
            for address in self.session.addresses(link.index):
                found.append(_raw_route(address.network, None, link.index, kernel.RTPROT_KERNEL))
        for route in self.session.routes():
            found.append(_raw_route(route.dst, route.gateway, route.oif, RTPROT_STATIC))
        return found

    def neighbours(self, family: int, index: int) -> list:
        """Permanent entries of one device: (MAC, VTEP) for AF_BRIDGE (its FDB), (MAC, IP) for AF_INET."""
        if family == socket.AF_BRIDGE:
            return self.session.fdb_of(index)
        if family == socket.AF_INET:
            return self.session.neighbours_of(index)
        raise PlanningWrite("%s: neighbours of family %d: no facts" % (self.label, family))

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _forbidden("rtnl." + name).__get__(self)


def _raw_route(dst, gateway, oif: int, protocol: int) -> dict:
    return {
        "family": socket.AF_INET if dst.version == 4 else socket.AF_INET6,
        "dst": str(dst.network_address) if dst.prefixlen else None,
        "dst_len": dst.prefixlen,
        "gateway": str(gateway) if gateway else None,
        "oif": oif,
        "table": kernel.RT_TABLE_MAIN,
        "protocol": protocol,
    }


class FactsKernel:
    """kernel.Kernel over FactsSessions: the host's, and one per sandbox key for the sandboxes that exist."""

    def __init__(self, host: FactsSession, sandboxes: dict[str, FactsSession] | None = None) -> None:
        self.host = host
        self.sandboxes = dict(sandboxes or {})
        self.opened: dict[str, FactsSession] = {}  # the sandboxes a run looked into, as Kernel keeps their sessions

    def sandbox(self, ref: SandboxRef) -> FactsSession:
        session = self.sandboxes.get(ref.key)
        if session is None:  # as netns.open_sandbox refuses a missing namespace
            raise option_error(ref.kind, ref.value, "does not name an existing network namespace (no facts)")
        self.opened[ref.key] = session
        return session

    def session(self, where: str) -> FactsSession:
        return self.host if where == HOST else self.sandbox(SandboxRef.from_key(where))

    def run(self, op) -> None:
        raise PlanningWrite("an Op executed while planning: %r" % (op,))

    def forget_sandbox(self, ref: SandboxRef) -> None:
        self.opened.pop(ref.key, None)

    def close(self) -> None:
        self.opened.clear()


@dataclass
class Machine:
    """One managed host's facts for one module run."""

    host: FactsSession
    sandboxes: dict[str, FactsSession] = field(default_factory=dict)  # by sandbox key ("netns:app")
    ruleset: dict = field(default_factory=lambda: EMPTY_RULESET)  # what ``nft -j list ruleset`` prints
    modules: frozenset = frozenset()  # kernel modules it has, of those planning asks about ("ipvlan", "8021q")
    stubs: frozenset = frozenset()  # sandbox keys whose namespace name is a stub (netns.is_stub)

    def kernel(self) -> FactsKernel:
        return FactsKernel(self.host, self.sandboxes)


class ModuleExit(Exception):
    """AnsibleModule.exit_json or fail_json was called: ``result`` is what the module returns."""

    def __init__(self, result: dict) -> None:
        super().__init__(result.get("msg", "exit"))
        self.result = result


@dataclass
class Run:
    """A module run in check mode: its result and the Host it planned with."""

    result: dict
    host: object  # host.Host

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed"))

    @property
    def changes(self) -> list:
        return [(change.target, change.what) for change in self.host.plan.changes]

    @property
    def diff(self) -> dict:
        return self.host.plan.diff()

    @property
    def state(self) -> dict:
        return self.host.state


def load_module(name: str):
    """plugins/modules/NAME.py, imported from its file under its collection name."""
    return load_plugin("modules", name)


class Runner:
    """Module runs in check mode over Machines, with the seams of this file's docstring patched."""

    def __init__(self, tmp_path, monkeypatch) -> None:
        self.root = str(tmp_path / "run-cnm-network")
        self.machine: Machine | None = None
        self.kernel: FactsKernel | None = None
        self.host = None
        self.warnings: list = []  # what the modules warned, in order
        self._patch(monkeypatch)

    # ---- the store ----
    def store(self) -> Store:
        return Store("facts", root=self.root)

    def write_store(self, data: dict | None) -> None:
        """The store file as an earlier run left it (None: no file)."""
        store = self.store()
        if data is None:
            if os.path.exists(store.path):
                os.unlink(store.path)
            return
        store.save(dict(data, version=data.get("version", 2)))

    def stored(self) -> dict | None:
        """What the store file holds now (None: no file)."""
        store = self.store()
        store.load()
        return store.data if store.loaded_from else None

    # ---- runs ----
    def run(self, machine: Machine, module: str, store: dict | None = None, **args) -> Run:
        """``module`` (cnm_bridge...) in check mode with ``args`` over ``machine``; the store file holds ``store``."""
        self.write_store(store)
        self.machine, self.kernel, self.host = machine, machine.kernel(), None
        payload = dict(args, _ansible_check_mode=True, _ansible_diff=True, _ansible_no_log=True)
        result = None
        try:
            with patch_module_args(payload):
                load_module(module).main()
        except ModuleExit as exc:
            result = exc.result
        finally:
            self.machine = None
        if result is None:
            raise AssertionError("%s returned without exit_json or fail_json" % module)
        return Run(result, self.host)  # host None: the module failed before Host.open (on its options)

    def _patch(self, monkeypatch) -> None:
        def machine() -> Machine:
            if self.machine is None:
                raise AssertionError("no module run in progress")
            return self.machine

        def sandbox_path(ref: SandboxRef) -> str:
            return "facts:" + ref.key

        def same_namespace(path_a: str, path_b: str) -> bool:
            def identity(path: str) -> str:
                return "facts:" + HOST if path == netns.THREAD_NETNS else path

            return identity(path_a) == identity(path_b)

        def namespace_identity(ref: SandboxRef):
            return ("facts", ref.key) if ref.key in machine().sandboxes else None

        real_open = host_module.Host.open

        @contextmanager
        def host_open(module=None):
            with real_open(module) as host:
                self.host = host
                yield host

        def run_command(module, args, check_rc=False, data=None, binary_data=False, **kwargs):
            if list(args) == [NFT, "-j", "list", "ruleset"]:
                return 0, json.dumps(machine().ruleset), ""
            raise PlanningWrite("a command while planning: %r" % (list(args),))

        def exit_json(module, **result):
            raise ModuleExit(result)

        def fail_json(module, msg, **result):
            raise ModuleExit(dict(result, failed=True, msg=msg))

        monkeypatch.setattr(netns, "sandbox_exists", lambda ref: ref.key in machine().sandboxes)
        monkeypatch.setattr(netns, "sandbox_is_stub", lambda ref: ref.key in machine().stubs)
        monkeypatch.setattr(netns, "sandbox_path", sandbox_path)
        monkeypatch.setattr(netns, "same_namespace", same_namespace)
        monkeypatch.setattr(endpoint, "_namespace_identity", namespace_identity)
        monkeypatch.setattr(netns, "current_cookie", lambda: "facts")
        monkeypatch.setattr(host_module, "Store", lambda key, persistent=None: Store(key, root=self.root))
        monkeypatch.setattr(host_module, "persistent_path", lambda: None)
        monkeypatch.setattr(kernel, "Kernel", lambda: self.kernel)
        monkeypatch.setattr(host_module.Host, "open", staticmethod(host_open))
        monkeypatch.setattr(ipvlan, "has_module", lambda name: name in machine().modules)
        monkeypatch.setattr(parent, "vlan_supported", lambda host: "8021q" in machine().modules)
        monkeypatch.setattr(firewall, "NFT_CANDIDATES", ())
        monkeypatch.setattr(firewall, "shutil", SimpleNamespace(which=lambda name: NFT if name == "nft" else None))
        monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda module, name, *args, **kwargs: None)
        monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
        monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
        monkeypatch.setattr(basic.AnsibleModule, "warn", lambda module, warning: self.warnings.append(warning))
        monkeypatch.setattr(netns, "CONTAINERS", netns.Containers())
