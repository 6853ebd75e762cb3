"""The facts layer: a managed host's kernel as literal data, so that the planners of every driver run without root.

A module run reads the kernel through its netlink sessions (kernel.NetnsSession: ``links``, ``link``, ``by_index``,
``addresses``, ``routes``, ``port_flags``, ``sysctl``, ``index``) and adds changes to ``host.plan``; nothing is written
before ``Host.execute`` runs the plan, which a check-mode run never does. Here those reads answer from facts:

- ``FactsSession``: the read side of kernel.NetnsSession over literal data (links as kernel.Link values, addresses,
  routes, the main table with the kernel's connected routes, bridge port flags, FDB and neighbour entries, sysctls).
  Every other public method of NetnsSession raises ``PlanningWrite``: a planner that writes while planning fails its
  test. Its ``rtnl`` (``FactsRtnl``) refuses every raw request: planners read through the session.
- ``FactsKernel``: kernel.Kernel's interface (``host``, ``sandbox(ref)``, ``session(where)``, ``run``,
  ``forget_sandbox``, ``close``; ``sandbox_exists``, ``sandbox_is_stub``, ``is_host_namespace``,
  ``namespace_identity``, ``has_module``) handing out the FactsSession of each sandbox key; ``run`` (an Op executed)
  raises, as do its namespace verbs.
- ``Machine``: one host's facts for one module run: the host's session, its sandboxes' sessions by key, the nft ruleset
  (``nft -j list ruleset``), the kernel modules it has and its stub namespace names.
- ``Runner``: runs a module file's ``main()`` (plugins/modules/cnm_*.py: its argument spec, its ``build`` and
  host.run_module) in check mode over a Machine, with the store in a file under pytest's ``tmp_path`` (store.Store
  works there without root: a directory, a lock file and an atomic write), and returns a ``Run``: the module's result
  and the Host it planned with (``host.plan``, ``host.state``).

Planners read the machine only through ``host.kernel``. ``Runner`` makes netns's namespace-file functions
(``sandbox_exists``, ``sandbox_is_stub``, ``sandbox_path``, ``same_namespace``) raise ``PastTheKernel`` during a run,
so a planner that looks past the kernel fails its test. The seams that remain, patched with pytest's monkeypatch
(undone after each test), are what Host.open opens and what a module runs:

- ``netns.current_cookie``, ``host.Store``, ``host.persistent_path``, ``kernel.Kernel``: what Host.open opens
  (SO_NETNS_COOKIE, /run/cnm-network, /var/lib/cnm-network, netlink sockets) -> ``facts``, a Store rooted at
  ``tmp_path``, no persistent copy, the Machine's FactsKernel; Host.open itself runs as it is (lock, load, recover);
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
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace

from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from conftest import load_plugin

from ansible_collections.cnm.network.plugins.module_utils import (
    firewall,
    kernel,
    netns,
)
from ansible_collections.cnm.network.plugins.module_utils import host as host_module
from ansible_collections.cnm.network.plugins.module_utils.errors import Gone, option_error
from ansible_collections.cnm.network.plugins.module_utils.records import state_to_dict
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST, SandboxRef
from ansible_collections.cnm.network.plugins.module_utils.store import Store, check

NFT = "/facts/sbin/nft"
EMPTY_RULESET = {
    "nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}]
}

# The reads of kernel.NetnsSession a planner may make; ``sysctls`` is a batched read a later NetnsSession may have.
READS = (
    "links",
    "link",
    "by_index",
    "addresses",
    "routes",
    "main_routes",
    "fdb",
    "neighbours",
    "port_flags",
    "port_options",
    "port_fdb",
    "learned_fdb",
    "sysctl",
    "sysctls",
    "xfrm_states",
    "xfrm_policies",
    "zebras",
    "frr_daemons",
    "index",
    "close",
)


class PlanningWrite(AssertionError):
    """A planner wrote to the kernel (or ran a command that changes the host) while planning."""


class PastTheKernel(AssertionError):
    """A planner looked at the machine past host.kernel (a namespace file directly)."""


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
    kernel lacks (or a device that does not exist); ``xfrm``: (states, policies) as the XFRM client dumps them."""

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
        port_options: dict[str, dict[str, bool]] | None = None,
        port_fdb: dict[str, Iterable[str]] | None = None,
        learned_fdb: dict[str, Iterable[str]] | None = None,
        xfrm: tuple[list, list] = ((), ()),
        zebras: dict[tuple[int, str], Iterable[tuple[str, str | None]]] | None = None,
        frr_daemons: Iterable[tuple[int, str]] = (),
    ) -> None:
        self.label = label
        self._links = {link.name: link for link in links}
        self._by_index = {link.index: link for link in self._links.values()}
        for facts in (addresses, routes, port_flags, fdb, neighbours, port_options, port_fdb, learned_fdb):
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
        self._port_options = {name: dict(found) for name, found in (port_options or {}).items()}
        self._port_fdb = {name: sorted(found) for name, found in (port_fdb or {}).items()}
        self._learned_fdb = {name: sorted(found) for name, found in (learned_fdb or {}).items()}
        self._fdb = {name: list(found) for name, found in (fdb or {}).items()}
        self._neighbours = {name: list(found) for name, found in (neighbours or {}).items()}
        self._sysctls = dict(sysctls or {})
        self._xfrm_states, self._xfrm_policies = [dict(s) for s in xfrm[0]], [dict(p) for p in xfrm[1]]
        self._zebras = {key: list(found) for key, found in (zebras or {}).items()}  # (family, ifname) -> entries
        self._frr_daemons = list(frr_daemons)
        self.rtnl = FactsRtnl(label)

    # ---- the reads of kernel.NetnsSession ----
    def links(self) -> dict[str, kernel.Link]:
        return dict(self._links)

    def xfrm_states(self) -> list:
        return list(self._xfrm_states)

    def xfrm_policies(self) -> list:
        return list(self._xfrm_policies)

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

    def main_routes(self) -> list:
        """The whole main table: the kernel's connected route of each address (not of lo's, which live in the local
        table), then the routes someone added."""
        connected = [
            kernel.Route(address.network, None, link.index)
            for link in self._links.values()
            if link.name != "lo"
            for address in self.addresses(link.index)
        ]
        return connected + self.routes()

    def fdb(self, index: int, noarp: bool = True) -> list:  # the facts hold no NOARP entries
        link = self._by_index.get(index)
        return list(self._fdb.get(link.name, [])) if link is not None else []

    def neighbours(self, index: int) -> list:
        link = self._by_index.get(index)
        return list(self._neighbours.get(link.name, [])) if link is not None else []

    def zebras(self, family: int, index: int) -> list:
        link = self._by_index.get(index)
        return list(self._zebras.get((family, link.name), [])) if link is not None else []

    def frr_daemons(self) -> list:
        return list(self._frr_daemons)

    def port_flags(self, index: int) -> tuple[bool, bool]:
        link = self._by_index.get(index)
        return self._port_flags.get(link.name, (False, False)) if link is not None else (False, False)

    def port_options(self, index: int) -> dict[str, bool]:
        """(isolated, hairpin) from port_flags, neigh_suppress and learning the kernel's defaults unless given."""
        link = self._by_index.get(index)
        name = link.name if link is not None else None
        isolated, hairpin = self.port_flags(index)
        options = {"isolated": isolated, "hairpin": hairpin, "neigh_suppress": False, "learning": True}
        options.update(self._port_options.get(name, {}))
        return options

    def port_fdb(self, index: int) -> list:
        link = self._by_index.get(index)
        return list(self._port_fdb.get(link.name, [])) if link is not None else []

    def learned_fdb(self, index: int) -> list:
        link = self._by_index.get(index)
        return list(self._learned_fdb.get(link.name, [])) if link is not None else []

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


