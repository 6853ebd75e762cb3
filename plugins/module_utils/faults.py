# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deterministic crash injection, for the tests that prove a crash leaves something the next run repairs.

``CNM_CRASH_AT=POINT[:N]`` makes the module kill itself with SIGKILL (no cleanup, no ``finally``, no
store write: what an OOM kill or a pulled plug does) the Nth time it reaches ``POINT`` (N defaults
to 1). The points:

- ``change``: just before a change of the plan is applied (``change:3`` dies before the third);
- ``netns-named``: a named namespace's file exists in /run/netns, its namespace is not yet bound to it;
- ``netns-unmounted``: a named namespace is unmounted, its file is not yet unlinked.

Without the variable (every real run) a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "CNM_CRASH_AT"
_reached: dict = {}  # point -> times reached in this process


def _target() -> tuple:
    spec = os.environ.get(ENV, "")
    if not spec:
        return "", 0
    point, _sep, count = spec.partition(":")
    return point, int(count) if count.isdigit() else 1


def point(name: str) -> None:
    """Die here if ``CNM_CRASH_AT`` names this point and this is its Nth passage."""
    if ENV not in os.environ:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _target() == (name, _reached[name]):
        os.kill(os.getpid(), signal.SIGKILL)
