# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The store: what the kernel cannot hold (driver, ip_range, leases), one file per host namespace.

It lives under /run, so it dies with the kernel state at reboot and a rerun rebuilds both.
Lab hosts share one filesystem, so the file is keyed by the namespace's cookie (never its
inode, which the kernel reuses at once). A lock per namespace serialises concurrent module
runs. The store is a hint checked against the kernel, never the truth.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import tempfile
from typing import Dict, Optional

from ansible_collections.cnm.network.plugins.module_utils.errors import CnmError

STORE_ROOT = "/run/cnm-network"
FORMAT_VERSION = 1


def _empty() -> dict:
    return {"version": FORMAT_VERSION, "networks": {}, "endpoints": {}}


class Store:
    """Networks and endpoints of one host namespace; ``save`` writes atomically."""

    def __init__(self, namespace_key: str, root: str = STORE_ROOT) -> None:
        self.directory = os.path.join(root, namespace_key)
        self.path = os.path.join(self.directory, "state.json")
        self._lock_fd: Optional[int] = None
        self.data = _empty()

    def lock(self) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        self._lock_fd = os.open(os.path.join(self.directory, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    def load(self) -> None:
        try:
            with open(self.path) as handle:
                data = json.load(handle)
        except FileNotFoundError:
            data = _empty()
        except ValueError as exc:
            raise CnmError("the store %s is not valid JSON (%s): move it away and rerun the play to rebuild it" % (self.path, exc)) from exc
        if not isinstance(data, dict):
            raise CnmError("the store %s does not hold a JSON object: move it away and rerun the play to rebuild it" % self.path)
        if data.get("version") != FORMAT_VERSION:
            data = _empty()
        self.data = data

    def snapshot(self) -> dict:
        return copy.deepcopy(self.data)

    def save(self, data: Optional[dict] = None) -> None:
        if data is not None:
            self.data = data
        if not any(value for key, value in self.data.items() if key != "version"):
            # Nothing left to remember: no file either (the directory and its lock stay for the next run).
            if os.path.exists(self.path):
                os.unlink(self.path)
            return
        handle, tmp = tempfile.mkstemp(dir=self.directory, prefix=".state.")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(self.data, out, indent=1, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    # ---- views ----
    @property
    def networks(self) -> Dict[str, dict]:
        return self.data["networks"]

    @property
    def endpoints(self) -> Dict[str, dict]:
        return self.data["endpoints"]

    def endpoints_of(self, network: str) -> Dict[str, dict]:
        return {key: record for key, record in self.endpoints.items() if record["network"] == network}


def endpoint_key(network: str, sandbox_key: str) -> str:
    return "%s|%s" % (network, sandbox_key)
