# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deterministic fault injection, for the tests that prove a crash or a failure leaves something the next run repairs.

``CNM_CRASH_AT=POINT[:N]`` makes the module kill itself with SIGKILL (no cleanup, no ``finally``, no
store write: what an OOM kill or a pulled plug does) the Nth time it reaches ``POINT`` (N defaults
to 1). ``CNM_FAIL_AT=POINT[:N]`` makes that passage raise an OSError (EIO) instead: a step that fails as
the kernel refuses one, so the run's own failure handling (undo, the store of a failed run) is what is
tested. The points:

- ``change``: just before a change of the plan is applied (``change:3`` dies or fails before the third);
- ``netns-named``: a named namespace's file exists in /run/netns, its namespace is not yet bound to it;
- ``netns-unmounted``: a named namespace is unmounted, its file is not yet unlinked.

Without the variables (every real run) a point costs two dictionary lookups.
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "CNM_CRASH_AT"
FAIL_ENV = "CNM_FAIL_AT"
_reached: dict = {}  # point -> times reached in this process


def _target(variable: str) -> tuple:
    spec = os.environ.get(variable, "")
    if not spec:
        return "", 0
    point, _sep, count = spec.partition(":")
    return point, int(count) if count.isdigit() else 1


def point(name: str) -> None:
    """Die (``CNM_CRASH_AT``) or fail (``CNM_FAIL_AT``) here if the variable names this point and this is its Nth
    passage."""
    if ENV not in os.environ and FAIL_ENV not in os.environ:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _target(ENV) == (name, _reached[name]):
        os.kill(os.getpid(), signal.SIGKILL)
    if _target(FAIL_ENV) == (name, _reached[name]):
        raise OSError(errno.EIO, "injected failure (%s=%s:%d)" % (FAIL_ENV, name, _reached[name]))