for _name, _value in vars(kernel.NetnsSession).items():
    if callable(_value) and not _name.startswith("_") and _name not in READS:
        setattr(FactsSession, _name, _forbidden(_name))


class FactsRtnl:
    """A session's raw netlink client: planners read through the session, so every request here raises."""

    def __init__(self, label: str) -> None:
        self.label = "%s (rtnl)" % label

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _forbidden("rtnl." + name).__get__(self)


class FactsKernel:
    """kernel.Kernel over FactsSessions: the host's, and one per sandbox key for the sandboxes that exist; the
    sandboxes whose name is a stub; the kernel modules and ciphers it has, and whether it has XFRM. No facts sandbox
    is the host's own namespace, and a sandbox's namespace identity is its key."""

    def __init__(
        self,
        host: FactsSession,
        sandboxes: dict[str, FactsSession] | None = None,
        stubs: Iterable[str] = (),
        modules: Iterable[str] = (),
        ciphers: Iterable[str] = (),
        xfrm: bool = False,
    ) -> None:
        self.host = host
        self.sandboxes = dict(sandboxes or {})
        self.stubs, self.modules, self.ciphers = frozenset(stubs), frozenset(modules), frozenset(ciphers)
        self.xfrm = xfrm
        self.label = "the kernel"
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

    def run_batch(self, ops: list, keep_going: bool) -> list:
        raise PlanningWrite("Ops executed while planning: %r" % (ops,))

    def sandbox_exists(self, ref: SandboxRef) -> bool:
        return ref.key in self.sandboxes

    def sandbox_is_stub(self, ref: SandboxRef) -> bool:
        return ref.key in self.stubs

    def is_host_namespace(self, ref: SandboxRef) -> bool:
        return False

    def namespace_identity(self, ref: SandboxRef):
        return ("facts", ref.key) if ref.key in self.sandboxes else None

    def has_module(self, name: str) -> bool:
        return name in self.modules

    def has_xfrm(self) -> bool:
        return self.xfrm

    def has_cipher(self, name: str) -> bool:
        return name in self.ciphers

    def forget_sandbox(self, ref: SandboxRef) -> None:
        self.opened.pop(ref.key, None)

    def close(self) -> None:
        self.opened.clear()


