# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host: everything one module run holds, and the one flow every module follows.

read current -> compute desired -> plan -> report (check mode) or apply, undoing on failure.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Optional

from ansible_collections.cnm.network.plugins.module_utils import dns, firewall, kernel, netns
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError, option_error
from ansible_collections.cnm.network.plugins.module_utils.firewall import Pending, conntrack_flow, plan_firewall
from ansible_collections.cnm.network.plugins.module_utils.model import (
    ENDPOINT_ALIAS_PREFIX,
    EndpointSpec,
    network_from_record,
)
from ansible_collections.cnm.network.plugins.module_utils.omitted import keep_omitted, keep_omitted_endpoint
from ansible_collections.cnm.network.plugins.module_utils.plan import Op, Plan
from ansible_collections.cnm.network.plugins.module_utils.records import (
    EndpointRecord,
    copy_state,
    endpoint_key,
    state_to_dict,
)
from ansible_collections.cnm.network.plugins.module_utils.recover import recover
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST, SandboxRef
from ansible_collections.cnm.network.plugins.module_utils.store import Store, persistent_path


@dataclass
class Leases:
    """What a run learns about its endpoints' sandboxes while it plans."""

    new_sandboxes: set = field(default_factory=set)  # sandbox keys this plan creates: nothing to read, no stale lease
    swept: set = field(default_factory=set)  # networks whose leases were checked against their sandboxes
    reclaimed: list = field(default_factory=list)  # the leases of vanished sandboxes, as the result reports them


