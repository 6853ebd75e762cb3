# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Documentation shared by the cnm.network modules."""

    # Every module: check mode that predicts the real run (the plan is computed once and only executed outside check mode).
    DOCUMENTATION = r"""
options: {}
author:
  - cnm.network contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Reports exactly the changes the real run would make, and makes none.
"""

    # The sandbox of an endpoint, given one of three ways.
    SANDBOX = r"""
options:
  netns:
    description:
      - The sandbox by network namespace name (as in C(ip netns), a file under C(/run/netns)).
      - Exactly one of C(netns), C(netns_path) and C(pid) (and, where offered, C(container_ip)) is given.
    type: str
  netns_path:
    description:
      - The sandbox by namespace file path, for example C(/proc/1234/ns/net) or C(/var/run/docker/netns/abc).
    type: path
  pid:
    description:
      - The sandbox by process ID (a container's init process).
    type: int
"""
