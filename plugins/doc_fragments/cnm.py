# Copyright: cnm.network contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Documentation shared by the cnm.network modules."""

    # Every module: check mode that predicts the real run (the plan is
    # computed once and only executed outside check mode).
    DOCUMENTATION = r"""
options: {}
author:
  - cnm.network contributors (!UNKNOWN)
attributes:
  check_mode:
    support: full
    description: Reports exactly the changes the real run would make, and makes none.
notes:
  - "The store (C(/run/cnm-network/cookie-N/state.json)) is checked before anything else; a damaged one (not JSON, the
    wrong shape, no or a newer C(version), or not a regular file, a FIFO for example) makes the module fail with a
    message naming the file and what is wrong, and change nothing. It is never discarded: fix it, or move it away."
  - "A missing store (deleted or moved away) while the kernel holds cnm networks is rebuilt from the kernel: the run
    starts from the networks (bridge aliases, addresses, MTU, the C(inet cnm) rules), overlays (VXLAN device, FDB and
    neighbour entries), endpoints (veth aliases, both ends, in sandboxes that still exist) and published ports (the
    DNAT map elements) it finds, so no endpoint is numbered again and no published port is lost. Writing the rebuilt
    store is a change (check mode and C(--diff) show it), and a warning counts what came back and names what the
    kernel cannot hold (C(ip_range), C(host_binding_ip), static addresses, endpoint C(sysctls), C(gw_priority),
    C(name) and C(aliases), the host sysctls' values from before cnm, macvlan networks): those get their defaults.
    M(cnm.network.cnm_info) reports from the rebuilt store and writes nothing."
"""

    # The network modules: what a run leaves out (omitted.py).
    KEPT = r"""
options: {}
notes:
  - "Options left out keep the existing network's values, as C(community.docker.docker_network) compares only the
    options it is given: a network at O(mtu=9000) run again without O(mtu) stays at 9000, and C(--diff) shows only
    what the given options change. The defaults documented apply when the network is created. O(force) is not
    kept (it qualifies one run)."
"""

    # The sandbox of an endpoint, given one of four ways.
    SANDBOX = r"""
options:
  netns:
    description:
      - The sandbox by network namespace name (as in C(ip netns), a file under C(/run/netns)); letters, digits, C(_),
        C(.) and
        C(-), not C(.) or C(..), at most 255 bytes, and short enough that the endpoint's interface alias
        C(cnm:endpoint:NETWORK|netns:NAME) fits the kernel's 255 bytes.
      - Exactly one of C(netns), C(netns_path), C(pid) and C(container) (and, where offered, C(container_ip)) is given.
    type: str
  netns_path:
    description:
      - The sandbox by namespace file path, for example C(/proc/1234/ns/net) or C(/var/run/docker/netns/abc).
    type: path
  pid:
    description:
      - The sandbox by process ID (a container's init process).
    type: int
  container:
    description:
      - The sandbox by container name or ID, for a container started with C(--network none) (C(docker run --network
        none),
        C(podman run --network none)); its namespace is that of its init process, found by the runtime's
        C(container inspect) (one call for all containers of a task).
      - The container must be running to be attached; detaching (C(state=absent)) works after it stopped or was removed.
        In check mode a container that is not running yet is reported as an earlier task of the play would leave it
        (started), with a warning.
      - Stored as the sandbox C(container:RUNTIME/NAME).
    type: str
  container_runtime:
    description:
      - The runtime whose CLI resolves C(container), run on the managed node through the task's environment
        (C(DOCKER_HOST), C(CONTAINER_HOST) and the runtime's configuration apply).
      - Defaults to C(docker) when C(container) is given; only valid with C(container).
    type: str
    choices: [docker, podman]
"""