class Host:
    """One module run on one host namespace: the netlink sessions, the locked store, the state planning edits, the plan,
    and what planning leaves for the firewall's step (``pending``)."""

    def __init__(self, kernel_sessions: kernel.Kernel, store: Store, module=None) -> None:
        self.kernel = kernel_sessions
        self.module = module
        self.check_mode = bool(module is not None and module.check_mode)
        self.warnings: list = []
        self.store = store
        self.original = store.snapshot()
        self.state = store.snapshot()  # the store as it will be after the plan: planning edits this copy
        self.plan = self._new_plan()
        self.pending = Pending()
        self.leases = Leases()
        self.resolver_follows = True  # the run's last change makes the resolver match (restore defers it: dns.py)
        self._networks: dict = {}  # name -> (its record, the network it describes): parsed once per record

    def _new_plan(self) -> Plan:
        """An empty plan whose data changes (Ops) this run executes (run_op)."""
        if self.kernel is None:
            return Plan()
        return Plan(executor=self.run_op, batch_executor=self.kernel.run_batch)

    def run_op(self, op: Op) -> None:
        """Execute an Op: the store's write, a verb of the firewall (nft, iptables-restore, host sysctls recorded
        in the store, conntrack) or of the resolver (dns.py) with this run; any other on the kernel (a namespace's
        session, a named namespace)."""
        if op.verb == "save_store":
            self.save_store(*op.args)
        elif op.verb in firewall.VERBS:
            firewall.VERBS[op.verb](self, *op.args, **dict(op.kwargs))
        elif op.verb in dns.VERBS:
            dns.VERBS[op.verb](self, *op.args)
        else:
            self.kernel.run(op)

    def save_store(self, data: dict) -> None:
        """Write the store as ``data``; a failed write leaves the store holding what its file holds."""
        held = self.store.data  # save sets data first
        try:
            self.store.save(data)
        except BaseException:
            self.store.data = held
            raise

    @classmethod
    @contextmanager
    def open(cls, module=None) -> Iterator[Host]:
        netns.CONTAINERS.attach(module)  # container sandboxes are resolved with this module's run_command
        store = Store(netns.current_cookie(), persistent=persistent_path())
        store.lock()
        try:
            store.load()
            sessions = kernel.Kernel()
            try:
                host = cls(sessions, store, module)
                if store.loaded_from is None:  # a lost store: the kernel's cnm objects say what it held
                    recover(host)
                yield host
            finally:
                sessions.close()
        finally:
            store.unlock()

    def run_command(self, argv: list, data: Optional[str] = None) -> tuple:
        """A command on the managed host (nft): (rc, stdout, stderr), never raising on a non-zero rc."""
        return self.module.run_command(argv, data=data, check_rc=False, binary_data=False)

    def predict_after_earlier_task(self, target: str, what: str, missing: str) -> None:
        """Check mode only: what a later task does to an object an earlier task of the play creates.

        In check mode the earlier task changed nothing, so the object is missing; the real run would
        find it. Report the change (it is never executed) with a warning instead of failing.
        """
        self.warnings.append(
            "%s does not exist yet; in check mode this is reported as it would be done once an earlier task creates it"
            % missing
        )
        self.plan.add(target, what, None, {"after": "an earlier task of the play"}, _never)

    # ---- networks in the store ----
    def network(self, name: str, option: str = "network"):
        record = self.state["networks"].get(name)
        if record is None:
            known = ", ".join(sorted(self.state["networks"])) or "none yet"
            raise option_error(option, name, "is not a cnm network on this host (known: %s; or 'host', 'none')" % known)
        parsed = self._networks.get(name)
        if parsed is None or parsed[0] is not record:  # planning replaces a record, never edits it in place
            parsed = self._networks[name] = (record, network_from_record(name, record))
        return parsed[1]

    def declared(self, params: dict, driver: str) -> dict:
        """A network module's options, those it left out taken from the network as it is (omitted.py)."""
        return keep_omitted(params, self.state["networks"].get(params["name"]), driver)

    def declared_endpoint(self, spec: EndpointSpec, options: dict) -> EndpointSpec:
        """An endpoint as asked for, what its item left out taken from the endpoint as attached (omitted.py)."""
        return keep_omitted_endpoint(
            spec, options, self.state["endpoints"].get(endpoint_key(spec.network, spec.sandbox.key))
        )

    def endpoints_of(self, network: str) -> dict:
        """Endpoint records of a network whose sandbox still exists; leases of vanished sandboxes are reclaimed."""
        self.reclaim_vanished(network)
        return {key: record for key, record in self.state["endpoints"].items() if record.network == network}

    def reclaim_vanished(self, network: str) -> None:
        """Reclaim the leases (and ports, and a veth left behind) of a network's endpoints whose sandbox vanished."""
        if network not in self.leases.swept:  # once per network and run: a sandbox does not vanish while we plan
            self.leases.swept.add(network)
            for key, record in list(self.state["endpoints"].items()):
                if (
                    record.network == network
                    and record.sandbox not in self.leases.new_sandboxes
                    and not self.kernel.sandbox_exists(SandboxRef.from_key(record.sandbox))
                ):
                    del self.state["endpoints"][key]
                    sandbox = record.sandbox
                    reclaimed = {"network": network, "sandbox": sandbox, "ipv4_address": record.ipv4_address}
                    ports = self.drop_ports(self.ports_of(network, sandbox))  # its address may go to the next endpoint
                    self.forget_flows(record)
                    if ports:
                        reclaimed["ports"] = ports
                    self._drop_stray_veth(key, record)
                    self.leases.reclaimed.append(reclaimed)

    def _drop_stray_veth(self, key: str, record: EndpointRecord) -> None:
        """A namespace deleted by hand while a process holds it lives on, with the endpoint's address, on the bridge:
        its host veth goes with the lease, so the address's next holder is alone on the network."""
        name = record.host_ifname
        link = self.kernel.host.link(name) if name else None
        if link is not None and link.alias == ENDPOINT_ALIAS_PREFIX + key:
            self.plan.add(
                "endpoint %s on %s" % (record.network, record.sandbox),
                "delete %s, the veth of vanished %s" % (name, record.sandbox),
                {"host_interface": name},
                None,
                Op(HOST, "delete_link", (name,)),
                forgets=(("endpoint", key),),
            )

    def forget_flows(self, record: EndpointRecord) -> None:
        """An endpoint left: its flows go with it, as Docker clears an endpoint's conntrack entries when it leaves (a
        masqueraded flow would otherwise live on, for days if TCP, and reach the address's next holder)."""
        self.pending.addresses.update(a for a in (record.ipv4_address, record.ipv6_address) if a)

    # ---- published ports ----
    def ports_of(self, network: str, sandbox: str) -> list:
        """The keys of the port entries an endpoint published."""
        return sorted(
            key
            for key, entry in self.state.get("ports", {}).items()
            if (entry.network, entry.sandbox) == (network, sandbox)
        )

    def drop_ports(self, keys: list) -> list:
        """Remove port entries and have their conntrack entries flushed; the firewall follows the store in the same run.

        The one way a published port goes: unpublished, with its endpoint detached, its lease reclaimed or its network
        removed. A flow that outlived its mapping would keep reaching the address, which the next endpoint may take."""
        ports = self.state.get("ports", {})
        dropped = []
        for key in keys:
            entry = ports.pop(key, None)
            if entry is not None:
                self.pending.flows.add(conntrack_flow(entry))
                dropped.append(key)
        if "ports" in self.state and not ports:
            del self.state["ports"]
        return dropped

    def _drop_orphan_ports(self) -> None:
        """Port entries whose endpoint or network is no longer in the store (an older run's store, or edited) go:
        the firewall never DNATs to an address no endpoint of the port's holds."""
        endpoints, networks = self.state["endpoints"], self.state["networks"]
        orphans = [
            key
            for key, entry in self.state.get("ports", {}).items()
            if entry.network not in networks or endpoint_key(entry.network, entry.sandbox) not in endpoints
        ]
        for key in sorted(orphans):
            entry = self.state["ports"][key]
            self.warnings.append(
                "published port %s of %s on %s removed: its endpoint or network is no longer in "
                "the store" % (key, entry.sandbox, entry.network)
            )
        self.drop_ports(orphans)
        self._follow_addresses()

    def _follow_addresses(self) -> None:
        """An endpoint whose address changed (a new ``ipv4_address``) takes its ports along: they DNAT to the address it
        holds now, never to the old one the next endpoint may get; a family it no longer has drops the port."""
        ports = self.state.get("ports", {})
        for key in sorted(ports):
            entry = ports[key]
            record = self.state["endpoints"][endpoint_key(entry.network, entry.sandbox)]
            had, held = (entry.container_ip, entry.container_ipv6), record.addresses
            now = tuple(new if old is not None else None for old, new in ((had[0], held[0]), (had[1], held[1])))
            if now == had:
                continue
            if None in [new for old, new in ((had[0], now[0]), (had[1], now[1])) if old is not None]:
                self.warnings.append(
                    "published port %s of %s on %s removed: the endpoint no longer has an address "
                    "of its family" % (key, entry.sandbox, entry.network)
                )
                self.drop_ports([key])
                continue
            self.pending.flows.add(conntrack_flow(entry))
            ports[key] = replace(entry, container_ip=now[0], container_ipv6=now[1])

    # ---- finishing ----
    def execute(self, check: bool) -> dict:
        """Add the firewall and the store write as the last changes, run the plan, return the common result keys."""
        self._drop_orphan_ports()
        plan_firewall(self)  # every run reconciles the whole table: drift from any cause is repaired
        for change in self.pending.after_firewall:
            self.plan.add(*change)
        if self.resolver_follows:
            dns.plan_resolver(self)  # after the firewall: its guard of the gateways' port 53 comes first
        self._plan_store_write()
        try:
            self.plan.execute(check)
        except CnmError as exc:
            note = self._store_after_failure()
            if not note:
                raise
            raise CnmError("%s; %s" % (exc, note), **exc.details) from exc
        result = {"changed": self.plan.changed, "changes": self.plan.summary(), "diff": self.plan.diff()}
        if self.leases.reclaimed:
            result["reclaimed"] = self.leases.reclaimed
        return result

    def _plan_store_write(self) -> None:
        if self.state != self.original:
            before, after = copy_state(self.original), copy_state(self.state)
            self.plan.add(
                "store",
                "write the store",
                _store_view(before),
                _store_view(after),
                Op(HOST, "save_store", (after,)),
                Op(HOST, "save_store", (before,)),
            )

    def _store_after_failure(self) -> str:
        """After a failed plan: make the store describe the kernel, and say how (the text added to the failure).

        The undo put back what it could; the changes without one (a bridge, veth or namespace deleted) stay done,
        while the store write, the plan's last change, never happened. So the records those changes removed for good
        (Plan.forgotten) go from the store as it is now, their published ports with them, and the firewall, host
        sysctls and conntrack follow in a second, small plan, as in any run; if that plan fails too (its own undo
        runs), the store is written alone and the rules left are drift the next run removes."""
        forgotten, partly = self.plan.forgotten()
        partial = ""
        if partly:
            partial = (
                "; %s partly removed: the store keeps listing it, cnm_info reports the parts already gone, "
                "the next run removes the rest" % ", ".join("%s %s" % record for record in partly)
            )
        if not forgotten:
            return partial[2:]
        self.original, self.state = self.store.snapshot(), self.store.snapshot()
        self.plan, self.pending = self._new_plan(), Pending()
        networks, endpoints = [], []
        for kind, key in forgotten:
            if kind == "network" and self.state["networks"].pop(key, None) is not None:
                networks.append(key)
            for name, record in sorted(self.state["endpoints"].items()):
                if (kind, key) in (("endpoint", name), ("sandbox", record.sandbox)):
                    del self.state["endpoints"][name]
                    endpoints.append("%s on %s" % (record.sandbox, record.network))
        ports = sorted(
            key
            for key, entry in self.state.get("ports", {}).items()
            if entry.network not in self.state["networks"]
            or endpoint_key(entry.network, entry.sandbox) not in self.state["endpoints"]
        )
        self.drop_ports(ports)
        gone = [
            "%s %s" % (kind, ", ".join(names))
            for kind, names in (("network(s)", networks), ("endpoint(s)", endpoints), ("published port(s)", ports))
            if names
        ]
        if not gone:
            return partial[2:]
        note = "the store no longer lists what went with them: %s" % "; ".join(gone)
        alone = copy_state(self.state)
        try:
            plan_firewall(self)
            if self.resolver_follows:
                dns.plan_resolver(self)
            self._plan_store_write()
            self.plan.execute(False)
        except CnmError as exc:
            try:
                self.store.save(alone)
            except OSError as error:
                return "%s, but the store could not be written (%s)%s" % (note, error, partial)
            return (
                "%s; the firewall still holds their rules (%s): cnm_info reports them as drift, the next run "
                "removes them%s" % (note, exc, partial)
            )
        return note + " (the firewall and host sysctls follow)" + partial


def _never() -> None:
    raise AssertionError("planned only in check mode")


def _store_view(data: dict) -> dict:
    return {key: value for key, value in state_to_dict(data).items() if key != "version"}


def run_module(module, build: Callable[[Host], dict]) -> None:
    """The body every module shares: open the host, let ``build`` plan, execute, exit."""
    try:
        with Host.open(module) as host:
            extra = build(host) or {}
            result = host.execute(check=module.check_mode)
            result.update(extra)
    except CnmError as exc:
        module.fail_json(msg=str(exc), **exc.details)
    for warning in host.warnings:
        module.warn(warning)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)
