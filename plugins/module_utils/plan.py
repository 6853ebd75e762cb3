# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan: the ordered kernel and store changes of one module run, each with its undo.

Check mode reports the plan, the real run executes the same plan, so the two cannot disagree.
The diff is rendered from the plan: the before and after of every object it touches.

Every change is an ``Op`` - data: a verb, where and with what, whose undo is its inverse verb (or a second Op) and
whose words are rendered from it. The verbs are those of the kernel's namespace sessions, of kernel.Kernel (named
namespaces), of the firewall (firewall.VERBS: nft, iptables-restore, recorded host sysctls, conntrack) and the
store's write, all run by Host.run_op. A callable stands only for what check mode reports and never runs.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

from ansible_collections.cnm.network.plugins.module_utils import faults
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError, Gone
from ansible_collections.cnm.network.plugins.module_utils.sandbox import HOST, SandboxRef

# What an undo meets when its object is already gone (deleted with its device or sandbox, by hand or by an
# earlier step): nothing is left to put back, so the undo moves on.
GONE_ERRNOS = frozenset((errno.ENOENT, errno.ESRCH, errno.ENODEV, errno.EADDRNOTAVAIL))

# verb (a method of kernel.NetnsSession) -> (its inverse, its words: str.format of the arguments, rendered)
VERBS = {
    "add_address": ("delete_address", "add address {1} to {0}"),
    "delete_address": ("add_address", "remove address {1} from {0}"),
    "add_route": ("delete_route", "add route {1} through {0}"),
    "delete_route": ("add_route", "remove route {1} from {0}"),
    "add_fdb": ("delete_fdb", "add fdb {1} dst {2}"),
    "delete_fdb": ("add_fdb", "remove fdb {1} dst {2}"),
    "add_neighbour": ("delete_neighbour", "add neighbour {2} lladdr {1}"),
    "delete_neighbour": ("add_neighbour", "remove neighbour {2} lladdr {1}"),
    # a local endpoint's static FDB entry on its bridge port (EVPN overlays: what FRR advertises)
    "add_port_fdb": ("delete_port_fdb", "add fdb {1} dev {0} master static"),
    "delete_port_fdb": ("add_port_fdb", "remove fdb {1} dev {0} master static"),
    "write_sysctl": (None, "set {0}={1}"),  # its undo writes the old value: an Op of its own
    # an encrypted overlay's XFRM states and policies (ipsec.py), rendered by their describe(): never their keys
    "add_xfrm_state": ("delete_xfrm_state", "add xfrm state {0}"),
    "delete_xfrm_state": ("add_xfrm_state", "delete xfrm state {0}"),
    "add_xfrm_policy": ("delete_xfrm_policy", "add xfrm policy {0}"),
    "delete_xfrm_policy": ("add_xfrm_policy", "delete xfrm policy {0}"),
}

# Verbs a run of consecutive Ops (one namespace, one verb) may execute as one batch (Plan.batch_executor,
# kernel.Kernel.run_batch): an overlay's FDB and neighbour entries, thousands of them.
BATCHED = frozenset(("add_fdb", "delete_fdb", "add_neighbour", "delete_neighbour"))


@dataclass(frozen=True)
class Op:
    """A kernel change as data: ``verb`` (a method of kernel.NetnsSession) run by the session of namespace ``where``
    (HOST or a sandbox key) with ``args`` and the keyword arguments ``kwargs``, a tuple of (name, value) pairs.

    Keyword arguments stay a tuple of pairs, not a dict, so an Op stays a frozen value that prints as what it does
    (``Op(where='host', verb='set_link', args=('br-web',), kwargs=(('mtu', 1400),))``) and the session's verbs keep
    their signatures (``set_link(name, up=None, mtu=None, ...)``); ``Op.call`` builds one as the call reads. Every
    argument is known while planning (names, addresses, numbers, dicts): what only the run knows (an ifindex, a
    sandbox's namespace) the verb looks up when it runs. A verb of VERBS has its words and its inverse there; any
    other verb's change carries its own words and its undo (``Plan.add``)."""

    where: str
    verb: str
    args: tuple
    kwargs: tuple = ()

    @classmethod
    def call(cls, where: str, verb: str, *args, **kwargs) -> Op:
        """``Op.call(HOST, "set_link", "br-web", mtu=1400)`` for ``session.set_link("br-web", mtu=1400)``."""
        return cls(where, verb, args, tuple(kwargs.items()))

    def inverse(self) -> Op:
        inverse = VERBS[self.verb][0]
        if inverse is None:
            raise CnmError("%s has no inverse with the same arguments" % self.verb)
        return Op(self.where, inverse, self.args, self.kwargs)

    @property
    def what(self) -> str:
        args = [_rendered(arg) for arg in self.args]
        kwargs = {name: _rendered(value) for name, value in self.kwargs}
        if self.verb in VERBS:
            words = VERBS[self.verb][1].format(*args, **kwargs)
        else:
            words = " ".join([self.verb] + args + ["%s=%s" % item for item in kwargs.items()])
        return words if self.where == HOST else "%s in %s" % (words, SandboxRef.from_key(self.where).value)


