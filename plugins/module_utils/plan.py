# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan: the ordered kernel and store changes of one module run, each with its undo.

Check mode reports the plan, the real run executes the same plan, so the two cannot disagree.
The diff is rendered from the plan: the before and after of every object it touches.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Callable

from ansible_collections.cnm.network.plugins.module_utils import faults
from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError, Gone

# What an undo meets when its object is already gone (deleted with its device or sandbox, by hand or by an
# earlier step): nothing is left to put back, so the undo moves on.
GONE_ERRNOS = frozenset((errno.ENOENT, errno.ESRCH, errno.ENODEV, errno.EADDRNOTAVAIL))

Action = Callable[[], None]


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
        for change in self.changes:
            try:
                faults.point("change")
                change.apply()
            except Exception as exc:  # noqa: BLE001 - every failure must trigger the undo
                undo_errors, self.stayed, undone = _undo(done)
                message = "%s failed: %s" % (change.what, _reason(exc))
                if undone:
                    message += "; undid %d earlier change(s)" % undone
                kept = [c.what for c in self.stayed if c.forgets]
                if kept:
                    message += "; stays done: %s" % "; ".join(kept)
                if undo_errors:
                    message += "; undo incomplete: " + "; ".join(undo_errors)
                raise CnmError(message, failed_change=change.target) from exc
            done.append(change)

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


def _undo(done: list) -> tuple:
    """Undo ``done`` in reverse: (the errors of undo steps, the changes whose effect stays in order, how many were
    undone). An undo that meets its object gone counts as undone (nothing is left to put back), but its change stays:
    what it removed is not there."""
    errors, stayed, undone = [], [], 0
    for change in reversed(done):
        if change.undo is None:
            stayed.append(change)
            continue
        try:
            change.undo()
            undone += 1
        except Exception as exc:  # noqa: BLE001 - keep undoing the rest
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