for _name in kernel.Kernel.NAMESPACE_VERBS:
    setattr(FactsKernel, _name, _forbidden(_name))


@dataclass
class Machine:
    """One managed host's facts for one module run."""

    host: FactsSession
    sandboxes: dict[str, FactsSession] = field(default_factory=dict)  # by sandbox key ("netns:app")
    ruleset: dict = field(default_factory=lambda: EMPTY_RULESET)  # what ``nft -j list ruleset`` prints
    modules: frozenset = frozenset()  # kernel modules it has, of those planning asks about ("ipvlan", "8021q")
    stubs: frozenset = frozenset()  # sandbox keys whose namespace name is a stub (netns.is_stub)
    ciphers: frozenset = frozenset()  # the crypto API's algorithms (/proc/crypto names), as "gcm(aes)"
    xfrm: bool = False  # whether the kernel has IPsec's XFRM

    def kernel(self) -> FactsKernel:
        return FactsKernel(self.host, self.sandboxes, self.stubs, self.modules, self.ciphers, self.xfrm)


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
        return state_to_dict(self.host.state)


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
        store.save(check(dict(data, version=data.get("version", 2)), store.path))

    def stored(self) -> dict | None:
        """What the store file holds now (None: no file)."""
        store = self.store()
        store.load()
        return state_to_dict(store.data) if store.loaded_from else None

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

        def past_the_kernel(name: str):
            def read(*args, **kwargs):
                raise PastTheKernel("netns.%s%r while planning: planners ask host.kernel" % (name, args))

            return read

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

        for name in ("sandbox_exists", "sandbox_is_stub", "sandbox_path", "same_namespace"):
            monkeypatch.setattr(netns, name, past_the_kernel(name))
        monkeypatch.setattr(netns, "current_cookie", lambda: "facts")
        monkeypatch.setattr(host_module, "Store", lambda key, persistent=None: Store(key, root=self.root))
        monkeypatch.setattr(host_module, "persistent_path", lambda: None)
        monkeypatch.setattr(kernel, "Kernel", lambda: self.kernel)
        monkeypatch.setattr(host_module.Host, "open", staticmethod(host_open))
        monkeypatch.setattr(firewall, "NFT_CANDIDATES", ())
        monkeypatch.setattr(firewall, "shutil", SimpleNamespace(which=lambda name: NFT if name == "nft" else None))
        monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda module, name, *args, **kwargs: None)
        monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
        monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
        monkeypatch.setattr(basic.AnsibleModule, "warn", lambda module, warning: self.warnings.append(warning))
        monkeypatch.setattr(netns, "CONTAINERS", netns.Containers())