def _rendered(arg: object) -> str:
    describe = getattr(arg, "describe", None)
    return describe() if callable(describe) else str(arg)


Action = Union[Callable[[], None], Op]


@dataclass
class Change:
    """One change of one object: ``target`` names the object, ``what`` says the change."""

    target: str
    what: str
    before: object
    after: object
    apply: Action
    undo: Action | None = None
    # The store records (``("network", name)``, ``("endpoint", key)``, ``("sandbox", key)``) whose kernel objects
    # this change removes; see ``Plan.forgotten``.
    forgets: tuple = ()


@dataclass
class Plan:
    changes: list = field(default_factory=list)
    # After a failed execute: the applied changes whose effect stayed (no undo, or an undo that failed).
    stayed: list = field(default_factory=list)
    executor: Optional[Callable[[Op], None]] = None  # runs an Op (kernel.Kernel.run)
    # Runs Ops of one verb of BATCHED in one namespace at once (kernel.Kernel.run_batch): (ops, keep_going) -> for
    # each Op run, None (done) or its error; shorter than ops when it stopped at a refusal (without keep_going).
    batch_executor: Optional[Callable[[list, bool], list]] = None

    def add(
        self,
        target: str,
        what: str,
        before: object,
        after: object,
        apply: Action,
        undo: Action | None = None,
        forgets: tuple = (),
    ) -> None:
        self.changes.append(Change(target, what, before, after, apply, undo, tuple(forgets)))

    def op(self, target: str, before: object, after: object, op: Op, forgets: tuple = ()) -> None:
        """A change that is data: its words and its undo (the inverse verb) come from ``op``."""
        self.add(target, op.what, before, after, op, op.inverse(), forgets)

    def sync(self, target: str, before: object, after: object, where: str, verb: str, present, wanted) -> None:
        """Make a set of objects of one kind (``verb`` adds one, its inverse removes one: each item is the verb's
        arguments, hashable) go from ``present`` to ``wanted``: first the removals in ``present``'s order, then the
        additions in ``wanted``'s."""
        inverse = VERBS[verb][0]
        present, wanted = [tuple(args) for args in present], [tuple(args) for args in wanted]
        have, want = set(present), set(wanted)  # an overlay's FDB may hold thousands of entries: no list scans
        for args in present:
            if args not in want:
                self.op(target, before, after, Op(where, inverse, args))
        for args in wanted:
            if args not in have:
                self.op(target, before, after, Op(where, verb, args))

    def run(self, action: Action) -> None:
        if isinstance(action, Op):
            if self.executor is None:
                raise CnmError("no executor for %s" % action.what)
            self.executor(action)
        else:
            action()

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def diff(self) -> dict:
        """Before and after of each touched object; the changes of one object merge (see ``_merge``)."""
        before: dict = {}
        after: dict = {}
        for change in self.changes:
            if change.target not in before:
                before[change.target] = _copy(change.before)
            elif before[change.target] is not None:
                before[change.target] = _merge(change.before, before[change.target])
            after[change.target] = _merge(after.get(change.target), change.after)
        return {"before": _drop_none(before), "after": _drop_none(after)}

    def summary(self) -> list:
        return [change.what for change in self.changes]

    def execute(self, check: bool) -> None:
        """Apply every change in order; on a failure undo the applied ones in reverse and raise."""
        if check:
            return
        done: list = []
        position = 0
        while position < len(self.changes):
            group = _batch(self.changes, position, lambda change: change.apply, self.batch_executor)
            position += len(group)
            applied, failure = self._apply(group)
            done.extend(applied)
            if failure is not None:
                change, exc = failure
                undo_errors, self.stayed, undone = _undo(done, self.run, self.batch_executor)
                message = "%s failed: %s" % (change.what, _reason(exc))
                if undone:
                    message += "; undid %d earlier change(s)" % undone
                kept = [c.what for c in self.stayed if c.forgets]
                if kept:
                    message += "; stays done: %s" % "; ".join(kept)
                if undo_errors:
                    message += "; undo incomplete: " + "; ".join(undo_errors)
                raise CnmError(message, failed_change=change.target) from exc

    def _apply(self, group: list) -> tuple:
        """Apply a change, or a batch of them: (the changes applied in order, None or (the failed change, its error)).
        In a batch a refusal does not stop the changes sent with it: they are applied, and undone with the rest."""
        if len(group) == 1:
            try:
                faults.point("change")
                self.run(group[0].apply)
            except Exception as exc:  # noqa: BLE001 - every failure must trigger the undo
                return [], (group[0], exc)
            return group, None
        ops, failure = [], None
        for change in group:
            try:
                faults.point("change")
            except Exception as exc:  # noqa: BLE001 - an injected failure: the changes before it still run
                failure = (change, exc)
                break
            ops.append(change.apply)
        try:
            results = self.batch_executor(ops, False) if ops else []
        except Exception as exc:  # noqa: BLE001 - nothing of the batch was sent
            return [], (group[0], exc)
        applied = [group[number] for number, result in enumerate(results) if result is None]
        refused = next(((group[number], result) for number, result in enumerate(results) if result is not None), None)
        if refused is None and len(results) < len(ops):
            refused = (group[len(results)], CnmError("not sent: the batch stopped short"))
        return applied, refused or failure

    def forgotten(self) -> tuple:
        """After a failed execute: (the store records whose kernel objects are gone for good, those partly gone).

        A record is forgotten when every change of the plan that removes a part of it stayed applied (a network's
        bridge and VXLAN device, its IPsec policies...); while one of them was not applied, or was undone, the kernel
        still holds something of it and the record stays, so the next run finds and removes the rest."""
        stayed = set(map(id, self.stayed))
        parts: dict = {}
        for change in self.changes:
            for record in change.forgets:
                parts.setdefault(record, []).append(id(change) in stayed)
        return (
            sorted(record for record, applied in parts.items() if all(applied)),
            sorted(record for record, applied in parts.items() if any(applied) and not all(applied)),
        )


def _batch(changes: list, position: int, action: Callable[[Change], Action], run_batch) -> list:
    """The changes from ``position`` on whose ``action`` Ops can run as one batch (one namespace, one verb of
    BATCHED), or only the change at ``position``."""
    first = action(changes[position])
    if run_batch is None or not isinstance(first, Op) or first.verb not in BATCHED:
        return changes[position : position + 1]
    end = position + 1
    while end < len(changes):
        other = action(changes[end])
        if not isinstance(other, Op) or (other.where, other.verb) != (first.where, first.verb):
            break
        end += 1
    return changes[position:end]


def _undo(done: list, run: Callable[[Action], None], run_batch=None) -> tuple:
    """Undo ``done`` in reverse: (the errors of undo steps, the changes whose effect stays in order, how many were
    undone). An undo that meets its object gone counts as undone (nothing is left to put back), but its change stays:
    what it removed is not there. Consecutive undos of one verb of BATCHED run as a batch (``run_batch``)."""
    errors, stayed, undone = [], [], 0
    undoing = done[::-1]
    position = 0
    while position < len(undoing):
        group = _batch(undoing, position, lambda change: change.undo, run_batch)
        position += len(group)
        results: list = []
        if len(group) > 1:
            try:
                results = run_batch([change.undo for change in group], True)
            except Exception:  # noqa: BLE001 - none of it sent: each undo on its own below
                results = []
        for number, change in enumerate(group):
            if change.undo is None:
                stayed.append(change)
                continue
            if number < len(results):
                exc = results[number]
            else:
                try:
                    run(change.undo)
                    exc = None
                except Exception as error:  # noqa: BLE001 - keep undoing the rest
                    exc = error
            if exc is None:
                undone += 1
                continue
            stayed.append(change)
            if gone(exc):
                undone += 1
                continue
            errors.append("%s: %s" % (change.target, _reason(exc)))
    return errors, stayed[::-1], undone


def gone(exc: BaseException) -> bool:
    """The error says the object is no longer there (netlink and OS errors carry the errno)."""
    if isinstance(exc, Gone):
        return True
    code = getattr(exc, "errno", None)
    if code is None:
        args = getattr(exc, "args", ())
        code = args[0] if len(args) == 2 and isinstance(args[0], int) else None
    return code in GONE_ERRNOS


def _reason(exc: BaseException) -> str:
    if isinstance(exc, CnmError):
        return str(exc)
    # NetlinkError carries (code, text); OSError carries errno and strerror.
    args = getattr(exc, "args", ())
    if len(args) == 2 and isinstance(args[0], int):
        return "%s (errno %d)" % (args[1], args[0])
    return str(exc) or type(exc).__name__


def _copy(state: object) -> object:
    return dict(state) if isinstance(state, dict) else state


def _merge(old: object, new: object) -> object:
    """``new`` over ``old``: two dicts merge key by key (the keys of ``new`` win), anything else is replaced by ``new``.

    The after of an object is its after merged over the ones of its earlier changes (a new network's bridge and its
    IPv6 sysctl both show); its before is the before of its first change, completed with the keys only later changes
    name, and stays empty when the first change creates the object."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **new}
    return _copy(new)


def _drop_none(objects: dict) -> dict:
    return {target: state for target, state in objects.items() if state is not None}
